/**
 * A session big enough to continue as new several times, on the real dev server: 300 tiny
 * experiments with a low event threshold. Every experiment must complete exactly once across
 * the runs (read back through visibility, ExperimentsClient.allExperiments, with its model
 * hash), the summary must count all of them (its rows are bounded, see session-scale.test.ts),
 * and the server must show the chain of runs.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startHarness, startWorker, uniqueQueue, waitFor, type Harness } from '../helpers/env';
import { assertEachCompletedOnce, tinyMlpSpecs } from '../helpers/sessions';

const COUNT = 300;

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.teardown();
});

test(`a session of ${COUNT} experiments continues as new and completes every one`, { timeout: 600_000 }, async () => {
  const taskQueue = uniqueQueue('can');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 20 });
  try {
    const sessionId = `can-${process.pid}`;
    const experiments = tinyMlpSpecs(COUNT, 'tiny');
    const started = Date.now();
    const handle = await w.client.startSession({ sessionId, policy: { maxConcurrent: 20 }, experiments, continueAsNewAfterEvents: 400 });
    // startSession is typed as a plain WorkflowHandle; the object is the one workflow.start returned.
    const firstRunId = handle.firstExecutionRunId;
    assert.ok(firstRunId, 'the start call returns the first run id');
    const summary = await handle.result();
    const elapsed = Date.now() - started;

    assert.equal(summary.state, 'completed');
    assert.ok(summary.runs >= 2, `expected at least 2 continue-as-new runs, got ${summary.runs}`);
    assert.equal(summary.total, COUNT);
    assert.deepEqual(summary.counts, { completed: COUNT });
    assert.equal(summary.completed, COUNT);
    assert.equal(summary.failed, 0);
    assert.ok(summary.experiments.length < COUNT && summary.truncated === true, 'the summary rows are bounded');
    assert.ok(summary.experiments.every((e) => e.state === 'completed'));
    // Every experiment, folded ones included, through the paging API (visibility): each once, its own model.
    await assertEachCompletedOnce(w.client, sessionId, experiments, { pageSize: 100, timeoutMs: 30_000 });

    // The server's view: the first run ended ContinuedAsNew, and the chain has runs + 1 executions.
    const first = await h.env.client.workflow.getHandle(sessionId, firstRunId).describe();
    assert.equal(first.status.name, 'CONTINUED_AS_NEW');
    const executions = await waitFor(
      async () => {
        const list = [];
        for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) list.push(wf.status.name);
        return list.length === summary.runs + 1 ? list : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: `${summary.runs + 1} executions of ${sessionId} in visibility` },
    );
    assert.equal(executions.filter((s) => s === 'COMPLETED').length, 1);
    assert.equal(executions.filter((s) => s === 'CONTINUED_AS_NEW').length, summary.runs);
    console.log(`${COUNT} experiments in ${summary.runs + 1} runs, ${(elapsed / 1000).toFixed(1)} s`);
  } finally {
    await w.stop();
  }
});
