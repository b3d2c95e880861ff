/**
 * No orphaned Temporal servers: `experiments server` and the embedded `experiments run` are killed
 * with SIGKILL (no handler of ours runs), and their Temporal server must go with them: nothing
 * listens on the ports within 5 s. A new `experiments server` on the same database then serves a
 * workflow started before the kill. Real CLI processes, real dev servers, real signals.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { freePort, isPortFree } from '../../src/dev-server';
import { ROOT, waitFor } from '../helpers/env';

const BIN = path.join(ROOT, 'bin', 'experiments.js');
const TIMEOUT = 240_000;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'server-orphans-'));
const started: ChildProcess[] = [];

after(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

function start(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, output: () => out, exited };
}

async function portsFree(ports: number[]): Promise<boolean> {
  for (const port of ports) if (!(await isPortFree(port))) return false;
  return true;
}

describe('no orphaned Temporal server', () => {
  test('kill -9 of `experiments server`: the ports are free within 5 s, and a new server on the same database serves the earlier workflow', { timeout: TIMEOUT }, async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const dbFile = path.join(tmp, 'server.db');
    const args = ['server', '--port', String(port), '--ui-port', String(uiPort), '--db-file', dbFile];
    const first = start(args);
    await waitFor(() => /Temporal server ready/.test(first.output()), { timeoutMs: 120_000, what: `the server to be ready (${first.output()})` });

    // A workflow nobody works on: it stays Running, in the database only.
    let connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    const workflowId = `orphan-check-${process.pid}`;
    await new Client({ connection }).workflow.start('noWorkerPollsThis', { taskQueue: `nobody-${process.pid}`, workflowId, args: [] });
    await connection.close();

    first.child.kill('SIGKILL');
    await first.exited;
    await waitFor(() => portsFree([port, uiPort]), { what: `ports ${port} and ${uiPort} to be free after kill -9`, timeoutMs: 5000, intervalMs: 100 });

    const second = start(args);
    try {
      await waitFor(() => /Temporal server ready/.test(second.output()), { timeoutMs: 120_000, what: `the restarted server to be ready (${second.output()})` });
      connection = await Connection.connect({ address: `127.0.0.1:${port}` });
      const client = new Client({ connection });
      const description = await client.workflow.getHandle(workflowId).describe();
      assert.equal(description.status.name, 'RUNNING');
      const listed = await waitFor(
        async () => {
          for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) return wf;
          return undefined;
        },
        { what: 'the earlier workflow in the list' },
      );
      assert.equal(listed.status.name, 'RUNNING');
      await connection.close();
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
    assert.ok(await portsFree([port, uiPort]), 'a SIGTERMed server frees its ports too');
  });

  test('kill -9 of an embedded `experiments run`: its server is gone within 5 s', { timeout: TIMEOUT }, async () => {
    const file = path.join(tmp, 'slow.json');
    // Long enough to be running when it is killed.
    fs.writeFileSync(file, JSON.stringify({ session: `orphan-embedded-${process.pid}`, experiments: [{ id: 'slow', trainer: 'mlp', params: { epochs: 200, samples: 128, batchSize: 32, stepDelayMs: 100 } }] }));
    const run = start(['run', file], { TEMPORAL_ADDRESS: undefined, EXPERIMENTS_CHECKPOINT_DIR: path.join(tmp, 'ck') });
    const ready = await waitFor(() => (/starting an in-process worker/.test(run.output()) ? /server on (?:free ports )?127\.0\.0\.1:(\d+) \(Web UI port (\d+)\)/.exec(run.output()) : null), {
      timeoutMs: 120_000,
      what: `the embedded server to be ready (${run.output()})`,
    });
    const ports = [Number(ready[1]), Number(ready[2])];
    assert.ok(!(await portsFree(ports)), `the embedded server listens on ${ports.join(' and ')}`);
    run.child.kill('SIGKILL');
    await run.exited;
    await waitFor(() => portsFree(ports), { what: `ports ${ports.join(' and ')} to be free after kill -9`, timeoutMs: 5000, intervalMs: 100 });
  });
});
