/**
 * A search survives kill -9 of its worker: a child-process worker (`node src/worker.ts`) is
 * killed with SIGKILL mid-epoch during an ASHA session, a second worker takes over after the
 * heartbeat timeout, and the session's decisions (pruned trials, epochs, rungs) and the
 * completed trials' models match an uninterrupted run of the same session.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ExperimentsClient } from '../../src/client';
import type { SessionSummary } from '../../src/shared/definitions';
import { storeKey } from '../../src/shared/ids';
import type { ExperimentSpec, SessionPolicy } from '../../src/shared/types';
import { readJsonLines, spawnWorker, startHarness, startWorker, uniqueQueue, waitFor, type ChildWorker, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let reference: RunningWorker;
const children: ChildWorker[] = [];
before(async () => {
  h = await startHarness();
  reference = await startWorker(h, { taskQueue: uniqueQueue('rewind-ref') });
});
after(async () => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await reference?.stop();
  await h?.teardown();
});

// 8 steps × 80 ms ≈ 0.65 s per epoch: long enough to land the kill mid-epoch.
const trials: ExperimentSpec[] = [0.03, 0.0001, 0.01, 0.003, 0.00003, 0.02].map((lr, i) => ({ id: `t${i}`, trainer: 'mlp', params: { epochs: 4, samples: 256, batchSize: 32, stepDelayMs: 80, lr, seed: 1 } }));
const policy: SessionPolicy = {
  maxConcurrent: 3,
  heartbeatTimeout: '3s',
  retry: { initialInterval: '200ms' },
  search: { metric: 'loss', scheduler: { type: 'asha', reductionFactor: 2, gracePeriod: 1, maxEpochs: 4 } },
};
const decisions = (s: SessionSummary) => s.experiments.map((e) => `${e.id}:${e.state}${e.pruned ? `@${e.pruned.epoch}/rung${e.pruned.rung}` : ''}`);

test('kill -9 mid-epoch during an ASHA search: the same decisions as an uninterrupted run', async () => {
  const taskQueue = uniqueQueue('rewind');
  const checkpointDir = path.join(h.tmp, 'ck-rewind');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: h.env.client, taskQueue, store });
  const worker = (label: string) => {
    const w = spawnWorker(h, { taskQueue, checkpointDir, name: `rewind-${label}` });
    children.push(w);
    return w;
  };
  const a = worker('a');
  await a.ready;
  const uninterrupted = reference.client.startSession({ sessionId: 'rewind-ref', policy, experiments: trials }).then((hd) => hd.result());
  const handle = await client.startSession({ sessionId: 'rewind', policy, experiments: trials });
  // Between gates a trial waits for the session's decision without training, so kill while one
  // trains: a checkpoint at epoch 3 is the middle of the rung-2 → rung-4 segment, epoch 4 is running.
  const midSegment = async () => {
    for (const t of trials) if (((await store.list(storeKey('rewind', t.id)))[0]?.epoch ?? 0) === 3) return true;
    return false;
  };
  await waitFor(midSegment, { what: 'a trial training its fourth epoch', timeoutMs: 120_000, intervalMs: 50 });
  await new Promise((r) => setTimeout(r, 150)); // into the middle of that epoch
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');
  const b = worker('b');

  const [killed, reference_] = await Promise.all([handle.result(), uninterrupted]);
  // A training attempt cut off by the kill is retried (attempt 2) from its checkpoint by the second worker.
  assert.ok(readJsonLines(b.logFile).some((l) => l.msg === 'resuming training' && l.attempt === 2), 'the second worker retried an attempt the kill cut off');
  assert.ok(reference_.pruned && reference_.pruned > 0, 'the search pruned some trials');
  assert.deepEqual(decisions(killed), decisions(reference_));
  assert.deepEqual(killed.experiments.map((e) => e.result?.modelSha256 ?? null), reference_.experiments.map((e) => e.result?.modelSha256 ?? null));
  assert.equal(killed.best?.experimentId, reference_.best?.experimentId);
});
