/**
 * Session policy defaults and their resolution to milliseconds. The workflow stores the
 * resolved form so that a later change of defaults never changes a running session.
 */
import { requireDuration } from './duration';
import type { Approver } from './approval';
import { resolveRetention, type Retention } from './retention';
import { resolveSearch } from './search/schema';
import type { ResolvedSearch } from './search/types';
import type { ExperimentSpec, SessionPolicy } from './types';

export const POLICY_DEFAULTS = {
  defaultTimeout: '30m',
  longRunningThreshold: '1h',
  heartbeatTimeout: '30s',
  maxConcurrent: 4,
  checkpointsToKeep: 3,
  maxPreemptions: 1000,
  onFailure: 'continue',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
  resourceTimeout: '1h',
  profile: { duration: '3s' },
} as const;

/**
 * Start-to-close timeout used for approved long-running experiments. Temporal requires one of
 * start-to-close or schedule-to-close, so "no limit" is expressed as ten years; the heartbeat
 * timeout still detects dead workers and delivers cancellation.
 */
export const NO_TIMEOUT_START_TO_CLOSE = '3650 days';
export const NO_TIMEOUT_MS = 3650 * 86_400_000;

export interface ResolvedPolicy {
  readonly defaultTimeoutMs: number;
  readonly longRunningThresholdMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly approvalTimeoutMs: number | null;
  readonly maxConcurrent: number;
  /** A number as given (so older inputs are unchanged), or the object form with its defaults applied. */
  readonly checkpointsToKeep: Retention;
  /** Absent in inputs recorded before the field existed: read it with `maxPreemptions(policy)`. */
  readonly maxPreemptions?: number;
  readonly onFailure: 'continue' | 'stop';
  readonly retry: {
    readonly initialIntervalMs: number;
    readonly backoffCoefficient: number;
    readonly maximumIntervalMs: number;
    readonly maximumAttempts: number;
  };
  /** Absent in policies resolved before approver lists existed: anyone may approve. */
  readonly approvers?: readonly Approver[];
  /** Present only when the policy set it, so resolved policies recorded before it existed are unchanged. */
  readonly allowCrossSessionResume?: boolean | readonly string[];
  /** Present only when the policy set it (1 highest … 5 lowest); see SessionPolicy.priority. */
  readonly priority?: number;
  /** Present only when the policy set it; the session id applies otherwise. */
  readonly fairnessKey?: string;
  /** The hyperparameter search, when the policy sets one (absent otherwise, so older policies keep their shape). */
  readonly search?: ResolvedSearch;
  /** Present only when the policy set it: read it with `resourceTimeoutMs(policy)`. */
  readonly resourceTimeoutMs?: number;
  /** Present only when the policy set it: read it with `profileWindow(policy)`. */
  readonly profile?: { readonly steps?: number; readonly durationMs?: number };
}

/** Applies defaults; throws an error naming the field for a malformed duration. */
export function resolvePolicy(policy: SessionPolicy = {}): ResolvedPolicy {
  const retry = { ...POLICY_DEFAULTS.retry, ...policy.retry };
  return {
    defaultTimeoutMs: requireDuration('policy.defaultTimeout', policy.defaultTimeout ?? POLICY_DEFAULTS.defaultTimeout),
    longRunningThresholdMs: requireDuration('policy.longRunningThreshold', policy.longRunningThreshold ?? POLICY_DEFAULTS.longRunningThreshold),
    heartbeatTimeoutMs: requireDuration('policy.heartbeatTimeout', policy.heartbeatTimeout ?? POLICY_DEFAULTS.heartbeatTimeout),
    approvalTimeoutMs: policy.approvalTimeout === undefined ? null : requireDuration('policy.approvalTimeout', policy.approvalTimeout),
    maxConcurrent: policy.maxConcurrent ?? POLICY_DEFAULTS.maxConcurrent,
    checkpointsToKeep: resolveRetention(policy.checkpointsToKeep ?? POLICY_DEFAULTS.checkpointsToKeep, policy.search),
    maxPreemptions: policy.maxPreemptions ?? POLICY_DEFAULTS.maxPreemptions,
    onFailure: policy.onFailure ?? POLICY_DEFAULTS.onFailure,
    retry: {
      initialIntervalMs: requireDuration('policy.retry.initialInterval', retry.initialInterval),
      backoffCoefficient: retry.backoffCoefficient,
      maximumIntervalMs: requireDuration('policy.retry.maximumInterval', retry.maximumInterval),
      maximumAttempts: retry.maximumAttempts,
    },
    ...(policy.approvers && policy.approvers.length > 0 ? { approvers: policy.approvers.map((a) => ({ ...a })) } : {}),
    ...(policy.allowCrossSessionResume !== undefined ? { allowCrossSessionResume: policy.allowCrossSessionResume } : {}),
    ...(policy.priority !== undefined ? { priority: policy.priority } : {}),
    ...(policy.fairnessKey !== undefined ? { fairnessKey: policy.fairnessKey } : {}),
    ...(policy.search ? { search: resolveSearch(policy.search) } : {}),
    ...(policy.resourceTimeout !== undefined ? { resourceTimeoutMs: requireDuration('policy.resourceTimeout', policy.resourceTimeout) } : {}),
    ...(policy.profile !== undefined ? { profile: resolveProfile(policy.profile) } : {}),
  };
}

/** How long an unsatisfiable request waits before it is rejected (SessionPolicy.resourceTimeout). */
export function resourceTimeoutMs(policy: ResolvedPolicy): number {
  return policy.resourceTimeoutMs ?? requireDuration('policy.resourceTimeout', POLICY_DEFAULTS.resourceTimeout);
}

/**
 * The Temporal task priority of a session's experiments: the policy's priority key (absent:
 * the server default) and its fairness key, else the session id (ids are ASCII; Temporal caps
 * fairness keys at 64 bytes, so a longer id is cut there). Pure, for both workflows.
 */
export function taskPriority(policy: ResolvedPolicy, sessionId: string): { priorityKey?: number; fairnessKey: string } {
  return { ...(policy.priority !== undefined ? { priorityKey: policy.priority } : {}), fairnessKey: policy.fairnessKey ?? sessionId.slice(0, 64) };
}

/**
 * Why `spec.resumeFrom` may not be used in `sessionId` under `allowed` (the policy's
 * allowCrossSessionResume), or undefined when it may: a session's own experiments always, others
 * only when allowed. Pure, for the client, the workflow side and the training activity alike.
 */
export function crossSessionResumeProblem(spec: ExperimentSpec, sessionId: string, allowed: boolean | readonly string[] | undefined): string | undefined {
  const source = spec.resumeFrom?.experiment;
  if (source === undefined) return undefined;
  const sourceSession = source.slice(0, source.indexOf('/'));
  if (sourceSession === sessionId || allowed === true || (Array.isArray(allowed) && allowed.includes(sourceSession))) return undefined;
  return `resumeFrom.experiment: expected an experiment of session ${JSON.stringify(sessionId)}, received ${JSON.stringify(source)} (another session's checkpoints are reachable only when the session's policy allows it: allowCrossSessionResume)`;
}

function resolveProfile(p: NonNullable<SessionPolicy['profile']>): { steps?: number; durationMs?: number } {
  return {
    ...(p.steps !== undefined ? { steps: p.steps } : {}),
    ...(p.duration !== undefined ? { durationMs: requireDuration('policy.profile.duration', p.duration) } : {}),
  };
}

/** The profiling window of `estimatedDuration: "auto"` (SessionPolicy.profile). */
export function profileWindow(policy: ResolvedPolicy): { steps?: number; durationMs?: number } {
  return policy.profile ?? resolveProfile(POLICY_DEFAULTS.profile);
}

/**
 * Long-running: flagged explicitly, or estimated to outlast the session's threshold. An `auto`
 * estimate is not known yet: the experiment profiles first and asks for approval itself.
 */
export function isLongRunning(spec: ExperimentSpec, policy: ResolvedPolicy): boolean {
  if (spec.longRunning === true) return true;
  if (spec.estimatedDuration === undefined || spec.estimatedDuration === 'auto') return false;
  return requireDuration(`experiments[${spec.id}].estimatedDuration`, spec.estimatedDuration) > policy.longRunningThresholdMs;
}

/** Preemptions one experiment may take before it fails (SessionPolicy.maxPreemptions). */
export function maxPreemptions(policy: ResolvedPolicy): number {
  return policy.maxPreemptions ?? POLICY_DEFAULTS.maxPreemptions;
}
