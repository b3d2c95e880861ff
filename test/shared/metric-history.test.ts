// The pure halves of metric history and keep-best retention, without a server or a store: the
// rewind rule (which points stay visible after resumes) and which checkpoints pruning keeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { visiblePoints, type HistoryAttempt, type MetricPoint } from '../../src/shared/metric-history';
import { bestOf, resolveRetention, retain, retentionProblem } from '../../src/shared/retention';
import { formatIssues, sessionPolicySchema } from '../../src/shared/schema';

const at = (invocation: number, attempt: number, resumedAt: { epoch: number; step: number } | null): HistoryAttempt => ({
  invocation,
  attempt,
  resumedAt,
  checkpointId: resumedAt ? `ck-${resumedAt.epoch}-${resumedAt.step}` : null,
  startedAt: '2026-12-02T00:00:00.000Z',
});
const epochPoint = (epoch: number, attempt: number, invocation = 0): MetricPoint => ({ kind: 'epoch', epoch, step: null, attempt, invocation, time: '', metrics: { loss: 1 / epoch } });
const stepPoint = (epoch: number, step: number, attempt: number, invocation = 0): MetricPoint => ({ kind: 'step', epoch, step, attempt, invocation, time: '', metrics: { loss: step } });
const label = (p: MetricPoint) => `${p.kind}:${p.epoch}${p.step === null ? '' : `.${p.step}`}@${p.invocation}/${p.attempt}`;

test('a resume hides the dead attempt’s points after the checkpoint it resumed from, and nothing before it', () => {
  const stored = [
    epochPoint(1, 1),
    stepPoint(1, 4, 1),
    epochPoint(2, 1),
    stepPoint(2, 3, 1), // after the checkpoint at (2, 0): the dead attempt's, trained again
    stepPoint(2, 3, 2),
    epochPoint(3, 2),
  ];
  const shown = visiblePoints([at(0, 1, null), at(0, 2, { epoch: 2, step: 0 })], stored).map(label);
  assert.deepEqual(shown, ['epoch:1@0/1', 'step:1.4@0/1', 'epoch:2@0/1', 'step:2.3@0/2', 'epoch:3@0/2']);
});

test('an epoch point written ahead of a checkpoint that never committed is rewound, so the retry’s point is the only one', () => {
  // Attempt 1 wrote epoch 3's point, then died before the checkpoint at (3, 0) committed; attempt 2
  // resumed from (2, 0) and trained epoch 3 again.
  const stored = [epochPoint(2, 1), epochPoint(3, 1), epochPoint(3, 2)];
  const shown = visiblePoints([at(0, 1, null), at(0, 2, { epoch: 2, step: 0 })], stored).map(label);
  assert.deepEqual(shown, ['epoch:2@0/1', 'epoch:3@0/2']);
});

test('a later invocation (after a preemption) rewinds an earlier one; a fresh restart rewinds everything', () => {
  const stored = [epochPoint(1, 1), stepPoint(1, 2, 1), stepPoint(1, 2, 1, 1), epochPoint(2, 1, 1)];
  assert.deepEqual(visiblePoints([at(0, 1, null), at(1, 1, { epoch: 1, step: 1 })], stored).map(label), ['epoch:1@0/1', 'step:1.2@1/1', 'epoch:2@1/1']);
  assert.deepEqual(visiblePoints([at(0, 1, null), at(0, 2, null)], [epochPoint(1, 1), epochPoint(1, 2)]).map(label), ['epoch:1@0/2']);
});

test('an older attempt still writing after a newer one started (a zombie) cannot add points past the newer start', () => {
  const stored = [epochPoint(1, 1), epochPoint(2, 2), epochPoint(2, 1), epochPoint(3, 1)];
  assert.deepEqual(visiblePoints([at(0, 1, null), at(0, 2, { epoch: 1, step: 0 })], stored).map(label), ['epoch:1@0/1', 'epoch:2@0/2']);
});

const ck = (id: string, epoch: number, step: number, loss: number) => ({ checkpointId: id, epoch, step, metrics: { loss } as Record<string, number> });

test('keep-best: the best end-of-epoch checkpoint stays while later, worse ones come and go', () => {
  const keep = resolveRetention({ latest: 2, best: 1 });
  assert.deepEqual(keep, { latest: 2, best: 1, metric: 'loss', mode: 'min' });
  const all = [ck('a', 1, 0, 0.9), ck('b', 2, 0, 0.3), ck('c', 3, 0, 0.5), ck('d', 4, 0, 0.6), ck('e', 4, 7, 0.01), ck('f', 5, 0, 0.7)];
  const { kept, dropped, marks } = retain(all, keep);
  assert.deepEqual(kept.map((e) => e.checkpointId), ['b', 'e', 'f'], 'best b plus the newest two; the mid-epoch e does not compete for best');
  assert.deepEqual(dropped.map((e) => e.checkpointId), ['a', 'c', 'd']);
  assert.deepEqual(marks, { latest: ['f', 'e'], best: ['b'], metric: 'loss', mode: 'min' });
  // A better one arrives: the old best is now only pruned.
  const next = retain([...kept, ck('g', 6, 0, 0.2)], keep);
  assert.deepEqual(next.kept.map((e) => e.checkpointId), ['f', 'g']);
  assert.deepEqual(next.marks?.best, ['g']);
});

test('keep-best: mode max, a named metric, ties keep the earlier, and a plain count keeps only the newest', () => {
  const entry = (checkpointId: string, epoch: number, metrics: Record<string, number>) => ({ checkpointId, epoch, step: 0, metrics });
  const acc = [entry('a', 1, { acc: 0.8 }), entry('b', 2, { acc: 0.9 }), entry('c', 3, { acc: 0.9 }), entry('d', 4, { loss: 0 })];
  assert.deepEqual(bestOf(acc, { latest: 1, best: 2, metric: 'acc', mode: 'max' }).map((e) => e.checkpointId), ['b', 'c']);
  const plain = retain(acc, 2);
  assert.deepEqual([plain.kept.map((e) => e.checkpointId), plain.marks], [['c', 'd'], undefined]);
});

test('keep-best defaults: the search metric and mode when set; a named metric defaults to min', () => {
  assert.deepEqual(resolveRetention({ latest: 1, best: 2 }, { metric: 'acc', mode: 'max' }), { latest: 1, best: 2, metric: 'acc', mode: 'max' });
  assert.deepEqual(resolveRetention({ latest: 1, best: 2, metric: 'val' }, { metric: 'acc', mode: 'max' }), { latest: 1, best: 2, metric: 'val', mode: 'min' });
  assert.equal(resolveRetention(4), 4);
});

test('bad retention is rejected with the path of the bad field', () => {
  const problems = (value: unknown) => {
    const parsed = sessionPolicySchema.safeParse({ checkpointsToKeep: value }, { reportInput: true });
    return parsed.success ? [] : formatIssues(parsed.error, 'policy');
  };
  assert.match(problems({ latest: 0 })[0], /^policy\.checkpointsToKeep\.latest: .*>=1, received 0$/);
  assert.match(problems({ latest: 2, best: -1 })[0], /^policy\.checkpointsToKeep\.best: .*received -1$/);
  assert.match(problems({ latest: 2, mode: 'best' })[0], /^policy\.checkpointsToKeep\.mode: .*"min"\|"max", received "best"$/);
  assert.match(problems({ latest: 2, keep: 1 })[0], /^policy\.checkpointsToKeep: unexpected field "keep"$/);
  assert.match(problems('two')[0], /^policy\.checkpointsToKeep: expected an integer from 1 to 1000, or \{ latest/);
  assert.deepEqual(problems({ latest: 2, best: 1, metric: 'acc', mode: 'max' }), []);
  assert.equal(retentionProblem({ latest: 2, best: 1, metric: '', mode: 'min' }), '.metric: expected a metric name, received ');
});
