/**
 * The one duration parser (src/shared/duration.ts): Temporal's `ms`-style strings, compound Go-style
 * ones, and everything formatDuration prints, read back to the same milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseDuration, requireDuration } from '../../src/shared/duration';

test("Temporal's ms-style strings", () => {
  const cases: [string, number][] = [
    ['500ms', 500], ['90s', 90_000], ['15m', 900_000], ['2h', 7_200_000], ['1.5 days', 129_600_000],
    ['1d', 86_400_000], ['2 weeks', 1_209_600_000], ['1y', 31_557_600_000], ['.5h', 1_800_000],
    ['1500', 1500], ['10 Minutes', 600_000], ['3 hrs', 10_800_000], ['  45sec ', 45_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('compound durations, as Go, the temporal CLI and formatDuration write them', () => {
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('2d4h5m6s'), 2 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000 + 6000);
  assert.equal(parseDuration('1m 30s'), 90_000);
  assert.equal(parseDuration('1h0.5m'), 3_630_000);
});

test('everything formatDuration prints reads back to the same (rounded) milliseconds', () => {
  for (const ms of [1, 999, 1000, 59_000, 61_000, 3_599_000, 3_600_000, 5_400_000, 86_399_000, 90_061_000, 400 * 86_400_000]) {
    const text = formatDuration(ms);
    assert.equal(parseDuration(text), ms < 1000 ? ms : Math.round(ms / 1000) * 1000, `${ms} → ${text}`);
  }
});

test('not durations: rejected, with the field named', () => {
  for (const text of ['', ' ', '1h30', 'h', '1 fortnight', '-5s', '0s', '0', '1h-30m', '1..5s', '5s!', 'ms', '0.0001ms']) {
    assert.equal(parseDuration(text), undefined, JSON.stringify(text));
  }
  assert.throws(() => requireDuration('policy.defaultTimeout', '1 fortnight'), /^Error: policy\.defaultTimeout: expected a duration such as '90s', '15m', '2h' or '1h30m', received "1 fortnight"$/);
  assert.throws(() => requireDuration('policy.heartbeatTimeout', 30), /policy\.heartbeatTimeout: .*received 30$/);
});
