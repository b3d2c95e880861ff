/**
 * The checkpoint store contract as one suite, run against every store (local disk, S3 on a real
 * versitygw): durable visibility, sha256 verification with fallback to the previous checkpoint,
 * pruning, per-run places, forged pointers, and a write failure leaving the previous checkpoint
 * intact. Each store supplies the few operations only it can do (corrupting a blob behind its
 * back, breaking its writes).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { CheckpointStore } from '../../src/activities/checkpoint-store';
import type { CheckpointPointer } from '../../src/shared/types';

export interface StoreUnderTest {
  readonly store: CheckpointStore;
  /** Replaces a blob's bytes behind the store's back (same length, different content). */
  corrupt(pointer: CheckpointPointer): Promise<void>;
  /** Whether a pointer's blob still exists. */
  exists(pointer: CheckpointPointer): Promise<boolean>;
  /** Makes writes fail for real (a full disk, a dead server) until the returned restore runs. */
  breakWrites?(): Promise<() => Promise<void>>;
  /** A pointer naming a blob outside the store that would be readable if the store did not check. */
  forgedPointer(like: CheckpointPointer): CheckpointPointer;
}

export function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

export function sha256(...parts: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

let keys = 0;
const freshKey = () => `contract-${process.pid}/exp-${++keys}`;

export function storeContract(name: string, setup: () => Promise<StoreUnderTest>): void {
  void describe(`checkpoint store contract: ${name}`, () => {
    void test('save, list, read and latestVerified round-trip', async () => {
      const { store } = await setup();
      const key = freshKey();
      const data = bytes(70_000, 1);
      const pointer = await store.save(key, { epoch: 2, step: 5, attempt: 1, data, metrics: { loss: 0.5, bad: Number.NaN }, runId: 'run-a' }, 3);
      assert.equal(pointer.sha256, sha256(data));
      assert.equal(pointer.bytes, data.byteLength);
      assert.deepEqual(pointer.metrics, { loss: 0.5 });
      assert.equal(pointer.runId, 'run-a');
      assert.deepEqual(await store.list(key, { runId: 'run-a' }), [pointer]);
      assert.deepEqual(await store.read(pointer), data);
      const latest = await store.latestVerified(key, [], { runId: 'run-a' });
      assert.deepEqual(latest.checkpoint?.pointer, pointer);
      assert.deepEqual(latest.checkpoint?.data, data);
      assert.deepEqual(latest.warnings, []);
    });

    void test('a checkpoint is visible only once its save has resolved', async () => {
      const { store } = await setup();
      const key = freshKey();
      const first = await store.save(key, { epoch: 1, step: 0, attempt: 1, data: bytes(1000, 1), runId: 'r' }, 5);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let halfSent!: () => void;
      const sentHalf = new Promise<void>((resolve) => (halfSent = resolve));
      const chunks = async function* () {
        yield bytes(600_000, 2);
        halfSent();
        await gate;
        yield bytes(600_000, 3);
      };
      const saving = store.save(key, { epoch: 2, step: 0, attempt: 1, data: chunks(), runId: 'r' }, 5);
      await sentHalf;
      assert.deepEqual(await store.list(key, { runId: 'r' }), [first], 'a half-written checkpoint is not listed');
      assert.equal((await store.latestVerified(key, [], { runId: 'r' })).checkpoint?.pointer.checkpointId, first.checkpointId);
      release();
      const second = await saving;
      assert.equal(second.sha256, sha256(bytes(600_000, 2), bytes(600_000, 3)));
      assert.deepEqual(await store.list(key, { runId: 'r' }), [second, first]);
      assert.equal((await store.latestVerified(key, [], { runId: 'r' })).checkpoint?.pointer.checkpointId, second.checkpointId);
    });

    void test('a corrupt blob falls back to the previous checkpoint with a warning', async () => {
      const s = await setup();
      const key = freshKey();
      const older = await s.store.save(key, { epoch: 1, step: 0, attempt: 1, data: bytes(5000, 1), runId: 'r' }, 3);
      const newer = await s.store.save(key, { epoch: 2, step: 0, attempt: 1, data: bytes(5000, 2), runId: 'r' }, 3);
      await s.corrupt(newer);
      await assert.rejects(s.store.read(newer), /sha256 mismatch/);
      const latest = await s.store.latestVerified(key, [newer], { runId: 'r' });
      assert.equal(latest.checkpoint?.pointer.checkpointId, older.checkpointId);
      assert.deepEqual(latest.checkpoint?.data, bytes(5000, 1));
      assert.equal(latest.warnings.length, 1);
      assert.match(latest.warnings[0], new RegExp(`${newer.checkpointId}.*sha256 mismatch`));
    });

    void test('pruning keeps the newest checkpointsToKeep and deletes the rest', async () => {
      const s = await setup();
      const key = freshKey();
      const saved: CheckpointPointer[] = [];
      for (let epoch = 1; epoch <= 5; epoch++) saved.push(await s.store.save(key, { epoch, step: 0, attempt: 1, data: bytes(2000, epoch), runId: 'r' }, 2));
      assert.deepEqual(
        (await s.store.list(key, { runId: 'r' })).map((p) => p.epoch),
        [5, 4],
      );
      for (const pointer of saved.slice(0, 3)) assert.equal(await s.exists(pointer), false, `${pointer.checkpointId} deleted`);
      for (const pointer of saved.slice(3)) assert.equal(await s.exists(pointer), true, `${pointer.checkpointId} kept`);
    });

    void test('each run has its own place: another run neither prunes nor resumes it', async () => {
      const { store } = await setup();
      const key = freshKey();
      const a = await store.save(key, { epoch: 3, step: 0, attempt: 1, data: bytes(100, 1), runId: 'run-1' }, 1);
      const b1 = await store.save(key, { epoch: 1, step: 0, attempt: 1, data: bytes(100, 2), runId: 'run-2' }, 1);
      const b2 = await store.save(key, { epoch: 2, step: 0, attempt: 1, data: bytes(100, 3), runId: 'run-2' }, 1);
      assert.deepEqual(await store.list(key, { runId: 'run-1' }), [a]);
      assert.deepEqual(await store.list(key, { runId: 'run-2' }), [b2]);
      assert.equal((await store.latestVerified(key, [], { runId: 'run-2' })).checkpoint?.pointer.checkpointId, b2.checkpointId);
      // Without a run id (resumeFrom, hints) every run's checkpoints count.
      assert.equal((await store.latestVerified(key)).checkpoint?.pointer.checkpointId, a.checkpointId);
      assert.deepEqual(new Set((await store.list(key)).map((p) => p.checkpointId)), new Set([a.checkpointId, b2.checkpointId]));
      assert.notEqual(b1.checkpointId, b2.checkpointId);
    });

    void test('a forged pointer outside the store is refused, not read', async () => {
      const s = await setup();
      const key = freshKey();
      const real = await s.store.save(key, { epoch: 1, step: 0, attempt: 1, data: bytes(100, 1), runId: 'r' }, 2);
      const forged = s.forgedPointer(real);
      await assert.rejects(s.store.read(forged), /outside/);
      const latest = await s.store.latestVerified(key, [forged], { runId: 'r' });
      assert.equal(latest.checkpoint?.pointer.checkpointId, real.checkpointId);
    });

    void test('a write failure leaves the previous checkpoint intact', async () => {
      const s = await setup();
      assert.ok(s.breakWrites, `${name}: the contract needs a way to make writes fail`);
      const key = freshKey();
      const previous = await s.store.save(key, { epoch: 1, step: 0, attempt: 1, data: bytes(50_000, 1), runId: 'r' }, 2);
      const restore = await s.breakWrites();
      try {
        await assert.rejects(s.store.save(key, { epoch: 2, step: 0, attempt: 1, data: bytes(300_000, 2), runId: 'r' }, 2), /checkpoint write failed|manifest/);
      } finally {
        await restore();
      }
      assert.deepEqual(await s.store.list(key, { runId: 'r' }), [previous]);
      const latest = await s.store.latestVerified(key, [], { runId: 'r' });
      assert.deepEqual(latest.checkpoint?.data, bytes(50_000, 1));
      const next = await s.store.save(key, { epoch: 2, step: 0, attempt: 1, data: bytes(1000, 3), runId: 'r' }, 2);
      assert.deepEqual(await s.store.list(key, { runId: 'r' }), [next, previous]);
    });
  });
}
