/**
 * `estimatedDuration: "auto"` end to end on the real dev server with an in-process worker that
 * has a (detected) hardware profile: the profiling run, the estimate against the real duration,
 * the approval that resumes from the profiling checkpoint, and the bit-identical result.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { detectProfile } from '../../src/hardware/detect';
import { InvalidInputError } from '../../src/shared/schema';
import { logLines, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('auto'), hardware: {} });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

// 16 steps of 40 ms per epoch, 6 epochs: about 4 s of training, dominated by the step delay, so
// the rate measured over the profiling window's second half holds for the rest even on a loaded machine.
const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 5 };
const expected = () => runMlpBare(parseMlpParams(params)).modelSha256;

test('auto over the threshold: profiles, waits with "est. … on <class>", resumes from the profiling checkpoint after approval', { timeout: 180_000 }, async (t) => {
  // The worker detected the same machine, so it derived the same class.
  const className = (await detectProfile()).profile.className;
  const handle = await w.client.startSession({
    sessionId: 'auto-long',
    policy: { longRunningThreshold: '1s', profile: { steps: 32 } },
    experiments: [{ id: 'e', trainer: 'mlp', params, estimatedDuration: 'auto' }],
  });
  const waiting = await waitFor(async () => {
    const s = await w.client.status('auto-long:e');
    return s.kind === 'experiment' && s.state === 'awaiting-approval' ? s : null;
  }, { timeoutMs: 120_000, what: 'auto-long:e awaiting approval' });
  assert.match(waiting.reason ?? '', new RegExp(`^est\\. \\d+s on ${className}$`), 'the estimate and the class are shown');
  const estimate = waiting.estimatedDurationMs ?? 0;
  assert.ok(estimate > 1000, `projected ${estimate} ms, over the threshold`);
  const profilingCheckpoint = waiting.latestCheckpoint;
  assert.ok(profilingCheckpoint, 'the profiling run checkpointed');
  assert.ok(profilingCheckpoint.epoch < params.epochs, 'and stopped early');
  // The experiment says it waits before the session has recorded its request (a signal away).
  const listed = await waitFor(async () => {
    const p = (await w.client.approvalState('auto-long')).pending;
    return p && p.length > 0 ? p : null;
  }, { timeoutMs: 60_000, what: 'the session to list the approval request' });
  assert.deepEqual(listed, [{ experimentId: 'e', estimatedDurationMs: estimate }], 'the approver is shown the estimate');

  await w.client.approve('auto-long', { by: 'alice' });
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.result?.modelSha256, expected(), 'bit-identical to an uninterrupted run');
  assert.equal(e.resumedFrom, profilingCheckpoint.epoch, 'resumed from the profiling checkpoint');
  assert.ok(
    logLines.some((l) => l.msg === 'new run resumes from another experiment' && l.checkpointId === profilingCheckpoint.id),
    'the approved run started from the profiling checkpoint, by id',
  );
  const audit = (await w.client.approvalState('auto-long')).audit;
  assert.deepEqual(audit[0].estimates, [{ experimentId: 'e', estimatedDurationMs: estimate }], 'the audit records the estimate');
  assert.equal(e.estimatedDurationMs, estimate, 'the estimate stays in the status');
  const actual = e.actualDurationMs ?? 0;
  t.diagnostic(`estimate ${estimate} ms, actual ${actual} ms (${((100 * (estimate - actual)) / actual).toFixed(1)}%)`);
  assert.ok(Math.abs(estimate - actual) <= 0.3 * actual, `estimate ${estimate} ms within 30% of the actual ${actual} ms`);
});

test('auto under the threshold: proceeds without waiting, bounded, and ends bit-identical', { timeout: 180_000 }, async () => {
  const handle = await w.client.startSession({
    sessionId: 'auto-short',
    policy: { longRunningThreshold: '1h', profile: { steps: 20 } },
    experiments: [{ id: 'e', trainer: 'mlp', params, estimatedDuration: 'auto' }],
  });
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.timeoutMode, 'bounded');
  assert.equal(summary.approval.required, false, 'no approval asked');
  assert.equal(e.result?.modelSha256, expected(), 'bit-identical to an uninterrupted run');
  assert.ok((e.resumedFrom ?? 0) >= 1, 'the second invocation resumed from the profiling checkpoint');
  assert.ok((e.estimatedDurationMs ?? 0) > 0 && (e.actualDurationMs ?? 0) > 0, 'estimate and actual recorded');
  assert.ok(!logLines.some((l) => l.experimentId === 'e' && l.sessionId === 'auto-short' && l.msg === 'experiment awaiting approval'));
});

test('auto with a trainer that cannot report its total steps is rejected before start, naming the field', () => {
  // A trainer of the user's own that knows no total steps (no `totalSteps`).
  const stepless = { name: 'stepless', parseParams: (raw: unknown) => raw, train: async () => ({}) };
  const client = new ExperimentsClient({ client: h.env.client, taskQueue: w.client.taskQueue, trainers: [stepless] });
  assert.throws(
    () => client.validateExperiments([{ id: 'e', trainer: 'stepless', estimatedDuration: 'auto' }]),
    (err: unknown) => err instanceof InvalidInputError && /^experiments\[0\]\.estimatedDuration: "auto" needs a trainer that reports its total steps .*trainer "stepless" does not/.test(err.message),
  );
  assert.deepEqual(client.validateExperiments([{ id: 'e', trainer: 'stepless', estimatedDuration: '2h' }]).length, 1, 'a given duration is fine');
  assert.throws(
    () => w.client.validateExperiments([{ id: 'e', trainer: 'mlp', estimatedDuration: 'whenever' }]),
    (err: unknown) => err instanceof InvalidInputError && /^experiments\[0\]\.estimatedDuration: expected a duration .* or "auto"/.test(err.message),
  );
});
