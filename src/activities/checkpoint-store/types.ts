/**
 * The checkpoint store contract, which every store (local disk today, S3 later) implements and
 * which test/activities/checkpoint-store-contract.ts checks.
 *
 * Addressing. A store key is `<sessionId>/<experimentId>`. Within a key, each experiment workflow
 * run (`runId`) has its own place: its own manifest, blobs and fence, so re-running a session id
 * never prunes, fences or resumes the earlier run's checkpoints. Calls without a `runId` write to
 * the key's run-less place (stores written before runs had places) and read across all runs.
 *
 * Fencing. Every attempt of a run has a token (invocation, attempt) compared lexicographically.
 * `registerAttempt` raises the run's fence to the token atomically (never lowers it); a `save` or
 * `adopt` carrying a token older than the fence is refused with a StaleAttemptError and changes
 * nothing the newer attempt can see. The fence check and the manifest commit are one atomic
 * step: the local store publishes each manifest generation with link(2), which fails if another
 * writer published that generation first; an S3 store does the same with a conditional PutObject
 * (`If-None-Match: *` on the next generation's object, or `If-Match` on the manifest's ETag).
 */
import type { Retention, RetentionMarks } from '../../shared/retention';
import type { CheckpointPointer, Metrics } from '../../shared/types';
import type { CheckpointData } from '../trainer';
import type { HistoryObjects } from './history';

/**
 * The identity of one attempt of one experiment run. Compared as (invocation, attempt): a later
 * activity invocation (after a preemption) beats any attempt of an earlier one.
 */
export interface FenceToken {
  /** Which activity invocation of the run (0 for the first; preemptions count up). */
  readonly invocation: number;
  /** Temporal's attempt number within the invocation (1 for the first). */
  readonly attempt: number;
}

/** Who is writing: the run's place and, when fenced, the writer's token. */
export interface WriterIdentity {
  /** Run id of the experiment workflow writing it (selects the run's place; recorded in the pointer). */
  readonly runId?: string;
  /** The writer's fence token; without one the write is not fenced. */
  readonly fence?: FenceToken;
}

export interface SaveCheckpointInput extends WriterIdentity {
  readonly epoch: number;
  readonly step: number;
  readonly attempt: number;
  readonly data: CheckpointData;
  readonly metrics?: Metrics;
  /**
   * The save runs beside training (`checkpointInBackground`): the event loop, which the training
   * shares, does none of the hashing (a local store otherwise lets it help once the write is down).
   */
  readonly background?: boolean;
}

/** What `adopt` records about a file the trainer wrote itself. */
export interface AdoptCheckpointInput extends WriterIdentity {
  readonly epoch: number;
  readonly step: number;
  readonly attempt: number;
  readonly metrics?: Metrics;
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
  /**
   * Absolute local directory for a run's checkpoint files, created on demand (with `fence`, one of
   * its own per attempt). External trainers write here and `adopt` the files. A remote store
   * returns a local cache directory.
   */
  dirFor(key: string, runId?: string, fence?: FenceToken): string;
  /**
   * Raises the run's fence to `token` atomically, across processes. Resolves when the fence is
   * at `token` (already there is fine); throws StaleAttemptError when a newer token is registered.
   */
  registerAttempt(key: string, runId: string, token: FenceToken): Promise<void>;
  /** The newest token registered for the run, or null when none is. */
  currentFence(key: string, runId: string): Promise<FenceToken | null>;
  /**
   * Streams `data` durably, computing sha256 while writing, then commits it to the run's manifest
   * and prunes to `keep` (the newest K, or `{ latest, best, metric, mode }`: src/shared/retention.ts). It becomes visible only once complete. On any failure the previous
   * checkpoints and manifest are left intact and the error message names the path and the system
   * error (ENOSPC, EACCES, ...). A stale `fence` is refused (StaleAttemptError) and leaves nothing.
   */
  save(key: string, input: SaveCheckpointInput, keep: Retention): Promise<CheckpointPointer>;
  /**
   * Records a file the trainer wrote itself. Refuses (throws) a path outside `dirFor(key, runId)`
   * (after resolving symlinks) or a file that does not exist. Hashes it, makes it durable, and
   * commits it like `save`, fenced the same way.
   */
  adopt(key: string, file: string, input: AdoptCheckpointInput, keep: Retention): Promise<CheckpointPointer>;
  /** Manifest entries, newest first; with `runId` that run's only, else every run's. Empty when none. */
  list(key: string, options?: { runId?: string }): Promise<CheckpointPointer[]>;
  /** Reads a blob and checks its sha256; throws when missing or corrupt. */
  read(pointer: CheckpointPointer): Promise<Buffer>;
  /**
   * Picks the newest checkpoint that verifies among the manifest entries and `extra` candidates
   * (e.g. the last heartbeat's pointer). Ordering is by (epoch, step, savedAt). With `runId`, only
   * that run's manifest is considered; without, every run's (resumeFrom, hints). A blob pruned by a
   * concurrent writer while this ran is not reported as missing: the manifest is read again.
   */
  latestVerified(key: string, extra?: readonly (CheckpointPointer | null | undefined)[], options?: { runId?: string }): Promise<LatestVerifiedResult>;
  /**
   * The create-once objects of each run's metric history (see history.ts). A store without it
   * keeps no history: training runs, and readMetricHistory says the store has none.
   */
  metricHistory?(): HistoryObjects;
  /** Why the run's manifest keeps what it keeps (ids kept as latest and as best); undefined under a plain count. */
  retention?(key: string, runId: string | undefined): Promise<RetentionMarks | undefined>;
}
