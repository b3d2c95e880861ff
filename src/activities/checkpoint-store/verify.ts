/**
 * Verification: a pointer's shape, that its blob lies inside the store (after symlinks) and that
 * its bytes match the recorded size and sha256 (plain, or the block digest: block-hash.ts);
 * hashing of files trainers wrote themselves; the order in which candidates are tried.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckpointPointer } from '../../shared/types';
import { blockDigestsHere, combineBlockDigests, hashBlockBytesProblem } from './block-hash';
import { hashInSlices } from './durable-write';
import { blockDigestsOffThread } from './hash-thread';
import { CheckpointReadError, errorCode, errorMessage, isRecord, withCode } from './errors';
import { hashAndSyncOnThread } from './io-thread';

/** Reads of blobs being verified or adopted. */
const READ_PIECE = 16 << 20;

/** Reads a blob, checking it lies inside one of `roots` (after symlinks) and matches size and sha256. */
export async function readVerified(pointer: CheckpointPointer, roots: readonly string[]): Promise<Buffer> {
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
    const { data, filled, sha256: actual } = await readHashed(fh, pointer.bytes, pointer.hashBlockBytes);
    if (filled !== data.byteLength) {
      throw new CheckpointReadError(id, file, 'size', `size mismatch (expected ${pointer.bytes} bytes, found ${filled})`);
    }
    if (actual !== pointer.sha256) {
      const what = pointer.hashBlockBytes === undefined ? 'sha256' : `sha256 (block digest, ${pointer.hashBlockBytes}-byte blocks)`;
      throw new CheckpointReadError(id, file, 'sha256', `${what} mismatch (expected ${shortHash(pointer.sha256)}, got ${shortHash(actual)})`);
    }
    return data;
  } catch (err) {
    if (err instanceof CheckpointReadError) throw err;
    throw ioError(err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Reads `bytes` bytes of `fh` into a new buffer, reading the next piece while the current one is
 * hashed: into one SHA-256 stream on this thread, or, for a block digest, into shared memory,
 * every other piece's blocks hashed in place on the helper thread, the others here. `filled` < `bytes` when
 * the file ended early.
 */
async function readHashed(fh: FileHandle, bytes: number, blockBytes: number | undefined): Promise<{ data: Buffer; filled: number; sha256: string }> {
  const blocked = blockBytes !== undefined;
  // Whole blocks per piece, so each piece's digests are its blocks' own.
  const pieceBytes = blocked ? Math.max(blockBytes, Math.floor(READ_PIECE / blockBytes) * blockBytes) : READ_PIECE;
  const data = blocked ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.allocUnsafe(bytes);
  const hash = createHash('sha256');
  const parts: Promise<Uint8Array>[] = [];
  const readAt = (offset: number) => fh.read(data, offset, Math.min(pieceBytes, data.byteLength - offset), offset);
  let filled = 0;
  let hashedTo = 0;
  let pending = data.byteLength > 0 ? readAt(0) : undefined;
  try {
    while (pending) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      filled += bytesRead;
      pending = filled < data.byteLength ? readAt(filled) : undefined;
      // Handled here so a failure surfacing while we hash is not reported as unhandled.
      void pending?.catch(() => undefined);
      if (!blocked) {
        await hashInSlices(hash, data.subarray(hashedTo, filled));
        hashedTo = filled;
        continue;
      }
      // A short read leaves a partial block: it is hashed once the rest has arrived.
      const to = filled === data.byteLength ? filled : hashedTo + Math.floor((filled - hashedTo) / blockBytes) * blockBytes;
      if (to > hashedTo) {
        const run = data.subarray(hashedTo, to);
        parts.push(parts.length % 2 === 0 ? blockDigestsOffThread(run, blockBytes) : blockDigestsHere(run, blockBytes));
      }
      hashedTo = to;
    }
  } finally {
    // No helper may still be reading `data` once this returns or throws.
    await Promise.allSettled(parts);
  }
  if (!blocked) return { data, filled, sha256: hash.digest('hex') };
  return { data, filled, sha256: filled === data.byteLength ? combineBlockDigests(await Promise.all(parts)) : '' };
}

/**
 * sha256 and size of `file`, read to its end, then fsyncs of it and of `dirs`: one call to an I/O
 * helper thread (io-thread.ts). Fails with the system error (its message and `code`).
 */
export async function hashAndSyncFile(file: string, dirs: readonly string[]): Promise<{ sha256: string; bytes: number }> {
  const done = await hashAndSyncOnThread(file, dirs);
  if (done.error) throw Object.assign(new Error(done.error.message), { code: done.error.code });
  return { sha256: done.sha256, bytes: done.bytes };
}

/** Candidate order: newest (epoch, step, savedAt) first. */
export function newestFirst(a: CheckpointPointer, b: CheckpointPointer): number {
  return b.epoch - a.epoch || b.step - a.step || (Date.parse(b.savedAt) || 0) - (Date.parse(a.savedAt) || 0);
}

export function pointerProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not an object';
  for (const field of ['checkpointId', 'uri', 'sha256', 'savedAt'] as const) {
    if (typeof value[field] !== 'string' || value[field] === '') return `${field}: expected a non-empty string`;
  }
  for (const field of ['epoch', 'step', 'bytes'] as const) {
    const n = value[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return `${field}: expected a non-negative integer`;
  }
  if (!isRecord(value.metrics)) return 'metrics: expected an object';
  if (value.hashBlockBytes !== undefined) return hashBlockBytesProblem(value.hashBlockBytes);
  return undefined;
}

export function uriToPath(uri: string): string | undefined {
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

export function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

export function shortHash(sha256: string): string {
  return sha256.length > 12 ? `${sha256.slice(0, 12)}…` : sha256;
}

/** A file a trainer asks the store to adopt, resolved and checked to lie inside its checkpoint directory. */
export interface AdoptableFile {
  /** The path as given, resolved against the checkpoint directory. */
  readonly given: string;
  /** Its real path (symlinks resolved). */
  readonly real: string;
  /** The checkpoint directory's real path. */
  readonly realDir: string;
  readonly size: number;
  /** Builds the error both stores throw for this file: `cannot adopt checkpoint … for KEY: WHAT`. */
  readonly fail: (what: string, err?: unknown) => Error;
}

/**
 * Resolves `file` (relative to `dir`, where external trainers write) and refuses what a store
 * must never adopt: a missing file, a path resolving outside `dir`, or anything but a regular file.
 */
export async function resolveAdoptable(key: string, dir: string, file: string): Promise<AdoptableFile> {
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
  const stats = await fs.stat(real).catch((err: unknown) => {
    throw fail(errorMessage(err), err);
  });
  if (!stats.isFile()) throw fail('not a regular file');
  return { given, real, realDir, size: stats.size, fail };
}
