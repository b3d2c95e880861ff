/**
 * The user-facing replay tools against a real dev server: a session's history exported with
 * exportHistory (and with the export command) replays with replayHistoryFiles, the replay
 * command reports one line per file and fails on a corrupt one, and histories written by the
 * Temporal CLI (`temporal workflow show --output json`) replay too, since users may export
 * with either tool.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { exportHistory, replayHistoryFiles, runHistoryExportCommand, runReplayCommand, writeHistory, type CommandIO } from '../src/replay';
import { resolveTemporalCli } from '../src/temporal-cli';
import { startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from './helpers/env';

let h: Harness;
let w: RunningWorker;
let dir: string;
const sessionId = 'replay-cli';
// Bundling the workflows for replay takes seconds on a busy two-core machine.
const TIMEOUT = 180_000;

before(
  async () => {
    h = await startHarness();
    w = await startWorker(h, { taskQueue: uniqueQueue('replay-cli') });
    dir = fs.mkdtempSync(path.join(h.tmp, 'histories-'));
    const handle = await w.client.startSession({
      sessionId,
      preApproved: { by: 'ci' },
      experiments: [
        { id: 'bounded', trainer: 'mlp', params: { epochs: 2, samples: 64 } },
        { id: 'long', trainer: 'mlp', params: { epochs: 2, samples: 64 }, longRunning: true },
      ],
    });
    assert.equal((await handle.result()).state, 'completed');
  },
  { timeout: TIMEOUT },
);
after(async () => {
  await w?.stop();
  await h?.teardown();
});

function capture(): CommandIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (s) => out.push(s), stderr: (s) => err.push(s) };
}

test('exportHistory → writeHistory → replayHistoryFiles: a real session and its experiment replay', { timeout: TIMEOUT }, async () => {
  const sessionFile = path.join(dir, 'exported', 'session.json');
  const experimentFile = path.join(dir, 'exported', 'experiment.json');
  const history = await exportHistory(h.env.client, sessionId);
  assert.ok(history.events.length > 5, 'a history with events');
  await writeHistory(sessionFile, history);
  await writeHistory(experimentFile, await exportHistory(h.env.client, `${sessionId}:bounded`));
  assert.deepEqual(JSON.parse(fs.readFileSync(sessionFile, 'utf8')), history, 'the file holds exactly the exported history');

  const results = await replayHistoryFiles([path.join(dir, 'exported')]);
  assert.deepEqual(results, [
    { file: experimentFile, workflowId: `${sessionId}:bounded`, ok: true },
    { file: sessionFile, workflowId: sessionId, ok: true },
  ]);
});

test('the export command writes the same history, and reports bad usage and unknown workflows', async () => {
  const file = path.join(dir, 'command', 'session.json');
  const env = { TEMPORAL_ADDRESS: h.address };
  const io = capture();
  assert.equal(await runHistoryExportCommand([sessionId, '--out', file], io, env), 0, io.err.join('\n'));
  assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), await exportHistory(h.env.client, sessionId));
  assert.match(io.out.join('\n'), new RegExp(`^exported ${sessionId} \\(\\d+ events\\) to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));

  const toStdout = capture();
  assert.equal(await runHistoryExportCommand([`${sessionId}:long`], toStdout, env), 0);
  assert.equal(toStdout.out.length, 1, 'the history as one JSON document on stdout');
  assert.ok(Array.isArray((JSON.parse(toStdout.out[0]) as { events: unknown[] }).events));

  const usage = capture();
  assert.equal(await runHistoryExportCommand([], usage, env), 2);
  assert.match(usage.err.join('\n'), /expected one WORKFLOW_ID/);
  assert.equal(await runHistoryExportCommand([sessionId, '--bogus'], capture(), env), 2);

  const missing = capture();
  assert.equal(await runHistoryExportCommand(['no-such-session'], missing, env), 2);
  assert.match(missing.err.join('\n'), /no workflow with id "no-such-session"/);
});

test('the export command exits 3 naming the address when no server answers', { timeout: 60_000 }, async () => {
  const io = capture();
  assert.equal(await runHistoryExportCommand([sessionId], io, { TEMPORAL_ADDRESS: '127.0.0.1:1' }), 3);
  assert.match(io.err.join('\n'), /^cannot reach the Temporal server at 127\.0\.0\.1:1 /);
});

test('the replay command: one line per file, exit 1 when a file is corrupt, 2 for bad usage', { timeout: TIMEOUT }, async () => {
  const mixed = path.join(dir, 'mixed');
  const good = path.join(mixed, 'good.json');
  const bad = path.join(mixed, 'truncated.json');
  await writeHistory(good, await exportHistory(h.env.client, sessionId));
  const text = fs.readFileSync(good, 'utf8');
  fs.writeFileSync(bad, text.slice(0, Math.floor(text.length / 2)));

  const io = capture();
  assert.equal(await runReplayCommand([mixed], io), 1);
  assert.equal(io.out.length, 2, `one line per file:\n${io.out.join('\n')}`);
  assert.equal(io.out[0], `ok   ${good} (${sessionId})`);
  assert.match(io.out[1], new RegExp(`^FAIL ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON: `));
  assert.match(io.err.join('\n'), /2 histories replayed, 1 failed/);

  const allGood = capture();
  assert.equal(await runReplayCommand([good], allGood), 0);
  assert.deepEqual(allGood.out, [`ok   ${good} (${sessionId})`]);

  const usage = capture();
  assert.equal(await runReplayCommand([], usage), 2);
  assert.match(usage.err.join('\n'), /expected at least one history FILE or DIR/);
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  const none = capture();
  assert.equal(await runReplayCommand([empty], none), 1, 'a directory without histories is a failure, not a pass');
  assert.deepEqual(none.out, [`FAIL ${empty}: directory holds no *.json history files`]);
});

test('a history exported by the Temporal CLI (workflow show --output json) replays', { timeout: TIMEOUT }, async () => {
  const cli = await resolveTemporalCli({ build: false });
  assert.ok(cli.path, `a temporal CLI binary (found: ${cli.source})`);
  const shown = spawnSync(cli.path, ['workflow', 'show', '--workflow-id', sessionId, '--address', h.address, '--output', 'json'], { encoding: 'utf8' });
  assert.equal(shown.status, 0, shown.stderr);
  const file = path.join(dir, 'cli', 'session.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, shown.stdout);
  assert.deepEqual(await replayHistoryFiles([file]), [{ file, workflowId: sessionId, ok: true }]);
});
