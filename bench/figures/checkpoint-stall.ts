/**
 * checkpoint-stall: training steps/s of a trainer with a 64 MB state that checkpoints every ~2 s of
 * training with `ctx.checkpointInBackground({ copy: true })` (snapshot: the runtime copies the live
 * state into its reused buffer; the persist runs while training goes on) ÷ the same trainer with checkpoints off, in the same run, alternating
 * which goes first. The extra figure is the same with `ctx.checkpoint` (the whole durable write on
 * the training path), and the notes give the stall per checkpoint (time inside the call, copy
 * included) next to the durable write time (time inside `ctx.checkpoint`).
 *
 * The trainer (`stall-probe`, registered only here) does a fixed number of steps, each a fixed
 * amount of arithmetic on a slice of the state, and reports its own loop time; the in-process
 * worker runs it through the real runtime, store and dev server.
 */
import { startWorker } from '../../test/helpers/env';
import type { Trainer } from '../../src/activities/trainer';
import type { BenchEnv } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, progress } from '../lib/stats';

type Mode = 'none' | 'background' | 'durable';

interface StallParams {
  readonly mode: Mode;
  readonly stateMiB: number;
  readonly steps: number;
  readonly checkpointEveryMs: number;
}

interface StallRun {
  mode: Mode;
  loopMs: number;
  steps: number;
  stepsPerSec: number;
  /** Time inside each checkpoint call. */
  callMs: number[];
}

const results = new Map<string, StallRun>();

/** A step: a fixed amount of float work on a 64 KiB slice of the state, so steps cost the same in every mode. */
function work(state: Float64Array, i: number): void {
  const n = 8192;
  const at = (i * n) % (state.length - n);
  for (let r = 0; r < 12; r++) for (let k = 0; k < n; k++) state[at + k] = state[at + k] * 0.999 + Math.sin(k + r);
}

const stallTrainer: Trainer<StallParams> = {
  name: 'stall-probe',
  parseParams: (raw) => raw as StallParams,
  async train(ctx) {
    const p = ctx.params;
    const state = new Float64Array((p.stateMiB << 20) / 8);
    const bytes = new Uint8Array(state.buffer);
    const run: StallRun = { mode: p.mode, loopMs: 0, steps: 0, stepsPerSec: 0, callMs: [] };
    const start = performance.now();
    let last = start;
    for (let i = 0; i < p.steps; i++) {
      work(state, i);
      await ctx.step({ epoch: 0, step: i + 1 });
      const now = performance.now();
      if (p.mode !== 'none' && now - last >= p.checkpointEveryMs) {
        if (p.mode === 'background') await ctx.checkpointInBackground({ epoch: 0, step: i + 1, data: bytes, copy: true });
        else await ctx.checkpoint({ epoch: 0, step: i + 1, data: bytes });
        last = performance.now();
        run.callMs.push(last - now);
      }
    }
    run.loopMs = performance.now() - start;
    run.steps = p.steps;
    run.stepsPerSec = (p.steps / run.loopMs) * 1000;
    results.set(ctx.experimentId, run);
    return { metrics: { steps: p.steps } };
  },
};

export interface StallOptions {
  readonly reps: number;
  readonly stateMiB: number;
  readonly steps: number;
  readonly checkpointEveryMs: number;
}

export const STALL_DEFAULTS: StallOptions = { reps: 3, stateMiB: 64, steps: 12_000, checkpointEveryMs: 2000 };

export async function checkpointStall(env: BenchEnv, opts: StallOptions = STALL_DEFAULTS): Promise<Figure[]> {
  const taskQueue = env.uniqueName('stall');
  const w = await startWorker(env.h, { taskQueue, trainers: [stallTrainer] });
  const one = async (mode: Mode, rep: number): Promise<StallRun> => {
    const sessionId = env.uniqueName(`stall-${mode}-${rep}`);
    const params: StallParams = { mode, stateMiB: opts.stateMiB, steps: opts.steps, checkpointEveryMs: opts.checkpointEveryMs };
    const summary = await (await w.client.startSession({ sessionId, policy: { checkpointsToKeep: 2 }, experiments: [{ id: 'e', trainer: 'stall-probe', params }] })).result();
    const e = summary.experiments[0];
    if (e.state !== 'completed') throw new Error(`checkpoint-stall: ${sessionId} ended ${e.state}: ${e.reason}`);
    const r = results.get('e');
    if (!r) throw new Error(`checkpoint-stall: ${sessionId}: the trainer recorded nothing`);
    results.delete('e');
    return r;
  };
  try {
    progress(`checkpoint-stall: ${opts.stateMiB} MB state, ${opts.steps} steps, a checkpoint every ${opts.checkpointEveryMs} ms; warming up`);
    await one('none', -1);
    const reps: { none: StallRun; background: StallRun; durable: StallRun }[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      const order: Mode[] = rep % 2 === 0 ? ['none', 'background', 'durable'] : ['durable', 'background', 'none'];
      const got: Partial<Record<Mode, StallRun>> = {};
      for (const mode of order) got[mode] = await one(mode, rep);
      const r = got as { none: StallRun; background: StallRun; durable: StallRun };
      reps.push(r);
      progress(
        `checkpoint-stall rep ${rep + 1}/${opts.reps}: none ${fmt(r.none.stepsPerSec)} steps/s, background ${fmt(r.background.stepsPerSec)} (stall ${fmt(median(r.background.callMs))} ms × ${r.background.callMs.length}), durable ${fmt(r.durable.stepsPerSec)} (write ${fmt(median(r.durable.callMs))} ms × ${r.durable.callMs.length})`,
      );
    }
    const stallMs = median(reps.flatMap((r) => r.background.callMs));
    const writeMs = median(reps.flatMap((r) => r.durable.callMs));
    const runs = reps.map((r, rep) => ({ rep, none: r.none, background: r.background, durable: r.durable }));
    const baseline = { what: 'the same trainer with checkpoints off, same run', value: median(reps.map((r) => r.none.stepsPerSec)), unit: 'steps/s' };
    return [
      figure({
        name: 'checkpoint-stall',
        values: reps.map((r) => r.background.stepsPerSec / r.none.stepsPerSec),
        unit: '×',
        goal: { op: '>=', value: 0.95 },
        baseline,
        runs,
        notes: `${opts.stateMiB} MB state, a checkpoint every ~${opts.checkpointEveryMs / 1000} s with ctx.checkpointInBackground: stall per checkpoint ${fmt(stallMs)} ms (median, the snapshot copy included) vs the durable write ${fmt(writeMs)} ms (ctx.checkpoint)`,
      }),
      figure({
        name: 'checkpoint-stall:durable-on-the-training-path',
        values: reps.map((r) => r.durable.stepsPerSec / r.none.stepsPerSec),
        unit: '×',
        goal: null,
        baseline,
        runs: [],
        extra: true,
        notes: `the same with ctx.checkpoint (write, sha256, fsyncs, manifest before training goes on): ${fmt(writeMs)} ms per checkpoint`,
      }),
    ];
  } finally {
    await w.stop();
  }
}
