/**
 * The search's pure parts, without a server: ASHA rungs and decisions, the median rule, that
 * decisions do not depend on the order reports arrive in, the random sampler, the `search`
 * policy's validation and the best trial.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blankStatus } from '../../src/shared/hints';
import { resolvePolicy } from '../../src/shared/policy';
import { inputProblems, sessionPolicySchema } from '../../src/shared/schema';
import { bestTrial, rankTrials } from '../../src/shared/search/best';
import { ashaRungs, median, newSearchState, nextGate, recordReport, takeDecisions, type TrialView } from '../../src/shared/search/decide';
import { draw, drawPoint, seededRandom } from '../../src/shared/search/random';
import { resolveSearch } from '../../src/shared/search/schema';
import type { ResolvedSearch, SearchDecision } from '../../src/shared/search/types';
import type { ExperimentStatus } from '../../src/shared/types';

const asha = resolveSearch({ metric: 'loss', scheduler: { type: 'asha', reductionFactor: 3, gracePeriod: 1, maxEpochs: 9 } });
const medianRule = resolveSearch({ metric: 'loss', scheduler: { type: 'median', gracePeriod: 2, minTrials: 2 } });

/** Feeds `reports` ([trial, epoch, loss]) in the given order; returns every decision, by trial and epoch. */
function run(search: ResolvedSearch, ids: string[], reports: [string, number, number][]): Map<string, SearchDecision> {
  const state = newSearchState();
  const ended = new Set<string>();
  const all = new Map<string, SearchDecision>();
  for (const [id, epoch, loss] of reports) {
    recordReport(state, search, { experimentId: id, runId: 'r', epoch, metrics: { [search.metric]: loss } });
    const trials: TrialView[] = ids.map((t) => ({ id: t, phase: ended.has(t) ? 'ended' : 'running' }));
    for (const d of takeDecisions(state, search, trials)) {
      all.set(`${d.experimentId}@${d.epoch}`, d);
      if (d.action === 'prune') ended.add(d.experimentId);
    }
  }
  return all;
}

test('ASHA rungs lie at grace·η^k below maxEpochs; gates are the rungs, or every epoch from grace for the median rule', () => {
  assert.deepEqual(ashaRungs({ reductionFactor: 3, gracePeriod: 1, maxEpochs: 9 }), [1, 3]);
  assert.deepEqual(ashaRungs({ reductionFactor: 2, gracePeriod: 2, maxEpochs: 33 }), [2, 4, 8, 16, 32]);
  assert.deepEqual(ashaRungs({ reductionFactor: 1.5, gracePeriod: 1, maxEpochs: 4 }), [1, 2, 3]);
  assert.deepEqual([0, 1, 2, 3, 8].map((e) => nextGate(asha, e)), [1, 3, 3, null, null]);
  assert.deepEqual([0, 1, 2, 5].map((e) => nextGate(medianRule, e)), [2, 2, 3, 6]);
  assert.equal(nextGate(resolveSearch({ metric: 'loss' }), 0), null, 'no scheduler: no gates');
});

test('ASHA: a trial continues only in the top 1/η (rounded up) of the trials recorded at its rung, in the session order', () => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const d = run(asha, ids, [['a', 1, 0.5], ['b', 1, 0.6], ['c', 1, 0.4], ['d', 1, 0.45], ['e', 1, 0.9]]);
  assert.deepEqual(ids.map((id) => d.get(`${id}@1`)?.action), ['continue', 'prune', 'continue', 'continue', 'prune']);
  assert.equal(d.get('b@1')?.rung, 0);
  assert.match(d.get('e@1')?.reason ?? '', /^ASHA rung 0 \(epoch 1\): loss 0\.9 ranks 5 of 5 recorded there; the top 2 \(1\/3\) continue$/);
});

test('ASHA decisions do not depend on the order reports arrive in: a later trial waits for the ones before it', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
  const loss: Record<string, [number, number]> = { a: [0.7, 0.6], b: [0.5, 0.3], c: [0.9, 0.9], d: [0.4, 0.35], e: [0.6, 0.5], f: [0.3, 0.2] };
  const reports = ids.flatMap((id) => [[id, 1, loss[id][0]], [id, 3, loss[id][1]]] as [string, number, number][]);
  const inOrder = run(asha, ids, reports);
  const summary = (m: Map<string, SearchDecision>) => [...m.values()].map((x) => `${x.experimentId}@${x.epoch}:${x.action}`).sort();
  // Pruned trials send nothing after their prune: drop those reports from the shuffled feeds.
  const valid = reports.filter(([id, e]) => !(e === 3 && inOrder.get(`${id}@1`)?.action === 'prune'));
  for (let seed = 1; seed <= 20; seed++) {
    // A random interleaving that keeps each trial's own reports in epoch order, as a trial sends them.
    const next = seededRandom(seed, 0);
    const queues = ids.map((id) => valid.filter(([t]) => t === id));
    const shuffled: [string, number, number][] = [];
    while (queues.some((q) => q.length > 0)) {
      const open = queues.filter((q) => q.length > 0);
      shuffled.push(open[Math.floor(next() * open.length)].shift() as [string, number, number]);
    }
    assert.deepEqual(summary(run(asha, ids, shuffled)), summary(new Map([...inOrder].filter(([k]) => valid.some(([id, e]) => `${id}@${e}` === k)))), `arrival order ${seed}`);
  }
  const blocked = run(asha, ['a', 'b'], [['b', 1, 0.1]]);
  assert.equal(blocked.size, 0, 'b waits until a recorded rung 0');
});

test('ASHA: a trial that ended before a rung, or has not started, does not hold up the ones after it', () => {
  const state = newSearchState();
  recordReport(state, asha, { experimentId: 'c', runId: 'r', epoch: 1, metrics: { loss: 0.2 } });
  const made = takeDecisions(state, asha, [{ id: 'a', phase: 'ended' }, { id: 'b', phase: 'waiting' }, { id: 'c', phase: 'running' }]);
  assert.deepEqual(made.map((d) => [d.experimentId, d.action]), [['c', 'continue']]);
  assert.equal(takeDecisions(state, asha, [{ id: 'c', phase: 'running' }]).length, 0, 'a decision is made once');
  recordReport(state, asha, { experimentId: 'r', runId: 'r', epoch: 4, metrics: { loss: 9 } });
  assert.match(takeDecisions(state, asha, [{ id: 'r', phase: 'running' }])[0].reason, /^epoch 4 is not an ASHA rung/, 'a trial resumed past a rung continues');
  assert.equal(recordReport(state, asha, { experimentId: 'c', runId: 'r', epoch: 1, metrics: { loss: 9 } }).already?.action, 'continue', 'a repeated report gets the same answer');
});

test('the median rule prunes a trial whose best so far is worse than the median of the trials before it at that epoch', () => {
  const ids = ['a', 'b', 'c', 'd'];
  const d = run(medianRule, ids, [
    ['a', 2, 0.5], ['b', 2, 0.4], ['c', 2, 0.45], ['d', 2, 0.9],
    ['a', 3, 0.3], ['b', 3, 0.35], ['c', 3, 0.46],
  ]);
  assert.equal(d.get('a@2')?.action, 'continue');
  assert.match(d.get('b@2')?.reason ?? '', /1 other trials recorded there, fewer than minTrials 2/);
  assert.equal(d.get('c@2')?.action, 'continue', '0.45 is no worse than the median 0.45 of a and b');
  assert.equal(d.get('d@2')?.action, 'prune');
  assert.match(d.get('d@2')?.reason ?? '', /^median rule at epoch 2: best loss so far 0\.9 is worse than the median 0\.45 of 3 other trials there$/);
  assert.equal(d.get('c@3')?.action, 'prune', 'its best, 0.45, is worse than the median 0.325 of a and b at epoch 3');
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

test('a report without the metric is recorded as missing and the trial continues; mode max prefers larger values', () => {
  const state = newSearchState();
  assert.equal(recordReport(state, asha, { experimentId: 'a', runId: 'r', epoch: 1, metrics: { acc: 1 } }).missing, true);
  const [d] = takeDecisions(state, asha, [{ id: 'a', phase: 'running' }]);
  assert.equal(d.action, 'continue');
  assert.match(d.reason, /no value of metric "loss" at epoch 1/);
  const max = resolveSearch({ metric: 'acc', mode: 'max', scheduler: { type: 'asha', maxEpochs: 9 } });
  const m = run(max, ['a', 'b'], [['a', 1, 0.9], ['b', 1, 0.5]]);
  assert.equal(m.get('b@1')?.action, 'prune');
});

test('random draws are seeded: the same seed and index give the same point, within each distribution', () => {
  const space = { lr: { loguniform: [1e-4, 1e-1] as const }, hidden: { randint: [4, 6] as const }, act: { choice: ['relu', 'tanh'] } , p: { uniform: [-1, 1] as const } };
  assert.deepEqual(drawPoint(space, 7, 3), drawPoint(space, 7, 3));
  assert.notDeepEqual(drawPoint(space, 7, 3), drawPoint(space, 7, 4));
  assert.notDeepEqual(drawPoint(space, 7, 3), drawPoint(space, 8, 3));
  const seen = new Set<unknown>();
  for (let i = 0; i < 300; i++) {
    const p = drawPoint(space, 1, i);
    assert.ok((p.lr as number) >= 1e-4 && (p.lr as number) < 1e-1);
    assert.ok([4, 5, 6].includes(p.hidden as number));
    assert.ok((p.p as number) >= -1 && (p.p as number) < 1);
    seen.add(p.hidden);
  }
  assert.equal(seen.size, 3, 'randint includes both bounds');
  const next = seededRandom(3, 0);
  const logs = Array.from({ length: 2000 }, () => Math.log10(draw({ loguniform: [1e-4, 1] }, next) as number));
  assert.ok(Math.abs(logs.reduce((a, b) => a + b) / logs.length + 2) < 0.1, 'loguniform is uniform in log space');
});

test('the search policy: defaults resolved, absent unless set, and bad fields named with what was expected', () => {
  assert.deepEqual(resolvePolicy({ search: { metric: 'loss', scheduler: { type: 'asha', maxEpochs: 9 } } }).search, {
    metric: 'loss',
    mode: 'min',
    scheduler: { type: 'asha', reductionFactor: 3, gracePeriod: 1, maxEpochs: 9 },
  });
  assert.equal('search' in resolvePolicy({}), false);
  const problems = (search: unknown) => inputProblems(sessionPolicySchema, { search }, 'policy');
  assert.deepEqual(problems({ metric: 'loss', scheduler: { type: 'hyperband', maxEpochs: 9 } }), ['policy.search.scheduler.type: expected one of "asha", "median", received "hyperband"']);
  assert.match(problems({ metric: 'loss', scheduler: { type: 'asha', reductionFactor: -3, maxEpochs: 9 } })[0], /^policy\.search\.scheduler\.reductionFactor: expected a reduction factor \(η\) greater than 1, received -3$/);
  assert.match(problems({ metric: 'loss', scheduler: { type: 'asha', gracePeriod: 9, maxEpochs: 9 } })[0], /^policy\.search\.scheduler\.gracePeriod: expected fewer epochs than scheduler\.maxEpochs \(9\), received 9/);
  assert.match(problems({ metric: 'loss', scheduler: { type: 'asha' } })[0], /^policy\.search\.scheduler\.maxEpochs: expected number, received nothing/);
  assert.match(problems({ scheduler: { type: 'median' } })[0], /^policy\.search\.metric: expected string/);
  assert.match(problems({ metric: 'loss', mode: 'lowest' })[0], /^policy\.search\.mode: /);
});

test('the best trial: completed trials first, by the metric in the search mode, with params and checkpoint', () => {
  const status = (id: string, state: ExperimentStatus['state'], loss?: number): ExperimentStatus => ({
    ...blankStatus({ id, sessionId: 's', workflowId: `s:${id}`, state, timeoutMode: 'bounded' }),
    ...(loss === undefined ? {} : { metrics: { loss } }),
    latestCheckpoint: { id: `${id}-ck`, epoch: 9, sha256: 'ab', uri: `file:///${id}` },
  });
  const trials = [status('a', 'completed', 0.5), status('b', 'pruned', 0.1), status('c', 'completed', 0.3), status('d', 'failed')];
  assert.deepEqual(rankTrials(trials, { metric: 'loss', mode: 'min' }).map((t) => t.id), ['c', 'a', 'b', 'd']);
  assert.deepEqual(rankTrials(trials, { metric: 'loss', mode: 'max' }).map((t) => t.id), ['a', 'c', 'b', 'd']);
  const best = bestTrial(trials, new Map([['c', { id: 'c', trainer: 'mlp', params: { lr: 0.1 } }]]), { metric: 'loss', mode: 'min' });
  assert.deepEqual(best, { experimentId: 'c', state: 'completed', params: { lr: 0.1 }, metric: 'loss', mode: 'min', value: 0.3, checkpoint: { id: 'c-ck', epoch: 9, uri: 'file:///c', sha256: 'ab' } });
  assert.equal(bestTrial([status('d', 'failed')], new Map(), { metric: 'loss', mode: 'min' }), null);
});
