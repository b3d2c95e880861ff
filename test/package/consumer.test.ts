/**
 * The package as a user gets it: `npm pack`, the tarball installed into a fresh project outside
 * the repository, and from there, through the public entry points only (deep imports are refused
 * by the exports map): a trainer of the consumer's own, its own workflow beside ours on one worker
 * (the documented workflowsPath pattern), a session run to the end, and its histories replayed.
 * The consumer is plain JavaScript, and loading the package compiles no TypeScript.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, startHarness, uniqueQueue, type Harness } from '../helpers/env';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ensureBuilt } = require('../../scripts/build.js') as { ensureBuilt: () => number };

const TIMEOUT = 600_000;
const CONSUMER_FILES = path.join(__dirname, 'consumer');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let h: Harness;
let project: string;
let tarball: { filename: string; files: { path: string }[] };

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd} exited ${r.status}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

before(async () => {
  assert.equal(ensureBuilt(), 0, 'lib/ builds');
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-consumer-'));
  assert.ok(!path.relative(ROOT, project).match(/^[^.]/), `the consumer project ${project} is outside the repository`);
  // lib/ is fresh (ensureBuilt), so the `prepare` build is skipped rather than run a second time.
  const packed = JSON.parse(run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', project], ROOT)) as (typeof tarball)[];
  tarball = packed[0];
  for (const file of fs.readdirSync(CONSUMER_FILES)) fs.copyFileSync(path.join(CONSUMER_FILES, file), path.join(project, file));
  const sdk = '1.24.0';
  const pkg = {
    name: 'consumer',
    version: '1.0.0',
    private: true,
    dependencies: { 'temporal-experiments': `file:./${tarball.filename}`, '@temporalio/client': sdk, '@temporalio/worker': sdk, '@temporalio/workflow': sdk },
  };
  fs.writeFileSync(path.join(project, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund'], project);
  h = await startHarness();
});

after(async () => {
  await h?.teardown();
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

test('the tarball holds the compiled package, not the sources or the tests', () => {
  const files = tarball.files.map((f) => f.path);
  for (const needed of ['package.json', 'bin/experiments.js', 'lib/index.js', 'lib/index.d.ts', 'lib/workflows/index.js', 'lib/client.d.ts', 'lib/testing.js', 'README.md']) {
    assert.ok(files.includes(needed), `${needed} is packed`);
  }
  const stray = files.filter((f) => /^(src|test|scripts|bench|chaos)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.includes('tsbuildinfo'));
  assert.deepEqual(stray, [], 'no sources, tests or build state');
  assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'tsx')), 'tsx is not installed with the package');
});

test('requiring the package loads no TypeScript compiler; deep imports are refused', () => {
  const script = `
    for (const id of ['temporal-experiments', 'temporal-experiments/client', 'temporal-experiments/testing', 'temporal-experiments/workflows']) require(id);
    const compilers = Object.keys(require.cache).filter((f) => /[\\\\/]node_modules[\\\\/](typescript|tsx|esbuild|ts-node|@swc)[\\\\/]/.test(f));
    let deep;
    try { require.resolve('temporal-experiments/src/client'); deep = 'resolved'; } catch (err) { deep = err.code; }
    console.log(JSON.stringify({ compilers, deep, loaded: Object.keys(require.cache).filter((f) => f.includes('temporal-experiments')).length }));`;
  const out = JSON.parse(run(process.execPath, ['-e', script], project)) as { compilers: string[]; deep: string; loaded: number };
  assert.deepEqual(out.compilers, []);
  assert.equal(out.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  assert.ok(out.loaded > 10, `the package's modules were loaded (${out.loaded})`);
});

test('the installed `experiments` bin runs the compiled CLI', () => {
  const version = run(path.join(project, 'node_modules', '.bin', 'experiments'), ['--version'], project);
  const { version: ours } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.trim(), `temporal-experiments ${ours}`);
  assert.match(run(path.join(project, 'node_modules', '.bin', 'experiments'), ['replay', '--help'], project), /--workflows-path MODULE/);
});

test("a consumer's trainer and workflow beside ours on one worker; the session completes and its histories replay", { timeout: TIMEOUT }, async () => {
  const env = { ...process.env, CONSUMER_ADDRESS: h.address, CONSUMER_TASK_QUEUE: uniqueQueue('consumer'), CONSUMER_DATA_DIR: path.join(project, 'data'), LOG_LEVEL: 'warn' };
  const child = spawn(process.execPath, ['main.js'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `consumer exited ${code}:\n${stderr.slice(-4000)}`);
  const line = stdout.trim().split('\n').at(-1) ?? '';
  const out = JSON.parse(line) as {
    sessionId: string;
    greeting: string;
    summary: { completed: number; failed: number; experiments: { id: string; state: string; result: { finalLoss: number | null } | null }[] };
    replayed: { file: string; ok: boolean; error?: string }[];
  };
  assert.equal(out.greeting, 'hello consumer', "the consumer's own workflow ran on the plugin's worker");
  const states = Object.fromEntries(out.summary.experiments.map((e) => [e.id, e.state]));
  assert.deepEqual(states, { count: 'completed', mlp: 'completed' });
  assert.equal(out.summary.experiments.find((e) => e.id === 'count')?.result?.finalLoss, 1 / 21, "the consumer's trainer counted 3 epochs of 7");
  assert.equal(out.replayed.length, 3);
  for (const r of out.replayed) assert.ok(r.ok, `${path.basename(r.file)} replays: ${r.error}`);
});
