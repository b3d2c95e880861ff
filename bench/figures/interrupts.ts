/**
 * Graceful interruptions.
 *
 * cancel-to-closed-seconds: client.cancel(<experiment workflow id>) while the mlp trainer is in
 * the middle of an epoch (a random delay after its first epoch checkpoint), until the experiment
 * workflow is closed CANCELLED (describe → closeTime, polled every 20 ms). The worker runs in
 * process, so its pino lines give the intermediate points: the cancel reaching the activity
 * ('interrupted: ...'), the interruption checkpoint being durable ('checkpoint saved'). Measured
 * per worker configuration: heartbeatThrottle '1s' (the default; the contract figure), '200ms',
 * and '200ms' with the plugin's heartbeatIntervalMs = 200.
 *
 * sigterm-to-resumed-seconds: SIGTERM to the child-process worker running the training, until
 * the standby worker logs 'resuming training'. Session policy retry.initialInterval '200ms'
 * (and '1s', the default, as an extra figure).
 *
 * Baseline for both: 1 s + the checkpoint write time, measured here as LocalCheckpointStore.save
 * of the same number of bytes (blob + manifest, both durable) in this process.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ExperimentsClient } from '../../src/client';
import { startWorker, type RunningWorker } from '../../test/helpers/env';
import type { BenchEnv, ChildWorker, LogLine } from '../lib/env';
import { waitFor } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, mulberry32, progress, sleep } from '../lib/stats';

export interface InterruptOptions {
  readonly cancelReps: number;
  readonly cancelVariantReps: number;
  readonly sigtermReps: number;
  readonly sigtermVariantReps: number;
  readonly seed: number;
}

export const INTERRUPT_DEFAULTS: InterruptOptions = { cancelReps: 7, cancelVariantReps: 5, sigtermReps: 7, sigtermVariantReps: 3, seed: 7 };

// 64 steps × ~21 ms ≈ 1.35 s per epoch: longer than the runtime's 1 s heartbeat interval, so the
// epoch checkpoint (which also heartbeats) rarely carries the cancel in first.
const CANCEL_PARAMS = { epochs: 20, samples: 2048, batchSize: 32, stepDelayMs: 20, seed: 5 };
// 16 steps × ~21 ms ≈ 0.35 s per epoch.
const SIGTERM_PARAMS = { epochs: 8, samples: 512, batchSize: 32, stepDelayMs: 20, seed: 5 };

const of = (workflowId: string) => (l: LogLine) => l.workflowId === workflowId;

/** Median time of LocalCheckpointStore.save for `bytes` (blob and manifest), in ms. */
async function checkpointWriteMs(env: BenchEnv, bytes: number, reps = 15): Promise<{ medianMs: number; runs: number[] }> {
  const store = new LocalCheckpointStore(path.join(env.tmp, 'ck-baseline'));
  const runs: number[] = [];
  const data = randomBytes(bytes);
  for (let i = 0; i < reps + 2; i++) {
    const t = performance.now();
    await store.save('baseline/ck', { epoch: i + 1, step: 0, attempt: 1, data, metrics: { loss: 1 } }, 3);
    if (i >= 2) runs.push(performance.now() - t);
  }
  return { medianMs: median(runs), runs };
}

interface CancelRun {
  rep: number;
  delayAfterCheckpointMs: number;
  toInterruptedMs: number | null;
  toCheckpointDurableMs: number | null;
  toClosedMs: number;
  checkpointBytes: number | null;
}

async function cancelRuns(env: BenchEnv, w: RunningWorker, reps: number, random: () => number, label: string): Promise<CancelRun[]> {
  const runs: CancelRun[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const sessionId = env.uniqueName('cancel');
    const workflowId = `${sessionId}:e`;
    await w.client.startSession({ sessionId, policy: {}, experiments: [{ id: 'e', trainer: 'mlp', params: CANCEL_PARAMS }] });
    await waitFor(() => env.logs().some((l) => of(workflowId)(l) && l.msg === 'checkpoint saved'), { what: `${workflowId} first checkpoint` });
    // A random phase relative to the heartbeats (which go out at most once a second).
    const delay = Math.round(random() * 1000);
    await sleep(delay);
    const t0 = Date.now();
    await w.client.cancel(workflowId);
    const handle = env.h.env.client.workflow.getHandle(workflowId);
    const closed = await waitFor(
      async () => {
        const d = await handle.describe();
        return d.status.name === 'CANCELLED' && d.closeTime ? d.closeTime.getTime() : undefined;
      },
      { what: `${workflowId} to close CANCELLED`, timeoutMs: 60_000 },
    );
    const lines = env.logs().filter(of(workflowId));
    const interrupted = lines.find((l) => l.msg === 'interrupted: checkpointing at the next step boundary');
    const saved = interrupted ? lines.find((l) => l.msg === 'checkpoint saved' && (l.time as number) >= (interrupted.time as number)) : undefined;
    const run: CancelRun = {
      rep,
      delayAfterCheckpointMs: delay,
      toInterruptedMs: interrupted ? (interrupted.time as number) - t0 : null,
      toCheckpointDurableMs: saved ? (saved.time as number) - t0 : null,
      toClosedMs: closed - t0,
      checkpointBytes: saved ? (saved.bytes as number) : null,
    };
    runs.push(run);
    progress(
      `cancel ${label} ${rep + 1}/${reps}: reached the activity after ${run.toInterruptedMs} ms, checkpoint durable at ${run.toCheckpointDurableMs} ms, workflow closed at ${run.toClosedMs} ms`,
    );
  }
  return runs;
}

interface SigtermRun {
  rep: number;
  toInterruptedMs: number | null;
  toCheckpointDurableMs: number | null;
  toExitMs: number;
  toResumedMs: number;
  resumedAt: { epoch: number; step: number };
  exitCode: number | null;
}

export async function sigtermRuns(
  env: BenchEnv,
  reps: number,
  initialInterval: string,
  random: () => number,
  worker: { script?: string; extraEnv?: Record<string, string> } = {},
): Promise<SigtermRun[]> {
  const taskQueue = env.uniqueName('sigterm');
  const checkpointDir = path.join(env.tmp, `ck-${taskQueue}`);
  const client = new ExperimentsClient({ client: env.h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir) });
  let n = 0;
  const spawn = () => env.spawnWorker({ taskQueue, checkpointDir, name: `${taskQueue}-w${++n}`, ...worker });
  let workers: ChildWorker[] = [spawn(), spawn()];
  await Promise.all(workers.map((w) => w.ready));
  const runs: SigtermRun[] = [];
  try {
    for (let rep = 0; rep < reps; rep++) {
      const sessionId = env.uniqueName('sigterm');
      const workflowId = `${sessionId}:e`;
      await client.startSession({
        sessionId,
        policy: { heartbeatTimeout: '30s', retry: { initialInterval } },
        experiments: [{ id: 'e', trainer: 'mlp', params: SIGTERM_PARAMS }],
      });
      const victim = await waitFor(() => workers.find((w) => w.lines().some((l) => of(workflowId)(l) && l.msg === 'checkpoint saved')), {
        what: `${workflowId} first checkpoint`,
      });
      await sleep(Math.round(random() * 700));
      const t0 = Date.now();
      victim.child.kill('SIGTERM');
      const standby = workers.filter((w) => w !== victim);
      const resumed = await waitFor(
        () => {
          for (const w of standby) {
            // A shutdown ends the invocation, not the attempt: the next invocation resumes as its
            // attempt 1 (src/workflows/experiment.ts, PreemptionLoop), on a standby.
            const line = w.lines().find((l) => of(workflowId)(l) && l.msg === 'resuming training');
            if (line) return { w, line };
          }
          return undefined;
        },
        { what: `${workflowId} to resume after SIGTERM`, timeoutMs: 60_000 },
      );
      const exit = await victim.exited;
      const toExitMs = Date.now() - t0;
      const lines = victim.lines().filter(of(workflowId));
      const interrupted = lines.find((l) => l.msg === 'interrupted: checkpointing at the next step boundary');
      const saved = interrupted ? lines.find((l) => l.msg === 'checkpoint saved' && (l.time as number) >= (interrupted.time as number)) : undefined;
      const run: SigtermRun = {
        rep,
        toInterruptedMs: interrupted ? (interrupted.time as number) - t0 : null,
        toCheckpointDurableMs: saved ? (saved.time as number) - t0 : null,
        toExitMs,
        toResumedMs: (resumed.line.time as number) - t0,
        resumedAt: { epoch: resumed.line.epoch as number, step: resumed.line.step as number },
        exitCode: exit.code,
      };
      runs.push(run);
      progress(
        `sigterm (initialInterval ${initialInterval}) ${rep + 1}/${reps}: interrupted after ${run.toInterruptedMs} ms, checkpoint durable at ${run.toCheckpointDurableMs} ms, resumed on the standby at ${run.toResumedMs} ms (epoch ${run.resumedAt.epoch} step ${run.resumedAt.step})`,
      );
      const replacement = spawn();
      workers = [...standby, replacement];
      await waitFor(() => resumed.w.lines().some((l) => of(workflowId)(l) && l.msg === 'training completed'), { what: `${workflowId} to finish`, timeoutMs: 60_000 });
      await replacement.ready;
    }
  } finally {
    for (const w of workers) await env.stopWorker(w);
  }
  return runs;
}

export async function interrupts(env: BenchEnv, opts: InterruptOptions = INTERRUPT_DEFAULTS): Promise<Figure[]> {
  const random = mulberry32(opts.seed);
  const configs = [
    { label: 'throttle=1s', options: {}, reps: opts.cancelReps },
    { label: 'throttle=200ms', options: { heartbeatThrottle: '200ms' }, reps: opts.cancelVariantReps },
    { label: 'throttle=200ms,heartbeatIntervalMs=200', options: { heartbeatThrottle: '200ms', heartbeatIntervalMs: 200 }, reps: opts.cancelVariantReps },
  ];
  const cancel: { label: string; runs: CancelRun[] }[] = [];
  for (const c of configs) {
    const w = await startWorker(env.h, { taskQueue: env.uniqueName('cancel'), ...c.options });
    try {
      cancel.push({ label: c.label, runs: await cancelRuns(env, w, c.reps, random, c.label) });
    } finally {
      await w.stop();
    }
  }
  const bytes = cancel[0].runs.find((r) => r.checkpointBytes !== null)?.checkpointBytes ?? 4096;
  const ck = await checkpointWriteMs(env, bytes);
  progress(`checkpoint write baseline: LocalCheckpointStore.save of ${bytes} bytes, median ${fmt(ck.medianMs)} ms`);

  const sigterm = await sigtermRuns(env, opts.sigtermReps, '200ms', random);
  const sigtermDefault = opts.sigtermVariantReps > 0 ? await sigtermRuns(env, opts.sigtermVariantReps, '1s', random) : [];

  const goalS = 1 + ck.medianMs / 1000;
  const goal = { op: '<=' as const, value: goalS, text: `≤ 1 s + checkpoint write (${fmt(goalS)} s)` };
  const baseline = { what: `checkpoint write (store.save, ${bytes} B)`, value: ck.medianMs, unit: 'ms' };
  const figures: Figure[] = [];
  cancel.forEach((c, i) => {
    const interruptedS = c.runs.map((r) => (r.toInterruptedMs ?? NaN) / 1000);
    figures.push(
      figure({
        name: i === 0 ? 'cancel-to-closed-seconds' : `cancel-to-closed-seconds@${c.label}`,
        values: c.runs.map((r) => r.toClosedMs / 1000),
        unit: 's',
        goal,
        baseline,
        runs: c.runs,
        extra: i > 0,
        notes: `worker ${c.label}${i === 0 ? ' (default), runtime heartbeat every 1 s (policy heartbeatTimeout 30s)' : ''}; cancel reached the activity after median ${fmt(median(interruptedS))} s; checkpoint durable after ${fmt(median(c.runs.map((r) => (r.toCheckpointDurableMs ?? NaN) / 1000)))} s`,
      }),
    );
  });
  figures.push(
    figure({
      name: 'sigterm-to-resumed-seconds',
      values: sigterm.map((r) => r.toResumedMs / 1000),
      unit: 's',
      goal,
      baseline,
      runs: sigterm,
      notes: `session policy retry.initialInterval 200ms, heartbeatTimeout 30s; two child-process workers (standby polling); interruption checkpoint durable after median ${fmt(median(sigterm.map((r) => (r.toCheckpointDurableMs ?? NaN) / 1000)))} s`,
    }),
  );
  if (sigtermDefault.length > 0) {
    figures.push(
      figure({
        name: 'sigterm-to-resumed-seconds@initialInterval=1s',
        values: sigtermDefault.map((r) => r.toResumedMs / 1000),
        unit: 's',
        goal,
        baseline,
        runs: sigtermDefault,
        extra: true,
        notes: 'session policy retry.initialInterval 1s (the default)',
      }),
    );
  }
  figures.push(
    figure({
      name: 'checkpoint-write-ms@interrupt-size',
      values: ck.runs,
      unit: 'ms',
      goal: null,
      baseline: { what: `LocalCheckpointStore.save, ${bytes} B (blob + manifest, each temp/fsync/rename/dir fsync)` },
      runs: ck.runs,
      extra: true,
    }),
  );
  return figures;
}
