/**
 * `new ExperimentPlugin({ metrics: { port } })`: the plugin installs the Runtime with its
 * Prometheus exporter, so a user's own worker process serves /metrics without our CLI. A real
 * child process, scraped over HTTP (no Temporal server is needed to serve the endpoint).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/dev-server';
import { ROOT, waitFor } from '../helpers/env';
import { scrape, total } from '../helpers/prometheus';

test('the plugin option serves the Runtime meter on /metrics, with the worker label', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-plugin-metrics-'));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'fixtures', 'metrics', 'plugin-endpoint.ts'), String(port), dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    await waitFor(() => output.includes('ready'), { timeoutMs: 60_000, what: 'the plugin process to start', abortIf: () => (child.exitCode !== null ? `it exited: ${output}` : undefined) });
    const samples = await waitFor(async () => {
      const s = await scrape(port);
      return s.length > 0 ? s : undefined;
    }, { timeoutMs: 30_000, what: `/metrics on port ${port}` });
    assert.equal(total(samples, 'experiments_probe_total', { session: 's', worker: 'probe-worker' }), 3);
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
