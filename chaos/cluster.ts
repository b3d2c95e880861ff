/**
 * The machines of a chaos run: one Temporal dev server on a SQLite file that survives `kill -9`
 * and restarts on the same port and database, and a fixed number of worker slots, each a child
 * process (bench/child-worker.ts, i.e. what src/worker.ts runs) with its own work directory.
 * A slot whose process exits for any reason gets a new process, so killed workers come back.
 *
 * Every worker is given the same checkpoint root, like machines that mount one network store:
 * an attempt resumed on another worker must find the checkpoints of the one before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDevServer, type DevServer } from '../src/dev-server';
import { BENCH_DIR, ROOT, readJsonLines } from '../bench/lib/env';
import { sleep } from '../bench/lib/stats';
import type { LogLine } from './report';

export interface ServerOptions {
  readonly port: number;
  readonly uiPort: number;
  readonly dbFile: string;
  readonly log: (line: string) => void;
}

/** The dev server, killable with SIGKILL and restartable on the same port and database. */
export class ChaosServer {
  private server: DevServer | undefined;
  restarts = 0;

  constructor(private readonly o: ServerOptions) {}

  get address(): string {
    return `127.0.0.1:${this.o.port}`;
  }

  get pid(): number | undefined {
    return this.server?.process.pid;
  }

  async start(): Promise<void> {
    // A killed server's port can take a moment to be released; startDevServer checks it first.
    for (let attempt = 1; ; attempt++) {
      try {
        this.server = await startDevServer({ port: this.o.port, uiPort: this.o.uiPort, dbFile: this.o.dbFile, readyTimeoutMs: 90_000 });
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        this.o.log(`server did not start (${(err as Error).message.split('\n')[0]}); retrying`);
        await sleep(1000);
      }
    }
  }

  /** `kill -9`, then a new server on the same port and SQLite file. */
  async kill9AndRestart(): Promise<void> {
    const s = this.server;
    if (s && s.process.exitCode === null && s.process.signalCode === null) {
      const closed = new Promise((resolve) => s.process.once('close', resolve));
      s.process.kill('SIGKILL');
      await closed;
    }
    await s?.stop(); // only removes its exit hook now
    this.restarts++;
    await this.start();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }
}

export interface WorkerPoolOptions {
  readonly size: number;
  readonly address: string;
  readonly taskQueue: string;
  /** The one checkpoint store setting: the root every worker writes to and resumes from. */
  readonly checkpointRoot: string;
  /** Each slot's work directory is `<workRoot>/worker-<slot>` (its TMPDIR, cwd and logs). */
  readonly workRoot: string;
  readonly heartbeatThrottle: string;
  readonly extraEnv?: Readonly<Record<string, string>>;
  readonly log: (line: string) => void;
}

/** A slot's current process. */
interface Incarnation {
  readonly child: ChildProcess;
  readonly logFile: string;
  ready: boolean;
  stopped: boolean;
  terminating: boolean;
  readonly exited: Promise<void>;
}

const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export class WorkerPool {
  private readonly slots: (Incarnation | undefined)[];
  private readonly logFiles: string[] = [];
  private closing = false;
  spawned = 0;

  constructor(private readonly o: WorkerPoolOptions) {
    this.slots = new Array<Incarnation | undefined>(o.size).fill(undefined);
  }

  start(): void {
    for (let slot = 0; slot < this.o.size; slot++) this.spawn(slot);
  }

  private spawn(slot: number): void {
    const dir = path.join(this.o.workRoot, `worker-${slot}`);
    fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    const logFile = path.join(dir, `process-${++this.spawned}.log`);
    this.logFiles.push(logFile);
    const out = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(BENCH_DIR, 'child-worker.ts')], {
      cwd: dir,
      env: {
        ...process.env,
        ...this.o.extraEnv,
        TEMPORAL_ADDRESS: this.o.address,
        TEMPORAL_TASK_QUEUE: this.o.taskQueue,
        EXPERIMENTS_CHECKPOINT_DIR: this.o.checkpointRoot,
        TMPDIR: path.join(dir, 'tmp'),
        LOG_LEVEL: 'info',
        BENCH_HEARTBEAT_THROTTLE: this.o.heartbeatThrottle,
      },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const inc: Incarnation = { child, logFile, ready: false, stopped: false, terminating: false, exited };
    this.slots[slot] = inc;
    void this.watch(slot, inc);
  }

  private async watch(slot: number, inc: Incarnation): Promise<void> {
    const alive = () => inc.child.exitCode === null && inc.child.signalCode === null;
    while (alive() && !inc.ready) {
      try {
        if (fs.readFileSync(inc.logFile, 'utf8').includes('experiment worker started')) inc.ready = true;
      } catch {
        // not written yet
      }
      if (!inc.ready) await sleep(200);
    }
    await inc.exited;
    if (this.closing) return;
    this.o.log(`worker slot ${slot} (pid ${inc.child.pid}) exited (${inc.child.signalCode ?? `code ${inc.child.exitCode}`}); starting a new one`);
    await sleep(300);
    if (!this.closing) this.spawn(slot);
  }

  /** Slots whose worker is ready, not frozen and not shutting down. */
  upSlots(): number[] {
    return this.slots.flatMap((inc, slot) => (inc && inc.ready && !inc.stopped && !inc.terminating && inc.child.exitCode === null && inc.child.signalCode === null ? [slot] : []));
  }

  pid(slot: number): number | undefined {
    return this.slots[slot]?.child.pid;
  }

  kill9(slot: number): void {
    this.slots[slot]?.child.kill('SIGKILL');
  }

  sigterm(slot: number): void {
    const inc = this.slots[slot];
    if (!inc) return;
    inc.terminating = true;
    inc.child.kill('SIGTERM');
  }

  /** SIGSTOP now, SIGCONT after `ms`; resolves once it is thawed. */
  async freeze(slot: number, ms: number): Promise<void> {
    const inc = this.slots[slot];
    if (!inc) return;
    inc.stopped = true;
    inc.child.kill('SIGSTOP');
    await sleep(ms);
    inc.child.kill('SIGCONT');
    inc.stopped = false;
  }

  /** Waits until every slot has a ready worker (after the faults, before judging). */
  async allUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.upSlots().length < this.o.size) {
      if (Date.now() > deadline) throw new Error(`only ${this.upSlots().length} of ${this.o.size} workers up after ${timeoutMs} ms`);
      await sleep(250);
    }
  }

  /** Every JSON line any of this pool's processes logged. */
  lines(): LogLine[] {
    return this.logFiles.flatMap((f) => readJsonLines(f));
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const inc of this.slots) {
      if (!inc) continue;
      inc.child.kill('SIGCONT');
      inc.child.kill('SIGKILL');
    }
    await Promise.all(this.slots.map((inc) => inc?.exited));
  }
}
