/**
 * Approval once per session, and the two timeout modes, against the real dev server.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import type { SessionSnapshot } from '../../src/shared/definitions';
import { approvalQuery, sessionStatusQuery } from '../../src/shared/definitions';
import {
  durationSeconds,
  logLines,
  startHarness,
  startWorker,
  trainingActivitySchedules,
  uniqueQueue,
  waitFor,
  type Harness,
  type RunningWorker,
} from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('approval') });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

const slow = { epochs: 3, samples: 256, batchSize: 32, stepDelayMs: 60 }; // 8 steps × 60 ms ≈ 0.5 s per epoch
const row = (snap: SessionSnapshot, id: string) => {
  const found = snap.experiments.find((e) => e.id === id);
  assert.ok(found, `row ${id}`);
  return found;
};

test('approval-once: bounded runs, long-running waits, one approval releases all and later ones start at once', async () => {
  const sessionId = 'approval-once';
  const handle = await w.client.startSession({
    sessionId,
    // defaultTimeout is shorter than the long-running experiments' work: only no-timeout mode lets them finish.
    policy: { defaultTimeout: '1s', longRunningThreshold: '1h', heartbeatTimeout: '10s', maxConcurrent: 4 },
    experiments: [
      { id: 'long-flag', trainer: 'mlp', params: slow, longRunning: true },
      { id: 'long-estimate', trainer: 'mlp', params: slow, estimatedDuration: '3h' },
      { id: 'short', trainer: 'mlp', params: { epochs: 1, samples: 64 } },
    ],
  });

  const waiting = await waitFor(
    async () => {
      const snap = await handle.query(sessionStatusQuery);
      return row(snap, 'short').state === 'completed' ? snap : undefined;
    },
    { what: 'the bounded experiment to complete' },
  );
  assert.equal(row(waiting, 'long-flag').state, 'awaiting-approval');
  assert.equal(row(waiting, 'long-estimate').state, 'awaiting-approval');
  assert.equal(waiting.state, 'awaiting-approval');
  assert.deepEqual(waiting.approval, { required: true, approved: false, by: null, at: null, note: null });

  const before = Date.now();
  await w.client.approve(sessionId, { by: 'alice', note: 'budget ok' });
  await waitFor(async () => row(await handle.query(sessionStatusQuery), 'long-flag').state === 'running', { what: 'long-flag to start' });
  const { added } = { added: await w.client.addExperiments(sessionId, [{ id: 'long-late', trainer: 'mlp', params: slow, longRunning: true }]) };
  assert.deepEqual(added, ['long-late']);

  const summary = await handle.result();
  assert.equal(summary.state, 'completed');
  const expected = runMlpBare(parseMlpParams(slow)).modelSha256;
  for (const id of ['long-flag', 'long-estimate', 'long-late']) {
    const e = row(summary, id);
    assert.equal(e.state, 'completed', `${id} completed`);
    assert.equal(e.timeoutMode, 'none', `${id} ran in no-timeout mode`);
    assert.equal(e.result?.modelSha256, expected);
  }
  assert.equal(row(summary, 'short').timeoutMode, 'bounded');
  // Each long-running experiment trained for longer than defaultTimeout (1s) and still completed.
  assert.ok(Date.now() - before > 1500, 'the approved experiments outlived defaultTimeout');

  // The late one never waited: no "awaiting approval" log line names it.
  const late = logLines.filter((l) => l.msg === 'experiment awaiting approval' && l.experimentId === 'long-late');
  assert.equal(late.length, 0);

  // Timeout modes as scheduled on the server: bounded has start-to-close = defaultTimeout;
  // no-timeout has the documented ten-year value; both keep the heartbeat timeout.
  const [bounded] = await trainingActivitySchedules(h, `${sessionId}:short`);
  assert.equal(durationSeconds(bounded.startToCloseTimeout), 1);
  // The server caps a heartbeat timeout at the start-to-close timeout (here 1s < 10s).
  assert.equal(durationSeconds(bounded.heartbeatTimeout), 1);
  for (const id of ['long-flag', 'long-estimate', 'long-late']) {
    const [none] = await trainingActivitySchedules(h, `${sessionId}:${id}`);
    assert.equal(durationSeconds(none.startToCloseTimeout), 3650 * 86400, `${id} start-to-close`);
    assert.equal(durationSeconds(none.heartbeatTimeout), 10, `${id} heartbeat timeout`);
  }

  const { approval, audit } = await handle.query(approvalQuery);
  assert.equal(audit.length, 1, 'exactly one approval record');
  assert.equal(approval?.by, 'alice');
  assert.equal(approval?.note, 'budget ok');
  // The client approves through the approveSession update (the Web UI's path is the signal).
  assert.equal(approval?.source, 'update');
  assert.equal(approval?.outcome, 'approved');
  assert.ok(approval && !Number.isNaN(Date.parse(approval.at)));
  assert.deepEqual(
    approval?.estimates?.map((e) => e.experimentId).sort(),
    ['long-estimate', 'long-flag'],
    'the record names the experiments it released (long-late was added after the approval)',
  );
  assert.equal(summary.approval.by, 'alice');
});

test('a repeated approval is idempotent and appended to the audit', async () => {
  const sessionId = 'approval-twice';
  const handle = await w.client.startSession({
    sessionId,
    keepOpen: true,
    experiments: [{ id: 'long', trainer: 'mlp', params: { epochs: 1, samples: 64 }, longRunning: true }],
  });
  await w.client.approve(sessionId, { by: 'alice' });
  await w.client.approve(sessionId, { by: 'bob', note: 'me too' });
  const { approval, audit } = await waitFor(async () => {
    const a = await handle.query(approvalQuery);
    return a.audit.length === 2 ? a : undefined;
  }, { what: 'two audit records' });
  assert.equal(approval?.by, 'alice', 'the first approval stands');
  assert.deepEqual(audit.map((r) => r.by), ['alice', 'bob']);
  await handle.signal('close');
  const summary = await handle.result();
  assert.equal(summary.experiments[0].state, 'completed');
});

test('a pre-approved session records who approved it, and long-running experiments never wait', async () => {
  const handle = await w.client.startSession({
    sessionId: 'pre-approved',
    preApproved: { by: 'carol', note: 'nightly sweep' },
    experiments: [{ id: 'long', trainer: 'mlp', params: { epochs: 1, samples: 64 }, longRunning: true }],
  });
  const summary = await handle.result();
  assert.equal(summary.experiments[0].state, 'completed');
  assert.equal(summary.experiments[0].timeoutMode, 'none');
  assert.equal(summary.audit.length, 1);
  assert.equal(summary.audit[0].source, 'pre-approved');
  assert.equal(summary.audit[0].by, 'carol');
  assert.equal(summary.approval.note, 'nightly sweep');
});

test('approvalTimeout rejects experiments still waiting, with the reason; the session goes on', async () => {
  const handle = await w.client.startSession({
    sessionId: 'approval-timeout',
    policy: { approvalTimeout: '2s' },
    experiments: [
      { id: 'long', trainer: 'mlp', params: { epochs: 1, samples: 64 }, longRunning: true },
      { id: 'short', trainer: 'mlp', params: { epochs: 1, samples: 64 } },
    ],
  });
  const summary = await handle.result();
  const long = row(summary, 'long');
  assert.equal(long.state, 'rejected');
  assert.match(long.reason ?? '', /approvalTimeout 2s/);
  assert.equal(row(summary, 'short').state, 'completed');
  assert.equal(summary.state, 'failed', 'not every experiment completed');
});
