/**
 * The I/O helper threads (src/activities/checkpoint-store/io-thread.ts) on real files: what a
 * write leaves on disk when it succeeds and when a step fails, which step and code a failure names,
 * hashes of files larger than the helper's read buffer, and many calls at once over the pool.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { hashAndSyncOnThread, writeOnThread } from '../../src/activities/checkpoint-store/io-thread';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'io-thread-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('a write lands whole under its name, with the sha256 of its bytes, and no temp file is left', async () => {
  const data = randomBytes(300_000);
  const target = path.join(dir, 'a.bin');
  const done = await writeOnThread(target, path.join(dir, '.tmp-a'), data, false);
  assert.equal(done.error, undefined);
  assert.deepEqual(done, { sha256: sha(data), bytes: data.byteLength });
  assert.deepEqual(fs.readFileSync(target), data);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-')), []);
  // Replacing (rename) works; an exclusive write to a taken name fails at `link` with EEXIST and
  // leaves the old content and no temp file.
  const again = await writeOnThread(target, path.join(dir, '.tmp-a2'), Buffer.from('new'), false);
  assert.equal(again.error, undefined);
  assert.equal(fs.readFileSync(target, 'utf8'), 'new');
  const taken = await writeOnThread(target, path.join(dir, '.tmp-a3'), Buffer.from('other'), true);
  assert.ok(taken.error, 'an exclusive write to an existing name fails');
  assert.equal(taken.error.op, 'link');
  assert.equal(taken.error.code, 'EEXIST');
  assert.equal(taken.error.path, target);
  assert.equal(taken.error.renamed, false);
  assert.equal(fs.readFileSync(target, 'utf8'), 'new');
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-')), []);
});

test('a write into a missing directory fails at open with ENOENT, naming the temp path', async () => {
  const tmp = path.join(dir, 'missing', '.tmp-b');
  const done = await writeOnThread(path.join(dir, 'missing', 'b'), tmp, Buffer.from('x'), true);
  assert.ok(done.error);
  assert.equal(done.error.op, 'open');
  assert.equal(done.error.code, 'ENOENT');
  assert.equal(done.error.path, tmp);
  assert.match(done.error.message, /ENOENT/);
});

test('hash and sync: a file several times the read buffer hashes to its sha256; a missing one fails with ENOENT', async () => {
  const data = randomBytes((3 << 20) + 12345);
  const file = path.join(dir, 'big.bin');
  fs.writeFileSync(file, data);
  const done = await hashAndSyncOnThread(file, [dir]);
  assert.deepEqual(done, { sha256: sha(data), bytes: data.byteLength });
  const missing = await hashAndSyncOnThread(path.join(dir, 'nope.bin'), [dir]);
  assert.ok(missing.error);
  assert.equal(missing.error.code, 'ENOENT');
  const badDir = await hashAndSyncOnThread(file, [path.join(dir, 'no-such-dir')]);
  assert.equal(badDir.error?.code, 'ENOENT', 'a directory that cannot be synced fails the call');
});

test('64 calls at once over the pool all complete, each with its own bytes', async () => {
  const items = Array.from({ length: 64 }, (_, i) => ({ target: path.join(dir, `many-${i}`), data: randomBytes(1000 + i) }));
  const results = await Promise.all(items.map((it, i) => writeOnThread(it.target, path.join(dir, `.tmp-many-${i}`), it.data, true)));
  results.forEach((r, i) => {
    assert.equal(r.error, undefined, `write ${i}`);
    assert.equal(r.error === undefined && r.sha256, sha(items[i].data));
    assert.deepEqual(fs.readFileSync(items[i].target), items[i].data);
  });
});
