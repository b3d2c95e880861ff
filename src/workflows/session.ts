/**
 * The session workflow: a long-lived group of experiments that holds one approval.
 *
 * - Bounded experiments start as soon as a slot is free (`maxConcurrent`).
 * - Long-running experiments wait in `awaiting-approval` until the one `approve` signal of the
 *   session; from then on every long-running experiment starts at once, in no-timeout mode.
 * - `approvalTimeout` rejects experiments that waited too long; the session goes on.
 * - Cancelling the session cancels its running experiments (each checkpoints and ends
 *   `interrupted`) and marks queued ones `cancelled`.
 * - Before history grows large the session drains its running children and continues as new,
 *   carrying rows, approval and audit.
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
  setCurrentDetails,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  addExperimentsUpdate,
  approvalQuery,
  approveSignal,
  cancelReasonSignal,
  closeSessionSignal,
  experimentFinishedSignal,
  sessionHintsQuery,
  sessionStatusQuery,
  type SessionCarry,
  type SessionInput,
  type SessionRow,
  type SessionSnapshot,
  type SessionSummary,
} from '../shared/definitions';
import { formatDuration } from '../shared/duration';
import { blankStatus, hintsFromStatus } from '../shared/hints';
import { experimentWorkflowId, idProblem } from '../shared/ids';
import { isLongRunning } from '../shared/policy';
import { searchAttributeKey } from '../shared/search-attributes';
import {
  TERMINAL_EXPERIMENT_STATES,
  type ApprovalRecord,
  type ExperimentSpec,
  type ExperimentStatus,
  type SessionState,
} from '../shared/types';
import { experimentWorkflow } from './experiment';

const DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 8000;

const isTerminal = (row: SessionRow) => TERMINAL_EXPERIMENT_STATES.includes(row.state);

export async function sessionWorkflow(input: SessionInput): Promise<SessionSummary> {
  const { sessionId, policy } = input;
  const carry = input.carry;
  const rows = new Map<string, SessionRow>();
  let approval: ApprovalRecord | null = carry?.approval ?? null;
  const audit: ApprovalRecord[] = [...(carry?.audit ?? [])];
  let closeRequested = carry?.closeRequested ?? false;
  let stopping: string | null = carry?.stopping ?? null;
  let running = 0;
  let draining = false;
  let cancelled = false;
  let cancelReason: string | null = null;
  let wake = true;
  const scopes = new Map<string, CancellationScope>();
  // Declared before any handler: a buffered signal is delivered as soon as its handler is set.
  let published = '';

  if (!carry && input.preApproved) {
    approval = { by: input.preApproved.by, at: new Date().toISOString(), note: input.preApproved.note ?? null, source: 'pre-approved' };
    audit.push(approval);
  }
  for (const row of carry?.rows ?? input.experiments.map(newRow)) rows.set(row.spec.id, row);

  function newRow(spec: ExperimentSpec): SessionRow {
    try {
      return { spec, state: 'queued', timeoutMode: isLongRunning(spec, policy) ? 'none' : 'bounded', awaitingSince: null, status: null, reason: null };
    } catch (err) {
      return { spec, state: 'failed', timeoutMode: 'bounded', awaitingSince: null, status: null, reason: (err as Error).message };
    }
  }
  const needsApproval = (row: SessionRow) => row.timeoutMode === 'none';

  setHandler(approveSignal, (input) => {
    // Signals sent from the Web UI or other SDKs skip the client's validation.
    const { by, note } = (input ?? {}) as { by?: unknown; note?: unknown };
    if (typeof by !== 'string' || by.trim() === '') {
      log.warn('approve signal ignored: expected {"by": "<approver>", "note"?: "<text>"}', { sessionId, received: JSON.stringify(input) });
      return;
    }
    const record: ApprovalRecord = {
      by: by.trim().slice(0, 200),
      at: new Date().toISOString(),
      note: typeof note === 'string' ? note.slice(0, 2000) : null,
      source: 'signal',
    };
    audit.push(record);
    if (!approval) {
      approval = record;
      log.info('session approved', { sessionId, by: record.by });
      publish();
    }
    wake = true;
  });
  setHandler(cancelReasonSignal, (input) => {
    const reason = (input as { reason?: unknown } | undefined)?.reason;
    if (typeof reason === 'string') cancelReason = reason.slice(0, 500);
  });
  setHandler(closeSessionSignal, () => {
    closeRequested = true;
    wake = true;
  });
  setHandler(experimentFinishedSignal, ({ status }) => {
    const row = rows.get(status.id);
    if (row && !isTerminal(row)) finish(row, status);
  });
  setHandler(sessionStatusQuery, () => snapshot());
  setHandler(approvalQuery, () => ({ approval, audit }));
  setHandler(sessionHintsQuery, () => [...rows.values()].map((row) => hintsFromStatus(rowStatus(row))));
  setHandler(
    addExperimentsUpdate,
    (specs) => {
      for (const spec of specs) rows.set(spec.id, newRow(spec));
      wake = true;
      log.info('experiments added', { sessionId, count: specs.length });
      return { added: specs.map((s) => s.id) };
    },
    {
      validator: (specs) => {
        if (stopping) throw new Error(`session ${sessionId} is stopping (${stopping}); start a new session`);
        if (!Array.isArray(specs) || specs.length === 0) throw new Error('experiments: expected a non-empty array of experiment specs');
        const seen = new Set(rows.keys());
        specs.forEach((spec, i) => {
          const problem = idProblem(`experiments[${i}].id`, spec?.id);
          if (problem) throw new Error(problem);
          if (seen.has(spec.id)) throw new Error(`experiments[${i}].id: expected a unique id, received duplicate ${JSON.stringify(spec.id)}`);
          if (typeof spec.trainer !== 'string' || spec.trainer === '') {
            throw new Error(`experiments[${i}].trainer: expected a trainer name, received ${JSON.stringify(spec.trainer)}`);
          }
          seen.add(spec.id);
        });
      },
    },
  );

  function finish(row: SessionRow, status: ExperimentStatus): void {
    row.status = status;
    row.state = status.state;
    row.reason = status.reason;
    if ((row.state === 'failed' || row.state === 'timed-out') && policy.onFailure === 'stop' && !stopping) {
      stopping = `experiment ${row.spec.id} ${row.state} and the session's onFailure policy is "stop"`;
      log.warn('stopping session after a failure', { sessionId, experimentId: row.spec.id });
      for (const scope of scopes.values()) scope.cancel();
    }
    wake = true;
  }

  function start(row: SessionRow): void {
    row.state = 'running';
    row.awaitingSince = null;
    running++;
    const scope = new CancellationScope();
    scopes.set(row.spec.id, scope);
    const workflowId = experimentWorkflowId(sessionId, row.spec.id);
    void scope
      .run(async () => {
        const child = await startChild(experimentWorkflow, {
          workflowId,
          args: [{ sessionId, spec: row.spec, policy, timeoutMode: row.timeoutMode, parentWorkflowId: workflowInfo().workflowId }],
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        });
        return await child.result();
      })
      .then(
        (status) => finish(row, status),
        (err) => {
          if (!isTerminal(row)) finish(row, childFailureStatus(row, workflowId, err));
        },
      )
      .finally(() => {
        running--;
        scopes.delete(row.spec.id);
        wake = true;
      });
  }

  function schedule(): void {
    const now = Date.now();
    for (const row of rows.values()) {
      if (row.state !== 'queued' && row.state !== 'awaiting-approval') continue;
      if (stopping) {
        row.state = 'cancelled';
        row.reason = `not started: ${stopping}`;
        continue;
      }
      if (needsApproval(row) && !approval) {
        if (row.state === 'queued') {
          row.state = 'awaiting-approval';
          row.awaitingSince = now;
          log.info('experiment awaiting approval', { sessionId, experimentId: row.spec.id });
        } else if (policy.approvalTimeoutMs !== null && now - (row.awaitingSince ?? now) >= policy.approvalTimeoutMs) {
          row.state = 'rejected';
          row.reason = `no approval within approvalTimeout ${formatDuration(policy.approvalTimeoutMs)}`;
          log.warn('experiment rejected', { sessionId, experimentId: row.spec.id, reason: row.reason });
        }
        continue;
      }
      if (row.state === 'awaiting-approval') row.state = 'queued';
      if (!draining && running < policy.maxConcurrent) start(row);
    }
  }

  /** Milliseconds until the earliest approval deadline, for the wake-up timer. */
  function nextDeadline(): number | undefined {
    if (policy.approvalTimeoutMs === null || approval) return undefined;
    let earliest: number | undefined;
    for (const row of rows.values()) {
      if (row.state !== 'awaiting-approval' || row.awaitingSince === null) continue;
      const due = row.awaitingSince + policy.approvalTimeoutMs - Date.now();
      earliest = earliest === undefined ? due : Math.min(earliest, due);
    }
    return earliest === undefined ? undefined : Math.max(earliest, 1);
  }

  const allDone = () => [...rows.values()].every(isTerminal) && (!input.keepOpen || closeRequested);
  const historyIsLarge = () =>
    workflowInfo().historyLength >= (input.continueAsNewAfterEvents ?? DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS) ||
    workflowInfo().continueAsNewSuggested;

  function sessionState(): SessionState {
    if (cancelled) return 'cancelled';
    const all = [...rows.values()];
    if (all.every(isTerminal) && (!input.keepOpen || closeRequested)) {
      return all.every((r) => r.state === 'completed') ? 'completed' : 'failed';
    }
    if (running === 0 && all.some((r) => r.state === 'awaiting-approval')) return 'awaiting-approval';
    return 'running';
  }

  function snapshot(): SessionSnapshot {
    const required = [...rows.values()].some(needsApproval);
    return {
      kind: 'session',
      id: sessionId,
      state: sessionState(),
      approval: { required, approved: approval !== null, by: approval?.by ?? null, at: approval?.at ?? null, note: approval?.note ?? null },
      audit,
      policy,
      experiments: [...rows.values()].map((row) => rowStatus(row)),
      runs: carry?.runs ?? 0,
    };
  }

  function rowStatus(row: SessionRow): ExperimentStatus {
    if (row.status) return { ...row.status, state: row.state, reason: row.reason ?? row.status.reason };
    return blankStatus({
      id: row.spec.id,
      sessionId,
      workflowId: experimentWorkflowId(sessionId, row.spec.id),
      state: row.state,
      timeoutMode: row.timeoutMode,
      reason: row.reason,
    });
  }

  function publish(): void {
    const snap = snapshot();
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
  }

  try {
    for (;;) {
      schedule();
      publish();
      if (allDone()) break;
      if (!draining && historyIsLarge()) {
        draining = true;
        log.info('history is large: draining running experiments, then continuing as new', { sessionId, running });
      }
      if (draining && running === 0) {
        await condition(allHandlersFinished);
        const next: SessionCarry = { rows: [...rows.values()], approval, audit, closeRequested, stopping, runs: (carry?.runs ?? 0) + 1 };
        await continueAsNew<typeof sessionWorkflow>({ ...input, experiments: [], preApproved: undefined, carry: next });
      }
      wake = false;
      await condition(() => wake, nextDeadline());
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = true;
    await CancellationScope.nonCancellable(async () => {
      for (const row of rows.values()) {
        if (row.state === 'queued' || row.state === 'awaiting-approval') {
          row.state = 'cancelled';
          row.reason = `session cancelled before it started${cancelReason ? `: ${cancelReason}` : ''}`;
        }
      }
      await condition(() => running === 0);
      publish();
      await condition(allHandlersFinished);
    });
    log.info('session cancelled', { sessionId });
    throw err;
  }
  await condition(allHandlersFinished);
  const summary = snapshot();
  log.info('session ended', { sessionId, state: summary.state });
  return {
    ...summary,
    completed: summary.experiments.filter((e) => e.state === 'completed').length,
    failed: summary.experiments.filter((e) => e.state !== 'completed').length,
  };
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

function sessionMarkdown(snap: SessionSnapshot): string {
  const counts = new Map<string, number>();
  for (const e of snap.experiments) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const experiments = [...counts].map(([state, n]) => `${n} ${state}`).join(', ') || 'no experiments';
  const approval = snap.approval.approved
    ? `approved by **${snap.approval.by}**${snap.approval.note ? ` (“${snap.approval.note}”)` : ''} at ${snap.approval.at}`
    : snap.approval.required
      ? '**awaiting approval**: send the `approve` signal with `{"by": "<name>"}`'
      : 'approval not required';
  // The UI shows about three lines: state and counts first.
  return [`**${snap.state}** · ${experiments}`, approval].join('  \n');
}
