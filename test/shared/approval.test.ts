// Approver checks, without a server: node:crypto signs (as the CLI does) and the workflow-side
// check verifies with @noble/curves, so this also proves the two agree on the signed bytes.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { approverProblems, checkApproval, SIGNATURE_MAX_SKEW_MS, type ApprovalClaim } from '../../src/shared/approval';
import { signClaim, writeKeyPair } from '../../src/approver-keys';
import { formatIssues, sessionPolicySchema } from '../../src/shared/schema';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'approval-'));
const alice = writeKeyPair(path.join(dir, 'alice'));
const eve = writeKeyPair(path.join(dir, 'eve'));
const now = Date.parse('2026-12-01T12:00:00.000Z');
const base: Omit<ApprovalClaim, 'signature'> = {
  kind: 'approve',
  by: 'alice',
  at: new Date(now).toISOString(),
  note: 'budget ok',
  estimates: [{ experimentId: 'long', estimatedDurationMs: 7_200_000 }],
};
const signed = (file: string, session: string, claim = base): ApprovalClaim => ({ ...claim, signature: signClaim(file, session, claim) });

test('with no approvers listed anyone may approve, unsigned', () => {
  assert.deepEqual(checkApproval('s1', undefined, { ...base, by: 'anyone' }, now), { ok: true, signed: false });
  assert.deepEqual(checkApproval('s1', [], { ...base, by: 'anyone' }, now), { ok: true, signed: false });
});

test('names only: a name outside the list is refused, a listed one passes', () => {
  const approvers = [{ name: 'alice' }, { name: 'bob' }];
  const refused = checkApproval('s1', approvers, { ...base, by: 'mallory' }, now);
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.reason : '', /"mallory" is not an approver of this session \(approvers: alice, bob\)/);
  assert.deepEqual(checkApproval('s1', approvers, base, now), { ok: true, signed: false });
});

test('with a key: unsigned, another key, another session, edited note and a stale time are refused', () => {
  const approvers = [{ name: 'alice', publicKey: alice.publicKey }];
  const reasons = [
    checkApproval('s1', approvers, base, now),
    checkApproval('s1', approvers, signed(eve.privateKeyFile, 's1'), now),
    checkApproval('s1', approvers, signed(alice.privateKeyFile, 's2'), now),
    checkApproval('s1', approvers, { ...signed(alice.privateKeyFile, 's1'), note: 'edited' }, now),
    checkApproval('s1', approvers, signed(alice.privateKeyFile, 's1'), now + SIGNATURE_MAX_SKEW_MS + 1000),
    checkApproval('s1', approvers, { ...base, signature: 'zz' }, now),
  ].map((v) => (v.ok ? 'accepted' : v.reason));
  assert.match(reasons[0], /must be signed/);
  assert.match(reasons[1], /does not verify with alice's key/);
  assert.match(reasons[2], /does not verify/);
  assert.match(reasons[3], /does not verify/);
  assert.match(reasons[4], /not within 15 minutes/);
  assert.match(reasons[5], /expected 128 hex characters/);
  assert.deepEqual(checkApproval('s1', approvers, signed(alice.privateKeyFile, 's1'), now), { ok: true, signed: true });
});

test('a reject signature does not pass as an approval', () => {
  const approvers = [{ name: 'alice', publicKey: alice.publicKey }];
  const reject = signed(alice.privateKeyFile, 's1', { ...base, kind: 'reject' });
  assert.equal(checkApproval('s1', approvers, { ...reject, kind: 'approve' }, now).ok, false);
  assert.equal(checkApproval('s1', approvers, reject, now).ok, true);
});

test('approver lists are validated: duplicates and malformed keys are named', () => {
  assert.deepEqual(approverProblems([{ name: 'a', publicKey: alice.publicKey }]), []);
  const problems = approverProblems([{ name: 'a' }, { name: 'a', publicKey: 'abc' }]);
  assert.deepEqual(problems.map((p) => [p.index, p.field]), [[1, 'name'], [1, 'publicKey']]);
  assert.match(problems[1].message, /expected 64 hex characters/);
  const parsed = sessionPolicySchema.safeParse({ approvers: [{ name: 'a' }, { name: 'a' }] });
  assert.equal(parsed.success, false);
  assert.match(formatIssues(parsed.error!).join('\n'), /^approvers\[1\]\.name: expected a unique name/m);
});

test('keygen refuses to overwrite and writes a private key only its owner can read', () => {
  assert.throws(() => writeKeyPair(path.join(dir, 'alice')), /exists/);
  assert.equal(fs.statSync(alice.privateKeyFile).mode & 0o777, 0o600);
  assert.match(fs.readFileSync(alice.publicKeyFile, 'utf8'), /^[0-9a-f]{64}\n$/);
});
