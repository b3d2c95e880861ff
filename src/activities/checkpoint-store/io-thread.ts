/**
 * Whole sequences of file syscalls on helper threads: a small durable write (open, write, fsync,
 * close, rename or link, unlink, directory fsync) and the hash + fsync of a file being adopted.
 * Each is one message to a helper and one back, where the promise API costs a trip to the libuv
 * pool per syscall. Those trips are not free: every one wakes a pool thread and then the event
 * loop, on the same two cores the trainer computes on, and adopting one checkpoint took about 25
 * of them (measured: 1.8 ms of worker CPU per adopt through the pool, 0.55 ms for the same
 * syscalls made synchronously).
 *
 * Up to POOL helpers run the sequences, so one slow fsync does not hold up every other write of
 * the process; a helper keeps the process alive only while it has work. Failures come back as the
 * step that failed, its path and the system error, and are rethrown as the DurableWriteError the
 * promise-based code throws. If a helper cannot be started or dies, its pending calls fail with
 * that error (a write then fails like any other I/O error; the next call starts a new helper).
 */
import { Worker } from 'node:worker_threads';
import type { DurableWriteOp } from './errors';

const POOL = 4;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { createHash } = require('node:crypto');
const READ = Buffer.allocUnsafe(1 << 20);
const NO_DIR_FSYNC = ['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'];
function fsyncDir(dir) {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } catch (e) { if (!NO_DIR_FSYNC.includes(e.code)) throw e; } finally { fs.closeSync(fd); }
}
function write(m) {
  let fd, op = 'open', at = m.tmp, renamed = false;
  try {
    fd = fs.openSync(m.tmp, 'wx', 0o644);
    op = 'write';
    for (let off = 0; off < m.data.byteLength; ) {
      const n = fs.writeSync(fd, m.data, off, m.data.byteLength - off);
      if (n <= 0) throw Object.assign(new Error('EIO: write made no progress'), { code: 'EIO' });
      off += n;
    }
    op = 'fsync'; fs.fsyncSync(fd);
    op = 'close'; const f = fd; fd = undefined; fs.closeSync(f);
    at = m.target;
    if (m.exclusive) {
      op = 'link'; fs.linkSync(m.tmp, m.target); renamed = true;
      try { fs.unlinkSync(m.tmp); } catch (e) { if (e.code !== 'ENOENT') throw e; }
    } else {
      op = 'rename'; fs.renameSync(m.tmp, m.target); renamed = true;
    }
    op = 'fsync directory'; at = path.dirname(m.target); fsyncDir(at);
    return { sha256: createHash('sha256').update(m.data).digest('hex'), bytes: m.data.byteLength };
  } catch (e) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    try { fs.unlinkSync(m.tmp); } catch {}
    return { error: { op, path: at, message: String(e && e.message), code: e && e.code, renamed } };
  }
}
function hashFile(m) {
  let fd;
  try {
    fd = fs.openSync(m.file, 'r');
    const hash = createHash('sha256');
    let bytes = 0;
    for (;;) {
      const n = fs.readSync(fd, READ, 0, READ.length, null);
      if (n === 0) break;
      hash.update(READ.subarray(0, n));
      bytes += n;
    }
    fs.fsyncSync(fd);
    for (const dir of m.dirs) fsyncDir(dir);
    return { sha256: hash.digest('hex'), bytes };
  } catch (e) {
    return { error: { op: 'read data', path: m.file, message: String(e && e.message), code: e && e.code, renamed: false } };
  } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
  }
}
parentPort.on('message', (m) => {
  parentPort.postMessage({ id: m.id, result: m.kind === 'write' ? write(m) : hashFile(m) });
});
`;

/** A failed step, as the helper reports it. */
export interface IoFailure {
  readonly op: DurableWriteOp;
  readonly path: string;
  readonly message: string;
  readonly code: string | undefined;
  readonly renamed: boolean;
}

export type IoResult = { readonly sha256: string; readonly bytes: number; readonly error?: undefined } | { readonly error: IoFailure };

interface Helper {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve(r: IoResult): void; reject(err: unknown): void }>;
}

const helpers: Helper[] = [];
let nextId = 0;

function startHelper(): Helper {
  const worker = new Worker(SOURCE, { eval: true });
  worker.unref();
  const helper: Helper = { worker, pending: new Map() };
  worker.on('message', (m: { id: number; result: IoResult }) => {
    const p = helper.pending.get(m.id);
    if (!p) return;
    helper.pending.delete(m.id);
    if (helper.pending.size === 0) worker.unref();
    p.resolve(m.result);
  });
  const fail = (err: unknown) => {
    const at = helpers.indexOf(helper);
    if (at >= 0) helpers.splice(at, 1);
    for (const [id, p] of helper.pending) {
      helper.pending.delete(id);
      p.reject(err);
    }
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`the file I/O helper thread exited (code ${code})`)));
  helpers.push(helper);
  return helper;
}

/** An idle helper, else a new one while there are fewer than POOL, else the least busy. */
function pick(): Helper {
  const idle = helpers.find((h) => h.pending.size === 0);
  if (idle) return idle;
  if (helpers.length < POOL) return startHelper();
  return helpers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
}

function call(message: Record<string, unknown>): Promise<IoResult> {
  const helper = pick();
  const id = nextId++;
  return new Promise<IoResult>((resolve, reject) => {
    helper.pending.set(id, { resolve, reject });
    helper.worker.ref();
    helper.worker.postMessage({ ...message, id });
  });
}

/**
 * Writes `data` to `tmp`, fsyncs and closes it, renames it to `target` (or links it there and
 * unlinks `tmp`, with `exclusive`), fsyncs the directory; on failure closes and removes `tmp`.
 * `data` is copied to the helper.
 */
export function writeOnThread(target: string, tmp: string, data: Uint8Array, exclusive: boolean): Promise<IoResult> {
  return call({ kind: 'write', target, tmp, data, exclusive });
}

/** sha256 and size of `file` read to its end, then an fsync of it and of each of `dirs`. */
export function hashAndSyncOnThread(file: string, dirs: readonly string[]): Promise<IoResult> {
  return call({ kind: 'hash', file, dirs: [...dirs] });
}
