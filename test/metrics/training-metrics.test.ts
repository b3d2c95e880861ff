import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prometheusTelemetry } from '../../src/metrics/exporter';
import { ProgressTally } from '../../src/metrics/training';
import { HISTOGRAM_BUCKETS, METRICS } from '../../src/shared/metric-names';

test('ProgressTally: steps within and across epochs; an epoch is timed only when its start was seen', () => {
  const t = new ProgressTally(0, 0, 0);
  assert.deepEqual(t.observe(0, 3, 100), { steps: 3, epochs: 0, epochSeconds: null });
  assert.deepEqual(t.observe(0, 3, 150), { steps: 0, epochs: 0, epochSeconds: null }, 'a repeated report counts nothing');
  assert.deepEqual(t.observe(1, 0, 2000), { steps: 0, epochs: 1, epochSeconds: 2 }, 'a checkpoint at (e+1, 0) ends epoch e');
  assert.deepEqual(t.observe(1, 2, 2100), { steps: 2, epochs: 0, epochSeconds: null });
  assert.deepEqual(t.observe(2, 1, 3000), { steps: 1, epochs: 1, epochSeconds: 1 });
  assert.deepEqual(t.observe(1, 5, 3100), { steps: 0, epochs: 0, epochSeconds: null }, 'going backwards counts nothing');
  assert.deepEqual(t.observe(3, 0, 4000), { steps: 0, epochs: 1, epochSeconds: null }, 'epoch 2 started mid-way (at step 1): not timed');
});

test('ProgressTally: a resumed attempt starting mid-epoch does not time that epoch', () => {
  const t = new ProgressTally(4, 7, 0);
  assert.deepEqual(t.observe(5, 0, 500), { steps: 0, epochs: 1, epochSeconds: null });
  assert.equal(t.observe(6, 0, 1500).epochSeconds, 1);
  assert.deepEqual(t.observe(9, 0, 1600), { steps: 0, epochs: 3, epochSeconds: null }, 'several epochs at once: none timed');
});

test('prometheusTelemetry: bind address, worker label, seconds, _total, our buckets; a bad port names the field', () => {
  const t = prometheusTelemetry({ port: 9464, worker: 'w1' });
  assert.deepEqual(t.globalTags, { worker: 'w1' });
  assert.ok('prometheus' in t);
  assert.equal(t.prometheus.bindAddress, '0.0.0.0:9464');
  assert.equal(t.prometheus.countersTotalSuffix, true);
  assert.equal(t.prometheus.useSecondsForDurations, true);
  assert.deepEqual(Object.keys(t.prometheus.histogramBucketOverrides ?? {}).sort(), [METRICS.checkpointWriteDuration, METRICS.epochDuration].sort());
  for (const b of Object.values(HISTOGRAM_BUCKETS)) assert.deepEqual(b, [...b].sort((x, y) => x - y), 'buckets ascending');
  for (const port of [0, 70000, 1.5, NaN]) assert.throws(() => prometheusTelemetry({ port }), /metrics port: expected an integer from 1 to 65535, received/);
});
