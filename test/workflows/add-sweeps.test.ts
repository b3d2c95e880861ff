/**
 * Sweeps added to a running session by reference (the `addSweeps` update, src/workflows/session/
 * additions.ts and feed.ts), on the real dev server: the update carries the definition, not the
 * points, and every point runs once with its own params, across continue-as-new; a bad or
 * conflicting sweep sent straight to the session (past the client's checks) is refused with a
 * message naming the field, and the session goes on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandSweep, type Sweep } from '../../src/shared/sweep';
import { harnessWithWorkers, startWorker, uniqueQueue, waitFor } from '../helpers/env';
import { assertEachCompletedOnce, type TinySpec } from '../helpers/sessions';

const bed = harnessWithWorkers();

const tiny = { epochs: 1, samples: 32, batchSize: 32 };

test('a sweep added to a running session goes by reference and runs every point once; conflicting ones are refused', { timeout: 10 * 60_000 }, async (t) => {
  const { h } = bed;
  const taskQueue = uniqueQueue('add-sweeps');
  const w = await startWorker(h, { taskQueue, maxConcurrentActivities: 20 });
  try {
    const sessionId = `add-sweeps-${process.pid}`;
    const solo = { id: 'solo', trainer: 'mlp', params: { ...tiny, seed: 5 } };
    const handle = await w.client.startSession({ sessionId, keepOpen: true, policy: { maxConcurrent: 20 }, experiments: [solo], continueAsNewAfterEvents: 300 });
    const sweep: Sweep = { idPrefix: 'late', trainer: 'mlp', params: tiny, grid: { lr: [0.1, 0.05], seed: Array.from({ length: 75 }, (_, i) => i) } };
    const points = expandSweep(sweep).map((p) => p.spec);
    const extra = { id: 'extra', trainer: 'mlp', params: { ...tiny, seed: 6 } };

    const added = await w.client.addExperiments(sessionId, [extra], { sweeps: [sweep] });
    assert.deepEqual(added, ['extra', ...points.map((p) => p.id)], 'every id the session will run, explicit first');

    // Straight to the session: the same stem again while points are left, a bad definition, none.
    const session = h.env.client.workflow.getHandle(sessionId);
    const refused = (args: [unknown]) => session.executeUpdate('addSweeps', { args }).then(() => 'accepted', (err: Error & { cause?: Error }) => `${err.message} ${err.cause?.message ?? ''}`);
    // Fed rows are held under the stem by now, and points are left: either refusal names the field.
    assert.match(await refused([[{ ...sweep, grid: { seed: [1] } }]]), /sweeps\[0\]\.idPrefix: expected (no other experiment id starting with "late-"|ids that no other sweep can give, received "late-…", which overlaps a sweep this session still feeds)/);
    assert.match(await refused([[{ ...sweep, idPrefix: 'lat' }, { ...sweep, idPrefix: 'lat' }]]), /sweeps\[1\]\.idPrefix: expected ids that no other sweep can give, received "lat-…", which overlaps sweeps\[0\]/);
    assert.match(await refused([[{ idPrefix: 'bad', trainer: 'mlp', grid: { seed: 'x' } }]]), /sweeps\[0\]\.grid\.seed/);
    assert.match(await refused([[]]), /sweeps: expected a non-empty array of sweeps, received \[\]/);

    const ids = ['solo', 'extra', ...points.map((p) => p.id)];
    await waitFor(async () => ((await w.client.experimentCounts(sessionId)).completed ?? 0) >= ids.length, { timeoutMs: 5 * 60_000, intervalMs: 1_000, what: `${ids.length} completed experiments` });
    await handle.signal('close');
    const summary = await handle.result();
    assert.equal(summary.state, 'completed');
    assert.ok(summary.runs >= 1, `expected a continue-as-new while the added sweep was fed, got ${summary.runs} runs`);
    assert.equal(summary.total, ids.length);
    const specs = [solo, extra, ...points] as TinySpec[];
    await assertEachCompletedOnce(w.client, sessionId, specs, { pageSize: 500, timeoutMs: 60_000 });

    // What travelled: what the client sent (the first run's start input, the updates) is small and
    // holds no points; one addSweeps update carries the definition. A continue-as-new carry may hold
    // points (up to the feed window of queued rows, the running ones and KEPT_ROWS ended ones: for
    // this 150-point sweep that can be nearly all of them), so it is held to the bounded-payload
    // limit instead; test/workflows/session-scale.test.ts holds carries of larger sessions to it.
    let largestSent = 0;
    let largestCarry = 0;
    let sweepUpdates = 0;
    for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) {
      for (const event of (await h.env.client.workflow.getHandle(sessionId, wf.runId).fetchHistory()).events ?? []) {
        const bytes = (payloads: { data?: Uint8Array | null }[] | null | undefined) => (payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0);
        const accepted = event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest;
        const started = event.workflowExecutionStartedEventAttributes;
        if (accepted) {
          const size = bytes(accepted.input?.args?.payloads);
          largestSent = Math.max(largestSent, size);
          if (accepted.input?.name === 'addSweeps') {
            sweepUpdates++;
            assert.ok(size < 2_000, `the addSweeps update holds the definition (${size} B)`);
          }
        } else if (started) {
          const size = bytes(started.input?.payloads);
          if (started.continuedExecutionRunId) largestCarry = Math.max(largestCarry, size);
          else largestSent = Math.max(largestSent, size);
        }
      }
    }
    t.diagnostic(`largest payload the client sent: ${largestSent} B; largest continue-as-new carry: ${largestCarry} B`);
    assert.equal(sweepUpdates, 1, 'the client\'s update (refused ones are not recorded)');
    assert.ok(largestSent < 20_000, `no start input or update the client sent holds the points: the largest is ${largestSent} B`);
    assert.ok(largestCarry > 0 && largestCarry < 512 * 1024, `every continue-as-new carry stays under 512 KB (largest ${largestCarry} B)`);
  } finally {
    await w.stop();
  }
});
