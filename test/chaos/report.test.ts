/** The chaos run's verdict from collected events (pure, no server). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chaosReport, eventsFromLogs, lostCheckpoints, maxRecomputed, reportTable, type ChaosRun, type CheckpointEvent, type PositionEvent } from '../../chaos/report';

const spe = { e: 10 };
const ck = (attempt: number, epoch: number, step: number, time: number, id = `c-${attempt}-${epoch}-${step}`): CheckpointEvent => ({ experimentId: 'e', attempt, epoch, step, time, checkpointId: id });
const at = (attempt: number, epoch: number, step: number, time: number): PositionEvent => ({ experimentId: 'e', attempt, epoch, step, time });

function run(over: Partial<ChaosRun> = {}): ChaosRun {
  return {
    seed: 5,
    faultPeriodMs: 45_000,
    wallMs: 90_000,
    faults: [
      { n: 1, kind: 'worker-kill9', atMs: 3000, injected: true, detail: 'slot 0' },
      { n: 2, kind: 'worker-sigterm', atMs: 6000, injected: false, detail: 'skipped' },
    ],
    experiments: [{ id: 'e', trainer: 'mlp', longRunning: false, state: 'completed', modelSha256: 'abc', expectedSha256: 'abc', attempts: 2, preemptions: 0, reason: null }],
    checkpoints: [ck(1, 1, 0, 100), ck(1, 2, 0, 200), ck(2, 3, 0, 400)],
    starts: [at(1, 0, 0, 50), at(2, 2, 0, 300)],
    samples: [at(1, 2, 5, 250)],
    stepsPerEpoch: spe,
    workflowTaskFailures: 0,
    guards: { staleWritesRefused: 0, watchdogStops: 0 },
    ...over,
  };
}

test('log lines: checkpoint saved and attempt starts are picked up, other lines and incomplete ones ignored', () => {
  const lines = [
    { msg: 'checkpoint saved', experimentId: 'e', attempt: 1, epoch: 1, step: 0, time: 10, checkpointId: 'x' },
    { msg: 'resuming training', experimentId: 'e', attempt: 2, epoch: 1, step: 0, time: 20 },
    { msg: 'starting training', experimentId: 'e', attempt: 1, epoch: 0, step: 0, time: 5 },
    { msg: 'checkpoint saved', experimentId: 'e', attempt: 1, epoch: 1, time: 11, checkpointId: 'no-step' },
    { msg: 'experiment worker started', time: 1 },
    { msg: 'checkpoint save for s/e refused: attempt invocation 0 attempt 1 is stale, attempt invocation 0 attempt 2 has started since', attempted: {}, newest: {}, experimentId: 'e', time: 30 },
    { msg: 'no step, checkpoint or output from the trainer for the heartbeat timeout: stopping it on this worker', experimentId: 'e', time: 40 },
  ];
  const { checkpoints, starts, guards } = eventsFromLogs(lines);
  assert.deepEqual(guards, { staleWritesRefused: 1, watchdogStops: 1 });
  assert.deepEqual(checkpoints, [ck(1, 1, 0, 10, 'x')]);
  assert.deepEqual(starts, [at(2, 1, 0, 20), at(1, 0, 0, 5)]);
});

test('a clean resume loses nothing and recomputes the part of an epoch the first attempt had reached', () => {
  const r = run();
  assert.deepEqual(lostCheckpoints(r), []);
  const worst = maxRecomputed(r);
  assert.equal(worst?.experimentId, 'e');
  assert.equal(worst?.attempt, 2);
  assert.ok(Math.abs(worst!.epochs - 0.5) < 1e-9, `recomputed ${worst?.epochs}`);
  const report = chaosReport(r);
  assert.equal(report.pass, true, report.problems.join('; '));
  assert.deepEqual(report.faultsByKind['worker-kill9'], { injected: 1, skipped: 0 });
  assert.deepEqual(report.faultsByKind['worker-sigterm'], { injected: 0, skipped: 1 });
  assert.equal(report.retries, 1);
});

test('a checkpoint durable before a retry started, and skipped by it, is lost and fails the run', () => {
  // Attempt 2 starts at epoch 1 although epoch 2 was saved at t=200, before it started at t=300.
  const r = run({ starts: [at(1, 0, 0, 50), at(2, 1, 0, 300)] });
  const lost = lostCheckpoints(r);
  assert.deepEqual(lost.map((l) => l.checkpointId), ['c-1-2-0']);
  assert.equal(lost[0].resumedAttempt, 2);
  const report = chaosReport(r);
  assert.equal(report.pass, false);
  assert.match(report.problems.join('\n'), /checkpoint c-1-2-0 \(epoch 2.00, attempt 1\) lost: attempt 2 resumed at 1.00/);
});

test('a checkpoint written after the retry started (a stale attempt) is not counted as lost', () => {
  const r = run({ checkpoints: [ck(1, 1, 0, 100), ck(1, 2, 0, 200), ck(1, 4, 0, 350)] });
  assert.deepEqual(lostCheckpoints(r), []);
  assert.ok(maxRecomputed(r)!.epochs < 1, 'progress after the retry started does not count either');
});

test('a fresh start of attempt 2 with progress behind it recomputes everything, beyond one interval', () => {
  const r = run({ starts: [at(1, 0, 0, 50), at(2, 0, 0, 300)], checkpoints: [] });
  assert.ok(Math.abs(maxRecomputed(r)!.epochs - 2.5) < 1e-9);
  const report = chaosReport(r);
  assert.equal(report.pass, false);
  assert.match(report.problems.join('\n'), /recomputed 2.50 epochs, more than one checkpoint interval/);
});

test('an experiment not completed, or completed with other bits, fails the run; the table says so', () => {
  const report = chaosReport(
    run({
      experiments: [
        { id: 'e', trainer: 'mlp', longRunning: false, state: 'completed', modelSha256: 'forged', expectedSha256: 'abc', attempts: 1, preemptions: 1, reason: null },
        { id: 'f', trainer: 'python', longRunning: true, state: 'failed', modelSha256: null, expectedSha256: 'def', attempts: 5, preemptions: 2, reason: 'too many attempts' },
      ],
    }),
  );
  assert.equal(report.pass, false);
  assert.equal(report.completed, 1);
  assert.equal(report.identical, 0);
  assert.deepEqual(report.problems.slice(0, 2), ['e: modelSha256 forged differs from the uninterrupted run\'s abc', 'f: ended failed (too many attempts)']);
  const table = reportTable(report);
  assert.match(table, /\| experiments completed \| 1 \/ 2 \|/);
  assert.match(table, /\| bit-identical to an uninterrupted run \| 0 \/ 2 \|/);
  assert.match(table, /worker-sigterm 0 \(\+1 skipped\)/);
  assert.match(table, /\| verdict \| FAIL \(2 problems\) \|/);
  assert.match(table, /\| seed \| 5 \|/);
  assert.match(table, /\| preemptions reported in the statuses \| 3 \|/);
});

test('a new invocation after a preemption (attempt 1 again) is a restart too, ordered by time', () => {
  // Invocation 2 starts at attempt 1 from epoch 1, though epoch 2 was durable before it started.
  const r = run({ starts: [at(1, 0, 0, 50), at(1, 1, 0, 300)] });
  assert.deepEqual(lostCheckpoints(r).map((l) => l.checkpointId), ['c-1-2-0']);
  assert.ok(Math.abs(maxRecomputed(r)!.epochs - 1.5) < 1e-9);
  assert.equal(chaosReport(r).retries, 1);
});

test('no experiments is a failure, not a vacuous pass', () => {
  assert.equal(chaosReport(run({ experiments: [], checkpoints: [], starts: [], samples: [] })).pass, false);
});
