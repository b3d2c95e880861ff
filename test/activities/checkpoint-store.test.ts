/**
 * Tests of the local checkpoint store against real files in a temporary directory: durable saves,
 * streaming, pruning, verification and fallback, adoption of external files, key validation,
 * serialised concurrent saves, and real write failures (ENOSPC on a tiny tmpfs, EFBIG under a
 * file-size limit) leaving the previous checkpoint intact.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { LocalCheckpointStore, writeFileDurably } from '../../src/activities/checkpoint-store';
import type { CheckpointPointer } from '../../src/shared/types';

const KEY = 'sess-1/exp-a';
const roots: string[] = [];

after(async () => {
  await Promise.all(roots.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function newRoot(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ckstore-test-'));
  roots.push(dir);
  return dir;
}

async function newStore(): Promise<{ root: string; store: LocalCheckpointStore }> {
  const root = await newRoot();
  return { root, store: new LocalCheckpointStore(root) };
}

function sha256(...parts: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

async function entries(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

void describe('LocalCheckpointStore', () => {
  void test('save, list and read round-trip with a complete pointer', async () => {
    const { store } = await newStore();
    const data = bytes(100_000, 1);
    const pointer = await store.save(KEY, { epoch: 2, step: 30, attempt: 1, data, metrics: { loss: 0.5, acc: 0.9, bad: Number.NaN } }, 3);

    assert.equal(pointer.sha256, sha256(data));
    assert.equal(pointer.bytes, data.byteLength);
    assert.equal(pointer.epoch, 2);
    assert.equal(pointer.step, 30);
    // NaN cannot travel as JSON, so it is dropped rather than becoming null.
    assert.deepEqual(pointer.metrics, { loss: 0.5, acc: 0.9 });
    assert.ok(pointer.uri.startsWith('file://'));
    const file = fileURLToPath(pointer.uri);
    assert.equal(path.dirname(file), store.dirFor(KEY));
    assert.match(path.basename(file), /^ck-000002-00000030-a1-[0-9a-f]+\.ckpt$/);
    assert.equal(pointer.checkpointId, path.basename(file, '.ckpt'));
    assert.equal(new Date(pointer.savedAt).toISOString(), pointer.savedAt);

    assert.deepEqual(await store.list(KEY), [pointer]);
    assert.deepEqual(await store.read(pointer), data);

    const manifest = JSON.parse(await fs.readFile(path.join(store.dirFor(KEY), 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest, { version: 1, key: KEY, checkpoints: [pointer] });

    const second = await store.save(KEY, { epoch: 3, step: 0, attempt: 1, data: bytes(10, 2) }, 3);
    assert.deepEqual(second.metrics, {});
    assert.deepEqual(await store.list(KEY), [second, pointer], 'newest first');
    assert.deepEqual(await store.list('sess-1/never-saved'), []);
  });

  void test('streams sync and async iterables without changing what is hashed', async () => {
    const { store } = await newStore();
    // Mixed sizes: small chunks go through the staging buffer, large ones straight to disk.
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

  void test('a failing producer leaves no temp file and no manifest entry', async () => {
    const { store } = await newStore();
    const first = await store.save(KEY, { epoch: 0, step: 1, attempt: 1, data: bytes(10, 1) }, 3);
    function* failing(): Iterable<Uint8Array> {
      yield bytes(1000, 2);
      throw new Error('serialiser exploded');
    }
    await assert.rejects(store.save(KEY, { epoch: 0, step: 2, attempt: 1, data: failing() }, 3), /checkpoint write failed for sess-1\/exp-a at .*\.tmp-.*: serialiser exploded/);
    assert.deepEqual(await store.list(KEY), [first]);
    assert.deepEqual(await entries(store.dirFor(KEY)), [path.basename(fileURLToPath(first.uri)), 'manifest.json'].sort());
  });

  void test('writeFileDurably replaces a file atomically and reports its hash', async () => {
    const root = await newRoot();
    const target = path.join(root, 'blob');
    await fs.writeFile(target, 'old');
    const data = bytes(3 << 20, 9);
    assert.deepEqual(await writeFileDurably(target, data), { sha256: sha256(data), bytes: data.byteLength });
    assert.deepEqual(await fs.readFile(target), data);
    assert.deepEqual(await entries(root), ['blob']);
  });

  void test('prunes to the newest `keep` checkpoints', async () => {
    const { store } = await newStore();
    const saved: CheckpointPointer[] = [];
    for (let epoch = 0; epoch < 4; epoch++) saved.push(await store.save(KEY, { epoch, step: 0, attempt: 1, data: bytes(1000, epoch) }, 2));
    assert.deepEqual(await store.list(KEY), [saved[3], saved[2]]);
    const expectedFiles = [saved[2], saved[3]].map((p) => path.basename(fileURLToPath(p.uri)));
    assert.deepEqual(await entries(store.dirFor(KEY)), [...expectedFiles, 'manifest.json'].sort());
  });

  void test('removes temp files of crashed writes once they are stale', async () => {
    const { store } = await newStore();
    const dir = store.dirFor(KEY);
    await fs.writeFile(path.join(dir, '.tmp-crashed'), 'x');
    const old = new Date(Date.now() - 5 * 60_000);
    await fs.utimes(path.join(dir, '.tmp-crashed'), old, old);
    await fs.writeFile(path.join(dir, '.tmp-in-flight'), 'x');
    await store.save(KEY, { epoch: 0, step: 0, attempt: 1, data: bytes(10, 1) }, 3);
    const names = await entries(dir);
    assert.ok(!names.includes('.tmp-crashed'));
    assert.ok(names.includes('.tmp-in-flight'), 'a fresh temp file may belong to a live writer');
  });

  void test('latestVerified skips a truncated, a corrupted and a missing newest blob', async () => {
    const { store } = await newStore();
    const [p0, p1] = [
      await store.save(KEY, { epoch: 0, step: 5, attempt: 1, data: bytes(5000, 0) }, 5),
      await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(5000, 1) }, 5),
    ];
    const p2 = await store.save(KEY, { epoch: 1, step: 7, attempt: 2, data: bytes(5000, 2) }, 5);

    const good = await store.latestVerified(KEY);
    assert.equal(good.checkpoint?.pointer.checkpointId, p2.checkpointId);
    assert.deepEqual(good.checkpoint?.data, bytes(5000, 2));
    assert.deepEqual(good.warnings, []);

    await fs.truncate(fileURLToPath(p2.uri), 100);
    const truncated = await store.latestVerified(KEY);
    assert.equal(truncated.checkpoint?.pointer.checkpointId, p1.checkpointId);
    assert.deepEqual(truncated.checkpoint?.data, bytes(5000, 1));
    assert.equal(truncated.warnings.length, 1);
    assert.match(truncated.warnings[0], new RegExp(`^checkpoint ${p2.checkpointId} \\(epoch 1, step 7\\) skipped: size mismatch \\(expected 5000 bytes, found 100\\)$`));

    // Same length, different content: only the hash can tell.
    const flipped = bytes(5000, 1);
    flipped[42] ^= 0xff;
    await fs.writeFile(fileURLToPath(p1.uri), flipped);
    const corrupted = await store.latestVerified(KEY);
    assert.equal(corrupted.checkpoint?.pointer.checkpointId, p0.checkpointId);
    assert.equal(corrupted.warnings.length, 2);
    assert.match(corrupted.warnings[1], new RegExp(`^checkpoint ${p1.checkpointId} \\(epoch 1, step 0\\) skipped: sha256 mismatch \\(expected ${p1.sha256.slice(0, 12)}…, got [0-9a-f]{12}…\\)$`));
    await assert.rejects(store.read(p1), /sha256 mismatch/);

    await fs.rm(fileURLToPath(p0.uri));
    const none = await store.latestVerified(KEY);
    assert.equal(none.checkpoint, undefined);
    assert.equal(none.warnings.length, 3);
    assert.equal(none.warnings[2], `checkpoint ${p0.checkpointId} (epoch 0, step 5) skipped: file missing`);
    await assert.rejects(store.read(p0), /file missing/);
  });

  void test('latestVerified takes a newer verified extra candidate and skips one outside the directory', async () => {
    const { store } = await newStore();
    const inManifest = await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(2000, 1) }, 5);

    // Written by a worker that crashed after the heartbeat carried its pointer but before the manifest
    // was rewritten.
    const heartbeatData = bytes(3000, 2);
    const heartbeatFile = path.join(store.dirFor(KEY), 'ck-000002-00000000-a1-beef.ckpt');
    await fs.writeFile(heartbeatFile, heartbeatData);
    const heartbeat: CheckpointPointer = {
      checkpointId: 'ck-000002-00000000-a1-beef',
      uri: pathToFileURL(heartbeatFile).href,
      epoch: 2,
      step: 0,
      sha256: sha256(heartbeatData),
      bytes: heartbeatData.byteLength,
      metrics: {},
      savedAt: new Date().toISOString(),
    };
    const chosen = await store.latestVerified(KEY, [null, undefined, heartbeat, inManifest]);
    assert.deepEqual(chosen.checkpoint?.pointer, heartbeat);
    assert.deepEqual(chosen.checkpoint?.data, heartbeatData);
    assert.deepEqual(chosen.warnings, []);

    // A verifiable blob of another experiment must never be resumed from.
    const otherFile = path.join(store.dirFor('sess-1/exp-b'), 'ck-000009-00000000-a1-0000.ckpt');
    await fs.writeFile(otherFile, heartbeatData);
    const outside = { ...heartbeat, checkpointId: 'ck-000009-00000000-a1-0000', uri: pathToFileURL(otherFile).href, epoch: 9 };
    const traversal = { ...outside, checkpointId: 'sneaky', uri: pathToFileURL(path.join(store.dirFor(KEY), '..', 'exp-b', path.basename(otherFile))).href };
    const onlyManifest = await store.latestVerified(KEY, [outside, traversal, { nonsense: true } as unknown as CheckpointPointer]);
    assert.equal(onlyManifest.checkpoint?.pointer.checkpointId, inManifest.checkpointId);
    assert.equal(onlyManifest.warnings.length, 3);
    assert.ok(onlyManifest.warnings.includes('extra checkpoint candidate #2 skipped: checkpointId: expected a non-empty string'), onlyManifest.warnings.join('\n'));
    for (const id of ['ck-000009-00000000-a1-0000', 'sneaky']) {
      assert.ok(onlyManifest.warnings.some((w) => w.startsWith(`checkpoint ${id} (epoch 9, step 0) skipped: outside the checkpoint directory`)), id);
    }
    // read() is bounded by the store's root, not by a key.
    await assert.rejects(store.read({ ...outside, uri: pathToFileURL('/etc/passwd').href }), /outside the checkpoint directory/);
    assert.ok((await store.read(outside)).equals(heartbeatData), 'inside the root is readable');
  });

  void test('an unparseable manifest is reported, never silently replaced', async () => {
    const { store } = await newStore();
    const first = await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(100, 1) }, 5);
    const manifestFile = path.join(store.dirFor(KEY), 'manifest.json');
    await fs.writeFile(manifestFile, '{"version": 1, "checkpoints": [');

    await assert.rejects(store.list(KEY), (err: Error) => err.message.includes(manifestFile) && /corrupt/.test(err.message));
    await assert.rejects(store.save(KEY, { epoch: 2, step: 0, attempt: 1, data: bytes(100, 2) }, 5), /manifest\.json is corrupt/);
    assert.deepEqual(await entries(store.dirFor(KEY)), [path.basename(fileURLToPath(first.uri)), 'manifest.json'].sort(), 'no orphan blob');

    const fallback = await store.latestVerified(KEY, [first]);
    assert.equal(fallback.checkpoint?.pointer.checkpointId, first.checkpointId);
    assert.equal(fallback.warnings.length, 1);
    assert.match(fallback.warnings[0], /manifest\.json is corrupt .*only the checkpoints reported by the caller are considered/);
  });

  void test('rejects malformed keys before touching the filesystem', async () => {
    const { root, store } = await newStore();
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
    await assert.rejects(store.save('a/b', { epoch: 0, step: 0, attempt: 1, data }, 0), /checkpoints to keep: expected an integer >= 1/);
    await assert.rejects(store.save('a/b', { epoch: -1, step: 0, attempt: 1, data }, 1), /checkpoint epoch: expected a non-negative integer/);
    assert.deepEqual(await fs.readdir(root), []);
  });

  void test('adopt records a file inside the directory and refuses anything else', async () => {
    const { root, store } = await newStore();
    const dir = store.dirFor(KEY);
    const data = bytes(70_000, 3);
    await fs.writeFile(path.join(dir, 'external-1.bin'), data);

    const adopted = await store.adopt(KEY, path.join(dir, 'external-1.bin'), { epoch: 4, step: 2, attempt: 1, metrics: { loss: 1.5 } }, 3);
    assert.equal(adopted.checkpointId, 'external-1');
    assert.equal(adopted.sha256, sha256(data));
    assert.equal(adopted.bytes, data.byteLength);
    assert.deepEqual(adopted.metrics, { loss: 1.5 });
    assert.deepEqual(await store.read(adopted), data);

    // Relative paths are taken relative to the checkpoint directory.
    await fs.writeFile(path.join(dir, 'external-2.bin'), data);
    const relative = await store.adopt(KEY, 'external-2.bin', { epoch: 5, step: 0, attempt: 1 }, 3);
    assert.deepEqual((await store.list(KEY)).map((p) => p.checkpointId), [relative.checkpointId, adopted.checkpointId]);

    const meta = { epoch: 6, step: 0, attempt: 1 };
    await fs.writeFile(path.join(root, 'outside.bin'), data);
    await fs.symlink(path.join(root, 'outside.bin'), path.join(dir, 'link.bin'));
    await fs.mkdir(path.join(dir, 'subdir'));
    const hostFile = (await fs.stat('/etc/hostname').catch(() => undefined)) ? '/etc/hostname' : '/etc/passwd';
    await assert.rejects(store.adopt(KEY, hostFile, meta, 3), /outside the checkpoint directory/);
    await assert.rejects(store.adopt(KEY, path.join(dir, 'link.bin'), meta, 3), /outside the checkpoint directory/);
    await assert.rejects(store.adopt(KEY, '../exp-b/../../outside.bin', meta, 3), /outside the checkpoint directory/);
    await assert.rejects(store.adopt(KEY, path.join(dir, 'nope.bin'), meta, 3), /nope\.bin for sess-1\/exp-a: file does not exist/);
    await assert.rejects(store.adopt(KEY, path.join(dir, 'subdir'), meta, 3), /not a regular file/);
    await assert.rejects(store.adopt(KEY, 'manifest.json', meta, 3), /store's own files/);
    assert.equal((await store.list(KEY)).length, 2, 'refusals record nothing');
  });

  void test('concurrent saves for one key all reach the manifest', async () => {
    const { store } = await newStore();
    const saves = await Promise.all(
      [0, 1, 2, 3, 4].map((step) => store.save(KEY, { epoch: 0, step, attempt: 1, data: bytes(50_000 + step, step) }, 100)),
    );
    const listed = await store.list(KEY);
    assert.equal(listed.length, 5);
    assert.deepEqual(new Set(listed.map((p) => p.checkpointId)), new Set(saves.map((p) => p.checkpointId)));
    for (const pointer of saves) assert.deepEqual(await store.read(pointer), bytes(50_000 + pointer.step, pointer.step));

    // With pruning in play, the kept entries and the files on disk still agree.
    await Promise.all([5, 6, 7, 8, 9].map((step) => store.save(KEY, { epoch: 0, step, attempt: 1, data: bytes(10, step) }, 2)));
    const kept = await store.list(KEY);
    assert.deepEqual(kept.map((p) => p.step), [9, 8]);
    const blobs = (await entries(store.dirFor(KEY))).filter((name) => name.endsWith('.ckpt'));
    assert.deepEqual(blobs, kept.map((p) => path.basename(fileURLToPath(p.uri))).sort());
  });

  void test('ENOSPC on a full filesystem leaves the previous checkpoint intact', async () => {
    // A real full filesystem: a 256 KiB tmpfs. Needs root and permission to mount (a container
    // without CAP_SYS_ADMIN cannot); the EFBIG test below covers the same path without either.
    const mountPoint = await newRoot();
    try {
      if (process.getuid?.() !== 0) throw new Error('not root');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`cannot mount a tmpfs for the real ENOSPC test (needs root and mount permission): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
    }
    try {
      const store = new LocalCheckpointStore(mountPoint);
      const first = await store.save(KEY, { epoch: 1, step: 0, attempt: 1, data: bytes(20_000, 1) }, 3);
      const failure = await store.save(KEY, { epoch: 2, step: 0, attempt: 1, data: bytes(512 << 10, 2) }, 3).then(
        () => assert.fail('the save should not fit'),
        (err: Error & { code?: string }) => err,
      );
      const dir = store.dirFor(KEY);
      assert.equal(failure.code, 'ENOSPC');
      assert.match(failure.message, /^checkpoint write failed for sess-1\/exp-a at /);
      assert.ok(failure.message.includes(path.join(dir, '.tmp-ck-000002-00000000-a1-')), failure.message);
      assert.match(failure.message, /\(write\): ENOSPC: no space left on device/);

      assert.deepEqual(await store.list(KEY), [first]);
      assert.deepEqual(await store.read(first), bytes(20_000, 1));
      assert.deepEqual(await entries(dir), [path.basename(fileURLToPath(first.uri)), 'manifest.json'].sort(), 'no temp file left');
      // The space is reclaimed: a checkpoint that fits still saves.
      const third = await store.save(KEY, { epoch: 2, step: 0, attempt: 2, data: bytes(20_000, 3) }, 3);
      assert.deepEqual(await store.list(KEY), [third, first]);

      // A blob that takes exactly the free space: the blob lands, the manifest rewrite fails, and the
      // orphaned blob is removed again.
      const { bavail, bsize } = await fs.statfs(mountPoint);
      const manifestFailure = await store.save(KEY, { epoch: 3, step: 0, attempt: 1, data: bytes(bavail * bsize, 4) }, 3).then(
        () => assert.fail('the manifest should not fit'),
        (err: Error & { code?: string }) => err,
      );
      assert.equal(manifestFailure.code, 'ENOSPC');
      assert.ok(manifestFailure.message.includes(path.join(dir, '.tmp-manifest.json-')), manifestFailure.message);
      assert.deepEqual(await store.list(KEY), [third, first]);
      assert.deepEqual(await entries(dir), [first, third].map((p) => path.basename(fileURLToPath(p.uri))).concat('manifest.json').sort());
    } finally {
      execFileSync('umount', ['-l', mountPoint]);
    }
  });

  void test('EFBIG under a file-size limit leaves the previous checkpoint intact', async () => {
    // RLIMIT_FSIZE is per process, so the store runs in a child under `ulimit -f` (Node ignores
    // SIGXFSZ, so the write fails with EFBIG instead of killing the child).
    const root = await newRoot();
    const script = path.join(root, 'child.ts');
    const storeModule = path.resolve(__dirname, '../../src/activities/checkpoint-store');
    await fs.writeFile(
      script,
      `import { LocalCheckpointStore } from ${JSON.stringify(storeModule)};
       (async () => {
         const store = new LocalCheckpointStore(${JSON.stringify(path.join(root, 'store'))});
         const first = await store.save('s/e', { epoch: 0, step: 1, attempt: 1, data: Buffer.alloc(8192, 1) }, 3);
         let error: { message: string; code?: string } | undefined;
         try {
           await store.save('s/e', { epoch: 0, step: 2, attempt: 1, data: Buffer.alloc(200 * 1024, 2) }, 3);
         } catch (err) {
           error = { message: (err as Error).message, code: (err as { code?: string }).code };
         }
         process.stdout.write(JSON.stringify({ first, error }));
       })();`,
    );
    const projectRoot = path.resolve(__dirname, '../..');
    const { stdout } = await promisify(execFile)('bash', ['-c', 'ulimit -f 64 && exec "$0" --import tsx "$1"', process.execPath, script], {
      cwd: projectRoot,
    });
    const { first, error } = JSON.parse(stdout) as { first: CheckpointPointer; error?: { message: string; code?: string } };
    assert.ok(error, 'the second save should fail');
    assert.equal(error.code, 'EFBIG');
    assert.match(error.message, /^checkpoint write failed for s\/e at .*\/store\/s\/e\/\.tmp-ck-000000-00000002-a1-.* \(write\): EFBIG: file too large/);

    const store = new LocalCheckpointStore(path.join(root, 'store'));
    assert.deepEqual(await store.list('s/e'), [first]);
    assert.deepEqual(await store.read(first), Buffer.alloc(8192, 1));
    assert.deepEqual(await entries(store.dirFor('s/e')), [path.basename(fileURLToPath(first.uri)), 'manifest.json'].sort());
  });
});
