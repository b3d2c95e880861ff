/**
 * The local-disk checkpoint store. A key's checkpoints live in `<root>/<sessionId>/<experimentId>/`;
 * each experiment workflow run has its own place below it, `run-<runId>/`, holding its blobs
 * (`ck-<epoch>-<step>-a<attempt>-<suffix>.ckpt`), its manifest generations and, while a write is in
 * flight or after a crash, `.tmp-*` files. External trainers of a fenced attempt write into
 * `attempt-<invocation>-<attempt>/` below the run's place, so a stale attempt never overwrites a
 * newer one's files. Writes without a run id go to the key directory itself (the layout before
 * runs had places), which reads across runs also cover.
 *
 * Safe against crashes at any point, and against concurrent writers in several processes: the
 * manifest is committed by compare-and-swap (see manifest.ts), the fence is checked in the same
 * step, and within one process calls for one place are also serialised.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { idProblem } from '../../shared/ids';
import { retentionProblem, type Retention, type RetentionMarks } from '../../shared/retention';
import type { CheckpointPointer } from '../../shared/types';
import { TMP_PREFIX, mkdirDurably, removeFile, removeStaleTemps, writeFileDurably, type WrittenBlob } from './durable-write';
import { CheckpointReadError, DurableWriteError, ManifestError, StaleAttemptError, errorCode, errorMessage, withCode, writeFailure } from './errors';
import { LocalHistoryObjects } from './history-local';
import { compareFence, finiteMetrics, isManifestName, manifestFile, publish, readCurrent, withCheckpoint, type CurrentManifest, type Manifest } from './manifest';
import type { AdoptCheckpointInput, CheckpointStore, FenceToken, LatestVerifiedResult, SaveCheckpointInput } from './types';
import { hashAndSyncFile, isInside, newestFirst, pointerProblem, readVerified, resolveAdoptable, uriToPath } from './verify';

const RUN_PREFIX = 'run-';
/** Restarts of latestVerified after a candidate vanished because a concurrent writer pruned it. */
const PRUNE_RACE_RETRIES = 20;
/** Commit attempts before giving up on a place that other writers keep changing. */
const COMMIT_TRIES = 1000;

interface ParsedKey {
  readonly key: string;
  /** The key's directory, which every run's place lies in. */
  readonly dir: string;
}

/** One run's place (or the key's run-less place when `runId` is undefined). */
interface Place extends ParsedKey {
  readonly runId: string | undefined;
  readonly placeDir: string;
}

export class LocalCheckpointStore implements CheckpointStore {
  private readonly root: string;
  private readonly tails = new Map<string, Promise<void>>();
  /**
   * The manifest this process last read or published, per place, with the identity of its file
   * (inode, size, mtime). Only writes start from it, after a stat shows the file unchanged (so an
   * edited or corrupted manifest is still read and reported), as the guess the compare-and-swap
   * checks: a newer generation by another writer costs a refused link and a fresh read, never a
   * lost update or a missed fence. Reads (list, latestVerified, currentFence) always read the directory.
   */
  private readonly known = new Map<string, { current: CurrentManifest; identity: string }>();
  /** Directories whose crashed writes' temp files this process has removed already (see removeStaleTemps). */
  private readonly swept = new Set<string>();

  constructor(rootDir: string) {
    this.root = path.resolve(rootDir);
  }

  dirFor(key: string, runId?: string, fence?: FenceToken): string {
    const place = this.place(key, runId);
    const dir = fence ? path.join(place.placeDir, `attempt-${fence.invocation}-${fence.attempt}`) : place.placeDir;
    try {
      mkdirDurably(dir);
    } catch (err) {
      throw withCode(`cannot create checkpoint directory ${dir} for ${key}: ${errorMessage(err)}`, err);
    }
    return dir;
  }

  async registerAttempt(key: string, runId: string, token: FenceToken): Promise<void> {
    checkFence(token);
    if (runId === undefined) throw new Error('registerAttempt: expected a runId, received nothing');
    const place = this.place(key, runId);
    await this.serialized(place.placeDir, async () => {
      this.ensurePlace(place);
      // From the directory, not the known manifest: "already registered" must be true right now.
      this.known.delete(place.placeDir);
      await this.commit(place, (manifest) => {
        if (manifest.fence && compareFence(token, manifest.fence) < 0) {
          throw new StaleAttemptError(key, runId, token, manifest.fence, 'registering the attempt');
        }
        if (manifest.fence && compareFence(token, manifest.fence) === 0) return undefined;
        return { next: { ...manifest, fence: token }, dropped: [] };
      }, (current) => current.fence !== null && compareFence(current.fence, token) >= 0);
    });
  }

  async retention(key: string, runId: string | undefined): Promise<RetentionMarks | undefined> {
    return (await readCurrent(key, this.place(key, runId).placeDir)).manifest.retention;
  }

  metricHistory(): LocalHistoryObjects {
    return new LocalHistoryObjects(this.root);
  }

  async currentFence(key: string, runId: string): Promise<FenceToken | null> {
    const place = this.place(key, runId);
    return (await readCurrent(key, place.placeDir)).manifest.fence;
  }

  async save(key: string, input: SaveCheckpointInput, keep: Retention): Promise<CheckpointPointer> {
    const place = this.place(key, input.runId);
    checkPosition(input);
    checkKeep(keep);
    if (input.fence) checkFence(input.fence);
    const metrics = finiteMetrics(input.metrics);
    return this.serialized(place.placeDir, async () => {
      this.ensurePlace(place);
      await this.sweep(place.placeDir);
      // Check the manifest first: a corrupt one, or a newer attempt, fails the save before it writes.
      const start = await this.current(place);
      this.refuseIfStale(place, start.manifest, input.fence, 'checkpoint save');
      const name = `ck-${pad(input.epoch, 6)}-${pad(input.step, 8)}-a${input.attempt}-${randomBytes(4).toString('hex')}.ckpt`;
      const file = path.join(place.placeDir, name);
      let written: WrittenBlob;
      try {
        written = await writeFileDurably(file, input.data, { hashOnCaller: input.background !== true });
      } catch (err) {
        // The rename happened but the directory fsync failed: the blob may or may not survive a
        // crash, so it must not be recorded.
        if (err instanceof DurableWriteError && err.renamed) await removeFile(file).catch(() => undefined);
        throw writeFailure(key, err);
      }
      const pointer = this.pointer(name, file, input, written, metrics);
      await this.record(place, pointer, keep, input.fence, file, 'checkpoint save', start);
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
    return this.serialized(place.placeDir, async () => {
      const { given, real, realDir, fail } = await resolveAdoptable(key, dir, file);
      if ((path.dirname(real) === realDir && isManifestName(path.basename(real))) || path.basename(real).startsWith(TMP_PREFIX)) {
        throw fail("it is one of the store's own files, not a checkpoint");
      }
      await this.sweep(path.dirname(real));
      const start = await this.current(place);
      this.refuseIfStale(place, start.manifest, input.fence, `adopting ${given}`);
      let hashed: { sha256: string; bytes: number };
      try {
        // The file's own directory is synced beside the hash. The place's directory (when the file
        // lies below it) is synced by the manifest commit, before the pointer is returned.
        const dirs = [path.dirname(real), ...(path.dirname(real) !== realDir && !isInside(place.placeDir, real) ? [realDir] : [])];
        hashed = await hashAndSyncFile(real, dirs);
      } catch (err) {
        throw fail(errorMessage(err), err);
      }
      const pointer = this.pointer(path.basename(real), real, input, hashed, metrics);
      await this.record(place, pointer, keep, input.fence, undefined, `adopting ${given}`, start);
      return pointer;
    });
  }

  async list(key: string, options: { runId?: string } = {}): Promise<CheckpointPointer[]> {
    const parsed = this.parseKey(key);
    if (options.runId !== undefined) return [...(await readCurrent(key, this.place(key, options.runId).placeDir)).manifest.checkpoints].reverse();
    const all: CheckpointPointer[] = [];
    for (const place of this.places(parsed)) all.push(...[...(await readCurrent(key, place.placeDir)).manifest.checkpoints].reverse());
    // Across runs by recording time; within a run the manifest's own order is kept (stable sort).
    return all.sort((a, b) => (Date.parse(b.savedAt) || 0) - (Date.parse(a.savedAt) || 0));
  }

  async read(pointer: CheckpointPointer): Promise<Buffer> {
    // Every pointer this store hands out lies under its root; a forged one must not read elsewhere.
    const rootReal = await fs.realpath(this.root).catch(() => this.root);
    return readVerified(pointer, [this.root, rootReal]);
  }

  /**
   * When a manifest is unreadable, only `extra` candidates are tried (with a warning): the blobs
   * next to it have no recorded sha256 and so cannot be verified, and guessing at unverified bytes
   * is worse than starting over from a pointer we can check.
   */
  async latestVerified(
    key: string,
    extra: readonly (CheckpointPointer | null | undefined)[] = [],
    options: { runId?: string } = {},
  ): Promise<LatestVerifiedResult> {
    const parsed = this.parseKey(key);
    const places = options.runId !== undefined ? [this.place(key, options.runId)] : this.places(parsed);
    const realDir = await fs.realpath(parsed.dir).catch(() => parsed.dir);
    for (let round = 0; ; round++) {
      const warnings: string[] = [];
      const fromManifest = new Map<string, Place>();
      const candidates = new Map<string, CheckpointPointer>();
      for (const place of places) {
        try {
          for (const pointer of (await readCurrent(key, place.placeDir)).manifest.checkpoints) {
            candidates.set(pointer.checkpointId, pointer);
            fromManifest.set(pointer.checkpointId, place);
          }
        } catch (err) {
          if (!(err instanceof ManifestError)) throw err;
          warnings.push(`${err.message}; only the checkpoints reported by the caller are considered`);
        }
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
      let pruned = false;
      for (const pointer of [...candidates.values()].sort(newestFirst)) {
        try {
          const data = await readVerified(pointer, [parsed.dir, realDir]);
          return { checkpoint: { pointer, data }, warnings };
        } catch (err) {
          if (!(err instanceof CheckpointReadError)) throw err;
          const place = fromManifest.get(pointer.checkpointId);
          if (err.reason === 'missing' && place && round < PRUNE_RACE_RETRIES && (await this.prunedSince(place, pointer))) {
            // A concurrent writer pruned it after we read the manifest: choose again from the new one.
            pruned = true;
            break;
          }
          warnings.push(`checkpoint ${pointer.checkpointId} (epoch ${pointer.epoch}, step ${pointer.step}) skipped: ${err.detail}`);
        }
      }
      if (!pruned) return { checkpoint: undefined, warnings };
    }
  }

  private async prunedSince(place: Place, pointer: CheckpointPointer): Promise<boolean> {
    try {
      const { manifest } = await readCurrent(place.key, place.placeDir);
      return !manifest.checkpoints.some((entry) => entry.checkpointId === pointer.checkpointId);
    } catch {
      return false;
    }
  }

  private pointer(
    fileName: string,
    file: string,
    input: { epoch: number; step: number; runId?: string },
    hashed: WrittenBlob,
    metrics: CheckpointPointer['metrics'],
  ): CheckpointPointer {
    return {
      checkpointId: path.parse(fileName).name,
      uri: pathToFileURL(file).href,
      epoch: input.epoch,
      step: input.step,
      sha256: hashed.sha256,
      bytes: hashed.bytes,
      ...(hashed.hashBlockBytes === undefined ? {} : { hashBlockBytes: hashed.hashBlockBytes }),
      metrics,
      savedAt: new Date().toISOString(),
      ...(input.runId ? { runId: input.runId } : {}),
    };
  }

  private refuseIfStale(place: Place, manifest: Manifest, fence: FenceToken | undefined, what: string): void {
    if (fence && manifest.fence && compareFence(fence, manifest.fence) < 0) throw new StaleAttemptError(place.key, place.runId, fence, manifest.fence, what);
  }

  /**
   * Commits `pointer` to the place's manifest (fence checked in the same compare-and-swap), then
   * deletes blobs that fell out of the newest `keep`: only after the manifest no longer names them,
   * so a crash never leaves a manifest pointing at deleted files. `newBlob` is removed when the
   * commit failed or was refused.
   */
  /** `start`: the manifest the caller checked the fence against, under the same lock (the first try commits on it). */
  private async record(
    place: Place,
    pointer: CheckpointPointer,
    keep: Retention,
    fence: FenceToken | undefined,
    newBlob: string | undefined,
    what: string,
    start: CurrentManifest,
  ): Promise<void> {
    let dropped: CheckpointPointer[];
    let kept: CheckpointPointer[];
    try {
      const change = await this.commit(
        place,
        (manifest) => {
          this.refuseIfStale(place, manifest, fence, what);
          return withCheckpoint(manifest, pointer, keep);
        },
        (current) => current.checkpoints.some((entry) => entry.checkpointId === pointer.checkpointId),
        start,
      );
      dropped = change?.dropped ?? [];
      kept = change?.next.checkpoints ?? [];
    } catch (err) {
      const replaced = err instanceof DurableWriteError && err.renamed;
      if (newBlob && !replaced) await removeFile(newBlob).catch(() => undefined);
      if (err instanceof StaleAttemptError || err instanceof ManifestError) throw err;
      throw writeFailure(place.key, err);
    }
    const keptFiles = new Set(kept.map((entry) => uriToPath(entry.uri)));
    for (const entry of dropped) {
      const file = uriToPath(entry.uri);
      // Never delete outside the run's place, whatever an (edited) manifest says.
      if (!file || keptFiles.has(file) || !isInside(place.placeDir, path.resolve(file))) continue;
      // Best effort: the new checkpoint is already durable; a leftover blob only costs space.
      await removeFile(file).catch(() => undefined);
    }
  }

  /**
   * Read, change, publish the next generation; again from the top when another writer published
   * first. `change` may throw (a refusal) or return undefined (nothing to do).
   */
  private async commit(
    place: Place,
    change: (manifest: Manifest) => { next: Manifest; dropped: CheckpointPointer[] } | undefined,
    incorporated: (current: Manifest) => boolean,
    start?: CurrentManifest,
  ): Promise<{ next: Manifest; dropped: CheckpointPointer[] } | undefined> {
    for (let tries = 1; ; tries++) {
      // A start the caller just read is only a guess too: a newer generation makes the publish fail and retry.
      const { generation, manifest } = tries === 1 ? (start ?? (await this.current(place))) : await this.reread(place);
      const changed = change(manifest);
      if (!changed) return undefined;
      const published = await publish(place.key, place.placeDir, generation + 1, changed.next, incorporated).catch((err: unknown) => {
        this.known.delete(place.placeDir);
        throw err;
      });
      this.known.delete(place.placeDir);
      if (published) {
        // A stale guess (another writer went further meanwhile) only costs the next commit a retry.
        await this.remember(place, { generation: generation + 1, manifest: changed.next });
        return changed;
      }
      if (tries >= COMMIT_TRIES) throw new Error(`checkpoint manifest of ${place.key} in ${place.placeDir}: gave up after ${tries} conflicting commits by other writers`);
      // Conflicting writers back off a little so one of them gets through.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, tries)));
    }
  }

  /** The manifest a write starts from: the one this process last saw if its file is unchanged, else read. */
  private async current(place: Place): Promise<CurrentManifest> {
    const known = this.known.get(place.placeDir);
    if (known && (await fileIdentity(manifestFile(place.placeDir, known.current.generation))) === known.identity) return known.current;
    return this.reread(place);
  }

  private async reread(place: Place): Promise<CurrentManifest> {
    this.known.delete(place.placeDir);
    const current = await readCurrent(place.key, place.placeDir);
    await this.remember(place, current);
    return current;
  }

  private async remember(place: Place, current: CurrentManifest): Promise<void> {
    // Generation 0 is no file or the legacy name: nothing to stat cheaply, so not remembered.
    const identity = current.generation > 0 ? await fileIdentity(manifestFile(place.placeDir, current.generation)) : undefined;
    if (identity !== undefined) this.known.set(place.placeDir, { current, identity });
  }

  /** Removes crashed writes' temp files from `dir` once per process: later crashes end the process, and the next one sweeps. */
  private async sweep(dir: string): Promise<void> {
    if (this.swept.has(dir)) return;
    await removeStaleTemps(dir);
    this.swept.add(dir);
  }

  private ensurePlace(place: Place): void {
    try {
      mkdirDurably(place.placeDir);
    } catch (err) {
      throw writeFailure(place.key, new DurableWriteError('create directory', place.placeDir, errorMessage(err), { code: errorCode(err), renamed: false, cause: err }));
    }
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

  private place(key: string, runId: string | undefined): Place {
    const parsed = this.parseKey(key);
    if (runId === undefined) return { ...parsed, runId, placeDir: parsed.dir };
    const problem = idProblem('runId', runId);
    if (problem) throw new Error(`checkpoint store run of ${key}: ${problem}`);
    return { ...parsed, runId, placeDir: path.join(parsed.dir, `${RUN_PREFIX}${runId}`) };
  }

  /** The run-less place and every run's place of a key. */
  private places(parsed: ParsedKey): Place[] {
    let names: string[] = [];
    try {
      names = readdirSync(parsed.dir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && entry.name.startsWith(RUN_PREFIX))
        .map((entry) => entry.name.slice(RUN_PREFIX.length))
        .filter((runId) => idProblem('runId', runId) === undefined);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw withCode(`checkpoint directory ${parsed.dir} is unreadable: ${errorMessage(err)}`, err);
    }
    return [this.place(parsed.key, undefined), ...names.map((runId) => this.place(parsed.key, runId))];
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

/** Inode, size and mtime of a file, or undefined when it cannot be read. */
async function fileIdentity(file: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(file, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

export function checkPosition(input: { epoch: number; step: number; attempt: number }): void {
  for (const field of ['epoch', 'step', 'attempt'] as const) {
    const n = input[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`checkpoint ${field}: expected a non-negative integer, received ${String(n)}`);
    }
  }
}

export function checkFence(token: FenceToken): void {
  for (const field of ['invocation', 'attempt'] as const) {
    const n = token?.[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`fence token ${field}: expected a non-negative integer, received ${String(n)}`);
    }
  }
}

export function checkKeep(keep: Retention): void {
  const problem = retentionProblem(keep);
  if (problem) throw new Error(`checkpoints to keep${problem}`);
}

export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
