/**
 * Cancellation (the interrupted flag), resuming as a new run, and the bounded-mode limit,
 * against the real dev server with an in-process worker.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { sessionHintsQuery } from '../../src/shared/definitions';
import type { ResumeHints } from '../../src/shared/types';
import { logLines, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('cancel') });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 3 };

test('cancel: the loop checkpoints and stops, the experiment is interrupted and Canceled, hints name the checkpoint, resume is exact', async () => {
  const session = await w.client.startSession({ sessionId: 'cancel', experiments: [{ id: 'e', trainer: 'mlp', params }] });
  const workflowId = 'cancel:e';
  const live = await waitFor(
    async () => {
      const s = await w.client.status(workflowId);
      return s.kind === 'experiment' && s.epoch >= 2 ? s : undefined;
    },
    { what: 'the experiment to reach epoch 2' },
  );
  assert.equal(live.kind, 'experiment');
  const epochInProgress = live.epoch;
  await w.client.cancel(workflowId, 'wrong learning rate');

  const handle = h.env.client.workflow.getHandle(workflowId);
  await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
  assert.equal((await handle.describe()).status.name, 'CANCELLED', 'the Temporal status tells the truth');

  const status = await w.client.status(workflowId);
  assert.equal(status.kind, 'experiment');
  assert.equal(status.state, 'interrupted');
  assert.equal(status.reason, 'wrong learning rate');
  assert.ok(status.latestCheckpoint, 'a checkpoint was saved');
  assert.ok(status.latestCheckpoint.epoch >= epochInProgress, `checkpoint epoch ${status.latestCheckpoint.epoch} ≥ epoch in progress ${epochInProgress}`);
  const flag = logLines.find((l) => l.msg === 'interrupted: checkpointing at the next step boundary' && l.workflowId === workflowId);
  assert.equal(flag?.reason, 'cancelled');

  const hints = (await w.client.hints(workflowId)) as ResumeHints;
  assert.equal(hints.latestCheckpoint?.id, status.latestCheckpoint.id);
  assert.equal(hints.resumeCommand, `experiments resume ${workflowId}`);
  assert.equal(hints.epochsRemaining, params.epochs - status.latestCheckpoint.epoch);
  assert.deepEqual(hints.warnings, []);

  // The session records the interruption too (a Canceled child returns nothing; it reports by signal).
  const summary = await session.result();
  const [sessionHints] = await session.query(sessionHintsQuery);
  assert.equal(sessionHints.latestCheckpoint?.id, status.latestCheckpoint.id, 'the session hints query names it too');
  assert.equal(sessionHints.resumeCommand, hints.resumeCommand);
  assert.equal(summary.experiments[0].state, 'interrupted');
  assert.equal(summary.experiments[0].latestCheckpoint?.id, status.latestCheckpoint.id);

  const resumed = await w.client.resume(workflowId);
  const resumedSummary = await w.client.waitForSession(resumed.sessionId);
  const r = resumedSummary.experiments[0];
  assert.equal(r.state, 'completed');
  assert.equal(r.resumedFrom, status.latestCheckpoint.epoch);
  assert.equal(r.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'same model as an uninterrupted run');
});

test('cancelling a session interrupts running experiments (each checkpoints) and marks queued ones cancelled', async () => {
  const handle = await w.client.startSession({
    sessionId: 'cancel-session',
    policy: { maxConcurrent: 1 },
    experiments: [
      { id: 'running', trainer: 'mlp', params },
      { id: 'queued', trainer: 'mlp', params },
    ],
  });
  await waitFor(
    async () => {
      const s = await w.client.status('cancel-session:running');
      return s.kind === 'experiment' && s.latestCheckpoint !== null;
    },
    { what: 'the first experiment to checkpoint' },
  );
  await w.client.cancel('cancel-session');
  await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
  const snap = await w.client.sessionSnapshot('cancel-session');
  assert.equal(snap.state, 'cancelled');
  const [running, queued] = snap.experiments;
  assert.equal(running.state, 'interrupted');
  assert.ok(running.latestCheckpoint, 'the running experiment checkpointed');
  assert.equal(queued.state, 'cancelled');
  assert.equal((await h.env.client.workflow.getHandle('cancel-session:running').describe()).status.name, 'CANCELLED');
});

test('bounded timeout: a bounded experiment past defaultTimeout ends timed-out with its checkpoint in the hints; approved, it completes', async () => {
  const work = { epochs: 8, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 9 }; // ≈ 5 s of work
  const handle = await w.client.startSession({
    sessionId: 'bounded',
    policy: { defaultTimeout: '2s', heartbeatTimeout: '10s' },
    preApproved: { by: 'ops' },
    experiments: [
      { id: 'bounded', trainer: 'mlp', params: work },
      { id: 'approved', trainer: 'mlp', params: work, longRunning: true },
    ],
  });
  const summary = await handle.result();
  const [bounded, approved] = summary.experiments;
  assert.equal(bounded.state, 'timed-out');
  assert.match(bounded.reason ?? '', /start-to-close limit of 2s/);
  assert.ok(bounded.latestCheckpoint, 'the timed-out experiment has a checkpoint');
  assert.equal(bounded.attempt, 1, 'a timeout is not retried');
  const hints = (await w.client.hints('bounded:bounded')) as ResumeHints;
  assert.equal(hints.latestCheckpoint?.id, bounded.latestCheckpoint.id);
  assert.ok(hints.resumeCommand);
  assert.equal(approved.state, 'completed');
  assert.equal(approved.result?.modelSha256, runMlpBare(parseMlpParams(work)).modelSha256);
  assert.equal((await h.env.client.workflow.getHandle('bounded:bounded').describe()).status.name, 'FAILED');
});
