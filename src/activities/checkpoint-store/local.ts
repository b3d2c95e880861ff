/**
 * The local-disk checkpoint store: a key's blobs, manifest and temp files live in
 * `<root>/<sessionId>/<experimentId>/`. Blobs are named
 * `ck-<epoch>-<step>-a<attempt>-<suffix>.ckpt`; `.tmp-*` files exist only while a write is in
 * flight or after a crash. The durable write, the manifest format and verification live in their
 * own modules; this class puts them together and serialises calls per key.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { idProblem } from '../../shared/ids';
import type { CheckpointPointer } from '../../shared/types';
import { TMP_PREFIX, fsyncDir, removeStaleTemps, step, writeFileDurably } from './durable-write';
import { CheckpointReadError, DurableWriteError, ManifestError, errorCode, errorMessage, withCode, writeFailure } from './errors';
import { MANIFEST, encodeManifest, finiteMetrics, readManifest, withCheckpoint, type Manifest } from './manifest';
import type { AdoptCheckpointInput, CheckpointStore, LatestVerifiedResult, SaveCheckpointInput } from './types';
import { hashAndSyncFile, isInside, newestFirst, pointerProblem, readVerified, uriToPath } from './verify';

interface ParsedKey {
  readonly key: string;
  readonly dir: string;
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
    input: AdoptCheckpointInput,
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

  private readManifest({ key, dir }: ParsedKey): Promise<Manifest> {
    return readManifest(key, dir);
  }

  /**
   * Appends `pointer`, rewrites the manifest durably, then deletes blobs that fell out of the
   * newest `keep` — only after the manifest no longer names them, so a crash never leaves a
   * manifest pointing at deleted files. `newBlob` is removed if the manifest could not be written.
   */
  private async record(parsed: ParsedKey, manifest: Manifest, pointer: CheckpointPointer, keep: number, newBlob: string | undefined): Promise<void> {
    const { next, dropped } = withCheckpoint(manifest, pointer, keep);
    const kept = next.checkpoints;
    try {
      await writeFileDurably(path.join(parsed.dir, MANIFEST), encodeManifest(next));
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

export function checkPosition(input: { epoch: number; step: number; attempt: number }): void {
  for (const field of ['epoch', 'step', 'attempt'] as const) {
    const n = input[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`checkpoint ${field}: expected a non-negative integer, received ${String(n)}`);
    }
  }
}

export function checkKeep(keep: number): void {
  if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`checkpoints to keep: expected an integer >= 1, received ${String(keep)}`);
}

export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
