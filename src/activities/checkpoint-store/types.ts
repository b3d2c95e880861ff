/**
 * The checkpoint store contract. Blobs are addressed by a store key `<sessionId>/<experimentId>`;
 * each key has a directory of versioned blobs and a manifest naming them, newest last.
 */
import type { CheckpointPointer, Metrics } from '../../shared/types';
import type { CheckpointData } from '../trainer';

export interface SaveCheckpointInput {
  readonly epoch: number;
  readonly step: number;
  readonly attempt: number;
  readonly data: CheckpointData;
  readonly metrics?: Metrics;
  /** Run id of the experiment workflow writing it (recorded in the pointer). */
  readonly runId?: string;
}

/** What `adopt` records about a file the trainer wrote itself. */
export interface AdoptCheckpointInput {
  readonly epoch: number;
  readonly step: number;
  readonly attempt: number;
  readonly metrics?: Metrics;
  /** Run id of the experiment workflow adopting it (recorded in the pointer). */
  readonly runId?: string;
}

export interface VerifiedCheckpoint {
  readonly pointer: CheckpointPointer;
  readonly data: Buffer;
  /**
   * A local file with these verified bytes, for programs that read a path. A remote store writes
   * it into its cache on the first call; without it the pointer's `file://` URI is the file.
   */
  readonly localFile?: () => Promise<string>;
}

export interface LatestVerifiedResult {
  /** Newest candidate whose blob exists and whose sha256 matches, with its bytes. */
  readonly checkpoint: VerifiedCheckpoint | undefined;
  /** One line per candidate that was skipped, e.g. `checkpoint ck-… (epoch 3): sha256 mismatch …`. */
  readonly warnings: string[];
}

export interface CheckpointStore {
  /** Absolute directory of a key's checkpoints (created on demand). External trainers write here. */
  dirFor(key: string): string;
  /**
   * Streams `data` to a temp file in the key's directory, fsyncs it, renames it into place,
   * fsyncs the directory, computes sha256 while writing, then atomically rewrites the manifest
   * and prunes to `keep`. On any failure the previous checkpoints and manifest are left intact
   * and the error message names the path and the system error (ENOSPC, EACCES, ...).
   */
  save(key: string, input: SaveCheckpointInput, keep: number): Promise<CheckpointPointer>;
  /**
   * Records a file the trainer wrote itself. Refuses (throws) a path outside `dirFor(key)`
   * (after resolving symlinks) or a file that does not exist. Hashes it, fsyncs it and the
   * directory, and adds it to the manifest like `save`.
   */
  adopt(key: string, file: string, input: AdoptCheckpointInput, keep: number): Promise<CheckpointPointer>;
  /** Manifest entries, newest first; with `runId` that run's only, else every run's. Empty when none. */
  list(key: string, options?: { runId?: string }): Promise<CheckpointPointer[]>;
  /** Reads a blob and checks its sha256; throws when missing or corrupt. */
  read(pointer: CheckpointPointer): Promise<Buffer>;
  /**
   * Picks the newest checkpoint that verifies among the manifest's entries and `extra`
   * candidates (e.g. the last heartbeat's pointer). Ordering is by (epoch, step, savedAt).
   * With `runId`, manifest entries written by other runs of the experiment are not considered.
   */
  latestVerified(key: string, extra?: readonly (CheckpointPointer | null | undefined)[], options?: { runId?: string }): Promise<LatestVerifiedResult>;
}
