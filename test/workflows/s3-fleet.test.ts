/**
 * Workers on separate "machines" sharing one S3 store: child-process workers (`node src/worker.ts`)
 * with separate, empty local directories, a real versitygw on 127.0.0.1 and the real dev server.
 * A worker is killed with SIGKILL mid-epoch and another resumes from the checkpoint it wrote to
 * S3; the S3 server is stopped (SIGSTOP) for a few seconds in the middle of training. Both end
 * with the uninterrupted run's modelSha256 and every listed checkpoint verifying. And the CLI, on a
 * machine with neither the checkpoint directory nor store credentials, gives hints for and resumes
 * a cancelled experiment: the checkpoint facts come from a worker, through Temporal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { S3CheckpointStore } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ProgramRegistry } from '../../src/activities/trainers/command';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import type { ExperimentSpec } from '../../src/shared/types';
import { ROOT, readJsonLines, spawnWorker, startHarness, uniqueQueue, waitFor, type ChildWorker, type Harness } from '../helpers/env';
import { startS3Server, type S3Server } from '../helpers/s3-server';
import { uninterruptedResult } from '../activities/command/helpers';

let h: Harness;
let s3: S3Server;
const children: ChildWorker[] = [];
before(async () => {
  [h, s3] = await Promise.all([startHarness(), startS3Server()]);
});
after(async () => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await s3?.stop();
  await h?.teardown();
});

// 16 steps × 50 ms ≈ 0.8 s per epoch: long enough to land a signal mid-epoch.
const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 50, seed: 11 };
const expectedSha = runMlpBare(parseMlpParams(params)).modelSha256;
// The pause test trains longer (~12 s), so the 4 s pause starts well before training ends even
// when the test sees the first checkpoint late on a loaded machine.
const longParams = { ...params, epochs: 14 };
const longSha = runMlpBare(parseMlpParams(longParams)).modelSha256;

const PROGRAMS_FILE = path.join(ROOT, 'examples/python/programs.yaml');

function setup(name: string, opts: { programsFile?: string } = {}) {
  const taskQueue = uniqueQueue(name);
  const prefix = `fleet/${name}`;
  // The test reads the store to know when to strike; the client-without-disk test covers the rest.
  const store = new S3CheckpointStore({
    bucket: s3.bucket,
    prefix,
    cacheDir: path.join(h.tmp, `${name}-test-cache`),
    connection: { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true },
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  const programs = opts.programsFile ? ProgramRegistry.fromFile(opts.programsFile) : undefined;
  const client = new ExperimentsClient({ client: h.env.client, taskQueue, store, programs });
  const machine = (label: string) => {
    // Each machine has its own, empty disk: a checkpoint directory that must stay unused, and a cache.
    const disk = path.join(h.tmp, `${name}-${label}-disk`);
    const w = spawnWorker(h, {
      taskQueue,
      checkpointDir: path.join(disk, 'checkpoints'),
      name: `${name}-${label}`,
      extraEnv: { ...s3.env(prefix), EXPERIMENTS_CHECKPOINT_CACHE_DIR: path.join(disk, 'cache') },
      programsFile: opts.programsFile,
    });
    children.push(w);
    return { ...w, disk };
  };
  return { store, client, machine, taskQueue };
}

/**
 * Two machines on one S3 store: A trains `spec` until two epochs are in S3, is killed with SIGKILL
 * mid-epoch, and B (an empty disk) finishes; returns what the caller checks beyond the shared part.
 */
async function killAResumeOnB(name: string, spec: ExperimentSpec, opts: { programsFile?: string; heartbeatTimeout: string }) {
  const { store, client, machine } = setup(name, opts);
  const a = machine('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: name,
    policy: { heartbeatTimeout: opts.heartbeatTimeout, retry: { initialInterval: '200ms' } },
    experiments: [spec],
  });
  const key = storeKey(name, spec.id);
  await waitFor(async () => ((await store.list(key))[0]?.epoch ?? 0) >= 2, { what: `two epochs of ${name} checkpoints in S3` });
  await new Promise((r) => setTimeout(r, 300)); // into the middle of the next epoch
  const atKill = (await store.list(key))[0];
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');

  const b = machine('b');
  const e = (await handle.result()).experiments[0];
  assert.equal(e.state, 'completed');
  assert.ok(atKill.uri.startsWith(`s3://${s3.bucket}/fleet/${name}/`), atKill.uri);
  // Neither machine used a local checkpoint directory: everything durable is in S3.
  for (const m of [a, b]) assert.equal(fs.existsSync(path.join(m.disk, 'checkpoints')), false, `${m.disk}/checkpoints unused`);
  for (const pointer of await store.list(key)) await store.read(pointer);
  b.child.kill('SIGTERM');
  await b.exited;
  return { e, atKill, b };
}

test('two machines: kill -9 worker A mid-epoch, worker B with an empty disk resumes from the checkpoint A wrote to S3, bit-identical', async () => {
  const { e, atKill, b } = await killAResumeOnB('two', { id: 'e', trainer: 'mlp', params }, { heartbeatTimeout: '3s' });
  assert.equal(e.attempt, 2);
  assert.equal(e.resumedFrom, atKill.epoch, "B resumed from the checkpoint that was A's newest when A died");
  assert.equal(e.result?.modelSha256, expectedSha, 'bit-identical to an uninterrupted run');
  assert.equal(readJsonLines(b.logFile).find((l) => l.msg === 'resuming training')?.epoch, atKill.epoch);
});

test('two machines, the Python reference trainer: kill -9 worker A mid-epoch, B resumes through its own empty local cache from the checkpoint A wrote to S3, bit-identical', async () => {
  // examples/python/train.py (program `softmax`): 25 steps × 30 ms ≈ 0.75 s per epoch.
  const pyParams = { epochs: 6, step_delay: 0.03, seed: 5 };
  const spec = { id: 'e', trainer: 'command', params: { program: 'softmax', params: pyParams } };
  const { e, atKill, b } = await killAResumeOnB('py', spec, { programsFile: PROGRAMS_FILE, heartbeatTimeout: '5s' });
  assert.ok(e.resumedFrom !== null && e.resumedFrom >= atKill.epoch, `B resumed from A's checkpoint at epoch ${atKill.epoch} or a newer one A adopted while dying (resumedFrom ${e.resumedFrom})`);
  assert.equal(e.result?.modelSha256, uninterruptedResult(pyParams).modelSha256, 'bit-identical to train.py run directly, uninterrupted');
  assert.ok(readJsonLines(b.logFile).some((l) => l.stream === 'stderr' && /resuming e from .* \(epoch \d+ step \d+\)/.test(String(l.line))), 'train.py on B said it resumed');
  // B's child read the checkpoint from B's own cache, filled from S3.
  const cached = fs.readdirSync(path.join(b.disk, 'cache'), { recursive: true }).map(String);
  assert.ok(cached.length > 0, `B's local cache holds what its child read (${b.disk}/cache)`);
});

test('the S3 server stopped (SIGSTOP) for a few seconds during training: training goes on, no checkpoint lost or half-visible', async () => {
  const { store, client, machine } = setup('paused');
  const a = machine('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'paused',
    policy: { heartbeatTimeout: '5s', checkpointsToKeep: 10, retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params: longParams }],
  });
  const key = storeKey('paused', 'e');
  // Strike on the worker's own log (written synchronously), not on an S3 listing: under load the
  // listing can be seen late enough for training to end before the pause begins.
  const savedEpochs = () => readJsonLines(a.logFile).filter((l) => l.msg === 'checkpoint saved').map((l) => Number(l.epoch));
  const newestSaved = () => Math.max(0, ...savedEpochs());
  await waitFor(() => newestSaved() >= 1, { what: 'the first epoch checkpoint saved', intervalMs: 50 });
  const atPause = newestSaved();
  const pausedAt = Date.now();
  s3.pause();
  let atResume: number;
  try {
    await new Promise((r) => setTimeout(r, 4000));
    atResume = newestSaved();
  } finally {
    s3.resume();
  }
  // Training must still have been running for the pause to mean anything; if not, say so.
  assert.ok(atPause <= longParams.epochs - 3, `the pause began at epoch ${atPause} of ${longParams.epochs}: too late to overlap training`);
  // Nothing reached S3 while it was stopped: at most a save already answered when SIGSTOP landed.
  assert.ok(atResume <= atPause + 1, `saves went on while S3 was stopped (epoch ${atPause} at the pause, ${atResume} at its end)`);
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed');
  assert.equal(e.result?.modelSha256, longSha, 'bit-identical to an uninterrupted run');
  const listed = await store.list(key);
  assert.equal(listed[0].epoch, longParams.epochs, 'the final checkpoint is listed');
  assert.deepEqual(
    listed.map((p) => p.epoch),
    [...listed.map((p) => p.epoch)].sort((x, y) => y - x),
  );
  for (const pointer of listed) await store.read(pointer);
  const saves = readJsonLines(a.logFile).filter((l) => l.msg === 'checkpoint saved');
  assert.ok(saves.length >= longParams.epochs, 'every epoch was checkpointed');
  // The pause really hit a save: the first save after the pause began waited for most of the 4 s.
  const firstAfter = saves.find((l) => (l.time as number) > pausedAt + 500);
  const lastBefore = [...saves].reverse().find((l) => (l.time as number) <= pausedAt + 500);
  assert.ok(firstAfter && lastBefore, 'saves on both sides of the pause');
  const gap = (firstAfter.time as number) - (lastBefore.time as number);
  assert.ok(gap >= 3000, `the save across the pause waited it out (${gap} ms between epoch ${lastBefore.epoch} and ${firstAfter.epoch})`);
  // Heartbeats went on while the save waited, so the attempt was not timed out.
  assert.equal(e.attempt, 1);
  a.child.kill('SIGTERM');
  await a.exited;
});

/** The `experiments` CLI as run on a machine without the store: no checkpoint dir, no AWS credentials. */
function cliWithoutStore(taskQueue: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue, NO_COLOR: '1' };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_') || name.startsWith('EXPERIMENTS_')) delete env[name];
  env.EXPERIMENTS_CHECKPOINT_DIR = path.join(h.tmp, 'no-such-disk', 'checkpoints');
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), ...args], { cwd: h.tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('a client without the store: hints and resume of a cancelled experiment work, and the resumed run ends bit-identical', async () => {
  const { store, client, machine, taskQueue } = setup('nodisk');
  const w = machine('a');
  await w.ready;
  const longer = { ...params, epochs: 10 };
  const handle = await client.startSession({
    sessionId: 'nodisk',
    policy: { heartbeatTimeout: '5s', retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params: longer }],
  });
  const key = storeKey('nodisk', 'e');
  await waitFor(async () => ((await store.list(key))[0]?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints in S3' });
  const cancelled = await cliWithoutStore(taskQueue, ['cancel', 'nodisk:e', '--reason', 'moving machines']);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  const summary = await client.waitForSession('nodisk');
  assert.equal(summary.experiments[0].state, 'interrupted');
  const newest = (await store.list(key))[0];

  const hints = await cliWithoutStore(taskQueue, ['hints', 'nodisk:e', '--json']);
  assert.equal(hints.code, 0, hints.stderr);
  const parsed = JSON.parse(hints.stdout) as { latestCheckpoint: { id: string; epoch: number; uri: string } | null; resumeCommand: string; warnings: string[] };
  assert.equal(parsed.latestCheckpoint?.id, newest.checkpointId, 'the checkpoint a worker verified in S3');
  assert.equal(parsed.latestCheckpoint?.uri, newest.uri);
  assert.deepEqual(parsed.warnings, []);
  assert.equal(parsed.resumeCommand, 'experiments resume nodisk:e');

  const resumed = await cliWithoutStore(taskQueue, ['resume', 'nodisk:e']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const m = /Resumed .* as (\S+):e \(session (\S+)\)/.exec(resumed.stdout);
  assert.ok(m, resumed.stdout);
  const after = await client.waitForSession(m[2]);
  const e = after.experiments[0];
  assert.equal(e.state, 'completed');
  assert.equal(e.resumedFrom, newest.epoch);
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(longer)).modelSha256, 'bit-identical to an uninterrupted run');
  assert.equal(fs.existsSync(path.join(h.tmp, 'no-such-disk')), false, 'the client never created or read a checkpoint directory');
  await handle.result().catch(() => undefined);
  w.child.kill('SIGTERM');
  await w.exited;
});
