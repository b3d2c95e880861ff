/**
 * The S3 side of the store's I/O, knowing nothing of manifests or keys: a client configured for
 * short failures, retry with backoff around idempotent requests, conditional PUT, a streamed
 * upload that hashes the very bytes it sends, and a streamed download into one buffer (and,
 * optionally, a file) that checks size and sha256 on the way.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CheckpointData } from '../trainer';
import { hashInSlices } from './durable-write';
import { errorCode, errorMessage, isRecord } from './errors';
import type { S3ConnectionConfig } from './s3-config';

/** Multipart part size; also the unit in which streamed data is copied. */
export const PART_BYTES = 16 << 20;
/** Parts in flight at once (lib-storage buffers at most this many parts). */
export const PARTS_IN_FLIGHT = 4;
/** The SigV4 payload-hash header: when present, the signer uses it instead of hashing the body. */
const CONTENT_SHA256_HEADER = 'x-amz-content-sha256';
/** S3's limit for one PutObject; a larger buffer goes multipart. */
const SINGLE_PUT_MAX = 5 * 2 ** 30;

export function createS3Client(connection: S3ConnectionConfig, overrides: Partial<S3ClientConfig> = {}): S3Client {
  // The SDK is pinned, so its notice that *later* releases need Node 22 says nothing about this
  // one; left on, it prints seven lines into every worker's and CLI's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    region: connection.region,
    forcePathStyle: connection.forcePathStyle,
    ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
    // The store hashes every byte with sha256 itself; the SDK's extra CRC32 would cost CPU twice.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Parts of a streamed upload can only be retried by the SDK (the stream cannot be replayed),
    // so it retries too; whole requests are retried by `retrying` below for longer outages.
    maxAttempts: 4,
    // A stopped (SIGSTOP'd) server accepts connections but never answers: time the request out
    // so the retry loop gets to run, rather than hanging until the heartbeat timeout.
    requestHandler: { connectionTimeout: 3000, requestTimeout: 20_000 },
    ...overrides,
  });
}

/** HTTP status of an SDK error, if it has one. */
export function httpStatus(err: unknown): number | undefined {
  const meta = isRecord(err) && isRecord(err.$metadata) ? err.$metadata : undefined;
  return typeof meta?.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

export function isNotFound(err: unknown): boolean {
  const name = isRecord(err) ? err.name : undefined;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

export function isPreconditionFailed(err: unknown): boolean {
  const name = isRecord(err) ? err.name : undefined;
  return name === 'PreconditionFailed' || httpStatus(err) === 412;
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'Throttling', 'ThrottlingException', 'InternalError', 'ServiceUnavailable']);

/** Network failures, timeouts, throttling and 5xx: worth another try. */
export function isTransient(err: unknown): boolean {
  const status = httpStatus(err);
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  const name = isRecord(err) ? err.name : undefined;
  if (typeof name === 'string' && TRANSIENT_NAMES.has(name)) return true;
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 4; e = isRecord(e) ? e.cause : undefined, depth++) {
    const code = errorCode(e);
    if (code && TRANSIENT_CODES.has(code)) return true;
  }
  return /socket hang up|ECONNRESET|ECONNREFUSED|timed? ?out/i.test(errorMessage(err));
}

export interface RetryOptions {
  /** Longest total time spent retrying one operation (ms). */
  readonly retryForMs: number;
  /** Called before each retry, e.g. to log it. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `run` again after transient failures, with exponential backoff (100 ms doubling to 5 s,
 * with jitter), until it succeeds, fails for good, or `retryForMs` has passed.
 */
export async function retrying<T>(what: string, options: RetryOptions, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const elapsed = Date.now() - started;
      if (!isTransient(err) || elapsed >= options.retryForMs) {
        const after = attempt > 1 ? ` (after ${attempt} tries over ${Math.round(elapsed / 100) / 10} s)` : '';
        throw Object.assign(new Error(`${what}: ${describeS3Error(err)}${after}`, { cause: err }), { code: errorCode(err) ?? (isRecord(err) ? err.name : undefined) });
      }
      const delay = Math.min(5000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      options.onRetry?.(err, attempt, delay);
      await sleep(Math.min(delay, Math.max(0, options.retryForMs - elapsed)));
    }
  }
}

export function describeS3Error(err: unknown): string {
  const status = httpStatus(err);
  const name = isRecord(err) && typeof err.name === 'string' && err.name !== 'Error' ? err.name : undefined;
  const code = errorCode(err);
  const parts = [name, code && code !== name ? code : undefined, status ? `HTTP ${status}` : undefined].filter(Boolean);
  return `${errorMessage(err) || 'unknown error'}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/**
 * PUT of a small object, conditional on the current ETag (`ifMatch`) or on its absence
 * (`ifMatch` undefined: If-None-Match: *). Resolves the new ETag, or undefined when the condition
 * failed because another writer got there first.
 */
export async function putConditional(client: S3Client, bucket: string, key: string, body: Buffer, ifMatch: string | undefined): Promise<string | undefined> {
  try {
    const out = await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json', ...(ifMatch === undefined ? { IfNoneMatch: '*' } : { IfMatch: ifMatch }) }),
    );
    return out.ETag ?? '';
  } catch (err) {
    // If-Match on an object deleted meanwhile answers 404: the same lost race.
    if (isPreconditionFailed(err) || (ifMatch !== undefined && isNotFound(err))) return undefined;
    throw err;
  }
}

/** GET of a small object as text with its ETag; undefined when there is none. */
export async function getSmall(client: S3Client, bucket: string, key: string): Promise<{ text: string; etag: string } | undefined> {
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = out.Body ? await out.Body.transformToString('utf8') : '';
    return { text, etag: out.ETag ?? '' };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Uploads `data` to `key`, hashing the exact bytes sent: a Uint8Array in one PutObject (up to
 * 5 GiB), a stream multipart when it exceeds one part. Streamed chunks are copied into part
 * buffers as they arrive (a producer may reuse its buffer after the next pull), so at most
 * PARTS_IN_FLIGHT + 1 parts are in memory. The object appears only when the upload completes (S3 semantics); a failed
 * multipart upload is aborted by lib-storage.
 */
export async function uploadHashed(client: S3Client, bucket: string, key: string, data: CheckpointData): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  if (data instanceof Uint8Array && data.byteLength <= SINGLE_PUT_MAX) {
    // The whole state is in memory already: one PUT of it (no part copies). SigV4 signs the
    // payload's sha256, which the SDK would compute itself: computing it first and handing it to
    // the signer hashes the bytes once instead of twice, and the server checks our hash on receipt.
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await hashInSlices(hash, body);
    const sha256 = hash.digest('hex');
    const put = new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.byteLength, ContentType: 'application/octet-stream' });
    put.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers[CONTENT_SHA256_HEADER] = sha256;
        return next(args);
      },
      { step: 'build', name: 'checkpointContentSha256' },
    );
    await client.send(put);
    return { sha256, bytes: body.byteLength };
  }
  let bytes = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const part of toParts(data)) {
      hash.update(part);
      bytes += part.byteLength;
      yield part;
    }
  };
  const upload = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: Readable.from(counted(), { objectMode: false, highWaterMark: 1 }), ContentType: 'application/octet-stream' },
    partSize: PART_BYTES,
    queueSize: PARTS_IN_FLIGHT,
    leavePartsOnError: false,
  });
  await upload.done();
  return { sha256: hash.digest('hex'), bytes };
}

/** `data` as pieces of at most PART_BYTES, each safe to keep after the producer moves on. */
async function* toParts(data: CheckpointData): AsyncGenerator<Buffer> {
  if (data instanceof Uint8Array) {
    const whole = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let offset = 0; offset < whole.byteLength; offset += PART_BYTES) yield whole.subarray(offset, offset + PART_BYTES);
    return;
  }
  if (data === null || typeof data !== 'object' || !(Symbol.asyncIterator in data || Symbol.iterator in data)) {
    throw new TypeError(`checkpoint data: expected a Uint8Array or an (async) iterable of Uint8Array chunks, received ${typeof data}`);
  }
  let part = Buffer.allocUnsafe(PART_BYTES);
  let filled = 0;
  let index = 0;
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`checkpoint data chunk ${index}: expected a Uint8Array, received ${chunk === null ? 'null' : typeof chunk}`);
    }
    index++;
    for (let offset = 0; offset < chunk.byteLength; ) {
      const n = Math.min(PART_BYTES - filled, chunk.byteLength - offset);
      part.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === PART_BYTES) {
        yield part;
        part = Buffer.allocUnsafe(PART_BYTES);
        filled = 0;
      }
    }
  }
  if (filled > 0 || index === 0) yield part.subarray(0, filled);
}

export class BlobMismatchError extends Error {
  constructor(
    readonly reason: 'size' | 'sha256',
    message: string,
  ) {
    super(message);
    this.name = 'BlobMismatchError';
  }
}

/**
 * Downloads `key` into one buffer of `bytes` (the only copy in memory), also writing each piece to
 * `file` when given, and checks the size and sha256 on the way.
 */
export async function downloadVerified(client: S3Client, bucket: string, key: string, bytes: number, sha256: string, file?: FileHandle): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (out.ContentLength !== undefined && out.ContentLength !== bytes) {
    (out.Body as Readable | undefined)?.destroy?.();
    throw new BlobMismatchError('size', `size mismatch (expected ${bytes} bytes, found ${out.ContentLength})`);
  }
  const data = Buffer.allocUnsafe(bytes);
  const hash = createHash('sha256');
  let filled = 0;
  for await (const chunk of (out.Body as Readable | undefined) ?? []) {
    const piece = chunk as Buffer;
    if (filled + piece.byteLength > bytes) throw new BlobMismatchError('size', `size mismatch (expected ${bytes} bytes, found more)`);
    piece.copy(data, filled);
    hash.update(piece);
    if (file) await file.write(piece, 0, piece.byteLength, filled);
    filled += piece.byteLength;
  }
  if (filled !== bytes) throw new BlobMismatchError('size', `size mismatch (expected ${bytes} bytes, found ${filled})`);
  const actual = hash.digest('hex');
  if (actual !== sha256) throw new BlobMismatchError('sha256', `sha256 mismatch (expected ${sha256.slice(0, 12)}…, got ${actual.slice(0, 12)}…)`);
  return data;
}
