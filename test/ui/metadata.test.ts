/**
 * The Temporal Web UI (2.42, served by the dev server) tells a sweep's experiments apart: each
 * experiment carries a one-line static summary (user metadata, on its page) and the same line in
 * the ExperimentSummary search attribute, which headless chromium adds as a column of the
 * workflow list (the list API returns no user metadata, so UI 2.42 has no summary column). The
 * session and the training activity have summaries too. Screenshots go to .artifacts/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { experimentSummary, sessionSummary, trainingSummary } from '../../src/shared/user-metadata';
import { startWorker, uniqueQueue, waitFor, type RunningWorker } from '../helpers/env';
import { launchBrowser, screenshot, startUiHarness, workflowListUrl, type UiBrowser, type UiHarness } from './helpers';

let h: UiHarness;
let w: RunningWorker;
let ui: UiBrowser;
before(async () => {
  ui = await launchBrowser();
  h = await startUiHarness();
  w = await startWorker(h, { taskQueue: uniqueQueue('ui-meta') });
});
after(async () => {
  await ui?.close();
  await w?.stop();
  await h?.teardown();
});

test("the workflow list shows each experiment's summary; session and training activity have theirs", { timeout: 240_000 }, async () => {
  const sessionId = 'ui-sweep';
  const experiments = [0.01, 0.05, 0.2].map((lr) => ({ id: `lr-${lr}`, trainer: 'mlp', params: { lr, hidden: 16, epochs: 2, samples: 128, batchSize: 32 } }));
  const handle = await w.client.startSession({ sessionId, experiments });
  const summary = await handle.result();
  assert.deepEqual(summary.experiments.map((e) => e.state), ['completed', 'completed', 'completed']);

  // The server holds what the UI renders: checked here so a UI miss is told apart from a missing write.
  const expected = experiments.map((e) => experimentSummary(e, 'bounded'));
  assert.equal(expected[1], 'mlp lr=0.05 hidden=16 epochs=2 samples=128 batchSize=32 · bounded');
  for (const [i, e] of experiments.entries()) {
    assert.equal(await (await h.env.client.workflow.getHandle(`${sessionId}:${e.id}`).describe()).staticSummary(), expected[i]);
  }
  assert.equal(await (await handle.describe()).staticSummary(), sessionSummary(experiments));
  const history = await h.env.client.workflow.getHandle(`${sessionId}:lr-0.05`).fetchHistory();
  const scheduled = (history.events ?? []).filter((ev) => ev.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
  assert.equal(scheduled.length, 1);
  assert.ok(scheduled[0].userMetadata?.summary, 'the training activity has a summary');

  for (const [i, e] of experiments.entries()) {
    const attrs = (await h.env.client.workflow.getHandle(`${sessionId}:${e.id}`).describe()).typedSearchAttributes;
    assert.equal(attrs.get(defineSearchAttributeKey('ExperimentSummary', SearchAttributeType.KEYWORD)), expected[i]);
  }

  const { page } = ui;
  await page.goto(workflowListUrl(h.uiUrl, `SessionId = '${sessionId}'`));
  const main = page.locator('main');
  await main.getByText(`${sessionId}:lr-0.05`, { exact: true }).first().waitFor();
  // The column a person adds once (the UI keeps the table's columns in the browser).
  await page.getByTestId('workflows-summary-table-configuration-button').click();
  await page.getByRole('button', { name: 'Add ExperimentSummary column' }).filter({ visible: true }).click();
  // Next to the workflow id, where a person looks; the run ids take the width it needs.
  await page.getByRole('button', { name: 'Remove Run ID column' }).filter({ visible: true }).click();
  for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Move ExperimentSummary column up' }).filter({ visible: true }).click();
  await page.getByTestId('drawer-close-button').click();
  await page.getByRole('columnheader', { name: 'ExperimentSummary' }).waitFor();
  // Visibility can lag a closed workflow by a moment: reload until every summary is listed.
  await waitFor(
    async () => {
      for (const text of expected) {
        if ((await main.getByText(text, { exact: true }).count()) === 0) {
          await page.reload();
          return false;
        }
      }
      return true;
    },
    { timeoutMs: 90_000, intervalMs: 1500, what: 'the workflow list to show the summaries of the sweep' },
  );
  // On screen, not only in the DOM: inside the viewport without scrolling the table.
  const viewport = page.viewportSize();
  for (const text of expected) {
    const box = await main.getByText(text, { exact: true }).boundingBox();
    assert.ok(box && viewport && box.x >= 0 && box.x + Math.min(box.width, 200) <= viewport.width, `${text} on screen (${JSON.stringify(box)})`);
  }
  await screenshot(page, 'ui-list-summaries.png');
  // Each summary sits in the row of its own workflow, so a person can tell them apart at a glance.
  for (const [i, e] of experiments.entries()) {
    const row = main.getByRole('row').filter({ hasText: `${sessionId}:${e.id}` });
    assert.equal(await row.count(), 1, `one row for ${e.id}`);
    assert.ok((await row.innerText()).includes(expected[i]), `row of ${e.id} shows its summary`);
  }
  assert.equal(trainingSummary(experiments[1], 0), 'train mlp lr=0.05 hidden=16 epochs=2 samples=128 batchSize=32');
});
