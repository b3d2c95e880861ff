// The session's approval gate as pure code (src/workflows/session/approvals.ts), without a
// server: approver lists, signatures, reject, pending estimates and the audit records.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { signClaim, writeKeyPair } from '../../src/approver-keys';
import type { SessionRow } from '../../src/shared/definitions';
import { resolvePolicy } from '../../src/shared/policy';
import type { ExperimentSpec, SessionPolicy } from '../../src/shared/types';
import { applyClaim, approvalAnswer, MAX_AUDIT_RECORDS, MAX_LISTED_ESTIMATES, pendingEstimates, refusal } from '../../src/workflows/session/approvals';
import { newRow, plan, type SchedulerState } from '../../src/workflows/session/scheduler';

const keys = writeKeyPair(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'approvals-')), 'alice'));
const NOW = Date.parse('2026-12-01T12:00:00.000Z');

function session(policy: SessionPolicy): SchedulerState {
  const resolved = resolvePolicy(policy);
  const specs: ExperimentSpec[] = [
    { id: 'long', trainer: 'mlp', estimatedDuration: '2h' },
    { id: 'forced', trainer: 'mlp', longRunning: true },
    { id: 'short', trainer: 'mlp' },
  ];
  const rows = new Map<string, SessionRow>(specs.map((s) => [s.id, newRow(s, resolved)]));
  const state: SchedulerState = { sessionId: 's1', policy: resolved, keepOpen: false, rows, approval: null, audit: [], closeRequested: false, stopping: null, running: 0, draining: false, cancelled: false, runs: 0 };
  plan(state, NOW);
  return state;
}

test('pending estimates list the waiting long-running experiments with their durations', () => {
  assert.deepEqual(pendingEstimates(session({})), [
    { experimentId: 'long', estimatedDurationMs: 7_200_000 },
    { experimentId: 'forced', estimatedDurationMs: null },
  ]);
});

test('names only: mallory is refused and audited, the experiments keep waiting; alice releases them', () => {
  const s = session({ approvers: [{ name: 'alice' }] });
  assert.match(refusal(s, 'approve', { by: 'mallory' }, NOW) ?? '', /"mallory" is not an approver of this session \(approvers: alice\)/);
  const refused = applyClaim(s, 'approve', { by: 'mallory', note: 'let me' }, NOW, 'signal');
  assert.equal(refused.kind, 'refused');
  assert.equal(s.approval, null);
  assert.deepEqual(s.audit.map((r) => [r.by, r.outcome, r.source]), [['mallory', 'refused', 'signal']]);
  assert.match(s.audit[0].refusedReason ?? '', /not an approver/);
  assert.equal(s.rows.get('long')?.state, 'awaiting-approval');
  assert.equal(plan(s, NOW + 1).start.length, 0, 'nothing starts after a refused approval');

  const ok = applyClaim(s, 'approve', { by: 'alice', note: 'budget ok' }, NOW + 2, 'update');
  assert.equal(ok.kind, 'approved');
  assert.deepEqual(ok.kind === 'approved' && ok.record.estimates, [
    { experimentId: 'long', estimatedDurationMs: 7_200_000 },
    { experimentId: 'forced', estimatedDurationMs: null },
  ]);
  assert.deepEqual(plan(s, NOW + 3).start.map((r) => r.spec.id), ['long', 'forced']);
});

test('with a key: unsigned and replayed signatures are refused; a fresh signature over the pending estimates approves', () => {
  const s = session({ approvers: [{ name: 'alice', publicKey: keys.publicKey }] });
  assert.match(refusal(s, 'approve', { by: 'alice' }, NOW) ?? '', /must be signed/);
  const claim = { kind: 'approve' as const, by: 'alice', at: new Date(NOW).toISOString(), note: 'go', estimates: pendingEstimates(s) };
  const forOther = { ...claim, signature: signClaim(keys.privateKeyFile, 'other-session', claim) };
  assert.match(refusal(s, 'approve', forOther, NOW) ?? '', /does not verify/);
  const good = { ...claim, signature: signClaim(keys.privateKeyFile, 's1', claim) };
  assert.equal(refusal(s, 'approve', good, NOW), null);
  const outcome = applyClaim(s, 'approve', good, NOW + 1000, 'update');
  assert.equal(outcome.kind, 'approved');
  assert.equal(s.approval?.signed, true);
});

test('reject ends the waiting long-running experiments rejected with the reason, and only those', () => {
  const s = session({ approvers: [{ name: 'alice' }] });
  assert.equal(applyClaim(s, 'reject', { by: 'alice' }, NOW, 'signal').kind, 'ignored', 'a reject needs a reason');
  assert.equal(applyClaim(s, 'reject', { by: 'eve', reason: 'no' }, NOW, 'signal').kind, 'refused');
  const outcome = applyClaim(s, 'reject', { by: 'alice', reason: 'too expensive' }, NOW, 'update');
  assert.equal(outcome.kind, 'rejected');
  assert.deepEqual([...s.rows.values()].map((r) => [r.spec.id, r.state, r.reason]), [
    ['long', 'rejected', 'rejected by alice: too expensive'],
    ['forced', 'rejected', 'rejected by alice: too expensive'],
    ['short', 'running', null],
  ]);
  assert.deepEqual(s.audit.map((r) => r.outcome), ['refused', 'rejected']);
  assert.deepEqual(s.audit[1].estimates?.map((e) => e.experimentId), ['long', 'forced']);
});

test('any payload is judged without throwing', () => {
  const s = session({ approvers: [{ name: 'alice', publicKey: keys.publicKey }] });
  const poisoned = Object.defineProperty({}, 'by', { get: () => { throw new Error('boom'); } });
  for (const payload of [undefined, null, 7, 'alice', [], { by: 'alice', signature: 5, estimates: 'x', at: {} }, poisoned, { by: 'x'.repeat(1e6) }]) {
    assert.doesNotThrow(() => applyClaim(s, 'approve', payload, NOW, 'signal'));
    assert.doesNotThrow(() => applyClaim(s, 'reject', payload, NOW, 'signal'));
    assert.equal(typeof refusal(s, 'approve', payload, NOW), 'string');
  }
  assert.equal(s.approval, null);
});

/** A session of `n` long-running experiments (every third without an estimate), all waiting. */
function bigSession(n: number, policy: SessionPolicy = {}): SchedulerState {
  const resolved = resolvePolicy(policy);
  const specs: ExperimentSpec[] = Array.from({ length: n }, (_, i) => (i % 3 === 2 ? { id: `e${i}`, trainer: 'mlp', longRunning: true } : { id: `e${i}`, trainer: 'mlp', estimatedDuration: '2h' }));
  const rows = new Map<string, SessionRow>(specs.map((s) => [s.id, newRow(s, resolved)]));
  const state: SchedulerState = { sessionId: 'big', policy: resolved, keepOpen: false, rows, approval: null, audit: [], closeRequested: false, stopping: null, running: 0, draining: false, cancelled: false, runs: 0 };
  plan(state, NOW);
  return state;
}

test('a large session: the pending answer and the approval record list the first estimates and count all of them', () => {
  const s = bigSession(MAX_LISTED_ESTIMATES * 5);
  const answer = approvalAnswer(s);
  assert.equal(answer.pending?.length, MAX_LISTED_ESTIMATES);
  assert.equal(answer.pending?.[0].experimentId, 'e0');
  assert.equal(answer.pendingTotal, MAX_LISTED_ESTIMATES * 5);
  const ok = applyClaim(s, 'approve', { by: 'alice', note: 'sweep' }, NOW + 1, 'update');
  assert.equal(ok.kind, 'approved');
  assert.equal(ok.record.estimates?.length, MAX_LISTED_ESTIMATES);
  const n = MAX_LISTED_ESTIMATES * 5;
  const unestimated = Math.floor(n / 3);
  assert.deepEqual(ok.record.covered, { experiments: n, estimatedMs: (n - unestimated) * 7_200_000, unestimated });
  assert.equal(plan(s, NOW + 2).start.length > 0, true, 'every one of them is released, not only the listed ones');
  assert.equal(approvalAnswer(s).pendingTotal, undefined);
  // A small session's record has no `covered`: its estimates are all of them.
  const small = applyClaim(session({}), 'approve', { by: 'alice' }, NOW, 'update');
  assert.equal(small.kind, 'approved');
  assert.equal(small.record.estimates?.length, 2);
  assert.equal(small.record.covered, undefined);
});

test('the audit stays bounded under a flood of refused approvals, and keeps the decisive records', () => {
  const s = bigSession(3, { approvers: [{ name: 'alice' }] });
  applyClaim(s, 'approve', { by: 'mallory', note: 'first' }, NOW, 'signal');
  const ok = applyClaim(s, 'approve', { by: 'alice', note: 'go' }, NOW + 1, 'update');
  assert.equal(ok.kind, 'approved');
  for (let i = 0; i < MAX_AUDIT_RECORDS * 3; i++) applyClaim(s, 'approve', { by: 'mallory', note: `spam ${i}` }, NOW + 2 + i, 'signal');
  assert.equal(s.audit.length, MAX_AUDIT_RECORDS);
  assert.deepEqual(s.audit.filter((r) => r.outcome === 'approved').map((r) => r.by), ['alice'], "alice's approval outlives the spam");
  assert.equal(s.audit.at(-1)?.note, `spam ${MAX_AUDIT_RECORDS * 3 - 1}`, 'the newest refusal is kept');
  assert.equal(s.audit.some((r) => r.note === 'first'), false, 'the oldest refusals went first');
  assert.equal(s.approval?.by, 'alice');
});
