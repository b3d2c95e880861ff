/**
 * Strings the CLI did not write (approver names, notes, reasons, a child's stderr) reach the
 * terminal without their control sequences: unit cases for src/cli/terminal.ts, and `experiments
 * status` (a real child process against the dev server) printing a session whose approver name
 * clears the screen and sets the window title.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { safe, safeText } from '../../src/cli/terminal';
import { ROOT, startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from '../helpers/env';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

test('control sequences and characters are removed; safe() also folds line breaks', () => {
  assert.equal(safe('mallory\u001b[2J\u001b[H'), 'mallory');
  assert.equal(safe('a\u001b]0;pwned\u0007b\u001b]8;;http://x\u001b\\c'), 'abc', 'OSC title and hyperlink');
  assert.equal(safe('x\u009b31my\u001bcz\u0000\u007f'), 'xyz', 'C1 CSI, RIS, NUL, DEL');
  assert.equal(safe('one\ntwo\r\tthree'), 'one two three');
  assert.equal(safeText('Traceback:\n\u001b[31mMemoryError\u001b[0m\r'), 'Traceback:\nMemoryError', 'multi-line text keeps its newlines');
  assert.equal(safe('naïve — ok “quoted”'), 'naïve — ok “quoted”', 'printable Unicode is untouched');
  assert.equal(safe(undefined), '');
});

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('terminal');
  w = await startWorker(h, { taskQueue, checkpointDir: path.join(h.tmp, 'ck') });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

test('an approver name containing "\\u001b[2J" prints harmlessly in `experiments status`', async () => {
  const sessionId = 'terminal-safety';
  const handle = await w.client.startSession({
    sessionId,
    experiments: [{ id: 'e', trainer: 'mlp', params: { epochs: 1, samples: 64, batchSize: 32, stepDelayMs: 0 }, longRunning: true }],
    preApproved: { by: 'mallory\u001b[2J\u001b]0;pwned\u0007', note: 'fine\nforged audit line\u001b[31m' },
  });
  await handle.result();
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'status', sessionId], {
    cwd: h.tmp,
    env: { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.doesNotMatch(run.stdout, CONTROL, `no control characters in:\n${JSON.stringify(run.stdout)}`);
  assert.match(run.stdout, /^approval: approved by mallory at \S+ \(“fine forged audit line”\)$/m);
  assert.match(run.stdout, /^ {2}\S+ {2}pre-approved {2}by mallory {2}“fine forged audit line”$/m);
  assert.doesNotMatch(run.stdout, /^forged audit line/m, 'a newline in a note cannot start a line of its own');
  // The raw values are kept: JSON output escapes them rather than dropping them.
  const json = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'status', sessionId, '--json'], {
    cwd: h.tmp,
    env: { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(json.status, 0, json.stderr);
  assert.doesNotMatch(json.stdout, CONTROL);
  assert.equal((JSON.parse(json.stdout) as { approval: { by: string } }).approval.by, 'mallory\u001b[2J\u001b]0;pwned\u0007');
});
