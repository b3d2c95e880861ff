/**
 * End-to-end through the Temporal Web UI (2.42, served by the dev server): headless chromium
 * cancels an experiment and a whole session with the UI's own "Request Cancellation", approves a
 * session with "Send a Signal", and filters the workflow list by our search attributes. Every
 * outcome is then checked through the client, like the CLI would see it.
 *
 * Needs chromium (`apt-get install -y chromium`); without it the tests fail, they never skip.
 * Screenshots go to .artifacts/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { ResumeHints } from '../../src/shared/types';
import { startWorker, uniqueQueue, waitFor, type RunningWorker } from '../helpers/env';
import {
  currentDetailsText,
  launchBrowser,
  mainText,
  openTab,
  openWorkflow,
  requestCancellation,
  requestCancellationButton,
  screenshot,
  sendSignal,
  startUiHarness,
  statusBadge,
  uiSettings,
  visibleInCurrentDetails,
  workflowListUrl,
  type UiBrowser,
  type UiHarness,
} from './helpers';

const TEST_TIMEOUT_MS = 240_000;
/** About 1 s an epoch: slow enough to click in the UI while it trains. */
const slow = { epochs: 8, samples: 512, batchSize: 32, stepDelayMs: 60 };

let h: UiHarness;
let w: RunningWorker;
let ui: UiBrowser;
before(async () => {
  ui = await launchBrowser(); // first: without chromium, fail before starting anything
  h = await startUiHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('ui') });
});
after(async () => {
  await ui?.close();
  await w?.stop();
  await h?.teardown();
});

/** Experiments the cancel tests interrupted from the UI, for the list-filter test to look for too. */
const interruptedFromUi: string[] = [];

async function waitForWorkflow(workflowId: string): Promise<void> {
  await waitFor(() => h.env.client.workflow.getHandle(workflowId).describe(), { timeoutMs: 60_000, what: `workflow ${workflowId} to exist` });
}

const isCancelled = (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure';

test('the dev UI allows write actions (cancel, signal): the other tests depend on it', async () => {
  const settings = await uiSettings(h.uiUrl);
  assert.equal(settings.DisableWriteActions, false);
  assert.equal(settings.WorkflowCancelDisabled, false);
  assert.equal(settings.WorkflowSignalDisabled, false);
});

test('cancel an experiment from the UI: it checkpoints, ends interrupted and Canceled, and its page shows state and checkpoint', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page } = ui;
  const workflowId = 'ui-cancel:e';
  await w.client.startSession({ sessionId: 'ui-cancel', experiments: [{ id: 'e', trainer: 'mlp', params: slow }] });
  await waitForWorkflow(workflowId);

  // Load the page while it trains, so the click itself is quick once epoch 2 is reached.
  await openWorkflow(page, h.uiUrl, workflowId);
  await requestCancellationButton(page).waitFor();
  const live = await waitFor(
    async () => {
      const s = await w.client.status(workflowId);
      return s.kind === 'experiment' && s.epoch >= 2 ? s : undefined;
    },
    { timeoutMs: 120_000, what: 'the experiment to reach epoch 2' },
  );
  const epochInProgress = live.epoch;
  await requestCancellation(page);

  const handle = h.env.client.workflow.getHandle(workflowId);
  await assert.rejects(handle.result(), isCancelled, 'the experiment ends Canceled (did it complete before the UI cancel landed?)');
  assert.equal((await handle.describe()).status.name, 'CANCELLED');
  const status = await w.client.status(workflowId);
  assert.equal(status.kind, 'experiment');
  assert.equal(status.state, 'interrupted');
  assert.ok(status.latestCheckpoint, 'a checkpoint was saved');
  const checkpointId = status.latestCheckpoint.id;
  assert.ok(status.latestCheckpoint.epoch >= epochInProgress, `checkpoint epoch ${status.latestCheckpoint.epoch} ≥ epoch in progress ${epochInProgress}`);
  const hints = (await w.client.hints(workflowId)) as ResumeHints;
  assert.equal(hints.latestCheckpoint?.id, checkpointId);
  interruptedFromUi.push(workflowId);

  // What a user sees after a reload: the badge, then state and checkpoint in current details,
  // memo and search attributes.
  await page.reload();
  await statusBadge(page, 'Canceled').waitFor();
  await openTab(page, 'user-metadata-tab');
  const details = await currentDetailsText(page, checkpointId);
  assert.match(details, /interrupted · checkpoint/);
  assert.match(details, /reason: cancelled/);
  assert.ok(details.includes(checkpointId), `current details name the checkpoint:\n${details}`);
  // Not only in the DOM: on screen, inside the fixed-height panel.
  for (const text of ['interrupted', checkpointId]) {
    const { visible, detail } = await visibleInCurrentDetails(page, text);
    assert.ok(visible, `${text} is readable in Current Details (${detail})`);
  }
  await screenshot(page, 'ui-cancelled-experiment.png');

  await openTab(page, 'memo-tab');
  await page.locator('main').getByText(checkpointId).first().waitFor();
  const memo = await mainText(page);
  assert.match(memo, /"state": "interrupted"/);
  assert.ok(memo.includes(`"id": "${checkpointId}"`), 'the memo names the checkpoint');
  await screenshot(page, 'ui-cancelled-experiment-memo.png');

  await openTab(page, 'search-attributes-tab');
  await page.locator('main').getByText('"ExperimentState": "interrupted"').waitFor();
  assert.match(await mainText(page), /"ExperimentEpoch": \d+/);
});

test('approve a session from the UI with the approve signal: the long-running experiment starts and completes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page } = ui;
  const sessionId = 'ui-approve';
  const handle = await w.client.startSession({
    sessionId,
    experiments: [{ id: 'long', trainer: 'mlp', params: { epochs: 2, samples: 256, batchSize: 32 }, longRunning: true }],
  });
  await waitFor(async () => (await w.client.sessionSnapshot(sessionId)).state === 'awaiting-approval', { what: 'the session to await approval' });

  await openWorkflow(page, h.uiUrl, sessionId);
  await sendSignal(page, 'approve', { by: 'ui-user', note: 'from the browser' });

  const snap = await waitFor(
    async () => {
      const s = await w.client.sessionSnapshot(sessionId);
      return s.approval.approved ? s : undefined;
    },
    { what: 'the session to record the approval' },
  );
  assert.equal(snap.approval.by, 'ui-user');
  assert.equal(snap.approval.note, 'from the browser');
  assert.deepEqual(
    snap.audit.map((a) => [a.by, a.source]),
    [['ui-user', 'signal']],
  );
  const summary = await handle.result();
  assert.equal(summary.state, 'completed');
  assert.equal(summary.experiments[0].state, 'completed');
  assert.equal(summary.experiments[0].timeoutMode, 'none', 'the approved experiment runs without a timeout');

  await page.reload();
  await statusBadge(page, 'Completed').waitFor();
  await openTab(page, 'user-metadata-tab');
  const details = await currentDetailsText(page, 'ui-user');
  assert.match(details, /approved by ui-user/);
  await screenshot(page, 'ui-approved-session.png');
});

test('cancel a session from the UI: the running experiment checkpoints and is interrupted, the queued one is cancelled', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page } = ui;
  const sessionId = 'ui-cancel-session';
  const handle = await w.client.startSession({
    sessionId,
    policy: { maxConcurrent: 1 },
    experiments: [
      { id: 'running', trainer: 'mlp', params: slow },
      { id: 'queued', trainer: 'mlp', params: slow },
    ],
  });
  await openWorkflow(page, h.uiUrl, sessionId);
  await requestCancellationButton(page).waitFor();
  await waitFor(
    async () => {
      const s = await w.client.status(`${sessionId}:running`);
      return s.kind === 'experiment' && s.latestCheckpoint !== null;
    },
    { timeoutMs: 120_000, what: 'the first experiment to checkpoint' },
  );
  await requestCancellation(page);

  await assert.rejects(handle.result(), isCancelled, 'the session ends Canceled');
  assert.equal((await handle.describe()).status.name, 'CANCELLED');
  const snap = await w.client.sessionSnapshot(sessionId);
  assert.equal(snap.state, 'cancelled');
  const [running, queued] = snap.experiments;
  assert.equal(running.state, 'interrupted');
  assert.ok(running.latestCheckpoint, 'the running experiment checkpointed');
  assert.equal(queued.state, 'cancelled');
  assert.equal((await h.env.client.workflow.getHandle(`${sessionId}:running`).describe()).status.name, 'CANCELLED');
  interruptedFromUi.push(`${sessionId}:running`);

  await page.reload();
  await statusBadge(page, 'Canceled').waitFor();
  await openTab(page, 'user-metadata-tab');
  const details = await currentDetailsText(page, 'cancelled');
  assert.match(details, /cancelled · /);
  assert.match(details, /1 interrupted/);
  assert.match(details, /1 cancelled/);
  await screenshot(page, 'ui-cancelled-session.png');
});

test('the workflow list filters by ExperimentState: interrupted experiments are listed, completed ones are not', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { page } = ui;
  // Its own interrupted and completed experiments, so this test does not depend on the others.
  const sessionId = 'ui-list';
  const handle = await w.client.startSession({
    sessionId,
    experiments: [
      { id: 'done', trainer: 'mlp', params: { epochs: 1, samples: 128, batchSize: 32 } },
      { id: 'stopped', trainer: 'mlp', params: slow },
    ],
  });
  await waitFor(
    async () => {
      const s = await w.client.status(`${sessionId}:stopped`);
      return s.kind === 'experiment' && s.epoch >= 1;
    },
    { timeoutMs: 120_000, what: 'the slow experiment to start training' },
  );
  await w.client.cancel(`${sessionId}:stopped`);
  const summary = await handle.result();
  assert.deepEqual(
    summary.experiments.map((e) => [e.id, e.state]),
    [
      ['done', 'completed'],
      ['stopped', 'interrupted'],
    ],
  );
  const interrupted = [`${sessionId}:stopped`, ...interruptedFromUi];
  const completed = `${sessionId}:done`;

  const query = "ExperimentState = 'interrupted'";
  await page.goto(workflowListUrl(h.uiUrl, query));
  const rows = page.locator('main');
  // Visibility can lag a closed workflow by a moment: reload until the rows are there.
  await waitFor(
    async () => {
      for (const id of interrupted) {
        if ((await rows.getByText(id, { exact: true }).count()) === 0) {
          await page.reload();
          return false;
        }
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 1000, what: `the filtered list to show ${interrupted.join(', ')}` },
  );
  await screenshot(page, 'ui-list-filter.png');
  // The filter is shown as applied, and the UI's count is the server's count for the same query.
  await page.locator('[aria-controls^="dropdown-filter-chip-ExperimentState"]').filter({ hasText: '"interrupted"' }).first().waitFor();
  const { count } = await h.env.client.workflow.count(query);
  assert.ok(count >= interrupted.length, `visibility counts ${count} interrupted workflows`);
  await page.getByTestId('workflow-count').filter({ hasText: new RegExp(`^\\s*${count}\\s*$`) }).waitFor();
  assert.equal(await rows.getByText(completed, { exact: true }).count(), 0, `the completed ${completed} is filtered out`);

  // The same page with the other value lists the completed one: the absence above is the filter's doing.
  await page.goto(workflowListUrl(h.uiUrl, "ExperimentState = 'completed'"));
  await rows.getByText(completed, { exact: true }).waitFor();
  assert.equal(await rows.getByText(`${sessionId}:stopped`, { exact: true }).count(), 0);
});
