/**
 * Faults from outside the client, against the real dev server: malformed and forged signals and
 * updates sent by name (the client's raw handle and the Temporal CLI), workflows started raw with
 * the Temporal CLI and malformed input, and the bounded limit under CPU load.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { resolvePolicy } from '../../src/shared/policy';
import { resolveTemporalCli } from '../../src/temporal-cli';
import { durationSeconds, logLines, startHarness, startWorker, trainingActivitySchedules, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
let temporal: string;
const hogs: ChildProcess[] = [];
before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('faults');
  w = await startWorker(h, { taskQueue });
  temporal = (await resolveTemporalCli({ build: false })).path;
  assert.ok(temporal, 'a Temporal CLI binary');
});
after(async () => {
  for (const hog of hogs) hog.kill('SIGKILL');
  await w?.stop();
  await h?.teardown();
});

/** Runs the Temporal CLI against the test server. */
function cli(args: string[]) {
  const r = spawnSync(temporal, [...args, '--address', h.address, '--namespace', 'default'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `temporal ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function eventsOf(workflowId: string) {
  return (await h.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}
async function workflowTaskFailures(workflowId: string): Promise<number> {
  return (await eventsOf(workflowId)).filter((e) => e.workflowTaskFailedEventAttributes).length;
}

const params = { epochs: 6, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 5 };
const huge = 'x'.repeat(200_000);

test('signals with no input, null, a number, a wrong type, a huge string, or forged reports jam nothing', { timeout: 300_000 }, async () => {
  const handle = await w.client.startSession({
    sessionId: 'sig',
    policy: { maxConcurrent: 2 },
    experiments: [
      { id: 'a', trainer: 'mlp', params },
      { id: 'b', trainer: 'mlp', params: { ...params, seed: 6 } },
    ],
  });
  const session = h.env.client.workflow.getHandle('sig');
  await waitFor(
    async () => {
      const s = await w.client.sessionSnapshot('sig');
      return s.experiments.every((e) => e.state === 'running');
    },
    { what: 'both experiments to run' },
  );
  const childRunId = (await h.env.client.workflow.getHandle('sig:a').describe()).runId;
  const forged = (state: string, id = 'a') => ({ status: { id, state, reason: 'forged', result: { modelSha256: 'f'.repeat(64) } } });
  const bad: unknown[][] = [[], [null], [42], ['text'], [[1, 2]], [{ by: 42 }], [huge], [{ by: '   ', note: huge }]];

  for (const args of bad) {
    for (const name of ['approve', 'cancelReason', 'close', 'experimentFinished']) await session.signal(name, ...args);
    for (const id of ['sig:a', 'sig:b']) {
      for (const name of ['cancelReason', 'experimentFinished']) await h.env.client.workflow.getHandle(id).signal(name, ...args);
    }
  }
  // Forged reports: no run id, a made-up one, and even the child's real run id while it runs.
  await session.signal('experimentFinished', forged('failed'));
  await session.signal('experimentFinished', { ...forged('completed'), runId: 'not-a-run' });
  await session.signal('experimentFinished', { ...forged('timed-out'), runId: childRunId });
  await session.signal('experimentFinished', { ...forged('interrupted', 'b'), runId: childRunId });
  // The Temporal CLI, with no input at all and with JSON null.
  cli(['workflow', 'signal', '--workflow-id', 'sig', '--name', 'experimentFinished']);
  cli(['workflow', 'signal', '--workflow-id', 'sig', '--name', 'approve', '--input', 'null']);
  cli(['workflow', 'signal', '--workflow-id', 'sig:b', '--name', 'cancelReason']);

  // Update validators reject with a message naming the field, and the update never runs.
  for (const [arg, message] of [
    [undefined, /experiments: expected a non-empty array/],
    [42, /experiments: expected a non-empty array/],
    [[{ id: 'x' }], /experiments\[0\]\.trainer: expected string/],
    [[{ id: 'a', trainer: 'mlp' }], /experiments\[0\]\.id: expected a unique id/],
    [[{ id: huge, trainer: 'mlp' }], /experiments\[0\]\.id: /],
  ] as const) {
    const update = arg === undefined ? session.executeUpdate('addExperiments') : session.executeUpdate('addExperiments', { args: [arg] });
    await assert.rejects(update, (err: Error) => {
      assert.match(`${err.message} ${String((err.cause as Error | undefined)?.message)}`, message);
      return true;
    });
  }

  const summary = await handle.result();
  assert.equal(summary.state, 'completed');
  assert.deepEqual(
    summary.experiments.map((e) => [e.id, e.state, e.reason, e.result?.modelSha256]),
    [
      ['a', 'completed', null, runMlpBare(parseMlpParams(params)).modelSha256],
      ['b', 'completed', null, runMlpBare(parseMlpParams({ ...params, seed: 6 })).modelSha256],
    ],
    'every experiment completed with its own result; no forged report counted',
  );
  assert.equal(summary.approval.approved, false, 'no bad approve payload approved the session');
  assert.deepEqual(summary.audit, []);
  for (const id of ['sig', 'sig:a', 'sig:b']) assert.equal(await workflowTaskFailures(id), 0, `no workflow task of ${id} failed`);
  const ignored = (prefix: string) => logLines.some((l) => l.workflowId === 'sig' && l.msg.startsWith(prefix));
  assert.ok(ignored('experimentFinished signal ignored: runId: expected the run id'), 'a forged report is logged as ignored');
  assert.ok(ignored('approve signal ignored: by: expected'), 'a bad approval is logged as ignored');
});

/** Starts a workflow with the Temporal CLI and raw JSON input, as a user bypassing the client would. */
async function rawStart(type: string, workflowId: string, input: unknown): Promise<WorkflowHandle> {
  cli(['workflow', 'start', '--type', type, '--task-queue', taskQueue, '--workflow-id', workflowId, '--input', JSON.stringify(input)]);
  return h.env.client.workflow.getHandle(workflowId);
}

async function assertFailsNaming(handle: WorkflowHandle, message: RegExp): Promise<void> {
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause as { message?: string; nonRetryable?: boolean; name?: string };
    assert.equal(cause?.name, 'ApplicationFailure');
    assert.equal(cause.nonRetryable, true, 'non-retryable');
    assert.match(cause.message ?? '', message);
    return true;
  });
  assert.equal(await workflowTaskFailures(handle.workflowId), 0, 'failed at once, not by retrying a workflow task');
}

test('raw start with the Temporal CLI: malformed input fails at once, non-retryably, naming the field', { timeout: 120_000 }, async () => {
  const policy = resolvePolicy({});
  const { maxConcurrent: _omitted, ...noSlots } = policy;
  await assertFailsNaming(await rawStart('sessionWorkflow', 'raw-policy', { sessionId: 'raw-policy', policy: noSlots, experiments: [] }), /policy\.maxConcurrent: expected number, received nothing/);
  await assertFailsNaming(
    await rawStart('sessionWorkflow', 'raw-id', { sessionId: 'someone-else', policy, experiments: [{ id: 'e', trainer: 'mlp' }] }),
    /sessionId: expected the workflow id "raw-id", received "someone-else"/,
  );
  await assertFailsNaming(
    await rawStart('sessionWorkflow', 'raw-spec', { sessionId: 'raw-spec', policy, experiments: [{ id: 'e', trainer: 'mlp', params: 5 }] }),
    /experiments\[0\]\.params: expected record/,
  );
  await assertFailsNaming(await rawStart('experimentWorkflow', 'raw:e', { sessionId: 'raw', policy, timeoutMode: 'bounded' }), /spec: expected object/);
  await assertFailsNaming(await rawStart('experimentWorkflow', 'raw:other', { sessionId: 'raw', spec: { id: 'e', trainer: 'mlp' }, policy, timeoutMode: 'bounded' }), /expected the workflow id to be "raw:e"/);
});

test('bounded under load: past its limit, with two CPU hogs, the experiment ends timed-out with a checkpoint, within the limit plus 5 s', { timeout: 300_000 }, async () => {
  for (let i = 0; i < 2; i++) hogs.push(spawn('sh', ['-c', 'exec yes > /dev/null'], { stdio: 'ignore' }));
  const limitS = 3;
  const work = { epochs: 12, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 9 }; // ≈ 8 s of work
  const handle = await w.client.startSession({
    sessionId: 'load',
    policy: { defaultTimeout: `${limitS}s`, heartbeatTimeout: '10s' },
    experiments: [{ id: 'e', trainer: 'mlp', params: work }],
  });
  const [e] = (await handle.result()).experiments;
  assert.equal(e.state, 'timed-out', e.reason ?? '');
  assert.match(e.reason ?? '', new RegExp(`limit of ${limitS}s \\(defaultTimeout, in total across attempts\\)`));
  assert.ok(e.latestCheckpoint, 'the timed-out experiment has a checkpoint');
  assert.equal(e.attempt, 1, 'a timeout is not retried');
  const hints = await w.client.hints('load:e');
  assert.equal(!Array.isArray(hints) && hints.latestCheckpoint?.id, e.latestCheckpoint.id, 'the hints name the newest checkpoint');

  const schedules = await trainingActivitySchedules(h, 'load:e');
  assert.equal(schedules.length, 1);
  assert.ok(durationSeconds(schedules[0].scheduleToCloseTimeout) <= limitS, 'the limit is a schedule-to-close bound');
  const events = await eventsOf('load:e');
  const at = (ev: (typeof events)[number]) => Number(ev.eventTime?.seconds ?? 0) + (ev.eventTime?.nanos ?? 0) / 1e9;
  const scheduledEvent = events.find((ev) => ev.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
  const closed = events.find(
    (ev) =>
      String(ev.activityTaskFailedEventAttributes?.scheduledEventId ?? ev.activityTaskTimedOutEventAttributes?.scheduledEventId ?? '') === String(scheduledEvent?.eventId),
  );
  assert.ok(scheduledEvent && closed, 'training was scheduled and ended');
  const ranS = at(closed) - at(scheduledEvent);
  assert.ok(ranS <= limitS + 5, `training ran ${ranS.toFixed(2)} s, limit ${limitS} s`);
  assert.ok(at(events[events.length - 1]) - at(events[0]) <= limitS + 5, 'the experiment as a whole ended within the limit plus 5 s');
});
