/**
 * Signals, queries and updates of the session and experiment workflows, plus their inputs.
 * Clients and workflows import these same definitions, so names can never drift apart.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ResolvedPolicy } from './policy';
import type {
  ApprovalRecord,
  ApproveInput,
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
}

/** Input of one experiment's workflow (a child of its session). */
export interface ExperimentInput {
  readonly sessionId: string;
  readonly spec: ExperimentSpec;
  readonly policy: ResolvedPolicy;
  readonly timeoutMode: TimeoutMode;
  /** Workflow id of the session to report a cancelled outcome to. */
  readonly parentWorkflowId?: string;
}

/** Input of the training activity. */
export interface TrainInput {
  readonly sessionId: string;
  readonly spec: ExperimentSpec;
  readonly timeoutMode: TimeoutMode;
  readonly checkpointsToKeep: number;
  readonly heartbeatTimeoutMs: number;
  /** The policy's allowCrossSessionResume; absent when the policy does not set it (the default, false). */
  readonly allowCrossSessionResume?: boolean | readonly string[];
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
}

/** The result of a session workflow. */
export interface SessionSummary extends SessionSnapshot {
  readonly completed: number;
  readonly failed: number;
}

export interface ExperimentFinishedReport {
  readonly status: ExperimentStatus;
}

export interface CancelReasonInput {
  readonly reason: string;
}

export const approveSignal = defineSignal<[ApproveInput]>('approve');
export const closeSessionSignal = defineSignal('close');
/** Sent by the CLI before a cancel request so the interruption records why. */
export const cancelReasonSignal = defineSignal<[CancelReasonInput]>('cancelReason');
/** Sent by a cancelled experiment to its session, since a Canceled child returns no result. */
export const experimentFinishedSignal = defineSignal<[ExperimentFinishedReport]>('experimentFinished');

export const sessionStatusQuery = defineQuery<SessionSnapshot>('sessionStatus');
export const approvalQuery = defineQuery<{ approval: ApprovalRecord | null; audit: ApprovalRecord[] }>('approval');
export const experimentStatusQuery = defineQuery<ExperimentStatus>('experimentStatus');
export const hintsQuery = defineQuery<ResumeHints>('hints');
/** Hints for every experiment of a session, from the session's own records (no file checks). */
export const sessionHintsQuery = defineQuery<ResumeHints[]>('sessionHints');
export const lastOutcomeQuery = defineQuery<TrainingOutcome | null>('lastOutcome');

export const addExperimentsUpdate = defineUpdate<{ added: string[] }, [ExperimentSpec[]]>('addExperiments');

/** Workflow type names, for clients that start workflows by name. */
export const WORKFLOW_TYPES = { session: 'sessionWorkflow', experiment: 'experimentWorkflow' } as const;
