#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner (its summary line is what CI reads).
// Node 20's --test does not expand globs, so the files are listed here. Each file starts its own
// real Temporal dev server; TEST_CONCURRENCY bounds how many files run at once (default 2 on a
// 2-core machine), and --test-timeout is a safety limit so a hung test fails instead of hanging CI.
// The runner gets its own process group. --test-force-exit ends a test file once its tests have
// finished even if it leaked a handle; a leaked child still holding a file's output pipe is found
// (no test file left, the group not empty), SIGKILLed, named, and fails the run instead of hanging
// it; and TEST_DEADLINE_SECONDS (default 3600) bounds the whole run.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./build');

const root = path.resolve(__dirname, '..');
const only = process.argv.slice(2);

function collect(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : collect(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

const files = (only.length > 0 ? only.map((f) => path.resolve(f)) : collect(path.join(root, 'test'))).sort();
if (files.length === 0) {
  console.error('no test files found under test/');
  process.exit(1);
}
// The CLI tests run bin/experiments.js and the consumer test packs the package: both use lib/.
const built = ensureBuilt();
if (built !== 0) process.exit(built);
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
console.error(`running ${files.length} test files, ${concurrency} at a time`);
const deadlineSeconds = Number(process.env.TEST_DEADLINE_SECONDS ?? '3600');
if (!Number.isFinite(deadlineSeconds) || deadlineSeconds <= 0) {
  console.error(`TEST_DEADLINE_SECONDS: expected a positive number of seconds, received ${JSON.stringify(process.env.TEST_DEADLINE_SECONDS)}`);
  process.exit(1);
}
const args = ['--import', 'tsx', '--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-timeout=900000', ...files.map((f) => path.relative(root, f))];
const runner = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', detached: true });

/** Live processes (other than the runner itself) in the runner's process group, with their parents. */
function groupMembers() {
  const members = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === runner.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === runner.pid) members.push({ pid: Number(name), ppid: Number(fields[1]) });
    } catch {
      // exited while we looked
    }
  }
  return members;
}

function describe(pid) {
  try {
    return `${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 160)}`;
  } catch {
    return String(pid);
  }
}

function killGroup(signal) {
  try {
    process.kill(-runner.pid, signal);
  } catch {
    // the group is empty
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => killGroup(signal));
const deadline = setTimeout(() => {
  console.error(`run-tests: the test run passed its deadline of ${deadlineSeconds}s (TEST_DEADLINE_SECONDS); killing it`);
  killGroup('SIGKILL');
}, deadlineSeconds * 1000);

// A test that leaks a child with inherited stdio keeps its file's output pipe open, and the runner
// waits on that pipe after every file has finished. When the runner has had no test-file process
// of its own for a while, whatever is left in the group is such a leak: it is killed and named,
// and the runner ends with its real summary.
let idleSince = null;
let leaked = false;
const reaper = process.platform !== 'linux' ? undefined : setInterval(() => {
  const members = groupMembers();
  if (members.some((m) => m.ppid === runner.pid)) {
    idleSince = null;
    return;
  }
  idleSince ??= Date.now();
  if (members.length === 0 || Date.now() - idleSince < 20_000) return;
  console.error(`run-tests: every test file has ended, but ${members.length} process(es) a test left running hold the runner open; killing them:\n  ${members.map((m) => describe(m.pid)).join('\n  ')}`);
  for (const m of members) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  leaked = true;
}, 5000);

runner.on('exit', (code, signal) => {
  clearTimeout(deadline);
  if (reaper) clearInterval(reaper);
  const left = process.platform === 'linux' ? groupMembers() : [];
  if (left.length > 0) {
    console.error(`run-tests: ${left.length} process(es) a test left running were killed:\n  ${left.map((m) => describe(m.pid)).join('\n  ')}`);
    killGroup('SIGKILL');
  }
  if (code === null) console.error(`run-tests: the test runner was ended by ${signal}`);
  // A leak is a bug in a test even when every assertion passed.
  if (leaked && code === 0) console.error('run-tests: failing the run because a test leaked processes (named above)');
  process.exit(code === 0 && leaked ? 1 : (code ?? 1));
});
