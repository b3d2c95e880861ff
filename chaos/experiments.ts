/**
 * The experiments of a chaos run, as plain data: which trainer, which params, bounded or
 * long-running. Pure and seeded like the fault schedule. Each experiment is sized so that the
 * whole set keeps the workers busy for the fault period: `trainMs` is the uninterrupted training
 * time one experiment aims at, and epochs are about `epochMs` long, one checkpoint per epoch.
 * The harness turns these into specs (the Python one needs paths on this machine).
 */
import { mulberry32 } from '../bench/lib/stats';

export type ChaosTrainer = 'mlp' | 'python';

export interface ChaosExperiment {
  readonly id: string;
  readonly trainer: ChaosTrainer;
  /** Needs the session's approval; runs with no time limit. */
  readonly longRunning: boolean;
  /** The trainer's own params (mlp params, or train.py's EXPERIMENT_PARAMS). */
  readonly params: Readonly<Record<string, number>>;
  /** Optimisation steps per epoch, for positions in epochs (epoch + step / stepsPerEpoch). */
  readonly stepsPerEpoch: number;
  readonly epochs: number;
}

export interface ExperimentSetOptions {
  readonly seed: number;
  /** Experiments in all. */
  readonly count: number;
  /** Of them, on the Python reference trainer through `command`. */
  readonly python: number;
  /** Of them, approved long-running (the others are bounded). */
  readonly longRunning: number;
  /** Uninterrupted training time one experiment aims at, in milliseconds. */
  readonly trainMs: number;
  /** Length of one epoch (the checkpoint interval), in milliseconds. @default 2000 */
  readonly epochMs?: number;
}

export function experimentSet(o: ExperimentSetOptions): ChaosExperiment[] {
  if (o.python + o.longRunning > o.count) {
    throw new Error(`experiments: expected python (${o.python}) + longRunning (${o.longRunning}) <= count (${o.count})`);
  }
  const random = mulberry32(o.seed ^ 0x5eed);
  const epochMs = o.epochMs ?? 2000;
  const out: ChaosExperiment[] = [];
  let longLeft = o.longRunning;
  for (let i = 0; i < o.count; i++) {
    // Python ones first (every second one long-running), then mlp: long-running until the quota is met, then bounded.
    const trainer: ChaosTrainer = i < o.python ? 'python' : 'mlp';
    const longRunning = longLeft > 0 && (trainer === 'mlp' || i % 2 === 1);
    if (longRunning) longLeft--;
    const jitter = 0.75 + random() * 0.5;
    const epochs = Math.max(3, Math.round((o.trainMs * jitter) / epochMs));
    const seed = 1 + Math.floor(random() * 1_000_000);
    if (trainer === 'mlp') {
      const samples = 256 + 64 * Math.floor(random() * 5); // 256..512
      const batchSize = 32;
      const stepsPerEpoch = Math.ceil(samples / batchSize);
      const params = { epochs, samples, batchSize, seed, hidden: 16, stepDelayMs: Math.round(epochMs / stepsPerEpoch) };
      out.push({ id: `mlp-${String(i).padStart(2, '0')}`, trainer, longRunning, params, stepsPerEpoch, epochs });
    } else {
      const samples = 160 + 40 * Math.floor(random() * 3); // 160..240
      const batchSize = 20;
      const stepsPerEpoch = Math.ceil(samples / batchSize);
      const params = { epochs, samples, batch_size: batchSize, seed, step_delay: epochMs / stepsPerEpoch / 1000 };
      out.push({ id: `py-${String(i).padStart(2, '0')}`, trainer, longRunning, params, stepsPerEpoch, epochs });
    }
  }
  return out;
}

/** Params that change the trained bits: a step delay only changes how long it takes. */
export function referenceParams(e: ChaosExperiment): Record<string, number> {
  const { stepDelayMs: _mlpDelay, step_delay: _pyDelay, ...rest } = e.params as Record<string, number>;
  return rest;
}
