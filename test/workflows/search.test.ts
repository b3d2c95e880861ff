/**
 * Search sessions on a real dev server with the real `mlp` trainer: ASHA against the full grid
 * (same 27 trials, both figures printed), the same ASHA session twice (same pruned set at the
 * same rungs), and the median rule pruning a trial made clearly worse (a tiny learning rate).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { expandSweep } from '../../src/pipeline';
import type { SessionSummary } from '../../src/shared/definitions';
import type { ExperimentSpec, SessionPolicy } from '../../src/shared/types';
import { startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
before(async () => {
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('search'), maxConcurrentActivities: 8 });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

// lr × hidden × seed, listed best guess first, as one often writes a grid (see the report for
// how ASHA's share of epochs depends on the order trials arrive in).
const trials: ExperimentSpec[] = expandSweep({
  idPrefix: 't',
  trainer: 'mlp',
  params: { epochs: 9, samples: 512, batchSize: 32 },
  grid: { lr: [0.03, 0.01, 0.003], hidden: [16, 8, 4], seed: [1, 2, 3] },
}).map((p) => p.spec);
const ashaPolicy: SessionPolicy = { maxConcurrent: 9, search: { metric: 'loss', mode: 'min', scheduler: { type: 'asha', reductionFactor: 3, gracePeriod: 1, maxEpochs: 9 } } };

async function runSession(sessionId: string, policy: SessionPolicy, experiments: ExperimentSpec[]): Promise<SessionSummary> {
  const handle = await w.client.startSession({ sessionId, policy, experiments });
  return handle.result();
}
const bestFinalLoss = (s: SessionSummary) => Math.min(...s.experiments.filter((e) => e.state === 'completed').map((e) => e.result?.finalLoss ?? Infinity));
const epochsSpent = (s: SessionSummary) => s.experiments.reduce((n, e) => n + e.epoch, 0);
const prunedSet = (s: SessionSummary) => s.experiments.filter((e) => e.state === 'pruned').map((e) => `${e.id}@${e.pruned?.epoch}/rung${e.pruned?.rung}`);

let first: SessionSummary;
test('ASHA beats the grid: within 1% of its best final loss on at most 40% of its epochs', async () => {
  const [grid, asha] = await Promise.all([runSession('grid', { maxConcurrent: 9, search: { metric: 'loss' } }, trials), runSession('asha-1', ashaPolicy, trials)]);
  first = asha;
  assert.equal(grid.state, 'completed');
  assert.equal(grid.completed, 27);
  assert.equal(asha.state, 'completed', 'pruned trials do not fail the session');
  const gridBest = bestFinalLoss(grid);
  const ashaBest = bestFinalLoss(asha);
  const gridEpochs = epochsSpent(grid);
  const ashaEpochs = epochsSpent(asha);
  console.log(`ASHA vs grid: best final loss ${ashaBest.toFixed(5)} vs ${gridBest.toFixed(5)} (${((ashaBest / gridBest - 1) * 100).toFixed(2)}%); epochs ${ashaEpochs} vs ${gridEpochs} (${((ashaEpochs / gridEpochs) * 100).toFixed(1)}%); ${asha.pruned} of 27 pruned`);
  assert.equal(gridEpochs, 27 * 9);
  assert.ok(ashaBest <= gridBest * 1.01, `ASHA's best ${ashaBest} is within 1% of the grid's ${gridBest}`);
  assert.ok(ashaEpochs <= 0.4 * gridEpochs, `ASHA spent ${ashaEpochs} epochs, at most 40% of ${gridEpochs}`);

  // Pruned trials ended at a rung with their checkpoint there, the reason naming the rung.
  const pruned = asha.experiments.filter((e) => e.state === 'pruned');
  assert.ok(pruned.length > 0 && asha.pruned === pruned.length && asha.failed === 0);
  for (const e of pruned) {
    assert.ok([1, 3].includes(e.pruned?.epoch ?? 0), `${e.id} pruned at a rung`);
    assert.equal(e.latestCheckpoint?.epoch, e.pruned?.epoch, `${e.id}'s checkpoint is at its rung`);
    assert.match(e.reason ?? '', new RegExp(`^ASHA rung ${e.pruned?.rung} \\(epoch ${e.pruned?.epoch}\\): loss `));
  }
  // The best trial is named with its params, metric and checkpoint, and the grid's is the grid's best.
  for (const s of [asha, grid]) {
    const best = s.best;
    assert.ok(best, 'a best trial');
    const row = s.experiments.find((e) => e.id === best.experimentId);
    assert.equal(best.state, 'completed');
    assert.deepEqual(best.params, trials.find((t) => t.id === best.experimentId)?.params);
    assert.equal(best.value, row?.metrics?.loss);
    assert.equal(best.checkpoint?.sha256, row?.latestCheckpoint?.sha256);
    const values = s.experiments.filter((e) => e.state === 'completed').map((e) => e.metrics?.loss ?? Infinity);
    assert.equal(best.value, Math.min(...values));
  }
});

test('the same ASHA session run again prunes the same trials at the same rungs', async () => {
  assert.ok(first, 'the first ASHA session ran');
  const again = await runSession('asha-2', { ...ashaPolicy, maxConcurrent: 4 }, trials);
  assert.deepEqual(prunedSet(again), prunedSet(first));
  assert.deepEqual(
    again.experiments.map((e) => e.result?.modelSha256 ?? null),
    first.experiments.map((e) => e.result?.modelSha256 ?? null),
    'the completed trials end bit-identical, though they trained in segments between rungs',
  );
});

test('the median rule prunes a trial with a tiny learning rate and keeps the good ones', async () => {
  const spec = (id: string, lr: number, seed: number): ExperimentSpec => ({ id, trainer: 'mlp', params: { epochs: 6, samples: 256, lr, seed } });
  const s = await runSession('median', { search: { metric: 'loss', scheduler: { type: 'median', gracePeriod: 2, minTrials: 2 } } }, [
    spec('good-1', 0.03, 1),
    spec('good-2', 0.03, 2),
    spec('tiny-lr', 0.00001, 3),
    spec('good-3', 0.03, 3),
  ]);
  const state = Object.fromEntries(s.experiments.map((e) => [e.id, e.state]));
  assert.deepEqual(state, { 'good-1': 'completed', 'good-2': 'completed', 'tiny-lr': 'pruned', 'good-3': 'completed' });
  const tiny = s.experiments.find((e) => e.id === 'tiny-lr');
  assert.equal(tiny?.pruned?.epoch, 2, 'pruned at the grace period');
  assert.match(tiny?.reason ?? '', /^median rule at epoch 2: best loss so far [\d.]+ is worse than the median [\d.]+ of 2 other trials there$/);
});

test('a pruned trial keeps its checkpoint and `resume` continues it to the end', async () => {
  assert.ok(first, 'the first ASHA session ran');
  const pruned = first.experiments.find((e) => e.state === 'pruned');
  assert.ok(pruned?.latestCheckpoint);
  const resumed = await w.client.resume(`asha-1:${pruned.id}`);
  const summary = await w.client.waitForSession(resumed.sessionId);
  const [e] = summary.experiments;
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.resumedFrom, pruned.pruned?.epoch, 'resumed from the checkpoint it was pruned at');
  assert.equal(e.epoch, 9);
});
