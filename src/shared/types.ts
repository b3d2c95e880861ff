/**
 * Payload types shared by workflow code, activities, the client library and the CLI.
 * Everything here is plain data: it crosses the Temporal boundary as JSON and must stay
 * importable from the workflow sandbox (no Node builtins, no I/O).
 */

import type { ApprovalEstimate, Approver } from './approval';
import type { CheckpointRetention } from './retention';
import type { SearchPolicy } from './search/types';
import type { ResourceRequest } from './hardware';

/** A Temporal duration string such as `'90s'`, `'2h'` or `'1 day'` (the `ms` format). */
export type DurationString = string;

/** Final or intermediate metrics reported by a trainer. Values must be finite numbers. */
export type Metrics = Readonly<Record<string, number>>;

/** Retry policy for the training activity. Mirrors Temporal's RetryPolicy with duration strings. */
export interface ExperimentRetryPolicy {
  /** Delay before the first retry. @default '1s' */
  readonly initialInterval?: DurationString;
  /** Multiplier applied to the delay after each retry. @default 2 */
  readonly backoffCoefficient?: number;
  /** Upper bound for the delay between retries. @default '30s' */
  readonly maximumInterval?: DurationString;
  /** Attempts in total, including the first; 0 means unlimited. @default 5 */
  readonly maximumAttempts?: number;
}

/** How a session behaves. Every duration is a Temporal duration string. */
export interface SessionPolicy {
  /**
   * Run-time limit of a bounded experiment, in total across all of its attempts and preemptions
   * (a schedule-to-close bound: a server-side timeout is final). @default '30m'
   */
  readonly defaultTimeout?: DurationString;
  /** An experiment whose `estimatedDuration` exceeds this is long-running. @default '1h' */
  readonly longRunningThreshold?: DurationString;
  /** Heartbeat timeout of every training attempt, in both modes. @default '30s' */
  readonly heartbeatTimeout?: DurationString;
  /** How long a long-running experiment waits for approval before it is `rejected`. @default unlimited */
  readonly approvalTimeout?: DurationString;
  /** Experiments training at once. @default 4 */
  readonly maxConcurrent?: number;
  /**
   * Versioned checkpoints kept per experiment run; the rest are pruned. A number K keeps the
   * newest K. `{ latest: K, best: B, metric?, mode? }` also keeps the B best end-of-epoch
   * checkpoints by `metric` (default: the search metric, else `loss`, lower is better), which
   * pruning never removes while they are among the best (src/shared/retention.ts). @default 3
   */
  readonly checkpointsToKeep?: number | CheckpointRetention;
  /**
   * Worker shutdowns (SIGTERM/SIGINT, a spot preemption) one experiment may go through before
   * it fails. A preemption never uses up `retry.maximumAttempts`: the experiment checkpoints and
   * a new training invocation starts at once, on whichever worker polls next. 0 means unlimited.
   * @default 1000
   */
  readonly maxPreemptions?: number;
  /** What a failed experiment does to the rest: `continue` (default) or `stop`. */
  readonly onFailure?: 'continue' | 'stop';
  /** Retry policy of the training activity. */
  readonly retry?: ExperimentRetryPolicy;
  /**
   * Who may approve or reject long-running experiments. Absent or empty: anyone who can signal
   * the session. A name with a `publicKey` must sign (see src/shared/approval.ts). @default []
   */
  readonly approvers?: readonly Approver[];
  /**
   * Whether an experiment's `resumeFrom` may name another session's experiment: `true` for any
   * session, or the session ids allowed. The session's own experiments are always allowed.
   * Anyone who can add experiments to a session (`submit`) is held to what its starter chose,
   * and the worker enforces it too, so a raw start cannot bypass the client.
   * @default false (the session's own experiments only)
   */
  readonly allowCrossSessionResume?: boolean | readonly string[];
  /**
   * Task priority of the session's experiments on the task queue: 1 is the highest, 5 the
   * lowest. Given to the experiment child workflows and their training activities, so when
   * workers are busy a queued priority-1 experiment starts before queued priority-3 ones.
   * Needs a server with `matching.useNewMatcher` (the bundled dev server and stack enable it);
   * the order is exact within a task-queue partition, approximate across partitions.
   * @default none (the server's default, 3)
   */
  readonly priority?: number;
  /**
   * Fairness key of the session's tasks: tasks of equal priority are dispatched round-robin
   * between keys, so one big sweep cannot starve another session. Needs
   * `matching.enableFairness` on the server. At most 64 bytes. @default the session id
   */
  readonly fairnessKey?: string;
  /**
   * A hyperparameter search over the session's experiments: the metric to optimise and an
   * early-stopping scheduler (ASHA or the median rule, src/shared/search/types.ts). Pruned
   * trials end `pruned` with their checkpoint kept. @default none (every trial runs to the end)
   */
  readonly search?: SearchPolicy;
  /**
   * How long an experiment whose `resources` / `hardwareClass` no live worker satisfies stays
   * `awaiting-resources` before it ends `rejected`. @default '1h'
   */
  readonly resourceTimeout?: DurationString;
  /**
   * The profiling window of `estimatedDuration: "auto"` experiments: it ends after `steps`
   * training steps or `duration`, whichever comes first. @default { duration: '3s' }
   */
  readonly profile?: { readonly steps?: number; readonly duration?: DurationString };
}

/** Where a new run starts from: another experiment's newest verified checkpoint, or one checkpoint. */
export interface ResumeFrom {
  /** Store key of the source experiment: `<sessionId>/<experimentId>`. */
  readonly experiment: string;
  /** A specific checkpoint id of that experiment; the newest verified one when absent. */
  readonly checkpointId?: string;
}

/** One training run. */
export interface ExperimentSpec {
  /** Unique within its session. Letters, digits, `.`, `_`, `-`; no `..`; at most 128 characters. */
  readonly id: string;
  /** Name of a trainer registered with the plugin, for example `mlp` or `command`. */
  readonly trainer: string;
  /** Trainer parameters; serialised size is capped (see MAX_PARAMS_BYTES). */
  readonly params?: Readonly<Record<string, unknown>>;
  /**
   * Expected run time; above the session's `longRunningThreshold` the experiment is long-running.
   * `"auto"`: measured by a short profiling run on the hardware it gets (policy `profile`), which
   * projects the total from the trainer's total steps; needs a trainer with `totalSteps`.
   */
  readonly estimatedDuration?: DurationString | 'auto';
  /** Forces long-running mode (needs the session's approval). */
  readonly longRunning?: boolean;
  /** Start from an earlier experiment's checkpoint instead of from scratch. */
  readonly resumeFrom?: ResumeFrom;
  /**
   * What the trial needs; its training runs only on a worker whose hardware profile satisfies it
   * (src/shared/hardware.ts), and holds `gpus` of its GPUs while it runs. @default none: any worker
   */
  readonly resources?: ResourceRequest;
  /** Only workers of this hardware class (`experiments workers` lists them) train it. @default any */
  readonly hardwareClass?: string;
}

export type ExperimentState =
  | 'queued'
  | 'awaiting-approval'
  /** Routed (`resources` / `hardwareClass`) and no live worker satisfies it; `reason` says why. */
  | 'awaiting-resources'
  | 'running'
  | 'completed'
  | 'interrupted'
  | 'failed'
  | 'timed-out'
  | 'rejected'
  | 'cancelled'
  /** Stopped early by the session's search scheduler; its checkpoint is kept and `resume` continues it. */
  | 'pruned';

/** A pointer's `hashBlockBytes` as a field to spread into a summary of it: empty for a plain sha256. */
export function digestKind(pointer: { readonly hashBlockBytes?: number }): { hashBlockBytes?: number } {
  return pointer.hashBlockBytes === undefined ? {} : { hashBlockBytes: pointer.hashBlockBytes };
}

export const TERMINAL_EXPERIMENT_STATES: readonly ExperimentState[] = [
  'completed',
  'interrupted',
  'failed',
  'timed-out',
  'rejected',
  'cancelled',
  'pruned',
];

export type SessionState = 'running' | 'awaiting-approval' | 'completed' | 'failed' | 'cancelled';

/** `bounded`: defaultTimeout in total (schedule-to-close). `none`: approved long-running, no run-time limit. */
export type TimeoutMode = 'bounded' | 'none';

/** Why a training loop was asked to stop at its next step boundary. */
/**
 * Why a run was interrupted. `stalled`: the trainer made no progress (no step, checkpoint or
 * output) for the heartbeat timeout, so the worker stopped it itself; the attempt fails retryably.
 */
/**
 * `gate`: the run reached `TrainInput.stopAtEpoch` (a search gate) and stopped after that
 * epoch's checkpoint, so the session can decide whether it goes on. `profiled`: a profiling
 * invocation (`estimatedDuration: "auto"`) ended its window with a checkpoint.
 */
export type InterruptReason = 'cancelled' | 'worker-shutdown' | 'timed-out' | 'paused' | 'stalled' | 'gate' | 'profiled';

/**
 * A small pointer to a durable checkpoint. This, never the weights, is what heartbeats carry.
 * `uri` is a `file://` URL of the blob; `sha256` is of the blob's bytes: their plain SHA-256, or,
 * when `hashBlockBytes` is set, their block digest (docs/checkpoints.md#digests).
 */
export interface CheckpointPointer {
  readonly checkpointId: string;
  readonly uri: string;
  readonly epoch: number;
  readonly step: number;
  readonly sha256: string;
  readonly bytes: number;
  /**
   * Set on blobs the local store wrote whole from 32 MiB on: `sha256` is then
   * SHA-256(SHA-256(block 0) ‖ SHA-256(block 1) ‖ …) over the blob's consecutive blocks of this
   * many bytes (the last may be shorter), which several threads hash at once. Absent: `sha256` is
   * the plain SHA-256 of the bytes, as `sha256sum` prints it.
   */
  readonly hashBlockBytes?: number;
  readonly metrics: Metrics;
  /** ISO-8601 time the blob became durable. */
  readonly savedAt: string;
  /**
   * Run id of the experiment workflow that wrote it. A retry resumes only checkpoints of its own
   * run; starting from another run's checkpoint takes an explicit `resumeFrom`.
   */
  readonly runId?: string;
}

/** What every heartbeat of the training activity carries. */
export interface HeartbeatDetails {
  readonly latest: CheckpointPointer | null;
  readonly epoch: number;
  readonly step: number;
  readonly epochs: number | null;
  readonly metrics: Metrics;
  readonly attempt: number;
  /** Epoch of the checkpoint this attempt resumed from, or null for a fresh start. */
  readonly resumedFrom: number | null;
}

/** The final result of one experiment's training. */
export interface TrainingResult {
  readonly finalLoss: number | null;
  readonly accuracy: number | null;
  readonly modelSha256: string | null;
  readonly metrics: Metrics;
}

/** What the training activity returns. */
export interface TrainingOutcome {
  readonly status: 'completed' | 'interrupted';
  readonly interruptReason: InterruptReason | null;
  readonly result: TrainingResult | null;
  readonly latest: CheckpointPointer | null;
  readonly attempt: number;
  readonly resumedFrom: number | null;
  readonly epochs: number | null;
  readonly epoch: number;
  /** Milliseconds the trainer ran in this invocation (absent in outcomes recorded before it existed). */
  readonly trainingMs?: number;
  /** A profiling invocation's measurement (TrainInput.profile). */
  readonly profile?: ProfileMeasurement;
}

/** What a profiling window measured: steps and their rate, and the trainer's total steps. */
export interface ProfileMeasurement {
  readonly steps: number;
  readonly stepsPerSecond: number;
  readonly totalSteps: number | null;
  /** The hardware class of the worker that measured it, when it has a profile. */
  readonly hardwareClass: string | null;
  /** Milliseconds the profiling run took, start-up included. */
  readonly elapsedMs?: number;
}

/** One entry of a session's approval audit: an approval, a rejection, or a refused attempt. */
export interface ApprovalRecord {
  readonly by: string;
  /** ISO-8601 time the session workflow recorded it. */
  readonly at: string;
  /** The approval's note, or a rejection's reason. */
  readonly note: string | null;
  /** `signal` / `update` for the approve or reject call; `pre-approved` when the session started approved. */
  readonly source: 'signal' | 'update' | 'pre-approved';
  /** What happened. Absent in records written before approver lists existed (they are approvals). */
  readonly outcome?: 'approved' | 'rejected' | 'refused';
  /** Why a `refused` attempt was refused. */
  readonly refusedReason?: string;
  /** Whether the claim carried a valid Ed25519 signature. */
  readonly signed?: boolean;
  /** The long-running experiments this record released (or rejected), with their estimates: at most the first 200. */
  readonly estimates?: readonly ApprovalEstimate[];
  /**
   * Set when the record covered more experiments than `estimates` lists: how many in all, the sum
   * of their estimates in ms, and how many had none.
   */
  readonly covered?: { readonly experiments: number; readonly estimatedMs: number; readonly unestimated: number };
}

/** Input of the `approve` signal and update. `at`, `estimates` and `signature` go together. */
export interface ApproveInput {
  readonly by: string;
  readonly note?: string;
  /** ISO-8601 time of signing (signed approvals). */
  readonly at?: string;
  /** What the approver was shown as waiting (signed approvals). */
  readonly estimates?: readonly ApprovalEstimate[];
  /** Hex Ed25519 signature over src/shared/approval.ts's `approvalMessage`. */
  readonly signature?: string;
}

/** Input of the `reject` signal and update: the waiting long-running experiments end `rejected`. */
export interface RejectInput {
  readonly by: string;
  readonly reason: string;
  readonly at?: string;
  readonly estimates?: readonly ApprovalEstimate[];
  readonly signature?: string;
}

/** One experiment as reported by `status --json` and the session summary. */
export interface ExperimentStatus {
  readonly kind?: 'experiment';
  readonly id: string;
  readonly sessionId: string;
  readonly workflowId: string;
  readonly state: ExperimentState;
  readonly timeoutMode: TimeoutMode;
  readonly attempt: number;
  readonly epoch: number;
  readonly epochs: number | null;
  /** `hashBlockBytes`: set when `sha256` is a block digest (CheckpointPointer). */
  readonly latestCheckpoint: { id: string; epoch: number; sha256: string; uri: string; hashBlockBytes?: number } | null;
  readonly resumedFrom: number | null;
  readonly result: { finalLoss: number | null; accuracy: number | null; modelSha256: string | null } | null;
  /** Worker shutdowns survived (each resumed from its checkpoint); not failed attempts. 0 when absent. */
  readonly preemptions: number;
  /** Why it ended, for failed, timed-out, rejected, interrupted and cancelled experiments. */
  readonly reason: string | null;
  /**
   * Metrics of the last heartbeat (e.g. `loss`), for running experiments read through the client;
   * in a search session, the final metrics of an ended trial (the result's, or the last checkpoint's).
   */
  readonly metrics?: Metrics;
  /** Where the search scheduler pruned it: epochs done and the ASHA rung (null for the median rule). */
  readonly pruned?: { readonly epoch: number; readonly rung: number | null };
  /** The hardware class a routed experiment was placed on (`resources` / `hardwareClass`). */
  readonly hardwareClass?: string;
  /** `estimatedDuration: "auto"`: the projection of the profiling run, in milliseconds. */
  readonly estimatedDurationMs?: number;
  /** Milliseconds of training in total (profiling included), to compare with the estimate. */
  readonly actualDurationMs?: number;
}

/** Resumability hints for one experiment. */
export interface ResumeHints {
  readonly id: string;
  readonly latestCheckpoint: { id: string; epoch: number; step: number; uri: string; sha256: string; savedAt: string; hashBlockBytes?: number } | null;
  readonly epochsRemaining: number | null;
  /** Worker shutdowns the experiment survived so far. */
  readonly preemptions: number;
  readonly resumeCommand: string | null;
  readonly resumeCall: string | null;
  readonly warnings: string[];
}
