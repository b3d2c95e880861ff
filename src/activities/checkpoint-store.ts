/**
 * The local-disk checkpoint store: durable blob writes (temp file, fsync, rename, directory
 * fsync), the per-key manifest, pruning, verification on read and the choice of the checkpoint
 * a run resumes from. Everything that touches checkpoint files on disk belongs here; what a
 * trainer sees of it lives in trainer.ts and the contract in checkpoint-store-types.ts.
 *
 * Layout: `<root>/<sessionId>/<experimentId>/` holds `ck-<epoch>-<step>-a<attempt>-<suffix>.ckpt`
 * blobs, `manifest.json` (oldest entry first) and, only while a write is in flight or after a
 * crash, `.tmp-*` files.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { idProblem } from '../shared/ids';
import type { CheckpointPointer, Metrics } from '../shared/types';
import type { CheckpointStore, LatestVerifiedResult, SaveCheckpointInput } from './checkpoint-store-types';
import type { CheckpointData } from './trainer';

const MANIFEST = 'manifest.json';
const TMP_PREFIX = '.tmp-';
/** A temp file untouched for this long belongs to a crashed write (live writers keep its mtime fresh). */
const STALE_TMP_MS = 60_000;
/**
 * Hashing runs on the main thread while writes, reads and fsyncs run in the libuv pool. Hashing in
 * slices and yielding between them lets an I/O completion start the next syscall (notably the
 * final fsync) within one slice's time instead of after the whole hash.
 */
const HASH_SLICE = 4 << 20;
/** Reads of blobs being verified or adopted. */
const READ_PIECE = 16 << 20;
/** Chunks below this are copied into a staging buffer so tiny chunks don't each cost a syscall. */
const SMALL_CHUNK = 256 << 10;
const STAGING_BYTES = 4 << 20;
/** Unit of writes, and of the writeback started behind them (see FlushingWriter). */
const WRITE_PIECE = 32 << 20;

interface Manifest {
  readonly version: 1;
  readonly key: string;
  readonly checkpoints: CheckpointPointer[];
}

interface ParsedKey {
  readonly key: string;
  readonly dir: string;
}

type DurableWriteOp = 'create directory' | 'open' | 'write' | 'read data' | 'fsync' | 'close' | 'rename' | 'fsync directory';

/** A failed durable write: which step failed, on which path, with the system error's `code`. */
export class DurableWriteError extends Error {
  readonly code: string | undefined;
  /** True when the new file had already replaced the target (only the directory fsync failed). */
  readonly renamed: boolean;

  constructor(
    readonly op: DurableWriteOp,
    readonly path: string,
    readonly causeMessage: string,
    options: { code: string | undefined; renamed: boolean; cause: unknown },
  ) {
    super(`${op} ${path}: ${causeMessage}`, { cause: options.cause });
    this.name = 'DurableWriteError';
    this.code = options.code;
    this.renamed = options.renamed;
  }
}

/** Why a blob could not be used; `detail` is phrased to follow "skipped: " in a warning. */
export class CheckpointReadError extends Error {
  constructor(
    readonly checkpointId: string,
    readonly file: string,
    readonly reason: 'missing' | 'outside' | 'size' | 'sha256' | 'invalid' | 'io',
    readonly detail: string,
    readonly code?: string,
  ) {
    super(`checkpoint ${checkpointId} at ${file}: ${detail}`);
    this.name = 'CheckpointReadError';
  }
}

/** The manifest exists but cannot be read or understood. */
export class ManifestError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

/**
 * Writes `data` to `target` so that after it resolves the file survives a crash with exactly these
 * bytes, and before it resolves `target` is either absent or its previous content: temp file in the
 * same directory, fsync, rename, fsync of the directory. The temp file is removed on failure.
 * The sha256 is computed from the very chunks written, without copying large chunks.
 */
export async function writeFileDurably(target: string, data: CheckpointData): Promise<{ sha256: string; bytes: number }> {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `${TMP_PREFIX}${path.basename(target)}-${randomBytes(4).toString('hex')}`);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    fh = await step('open', tmp, () => fs.open(tmp, 'wx', 0o644));
    const hash = createHash('sha256');
    const bytes = data instanceof Uint8Array ? await writeWhole(fh, tmp, data, hash) : await writeStream(fh, tmp, data, hash);
    const handle = fh;
    fh = undefined;
    await step('close', tmp, () => handle.close());
    await step('rename', target, () => fs.rename(tmp, target));
    renamed = true;
    await step('fsync directory', dir, () => fsyncDir(dir));
    return { sha256: hash.digest('hex'), bytes };
  } catch (err) {
    // close() waits for operations still pending on the handle, so the unlink can't race a write.
    if (fh) await fh.close().catch(() => undefined);
    if (!renamed) await fs.rm(tmp, { force: true }).catch(() => undefined);
    if (err instanceof DurableWriteError) {
      throw renamed === err.renamed ? err : new DurableWriteError(err.op, err.path, err.causeMessage, { code: err.code, renamed, cause: err.cause });
    }
    throw new DurableWriteError('read data', tmp, errorMessage(err), { code: errorCode(err), renamed, cause: err });
  }
}

/** The whole state is in memory: hash it on this thread while the pool writes and flushes it. */
async function writeWhole(fh: FileHandle, tmp: string, data: Uint8Array, hash: Hash): Promise<number> {
  const writer = new FlushingWriter(fh, tmp);
  const writing = (async () => {
    await writer.write(data, false);
    await writer.finish();
  })();
  await Promise.all([writing, hashInSlices(hash, data)]);
  return data.byteLength;
}

async function writeStream(fh: FileHandle, tmp: string, data: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, hash: Hash): Promise<number> {
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
  return total;
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
async function step<T>(op: DurableWriteOp, file: string, run: () => Promise<T>): Promise<T> {
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

async function hashInSlices(hash: Hash, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength; offset += HASH_SLICE) {
    if (offset > 0) await yieldToIo();
    hash.update(bytes.subarray(offset, offset + HASH_SLICE));
  }
}

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function fsyncDir(dir: string): Promise<void> {
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
 * Checkpoints on the local filesystem (or any mounted one). Safe against crashes at any point and
 * against concurrent calls for one key within this process; two processes saving the same key at
 * once can lose each other's manifest entries (the heartbeat pointer passed to latestVerified
 * covers that case).
 */
export class LocalCheckpointStore implements CheckpointStore {
  private readonly root: string;
  private readonly tails = new Map<string, Promise<void>>();

  constructor(rootDir: string) {
    this.root = path.resolve(rootDir);
  }

  dirFor(key: string): string {
    const { dir } = this.parseKey(key);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw withCode(`cannot create checkpoint directory ${dir} for ${key}: ${errorMessage(err)}`, err);
    }
    return dir;
  }

  async save(key: string, input: SaveCheckpointInput, keep: number): Promise<CheckpointPointer> {
    const parsed = this.parseKey(key);
    checkPosition(input);
    checkKeep(keep);
    const metrics = finiteMetrics(input.metrics);
    return this.serialized(parsed.key, async () => {
      const { dir } = parsed;
      await step('create directory', dir, () => fs.mkdir(dir, { recursive: true })).catch((err: unknown) => {
        throw writeFailure(key, err);
      });
      await removeStaleTemps(dir);
      // Read the manifest first: a corrupt one fails the save before it leaves an orphan blob.
      const manifest = await this.readManifest(parsed);
      const name = `ck-${pad(input.epoch, 6)}-${pad(input.step, 8)}-a${input.attempt}-${randomBytes(4).toString('hex')}.ckpt`;
      const file = path.join(dir, name);
      let written: { sha256: string; bytes: number };
      try {
        written = await writeFileDurably(file, input.data);
      } catch (err) {
        // The rename happened but the directory fsync failed: the blob may or may not survive a
        // crash, so it must not be recorded.
        if (err instanceof DurableWriteError && err.renamed) await fs.rm(file, { force: true }).catch(() => undefined);
        throw writeFailure(key, err);
      }
      const pointer: CheckpointPointer = {
        checkpointId: path.parse(name).name,
        uri: pathToFileURL(file).href,
        epoch: input.epoch,
        step: input.step,
        sha256: written.sha256,
        bytes: written.bytes,
        metrics,
        savedAt: new Date().toISOString(),
        ...(input.runId ? { runId: input.runId } : {}),
      };
      await this.record(parsed, manifest, pointer, keep, file);
      return pointer;
    });
  }

  async adopt(
    key: string,
    file: string,
    input: { epoch: number; step: number; attempt: number; metrics?: Metrics; runId?: string },
    keep: number,
  ): Promise<CheckpointPointer> {
    const parsed = this.parseKey(key);
    checkPosition(input);
    checkKeep(keep);
    const metrics = finiteMetrics(input.metrics);
    const dir = this.dirFor(key);
    return this.serialized(parsed.key, async () => {
      // A relative path is taken relative to the checkpoint directory, where external trainers write.
      const given = path.resolve(dir, file);
      const fail = (what: string, err?: unknown) => withCode(`cannot adopt checkpoint ${given} for ${key}: ${what}`, err);
      let real: string;
      try {
        real = await fs.realpath(given);
      } catch (err) {
        throw errorCode(err) === 'ENOENT' ? fail('file does not exist', err) : fail(errorMessage(err), err);
      }
      const realDir = await fs.realpath(dir);
      if (!isInside(realDir, real)) throw fail(`it resolves to ${real}, outside the checkpoint directory ${realDir}`);
      if (real === path.join(realDir, MANIFEST) || path.basename(real).startsWith(TMP_PREFIX)) {
        throw fail("it is one of the store's own files, not a checkpoint");
      }
      const stats = await fs.stat(real).catch((err: unknown) => {
        throw fail(errorMessage(err), err);
      });
      if (!stats.isFile()) throw fail('not a regular file');
      await removeStaleTemps(dir);
      const manifest = await this.readManifest(parsed);
      let hashed: { sha256: string; bytes: number };
      try {
        hashed = await hashAndSyncFile(real, stats.size);
        await fsyncDir(path.dirname(real));
        if (path.dirname(real) !== realDir) await fsyncDir(realDir);
      } catch (err) {
        throw fail(errorMessage(err), err);
      }
      const pointer: CheckpointPointer = {
        checkpointId: path.parse(real).name,
        uri: pathToFileURL(real).href,
        epoch: input.epoch,
        step: input.step,
        sha256: hashed.sha256,
        bytes: hashed.bytes,
        metrics,
        savedAt: new Date().toISOString(),
        ...(input.runId ? { runId: input.runId } : {}),
      };
      await this.record(parsed, manifest, pointer, keep, undefined);
      return pointer;
    });
  }

  async list(key: string): Promise<CheckpointPointer[]> {
    const manifest = await this.readManifest(this.parseKey(key));
    return [...manifest.checkpoints].reverse();
  }

  async read(pointer: CheckpointPointer): Promise<Buffer> {
    // Every pointer this store hands out lies under its root; a forged one must not read elsewhere.
    const rootReal = await fs.realpath(this.root).catch(() => this.root);
    return readVerified(pointer, [this.root, rootReal]);
  }

  /**
   * When the manifest is unreadable, only `extra` candidates are tried (with a warning): the blobs
   * next to it have no recorded sha256 and so cannot be verified, and guessing at unverified bytes
   * is worse than starting over from a pointer we can check.
   */
  async latestVerified(
    key: string,
    extra: readonly (CheckpointPointer | null | undefined)[] = [],
    options: { runId?: string } = {},
  ): Promise<LatestVerifiedResult> {
    const parsed = this.parseKey(key);
    // Under the key's lock so a concurrent save can't prune the candidates while we try them.
    return this.serialized(parsed.key, async () => {
      const warnings: string[] = [];
      const candidates = new Map<string, CheckpointPointer>();
      try {
        for (const pointer of (await this.readManifest(parsed)).checkpoints) {
          if (options.runId === undefined || pointer.runId === options.runId) candidates.set(pointer.checkpointId, pointer);
        }
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        warnings.push(`${err.message}; only the checkpoints reported by the caller are considered`);
      }
      extra.forEach((value, index) => {
        if (value === null || value === undefined) return;
        const problem = pointerProblem(value);
        if (problem) {
          warnings.push(`extra checkpoint candidate #${index} skipped: ${problem}`);
          return;
        }
        if (!candidates.has(value.checkpointId)) candidates.set(value.checkpointId, value);
      });
      const ordered = [...candidates.values()].sort(newestFirst);
      const realDir = await fs.realpath(parsed.dir).catch(() => parsed.dir);
      for (const pointer of ordered) {
        try {
          const data = await readVerified(pointer, [parsed.dir, realDir]);
          return { checkpoint: { pointer, data }, warnings };
        } catch (err) {
          if (!(err instanceof CheckpointReadError)) throw err;
          warnings.push(`checkpoint ${pointer.checkpointId} (epoch ${pointer.epoch}, step ${pointer.step}) skipped: ${err.detail}`);
        }
      }
      return { checkpoint: undefined, warnings };
    });
  }

  private parseKey(key: string): ParsedKey {
    const expected = `expected "<sessionId>/<experimentId>"`;
    if (typeof key !== 'string') throw new Error(`checkpoint store key: ${expected}, received ${typeof key}`);
    const parts = key.split('/');
    if (parts.length !== 2) throw new Error(`checkpoint store key ${JSON.stringify(key)}: ${expected} (exactly one '/')`);
    const problem = idProblem('sessionId', parts[0]) ?? idProblem('experimentId', parts[1]);
    if (problem) throw new Error(`checkpoint store key ${JSON.stringify(key)}: ${problem}`);
    return { key, dir: path.join(this.root, parts[0], parts[1]) };
  }

  /** Chains `run` after every earlier call for `key`, whatever their outcome. */
  private serialized<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(run);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  private async readManifest({ key, dir }: ParsedKey): Promise<Manifest> {
    const file = path.join(dir, MANIFEST);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { version: 1, key, checkpoints: [] };
      throw new ManifestError(file, `checkpoint manifest ${file} is unreadable: ${errorMessage(err)}`);
    }
    const corrupt = (why: string) =>
      new ManifestError(
        file,
        `checkpoint manifest ${file} is corrupt (${why}); the blobs next to it are untouched — move the manifest aside to start a new one`,
      );
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw corrupt(errorMessage(err));
    }
    if (!isRecord(value)) throw corrupt('not a JSON object');
    if (value.version !== 1) throw corrupt(`unsupported version ${JSON.stringify(value.version)}`);
    if (!Array.isArray(value.checkpoints)) throw corrupt('"checkpoints" is not an array');
    const checkpoints = value.checkpoints.map((entry: unknown, index: number) => {
      const problem = pointerProblem(entry);
      if (problem) throw corrupt(`checkpoints[${index}]: ${problem}`);
      const pointer = entry as CheckpointPointer;
      return { ...pointer, metrics: finiteMetrics(pointer.metrics) };
    });
    return { version: 1, key, checkpoints };
  }

  /**
   * Appends `pointer`, rewrites the manifest durably, then deletes blobs that fell out of the
   * newest `keep` — only after the manifest no longer names them, so a crash never leaves a
   * manifest pointing at deleted files. `newBlob` is removed if the manifest could not be written.
   */
  private async record(parsed: ParsedKey, manifest: Manifest, pointer: CheckpointPointer, keep: number, newBlob: string | undefined): Promise<void> {
    // Order is by recording time, not (epoch, step): after a rollback to an older checkpoint the
    // new lineage must be what survives pruning, not the higher-numbered blob that failed to verify.
    const entries = [...manifest.checkpoints.filter((entry) => entry.checkpointId !== pointer.checkpointId), pointer];
    const kept = entries.slice(-keep);
    const dropped = entries.slice(0, entries.length - kept.length);
    const next: Manifest = { version: 1, key: parsed.key, checkpoints: kept };
    try {
      await writeFileDurably(path.join(parsed.dir, MANIFEST), Buffer.from(JSON.stringify(next, null, 2) + '\n'));
    } catch (err) {
      const replaced = err instanceof DurableWriteError && err.renamed;
      if (newBlob && !replaced) await fs.rm(newBlob, { force: true }).catch(() => undefined);
      throw writeFailure(parsed.key, err);
    }
    const keptFiles = new Set(kept.map((entry) => uriToPath(entry.uri)));
    for (const entry of dropped) {
      const file = uriToPath(entry.uri);
      // Never delete outside the key directory, whatever an (edited) manifest says.
      if (!file || keptFiles.has(file) || !isInside(parsed.dir, path.resolve(file))) continue;
      // Best effort: the new checkpoint is already durable; a leftover blob only costs space.
      await fs.rm(file, { force: true }).catch(() => undefined);
    }
  }
}

/** Reads a blob, checking it lies inside one of `roots` (after symlinks) and matches size and sha256. */
async function readVerified(pointer: CheckpointPointer, roots: readonly string[]): Promise<Buffer> {
  const problem = pointerProblem(pointer);
  if (problem) {
    const id = isRecord(pointer) && typeof pointer.checkpointId === 'string' ? pointer.checkpointId : '(unnamed)';
    throw new CheckpointReadError(id, isRecord(pointer) ? String(pointer.uri) : '?', 'invalid', `invalid pointer (${problem})`);
  }
  const id = pointer.checkpointId;
  const file = uriToPath(pointer.uri);
  if (!file) throw new CheckpointReadError(id, pointer.uri, 'invalid', `not a file:// URL: ${pointer.uri}`);
  const outside = () => new CheckpointReadError(id, file, 'outside', `outside the checkpoint directory (${file})`);
  if (!roots.some((root) => isInside(root, path.resolve(file)))) throw outside();
  const ioError = (err: unknown) =>
    errorCode(err) === 'ENOENT'
      ? new CheckpointReadError(id, file, 'missing', 'file missing', 'ENOENT')
      : new CheckpointReadError(id, file, 'io', `unreadable (${errorMessage(err)})`, errorCode(err));
  let real: string;
  try {
    real = await fs.realpath(file);
  } catch (err) {
    throw ioError(err);
  }
  if (!roots.some((root) => isInside(root, real))) throw outside();
  let fh: FileHandle;
  try {
    fh = await fs.open(real, 'r');
  } catch (err) {
    throw ioError(err);
  }
  try {
    const stats = await fh.stat();
    if (!stats.isFile()) throw new CheckpointReadError(id, file, 'invalid', 'not a regular file');
    if (stats.size !== pointer.bytes) {
      throw new CheckpointReadError(id, file, 'size', `size mismatch (expected ${pointer.bytes} bytes, found ${stats.size})`);
    }
    const data = Buffer.allocUnsafe(pointer.bytes);
    const hash = createHash('sha256');
    const readAt = (offset: number) => fh.read(data, offset, Math.min(READ_PIECE, data.byteLength - offset), offset);
    // Read the next piece while hashing the current one.
    let filled = 0;
    let pending = data.byteLength > 0 ? readAt(0) : undefined;
    while (pending) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const start = filled;
      filled += bytesRead;
      pending = filled < data.byteLength ? readAt(filled) : undefined;
      // Handled here so a failure surfacing while we hash is not reported as unhandled.
      void pending?.catch(() => undefined);
      await hashInSlices(hash, data.subarray(start, filled));
    }
    if (filled !== data.byteLength) {
      throw new CheckpointReadError(id, file, 'size', `size mismatch (expected ${pointer.bytes} bytes, found ${filled})`);
    }
    const actual = hash.digest('hex');
    if (actual !== pointer.sha256) {
      throw new CheckpointReadError(id, file, 'sha256', `sha256 mismatch (expected ${shortHash(pointer.sha256)}, got ${shortHash(actual)})`);
    }
    return data;
  } catch (err) {
    if (err instanceof CheckpointReadError) throw err;
    throw ioError(err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Streams a file through sha256 with two reused buffers, then fsyncs it. */
async function hashAndSyncFile(file: string, sizeHint: number): Promise<{ sha256: string; bytes: number }> {
  const fh = await fs.open(file, 'r');
  try {
    const hash = createHash('sha256');
    const piece = Math.max(64 << 10, Math.min(READ_PIECE, sizeHint + 1));
    const buffers = [Buffer.allocUnsafe(piece), Buffer.allocUnsafe(piece)];
    let which = 0;
    let bytes = 0;
    let pending = fh.read(buffers[which], 0, piece, null);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      bytes += bytesRead;
      const current = buffers[which];
      which ^= 1;
      pending = fh.read(buffers[which], 0, piece, null);
      void pending.catch(() => undefined);
      await hashInSlices(hash, current.subarray(0, bytesRead));
    }
    await fh.sync();
    return { sha256: hash.digest('hex'), bytes };
  } finally {
    await fh.close();
  }
}

/** Deletes `.tmp-*` files left by writes that crashed; best effort, as they only cost space. */
async function removeStaleTemps(dir: string): Promise<void> {
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
      if (stats.isFile() && now - stats.mtimeMs > STALE_TMP_MS) await fs.rm(file, { force: true });
    } catch {
      // Another writer may have renamed or removed it meanwhile.
    }
  }
}

function writeFailure(key: string, err: unknown): Error {
  if (err instanceof DurableWriteError) {
    return withCode(`checkpoint write failed for ${key} at ${err.path} (${err.op}): ${err.causeMessage}`, err, err.code);
  }
  return withCode(`checkpoint write failed for ${key}: ${errorMessage(err)}`, err);
}

function withCode(message: string, cause: unknown, code = errorCode(cause)): Error & { code?: string } {
  const error: Error & { code?: string } = new Error(message, cause === undefined ? undefined : { cause });
  if (code !== undefined) error.code = code;
  return error;
}

function newestFirst(a: CheckpointPointer, b: CheckpointPointer): number {
  return b.epoch - a.epoch || b.step - a.step || (Date.parse(b.savedAt) || 0) - (Date.parse(a.savedAt) || 0);
}

function pointerProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not an object';
  for (const field of ['checkpointId', 'uri', 'sha256', 'savedAt'] as const) {
    if (typeof value[field] !== 'string' || value[field] === '') return `${field}: expected a non-empty string`;
  }
  for (const field of ['epoch', 'step', 'bytes'] as const) {
    const n = value[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return `${field}: expected a non-negative integer`;
  }
  if (!isRecord(value.metrics)) return 'metrics: expected an object';
  return undefined;
}

function checkPosition(input: { epoch: number; step: number; attempt: number }): void {
  for (const field of ['epoch', 'step', 'attempt'] as const) {
    const n = input[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`checkpoint ${field}: expected a non-negative integer, received ${String(n)}`);
    }
  }
}

function checkKeep(keep: number): void {
  if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`checkpoints to keep: expected an integer >= 1, received ${String(keep)}`);
}

/** JSON cannot carry NaN or Infinity; dropping them keeps the manifest and heartbeats well-formed. */
function finiteMetrics(metrics: Metrics | undefined): Metrics {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics ?? {})) {
    if (typeof value === 'number' && Number.isFinite(value)) out[name] = value;
  }
  return out;
}

function uriToPath(uri: string): string | undefined {
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function shortHash(sha256: string): string {
  return sha256.length > 12 ? `${sha256.slice(0, 12)}…` : sha256;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorCode(err: unknown): string | undefined {
  const code = isRecord(err) ? err.code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
