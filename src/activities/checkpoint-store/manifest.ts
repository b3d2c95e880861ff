/**
 * The per-key manifest: `manifest.json` names a key's checkpoints, oldest first. This module
 * parses it (strictly: a corrupt manifest is reported, never silently replaced), computes the next
 * one after a checkpoint is recorded (pruning to `keep`), and encodes it.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { CheckpointPointer, Metrics } from '../../shared/types';
import { ManifestError, errorCode, errorMessage, isRecord } from './errors';
import { pointerProblem } from './verify';

export const MANIFEST = 'manifest.json';

export interface Manifest {
  readonly version: 1;
  readonly key: string;
  readonly checkpoints: CheckpointPointer[];
}

/** Reads `<dir>/manifest.json`; an absent one is an empty manifest. */
export async function readManifest(key: string, dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { version: 1, key, checkpoints: [] };
    throw new ManifestError(file, `checkpoint manifest ${file} is unreadable: ${errorMessage(err)}`);
  }
  return parseManifest(key, file, text);
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
  const checkpoints = value.checkpoints.map((entry: unknown, index: number) => {
    const problem = pointerProblem(entry);
    if (problem) throw corrupt(`checkpoints[${index}]: ${problem}`);
    const pointer = entry as CheckpointPointer;
    return { ...pointer, metrics: finiteMetrics(pointer.metrics) };
  });
  return { version: 1, key, checkpoints };
}

/**
 * The manifest after recording `pointer`, and the entries that fell out of the newest `keep`.
 * Order is by recording time, not (epoch, step): after a rollback to an older checkpoint the new
 * lineage must be what survives pruning, not the higher-numbered blob that failed to verify.
 */
export function withCheckpoint(manifest: Manifest, pointer: CheckpointPointer, keep: number): { next: Manifest; dropped: CheckpointPointer[] } {
  const entries = [...manifest.checkpoints.filter((entry) => entry.checkpointId !== pointer.checkpointId), pointer];
  const kept = entries.slice(-keep);
  const dropped = entries.slice(0, entries.length - kept.length);
  return { next: { ...manifest, checkpoints: kept }, dropped };
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
