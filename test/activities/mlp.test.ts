/**
 * Unit tests of the built-in `mlp` trainer's arithmetic, params validation and checkpoint codec.
 *
 * The context here is a small in-memory fake, so these tests can check exactness at every step
 * boundary in milliseconds. The real activity runtime (durable checkpoint store, heartbeats,
 * cancellation, worker crashes) drives this same trainer in the integration tests, which run
 * against a real Temporal server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import pino from 'pino';
import type { CheckpointData, CheckpointInput, ResumeState, StepReport, TrainerContext, TrainerResultInput } from '../../src/activities/trainer';
import type { CheckpointPointer, InterruptReason } from '../../src/shared/types';
import { decodeMlpCheckpoint, MLP_DEFAULTS, mlpTrainer, parseMlpParams, runMlpBare, stepsPerEpoch, type MlpParams } from '../../src/activities/trainers/mlp';

interface SavedCheckpoint {
  readonly pointer: CheckpointPointer;
  readonly data: Buffer;
}

async function collect(data: CheckpointData): Promise<Buffer> {
  if (data instanceof Uint8Array) return Buffer.from(data);
  const chunks: Uint8Array[] = [];
  for await (const chunk of data as AsyncIterable<Uint8Array>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

interface FakeOptions {
  readonly resume?: SavedCheckpoint;
  /** Become interrupted once this many steps have been reported. */
  readonly interruptAfterSteps?: number;
  /** Become interrupted while the n-th checkpoint (1-based) is being written. */
  readonly interruptAtCheckpoint?: number;
}

class FakeContext implements TrainerContext<MlpParams> {
  readonly experimentId = 'exp';
  readonly sessionId = 'session';
  readonly attempt = 1;
  readonly checkpointDir = tmpdir();
  readonly log = pino({ level: 'silent' });
  readonly resume: ResumeState | undefined;
  readonly interruption = new Promise<InterruptReason>(() => {});
  readonly signal = new AbortController().signal;
  readonly steps: StepReport[] = [];
  readonly checkpoints: SavedCheckpoint[] = [];
  epochs: number | undefined;
  private interruptedNow = false;

  constructor(
    readonly params: MlpParams,
    private readonly options: FakeOptions = {},
  ) {
    this.resume = options.resume;
  }

  get interrupted(): boolean {
    return this.interruptedNow;
  }

  get interruptReason(): InterruptReason | undefined {
    return this.interruptedNow ? 'worker-shutdown' : undefined;
  }

  setEpochs(epochs: number): void {
    this.epochs = epochs;
  }
  touch(): void {
    // The mlp trainer reports liveness through step(); nothing to record.
  }

  async step(report: StepReport): Promise<void> {
    this.steps.push(report);
    if (this.options.interruptAfterSteps !== undefined && this.steps.length >= this.options.interruptAfterSteps) this.interruptedNow = true;
  }

  async checkpoint(input: CheckpointInput): Promise<CheckpointPointer> {
    const data = await collect(input.data);
    const pointer: CheckpointPointer = {
      checkpointId: `ck-${this.checkpoints.length + 1}`,
      uri: 'memory://fake',
      epoch: input.epoch,
      step: input.step,
      sha256: createHash('sha256').update(data).digest('hex'),
      bytes: data.length,
      metrics: input.metrics ?? {},
      savedAt: new Date(0).toISOString(),
    };
    this.checkpoints.push({ pointer, data });
    if (this.checkpoints.length === this.options.interruptAtCheckpoint) this.interruptedNow = true;
    return pointer;
  }

  async checkpointInBackground(input: CheckpointInput & { data: Uint8Array }): Promise<void> {
    await this.checkpoint(input);
  }

  async adoptCheckpoint(): Promise<CheckpointPointer> {
    throw new Error('not used by the mlp trainer');
  }

  get latest(): SavedCheckpoint {
    const last = this.checkpoints.at(-1);
    assert.ok(last, 'expected at least one checkpoint');
    return last;
  }
}

async function train(params: MlpParams, options?: FakeOptions): Promise<{ ctx: FakeContext; result: TrainerResultInput | undefined }> {
  const ctx = new FakeContext(params, options);
  const result = await mlpTrainer.train(ctx);
  return { ctx, result };
}

/** Runs to completion, resuming from the latest checkpoint after each interruption point in turn. */
async function trainWithInterruptions(params: MlpParams, interruptAfter: readonly number[]): Promise<TrainerResultInput> {
  let resume: SavedCheckpoint | undefined;
  for (const n of interruptAfter) {
    const { ctx, result } = await train(params, { resume, interruptAfterSteps: n });
    assert.equal(result, undefined, `run interrupted after ${n} steps should return undefined`);
    resume = ctx.latest;
  }
  const { result } = await train(params, { resume });
  assert.ok(result);
  return result;
}

const params = (overrides: Partial<MlpParams> = {}): MlpParams => parseMlpParams({ ...overrides });

let reference: Promise<{ ctx: FakeContext; result: TrainerResultInput | undefined }> | undefined;
/** The uninterrupted default run, shared by the tests that compare against it. */
function uninterrupted(): Promise<{ ctx: FakeContext; result: TrainerResultInput | undefined }> {
  reference ??= train(params());
  return reference;
}

void test('same params give the same model; another seed gives another model', async () => {
  const a = await train(params());
  const b = await train(params());
  assert.ok(a.result?.modelSha256);
  assert.match(a.result.modelSha256, /^[0-9a-f]{64}$/);
  assert.equal(a.result.modelSha256, b.result?.modelSha256);
  assert.equal(a.result.finalLoss, b.result?.finalLoss);
  const c = await train(params({ seed: 43 }));
  assert.notEqual(c.result?.modelSha256, a.result.modelSha256);
});

void test('training reduces the loss and beats chance clearly', async () => {
  const { ctx, result } = await uninterrupted();
  assert.ok(result?.finalLoss !== undefined && result.accuracy !== undefined);
  const epochEnds = ctx.checkpoints.filter((c) => c.pointer.step === 0);
  assert.deepEqual(
    epochEnds.map((c) => c.pointer.epoch),
    [1, 2, 3, 4, 5],
  );
  const losses = epochEnds.map((c) => c.pointer.metrics.loss);
  assert.ok(losses.at(-1)! < losses[0], `loss should fall: ${losses.join(', ')}`);
  // Three balanced classes: chance is 1/3 accuracy and a loss of ln 3 ≈ 1.0986.
  assert.ok(result.finalLoss < 0.9, `final loss ${result.finalLoss}`);
  assert.ok(result.accuracy > 0.65, `accuracy ${result.accuracy}`);
  assert.equal(result.metrics?.accuracy, result.accuracy);
  assert.equal(result.metrics?.loss, result.finalLoss);
  assert.equal(ctx.epochs, 5);
  assert.equal(mlpTrainer.epochs?.(params({ epochs: 7 })), 7);
  assert.equal(mlpTrainer.name, 'mlp');
});

void test('step reports count steps done within the epoch', async () => {
  const { ctx } = await uninterrupted();
  const perEpoch = stepsPerEpoch(MLP_DEFAULTS);
  assert.equal(ctx.steps.length, perEpoch * 5);
  assert.deepEqual(ctx.steps[0], { epoch: 0, step: 1, metrics: ctx.steps[0].metrics });
  assert.deepEqual(
    { epoch: ctx.steps[perEpoch].epoch, step: ctx.steps[perEpoch].step },
    { epoch: 1, step: 1 },
  );
  assert.ok(ctx.steps.every((s) => Number.isFinite(s.metrics?.loss)));
});

void test('an interrupted run saves its position and resumes to the identical model', async () => {
  const expected = (await uninterrupted()).result?.modelSha256;
  const perEpoch = stepsPerEpoch(MLP_DEFAULTS);
  const cases: { name: string; after: number; epoch: number; step: number }[] = [
    { name: 'first step', after: 1, epoch: 0, step: 1 },
    { name: 'step 3 of epoch 1', after: perEpoch + 3, epoch: 1, step: 3 },
    { name: 'last step of epoch 0 (epoch boundary)', after: perEpoch, epoch: 0, step: perEpoch },
    { name: 'last step of the run', after: perEpoch * 5, epoch: 4, step: perEpoch },
  ];
  for (const c of cases) {
    const { ctx, result } = await train(params(), { interruptAfterSteps: c.after });
    assert.equal(result, undefined, c.name);
    assert.equal(ctx.steps.length, c.after, `${c.name}: stops right after the interrupted step`);
    const { pointer } = ctx.latest;
    assert.deepEqual({ epoch: pointer.epoch, step: pointer.step }, { epoch: c.epoch, step: c.step }, c.name);
    const resumed = await train(params(), { resume: ctx.latest });
    assert.equal(resumed.result?.modelSha256, expected, `${c.name}: resumed model differs`);
    assert.equal(resumed.ctx.steps.length, perEpoch * 5 - c.after, `${c.name}: resumed run repeats or skips steps`);
  }
});

void test('a chain of interruptions still ends with the identical model', async () => {
  const expected = (await uninterrupted()).result?.modelSha256;
  const perEpoch = stepsPerEpoch(MLP_DEFAULTS);
  // Interruption points count steps of each attempt, not of the whole run.
  assert.equal((await trainWithInterruptions(params(), [5, perEpoch + 2])).modelSha256, expected);
  assert.equal((await trainWithInterruptions(params(), [perEpoch, 1, 2 * perEpoch - 1])).modelSha256, expected);
});

void test('resuming after every single step is exact (uneven last batch)', async () => {
  // 100 samples in batches of 32: three full batches and one of 4.
  const p = params({ samples: 100, epochs: 3 });
  const perEpoch = stepsPerEpoch(p);
  assert.equal(perEpoch, 4);
  const expected = (await train(p)).result?.modelSha256;
  for (let after = 1; after <= perEpoch * 3; after++) {
    const { ctx } = await train(p, { interruptAfterSteps: after });
    const resumed = await train(p, { resume: ctx.latest });
    assert.equal(resumed.result?.modelSha256, expected, `interrupted after ${after} steps`);
  }
});

void test('resuming from any end-of-epoch checkpoint, not only the newest, is exact', async () => {
  const { ctx, result } = await uninterrupted();
  assert.equal(ctx.checkpoints.length, 5);
  for (const checkpoint of ctx.checkpoints) {
    const resumed = await train(params(), { resume: checkpoint });
    assert.equal(resumed.result?.modelSha256, result?.modelSha256, `from epoch ${checkpoint.pointer.epoch}`);
  }
});

void test('an interruption that arrives while an epoch-end checkpoint is written stops there', async () => {
  const expected = (await uninterrupted()).result?.modelSha256;
  const { ctx, result } = await train(params(), { interruptAtCheckpoint: 2 });
  assert.equal(result, undefined);
  assert.equal(ctx.checkpoints.length, 2, 'no extra checkpoint: the epoch-end one already holds the state');
  assert.deepEqual({ epoch: ctx.latest.pointer.epoch, step: ctx.latest.pointer.step }, { epoch: 2, step: 0 });
  assert.equal(ctx.steps.length, 2 * stepsPerEpoch(MLP_DEFAULTS));
  const resumed = await train(params(), { resume: ctx.latest });
  assert.equal(resumed.result?.modelSha256, expected);
});

void test('a checkpoint can be continued with more epochs or another lr', async () => {
  const { ctx } = await train(params({ epochs: 2 }));
  const longer = await train(params({ epochs: 4 }), { resume: ctx.latest });
  assert.equal(longer.result?.modelSha256, (await train(params({ epochs: 4 }))).result?.modelSha256);
  const otherLr = await train(params({ epochs: 3, lr: 0.001 }), { resume: ctx.latest });
  assert.ok(otherLr.result?.modelSha256);
});

void test('stepDelayMs slows steps down without changing the model', async () => {
  const p = params({ samples: 64, epochs: 1, stepDelayMs: 5 });
  const started = Date.now();
  const { result } = await train(p);
  assert.ok(Date.now() - started >= 2 * 4, 'two steps of at least ~5 ms each');
  assert.equal(result?.modelSha256, runMlpBare({ ...p, stepDelayMs: 0 }).modelSha256);
});

void test('runMlpBare runs the same arithmetic as train()', async () => {
  const { ctx, result } = await uninterrupted();
  const bare = runMlpBare(params());
  assert.equal(bare.modelSha256, result?.modelSha256);
  assert.equal(bare.finalLoss, result?.finalLoss);
  assert.equal(bare.accuracy, result?.accuracy);
  assert.equal(bare.steps, ctx.steps.length);
  const other = params({ hidden: 7, batchSize: 50, samples: 333, epochs: 2, seed: -12345678901 });
  assert.equal(runMlpBare(other).modelSha256, (await train(other)).result?.modelSha256);
});

void test('parseParams fills defaults and rejects bad values with the field and the received value', () => {
  assert.deepEqual(mlpTrainer.parseParams(undefined), MLP_DEFAULTS);
  assert.deepEqual(mlpTrainer.parseParams({}), MLP_DEFAULTS);
  assert.deepEqual(mlpTrainer.parseParams({ epochs: 2, lr: 0.5, seed: -3, stepDelayMs: 0 }), { ...MLP_DEFAULTS, epochs: 2, lr: 0.5, seed: -3 });

  const rejects: [unknown, RegExp][] = [
    [{ lr: -1 }, /Error: params\.lr: expected a positive number, received -1$/],
    [{ lr: 0 }, /params\.lr: .*positive.*received 0/],
    [{ lr: Infinity }, /params\.lr: .*finite.*received Infinity/],
    [{ lr: '0.1' }, /params\.lr: expected a positive number, received "0\.1"/],
    [{ epochs: 2.5 }, /Error: params\.epochs: expected a positive integer, received 2\.5$/],
    [{ epochs: 0 }, /params\.epochs: expected a positive integer, received 0/],
    [{ epochs: 100_001 }, /params\.epochs: expected a positive integer of at most 100000, received 100001/],
    [{ batchSize: 0 }, /params\.batchSize: expected a positive integer, received 0/],
    [{ batchSize: '32' }, /params\.batchSize: expected a positive integer, received "32"/],
    [{ hidden: 5000 }, /params\.hidden: .*at most 4096.*received 5000/],
    [{ hidden: null }, /params\.hidden: expected a positive integer, received null/],
    [{ samples: true }, /params\.samples: expected a positive integer, received .*true/],
    [{ samples: 2_000_000 }, /params\.samples: .*at most 1000000.*received 2000000/],
    [{ seed: 1.5 }, /params\.seed: expected an integer, received 1\.5/],
    [{ seed: 'abc' }, /params\.seed: expected an integer, received "abc"/],
    [{ seed: -(2 ** 60) }, /params\.seed: expected an integer between -9007199254740991 and 9007199254740991, received -1152921504606847000/],
    [{ stepDelayMs: -5 }, /params\.stepDelayMs: expected a non-negative number, received -5/],
    [{ learningRate: 0.1 }, /params\.learningRate: expected one of epochs, batchSize, lr, .*received .*0\.1/],
    [null, /params: expected an object, received null/],
    [[1, 2], /params: expected an object, received an array/],
  ];
  for (const [raw, message] of rejects) {
    assert.throws(() => mlpTrainer.parseParams(raw), message, JSON.stringify(raw));
  }
});

void test('checkpoints from other params, or damaged ones, are refused with a clear error', async () => {
  const small = params({ hidden: 8, epochs: 2 });
  const { ctx } = await train(small, { interruptAfterSteps: 3 });
  const good = ctx.latest;
  assert.equal(decodeMlpCheckpoint(good.data, small).step, 3);

  await assert.rejects(mlpTrainer.train(new FakeContext(params({ epochs: 2 }), { resume: good })), /mlp checkpoint: made with params\.hidden = 8, but this run has params\.hidden = 16/);
  assert.throws(() => decodeMlpCheckpoint(good.data, { ...small, seed: 7 }), /params\.seed/);
  assert.throws(() => decodeMlpCheckpoint(good.data, { ...small, batchSize: 16 }), /params\.batchSize/);

  // Truncated anywhere: in the prefix, the header, or the float data; and trailing junk.
  for (const length of [0, 5, 20, good.data.length - 8, good.data.length - 1]) {
    assert.throws(() => decodeMlpCheckpoint(good.data.subarray(0, length), small), /mlp checkpoint: .*(truncated|bytes)/, `length ${length}`);
  }
  assert.throws(() => decodeMlpCheckpoint(Buffer.concat([good.data, Buffer.alloc(8)]), small), /trailing bytes/);
  assert.throws(() => decodeMlpCheckpoint(Buffer.from('{"not":"a checkpoint"}'), small), /bad magic/);

  const flipped = Buffer.from(good.data);
  flipped.fill(0xff, flipped.length - 8); // a NaN in Adam's v
  assert.throws(() => decodeMlpCheckpoint(flipped, small), /not finite/);

  // An epoch-end checkpoint beyond a shorter run's last epoch.
  const finished = await train(small);
  assert.throws(() => decodeMlpCheckpoint(finished.ctx.latest.data, { ...small, epochs: 1 }), /beyond params\.epochs = 1/);

  // Data that disagrees with the pointer it came with.
  const mislabelled = { ...good, pointer: { ...good.pointer, step: 4 } };
  await assert.rejects(mlpTrainer.train(new FakeContext(small, { resume: mislabelled })), /pointer ck-\d+ says epoch 0 step 4/);
});
