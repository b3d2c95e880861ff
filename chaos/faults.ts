/**
 * Carries out one scheduled fault against the cluster and says what it did. The schedule names
 * a preferred worker slot; when that slot is not up, the next one that is takes the fault, and
 * a worker fault that would leave no worker up waits for a second one, and is skipped if none
 * comes (at least one worker always stays).
 */
import type { Client } from '@temporalio/client';
import { sleep } from '../bench/lib/stats';
import type { ChaosServer, WorkerPool } from './cluster';
import type { FaultRecord } from './report';
import { signalArgs, type Fault } from './schedule';

export interface FaultTargets {
  readonly server: ChaosServer;
  readonly pool: WorkerPool;
  readonly client: Client;
  readonly sessionId: string;
  readonly experimentIds: readonly string[];
  /** Freezes still in progress; the run waits for them before judging. */
  readonly thawing: Promise<void>[];
}

/**
 * How long a worker fault waits for a second worker to be up (restarted workers take a while to
 * start on a loaded machine) before it is skipped; waiting shifts its time, never its kind.
 */
const DEFER_MS = 15_000;

async function targetSlot(pool: WorkerPool, preferred: number, size: number): Promise<number | string> {
  const deadline = Date.now() + DEFER_MS;
  while (pool.upSlots().length <= 1 && Date.now() < deadline) await sleep(250);
  const up = pool.upSlots();
  if (up.length <= 1) return `skipped: ${up.length} worker up for ${DEFER_MS / 1000} s, at least one must stay`;
  for (let k = 0; k < size; k++) {
    const slot = (preferred + k) % size;
    if (up.includes(slot)) return slot;
  }
  return 'skipped: no worker up';
}

export async function injectFault(f: Fault, t: FaultTargets, workers: number): Promise<FaultRecord> {
  const record = (injected: boolean, detail: string): FaultRecord => ({ n: f.n, kind: f.kind, atMs: f.atMs, injected, detail });
  switch (f.kind) {
    case 'worker-kill9':
    case 'worker-sigterm':
    case 'worker-sigstop': {
      const waitedFrom = Date.now();
      const slot = await targetSlot(t.pool, f.slot, workers);
      if (typeof slot === 'string') return record(false, slot);
      const pid = t.pool.pid(slot);
      if (f.kind === 'worker-kill9') t.pool.kill9(slot);
      else if (f.kind === 'worker-sigterm') t.pool.sigterm(slot);
      else t.thawing.push(t.pool.freeze(slot, f.stopMs));
      const waited = Date.now() - waitedFrom;
      return record(true, `slot ${slot} pid ${pid}${f.kind === 'worker-sigstop' ? ` for ${f.stopMs} ms` : ''}${waited > 500 ? ` (deferred ${waited} ms for a second worker to be up)` : ''}`);
    }
    case 'server-kill9': {
      const pid = t.server.pid;
      const started = Date.now();
      await t.server.kill9AndRestart();
      return record(true, `pid ${pid}, back after ${Date.now() - started} ms`);
    }
    case 'forged-signal': {
      const s = f.signal!;
      const workflowId = s.target === 0 ? t.sessionId : `${t.sessionId}:${t.experimentIds[s.target - 1]}`;
      const args = signalArgs(s, { sessionId: t.sessionId, experimentIds: t.experimentIds });
      try {
        await t.client.workflow.getHandle(workflowId).signal(s.name, ...args);
        return record(true, `${s.name}(${s.payload}) to ${workflowId}`);
      } catch (err) {
        // A closed or not yet started workflow refuses signals: the fault still happened.
        return record(true, `${s.name}(${s.payload}) to ${workflowId} refused: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
}
