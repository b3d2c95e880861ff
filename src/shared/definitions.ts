/**
 * Signals, queries and updates of the session and experiment workflows, plus their inputs.
 * Clients and workflows import these same definitions, so names can never drift apart.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ApprovalEstimate } from './approval';
import type { ResolvedPolicy } from './policy';
import type { Retention } from './retention';
import type { SearchState } from './search/decide';
import type { BestTrial } from './search/types';
import type { Sweep, SweepFeedState } from './sweep';
import type {
  ApprovalRecord,
  ApproveInput,
  RejectInput,
  CheckpointPointer,
  ExperimentSpec,
  ExperimentState,
  ExperimentStatus,
  ResumeHints,
  SessionState,
  TimeoutMode,
  TrainingOutcome,
} from './types';

/** Input of the session workflow. `carry` is set only by continue-as-new. */
export interface SessionInput {
  readonly sessionId: string;
  readonly policy: ResolvedPolicy;
  readonly experiments: readonly ExperimentSpec[];
  /** Starts the session approved; the record says `pre-approved` and by whom. */
  readonly preApproved?: ApproveInput;
  /** Keep the session open for more experiments until a `close` signal. @default false */
  readonly keepOpen?: boolean;
  /** Continue as new after this many history events (checked between experiments). @default 8000 */
  readonly continueAsNewAfterEvents?: number;
  /**
   * Search attributes are never encrypted: with this set, the experiments' `ExperimentSummary`
   * search attribute names the trainer and the mode only, no param values (the static summary,
   * which the payload codec encodes, keeps them). ExperimentsClient sets it when its data
   * converter has a payload codec; a raw starter that encrypts must set it too. @default false
   */
  readonly redactSearchAttributes?: boolean;
  /**
   * Sweeps by reference, after `experiments`: the session holds each as its definition and a
   * cursor and makes rows of its points a window at a time (src/workflows/session/feed.ts), so a
   * sweep of 10,000 points costs this input about a kilobyte. No other id may start with a
   * sweep's `<idPrefix>-`, and no two sweeps' stems may overlap. @default none
   */
  readonly sweeps?: readonly Sweep[];
  readonly carry?: SessionCarry;
}

/** One experiment as the session tracks it. */
export interface SessionRow {
  readonly spec: ExperimentSpec;
  state: ExperimentState;
  timeoutMode: TimeoutMode;
  /** Epoch milliseconds (workflow time) when it started waiting for approval. */
  awaitingSince: number | null;
  status: ExperimentStatus | null;
  reason: string | null;
}

/** What a session carries across continue-as-new. */
export interface SessionCarry {
  readonly rows: SessionRow[];
  readonly approval: ApprovalRecord | null;
  readonly audit: ApprovalRecord[];
  readonly closeRequested: boolean;
  readonly stopping: string | null;
  readonly runs: number;
  /** Whether the session was paused (absent: not paused). */
  readonly paused?: boolean;
  /** The search's reports and decisions (sessions with a `search` policy). */
  readonly search?: SearchState;
  /**
   * Terminal rows folded away at continue-as-new (patch `session-bounded-carry`,
   * src/workflows/session/fold.ts); `rows` then holds only the kept terminal rows and the rows
   * still to run. Absent in carries from before the patch, which hold every row.
   */
  readonly folded?: FoldedRows;
  /** With `folded`: specs of plain queued rows, rebuilt with newRow after `rows` (a spec is smaller than its row). */
  readonly queued?: readonly ExperimentSpec[];
  /** Sweep points not made into rows yet (SessionInput.sweeps); absent when none are left. */
  readonly feed?: SweepFeedState;
}

/** What a session still knows of the experiments whose rows it folded away. */
export interface FoldedRows {
  /** Folded experiments by state. */
  readonly counts: Partial<Record<ExperimentState, number>>;
  /** Bloom filter (base64) of the folded ids, so a used id is still refused; '' when none. */
  readonly ids: string;
  /** Whether a folded experiment was long-running (the session required approval). */
  readonly approvalRequired: boolean;
}

/** Rows in a status-query page when the caller names no limit, and the most one page holds. */
export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 200;

/**
 * The `sessionStatus` query's optional argument: which rows of the session to return. Missing
 * or bad fields fall back to the defaults (offset 0, limit 50, at most 200, every state).
 */
export interface SessionStatusPage {
  readonly offset?: number;
  readonly limit?: number;
  /** Only rows in this state. */
  readonly state?: ExperimentState;
}

/** Input of one experiment's workflow (a child of its session). */
export interface ExperimentInput {
  readonly sessionId: string;
  readonly spec: ExperimentSpec;
  readonly policy: ResolvedPolicy;
  readonly timeoutMode: TimeoutMode;
  /** Workflow id of the session to report a cancelled outcome to. */
  readonly parentWorkflowId?: string;
  /** See SessionInput.redactSearchAttributes. @default false */
  readonly redactSearchAttributes?: boolean;
}

/** Input of the training activity. */
export interface TrainInput {
  readonly sessionId: string;
  readonly spec: ExperimentSpec;
  readonly timeoutMode: TimeoutMode;
  /** What the store prunes to (src/shared/retention.ts). */
  readonly checkpointsToKeep: Retention;
  readonly heartbeatTimeoutMs: number;
  /** The policy's allowCrossSessionResume; absent when the policy does not set it (the default, false). */
  readonly allowCrossSessionResume?: boolean | readonly string[];
  /**
   * Which training invocation of this experiment run this is: 0 for the first, +1 after each
   * preemption (a worker shutdown ends an invocation; the workflow schedules the next at once).
   * With the activity attempt it forms the fencing token (invocation, attempt) of checkpoint
   * writes, compared lexicographically. @default 0 (inputs recorded before the field existed)
   */
  readonly invocation?: number;
  /**
   * A search gate: stop after the checkpoint at the end of this many epochs (interrupt reason
   * `gate`), so the session can decide. Absent: train to the end.
   */
  readonly stopAtEpoch?: number;
  /**
   * A profiling invocation (`estimatedDuration: "auto"`): stop after this many steps or
   * milliseconds of training, checkpoint, and report the measured rate. Absent otherwise.
   */
  readonly profile?: { readonly steps?: number; readonly durationMs?: number };
}

export interface SessionSnapshot {
  readonly kind: 'session';
  readonly id: string;
  readonly state: SessionState;
  readonly approval: {
    readonly required: boolean;
    readonly approved: boolean;
    readonly by: string | null;
    readonly at: string | null;
    readonly note: string | null;
  };
  readonly audit: ApprovalRecord[];
  readonly policy: ResolvedPolicy;
  readonly experiments: ExperimentStatus[];
  /** Continue-as-new runs so far (0 for the first run). */
  readonly runs: number;
  /** True while the session is paused (`pause`); absent otherwise. */
  readonly paused?: boolean;
  /** Sessions with a `search` policy: the best trial so far (null until one has the metric). */
  readonly best?: BestTrial | null;
  /**
   * Every experiment of the session by state, folded ones included. Absent in answers and
   * results from before bounded sessions; `experiments` then held every row.
   */
  readonly counts?: Partial<Record<ExperimentState, number>>;
  /** Number of experiments in the session (the sum of `counts`). */
  readonly total?: number;
  /** True when `experiments` is not every experiment of the session (a page, or a bounded summary). */
  readonly truncated?: boolean;
  /**
   * The page `experiments` is (status query): its offset and limit over the rows the session
   * holds (`held`: kept and live rows; folded ones are read through visibility), and why an
   * argument was replaced by its default, if one was.
   */
  readonly page?: { readonly offset: number; readonly limit: number; readonly held: number; readonly state: ExperimentState | null; readonly problem: string | null };
}

/**
 * The result of a session workflow. `counts`, `total`, `completed`, `failed` and `pruned` cover
 * every experiment; `experiments` holds at most 100 rows (those that did not end well first, then
 * the best by the search metric, else the latest; `truncated` says when that is not all of them).
 * Read every experiment with ExperimentsClient.allExperiments (visibility).
 */
export interface SessionSummary extends SessionSnapshot {
  readonly completed: number;
  /** Experiments that ended neither completed nor pruned. */
  readonly failed: number;
  /** Trials the search pruned (absent in summaries from before search existed). */
  readonly pruned?: number;
}

export interface ApprovalState {
  readonly approval: ApprovalRecord | null;
  readonly audit: ApprovalRecord[];
  /** The first 200 long-running experiments waiting now. Absent from sessions that predate approver lists. */
  readonly pending?: ApprovalEstimate[];
  /** How many are waiting in all, when that is more than `pending` lists. */
  readonly pendingTotal?: number;
}

export interface ExperimentFinishedReport {
  readonly status: ExperimentStatus;
  /**
   * Run id of the reporting experiment run: the session accepts a report only from the run it
   * started. Absent in reports recorded before the check existed.
   */
  readonly runId?: string;
}

export interface CancelReasonInput {
  readonly reason: string;
}

/** Approves a session. Refused attempts (approver lists) are recorded in the audit and change nothing else. */
export const approveSignal = defineSignal<[ApproveInput]>('approve');
/** Approves a session, or is rejected with the reason (its validator checks approvers and signatures). */
export const approveUpdate = defineUpdate<ApprovalRecord, [ApproveInput]>('approveSession');
/** Ends the waiting long-running experiments `rejected`, with the reason; refused attempts are audited. */
export const rejectSignal = defineSignal<[RejectInput]>('reject');
/** Like `reject`, but a refused attempt is rejected with the reason. */
export const rejectUpdate = defineUpdate<ApprovalRecord, [RejectInput]>('rejectSession');
export const closeSessionSignal = defineSignal('close');
/** Sent by the CLI before a cancel request so the interruption records why. */
export const cancelReasonSignal = defineSignal<[CancelReasonInput]>('cancelReason');
/** Sent by a cancelled experiment to its session, since a Canceled child returns no result. */
export const experimentFinishedSignal = defineSignal<[ExperimentFinishedReport]>('experimentFinished');

/** One page of the session (no argument: the first page), with counts of every experiment. */
export const sessionStatusQuery = defineQuery<SessionSnapshot, [SessionStatusPage?]>('sessionStatus');
/** The approval, the audit, and the long-running experiments waiting now (what an approver signs). */
export const approvalQuery = defineQuery<ApprovalState>('approval');
export const experimentStatusQuery = defineQuery<ExperimentStatus>('experimentStatus');
export const hintsQuery = defineQuery<ResumeHints>('hints');
/** Hints for every experiment of a session, from the session's own records (no file checks). */
export const sessionHintsQuery = defineQuery<ResumeHints[], [SessionStatusPage?]>('sessionHints');
export const lastOutcomeQuery = defineQuery<TrainingOutcome | null>('lastOutcome');

export const addExperimentsUpdate = defineUpdate<{ added: string[] }, [ExperimentSpec[]]>('addExperiments');

/**
 * Sweeps added to a running session by reference (held as definitions and fed a window at a
 * time, as `SessionInput.sweeps` are), so a large sweep is a small update. Returns the sweeps'
 * `idPrefix`es and how many points they add.
 */
export const addSweepsUpdate = defineUpdate<{ sweeps: string[]; experiments: number }, [Sweep[]]>('addSweeps');

/** Workflow type names, for clients that start workflows by name. */
export const WORKFLOW_TYPES = { session: 'sessionWorkflow', experiment: 'experimentWorkflow' } as const;

/**
 * What a client asks a worker about an experiment's checkpoints, so that hints and resume work
 * from a machine without the store: `checkpointFactsWorkflow` runs `describeCheckpoints` on a
 * worker of the task queue, which reads and verifies them where they are.
 */
export interface CheckpointFactsInput {
  readonly sessionId: string;
  readonly experimentId: string;
  /** A checkpoint to look up by id and verify (the one named in hints). */
  readonly checkpointId?: string;
}

export interface CheckpointFacts {
  /** Checkpoints in the store's manifests across all runs of the experiment. */
  readonly count: number;
  /** The newest checkpoint that verifies, across all runs, or null. */
  readonly latest: CheckpointPointer | null;
  /** The checkpoint named by `checkpointId`, when it is listed and verifies; else null. */
  readonly named: CheckpointPointer | null;
  /** Why candidates were skipped, or why the named checkpoint is unusable. */
  readonly warnings: string[];
}

export const CHECKPOINT_FACTS_WORKFLOW = 'checkpointFactsWorkflow';

/** Experiments of one session whose checkpoints `checkpointCountsWorkflow` counts (at most MAX_COUNTED_EXPERIMENTS). */
export interface CheckpointCountsInput {
  readonly sessionId: string;
  readonly experimentIds: readonly string[];
}
export const MAX_COUNTED_EXPERIMENTS = 500;
export const CHECKPOINT_COUNTS_WORKFLOW = 'checkpointCountsWorkflow';
