/**
 * The S3 checkpoint store: the same promises as the local store, on any S3-compatible server.
 *
 * Layout under `s3://<bucket>/<prefix>/`: a key's checkpoints live below `<sessionId>/<experimentId>/`;
 * each experiment workflow run has its own place there, `run-<runId>/`, with its blobs
 * (`ck-<epoch>-<step>-a<attempt>-<suffix>.ckpt`) and its `manifest.json`. Writes without a run id
 * use the key's own prefix. Blob names are never reused, so an upload can never touch a blob a
 * manifest names.
 *
 * A checkpoint becomes visible only when complete: the blob is uploaded first (S3 shows an object
 * only once its PUT or multipart upload completes) and then recorded in the manifest by a
 * compare-and-swap (s3-manifest.ts, which also explains the read-back versitygw needs).
 *
 * A local cache directory serves trainers that need a file path: `dirFor` is a directory there,
 * `adopt` uploads a file from it, and a resumed checkpoint can be written there on demand.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { idProblem } from '../../shared/ids';
import type { Retention, RetentionMarks } from '../../shared/retention';
import type { CheckpointPointer } from '../../shared/types';
import { CheckpointReadError, ManifestError, StaleAttemptError, errorMessage, withCode } from './errors';
import { checkFence, checkKeep, checkPosition, pad } from './local';
import { S3HistoryObjects } from './history-s3';
import { compareFence, finiteMetrics, withCheckpoint, type Manifest } from './manifest';
import type { S3ConnectionConfig } from './s3-config';
import { BlobMismatchError, createS3Client, describeS3Error, downloadVerified, isNotFound, retrying, uploadHashed } from './s3-io';
import { S3Manifests } from './s3-manifest';
import type { AdoptCheckpointInput, CheckpointStore, FenceToken, LatestVerifiedResult, SaveCheckpointInput, VerifiedCheckpoint } from './types';
import { newestFirst, pointerProblem, resolveAdoptable } from './verify';

const RUN_PREFIX = 'run-';
/** Restarts of latestVerified after a candidate vanished because a concurrent writer pruned it. */
const PRUNE_RACE_RETRIES = 20;
/** Deletions of pruned blobs under way at once; a save that would start one more waits. */
const MAX_BACKGROUND_DELETES = 8;

export interface S3CheckpointStoreOptions {
  /** The client to use; else one is made from `connection` and `credentials`. */
  readonly client?: S3Client;
  /** Endpoint, region and addressing style, when no `client` is given. */
  readonly connection?: S3ConnectionConfig;
  /** Static credentials, when no `client` is given. @default the SDK's default credential chain */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket's root. */
  readonly prefix: string;
  /** Local directory for files of trainers that need a path (the `command` trainer). */
  readonly cacheDir: string;
  /**
   * Longest time one store operation retries transient errors (network, timeouts, 5xx), in ms.
   * @default 120000
   */
  readonly retryForMs?: number;
  /** Warnings about retries go here. */
  readonly logger?: Logger;
  /**
   * Whether the server's conditional PUT is atomic with its write, as on AWS S3. When false, every
   * manifest commit is checked with a HEAD (one more request), which versitygw v1.7.0 needs (see
   * s3-manifest.ts). Only set it to true for a server known to be atomic.
   * @default true without a custom endpoint (AWS S3 itself), false with one
   */
  readonly atomicConditionalWrites?: boolean;
}

interface Place {
  readonly key: string;
  readonly sessionId: string;
  readonly experimentId: string;
  readonly runId: string | undefined;
  /** Object key prefix of the place, ending in '/'. */
  readonly objectPrefix: string;
}

/**
 * Checkpoints in an S3 bucket. Safe against crashes at any point and against concurrent writers
 * in several processes on a server whose conditional PUT is atomic (AWS S3). On versitygw v1.7.0,
 * whose If-Match check is not atomic with the write, two commits to one place landing in the same
 * instant can still lose one of them; the store then relies, like the local store did before
 * fencing, on the heartbeat pointer passed to latestVerified.
 */
export class S3CheckpointStore implements CheckpointStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly cacheDir: string;
  private readonly retryForMs: number;
  private readonly logger: Logger | undefined;
  private readonly tails = new Map<string, Promise<void>>();
  /** Deletions of pruned blobs still under way (see `idle`). */
  private readonly pending = new Set<Promise<void>>();
  private readonly manifests: S3Manifests;

  constructor(options: S3CheckpointStoreOptions) {
    if (!options.client && !options.connection) throw new Error('S3CheckpointStore: expected a client or a connection, received neither');
    this.client = options.client ?? createS3Client(options.connection!, options.credentials ? { credentials: { ...options.credentials } } : {});
    this.bucket = options.bucket;
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.cacheDir = path.resolve(options.cacheDir);
    this.retryForMs = options.retryForMs ?? 120_000;
    this.logger = options.logger;
    this.manifests = new S3Manifests({
      client: this.client,
      bucket: this.bucket,
      atomicConditionalWrites: options.atomicConditionalWrites ?? (options.client === undefined && !options.connection?.endpoint),
      retrying: (what, run) => this.retrying(what, run),
    });
  }

  /** `s3://bucket/prefix`, for logs. */
  get url(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  dirFor(key: string, runId?: string, fence?: FenceToken): string {
    const place = this.place(key, runId);
    // A fenced attempt gets a directory of its own, so a stale attempt never overwrites a newer one's files.
    const dir = fence ? path.join(this.cachePath(place), `attempt-${fence.invocation}-${fence.attempt}`) : this.cachePath(place);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw withCode(`cannot create the checkpoint cache directory ${dir} for ${key}: ${errorMessage(err)}`, err);
    }
    return dir;
  }

  async registerAttempt(key: string, runId: string, token: FenceToken): Promise<void> {
    checkFence(token);
    if (runId === undefined) throw new Error('registerAttempt: expected a runId, received nothing');
    const place = this.place(key, runId);
    await this.serialized(place.objectPrefix, () =>
      this.manifests.commit(
        place,
        (manifest) => {
          if (manifest.fence && compareFence(token, manifest.fence) < 0) throw new StaleAttemptError(key, runId, token, manifest.fence, 'registering the attempt');
          if (manifest.fence && compareFence(token, manifest.fence) === 0) return undefined;
          return { next: { ...manifest, fence: token }, dropped: [] };
        },
        async (current) => current.fence !== null && compareFence(current.fence, token) >= 0,
        // From the server: "already registered" must be true right now.
        true,
      ),
    );
  }

  async retention(key: string, runId: string | undefined): Promise<RetentionMarks | undefined> {
    return (await this.manifests.read(this.place(key, runId))).manifest.retention;
  }

  metricHistory(): S3HistoryObjects {
    return new S3HistoryObjects({ client: this.client, bucket: this.bucket, prefix: this.prefix, retryForMs: this.retryForMs });
  }

  async currentFence(key: string, runId: string): Promise<FenceToken | null> {
    return (await this.manifests.read(this.place(key, runId))).manifest.fence;
  }

  async save(key: string, input: SaveCheckpointInput, keep: Retention): Promise<CheckpointPointer> {
    const place = this.place(key, input.runId);
    checkPosition(input);
    checkKeep(keep);
    if (input.fence) checkFence(input.fence);
    const metrics = finiteMetrics(input.metrics);
    return this.serialized(place.objectPrefix, async () => {
      // A newer attempt known here fails the save before it uploads (the commit checks it for sure).
      refuseIfStale(place, await this.manifests.startingPoint(place), input.fence, 'checkpoint save');
      const name = `ck-${pad(input.epoch, 6)}-${pad(input.step, 8)}-a${input.attempt}-${randomBytes(4).toString('hex')}.ckpt`;
      const objectKey = place.objectPrefix + name;
      let written: { sha256: string; bytes: number };
      try {
        // A buffer can be sent again after a failure; a stream cannot, so its retries are the SDK's, per part.
        written =
          input.data instanceof Uint8Array
            ? await this.retrying(`upload s3://${this.bucket}/${objectKey}`, () => uploadHashed(this.client, this.bucket, objectKey, input.data))
            : await uploadHashed(this.client, this.bucket, objectKey, input.data);
      } catch (err) {
        await this.deleteQuietly(objectKey);
        throw writeFailure(key, `s3://${this.bucket}/${objectKey}`, err);
      }
      const pointer = this.pointer(name, objectKey, input, written, metrics);
      await this.record(place, pointer, keep, input.fence, objectKey, 'checkpoint save');
      return pointer;
    });
  }

  async adopt(key: string, file: string, input: AdoptCheckpointInput, keep: Retention): Promise<CheckpointPointer> {
    const place = this.place(key, input.runId);
    checkPosition(input);
    checkKeep(keep);
    if (input.fence) checkFence(input.fence);
    const metrics = finiteMetrics(input.metrics);
    const dir = this.dirFor(key, input.runId);
    return this.serialized(place.objectPrefix, async () => {
      const { given, real, size, fail } = await resolveAdoptable(key, dir, file);
      refuseIfStale(place, await this.manifests.startingPoint(place), input.fence, `adopting ${given}`);
      // The trainer may write the same file name again later; the object name must stay unique.
      const base = path.basename(real).replace(/[^A-Za-z0-9._-]/g, '_');
      const name = `ck-${pad(input.epoch, 6)}-${pad(input.step, 8)}-a${input.attempt}-${randomBytes(4).toString('hex')}-${base}`;
      const objectKey = place.objectPrefix + name;
      let written: { sha256: string; bytes: number };
      try {
        written = await this.retrying(`upload ${real} to s3://${this.bucket}/${objectKey}`, () =>
          uploadHashed(this.client, this.bucket, objectKey, createReadStream(real, { highWaterMark: 1 << 20 })),
        );
      } catch (err) {
        await this.deleteQuietly(objectKey);
        throw writeFailure(key, `s3://${this.bucket}/${objectKey}`, err);
      }
      if (written.bytes !== size) throw fail(`the file changed while it was uploaded (${size} bytes before, ${written.bytes} sent)`);
      const pointer = this.pointer(name, objectKey, input, written, metrics);
      await this.record(place, pointer, keep, input.fence, objectKey, `adopting ${given}`);
      return pointer;
    });
  }

  async list(key: string, options: { runId?: string } = {}): Promise<CheckpointPointer[]> {
    const places = options.runId !== undefined ? [this.place(key, options.runId)] : await this.places(key);
    const all: CheckpointPointer[] = [];
    for (const place of places) all.push(...[...(await this.manifests.read(place)).manifest.checkpoints].reverse());
    if (places.length === 1) return all;
    return all.sort((a, b) => (Date.parse(b.savedAt) || 0) - (Date.parse(a.savedAt) || 0));
  }

  async read(pointer: CheckpointPointer): Promise<Buffer> {
    return (await this.verify(pointer)).data;
  }

  async latestVerified(
    key: string,
    extra: readonly (CheckpointPointer | null | undefined)[] = [],
    options: { runId?: string } = {},
  ): Promise<LatestVerifiedResult> {
    for (let round = 0; ; round++) {
      const places = options.runId !== undefined ? [this.place(key, options.runId)] : await this.places(key);
      const warnings: string[] = [];
      const candidates = new Map<string, CheckpointPointer>();
      const fromManifest = new Set<string>();
      for (const place of places) {
        try {
          for (const pointer of (await this.manifests.read(place)).manifest.checkpoints) {
            candidates.set(pointer.checkpointId, pointer);
            fromManifest.add(pointer.checkpointId);
          }
        } catch (err) {
          if (!(err instanceof ManifestError)) throw err;
          warnings.push(`${err.message}; only the checkpoints reported by the caller are considered`);
        }
      }
      extra.forEach((value, index) => {
        if (value === null || value === undefined) return;
        const problem = pointerProblem(value);
        if (problem) warnings.push(`extra checkpoint candidate #${index} skipped: ${problem}`);
        else if (!candidates.has(value.checkpointId)) candidates.set(value.checkpointId, value);
      });
      let pruned = false;
      for (const pointer of [...candidates.values()].sort(newestFirst)) {
        try {
          return { checkpoint: await this.verify(pointer), warnings };
        } catch (err) {
          if (!(err instanceof CheckpointReadError)) throw err;
          // A manifest entry whose blob vanished was most likely pruned by a newer save: look again.
          if (err.reason === 'missing' && fromManifest.has(pointer.checkpointId) && round < PRUNE_RACE_RETRIES) {
            pruned = true;
            break;
          }
          warnings.push(`checkpoint ${pointer.checkpointId} (epoch ${pointer.epoch}, step ${pointer.step}) skipped: ${err.detail}`);
        }
      }
      if (!pruned) return { checkpoint: undefined, warnings };
    }
  }

  /** Downloads and checks one blob; the verified bytes can be written to the cache on demand. */
  private async verify(pointer: CheckpointPointer): Promise<VerifiedCheckpoint> {
    const problem = pointerProblem(pointer);
    const id = typeof (pointer as Partial<CheckpointPointer> | null)?.checkpointId === 'string' ? pointer.checkpointId : '(unnamed)';
    if (problem) throw new CheckpointReadError(id, String((pointer as Partial<CheckpointPointer> | null)?.uri), 'invalid', `invalid pointer (${problem})`);
    const objectKey = this.objectKeyOf(pointer.uri);
    if (objectKey === undefined) throw new CheckpointReadError(id, pointer.uri, 'outside', `outside the checkpoint store ${this.url} (${pointer.uri})`);
    if (pointer.hashBlockBytes !== undefined) {
      // Objects are uploaded with their plain sha256 (S3 checks it too); only the local store writes block digests.
      throw new CheckpointReadError(id, pointer.uri, 'invalid', 'invalid pointer (hashBlockBytes: an S3 store records plain sha256 digests only)');
    }
    let data: Buffer;
    try {
      data = await this.retrying(`download ${pointer.uri}`, () => downloadVerified(this.client, this.bucket, objectKey, pointer.bytes, pointer.sha256));
    } catch (err) {
      const cause = (err as Error).cause ?? err;
      if (cause instanceof BlobMismatchError) throw new CheckpointReadError(id, pointer.uri, cause.reason, cause.message);
      if (isNotFound(cause)) throw new CheckpointReadError(id, pointer.uri, 'missing', 'object missing', 'NoSuchKey');
      throw new CheckpointReadError(id, pointer.uri, 'io', `unreadable (${errorMessage(err)})`);
    }
    return { pointer, data, localFile: () => this.cacheCopy(pointer, objectKey, data) };
  }

  /** Writes verified bytes into the cache (once per checkpoint) for a program that reads a path. */
  private async cacheCopy(pointer: CheckpointPointer, objectKey: string, data: Buffer): Promise<string> {
    const file = path.join(this.cacheDir, '.resume', ...objectKey.slice(this.prefix ? this.prefix.length + 1 : 0).split('/'));
    const existing = await fs.stat(file).catch(() => undefined);
    if (existing?.size === pointer.bytes) return file;
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
    return file;
  }

  private pointer(name: string, objectKey: string, input: { epoch: number; step: number; runId?: string }, written: { sha256: string; bytes: number }, metrics: CheckpointPointer['metrics']): CheckpointPointer {
    return {
      checkpointId: name.replace(/\.[^.]*$/, ''),
      uri: `s3://${this.bucket}/${objectKey}`,
      epoch: input.epoch,
      step: input.step,
      sha256: written.sha256,
      bytes: written.bytes,
      metrics,
      savedAt: new Date().toISOString(),
      ...(input.runId ? { runId: input.runId } : {}),
    };
  }

  /**
   * Commits `pointer` to the place's manifest by compare-and-swap, then deletes the blobs that fell
   * out of the newest `keep`, only after the manifest no longer names them. If the commit fails,
   * the new blob is deleted and the previous manifest is untouched.
   */
  private async record(place: Place, pointer: CheckpointPointer, keep: Retention, fence: FenceToken | undefined, newBlob: string, what: string): Promise<void> {
    let dropped: CheckpointPointer[];
    try {
      dropped = await this.manifests.commit(
        place,
        (manifest) => {
          refuseIfStale(place, manifest, fence, what);
          return withCheckpoint(manifest, pointer, keep);
        },
        // Others built on our manifest: it names our checkpoint, or already pruned it (and its blob).
        async (current) => current.checkpoints.some((entry) => entry.checkpointId === pointer.checkpointId) || !(await this.exists(newBlob)),
      );
    } catch (err) {
      await this.deleteQuietly(newBlob);
      throw err instanceof ManifestError || err instanceof StaleAttemptError ? err : writeFailure(place.key, this.manifests.uri(place), err);
    }
    // The pruned blobs are deleted after the pointer is returned: the new checkpoint is durable and
    // recorded, and no manifest names them any more, so their deletion is housekeeping that need
    // not hold up training (a DELETE of a large object is a request as slow as the manifest's).
    for (const entry of dropped) {
      const objectKey = this.objectKeyOf(entry.uri);
      // Never delete outside the place, whatever an (edited) manifest says.
      if (objectKey?.startsWith(place.objectPrefix) && objectKey !== newBlob) await this.inBackground(() => this.deleteQuietly(objectKey));
    }
  }

  /**
   * Resolves once every deletion of a pruned blob started so far has finished. Until then a
   * listing of the bucket may still show them (no manifest does); a worker that exits first
   * leaves them as orphans, which cost only space.
   */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Starts `run` without waiting for it, once fewer than MAX_BACKGROUND_DELETES are under way. */
  private async inBackground(run: () => Promise<void>): Promise<void> {
    while (this.pending.size >= MAX_BACKGROUND_DELETES) await Promise.race(this.pending);
    const work = run();
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** The key's run-less place and every run's place, found by listing. */
  private async places(key: string): Promise<Place[]> {
    const base = this.place(key, undefined);
    const runIds: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.retrying(`list s3://${this.bucket}/${base.objectPrefix}`, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base.objectPrefix + RUN_PREFIX, Delimiter: '/', ContinuationToken: token })),
      );
      for (const common of out.CommonPrefixes ?? []) {
        const runId = common.Prefix?.slice(base.objectPrefix.length + RUN_PREFIX.length, -1);
        if (runId && idProblem('runId', runId) === undefined) runIds.push(runId);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return [base, ...runIds.sort().map((runId) => this.place(key, runId))];
  }

  private place(key: string, runId: string | undefined): Place {
    const expected = `expected "<sessionId>/<experimentId>"`;
    if (typeof key !== 'string') throw new Error(`checkpoint store key: ${expected}, received ${typeof key}`);
    const parts = key.split('/');
    if (parts.length !== 2) throw new Error(`checkpoint store key ${JSON.stringify(key)}: ${expected} (exactly one '/')`);
    const problem = idProblem('sessionId', parts[0]) ?? idProblem('experimentId', parts[1]);
    if (problem) throw new Error(`checkpoint store key ${JSON.stringify(key)}: ${problem}`);
    const runProblem = runId === undefined ? undefined : idProblem('runId', runId);
    if (runProblem) throw new Error(`checkpoint store run of ${key}: ${runProblem}`);
    const base = `${this.prefix ? `${this.prefix}/` : ''}${parts[0]}/${parts[1]}/`;
    return { key, sessionId: parts[0], experimentId: parts[1], runId, objectPrefix: runId === undefined ? base : `${base}${RUN_PREFIX}${runId}/` };
  }

  private cachePath(place: Place): string {
    return path.join(this.cacheDir, place.sessionId, place.experimentId, ...(place.runId === undefined ? [] : [`${RUN_PREFIX}${place.runId}`]));
  }

  /** The object key of a pointer's URI, when it lies in this store's bucket and prefix. */
  private objectKeyOf(uri: string): string | undefined {
    const head = `s3://${this.bucket}/`;
    if (typeof uri !== 'string' || !uri.startsWith(head)) return undefined;
    const objectKey = uri.slice(head.length);
    if (this.prefix && !objectKey.startsWith(`${this.prefix}/`)) return undefined;
    if (objectKey.split('/').some((part) => part === '..' || part === '.' || part === '')) return undefined;
    return objectKey;
  }

  private retrying<T>(what: string, run: () => Promise<T>): Promise<T> {
    return retrying(what, { retryForMs: this.retryForMs, onRetry: (err, attempt, delayMs) => this.logger?.warn({ err: describeS3Error(err), attempt, delayMs: Math.round(delayMs) }, `${what}: retrying`) }, run);
  }

  private async exists(objectKey: string): Promise<boolean> {
    try {
      await this.retrying(`head s3://${this.bucket}/${objectKey}`, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey })));
      return true;
    } catch (err) {
      if (isNotFound((err as Error).cause ?? err)) return false;
      throw err;
    }
  }

  private async deleteQuietly(objectKey: string): Promise<void> {
    // Best effort: an orphan blob only costs space, and no manifest names it.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey })).catch(() => undefined);
  }

  /** Chains `run` after every earlier call for `id`, whatever their outcome. */
  private serialized<T>(id: string, run: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(id) ?? Promise.resolve();
    const result = previous.then(run);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(id, tail);
    void tail.then(() => {
      if (this.tails.get(id) === tail) this.tails.delete(id);
    });
    return result;
  }
}

function refuseIfStale(place: Place, manifest: Manifest, fence: FenceToken | undefined, what: string): void {
  if (fence && manifest.fence && compareFence(fence, manifest.fence) < 0) throw new StaleAttemptError(place.key, place.runId, fence, manifest.fence, what);
}

function writeFailure(key: string, where: string, err: unknown): Error {
  return withCode(`checkpoint write failed for ${key} at ${where}: ${errorMessage(err)}`, err);
}
