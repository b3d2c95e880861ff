/**
 * The production-like stack, for real: `scripts/stack.sh up` (as on a fresh clone: the Go
 * binaries are built on first use) starts PostgreSQL 15, the Temporal server from
 * go.temporal.io/server with SQL visibility, the Web UI server, versitygw and two workers, all
 * on 127.0.0.1. The quickstart session runs on it with `experiments run`; mid-run one worker is
 * killed with SIGKILL and the Temporal server process is killed and started again (`up` again).
 * Every experiment still ends with the uninterrupted run's modelSha256. Chromium shows the
 * experiments in the stack's Web UI. `down` leaves no process behind.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { chromium } from 'playwright-core';
import { parseMlpParams, runMlpBare } from '../src/activities/trainers/mlp';
import { ExperimentsClient } from '../src/client';
import { isPortFree } from '../src/dev-server';
import { expandSweep } from '../src/pipeline';
import { readPid } from '../src/stack/processes';
import { BASE_PORTS, stackPaths, stackPorts, STACK_HOST } from '../src/stack/topology';
import { CHROMIUM_PATH } from './ui/helpers';
import { processGone, ROOT, waitFor } from './helpers/env';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-stack-'));
// postgres (run as the `postgres` user when we are root) must reach its directory.
fs.chmodSync(dir, 0o755);
let portOffset = 0;
const env = () => ({ ...process.env, EXPERIMENTS_STACK_DIR: dir, EXPERIMENTS_STACK_PORT_OFFSET: String(portOffset), EXPERIMENTS_STACK_WORKERS: '2' });
const paths = stackPaths(dir);
const pids = new Set<number>();

function stack(cmd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(path.join(ROOT, 'scripts', 'stack.sh'), [cmd], { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function recordPids(): void {
  for (const f of fs.existsSync(paths.pids) ? fs.readdirSync(paths.pids) : []) {
    const pid = readPid(path.join(paths.pids, f));
    if (pid) pids.add(pid);
  }
  const pg = Number(fs.readFileSync(path.join(paths.pgData, 'postmaster.pid'), 'utf8').split('\n')[0]);
  if (pg > 0) pids.add(pg);
}

/** Ports of our processes that listen on anything but 127.0.0.1, from /proc/net/tcp{,6}. */
function nonLoopbackListeners(ports: number[]): string[] {
  const bad: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue; // LISTEN
      const [addr, portHex] = (cols[1] ?? '').split(':');
      const port = parseInt(portHex ?? '', 16);
      if (ports.includes(port) && addr !== '0100007F') bad.push(`${file} ${addr}:${port}`);
    }
  }
  return bad;
}

before(async () => {
  // A random offset where every stack port is free (other tests use free ports too).
  for (let tries = 0; ; tries++) {
    portOffset = 10_000 + Math.floor(Math.random() * 1400) * 10; // membership ports stay <= 32767
    const free = await Promise.all(Object.values(stackPorts({ portOffset })).map((p) => isPortFree(p, STACK_HOST)));
    if (free.every(Boolean)) break;
    assert.ok(tries < 20, 'no free port range for the stack');
  }
});

after(async () => {
  const down = await stack('down');
  assert.equal(down.code, 0, down.stderr);
  fs.rmSync(dir, { recursive: true, force: true });
});

const quickstart = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'quickstart.json'), 'utf8')) as {
  session: string;
  sweeps: Parameters<typeof expandSweep>[0][];
  experiments: { id: string; params: unknown }[];
};

test('the stack: up from scratch, quickstart survives kill -9 of a worker and a Temporal server restart, UI shows it, down leaves nothing', { timeout: 15 * 60_000 }, async (t) => {
  const up = await stack('up');
  assert.equal(up.code, 0, `stack up failed:\n${up.stderr.slice(-3000)}`);
  t.diagnostic(up.stdout.trim());
  const again = await stack('up');
  assert.equal(again.code, 0, `a second up is safe:\n${again.stderr.slice(-2000)}`);
  recordPids();
  const ports = stackPorts({ portOffset });
  assert.deepEqual(nonLoopbackListeners(Object.values(ports)), [], 'everything binds 127.0.0.1 only');
  const status = await stack('status');
  assert.equal(status.code, 0, status.stdout);
  assert.match(status.stdout, /temporal running/);

  const clientEnv = Object.fromEntries(
    (await stack('env')).stdout
      .split('\n')
      .filter((l) => l.startsWith('export '))
      .map((l) => l.slice('export '.length).split(/=(.*)/s).slice(0, 2)),
  ) as Record<string, string>;
  assert.equal(clientEnv.TEMPORAL_ADDRESS, `${STACK_HOST}:${BASE_PORTS.frontend + portOffset}`);

  // The quickstart, as a user would run it against the stack.
  const runLog = path.join(dir, 'run.log');
  const out = fs.openSync(runLog, 'a');
  const run = spawn(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'run', path.join(ROOT, 'examples', 'quickstart.json'), '--approve-as', 'stack-test'], {
    cwd: dir,
    env: { ...process.env, ...clientEnv },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const ran = new Promise<number | null>((resolve) => run.on('exit', (code) => resolve(code)));

  // kill -9 a worker that is training, once it has written a checkpoint.
  const workerLog = (i: number) => path.join(paths.logs, `worker-${i}.log`);
  const count = (i: number, re: RegExp) => (fs.readFileSync(workerLog(i), 'utf8').match(re) ?? []).length;
  // Mid-run: it has checkpoints and an activity it started but has not finished.
  const training = (i: number) => count(i, /checkpoint saved/g) >= 2 && count(i, /"(starting|resuming) training"/g) > count(i, /"training completed"/g);
  const busy = await waitFor(() => [1, 2].find(training), { timeoutMs: 180_000, what: 'a worker mid-training with checkpoints saved' });
  const victim = readPid(path.join(paths.pids, `worker-${busy}.pid`));
  assert.ok(victim);
  process.kill(victim, 'SIGKILL');
  await waitFor(() => processGone(victim), { timeoutMs: 30_000, what: `worker ${victim} gone` });

  // Then the Temporal server process: killed, and started again by `up` (which also restarts the worker).
  const before = count(3 - busy, /checkpoint saved/g);
  await waitFor(() => count(3 - busy, /checkpoint saved/g) >= before + 2, { timeoutMs: 180_000, what: 'the other worker to go on' });
  const server = readPid(path.join(paths.pids, 'temporal.pid'));
  assert.ok(server);
  process.kill(server, 'SIGKILL');
  await waitFor(() => processGone(server), { timeoutMs: 30_000, what: `temporal server ${server} gone` });
  const restarted = await stack('up');
  assert.equal(restarted.code, 0, `up after the server died:\n${restarted.stderr.slice(-2000)}`);
  const newServer = readPid(path.join(paths.pids, 'temporal.pid'));
  assert.ok(newServer && newServer !== server, 'a new server process');
  recordPids();

  const code = await ran;
  assert.equal(code, 0, `experiments run exit ${code}:\n${fs.readFileSync(runLog, 'utf8').slice(-3000)}`);

  // Bit-identical to uninterrupted runs of the same params.
  const expected = new Map<string, string>();
  for (const sweep of quickstart.sweeps) for (const p of expandSweep(sweep)) expected.set(p.spec.id, runMlpBare(parseMlpParams(p.spec.params)).modelSha256);
  for (const e of quickstart.experiments) expected.set(e.id, runMlpBare(parseMlpParams(e.params)).modelSha256);
  const connection = await Connection.connect({ address: clientEnv.TEMPORAL_ADDRESS });
  try {
    const client = new ExperimentsClient({ client: new Client({ connection, namespace: 'default' }), taskQueue: 'experiments' });
    const summary = await client.waitForSession(quickstart.session);
    assert.equal(summary.experiments.length, expected.size);
    for (const e of summary.experiments) {
      assert.equal(e.state, 'completed', `${e.id}: ${JSON.stringify(e)}`);
      assert.equal(e.result?.modelSha256, expected.get(e.id), `${e.id} bit-identical to the uninterrupted run`);
    }
    assert.ok(summary.experiments.some((e) => (e.attempt ?? 1) >= 2), 'the killed worker\'s experiment was retried elsewhere');
  } finally {
    await connection.close();
  }

  // The Web UI of the stack lists the session and its experiments (SQL visibility, search attributes).
  const uiUrl = `http://${STACK_HOST}:${ports.ui}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    const query = encodeURIComponent(`SessionId="${quickstart.session}"`);
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${query}`, { timeout: 90_000 });
    for (const id of expected.keys()) await page.getByText(id, { exact: false }).first().waitFor({ timeout: 90_000 });
  } finally {
    await browser.close();
  }

  // down: every process the stack ran is gone, and its ports are free.
  const down = await stack('down');
  assert.equal(down.code, 0, down.stderr);
  for (const pid of pids) await waitFor(() => processGone(pid), { timeoutMs: 30_000, what: `process ${pid} gone after down` });
  for (const p of Object.values(ports)) assert.ok(await isPortFree(p, STACK_HOST), `port ${p} free after down`);
  const status2 = spawnSync(path.join(ROOT, 'scripts', 'stack.sh'), ['status'], { cwd: ROOT, env: env(), encoding: 'utf8' });
  assert.equal(status2.status, 1);
  assert.doesNotMatch(status2.stdout, /running/);
});
