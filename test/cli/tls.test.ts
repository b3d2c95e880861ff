/**
 * TLS and API keys for real: the dev server cannot serve TLS, so a TLS-terminating, recording
 * gRPC proxy on loopback (test/helpers/grpc-proxy.ts, mutual TLS with a CA made in the test)
 * stands in front of it. A worker (`experiments worker`) and the CLI (`run`, `status`, `history
 * export`) reach the server only through the proxy, configured by a connection profile and by
 * TEMPORAL_* variables; the proxy shows that every call carried the client certificate and
 * the API key as `authorization: Bearer <key>`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestCerts, type TestCerts } from '../helpers/certs';
import { ROOT, startHarness, uniqueQueue, waitFor, type Harness } from '../helpers/env';
import { startGrpcProxy, type GrpcProxy } from '../helpers/grpc-proxy';

const BIN = path.join(ROOT, 'bin', 'experiments.js');
const API_KEY = 'test-api-key-7f3a';

let h: Harness;
let certs: TestCerts;
let proxy: GrpcProxy;
let configFile: string;
const taskQueue = uniqueQueue('tls');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a child: no address or key of the test's own, only what `extra` says. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: h.tmp, TEMPORAL_TASK_QUEUE: taskQueue, EXPERIMENTS_CHECKPOINT_DIR: path.join(h.tmp, 'ck'), NO_COLOR: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_') && k !== 'TEMPORAL_TASK_QUEUE') delete env[k];
  return { ...env, TEMPORAL_TASK_QUEUE: taskQueue, ...extra };
}

function cli(args: string[], extra: Record<string, string>): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: h.tmp, env: childEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const callsTo = (method: string) => proxy.calls.filter((c) => c.path.endsWith(`/${method}`));

before(async () => {
  h = await startHarness();
  certs = makeTestCerts(path.join(h.tmp, 'certs'));
  proxy = await startGrpcProxy(h.address, { key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert), ca: fs.readFileSync(certs.caCert) });
  configFile = path.join(h.tmp, 'temporal.toml');
  fs.writeFileSync(
    configFile,
    `[profile.secure]
address = "${proxy.address}"
namespace = "default"
api_key = "${API_KEY}"
[profile.secure.tls]
server_ca_cert_path = ${JSON.stringify(certs.caCert)}
client_cert_path = ${JSON.stringify(certs.clientCert)}
client_key_path = ${JSON.stringify(certs.clientKey)}
`,
  );
});
after(async () => {
  await proxy?.close();
  await h?.teardown();
});

describe('TLS and API key through a recording proxy', { timeout: 600_000 }, () => {
  test('a worker (TEMPORAL_* variables) and the CLI (--profile) run a session over mutual TLS, every call with the API key', async () => {
    const log = path.join(h.tmp, 'worker.log');
    const out = fs.openSync(log, 'a');
    // The worker is configured by variables only, the CLI by the config file's profile.
    const worker = spawn(process.execPath, [BIN, 'worker'], {
      cwd: h.tmp,
      env: childEnv({
        TEMPORAL_ADDRESS: proxy.address,
        TEMPORAL_API_KEY: API_KEY,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert,
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
        LOG_LEVEL: 'info',
      }),
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const exited = new Promise<number | null>((resolve) => worker.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => fs.readFileSync(log, 'utf8').includes('experiment worker started'), { timeoutMs: 120_000, what: `the TLS worker to start (log: ${log})` });
      const pipeline = path.join(h.tmp, 'tls.json');
      fs.writeFileSync(pipeline, JSON.stringify({ session: 'tls-session', experiments: [{ id: 'e1', trainer: 'mlp', params: { epochs: 2, samples: 64 } }] }));
      const profile = { TEMPORAL_CONFIG_FILE: configFile };
      const run = await cli(['run', pipeline, '--profile', 'secure'], profile);
      assert.equal(run.code, 0, `run over TLS:\n${run.stdout}\n${run.stderr}\nworker log:\n${fs.readFileSync(log, 'utf8')}`);
      const status = await cli(['status', 'tls-session', '--json', '--profile', 'secure'], profile);
      assert.equal(status.code, 0, status.stderr);
      assert.equal((JSON.parse(status.stdout) as { state: string }).state, 'completed');
      const exported = path.join(h.tmp, 'tls-history.json');
      const history = await cli(['history', 'export', 'tls-session', '--out', exported, '--profile', 'secure'], profile);
      assert.equal(history.code, 0, history.stderr);
      assert.ok(fs.statSync(exported).size > 0);
    } finally {
      worker.kill('SIGTERM');
      await exited;
    }

    // Both sides of the SDK went through the proxy: the worker's Rust core and the CLI's client.
    for (const method of ['PollWorkflowTaskQueue', 'PollActivityTaskQueue', 'StartWorkflowExecution', 'QueryWorkflow', 'GetWorkflowExecutionHistory']) {
      assert.ok(callsTo(method).length > 0, `a ${method} call through the proxy (saw ${[...new Set(proxy.calls.map((c) => c.path))].join(', ')})`);
    }
    const withoutKey = proxy.calls.filter((c) => c.headers.authorization !== `Bearer ${API_KEY}`);
    assert.deepEqual(withoutKey.map((c) => `${c.path}: ${String(c.headers.authorization)}`), [], 'every call carries the API key');
    assert.deepEqual([...new Set(proxy.calls.map((c) => c.clientCert))], ['experiments-test-client'], 'every call came with the client certificate');
  });

  test('TLS is verified: an untrusted server certificate or no client certificate is exit 3 naming the address', async () => {
    // System roots only (an API key turns TLS on): the test CA is unknown, so the handshake fails.
    const untrusted = await cli(['status', 'tls-session', '--address', proxy.address, '--api-key', API_KEY], {});
    assert.equal(untrusted.code, 3, untrusted.stderr);
    assert.match(untrusted.stderr, new RegExp(`cannot reach the Temporal server at ${proxy.address.replace(/\./g, '\\.')}`));
    // The right CA but no client certificate: the proxy requires one.
    const anonymous = await cli(['status', 'tls-session', '--address', proxy.address], { TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert });
    assert.equal(anonymous.code, 3, anonymous.stderr);
    // One line of ours (Node may add its own DEP0123 warning about an IP address as TLS server name).
    assert.equal(anonymous.stderr.split('\n').filter((l) => l.startsWith('experiments:')).length, 1, anonymous.stderr);
    assert.match(anonymous.stderr, /cannot reach the Temporal server at 127\.0\.0\.1:\d+ .*TLS is on: check the CA, client certificate/);
  });
});
