/**
 * `resumeFrom` reaches only the session's own experiments unless the session's policy allows
 * others (allowCrossSessionResume): the client rejects it before anything starts (at start and
 * on submit), the worker rejects a raw start that bypasses the client, an allowed source
 * resumes, and `resume` into a new session allows exactly its source session.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { crossSessionResumeProblem, resolvePolicy } from '../../src/shared/policy';
import { parseOrThrow, sessionPolicySchema } from '../../src/shared/schema';
import type { ExperimentSpec } from '../../src/shared/types';
import { startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from '../helpers/env';

const from = (experiment: string): ExperimentSpec => ({ id: 'b', trainer: 'mlp', params: { epochs: 3, samples: 200, stepDelayMs: 0 }, resumeFrom: { experiment } });

test('the rule, without a server: own session always, others only when the policy allows them', () => {
  assert.equal(crossSessionResumeProblem(from('s/a'), 's', undefined), undefined);
  assert.equal(crossSessionResumeProblem({ id: 'x', trainer: 'mlp' }, 's', false), undefined, 'no resumeFrom');
  assert.match(crossSessionResumeProblem(from('t/a'), 's', undefined) ?? '', /^resumeFrom\.experiment: expected an experiment of session "s", received "t\/a" \(.*allowCrossSessionResume\)$/);
  assert.ok(crossSessionResumeProblem(from('t/a'), 's', false));
  assert.ok(crossSessionResumeProblem(from('t/a'), 's', ['u']));
  assert.equal(crossSessionResumeProblem(from('t/a'), 's', ['u', 't']), undefined);
  assert.equal(crossSessionResumeProblem(from('t/a'), 's', true), undefined);
  assert.throws(() => parseOrThrow(sessionPolicySchema, { allowCrossSessionResume: 'yes' }, 'policy'), /^InvalidInputError: policy\.allowCrossSessionResume: /);
  assert.throws(() => parseOrThrow(sessionPolicySchema, { allowCrossSessionResume: ['../x'] }, 'policy'), /^InvalidInputError: policy\.allowCrossSessionResume\[0\]: expected/);
  assert.equal('allowCrossSessionResume' in resolvePolicy({}), false, 'absent unless set, so recorded policies keep their shape');
});

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('resume-policy');
  w = await startWorker(h, { taskQueue });
  const source = await w.client.startSession({ sessionId: 'rp-src', experiments: [{ id: 'a', trainer: 'mlp', params: { epochs: 2, samples: 200, stepDelayMs: 0 } }] });
  assert.equal((await source.result()).experiments[0].state, 'completed');
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

test('the client rejects another session\'s source at start and on submit, naming the field', async () => {
  await assert.rejects(w.client.startSession({ sessionId: 'rp-denied', experiments: [from('rp-src/a')] }), {
    name: 'InvalidInputError',
    message: /^experiments\[0\]\.resumeFrom\.experiment: expected an experiment of session "rp-denied", received "rp-src\/a"/,
  });
  const open = await w.client.startSession({ sessionId: 'rp-open', experiments: [], keepOpen: true });
  try {
    await assert.rejects(w.client.addExperiments('rp-open', [from('rp-src/a')]), { message: /^experiments\[0\]\.resumeFrom\.experiment: expected an experiment of session "rp-open"/ });
  } finally {
    await open.cancel();
  }
});

test('a raw start that bypasses the client fails on the worker, non-retryably, before reading the source', async () => {
  const handle = await h.env.client.workflow.start('sessionWorkflow', {
    workflowId: 'rp-raw',
    taskQueue,
    args: [{ sessionId: 'rp-raw', policy: resolvePolicy({}), experiments: [from('rp-src/a')] }],
  });
  const [e] = ((await handle.result()) as { experiments: { state: string; reason: string; resumedFrom: number | null }[] }).experiments;
  assert.equal(e.state, 'failed');
  assert.match(e.reason, /resumeFrom\.experiment: expected an experiment of session "rp-raw", received "rp-src\/a"/);
  assert.equal(e.resumedFrom, null);
  const history = await h.env.client.workflow.getHandle('rp-raw:b').fetchHistory();
  const failure = history.events?.find((ev) => ev.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes?.failure;
  assert.deepEqual([failure?.applicationFailureInfo?.type, failure?.applicationFailureInfo?.nonRetryable], ['CrossSessionResume', true]);
});

test('a policy that allows the source session resumes from it; `resume` allows exactly its source', async () => {
  const allowed = await w.client.startSession({ sessionId: 'rp-allowed', policy: { allowCrossSessionResume: ['rp-src'] }, experiments: [from('rp-src/a')] });
  const [e] = (await allowed.result()).experiments;
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.resumedFrom, 2, 'resumed from the source\'s final checkpoint');

  const resumed = await w.client.resume('rp-src:a');
  assert.equal(resumed.sessionId, 'rp-src-resume-1');
  const snap = await w.client.waitForSession(resumed.sessionId);
  assert.deepEqual(snap.policy.allowCrossSessionResume, ['rp-src']);
  assert.equal(snap.experiments[0].state, 'completed', snap.experiments[0].reason ?? '');
});
