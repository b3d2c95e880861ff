/**
 * The checkpoint store contract suite: every store (the local one today, an S3 one later) runs it
 * through `checkpointStoreContract(name, harness)`. A harness gives the suite a fresh store and a
 * way to reach behind it (overwrite or remove a stored blob, list what is stored), and opens a
 * second store on the same backing, which is what a second worker process sees.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { StaleAttemptError, type CheckpointStore } from '../../src/activities/checkpoint-store';
import type { CheckpointPointer } from '../../src/shared/types';

export interface StoreHarness {
  readonly store: CheckpointStore;
  /** Another store on the same backing, as a second worker process would open it. */
  another(): CheckpointStore;
  /** Replaces a blob's stored bytes behind the store's back. */
  overwriteBlob(pointer: CheckpointPointer, bytes: Buffer): Promise<void>;
  /** Deletes a blob behind the store's back. */
  removeBlob(pointer: CheckpointPointer): Promise<void>;
  /** Names of everything stored for a run's place except the store's manifests (temp files included), sorted. */
  stored(key: string, runId?: string): Promise<string[]>;
  /** The name `stored` lists for a pointer's blob. */
  blobName(pointer: CheckpointPointer): string;
  /** Whether the store holds nothing at all. */
  isEmpty(): Promise<boolean>;
  /** How another process opens the same store: `new (require(module)[exportName])(...args)`. */
  readonly inChild: { readonly module: string; readonly exportName: string; readonly args: readonly unknown[] };
}

export const KEY = 'sess-1/exp-a';

export function sha256(...parts: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

export function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

const RUN_1 = '11111111-aaaa-4bbb-8ccc-000000000001';
const RUN_2 = '22222222-aaaa-4bbb-8ccc-000000000002';

export function checkpointStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  void describe(`checkpoint store contract: ${name}`, () => {
    void test('save, list and read round-trip with a complete pointer', async () => {
      const { store } = await makeHarness();
      const data = bytes(100_000, 1);
      const pointer = await store.save(KEY, { epoch: 2, step: 30, attempt: 1, data, metrics: { loss: 0.5, acc: 0.9, bad: Number.NaN } }, 3);
      assert.equal(pointer.sha256, sha256(data));
      assert.equal(pointer.bytes, data.byteLength);
      assert.deepEqual([pointer.epoch, pointer.step], [2, 30]);
      // NaN cannot travel as JSON, so it is dropped rather than becoming null.
      assert.deepEqual(pointer.metrics, { loss: 0.5, acc: 0.9 });
      assert.equal(new Date(pointer.savedAt).toISOString(), pointer.savedAt);
      assert.deepEqual(await store.list(KEY), [pointer]);
      assert.deepEqual(await store.read(pointer), data);

      const second = await store.save(KEY, { epoch: 3, step: 0, attempt: 1, data: bytes(10, 2) }, 3);
      assert.deepEqual(second.metrics, {});
      assert.deepEqual(await store.list(KEY), [second, pointer], 'newest first');
      assert.deepEqual(await store.list('sess-1/never-saved'), []);
    });

    void test('a large state in shared memory (the runtime\'s copy buffer) round-trips with its own sha256', async () => {
      const { store } = await makeHarness();
      // Over the size the local store hashes on the helper thread, which reads shared memory in place.
      const plain = bytes((9 << 20) + 13, 6);
      const shared = Buffer.from(new SharedArrayBuffer(plain.byteLength));
      shared.set(plain);
      const view = shared.subarray(5);
      const pointer = await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: view }, 3);
      assert.equal(pointer.sha256, sha256(plain.subarray(5)));
      assert.equal(pointer.bytes, view.byteLength);
      assert.ok((await store.read(pointer)).equals(plain.subarray(5)), 'the stored bytes are the view\'s');
    });

    void test('streams sync and async iterables without changing what is hashed', async () => {
      const { store } = await makeHarness();
      // Mixed sizes: small chunks go through a staging buffer, large ones straight to storage.
      const chunks = [bytes(1000, 1), bytes(300_000, 2), new Uint8Array(bytes(17, 3)), bytes(5 << 20, 4), bytes(1, 5)];
      const expected = sha256(...chunks);
      const whole = Buffer.concat(chunks);
      const fromIterable = await store.save(KEY, { epoch: 0, step: 1, attempt: 1, data: chunks }, 10);
      assert.equal(fromIterable.sha256, expected);
      assert.equal(fromIterable.bytes, whole.byteLength);
      assert.deepEqual(await store.read(fromIterable), whole);

      async function* slowly(): AsyncIterable<Uint8Array> {
        for (const chunk of chunks) {
          await new Promise((resolve) => setImmediate(resolve));
          yield chunk;
        }
      }
      const fromAsync = await store.save(KEY, { epoch: 0, step: 2, attempt: 1, data: slowly() }, 10);
      assert.equal(fromAsync.sha256, expected);
      assert.deepEqual(await store.read(fromAsync), whole);

      // A producer that refills one buffer for every chunk (a common serialiser pattern).
      function* reusing(): Iterable<Uint8Array> {
        const scratch = Buffer.alloc(400_000);
        for (const chunk of chunks) {
          scratch.fill(0);
          chunk.forEach((b, i) => (scratch[i] = b));
          yield scratch.subarray(0, chunk.byteLength);
        }
      }
      const fromReused = await store.save(KEY, { epoch: 0, step: 3, attempt: 1, data: reusing() }, 10);
      const reusedExpected = Buffer.concat(chunks.map((c) => (c.byteLength <= 400_000 ? c : Buffer.from(c.subarray(0, 400_000)))));
      assert.equal(fromReused.sha256, sha256(reusedExpected));
      assert.deepEqual(await store.read(fromReused), reusedExpected);
    });

    void test('a failing producer leaves nothing stored and no manifest entry', async () => {
      const h = await makeHarness();
      const first = await h.store.save(KEY, { epoch: 0, step: 1, attempt: 1, data: bytes(10, 1) }, 3);
      function* failing(): Iterable<Uint8Array> {
        yield bytes(1000, 2);
        throw new Error('serialiser exploded');
      }
      await assert.rejects(h.store.save(KEY, { epoch: 0, step: 2, attempt: 1, data: failing() }, 3), /checkpoint write failed for sess-1\/exp-a at .*: serialiser exploded/);
      assert.deepEqual(await h.store.list(KEY), [first]);
      assert.deepEqual(await h.stored(KEY), [h.blobName(first)]);
    });

    void test('prunes to the newest `keep` checkpoints', async () => {
      const h = await makeHarness();
      const saved: CheckpointPointer[] = [];
      for (let epoch = 0; epoch < 4; epoch++) saved.push(await h.store.save(KEY, { epoch, step: 0, attempt: 1, data: bytes(1000, epoch) }, 2));
      assert.deepEqual(await h.store.list(KEY), [saved[3], saved[2]]);
      assert.deepEqual(await h.stored(KEY), [saved[2], saved[3]].map((p) => h.blobName(p)).sort());
    });

    void test('latestVerified falls back past a truncated, a corrupted and a missing newest blob', async () => {
      const h = await makeHarness();
      const { store } = h;
      const p0 = await store.save(KEY, { epoch: 0, step: 5, attempt: 1, data: bytes(5000, 0) }, 5);
      const p1 = await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(5000, 1) }, 5);
      const p2 = await store.save(KEY, { epoch: 1, step: 7, attempt: 2, data: bytes(5000, 2) }, 5);

      const good = await store.latestVerified(KEY);
      assert.equal(good.checkpoint?.pointer.checkpointId, p2.checkpointId);
      assert.deepEqual(good.checkpoint?.data, bytes(5000, 2));
      assert.deepEqual(good.warnings, []);

      await h.overwriteBlob(p2, bytes(5000, 2).subarray(0, 100));
      const truncated = await store.latestVerified(KEY);
      assert.equal(truncated.checkpoint?.pointer.checkpointId, p1.checkpointId);
      assert.deepEqual(truncated.checkpoint?.data, bytes(5000, 1));
      assert.equal(truncated.warnings.length, 1);
      assert.match(truncated.warnings[0], new RegExp(`^checkpoint ${p2.checkpointId} \\(epoch 1, step 7\\) skipped: size mismatch \\(expected 5000 bytes, found 100\\)$`));

      // Same length, different content: only the hash can tell.
      const flipped = bytes(5000, 1);
      flipped[42] ^= 0xff;
      await h.overwriteBlob(p1, flipped);
      const corrupted = await store.latestVerified(KEY);
      assert.equal(corrupted.checkpoint?.pointer.checkpointId, p0.checkpointId);
      assert.equal(corrupted.warnings.length, 2);
      assert.match(corrupted.warnings[1], new RegExp(`^checkpoint ${p1.checkpointId} \\(epoch 1, step 0\\) skipped: sha256 mismatch \\(expected ${p1.sha256.slice(0, 12)}…, got [0-9a-f]{12}…\\)$`));
      await assert.rejects(store.read(p1), /sha256 mismatch/);

      await h.removeBlob(p0);
      const none = await store.latestVerified(KEY);
      assert.equal(none.checkpoint, undefined);
      assert.equal(none.warnings.length, 3);
      // A file for the local store, an object for S3.
      assert.match(none.warnings[2], new RegExp(`^checkpoint ${p0.checkpointId} \\(epoch 0, step 5\\) skipped: (file|object) missing$`));
      await assert.rejects(store.read(p0), /(file|object) missing/);
    });

    void test('rejects malformed keys and run ids before storing anything', async () => {
      const h = await makeHarness();
      const { store } = h;
      const data = bytes(10, 1);
      for (const key of ['../x/y', 'a/b/c', 'a\\b/c', '../x', 'a/..', 'a', '/a/b', 'a/', '', 'a/b\u0000']) {
        await assert.rejects(store.save(key, { epoch: 0, step: 0, attempt: 1, data }, 1), (err: Error) => {
          assert.match(err.message, /^checkpoint store key /);
          assert.ok(err.message.includes(JSON.stringify(key)), err.message);
          return true;
        });
        assert.throws(() => store.dirFor(key), /checkpoint store key/);
        await assert.rejects(store.list(key), /checkpoint store key/);
        await assert.rejects(store.latestVerified(key), /checkpoint store key/);
      }
      for (const runId of ['..', 'a/b', '', '../../x']) {
        await assert.rejects(store.save('a/b', { epoch: 0, step: 0, attempt: 1, data, runId }, 1), /runId: expected 1-128 characters/);
        await assert.rejects(store.registerAttempt('a/b', runId, { invocation: 0, attempt: 1 }), /runId: expected 1-128 characters/);
      }
      await assert.rejects(store.save('a/b', { epoch: 0, step: 0, attempt: 1, data }, 0), /checkpoints to keep: expected an integer >= 1/);
      await assert.rejects(store.save('a/b', { epoch: -1, step: 0, attempt: 1, data }, 1), /checkpoint epoch: expected a non-negative integer/);
      await assert.rejects(store.save('a/b', { epoch: 0, step: 0, attempt: 1, data, fence: { invocation: -1, attempt: 1 } }, 1), /fence token invocation: expected a non-negative integer/);
      assert.ok(await h.isEmpty(), 'nothing stored');
    });

    void test('concurrent saves for one key all reach the manifest, within one store and across two', async () => {
      const h = await makeHarness();
      const other = h.another();
      const saves = await Promise.all(
        [0, 1, 2, 3, 4, 5].map((step) => (step % 2 ? other : h.store).save(KEY, { epoch: 0, step, attempt: 1, data: bytes(50_000 + step, step) }, 100)),
      );
      const listed = await h.store.list(KEY);
      assert.equal(listed.length, 6);
      assert.deepEqual(new Set(listed.map((p) => p.checkpointId)), new Set(saves.map((p) => p.checkpointId)));
      for (const pointer of saves) assert.deepEqual(await h.store.read(pointer), bytes(50_000 + pointer.step, pointer.step));

      // With pruning in play, the kept entries and the stored blobs still agree.
      await Promise.all([6, 7, 8, 9, 10, 11].map((step) => (step % 2 ? other : h.store).save(KEY, { epoch: 0, step, attempt: 1, data: bytes(10, step) }, 2)));
      const kept = await h.store.list(KEY);
      assert.equal(kept.length, 2);
      assert.deepEqual(await h.stored(KEY), kept.map((p) => h.blobName(p)).sort());
    });

    void test('fencing: a write from an attempt older than the newest registered one is refused and changes nothing', async () => {
      const h = await makeHarness();
      // Two stores on one backing: the stale attempt's worker and the newer attempt's worker.
      const [old, current] = [h.store, h.another()];
      const runId = RUN_1;
      const t1 = { invocation: 0, attempt: 1 };
      const t2 = { invocation: 0, attempt: 2 };
      assert.equal(await old.currentFence(KEY, runId), null);
      await old.registerAttempt(KEY, runId, t1);
      const first = await old.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(100, 1), runId, fence: t1 }, 5);

      await current.registerAttempt(KEY, runId, t2);
      assert.deepEqual(await old.currentFence(KEY, runId), t2);
      const newer = await current.save(KEY, { epoch: 1, step: 0, attempt: 2, data: bytes(100, 2), runId, fence: t2 }, 5);
      // An external trainer's file, in the stale attempt's own local directory.
      const file = path.join(old.dirFor(KEY, runId, t1), 'stale.bin');
      await fs.writeFile(file, bytes(100, 4));
      const before = { list: await current.list(KEY, { runId }), stored: await h.stored(KEY, runId) };

      const refusal = await old.save(KEY, { epoch: 2, step: 0, attempt: 1, data: bytes(100, 3), runId, fence: t1 }, 1).then(
        () => assert.fail('a stale save must be refused'),
        (err: unknown) => err,
      );
      assert.ok(refusal instanceof StaleAttemptError, String(refusal));
      assert.equal(refusal.type, 'StaleAttempt');
      assert.deepEqual([refusal.attempted, refusal.newest], [t1, t2]);
      assert.match(refusal.message, /checkpoint save for sess-1\/exp-a \(run .*\) refused: attempt invocation 0 attempt 1 is stale, attempt invocation 0 attempt 2 has started since/);

      await assert.rejects(old.adopt(KEY, file, { epoch: 3, step: 0, attempt: 1, runId, fence: t1 }, 1), StaleAttemptError);
      // A registration never lowers the fence.
      await assert.rejects(old.registerAttempt(KEY, runId, t1), StaleAttemptError);

      assert.deepEqual(await current.list(KEY, { runId }), before.list, "the newer attempt's manifest is untouched");
      assert.deepEqual(await h.stored(KEY, runId), before.stored, "the newer attempt's files are untouched (pruning to 1 was refused too)");
      assert.deepEqual(before.list, [newer, first]);
      assert.deepEqual(await current.read(newer), bytes(100, 2));

      // Invocation beats attempt: a later invocation's first attempt is newer than attempt 7 of the last.
      await current.registerAttempt(KEY, runId, { invocation: 0, attempt: 7 });
      await current.registerAttempt(KEY, runId, { invocation: 1, attempt: 1 });
      await assert.rejects(current.save(KEY, { epoch: 3, step: 0, attempt: 7, data: bytes(1, 1), runId, fence: { invocation: 0, attempt: 7 } }, 5), StaleAttemptError);
      await current.save(KEY, { epoch: 3, step: 0, attempt: 1, data: bytes(1, 1), runId, fence: { invocation: 1, attempt: 1 } }, 5);
    });

    void test('fencing: racing registrations from several stores end at the newest token', async () => {
      const h = await makeHarness();
      const stores = [h.store, h.another(), h.another(), h.another()];
      const tokens = [0, 1, 2].flatMap((invocation) => [1, 2, 3].map((attempt) => ({ invocation, attempt })));
      const outcomes = await Promise.allSettled(tokens.map((token, i) => stores[i % stores.length].registerAttempt(KEY, RUN_1, token)));
      for (const outcome of outcomes) if (outcome.status === 'rejected') assert.ok(outcome.reason instanceof StaleAttemptError, String(outcome.reason));
      assert.equal(outcomes[outcomes.length - 1].status, 'fulfilled', 'the newest token is never refused');
      assert.deepEqual(await h.store.currentFence(KEY, RUN_1), { invocation: 2, attempt: 3 });
    });

    void test('each run has its own place: a re-run never prunes or resumes the earlier run, reads across runs find both', async () => {
      const h = await makeHarness();
      const earlier = await h.store.save(KEY, { epoch: 5, step: 0, attempt: 1, data: bytes(300, 1), runId: RUN_1 }, 1);
      await h.store.registerAttempt(KEY, RUN_1, { invocation: 3, attempt: 2 });
      // The re-run starts with a lower token and a keep of 1: neither fenced nor pruned by the earlier run.
      await h.store.registerAttempt(KEY, RUN_2, { invocation: 0, attempt: 1 });
      let latest: CheckpointPointer | undefined;
      for (let epoch = 0; epoch < 3; epoch++) {
        latest = await h.store.save(KEY, { epoch, step: 0, attempt: 1, data: bytes(300, 10 + epoch), runId: RUN_2, fence: { invocation: 0, attempt: 1 } }, 1);
      }
      assert.deepEqual(await h.store.list(KEY, { runId: RUN_1 }), [earlier]);
      assert.deepEqual(await h.store.read(earlier), bytes(300, 1));
      assert.deepEqual(await h.store.list(KEY, { runId: RUN_2 }), [latest]);
      // The re-run resumes from its own checkpoints only, although the earlier run's is at a later epoch.
      assert.equal((await h.store.latestVerified(KEY, [], { runId: RUN_2 })).checkpoint?.pointer.checkpointId, latest?.checkpointId);
      assert.equal((await h.store.latestVerified('sess-1/exp-a', [], { runId: '33333333-aaaa-4bbb-8ccc-000000000003' })).checkpoint, undefined);
      // resumeFrom, hints and `experiments resume` read across runs.
      assert.equal((await h.store.latestVerified(KEY)).checkpoint?.pointer.checkpointId, earlier.checkpointId, 'newest by (epoch, step) across runs');
      assert.deepEqual(await h.store.list(KEY), [latest, earlier], 'newest first across runs');
      assert.deepEqual(await h.stored(KEY, RUN_1), [h.blobName(earlier)]);
    });

    void test('a reader racing a concurrent prune by another process never reports a spurious missing checkpoint', async () => {
      const h = await makeHarness();
      await h.store.save(KEY, { epoch: 0, step: 0, attempt: 1, data: Buffer.alloc(1000, 0), runId: RUN_1 }, 1);
      // The writer is a real second process, saving with keep 1 as fast as it can, so every save
      // prunes the checkpoint the reader may just have picked from the manifest.
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ckstore-writer-'));
      const script = path.join(dir, 'writer.ts');
      const { module, exportName, args } = h.inChild;
      await fs.writeFile(
        script,
        `const Store = require(${JSON.stringify(module)})[${JSON.stringify(exportName)}];
         const store = new Store(...${JSON.stringify(args)});
         (async () => {
           for (let step = 1; ; step++) {
             const data = Buffer.alloc(1000, step % 256);
             await store.save(${JSON.stringify(KEY)}, { epoch: 0, step, attempt: 1, data, runId: ${JSON.stringify(RUN_1)} }, 1);
             if (step % 10 === 0) process.stdout.write('.');
           }
         })();`,
      );
      const writer = spawn(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
      let saves = 0;
      writer.stdout.on('data', (chunk: Buffer) => (saves += chunk.length * 10));
      try {
        let reads = 0;
        // Enough of both for the race to be hit many times over (it is without the re-read).
        while (reads < 2000 || saves < 300) {
          assert.equal(writer.exitCode, null, 'the writer process is still running');
          const { checkpoint, warnings } = await h.store.latestVerified(KEY, [], { runId: RUN_1 });
          assert.deepEqual(warnings, [], `read ${reads} after ${saves} saves`);
          assert.ok(checkpoint, `read ${reads}: a checkpoint`);
          assert.deepEqual(checkpoint.data, Buffer.alloc(1000, checkpoint.pointer.step % 256));
          reads++;
        }
      } finally {
        writer.kill('SIGKILL');
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });
}
