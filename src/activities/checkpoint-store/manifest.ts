/**
 * The manifest of one run's place: it names the run's checkpoints, oldest first, and holds the
 * run's fence (the newest attempt registered). It is published in numbered generations,
 * `manifest-<generation>.json`, each written once with link(2) so that two writers cannot both
 * publish the same generation: that is the compare-and-swap the fence relies on. The current
 * manifest is the highest generation; a few older ones are kept so a reader that listed the
 * directory a moment ago still finds the file it picked. `manifest.json` (no generation) is what
 * stores before generations wrote, and is read as generation 0.
 *
 * This module parses manifests strictly (a corrupt one is reported, never silently replaced),
 * computes the next one (pruning to `keep`, raising the fence) and publishes it.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { retain, type Retention, type RetentionMarks } from '../../shared/retention';
import type { CheckpointPointer, Metrics } from '../../shared/types';
import { removeFile, writeFileDurably } from './durable-write';
import { ManifestError, errorCode, errorMessage, isRecord } from './errors';
import type { FenceToken } from './types';
import { pointerProblem } from './verify';

/** The name before generations; read as generation 0, never written. */
export const LEGACY_MANIFEST = 'manifest.json';
const GENERATION = /^manifest-(\d{12})\.json$/;
/** Older generations kept behind the current one for readers that listed the directory just before. */
const KEEP_GENERATIONS = 8;

export interface Manifest {
  readonly version: 1;
  readonly key: string;
  /** Newest attempt registered for the run; writes from older ones are refused. */
  readonly fence: FenceToken | null;
  readonly checkpoints: CheckpointPointer[];
  /**
   * Why each checkpoint is kept, when the run prunes by `{ latest, best }` (src/shared/retention.ts):
   * ids kept as the newest and as the best. Absent under a plain count: all are the latest.
   */
  readonly retention?: RetentionMarks;
}

export interface CurrentManifest {
  readonly generation: number;
  readonly manifest: Manifest;
}

export function manifestFile(dir: string, generation: number): string {
  return path.join(dir, `manifest-${String(generation).padStart(12, '0')}.json`);
}

/** Whether `name` is one of the manifest's own files (never a checkpoint). */
export function isManifestName(name: string): boolean {
  return name === LEGACY_MANIFEST || GENERATION.test(name);
}

async function generations(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw new ManifestError(dir, `checkpoint directory ${dir} is unreadable: ${errorMessage(err)}`);
  }
  return names
    .map((name) => GENERATION.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The current manifest of a place; none yet is an empty generation 0. */
export async function readCurrent(key: string, dir: string): Promise<CurrentManifest> {
  for (let tries = 0; ; tries++) {
    const newest = (await generations(dir)).at(-1);
    const file = newest === undefined ? path.join(dir, LEGACY_MANIFEST) : manifestFile(dir, newest);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw new ManifestError(file, `checkpoint manifest ${file} is unreadable: ${errorMessage(err)}`);
      if (newest === undefined) return { generation: 0, manifest: { version: 1, key, fence: null, checkpoints: [] } };
      // Superseded and pruned between the listing and the read: list again.
      if (tries < 100) continue;
      throw new ManifestError(file, `checkpoint manifest ${file} keeps vanishing while being read (over 100 newer generations published meanwhile)`);
    }
    return { generation: newest ?? 0, manifest: parseManifest(key, file, text) };
  }
}

/**
 * Publishes `manifest` as `generation`. Resolves false when another writer published that
 * generation first; the caller reads the current manifest again and retries.
 *
 * A writer that slept through KEEP_GENERATIONS commits can re-create a pruned generation below the
 * current one. Readers never pick it (they take the highest), and it is withdrawn, unless the
 * current manifest already carries this change (`incorporated`: others built on it in the moment
 * between our link and our listing), in which case the publish counts.
 */
export async function publish(key: string, dir: string, generation: number, manifest: Manifest, incorporated: (current: Manifest) => boolean): Promise<boolean> {
  const file = manifestFile(dir, generation);
  try {
    await writeFileDurably(file, encodeManifest(manifest), { exclusive: true });
  } catch (err) {
    if (errorCode(err) === 'EEXIST') return false;
    throw err;
  }
  const listed = await generations(dir);
  const newest = listed.at(-1) ?? generation;
  if (newest > generation) {
    if (incorporated((await readCurrent(key, dir)).manifest)) return true;
    await removeFile(file);
    return false;
  }
  for (const old of listed) {
    if (old > generation - KEEP_GENERATIONS) break;
    await removeFile(manifestFile(dir, old)).catch(() => undefined);
  }
  if (generation === 1) await removeFile(path.join(dir, LEGACY_MANIFEST)).catch(() => undefined);
  return true;
}

export function parseManifest(key: string, file: string, text: string): Manifest {
  const corrupt = (why: string) =>
    new ManifestError(file, `checkpoint manifest ${file} is corrupt (${why}); the blobs next to it are untouched — move the manifest aside to start a new one`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw corrupt(errorMessage(err));
  }
  if (!isRecord(value)) throw corrupt('not a JSON object');
  if (value.version !== 1) throw corrupt(`unsupported version ${JSON.stringify(value.version)}`);
  if (!Array.isArray(value.checkpoints)) throw corrupt('"checkpoints" is not an array');
  const fence = value.fence === undefined || value.fence === null ? null : fenceOf(value.fence);
  if (fence === undefined) throw corrupt(`fence: expected null or {invocation, attempt} of non-negative integers, received ${JSON.stringify(value.fence)}`);
  const checkpoints = value.checkpoints.map((entry: unknown, index: number) => {
    const problem = pointerProblem(entry);
    if (problem) throw corrupt(`checkpoints[${index}]: ${problem}`);
    const pointer = entry as CheckpointPointer;
    return { ...pointer, metrics: finiteMetrics(pointer.metrics) };
  });
  const retention = value.retention === undefined ? undefined : retentionOf(value.retention);
  if (retention === null) throw corrupt(`retention: expected {latest: [ids], best: [ids], metric, mode}, received ${JSON.stringify(value.retention).slice(0, 80)}`);
  return { version: 1, key, fence, checkpoints, ...(retention ? { retention } : {}) };
}

function retentionOf(value: unknown): RetentionMarks | null {
  if (!isRecord(value)) return null;
  const ids = (v: unknown): v is string[] => Array.isArray(v) && v.every((id) => typeof id === 'string');
  const { latest, best, metric, mode } = value;
  if (!ids(latest) || !ids(best) || typeof metric !== 'string' || (mode !== 'min' && mode !== 'max')) return null;
  return { latest, best, metric, mode };
}

function fenceOf(value: unknown): FenceToken | undefined {
  if (!isRecord(value)) return undefined;
  const { invocation, attempt } = value;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  return ok(invocation) && ok(attempt) ? { invocation, attempt } : undefined;
}

/** Lexicographic order of fence tokens: negative when `a` is older than `b`. */
export function compareFence(a: FenceToken, b: FenceToken): number {
  return a.invocation - b.invocation || a.attempt - b.attempt;
}

/**
 * The manifest after recording `pointer`, and the entries that `keep` prunes (the newest K, and
 * under `{ latest, best }` the best B too; see src/shared/retention.ts). "Newest" is by recording
 * time, not (epoch, step): after a rollback to an older checkpoint the new lineage must be what
 * survives pruning, not the higher-numbered blob that failed to verify.
 */
export function withCheckpoint(manifest: Manifest, pointer: CheckpointPointer, keep: Retention): { next: Manifest; dropped: CheckpointPointer[] } {
  const entries = [...manifest.checkpoints.filter((entry) => entry.checkpointId !== pointer.checkpointId), pointer];
  const { kept, dropped, marks } = retain(entries, keep);
  const { retention: _previous, ...rest } = manifest;
  return { next: { ...rest, checkpoints: kept, ...(marks ? { retention: marks } : {}) }, dropped };
}

export function encodeManifest(manifest: Manifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
}

/** JSON cannot carry NaN or Infinity; dropping them keeps the manifest and heartbeats well-formed. */
export function finiteMetrics(metrics: Metrics | undefined): Metrics {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics ?? {})) {
    if (typeof value === 'number' && Number.isFinite(value)) out[name] = value;
  }
  return out;
}
