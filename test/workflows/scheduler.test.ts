/**
 * The session scheduler's rules, without a server: slots, approval gating and deadlines, the
 * onFailure policy, session state, summary counts, the approve signal and which
 * experimentFinished reports count. Time is passed in, so the deadlines are exact here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SessionRow } from '../../src/shared/definitions';
import { blankStatus } from '../../src/shared/hints';
import { resolvePolicy } from '../../src/shared/policy';
import { inputProblems, sessionInputSchema } from '../../src/shared/schema';
import type { ExperimentSpec, ExperimentStatus, SessionPolicy } from '../../src/shared/types';
import {
  allDone,
  applyApproveSignal,
  finish,
  judgeReport,
  newRow,
  nextDeadline,
  plan,
  sessionState,
  snapshot,
  summaryCounts,
  type ChildRecord,
  type SchedulerState,
} from '../../src/workflows/session/scheduler';

function scheduler(specs: ExperimentSpec[], policy: SessionPolicy = {}, keepOpen = false): SchedulerState {
  const resolved = resolvePolicy(policy);
  const rows = new Map<string, SessionRow>(specs.map((s) => [s.id, newRow(s, resolved)]));
  return { sessionId: 's', policy: resolved, keepOpen, rows, approval: null, audit: [], closeRequested: false, stopping: null, running: 0, draining: false, cancelled: false, runs: 0 };
}
const bounded = (id: string): ExperimentSpec => ({ id, trainer: 'mlp' });
const long = (id: string): ExperimentSpec => ({ id, trainer: 'mlp', longRunning: true });
const ended = (state: SchedulerState, id: string, s: ExperimentStatus['state']): ExperimentStatus =>
  blankStatus({ id, sessionId: state.sessionId, workflowId: `s:${id}`, state: s, timeoutMode: 'bounded' });
const ids = (rows: SessionRow[]) => rows.map((r) => r.spec.id);

test('slots: at most maxConcurrent start, the next starts when one settles', () => {
  const s = scheduler(['a', 'b', 'c'].map(bounded), { maxConcurrent: 2 });
  assert.deepEqual(ids(plan(s, 0).start), ['a', 'b']);
  assert.equal(s.running, 2);
  assert.deepEqual(ids(plan(s, 1).start), [], 'no slot free');
  finish(s, s.rows.get('a')!, ended(s, 'a', 'completed'));
  s.running--;
  assert.deepEqual(ids(plan(s, 2).start), ['c']);
  s.draining = true;
  s.rows.set('d', newRow(bounded('d'), s.policy));
  s.running = 0;
  assert.deepEqual(ids(plan(s, 3).start), [], 'draining starts nothing');
});

test('approval: long-running rows wait, start once approved, and are rejected at approvalTimeout exactly', () => {
  const s = scheduler([long('l1'), bounded('b'), long('l2')], { approvalTimeout: '10s' });
  const first = plan(s, 1000);
  assert.deepEqual(ids(first.start), ['b']);
  assert.deepEqual(first.transitions.map((t) => `${t.experimentId}:${t.to}`), ['l1:awaiting-approval', 'l2:awaiting-approval']);
  assert.equal(nextDeadline(s, 4000), 7000);
  assert.deepEqual(plan(s, 10_999).transitions, [], 'not yet due');
  s.rows.get('l2')!.awaitingSince = 5000;
  const due = plan(s, 11_000);
  assert.deepEqual(due.transitions.map((t) => `${t.experimentId}:${t.to}`), ['l1:rejected']);
  assert.match(s.rows.get('l1')!.reason ?? '', /no approval within approvalTimeout 10s/);
  assert.equal(nextDeadline(s, 11_000), 4000, 'l2 is due 10 s after it started waiting');

  assert.equal(applyApproveSignal(s, { by: ' ops ', note: 'go' }, 'T').kind, 'approved');
  assert.equal(s.approval?.by, 'ops');
  assert.equal(nextDeadline(s, 11_000), undefined, 'no deadline once approved');
  assert.deepEqual(ids(plan(s, 12_000).start), ['l2']);
  assert.equal(applyApproveSignal(s, { by: 'second' }, 'T2').kind, 'recorded', 'a later approval only joins the audit');
  assert.deepEqual(s.audit.map((r) => r.by), ['ops', 'second']);
});

test('approve signal: any payload is judged without throwing', () => {
  const s = scheduler([long('l')]);
  const huge = 'x'.repeat(1_000_000);
  for (const payload of [undefined, null, 42, 'ops', [], {}, { by: '' }, { by: '   ' }, { by: 7 }, { note: 'x' }]) {
    const outcome = applyApproveSignal(s, payload, 'T');
    assert.equal(outcome.kind, 'ignored', `payload ${JSON.stringify(payload)}`);
    if (outcome.kind === 'ignored') assert.match(outcome.problem, /by: expected/);
  }
  const poisoned = {
    get by(): string {
      throw new Error('boom');
    },
  };
  assert.equal(applyApproveSignal(s, poisoned, 'T').kind, 'ignored', 'a throwing getter is caught');
  assert.equal(s.approval, null);
  const outcome = applyApproveSignal(s, { by: huge, note: huge }, 'T');
  assert.equal(outcome.kind, 'approved');
  assert.equal(snapshot(s).approval.by?.length, 200);
  assert.equal(snapshot(s).approval.note?.length, 2000);
});

test('onFailure stop: the first failure stops the session and cancels what has not started', () => {
  const s = scheduler(['a', 'b', 'c'].map(bounded), { maxConcurrent: 1, onFailure: 'stop' });
  plan(s, 0);
  assert.match(finish(s, s.rows.get('a')!, ended(s, 'a', 'timed-out')) ?? '', /experiment a timed-out and the session's onFailure policy is "stop"/);
  assert.equal(finish(s, s.rows.get('a')!, ended(s, 'a', 'failed')), null, 'only the first failure stops');
  s.running = 0;
  const next = plan(s, 1);
  assert.deepEqual(ids(next.start), []);
  assert.deepEqual(next.transitions.map((t) => t.to), ['cancelled', 'cancelled']);
  assert.equal(sessionState(s), 'failed');
  assert.deepEqual(summaryCounts(snapshot(s)), { completed: 0, failed: 3 });
});

test('session state: awaiting approval, running, keepOpen until close, cancelled; counts', () => {
  const s = scheduler([long('l'), bounded('b')], {}, true);
  plan(s, 0);
  assert.equal(sessionState(s), 'running', 'a child is running');
  finish(s, s.rows.get('b')!, ended(s, 'b', 'completed'));
  s.running = 0;
  assert.equal(sessionState(s), 'awaiting-approval');
  applyApproveSignal(s, { by: 'ops' }, 'T');
  plan(s, 1);
  finish(s, s.rows.get('l')!, ended(s, 'l', 'completed'));
  s.running = 0;
  assert.equal(allDone(s), false, 'keepOpen: open until close');
  assert.equal(sessionState(s), 'running');
  s.closeRequested = true;
  assert.equal(sessionState(s), 'completed');
  const snap = snapshot(s);
  assert.deepEqual(summaryCounts(snap), { completed: 2, failed: 0 });
  assert.deepEqual(snap.approval, { required: true, approved: true, by: 'ops', at: 'T', note: null });
  assert.deepEqual(snap.experiments.map((e) => e.preemptions), [0, 0]);
  s.cancelled = true;
  assert.equal(sessionState(s), 'cancelled');
});

test('a spec whose timeout mode cannot be decided becomes a failed row naming the field', () => {
  const row = newRow({ id: 'x', trainer: 'mlp', estimatedDuration: 'soon' }, resolvePolicy());
  assert.equal(row.state, 'failed');
  assert.match(row.reason ?? '', /estimatedDuration/);
});

test('experimentFinished: only the started run, only once its result settled as cancelled', () => {
  const s = scheduler([bounded('a')]);
  plan(s, 0);
  const child: ChildRecord = { runId: 'run-1', settled: 'running', pending: null };
  const children = new Map([['a', child]]);
  const report = (status: unknown, runId?: unknown) => judgeReport(s, children, { status, runId });
  const interrupted = { ...ended(s, 'a', 'interrupted'), reason: 'stop' };

  for (const payload of [undefined, null, 3, 'x', [], {}, { status: null }, { status: 5 }]) {
    assert.equal(judgeReport(s, children, payload).kind, 'ignore', `payload ${JSON.stringify(payload)}`);
  }
  assert.match(problem(report({ ...interrupted, id: 'nobody' }, 'run-1')), /no child of this session/);
  assert.match(problem(report(interrupted)), /runId: expected the run id/, 'no run id: forged');
  assert.match(problem(report(interrupted, 'run-2')), /runId: expected the run id/, 'another run');
  assert.match(problem(report({ ...interrupted, state: 'queued' }, 'run-1')), /status\.state/);
  assert.equal(report(interrupted, 'run-1').kind, 'hold', 'a running child: held, never applied');
  child.settled = 'cancelled';
  const applied = report(interrupted, 'run-1');
  assert.equal(applied.kind, 'apply');
  if (applied.kind === 'apply') assert.equal(applied.status.reason, 'stop');
  child.settled = 'other';
  assert.match(problem(report(interrupted, 'run-1')), /ended without being cancelled/);
});

test('start input: the schema names the missing field, and a continue-as-new carry passes', () => {
  const policy = resolvePolicy();
  const { maxConcurrent: _dropped, ...noSlots } = policy;
  assert.deepEqual(inputProblems(sessionInputSchema, { sessionId: 's', policy: noSlots, experiments: [] }), [
    'policy.maxConcurrent: expected number, received nothing',
  ]);
  assert.match(inputProblems(sessionInputSchema, undefined)[0], /^\(root\): expected object/);
  assert.match(inputProblems(sessionInputSchema, { sessionId: 's', policy, experiments: [{ id: 'a/b', trainer: 'mlp' }] })[0], /^experiments\[0\]\.id: /);
  const s = scheduler([bounded('a')]);
  const carry = { rows: [...s.rows.values()], approval: null, audit: [], closeRequested: false, stopping: null, runs: 1 };
  assert.deepEqual(inputProblems(sessionInputSchema, { sessionId: 's', policy, experiments: [], carry }), []);
  const old = { ...policy, maxPreemptions: undefined };
  assert.deepEqual(inputProblems(sessionInputSchema, { sessionId: 's', policy: JSON.parse(JSON.stringify(old)), experiments: [] }), [], 'a policy from before maxPreemptions');
});

function problem(decision: ReturnType<typeof judgeReport>): string {
  assert.equal(decision.kind, 'ignore');
  return decision.kind === 'ignore' ? decision.problem : '';
}
