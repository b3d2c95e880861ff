/**
 * Local Temporal dev server for `experiments server` (and the embedded mode), plus the test
 * environment factory used by the integration tests.
 *
 * We spawn `temporal server start-dev` ourselves instead of using the SDK's ephemeral server so
 * that the state survives restarts (SQLite file), the Web UI is on a known port, and callers get
 * a real child process they can stop. Our custom search attributes are registered at every start
 * because workflows fail to upsert attributes the server does not know.
 * The dev UI has no `disableWriteActions` setting, so cancel/signal/terminate work from the browser.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { TestWorkflowEnvironment, type DevServerConfig, type LocalTestWorkflowEnvironmentOptions } from '@temporalio/testing';
import { spawnTiedToParent } from './orphan-guard';
import { dynamicConfigArgs, MATCHER_DYNAMIC_CONFIG } from './server-features';
import { SEARCH_ATTRIBUTES } from './shared/search-attributes';
import { projectRoot, resolveTemporalCli, sdkDownloadPath, serverExecutableFor, type ResolvedTemporalCli } from './temporal-cli';

export interface DevServerOptions {
  /** gRPC frontend port (default 7233). */
  port?: number;
  /** Web UI port (default 8233). */
  uiPort?: number;
  /** SQLite file that keeps workflows across restarts (default `<projectRoot>/.data/temporal.db`). */
  dbFile?: string;
  namespace?: string;
  ip?: string;
  log?: (line: string) => void;
  /**
   * Progress of finding or building the Temporal CLI (a first build takes minutes, so a person
   * should see it). @default `log`
   */
  progress?: (line: string) => void;
  /** Extra `--dynamic-config-value KEY=JSON` entries. */
  dynamicConfig?: Record<string, unknown>;
  /** How long to wait for gRPC and the UI (default 60 s). */
  readyTimeoutMs?: number;
}

export interface DevServer {
  /** host:port for `Connection.connect` / `NativeConnection.connect`. */
  address: string;
  uiUrl: string;
  namespace: string;
  dbFile: string;
  stop(): Promise<void>;
  process: ChildProcess;
}

/** Start-dev's `--search-attribute` type names, and the SDK's for `createLocal`. */
const SDK_TYPES: Record<string, SearchAttributeType> = {
  Text: SearchAttributeType.TEXT,
  Keyword: SearchAttributeType.KEYWORD,
  Int: SearchAttributeType.INT,
  Double: SearchAttributeType.DOUBLE,
  Bool: SearchAttributeType.BOOL,
  Datetime: SearchAttributeType.DATETIME,
  KeywordList: SearchAttributeType.KEYWORD_LIST,
};

export function searchAttributeArgs(): string[] {
  return Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);
}

export function searchAttributeKeys(): NonNullable<DevServerConfig['searchAttributes']> {
  return Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => {
    const sdkType = SDK_TYPES[type];
    if (!sdkType) throw new Error(`search attribute ${name}: unknown type ${type}`);
    return defineSearchAttributeKey(name, sdkType);
  });
}

export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port the OS reports free right now (for servers started on non-default ports). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function portInUseMessage(port: number, host: string, what: string, flag: string): string {
  return `Port ${port} on ${host} is already in use (${what}); stop whatever uses it or choose another port with ${flag} <port>.`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A listener on a wildcard address is reached through loopback. */
function connectHost(ip: string): string {
  if (ip === '0.0.0.0') return '127.0.0.1';
  if (ip === '::') return '[::1]';
  return ip.includes(':') ? `[${ip}]` : ip;
}

/**
 * Starts `temporal server start-dev` and resolves once gRPC answers for the namespace and the UI
 * answers HTTP 200. Rejects with a one-line message when a port is taken.
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const dbFile = path.resolve(opts.dbFile ?? path.join(projectRoot(), '.data', 'temporal.db'));
  const log = opts.log ?? (() => undefined);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;

  // Checked up front because the CLI's own error is buried in a multi-line log dump.
  if (!(await isPortFree(port, ip))) throw new Error(portInUseMessage(port, ip, 'Temporal gRPC', '--port'));
  if (!(await isPortFree(uiPort, ip))) throw new Error(portInUseMessage(uiPort, ip, 'Temporal Web UI', '--ui-port'));

  const progress = opts.progress ?? log;
  const exe = await executablePath(await resolveTemporalCli({ log: progress }), progress);
  mkdirSync(path.dirname(dbFile), { recursive: true });

  const args = [
    'server', 'start-dev',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--db-filename', dbFile,
    '--ip', ip,
    '--log-level', 'warn',
    ...(namespace === 'default' ? [] : ['--namespace', namespace]), // "default" always exists
    ...searchAttributeArgs(),
    ...dynamicConfigArgs({ ...MATCHER_DYNAMIC_CONFIG, ...opts.dynamicConfig }),
  ];
  log(`starting ${exe} ${args.join(' ')}`);
  // Tied to our life: even a kill -9 of this process takes the server (and its hold on the ports
  // and the SQLite file) with it.
  const child = spawnTiedToParent(exe, args);

  const output: string[] = [];
  let stopping = false;
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      output.push(line);
      if (output.length > 50) output.shift();
      // Shutdown makes the server's internal workers log dropped polls: noise, not news.
      if (!stopping) log(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    // 'close' rather than 'exit': by then stderr is drained, so the CLI's last words are in `output`.
    child.once('close', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  // If our process dies without calling stop(), don't leave a server holding the ports and the db.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    stopping = true;
    if (spawnError || exited || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exitPromise;
    clearTimeout(timer);
  };

  const address = `${connectHost(ip)}:${port}`;
  const uiUrl = `http://${connectHost(ip)}:${uiPort}`;
  try {
    await waitUntilReady({ address, uiUrl, namespace, readyTimeoutMs, isDead: () => spawnError ?? exited });
  } catch (err) {
    await stop();
    const text = output.join('\n');
    if (/address already in use/i.test(text)) {
      // The CLI says "can't set UI port N" or "can't set frontend port N".
      const message = /UI port/.test(text) ? portInUseMessage(uiPort, ip, 'Temporal Web UI', '--ui-port') : portInUseMessage(port, ip, 'Temporal gRPC', '--port');
      throw new Error(message, { cause: err });
    }
    const detail = spawnError ? spawnError.message : exited ? `exited (${exited.signal ?? `code ${exited.code}`})` : (err as Error).message;
    throw new Error(`Temporal dev server did not start: ${detail}${text ? `\n${output.slice(-15).join('\n')}` : ''}`, { cause: err });
  }
  log(`Temporal dev server ready: gRPC ${address}, UI ${uiUrl}, db ${dbFile}`);
  return { address, uiUrl, namespace, dbFile, stop, process: child };
}

async function waitUntilReady(o: {
  address: string;
  uiUrl: string;
  namespace: string;
  readyTimeoutMs: number;
  isDead: () => unknown;
}): Promise<void> {
  const deadline = Date.now() + o.readyTimeoutMs;
  let lastError = 'not tried';
  const check = (): void => {
    if (o.isDead()) throw new Error('server process ended');
    if (Date.now() > deadline) throw new Error(`not ready after ${o.readyTimeoutMs} ms (${lastError})`);
  };

  // gRPC: the namespace must be describable, which also proves persistence is up.
  for (;;) {
    check();
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address: o.address, connectTimeout: 2000 });
      await connection.workflowService.describeNamespace({ namespace: o.namespace });
      break;
    } catch (err) {
      lastError = `gRPC: ${(err as Error).message}`;
    } finally {
      await connection?.close().catch(() => undefined);
    }
    await sleep(250);
  }

  for (;;) {
    check();
    try {
      const res = await fetch(o.uiUrl, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      lastError = `UI: HTTP ${res.status}`;
    } catch (err) {
      lastError = `UI: ${(err as Error).message}`;
    }
    await sleep(250);
  }
}

/**
 * Start-dev needs a binary path. When only the SDK can provide the CLI, let it download once by
 * starting and stopping an ephemeral server, then run the file it cached.
 */
async function executablePath(resolved: ResolvedTemporalCli, log: (line: string) => void): Promise<string> {
  if (resolved.path) return resolved.path;
  log('downloading the Temporal CLI through @temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'cached-download' } } });
  await env.teardown();
  return sdkDownloadPath();
}

/**
 * A `TestWorkflowEnvironment` on the resolved CLI with our search attributes registered. Throws
 * when no CLI can be found: integration tests must fail loudly rather than skip.
 */
export async function createTestEnv(opts: LocalTestWorkflowEnvironmentOptions = {}): Promise<TestWorkflowEnvironment> {
  const resolved = await resolveTemporalCli({ log: (line) => process.stderr.write(`${line}\n`) });
  return TestWorkflowEnvironment.createLocal({
    ...opts,
    server: {
      executable: serverExecutableFor(resolved),
      searchAttributes: searchAttributeKeys(),
      log: { format: 'pretty', level: 'warn' },
      ...opts.server,
      extraArgs: [...dynamicConfigArgs(MATCHER_DYNAMIC_CONFIG), ...(opts.server?.extraArgs ?? [])],
    },
  });
}
