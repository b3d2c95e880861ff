/**
 * The `command` trainer on the real dev server: registered programs (examples/python/train.py
 * run by /usr/bin/python3) complete with the result of an uninterrupted direct run, survive
 * kill -9 and SIGTERM of their worker, stop on cancel, and fail by the exit table; specs naming
 * an unregistered program, or setting what only the worker may set, run nothing. Workers run
 * in-process where no signal reaches them, and as child processes where one is killed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ProgramRegistry } from '../../src/activities/trainers/command';
import { ExperimentsClient } from '../../src/client';
import { WORKFLOW_TYPES, type SessionSummary } from '../../src/shared/definitions';
import { storeKey } from '../../src/shared/ids';
import { resolvePolicy } from '../../src/shared/policy';
import type { ResumeHints } from '../../src/shared/types';
import {
  logLines,
  readJsonLines,
  ROOT,
  spawnWorker,
  startHarness,
  startWorker,
  uniqueQueue,
  waitFor,
  type ChildWorker,
  type Harness,
  type RunningWorker,
} from '../helpers/env';
import { processGone, PYTHON, spec, TEST_PROGRAMS, TRAIN, uninterruptedResult } from './command/helpers';

describe('experiments on the dev server', () => {
  let h: Harness;
  let w: RunningWorker;
  let programsFile: string;
  const children: ChildWorker[] = [];
  before(async () => {
    h = await startHarness();
    w = await startWorker(h, { taskQueue: uniqueQueue('command'), programs: TEST_PROGRAMS });
    programsFile = path.join(h.tmp, 'programs.yaml');
    fs.writeFileSync(programsFile, `# what an operator writes\nprograms:\n  - name: softmax\n    argv: [${PYTHON}, ${TRAIN}]\n    cwd: ${ROOT}\n    epochsParam: epochs\n`);
  });
  after(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await w?.stop();
    await h?.teardown();
  });

  /** Attempts of the training activity that started, from the experiment's history. */
  const startedAttempts = async (workflowId: string) => {
    const events = (await h.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const training = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment').map((e) => String(e.eventId)));
    return events
      .filter((e) => e.activityTaskStartedEventAttributes && training.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
      .map((e) => e.activityTaskStartedEventAttributes?.attempt);
  };

  test('with no programs registered nothing runs: the client rejects the spec, and a raw start fails naming the field without spawning', async () => {
    const taskQueue = uniqueQueue('command-none');
    const bare = await startWorker(h, { taskQueue });
    try {
      const marker = path.join(h.tmp, 'ran-a-program');
      const touch = ['/usr/bin/touch', marker];
      await assert.rejects(bare.client.startSession({ sessionId: 'cmd-none-client', experiments: [spec('e', {}, 'touch')] }), {
        name: 'InvalidInputError',
        message: /^experiments\[0\]\.params\.program: expected a registered program, and this worker has none .*received "touch"$/,
      });
      // Started by workflow type, as any starter in the namespace can: only the worker stands in the way.
      const experiments = [
        spec('named', {}, 'touch'),
        { id: 'command', trainer: 'command', params: { command: touch } },
        { id: 'env', trainer: 'command', params: { program: 'touch', env: { LD_PRELOAD: marker } } },
        { id: 'cwd', trainer: 'command', params: { program: 'touch', cwd: h.tmp } },
        { id: 'executable', trainer: 'command', params: { program: 'touch', executable: touch[0] } },
      ];
      const handle = await h.env.client.workflow.start(WORKFLOW_TYPES.session, {
        workflowId: 'cmd-none-raw',
        taskQueue,
        args: [{ sessionId: 'cmd-none-raw', policy: resolvePolicy({ retry: { initialInterval: '100ms' } }), experiments }],
      });
      const summary = (await handle.result()) as SessionSummary;
      const reasons = Object.fromEntries(summary.experiments.map((e) => [e.id, [e.state, e.attempt, e.reason]]));
      assert.match(String(reasons.named[2]), /params\.program: expected a registered program, and this worker has none/);
      for (const field of ['command', 'env', 'cwd', 'executable']) {
        assert.match(String(reasons[field][2]), new RegExp(`params\\.${field}: expected no ${field} in a spec`), field);
      }
      for (const [id, [state]] of Object.entries(reasons)) {
        assert.equal(state, 'failed', id);
        assert.deepEqual(await startedAttempts(`cmd-none-raw:${id}`), [1], `${id}: failed at once, not retried`);
      }
      const failure = (await h.env.client.workflow.getHandle('cmd-none-raw:named').fetchHistory()).events?.find((e) => e.activityTaskFailedEventAttributes)
        ?.activityTaskFailedEventAttributes?.failure;
      assert.deepEqual([failure?.applicationFailureInfo?.type, failure?.applicationFailureInfo?.nonRetryable], ['InvalidParams', true]);
      assert.equal(fs.existsSync(marker), false, 'no program ran');
      assert.ok(!logLines.some((l) => l.msg === 'trainer process started' && String(l.workflowId).startsWith('cmd-none')), 'no child process was spawned');
    } finally {
      await bare.stop();
    }
  });

  test('an unregistered program is rejected by a client that knows the programs, and by the worker, listing the registered ones', async () => {
    await assert.rejects(w.client.startSession({ sessionId: 'cmd-unknown', experiments: [spec('e', {}, 'bash')] }), {
      message: /^experiments\[0\]\.params\.program: expected one of the programs registered on this worker \(crash-7, .*, softmax, softmax-1s-grace\), received "bash"$/,
    });
    const handle = await h.env.client.workflow.start(WORKFLOW_TYPES.session, {
      workflowId: 'cmd-unknown-raw',
      taskQueue: w.worker.options.taskQueue,
      args: [{ sessionId: 'cmd-unknown-raw', policy: resolvePolicy({}), experiments: [spec('e', {}, 'bash')] }],
    });
    const [e] = ((await handle.result()) as SessionSummary).experiments;
    assert.equal(e.state, 'failed');
    assert.deepEqual(await startedAttempts('cmd-unknown-raw:e'), [1], 'not retried');
    assert.match(e.reason ?? '', /params\.program: expected one of the programs registered on this worker \(crash-7, .*\), received "bash"/);
  });

  const store = () => new LocalCheckpointStore(w.checkpointDir);
  const pidOf = (workflowId: string, attempt = 1) =>
    logLines.find((l) => l.msg === 'trainer process started' && l.workflowId === workflowId && l.attempt === attempt)?.pid as number | undefined;

  test('an experiment completes with the result of an uninterrupted run, and its checkpoints are in the manifest', async () => {
    const params = { epochs: 4, seed: 3 };
    const handle = await w.client.startSession({ sessionId: 'cmd-ok', policy: { checkpointsToKeep: 10 }, experiments: [spec('e', params)] });
    const summary = await handle.result();
    const e = summary.experiments[0];
    const expected = uninterruptedResult(params);
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 1);
    assert.equal(e.result?.finalLoss, expected.metrics.loss, 'the same loss to the last digit');
    assert.equal(e.result?.accuracy, expected.metrics.accuracy);
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    assert.equal(e.epochs, 4);

    const manifest = await store().list(storeKey('cmd-ok', 'e'));
    assert.deepEqual(
      manifest.map((p) => [p.checkpointId, p.epoch, p.step]),
      [4, 3, 2, 1].map((n) => [`ckpt-e000${n}-s000000`, n, 0]),
    );
    for (const pointer of manifest) {
      assert.equal(path.dirname(fileURLToPath(pointer.uri)), fs.realpathSync(path.join(w.checkpointDir, 'cmd-ok', 'e')));
      assert.deepEqual(await store().read(pointer), fs.readFileSync(fileURLToPath(pointer.uri)), 'verifies against its recorded sha256');
      assert.deepEqual(Object.keys(pointer.metrics).sort(), ['accuracy', 'loss']);
    }
    assert.equal(e.latestCheckpoint?.id, 'ckpt-e0004-s000000');
    const pid = pidOf('cmd-ok:e');
    assert.ok(pid, 'the trainer pid is logged with the run context');
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to be gone` });
  });

  test('kill -9 of `experiments worker --programs FILE`: the python child exits too, and a second worker resumes from the latest checkpoint to the same result', async () => {
    const taskQueue = uniqueQueue('command-kill');
    const checkpointDir = path.join(h.tmp, 'ck-command-kill');
    const client = new ExperimentsClient({ client: h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir), programs: ProgramRegistry.fromFile(programsFile) });
    const worker = (name: string) => {
      const c = spawnWorker(h, { taskQueue, checkpointDir, name, programsFile });
      children.push(c);
      return c;
    };
    const a = worker('command-kill-a');
    await a.ready;
    // 25 steps × 20 ms ≈ 0.5 s per epoch.
    const params = { epochs: 8, step_delay: 0.02, seed: 5 };
    const handle = await client.startSession({
      sessionId: 'cmd-kill',
      policy: { heartbeatTimeout: '3s', retry: { initialInterval: '200ms' } },
      experiments: [spec('e', params)],
    });
    const key = storeKey('cmd-kill', 'e');
    const latest = async () => (await client.store.list(key))[0];
    await waitFor(async () => ((await latest())?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200)); // into the next epoch
    const started = readJsonLines(a.logFile).find((l) => l.msg === 'trainer process started');
    const pid = started?.pid as number;
    assert.ok(pid, 'the worker logged the trainer pid');
    assert.equal(processGone(pid), false, 'python is training');
    a.child.kill('SIGKILL');
    assert.equal((await a.exited).signal, 'SIGKILL');
    // Read after the kill: what the dead worker adopted last is what the retry must resume from.
    const atKill = await latest();
    assert.ok(atKill.epoch >= 2);
    // Nobody signals the child: it sees EOF on stdin and exits by itself (protocol section 8).
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to exit after its worker died`, timeoutMs: 15_000 });

    const b = worker('command-kill-b');
    const summary = await handle.result();
    const e = summary.experiments[0];
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 2);
    assert.equal(e.resumedFrom, atKill.epoch, 'resumed from the checkpoint that was newest when the worker died');
    const expected = uninterruptedResult(params);
    assert.equal(e.result?.finalLoss, expected.metrics.loss, 'the same loss to the last digit');
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'trainer process started');
    assert.equal(resumed?.resumeFrom, fileURLToPath(atKill.uri));
    b.child.kill('SIGTERM');
    await b.exited;
  });

  test('SIGTERM to the worker: the child checkpoints where it is, and another worker resumes from there without waiting for the heartbeat timeout', async () => {
    const taskQueue = uniqueQueue('command-shutdown');
    const checkpointDir = path.join(h.tmp, 'ck-command-shutdown');
    const client = new ExperimentsClient({ client: h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir) });
    const worker = (name: string) => {
      // The programs file through the environment this time (src/worker.ts reads EXPERIMENTS_PROGRAMS).
      const c = spawnWorker(h, { taskQueue, checkpointDir, name, extraEnv: { EXPERIMENTS_PROGRAMS: programsFile } });
      children.push(c);
      return c;
    };
    const a = worker('command-shutdown-a');
    await a.ready;
    const params = { epochs: 8, step_delay: 0.02, seed: 6 };
    const handle = await client.startSession({
      sessionId: 'cmd-shutdown',
      policy: { heartbeatTimeout: '2m', retry: { initialInterval: '200ms' } },
      experiments: [spec('e', params)],
    });
    const key = storeKey('cmd-shutdown', 'e');
    await waitFor(async () => (await client.store.list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    const pid = readJsonLines(a.logFile).find((l) => l.msg === 'trainer process started')?.pid as number;
    assert.ok(pid);
    const sentAt = Date.now();
    a.child.kill('SIGTERM');
    assert.equal((await a.exited).code, 0, 'the worker shuts down cleanly');
    assert.ok(processGone(pid), 'the trainer exited before its worker did');
    const aLog = readJsonLines(a.logFile);
    assert.equal(aLog.find((l) => l.msg === 'interrupting the trainer: SIGTERM to its process group')?.reason, 'worker-shutdown');
    const said = aLog.find((l) => l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
    assert.ok(said, 'train.py stopped on SIGTERM');
    const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
    const [newest] = await client.store.list(key);
    assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the interruption checkpoint was adopted before the worker exited');

    // Started only now, so the retry cannot have gone anywhere else.
    const b = worker('command-shutdown-b');
    const summary = await handle.result();
    const e = summary.experiments[0];
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 2);
    const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'trainer process started');
    assert.equal(resumed?.resumeFrom, fileURLToPath(newest.uri));
    // A lost worker would be noticed only after the 2 min heartbeat timeout; a shut-down one hands over at once.
    assert.ok((resumed.time as number) - sentAt < 90_000, `resumed ${(resumed.time as number) - sentAt} ms after SIGTERM`);
    const expected = uninterruptedResult(params);
    assert.equal(e.result?.finalLoss, expected.metrics.loss);
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    b.child.kill('SIGTERM');
    await b.exited;
  });

  test('cancel: the child gets SIGTERM, checkpoints and exits; the experiment is interrupted and hints name that checkpoint', async () => {
    const params = { epochs: 40, step_delay: 0.02, seed: 8 };
    const session = await w.client.startSession({ sessionId: 'cmd-cancel', experiments: [spec('e', params)] });
    const workflowId = 'cmd-cancel:e';
    const key = storeKey('cmd-cancel', 'e');
    await waitFor(async () => (await store().list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200));
    await w.client.cancel(workflowId, 'enough');

    const handle = h.env.client.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    const status = await w.client.status(workflowId);
    assert.equal(status.kind, 'experiment');
    assert.equal(status.state, 'interrupted');

    const sigterm = logLines.find((l) => l.workflowId === workflowId && l.msg === 'interrupting the trainer: SIGTERM to its process group');
    assert.equal(sigterm?.reason, 'cancelled');
    const said = logLines.find((l) => l.workflowId === workflowId && l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
    assert.ok(said, 'the child logged that SIGTERM stopped it (stderr lines carry the run context)');
    const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
    const [newest] = await store().list(key);
    assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the newest checkpoint is the one saved on SIGTERM');
    assert.ok(!logLines.some((l) => l.workflowId === workflowId && /did not exit within its grace period/.test(l.msg)), 'no SIGKILL was needed');

    const hints = (await w.client.hints(workflowId)) as ResumeHints;
    assert.equal(hints.latestCheckpoint?.id, newest.checkpointId);
    assert.equal(hints.latestCheckpoint?.step, step);
    assert.equal(hints.resumeCommand, `experiments resume ${workflowId}`);
    assert.deepEqual(hints.warnings, []);
    assert.equal((await session.result()).experiments[0].state, 'interrupted');
    const pid = pidOf(workflowId);
    assert.ok(pid);
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to be gone` });
  });

  test('a child that ignores SIGTERM is killed after the grace period; the experiment is interrupted at its last good checkpoint', async () => {
    const params = { epochs: 40, step_delay: 0.02, seed: 9, ignore_sigterm: true };
    const session = await w.client.startSession({ sessionId: 'cmd-stubborn', experiments: [spec('e', params, 'softmax-1s-grace')] });
    const workflowId = 'cmd-stubborn:e';
    const key = storeKey('cmd-stubborn', 'e');
    await waitFor(async () => (await store().list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200));
    await w.client.cancel(workflowId);

    const handle = h.env.client.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
    const status = await w.client.status(workflowId);
    assert.equal(status.kind, 'experiment');
    assert.equal(status.state, 'interrupted');
    const killed = logLines.find((l) => l.workflowId === workflowId && /did not exit within its grace period: SIGKILL/.test(l.msg));
    assert.equal(killed?.gracePeriod, '1s');
    const exited = logLines.find((l) => l.workflowId === workflowId && l.msg === 'trainer process exited');
    assert.equal(exited?.signal, 'SIGKILL');

    const [newest] = await store().list(key);
    assert.equal(newest.step, 0, 'the last good checkpoint is an end-of-epoch one: the child never saved on SIGTERM');
    const hints = (await w.client.hints(workflowId)) as ResumeHints;
    assert.equal(hints.latestCheckpoint?.id, newest.checkpointId);
    assert.deepEqual(hints.warnings, []);
    assert.equal((await session.result()).experiments[0].state, 'interrupted');
  });

  test('a checkpoint path outside the directory or a missing file is refused with a logged error, and the run goes on', async () => {
    const outside = { epochs: 5, seed: 21, bad_checkpoint_path: '/etc/hostname', fail_at_epoch: 2 };
    const missing = { epochs: 3, seed: 22, bad_checkpoint_path: 'never-written.json' };
    const handle = await w.client.startSession({
      sessionId: 'cmd-refuse',
      policy: { checkpointsToKeep: 10, retry: { initialInterval: '200ms' } },
      experiments: [spec('outside', outside), spec('missing', missing)],
    });
    const summary = await handle.result();
    const [a, b] = summary.experiments;

    const refusedOutside = logLines.find((l) => l.level === 50 && l.workflowId === 'cmd-refuse:outside' && l.path === '/etc/hostname');
    assert.ok(refusedOutside, 'a logged error names the path');
    assert.match(refusedOutside.msg, /^refused checkpoint \/etc\/hostname from the trainer: cannot adopt checkpoint \/etc\/hostname .*outside the checkpoint directory/);
    const refusedMissing = logLines.find((l) => l.level === 50 && l.workflowId === 'cmd-refuse:missing' && l.path === 'never-written.json');
    assert.ok(refusedMissing);
    assert.match(refusedMissing.msg, /never-written\.json.*file does not exist/);

    // The refused checkpoint at the end of epoch 0 is not a resume point; the crash in epoch 2
    // resumes from the end of epoch 1 (a good one), and attempt 2's first checkpoint (the end of
    // epoch 2, announced under bad_checkpoint_path again) is refused too.
    assert.equal(a.state, 'completed', a.reason ?? '');
    assert.equal(a.attempt, 2);
    assert.equal(a.resumedFrom, 2);
    assert.equal(a.result?.modelSha256, uninterruptedResult(outside).modelSha256);
    assert.equal(a.result?.finalLoss, uninterruptedResult(outside).metrics.loss);
    const aManifest = (await store().list(storeKey('cmd-refuse', 'outside'))).map((p) => p.epoch).sort();
    assert.deepEqual(aManifest, [2, 4, 5], 'epochs 1 (attempt 1) and 3 (attempt 2) were refused');

    assert.equal(b.state, 'completed', b.reason ?? '');
    assert.equal(b.attempt, 1);
    assert.equal(b.result?.modelSha256, uninterruptedResult(missing).modelSha256);
    const bManifest = await store().list(storeKey('cmd-refuse', 'missing'));
    assert.deepEqual(bManifest.map((p) => p.epoch).sort(), [2, 3]);
    assert.ok(bManifest.every((p) => !p.uri.includes('never-written')));
  });

  test('exit codes: a fatal line fails at once with TrainerFatal; a crash is retried with the stderr tail and resumes to the same result', async () => {
    const crash = { epochs: 3, seed: 4, fail_at_epoch: 1 };
    const handle = await w.client.startSession({
      sessionId: 'cmd-exit',
      policy: { retry: { initialInterval: '200ms' } },
      experiments: [spec('fatal', { lr: 'fast' }), spec('crash', crash)],
    });
    const summary = await handle.result();
    const [fatal, crashed] = summary.experiments;

    assert.equal(fatal.state, 'failed');
    assert.equal(fatal.attempt, 1, 'not retried');
    assert.match(fatal.reason ?? '', /params\.lr: expected a number > 0 and <= 100, received "fast"/);
    const history = await h.env.client.workflow.getHandle('cmd-exit:fatal').fetchHistory();
    const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
    const starts = history.events?.filter((e) => e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled?.eventId));
    assert.deepEqual(starts?.map((e) => e.activityTaskStartedEventAttributes?.attempt), [1]);
    const failure = history.events?.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes?.failure;
    assert.equal(failure?.applicationFailureInfo?.type, 'TrainerFatal');
    assert.equal(failure?.applicationFailureInfo?.nonRetryable, true);
    assert.equal(failure?.message, 'params.lr: expected a number > 0 and <= 100, received "fast"', 'the fatal message, verbatim');

    assert.equal(crashed.state, 'completed', crashed.reason ?? '');
    assert.equal(crashed.attempt, 2);
    assert.equal(crashed.resumedFrom, 1);
    const expected = uninterruptedResult(crash);
    assert.equal(crashed.result?.finalLoss, expected.metrics.loss);
    assert.equal(crashed.result?.modelSha256, expected.modelSha256);
    const firstFailure = logLines.find((l) => l.workflowId === 'cmd-exit:crash' && l.attempt === 1 && l.type === 'TrainerCrashed');
    assert.ok(firstFailure, 'attempt 1 logged its failure');
    assert.equal(firstFailure.level, 40);
    assert.equal(firstFailure.code, 1);
    assert.match(firstFailure.msg, /^trainer \(program softmax\) exited with code 1; last \d+ lines of stderr:\n/);
    assert.match(firstFailure.msg, /simulated crash at epoch 1 step 12/, 'the stderr tail is in the failure message');
  });
});
