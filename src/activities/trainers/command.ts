/**
 * The built-in `command` trainer: runs a training program written in any language as a child
 * process and speaks the external trainer protocol with it. docs/trainer-protocol.md is the
 * single source of truth for that protocol; this module is its plugin side, and its section
 * numbers are cited where a rule comes from there.
 *
 * The child gets an argument array (never a shell), its own process group (so one signal reaches
 * everything it started), a minimal environment, and a stdin pipe that is never written to: stdin
 * reaching EOF is how a child learns that the worker died without a chance to signal it. Its
 * stdout lines drive progress and checkpoint adoption strictly in order; the way it ends (exit
 * code, signal, the lines it printed, whether we asked it to stop) decides the outcome.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { AsyncResource } from 'node:async_hooks';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { formatDuration, parseDuration } from '../../shared/duration';
import { describe } from '../../shared/ids';
import type { Metrics } from '../../shared/types';
import type { Trainer, TrainerContext, TrainerResultInput } from '../trainer';

// ---------------------------------------------------------------------------------------------
// Params

/** The `command` trainer's params, validated. */
export interface CommandParams {
  /** argv of the training program; `command[0]` is looked up on PATH unless it contains a `/`. */
  readonly command: readonly string[];
  /** Working directory of the child; relative paths are taken from the worker's working directory. */
  readonly cwd: string | undefined;
  /** Extra variables the child gets (they override PATH, HOME, LANG and inherited ones). */
  readonly env: Readonly<Record<string, string>>;
  /** Names of worker environment variables passed through to the child when set there. */
  readonly inheritEnv: readonly string[];
  /** The program's own params: EXPERIMENT_PARAMS, as JSON. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Total epochs, for progress and hints before the program reports them. */
  readonly epochs: number | undefined;
  /** Time between SIGTERM and SIGKILL when the run is interrupted. */
  readonly gracePeriodMs: number;
}

export interface CommandTrainerOptions {
  /**
   * Executables this worker agrees to run: a spec's `command[0]` must equal one of these strings
   * exactly (`python3`, `/opt/venv/bin/python`). When set, specs may not override PATH, so a bare
   * name resolves on the worker's own PATH. An empty array allows nothing.
   * @default $EXPERIMENTS_COMMAND_ALLOWLIST (comma-separated) when set and non-empty, else no restriction
   */
  readonly allowedExecutables?: readonly string[];
}

export const COMMAND_ALLOWLIST_ENV = 'EXPERIMENTS_COMMAND_ALLOWLIST';
export const DEFAULT_GRACE_PERIOD = '10s';
/** An upper bound so that a typo (`10m` for `10s`) cannot hold a cancelled run for hours. */
const MAX_GRACE_MS = 3_600_000;
const MAX_EPOCHS = 1_000_000;
/** Variables the child always gets from the worker (section 3). */
const BASE_ENV = ['PATH', 'HOME', 'LANG'] as const;
const RESERVED_PREFIX = 'EXPERIMENT_';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PARAM_KEYS = ['command', 'cwd', 'env', 'inheritEnv', 'params', 'epochs', 'gracePeriod'] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function received(value: unknown): string {
  return typeof value === 'number' ? String(value) : describe(value);
}

function noNul(field: string, value: string): string {
  // spawn() refuses strings with NUL bytes; saying so here names the field instead.
  if (value.includes('\0')) throw new Error(`${field}: expected a string without NUL characters, received ${received(value)}`);
  return value;
}

function envName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !ENV_NAME.test(name)) {
    throw new Error(`${field}: expected an environment variable name (letters, digits and _, not starting with a digit), received ${received(name)}`);
  }
  if (name.startsWith(RESERVED_PREFIX)) {
    throw new Error(`${field}: expected a name that does not start with ${RESERVED_PREFIX} (the plugin sets those), received ${received(name)}`);
  }
  return name;
}

/** The allowlist in force: the explicit option, else the environment variable, else none. */
function allowlist(options: CommandTrainerOptions): readonly string[] | undefined {
  if (options.allowedExecutables) return options.allowedExecutables;
  const raw = process.env[COMMAND_ALLOWLIST_ENV];
  const names = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return names.length > 0 ? names : undefined;
}

export function parseCommandParams(raw: unknown, options: CommandTrainerOptions = {}): CommandParams {
  if (!isRecord(raw)) throw new Error(`params: expected an object with a "command" array, received ${received(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!(PARAM_KEYS as readonly string[]).includes(key)) {
      throw new Error(`params.${key}: expected one of ${PARAM_KEYS.join(', ')}, received unknown key with value ${received(raw[key])}`);
    }
  }

  const command = raw.command;
  if (!Array.isArray(command) || command.length === 0) {
    throw new Error(`params.command: expected a non-empty array of strings, received ${received(command)}`);
  }
  command.forEach((arg: unknown, i) => {
    if (typeof arg !== 'string') throw new Error(`params.command[${i}]: expected a string, received ${received(arg)}`);
    noNul(`params.command[${i}]`, arg);
  });
  const argv = command as string[];
  if (argv[0] === '') throw new Error('params.command[0]: expected the program to run, received ""');
  const allowed = allowlist(options);
  if (allowed && !allowed.includes(argv[0])) {
    const list = allowed.length > 0 ? allowed.join(', ') : 'none';
    throw new Error(`params.command[0]: expected one of the executables this worker allows (${list}), received ${received(argv[0])}`);
  }

  let cwd: string | undefined;
  if (raw.cwd !== undefined) {
    if (typeof raw.cwd !== 'string' || raw.cwd === '') throw new Error(`params.cwd: expected a non-empty string (a directory), received ${received(raw.cwd)}`);
    cwd = noNul('params.cwd', raw.cwd);
  }

  const env: Record<string, string> = {};
  if (raw.env !== undefined) {
    if (!isRecord(raw.env)) throw new Error(`params.env: expected an object of string values, received ${received(raw.env)}`);
    for (const [name, value] of Object.entries(raw.env)) {
      envName(`params.env.${name}`, name);
      if (typeof value !== 'string') throw new Error(`params.env.${name}: expected a string, received ${received(value)}`);
      if (allowed && name === 'PATH') {
        throw new Error(`params.env.PATH: expected no PATH override on a worker that restricts executables (${COMMAND_ALLOWLIST_ENV}), received ${received(value)}`);
      }
      env[name] = noNul(`params.env.${name}`, value);
    }
  }

  const inheritEnv: string[] = [];
  if (raw.inheritEnv !== undefined) {
    if (!Array.isArray(raw.inheritEnv)) throw new Error(`params.inheritEnv: expected an array of environment variable names, received ${received(raw.inheritEnv)}`);
    raw.inheritEnv.forEach((name: unknown, i) => inheritEnv.push(envName(`params.inheritEnv[${i}]`, name)));
  }

  let params: Record<string, unknown> = {};
  if (raw.params !== undefined) {
    if (!isRecord(raw.params)) throw new Error(`params.params: expected an object (the program's own params), received ${received(raw.params)}`);
    params = raw.params;
  }

  let epochs: number | undefined;
  if (raw.epochs !== undefined) {
    const n = raw.epochs;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_EPOCHS) {
      throw new Error(`params.epochs: expected an integer from 1 to ${MAX_EPOCHS}, received ${received(n)}`);
    }
    epochs = n;
  }

  const grace = raw.gracePeriod ?? DEFAULT_GRACE_PERIOD;
  const gracePeriodMs = typeof grace === 'string' ? parseDuration(grace) : undefined;
  if (gracePeriodMs === undefined) throw new Error(`params.gracePeriod: expected a duration such as '10s' or '1m', received ${received(grace)}`);
  if (gracePeriodMs > MAX_GRACE_MS) throw new Error(`params.gracePeriod: expected a duration of at most 1h, received ${received(grace)}`);

  return { command: [...argv], cwd, env, inheritEnv, params, epochs, gracePeriodMs };
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping

/**
 * Process groups of children whose leader has not exited yet. If the worker exits (process.exit,
 * an uncaught exception, the SDK's signal handling), they are killed synchronously so no training
 * outlives it; a SIGKILLed worker cannot run this, which is what the child's stdin watch is for.
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  });
}

// ---------------------------------------------------------------------------------------------
// Spawning

/** Longest protocol line (section 4.1); longer lines are logged truncated, never parsed. */
const MAX_LINE_BYTES = 64 * 1024;
const STDERR_TAIL_LINES = 20;
const STDERR_TAIL_LINE_CHARS = 500;
/** Lines queued for in-order handling before stdout is paused (the child then blocks on the pipe). */
const QUEUE_HIGH_WATER = 256;
/**
 * After the child exits, its group is killed; pipes can still be held open by a helper that left
 * the group. This bounds how long we wait for them before deciding the outcome without them.
 */
const CLOSE_AFTER_EXIT_MS = 5000;

function spawnFailure(attempt: number, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'TrainerSpawn', { attempt });
}

/** Finds the program like execvp would, so a missing program is reported before spawning, by name. */
function locateExecutable(attempt: number, file: string, cwd: string, searchPath: string | undefined): string {
  if (file.includes('/')) return path.resolve(cwd, file);
  // Relative PATH entries (and empty ones, which mean ".") would depend on the spec's cwd; skipped.
  const dirs = (searchPath ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d));
  for (const dir of dirs) {
    const candidate = path.join(dir, file);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw spawnFailure(attempt, `cannot start the trainer: command[0] ${JSON.stringify(file)} was not found on PATH (${searchPath ?? 'unset'}) (ENOENT)`);
}

function childEnvironment(ctx: TrainerContext<CommandParams>, worker: NodeJS.ProcessEnv, resumeFile: string | undefined): Record<string, string> {
  const p = ctx.params;
  const env: Record<string, string> = {};
  for (const name of [...BASE_ENV, ...p.inheritEnv]) {
    const value = worker[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, p.env);
  const resume = ctx.resume?.pointer;
  let resumeFrom = '';
  if (resume) {
    // The file may be in another experiment's directory (a new run with resumeFrom); the child
    // only reads it (section 3).
    try {
      resumeFrom = resumeFile ?? fileURLToPath(resume.uri);
    } catch {
      throw spawnFailure(ctx.attempt, `cannot start the trainer: resume checkpoint ${resume.checkpointId} is at ${resume.uri}, not a file:// URL the program could read`);
    }
  }
  Object.assign(env, {
    EXPERIMENT_ID: ctx.experimentId,
    EXPERIMENT_SESSION_ID: ctx.sessionId,
    EXPERIMENT_ATTEMPT: String(ctx.attempt),
    EXPERIMENT_PARAMS: JSON.stringify(p.params),
    EXPERIMENT_CHECKPOINT_DIR: ctx.checkpointDir,
    EXPERIMENT_RESUME_FROM: resumeFrom,
    EXPERIMENT_RESUME_EPOCH: resume ? String(resume.epoch) : '',
    EXPERIMENT_RESUME_STEP: resume ? String(resume.step) : '',
  });
  return env;
}

function commandText(command: readonly string[]): string {
  const text = command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** Splits a byte stream into lines; a line over the cap is cut, and the rest of it dropped. */
class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(private readonly onLine: (line: string, truncated: boolean) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      this.append(chunk.subarray(start, nl === -1 ? chunk.length : nl));
      if (nl === -1) return;
      this.flush();
      start = nl + 1;
    }
  }

  /** A last line without a newline still counts: a child killed mid-write may leave one. */
  end(): void {
    if (this.size > 0 || this.truncated) this.flush();
  }

  private append(piece: Buffer): void {
    const room = MAX_LINE_BYTES - this.size;
    if (piece.length > room) {
      this.truncated = true;
      piece = piece.subarray(0, room);
    }
    if (piece.length === 0) return;
    this.parts.push(piece);
    this.size += piece.length;
  }

  private flush(): void {
    let line = Buffer.concat(this.parts, this.size).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const truncated = this.truncated;
    this.parts = [];
    this.size = 0;
    this.truncated = false;
    this.onLine(line, truncated);
  }
}

// ---------------------------------------------------------------------------------------------
// Protocol messages (section 4)

interface Position {
  readonly epoch: number;
  readonly step: number;
}

/** What the child said about how it ended; the outcome is decided from this plus its exit. */
export interface ChildReport {
  result?: { metrics: Metrics; modelSha256: string | undefined };
  interrupted?: Position;
  fatal?: string;
  /** Protocol violations worth repeating in a failure message (an invalid result line). */
  readonly violations: string[];
}

class Violation extends Error {}

function position(msg: Record<string, unknown>, field: 'epoch' | 'step'): number {
  const n = msg[field];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Violation(`${field}: expected an integer >= 0, received ${received(n)}`);
  return n;
}

/** Metric values that are not finite numbers are dropped (section 4.1); the caller warns about them. */
function metricsOf(msg: Record<string, unknown>, required: boolean): { metrics: Metrics; dropped: string[] } {
  const raw = msg.metrics;
  if (raw === undefined && !required) return { metrics: {}, dropped: [] };
  if (!isRecord(raw)) throw new Violation(`metrics: expected an object of numbers, received ${received(raw)}`);
  const metrics: Record<string, number> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value === 'number' && Number.isFinite(value)) metrics[name] = value;
    else dropped.push(`metrics.${name}: expected a finite number, received ${received(value)}`);
  }
  return { metrics, dropped };
}

// ---------------------------------------------------------------------------------------------
// Outcome (section 9)

export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The plugin sent SIGTERM (and maybe SIGKILL after the grace period). */
  readonly asked: boolean;
  readonly report: ChildReport;
  readonly stderrTail: readonly string[];
  readonly command: readonly string[];
}

export type Decision =
  | { readonly kind: 'completed'; readonly result: TrainerResultInput }
  | { readonly kind: 'interrupted' }
  | { readonly kind: 'failed'; readonly retryable: boolean; readonly type: string; readonly message: string };

export const EXIT_NONRETRYABLE = 3;

function withTail(message: string, tail: readonly string[]): string {
  if (tail.length === 0) return `${message} (nothing on stderr)`;
  return `${message}; last ${tail.length === 1 ? 'line' : `${tail.length} lines`} of stderr:\n${tail.join('\n')}`;
}

/** The protocol's exit table as a pure function, so every row is testable without a process. */
export function decideOutcome(end: ChildEnd): Decision {
  const { code, signal, asked, report, stderrTail } = end;
  const who = `trainer (${commandText(end.command)})`;
  const fail = (retryable: boolean, type: string, message: string): Decision => ({ kind: 'failed', retryable, type, message });
  if (report.fatal !== undefined) return fail(false, 'TrainerFatal', report.fatal);
  if (code === 0 && report.result) {
    const { metrics, modelSha256 } = report.result;
    return { kind: 'completed', result: { finalLoss: metrics.loss, accuracy: metrics.accuracy, modelSha256, metrics } };
  }
  if (code === EXIT_NONRETRYABLE) return fail(false, 'TrainerFatal', withTail(`${who} exited with code ${EXIT_NONRETRYABLE}`, stderrTail));
  // We asked it to stop: however it went (interrupted line, our SIGKILL, a non-zero exit from a
  // program without a SIGTERM handler), the run stopped because we asked; the runtime maps the reason.
  if (asked) return { kind: 'interrupted' };
  if (signal !== null) return fail(true, 'TrainerCrashed', withTail(`${who} was killed by ${signal}`, stderrTail));
  if (code === 0 && report.interrupted) {
    const at = `epoch ${report.interrupted.epoch} step ${report.interrupted.step}`;
    return fail(true, 'TrainerCrashed', withTail(`${who} stopped at ${at} on a signal the plugin did not send (another process signalled it)`, stderrTail));
  }
  if (code === 0) {
    const why = report.violations.length > 0 ? ` (${report.violations.join('; ')})` : '';
    return fail(false, 'TrainerProtocol', withTail(`${who} exited with code 0 without a result line${why}`, stderrTail));
  }
  const after = report.result ? ' after printing its result (the retry resumes from the final checkpoint)' : '';
  return fail(true, 'TrainerCrashed', withTail(`${who} exited with code ${String(code)}${after}`, stderrTail));
}

// ---------------------------------------------------------------------------------------------
// Running one child

async function train(ctx: TrainerContext<CommandParams>): Promise<TrainerResultInput | undefined> {
  const p = ctx.params;
  const log = ctx.log;
  if (p.epochs !== undefined) ctx.setEpochs(p.epochs);
  if (ctx.interrupted) {
    log.info({ reason: ctx.interruptReason }, 'interrupted before the trainer process started');
    return undefined;
  }

  const cwd = path.resolve(p.cwd ?? '.');
  try {
    if (!statSync(cwd).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    throw spawnFailure(ctx.attempt, `cannot start the trainer: cwd ${cwd}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // A remote store's checkpoint is copied into its local cache for the child to read.
  const env = childEnvironment(ctx, process.env, await ctx.resume?.localFile?.());
  const [program, ...args] = p.command;
  const executable = locateExecutable(ctx.attempt, program, cwd, env.PATH);

  const child = spawn(executable, args, { cwd, env, argv0: program, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw spawnFailure(ctx.attempt, `cannot start the trainer: ${JSON.stringify(program)} (${executable}): ${code}`);
  }
  const pid = child.pid as number;
  liveGroups.add(pid);
  installExitHook();
  log.info({ pid, command: p.command, cwd, resumeFrom: env.EXPERIMENT_RESUME_FROM || null }, 'trainer process started');
  return supervise(ctx, child, pid);
}

async function supervise(ctx: TrainerContext<CommandParams>, child: ChildProcess, pid: number): Promise<TrainerResultInput | undefined> {
  const p = ctx.params;
  const log = ctx.log;
  // Stream and timer callbacks are bound to this run's async context so their log lines carry
  // the run's fields (workflowId, experimentId, attempt, epoch).
  const bind = <A extends unknown[]>(fn: (...args: A) => void) => AsyncResource.bind(fn);

  const report: ChildReport = { violations: [] };
  const adopted = new Set<string>();
  const resumed = ctx.resume?.pointer;
  const stderrTail: string[] = [];
  let asked = false;
  let exited = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let closeTimer: NodeJS.Timeout | undefined;

  // stdin stays open and unwritten (section 2); an error on it (EPIPE after the child exited)
  // must not become an uncaught exception.
  child.stdin?.on('error', () => undefined);
  // A failed kill() is reported as an 'error' event after the spawn; without a listener it would throw.
  child.on('error', bind((err: Error) => log.warn({ pid, err }, 'trainer process error')));

  const warn = (line: string, problem: string, ignored = true) =>
    log.warn({ stream: 'stdout', line: line.slice(0, 1000), problem }, `trainer protocol violation: ${problem}${ignored ? '; line ignored' : '; value dropped'}`);

  async function handle(line: string, truncated: boolean): Promise<void> {
    let msg: unknown;
    if (!truncated) {
      try {
        msg = JSON.parse(line);
      } catch {
        msg = undefined;
      }
    }
    if (!isRecord(msg) || typeof msg.type !== 'string') {
      log.info({ stream: 'stdout', line: truncated ? `${line.slice(0, 4096)}… (truncated: over ${MAX_LINE_BYTES} bytes)` : line }, 'trainer stdout');
      return;
    }
    try {
      switch (msg.type) {
        case 'progress': {
          const epoch = position(msg, 'epoch');
          const step = position(msg, 'step');
          if (msg.epochs !== undefined) {
            const n = msg.epochs;
            if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new Violation(`epochs: expected an integer >= 1, received ${received(n)}`);
            ctx.setEpochs(n);
          }
          const { metrics, dropped } = metricsOf(msg, false);
          for (const d of dropped) warn(line, `${msg.type}.${d}`, false);
          await ctx.step({ epoch, step, metrics });
          return;
        }
        case 'checkpoint': {
          if (typeof msg.path !== 'string' || msg.path === '') throw new Violation(`path: expected a non-empty string, received ${received(msg.path)}`);
          const epoch = position(msg, 'epoch');
          const step = position(msg, 'step');
          const { metrics, dropped } = metricsOf(msg, false);
          for (const d of dropped) warn(line, `${msg.type}.${d}`, false);
          const file = path.resolve(ctx.checkpointDir, msg.path);
          try {
            await ctx.adoptCheckpoint(file, { epoch, step, metrics });
            adopted.add(`${epoch}/${step}`);
          } catch (err) {
            // Section 4.3: a refused checkpoint is not a resume point, and the run goes on.
            log.error(
              { path: msg.path, resolved: file, epoch, step, err: (err as Error).message },
              `refused checkpoint ${msg.path} from the trainer: ${(err as Error).message}; the run continues from the last adopted checkpoint`,
            );
          }
          return;
        }
        case 'result': {
          if (report.result) {
            log.warn({ stream: 'stdout', line: line.slice(0, 1000) }, 'trainer protocol violation: a second result line; the first one counts');
            return;
          }
          try {
            const { metrics, dropped } = metricsOf(msg, true);
            for (const d of dropped) warn(line, `${msg.type}.${d}`, false);
            const sha = msg.modelSha256;
            if (sha !== undefined && (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))) {
              throw new Violation(`modelSha256: expected 64 lowercase hex digits, received ${received(sha)}`);
            }
            report.result = { metrics, modelSha256: sha };
          } catch (err) {
            if (err instanceof Violation) report.violations.push(`invalid result line: ${err.message}`);
            throw err;
          }
          return;
        }
        case 'interrupted': {
          const at = { epoch: position(msg, 'epoch'), step: position(msg, 'step') };
          report.interrupted = at;
          const durable = adopted.has(`${at.epoch}/${at.step}`) || (resumed !== undefined && resumed.epoch === at.epoch && resumed.step === at.step);
          if (!durable) {
            log.warn({ epoch: at.epoch, step: at.step }, 'trainer stopped at a position it did not checkpoint; the steps since the newest checkpoint will be redone');
          }
          return;
        }
        case 'fatal': {
          if (typeof msg.message !== 'string' || msg.message === '') throw new Violation(`message: expected a non-empty string, received ${received(msg.message)}`);
          report.fatal ??= msg.message;
          log.error({ message: msg.message }, 'trainer reported a fatal error');
          return;
        }
        default:
          // Forward compatibility (section 4.1): unknown types are logged and ignored.
          log.info({ stream: 'stdout', line, type: msg.type }, `trainer stdout: unknown message type ${JSON.stringify(msg.type)} ignored`);
      }
    } catch (err) {
      if (err instanceof Violation) warn(line, `${msg.type}.${err.message}`);
      else log.error({ err, line: line.slice(0, 1000) }, 'handling a trainer line failed');
    }
  }

  // Lines are handled strictly in order; while the queue is long, stdout is paused so the child
  // blocks on the pipe instead of the worker buffering without bound.
  let queue: Promise<void> = Promise.resolve();
  let queued = 0;
  let paused = false;
  const stdoutLines = new LineSplitter((line, truncated) => {
    ctx.touch(); // any output is a sign of life for the runtime's watchdog
    queued++;
    if (queued >= QUEUE_HIGH_WATER && !paused) {
      paused = true;
      child.stdout?.pause();
    }
    queue = queue
      .then(() => handle(line, truncated))
      .finally(() => {
        queued--;
        if (paused && queued === 0) {
          paused = false;
          child.stdout?.resume();
        }
      });
  });
  const stderrLines = new LineSplitter((line) => {
    ctx.touch();
    stderrTail.push(line.length > STDERR_TAIL_LINE_CHARS ? `${line.slice(0, STDERR_TAIL_LINE_CHARS)}…` : line);
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
    log.warn({ stream: 'stderr', line }, 'trainer stderr');
  });
  child.stdout?.on('data', bind((chunk: Buffer) => stdoutLines.push(chunk)));
  child.stdout?.on('end', bind(() => stdoutLines.end()));
  child.stderr?.on('data', bind((chunk: Buffer) => stderrLines.push(chunk)));
  child.stderr?.on('end', bind(() => stderrLines.end()));

  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.once(
    'exit',
    bind((code: number | null, signal: NodeJS.Signals | null) => {
      exited = true;
      clearTimeout(graceTimer);
      // Whatever the leader left running in its group goes with it; otherwise a helper holding
      // the pipes open would keep this attempt from ever ending.
      killGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
      child.stdin?.destroy();
      log.info({ pid, code, signal }, 'trainer process exited');
      closeTimer = setTimeout(
        bind(() => {
          log.warn({ pid }, `trainer output still open ${CLOSE_AFTER_EXIT_MS} ms after the process exited (a helper outside its process group?); closing it`);
          child.stdout?.destroy();
          child.stderr?.destroy();
        }),
        CLOSE_AFTER_EXIT_MS,
      );
    }),
  );

  void ctx.interruption.then(
    bind((reason) => {
      if (exited) return;
      asked = true;
      log.info({ pid, reason, gracePeriod: formatDuration(p.gracePeriodMs) }, 'interrupting the trainer: SIGTERM to its process group');
      killGroup(pid, 'SIGTERM');
      graceTimer = setTimeout(
        bind(() => {
          if (exited) return;
          log.warn({ pid, gracePeriod: formatDuration(p.gracePeriodMs) }, 'the trainer did not exit within its grace period: SIGKILL to its process group');
          killGroup(pid, 'SIGKILL');
        }),
        p.gracePeriodMs,
      );
    }),
  );

  const { code, signal } = await closed;
  clearTimeout(closeTimer);
  // Section 9: decide only once every announced checkpoint has been adopted or refused.
  await queue;

  const decision = decideOutcome({ code, signal, asked, report, stderrTail, command: p.command });
  switch (decision.kind) {
    case 'completed':
      return decision.result;
    case 'interrupted':
      if (code !== 0 || signal !== null) log.info({ pid, code, signal, reason: ctx.interruptReason }, 'trainer stopped after the interruption');
      return undefined;
    case 'failed':
      log.warn({ pid, code, signal, type: decision.type, retryable: decision.retryable }, decision.message);
      // The details carry the attempt: the experiment workflow reads it from there for its status.
      throw ApplicationFailure.create({
        message: decision.message,
        type: decision.type,
        nonRetryable: !decision.retryable,
        details: [{ attempt: ctx.attempt, exitCode: code, signal, stderrTail }],
      });
  }
}

// ---------------------------------------------------------------------------------------------
// Trainer

export function createCommandTrainer(options: CommandTrainerOptions = {}): Trainer<CommandParams> {
  const fixed = options.allowedExecutables ? { allowedExecutables: [...options.allowedExecutables] } : {};
  return {
    name: 'command',
    parseParams: (raw) => parseCommandParams(raw, fixed),
    epochs: (params) => params.epochs,
    stopTimeMs: (params) => params.gracePeriodMs,
    train,
  };
}

/** The built-in instance; reads $EXPERIMENTS_COMMAND_ALLOWLIST each time it validates a spec. */
export const commandTrainer: Trainer<CommandParams> = createCommandTrainer();

