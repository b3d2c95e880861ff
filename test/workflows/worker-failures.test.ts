/**
 * Worker failures with real processes and real signals: workers run as child processes
 * (`node src/worker.ts`) against the real dev server, and are killed with SIGKILL or SIGTERM, or
 * frozen with SIGSTOP and thawed with SIGCONT. Checkpoints are real files in a shared directory.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import { harnessWithWorkers, readJsonLines, uniqueQueue, waitFor } from '../helpers/env';

const bed = harnessWithWorkers();

// 16 steps × 50 ms ≈ 0.8 s per epoch: long enough to land a signal mid-epoch.
const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 50, seed: 11 };
const expectedSha = (p: object = params) => runMlpBare(parseMlpParams(p)).modelSha256;
// Long enough that the standby worker (which bundles workflows on start, slowly on a loaded
// machine) is always ready while the first one is still training.
const longParams = { ...params, epochs: 20 };

function setup(name: string) {
  const taskQueue = uniqueQueue(name);
  const checkpointDir = path.join(bed.h.tmp, `ck-${name}`);
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store });
  const worker = (label: string) => {
    return bed.spawn({ taskQueue, checkpointDir, name: `${name}-${label}` });
  };
  return { taskQueue, checkpointDir, store, client, worker };
}

async function latestCheckpoint(store: LocalCheckpointStore, key: string) {
  return (await store.list(key))[0];
}

test('crash-resume: kill -9 mid-epoch, a new worker resumes from the latest checkpoint and ends bit-identical', async () => {
  const { store, client, worker } = setup('crash');
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'crash',
    policy: { heartbeatTimeout: '3s', retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const key = storeKey('crash', 'e');
  await waitFor(async () => ((await latestCheckpoint(store, key))?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints' });
  await new Promise((r) => setTimeout(r, 300)); // into the middle of the next epoch
  const atKill = await latestCheckpoint(store, key);
  const epochInProgress = atKill.epoch; // epochs 0..atKill.epoch-1 are done
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');

  const b = worker('b');
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed');
  assert.equal(e.attempt, 2);
  assert.equal(e.resumedFrom, atKill.epoch, 'resumed from the checkpoint that was newest when the worker died');
  assert.ok(epochInProgress - (e.resumedFrom ?? -1) <= 1, 'at most one epoch recomputed');
  assert.equal(e.result?.modelSha256, expectedSha(), 'bit-identical to an uninterrupted run');
  const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'resuming training');
  assert.equal(resumed?.epoch, atKill.epoch);
  assert.equal(resumed?.attempt, 2);
  b.child.kill('SIGTERM');
  await b.exited;
});

test('graceful shutdown: SIGTERM checkpoints at the interruption point, another worker resumes long before the heartbeat timeout', async () => {
  const { store, client, worker } = setup('sigterm');
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'sigterm',
    policy: { heartbeatTimeout: '60s', retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params: longParams }],
  });
  const key = storeKey('sigterm', 'e');
  await waitFor(async () => ((await latestCheckpoint(store, key))?.epoch ?? 0) >= 1, { what: 'the first epoch checkpoint' });
  const b = worker('b');
  await b.ready;
  const before = await latestCheckpoint(store, key);
  assert.ok(before.epoch < longParams.epochs - 1, `still training when the standby worker is ready (checkpoint epoch ${before.epoch})`);
  await new Promise((r) => setTimeout(r, 300));
  const sentAt = Date.now();
  a.child.kill('SIGTERM');
  const exit = await a.exited;
  assert.equal(exit.code, 0, 'the SIGTERMed worker exits cleanly');

  const interruption = readJsonLines(a.logFile).find((l) => l.msg === 'interrupted: checkpointing at the next step boundary');
  assert.equal(interruption?.reason, 'worker-shutdown');
  const saved = readJsonLines(a.logFile).filter((l) => l.msg === 'checkpoint saved').at(-1);
  assert.ok(saved && (saved.step as number) > 0, 'the last checkpoint of the first worker is mid-epoch: taken at the interruption point');

  const resumedLine = await waitFor(() => readJsonLines(b.logFile).find((l) => l.msg === 'resuming training'), { what: 'the second worker to resume' });
  const resumeDelayMs = (resumedLine.time as number) - sentAt;
  assert.ok(resumeDelayMs < 30_000, `resumed ${resumeDelayMs} ms after SIGTERM, well before the 60 s heartbeat timeout`);
  assert.equal(resumedLine.epoch, saved.epoch);
  assert.equal(resumedLine.step, saved.step);

  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed');
  // A shutdown is a preemption, not a failed attempt: the next invocation starts at attempt 1.
  assert.equal(e.attempt, 1);
  assert.equal(e.preemptions, 1);
  assert.equal(e.result?.modelSha256, expectedSha(longParams));
  b.child.kill('SIGTERM');
  await b.exited;
});

test('corrupt checkpoint: the newest blob is truncated, the retry resumes from the previous one and logs a warning', async () => {
  const { store, client, worker } = setup('corrupt');
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'corrupt',
    policy: { heartbeatTimeout: '3s', checkpointsToKeep: 5, retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const key = storeKey('corrupt', 'e');
  await waitFor(async () => ((await latestCheckpoint(store, key))?.epoch ?? 0) >= 3, { what: 'three epochs of checkpoints' });
  a.child.kill('SIGKILL');
  await a.exited;
  const [newest, previous] = await store.list(key);
  const file = fileURLToPath(newest.uri);
  fs.truncateSync(file, Math.floor(newest.bytes / 2));

  const b = worker('b');
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed');
  assert.equal(e.resumedFrom, previous.epoch, 'resumed from the checkpoint before the corrupt one');
  assert.equal(e.result?.modelSha256, expectedSha());
  const warning = readJsonLines(b.logFile).find((l) => l.msg === 'skipping a checkpoint that does not verify');
  assert.ok(warning, 'a warning names the skipped checkpoint');
  assert.equal(warning.level, 40);
  assert.match(String(warning.warning), new RegExp(newest.checkpointId));
  b.child.kill('SIGTERM');
  await b.exited;
});

// A freeze lands mid-epoch, and the run outlasts the takeover.
const frozenParams = { ...params, epochs: 14, seed: 21 };

test('a worker frozen past the heartbeat timeout and thawed after another resumed cannot write: its checkpoints are refused', async () => {
  const name = 'frozen';
  const { store, client, worker } = setup(name);
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: name,
    policy: { heartbeatTimeout: '3s', checkpointsToKeep: 50, retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params: frozenParams }],
  });
  const key = storeKey(name, 'e');
  await waitFor(async () => ((await store.list(key))[0]?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints' });
  await new Promise((r) => setTimeout(r, 300)); // into the middle of the next epoch
  a.child.kill('SIGSTOP');

  const b = worker('b');
  const resumed = await waitFor(() => readJsonLines(b.logFile).find((l) => l.msg === 'resuming training'), {
    what: 'the second worker to resume after the heartbeat timeout',
    timeoutMs: 120_000,
  });
  // Usually attempt 2; 3 when the server had handed attempt 2 to the frozen worker's open poll.
  const newer = resumed.attempt as number;
  assert.ok(newer >= 2, `resumed by attempt ${newer}`);
  await waitFor(() => readJsonLines(b.logFile).some((l) => l.msg === 'checkpoint saved' && l.attempt === newer), { what: `a checkpoint of attempt ${newer}` });
  a.child.kill('SIGCONT');

  // The thawed attempt writes (an epoch checkpoint, or the interruption checkpoint once it learns
  // it was timed out), and every write is refused with both tokens logged.
  // (The thawed worker may also pick up an attempt the server handed to its open poll while it
  // was frozen; that one's registration is refused too, which is not what this looks for.)
  const refusal = await waitFor(
    () =>
      readJsonLines(a.logFile).find(
        (l) => l.level >= 50 && l.attempt === 1 && typeof l.msg === 'string' && l.msg.startsWith('checkpoint save for frozen/e') && l.msg.includes('is stale'),
      ),
    { what: 'the thawed attempt 1 to log a refused checkpoint write' },
  );
  const newest = refusal.newest as { invocation: number; attempt: number };
  assert.deepEqual(refusal.attempted, { invocation: 0, attempt: 1 });
  assert.ok(newest.invocation === 0 && newest.attempt >= newer, `refused for attempt ${newest.attempt}`);
  assert.match(String(refusal.msg), /^checkpoint save for frozen\/e \(run .*\) refused: attempt invocation 0 attempt 1 is stale, attempt invocation 0 attempt \d+ has started since/);
  assert.ok(!readJsonLines(a.logFile).some((l) => l.msg === 'checkpoint saved' && (l.time as number) > (resumed.time as number)), 'no save of attempt 1 succeeded after the resume');

  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.result?.modelSha256, expectedSha(frozenParams), 'bit-identical to an uninterrupted run');
  const run = (await store.list(key)).filter((p) => Date.parse(p.savedAt) > (resumed.time as number));
  assert.ok(run.length > 0, 'attempt 2 checkpointed after the resume');
  assert.deepEqual(
    run.filter((p) => Number(/-a(\d+)-/.exec(p.checkpointId)?.[1]) < newer).map((p) => p.checkpointId),
    [],
    'the manifest holds no entry of an older attempt written after the resume',
  );
  for (const c of [a, b]) c.child.kill('SIGTERM');
  await Promise.all([a.exited, b.exited]);
});
