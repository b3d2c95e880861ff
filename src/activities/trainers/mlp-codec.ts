/**
 * The `mlp` trainer's checkpoint format: what a checkpoint restores (position, weights, Adam
 * moments), bound to the params that fix the model and the dataset. Pure: bytes in, bytes out.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { describe } from '../../shared/ids';
import { CLASSES, DIMS, paramCount, received, stepsPerEpoch, type MlpParams } from './mlp-params';

/** Where training stands: what a checkpoint restores. */
export interface Position {
  readonly epoch: number;
  readonly step: number;
  readonly t: number;
}

export interface MlpCheckpointState extends Position {
  readonly theta: Float64Array;
  readonly m: Float64Array;
  readonly v: Float64Array;
}

// Layout (all integers little-endian):
//   8 bytes  magic "MLPCKPT\n"
//   4 bytes  uint32 length L of the header
//   L bytes  UTF-8 JSON header (see CheckpointHeader)
//   3 × P × 8 bytes  float64 LE: weights, Adam m, Adam v, where P = paramCount(hidden)
// The length must match exactly; anything else is rejected as corrupt or truncated.

const MAGIC = Buffer.from('MLPCKPT\n', 'latin1');
const FORMAT = 'temporal-experiments/mlp';
const FORMAT_VERSION = 1;
const MAX_HEADER_BYTES = 64 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The params a checkpoint is bound to: those that fix the model shape, the dataset and what a
 * step index means. `epochs`, `lr` and `stepDelayMs` are left out on purpose so a run can be
 * continued for longer, or with another learning rate, from an earlier experiment's checkpoint.
 */
type BoundParams = Pick<MlpParams, 'hidden' | 'samples' | 'seed' | 'batchSize'>;
const BOUND_KEYS = ['hidden', 'samples', 'seed', 'batchSize'] as const;

interface CheckpointHeader extends BoundParams, Position {
  readonly format: string;
  readonly version: number;
  readonly dims: number;
  readonly classes: number;
  readonly fingerprint: string;
}

function fingerprint(params: BoundParams): string {
  const canonical = JSON.stringify([FORMAT, FORMAT_VERSION, DIMS, CLASSES, ...BOUND_KEYS.map((k) => params[k])]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

/** The array's bytes as float64 little-endian (the model hash reads them too). */
export function float64Bytes(arr: Float64Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  const out = Buffer.allocUnsafe(arr.length * 8);
  for (let i = 0; i < arr.length; i++) out.writeDoubleLE(arr[i], i * 8);
  return out;
}

function readFloat64(buf: Uint8Array, offset: number, count: number): Float64Array {
  const out = new Float64Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(buf.subarray(offset, offset + count * 8));
  } else {
    const view = new DataView(buf.buffer, buf.byteOffset + offset, count * 8);
    for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
  }
  return out;
}

export function encodeMlpCheckpoint(params: MlpParams, pos: Position, arrays: readonly Float64Array[]): Buffer {
  const header: CheckpointHeader = {
    format: FORMAT,
    version: FORMAT_VERSION,
    dims: DIMS,
    classes: CLASSES,
    hidden: params.hidden,
    samples: params.samples,
    seed: params.seed,
    batchSize: params.batchSize,
    fingerprint: fingerprint(params),
    epoch: pos.epoch,
    step: pos.step,
    t: pos.t,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(json.length, MAGIC.length);
  // Copied, not referenced: training mutates the arrays as soon as the checkpoint call returns.
  return Buffer.concat([prefix, json, ...arrays.map(float64Bytes)]);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Decodes and validates an `mlp` checkpoint for the given params. Throws an Error starting with
 * `mlp checkpoint:` when the bytes are not one, are truncated or damaged, belong to other params,
 * or lie beyond `params.epochs`.
 */
export function decodeMlpCheckpoint(data: Uint8Array, params: MlpParams): MlpCheckpointState {
  const fail = (why: string): never => {
    throw new Error(`mlp checkpoint: ${why}`);
  };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < MAGIC.length + 4) fail(`expected at least ${MAGIC.length + 4} bytes, received ${buf.length} (truncated?)`);
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) fail('not an mlp checkpoint (bad magic bytes)');
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  if (headerLength > MAX_HEADER_BYTES || headerStart + headerLength > buf.length) {
    fail(`header length ${headerLength} does not fit in ${buf.length} bytes (truncated or corrupt)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', headerStart, headerStart + headerLength));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object') fail('header is not a JSON object');
  const header = parsed as Partial<Record<keyof CheckpointHeader, unknown>>;
  if (header.format !== FORMAT) fail(`expected format ${JSON.stringify(FORMAT)}, received ${describe(header.format)}`);
  if (header.version !== FORMAT_VERSION) fail(`expected format version ${FORMAT_VERSION}, received ${describe(header.version)}`);
  if (header.dims !== DIMS || header.classes !== CLASSES) {
    fail(`expected ${DIMS} inputs and ${CLASSES} classes, received ${describe(header.dims)} and ${describe(header.classes)}`);
  }
  for (const key of BOUND_KEYS) {
    if (header[key] !== params[key]) {
      fail(`made with params.${key} = ${received(header[key])}, but this run has params.${key} = ${params[key]}; resume only with the same hidden, samples, seed and batchSize`);
    }
  }
  if (header.fingerprint !== fingerprint(params)) fail(`params fingerprint mismatch (expected ${fingerprint(params)}, received ${describe(header.fingerprint)})`);
  const { epoch, step, t } = header;
  if (!isNonNegativeInteger(epoch) || !isNonNegativeInteger(step) || !isNonNegativeInteger(t)) {
    fail(`expected non-negative integers epoch, step and t, received ${received(epoch)}, ${received(step)} and ${received(t)}`);
  }
  const perEpoch = stepsPerEpoch(params);
  const e = epoch as number;
  const s = step as number;
  if (s > perEpoch) fail(`step ${s} is beyond the ${perEpoch} steps of an epoch`);
  if (e > params.epochs || (e === params.epochs && s > 0)) {
    fail(`it is at epoch ${e} step ${s}, beyond params.epochs = ${params.epochs}`);
  }
  if (t !== e * perEpoch + s) fail(`Adam step count ${received(t)} disagrees with epoch ${e} step ${s}`);
  const count = paramCount(params.hidden);
  const bodyStart = headerStart + headerLength;
  const expected = bodyStart + 3 * count * 8;
  if (buf.length !== expected) {
    fail(`expected ${expected} bytes for hidden = ${params.hidden}, received ${buf.length} (${buf.length < expected ? 'truncated' : 'trailing bytes'})`);
  }
  const [theta, m, v] = [0, 1, 2].map((n) => readFloat64(buf, bodyStart + n * count * 8, count));
  for (let i = 0; i < count; i++) {
    if (!Number.isFinite(theta[i]) || !Number.isFinite(m[i]) || !(v[i] >= 0 && v[i] < Infinity)) {
      fail(`value ${i} of the weights or Adam moments is not finite (corrupt)`);
    }
  }
  return { epoch: e, step: s, t: t as number, theta, m, v };
}
