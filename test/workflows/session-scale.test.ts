/**
 * Sessions of thousands of experiments (issue #15), on the real dev server: 2,000 tiny
 * experiments continue as new several times, every one completes exactly once (read back
 * through visibility, ExperimentsClient.allExperiments, not only counted), the summary's counts
 * are right while its rows stay bounded, and the largest payload anywhere in the session's
 * history chain (start input, each continue-as-new input, child inputs and results, the
 * completion result) and the largest status-query answer stay under 512 KB.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { temporal } from '@temporalio/proto';
import { sessionStatusQuery, type SessionSnapshot } from '../../src/shared/definitions';
import { KEPT_ROWS, MAX_PAGE_LIMIT, SUMMARY_ROWS } from '../../src/workflows/session/fold';
import { startHarness, startWorker, uniqueQueue, waitFor, type Harness } from '../helpers/env';
import { assertEachCompletedOnce, payloadSizes, tinyMlpSpecs } from '../helpers/sessions';

const COUNT = 2000;
const LIMIT = 512 * 1024;

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.teardown();
});

test(`a session of ${COUNT} experiments stays bounded across continue-as-new`, { timeout: 20 * 60_000 }, async () => {
  const taskQueue = uniqueQueue('scale');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 50 });
  try {
    const sessionId = `scale-${process.pid}`;
    const experiments = tinyMlpSpecs(COUNT, 't');
    const started = Date.now();
    const handle = await w.client.startSession({ sessionId, policy: { maxConcurrent: 50 }, experiments, continueAsNewAfterEvents: 2000 });

    // Status-query answers while it runs: old clients (no argument) and the largest page.
    let largestQuery = 0;
    let queries = 0;
    // Before the first continue-as-new the session holds every row: the client reads them all,
    // 200 per answer (the progress view, approval prompts and the report need every held row).
    const whole = await w.client.sessionSnapshot(sessionId);
    assert.ok(whole.page && whole.page.held > MAX_PAGE_LIMIT, `the session holds more rows than one answer (${whole.page?.held})`);
    assert.equal(whole.experiments.length, whole.page.held, 'sessionSnapshot without a page returns every held row');
    assert.equal(new Set(whole.experiments.map((e) => e.id)).size, whole.experiments.length, 'each held row once');
    let done = false;
    const result = handle.result().finally(() => (done = true));
    const sampler = (async () => {
      while (!done) {
        for (const page of [undefined, { offset: 0, limit: MAX_PAGE_LIMIT }]) {
          try {
            const snap: SessionSnapshot = page ? await handle.query(sessionStatusQuery, page) : await handle.query(sessionStatusQuery);
            largestQuery = Math.max(largestQuery, Buffer.byteLength(JSON.stringify(snap)));
            queries++;
            assert.ok(snap.experiments.length <= MAX_PAGE_LIMIT, `a page holds at most ${MAX_PAGE_LIMIT} rows`);
            assert.equal(snap.total, COUNT, 'the answer counts every experiment, folded ones included');
          } catch (err) {
            if (!/Workflow execution already completed|not found|query/i.test((err as Error).message)) throw err;
          }
        }
        await new Promise((r) => setTimeout(r, 2_000));
      }
    })();
    const summary = await result;
    await sampler;
    const elapsed = Date.now() - started;

    assert.equal(summary.state, 'completed');
    assert.ok(summary.runs >= 3, `expected at least 3 continue-as-new runs, got ${summary.runs}`);
    assert.equal(summary.completed, COUNT);
    assert.equal(summary.failed, 0);
    assert.equal(summary.total, COUNT);
    assert.deepEqual(summary.counts, { completed: COUNT });
    assert.equal(summary.truncated, true);
    assert.ok(summary.experiments.length <= SUMMARY_ROWS, `the summary holds at most ${SUMMARY_ROWS} rows, got ${summary.experiments.length}`);
    assert.ok(summary.experiments.length >= KEPT_ROWS, 'the summary still shows the kept rows');
    assert.ok(queries > 0, 'the status query was sampled while the session ran');

    // Every experiment through visibility: each id once, completed, run once, its own model.
    await assertEachCompletedOnce(w.client, sessionId, experiments, { pageSize: 500, timeoutMs: 60_000 });
    assert.deepEqual(await w.client.experimentCounts(sessionId), { completed: COUNT });
    const second = await w.client.experimentsPage(sessionId, { page: 2, pageSize: 300 });
    assert.equal(second.total, COUNT);
    assert.equal(second.experiments.length, 300);

    // Every payload of every run of the chain.
    const runs: string[] = [];
    for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) runs.push(wf.runId);
    assert.equal(runs.length, summary.runs + 1, 'visibility lists every run of the chain');
    let largestPayload = 0;
    let carries = 0;
    let largestCarry = 0;
    for (const runId of runs) {
      const history = await h.env.client.workflow.getHandle(sessionId, runId).fetchHistory();
      for (const event of history.events ?? []) {
        const sizes = payloadSizes(event as temporal.api.history.v1.IHistoryEvent);
        largestPayload = Math.max(largestPayload, ...sizes);
        const can = event.workflowExecutionContinuedAsNewEventAttributes;
        if (can) {
          carries++;
          largestCarry = Math.max(largestCarry, ...payloadSizes(can.input));
        }
      }
    }
    assert.equal(carries, summary.runs, 'each run but the last continued as new');
    console.log(
      `${COUNT} experiments in ${summary.runs + 1} runs, ${(elapsed / 1000).toFixed(1)} s; largest payload ${largestPayload} bytes (largest carry ${largestCarry}), largest status answer ${largestQuery} bytes (${queries} queries)`,
    );
    assert.ok(largestPayload < LIMIT, `largest payload ${largestPayload} bytes, expected under ${LIMIT}`);
    assert.ok(largestQuery < LIMIT, `largest status answer ${largestQuery} bytes, expected under ${LIMIT}`);
  } finally {
    await w.stop();
  }
});

test('an id folded away at continue-as-new is still refused by addExperiments; a new one is added', { timeout: 10 * 60_000 }, async () => {
  const taskQueue = uniqueQueue('fold-ids');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 20 });
  try {
    const sessionId = `fold-ids-${process.pid}`;
    const COUNT_SMALL = 120;
    const experiments = tinyMlpSpecs(COUNT_SMALL, 'k');
    const handle = await w.client.startSession({ sessionId, policy: { maxConcurrent: 20 }, experiments, keepOpen: true, continueAsNewAfterEvents: 400 });
    await waitFor(
      async () => {
        const snap = await handle.query(sessionStatusQuery);
        return snap.runs >= 1 && snap.counts?.completed === COUNT_SMALL ? snap : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1_000, what: `${sessionId} to continue as new and complete its ${COUNT_SMALL} experiments` },
    );
    const refusal = await w.client.addExperiments(sessionId, [{ id: 'k-000', trainer: 'mlp', params: { epochs: 1, samples: 32, batchSize: 32, seed: 0 } }]).then(
      () => undefined,
      (err: Error & { cause?: Error }) => `${err.message} ${err.cause?.message ?? ''}`,
    );
    assert.match(refusal ?? 'accepted', /experiments\[0\]\.id: expected an id this session has not used, received "k-000"/);
    assert.deepEqual(await w.client.addExperiments(sessionId, [{ id: 'k-new', trainer: 'mlp', params: { epochs: 1, samples: 32, batchSize: 32, seed: 7 } }]), ['k-new']);
    await waitFor(async () => ((await handle.query(sessionStatusQuery)).counts?.completed === COUNT_SMALL + 1 ? true : undefined), { timeoutMs: 120_000, what: 'k-new to complete' });
    await handle.signal('close');
    const summary = await handle.result();
    assert.equal(summary.state, 'completed');
    assert.equal(summary.total, COUNT_SMALL + 1);
    assert.equal(summary.completed, COUNT_SMALL + 1);
    const runsOfK000 = [];
    for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}:k-000'` })) runsOfK000.push(wf.runId);
    assert.equal(runsOfK000.length, 1, 'the refused id never started a second run');
  } finally {
    await w.stop();
  }
});
