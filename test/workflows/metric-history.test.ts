/**
 * Metric history and keep-best across a real crash: a worker child process (src/worker.ts) is
 * killed with SIGKILL in the middle of an epoch, after it has written step points past its last
 * checkpoint; a second worker resumes. The history read back (client and CLI, from the store
 * alone) has exactly one point per epoch, the dead attempt's later points are rewound, and the
 * checkpoint kept as best under `{ latest: 2, best: 1 }` is the best epoch's and verifies.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { LocalCheckpointStore, readNewestRunHistory } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import { comparePosition, pointPosition } from '../../src/shared/metric-history';
import { harnessWithWorkers, ROOT, uniqueQueue, waitFor } from '../helpers/env';

const bed = harnessWithWorkers();

// 16 steps × 70 ms ≈ 1.1 s per epoch; step points every 100 ms, written every 300 ms, so points
// past the newest checkpoint reach the store well before the epoch ends.
const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 70, seed: 11 };
const metricsEnv = { EXPERIMENTS_METRICS_STEP_INTERVAL_MS: '100', EXPERIMENTS_METRICS_FLUSH_INTERVAL_MS: '300' };

test('kill -9 mid-epoch: one point per epoch after the resume, the dead attempt’s later points rewound; the best checkpoint is kept and verifies', async () => {
  const taskQueue = uniqueQueue('history');
  const checkpointDir = path.join(bed.h.tmp, 'ck-history');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store });
  const worker = (label: string) => {
    return bed.spawn({ taskQueue, checkpointDir, name: `history-${label}`, extraEnv: metricsEnv });
  };
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'hist',
    policy: { heartbeatTimeout: '3s', checkpointsToKeep: { latest: 2, best: 1 }, retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const key = storeKey('hist', 'e');
  const newest = async () => (await store.list(key))[0];

  // Kill once attempt 1 has stored step points past its newest checkpoint (read before and after,
  // so no checkpoint landed in between).
  const atKill = await waitFor(
    async () => {
      const before = await newest();
      if (!before || before.epoch < 2) return undefined;
      const run = await readNewestRunHistory(store, key);
      const past = run?.stored.filter((p) => p.kind === 'step' && p.attempt === 1 && comparePosition(pointPosition(p), before) > 0) ?? [];
      const after = await newest();
      return past.length > 0 && after.checkpointId === before.checkpointId ? before : undefined;
    },
    { what: 'attempt 1 to store step points past its second epoch checkpoint', timeoutMs: 120_000 },
  );
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');
  worker('b');
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed');
  assert.equal(e.attempt, 2);
  assert.equal(e.resumedFrom, atKill.epoch);
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'bit-identical to an uninterrupted run');

  // Read as a client on another machine would: a fresh store handle on the same backing.
  const reader = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir) });
  const points = await reader.metrics('hist:e');
  const epochs = points.filter((p) => p.kind === 'epoch');
  assert.deepEqual(epochs.map((p) => p.epoch), [1, 2, 3, 4, 5, 6], 'exactly one point per epoch');
  for (const p of epochs) {
    assert.equal(p.invocation, 0);
    assert.equal(p.attempt, p.epoch <= atKill.epoch ? 1 : 2, `epoch ${p.epoch}: written by the attempt that trained it`);
    assert.ok(Number.isFinite(p.metrics.loss));
  }
  const positions = points.map((p) => `${p.kind}:${p.epoch}.${p.step ?? 0}`);
  assert.equal(new Set(positions).size, positions.length, 'no position twice');
  const steps = points.filter((p) => p.kind === 'step');
  assert.ok(steps.length >= params.epochs, `step points were sampled (${steps.length})`);
  for (const p of steps) assert.equal(p.attempt, comparePosition(pointPosition(p), atKill) > 0 ? 2 : 1, `step ${p.epoch}.${p.step} from the right attempt`);
  const run = await reader.metricRun('hist:e');
  assert.ok(run);
  assert.deepEqual(run.attempts.map((x) => [x.attempt, x.resumedAt]), [[1, null], [2, { epoch: atKill.epoch, step: atKill.step }]]);
  const rewound = run.stored.filter((p) => !run.points.includes(p));
  assert.ok(rewound.length > 0 && rewound.every((p) => p.attempt === 1 && comparePosition(pointPosition(p), atKill) > 0), 'the dead attempt’s points past the resume point are stored but hidden');

  // Keep-best: the manifest names the best end-of-epoch checkpoint, which is the best epoch's.
  const marks = await store.retention(key, run.runId);
  assert.ok(marks, 'the manifest marks latest and best');
  assert.equal(marks.latest.length, 2);
  assert.equal(marks.best.length, 1);
  const bestEpoch = epochs.reduce((x, y) => (y.metrics.loss < x.metrics.loss ? y : x));
  const kept = await store.list(key, { runId: run.runId });
  const best = kept.find((p) => p.checkpointId === marks.best[0]);
  assert.ok(best, 'the best checkpoint is still in the manifest');
  assert.equal(best.epoch, bestEpoch.epoch, `best is epoch ${bestEpoch.epoch} (loss ${bestEpoch.metrics.loss})`);
  assert.deepEqual(best.metrics, bestEpoch.metrics, 'the epoch point carries its checkpoint’s metrics');
  await store.read(best); // throws unless the blob's sha256 matches
  assert.ok(kept.length <= 3);

  // The CLI reads the same from the store, with no Temporal server in its environment.
  const cli = (args: string[]) =>
    promisify(execFile)(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, EXPERIMENTS_CHECKPOINT_DIR: checkpointDir, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    });
  assert.deepEqual(JSON.parse((await cli(['metrics', 'hist:e', '--json'])).stdout), points);
  const csv = (await cli(['metrics', 'hist:e', '--csv'])).stdout.trim().split('\n');
  assert.equal(csv[0], 'kind,epoch,step,attempt,invocation,time,loss');
  assert.deepEqual(csv.filter((l) => l.startsWith('epoch,')).map((l) => l.split(',')[1]), ['1', '2', '3', '4', '5', '6']);
  const text = (await cli(['metrics', 'hist:e'])).stdout;
  assert.match(text, new RegExp(`6 epoch points, ${steps.length} step points`));
  for (const [args, message] of [
    [['metrics', 'hist:nope'], /^experiments: no metric history for "hist:nope" in /],
    [['metrics', 'no-separator'], /^experiments: experiment id "no-separator": expected/],
    [['metrics', 'hist:e', '--json', '--csv'], /^experiments: --json and --csv: expected at most one/],
  ] as const) {
    const failed = await cli([...args]).then(
      () => assert.fail(`${args.join(' ')} should fail`),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(failed.code, 2, args.join(' '));
    assert.equal(failed.stderr.trim().split('\n').length, 1, `one line: ${failed.stderr}`);
    assert.match(failed.stderr.trim(), message);
  }
});
