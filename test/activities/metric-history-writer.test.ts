// The history writer's bounds, against the real local store in a temporary directory: step points
// are sampled at most once per interval, held ones are written at most once per flush interval
// (plus once per checkpoint), epoch points only at end-of-epoch checkpoints and never twice.
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { LocalCheckpointStore, MetricHistoryWriter, readNewestRunHistory } from '../../src/activities/checkpoint-store';

const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});
const KEY = 'sess/exp';
const RUN = '55555555-aaaa-4bbb-8ccc-000000000005';
const log = pino({ level: 'silent' });

async function newStore() {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'history-writer-'));
  roots.push(root);
  return new LocalCheckpointStore(root);
}

test('step points are sampled at the interval and written in few batches; epoch points only at epoch ends', async () => {
  const store = await newStore();
  const writer = new MetricHistoryWriter(store.metricHistory(), KEY, RUN, { invocation: 0, attempt: 1 }, log, { stepIntervalMs: 50, flushIntervalMs: 200 });
  await writer.begin(undefined);
  const started = performance.now();
  let reported = 0;
  for (let step = 1; performance.now() - started < 600; step++) {
    writer.step({ epoch: 0, step, metrics: { loss: 1 / step, nan: Number.NaN } });
    reported++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await writer.checkpoint({ epoch: 0, step: 999_999, metrics: { loss: 0.5 } }); // mid-epoch: no epoch point
  await writer.checkpoint({ epoch: 1, step: 0, metrics: { loss: 0.4 } });
  await writer.checkpoint({ epoch: 1, step: 0, metrics: { loss: 0.4 } }); // the same epoch again: no second point
  await writer.close();
  const elapsed = performance.now() - started;

  const run = await readNewestRunHistory(store, KEY);
  assert.ok(run);
  const steps = run.points.filter((p) => p.kind === 'step');
  assert.ok(reported > 50, `the loop reported many steps (${reported})`);
  assert.ok(steps.length >= 2 && steps.length <= Math.ceil(elapsed / 50) + 1, `${steps.length} step points in ${Math.round(elapsed)} ms at one per 50 ms`);
  assert.ok(steps.every((p) => Object.keys(p.metrics).join() === 'loss'), 'non-finite metrics are dropped');
  assert.deepEqual(run.points.filter((p) => p.kind === 'epoch').map((p) => [p.epoch, p.metrics.loss]), [[1, 0.4]]);
  const batches = (await store.metricHistory().list(KEY, RUN)).filter((n) => n.startsWith('points-'));
  assert.ok(batches.length <= Math.ceil(elapsed / 200) + 2, `${batches.length} batches in ${Math.round(elapsed)} ms at one per 200 ms plus checkpoints`);
});

test('a resumed attempt writes no step point at or before its resume position', async () => {
  const store = await newStore();
  const writer = new MetricHistoryWriter(store.metricHistory(), KEY, RUN, { invocation: 1, attempt: 1 }, log, { stepIntervalMs: 0 });
  const pointer = { checkpointId: 'ck', uri: 'file:///x', epoch: 2, step: 5, sha256: '0'.repeat(64), bytes: 1, metrics: {}, savedAt: new Date().toISOString() };
  await writer.begin(pointer);
  for (const step of [4, 5, 6]) writer.step({ epoch: 2, step, metrics: { loss: step } });
  await writer.close();
  const run = await readNewestRunHistory(store, KEY);
  assert.deepEqual(run?.points.map((p) => [p.epoch, p.step, p.invocation]), [[2, 6, 1]]);
  assert.deepEqual(run?.attempts.map((a) => [a.invocation, a.resumedAt, a.checkpointId]), [[1, { epoch: 2, step: 5 }, 'ck']]);
});

test('the same (invocation, attempt) starting again (the fence accepts the current token) gets its own part and rewinds the first', async () => {
  const store = await newStore();
  const token = { invocation: 0, attempt: 3 };
  const first = new MetricHistoryWriter(store.metricHistory(), KEY, RUN, token, log, { stepIntervalMs: 0 });
  await first.begin(undefined);
  await first.checkpoint({ epoch: 1, step: 0, metrics: { loss: 1 } });
  await first.checkpoint({ epoch: 2, step: 0, metrics: { loss: 0.9 } });
  await first.close();
  const pointer = { checkpointId: 'ck-1', uri: 'file:///x', epoch: 1, step: 0, sha256: '0'.repeat(64), bytes: 1, metrics: {}, savedAt: new Date().toISOString() };
  const again = new MetricHistoryWriter(store.metricHistory(), KEY, RUN, token, log, { stepIntervalMs: 0 });
  await again.begin(pointer);
  await again.checkpoint({ epoch: 2, step: 0, metrics: { loss: 0.8 } });
  await again.close();
  const run = await readNewestRunHistory(store, KEY);
  assert.deepEqual(run?.attempts.map((a) => a.restart), [0, 1]);
  assert.deepEqual(run?.points.map((p) => [p.epoch, p.metrics.loss]), [[1, 1], [2, 0.8]]);
  assert.equal(run?.stored.length, 3);
});
