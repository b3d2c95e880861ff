import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LossTrails, sparkline } from '../../src/cli/sparkline';

test('sparkline: scaled between the trail minimum and maximum, one block per value', () => {
  assert.equal(sparkline([4, 3, 2, 1]), '█▆▃▁');
  assert.equal(sparkline([1, 8]), '▁█');
  assert.equal(sparkline([2, 2, 2]), '▄▄▄', 'a flat trail sits at mid-height');
  assert.equal(sparkline([]), '');
  assert.equal(sparkline([1, NaN, Infinity, 2]), '▁█', 'non-finite values are skipped');
  assert.equal(sparkline([9, 5, 4, 3, 2, 1], 3), '█▅▁', 'only the last `width` values, rescaled');
});

test('LossTrails: keeps changed values only, bounded per experiment, nothing for fewer than two', () => {
  const t = new LossTrails(4);
  t.add('a', 1.0);
  assert.equal(t.line('a'), '');
  t.add('a', 1.0); // a refresh without a new step
  t.add('a', null);
  t.add('a', 0.5);
  assert.equal(t.line('a'), '█▁');
  for (const v of [0.4, 0.3, 0.2, 0.1]) t.add('a', v);
  assert.equal([...t.line('a')].length, 4, 'bounded to capacity');
  assert.equal(t.line('a'), '█▆▃▁');
  assert.equal(t.line('b'), '');
  t.delete('a');
  assert.equal(t.line('a'), '');
});
