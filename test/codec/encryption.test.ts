/**
 * Encryption end to end on a real dev server with its Web UI: a session whose start input was
 * encrypted with the old key (k0) by a client, and everything else with the current key (k1) by
 * a worker that knows both. The `temporal` CLI shows no param value without the codec server
 * and shows them through it; chromium sees them decoded in the Web UI pointed at
 * `experiments codec-server` (a real child process), and not when the codec server is out of
 * its reach; replay works with the keys and fails naming the missing one without them.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Client } from '@temporalio/client';
import { ExperimentsClient } from '../../src/client';
import { AesGcmCodec, keyRing, withCodec, type CodecKeyInput } from '../../src/codec';
import { freePort } from '../../src/dev-server';
import { ExperimentPlugin } from '../../src/plugin';
import { exportHistory, replayHistoryFiles, runReplayCommand, writeHistory } from '../../src/replay';
import { resolveTemporalCli } from '../../src/temporal-cli';
import { ROOT, startWorker, uniqueQueue, waitFor, type RunningWorker } from '../helpers/env';
import { launchBrowser, mainText, openWorkflow, screenshot, startUiHarness, type UiBrowser, type UiHarness } from '../ui/helpers';

const TIMEOUT = 300_000;
const k0: CodecKeyInput = { id: 'k0', key: randomBytes(32).toString('base64') };
const k1: CodecKeyInput = { id: 'k1', key: randomBytes(32).toString('base64') };
const KEYS_ENV = `k1:${k1.key as string},k0:${k0.key as string}`;
/** Distinctive values: none of them may appear anywhere in plain text. */
const SEED = 918273645;
const LR = 0.0137911;
const NOTE = 'approval-note-8675309';
const SECRETS = [String(SEED), String(LR), NOTE];
const sessionId = 'enc';
const experimentId = `${sessionId}:a`;

let h: UiHarness;
let w: RunningWorker;
let ui: UiBrowser;
let codecServer: ChildProcess;
let codecUrl: string;
let codecOutput = '';
let rotated: ExperimentsClient;

before(
  async () => {
    ui = await launchBrowser();
    const codecPort = await freePort();
    codecUrl = `http://127.0.0.1:${codecPort}`;
    h = await startUiHarness({ extraArgs: ['--ui-codec-endpoint', codecUrl] });
    const uiPort = new URL(h.uiUrl).port;
    codecServer = spawn(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'codec-server', '--port', String(codecPort), '--origin', `${h.uiUrl},http://localhost:${uiPort}`], {
      env: { ...process.env, EXPERIMENTS_CODEC_KEYS: KEYS_ENV, LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    codecServer.stdout?.on('data', (c: Buffer) => (codecOutput += c.toString()));
    codecServer.stderr?.on('data', (c: Buffer) => (codecOutput += c.toString()));
    w = await startWorker(h, { taskQueue: uniqueQueue('enc'), encryption: { keys: [k1, k0] } });
    const clientFor = (keys: CodecKeyInput[]) =>
      new ExperimentsClient({
        client: new Client({ connection: h.env.connection, dataConverter: withCodec(undefined, new AesGcmCodec(keyRing(keys))) }),
        taskQueue: w.client.taskQueue,
        trainers: w.client.trainers,
        store: w.client.store,
      });
    // A client not yet rotated starts the session: its input is under k0, the rest under k1.
    await clientFor([k0]).startSession({
      sessionId,
      preApproved: { by: 'ci', note: NOTE },
      experiments: [{ id: 'a', trainer: 'mlp', params: { epochs: 2, samples: 64, seed: SEED, lr: LR }, longRunning: true }],
    });
    rotated = clientFor([k1, k0]);
    const summary = await rotated.waitForSession(sessionId);
    assert.equal(summary.state, 'completed');
    await waitFor(() => codecOutput.includes('Ctrl-C stops it'), { timeoutMs: 60_000, what: `the codec server to start (${codecOutput})` });
  },
  { timeout: TIMEOUT },
);
after(async () => {
  await ui?.close();
  if (codecServer && codecServer.exitCode === null) codecServer.kill('SIGTERM');
  await w?.stop();
  await h?.teardown();
});

/** Every string of a JSON document, plus what each base64-looking string decodes to. */
function readableText(json: string): string {
  const parts: string[] = [json];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (/^[A-Za-z0-9+/]+={0,2}$/.test(v) && v.length % 4 === 0) parts.push(Buffer.from(v, 'base64').toString('latin1'));
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(JSON.parse(json));
  return parts.join('\n');
}

/** `temporal workflow show --output json`, run asynchronously: this process reads the codec server's output meanwhile. */
async function temporalShow(workflowId: string, extra: string[] = []): Promise<string> {
  const cli = resolveTemporalCliSync();
  const child = spawn(cli, ['workflow', 'show', '--workflow-id', workflowId, '--address', h.address, '--output', 'json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, `${stderr}\ncodec server output:\n${codecOutput.slice(-3000)}`);
  return stdout;
}
let cliPath: string | undefined;
function resolveTemporalCliSync(): string {
  assert.ok(cliPath, 'the temporal CLI was resolved');
  return cliPath;
}

test('temporal workflow show: no param value in plain text without the codec server; all of them through it', { timeout: TIMEOUT }, async () => {
  cliPath = (await resolveTemporalCli({ build: false })).path;
  for (const id of [sessionId, experimentId]) {
    const text = readableText(await temporalShow(id));
    for (const secret of SECRETS.filter((s) => id === sessionId || s !== NOTE)) assert.ok(!text.includes(secret), `${id}: ${secret} is not in the history in plain text`);
    assert.ok(text.includes('binary/encrypted'), `${id}: payloads are marked encrypted`);
  }
  const session = readableText(await temporalShow(sessionId));
  assert.ok(session.includes('k0') && session.includes('k1'), 'the start input is under k0, the rest under k1');
  const decoded = readableText(await temporalShow(sessionId, ['--codec-endpoint', codecUrl]));
  for (const secret of SECRETS) assert.ok(decoded.includes(secret), `through the codec server, ${secret} is readable`);
  assert.ok(readableText(await temporalShow(experimentId, ['--codec-endpoint', `${codecUrl}/{namespace}`])).includes(String(SEED)), 'the namespace-templated endpoint works too');
});

test('the client and the CLI read an encrypted session with the keys', { timeout: TIMEOUT }, async () => {
  const status = await rotated.status(sessionId);
  assert.equal(status.kind, 'session');
  assert.equal(status.state, 'completed');
  const cli = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'status', sessionId, '--json'], {
    env: { ...process.env, TEMPORAL_ADDRESS: h.address, EXPERIMENTS_CODEC_KEYS: KEYS_ENV },
    encoding: 'utf8',
  });
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal((JSON.parse(cli.stdout) as { state: string }).state, 'completed');
});

test('Web UI with the codec server shows the params decoded; with the codec server out of reach it does not', { timeout: TIMEOUT }, async () => {
  const { page } = ui;
  await openWorkflow(page, h.uiUrl, experimentId);
  try {
    await page.locator('main').filter({ hasText: String(SEED) }).waitFor();
  } finally {
    await screenshot(page, 'codec-ui-decoded.png');
  }
  assert.ok((await mainText(page)).includes(String(LR)));

  const blocked = await ui.browser.newContext({ viewport: { width: 1400, height: 1000 } });
  try {
    let refused = 0;
    await blocked.route(`${codecUrl}/**`, (route) => {
      refused++;
      return route.abort('connectionrefused');
    });
    const other = await blocked.newPage();
    other.setDefaultTimeout(60_000);
    await openWorkflow(other, h.uiUrl, experimentId);
    // The UI asked the codec server and got no answer: only then is the absence meaningful.
    await waitFor(() => refused > 0, { timeoutMs: 60_000, what: 'the UI to call the codec endpoint' });
    await other.locator('main').filter({ hasText: /Input/ }).waitFor();
    await screenshot(other, 'codec-ui-without-codec.png');
    const text = await mainText(other);
    for (const secret of [String(SEED), String(LR)]) assert.ok(!text.includes(secret), `without the codec server the UI does not show ${secret}`);
    assert.ok(text.includes(Buffer.from('binary/encrypted').toString('base64')), 'it shows the ciphertext payload instead');
  } finally {
    await blocked.close();
  }
});

test('replay of the encrypted histories works with the keys, and fails naming the missing key without them', { timeout: TIMEOUT }, async () => {
  const dir = path.join(h.tmp, 'histories');
  const sessionFile = path.join(dir, 'session.json');
  const experimentFile = path.join(dir, 'experiment.json');
  await writeHistory(sessionFile, await exportHistory(h.env.client, sessionId));
  await writeHistory(experimentFile, await exportHistory(h.env.client, experimentId));

  const withKeys = await replayHistoryFiles([dir], { plugin: new ExperimentPlugin({ installRuntimeLogger: false, encryption: { keys: [k1, k0] } }) });
  assert.deepEqual(withKeys, [
    { file: experimentFile, workflowId: experimentId, ok: true },
    { file: sessionFile, workflowId: sessionId, ok: true },
  ]);

  const off = await replayHistoryFiles([dir], { plugin: new ExperimentPlugin({ installRuntimeLogger: false, encryption: false }) });
  assert.deepEqual(off.map((r) => r.ok), [false, false]);
  assert.match(off[0].error ?? '', /holds payloads encrypted with key id "k1", and encryption is off: set EXPERIMENTS_CODEC_KEYS/);

  // Only the new key: the experiment (all under k1) replays, the session (input under k0) names k0.
  const newOnly = await replayHistoryFiles([dir], { plugin: new ExperimentPlugin({ installRuntimeLogger: false, encryption: { keys: [k1] } }) });
  assert.equal(newOnly[0].ok, true, newOnly[0].error);
  assert.equal(newOnly[1].ok, false);
  assert.match(newOnly[1].error ?? '', /key id "k0", which is not among the known keys \(k1\)/);

  // `experiments replay` takes the keys from the environment.
  const saved = process.env.EXPERIMENTS_CODEC_KEYS;
  process.env.EXPERIMENTS_CODEC_KEYS = KEYS_ENV;
  try {
    const out: string[] = [];
    const code = await runReplayCommand([dir], { stdout: (s) => out.push(s), stderr: (s) => out.push(s) });
    assert.equal(code, 0, out.join('\n'));
  } finally {
    if (saved === undefined) delete process.env.EXPERIMENTS_CODEC_KEYS;
    else process.env.EXPERIMENTS_CODEC_KEYS = saved;
  }
});
