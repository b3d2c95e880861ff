/**
 * The sha256 helper thread (src/activities/checkpoint-store/hash-thread.ts): exact digests at the
 * piece boundaries, shared-memory buffers hashed in place, concurrent hashes kept apart, the caller's buffer left intact, and bounded
 * memory (its piece buffers go back and forth instead of piling up in the helper's heap).
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { sha256OffThread } from '../../src/activities/checkpoint-store/hash-thread';

const PIECE = 4 << 20;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

void describe('sha256 on the helper thread', () => {
  void test('digests equal createHash at and around piece boundaries, and leave the buffer as it was', async () => {
    const source = randomFillSync(Buffer.allocUnsafe(3 * PIECE + 7));
    for (const size of [0, 1, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE, 3 * PIECE + 7]) {
      // A view at an odd offset: the copy must take exactly its bytes, not its whole ArrayBuffer.
      const view = source.subarray(3, 3 + Math.min(size, source.byteLength - 3));
      const before = sha(view);
      assert.equal(await sha256OffThread(view), before, `size ${view.byteLength}`);
      assert.equal(view.byteLength, Math.min(size, source.byteLength - 3), 'the buffer is not detached');
      assert.equal(sha(view), before, 'the buffer is unchanged');
    }
  });

  void test('concurrent hashes of different buffers each get their own digest', async () => {
    const buffers = [5, 9, 1, 13].map((mib) => randomFillSync(Buffer.allocUnsafe(mib << 20)));
    const digests = await Promise.all(buffers.map((b) => sha256OffThread(b)));
    assert.deepEqual(digests, buffers.map(sha));
  });

  void test('a buffer in shared memory is hashed in place: exact digests of views at odd offsets, mixed with copied hashes', async () => {
    const shared = Buffer.from(new SharedArrayBuffer(2 * PIECE + 11));
    randomFillSync(shared);
    const views = [shared, shared.subarray(5), shared.subarray(3, 3 + PIECE + 1), shared.subarray(0, 0)];
    const plain = randomFillSync(Buffer.allocUnsafe(PIECE + 3));
    const digests = await Promise.all([...views.map((v) => sha256OffThread(v)), sha256OffThread(plain)]);
    assert.deepEqual(digests, [...views.map(sha), sha(plain)]);
    assert.equal(shared.byteLength, 2 * PIECE + 11, 'the shared buffer is not detached');
  });

  void test('hashing 512 MB in a row adds a bounded amount of memory, not the bytes hashed', async () => {
    const state = randomFillSync(Buffer.allocUnsafe(64 << 20));
    await sha256OffThread(state); // starts the thread
    const before = process.memoryUsage().rss;
    let peak = before;
    for (let i = 0; i < 8; i++) {
      await sha256OffThread(state);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    // Pieces that were cloned or left to the helper's collector would add up to hundreds of MB.
    assert.ok(peak - before < 16 << 20, `RSS grew by ${Math.round((peak - before) / 2 ** 20)} MB while 512 MB were hashed`);
  });
});
