/**
 * `scripts/stack.sh up|down|status`: the production-like stack without Docker. PostgreSQL 15, the
 * schema set up with the server's own SQL tool, the Temporal server (go.temporal.io/server) with
 * SQL visibility, the "default" namespace and our search attributes, the Web UI server, versitygw
 * as the S3 checkpoint store and N experiment workers, each with its own empty cache. Everything
 * binds 127.0.0.1. `up` starts only what is not running (so it is safe twice, and after a crash it
 * restarts what died); `down` stops everything it started, by pid file.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { createS3Client } from '../activities/checkpoint-store';
import { projectRoot } from '../go-tools';
import { SEARCH_ATTRIBUTES } from '../shared/search-attributes';
import { resolveVersitygw } from '../versitygw';
import { resolveStackTools, stackToolPath } from './binaries';
import { clusterRunning, initCluster, postmasterPid, startCluster, stopCluster } from './postgres';
import { runChecked, runningPid, startDetached, stopTracked, type Tracked } from './processes';
import {
  dynamicConfigYaml,
  STACK_BUCKET,
  STACK_DATABASES,
  STACK_DB_USER,
  STACK_HOST,
  STACK_NAMESPACE,
  stackPaths,
  stackPorts,
  temporalConfigYaml,
  uiConfigYaml,
  workerEnv,
  WORKER_ONLY_ENV,
  type S3Credentials,
  type StackOptions,
} from './topology';
import { waitUntil } from './wait';

export type Log = (line: string) => void;

export function defaultStackOptions(env: NodeJS.ProcessEnv = process.env): StackOptions {
  return {
    dir: path.resolve(env.EXPERIMENTS_STACK_DIR || path.join(projectRoot(), '.data', 'stack')),
    portOffset: Number(env.EXPERIMENTS_STACK_PORT_OFFSET || 0),
    workers: Number(env.EXPERIMENTS_STACK_WORKERS || 2),
  };
}

/** The stack's tracked processes (PostgreSQL is tracked by its own postmaster.pid). */
export function trackedProcesses(opts: StackOptions, bins: { server: string; ui: string; s3: string }) {
  const p = stackPaths(opts.dir);
  const workerScript = path.join(projectRoot(), 'bin', 'experiments.js');
  return {
    temporal: { pidFile: path.join(p.pids, 'temporal.pid'), marker: bins.server },
    ui: { pidFile: path.join(p.pids, 'temporal-ui.pid'), marker: bins.ui },
    s3: { pidFile: path.join(p.pids, 's3.pid'), marker: bins.s3 },
    workers: Array.from({ length: opts.workers }, (_, i): Tracked => ({ pidFile: path.join(p.pids, `worker-${i + 1}.pid`), marker: workerScript })),
  };
}

function s3Credentials(file: string): S3Credentials {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ accessKeyId: `stack${randomBytes(6).toString('hex')}`, secretAccessKey: randomBytes(18).toString('hex') }), { mode: 0o600 });
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as S3Credentials;
}

/** The programs file the stack's workers get (the same as docker-compose.yml's worker). */
export const STACK_PROGRAMS_FILE = path.join(projectRoot(), 'examples', 'python', 'programs.yaml');

/** The environment for clients of a running stack: the workers' without their own places. */
export function stackClientEnv(opts: StackOptions): Record<string, string> {
  const p = stackPaths(opts.dir);
  const all = workerEnv(stackPorts(opts), s3Credentials(p.s3CredentialsFile), p.workerPlaces(0, STACK_PROGRAMS_FILE));
  return Object.fromEntries(Object.entries(all).filter(([k]) => !(WORKER_ONLY_ENV as readonly string[]).includes(k)));
}

/** The binaries' paths for recognising running processes: nothing is built (nothing built, nothing runs). */
async function knownBinaries(): Promise<{ server: string; ui: string; s3: string }> {
  const s3 = await resolveVersitygw({ build: false }).then(
    (r) => r.path,
    () => 'versitygw',
  );
  return { server: stackToolPath('temporalServer'), ui: stackToolPath('uiServer'), s3 };
}

async function binaries(log: Log) {
  const tools = await resolveStackTools(log);
  const s3 = (await resolveVersitygw({ build: true, log })).path;
  return { server: tools.temporalServer, sql: tools.sqlTool, ui: tools.uiServer, s3 };
}

function setupSchema(sql: string, port: number, password: string, log: Log): void {
  const env = { ...process.env, SQL_PASSWORD: password };
  const base = ['--ep', STACK_HOST, '-p', String(port), '-u', STACK_DB_USER, '--pl', 'postgres12'];
  for (const [kind, db] of Object.entries(STACK_DATABASES)) {
    const what = `schema of ${db}`;
    runChecked(sql, [...base, '--db', db, 'create-database'], { env, what: `creating database ${db}`, okIf: (o) => /already exists/.test(o) });
    // setup-schema -v 0.0 creates the version tables once; update-schema brings it to the newest.
    runChecked(sql, [...base, '--db', db, 'setup-schema', '-v', '0.0'], { env, what, okIf: (o) => /already exists/.test(o) });
    runChecked(sql, [...base, '--db', db, 'update-schema', '--schema-name', `postgresql/v12/${kind === 'temporal' ? 'temporal' : 'visibility'}`], { env, what });
    log(`schema: ${db} up to date`);
  }
}

const SA_TYPES: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Int: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  Text: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  Double: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  Datetime: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
};

/** The one-shot setup (compose's temporal-admin-tools): the namespace and our search attributes. */
async function setupNamespace(address: string, log: Log, abortIf: () => string | undefined): Promise<void> {
  const connection = await waitUntil(() => Connection.connect({ address, connectTimeout: 2000 }).catch(() => undefined), { timeoutMs: 120_000, what: `the Temporal frontend on ${address}`, abortIf });
  try {
    await waitUntil(
      async () => {
        try {
          await connection.workflowService.registerNamespace({ namespace: STACK_NAMESPACE, workflowExecutionRetentionPeriod: msToTs('3 days') });
          return true;
        } catch (err) {
          return /already exists|AlreadyExists/i.test((err as Error).message) ? true : undefined;
        }
      },
      { timeoutMs: 120_000, what: `namespace ${STACK_NAMESPACE} registered on ${address}`, abortIf },
    );
    const existing = await connection.operatorService.listSearchAttributes({ namespace: STACK_NAMESPACE });
    const missing = Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTES)
        .filter(([name]) => !(name in (existing.customAttributes ?? {})))
        .map(([name, type]) => [name, SA_TYPES[type]]),
    );
    if (Object.keys(missing).length > 0) await connection.operatorService.addSearchAttributes({ namespace: STACK_NAMESPACE, searchAttributes: missing });
    log(`namespace ${STACK_NAMESPACE}: search attributes ${Object.keys(SEARCH_ATTRIBUTES).join(', ')} registered`);
  } finally {
    await connection.close();
  }
}

async function ensureBucket(endpoint: string, creds: S3Credentials): Promise<void> {
  const client = createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true }, { credentials: creds });
  try {
    await waitUntil(
      async () => {
        try {
          await client.send(new CreateBucketCommand({ Bucket: STACK_BUCKET }));
          return true;
        } catch (err) {
          return /BucketAlready/.test((err as Error).name) ? true : undefined;
        }
      },
      { timeoutMs: 30_000, what: `bucket ${STACK_BUCKET} on ${endpoint}` },
    );
  } finally {
    client.destroy();
  }
}

/** The last error-ish line of a log (the server logs JSON lines with a "msg" and an "error"). */
function logTail(file: string): string {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
  const last = lines.reverse().find((l) => /"level":"(fatal|error)"/.test(l)) ?? lines[0] ?? '(empty)';
  try {
    const j = JSON.parse(last) as { msg?: string; error?: string };
    return `${j.msg ?? ''}: ${j.error ?? ''}`;
  } catch {
    return last.slice(0, 500);
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3000) })).ok;
  } catch {
    return false;
  }
}

/** A running stack keeps its ports: `up` with another offset would start half of it elsewhere. */
function checkSameOffset(opts: StackOptions, procs: ReturnType<typeof trackedProcesses>): void {
  const stateFile = path.join(opts.dir, 'stack.json');
  const prev = fs.existsSync(stateFile) ? (JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { portOffset: number }).portOffset : opts.portOffset;
  const running = clusterRunning(stackPaths(opts.dir).pgData) || [procs.temporal, procs.ui, procs.s3].some((t) => runningPid(t) !== undefined);
  if (prev !== opts.portOffset && running) {
    throw new Error(`the stack in ${opts.dir} is running with EXPERIMENTS_STACK_PORT_OFFSET=${prev}, received ${opts.portOffset}: run \`scripts/stack.sh down\` first, or use the same offset`);
  }
  fs.writeFileSync(stateFile, JSON.stringify({ portOffset: opts.portOffset }));
}

/** Starts whatever of the stack is not running and waits until each part answers. */
export async function stackUp(opts: StackOptions, log: Log): Promise<void> {
  const p = stackPaths(opts.dir);
  const ports = stackPorts(opts);
  const bins = await binaries(log);
  const procs = trackedProcesses(opts, bins);
  fs.mkdirSync(p.logs, { recursive: true });
  checkSameOffset(opts, procs);

  const password = initCluster(p.pgData, p.pgPasswordFile);
  startCluster(p.pgData, p.pgLog, ports.postgresql);
  log(`postgresql: ${STACK_HOST}:${ports.postgresql} (pid ${postmasterPid(p.pgData)})`);
  setupSchema(bins.sql, ports.postgresql, password, log);

  const address = `${STACK_HOST}:${ports.frontend}`;
  if (runningPid(procs.temporal) === undefined) {
    fs.mkdirSync(path.dirname(p.temporalConfig), { recursive: true });
    fs.writeFileSync(p.dynamicConfig, dynamicConfigYaml());
    fs.writeFileSync(p.temporalConfig, temporalConfigYaml(ports, password, p.dynamicConfig), { mode: 0o600 });
    const args = ['--root', p.temporalRoot, '--config', 'config', '--env', 'stack', '--allow-no-auth', 'start'];
    startDetached(procs.temporal, bins.server, args, { env: process.env, cwd: p.temporalRoot, logFile: path.join(p.logs, 'temporal.log') });
  }
  const temporalLog = path.join(p.logs, 'temporal.log');
  await setupNamespace(address, log, () => (runningPid(procs.temporal) === undefined ? `the server exited; the end of ${temporalLog}: ${logTail(temporalLog)}` : undefined));
  log(`temporal: ${address} (pid ${runningPid(procs.temporal)})`);

  const creds = s3Credentials(p.s3CredentialsFile);
  const s3Endpoint = `http://${STACK_HOST}:${ports.s3}`;
  if (runningPid(procs.s3) === undefined) {
    fs.mkdirSync(path.join(p.s3Root, 'data'), { recursive: true });
    const env = { ...process.env, ROOT_ACCESS_KEY_ID: creds.accessKeyId, ROOT_SECRET_ACCESS_KEY: creds.secretAccessKey };
    startDetached(procs.s3, bins.s3, ['--port', `${STACK_HOST}:${ports.s3}`, '--quiet', 'posix', path.join(p.s3Root, 'data')], { env, cwd: p.s3Root, logFile: path.join(p.logs, 's3.log') });
  }
  await ensureBucket(s3Endpoint, creds);
  log(`s3 (versitygw): ${s3Endpoint} bucket ${STACK_BUCKET} (pid ${runningPid(procs.s3)})`);

  const uiUrl = `http://${STACK_HOST}:${ports.ui}`;
  if (runningPid(procs.ui) === undefined) {
    fs.mkdirSync(path.join(p.uiRoot, 'config'), { recursive: true });
    fs.writeFileSync(path.join(p.uiRoot, 'config', 'base.yaml'), uiConfigYaml(ports));
    fs.writeFileSync(path.join(p.uiRoot, 'config', 'stack.yaml'), '# everything is in base.yaml\n');
    startDetached(procs.ui, bins.ui, ['--root', p.uiRoot, '--config', 'config', '--env', 'stack', 'start'], { env: process.env, cwd: p.uiRoot, logFile: path.join(p.logs, 'temporal-ui.log') });
  }
  await waitUntil(async () => (await httpOk(uiUrl)) || undefined, { timeoutMs: 60_000, what: `the Web UI on ${uiUrl}` });
  log(`temporal-ui: ${uiUrl} (pid ${runningPid(procs.ui)})`);

  const workerScript = path.join(projectRoot(), 'bin', 'experiments.js');
  procs.workers.forEach((w, i) => {
    if (runningPid(w) !== undefined) return;
    const places = p.workerPlaces(i + 1, STACK_PROGRAMS_FILE);
    const vars = workerEnv(ports, creds, places);
    const env = { ...process.env, ...vars };
    const args = [workerScript, 'worker', '--checkpoint-url', vars.EXPERIMENTS_CHECKPOINT_URL, '--checkpoint-cache-dir', places.cacheDir];
    startDetached(w, process.execPath, args, { env, cwd: projectRoot(), logFile: path.join(p.logs, `worker-${i + 1}.log`) });
  });
  await waitUntil(
    () => procs.workers.every((_, i) => fs.existsSync(path.join(p.logs, `worker-${i + 1}.log`)) && fs.readFileSync(path.join(p.logs, `worker-${i + 1}.log`), 'utf8').includes('experiment worker started')) || undefined,
    { timeoutMs: 90_000, what: `${opts.workers} workers to start (logs in ${p.logs})` },
  );
  log(`workers: ${procs.workers.map((w) => runningPid(w)).join(', ')} on task queue experiments`);
}

export interface StackStatus {
  readonly postgresql: number | undefined;
  readonly temporal: number | undefined;
  readonly ui: number | undefined;
  readonly s3: number | undefined;
  readonly workers: (number | undefined)[];
}

export async function stackStatus(opts: StackOptions): Promise<StackStatus> {
  const bins = await knownBinaries();
  const procs = trackedProcesses(opts, bins);
  const p = stackPaths(opts.dir);
  return {
    postgresql: clusterRunning(p.pgData) ? postmasterPid(p.pgData) : undefined,
    temporal: runningPid(procs.temporal),
    ui: runningPid(procs.ui),
    s3: runningPid(procs.s3),
    workers: procs.workers.map((w) => runningPid(w)),
  };
}

/** Stops everything `up` started: workers first (they drain), then the UI, the server, S3, PostgreSQL. */
export async function stackDown(opts: StackOptions, log: Log): Promise<void> {
  const bins = await knownBinaries();
  const procs = trackedProcesses(opts, bins);
  // Workers beyond opts.workers from an earlier `up` with more of them.
  const p = stackPaths(opts.dir);
  const extra = fs.existsSync(p.pids)
    ? fs.readdirSync(p.pids).filter((f) => /^worker-\d+\.pid$/.test(f)).map((f): Tracked => ({ pidFile: path.join(p.pids, f), marker: procs.workers[0]?.marker ?? path.join(projectRoot(), 'bin', 'experiments.js') }))
    : [];
  await Promise.all([...procs.workers, ...extra].map((w) => stopTracked(w, 30_000)));
  for (const [name, t] of [['temporal-ui', procs.ui], ['temporal', procs.temporal], ['s3', procs.s3]] as const) {
    if (await stopTracked(t)) log(`${name}: stopped`);
  }
  if (stopCluster(p.pgData)) log('postgresql: stopped');
}
