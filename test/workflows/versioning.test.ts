/**
 * Worker deployment versioning on the real dev server: a session started on build A stays
 * pinned to A after build B, whose experiment workflow is deliberately incompatible (it
 * starts with a timer no A history has, test/fixtures/altered-workflows/added-timer.ts),
 * is made current with `temporal worker deployment set-current-version`, the rollout
 * docs/versioning.md describes. The old session, including an experiment it starts only after
 * the switch, completes on A; a new session runs on B.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { sessionStatusQuery } from '../../src/shared/definitions';
import { resolveTemporalCli } from '../../src/temporal-cli';
import { ROOT, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

const deploymentName = `exp-versioning-${process.pid}`;
const taskQueue = uniqueQueue('versioning');
let h: Harness;
let temporal: string;
const workers: RunningWorker[] = [];

before(async () => {
  h = await startHarness();
  temporal = (await resolveTemporalCli({ build: false })).path;
});
after(async () => {
  for (const w of workers) await w.stop();
  await h?.teardown();
});

/** The documented rollout step; retried until the version's pollers have registered. */
async function setCurrent(buildId: string): Promise<void> {
  await waitFor(
    () =>
      promisify(execFile)(temporal, ['worker', 'deployment', 'set-current-version', '--address', h.address, '--deployment-name', deploymentName, '--build-id', buildId, '--yes']).then(
        () => true,
      ),
    { timeoutMs: 120_000, intervalMs: 500, what: `build ${buildId} to become the current version of ${deploymentName}` },
  );
}

async function versioningOf(workflowId: string) {
  const raw = (await h.env.client.workflow.getHandle(workflowId).describe()).raw;
  const info = raw.workflowExecutionInfo?.versioningInfo;
  return { behavior: info?.behavior, buildId: info?.deploymentVersion?.buildId ?? null, deploymentName: info?.deploymentVersion?.deploymentName ?? null };
}

/** Which of the events that tell builds apart a workflow's history has. */
async function historyMarks(workflowId: string): Promise<{ timers: number; failedTasks: number }> {
  const events = (await h.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return { timers: events.filter((e) => e.timerStartedEventAttributes).length, failedTasks: events.filter((e) => e.workflowTaskFailedEventAttributes).length };
}

const PINNED = 1; // temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED

describe('worker versioning', { timeout: 600_000 }, () => {
  test('a session pinned to build A completes on A after an incompatible build B is made current; a new session runs on B', async () => {
    const a = await startWorker(h, { taskQueue, deployment: { name: deploymentName, buildId: 'build-a' } });
    workers.push(a);
    await setCurrent('build-a');

    // e0 runs at once; e1 is long-running, so it waits for approval and starts only after B is current.
    const quick = { epochs: 1, samples: 64, batchSize: 32 };
    const old = await a.client.startSession({
      sessionId: 'ver-old',
      policy: { longRunningThreshold: '1h' },
      experiments: [
        { id: 'e0', trainer: 'mlp', params: quick },
        { id: 'e1', trainer: 'mlp', params: quick, longRunning: true },
      ],
    });
    await waitFor(
      async () => {
        const snap = await old.query(sessionStatusQuery);
        return snap.experiments.find((e) => e.id === 'e0')?.state === 'completed' && snap.experiments.find((e) => e.id === 'e1')?.state === 'awaiting-approval';
      },
      { timeoutMs: 120_000, what: 'e0 done and e1 awaiting approval on build A' },
    );

    const b = await startWorker(h, {
      taskQueue,
      deployment: { name: deploymentName, buildId: 'build-b' },
      workflowsPath: path.join(ROOT, 'test', 'fixtures', 'altered-workflows', 'added-timer.ts'),
    });
    workers.push(b);
    await setCurrent('build-b');

    // The approval is a new workflow task of the old session, and e1 a child started now: both stay on A.
    await a.client.approve('ver-old', { by: 'ops' });
    const oldSummary = await old.result();
    assert.equal(oldSummary.completed, 2, JSON.stringify(oldSummary));
    for (const id of ['ver-old', 'ver-old:e0', 'ver-old:e1']) {
      assert.deepEqual(await versioningOf(id), { behavior: PINNED, buildId: 'build-a', deploymentName }, `${id} is pinned to build A`);
      // No failed workflow task (B never replayed it) and no timer (A's code ran).
      assert.deepEqual(await historyMarks(id), { timers: 0, failedTasks: 0 }, id);
    }

    const fresh = await b.client.startSession({ sessionId: 'ver-new', experiments: [{ id: 'e0', trainer: 'mlp', params: quick }] });
    const newSummary = await fresh.result();
    assert.equal(newSummary.completed, 1, JSON.stringify(newSummary));
    assert.deepEqual(await versioningOf('ver-new'), { behavior: PINNED, buildId: 'build-b', deploymentName });
    assert.deepEqual(await versioningOf('ver-new:e0'), { behavior: PINNED, buildId: 'build-b', deploymentName });
    assert.deepEqual(await historyMarks('ver-new:e0'), { timers: 1, failedTasks: 0 }, "the new session's experiment ran B's code (its timer)");
  });
});
