/**
 * Browser-test harness: a real Temporal dev server WITH its Web UI (TestWorkflowEnvironment on the
 * resolved CLI, `ui: true` on a free port), an in-process worker with the plugin, and Debian's
 * chromium driven by playwright-core. Plus the few UI steps the tests share (workflow actions
 * menu, confirmation dialogs, tabs), written against Temporal UI 2.42.
 *
 * Selectors prefer roles and the UI's own data-testid attributes. The UI renders the header and
 * its dialogs twice (one copy per responsive layout), so buttons are filtered to the visible copy
 * and dialogs are found by role: only the open <dialog> is in the accessibility tree.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createTestEnv, freePort } from '../../src/dev-server';
import { captureLogger, ROOT, type Harness } from '../helpers/env';

export const ARTIFACTS = path.join(ROOT, '.artifacts');

/** Debian's chromium; CHROMIUM_PATH overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Safety limits, not expected durations: a slow 2-core CI machine runs chromium, the server and training at once. */
export { freePort };

export const UI_ACTION_TIMEOUT_MS = 60_000;
export const UI_NAVIGATION_TIMEOUT_MS = 90_000;



export interface UiHarness extends Harness {
  /** http://127.0.0.1:<uiPort>, the Temporal Web UI of this dev server. */
  uiUrl: string;
}

/**
 * Starts the dev server with its Web UI on a free port. Fails (never skips) without a Temporal
 * CLI. `extraArgs` go to `temporal server start-dev` (e.g. `--ui-codec-endpoint URL`).
 */
export async function startUiHarness(options: { extraArgs?: string[] } = {}): Promise<UiHarness> {
  const logger = captureLogger();
  const uiPort = await freePort();
  const env: TestWorkflowEnvironment = await createTestEnv({ server: { ui: true, uiPort, ...(options.extraArgs && { extraArgs: options.extraArgs }) } });
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-ui-test-'));
  return {
    env,
    logger,
    address: env.address,
    tmp,
    uiUrl,
    async teardown() {
      await env.teardown();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** The UI server's settings (`/api/v1/settings`), which say whether write actions are allowed. */
export async function uiSettings(uiUrl: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${uiUrl}/api/v1/settings`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET ${uiUrl}/api/v1/settings: HTTP ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

export interface UiBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** Launches headless chromium with a fresh profile. Throws (the tests fail, never skip) when chromium is missing. */
export async function launchBrowser(): Promise<UiBrowser> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `chromium not found at ${CHROMIUM_PATH}: the UI tests need it. Install it with \`apt-get install -y chromium\` (or set CHROMIUM_PATH to a chromium binary).`,
    );
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: UI_NAVIGATION_TIMEOUT_MS });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, timezoneId: 'UTC' });
  context.setDefaultTimeout(UI_ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(UI_NAVIGATION_TIMEOUT_MS);
  const page = await context.newPage();
  return {
    browser,
    context,
    page,
    async close() {
      await context.close().catch(() => undefined);
      await browser.close();
    },
  };
}

export function workflowUrl(uiUrl: string, workflowId: string): string {
  return `${uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`;
}

export function workflowListUrl(uiUrl: string, query: string): string {
  return `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
}

/** Opens a workflow's page and waits until its heading names the workflow. */
export async function openWorkflow(page: Page, uiUrl: string, workflowId: string): Promise<void> {
  await page.goto(workflowUrl(uiUrl, workflowId));
  await page.getByTestId('workflow-id-heading').filter({ hasText: workflowId }).waitFor();
}

/** The status badge of the open workflow page ("Running", "Canceled", "Completed", ...). */
export function statusBadge(page: Page, status: string) {
  return page.locator('header').getByText(status, { exact: true }).filter({ visible: true }).first();
}

/** The visible "Request Cancellation" button of a running workflow's page. */
export function requestCancellationButton(page: Page) {
  return page.getByRole('button', { name: 'Request Cancellation', exact: true }).filter({ visible: true });
}

/** Clicks "Request Cancellation" and confirms the "Cancel Workflow" dialog. */
export async function requestCancellation(page: Page): Promise<void> {
  await requestCancellationButton(page).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel Workflow' });
  await dialog.waitFor({ state: 'visible' });
  await dialog.getByTestId('confirm-modal-button').click();
  await dialog.waitFor({ state: 'hidden' });
}

/**
 * More Actions → Send a Signal: picks `signalName` from the names the workflow declared (the UI
 * learns them from the SDK's workflow-metadata query) and submits `input` as a json/plain payload.
 */
export async function sendSignal(page: Page, signalName: string, input: unknown): Promise<void> {
  await page.getByRole('button', { name: 'More Actions' }).filter({ visible: true }).click();
  await page.getByRole('menuitem', { name: 'Send a Signal' }).filter({ visible: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  await dialog.waitFor({ state: 'visible' });
  await dialog.getByTestId('signal-select-button').click();
  await dialog.getByRole('option', { name: signalName, exact: true }).click();
  const editor = dialog.locator('[contenteditable="true"][data-language="json"]');
  await editor.fill(JSON.stringify(input));
  // The editor re-formats its JSON on blur, which moves the Submit button: a click that blurs the
  // editor would land beside it. Blur first, then wait for the re-formatted (multi-line) text.
  await editor.evaluate((el) => (el as unknown as { blur(): void }).blur());
  await dialog.locator('.cm-line').nth(1).waitFor();
  await dialog.getByTestId('confirm-modal-button').click();
  await dialog.waitFor({ state: 'hidden' });
}

export async function openTab(page: Page, testId: 'user-metadata-tab' | 'memo-tab' | 'search-attributes-tab' | 'history-tab'): Promise<void> {
  await page.getByTestId(testId).click();
  await page.getByTestId(testId).and(page.locator('[aria-selected="true"]')).waitFor();
}

/**
 * The UI renders each markdown panel in an iframe titled "output": the static summary and details
 * (user metadata, when set) come first, the Current Details panel last.
 */
const OUTPUT_IFRAME = 'iframe[title="output"]';
const currentDetailsFrame = (page: Page) => page.frameLocator(OUTPUT_IFRAME).last();

/**
 * The text of the "Current Details" panel (User Metadata tab): the markdown the workflow set with
 * setCurrentDetails, rendered by the UI in an iframe. Waits until it contains `expected`.
 */
export async function currentDetailsText(page: Page, expected: string): Promise<string> {
  const body = currentDetailsFrame(page).locator('body');
  await body.filter({ hasText: expected }).waitFor();
  return body.innerText();
}

/**
 * Whether `text` in the Current Details panel is inside the iframe's visible box. The UI gives
 * that iframe a fixed height, so text further down is in the DOM but cut off on screen.
 */
export async function visibleInCurrentDetails(page: Page, text: string): Promise<{ visible: boolean; detail: string }> {
  const frame = await page.locator(OUTPUT_IFRAME).last().boundingBox();
  const target = await currentDetailsFrame(page).getByText(text, { exact: true }).first().boundingBox();
  if (!frame || !target) return { visible: false, detail: `no box (iframe ${JSON.stringify(frame)}, text ${JSON.stringify(target)})` };
  const visible = target.y >= frame.y && target.y + target.height <= frame.y + frame.height + 0.5;
  return { visible, detail: `iframe y ${frame.y}..${frame.y + frame.height}, ${JSON.stringify(text)} y ${target.y}..${target.y + target.height}` };
}

/** Full-page screenshot in .artifacts/; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The visible text of the page's main area. */
export async function mainText(page: Page): Promise<string> {
  return page.locator('main').innerText();
}
