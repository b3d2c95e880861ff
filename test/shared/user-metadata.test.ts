import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePolicy } from '../../src/shared/policy';
import { experimentDetails, experimentSummary, MAX_SUMMARY_CHARS, sessionDetails, sessionSummary, trainingSummary } from '../../src/shared/user-metadata';

const spec = { id: 'lr-0.05', trainer: 'mlp', params: { lr: 0.05, hidden: 16 } };

test('experiment summary: trainer, params in spec order, mode; resumeFrom named', () => {
  assert.equal(experimentSummary(spec, 'bounded'), 'mlp lr=0.05 hidden=16 · bounded');
  assert.equal(experimentSummary({ id: 'x', trainer: 'command' }, 'none'), 'command · none');
  assert.equal(experimentSummary({ ...spec, resumeFrom: { experiment: 's:e' } }, 'none'), 'mlp lr=0.05 hidden=16 · none · from s:e');
});

test('summaries stay one bounded line whatever the params hold', () => {
  const nasty = { id: 'n', trainer: 'mlp', params: { note: 'a\nb|c', layers: [64, 64], big: 'x'.repeat(500) } };
  const s = experimentSummary(nasty, 'bounded');
  assert.ok(!s.includes('\n') && !s.includes('|'), s);
  assert.ok(s.includes('layers=[64,64]'), s);
  assert.ok(s.includes('big=xxxxxxxx') && s.includes('…'), 'a long value is clipped');
  const many = { id: 'm', trainer: 'mlp', params: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`p${i}`, i])) };
  assert.ok(experimentSummary(many, 'bounded').length <= MAX_SUMMARY_CHARS);
});

test('training summary names the invocation after a preemption', () => {
  assert.equal(trainingSummary(spec, 0), 'train mlp lr=0.05 hidden=16');
  assert.equal(trainingSummary(spec, 2), 'train mlp lr=0.05 hidden=16 · invocation 3');
});

test('details: a markdown table of the experiment; the session lists its experiments', () => {
  const policy = resolvePolicy({ defaultTimeout: '10m' });
  const d = experimentDetails(spec, 'sweep', 'bounded', policy);
  assert.match(d, /\| session \| sweep \|/);
  assert.match(d, /\| mode \| bounded \(10m in total\) \|/);
  assert.match(d, /\| param lr \| 0\.05 \|/);
  assert.equal(sessionSummary([spec, { id: 'b', trainer: 'command' }]), 'session · 2 experiments · mlp, command');
  assert.equal(sessionSummary([spec]), 'session · 1 experiment · mlp');
  const sd = sessionDetails([spec], policy);
  assert.match(sd, /- \*\*lr-0\.05\*\*: mlp lr=0\.05 hidden=16/);
  const many = Array.from({ length: 60 }, (_, i) => ({ id: `e${i}`, trainer: 'mlp' }));
  assert.match(sessionDetails(many, policy), /… and 10 more/);
});
