/** `experiments worker --metrics-port`: bad values are one line and exit 2, before anything connects. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/env';

function worker(args: string[]): { status: number | null; stderr: string; stdout: string } {
  // An address nothing listens on: the checks must fail before the worker tries to reach it.
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'worker', ...args], {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

test('--metrics-port: not a port, or a port in use, is exit 2 with one line naming the flag', async () => {
  for (const bad of ['lots', '0', '70000']) {
    const r = worker(['--metrics-port', bad]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `experiments: --metrics-port: expected an integer from 1 to 65535, received ${JSON.stringify(bad)}`);
  }
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const r = worker(['--metrics-port', String(port)]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), `experiments: --metrics-port: port ${port} is already in use; choose another`);
  } finally {
    server.close();
  }
});
