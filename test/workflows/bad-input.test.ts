/**
 * Bad input is rejected before anything starts, with a message naming the field, what was
 * expected and what was received; input that bypasses the client fails the activity
 * non-retryably with a typed ApplicationFailure.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { InvalidInputError } from '../../src/client';
import { resolvePolicy } from '../../src/shared/policy';
import { startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('bad-input');
  w = await startWorker(h, { taskQueue });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

const ok = { id: 'ok', trainer: 'mlp', params: { epochs: 1 } };
const cases: { name: string; policy?: object; experiments: unknown[]; field: RegExp; received: RegExp }[] = [
  { name: 'unknown trainer', experiments: [{ id: 'a', trainer: 'xgboost' }], field: /^experiments\[0\]\.trainer: expected one of mlp/, received: /received "xgboost"/ },
  { name: 'malformed duration', policy: { heartbeatTimeout: '5 parsecs' }, experiments: [ok], field: /^policy\.heartbeatTimeout: expected a duration/, received: /received "5 parsecs"/ },
  { name: 'malformed estimatedDuration', experiments: [{ ...ok, estimatedDuration: 'soon' }], field: /^experiments\[0\]\.estimatedDuration: expected a duration/, received: /received "soon"/ },
  { name: 'negative count', policy: { maxConcurrent: -2 }, experiments: [ok], field: /^policy\.maxConcurrent: /, received: /received -2/ },
  { name: 'non-integer count', policy: { checkpointsToKeep: 1.5 }, experiments: [ok], field: /^policy\.checkpointsToKeep: /, received: /received 1\.5/ },
  { name: 'negative trainer param', experiments: [{ id: 'a', trainer: 'mlp', params: { epochs: -3 } }], field: /^experiments\[0\]\.params\.epochs: expected a positive integer/, received: /received -3/ },
  { name: 'id with /', experiments: [{ ...ok, id: 'a/b' }], field: /^experiments\[0\]\.id: expected/, received: /received "a\/b"/ },
  { name: 'id with \\', experiments: [{ ...ok, id: 'a\\b' }], field: /^experiments\[0\]\.id: expected/, received: /received "a\\\\b"/ },
  { name: 'id with ..', experiments: [{ ...ok, id: '..' }], field: /^experiments\[0\]\.id: expected/, received: /received "\.\."/ },
  { name: 'id with a control character', experiments: [{ ...ok, id: 'a\u0007b' }], field: /^experiments\[0\]\.id: expected/, received: /received "a\\u0007b"/ },
  { name: 'duplicate ids', experiments: [ok, { ...ok }], field: /^experiments\[1\]\.id: expected a unique id/, received: /received duplicate "ok"/ },
  { name: 'params over the size cap', experiments: [{ ...ok, params: { blob: 'x'.repeat(70_000) } }], field: /^experiments\[0\]\.params: expected at most 65536 bytes/, received: /received 700\d\d/ },
];

for (const c of cases) {
  test(`bad input is rejected before anything starts: ${c.name}`, async () => {
    const sessionId = `bad-${c.name.replace(/[^a-z]+/g, '-')}`;
    await assert.rejects(
      w.client.startSession({ sessionId, policy: c.policy as never, experiments: c.experiments }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidInputError, `InvalidInputError, got ${String(err)}`);
        assert.match(err.message, c.field);
        assert.match(err.message, c.received);
        return true;
      },
    );
    const started = [];
    for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) started.push(wf.workflowId);
    assert.deepEqual(started, [], 'no workflow was started');
  });
}

test('a bad session id is rejected too', async () => {
  await assert.rejects(w.client.startSession({ sessionId: '../etc', experiments: [ok] }), /^InvalidInputError: session: expected .* received "\.\.\/etc"/);
});

test('bad params that bypass the client fail the activity non-retryably with a typed ApplicationFailure', async () => {
  // Started by workflow type, as another client or an old CLI might: no client-side validation.
  const handle = await h.env.client.workflow.start('sessionWorkflow', {
    workflowId: 'bypass',
    taskQueue,
    args: [{ sessionId: 'bypass', policy: resolvePolicy({}), experiments: [{ id: 'x', trainer: 'mlp', params: { epochs: 'many' } }] }],
  });
  const summary = (await handle.result()) as { experiments: { state: string; reason: string; attempt: number }[] };
  assert.equal(summary.experiments[0].state, 'failed');
  assert.match(summary.experiments[0].reason, /params\.epochs: expected a positive integer/);
  const child = h.env.client.workflow.getHandle('bypass:x');
  await assert.rejects(child.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    return true;
  });
  const history = await child.fetchHistory();
  const failed = history.events?.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes;
  assert.equal(failed?.failure?.applicationFailureInfo?.type, 'InvalidParams');
  assert.equal(failed?.failure?.applicationFailureInfo?.nonRetryable, true);
  const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
  const started = history.events?.find((e) => e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled?.eventId));
  assert.equal(started?.activityTaskStartedEventAttributes?.attempt, 1, 'not retried');
});
