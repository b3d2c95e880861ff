/**
 * The `mlp` trainer's params: their types, defaults and limits, their validation, and the model
 * shape they fix (inputs, classes, parameter count, steps per epoch).
 */
import { describe } from '../../shared/ids';

export interface MlpParams {
  /** Passes over the dataset. */
  readonly epochs: number;
  /** Samples per optimisation step; the last batch of an epoch may be smaller. */
  readonly batchSize: number;
  /** Adam learning rate. */
  readonly lr: number;
  /** Width of the hidden layer. */
  readonly hidden: number;
  /** Size of the synthetic dataset. */
  readonly samples: number;
  /** Seeds the dataset, the initial weights and every epoch's shuffle. */
  readonly seed: number;
  /** Pause after every step, so tests can stop a worker in the middle of an epoch. */
  readonly stepDelayMs: number;
}

export const MLP_DEFAULTS: MlpParams = {
  epochs: 5,
  batchSize: 32,
  lr: 0.01,
  hidden: 16,
  samples: 512,
  seed: 42,
  stepDelayMs: 0,
};

/** Upper bounds keep a typo (an extra zero or three) from allocating gigabytes or running for days. */
export const MLP_LIMITS = {
  epochs: 100_000,
  batchSize: 1_000_000,
  hidden: 4096,
  samples: 1_000_000,
  stepDelayMs: 60_000,
} as const;

/** Input features; the last one carries no signal, so the network has to learn to ignore it. */
export const DIMS = 4;
export const CLASSES = 3;

const PARAM_KEYS = Object.keys(MLP_DEFAULTS) as (keyof MlpParams)[];

export function received(value: unknown): string {
  // Numbers print bare so the message reads like the input (`received -1`, `received 2.5`).
  return typeof value === 'number' ? String(value) : describe(value);
}

function integerParam(obj: Record<string, unknown>, key: keyof MlpParams, min: number, max: number): number {
  const value = obj[key];
  if (value === undefined) return MLP_DEFAULTS[key];
  const positive = min > 0;
  const kind = positive ? 'a positive integer' : 'an integer';
  if (typeof value !== 'number' || !Number.isInteger(value) || (positive && value < min)) {
    throw new Error(`params.${key}: expected ${kind}, received ${received(value)}`);
  }
  if (value < min || value > max) {
    const range = positive ? `of at most ${max}` : `between ${min} and ${max}`;
    throw new Error(`params.${key}: expected ${kind} ${range}, received ${received(value)}`);
  }
  return value;
}

function numberParam(obj: Record<string, unknown>, key: keyof MlpParams, allowZero: boolean, max: number): number {
  const value = obj[key];
  if (value === undefined) return MLP_DEFAULTS[key];
  const kind = allowZero ? 'a non-negative number' : 'a positive number';
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw new Error(`params.${key}: expected ${kind}, received ${received(value)}`);
  }
  if (!Number.isFinite(value) || value > max) {
    const bound = Number.isFinite(max) ? ` of at most ${max}` : ' that is finite';
    throw new Error(`params.${key}: expected ${kind}${bound}, received ${received(value)}`);
  }
  return value;
}

/** Validates raw experiment params; `undefined` means all defaults. */
export function parseMlpParams(raw: unknown): MlpParams {
  if (raw === undefined) return { ...MLP_DEFAULTS };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`params: expected an object, received ${received(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(PARAM_KEYS as string[]).includes(key)) {
      throw new Error(`params.${key}: expected one of ${PARAM_KEYS.join(', ')}, received unknown key with value ${received(obj[key])}`);
    }
  }
  return {
    epochs: integerParam(obj, 'epochs', 1, MLP_LIMITS.epochs),
    batchSize: integerParam(obj, 'batchSize', 1, MLP_LIMITS.batchSize),
    lr: numberParam(obj, 'lr', false, Infinity),
    hidden: integerParam(obj, 'hidden', 1, MLP_LIMITS.hidden),
    samples: integerParam(obj, 'samples', 1, MLP_LIMITS.samples),
    seed: integerParam(obj, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    stepDelayMs: numberParam(obj, 'stepDelayMs', true, MLP_LIMITS.stepDelayMs),
  };
}

export function paramCount(hidden: number): number {
  return hidden * DIMS + hidden + CLASSES * hidden + CLASSES;
}

export function stepsPerEpoch(params: Pick<MlpParams, 'samples' | 'batchSize'>): number {
  return Math.ceil(params.samples / params.batchSize);
}
