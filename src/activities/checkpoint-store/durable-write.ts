/**
 * The durable local write: temp file in the target's directory, fsync, rename (or link, to publish
 * without replacing), fsync of the directory, hashing the very chunks written. Also directories
 * created durably, and the cleanup of temp files left by crashed writes (never a live writer's).
 * Nothing here knows about manifests or keys.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { CheckpointData } from '../trainer';
import { DurableWriteError, errorCode, errorMessage, type DurableWriteOp } from './errors';
import { BLOCK_HASH_MIN_BYTES, HASH_BLOCK_BYTES, blockSha256Split } from './block-hash';
import { sha256OffThread } from './hash-thread';
import { writeOnThread } from './io-thread';

export const TMP_PREFIX = '.tmp-';
/**
 * A temp file whose owner cannot be checked (written on another host, or by an older version)
 * counts as a crashed write's after this long untouched. One whose owner is a process on this
 * host is removed only once that process is gone, however long it has been frozen.
 */
const FOREIGN_TMP_MS = 3_600_000;
/** Temp names end in `~<pid>@<host>`, so cleanup can tell whether their writer still lives. */
const OWNER = `~${process.pid}@${hostname()}`;
const OWNER_PATTERN = /~(\d+)@([^/]*)$/;
/**
 * Hashing runs on the main thread while writes, reads and fsyncs run in the libuv pool. Hashing in
 * slices and yielding between them lets an I/O completion start the next syscall (notably the
 * final fsync) within one slice's time instead of after the whole hash.
 */
const HASH_SLICE = 4 << 20;
/** Chunks below this are copied into a staging buffer so tiny chunks don't each cost a syscall. */
const SMALL_CHUNK = 256 << 10;
const STAGING_BYTES = 4 << 20;
/** Buffers from this size on are hashed on the helper thread (hash-thread.ts). */
const OFF_THREAD_BYTES = 8 << 20;
/** Buffers up to this size are written by one call to an I/O helper thread (io-thread.ts). */
const THREAD_WRITE_BYTES = 1 << 20;
/** Unit of writes, and of the writeback started behind them (see FlushingWriter). */
const WRITE_PIECE = 32 << 20;

/**
 * What a durable write wrote. `sha256` is the plain SHA-256 of the bytes, or, when
 * `hashBlockBytes` is set (whole buffers from BLOCK_HASH_MIN_BYTES on), their block digest
 * (block-hash.ts), hashed on the helper thread (and the caller's, once the write is down) beside
 * the write.
 */
export interface WrittenBlob {
  readonly sha256: string;
  readonly bytes: number;
  readonly hashBlockBytes?: number;
}

export interface DurableWriteOptions {
  /**
   * Publish with link(2) instead of rename(2): fails with a DurableWriteError of code EEXIST when
   * `target` already exists, so exactly one of several writers racing for a name wins it.
   * @default false (replace `target`)
   */
  readonly exclusive?: boolean;
  /**
   * Whether the calling thread helps hash a block digest once the write syscalls are done (it
   * waits for the write anyway). False when the event loop has other work, such as training.
   * @default true
   */
  readonly hashOnCaller?: boolean;
}

/**
 * Writes `data` to `target` so that after it resolves the file survives a crash with exactly these
 * bytes, and before it resolves `target` is either absent or its previous content: temp file in the
 * same directory, fsync, rename (or link), fsync of the directory. The temp file is removed on
 * failure. The digest is computed from the very chunks written, without copying large chunks: see
 * WrittenBlob for which one.
 */
export async function writeFileDurably(target: string, data: CheckpointData, options: DurableWriteOptions = {}): Promise<WrittenBlob> {
  const dir = path.dirname(target);
  const tmp = tempName(target);
  if (data instanceof Uint8Array && data.byteLength <= THREAD_WRITE_BYTES) {
    // Manifests, metric points, small states: the whole sequence in one trip (io-thread.ts).
    const done = await writeOnThread(target, tmp, data, options.exclusive === true);
    if (done.error) {
      const { op, path: at, message, code, renamed } = done.error;
      throw new DurableWriteError(op, at, message, { code, renamed, cause: Object.assign(new Error(message), { code }) });
    }
    return { sha256: done.sha256, bytes: done.bytes };
  }
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    fh = await step('open', tmp, () => fs.open(tmp, 'wx', 0o644));
    const written = data instanceof Uint8Array ? await writeWhole(fh, tmp, data, options.hashOnCaller !== false) : await writeStream(fh, tmp, data);
    const handle = fh;
    fh = undefined;
    await step('close', tmp, () => handle.close());
    if (options.exclusive) {
      await step('link', target, () => fs.link(tmp, target));
      renamed = true;
      await removeFile(tmp);
    } else {
      await step('rename', target, () => fs.rename(tmp, target));
      renamed = true;
    }
    await step('fsync directory', dir, () => fsyncDir(dir));
    return written;
  } catch (err) {
    // close() waits for operations still pending on the handle, so the unlink can't race a write.
    if (fh) await fh.close().catch(() => undefined);
    await removeFile(tmp).catch(() => undefined);
    if (err instanceof DurableWriteError) {
      throw renamed === err.renamed ? err : new DurableWriteError(err.op, err.path, err.causeMessage, { code: err.code, renamed, cause: err.cause });
    }
    throw new DurableWriteError('read data', tmp, errorMessage(err), { code: errorCode(err), renamed, cause: err });
  }
}

/**
 * The whole state is in memory: hash it while the pool writes and flushes it, on the helper thread
 * when it is large (the event loop, which a background persist shares with training, then only
 * copies it in pieces), else here. From BLOCK_HASH_MIN_BYTES on, one SHA-256 stream would be
 * slower than the write, so the digest is the block digest, its blocks split between the helper
 * thread and this one.
 */
async function writeWhole(fh: FileHandle, tmp: string, data: Uint8Array, hashHere: boolean): Promise<WrittenBlob> {
  const writer = new FlushingWriter(fh, tmp);
  const issued = writer.write(data, false);
  const writing = (async () => {
    await issued;
    await writer.finish();
  })();
  if (data.byteLength >= BLOCK_HASH_MIN_BYTES) {
    // This thread joins the hash once the last write returned: until then the other core copies
    // the bytes into the page cache, and the final fsync leaves it idle.
    const [, sha256] = await Promise.all([writing, blockSha256Split(data, HASH_BLOCK_BYTES, hashHere ? issued : null)]);
    return { bytes: data.byteLength, sha256, hashBlockBytes: HASH_BLOCK_BYTES };
  }
  const hashing = async () => {
    if (data.byteLength >= OFF_THREAD_BYTES) return sha256OffThread(data);
    const hash = createHash('sha256');
    await hashInSlices(hash, data);
    return hash.digest('hex');
  };
  const [, sha256] = await Promise.all([writing, hashing()]);
  return { bytes: data.byteLength, sha256 };
}

async function writeStream(fh: FileHandle, tmp: string, data: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<WrittenBlob> {
  const hash = createHash('sha256');
  if (data === null || typeof data !== 'object' || !(Symbol.asyncIterator in data || Symbol.iterator in data)) {
    throw new TypeError(`checkpoint data: expected a Uint8Array or an (async) iterable of Uint8Array chunks, received ${typeof data}`);
  }
  const writer = new FlushingWriter(fh, tmp);
  let staging: Buffer | undefined;
  let staged = 0;
  let total = 0;
  const flush = async () => {
    if (staged === 0 || !staging) return;
    const filled = staging.subarray(0, staged);
    staged = 0;
    await writer.write(filled, true);
  };
  let index = 0;
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`checkpoint data chunk ${index}: expected a Uint8Array, received ${chunk === null ? 'null' : typeof chunk}`);
    }
    index++;
    total += chunk.byteLength;
    if (chunk.byteLength < SMALL_CHUNK) {
      // Copying a small chunk is cheaper than a syscall, and the copy is hashed right away so a
      // producer that reuses its buffer after the next pull can't change what was hashed.
      staging ??= Buffer.allocUnsafe(STAGING_BYTES);
      if (staged + chunk.byteLength > staging.byteLength) await flush();
      staging.set(chunk, staged);
      staged += chunk.byteLength;
      hash.update(chunk);
    } else {
      await flush();
      // Written and hashed before the next pull, for the same reason.
      await Promise.all([writer.write(chunk, true), hashInSlices(hash, chunk)]);
    }
  }
  await flush();
  await writer.finish();
  return { bytes: total, sha256: hash.digest('hex') };
}

/**
 * Sequential writes in pieces, starting writeback (an fdatasync in the background) as soon as the
 * first piece is down and again whenever the previous one finished. Without it the disk idles until
 * the final fsync, and a large write also runs into the kernel's dirty-page throttling; with it the
 * final fsync has little left to flush, which is what hides the hashing time.
 */
class FlushingWriter {
  private background: Promise<void> | undefined;
  private backgroundError: unknown;
  private unflushed = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly file: string,
  ) {}

  /** `more`: whether further writes may follow (a stream); a lone buffer's last piece starts no writeback. */
  async write(bytes: Uint8Array, more: boolean): Promise<void> {
    for (let offset = 0; offset < bytes.byteLength; offset += WRITE_PIECE) {
      this.throwBackgroundError();
      const piece = bytes.subarray(offset, offset + WRITE_PIECE);
      await step('write', this.file, () => writeFully(this.fh, piece));
      this.unflushed += piece.byteLength;
      const last = !more && offset + WRITE_PIECE >= bytes.byteLength;
      // Small files skip it: a second flush would cost more than it overlaps.
      if (this.background || last || this.unflushed < WRITE_PIECE) continue;
      this.unflushed = 0;
      this.background = this.fh.datasync().then(
        () => {
          this.background = undefined;
        },
        (err: unknown) => {
          this.backgroundError ??= err;
          this.background = undefined;
        },
      );
    }
  }

  async finish(): Promise<void> {
    await this.background;
    this.throwBackgroundError();
    await step('fsync', this.file, () => this.fh.sync());
  }

  private throwBackgroundError(): void {
    const err = this.backgroundError;
    if (err === undefined) return;
    throw new DurableWriteError('fsync', this.file, errorMessage(err), { code: errorCode(err), renamed: false, cause: err });
  }
}

/** Runs one I/O step, turning its failure into a DurableWriteError naming the step and the path. */
export async function step<T>(op: DurableWriteOp, file: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DurableWriteError) throw err;
    throw new DurableWriteError(op, file, errorMessage(err), { code: errorCode(err), renamed: false, cause: err });
  }
}

async function writeFully(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, offset, bytes.byteLength - offset);
    if (bytesWritten <= 0) throw Object.assign(new Error('EIO: write made no progress'), { code: 'EIO' });
    offset += bytesWritten;
  }
}

export async function hashInSlices(hash: Hash, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength; offset += HASH_SLICE) {
    if (offset > 0) await yieldToIo();
    hash.update(bytes.subarray(offset, offset + HASH_SLICE));
  }
}

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems (and Windows) cannot fsync a directory; the rename is then as durable as it gets.
    if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'].includes(errorCode(err) ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

/**
 * Removes one file; a missing one is not an error. One `unlink` (one trip to the thread pool),
 * where `fs.rm(file, { force: true })` costs three (two `lstat`s first): this runs several times
 * per checkpoint, on the cores the training shares.
 */
export async function removeFile(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}

/** A temp file name next to `target`, naming this process as its writer. */
export function tempName(target: string): string {
  return path.join(path.dirname(target), `${TMP_PREFIX}${path.basename(target)}.${randomBytes(4).toString('hex')}${OWNER}`);
}

/**
 * Creates `dir` and any missing parents, fsyncing each new directory into its parent, so a crash
 * cannot lose the directory a durable file was written into.
 */
export function mkdirDurably(dir: string): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    if (exists(at)) break;
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  if (missing.length === 0) return;
  mkdirSync(dir, { recursive: true });
  for (const created of missing) fsyncDirSync(path.dirname(created));
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (err) {
    if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'].includes(errorCode(err) ?? '')) throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Deletes `.tmp-*` files left by writes that crashed; best effort, as they only cost space. A file
 * whose writer is a live process on this host is never touched (a frozen writer may resume).
 */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const file = path.join(dir, name);
    try {
      const stats = await fs.lstat(file);
      if (!stats.isFile()) continue;
      const owner = OWNER_PATTERN.exec(name);
      const local = owner !== null && owner[2] === hostname();
      const stale = local ? !processAlive(Number(owner[1])) : now - stats.mtimeMs > FOREIGN_TMP_MS;
      if (stale) await removeFile(file);
    } catch {
      // Another writer may have renamed or removed it meanwhile.
    }
  }
}

/** Whether a process with this pid exists on this host (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) === 'EPERM';
  }
}
