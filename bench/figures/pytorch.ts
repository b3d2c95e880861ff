/**
 * pytorch-overhead: steps/s of the PyTorch example (examples/python/train_torch.py, registered as
 * the program `digits-torch`) run by the plugin's command trainer (real dev server, in-process
 * worker) ÷ steps/s of the same script run bare (spawned directly with the same EXPERIMENT_*
 * variables, stdout drained, no plugin), alternating bare/plugin in every repetition.
 *
 * Steps/s are the script's own: it times its training loop (steps, checkpoints, validation; not
 * the interpreter start and the torch import, which are the same on both sides and take longer
 * than the training) and logs `N steps in T s` on stderr, which the plugin logs as a `trainer
 * stderr` line. Under the plugin the loop pays for everything the plugin does to it: stdout
 * back-pressure, and the CPU taken by adopting (hashing, fsyncing, recording) its checkpoints.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProgramRegistry } from '../../src/activities/trainers/command';
import { startWorker } from '../../test/helpers/env';
import { PYTHON, TRAIN_TORCH } from '../../test/helpers/python';
import type { BenchEnv, LogLine } from '../lib/env';
import { ROOT } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, progress, spread } from '../lib/stats';

export interface PytorchOptions {
  readonly reps: number;
  /** train_torch.py params of the headline figure. */
  readonly params: Record<string, unknown>;
  /** Repetitions of the stress variants: a checkpoint at every epoch end, and every 10 steps. */
  readonly epochEndReps: number;
  readonly denseReps: number;
}

export const PYTORCH_DEFAULTS: PytorchOptions = {
  // This machine's own speed drifts by ±30 % from one second to the next (a bare run alone varies
  // that much between repetitions, in its CPU time as much as in its wall time), so a single pair
  // says little: the figure is the median of 15 alternating pairs.
  reps: 15,
  // 200 epochs of 45 steps (~0.4 ms each): 3–5 s of training on a 2-core machine, with a
  // checkpoint every 0.5 s of it (at a step boundary, mid-epoch as a rule) and at the end. That
  // is 4× the cadence of #15's checkpoint-stall figure (every ~2 s), and a real job checkpoints
  // every few minutes; the stress variants below show what a far denser cadence costs.
  params: { epochs: 200, checkpoint_every: 0, checkpoint_seconds: 0.5 },
  epochEndReps: 9,
  denseReps: 3,
};
/** A checkpoint at every epoch end: one every ~15–25 ms of training. */
const EPOCH_END = { epochs: 60, checkpoint_every: 0 };
/** Also one every 10 steps: every ~4–8 ms (the example's test setting). */
const DENSE = { epochs: 30, checkpoint_every: 10 };

const PROGRAMS_FILE = path.join(ROOT, 'examples/python/programs.yaml');
const DONE = /(\d+) steps in ([\d.e-]+)s \(CPU ([\d.e-]+)s\), model sha256 ([0-9a-f]{64})/;

interface Timed {
  steps: number;
  seconds: number;
  cpuSeconds: number;
  stepsPerSec: number;
  sha: string;
}

function parseDone(line: string, what: string): Timed {
  const m = DONE.exec(line);
  if (!m) throw new Error(`pytorch: ${what}: no "N steps in T s" line from train_torch.py`);
  const steps = Number(m[1]);
  const seconds = Number(m[2]);
  return { steps, seconds, cpuSeconds: Number(m[3]), stepsPerSec: steps / seconds, sha: m[4] };
}

/** train_torch.py spawned directly, the way the plugin would (stdout a drained pipe, stdin /dev/null). */
function bare(dir: string, params: Record<string, unknown>): Promise<Timed> {
  fs.mkdirSync(dir, { recursive: true });
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [TRAIN_TORCH], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', OMP_NUM_THREADS: '1', EXPERIMENT_CHECKPOINT_DIR: dir, EXPERIMENT_PARAMS: JSON.stringify(params), EXPERIMENT_ATTEMPT: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`pytorch: bare train_torch.py exited ${code}: ${stderr.slice(-500)}`));
      else {
        try {
          resolve(parseDone(stderr, 'bare run'));
        } catch (err) {
          reject(err as Error);
        }
      }
    });
  });
}

interface Rep {
  rep: number;
  order: string;
  bareStepsPerSec: number;
  pluginStepsPerSec: number;
  ratio: number;
  cpuRatio: number;
  bareSeconds: number;
  pluginSeconds: number;
  bareCpuSeconds: number;
  pluginCpuSeconds: number;
  steps: number;
  sameModel: boolean;
}

export async function pytorch(env: BenchEnv, opts: PytorchOptions = PYTORCH_DEFAULTS): Promise<Figure[]> {
  const taskQueue = env.uniqueName('pytorch');
  const w = await startWorker(env.h, { taskQueue, programs: ProgramRegistry.fromFile(PROGRAMS_FILE) });
  const plugin = async (label: string, params: Record<string, unknown>): Promise<Timed> => {
    const sessionId = env.uniqueName(label);
    const summary = await (await w.client.startSession({ sessionId, experiments: [{ id: 'e', trainer: 'command', params: { program: 'digits-torch', params } }] })).result();
    const e = summary.experiments[0];
    if (e.state !== 'completed') throw new Error(`pytorch: ${sessionId} ended ${e.state}: ${e.reason}`);
    const line = env.logs().find((l: LogLine) => l.workflowId === `${sessionId}:e` && l.stream === 'stderr' && DONE.test(String(l.line)));
    return parseDone(String(line?.line ?? ''), `plugin run ${sessionId}`);
  };
  const series = async (label: string, params: Record<string, unknown>, reps: number): Promise<Rep[]> => {
    const runs: Rep[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const bareFirst = rep % 2 === 0;
      const bareDir = path.join(env.tmp, `${label}-bare-${rep}`);
      let b: Timed | undefined;
      if (bareFirst) b = await bare(bareDir, params);
      const p = await plugin(label, params);
      if (!bareFirst) b = await bare(bareDir, params);
      b = b!;
      fs.rmSync(bareDir, { recursive: true, force: true });
      const ratio = p.stepsPerSec / b.stepsPerSec;
      runs.push({
        rep,
        order: bareFirst ? 'bare,plugin' : 'plugin,bare',
        bareStepsPerSec: Math.round(b.stepsPerSec),
        pluginStepsPerSec: Math.round(p.stepsPerSec),
        ratio,
        cpuRatio: b.cpuSeconds / p.cpuSeconds,
        bareSeconds: b.seconds,
        pluginSeconds: p.seconds,
        bareCpuSeconds: b.cpuSeconds,
        pluginCpuSeconds: p.cpuSeconds,
        steps: p.steps,
        sameModel: p.sha === b.sha,
      });
      progress(`${label} rep ${rep + 1}/${reps}: bare ${Math.round(b.stepsPerSec)} steps/s, plugin ${Math.round(p.stepsPerSec)} steps/s, ratio ${fmt(ratio)} (CPU-time ratio ${fmt(b.cpuSeconds / p.cpuSeconds)}), same model ${p.sha === b.sha}`);
    }
    return runs;
  };
  const same = (runs: readonly Rep[]) => (runs.every((r) => r.sameModel) ? "every plugin run ended with the bare run's modelSha256" : 'WARNING: a plugin run ended with another modelSha256 than the bare run');
  const baseline = (runs: readonly Rep[]) => ({ what: 'train_torch.py spawned bare, same params, same run', value: spread(runs.map((r) => r.bareStepsPerSec)).median, unit: 'steps/s' });
  try {
    progress(`pytorch: ${JSON.stringify(opts.params)}, warming up (page cache, torch import)`);
    await bare(path.join(env.tmp, 'pytorch-bare-warm'), opts.params);
    await plugin('pytorch-warm', opts.params);
    const runs = await series('pytorch', opts.params, opts.reps);
    const epochEnd = await series('pytorch-epoch-end', EPOCH_END, opts.epochEndReps);
    const dense = await series('pytorch-dense', DENSE, opts.denseReps);
    return [
      figure({
        name: 'pytorch-overhead',
        values: runs.map((r) => r.ratio),
        unit: '×',
        goal: { op: '>=', value: 0.97 },
        baseline: baseline(runs),
        runs,
        notes: `steps/s timed by train_torch.py around its training loop (checkpoints and validation included, interpreter start and imports not); params ${JSON.stringify(opts.params)}: a checkpoint every ${String(opts.params.checkpoint_seconds)} s of training and at the end; ${same(runs)}`,
      }),
      figure({
        name: 'pytorch-overhead:ratio-of-medians',
        values: [spread(runs.map((r) => r.pluginStepsPerSec)).median / spread(runs.map((r) => r.bareStepsPerSec)).median],
        unit: '×',
        goal: null,
        baseline: baseline(runs),
        runs: [],
        extra: true,
        notes: 'median plugin steps/s ÷ median bare steps/s over the same repetitions: a second estimator, less sensitive to one slow second landing on one side of a pair',
      }),
      figure({
        name: 'pytorch-overhead:cpu-time',
        values: runs.map((r) => r.cpuRatio),
        unit: '×',
        goal: { op: '>=', value: 0.97 },
        baseline: { what: 'train_torch.py spawned bare: CPU time of its training loop' },
        runs: runs.map((r) => ({ rep: r.rep, bareCpuSeconds: r.bareCpuSeconds, pluginCpuSeconds: r.pluginCpuSeconds })),
        extra: true,
        notes: "the same runs in the child's own CPU time (time.process_time): what the plugin costs the training process itself, insensitive to other processes taking the CPU",
      }),
      figure({
        name: 'pytorch-overhead:checkpoint-every-epoch-end',
        values: epochEnd.map((r) => r.ratio),
        unit: '×',
        goal: null,
        baseline: baseline(epochEnd),
        runs: epochEnd,
        extra: true,
        notes: `params ${JSON.stringify(EPOCH_END)}: a checkpoint at every epoch end, one every ~15–25 ms of training (the headline until 2026-12-02, 0.92–0.98 there): the worker's CPU for adopting ~50 checkpoints a second (hash, fsyncs, manifest, history point, heartbeat) competes with training on the 2 cores; ${same(epochEnd)}`,
      }),
      figure({
        name: 'pytorch-overhead:checkpoint-every-10-steps',
        values: dense.map((r) => r.ratio),
        unit: '×',
        goal: null,
        baseline: baseline(dense),
        runs: dense,
        extra: true,
        notes: `params ${JSON.stringify(DENSE)}: a checkpoint every ~10 ms of training (the example's test setting), so the plugin's adoption of each file (hash, fsyncs, manifest) competes with training for the 2 cores; ${same(dense)}`,
      }),
    ];
  } finally {
    await w.stop();
  }
}
