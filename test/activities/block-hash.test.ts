/**
 * Block digests of large checkpoints (src/activities/checkpoint-store/block-hash.ts): the digest
 * is exactly SHA-256 over the blocks' SHA-256s, computed here independently; the split between the
 * helper thread and this one gives that digest for shared and plain buffers at every boundary; a
 * local store writes it for whole states from 32 MiB on (and only then), verifies it on read,
 * refuses a corrupt blob and a forged block size, still reads pointers with plain digests, and a
 * full filesystem during a block-digest write leaves the previous checkpoint intact.
 * Real files in a temporary directory throughout.
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LocalCheckpointStore, writeFileDurably } from '../../src/activities/checkpoint-store';
import { BLOCK_HASH_MIN_BYTES, HASH_BLOCK_BYTES, blockSha256, blockSha256Split, hashBlockBytesProblem } from '../../src/activities/checkpoint-store/block-hash';
import { pointerProblem } from '../../src/activities/checkpoint-store/verify';
import type { CheckpointPointer } from '../../src/shared/types';
import { withTmpfs } from '../helpers/tmpfs';

const B = HASH_BLOCK_BYTES;
const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});
async function newRoot(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'block-hash-test-'));
  roots.push(dir);
  return dir;
}

const plainSha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** The definition, written out again here: SHA-256 of the concatenated SHA-256 of each block. */
function expectedBlockDigest(data: Uint8Array, blockBytes: number): string {
  const outer = createHash('sha256');
  for (let offset = 0; offset < data.byteLength; offset += blockBytes) outer.update(createHash('sha256').update(data.subarray(offset, offset + blockBytes)).digest());
  return outer.digest('hex');
}
const shared = (bytes: number) => randomFillSync(Buffer.from(new SharedArrayBuffer(bytes)));

void describe('block digests', () => {
  void test('blockSha256 is SHA-256 over the blocks’ SHA-256s, at and around block boundaries', () => {
    const source = randomFillSync(Buffer.allocUnsafe(3 * 65536 + 7));
    for (const size of [0, 1, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 7]) {
      const view = source.subarray(0, size);
      assert.equal(blockSha256(view, 65536), expectedBlockDigest(view, 65536), `size ${size}`);
    }
    // It is not the plain digest, and it depends on the block size.
    const data = source.subarray(0, 2 * 65536);
    assert.notEqual(blockSha256(data, 65536), plainSha(data));
    assert.notEqual(blockSha256(data, 65536), blockSha256(data, 131072));
  });

  void test('the split between the helper thread and this one gives the same digest, for shared and plain buffers', async () => {
    const big = shared(5 * B + 11);
    const plain = Buffer.from(big);
    for (const size of [0, 1, B - 1, B, B + 1, 2 * B, 5 * B + 11]) {
      const expected = expectedBlockDigest(big.subarray(0, size), B);
      assert.equal(await blockSha256Split(big.subarray(0, size), B), expected, `shared, size ${size}`);
      assert.equal(await blockSha256Split(plain.subarray(0, size), B), expected, `plain, size ${size}`);
      // The helper alone (the event loop busy with training: a background persist).
      assert.equal(await blockSha256Split(big.subarray(0, size), B, null), expected, `shared, helper only, size ${size}`);
      assert.equal(await blockSha256Split(plain.subarray(0, size), B, null), expected, `plain, helper only, size ${size}`);
    }
    // A view at an odd offset of shared memory, several at once, and the buffers left intact.
    const views = [big.subarray(3), plain.subarray(5, 5 + 2 * B + 1), big.subarray(B, 3 * B)];
    const before = views.map(plainSha);
    const digests = await Promise.all(views.map((v) => blockSha256Split(v, B)));
    assert.deepEqual(digests, views.map((v) => expectedBlockDigest(v, B)));
    assert.deepEqual(views.map(plainSha), before, 'the buffers are unchanged');
    assert.equal(plain.byteLength, 5 * B + 11, 'a plain buffer is not detached');
  });

  void test('a block size is a power of two from 64 KiB to 1 GiB; anything else is named in the error', () => {
    assert.equal(hashBlockBytesProblem(B), undefined);
    assert.equal(hashBlockBytesProblem(65536), undefined);
    for (const bad of [1, 3, 65535, 100_000, 2 ** 31, -B, B + 0.5, '4194304', null]) {
      const problem = hashBlockBytesProblem(bad);
      assert.match(problem ?? '', /^hashBlockBytes: expected a power of two from 65536 to 1073741824, received /, String(bad));
    }
  });
});

void describe('durable writes and the local store with block digests', () => {
  void test('whole states from 32 MiB on get a block digest; smaller ones and streams keep the plain sha256', async () => {
    const root = await newRoot();
    const big = shared(BLOCK_HASH_MIN_BYTES + 5);
    const written = await writeFileDurably(path.join(root, 'big'), big);
    assert.equal(written.hashBlockBytes, B);
    assert.equal(written.bytes, big.byteLength);
    const onDisk = await fs.readFile(path.join(root, 'big'));
    assert.equal(written.sha256, expectedBlockDigest(onDisk, B), 'the digest is of the bytes on disk');
    assert.ok(onDisk.equals(big));

    const small = big.subarray(0, BLOCK_HASH_MIN_BYTES - 1);
    const smallWritten = await writeFileDurably(path.join(root, 'small'), small);
    assert.equal(smallWritten.hashBlockBytes, undefined);
    assert.equal(smallWritten.sha256, plainSha(small));

    const chunks = [big.subarray(0, 20 << 20), big.subarray(20 << 20)];
    const streamed = await writeFileDurably(path.join(root, 'stream'), chunks);
    assert.equal(streamed.hashBlockBytes, undefined);
    assert.equal(streamed.sha256, plainSha(big));
  });

  void test('a store saves and reads a 40 MB state under its block digest, skips a corrupt one, and still reads a plain pointer to the same bytes', async () => {
    const root = await newRoot();
    const store = new LocalCheckpointStore(root);
    const first = shared(40 << 20);
    const second = shared(40 << 20);
    const p1 = await store.save('s/e', { epoch: 1, step: 0, attempt: 1, data: first, runId: 'r' }, 3);
    const p2 = await store.save('s/e', { epoch: 2, step: 0, attempt: 1, data: second, runId: 'r' }, 3);
    assert.equal(p1.hashBlockBytes, B);
    assert.equal(p1.sha256, expectedBlockDigest(first, B));
    assert.ok((await store.read(p1)).equals(first));
    assert.deepEqual((await store.list('s/e', { runId: 'r' })).map((p) => p.hashBlockBytes), [B, B], 'the manifest keeps the block size');

    // A plain-digest pointer (as an older version wrote) to the same bytes verifies too.
    const { hashBlockBytes: _dropped, ...plainPointer } = p1;
    assert.ok((await store.read({ ...plainPointer, sha256: plainSha(first) })).equals(first));
    // …but a block digest presented as a plain one does not.
    await assert.rejects(store.read(plainPointer), (err: Error) => /sha256 mismatch/.test(err.message));

    // One flipped byte in the last block: refused, and the newest verified checkpoint is the previous one.
    const file = fileURLToPath(p2.uri);
    const fh = await fs.open(file, 'r+');
    await fh.write(Buffer.from([second[second.byteLength - 1] ^ 0xff]), 0, 1, second.byteLength - 1);
    await fh.close();
    await assert.rejects(store.read(p2), (err: Error) => /sha256 \(block digest, 4194304-byte blocks\) mismatch/.test(err.message));
    const latest = await store.latestVerified('s/e', [p2], { runId: 'r' });
    assert.equal(latest.checkpoint?.pointer.checkpointId, p1.checkpointId);
    assert.ok(latest.checkpoint?.data.equals(first), 'the previous checkpoint, bit for bit');
    assert.ok(latest.warnings.some((w) => w.includes(p2.checkpointId) && w.includes('mismatch')), latest.warnings.join('\n'));
  });

  void test('ENOSPC during a block-digest write leaves the previous checkpoint intact and no temp file', async () => {
    // A real full filesystem: a 40 MiB tmpfs (test/helpers/tmpfs.ts).
    const mountPoint = await newRoot();
    await withTmpfs(mountPoint, '40m', async () => {
      const store = new LocalCheckpointStore(mountPoint);
      const small = shared(1 << 20);
      const first = await store.save('s/e', { epoch: 1, step: 0, attempt: 1, data: small, runId: 'r' }, 3);
      const failure = await store.save('s/e', { epoch: 2, step: 0, attempt: 1, data: shared(48 << 20), runId: 'r' }, 3).then(
        () => assert.fail('a 48 MiB state should not fit in 40 MiB'),
        (err: Error & { code?: string }) => err,
      );
      assert.equal(failure.code, 'ENOSPC');
      assert.match(failure.message, /\(write\): ENOSPC: no space left on device/);
      assert.deepEqual(await store.list('s/e', { runId: 'r' }), [first]);
      assert.ok((await store.read(first)).equals(small));
      const dir = store.dirFor('s/e', 'r');
      assert.deepEqual((await fs.readdir(dir)).filter((name) => name.startsWith('.tmp-')), [], 'no temp file left');
      // The space is back: a block-digest state that fits saves and reads back.
      const fits = shared(BLOCK_HASH_MIN_BYTES + 1);
      const second = await store.save('s/e', { epoch: 2, step: 0, attempt: 2, data: fits, runId: 'r' }, 3);
      assert.equal(second.hashBlockBytes, B);
      assert.ok((await store.read(second)).equals(fits));
    });
  });

  void test('a forged block size is refused before any read', async () => {
    const root = await newRoot();
    const store = new LocalCheckpointStore(root);
    const pointer = await store.save('s/e', { epoch: 1, step: 0, attempt: 1, data: shared(1 << 20), runId: 'r' }, 3);
    assert.equal(pointer.hashBlockBytes, undefined, 'a 1 MiB state keeps the plain digest');
    for (const bad of [1, 12345, '65536']) {
      const forged = { ...pointer, hashBlockBytes: bad } as unknown as CheckpointPointer;
      assert.match(pointerProblem(forged) ?? '', /^hashBlockBytes: expected a power of two/);
      await assert.rejects(store.read(forged), (err: Error) => /invalid pointer \(hashBlockBytes: expected a power of two/.test(err.message));
    }
  });
});
