/**
 * The built-in `command` trainer: runs a program registered on the worker (registry.ts) as a
 * child process and speaks the external trainer protocol with it. docs/trainer-protocol.md is
 * the single source of truth for that protocol; its section numbers are cited where a rule
 * comes from there. A spec names the program and gives its params, nothing else:
 * `{ trainer: 'command', params: { program: 'softmax', params: { epochs: 5 } } }`.
 *
 * This file holds the spec's params and the supervision of one child: its stdout lines drive
 * progress and checkpoint adoption strictly in order (`handleLine`, the one place a line is
 * acted on), and the way it ends decides the outcome (outcome.ts).
 */
import { AsyncResource } from 'node:async_hooks';
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import { formatDuration } from '../../../shared/duration';
import { formatIssues } from '../../../shared/schema';
import type { Trainer, TrainerContext, TrainerResultInput } from '../../trainer';
import { decideOutcome, type ChildReport } from './outcome';
import { childEnvironment, groupEnded, killGroup, startChild } from './process';
import { isRecord, LineSplitter, MAX_LINE_BYTES, parseLine, received, type Message } from './protocol';
import { ProgramRegistry, type Program } from './registry';

export { decideOutcome, EXIT_NONRETRYABLE, type ChildEnd, type ChildReport, type Decision } from './outcome';
export { LineSplitter, parseLine, type Message } from './protocol';
export { loadProgramsFile, ProgramRegistry, type Program, type ProgramDefinition } from './registry';

/** The `command` trainer's params, validated. */
export interface CommandParams {
  /** Name of the registered program. */
  readonly program: string;
  /** The program's own params: EXPERIMENT_PARAMS, as JSON. */
  readonly params: Readonly<Record<string, unknown>>;
  /** The registered program; undefined only where the worker's programs are not known (a client). */
  readonly resolved: Program | undefined;
}

/**
 * Keys a spec may not set, because the worker fixes them where the program is registered. Named
 * in the error so that an old spec (`command`, `env`, ...) is told what changed.
 */
const WORKER_ONLY = ['command', 'argv', 'executable', 'cwd', 'env', 'inheritEnv', 'gracePeriod', 'epochs'] as const;

const specParamsSchema = z.strictObject({
  program: z.string().min(1),
  params: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Validates a spec's params against the registry. With `registry` undefined (a client that does
 * not know the workers' programs) only the shape is checked; the worker checks the rest.
 */
export function parseCommandParams(raw: unknown, registry: ProgramRegistry | undefined): CommandParams {
  if (!isRecord(raw)) throw new Error(`params: expected an object { program, params }, received ${received(raw)}`);
  for (const key of WORKER_ONLY) {
    if (key in raw) {
      throw new Error(
        `params.${key}: expected no ${key} in a spec (a program's executable, arguments, working directory and environment are fixed where it is registered on the worker; see docs/trainer-protocol.md section 13), received ${received(raw[key])}`,
      );
    }
  }
  const parsed = specParamsSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new Error(formatIssues(parsed.error, 'params').join('; '));
  const { program: name, params = {} } = parsed.data;
  if (!registry) return { program: name, params, resolved: undefined };
  const resolved = registry.get(name);
  if (!resolved) {
    const known = registry.size > 0 ? `one of the programs registered on this worker (${registry.names().join(', ')})` : 'a registered program, and this worker has none (register them with `experiments worker --programs FILE` or the plugin\'s `programs` option)';
    throw new Error(`params.program: expected ${known}, received ${JSON.stringify(name)}`);
  }
  resolved.checkParams(params, 'params.params');
  return { program: name, params, resolved };
}

function epochsOf(p: CommandParams): number | undefined {
  const field = p.resolved?.epochsParam;
  const n = field === undefined ? undefined : p.params[field];
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}

const STDERR_TAIL_LINES = 20;
const STDERR_TAIL_LINE_CHARS = 500;
/** Lines queued for in-order handling before stdout is paused (the child then blocks on the pipe). */
const QUEUE_HIGH_WATER = 256;
/**
 * After the child exits, its group is killed; pipes can still be held open by a helper that left
 * the group. This bounds how long we wait for them before deciding the outcome without them.
 */
const CLOSE_AFTER_EXIT_MS = 5000;

async function train(ctx: TrainerContext<CommandParams>): Promise<TrainerResultInput | undefined> {
  const program = ctx.params.resolved;
  if (!program) throw ApplicationFailure.nonRetryable(`program ${ctx.params.program}: no program registry on this worker`, 'UnknownProgram');
  const epochs = epochsOf(ctx.params);
  if (epochs !== undefined) ctx.setEpochs(epochs);
  if (ctx.interrupted) {
    ctx.log.info({ reason: ctx.interruptReason }, 'interrupted before the trainer process started');
    return undefined;
  }
  // A remote store's checkpoint is copied into its local cache for the child to read.
  const resumeFile = await ctx.resume?.localFile?.();
  const run = { experimentId: ctx.experimentId, sessionId: ctx.sessionId, attempt: ctx.attempt, params: ctx.params.params, checkpointDir: ctx.checkpointDir, resume: ctx.resume, resumeFile, devices: ctx.devices };
  const env = childEnvironment(program, run, process.env);
  const { child, pid } = await startChild(program, env, ctx.attempt);
  ctx.log.info({ pid, program: program.name, argv: program.argv, cwd: program.cwd, resumeFrom: env.EXPERIMENT_RESUME_FROM || null }, 'trainer process started');
  return supervise(ctx, program, child, pid);
}

/** Per-child state the line handler updates. */
interface LineState {
  readonly report: ChildReport;
  /** `epoch/step` of every adopted checkpoint. */
  readonly adopted: Set<string>;
}

/**
 * The one place a stdout line is acted on (section 4). Never throws: a broken line is logged
 * and ignored, a refused checkpoint is logged and the run goes on (section 4.3).
 */
async function handleLine(ctx: TrainerContext<CommandParams>, state: LineState, line: string, truncated: boolean): Promise<void> {
  const log = ctx.log;
  const warn = (problem: string, ignored = true) =>
    log.warn({ stream: 'stdout', line: line.slice(0, 1000), problem }, `trainer protocol violation: ${problem}${ignored ? '; line ignored' : '; value dropped'}`);
  const warnDropped = (msg: Message & { dropped: readonly string[] }) => {
    for (const d of msg.dropped) warn(`${msg.type}.${d}`, false);
  };
  try {
    const msg = parseLine(line, truncated);
    switch (msg.type) {
      case 'text':
        log.info({ stream: 'stdout', line: truncated ? `${line.slice(0, 4096)}… (truncated: over ${MAX_LINE_BYTES} bytes)` : line }, 'trainer stdout');
        return;
      case 'unknown':
        log.info({ stream: 'stdout', line, type: msg.name }, `trainer stdout: unknown message type ${JSON.stringify(msg.name)} ignored`);
        return;
      case 'violation':
        if (msg.of === 'result') state.report.violations.push(`invalid result line: ${msg.problem}`);
        warn(`${msg.of}.${msg.problem}`);
        return;
      case 'progress':
        warnDropped(msg);
        if (msg.epochs !== undefined) ctx.setEpochs(msg.epochs);
        await ctx.step({ epoch: msg.epoch, step: msg.step, metrics: msg.metrics });
        return;
      case 'checkpoint': {
        warnDropped(msg);
        const { epoch, step, metrics } = msg;
        const file = path.resolve(ctx.checkpointDir, msg.path);
        try {
          await ctx.adoptCheckpoint(file, { epoch, step, metrics });
          state.adopted.add(`${epoch}/${step}`);
        } catch (err) {
          log.error(
            { path: msg.path, resolved: file, epoch, step, err: (err as Error).message },
            `refused checkpoint ${msg.path} from the trainer: ${(err as Error).message}; the run continues from the last adopted checkpoint`,
          );
        }
        return;
      }
      case 'result':
        if (state.report.result) {
          log.warn({ stream: 'stdout', line: line.slice(0, 1000) }, 'trainer protocol violation: a second result line; the first one counts');
          return;
        }
        warnDropped(msg);
        state.report.result = { metrics: msg.metrics, modelSha256: msg.modelSha256 };
        return;
      case 'interrupted': {
        state.report.interrupted = { epoch: msg.epoch, step: msg.step };
        const resumed = ctx.resume?.pointer;
        const durable = state.adopted.has(`${msg.epoch}/${msg.step}`) || (resumed !== undefined && resumed.epoch === msg.epoch && resumed.step === msg.step);
        if (!durable) log.warn({ epoch: msg.epoch, step: msg.step }, 'trainer stopped at a position it did not checkpoint; the steps since the newest checkpoint will be redone');
        return;
      }
      case 'fatal':
        state.report.fatal ??= msg.message;
        log.error({ message: msg.message }, 'trainer reported a fatal error');
        return;
    }
  } catch (err) {
    log.error({ err, line: line.slice(0, 1000) }, 'handling a trainer line failed');
  }
}

async function supervise(ctx: TrainerContext<CommandParams>, program: Program, child: ChildProcess, pid: number): Promise<TrainerResultInput | undefined> {
  const log = ctx.log;
  // Stream and timer callbacks are bound to this run's async context so their log lines carry
  // the run's fields (workflowId, experimentId, attempt, epoch).
  const bind = <A extends unknown[]>(fn: (...args: A) => void) => AsyncResource.bind(fn);
  const state: LineState = { report: { violations: [] }, adopted: new Set() };
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
      .then(() => handleLine(ctx, state, line, truncated))
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
      groupEnded(pid);
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

  const grace = formatDuration(program.gracePeriodMs);
  void ctx.interruption.then(
    bind((reason) => {
      if (exited) return;
      asked = true;
      log.info({ pid, reason, gracePeriod: grace }, 'interrupting the trainer: SIGTERM to its process group');
      killGroup(pid, 'SIGTERM');
      graceTimer = setTimeout(
        bind(() => {
          if (exited) return;
          log.warn({ pid, gracePeriod: grace }, 'the trainer did not exit within its grace period: SIGKILL to its process group');
          killGroup(pid, 'SIGKILL');
        }),
        program.gracePeriodMs,
      );
    }),
  );

  const { code, signal } = await closed;
  clearTimeout(closeTimer);
  // Section 9: decide only once every announced checkpoint has been adopted or refused.
  await queue;

  const decision = decideOutcome({ code, signal, asked, report: state.report, stderrTail, program: program.name });
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

/**
 * The `command` trainer over a registry. A worker always passes one (empty: the trainer runs
 * nothing); a client passes `undefined` when it does not know the workers' programs, and then
 * checks only the shape of specs.
 */
export function createCommandTrainer(registry: ProgramRegistry | undefined): Trainer<CommandParams> {
  return {
    name: 'command',
    parseParams: (raw) => parseCommandParams(raw, registry),
    epochs: epochsOf,
    stopTimeMs: (params) => params.resolved?.gracePeriodMs ?? 0,
    train,
  };
}
