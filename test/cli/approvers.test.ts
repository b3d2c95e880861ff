/**
 * Approver lists and signed approvals end to end: a real dev server, an in-process worker, the
 * `experiments` CLI as a child process and raw signals through the `temporal` CLI (the path the
 * Web UI's Send a Signal takes: no client-side validation).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { signClaim } from '../../src/approver-keys';
import { approvalQuery } from '../../src/shared/definitions';
import type { SessionPolicy } from '../../src/shared/types';
import { resolveTemporalCli } from '../../src/temporal-cli';
import { ROOT, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

const BIN = path.join(ROOT, 'bin', 'experiments.js');
let h: Harness;
let w: RunningWorker;
let temporal: string;
let keysDir: string;
let n = 0;

before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('approvers'), checkpointDir: path.join(h.tmp, 'ck-approvers') });
  temporal = (await resolveTemporalCli({ build: false })).path;
  keysDir = path.join(h.tmp, 'keys');
  fs.mkdirSync(keysDir);
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  const env = { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: w.client.taskQueue, NO_COLOR: '1' };
  const child = spawn(process.execPath, [BIN, ...args], { cwd: h.tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function oneLine(r: Result, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(r.code, 2, `exit 2 expected:\n${r.stdout}\n${r.stderr}`);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
}

const rawSignal = (workflowId: string, name: string, input: unknown) =>
  promisify(execFile)(temporal, ['workflow', 'signal', '--address', h.address, '--workflow-id', workflowId, '--name', name, '--input', JSON.stringify(input)]);

async function waitingSession(policy: SessionPolicy): Promise<string> {
  const sessionId = `appr-${process.pid}-${++n}`;
  await w.client.startSession({
    sessionId,
    policy: { longRunningThreshold: '1h', ...policy },
    experiments: [
      { id: 'long', trainer: 'mlp', params: { epochs: 2, samples: 64, batchSize: 32 }, estimatedDuration: '3h' },
      { id: 'short', trainer: 'mlp', params: { epochs: 1, samples: 64, batchSize: 32 } },
    ],
  });
  await waitFor(async () => (await w.client.sessionSnapshot(sessionId)).experiments.find((e) => e.id === 'long')?.state === 'awaiting-approval', {
    what: `${sessionId}:long awaiting approval`,
  });
  return sessionId;
}

const state = async (sessionId: string, id: string) => (await w.client.sessionSnapshot(sessionId)).experiments.find((e) => e.id === id)?.state;
const audit = (sessionId: string) => h.env.client.workflow.getHandle(sessionId).query(approvalQuery).then((a) => a.audit);

describe('approvers', { timeout: 600_000 }, () => {
  test('names only: mallory is refused on the CLI (exit 2) and through a raw signal (audited); alice releases the session', async () => {
    const s = await waitingSession({ approvers: [{ name: 'alice' }] });
    oneLine(await cli(['approve', s, '--by', 'mallory']), /rejected by the session: .*"mallory" is not an approver of this session \(approvers: alice\)/);
    await rawSignal(s, 'approve', { by: 'mallory', note: 'from the UI' });
    await waitFor(async () => (await audit(s)).some((r) => r.by === 'mallory' && r.outcome === 'refused'), { what: 'the refused raw approval in the audit' });
    const refused = (await audit(s)).find((r) => r.by === 'mallory')!;
    assert.equal(refused.source, 'signal');
    assert.match(refused.refusedReason ?? '', /not an approver/);
    assert.equal(await state(s, 'long'), 'awaiting-approval', 'a refused approval changes nothing else');

    const ok = await cli(['approve', s, '--by', 'alice', '--note', 'budget ok']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Approved session .* as alice; long may start now/);
    const summary = await h.env.client.workflow.getHandle(s).result();
    assert.deepEqual(summary.experiments.map((e: { id: string; state: string }) => [e.id, e.state]), [['long', 'completed'], ['short', 'completed']]);
    const approved = summary.audit.find((r: { outcome?: string }) => r.outcome === 'approved');
    assert.equal(approved.by, 'alice');
    assert.equal(approved.note, 'budget ok');
    assert.deepEqual(approved.estimates, [{ experimentId: 'long', estimatedDurationMs: 3 * 3_600_000 }], 'the audit records the estimates it released');
  });

  test('signed: unsigned, another key, and a signature for another session are refused; alice --key releases it', async () => {
    for (const name of ['alice', 'eve']) assert.equal((await cli(['keygen', '--out', path.join(keysDir, name)])).code, 0);
    const alicePub = fs.readFileSync(path.join(keysDir, 'alice.pub'), 'utf8').trim();
    const s = await waitingSession({ approvers: [{ name: 'alice', publicKey: alicePub }] });
    oneLine(await cli(['approve', s, '--by', 'alice']), /approver alice has a key: the approve must be signed/);
    oneLine(await cli(['approve', s, '--by', 'alice', '--key', path.join(keysDir, 'eve.key')]), /signature does not verify with alice's key/);

    // A valid signature captured from another session, replayed here.
    const other = await waitingSession({ approvers: [{ name: 'alice', publicKey: alicePub }] });
    const claim = signedFor(other);
    const otherRecord = await w.client.approve(other, { by: 'alice', note: 'n' }, { keyFile: path.join(keysDir, 'alice.key') });
    assert.equal(otherRecord.signed, true, 'the library signs with --key as the CLI does');
    await rawSignal(other, 'approve', claim);
    await waitFor(async () => (await audit(other)).filter((r) => r.outcome === 'approved').length === 2, { what: 'the signature accepted where it was made' });
    await rawSignal(s, 'approve', claim);
    await waitFor(async () => (await audit(s)).some((r) => r.outcome === 'refused' && /does not verify/.test(r.refusedReason ?? '')), { what: 'the replayed signature refused' });
    assert.equal(await state(s, 'long'), 'awaiting-approval');

    const ok = await cli(['approve', s, '--by', 'alice', '--key', path.join(keysDir, 'alice.key')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /as alice \(signed\)/);
    await waitFor(async () => (await state(s, 'long')) === 'completed', { what: 'the signed approval releasing long', timeoutMs: 120_000 });
    await waitFor(async () => (await state(other, 'long')) === 'completed', { what: 'the other session finishing', timeoutMs: 120_000 });
  });

  test('reject ends the waiting long-running experiments rejected, with the reason; the short one completes', async () => {
    const s = await waitingSession({ approvers: [{ name: 'alice' }] });
    oneLine(await cli(['reject', s, '--by', 'mallory', '--reason', 'no']), /not an approver/);
    const r = await cli(['reject', s, '--by', 'alice', '--reason', 'over budget']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Rejected long in session .*: over budget/);
    const summary = await h.env.client.workflow.getHandle(s).result();
    const byId = Object.fromEntries(summary.experiments.map((e: { id: string; state: string; reason: string | null }) => [e.id, e]));
    assert.equal(byId.long.state, 'rejected');
    assert.equal(byId.long.reason, 'rejected by alice: over budget');
    assert.equal(byId.short.state, 'completed');
    assert.equal(summary.audit.at(-1).outcome, 'rejected');
  });
});

/** The payload `approve --key` sends, signed by alice for `sessionId`, to replay elsewhere. */
function signedFor(sessionId: string) {
  const base = { kind: 'approve' as const, by: 'alice', at: new Date().toISOString(), note: 'n', estimates: [{ experimentId: 'long', estimatedDurationMs: 3 * 3_600_000 }] };
  return { by: base.by, note: base.note, at: base.at, estimates: base.estimates, signature: signClaim(path.join(keysDir, 'alice.key'), sessionId, base) };
}
