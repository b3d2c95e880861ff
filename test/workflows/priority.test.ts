/**
 * Task priority against the real dev server (started with matching.useNewMatcher and
 * matching.enableFairness, and one partition per task queue): one activity slot, a bulk sweep
 * whose experiments queue behind it, then a priority-1 session. Its experiment trains next,
 * ahead of the bulk ones still queued.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dynamicConfigArgs } from '../../src/server-features';
import { experimentWorkflowId } from '../../src/shared/ids';
import { logLines, startHarness, startWorker, trainingActivitySchedules, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  // One partition per task queue: the matcher orders by priority within a partition, and with
  // the default four a poll may be answered from a partition that holds only bulk tasks.
  h = await startHarness({ server: { extraArgs: dynamicConfigArgs({ 'matching.numTaskqueueReadPartitions': 1, 'matching.numTaskqueueWritePartitions': 1 }) } });
  w = await startWorker(h, { taskQueue: uniqueQueue('priority'), maxConcurrentActivities: 1 });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

/** Experiment ids whose training activity has logged its start, in start order. */
function trainingStarts(sessionIds: readonly string[]): string[] {
  return logLines
    .filter((l) => l.msg === 'starting training' && sessionIds.includes(String(l.sessionId)))
    .map((l) => `${String(l.sessionId)}/${String(l.experimentId)}`);
}

test('priority: a priority-1 session trains ahead of a queued bulk sweep on one worker slot', async () => {
  const bulkIds = ['b1', 'b2', 'b3', 'b4', 'b5'];
  // 3 epochs × 8 steps × 250 ms ≈ 6 s each: long enough that the others wait in the backlog, even under load.
  const params = { epochs: 3, samples: 256, batchSize: 32, stepDelayMs: 250 };
  const bulk = await w.client.startSession({
    sessionId: 'prio-bulk',
    policy: { maxConcurrent: 10, defaultTimeout: '10m', heartbeatTimeout: '30s' },
    experiments: bulkIds.map((id) => ({ id, trainer: 'mlp', params })),
  });
  // Every bulk training activity is scheduled: one holds the slot, the rest are backlogged.
  await waitFor(async () => (await Promise.all(bulkIds.map((id) => trainingActivitySchedules(h, experimentWorkflowId('prio-bulk', id))))).every((s) => s.length > 0), {
    timeoutMs: 120_000,
    what: 'all bulk training activities to be scheduled',
  });

  const urgent = await w.client.startSession({
    sessionId: 'prio-urgent',
    policy: { priority: 1, defaultTimeout: '10m' },
    experiments: [{ id: 'u1', trainer: 'mlp', params: { epochs: 1, samples: 64 } }],
  });
  const [scheduled] = await waitFor(async () => trainingActivitySchedules(h, experimentWorkflowId('prio-urgent', 'u1')).then((s) => (s.length > 0 ? s : undefined)), {
    timeoutMs: 120_000,
    what: 'the urgent training activity to be scheduled',
  });
  // The priority reached the server on the activity itself, with the session id as fairness key.
  assert.equal(scheduled.priority?.priorityKey, 1);
  assert.equal(scheduled.priority?.fairnessKey, 'prio-urgent');
  const queuedBulk = bulkIds.map((id) => `prio-bulk/${id}`).filter((id) => !trainingStarts(['prio-bulk']).includes(id));
  assert.ok(queuedBulk.length >= 2, `expected at least two bulk experiments still queued when the urgent one was scheduled, got ${queuedBulk.join(', ')}`);

  const urgentSummary = await urgent.result();
  assert.equal(urgentSummary.completed, 1);
  const bulkSummary = await bulk.result();
  assert.equal(bulkSummary.completed, bulkIds.length);

  const order = trainingStarts(['prio-bulk', 'prio-urgent']);
  const urgentAt = order.indexOf('prio-urgent/u1');
  const overtaken = queuedBulk.filter((id) => order.indexOf(id) < urgentAt);
  assert.deepEqual(overtaken, [], `training start order ${order.join(', ')}: the priority-1 experiment must start before the bulk ones queued ahead of it`);
  // Bulk experiments carry no priority key (server default 3) and their own session as fairness key.
  const [bulkSchedule] = await trainingActivitySchedules(h, experimentWorkflowId('prio-bulk', 'b1'));
  assert.equal(bulkSchedule.priority?.priorityKey ?? 0, 0);
  assert.equal(bulkSchedule.priority?.fairnessKey, 'prio-bulk');
});
