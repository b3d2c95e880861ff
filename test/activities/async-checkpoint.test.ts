/**
 * Background checkpoints (ctx.checkpointInBackground, used by the mlp trainer at every epoch end),
 * against the real dev server and a real worker. The store is the real LocalCheckpointStore,
 * instrumented: each save is held for a while before its real durable write (a slow disk), and it
 * records when each checkpoint became durable. The worker's own heartbeats are observed through
 * an activity interceptor, which records each one as it is sent.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import { LocalCheckpointStore, type SaveCheckpointInput } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { ExperimentPlugin } from '../../src/plugin';
import type { Trainer } from '../../src/activities/trainer';
import type { CheckpointPointer, HeartbeatDetails } from '../../src/shared/types';
import { logLines, startHarness, uniqueQueue, waitFor, type Harness } from '../helpers/env';

class SlowStore extends LocalCheckpointStore {
  /** checkpointId → when its save resolved (durable and in the manifest). */
  readonly durable = new Map<string, number>();
  /** Saves started and not yet resolved, by position. */
  readonly inFlight = new Set<string>();
  readonly started: { epoch: number; step: number; at: number }[] = [];
  /** Most saves ever in flight at once. */
  maxInFlight = 0;
  holdMs = 600;
  /** A save of this position also waits for `release` (set by a test). */
  gate: { at: string; release: Promise<void> } | undefined;

  override async save(key: string, input: SaveCheckpointInput, keep: number): Promise<CheckpointPointer> {
    const at = `${input.epoch}/${input.step}`;
    this.inFlight.add(at);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size);
    this.started.push({ epoch: input.epoch, step: input.step, at: Date.now() });
    try {
      await sleep(this.holdMs);
      if (this.gate?.at === at) await this.gate.release;
      const pointer = await super.save(key, input, keep);
      this.durable.set(pointer.checkpointId, Date.now());
      return pointer;
    } finally {
      this.inFlight.delete(at);
    }
  }
}

interface Beat {
  at: number;
  details: HeartbeatDetails;
  /** Saves in flight when it was sent. */
  persisting: string[];
  /** Whether its pointer (if any) was durable when it was sent. */
  pointerDurable: boolean;
}

/**
 * Checkpoints a live state with `copy: true` and overwrites it as soon as each call resolved; then
 * makes three calls at once without awaiting them in turn.
 */
const copyProbe: Trainer<{ bytes: number }> = {
  name: 'copy-probe',
  parseParams: (raw) => raw as { bytes: number },
  async train(ctx) {
    const state = Buffer.alloc(ctx.params.bytes);
    for (let epoch = 1; epoch <= 2; epoch++) {
      state.fill(epoch);
      await ctx.checkpointInBackground({ epoch, step: 0, data: state, copy: true });
      state.fill(0xee);
    }
    // Not awaited: each call has its own buffer, which may change only once its call resolved.
    const calls: Promise<void>[] = [];
    for (let epoch = 3; epoch <= 5; epoch++) {
      const own = Buffer.alloc(ctx.params.bytes, epoch);
      calls.push(ctx.checkpointInBackground({ epoch, step: 0, data: own, copy: true }).then(() => void own.fill(0xee)));
    }
    await Promise.all(calls);
    return { metrics: { checkpoints: 5 } };
  },
};

let h: Harness;
let store: SlowStore;
let client: ExperimentsClient;
let worker: Worker;
let running: Promise<void>;
const beats: Beat[] = [];

before(async () => {
  h = await startHarness();
  const taskQueue = uniqueQueue('async-ck');
  store = new SlowStore(path.join(h.tmp, 'ck'));
  const plugin = new ExperimentPlugin({ store, logger: h.logger, heartbeatIntervalMs: 100, trainers: [copyProbe] });
  worker = await Worker.create({
    connection: h.env.nativeConnection,
    taskQueue,
    plugins: [plugin],
    maxHeartbeatThrottleInterval: '100ms',
    defaultHeartbeatThrottleInterval: '100ms',
    interceptors: {
      activity: [
        (ctx: Context) => {
          // The SDK's own heartbeat function, wrapped to observe what the runtime sends.
          const target = ctx as unknown as { heartbeatFn: (details?: unknown) => void };
          const send = target.heartbeatFn;
          target.heartbeatFn = (details?: unknown) => {
            const d = details as HeartbeatDetails | undefined;
            if (d && typeof d === 'object' && 'latest' in d) {
              beats.push({ at: Date.now(), details: d, persisting: [...store.inFlight], pointerDurable: d.latest === null || store.durable.has(d.latest.checkpointId) });
            }
            send(details);
          };
          return {};
        },
      ],
    },
  });
  running = worker.run();
  client = new ExperimentsClient({ client: h.env.client, taskQueue, trainers: plugin.trainers, store });
});
after(async () => {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await running;
  await h?.teardown();
});

const params = { epochs: 4, samples: 512, batchSize: 32, stepDelayMs: 30, seed: 21 };

test('a pointer is never heartbeated before its checkpoint is durable, and training goes on while it persists', { timeout: 180_000 }, async () => {
  store.holdMs = 600;
  const from = beats.length;
  const summary = await (await client.startSession({ sessionId: 'bg', experiments: [{ id: 'e', trainer: 'mlp', params }] })).result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'background checkpoints change nothing in the result');
  const mine = beats.slice(from);
  assert.ok(mine.length > 0, 'heartbeats observed');
  const early = mine.filter((b) => !b.pointerDurable);
  assert.deepEqual(early.map((b) => b.details.latest?.checkpointId), [], 'no heartbeat named a checkpoint before its save resolved');
  // Training went on during a persist: a heartbeat sent while the epoch-1 checkpoint was being
  // written already reports steps of epoch 1.
  const during = mine.filter((b) => b.persisting.includes('1/0') && b.details.epoch === 1 && b.details.step > 0);
  assert.ok(during.length > 0, `steps reported while the first epoch's checkpoint persisted; beats: ${JSON.stringify(mine.map((b) => [b.details.epoch, b.details.step, b.persisting]))}`);
  const pointers = mine.map((b) => b.details.latest).filter((p): p is CheckpointPointer => p !== null);
  assert.ok(pointers.some((p) => p.epoch === params.epochs), 'the final checkpoint was heartbeated once durable');
  // Each 'checkpoint saved' line names the checkpoint's own position, although training had moved
  // on by the time its persist landed (the chaos harness reads positions from these lines).
  const saved = logLines.filter((l) => l.workflowId === 'bg:e' && l.msg === 'checkpoint saved');
  assert.ok(saved.length >= params.epochs, `a 'checkpoint saved' line per epoch (${saved.length})`);
  for (const l of saved) {
    // The local store names a blob after its position: ck-<epoch>-<step>-a<attempt>-<suffix>.
    const m = /^ck-(\d{6})-(\d{8})-/.exec(String(l.checkpointId));
    assert.ok(m, `checkpoint id ${String(l.checkpointId)}`);
    assert.deepEqual([l.epoch, l.step], [Number(m[1]), Number(m[2])], `the line for ${String(l.checkpointId)} gives its position`);
  }
});

test('a cancel during a background persist waits for it: the checkpoint lands, then the experiment ends interrupted', { timeout: 180_000 }, async () => {
  store.holdMs = 200;
  let release!: () => void;
  store.gate = { at: '1/0', release: new Promise<void>((resolve) => (release = resolve)) };
  const handle = await client.startSession({ sessionId: 'bg-cancel', experiments: [{ id: 'e', trainer: 'mlp', params: { ...params, epochs: 6 } }] });
  const workflowId = 'bg-cancel:e';
  await waitFor(() => store.inFlight.has('1/0'), { timeoutMs: 60_000, what: "the first epoch's checkpoint to start persisting" });
  const cancelledAt = Date.now();
  await client.cancel(workflowId, 'while persisting');
  // The cancel reaches the activity with a heartbeat response; only then is the persist let go.
  await waitFor(() => logLines.some((l) => l.workflowId === workflowId && l.msg === 'interrupted: checkpointing at the next step boundary'), { what: 'the cancel to reach the training' });
  release();
  store.gate = undefined;
  await handle.result().catch(() => undefined);
  const status = await client.status(workflowId);
  assert.equal(status.kind, 'experiment');
  assert.equal(status.state, 'interrupted');
  assert.ok(status.latestCheckpoint, 'a checkpoint is recorded');
  const listed = await store.list('bg-cancel/e');
  const first = listed.find((p) => p.epoch === 1 && p.step === 0);
  assert.ok(first, `the checkpoint in flight at the cancel reached the manifest; listed ${JSON.stringify(listed.map((p) => [p.epoch, p.step]))}`);
  const durableAt = store.durable.get(first.checkpointId);
  assert.ok(durableAt !== undefined && durableAt > cancelledAt, 'it was still persisting when the cancel was sent');
  const stopped = logLines.find((l) => l.workflowId === workflowId && l.msg === 'training stopped at a step boundary');
  assert.ok(stopped, 'the attempt ended at a step boundary');
  const stoppedAt = typeof stopped.time === 'number' ? stopped.time : Date.parse(String(stopped.time));
  assert.ok(stoppedAt >= durableAt, `the attempt ended (${stoppedAt}) only after the persist in flight was durable (${durableAt})`);
  assert.ok(status.latestCheckpoint.epoch >= 1, `the outcome names a durable checkpoint (epoch ${status.latestCheckpoint.epoch})`);
});

test('copy: true snapshots a live state: changing it once the call resolved changes no checkpoint, and calls not awaited still persist one at a time', { timeout: 180_000 }, async () => {
  store.holdMs = 150;
  store.maxInFlight = 0;
  const bytes = 3 << 20;
  const summary = await (await client.startSession({ sessionId: 'bg-copy', policy: { checkpointsToKeep: 10 }, experiments: [{ id: 'e', trainer: 'copy-probe', params: { bytes } }] })).result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  const listed = await store.list('bg-copy/e');
  assert.deepEqual(listed.map((p) => p.epoch).sort(), [1, 2, 3, 4, 5], 'every checkpoint asked for was written');
  for (const pointer of listed) {
    const data = await store.read(pointer);
    assert.equal(data.byteLength, bytes);
    assert.ok(data.every((b) => b === pointer.epoch), `checkpoint of epoch ${pointer.epoch} holds the state as it was at its call, not a later one`);
  }
  assert.equal(store.maxInFlight, 1, 'at most one persist in flight, even with calls not awaited');
});
