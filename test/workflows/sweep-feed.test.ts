/**
 * Sweeps by reference on the real dev server (src/workflows/session/feed.ts): a session started
 * with a 300-point sweep gets the definition, not the points; it makes rows a window at a time,
 * counts the rest as queued, carries a cursor across continue-as-new, refuses an added id under
 * the sweep's stem while points are left, and runs every point exactly once with its own params.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { temporal } from '@temporalio/proto';
import { sessionStatusQuery, type SessionInput } from '../../src/shared/definitions';
import { expandSweep, type Sweep } from '../../src/shared/sweep';
import { TERMINAL_EXPERIMENT_STATES } from '../../src/shared/types';
import { feedWindow } from '../../src/workflows/session/feed';
import { startHarness, startWorker, uniqueQueue, waitFor, type Harness } from '../helpers/env';
import { assertEachCompletedOnce, type TinySpec } from '../helpers/sessions';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.teardown();
});

const tiny = { epochs: 1, samples: 32, batchSize: 32 };
const seeds = Array.from({ length: 100 }, (_, i) => i);
const sweep: Sweep = { idPrefix: 'sw', trainer: 'mlp', params: tiny, grid: { lr: [0.1, 0.05, 0.02], seed: seeds } };

test('a sweep passed by reference runs every point once, a window at a time, across continue-as-new', { timeout: 10 * 60_000 }, async () => {
  const taskQueue = uniqueQueue('feed');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 20 });
  try {
    const sessionId = `feed-${process.pid}`;
    const explicit = { id: 'solo', trainer: 'mlp', params: { ...tiny, seed: 7 } };
    const policy = { maxConcurrent: 20 };
    const handle = await w.client.startSession({ sessionId, policy, experiments: [explicit], sweeps: [sweep], continueAsNewAfterEvents: 400 });

    // While points are left: the stem is refused, another id is not; counts include the unfed points.
    const refusal = await w.client.addExperiments(sessionId, [{ id: 'sw-lr0.02-seed99', trainer: 'mlp', params: tiny }]).then(
      () => 'accepted',
      (err: Error & { cause?: Error }) => `${err.message} ${err.cause?.message ?? ''}`,
    );
    assert.match(refusal, /experiments\[0\]\.id: expected an id outside "sw-…", which this session's sweep "sw" still gives/);
    assert.deepEqual(await w.client.addExperiments(sessionId, [{ id: 'added', trainer: 'mlp', params: { ...tiny, seed: 8 } }]), ['added']);
    const early = await handle.query(sessionStatusQuery, { limit: 200 });
    assert.equal(early.total, 302, 'every point counts in the total from the start');
    // Live rows (queued and running) are the two explicit ones, the feed window and the running
    // ones; rows that already finished stay until a continue-as-new folds them, and under load a
    // few may have finished before this query.
    const finished = TERMINAL_EXPERIMENT_STATES.reduce((n, state) => n + (early.counts?.[state] ?? 0), 0);
    assert.ok(early.page, 'the status has a page');
    const live = early.page.held - finished;
    assert.ok(live <= 2 + feedWindow({ maxConcurrent: 20 }) + 20, `the session holds a window of live rows, not every point (${live} live of ${early.page.held} held)`);
    assert.ok(early.page.held < 302, `the session does not hold every point (${early.page.held})`);
    assert.ok((early.counts?.queued ?? 0) >= 300 - early.page.held, 'points not fed yet count as queued');

    const summary = await handle.result();
    assert.equal(summary.state, 'completed');
    assert.ok(summary.runs >= 1, `expected a continue-as-new, got ${summary.runs} runs`);
    assert.equal(summary.total, 302);
    assert.deepEqual(summary.counts, { completed: 302 });

    const specs = [explicit, { id: 'added', trainer: 'mlp', params: { ...tiny, seed: 8 } }, ...expandSweep(sweep).map((p) => p.spec)] as TinySpec[];
    await assertEachCompletedOnce(w.client, sessionId, specs, { pageSize: 500, timeoutMs: 60_000 });

    // The start input holds the definition; a carry made while points were left holds a cursor.
    const runs: string[] = [];
    for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) runs.push(wf.runId);
    assert.equal(runs.length, summary.runs + 1);
    let startInput: SessionInput | undefined;
    let cursors = 0;
    let largestInput = 0;
    for (const runId of runs) {
      const history = await h.env.client.workflow.getHandle(sessionId, runId).fetchHistory();
      for (const event of history.events ?? []) {
        const started = (event as temporal.api.history.v1.IHistoryEvent).workflowExecutionStartedEventAttributes;
        const payload = started?.input?.payloads?.[0];
        if (!payload?.data) continue;
        largestInput = Math.max(largestInput, payload.data.length);
        const input = JSON.parse(Buffer.from(payload.data).toString('utf8')) as SessionInput;
        if (!input.carry) startInput = input;
        else if (input.carry.feed) {
          cursors++;
          assert.equal(input.sweeps, undefined, 'a continued run gets the cursor, not the sweep again');
          assert.ok(input.carry.feed.next[0] > 0 && input.carry.feed.next[0] < 300, `a cursor inside the sweep: ${input.carry.feed.next[0]}`);
        }
      }
    }
    assert.ok(startInput, 'the first run is in the chain');
    assert.deepEqual(startInput.experiments.map((e) => e.id), ['solo'], 'the points are not in the start input');
    assert.deepEqual(startInput.sweeps, [sweep]);
    assert.ok(cursors >= 1, 'a continue-as-new carried the cursor of points not fed yet');
    console.log(`${summary.total} experiments in ${summary.runs + 1} runs; largest run input ${largestInput} bytes`);
    assert.ok(largestInput < 256 * 1024, `largest run input ${largestInput} bytes`);
  } finally {
    await w.stop();
  }
});

test('sweeps whose stems are not their own go as points; a bad point is refused before anything starts', async () => {
  const taskQueue = uniqueQueue('feed-points');
  const w = await startWorker(h, { taskQueue });
  try {
    const small: Sweep = { idPrefix: 'pt', trainer: 'mlp', params: tiny, grid: { seed: [1, 2] } };
    const sessionId = `feed-points-${process.pid}`;
    // `pt-solo` is under the stem `pt-`: the session is given the points themselves.
    const handle = await w.client.startSession({ sessionId, experiments: [{ id: 'pt-solo', trainer: 'mlp', params: { ...tiny, seed: 3 } }], sweeps: [small] });
    const summary = await handle.result();
    assert.deepEqual(summary.experiments.map((e) => e.id), ['pt-solo', 'pt-seed1', 'pt-seed2']);
    const history = await handle.fetchHistory();
    const input = JSON.parse(Buffer.from(history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!).toString('utf8')) as SessionInput;
    assert.equal(input.sweeps, undefined);
    assert.equal(input.experiments.length, 3);

    const bad = `feed-bad-${process.pid}`;
    await assert.rejects(w.client.startSession({ sessionId: bad, experiments: [], sweeps: [{ ...small, grid: { epochs: [1, 0] } }] }), {
      name: 'InvalidInputError',
      message: /^sweeps\[0\]\.grid\.epochs\[1\]: expected a positive integer, received 0$/m,
    });
    await assert.rejects(h.env.client.workflow.getHandle(bad).describe(), /not found/i, 'nothing started');
  } finally {
    await w.stop();
  }
});

test('a long-running sweep by reference is approved, rejected or timed out as a whole, not a window at a time', { timeout: 5 * 60_000 }, async () => {
  const taskQueue = uniqueQueue('feed-approval');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 20 });
  try {
    // 120 points: more than one window (100), so some are fed only after the decision.
    const long = (idPrefix: string): Sweep => ({ idPrefix, trainer: 'mlp', params: tiny, longRunning: true, grid: { lr: [0.1, 0.05], seed: seeds.slice(0, 60) } });
    const approvedId = `feed-approved-${process.pid}`;
    const approved = await w.client.startSession({ sessionId: approvedId, policy: { maxConcurrent: 20 }, experiments: [], sweeps: [long('a')] });
    const waiting = await waitFor(async () => {
      const a = await w.client.approvalState(approvedId);
      return (a.pending?.length ?? 0) > 0 ? a : undefined;
    }, { what: 'the first window to await approval' });
    assert.equal(waiting.pending?.length, 100, 'the approval covers the window held now');
    await w.client.approve(approvedId, { by: 'alice', note: 'ok' });
    const ok = await approved.result();
    assert.deepEqual(ok.counts, { completed: 120 }, 'the points fed after the approval ran without asking again');

    const rejectedId = `feed-rejected-${process.pid}`;
    const rejected = await w.client.startSession({ sessionId: rejectedId, policy: { maxConcurrent: 20 }, experiments: [{ id: 'short', trainer: 'mlp', params: tiny }], sweeps: [long('r')] });
    await waitFor(async () => (((await w.client.approvalState(rejectedId)).pending?.length ?? 0) > 0 ? true : undefined), { what: 'the window to await approval' });
    await w.client.reject(rejectedId, { by: 'bob', reason: 'too long' });
    const no = await rejected.result();
    assert.deepEqual(no.counts, { completed: 1, rejected: 120 }, 'every long-running point rejected, fed or not');
    assert.equal(no.state, 'failed');
    assert.ok(no.experiments.filter((e) => e.state === 'rejected').every((e) => e.reason === 'rejected by bob: too long'), 'with the rejection\'s reason');

    const timedOutId = `feed-timeout-${process.pid}`;
    const timedOut = await w.client.startSession({ sessionId: timedOutId, policy: { maxConcurrent: 20, approvalTimeout: '2s' }, experiments: [], sweeps: [long('t')] });
    const late = await timedOut.result();
    assert.deepEqual(late.counts, { rejected: 120 });
    assert.ok(late.experiments.every((e) => /no approval within approvalTimeout 2s/.test(e.reason ?? '')), 'rejected by the timeout, the fed-late ones too');
  } finally {
    await w.stop();
  }
});
