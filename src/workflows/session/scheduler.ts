/**
 * The session's scheduling logic, pure: rows, slots (`maxConcurrent`), approval gating and
 * approval deadlines, the session state, the snapshot and its summary counts, and the rule for
 * which experiment-finished reports count. No Temporal calls and no clock of its own: the
 * workflow passes workflow time in (`now`), starts the children this module picks, and logs the
 * transitions it returns. That keeps every rule testable without a server
 * (test/workflows/scheduler.test.ts).
 */
import { formatDuration } from '../../shared/duration';
import type { FoldedRows, SessionRow, SessionSnapshot, SessionSummary } from '../../shared/definitions';
import { blankStatus } from '../../shared/hints';
import { experimentWorkflowId } from '../../shared/ids';
import { isLongRunning, type ResolvedPolicy } from '../../shared/policy';
import { bestTrial } from '../../shared/search/best';
import { TERMINAL_EXPERIMENT_STATES, type ApprovalRecord, type ExperimentSpec, type ExperimentStatus, type SessionState } from '../../shared/types';
import { countStates, readPage, selectRows, SUMMARY_ROWS, totalOf, type StateCounts } from './fold';

/** Everything the session decides with; the workflow owns one and carries most of it across continue-as-new. */
export interface SchedulerState {
  readonly sessionId: string;
  readonly policy: ResolvedPolicy;
  /** Keep the session open until `close` (SessionInput.keepOpen). */
  readonly keepOpen: boolean;
  readonly rows: Map<string, SessionRow>;
  approval: ApprovalRecord | null;
  readonly audit: ApprovalRecord[];
  closeRequested: boolean;
  /** Why the session stops starting experiments (onFailure "stop"), or null. */
  stopping: string | null;
  /** Children started and not yet settled. */
  running: number;
  /** Draining before continue-as-new: no new starts. */
  draining: boolean;
  cancelled: boolean;
  /** Paused (`pause` signal or update): no experiment starts. Absent: not paused. */
  paused?: boolean;
  /** Continue-as-new runs before this one. */
  readonly runs: number;
  /** Rows folded away at earlier continue-as-new (./fold.ts); absent when none were. */
  readonly folded?: FoldedRows;
  /** Sweep points not made into rows yet (./feed.ts): queued, not held. Absent: none. */
  unfed?: number;
}

/** A row state change worth a log line; the workflow logs it. */
export interface Transition {
  readonly experimentId: string;
  readonly to: 'awaiting-approval' | 'rejected' | 'cancelled';
  readonly reason: string | null;
}

export const isTerminal = (row: SessionRow): boolean => TERMINAL_EXPERIMENT_STATES.includes(row.state);
export const needsApproval = (row: SessionRow): boolean => row.timeoutMode === 'none';

/** A new row for `spec`; a spec whose timeout mode cannot be decided becomes a failed row with the reason. */
export function newRow(spec: ExperimentSpec, policy: ResolvedPolicy): SessionRow {
  try {
    return { spec, state: 'queued', timeoutMode: isLongRunning(spec, policy) ? 'none' : 'bounded', awaitingSince: null, status: null, reason: null };
  } catch (err) {
    return { spec, state: 'failed', timeoutMode: 'bounded', awaitingSince: null, status: null, reason: (err as Error).message };
  }
}

/**
 * One scheduling pass at workflow time `now`: cancels waiting rows of a stopping session, gates
 * long-running rows on approval (and rejects those past `approvalTimeout`), and returns the rows
 * to start now, marked `running` and counted against `maxConcurrent`.
 */
export function plan(state: SchedulerState, now: number): { start: SessionRow[]; transitions: Transition[] } {
  const start: SessionRow[] = [];
  const transitions: Transition[] = [];
  const { policy } = state;
  for (const row of state.rows.values()) {
    if (row.state !== 'queued' && row.state !== 'awaiting-approval') continue;
    if (state.stopping) {
      row.state = 'cancelled';
      row.reason = `not started: ${state.stopping}`;
      transitions.push({ experimentId: row.spec.id, to: 'cancelled', reason: row.reason });
      continue;
    }
    if (needsApproval(row) && !state.approval) {
      if (row.state === 'queued') {
        row.state = 'awaiting-approval';
        row.awaitingSince = now;
        transitions.push({ experimentId: row.spec.id, to: 'awaiting-approval', reason: null });
      } else if (policy.approvalTimeoutMs !== null && now - (row.awaitingSince ?? now) >= policy.approvalTimeoutMs) {
        row.state = 'rejected';
        row.reason = `no approval within approvalTimeout ${formatDuration(policy.approvalTimeoutMs)}`;
        transitions.push({ experimentId: row.spec.id, to: 'rejected', reason: row.reason });
      }
      continue;
    }
    if (row.state === 'awaiting-approval') row.state = 'queued';
    if (!state.draining && !state.paused && state.running < policy.maxConcurrent) {
      row.state = 'running';
      row.awaitingSince = null;
      state.running++;
      start.push(row);
    }
  }
  return { start, transitions };
}

/** Milliseconds from `now` until the earliest approval deadline (at least 1), for the wake-up timer. */
export function nextDeadline(state: SchedulerState, now: number): number | undefined {
  const timeout = state.policy.approvalTimeoutMs;
  if (timeout === null || state.approval) return undefined;
  let earliest: number | undefined;
  for (const row of state.rows.values()) {
    if (row.state !== 'awaiting-approval' || row.awaitingSince === null) continue;
    const due = row.awaitingSince + timeout - now;
    earliest = earliest === undefined ? due : Math.min(earliest, due);
  }
  return earliest === undefined ? undefined : Math.max(earliest, 1);
}

/**
 * Records an experiment's end on its row. Returns the reason to stop the session when this end
 * trips `onFailure: "stop"` (the workflow then cancels the running children), else null.
 */
export function finish(state: SchedulerState, row: SessionRow, status: ExperimentStatus): string | null {
  row.status = status;
  row.state = status.state;
  row.reason = status.reason;
  if ((row.state === 'failed' || row.state === 'timed-out') && state.policy.onFailure === 'stop' && !state.stopping) {
    state.stopping = `experiment ${row.spec.id} ${row.state} and the session's onFailure policy is "stop"`;
    return state.stopping;
  }
  return null;
}

/** Every row ended, and the session may close. */
export const allDone = (state: SchedulerState): boolean =>
  !state.unfed && [...state.rows.values()].every(isTerminal) && (!state.keepOpen || state.closeRequested);

export function sessionState(state: SchedulerState): SessionState {
  if (state.cancelled) return 'cancelled';
  const all = [...state.rows.values()];
  const folded = state.folded?.counts ?? {};
  const foldedBad = totalOf(folded) - (folded.completed ?? 0) - (folded.pruned ?? 0);
  // A trial the search pruned ended as meant: the session still completed.
  if (allDone(state)) return foldedBad === 0 && all.every((r) => r.state === 'completed' || r.state === 'pruned') ? 'completed' : 'failed';
  if (state.running === 0 && all.some((r) => r.state === 'awaiting-approval')) return 'awaiting-approval';
  return 'running';
}

/** A row's status as reported: the child's own status once it has one, with the row's state. */
export function rowStatus(sessionId: string, row: SessionRow): ExperimentStatus {
  if (row.status) return { ...row.status, preemptions: row.status.preemptions ?? 0, state: row.state, reason: row.reason ?? row.status.reason };
  return blankStatus({
    id: row.spec.id,
    sessionId,
    workflowId: experimentWorkflowId(sessionId, row.spec.id),
    state: row.state,
    timeoutMode: row.timeoutMode,
    reason: row.reason,
  });
}

/**
 * The status query's answer: one page of the rows the session holds (`page`, see
 * SessionStatusPage; no argument: the first page), with counts of every experiment, folded
 * ones included. Bounded by MAX_PAGE_LIMIT rows whatever the session's size.
 */
export function snapshot(state: SchedulerState, rawPage?: unknown): SessionSnapshot {
  const rows = [...state.rows.values()];
  const page = readPage(rawPage);
  const selected = page.state ? rows.filter((r) => r.state === page.state) : rows;
  const shown = selected.slice(page.offset, page.offset + page.limit);
  return { ...header(state, rows, shown), page: { offset: page.offset, limit: page.limit, held: rows.length, state: page.state, problem: page.problem } };
}

/**
 * The session's result: counts of every experiment, and at most SUMMARY_ROWS rows (the ones
 * that did not end well first, then the best by the search metric, else the latest; in their
 * order). A session of up to SUMMARY_ROWS experiments that never folded lists all of them.
 */
export function summary(state: SchedulerState): SessionSummary {
  const rows = [...state.rows.values()];
  const snap = header(state, rows, selectRows(rows, state.policy, SUMMARY_ROWS));
  return { ...snap, ...summaryCounts(snap) };
}

function header(state: SchedulerState, rows: readonly SessionRow[], shown: readonly SessionRow[]): SessionSnapshot {
  const { approval } = state;
  const experiments = shown.map((row) => rowStatus(state.sessionId, row));
  const counts = countStates(rows, state.folded?.counts);
  if (state.unfed) counts.queued = (counts.queued ?? 0) + state.unfed;
  const total = totalOf(counts);
  const { search } = state.policy;
  return {
    kind: 'session',
    id: state.sessionId,
    state: sessionState(state),
    approval: {
      required: rows.some(needsApproval) || (state.folded?.approvalRequired ?? false),
      approved: approval !== null,
      by: approval?.by ?? null,
      at: approval?.at ?? null,
      note: approval?.note ?? null,
    },
    audit: state.audit,
    policy: state.policy,
    experiments,
    runs: state.runs,
    ...(state.paused ? { paused: true } : {}),
    // Kept rows include the best by the metric, so the best of folded runs is still among them.
    ...(search ? { best: bestTrial(rows.map((row) => rowStatus(state.sessionId, row)), new Map(rows.map((r) => [r.spec.id, r.spec])), search) } : {}),
    counts,
    total,
    truncated: experiments.length < total,
  };
}

/** The summary's counts: completed, pruned (search sessions only), and everything that ended otherwise; folded experiments included. */
export function summaryCounts(snap: SessionSnapshot): { completed: number; failed: number; pruned?: number } {
  const counts: StateCounts = snap.counts ?? countStates(snap.experiments.map((e) => ({ state: e.state }) as SessionRow));
  const completed = counts.completed ?? 0;
  const pruned = counts.pruned ?? 0;
  return { completed, failed: totalOf(counts) - completed - pruned, ...(snap.policy.search ? { pruned } : {}) };
}

/** What the session knows of one child it started. */
export interface ChildRecord {
  /** firstExecutionRunId of the started child; null until startChild resolved. */
  runId: string | null;
  /** `running` until the child's result promise settles; `cancelled` when it settled as cancelled. */
  settled: 'running' | 'cancelled' | 'other';
  /** A report from this child's run that arrived before its result settled. */
  pending: ExperimentStatus | null;
}

/** What to do with one experimentFinished report. */
export type ReportDecision =
  | { readonly kind: 'apply'; readonly status: ExperimentStatus }
  | { readonly kind: 'hold'; readonly status: ExperimentStatus }
  | { readonly kind: 'ignore'; readonly problem: string };

/**
 * Judges an `experimentFinished` report: only the run this session started can report, and
 * only its cancellation (a Canceled child returns no result). A report naming the child's runId
 * is held until the child's result settles as cancelled, and applied then; anything else (no
 * such child, another run id, a child that completed or failed, a malformed status) is ignored.
 */
export function judgeReport(state: SchedulerState, children: ReadonlyMap<string, ChildRecord>, payload: unknown): ReportDecision {
  const report = (payload !== null && typeof payload === 'object' ? payload : {}) as { status?: unknown; runId?: unknown };
  const status = report.status as Partial<ExperimentStatus> | null | undefined;
  if (!status || typeof status !== 'object' || typeof status.id !== 'string') {
    return { kind: 'ignore', problem: 'status.id: expected an experiment status' };
  }
  const row = state.rows.get(status.id);
  const child = children.get(status.id);
  if (!row || !child) return { kind: 'ignore', problem: `status.id: no child of this session is named ${JSON.stringify(status.id.slice(0, 130))}` };
  if (typeof report.runId !== 'string' || report.runId !== child.runId) {
    return { kind: 'ignore', problem: `runId: expected the run id of the child this session started, received ${JSON.stringify(report.runId)?.slice(0, 80)}` };
  }
  if (!isReportedState(status.state)) return { kind: 'ignore', problem: `status.state: expected an ended state, received ${JSON.stringify(status.state)?.slice(0, 40)}` };
  const clean = { ...rowStatus(state.sessionId, { ...row, status: null }), ...status, id: row.spec.id } as ExperimentStatus;
  if (child.settled === 'running') return { kind: 'hold', status: clean };
  if (child.settled === 'cancelled') return { kind: 'apply', status: clean };
  return { kind: 'ignore', problem: 'the child ended without being cancelled: its own result counts' };
}

function isReportedState(state: unknown): state is ExperimentStatus['state'] {
  return state === 'interrupted' || state === 'failed' || state === 'timed-out' || state === 'completed';
}

/** The session's current details in the Temporal UI, state and counts first (the UI shows about three lines). */
export function sessionMarkdown(snap: SessionSnapshot): string {
  const counts = new Map<string, number>(Object.entries(snap.counts ?? {}));
  if (!snap.counts) for (const e of snap.experiments) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const experiments = [...counts].map(([state, n]) => `${n} ${state}`).join(', ') || 'no experiments';
  const approval = snap.approval.approved
    ? `approved by **${snap.approval.by}**${snap.approval.note ? ` (“${snap.approval.note}”)` : ''} at ${snap.approval.at}`
    : snap.approval.required
      ? '**awaiting approval**: send the `approve` signal with `{"by": "<name>"}`'
      : 'approval not required';
  return [`**${snap.state}**${snap.paused ? ' (paused: send `unpause` to resume)' : ''} · ${experiments}`, approval].join('  \n');
}
