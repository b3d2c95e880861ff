/**
 * End-to-end smoke test against the real dev server: a worker with the plugin runs a session
 * whose experiment's training activity heartbeats; the result is checked, and the pino output
 * of the run holds workflow and activity lines carrying workflowId.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runMlpBare, parseMlpParams } from '../src/activities/trainers/mlp';
import { logLines, startHarness, startWorker, uniqueQueue, waitFor, type Harness } from './helpers/env';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.teardown();
});

test('a session runs an mlp experiment end to end, with pino logs from workflow and activity', async () => {
  const taskQueue = uniqueQueue('smoke');
  const w = await startWorker(h, { taskQueue });
  try {
    const params = { epochs: 3, samples: 256, seed: 5 };
    const handle = await w.client.startSession({ sessionId: `smoke-${process.pid}`, experiments: [{ id: 'mlp-a', trainer: 'mlp', params }] });
    const summary = await handle.result();
    assert.equal(summary.state, 'completed');
    const [exp] = summary.experiments;
    assert.equal(exp.state, 'completed');
    assert.equal(exp.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256);
    assert.equal(exp.latestCheckpoint?.epoch, 3);
    assert.equal(exp.attempt, 1);

    // Workflow log calls are sink calls, delivered after the activation completes.
    const workflowLine = await waitFor(() => logLines.find((l) => l.msg === 'experiment ended' && l.workflowId === exp.workflowId), {
      timeoutMs: 10_000,
      what: 'the workflow log line "experiment ended" with workflowId',
    });
    assert.equal(workflowLine.sdkComponent, 'workflow');
    const activityLines = logLines.filter((l) => l.msg === 'checkpoint saved' && l.workflowId === exp.workflowId);
    assert.equal(activityLines.length, 3, 'one checkpoint line per epoch');
    for (const line of activityLines) {
      assert.equal(line.experimentId, 'mlp-a');
      assert.equal(line.attempt, 1);
      assert.equal(typeof line.epoch, 'number');
    }
  } finally {
    await w.stop();
  }
});
