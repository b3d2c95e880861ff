/**
 * Connecting the CLI to a Temporal server named by TEMPORAL_ADDRESS. A command that cannot
 * reach the server must say so quickly and name the address (exit 3), rather than hang in the
 * SDK's reconnect loop: a plain TCP probe first catches "refused" and "unknown host" at once,
 * and the gRPC connect gets a short deadline for everything else.
 */
import * as net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { ProgramRegistry } from '../activities/trainers/command';
import { ExperimentsClient } from '../client';
import { resolveCodec, withCodec } from '../codec';
import { configFromEnv, DEFAULT_ADDRESS, ENV_VARS, type RuntimeConfig } from '../config';
import { connectionOptions } from '../connection';
import { UnreachableError, UsageError } from './errors';

/** Deadline of the gRPC connect (the TCP probe has its own, shorter one). */
export const CONNECT_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 3_000;

export interface Connected {
  readonly address: string;
  readonly namespace: string;
  readonly connection: Connection;
  readonly client: Client;
  readonly experiments: ExperimentsClient;
  close(): Promise<void>;
}

/** Splits `host:port` (or `[v6]:port`); throws a UsageError naming the variable otherwise. */
export function parseAddress(address: string, source = ENV_VARS.address): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new UsageError(`${source}: expected host:port such as localhost:7233, received ${JSON.stringify(address)}`);
  return { host: m[1], port };
}

/** Resolves when a TCP connection opens; rejects with a one-line reason when it cannot. */
export async function probeTcp(address: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port });
    const done = (err?: Error) => {
      socket.removeAllListeners();
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => done());
    socket.once('error', (err) => done(err));
  });
}

function unreachable(address: string, why: string): UnreachableError {
  return new UnreachableError(
    `cannot reach the Temporal server at ${address} (${why}); is it running? Start one with \`experiments server\`, or set ${ENV_VARS.address}`,
  );
}

function probeReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ETIMEDOUT':
      return err.message;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return err.message;
  }
}

/**
 * Throws UnreachableError (exit 3) when nothing accepts TCP connections at `address`. A probe
 * timeout passes: it may be a proxy or a slow network, so the gRPC connect has its say then.
 */
export async function ensureReachable(address: string): Promise<void> {
  parseAddress(address);
  try {
    await probeTcp(address);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ETIMEDOUT') throw unreachable(address, probeReason(e));
  }
}

/**
 * Connects a Client and an ExperimentsClient to `address` (default: the connection profile's,
 * else localhost:7233), with the profile's TLS, API key and headers.
 */
export async function connect(options: { address?: string; config?: RuntimeConfig } = {}): Promise<Connected> {
  const config = options.config ?? configFromEnv();
  const address = options.address ?? config.address ?? DEFAULT_ADDRESS;
  await ensureReachable(address);
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...connectionOptions(config.connection, address), connectTimeout: CONNECT_TIMEOUT_MS });
  } catch (err) {
    // A failed TLS handshake looks like any other connect failure: say where to look.
    const tls = config.connection.tls ? '; TLS is on: check the CA, client certificate and server name of the connection profile' : '';
    throw unreachable(address, `${(err as Error).message.split('\n')[0]}${tls}`);
  }
  // Encryption as the workers have it: the same variables name the keys.
  const codec = resolveCodec(undefined);
  const client = new Client({ connection, namespace: config.namespace, ...(codec && { dataConverter: withCodec(undefined, codec) }) });
  const experiments = new ExperimentsClient({ client, taskQueue: config.taskQueue, programs: programsOf(config) });
  return {
    address,
    namespace: config.namespace,
    connection,
    client,
    experiments,
    close: () => connection.close(),
  };
}

/**
 * An ExperimentsClient that validates only: its Client has a lazy connection that is never
 * used, so pipeline files can be checked before any server exists.
 */
export function offlineValidator(config: RuntimeConfig = configFromEnv()): ExperimentsClient {
  return new ExperimentsClient({
    client: new Client({ connection: Connection.lazy(connectionOptions(config.connection, config.address ?? DEFAULT_ADDRESS)) }),
    taskQueue: config.taskQueue,
    programs: programsOf(config),
  });
}

/**
 * The programs file named by `--programs` or EXPERIMENTS_PROGRAMS, loaded; undefined when neither
 * is set. A worker runs exactly these; the CLI uses them to reject an unknown program before
 * anything starts (workers do not publish theirs). A bad file is InvalidInputError (exit 2).
 */
export function programsOf(config: RuntimeConfig, file = config.programsFile): ProgramRegistry | undefined {
  return file === undefined ? undefined : ProgramRegistry.fromFile(file);
}

/**
 * The Web UI's base URL as configured: `--ui-url`, else TEMPORAL_UI_URL, else undefined (then no
 * link is printed: a server's UI can be anywhere, and a guessed link that is wrong is worse than
 * none). The embedded server of `run` knows its own UI and does not ask here.
 */
export function configuredUiBase(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const [raw, field] = option !== undefined ? [option, '--ui-url'] : [env.TEMPORAL_UI_URL || undefined, 'TEMPORAL_UI_URL'];
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${field}: expected an http(s) URL such as http://localhost:8233, received ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${field}: expected an http(s) URL such as http://localhost:8233, received ${JSON.stringify(raw)}`);
  }
  return raw.replace(/\/+$/, '');
}

export function workflowUrl(uiBase: string | undefined, namespace: string, workflowId: string): string | undefined {
  if (!uiBase) return undefined;
  return `${uiBase}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
