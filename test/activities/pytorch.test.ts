/**
 * Real PyTorch under the plugin, on the real dev server: examples/python/train_torch.py (an MLP
 * on scikit-learn's digits, run by Debian's /usr/bin/python3 with python3-torch) registered as the
 * worker program `digits-torch` from examples/python/programs.yaml. Workers that are killed run
 * as child processes (`experiments worker --programs FILE`), killed with real signals.
 *
 * "The uninterrupted sha256" is what train_torch.py prints when started directly, without the
 * plugin: every interrupted, killed or cancelled run must end with exactly those bits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ProgramRegistry } from '../../src/activities/trainers/command';
import { experimentsTable } from '../../src/cli/output';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import { logLines, readJsonLines, ROOT, spawnWorker, startHarness, startWorker, uniqueQueue, waitFor, type ChildWorker, type Harness, type RunningWorker } from '../helpers/env';
import { assertTorchInstalled, PYTHON, TRAIN_TORCH } from '../helpers/python';

const PROGRAMS_FILE = path.join(ROOT, 'examples/python/programs.yaml');
const PROGRAM = 'digits-torch';
const LONG = 180_000; // torch imports slowly on a loaded machine: generous limits, never asserted timings
const STEPS_PER_EPOCH = 45; // 1438 training samples / batch 32

/** 3 epochs of 45 steps; 30 ms a step is long enough to land a signal between two checkpoints. */
const slow = { epochs: 3, step_delay: 0.03, checkpoint_every: 5 };

let h: Harness;
let w: RunningWorker;
const children: ChildWorker[] = [];
before(async () => {
  assertTorchInstalled();
  h = await startHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('torch'), programs: ProgramRegistry.fromFile(PROGRAMS_FILE) });
});
after(async () => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await w?.stop();
  await h?.teardown();
});

interface ResultLine {
  metrics: { loss: number; accuracy: number };
  modelSha256: string;
}
const references = new Map<string, ResultLine>();

/** train_torch.py run directly (no plugin, no delay): the uninterrupted result for these params. */
function uninterrupted(params: Record<string, unknown>): ResultLine {
  const own = Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'step_delay' && k !== 'checkpoint_every'));
  const key = JSON.stringify(own);
  const cached = references.get(key);
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-torch-direct-'));
  try {
    const run = spawnSync(PYTHON, [TRAIN_TORCH], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, EXPERIMENT_CHECKPOINT_DIR: dir, EXPERIMENT_PARAMS: key },
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: LONG,
    });
    assert.equal(run.status, 0, `train_torch.py run directly failed: ${run.stderr}`);
    const result = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string } & ResultLine)
      .find((m) => m.type === 'result');
    assert.ok(result, `train_torch.py printed no result line:\n${run.stdout}`);
    references.set(key, result);
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const spec = (id: string, params: Record<string, unknown>) => ({ id, trainer: 'command', params: { program: PROGRAM, params } });

/** Child-process workers on their own task queue and checkpoint directory, and a client for them. */
function childSetup(name: string) {
  const taskQueue = uniqueQueue(name);
  const checkpointDir = path.join(h.tmp, `ck-${name}`);
  const client = new ExperimentsClient({ client: h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir), programs: ProgramRegistry.fromFile(PROGRAMS_FILE) });
  const worker = (label: string) => {
    const c = spawnWorker(h, { taskQueue, checkpointDir, name: `${name}-${label}`, programsFile: PROGRAMS_FILE });
    children.push(c);
    return c;
  };
  return { client, worker };
}

/** The position train_torch.py logged when it resumed ("resuming <id> at epoch E step S"). */
function resumedAt(lines: readonly Record<string, unknown>[]): [number, number] | undefined {
  const line = lines.find((l) => l.stream === 'stderr' && /resuming .* at epoch \d+ step \d+/.test(String(l.line)));
  const m = /at epoch (\d+) step (\d+)/.exec(String(line?.line ?? ''));
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

test('uninterrupted under the plugin: validation accuracy >= 0.90 in the result and the results table, the direct run\'s sha256, mid-epoch checkpoints', { timeout: LONG }, async (t) => {
  const params = { epochs: 3 };
  const summary = await (await w.client.startSession({ sessionId: 'torch-ok', policy: { checkpointsToKeep: 50 }, experiments: [spec('e', params)] })).result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.ok((e.result?.accuracy ?? 0) >= 0.9, `validation accuracy ${e.result?.accuracy}`);
  assert.equal(e.result?.modelSha256, uninterrupted(params).modelSha256);
  assert.equal(e.result?.accuracy, uninterrupted(params).metrics.accuracy);
  const table = experimentsTable(summary.experiments);
  const row = table.split('\n').find((l) => l.startsWith('e '));
  const percent = Number(/(\d+\.\d)%/.exec(row ?? '')?.[1]);
  assert.ok(percent >= 90, `the results table shows the accuracy:\n${table}`);
  const positions = (await new LocalCheckpointStore(w.checkpointDir).list(storeKey('torch-ok', 'e'))).map((c) => [c.epoch, c.step]);
  assert.ok(positions.some(([, step]) => step > 0), 'mid-epoch checkpoints are adopted');
  assert.deepEqual(positions[0], [3, 0], 'the newest is the end of the last epoch');
  t.diagnostic(`validation accuracy ${e.result?.accuracy}, modelSha256 ${e.result?.modelSha256} (direct run: the same)`);
});

test('kill -9 of the worker at a random step mid-epoch: a new worker resumes mid-epoch from the newest checkpoint and ends with the uninterrupted sha256', { timeout: LONG }, async (t) => {
  const { client, worker } = childSetup('torch-kill');
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'torch-kill',
    policy: { heartbeatTimeout: '5s', retry: { initialInterval: '200ms' } },
    experiments: [spec('e', slow)],
  });
  const key = storeKey('torch-kill', 'e');
  const latest = async () => (await client.store.list(key))[0];
  // A random point in epoch 1: after a random mid-epoch checkpoint, then a random part of a step.
  const targetStep = 5 * (1 + Math.floor(Math.random() * 7)); // 5..35
  await waitFor(async () => {
    const c = await latest();
    return c !== undefined && (c.epoch > 1 || (c.epoch === 1 && c.step >= targetStep));
  }, { what: `a checkpoint at epoch 1 step ${targetStep}`, timeoutMs: LONG });
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');
  const atKill = await latest(); // read after the kill: what the dead worker adopted last
  assert.ok(atKill.step > 0 && atKill.step < STEPS_PER_EPOCH, `the newest checkpoint is mid-epoch (epoch ${atKill.epoch} step ${atKill.step})`);

  const b = worker('b');
  const e = (await handle.result()).experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  // A killed worker is a failed attempt (a SIGTERM would be a preemption).
  assert.equal(e.attempt, 2);
  assert.equal(e.preemptions, 0);
  const bLog = readJsonLines(b.logFile);
  assert.equal(bLog.find((l) => l.msg === 'trainer process started')?.resumeFrom, fileURLToPath(atKill.uri), 'resumed from the newest checkpoint');
  assert.deepEqual(resumedAt(bLog), [atKill.epoch, atKill.step], 'train_torch.py resumed mid-epoch, at that checkpoint\'s batch');
  assert.equal(e.result?.modelSha256, uninterrupted(slow).modelSha256, 'bit-identical to an uninterrupted run');
  assert.ok((e.result?.accuracy ?? 0) >= 0.9);
  t.diagnostic(`killed after the checkpoint at epoch ${atKill.epoch} step ${atKill.step}; resumed there; modelSha256 ${e.result?.modelSha256} = uninterrupted`);
  b.child.kill('SIGTERM');
  await b.exited;
});

test('SIGTERM of its worker hands the run to another worker at once, which resumes from the interruption point', { timeout: LONG }, async (t) => {
  const { client, worker } = childSetup('torch-term');
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'torch-term',
    // A lost worker would only be noticed after this; a shut-down one hands over at once.
    policy: { heartbeatTimeout: '3m', retry: { initialInterval: '200ms' } },
    experiments: [spec('e', slow)],
  });
  const key = storeKey('torch-term', 'e');
  await waitFor(async () => ((await client.store.list(key))[0]?.step ?? 0) >= 5, { what: 'a mid-epoch checkpoint', timeoutMs: LONG });
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
  const sentAt = Date.now();
  a.child.kill('SIGTERM');
  assert.equal((await a.exited).code, 0, 'the worker shuts down cleanly');
  const aLog = readJsonLines(a.logFile);
  assert.equal(aLog.find((l) => l.msg === 'interrupting the trainer: SIGTERM to its process group')?.reason, 'worker-shutdown');
  const said = aLog.find((l) => l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
  const tail = () => aLog.slice(-15).map((l) => `${l.msg} ${l.line ?? ''}`).join('\n');
  assert.ok(said, `train_torch.py stopped on SIGTERM; the worker's log ends:\n${tail()}`);
  const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
  const [newest] = await client.store.list(key);
  assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the interruption point was checkpointed and adopted before the worker exited');

  // Started only now, so the retry cannot go anywhere else; its start-up counts against the limit below.
  const b = worker('b');
  const e = (await handle.result()).experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  // A shutdown is a preemption, not a failed attempt: the next invocation runs attempt 1.
  assert.equal(e.attempt, 1);
  assert.equal(e.preemptions, 1);
  const bLog = readJsonLines(b.logFile);
  const started = bLog.find((l) => l.msg === 'trainer process started');
  assert.equal(started?.resumeFrom, fileURLToPath(newest.uri));
  assert.deepEqual(resumedAt(bLog), [epoch, step], 'resumed from the interruption point');
  assert.ok((started?.time as number) - sentAt < 90_000, `resumed ${(started?.time as number) - sentAt} ms after SIGTERM, not after the 3 min heartbeat timeout`);
  assert.equal(e.result?.modelSha256, uninterrupted(slow).modelSha256);
  t.diagnostic(`SIGTERM at epoch ${epoch} step ${step}; resumed ${(started?.time as number) - sentAt} ms later; modelSha256 ${e.result?.modelSha256} = uninterrupted`);
  b.child.kill('SIGTERM');
  await b.exited;
});

test('cancel: the flag is set, the run checkpoints at the next step boundary and ends interrupted; resume finishes it with the uninterrupted sha256', { timeout: LONG }, async (t) => {
  const session = await w.client.startSession({ sessionId: 'torch-cancel', experiments: [spec('e', slow)] });
  const workflowId = 'torch-cancel:e';
  const key = storeKey('torch-cancel', 'e');
  const store = new LocalCheckpointStore(w.checkpointDir);
  await waitFor(async () => ((await store.list(key))[0]?.step ?? 0) >= 5, { what: 'a mid-epoch checkpoint', timeoutMs: LONG });
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100)));
  await w.client.cancel(workflowId, 'enough for now');
  assert.equal((await session.result()).experiments[0].state, 'interrupted');
  const status = await w.client.status(workflowId);
  assert.equal(status.kind === 'experiment' && status.state, 'interrupted');

  const said = logLines.find((l) => l.workflowId === workflowId && l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
  assert.ok(said, 'train_torch.py saw the flag');
  const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
  const [newest] = await store.list(key);
  assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the newest checkpoint is the one taken at the step boundary after the cancel');
  assert.ok(step > 0, 'mid-epoch');
  assert.ok(!logLines.some((l) => l.workflowId === workflowId && /did not exit within its grace period/.test(l.msg)), 'no SIGKILL was needed');

  const resumed = await w.client.resume(workflowId);
  const summary = await w.client.waitForSession(resumed.sessionId);
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.resumedFrom, epoch);
  const started = logLines.find((l) => l.workflowId === resumed.workflowId && l.msg === 'trainer process started');
  assert.equal(started?.resumeFrom, fileURLToPath(newest.uri));
  assert.equal(e.result?.modelSha256, uninterrupted(slow).modelSha256);
  t.diagnostic(`cancelled at epoch ${epoch} step ${step}; resumed as ${resumed.workflowId}; modelSha256 ${e.result?.modelSha256} = uninterrupted`);
});
