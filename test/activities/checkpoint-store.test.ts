/**
 * Tests of the local checkpoint store against real files in a temporary directory: the shared
 * contract suite (test/activities/checkpoint-store-contract.ts), then what only the local store
 * has: its on-disk layout, the durable write, temp-file cleanup that spares live writers, new
 * directories fsynced into their parents, adoption of external files, and real write failures
 * (ENOSPC on a tiny tmpfs, EFBIG under a file-size limit) leaving the previous checkpoint intact.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { LocalCheckpointStore, writeFileDurably } from '../../src/activities/checkpoint-store';
import type { CheckpointPointer } from '../../src/shared/types';
import { KEY, bytes, checkpointStoreContract, sha256, type StoreHarness } from './checkpoint-store-contract';
import { historyContract } from './history-contract';
import { withTmpfs } from '../helpers/tmpfs';

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

const STORE_MODULE = path.resolve(__dirname, '../../src/activities/checkpoint-store');

/** Writes a script for a child process that imports LocalCheckpointStore and runs `body`. */
async function childScript(root: string, body: string): Promise<string> {
  const script = path.join(root, 'child.ts');
  await fs.writeFile(script, `import { LocalCheckpointStore } from ${JSON.stringify(STORE_MODULE)};\n${body}`);
  return script;
}

async function entries(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

async function currentManifestFile(dir: string): Promise<string> {
  const names = (await entries(dir)).filter((name) => /^manifest-\d{12}\.json$/.test(name));
  assert.ok(names.length > 0, `a manifest generation in ${dir}`);
  return path.join(dir, names[names.length - 1]);
}

/** Every file under `dir` (not in run places below it), minus manifests, by name. */
async function storedFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory() && entry.name.startsWith('attempt-')) out.push(...(await storedFiles(path.join(dir, entry.name))));
    else if (entry.isFile() && !/^manifest(-\d{12})?\.json$/.test(entry.name)) out.push(entry.name);
  }
  return out.sort();
}

const harness = async (): Promise<StoreHarness> => {
  const { root, store } = await newStore();
  return {
    store,
    another: () => new LocalCheckpointStore(root),
    overwriteBlob: (pointer, data) => fs.writeFile(fileURLToPath(pointer.uri), data),
    removeBlob: (pointer) => fs.rm(fileURLToPath(pointer.uri)),
    stored: (key, runId) => storedFiles(path.join(root, ...key.split('/'), ...(runId ? [`run-${runId}`] : []))),
    blobName: (pointer) => path.basename(fileURLToPath(pointer.uri)),
    isEmpty: async () => (await fs.readdir(root)).length === 0,
    inChild: { module: STORE_MODULE, exportName: 'LocalCheckpointStore', args: [root] },
  };
};
checkpointStoreContract('local directory', harness);
historyContract('local directory', harness);

void describe('LocalCheckpointStore', () => {
  void test('lays out a key as a directory, each run as a place below it, each manifest generation as a file', async () => {
    const { root, store } = await newStore();
    const pointer = await store.save(KEY, { epoch: 2, step: 30, attempt: 1, data: bytes(1000, 1) }, 3);
    const file = fileURLToPath(pointer.uri);
    assert.equal(path.dirname(file), store.dirFor(KEY));
    assert.equal(store.dirFor(KEY), path.join(root, 'sess-1', 'exp-a'));
    assert.match(path.basename(file), /^ck-000002-00000030-a1-[0-9a-f]+\.ckpt$/);
    assert.equal(pointer.checkpointId, path.basename(file, '.ckpt'));
    const manifest = JSON.parse(await fs.readFile(path.join(store.dirFor(KEY), 'manifest-000000000001.json'), 'utf8'));
    assert.deepEqual(manifest, { version: 1, key: KEY, fence: null, checkpoints: [pointer] });

    const runId = '0b1c2d3e-0000-4000-8000-000000000001';
    const token = { invocation: 1, attempt: 2 };
    await store.registerAttempt(KEY, runId, token);
    const inRun = await store.save(KEY, { epoch: 0, step: 1, attempt: 2, data: bytes(10, 2), runId, fence: token }, 3);
    const runDir = path.join(store.dirFor(KEY), `run-${runId}`);
    assert.equal(store.dirFor(KEY, runId), runDir);
    assert.equal(path.dirname(fileURLToPath(inRun.uri)), runDir);
    assert.equal(inRun.runId, runId);
    assert.equal(store.dirFor(KEY, runId, token), path.join(runDir, 'attempt-1-2'), 'external trainers write per attempt');
    const runManifest = JSON.parse(await fs.readFile(await currentManifestFile(runDir), 'utf8'));
    assert.deepEqual(runManifest, { version: 1, key: KEY, fence: token, checkpoints: [inRun] });
    // Superseded generations are pruned behind the current one, keeping a few.
    for (let step = 2; step < 20; step++) await store.save(KEY, { epoch: 0, step, attempt: 2, data: bytes(10, step), runId, fence: token }, 3);
    const generations = (await entries(runDir)).filter((name) => name.startsWith('manifest-'));
    assert.deepEqual(generations, Array.from({ length: 8 }, (_, i) => `manifest-${String(13 + i).padStart(12, '0')}.json`));
  });

  void test('reads a manifest.json written before generations, and supersedes it on the next write', async () => {
    const { store } = await newStore();
    const dir = store.dirFor(KEY);
    const blob = path.join(dir, 'ck-000001-00000000-a1-0000.ckpt');
    await fs.writeFile(blob, bytes(500, 1));
    const legacy: CheckpointPointer = {
      checkpointId: 'ck-000001-00000000-a1-0000',
      uri: pathToFileURL(blob).href,
      epoch: 1,
      step: 0,
      sha256: sha256(bytes(500, 1)),
      bytes: 500,
      metrics: {},
      savedAt: new Date().toISOString(),
    };
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ version: 1, key: KEY, checkpoints: [legacy] }));
    assert.deepEqual(await store.list(KEY), [legacy]);
    assert.equal((await store.latestVerified(KEY)).checkpoint?.pointer.checkpointId, legacy.checkpointId);
    const next = await store.save(KEY, { epoch: 2, step: 0, attempt: 1, data: bytes(10, 2) }, 5);
    assert.deepEqual(await store.list(KEY), [next, legacy]);
    assert.ok(!(await entries(dir)).includes('manifest.json'));
  });

  void test('writeFileDurably replaces a file atomically, or with `exclusive` refuses to', async () => {
    const root = await newRoot();
    const target = path.join(root, 'blob');
    await fs.writeFile(target, 'old');
    const data = bytes(3 << 20, 9);
    assert.deepEqual(await writeFileDurably(target, data), { sha256: sha256(data), bytes: data.byteLength });
    assert.deepEqual(await fs.readFile(target), data);
    await assert.rejects(writeFileDurably(target, bytes(10, 1), { exclusive: true }), (err: Error & { code?: string }) => err.code === 'EEXIST');
    assert.deepEqual(await fs.readFile(target), data);
    await writeFileDurably(path.join(root, 'new'), bytes(10, 1), { exclusive: true });
    assert.deepEqual(await entries(root), ['blob', 'new'], 'no temp file left');
  });

  void test("temp-file cleanup removes a dead writer's file and never a live writer's, however old", async () => {
    const { store } = await newStore();
    const dir = store.dirFor(KEY);
    const host = os.hostname();
    // A real live process (frozen writers look just like this one) and a real dead one.
    const live = spawn('sleep', ['600'], { stdio: 'ignore' });
    const dead = spawn('true', [], { stdio: 'ignore' });
    await new Promise((resolve) => dead.once('exit', resolve));
    try {
      const old = new Date(Date.now() - 5 * 3_600_000);
      const names = {
        live: `.tmp-ck-a.ckpt.0000~${live.pid}@${host}`,
        dead: `.tmp-ck-b.ckpt.0000~${dead.pid}@${host}`,
        foreignOld: `.tmp-ck-c.ckpt.0000~1@another-host`,
        foreignFresh: `.tmp-ck-d.ckpt.0000~1@another-host`,
        unnamedOld: '.tmp-crashed-by-an-older-version',
      };
      for (const name of Object.values(names)) await fs.writeFile(path.join(dir, name), 'x');
      for (const name of [names.live, names.dead, names.foreignOld, names.unnamedOld]) await fs.utimes(path.join(dir, name), old, old);
      await store.save(KEY, { epoch: 0, step: 0, attempt: 1, data: bytes(10, 1) }, 3);
      const left = await entries(dir);
      assert.ok(left.includes(names.live), 'a live writer keeps its temp file');
      assert.ok(!left.includes(names.dead), "a dead writer's temp file is removed");
      assert.ok(!left.includes(names.foreignOld) && !left.includes(names.unnamedOld), 'an unverifiable owner is judged by age');
      assert.ok(left.includes(names.foreignFresh), 'a fresh temp file of an unverifiable owner is kept');
    } finally {
      live.kill('SIGKILL');
    }
  });

  void test('new directories are fsynced into their parents (seen by strace)', async () => {
    const root = await newRoot();
    const script = await childScript(root, `new LocalCheckpointStore(${JSON.stringify(path.join(root, 'store'))}).dirFor('s/e', 'run-1');`);
    // strace is the real observer of fsync(2): the test fails, not skips, where it is missing.
    const { stderr } = await promisify(execFile)('strace', ['-f', '-e', 'trace=mkdir,mkdirat,openat,fsync', '-e', 'signal=none', process.execPath, '--import', 'tsx', script], {
      cwd: path.resolve(__dirname, '../..'),
      maxBuffer: 64 << 20,
    });
    const lines = stderr.split('\n');
    const opened = new Map<string, string>();
    const synced = new Set<string>();
    for (const line of lines) {
      const open = /openat\(AT_FDCWD, "([^"]+)", [^)]*\) = (\d+)/.exec(line);
      if (open) opened.set(open[2], open[1]);
      const sync = /fsync\((\d+)\) += 0/.exec(line);
      if (sync && opened.has(sync[1])) synced.add(opened.get(sync[1]) as string);
    }
    for (const dir of ['store', 'store/s', 'store/s/e', 'store/s/e/run-run-1']) {
      assert.ok(lines.some((l) => l.includes(`"${path.join(root, dir)}"`) && /mkdir/.test(l)), `${dir} created`);
      assert.ok(synced.has(path.dirname(path.join(root, dir))), `the parent of ${dir} fsynced; synced: ${[...synced].join(', ')}`);
    }
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
    const manifestFile = await currentManifestFile(store.dirFor(KEY));
    await fs.writeFile(manifestFile, '{"version": 1, "checkpoints": [');

    await assert.rejects(store.list(KEY), (err: Error) => err.message.includes(manifestFile) && /corrupt/.test(err.message));
    await assert.rejects(store.save(KEY, { epoch: 2, step: 0, attempt: 1, data: bytes(100, 2) }, 5), /manifest-000000000001\.json is corrupt/);
    assert.deepEqual(await entries(store.dirFor(KEY)), [path.basename(fileURLToPath(first.uri)), path.basename(manifestFile)].sort(), 'no orphan blob');

    const fallback = await store.latestVerified(KEY, [first]);
    assert.equal(fallback.checkpoint?.pointer.checkpointId, first.checkpointId);
    assert.equal(fallback.warnings.length, 1);
    assert.match(fallback.warnings[0], /manifest-000000000001\.json is corrupt .*only the checkpoints reported by the caller are considered/);
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
    await assert.rejects(store.adopt(KEY, path.basename(await currentManifestFile(dir)), meta, 3), /store's own files/);
    assert.equal((await store.list(KEY)).length, 2, 'refusals record nothing');
  });

  void test('adopt accepts files in an attempt directory of the run and refuses the store\'s own files there', async () => {
    const { store } = await newStore();
    const runId = 'r-1';
    const token = { invocation: 0, attempt: 1 };
    await store.registerAttempt(KEY, runId, token);
    const attemptDir = store.dirFor(KEY, runId, token);
    await fs.writeFile(path.join(attemptDir, 'epoch-1.bin'), bytes(100, 1));
    const adopted = await store.adopt(KEY, path.join(attemptDir, 'epoch-1.bin'), { epoch: 1, step: 0, attempt: 1, runId, fence: token }, 3);
    assert.deepEqual(await store.read(adopted), bytes(100, 1));
    assert.deepEqual(await store.list(KEY, { runId }), [adopted]);
    const manifest = await currentManifestFile(store.dirFor(KEY, runId));
    await assert.rejects(store.adopt(KEY, manifest, { epoch: 2, step: 0, attempt: 1, runId, fence: token }, 3), /store's own files/);
  });

  void test('ENOSPC on a full filesystem leaves the previous checkpoint intact', async () => {
    // A real full filesystem: a 256 KiB tmpfs. Needs root and permission to mount (a container
    // without CAP_SYS_ADMIN cannot); the EFBIG test below covers the same path without either.
    const mountPoint = await newRoot();
    await withTmpfs(mountPoint, '256k', async () => {
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
      assert.deepEqual(await entries(dir), [path.basename(fileURLToPath(first.uri)), 'manifest-000000000001.json'].sort(), 'no temp file left');
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
      assert.ok(manifestFailure.message.includes(path.join(dir, '.tmp-manifest-000000000003.json.')), manifestFailure.message);
      assert.deepEqual(await store.list(KEY), [third, first]);
      const files = await entries(dir);
      assert.deepEqual(files.filter((name) => !name.startsWith('manifest-')), [first, third].map((p) => path.basename(fileURLToPath(p.uri))).sort());
      assert.deepEqual(files.filter((name) => name.startsWith('manifest-')), ['manifest-000000000001.json', 'manifest-000000000002.json'], 'no temp file left');
    });
  });

  void test('EFBIG under a file-size limit leaves the previous checkpoint intact', async () => {
    // RLIMIT_FSIZE is per process, so the store runs in a child under `ulimit -f` (Node ignores
    // SIGXFSZ, so the write fails with EFBIG instead of killing the child).
    const root = await newRoot();
    const script = await childScript(
      root,
      `(async () => {
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
    assert.deepEqual(await entries(store.dirFor('s/e')), [path.basename(fileURLToPath(first.uri)), 'manifest-000000000001.json'].sort());
  });
});
