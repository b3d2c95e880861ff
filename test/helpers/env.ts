/**
 * Test harness: a real Temporal dev server (TestWorkflowEnvironment on the resolved CLI), the
 * pino Runtime logger captured into memory, in-process workers with the plugin, and workers
 * as child processes for tests that send real signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { ExperimentsClient } from '../../src/client';
import { createTestEnv } from '../../src/dev-server';
import { createLogger, installRuntimeLogger, runtimeLogger, type Logger } from '../../src/logging';
import { createExperimentWorker, type ExperimentWorkerOptions } from '../../src/worker';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** Every JSON line the process-wide pino logger wrote, parsed. */
export const logLines: LogLine[] = [];

/** Installs (once per process) a pino Runtime logger whose JSON lines land in `logLines`. */
export function captureLogger(): Logger {
  const existing = runtimeLogger();
  if (existing) return existing;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) logLines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info', destination: sink });
  installRuntimeLogger(logger);
  return logger;
}

export interface Harness {
  env: TestWorkflowEnvironment;
  logger: Logger;
  address: string;
  tmp: string;
  teardown(): Promise<void>;
}

/** Starts the dev server. Fails (never skips) when no Temporal CLI can be found or built. */
export async function startHarness(options?: Parameters<typeof createTestEnv>[0]): Promise<Harness> {
  const logger = captureLogger();
  const env = await createTestEnv(options);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-test-'));
  const address = env.address;
  return {
    env,
    logger,
    address,
    tmp,
    async teardown() {
      await env.teardown();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

let queueCounter = 0;
export function uniqueQueue(name: string): string {
  return `${name}-${process.pid}-${++queueCounter}`;
}

export interface RunningWorker {
  worker: Worker;
  run: Promise<void>;
  client: ExperimentsClient;
  checkpointDir: string;
  stop(): Promise<void>;
}

/** An in-process worker with the plugin on its own task queue and checkpoint directory. */
export async function startWorker(h: Harness, options: ExperimentWorkerOptions & { taskQueue: string }): Promise<RunningWorker> {
  const checkpointDir = options.checkpointDir ?? path.join(h.tmp, `ck-${options.taskQueue}`);
  const running = await createExperimentWorker({ connection: h.env.nativeConnection, logger: h.logger, ...options, checkpointDir });
  const { worker, plugin } = running;
  // With `hardware`, this runs the shape-queue workers and the registry beats too.
  const run = running.run();
  const client = new ExperimentsClient({ client: h.env.client, taskQueue: options.taskQueue, trainers: plugin.trainers, store: plugin.store });
  return {
    worker,
    run,
    client,
    checkpointDir,
    async stop() {
      running.shutdown();
      await run;
    },
  };
}

/** A test file's harness plus the worker processes it spawns (see `harnessWithWorkers`). */
export interface TestBed {
  /** The harness; only inside tests (it is started by a `before` hook). */
  readonly h: Harness;
  /** `spawnWorker`, remembered so the `after` hook can kill it if it is still alive. */
  spawn(opts: SpawnWorkerOptions): ChildWorker;
}

/**
 * Registers the hooks of a test file that runs workers in child processes: a harness before its
 * tests; after them, SIGKILL for every worker still alive (a failed test must not leave one
 * polling), then the harness torn down.
 */
export function harnessWithWorkers(): TestBed {
  let harness: Harness | undefined;
  const children: ChildWorker[] = [];
  before(async () => {
    harness = await startHarness();
  });
  after(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await harness?.teardown();
  });
  return {
    get h() {
      if (!harness) throw new Error('harnessWithWorkers: the harness is available only inside tests, after the before hook');
      return harness;
    },
    spawn(opts) {
      const w = spawnWorker(this.h, opts);
      children.push(w);
      return w;
    },
  };
}

export interface ChildWorker {
  child: ChildProcess;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the worker logged that it started polling. */
  ready: Promise<void>;
}

/**
 * A worker in a child process, for real signals: `node --import tsx src/worker.ts`, or with
 * `programsFile` the CLI, `experiments worker --programs FILE`.
 */
export interface SpawnWorkerOptions {
  taskQueue: string;
  checkpointDir: string;
  name: string;
  extraEnv?: Record<string, string>;
  programsFile?: string;
  cliArgs?: string[];
  /** A worker script of a test's own instead of src/worker.ts. */
  script?: string;
}

export function spawnWorker(h: Harness, opts: SpawnWorkerOptions): ChildWorker {
  const logFile = path.join(h.tmp, `${opts.name}.log`);
  const out = fs.openSync(logFile, 'a');
  const argv = opts.programsFile || opts.cliArgs
    ? [path.join(ROOT, 'bin', 'experiments.js'), 'worker', ...(opts.programsFile ? ['--programs', opts.programsFile] : []), ...(opts.cliArgs ?? [])]
    : ['--import', 'tsx', opts.script ?? path.join(ROOT, 'src', 'worker.ts')];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: h.address,
      TEMPORAL_TASK_QUEUE: opts.taskQueue,
      EXPERIMENTS_CHECKPOINT_DIR: opts.checkpointDir,
      LOG_LEVEL: 'info',
      ...opts.extraEnv,
    },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = waitFor(() => fs.readFileSync(logFile, 'utf8').includes('experiment worker started'), {
    timeoutMs: 60_000,
    what: `${opts.name} to start (log: ${logFile})`,
  }).then(() => undefined);
  return { child, logFile, exited, ready };
}

export function readJsonLines(file: string): LogLine[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Polls `check` until it returns a truthy value; fails with `what` after the timeout. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what: string; abortIf?: () => string | undefined },
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    const abort = opts.abortIf?.();
    if (abort) throw new Error(abort);
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/** The ActivityTaskScheduled attributes of the training activity in a workflow's history. */
export async function trainingActivitySchedules(h: Harness, workflowId: string) {
  const history = await h.env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a): a is NonNullable<typeof a> => a?.activityType?.name === 'trainExperiment');
}

/** Seconds of a protobuf Duration. */
export function durationSeconds(d: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return Number(d?.seconds ?? 0) + (d?.nanos ?? 0) / 1e9;
}

/** Whether a process is gone. A zombie counts: after its parent was killed it may wait for a reaper. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
