/**
 * Sweeps by reference without a server (src/shared/sweep.ts, src/workflows/session/feed.ts and
 * the scheduler's counts): a point by index is the point the full expansion has at that index,
 * the feed gives points in order a window at a time and carries a cursor, ids under a pending
 * sweep's stem are refused, the start schema refuses stems that overlap, and points not fed yet
 * count as queued and keep the session from ending.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePolicy } from '../../src/shared/policy';
import { inputProblems, sessionInputSchema } from '../../src/shared/schema';
import { expandSweep, sweepPointAt, sweepSize, sweepStemIssues, type Sweep } from '../../src/shared/sweep';
import { feedWindow, MAX_PENDING_SWEEPS, SweepFeed } from '../../src/workflows/session/feed';
import { foldRows } from '../../src/workflows/session/fold';
import { allDone, newRow, snapshot, summary } from '../../src/workflows/session/scheduler';
import { schedulerState } from '../helpers/scheduler';

const grid: Sweep = { idPrefix: 'g', trainer: 'mlp', params: { epochs: 1, nested: { a: 1 } }, grid: { lr: [0.1, 0.01, 0.001], hidden: [16, 32], 'nested.b': ['x', 'y'] } };
const random: Sweep = { idPrefix: 'r', trainer: 'mlp', random: { samples: 25, space: { lr: { loguniform: [1e-4, 1e-1] }, hidden: { choice: [8, 16] } } } };

test('a grid point by index: the last key varies fastest, base params kept, nested keys set', () => {
  assert.equal(sweepSize(grid), 12);
  const ids = expandSweep(grid).map((p) => p.spec.id);
  assert.deepEqual(ids.slice(0, 3), ['g-lr0.1-hidden16-bx', 'g-lr0.1-hidden16-by', 'g-lr0.1-hidden32-bx']);
  assert.equal(ids.at(-1), 'g-lr0.001-hidden32-by');
  assert.equal(new Set(ids).size, 12);
  const p = sweepPointAt(grid, 7);
  assert.deepEqual(p.indices, { lr: 1, hidden: 1, 'nested.b': 1 });
  assert.deepEqual(p.spec.params, { epochs: 1, lr: 0.01, hidden: 32, nested: { a: 1, b: 'y' } });
  assert.throws(() => sweepPointAt(grid, 12), /point 12 is outside 0\.\.11/);
  assert.throws(() => sweepPointAt(grid, -1), RangeError);
});

test('a random point by index is draw n of the seeded space, whatever was drawn before', () => {
  const all = expandSweep(random);
  assert.equal(all.length, 25);
  for (const n of [24, 0, 13]) assert.deepEqual(sweepPointAt(random, n), all[n]);
  assert.match(all[3].spec.id, /^r-03-lr[0-9.e-]+-hidden(8|16)$/);
  assert.notDeepEqual(all[0].spec.params, all[1].spec.params);
});

test('the feed gives every point once, in order, across a carried cursor', () => {
  const feed = SweepFeed.of([grid, random]);
  assert.equal(feed.remaining, 37);
  const first = feed.take(10);
  assert.deepEqual(first.map((s) => s.id), expandSweep(grid).slice(0, 10).map((p) => p.spec.id));
  // Continue-as-new: a new feed from the carried state goes on where this one stopped.
  const carried = new SweepFeed(JSON.parse(JSON.stringify(feed.state)));
  assert.equal(carried.remaining, 27);
  const rest = [...carried.take(5), ...carried.take(100)];
  assert.equal(rest.length, 27);
  assert.deepEqual([...first, ...rest].map((s) => s.id), [...expandSweep(grid), ...expandSweep(random)].map((p) => p.spec.id));
  assert.equal(carried.remaining, 0);
  assert.equal(carried.state, undefined, 'nothing to carry once every point was fed');
  assert.deepEqual(carried.take(3), []);
  assert.equal(feed.state?.sweeps.length, 2);
  assert.deepEqual(feed.state?.next, [10, 0]);
});

test('ids under the stem of a sweep with points left are refused; others and exhausted stems are not', () => {
  const feed = SweepFeed.of([grid]);
  assert.match(feed.idProblem([{ id: 'other' }, { id: 'g-lr9' }]) ?? '', /^experiments\[1\]\.id: expected an id outside "g-…", which this session's sweep "g" still gives .*received "g-lr9"$/);
  assert.equal(feed.idProblem([{ id: 'g' }, { id: 'gx-1' }, null, { id: 3 }]), null);
  feed.take(12);
  assert.equal(feed.idProblem([{ id: 'g-lr9' }]), null, 'every point was fed: the rows and their ids are the session’s own checks now');
});

test('the window scales with maxConcurrent, within 100..1000', () => {
  assert.equal(feedWindow({ maxConcurrent: 4 }), 100);
  assert.equal(feedWindow({ maxConcurrent: 50 }), 100);
  assert.equal(feedWindow({ maxConcurrent: 300 }), 600);
  assert.equal(feedWindow({ maxConcurrent: 1000 }), 1000);
});

test('stems must be their own: no other id under a stem, no two overlapping', () => {
  assert.deepEqual(sweepStemIssues(['a', 'b-1'], [{ idPrefix: 'g' }, { idPrefix: 'h' }]), []);
  assert.deepEqual(sweepStemIssues(['g-1'], [{ idPrefix: 'g' }]), [{ index: 0, message: 'expected no other experiment id starting with "g-", received experiment "g-1"' }]);
  const overlap = sweepStemIssues([], [{ idPrefix: 'mlp' }, { idPrefix: 'mlp-lr0.1' }]);
  assert.equal(overlap.length, 1);
  assert.equal(overlap[0].index, 1);
  assert.match(overlap[0].message, /overlaps sweeps\[0\] \("mlp-…"\)/);
  assert.equal(sweepStemIssues([], [{ idPrefix: 'mlp-lr0.1' }, { idPrefix: 'mlp' }]).length, 1, 'either order');
});

test('the start schema checks sweeps: total with every point counted, and their stems', () => {
  const base = { sessionId: 's', policy: resolvePolicy({}), experiments: [{ id: 'g-x', trainer: 'mlp' }] };
  assert.deepEqual(inputProblems(sessionInputSchema, { ...base, experiments: [], sweeps: [grid] }), []);
  assert.deepEqual(inputProblems(sessionInputSchema, { ...base, sweeps: [grid] }), ['sweeps[0].idPrefix: expected no other experiment id starting with "g-", received experiment "g-x"']);
  const big: Sweep = { idPrefix: 'big', trainer: 'mlp', random: { samples: 10_000, space: { lr: { uniform: [0, 1] } } } };
  assert.match(inputProblems(sessionInputSchema, { ...base, sweeps: [big] }).join('\n'), /at most 10000 experiments with every sweep point counted, received 10001/);
  assert.match(inputProblems(sessionInputSchema, { ...base, experiments: [], sweeps: [{ idPrefix: 'z', trainer: 'mlp' }] }).join('\n'), /exactly one of "grid" or "random"/);
  const carry = { rows: [], audit: [], runs: 1, feed: { sweeps: [grid], next: [] } };
  assert.match(inputProblems(sessionInputSchema, { ...base, experiments: [], carry }).join('\n'), /one cursor in "next" per sweep/);
});

test('points not fed yet count as queued and keep the session from ending', () => {
  const done = { ...newRow({ id: 'e', trainer: 'mlp' }, resolvePolicy({})), state: 'completed' as const };
  const state = schedulerState([done], { unfed: 40 });
  assert.equal(allDone(state), false);
  const snap = snapshot(state);
  assert.deepEqual(snap.counts, { completed: 1, queued: 40 });
  assert.equal(snap.total, 41);
  assert.equal(snap.truncated, true);
  assert.equal(snap.state, 'running');
  state.unfed = undefined;
  assert.equal(allDone(state), true);
  assert.deepEqual(summary(state).counts, { completed: 1 });
});

test('approval is sweep-wide: fed long-running points wait from when the first did, or are rejected after a reject', () => {
  const policy = resolvePolicy({});
  const long: Sweep = { idPrefix: 'L', trainer: 'mlp', longRunning: true, grid: { seed: [1, 2, 3, 4] } };
  const feed = SweepFeed.of([long]);
  const row = (spec: ReturnType<SweepFeed['take']>[number]) => newRow(spec, policy);
  const [a] = feed.take(1).map(row);
  feed.gate(a, false, 1_000);
  assert.deepEqual([a.state, a.awaitingSince], ['awaiting-approval', 1_000]);
  // Fed later, across a continue-as-new: the same wait start.
  const carried = new SweepFeed(JSON.parse(JSON.stringify(feed.state)));
  const [b] = carried.take(1).map(row);
  carried.gate(b, false, 9_000);
  assert.deepEqual([b.state, b.awaitingSince], ['awaiting-approval', 1_000]);
  carried.reject('rejected by ops: too long');
  const [c] = carried.take(1).map(row);
  carried.gate(c, false, 9_500);
  assert.deepEqual([c.state, c.reason], ['rejected', 'rejected by ops: too long']);
  assert.equal(new SweepFeed(carried.state).state?.rejected, 'rejected by ops: too long', 'the rejection is carried');
  carried.approved();
  const [d] = carried.take(1).map(row);
  carried.gate(d, true, 10_000);
  assert.equal(d.state, 'queued', 'after an approval nothing waits');
  // Bounded points are never gated.
  const bounded = SweepFeed.of([grid]);
  const [e] = bounded.take(1).map(row);
  bounded.gate(e, false, 1);
  assert.deepEqual([e.state, e.awaitingSince], ['queued', null]);
});

test('sweeps added to a running session are fed after the held ones, and the validator names what is wrong', () => {
  const feed = SweepFeed.of([grid]);
  feed.take(5);
  const extra: Sweep = { idPrefix: 'x', trainer: 'mlp', grid: { seed: [1, 2, 3] } };
  assert.equal(feed.addProblem([extra], ['solo', 'g-lr0.1-hidden16-bx'], undefined), null);
  feed.add([extra]);
  assert.equal(feed.remaining, 7 + 3);
  const rest = feed.take(100).map((s) => s.id);
  assert.deepEqual(rest, [...expandSweep(grid).slice(5), ...expandSweep(extra)].map((p) => p.spec.id), 'held points first, then the added sweep');
  assert.equal(feed.remaining, 0);
  feed.add([extra]);
  assert.deepEqual(new SweepFeed(JSON.parse(JSON.stringify(feed.state))).take(10).map((s) => s.id), expandSweep(extra).map((p) => p.spec.id), 'an added sweep is carried');

  const pending = SweepFeed.of([grid]);
  // A stem overlapping a pending sweep's, a held id under the new stem, two new stems overlapping.
  assert.match(pending.addProblem([{ ...extra, idPrefix: 'g' }], [], undefined) ?? '', /^sweeps\[0\]\.idPrefix: expected ids that no other sweep can give, received "g-…", which overlaps a sweep this session still feeds/);
  assert.match(pending.addProblem([extra], ['x-seed1'], undefined) ?? '', /^sweeps\[0\]\.idPrefix: expected no other experiment id starting with "x-", received experiment "x-seed1"/);
  assert.match(pending.addProblem([extra, { ...extra, idPrefix: 'x-s' }], [], undefined) ?? '', /^sweeps\[1\]\.idPrefix: .*overlaps sweeps\[0\] \("x-…"\)/);
  // Too many points in one update, too many sweeps held.
  const huge: Sweep = { idPrefix: 'h', trainer: 'mlp', grid: { a: Array.from({ length: 101 }, (_, i) => i), b: Array.from({ length: 100 }, (_, i) => i) } };
  assert.match(pending.addProblem([huge], [], undefined) ?? '', /^sweeps: expected at most 10000 experiments with every sweep point counted, received 10100/);
  const many = Array.from({ length: MAX_PENDING_SWEEPS }, (_, i): Sweep => ({ ...extra, idPrefix: `m${i}` }));
  assert.match(pending.addProblem(many, [], undefined) ?? '', /^sweeps: expected at most 100 sweeps with points left in one session, received 100 more next to 1/);
});

test('an added sweep whose point an ended, folded experiment had is refused; one with new ids is not', () => {
  const policy = resolvePolicy({});
  const ended = expandSweep({ idPrefix: 'x', trainer: 'mlp', grid: { seed: [1, 2, 3] } }).map((p) => ({ ...newRow(p.spec, policy), state: 'completed' as const }));
  // Keep none, so every row folds into the id filter.
  const { folded } = foldRows(ended, undefined, {}, 0);
  const feed = SweepFeed.of([]);
  assert.match(feed.addProblem([{ idPrefix: 'x', trainer: 'mlp', grid: { seed: [9, 3] } }], [], folded) ?? '', /^sweeps\[0\]\.idPrefix: expected ids this session has not used, received point 1 "x-seed3", which an ended experiment of this session had/);
  assert.equal(feed.addProblem([{ idPrefix: 'x', trainer: 'mlp', grid: { seed: [7, 8] } }], [], folded), null);
});
