/**
 * Preemption is not failure: a worker shutdown ends one training invocation and the next starts
 * at once, without using up `retry.maximumAttempts`. Real workers in child processes, stopped
 * with real SIGTERMs, against the real dev server; checkpoints are real files.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import type { ResumeHints } from '../../src/shared/types';
import { harnessWithWorkers, readJsonLines, uniqueQueue, waitFor } from '../helpers/env';

const bed = harnessWithWorkers();

const PREEMPTIONS = 8;
// 16 steps × 50 ms ≈ 0.8 s per epoch, ≈ 13 s of training in all. Only one worker runs at a time
// and each is stopped soon after it resumes, so training advances little per preemption.
const params = { epochs: 16, samples: 512, batchSize: 32, stepDelayMs: 50, seed: 21 };

test(`preemption storm: ${PREEMPTIONS} SIGTERMs with retry.maximumAttempts 2, the experiment completes bit-identical`, { timeout: 600_000 }, async () => {
  const taskQueue = uniqueQueue('storm');
  const checkpointDir = path.join(bed.h.tmp, 'ck-storm');
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue });
  const worker = (n: number) => {
    return bed.spawn({ taskQueue, checkpointDir, name: `storm-${n}` });
  };
  let current = worker(0);
  await current.ready;
  const handle = await client.startSession({
    sessionId: 'storm',
    // A heartbeat timeout far beyond the test: only the shutdowns can end an invocation.
    policy: { heartbeatTimeout: '5m', retry: { maximumAttempts: 2, initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });

  for (let n = 1; n <= PREEMPTIONS; n++) {
    const training = n === 1 ? 'starting training' : 'resuming training';
    await waitFor(() => readJsonLines(current.logFile).some((l) => l.msg === training), { timeoutMs: 120_000, what: `worker ${n - 1} to be training` });
    const live = await client.status('storm:e');
    assert.equal(live.state, 'running', `still running before preemption ${n}`);
    current.child.kill('SIGTERM');
    const exit = await current.exited;
    assert.equal(exit.code, 0, `worker ${n - 1} exits cleanly after SIGTERM`);
    assert.ok(
      readJsonLines(current.logFile).some((l) => l.msg === 'interrupted: checkpointing at the next step boundary' && l.reason === 'worker-shutdown'),
      `worker ${n - 1} checkpointed for the shutdown`,
    );
    current = worker(n);
    await current.ready;
  }

  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'bit-identical to an uninterrupted run');
  assert.equal(e.preemptions, PREEMPTIONS);
  assert.equal(e.attempt, 1, 'no attempt failed: preemptions are not attempts');

  const status = await client.status('storm:e');
  assert.equal(status.kind === 'experiment' && status.preemptions, PREEMPTIONS, 'the experiment status shows them');
  assert.equal(((await client.hints('storm:e')) as ResumeHints).preemptions, PREEMPTIONS, 'the hints show them');
  const memo = (await bed.h.env.client.workflow.getHandle('storm:e').describe()).memo as { experiment?: { preemptions?: number } };
  assert.equal(memo.experiment?.preemptions, PREEMPTIONS, 'the memo shows them');

  // Each preemption is a new invocation with its own number; every one ran attempt 1 only.
  const history = await bed.h.env.client.workflow.getHandle('storm:e').fetchHistory();
  const scheduled = (history.events ?? []).filter((ev) => ev.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
  assert.equal(scheduled.length, PREEMPTIONS + 1);
  const invocations = scheduled.map((ev) => {
    const payload = ev.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data;
    return (JSON.parse(Buffer.from(payload ?? []).toString('utf8')) as { invocation?: number }).invocation;
  });
  assert.deepEqual(invocations, [...Array(PREEMPTIONS + 1).keys()]);
  const attempts = (history.events ?? []).flatMap((ev) => (ev.activityTaskStartedEventAttributes ? [ev.activityTaskStartedEventAttributes.attempt] : []));
  assert.ok(attempts.every((a) => a === 1), `every invocation ran one attempt: ${attempts.join(',')}`);
  current.child.kill('SIGTERM');
  await current.exited;
});
