/**
 * Integration tests of the local dev server against the real Temporal CLI binary. No mocks: the
 * point is to prove that `experiments server` gives a usable gRPC endpoint and Web UI, keeps
 * workflows across restarts, registers our search attributes, and explains a busy port.
 * A missing CLI makes these tests fail (resolveTemporalCli throws); they never skip.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createTestEnv, isPortFree, startDevServer, type DevServer, freePort } from '../src/dev-server';
import { SEARCH_ATTRIBUTES } from '../src/shared/search-attributes';

const TIMEOUT = 180_000; // the first start may wait for a Go build of the CLI
const INDEXED_TYPE: Record<string, number> = {
  Text: 1,
  Keyword: 2,
  Int: 3,
  Double: 4,
  Bool: 5,
  Datetime: 6,
  KeywordList: 7,
}; // temporal.api.enums.v1.IndexedValueType


async function withClient<T>(server: DevServer, fn: (client: Client, connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: server.address });
  try {
    return await fn(new Client({ connection, namespace: server.namespace }), connection);
  } finally {
    await connection.close();
  }
}

async function assertSearchAttributesRegistered(connection: Connection, namespace: string): Promise<void> {
  const res = await connection.operatorService.listSearchAttributes({ namespace });
  const custom = res.customAttributes ?? {};
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    assert.ok(name in custom, `search attribute ${name} not registered; got ${Object.keys(custom).join(', ')}`);
    assert.equal(custom[name], INDEXED_TYPE[type], `search attribute ${name} has the wrong type`);
  }
}

void describe('dev server', { timeout: TIMEOUT * 3 }, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dev-server-test-'));
  const dbFile = path.join(tmp, 'temporal.db');
  const logLines: string[] = [];
  const log = (line: string) => logLines.push(line);
  let server: DevServer | undefined;

  before(async () => {
    server = await startDevServer({ port: await freePort(), uiPort: await freePort(), dbFile, log });
  }, { timeout: TIMEOUT });

  after(async () => {
    await server?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  void test('gRPC answers and the Web UI returns 200', { timeout: TIMEOUT }, async () => {
    assert.ok(server);
    await withClient(server, async (_client, connection) => {
      const info = await connection.workflowService.getSystemInfo({});
      assert.ok(info.serverVersion, 'getSystemInfo returns a server version');
    });
    const res = await fetch(server.uiUrl);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<html/i);
  });

  void test('the Web UI allows write actions (cancel, signal, terminate)', { timeout: TIMEOUT }, async () => {
    assert.ok(server);
    const res = await fetch(`${server.uiUrl}/api/v1/settings`);
    assert.equal(res.status, 200);
    const settings = (await res.json()) as Record<string, unknown>;
    assert.equal(settings.DisableWriteActions, false);
    assert.equal(settings.WorkflowCancelDisabled, false);
    assert.equal(settings.WorkflowSignalDisabled, false);
    assert.equal(settings.WorkflowTerminateDisabled, false);
  });

  void test('custom search attributes are registered', { timeout: TIMEOUT }, async () => {
    assert.ok(server);
    await withClient(server, (_client, connection) => assertSearchAttributesRegistered(connection, server!.namespace));
  });

  void test('a running workflow survives a server restart with the same db file', { timeout: TIMEOUT }, async () => {
    assert.ok(server);
    const workflowId = `persist-${Date.now()}`;
    // No worker polls this queue, so the workflow simply stays Running.
    await withClient(server, (client) =>
      client.workflow.start('NoSuchWorkflowType', { taskQueue: `no-worker-${workflowId}`, workflowId, args: [] }),
    );

    await server.stop();
    server = await startDevServer({ port: await freePort(), uiPort: await freePort(), dbFile, log });

    await withClient(server, async (client) => {
      const description = await client.workflow.getHandle(workflowId).describe();
      assert.equal(description.status.name, 'RUNNING');
      const listed: string[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) listed.push(wf.workflowId);
      assert.deepEqual(listed, [workflowId]);
    });
  });

  void test('a busy gRPC port fails with a message naming the port and the flag', { timeout: TIMEOUT }, async () => {
    assert.ok(server);
    const busy = Number(server.address.split(':').pop());
    assert.equal(await isPortFree(busy, '127.0.0.1'), false);
    await assert.rejects(
      startDevServer({ port: busy, uiPort: await freePort(), dbFile: path.join(tmp, 'other.db') }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`Port ${busy}\\b`));
        assert.match(err.message, /--port/);
        assert.equal(err.message.split('\n').length, 1, 'one-line message');
        return true;
      },
    );
  });

  void test('a busy UI port fails with a message naming the port and --ui-port', { timeout: TIMEOUT }, async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(startDevServer({ port: await freePort(), uiPort: busy, dbFile: path.join(tmp, 'other.db') }), (err: Error) => {
        assert.match(err.message, new RegExp(`Port ${busy}\\b`));
        assert.match(err.message, /--ui-port/);
        return true;
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

void describe('createTestEnv', { timeout: TIMEOUT }, () => {
  void test('starts a local environment with the custom search attributes', { timeout: TIMEOUT }, async () => {
    const env = await createTestEnv();
    try {
      await assertSearchAttributesRegistered(env.connection, 'default');
    } finally {
      await env.teardown();
    }
  });
});
