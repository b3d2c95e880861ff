/**
 * `mlp-probe`: the built-in mlp trainer, unchanged, driven through a context that times what
 * the runtime adds around the loop. Used only to attribute the training overhead:
 *
 * - `step`: time inside `ctx.step` (progress bookkeeping, coalesced heartbeats, and the
 *   event-loop yields every 5 ms, including whatever other work runs during a yield);
 * - `epochEnd`: from the return of an epoch's last `ctx.step` to its `ctx.checkpoint` call:
 *   the trainer's per-epoch full-dataset evaluate() plus encoding the checkpoint;
 * - `checkpoint`: time inside `ctx.checkpoint` (durable blob write, manifest rewrite, pruning,
 *   heartbeat, log line).
 *
 * The wrapper itself adds two performance.now() calls per step.
 */
import { mlpTrainer, runMlpBare, type MlpParams } from '../src/activities/trainers/mlp';
import type { Trainer, TrainerContext } from '../src/activities/trainer';

export interface ProbeStats {
  totalMs: number;
  steps: number;
  stepMs: number;
  /** ctx.step calls that took more than 20 µs: in practice the ones that yielded to the event loop (or heartbeat). */
  slowSteps: number;
  slowStepMs: number;
  checkpoints: number;
  checkpointMs: number;
  epochEndMs: number;
}

/** Stats by experiment id, read by the benchmark after the run (in-process worker only). */
export const probeStats = new Map<string, ProbeStats>();

export const probeTrainer: Trainer<MlpParams> = {
  name: 'mlp-probe',
  parseParams: mlpTrainer.parseParams,
  epochs: mlpTrainer.epochs,
  async train(ctx) {
    const stats: ProbeStats = { totalMs: 0, steps: 0, stepMs: 0, slowSteps: 0, slowStepMs: 0, checkpoints: 0, checkpointMs: 0, epochEndMs: 0 };
    probeStats.set(ctx.experimentId, stats);
    let lastStepEnd = performance.now();
    const probe: TrainerContext<MlpParams> = {
      experimentId: ctx.experimentId,
      sessionId: ctx.sessionId,
      params: ctx.params,
      attempt: ctx.attempt,
      resume: ctx.resume,
      get interrupted() {
        return ctx.interrupted;
      },
      get interruptReason() {
        return ctx.interruptReason;
      },
      interruption: ctx.interruption,
      signal: ctx.signal,
      checkpointDir: ctx.checkpointDir,
      log: ctx.log,
      setEpochs: (n) => ctx.setEpochs(n),
      touch: () => ctx.touch(),
      async step(report) {
        const t = performance.now();
        await ctx.step(report);
        const end = performance.now();
        const dt = end - t;
        stats.steps++;
        stats.stepMs += dt;
        if (dt > 0.02) {
          stats.slowSteps++;
          stats.slowStepMs += dt;
        }
        lastStepEnd = end;
      },
      async checkpoint(input) {
        const t = performance.now();
        stats.epochEndMs += t - lastStepEnd;
        const pointer = await ctx.checkpoint(input);
        stats.checkpoints++;
        stats.checkpointMs += performance.now() - t;
        return pointer;
      },
      async checkpointInBackground(input) {
        const t = performance.now();
        stats.epochEndMs += t - lastStepEnd;
        await ctx.checkpointInBackground(input);
        stats.checkpoints++;
        stats.checkpointMs += performance.now() - t;
      },
      adoptCheckpoint: (file, input) => ctx.adoptCheckpoint(file, input),
    };
    const start = performance.now();
    try {
      return await mlpTrainer.train(probe);
    } finally {
      stats.totalMs = performance.now() - start;
    }
  },
};

/**
 * `mlp-bare-in-activity`: runMlpBare called inside the training activity, ignoring the context:
 * no ctx.step, no checkpoints, no yields (it blocks the event loop, so run it with a heartbeat
 * timeout longer than the training). What the activity environment alone costs the loop.
 */
export const bareInActivityTrainer: Trainer<MlpParams> = {
  name: 'mlp-bare-in-activity',
  parseParams: mlpTrainer.parseParams,
  epochs: mlpTrainer.epochs,
  async train(ctx) {
    const r = runMlpBare(ctx.params);
    return { finalLoss: r.finalLoss, accuracy: r.accuracy, modelSha256: r.modelSha256, metrics: { loss: r.finalLoss, accuracy: r.accuracy } };
  },
};
