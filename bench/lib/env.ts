/**
 * What every figure shares: one real Temporal dev server (the test harness), the in-memory log
 * of in-process workers, child-process workers that can be killed, and cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logLines, startHarness, waitFor, type Harness, type LogLine } from '../../test/helpers/env';
import { progress, sleep } from './stats';

export type { Harness, LogLine } from '../../test/helpers/env';

export const BENCH_DIR = path.resolve(__dirname, '..');
export const ROOT = path.resolve(BENCH_DIR, '..');

export interface ChildWorker {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly ready: Promise<void>;
  alive(): boolean;
  lines(): LogLine[];
}

export interface ChildWorkerOptions {
  readonly taskQueue: string;
  readonly checkpointDir: string;
  readonly name: string;
  /** createExperimentWorker's `heartbeatThrottle` (default '1s'). */
  readonly heartbeatThrottle?: string;
  /** Worker script to run instead of bench/child-worker.ts (prototypes under bench/.work). */
  readonly script?: string;
  readonly extraEnv?: Record<string, string>;
}

export class BenchEnv {
  private readonly children: ChildWorker[] = [];
  private counter = 0;

  private constructor(
    readonly h: Harness,
    /** Scratch space for this run (inside the harness tmp dir, removed at teardown). */
    readonly tmp: string,
  ) {}

  /** Starts the dev server; retried, as the SDK gives it only 5 s to answer on a busy machine. */
  static async start(attempts = 3): Promise<BenchEnv> {
    for (let attempt = 1; ; attempt++) {
      try {
        const h = await startHarness();
        return new BenchEnv(h, h.tmp);
      } catch (err) {
        if (attempt >= attempts) throw err;
        progress(`dev server did not start (${(err as Error).message.split('\n')[0]}); retrying`);
        await sleep(1000);
      }
    }
  }

  get address(): string {
    return this.h.address;
  }

  uniqueName(prefix: string): string {
    return `${prefix}-${process.pid}-${++this.counter}`;
  }

  /** Lines logged so far by in-process workers (JSON from the shared pino logger). */
  logs(): readonly LogLine[] {
    return logLines;
  }

  /**
   * Calls `fn` for every line the in-process logger writes, synchronously, at the moment it is
   * logged (pino writes to the harness's sink synchronously). Returns a function that stops it.
   */
  onLogLine(fn: (line: LogLine) => void): () => void {
    const lines = logLines;
    const push = lines.push;
    lines.push = function (this: LogLine[], ...items: LogLine[]) {
      for (const item of items) fn(item);
      return push.apply(this, items);
    };
    return () => {
      lines.push = push;
    };
  }

  /** Drops captured in-process lines (between figures, so searches stay cheap). */
  clearLogs(): void {
    logLines.length = 0;
  }

  /**
   * A worker in a child process: bench/child-worker.ts, which calls the package's own
   * runExperimentWorker (what src/worker.ts runs) with the heartbeat throttle from the env.
   */
  spawnWorker(opts: ChildWorkerOptions): ChildWorker {
    const logFile = path.join(this.tmp, `${opts.name}.log`);
    const out = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', opts.script ?? path.join(BENCH_DIR, 'child-worker.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: this.h.address,
        TEMPORAL_TASK_QUEUE: opts.taskQueue,
        EXPERIMENTS_CHECKPOINT_DIR: opts.checkpointDir,
        LOG_LEVEL: 'info',
        BENCH_HEARTBEAT_THROTTLE: opts.heartbeatThrottle ?? '',
        ...opts.extraEnv,
      },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const lines = () => readJsonLines(logFile);
    const alive = () => child.exitCode === null && child.signalCode === null;
    const ready = waitFor(() => fs.readFileSync(logFile, 'utf8').includes('experiment worker started'), {
      timeoutMs: 90_000,
      what: `${opts.name} to start (log: ${logFile})`,
      abortIf: () => (alive() ? undefined : `${opts.name} exited before it was ready (log: ${logFile})`),
    }).then(() => undefined);
    const worker: ChildWorker = { name: opts.name, child, logFile, exited, ready, alive, lines };
    this.children.push(worker);
    return worker;
  }

  /** Ends a child worker this run started: SIGTERM, then SIGKILL after `graceMs`. */
  async stopWorker(w: ChildWorker, graceMs = 10_000): Promise<void> {
    if (!w.alive()) return;
    w.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (w.alive()) w.child.kill('SIGKILL');
    }, graceMs);
    await w.exited;
    clearTimeout(timer);
  }

  async teardown(): Promise<void> {
    for (const w of this.children) if (w.alive()) w.child.kill('SIGKILL');
    await Promise.all(this.children.map((w) => w.exited));
    try {
      await this.h.teardown();
    } catch (err) {
      progress(`teardown: ${(err as Error).message}`);
    }
  }
}

export function readJsonLines(file: string): LogLine[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // A line being written right now; it is complete on the next read.
    }
  }
  return out;
}

/** The test harness's poller (with `abortIf`), shared rather than copied. */
export { waitFor };
