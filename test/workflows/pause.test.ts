/**
 * Pausing a whole session on a real dev server with the real `mlp` trainer: the running trials
 * end their training invocations with a checkpoint, no trial starts for several seconds, and
 * after unpause every trial completes bit-identical to an uninterrupted run (runMlpBare).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { sessionStatusQuery } from '../../src/shared/definitions';
import { storeKey } from '../../src/shared/ids';
import type { ExperimentSpec } from '../../src/shared/types';
import { startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('pause') });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

const pendingActivities = async (workflowId: string) => (await h.env.client.workflow.getHandle(workflowId).describe()).raw.pendingActivities?.length ?? 0;
const newestEpoch = async (sessionId: string, id: string) => (await w.client.store.list(storeKey(sessionId, id)))[0]?.epoch ?? 0;

test('pause: running trials checkpoint and stop, none starts; unpause: all complete bit-identical to an unpaused run', async () => {
  const sessionId = 'paused-sweep';
  const specs: ExperimentSpec[] = [1, 2, 3, 4].map((seed) => ({ id: `t${seed}`, trainer: 'mlp', params: { epochs: 5, samples: 256, batchSize: 32, stepDelayMs: 60, seed } }));
  const handle = await w.client.startSession({ sessionId, policy: { maxConcurrent: 2, search: { metric: 'loss' } }, experiments: specs });
  await waitFor(async () => (await newestEpoch(sessionId, 't1')) >= 1 && (await newestEpoch(sessionId, 't2')) >= 1, { what: 'the first two trials to checkpoint an epoch', timeoutMs: 120_000 });

  await handle.signal('pause');
  await waitFor(async () => (await handle.query(sessionStatusQuery)).paused === true, { what: 'the session to be paused' });
  await waitFor(async () => (await pendingActivities(`${sessionId}:t1`)) + (await pendingActivities(`${sessionId}:t2`)) === 0, { what: 'the running trials to end their training invocations', timeoutMs: 60_000 });
  const at = { t1: await w.client.store.list(storeKey(sessionId, 't1')), t2: await w.client.store.list(storeKey(sessionId, 't2')) };
  assert.ok(at.t1.length > 0 && at.t2.length > 0, 'each stopped with a checkpoint');
  for (const id of ['t1', 't2']) {
    assert.equal((await h.env.client.workflow.getHandle(`${sessionId}:${id}`).describe()).status.name, 'RUNNING', `${id} waits, paused, before its last epoch`);
  }

  // For several seconds: nothing trains and nothing starts.
  const until = Date.now() + 4000;
  while (Date.now() < until) {
    const snap = await handle.query(sessionStatusQuery);
    assert.deepEqual(snap.experiments.map((e) => e.state), ['running', 'running', 'queued', 'queued'], 'the queued trials do not start');
    assert.equal((await pendingActivities(`${sessionId}:t1`)) + (await pendingActivities(`${sessionId}:t2`)), 0, 'the paused trials do not train');
    assert.deepEqual((await w.client.store.list(storeKey(sessionId, 't1'))).map((p) => p.checkpointId), at.t1.map((p) => p.checkpointId), 'no new checkpoint while paused');
    await new Promise((r) => setTimeout(r, 250));
  }

  const unpaused = await w.client.unpause(sessionId);
  assert.deepEqual([...unpaused.experiments].sort(), ['t1', 't2']);
  const summary = await handle.result();
  assert.equal(summary.state, 'completed');
  for (const [i, e] of summary.experiments.entries()) {
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(specs[i].params)).modelSha256, `${e.id} is bit-identical to an uninterrupted run`);
  }
  assert.ok(summary.experiments.slice(0, 2).every((e) => e.resumedFrom !== null), 'the paused trials resumed from their checkpoints');
  assert.equal(summary.approval.required, false);
});

test('pause of a session that has ended is refused', async () => {
  const handle = await w.client.startSession({ sessionId: 'paused-cancelled', keepOpen: true, experiments: [] });
  await handle.cancel();
  await assert.rejects(handle.result());
  await assert.rejects(w.client.pause('paused-cancelled'), /completed|closed|not found/i);
});
