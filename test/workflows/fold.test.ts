/**
 * Bounded sessions without a server (src/workflows/session/fold.ts and the scheduler's views):
 * folding terminal rows at continue-as-new, which rows are kept, the id filter that still
 * refuses folded ids, the bounded summary and the status query's pages.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FoldedRows, SessionRow } from '../../src/shared/definitions';
import { blankStatus } from '../../src/shared/hints';
import { resolvePolicy } from '../../src/shared/policy';
import type { ExperimentState, SessionPolicy } from '../../src/shared/types';
import {
  DEFAULT_PAGE_LIMIT,
  foldRows,
  foldedIdProblem,
  KEPT_ROWS,
  MAX_PAGE_LIMIT,
  mayBeFolded,
  readPage,
  selectRows,
  SUMMARY_ROWS,
} from '../../src/workflows/session/fold';
import { newRow, sessionState, snapshot, summary } from '../../src/workflows/session/scheduler';
import { schedulerState } from '../helpers/scheduler';

function row(id: string, state: ExperimentState, loss?: number): SessionRow {
  const r = newRow({ id, trainer: 'mlp', params: { seed: 1 } }, resolvePolicy({}));
  r.state = state;
  if (state !== 'queued') {
    r.status = { ...blankStatus({ id, sessionId: 's', workflowId: `s:${id}`, state, timeoutMode: 'bounded' }), ...(loss !== undefined && { metrics: { loss } }) };
    r.reason = state === 'failed' ? `boom ${id}` : null;
  }
  return r;
}
const ids = (rows: readonly SessionRow[]) => rows.map((r) => r.spec.id);
const many = (n: number, state: ExperimentState, prefix = 'e') => Array.from({ length: n }, (_, i) => row(`${prefix}${i}`, state));

const scheduler = (rows: SessionRow[], folded?: FoldedRows, policy: SessionPolicy = {}) => schedulerState(rows, { folded, policy });

test('fold: terminal rows become counts; failures first, then the latest completed are kept; rows to run are carried', () => {
  const waiting = row('w0', 'awaiting-approval');
  waiting.awaitingSince = 1234;
  const rows = [...many(190, 'completed'), ...many(10, 'failed', 'f'), waiting, ...many(20, 'queued', 'q')];
  const { rows: carried, queued, folded } = foldRows(rows, undefined, {});
  const kept = carried.filter((r) => r.state !== 'awaiting-approval');
  assert.equal(kept.length, KEPT_ROWS);
  assert.deepEqual(carried.filter((r) => r.state === 'awaiting-approval'), [waiting], 'a waiting row is carried whole');
  assert.deepEqual(ids(kept.filter((r) => r.state === 'failed')), ids(many(10, 'failed', 'f')), 'every failure kept');
  assert.deepEqual(ids(kept.filter((r) => r.state === 'completed')), ids(many(190, 'completed').slice(190 - (KEPT_ROWS - 10))), 'the latest completed');
  assert.deepEqual(queued, many(20, 'queued', 'q').map((r) => r.spec), 'every plain queued row carried as its spec, in order');
  assert.deepEqual(newRow(queued[0], resolvePolicy({})), many(1, 'queued', 'q')[0], 'newRow rebuilds a plain queued row exactly');
  assert.deepEqual(folded.counts, { completed: 190 - (KEPT_ROWS - 10) });
  assert.equal(folded.approvalRequired, false);
  assert.equal(mayBeFolded(folded, 'e0'), true, 'a folded id is known');
  assert.equal(mayBeFolded(folded, 'f0'), false, 'a kept row is not in the filter (its row is)');
  assert.equal(mayBeFolded(folded, 'q0'), false);

  // A second fold adds to the counts and the filter.
  const resumed = [...carried.filter((r) => r !== waiting), row('w0', 'completed'), ...queued.map((spec) => row(spec.id, 'completed'))];
  const next = foldRows([...resumed, ...many(5, 'rejected', 'r')], folded, {});
  const total = Object.values(next.folded.counts).reduce((a, n) => a + (n ?? 0), 0) + next.rows.length;
  assert.equal(total, 226, 'every experiment is counted once: folded or held');
  assert.deepEqual(next.queued, []);
  assert.equal(next.rows.length, KEPT_ROWS);
  assert.equal(next.rows.filter((r) => r.state === 'failed' || r.state === 'rejected').length, 15, 'failures and rejections stay kept');
  assert.equal(mayBeFolded(next.folded, 'e0'), true, 'ids folded earlier stay known');
});

test('fold: a search session keeps the best rows by its metric', () => {
  const rows = Array.from({ length: 120 }, (_, i) => row(`t${i}`, 'completed', (i * 37) % 120));
  const kept = selectRows(rows, resolvePolicy({ search: { metric: 'loss', mode: 'min' } }), 10);
  assert.deepEqual(kept.map((r) => r.status?.metrics?.loss).sort((a, b) => a! - b!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(selectRows(rows.slice(0, 5), {}, 10), rows.slice(0, 5), 'up to the limit: every row, in order');
});

test('fold: the carry does not grow with the number of experiments', () => {
  const size = (n: number) => {
    let folded: FoldedRows | undefined;
    let carried: SessionRow[] = [];
    for (let run = 0; run < 5; run++) {
      ({ rows: carried, folded } = foldRows([...carried, ...many(n / 5, 'completed', `r${run}-`)], folded, {}));
    }
    return JSON.stringify({ rows: carried, folded }).length;
  };
  const small = size(500);
  const large = size(10_000);
  assert.ok(large - small < 1000, `carry of 10,000 (${large} B) vs 500 (${small} B)`);
  assert.ok(large < 150_000, `carry ${large} B`);
});

test('fold: the id filter refuses every folded id and very few others', () => {
  const rows = many(10_000, 'completed', 'id-');
  const { folded } = foldRows(rows, undefined, {}, 0);
  assert.ok(rows.every((r) => mayBeFolded(folded, r.spec.id)), 'no folded id is ever accepted');
  const fresh = Array.from({ length: 20_000 }, (_, i) => `other-${i}`).filter((id) => mayBeFolded(folded, id)).length;
  assert.ok(fresh <= 10, `${fresh} of 20,000 fresh ids refused wrongly`);
  assert.match(foldedIdProblem(folded, [{ id: 'new' }, { id: 'id-42' }]) ?? '', /^experiments\[1\]\.id: expected an id this session has not used, received "id-42"/);
  assert.equal(foldedIdProblem(folded, [{ id: 'new' }]), null);
  assert.equal(foldedIdProblem(undefined, [{ id: 'id-42' }]), null);
});

test('summary: counts include folded experiments, rows are bounded, a folded failure fails the session', () => {
  const folded: FoldedRows = { counts: { completed: 1900 }, ids: '', approvalRequired: false };
  const s = scheduler([...many(95, 'completed'), ...many(5, 'failed', 'f'), ...many(100, 'completed', 'x')], folded);
  const sum = summary(s);
  assert.equal(sum.total, 2100);
  assert.equal(sum.completed, 2095);
  assert.equal(sum.failed, 5);
  assert.deepEqual(sum.counts, { completed: 2095, failed: 5 });
  assert.equal(sum.experiments.length, SUMMARY_ROWS);
  assert.equal(sum.truncated, true);
  assert.equal(sum.experiments.filter((e) => e.state === 'failed').length, 5, 'failures are in the summary');
  assert.equal(sum.state, 'failed');

  const ok = scheduler(many(3, 'completed'), folded);
  assert.equal(sessionState(ok), 'completed');
  assert.equal(sessionState(scheduler(many(3, 'completed'), { counts: { completed: 10, failed: 1 }, ids: '', approvalRequired: true })), 'failed');
  assert.equal(snapshot(scheduler([], { counts: { completed: 1 }, ids: '', approvalRequired: true })).approval.required, true, 'a folded long-running row still means approval was required');

  const small = summary(scheduler(many(3, 'completed')));
  assert.deepEqual(ids(small.experiments.map((e) => ({ spec: { id: e.id } }) as SessionRow)), ['e0', 'e1', 'e2']);
  assert.equal(small.truncated, false);
});

test('status query: pages, a state filter, and defaults for a missing or bad argument', () => {
  const s = scheduler([...many(300, 'completed'), ...many(20, 'queued', 'q')], { counts: { completed: 1000 }, ids: '', approvalRequired: false });
  const first = snapshot(s);
  assert.equal(first.experiments.length, DEFAULT_PAGE_LIMIT);
  assert.equal(first.total, 1320);
  assert.deepEqual(first.counts, { completed: 1300, queued: 20 });
  assert.deepEqual(first.page, { offset: 0, limit: DEFAULT_PAGE_LIMIT, held: 320, state: null, problem: null });
  assert.equal(first.truncated, true);

  const last = snapshot(s, { offset: 300, limit: 100 });
  assert.deepEqual(last.experiments.map((e) => e.id), ids(many(20, 'queued', 'q')));
  assert.deepEqual(snapshot(s, { state: 'queued', limit: 5 }).experiments.map((e) => e.id), ['q0', 'q1', 'q2', 'q3', 'q4']);

  for (const bad of [{ limit: 100_000 }, { offset: -1 }, { limit: 'ten' }, 'page 2', { state: 7 }]) {
    const snap = snapshot(s, bad);
    assert.ok(snap.experiments.length <= DEFAULT_PAGE_LIMIT, `${JSON.stringify(bad)}: a bounded answer`);
    assert.match(snap.page?.problem ?? '', /^(limit|offset|state|page): expected /, `${JSON.stringify(bad)}: the problem names the field`);
  }
  assert.deepEqual(readPage({ offset: 10, limit: MAX_PAGE_LIMIT }), { offset: 10, limit: MAX_PAGE_LIMIT, state: null, problem: null });
  assert.equal(readPage(null).problem, null);
});

test('query answers and the summary do not grow with the rows a run holds (10,000)', () => {
  const sizes = (n: number) => {
    const s = scheduler(many(n, 'completed'));
    return [JSON.stringify(snapshot(s)).length, JSON.stringify(snapshot(s, { limit: MAX_PAGE_LIMIT })).length, JSON.stringify(summary(s)).length];
  };
  const [small, large] = [sizes(300), sizes(10_000)];
  for (const [i, what] of ['no-argument answer', 'largest page', 'summary'].entries()) {
    assert.ok(large[i] - small[i] < 2_000, `${what}: ${large[i]} B at 10,000 rows vs ${small[i]} B at 300`);
  }
});
