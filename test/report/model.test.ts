/** The report's pure data model (src/report/model.ts): no server, no browser. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderReportHtml } from '../../src/report/html';
import { buildReport, epochPoints, resumeMarkers } from '../../src/report/model';
import type { SessionSnapshot } from '../../src/shared/definitions';
import type { MetricPoint } from '../../src/shared/metric-history';

const point = (epoch: number, attempt: number, invocation: number, loss: number, kind: MetricPoint['kind'] = 'epoch'): MetricPoint => ({
  kind,
  epoch,
  step: kind === 'step' ? 3 : null,
  attempt,
  invocation,
  time: new Date(1_700_000_000_000 + epoch * 1000).toISOString(),
  metrics: { loss, accuracy: 1 - loss },
});

/** A session snapshot with no approval, audit or policy, and the given fields. */
const snapshotOf = (fields: Record<string, unknown>): SessionSnapshot =>
  ({ kind: 'session', approval: { required: false, approved: false, by: null, at: null, note: null }, audit: [], policy: {}, ...fields }) as unknown as SessionSnapshot;

test('epoch points: step points dropped, one point per epoch, in epoch order', () => {
  const points = [point(2, 1, 0, 0.5), point(1, 1, 0, 0.7), point(1, 1, 0, 0.9, 'step'), point(3, 2, 0, 0.4)];
  assert.deepEqual(epochPoints(points).map((p) => p.epoch), [1, 2, 3]);
});

test('resume markers: one where the attempt or the invocation changes, with its cause', () => {
  const points = [point(1, 1, 0, 0.9), point(2, 1, 0, 0.8), point(3, 2, 0, 0.7), point(4, 2, 0, 0.6), point(5, 1, 1, 0.5)];
  const markers = resumeMarkers(points);
  assert.deepEqual(
    markers.map((m) => [m.epoch, m.cause, m.to.attempt, m.to.invocation]),
    [
      [2, 'retry', 2, 0],
      [4, 'preemption', 1, 1],
    ],
  );
  assert.deepEqual(resumeMarkers(points.slice(0, 2)), []);
});

test('buildReport: a series per experiment with its metrics, rows with spec facts, live flag, loss first', () => {
  const status = (id: string, state: 'completed' | 'running', epoch: number) => ({
    id,
    sessionId: 's',
    workflowId: `s:${id}`,
    state,
    timeoutMode: 'bounded' as const,
    attempt: id === 'b' ? 2 : 1,
    epoch,
    epochs: 3,
    latestCheckpoint: null,
    resumedFrom: id === 'b' ? 1 : null,
    result: state === 'completed' ? { finalLoss: 0.1, accuracy: 0.9, modelSha256: 'x' } : null,
    preemptions: 0,
    reason: null,
  });
  const snapshot = snapshotOf({ id: 's', state: 'running', experiments: [status('a', 'completed', 3), status('b', 'running', 2)], runs: 0 });
  const histories = new Map([
    ['a', [point(1, 1, 0, 0.9), point(2, 1, 0, 0.5), point(3, 1, 0, 0.1)]],
    ['b', [point(1, 1, 0, 0.8), point(2, 2, 0, 0.6)]],
  ]);
  const specs = new Map([
    ['a', { trainer: 'mlp', params: { lr: 0.05, hidden: 16 } }],
    ['b', { trainer: 'command', params: { program: 'softmax', params: { epochs: 3 } } }],
  ]);
  const report = buildReport(snapshot, specs, histories, '2026-12-02T00:00:00.000Z');
  assert.equal(report.live, true);
  assert.deepEqual(report.metricNames, ['loss', 'accuracy']);
  assert.deepEqual(report.series.map((s) => [s.id, s.epochs, s.metrics.loss]), [
    ['a', [1, 2, 3], [0.9, 0.5, 0.1]],
    ['b', [1, 2], [0.8, 0.6]],
  ]);
  assert.equal(report.series[1].markers.length, 1);
  assert.deepEqual(report.rows.map((r) => [r.id, r.trainer, r.params, r.epoch, r.attempts]), [
    ['a', 'mlp', 'lr=0.05 hidden=16', '3/3', 1],
    ['b', 'command:softmax', 'epochs=3', '2/3', 2],
  ]);
  assert.equal(report.coverage, null, 'every experiment is shown');
});

test('buildReport of a bounded summary: the report says how many of how many it shows, with every experiment by state', () => {
  const row = (id: string) => ({ id, sessionId: 'big', workflowId: `big:${id}`, state: 'completed', timeoutMode: 'bounded', attempt: 1, epoch: 1, epochs: 1, latestCheckpoint: null, resumedFrom: null, result: null, reason: null });
  const snapshot = snapshotOf({ id: 'big', state: 'completed', experiments: [row('e-1'), row('e-2')], runs: 3, counts: { completed: 2497, failed: 3 }, total: 2500, truncated: true });
  const report = buildReport(snapshot, new Map(), new Map(), '2026-12-02T00:00:00.000Z');
  assert.deepEqual(report.coverage, { shown: 2, total: 2500, counts: { completed: 2497, failed: 3 } });
  const html = renderReportHtml(report);
  const line = /<p class="live" id="coverage">([^]*?)<\/p>/.exec(html)?.[1] ?? '';
  assert.match(line, /^Showing 2 of 2500 experiments/);
  assert.match(line, /completed 2497, failed 3/);
  assert.match(line, /experiments status big --page N/);
});
