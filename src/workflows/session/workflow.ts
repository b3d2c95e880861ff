/**
 * The session workflow: a long-lived group of experiments that holds one approval. This file is
 * the wiring: handlers, child starts, the wake-up loop and continue-as-new. The rules (slots,
 * approval gating and deadlines, state, which reports count) are pure code in ./scheduler.ts.
 *
 * - Bounded experiments start as soon as a slot is free (`maxConcurrent`).
 * - Long-running experiments wait in `awaiting-approval` until the one `approve` signal of the
 *   session; from then on every long-running experiment starts at once, in no-timeout mode.
 * - `approvalTimeout` rejects experiments that waited too long; the session goes on.
 * - Cancelling the session cancels its running experiments (each checkpoints and ends
 *   `interrupted`) and marks queued ones `cancelled`.
 * - Before history grows large the session drains its running children and continues as new,
 *   carrying the rows still to run, a bounded fold of the ended ones (./fold.ts), approval and audit.
 * - Every handler accepts any payload (signals from the Temporal CLI or the Web UI skip the
 *   client): a bad one is logged and ignored, an update is rejected by its validator.
 *
 * Determinism: this file runs in the workflow sandbox. A change that alters the commands it
 * issues goes behind `patched()`, and the recorded histories in test/fixtures/histories stay.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  ParentClosePolicy,
  TerminatedFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  approvalQuery,
  approveSignal,
  approveUpdate,
  rejectSignal,
  rejectUpdate,
  cancelReasonSignal,
  closeSessionSignal,
  experimentFinishedSignal,
  sessionHintsQuery,
  sessionStatusQuery,
  type SessionCarry,
  type SessionInput,
  type SessionRow,
  type SessionSummary,
} from '../../shared/definitions';
import { blankStatus, hintsFromStatus } from '../../shared/hints';
import { experimentWorkflowId } from '../../shared/ids';
import { taskPriority } from '../../shared/policy';
import { inputProblems, sessionInputSchema } from '../../shared/schema';
import { searchAttributeKey } from '../../shared/search-attributes';
import type { ApprovalRecord, ExperimentStatus } from '../../shared/types';
import { applyClaim, approvalAnswer, refusal, type ClaimKind, type ClaimSource } from './approvals';
import { experimentDetails, experimentSummary } from '../../shared/user-metadata';
import { AUTO_ESTIMATE_SESSION, isProfiledRequest, requeueProfiled, withEstimate } from './auto-estimate';
import { experimentWorkflow } from '../experiment';
import { publishStateCounts } from '../metrics';
import { newSearchState } from '../../shared/search/decide';
import { trialReportSignal } from '../../shared/search/definitions';
import { SEARCH_SCHEDULER_PATCH, SessionSearch } from './search';
import { installPauseHandlers } from './pause';
import { BOUNDED_CARRY_PATCH, carriedRows, expandCounts, pageOf } from './fold';
import { installAdditionHandlers } from './additions';
import { preview } from './preview';
import { feedWindow, SweepFeed } from './feed';
import {
  allDone,
  finish,
  isTerminal,
  judgeReport,
  newRow,
  nextDeadline,
  plan,
  rowStatus,
  sessionMarkdown,
  snapshot,
  summary,
  type ChildRecord,
  type SchedulerState,
} from './scheduler';

const DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 8000;
/**
 * Patch: start input validated against the client's schema; experimentFinished accepted only
 * from the child run this session started, once its result settled as cancelled.
 */
const HARDENED = 'session-validated-input-and-reports';
/** Patch: experiment children start with a static summary and details for the Temporal UI. */
const USER_METADATA = 'experiment-user-metadata';
/** Patch: experiment children start with the policy's task priority and fairness key. */
const TASK_PRIORITY = 'session-child-priority';

export async function sessionWorkflow(input: SessionInput): Promise<SessionSummary> {
  const hardened = validateStart(input);
  const { sessionId, policy } = input;
  const carry = input.carry;
  const state: SchedulerState = {
    sessionId,
    policy,
    keepOpen: input.keepOpen === true,
    rows: new Map<string, SessionRow>(),
    approval: carry?.approval ?? null,
    audit: [...(carry?.audit ?? [])],
    closeRequested: carry?.closeRequested ?? false,
    stopping: carry?.stopping ?? null,
    running: 0,
    draining: false,
    cancelled: false,
    runs: carry?.runs ?? 0,
    ...(carry?.paused ? { paused: true } : {}),
    ...(carry?.folded ? { folded: carry.folded } : {}),
  };
  const { rows } = state;
  const children = new Map<string, ChildRecord>();
  let cancelReason: string | null = null;
  let wake = true;
  const scopes = new Map<string, CancellationScope>();
  const search = policy.search && patched(SEARCH_SCHEDULER_PATCH) ? new SessionSearch(sessionId, policy.search, carry?.search ?? newSearchState(), rows, children) : null;
  // Declared before any handler: a buffered signal is delivered as soon as its handler is set.
  let published = '';
  let stateCounts = new Map<string, number>();

  for (const row of carry?.rows ?? input.experiments.map((spec) => newRow(spec, policy))) rows.set(row.spec.id, row);
  for (const spec of carry?.queued ?? []) rows.set(spec.id, newRow(spec, policy));
  // Sweeps by reference: points become rows a window at a time (./feed.ts).
  const feed = carry ? new SweepFeed(carry.feed) : SweepFeed.of(input.sweeps);
  if (feed.remaining > 0) state.unfed = feed.remaining;
  // Pre-approval obeys the approver rules too: a refused one is audited and the experiments wait.
  if (!carry && input.preApproved) void onClaim('approve', input.preApproved, 'pre-approved');

  setHandler(approveSignal, (payload: unknown) => void onClaim('approve', payload, 'signal'));
  setHandler(rejectSignal, (payload: unknown) => void onClaim('reject', payload, 'signal'));
  setHandler(approveUpdate, (payload: unknown) => onClaim('approve', payload, 'update'), { validator: claimValidator('approve') });
  setHandler(rejectUpdate, (payload: unknown) => onClaim('reject', payload, 'update'), { validator: claimValidator('reject') });
  setHandler(cancelReasonSignal, (payload: unknown) => {
    const reason = (payload as { reason?: unknown } | null | undefined)?.reason;
    if (typeof reason === 'string') cancelReason = reason.slice(0, 500);
    else log.warn('cancelReason signal ignored: reason: expected a string', { sessionId, received: preview(payload) });
  });
  setHandler(closeSessionSignal, () => {
    state.closeRequested = true;
    wake = true;
  });
  setHandler(experimentFinishedSignal, (payload: unknown) => onReport(payload));
  setHandler(trialReportSignal, (payload: unknown) => {
    if (search) search.onReport(payload);
    else log.warn('trialReport signal ignored: this session has no search policy', { sessionId });
  });
  const pause = installPauseHandlers(state, children, () => {
    publish();
    wake = true;
  });
  setHandler(sessionStatusQuery, (page?: unknown) => snapshot(state, page));
  setHandler(approvalQuery, () => approvalAnswer(state));
  setHandler(sessionHintsQuery, (page?: unknown) => pageOf([...rows.values()], page).map((row) => hintsFromStatus(rowStatus(sessionId, row))));
  installAdditionHandlers(state, feed, () => {
    wake = true;
  });

  /** Applies an approve or reject from any path; returns the audit record (for updates). */
  function onClaim(kind: ClaimKind, payload: unknown, source: ClaimSource): ApprovalRecord {
    const outcome = applyClaim(state, kind, payload, Date.now(), source);
    if (outcome.kind === 'ignored') {
      log.warn(outcome.problem, { sessionId, received: preview(payload) });
      // Only a signal can get here (update validators refuse unreadable payloads first).
      return { by: '', at: new Date().toISOString(), note: null, source, outcome: 'refused', refusedReason: outcome.problem };
    }
    if (outcome.kind === 'refused') log.warn(`${kind} refused: ${outcome.record.refusedReason}`, { sessionId, by: outcome.record.by, source });
    else if (outcome.kind === 'approved') log.info('session approved', { sessionId, by: outcome.record.by, signed: outcome.record.signed, source });
    else if (outcome.kind === 'rejected') log.warn('long-running experiments rejected', { sessionId, by: outcome.record.by, experiments: outcome.rows.map((r) => r.spec.id) });
    // Sweep points not fed yet were submitted with the rows just approved or rejected (./feed.ts).
    if (outcome.kind === 'approved') feed.approved();
    else if (outcome.kind === 'rejected') feed.reject(outcome.rows[0]?.reason ?? `rejected by ${outcome.record.by}`);
    // Pre-approval is applied before the first scheduling pass, which publishes (as it always did).
    if (outcome.kind !== 'recorded' && source !== 'pre-approved') publish();
    wake = true;
    return outcome.record;
  }

  function claimValidator(kind: ClaimKind): (payload: unknown) => void {
    return (payload) => {
      const problem = refusal(state, kind, payload, Date.now());
      if (problem) throw new Error(problem.replace(/ signal ignored:/, ' refused:'));
    };
  }

  function onReport(payload: unknown): void {
    if (!hardened) {
      // Histories recorded before the patch: the report counts as it arrives (shape-checked only).
      const status = (payload as { status?: Partial<ExperimentStatus> } | null | undefined)?.status;
      const row = typeof status?.id === 'string' ? rows.get(status.id) : undefined;
      if (row && !isTerminal(row) && typeof status?.state === 'string') end(row, status as ExperimentStatus);
      else log.warn('experimentFinished signal ignored', { sessionId, received: preview(payload) });
      return;
    }
    const decision = judgeReport(state, children, payload);
    if (decision.kind === 'ignore') {
      log.warn(`experimentFinished signal ignored: ${decision.problem}`, { sessionId, received: preview(payload) });
      return;
    }
    const row = rows.get(decision.status.id);
    const child = children.get(decision.status.id);
    if (!row || !child) return;
    if (decision.kind === 'hold') child.pending = decision.status;
    else end(row, decision.status);
  }

  function end(row: SessionRow, status: ExperimentStatus): void {
    const stopping = finish(state, row, status);
    if (stopping) {
      log.warn('stopping session after a failure', { sessionId, experimentId: row.spec.id });
      for (const scope of scopes.values()) scope.cancel();
    }
    // A trial that ended no longer holds up the decisions of the trials after it.
    search?.dispatch();
    wake = true;
  }

  function start(row: SessionRow): void {
    const scope = new CancellationScope();
    scopes.set(row.spec.id, scope);
    const record: ChildRecord = { runId: null, settled: 'running', pending: null };
    children.set(row.spec.id, record);
    const workflowId = experimentWorkflowId(sessionId, row.spec.id);
    void scope
      .run(async () => {
        const priority = patched(TASK_PRIORITY) ? { priority: taskPriority(policy, sessionId) } : {};
        const child = await startChild(experimentWorkflow, {
          ...priority,
          workflowId,
          args: [{ sessionId, spec: row.spec, policy, timeoutMode: row.timeoutMode, parentWorkflowId: workflowInfo().workflowId, ...(input.redactSearchAttributes && { redactSearchAttributes: true }) }],
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          ...(patched(USER_METADATA) && {
            staticSummary: experimentSummary(row.spec, row.timeoutMode),
            staticDetails: experimentDetails(row.spec, sessionId, row.timeoutMode, policy),
          }),
        });
        record.runId = child.firstExecutionRunId;
        pause.started(row.spec.id);
        return await child.result();
      })
      .then(
        (status) => {
          record.settled = 'other';
          // `auto` rows: a profiled child asking for approval comes back as a long-running row.
          if (isProfiledRequest(row, status) && patched(AUTO_ESTIMATE_SESSION)) requeueProfiled(sessionId, row, status);
          else end(row, withEstimate(row.status, status));
        },
        (err) => {
          record.settled = isCancellation(err) ? 'cancelled' : 'other';
          const reported = hardened && record.settled === 'cancelled' ? record.pending : null;
          if (reported) end(row, reported);
          else if (!isTerminal(row)) end(row, childFailureStatus(row, workflowId, err));
        },
      )
      .finally(() => {
        state.running--;
        scopes.delete(row.spec.id);
        wake = true;
      });
  }

  /** Tops the rows still to start up to the feed window (all of the rest once the session stops starting). */
  function refill(): void {
    if (!state.unfed) return;
    let waiting = 0;
    for (const row of rows.values()) if (row.state === 'queued' || row.state === 'awaiting-approval') waiting++;
    const want = state.stopping || state.cancelled ? feed.remaining : feedWindow(policy) - waiting;
    if (want <= 0) return;
    const now = Date.now();
    for (const spec of feed.take(want)) {
      // The start input's schema and the update validator keep other ids off a sweep's stem.
      if (rows.has(spec.id)) {
        log.warn('sweep point skipped: its id is taken', { sessionId, experimentId: spec.id });
        continue;
      }
      const row = newRow(spec, policy);
      feed.gate(row, state.approval !== null, now);
      rows.set(spec.id, row);
    }
    state.unfed = feed.remaining > 0 ? feed.remaining : undefined;
  }

  function schedule(): void {
    for (;;) {
      refill();
      const { start: toStart, transitions } = plan(state, Date.now());
      for (const t of transitions) {
        if (t.to === 'awaiting-approval') log.info('experiment awaiting approval', { sessionId, experimentId: t.experimentId });
        else if (t.to === 'rejected') log.warn('experiment rejected', { sessionId, experimentId: t.experimentId, reason: t.reason });
      }
      for (const row of toStart) start(row);
      // Rows that ended without starting (rejected, cancelled) made room for more sweep points:
      // feed and plan again. Each pass ends rows or feeds none, so this stops.
      if (!state.unfed || !transitions.some((t) => t.to !== 'awaiting-approval')) return;
    }
  }

  const historyIsLarge = () =>
    workflowInfo().historyLength >= (input.continueAsNewAfterEvents ?? DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS) ||
    workflowInfo().continueAsNewSuggested;

  function publish(): void {
    const snap = snapshot(state);
    const approvalState = snap.approval.approved ? 'approved' : snap.approval.required ? 'required' : 'not-required';
    const key = `${snap.state}|${approvalState}`;
    // Search attributes and memo change only when the session state or approval does, so a
    // sweep of hundreds of experiments does not add an event per completion.
    if (key !== published) {
      published = key;
      upsertSearchAttributes([
        { key: searchAttributeKey('SessionId'), value: sessionId },
        { key: searchAttributeKey('ExperimentState'), value: snap.state },
        { key: searchAttributeKey('ApprovalState'), value: approvalState },
      ]);
      upsertMemo({ session: { state: snap.state, approval: snap.approval } });
    }
    setCurrentDetails(sessionMarkdown(snap));
    stateCounts = publishStateCounts(sessionId, expandCounts(snap.counts ?? {}), stateCounts);
  }

  try {
    for (;;) {
      schedule();
      publish();
      if (allDone(state)) break;
      if (!state.draining && historyIsLarge()) {
        state.draining = true;
        log.info('history is large: draining running experiments, then continuing as new', { sessionId, running: state.running });
      }
      if (state.draining && state.running === 0) {
        await condition(allHandlersFinished);
        const next: SessionCarry = {
          // Bounded carry: terminal rows fold into counts and an id filter, a few are kept (./fold.ts).
          ...carriedRows([...rows.values()], state.folded, policy, patched(BOUNDED_CARRY_PATCH)),
          approval: state.approval,
          audit: state.audit,
          closeRequested: state.closeRequested,
          stopping: state.stopping,
          runs: state.runs + 1,
          ...(search ? { search: search.state } : {}),
          ...(state.paused ? { paused: true } : {}),
          ...(feed.state ? { feed: feed.state } : {}),
        };
        await continueAsNew<typeof sessionWorkflow>({ ...input, experiments: [], sweeps: undefined, preApproved: undefined, carry: next });
      }
      wake = false;
      await condition(() => wake, nextDeadline(state, Date.now()));
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    state.cancelled = true;
    await CancellationScope.nonCancellable(async () => {
      refill();
      for (const row of rows.values()) {
        if (row.state === 'queued' || row.state === 'awaiting-approval') {
          row.state = 'cancelled';
          row.reason = `session cancelled before it started${cancelReason ? `: ${cancelReason}` : ''}`;
        }
      }
      await condition(() => state.running === 0);
      publish();
      await condition(allHandlersFinished);
    });
    log.info('session cancelled', { sessionId });
    throw err;
  }
  await condition(allHandlersFinished);
  const result = summary(state);
  log.info('session ended', { sessionId, state: result.state, total: result.total });
  return result;
}

/**
 * Checks the start input with the client's own schema, and that the session id is the workflow
 * id. Invalid input fails the run at once, non-retryably, naming the field (behind the patch;
 * histories from before it replay unchecked). Returns whether this run has the patch.
 */
function validateStart(input: unknown): boolean {
  const problems = inputProblems(sessionInputSchema, input);
  const sessionId = (input as { sessionId?: unknown } | null | undefined)?.sessionId;
  const workflowId = workflowInfo().workflowId;
  if (problems.length === 0 && sessionId !== workflowId) {
    problems.push(`sessionId: expected the workflow id ${JSON.stringify(workflowId)}, received ${JSON.stringify(sessionId)}`);
  }
  const hardened = patched(HARDENED);
  if (hardened && problems.length > 0) {
    const shown = problems.length > 3 ? [...problems.slice(0, 3), `(and ${problems.length - 3} more)`] : problems;
    throw ApplicationFailure.nonRetryable(`invalid session input: ${shown.join('; ')}`, 'InvalidSessionInput', problems);
  }
  return hardened;
}

/** The status of a child that ended without a result (failed, timed out, cancelled, terminated). */
function childFailureStatus(row: SessionRow, workflowId: string, err: unknown): ExperimentStatus {
  const base = blankStatus({ id: row.spec.id, sessionId: workflowId.split(':')[0], workflowId, state: 'failed', timeoutMode: row.timeoutMode });
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.details?.[0] && typeof cause.details[0] === 'object') {
    return { ...base, ...(cause.details[0] as ExperimentStatus) };
  }
  if (isCancellation(err)) return { ...base, state: 'interrupted', reason: 'cancelled' };
  if (cause instanceof TerminatedFailure) return { ...base, reason: 'experiment workflow was terminated' };
  return { ...base, reason: err instanceof Error ? err.message : String(err) };
}
