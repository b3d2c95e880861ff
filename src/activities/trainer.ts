/**
 * The trainer API: what user training code sees. A trainer is registered with the plugin by
 * name and written like an ordinary training loop; this module holds only its types.
 *
 * The contract, in short:
 * - `ctx.resume` is the newest verified checkpoint (or undefined for a fresh start);
 * - call `await ctx.step(...)` after every optimisation step: it reports progress (heartbeats
 *   are coalesced by the runtime) and yields to the event loop so cancellation can arrive;
 * - check `ctx.interrupted` at each step boundary; when it is set, save a checkpoint with
 *   `await ctx.checkpoint(...)` and return `undefined`;
 * - call `await ctx.checkpoint(...)` (or `ctx.checkpointInBackground(...)`, which does not stall
 *   training while it persists) at least once per epoch, and return the final result.
 */
import type { Logger } from 'pino';
import type { CheckpointPointer, InterruptReason, Metrics } from '../shared/types';

/**
 * Bytes of a checkpoint blob: one buffer, or chunks streamed to disk without concatenation. A
 * large buffer in a SharedArrayBuffer (`Buffer.from(new SharedArrayBuffer(n))`, as the runtime's
 * own `copy: true` buffer is) is hashed in place by the sha256 helper thread while the write runs;
 * any other large buffer is copied to it piece by piece, which costs the write about 10 %.
 */
export type CheckpointData = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** The checkpoint a run resumes from. `data` has already been verified against `pointer.sha256`. */
export interface ResumeState {
  readonly pointer: CheckpointPointer;
  readonly data: Buffer;
  /** A local file with the same bytes, when the store is remote (written on the first call). */
  readonly localFile?: () => Promise<string>;
}

export interface StepReport {
  /** Zero-based epoch in progress. */
  readonly epoch: number;
  /** Steps done within the epoch, counting the step just finished (1 after the first step). */
  readonly step: number;
  readonly metrics?: Metrics;
}

export interface CheckpointInput {
  /** Epoch the state belongs to. A state saved at the end of epoch e uses `epoch: e + 1, step: 0`. */
  readonly epoch: number;
  /** Steps already done within `epoch`. */
  readonly step: number;
  readonly data: CheckpointData;
  readonly metrics?: Metrics;
}

export interface TrainerContext<P> {
  readonly experimentId: string;
  readonly sessionId: string;
  /** Validated parameters (the output of `Trainer.parseParams`). */
  readonly params: P;
  /** 1 for the first attempt; retries count up. */
  readonly attempt: number;
  readonly resume: ResumeState | undefined;
  /**
   * GPU indexes this run was given (its slot's, on a worker with a hardware profile), as
   * `CUDA_VISIBLE_DEVICES` names them; empty when it asked for none or runs unrouted (always set by the runtime; optional only for hand-built contexts).
   * The `command` trainer passes them to its child as `CUDA_VISIBLE_DEVICES`.
   */
  readonly devices?: readonly number[];
  /** True once the run was asked to stop; read it at every step boundary. */
  readonly interrupted: boolean;
  readonly interruptReason: InterruptReason | undefined;
  /** Resolves when the run is interrupted; for trainers that wait on something else (a child process). */
  readonly interruption: Promise<InterruptReason>;
  /** Aborted when the run is interrupted, for APIs that accept an AbortSignal. */
  readonly signal: AbortSignal;
  /** Total epochs, when the trainer knows it; shown in progress and hints. */
  setEpochs(epochs: number): void;
  /**
   * A sign of life without progress (a line of output from an external program). The runtime
   * stops a run that shows none (no `step`, `checkpoint` or `touch`) for the heartbeat timeout,
   * with interrupt reason `stalled`, and the attempt is retried.
   */
  touch(): void;
  /** Reports progress and yields to the event loop. Cheap enough to call every step. */
  step(report: StepReport): Promise<void>;
  /**
   * Writes a checkpoint durably, records it in the manifest, then heartbeats its pointer; resolves
   * with the pointer once all of that is done. Waits first for a persist still running from
   * `checkpointInBackground`, and throws its failure if it failed.
   */
  checkpoint(input: CheckpointInput): Promise<CheckpointPointer>;
  /**
   * The same checkpoint, persisted while training goes on: resolves as soon as the runtime owns
   * `data`, and the write, sha256, fsyncs and manifest commit continue in the background. The
   * pointer is heartbeated only once the checkpoint is durable, as with `checkpoint`.
   *
   * - `data` must be one buffer that the trainer never changes after the call (encode a fresh one
   *   per checkpoint): the runtime writes it without copying it. Or pass `copy: true`: the runtime
   *   copies `data` into a buffer of its own before the call resolves, so once it has resolved the
   *   trainer may change its buffer again (a live state, updated in place). That buffer is reused from one checkpoint
   *   to the next (the previous persist has ended by then), which costs one memcpy per checkpoint
   *   instead of allocating and filling a fresh state-sized buffer (about 8× as slow for 64 MB).
   *   It lives in shared memory, so the persist hashes it without a further copy.
   * - At most one persist is in flight per experiment. A call while one runs **waits** for it
   *   (no coalescing: every checkpoint asked for is written, in order), so a trainer that
   *   checkpoints faster than the disk writes is slowed to the disk's pace, never queued without bound.
   * - A persist failure (disk full, a stale attempt) is thrown, as the same error `checkpoint`
   *   would throw, by the next `step`, `checkpoint` or `checkpointInBackground` call, or when the
   *   attempt ends.
   * - Returning from `train` (a result, or `undefined` after an interruption) and a throw from it
   *   both wait for the persist in flight before the attempt ends; a crash of the worker loses at
   *   most that checkpoint, and the run resumes from the previous one.
   */
  checkpointInBackground(input: CheckpointInput & { readonly data: Uint8Array; readonly copy?: boolean }): Promise<void>;
  /** Verifies a file the trainer wrote itself (external trainers) and records it like `checkpoint`. */
  adoptCheckpoint(file: string, input: { epoch: number; step: number; metrics?: Metrics }): Promise<CheckpointPointer>;
  /**
   * Directory this attempt may write its own checkpoint files into (external trainers): one per
   * attempt, so an attempt that was given up on cannot overwrite a newer one's files. Created on
   * first use.
   */
  readonly checkpointDir: string;
  /** pino logger; every line carries workflowId, experimentId, attempt and the current epoch. */
  readonly log: Logger;
}

export interface TrainerResultInput {
  readonly finalLoss?: number;
  readonly accuracy?: number;
  /** sha256 of the final model bytes; equal across interrupted and uninterrupted runs for exact trainers. */
  readonly modelSha256?: string;
  readonly metrics?: Metrics;
}

export interface Trainer<P = unknown> {
  /** Registered name, referenced by `ExperimentSpec.trainer`. */
  readonly name: string;
  /**
   * Validates raw params before anything starts. Throw an Error whose message names the field,
   * what was expected and what was received (e.g. `params.lr: expected a positive number, received -1`).
   */
  parseParams(raw: unknown): P;
  /**
   * Metric names the trainer reports in every epoch's checkpoint, when it knows them up front. A
   * search whose `metric` none of a session's trainers declares is rejected before it starts;
   * a trainer that declares nothing is trusted (the session warns at the first gate instead).
   */
  readonly metrics?: readonly string[];
  /** Total epochs for the given params, if known up front (used by hints and progress). */
  epochs?(params: P): number | undefined;
  /**
   * Total training steps for the given params, if known up front: what `estimatedDuration:
   * "auto"` projects from (a spec asking for `auto` with a trainer without it is rejected).
   */
  totalSteps?(params: P): number | undefined;
  /**
   * Longest time the trainer may need between being interrupted and its checkpoint being durable
   * (an external program's grace period). In bounded mode the runtime interrupts at least this
   * long, plus a second, before the start-to-close limit. @default 0 (the runtime's own margin)
   */
  stopTimeMs?(params: P): number;
  /** Runs (or resumes) training. Returns the result, or `undefined` after an interruption checkpoint. */
  train(ctx: TrainerContext<P>): Promise<TrainerResultInput | undefined>;
}

/** A trainer of any params type, as held by the registry (params are validated at run time). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- registries hold trainers of different params types
export type AnyTrainer = Trainer<any>;
