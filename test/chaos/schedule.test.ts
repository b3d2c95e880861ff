/** The chaos run's seeded parts: fault schedule, forged payloads and experiment set (pure, no server). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { experimentSet, referenceParams } from '../../chaos/experiments';
import { DEFAULT_WEIGHTS, describeFault, FAULT_KINDS, faultSchedule, signalArgs, type ScheduleOptions } from '../../chaos/schedule';

const options: ScheduleOptions = { seed: 7, durationMs: 180_000, workers: 3, experiments: 36, heartbeatTimeoutMs: 4000 };

test('the same seed gives the same schedule, another seed another one', () => {
  assert.deepEqual(faultSchedule(options), faultSchedule({ ...options }));
  assert.notDeepEqual(faultSchedule(options), faultSchedule({ ...options, seed: 8 }));
});

test('faults come every few seconds within the period, numbered in order', () => {
  const faults = faultSchedule({ ...options, minGapMs: 3000, maxGapMs: 6000 });
  assert.ok(faults.length >= 180 / 6 - 1 && faults.length <= 180 / 3, `${faults.length} faults in 180 s`);
  let previous = 0;
  faults.forEach((f, i) => {
    assert.equal(f.n, i + 1);
    const gap = f.atMs - previous;
    assert.ok(gap >= 2999 && gap <= 6001, `gap ${gap} ms before fault ${f.n}`);
    assert.ok(f.atMs < options.durationMs);
    previous = f.atMs;
  });
});

test('over a long schedule every kind occurs, roughly in proportion to its weight', () => {
  const faults = faultSchedule({ ...options, durationMs: 3_600_000 });
  const total = FAULT_KINDS.reduce((s, k) => s + DEFAULT_WEIGHTS[k], 0);
  for (const kind of FAULT_KINDS) {
    const share = faults.filter((f) => f.kind === kind).length / faults.length;
    const want = DEFAULT_WEIGHTS[kind] / total;
    assert.ok(Math.abs(share - want) < 0.06, `${kind}: share ${share.toFixed(3)}, weight share ${want.toFixed(3)}`);
  }
});

test('worker faults name a slot, a SIGSTOP outlasts the heartbeat timeout, signals name a target', () => {
  for (const f of faultSchedule({ ...options, durationMs: 600_000 })) {
    if (f.kind.startsWith('worker-')) assert.ok(f.slot >= 0 && f.slot < 3, `slot ${f.slot}`);
    else assert.equal(f.slot, -1);
    if (f.kind === 'worker-sigstop') assert.ok(f.stopMs > options.heartbeatTimeoutMs + 1000, `stop ${f.stopMs} ms`);
    else assert.equal(f.stopMs, 0);
    if (f.kind === 'forged-signal') {
      assert.ok(f.signal && f.signal.target >= 0 && f.signal.target <= 36);
      assert.match(describeFault(f), f.signal.target === 0 ? /to the session/ : /to experiment #\d+/);
    } else assert.equal(f.signal, null);
  }
});

test('bad schedule options are rejected with the values received', () => {
  assert.throws(() => faultSchedule({ ...options, minGapMs: 5000, maxGapMs: 1000 }), /minGapMs <= maxGapMs, received 5000 and 1000/);
  assert.throws(() => faultSchedule({ ...options, workers: 0 }), /at least one worker, received 0/);
});

test('forged payloads: none, null, a number, a huge string, a forged final status', () => {
  const ctx = { sessionId: 's', experimentIds: ['a', 'b'] };
  const args = (payload: Parameters<typeof signalArgs>[0]['payload']) => signalArgs({ name: 'experimentFinished', payload, target: 0, claims: 1 }, ctx);
  assert.deepEqual(args('none'), []);
  assert.deepEqual(args('null'), [null]);
  assert.equal(typeof args('number')[0], 'number');
  assert.ok((args('huge-string')[0] as string).length >= 256 * 1024);
  const forged = args('forged-status')[0] as { status: { id: string; state: string; result: { modelSha256: string } } };
  assert.equal(forged.status.id, 'b');
  assert.equal(forged.status.state, 'completed');
  assert.equal(forged.status.result.modelSha256, 'forged');
});

test('experiment set: the requested mix, sized to the training time, reference params without delays', () => {
  const set = experimentSet({ seed: 3, count: 36, python: 6, longRunning: 10, trainMs: 60_000, epochMs: 2000 });
  assert.equal(set.length, 36);
  assert.equal(new Set(set.map((e) => e.id)).size, 36);
  assert.equal(set.filter((e) => e.trainer === 'python').length, 6);
  assert.equal(set.filter((e) => e.longRunning).length, 10);
  assert.ok(set.some((e) => e.trainer === 'python' && e.longRunning) && set.some((e) => e.trainer === 'python' && !e.longRunning));
  assert.ok(set.some((e) => e.trainer === 'mlp' && e.longRunning) && set.some((e) => e.trainer === 'mlp' && !e.longRunning));
  for (const e of set) {
    assert.ok(e.epochs >= 0.75 * 30 - 1 && e.epochs <= 1.25 * 30 + 1, `${e.id}: ${e.epochs} epochs`);
    assert.equal(e.params.epochs, e.epochs);
    const ref = referenceParams(e);
    assert.equal('stepDelayMs' in ref || 'step_delay' in ref, false);
    assert.equal(ref.seed, e.params.seed);
  }
  assert.deepEqual(experimentSet({ seed: 3, count: 36, python: 6, longRunning: 10, trainMs: 60_000 }), set);
  assert.throws(() => experimentSet({ seed: 1, count: 4, python: 3, longRunning: 2, trainMs: 1000 }), /python \(3\) \+ longRunning \(2\) <= count \(4\)/);
});
