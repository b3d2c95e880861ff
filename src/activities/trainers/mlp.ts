/**
 * The built-in `mlp` trainer: a one-hidden-layer tanh network with softmax cross-entropy and
 * mini-batch Adam, trained on a seeded synthetic dataset, all in plain TypeScript.
 *
 * It exists to exercise the plugin end to end with a real training loop whose result can be
 * checked exactly: a run interrupted at any step and resumed from its checkpoint must end with
 * bit-identical weights (the same `modelSha256`) as a run that was never interrupted. Everything
 * here therefore avoids hidden state: the dataset and the initial weights are regenerated from
 * the seed, and each epoch's shuffle comes from a fresh PRNG seeded by (seed, epoch), so the only
 * state that has to travel in a checkpoint is the position, the weights and the Adam moments.
 *
 * Params live in mlp-params.ts and the checkpoint codec in mlp-codec.ts; the activity runtime
 * that drives `train` lives elsewhere.
 */
import { createHash } from 'node:crypto';
import type { Trainer, TrainerContext, TrainerResultInput } from '../trainer';
import { decodeMlpCheckpoint, encodeMlpCheckpoint, float64Bytes, type MlpCheckpointState } from './mlp-codec';
import { CLASSES, DIMS, paramCount, parseMlpParams, stepsPerEpoch, type MlpParams } from './mlp-params';

export { decodeMlpCheckpoint, type MlpCheckpointState } from './mlp-codec';
export { MLP_DEFAULTS, MLP_LIMITS, parseMlpParams, stepsPerEpoch, type MlpParams } from './mlp-params';

/** Distance of each blob centre from the origin, in units of the blob's standard deviation. */
const BLOB_OFFSET = 2.5;

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Purposes a seed is derived for; distinct so the streams never overlap. */
const Stream = { Data: 1, Init: 2, Shuffle: 3 } as const;
type Stream = (typeof Stream)[keyof typeof Stream];

/**
 * A 32-bit seed for one purpose (and one epoch). Derived rather than drawn from a running
 * generator, so a resumed run can recompute it without the generator's history.
 */
function deriveSeed(seed: number, stream: Stream, index: number): number {
  const big = BigInt(seed);
  const lo = Number(BigInt.asUintN(32, big));
  const hi = Number(BigInt.asUintN(32, big >> 32n));
  let h = 0x9e3779b9;
  for (const part of [lo, hi, stream, index]) h = fmix32((h ^ part) + 0x6d2b79f5);
  return h;
}

/** mulberry32: tiny, fast, and good enough for shuffles and synthetic data. */
class Prng {
  private state: number;
  private spare = NaN;

  constructor(seed: number) {
    this.state = seed | 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  gaussian(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

// ---------------------------------------------------------------------------------------------
// Dataset

interface Dataset {
  readonly x: Float64Array; // samples × DIMS, row-major
  readonly y: Uint8Array;
}

/**
 * Each class is two Gaussian blobs on opposite sides of the origin along its own axis, so every
 * class has mean zero: no linear classifier beats chance and the hidden layer has real work.
 */
function makeDataset(samples: number, seed: number): Dataset {
  const rng = new Prng(deriveSeed(seed, Stream.Data, 0));
  const x = new Float64Array(samples * DIMS);
  const y = new Uint8Array(samples);
  for (let i = 0; i < samples; i++) {
    const label = i % CLASSES;
    const side = rng.next() < 0.5 ? -1 : 1;
    y[i] = label;
    for (let d = 0; d < DIMS; d++) x[i * DIMS + d] = rng.gaussian() + (d === label ? side * BLOB_OFFSET : 0);
  }
  return { x, y };
}

// ---------------------------------------------------------------------------------------------
// Model


/**
 * The network, its optimiser state and its position in the schedule. `train` and `runMlpBare`
 * both drive this class, so the benchmark baseline runs exactly the arithmetic the trainer does.
 */
class MlpRun {
  readonly stepsPerEpoch: number;
  epoch = 0;
  step = 0;
  /** Adam's step counter across all epochs (drives bias correction). */
  t = 0;

  // All parameters in one vector, laid out W1 (hidden × DIMS), b1, W2 (CLASSES × hidden), b2,
  // so Adam is one loop and the model hash has one fixed byte order.
  readonly theta: Float64Array;
  readonly m: Float64Array;
  readonly v: Float64Array;
  private readonly grad: Float64Array;
  private readonly b1: number;
  private readonly w2: number;
  private readonly b2: number;

  private readonly data: Dataset;
  private readonly perm: Uint32Array;
  private permEpoch = -1;
  // Scratch for one sample, reused so the inner loop allocates nothing.
  private readonly h: Float64Array;
  private readonly p: Float64Array;
  private readonly dh: Float64Array;

  constructor(
    readonly params: MlpParams,
    restored?: MlpCheckpointState,
  ) {
    const { hidden, samples } = params;
    const size = paramCount(hidden);
    this.stepsPerEpoch = stepsPerEpoch(params);
    this.b1 = hidden * DIMS;
    this.w2 = this.b1 + hidden;
    this.b2 = this.w2 + CLASSES * hidden;
    this.grad = new Float64Array(size);
    this.data = makeDataset(samples, params.seed);
    this.perm = new Uint32Array(samples);
    this.h = new Float64Array(hidden);
    this.p = new Float64Array(CLASSES);
    this.dh = new Float64Array(hidden);
    if (restored) {
      this.theta = restored.theta;
      this.m = restored.m;
      this.v = restored.v;
      this.epoch = restored.epoch;
      this.step = restored.step;
      this.t = restored.t;
    } else {
      this.theta = new Float64Array(size);
      this.m = new Float64Array(size);
      this.v = new Float64Array(size);
      this.initWeights();
    }
  }

  /** Glorot-uniform weights, zero biases. */
  private initWeights(): void {
    const { hidden } = this.params;
    const rng = new Prng(deriveSeed(this.params.seed, Stream.Init, 0));
    const a1 = Math.sqrt(6 / (DIMS + hidden));
    for (let i = 0; i < this.b1; i++) this.theta[i] = (2 * rng.next() - 1) * a1;
    const a2 = Math.sqrt(6 / (hidden + CLASSES));
    for (let i = this.w2; i < this.b2; i++) this.theta[i] = (2 * rng.next() - 1) * a2;
  }

  get done(): boolean {
    return this.epoch >= this.params.epochs;
  }

  get epochFinished(): boolean {
    return this.step >= this.stepsPerEpoch;
  }

  private ensurePermutation(): void {
    if (this.permEpoch === this.epoch) return;
    const perm = this.perm;
    for (let i = 0; i < perm.length; i++) perm[i] = i;
    const rng = new Prng(deriveSeed(this.params.seed, Stream.Shuffle, this.epoch));
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const tmp = perm[i];
      perm[i] = perm[j];
      perm[j] = tmp;
    }
    this.permEpoch = this.epoch;
  }

  /** Forward pass for one sample: fills `h` and `p` (probabilities) and returns its loss. */
  private forward(i: number): number {
    const { theta, h, p, b1, w2, b2 } = this;
    const x = this.data.x;
    const hidden = h.length;
    const xo = i * DIMS;
    for (let j = 0; j < hidden; j++) {
      let a = theta[b1 + j];
      const row = j * DIMS;
      for (let d = 0; d < DIMS; d++) a += theta[row + d] * x[xo + d];
      h[j] = Math.tanh(a);
    }
    let max = -Infinity;
    for (let k = 0; k < CLASSES; k++) {
      let z = theta[b2 + k];
      const row = w2 + k * hidden;
      for (let j = 0; j < hidden; j++) z += theta[row + j] * h[j];
      p[k] = z;
      if (z > max) max = z;
    }
    const zy = p[this.data.y[i]];
    let sum = 0;
    for (let k = 0; k < CLASSES; k++) {
      const e = Math.exp(p[k] - max);
      p[k] = e;
      sum += e;
    }
    for (let k = 0; k < CLASSES; k++) p[k] /= sum;
    // Computed from the logits rather than log(p[y]) so it stays finite when p[y] underflows.
    return Math.log(sum) - (zy - max);
  }

  /** Adds this sample's gradient, scaled by `scale`, to `grad`. Needs `forward(i)` just before. */
  private backward(i: number, scale: number): void {
    const { theta, grad, h, p, dh, b1, w2, b2 } = this;
    const x = this.data.x;
    const hidden = h.length;
    const label = this.data.y[i];
    dh.fill(0);
    for (let k = 0; k < CLASSES; k++) {
      const dz = (p[k] - (k === label ? 1 : 0)) * scale;
      grad[b2 + k] += dz;
      const row = w2 + k * hidden;
      for (let j = 0; j < hidden; j++) {
        grad[row + j] += dz * h[j];
        dh[j] += theta[row + j] * dz;
      }
    }
    const xo = i * DIMS;
    for (let j = 0; j < hidden; j++) {
      const da = dh[j] * (1 - h[j] * h[j]);
      grad[b1 + j] += da;
      const row = j * DIMS;
      for (let d = 0; d < DIMS; d++) grad[row + d] += da * x[xo + d];
    }
  }

  /** One mini-batch Adam step at the current position; returns the batch's mean loss. */
  trainStep(): number {
    this.ensurePermutation();
    const { batchSize, samples, lr } = this.params;
    const start = this.step * batchSize;
    const end = Math.min(start + batchSize, samples);
    const scale = 1 / (end - start);
    const { grad, theta, m, v } = this;
    grad.fill(0);
    let loss = 0;
    for (let b = start; b < end; b++) {
      const i = this.perm[b];
      loss += this.forward(i);
      this.backward(i, scale);
    }
    this.t += 1;
    const c1 = 1 - Math.pow(BETA1, this.t);
    const c2 = 1 - Math.pow(BETA2, this.t);
    for (let q = 0; q < theta.length; q++) {
      const g = grad[q];
      const mq = BETA1 * m[q] + (1 - BETA1) * g;
      const vq = BETA2 * v[q] + (1 - BETA2) * g * g;
      m[q] = mq;
      v[q] = vq;
      theta[q] -= (lr * (mq / c1)) / (Math.sqrt(vq / c2) + EPSILON);
    }
    this.step += 1;
    return loss * scale;
  }

  nextEpoch(): void {
    this.epoch += 1;
    this.step = 0;
  }

  /** Mean loss and accuracy over the whole training set with the current weights. */
  evaluate(): { loss: number; accuracy: number } {
    const { p } = this;
    const { y } = this.data;
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < y.length; i++) {
      loss += this.forward(i);
      let best = 0;
      for (let k = 1; k < CLASSES; k++) if (p[k] > p[best]) best = k;
      if (best === y[i]) correct++;
    }
    return { loss: loss / y.length, accuracy: correct / y.length };
  }

  /** sha256 of the weights alone (not the Adam moments), as little-endian float64 in layout order. */
  modelSha256(): string {
    return createHash('sha256').update(float64Bytes(this.theta)).digest('hex');
  }

  encode(): Buffer {
    return encodeMlpCheckpoint(this.params, this, [this.theta, this.m, this.v]);
  }
}

// ---------------------------------------------------------------------------------------------
// Trainer

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function result(run: MlpRun): TrainerResultInput {
  const { loss, accuracy } = run.evaluate();
  return { finalLoss: loss, accuracy, modelSha256: run.modelSha256(), metrics: { loss, accuracy } };
}

async function train(ctx: TrainerContext<MlpParams>): Promise<TrainerResultInput | undefined> {
  const { params } = ctx;
  ctx.setEpochs(params.epochs);
  let run: MlpRun;
  if (ctx.resume) {
    const restored = decodeMlpCheckpoint(ctx.resume.data, params);
    const { pointer } = ctx.resume;
    if (pointer.epoch !== restored.epoch || pointer.step !== restored.step) {
      throw new Error(
        `mlp checkpoint: pointer ${pointer.checkpointId} says epoch ${pointer.epoch} step ${pointer.step}, but its data is at epoch ${restored.epoch} step ${restored.step}`,
      );
    }
    run = new MlpRun(params, restored);
    ctx.log.info({ epoch: run.epoch, step: run.step, checkpointId: pointer.checkpointId }, 'mlp: resuming from checkpoint');
  } else {
    run = new MlpRun(params);
  }

  while (!run.done) {
    // Epoch metrics are the mean minibatch loss of the steps run in this epoch: free, unlike a
    // full pass over the data set, which would cost as much as the training itself on small
    // models. The full evaluation is done once, for the final result, as in the bare loop.
    let lossSum = 0;
    let steps = 0;
    while (!run.epochFinished) {
      const loss = run.trainStep();
      lossSum += loss;
      steps++;
      if (params.stepDelayMs > 0) await sleep(params.stepDelayMs);
      await ctx.step({ epoch: run.epoch, step: run.step, metrics: { loss } });
      if (ctx.interrupted) {
        await ctx.checkpoint({ epoch: run.epoch, step: run.step, data: run.encode(), metrics: { loss } });
        return undefined;
      }
    }
    run.nextEpoch();
    const metrics: Record<string, number> = steps > 0 ? { loss: lossSum / steps } : {};
    // encode() returns a fresh buffer, so the next epoch trains while this one is persisted.
    await ctx.checkpointInBackground({ epoch: run.epoch, step: 0, data: run.encode(), metrics });
    // The state just saved is as good as an interruption checkpoint (the runtime waits for its
    // persist before the attempt ends), so stop without another step.
    if (ctx.interrupted && !run.done) return undefined;
  }
  return result(run);
}

export const mlpTrainer: Trainer<MlpParams> = {
  name: 'mlp',
  parseParams: parseMlpParams,
  metrics: ['loss'],
  epochs: (params) => params.epochs,
  totalSteps: (params) => params.epochs * stepsPerEpoch(params),
  train,
};

/**
 * Runs the same training with no context: no checkpoints, no yields, no step delay. This is the
 * benchmark baseline for the cost the runtime adds around an identical loop.
 */
export function runMlpBare(params: MlpParams): { modelSha256: string; finalLoss: number; accuracy: number; steps: number } {
  const run = new MlpRun(params);
  let steps = 0;
  while (!run.done) {
    while (!run.epochFinished) {
      run.trainStep();
      steps++;
    }
    run.nextEpoch();
  }
  const { loss, accuracy } = run.evaluate();
  return { modelSha256: run.modelSha256(), finalLoss: loss, accuracy, steps };
}
