/**
 * The `command` trainer against the reference program examples/python/train.py, run for real by
 * python3: params validation and the exit table without a server, then whole experiments on the
 * real dev server. Workers run in-process where no signal reaches them and as child processes
 * where one is killed with SIGKILL. "Same result" always means what an uninterrupted train.py run
 * started directly (without the plugin) prints: the same loss to the last digit and the same
 * modelSha256.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import pino from 'pino';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import type { CheckpointPointer, InterruptReason, ResumeHints } from '../../src/shared/types';
import type { StepReport, TrainerContext } from '../../src/activities/trainer';
import {
  COMMAND_ALLOWLIST_ENV,
  commandTrainer,
  createCommandTrainer,
  decideOutcome,
  type ChildEnd,
  type CommandParams,
} from '../../src/activities/trainers/command';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import {
  logLines,
  processGone,
  readJsonLines,
  ROOT,
  spawnWorker,
  startHarness,
  startWorker,
  uniqueQueue,
  waitFor,
  type ChildWorker,
  type Harness,
  type RunningWorker,
} from '../helpers/env';

const TRAIN = 'examples/python/train.py';
const PYTHON = ['python3', TRAIN];

interface ResultLine {
  type: 'result';
  metrics: { loss: number; accuracy: number };
  modelSha256: string;
}

/** train.py started directly, without the plugin and without test hooks: the reference result. */
const references = new Map<string, ResultLine>();
function uninterruptedResult(params: Record<string, unknown>): ResultLine {
  const own = Object.fromEntries(Object.entries(params).filter(([k]) => !['step_delay', 'ignore_sigterm', 'bad_checkpoint_path', 'fail_at_epoch', 'stdout_noise'].includes(k)));
  const cacheKey = JSON.stringify(own);
  const cached = references.get(cacheKey);
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-py-direct-'));
  try {
    // stdin is /dev/null, not a pipe: train.py then does not watch it (a pipe closed at once would
    // look like a dead plugin).
    const run = spawnSync('python3', [TRAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, EXPERIMENT_CHECKPOINT_DIR: dir, EXPERIMENT_PARAMS: JSON.stringify(own) },
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(run.status, 0, `train.py run directly failed: ${run.stderr}`);
    const result = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string })
      .find((m): m is ResultLine => m.type === 'result');
    assert.ok(result, `train.py printed no result line:\n${run.stdout}`);
    references.set(cacheKey, result);
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The interpreter itself: `python3` on PATH may be a wrapper (pyenv's shim) that adds variables. */
let realPython: string | undefined;
function pythonExecutable(): string {
  realPython ??= spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).stdout.trim();
  assert.ok(realPython && path.isAbsolute(realPython), `python3 -c 'print(sys.executable)' said ${JSON.stringify(realPython)}`);
  return realPython;
}

function spec(id: string, params: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { id, trainer: 'command', params: { command: PYTHON, cwd: ROOT, params, ...extra } };
}

// ---------------------------------------------------------------------------------------------
// Without a server

describe('params', () => {
  const ok = { command: PYTHON };
  const cases: [string, unknown, RegExp][] = [
    ['a shell string instead of an array', { command: 'python3 train.py' }, /^params\.command: expected a non-empty array of strings, received "python3 train\.py"$/],
    ['an empty command', { command: [] }, /^params\.command: expected a non-empty array of strings, received an array$/],
    ['a missing command', {}, /^params\.command: expected a non-empty array of strings, received nothing$/],
    ['a non-string argument', { command: ['python3', 3] }, /^params\.command\[1\]: expected a string, received 3$/],
    ['an empty program', { command: ['', 'x'] }, /^params\.command\[0\]: expected the program to run, received ""$/],
    ['a NUL in an argument', { command: ['python3', 'a\u0000b'] }, /^params\.command\[1\]: expected a string without NUL characters/],
    ['an unknown key', { ...ok, shell: true }, /^params\.shell: expected one of command, cwd, env, inheritEnv, params, epochs, gracePeriod, received unknown key with value boolean true$/],
    ['params that are not an object', { ...ok, params: [1] }, /^params\.params: expected an object \(the program's own params\), received an array$/],
    ['an env value that is not a string', { ...ok, env: { SEED: 3 } }, /^params\.env\.SEED: expected a string, received 3$/],
    ['an env name that is not a name', { ...ok, env: { 'A-B': 'x' } }, /^params\.env\.A-B: expected an environment variable name/],
    ['a protocol variable in env', { ...ok, env: { EXPERIMENT_ID: 'x' } }, /^params\.env\.EXPERIMENT_ID: expected a name that does not start with EXPERIMENT_ \(the plugin sets those\), received "EXPERIMENT_ID"$/],
    ['inheritEnv not an array', { ...ok, inheritEnv: 'CUDA_VISIBLE_DEVICES' }, /^params\.inheritEnv: expected an array of environment variable names, received "CUDA_VISIBLE_DEVICES"$/],
    ['a bad inheritEnv name', { ...ok, inheritEnv: ['OK', 'no good'] }, /^params\.inheritEnv\[1\]: expected an environment variable name .* received "no good"$/],
    ['fractional epochs', { ...ok, epochs: 2.5 }, /^params\.epochs: expected an integer from 1 to 1000000, received 2\.5$/],
    ['a grace period that is not a duration', { ...ok, gracePeriod: 'soon' }, /^params\.gracePeriod: expected a duration such as '10s' or '1m', received "soon"$/],
    ['a grace period in numbers', { ...ok, gracePeriod: 10 }, /^params\.gracePeriod: expected a duration such as '10s' or '1m', received 10$/],
    ['a grace period over an hour', { ...ok, gracePeriod: '2h' }, /^params\.gracePeriod: expected a duration of at most 1h, received "2h"$/],
    ['an empty cwd', { ...ok, cwd: '' }, /^params\.cwd: expected a non-empty string \(a directory\), received ""$/],
    ['not an object', 'python3 train.py', /^params: expected an object with a "command" array, received "python3 train\.py"$/],
  ];
  for (const [name, raw, message] of cases) {
    test(`rejected with the field named: ${name}`, () => {
      assert.throws(() => commandTrainer.parseParams(raw), (err: Error) => {
        assert.match(err.message, message);
        return true;
      });
    });
  }

  test('defaults and a full spec', () => {
    const p = commandTrainer.parseParams({ command: PYTHON });
    assert.deepEqual(p, { command: PYTHON, cwd: undefined, env: {}, inheritEnv: [], params: {}, epochs: undefined, gracePeriodMs: 10_000 });
    const full = commandTrainer.parseParams({ command: PYTHON, cwd: '/srv', env: { SEED: '1' }, inheritEnv: ['CUDA_VISIBLE_DEVICES'], params: { lr: 0.1 }, epochs: 4, gracePeriod: '1.5s' });
    assert.deepEqual(full, { command: PYTHON, cwd: '/srv', env: { SEED: '1' }, inheritEnv: ['CUDA_VISIBLE_DEVICES'], params: { lr: 0.1 }, epochs: 4, gracePeriodMs: 1500 });
    assert.equal(commandTrainer.epochs?.(full), 4);
  });

  test('a worker allowlist rejects other executables, and PATH overrides, in parseParams', () => {
    const restricted = createCommandTrainer({ allowedExecutables: ['python3', '/usr/bin/python3'] });
    assert.ok(restricted.parseParams({ command: PYTHON }));
    assert.throws(() => restricted.parseParams({ command: ['bash', '-c', 'rm -rf /'] }), {
      message: 'params.command[0]: expected one of the executables this worker allows (python3, /usr/bin/python3), received "bash"',
    });
    assert.throws(() => restricted.parseParams({ command: PYTHON, env: { PATH: '/tmp/evil' } }), /^Error: params\.env\.PATH: expected no PATH override on a worker that restricts executables/);
    assert.throws(() => createCommandTrainer({ allowedExecutables: [] }).parseParams({ command: PYTHON }), /allows \(none\), received "python3"/);
  });

  test(`the built-in instance reads ${COMMAND_ALLOWLIST_ENV} (comma-separated) when it validates`, () => {
    const saved = process.env[COMMAND_ALLOWLIST_ENV];
    try {
      process.env[COMMAND_ALLOWLIST_ENV] = ' python3 , /opt/venv/bin/python ';
      assert.ok(commandTrainer.parseParams({ command: ['/opt/venv/bin/python', 'x.py'] }));
      assert.throws(() => commandTrainer.parseParams({ command: ['node', 'x.js'] }), /allows \(python3, \/opt\/venv\/bin\/python\), received "node"/);
      process.env[COMMAND_ALLOWLIST_ENV] = '';
      assert.ok(commandTrainer.parseParams({ command: ['node', 'x.js'] }), 'an empty allowlist variable means no restriction');
    } finally {
      if (saved === undefined) delete process.env[COMMAND_ALLOWLIST_ENV];
      else process.env[COMMAND_ALLOWLIST_ENV] = saved;
    }
  });
});

describe('the exit table (protocol section 9)', () => {
  const base: ChildEnd = { code: 0, signal: null, asked: false, report: { violations: [] }, stderrTail: ['Traceback (most recent call last):', 'MemoryError'], command: PYTHON };
  const result = { metrics: { loss: 0.5, accuracy: 0.75 }, modelSha256: 'a'.repeat(64) };
  const failed = (end: Partial<ChildEnd>) => {
    const d = decideOutcome({ ...base, ...end });
    assert.equal(d.kind, 'failed');
    return d as Extract<typeof d, { kind: 'failed' }>;
  };

  test('exit 0 with a result completes, also when the interrupt came during the last step', () => {
    for (const asked of [false, true]) {
      assert.deepEqual(decideOutcome({ ...base, asked, report: { violations: [], result } }), {
        kind: 'completed',
        result: { finalLoss: 0.5, accuracy: 0.75, modelSha256: 'a'.repeat(64), metrics: result.metrics },
      });
    }
  });
  test('after the plugin asked: interrupted, by an interrupted line, our SIGKILL or a non-zero exit', () => {
    assert.deepEqual(decideOutcome({ ...base, asked: true, report: { violations: [], interrupted: { epoch: 1, step: 3 } } }), { kind: 'interrupted' });
    assert.deepEqual(decideOutcome({ ...base, code: null, signal: 'SIGKILL', asked: true }), { kind: 'interrupted' });
    assert.deepEqual(decideOutcome({ ...base, code: 143, asked: true }), { kind: 'interrupted' });
  });
  test('an interrupted line nobody asked for is retryable', () => {
    const d = failed({ report: { violations: [], interrupted: { epoch: 1, step: 3 } } });
    assert.equal(d.retryable, true);
    assert.match(d.message, /stopped at epoch 1 step 3 on a signal the plugin did not send/);
  });
  test('exit 0 without result or interrupted line is a non-retryable protocol failure', () => {
    const d = failed({ report: { violations: ['invalid result line: metrics: expected an object of numbers, received nothing'] } });
    assert.equal(d.retryable, false);
    assert.equal(d.type, 'TrainerProtocol');
    assert.match(d.message, /exited with code 0 without a result line \(invalid result line: metrics: expected/);
  });
  test('a fatal line (any exit code) or exit 3 is non-retryable TrainerFatal', () => {
    const d = failed({ code: 1, report: { violations: [], fatal: 'params.lr: expected a number' } });
    assert.deepEqual([d.retryable, d.type, d.message], [false, 'TrainerFatal', 'params.lr: expected a number']);
    const three = failed({ code: 3, asked: true });
    assert.deepEqual([three.retryable, three.type], [false, 'TrainerFatal']);
    assert.match(three.message, /exited with code 3; last 2 lines of stderr:\nTraceback \(most recent call last\):\nMemoryError$/);
  });
  test('other exits and signals are retryable TrainerCrashed with the stderr tail', () => {
    const one = failed({ code: 1 });
    assert.deepEqual([one.retryable, one.type], [true, 'TrainerCrashed']);
    assert.match(one.message, /^trainer \(python3 examples\/python\/train\.py\) exited with code 1; last 2 lines of stderr:\nTraceback/);
    assert.match(failed({ code: null, signal: 'SIGKILL' }).message, /was killed by SIGKILL; last 2 lines/);
    assert.match(failed({ code: 1, report: { violations: [], result } }).message, /exited with code 1 after printing its result/);
    assert.match(failed({ code: 1, stderrTail: [] }).message, /exited with code 1 \(nothing on stderr\)$/);
  });
});

/** A TrainerContext without a server: a real checkpoint store for adoption, logs kept in memory. */
class FakeContext implements TrainerContext<CommandParams> {
  readonly experimentId = 'exp';
  readonly sessionId = 'fake';
  readonly attempt: number = 1;
  readonly steps: StepReport[] = [];
  readonly adopted: CheckpointPointer[] = [];
  readonly lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  readonly log = pino(
    { level: 'debug' },
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const l of chunk.toString('utf8').split('\n')) if (l) this.lines.push(JSON.parse(l) as { level: number; msg: string });
        done();
      },
    }),
  );
  readonly checkpointDir: string;
  readonly interruption: Promise<InterruptReason>;
  readonly signal = new AbortController().signal;
  epochs: number | undefined;
  interruptReason: InterruptReason | undefined;
  private resolveInterruption!: (r: InterruptReason) => void;

  constructor(
    readonly params: CommandParams,
    private readonly store: LocalCheckpointStore,
    readonly resume: TrainerContext<CommandParams>['resume'] = undefined,
  ) {
    this.checkpointDir = store.dirFor(storeKey(this.sessionId, this.experimentId));
    this.interruption = new Promise((resolve) => (this.resolveInterruption = resolve));
  }
  get interrupted(): boolean {
    return this.interruptReason !== undefined;
  }
  interrupt(reason: InterruptReason): void {
    this.interruptReason = reason;
    this.resolveInterruption(reason);
  }
  setEpochs(n: number): void {
    this.epochs = n;
  }
  touches = 0;
  touch(): void {
    this.touches++;
  }
  async step(report: StepReport): Promise<void> {
    this.steps.push(report);
  }
  checkpoint(): Promise<CheckpointPointer> {
    throw new Error('not used by the command trainer');
  }
  async adoptCheckpoint(file: string, input: { epoch: number; step: number; metrics?: Record<string, number> }): Promise<CheckpointPointer> {
    const pointer = await this.store.adopt(storeKey(this.sessionId, this.experimentId), file, { ...input, attempt: this.attempt }, 10);
    this.adopted.push(pointer);
    return pointer;
  }
}

describe('one child process, no server', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'command-trainer-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const fake = (raw: Record<string, unknown>, resume?: TrainerContext<CommandParams>['resume']) =>
    new FakeContext(commandTrainer.parseParams({ cwd: ROOT, ...raw }), new LocalCheckpointStore(fs.mkdtempSync(path.join(tmp, 'ck-'))), resume);

  test('a run reports progress, adopts its checkpoints, logs non-protocol output and returns the exact result', async () => {
    const params = { epochs: 2, stdout_noise: true };
    const ctx = fake({ command: PYTHON, params });
    const result = await commandTrainer.train(ctx);
    const expected = uninterruptedResult(params);
    assert.deepEqual(result, { finalLoss: expected.metrics.loss, accuracy: expected.metrics.accuracy, modelSha256: expected.modelSha256, metrics: expected.metrics });
    assert.equal(ctx.epochs, 2, 'epochs from the progress lines');
    assert.equal(ctx.steps.length, 50);
    assert.deepEqual(ctx.steps.at(-1)?.epoch, 1);
    assert.deepEqual(ctx.adopted.map((p) => [p.checkpointId, p.epoch, p.step]), [['ckpt-e0001-s000000', 1, 0], ['ckpt-e0002-s000000', 2, 0]]);
    const stdout = ctx.lines.filter((l) => l.stream === 'stdout').map((l) => String(l.line));
    assert.ok(stdout.includes('train.py: this line is not JSON; the plugin logs it'));
    assert.ok(stdout.includes('[1, 2, 3]'), 'JSON that is not an object is log text');
    assert.ok(ctx.lines.some((l) => l.level === 30 && l.type === 'debug' && /unknown message type "debug" ignored/.test(l.msg)));
    assert.ok(ctx.lines.some((l) => l.level === 40 && l.stream === 'stderr' && /fresh start of exp/.test(String(l.line))));
  });

  test('the child gets a minimal environment: PATH, HOME, LANG, inheritEnv, env and the protocol variables', async () => {
    const script = 'import json, os, sys; print(json.dumps({"type": "result", "metrics": {"loss": 1}})); print(json.dumps(dict(os.environ)), file=sys.stderr)';
    const saved = { ...process.env };
    process.env.SECRET_TOKEN = 'do-not-pass';
    process.env.PASS_ME = 'inherited';
    try {
      const ctx = fake({ command: [pythonExecutable(), '-c', script], env: { EXTRA: 'x', HOME: '/nowhere' }, inheritEnv: ['PASS_ME', 'NOT_SET_ANYWHERE'], params: { a: [1, 'b'] } });
      assert.ok(await commandTrainer.train(ctx));
      const env = JSON.parse(String(ctx.lines.find((l) => l.stream === 'stderr')?.line)) as Record<string, string>;
      delete env.LC_CTYPE; // CPython may set it itself (PEP 538)
      assert.deepEqual(env, {
        ...(saved.PATH ? { PATH: saved.PATH } : {}),
        ...(saved.LANG ? { LANG: saved.LANG } : {}),
        HOME: '/nowhere',
        PASS_ME: 'inherited',
        EXTRA: 'x',
        EXPERIMENT_ID: 'exp',
        EXPERIMENT_SESSION_ID: 'fake',
        EXPERIMENT_ATTEMPT: '1',
        EXPERIMENT_PARAMS: '{"a":[1,"b"]}',
        EXPERIMENT_CHECKPOINT_DIR: ctx.checkpointDir,
        EXPERIMENT_RESUME_FROM: '',
        EXPERIMENT_RESUME_EPOCH: '',
        EXPERIMENT_RESUME_STEP: '',
      });
    } finally {
      delete process.env.SECRET_TOKEN;
      delete process.env.PASS_ME;
    }
  });

  test('resume: the child is pointed at the verified file, also one in another directory, and only reads it', async () => {
    const first = fake({ command: PYTHON, params: { epochs: 3 } });
    await commandTrainer.train(first);
    const pointer = first.adopted.find((p) => p.epoch === 1);
    assert.ok(pointer);
    const bytes = fs.readFileSync(fileURLToPath(pointer.uri));
    const ctx = fake({ command: PYTHON, params: { epochs: 3 } }, { pointer, data: bytes });
    const result = await commandTrainer.train(ctx);
    assert.equal(result?.modelSha256, uninterruptedResult({ epochs: 3 }).modelSha256);
    assert.ok(ctx.lines.some((l) => l.stream === 'stderr' && String(l.line).includes(`resuming exp from ${fileURLToPath(pointer.uri)} (epoch 1 step 0)`)));
    assert.deepEqual(ctx.adopted.map((p) => p.epoch), [2, 3], 'training went on from epoch 1');
    assert.deepEqual(fs.readFileSync(fileURLToPath(pointer.uri)), bytes, 'the source file is untouched');
  });

  test('a program that cannot be started fails non-retryably with TrainerSpawn, naming it', async () => {
    for (const [command, message] of [
      [['no-such-trainer-xyz', 'a'], /command\[0\] "no-such-trainer-xyz" was not found on PATH .*ENOENT/],
      [['./no/such/file.py'], /"\.\/no\/such\/file\.py" \(.*\/no\/such\/file\.py\): ENOENT/],
      [[path.join(ROOT, 'docs', 'trainer-protocol.md')], /trainer-protocol\.md.*: EACCES/],
    ] as const) {
      await assert.rejects(commandTrainer.train(fake({ command })), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, 'TrainerSpawn');
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, message);
        return true;
      });
    }
    await assert.rejects(commandTrainer.train(fake({ command: PYTHON, cwd: path.join(tmp, 'missing') })), /cannot start the trainer: cwd .*missing: ENOENT/);
  });

  test('exit 0 without a result line, a crash and an unexpected signal map to typed failures with the stderr tail', async () => {
    const run = async (script: string) => {
      const err = await commandTrainer.train(fake({ command: ['python3', '-c', script] })).then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApplicationFailure, String(err));
      return err;
    };
    const noResult = await run('import sys; print("{\\"type\\":\\"result\\"}", flush=True); print("bye", file=sys.stderr)');
    assert.deepEqual([noResult.type, noResult.nonRetryable], ['TrainerProtocol', true]);
    assert.match(noResult.message, /exited with code 0 without a result line \(invalid result line: metrics: expected an object of numbers, received nothing\); last line of stderr:\nbye$/);

    const lines = Array.from({ length: 25 }, (_, i) => `print("line ${i}", file=sys.stderr)`).join('; ');
    const crash = await run(`import sys; ${lines}; sys.exit(7)`);
    assert.deepEqual([crash.type, crash.nonRetryable], ['TrainerCrashed', false]);
    assert.match(crash.message, /exited with code 7; last 20 lines of stderr:\nline 5\n(.|\n)*line 24$/);
    assert.doesNotMatch(crash.message, /line 4\n/);

    const killed = await run('import os, signal, sys; print("segfault coming", file=sys.stderr, flush=True); os.kill(os.getpid(), signal.SIGSEGV)');
    assert.deepEqual([killed.type, killed.nonRetryable], ['TrainerCrashed', false]);
    assert.match(killed.message, /was killed by SIGSEGV; last line of stderr:\nsegfault coming$/);
  });

  test('a worker that exits (process.exit, an uncaught exception) kills its trainers on the way out', async () => {
    // The child sleeps and never reads stdin, so only the worker's exit hook can stop it.
    const script = path.join(tmp, 'exiting-worker.ts');
    fs.writeFileSync(
      script,
      [
        `import pino from ${JSON.stringify(path.join(ROOT, 'node_modules', 'pino'))};`,
        `import { commandTrainer } from ${JSON.stringify(path.join(ROOT, 'src', 'activities', 'trainers', 'command.ts'))};`,
        `const params = commandTrainer.parseParams({ command: ['python3', '-c', 'import time; time.sleep(120)'] });`,
        `const ctx = { experimentId: 'x', sessionId: 's', attempt: 1, params, resume: undefined, interrupted: false, interruptReason: undefined,`,
        `  interruption: new Promise(() => {}), signal: new AbortController().signal, checkpointDir: ${JSON.stringify(tmp)}, log: pino(),`,
        `  setEpochs() {}, async step() {}, async checkpoint() { throw new Error('unused'); }, async adoptCheckpoint() { throw new Error('unused'); } };`,
        `void commandTrainer.train(ctx as never);`,
        `setTimeout(() => { if (process.argv[2] === 'throw') throw new Error('worker bug'); process.exit(0); }, 1500);`,
      ].join('\n'),
    );
    for (const mode of ['exit', 'throw']) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', script, mode], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      const started = run.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; pid?: number })
        .find((l) => l.msg === 'trainer process started');
      assert.ok(started?.pid, `the trainer started (${mode}): ${run.stdout}${run.stderr}`);
      assert.equal(run.status, mode === 'exit' ? 0 : 1);
      try {
        await waitFor(() => processGone(started.pid as number), { what: `the trainer to be killed when the worker exits (${mode})`, timeoutMs: 10_000 });
      } finally {
        try {
          process.kill(-started.pid, 'SIGKILL');
        } catch {
          // gone, as it should be
        }
      }
    }
  });

  test('interruption: SIGTERM to the group, the child checkpoints and the trainer returns only after adopting it', async () => {
    const ctx = fake({ command: PYTHON, params: { epochs: 50, step_delay: 0.01 } });
    const running = commandTrainer.train(ctx);
    await waitFor(() => ctx.adopted.length >= 1, { what: 'the first checkpoint' });
    ctx.interrupt('cancelled');
    assert.equal(await running, undefined);
    const last = ctx.adopted.at(-1);
    assert.ok(last);
    const stopped = ctx.lines.find((l) => l.stream === 'stderr' && /interrupted by signal 15 at epoch (\d+) step (\d+)/.test(String(l.line)));
    assert.ok(stopped, 'train.py says it stopped on SIGTERM');
    const [, epoch, step] = /epoch (\d+) step (\d+)/.exec(String(stopped.line)) ?? [];
    assert.deepEqual([last.epoch, last.step], [Number(epoch), Number(step)], 'the newest adopted checkpoint is the interruption point');
    assert.ok(!ctx.lines.some((l) => /did not checkpoint/.test(l.msg)));
  });
});

// ---------------------------------------------------------------------------------------------
// With a Temporal dev server

describe('experiments on the dev server', () => {
  let h: Harness;
  let w: RunningWorker;
  const children: ChildWorker[] = [];
  before(async () => {
    h = await startHarness();
    w = await startWorker(h, { taskQueue: uniqueQueue('command') });
  });
  after(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await w?.stop();
    await h?.teardown();
  });

  const store = () => new LocalCheckpointStore(w.checkpointDir);
  const pidOf = (workflowId: string, attempt = 1) =>
    logLines.find((l) => l.msg === 'trainer process started' && l.workflowId === workflowId && l.attempt === attempt)?.pid as number | undefined;

  test('an experiment completes with the result of an uninterrupted run, and its checkpoints are in the manifest', async () => {
    const params = { epochs: 4, seed: 3 };
    const handle = await w.client.startSession({ sessionId: 'cmd-ok', policy: { checkpointsToKeep: 10 }, experiments: [spec('e', params, { epochs: 4 })] });
    const summary = await handle.result();
    const e = summary.experiments[0];
    const expected = uninterruptedResult(params);
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 1);
    assert.equal(e.result?.finalLoss, expected.metrics.loss, 'the same loss to the last digit');
    assert.equal(e.result?.accuracy, expected.metrics.accuracy);
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    assert.equal(e.epochs, 4);

    const manifest = await store().list(storeKey('cmd-ok', 'e'));
    assert.deepEqual(
      manifest.map((p) => [p.checkpointId, p.epoch, p.step]),
      [4, 3, 2, 1].map((n) => [`ckpt-e000${n}-s000000`, n, 0]),
    );
    for (const pointer of manifest) {
      // The run's place, and in it the first attempt's own directory (invocation 0, attempt 1).
      assert.equal(path.dirname(fileURLToPath(pointer.uri)), fs.realpathSync(path.join(w.checkpointDir, 'cmd-ok', 'e', `run-${pointer.runId}`, 'attempt-0-1')));
      assert.deepEqual(await store().read(pointer), fs.readFileSync(fileURLToPath(pointer.uri)), 'verifies against its recorded sha256');
      assert.deepEqual(Object.keys(pointer.metrics).sort(), ['accuracy', 'loss']);
    }
    assert.equal(e.latestCheckpoint?.id, 'ckpt-e0004-s000000');
    const pid = pidOf('cmd-ok:e');
    assert.ok(pid, 'the trainer pid is logged with the run context');
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to be gone` });
  });

  test('kill -9 of the worker: the python child exits too, and a second worker resumes from the latest checkpoint to the same result', async () => {
    const taskQueue = uniqueQueue('command-kill');
    const checkpointDir = path.join(h.tmp, 'ck-command-kill');
    const client = new ExperimentsClient({ client: h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir) });
    const worker = (name: string) => {
      const c = spawnWorker(h, { taskQueue, checkpointDir, name });
      children.push(c);
      return c;
    };
    const a = worker('command-kill-a');
    await a.ready;
    // 25 steps × 20 ms ≈ 0.5 s per epoch.
    const params = { epochs: 8, step_delay: 0.02, seed: 5 };
    const handle = await client.startSession({
      sessionId: 'cmd-kill',
      policy: { heartbeatTimeout: '3s', retry: { initialInterval: '200ms' } },
      experiments: [spec('e', params)],
    });
    const key = storeKey('cmd-kill', 'e');
    const latest = async () => (await client.store.list(key))[0];
    await waitFor(async () => ((await latest())?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200)); // into the next epoch
    const started = readJsonLines(a.logFile).find((l) => l.msg === 'trainer process started');
    const pid = started?.pid as number;
    assert.ok(pid, 'the worker logged the trainer pid');
    assert.equal(processGone(pid), false, 'python is training');
    a.child.kill('SIGKILL');
    assert.equal((await a.exited).signal, 'SIGKILL');
    // Read after the kill: what the dead worker adopted last is what the retry must resume from.
    const atKill = await latest();
    assert.ok(atKill.epoch >= 2);
    // Nobody signals the child: it sees EOF on stdin and exits by itself (protocol section 8).
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to exit after its worker died`, timeoutMs: 15_000 });

    const b = worker('command-kill-b');
    const summary = await handle.result();
    const e = summary.experiments[0];
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 2);
    assert.equal(e.resumedFrom, atKill.epoch, 'resumed from the checkpoint that was newest when the worker died');
    const expected = uninterruptedResult(params);
    assert.equal(e.result?.finalLoss, expected.metrics.loss, 'the same loss to the last digit');
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'trainer process started');
    assert.equal(resumed?.resumeFrom, fileURLToPath(atKill.uri));
    b.child.kill('SIGTERM');
    await b.exited;
  });

  test('SIGTERM to the worker: the child checkpoints where it is, and another worker resumes from there without waiting for the heartbeat timeout', async () => {
    const taskQueue = uniqueQueue('command-shutdown');
    const checkpointDir = path.join(h.tmp, 'ck-command-shutdown');
    const client = new ExperimentsClient({ client: h.env.client, taskQueue, store: new LocalCheckpointStore(checkpointDir) });
    const worker = (name: string) => {
      const c = spawnWorker(h, { taskQueue, checkpointDir, name });
      children.push(c);
      return c;
    };
    const a = worker('command-shutdown-a');
    await a.ready;
    const params = { epochs: 8, step_delay: 0.02, seed: 6 };
    const handle = await client.startSession({
      sessionId: 'cmd-shutdown',
      policy: { heartbeatTimeout: '2m', retry: { initialInterval: '200ms' } },
      experiments: [spec('e', params)],
    });
    const key = storeKey('cmd-shutdown', 'e');
    await waitFor(async () => (await client.store.list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    const pid = readJsonLines(a.logFile).find((l) => l.msg === 'trainer process started')?.pid as number;
    assert.ok(pid);
    const sentAt = Date.now();
    a.child.kill('SIGTERM');
    assert.equal((await a.exited).code, 0, 'the worker shuts down cleanly');
    assert.ok(processGone(pid), 'the trainer exited before its worker did');
    const aLog = readJsonLines(a.logFile);
    assert.equal(aLog.find((l) => l.msg === 'interrupting the trainer: SIGTERM to its process group')?.reason, 'worker-shutdown');
    const said = aLog.find((l) => l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
    assert.ok(said, 'train.py stopped on SIGTERM');
    const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
    const [newest] = await client.store.list(key);
    assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the interruption checkpoint was adopted before the worker exited');

    // Started only now, so the retry cannot have gone anywhere else.
    const b = worker('command-shutdown-b');
    const summary = await handle.result();
    const e = summary.experiments[0];
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 2);
    const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'trainer process started');
    assert.equal(resumed?.resumeFrom, fileURLToPath(newest.uri));
    // A lost worker would be noticed only after the 2 min heartbeat timeout; a shut-down one hands over at once.
    assert.ok((resumed.time as number) - sentAt < 90_000, `resumed ${(resumed.time as number) - sentAt} ms after SIGTERM`);
    const expected = uninterruptedResult(params);
    assert.equal(e.result?.finalLoss, expected.metrics.loss);
    assert.equal(e.result?.modelSha256, expected.modelSha256);
    b.child.kill('SIGTERM');
    await b.exited;
  });

  test('cancel: the child gets SIGTERM, checkpoints and exits; the experiment is interrupted and hints name that checkpoint', async () => {
    const params = { epochs: 40, step_delay: 0.02, seed: 8 };
    const session = await w.client.startSession({ sessionId: 'cmd-cancel', experiments: [spec('e', params)] });
    const workflowId = 'cmd-cancel:e';
    const key = storeKey('cmd-cancel', 'e');
    await waitFor(async () => (await store().list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200));
    await w.client.cancel(workflowId, 'enough');

    const handle = h.env.client.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    const status = await w.client.status(workflowId);
    assert.equal(status.kind, 'experiment');
    assert.equal(status.state, 'interrupted');

    const sigterm = logLines.find((l) => l.workflowId === workflowId && l.msg === 'interrupting the trainer: SIGTERM to its process group');
    assert.equal(sigterm?.reason, 'cancelled');
    const said = logLines.find((l) => l.workflowId === workflowId && l.stream === 'stderr' && /interrupted by signal 15 at epoch \d+ step \d+/.test(String(l.line)));
    assert.ok(said, 'the child logged that SIGTERM stopped it (stderr lines carry the run context)');
    const [, epoch, step] = (/epoch (\d+) step (\d+)/.exec(String(said.line)) ?? []).map(Number);
    const [newest] = await store().list(key);
    assert.deepEqual([newest.epoch, newest.step], [epoch, step], 'the newest checkpoint is the one saved on SIGTERM');
    assert.ok(!logLines.some((l) => l.workflowId === workflowId && /did not exit within its grace period/.test(l.msg)), 'no SIGKILL was needed');

    const hints = (await w.client.hints(workflowId)) as ResumeHints;
    assert.equal(hints.latestCheckpoint?.id, newest.checkpointId);
    assert.equal(hints.latestCheckpoint?.step, step);
    assert.equal(hints.resumeCommand, `experiments resume ${workflowId}`);
    assert.deepEqual(hints.warnings, []);
    assert.equal((await session.result()).experiments[0].state, 'interrupted');
    const pid = pidOf(workflowId);
    assert.ok(pid);
    await waitFor(() => processGone(pid), { what: `python pid ${pid} to be gone` });
  });

  test('a child that ignores SIGTERM is killed after the grace period; the experiment is interrupted at its last good checkpoint', async () => {
    const params = { epochs: 40, step_delay: 0.02, seed: 9, ignore_sigterm: true };
    const session = await w.client.startSession({ sessionId: 'cmd-stubborn', experiments: [spec('e', params, { gracePeriod: '1s' })] });
    const workflowId = 'cmd-stubborn:e';
    const key = storeKey('cmd-stubborn', 'e');
    await waitFor(async () => (await store().list(key)).length >= 1, { what: 'the first checkpoint', timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 200));
    await w.client.cancel(workflowId);

    const handle = h.env.client.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure');
    const status = await w.client.status(workflowId);
    assert.equal(status.kind, 'experiment');
    assert.equal(status.state, 'interrupted');
    const killed = logLines.find((l) => l.workflowId === workflowId && /did not exit within its grace period: SIGKILL/.test(l.msg));
    assert.equal(killed?.gracePeriod, '1s');
    const exited = logLines.find((l) => l.workflowId === workflowId && l.msg === 'trainer process exited');
    assert.equal(exited?.signal, 'SIGKILL');

    const [newest] = await store().list(key);
    assert.equal(newest.step, 0, 'the last good checkpoint is an end-of-epoch one: the child never saved on SIGTERM');
    const hints = (await w.client.hints(workflowId)) as ResumeHints;
    assert.equal(hints.latestCheckpoint?.id, newest.checkpointId);
    assert.deepEqual(hints.warnings, []);
    assert.equal((await session.result()).experiments[0].state, 'interrupted');
  });

  test('a checkpoint path outside the directory or a missing file is refused with a logged error, and the run goes on', async () => {
    const outside = { epochs: 5, seed: 21, bad_checkpoint_path: '/etc/hostname', fail_at_epoch: 2 };
    const missing = { epochs: 3, seed: 22, bad_checkpoint_path: 'never-written.json' };
    const handle = await w.client.startSession({
      sessionId: 'cmd-refuse',
      policy: { checkpointsToKeep: 10, retry: { initialInterval: '200ms' } },
      experiments: [spec('outside', outside), spec('missing', missing)],
    });
    const summary = await handle.result();
    const [a, b] = summary.experiments;

    const refusedOutside = logLines.find((l) => l.level === 50 && l.workflowId === 'cmd-refuse:outside' && l.path === '/etc/hostname');
    assert.ok(refusedOutside, 'a logged error names the path');
    assert.match(refusedOutside.msg, /^refused checkpoint \/etc\/hostname from the trainer: cannot adopt checkpoint \/etc\/hostname .*outside the checkpoint directory/);
    const refusedMissing = logLines.find((l) => l.level === 50 && l.workflowId === 'cmd-refuse:missing' && l.path === 'never-written.json');
    assert.ok(refusedMissing);
    assert.match(refusedMissing.msg, /never-written\.json.*file does not exist/);

    // The refused checkpoint at the end of epoch 0 is not a resume point; the crash in epoch 2
    // resumes from the end of epoch 1 (a good one), and attempt 2's first checkpoint (the end of
    // epoch 2, announced under bad_checkpoint_path again) is refused too.
    assert.equal(a.state, 'completed', a.reason ?? '');
    assert.equal(a.attempt, 2);
    assert.equal(a.resumedFrom, 2);
    assert.equal(a.result?.modelSha256, uninterruptedResult(outside).modelSha256);
    assert.equal(a.result?.finalLoss, uninterruptedResult(outside).metrics.loss);
    const aManifest = (await store().list(storeKey('cmd-refuse', 'outside'))).map((p) => p.epoch).sort();
    assert.deepEqual(aManifest, [2, 4, 5], 'epochs 1 (attempt 1) and 3 (attempt 2) were refused');

    assert.equal(b.state, 'completed', b.reason ?? '');
    assert.equal(b.attempt, 1);
    assert.equal(b.result?.modelSha256, uninterruptedResult(missing).modelSha256);
    const bManifest = await store().list(storeKey('cmd-refuse', 'missing'));
    assert.deepEqual(bManifest.map((p) => p.epoch).sort(), [2, 3]);
    assert.ok(bManifest.every((p) => !p.uri.includes('never-written')));
  });

  test('exit codes: a fatal line fails at once with TrainerFatal; a crash is retried with the stderr tail and resumes to the same result', async () => {
    const crash = { epochs: 3, seed: 4, fail_at_epoch: 1 };
    const handle = await w.client.startSession({
      sessionId: 'cmd-exit',
      policy: { retry: { initialInterval: '200ms' } },
      experiments: [spec('fatal', { lr: 'fast' }), spec('crash', crash)],
    });
    const summary = await handle.result();
    const [fatal, crashed] = summary.experiments;

    assert.equal(fatal.state, 'failed');
    assert.equal(fatal.attempt, 1, 'not retried');
    assert.match(fatal.reason ?? '', /params\.lr: expected a number > 0 and <= 100, received "fast"/);
    const history = await h.env.client.workflow.getHandle('cmd-exit:fatal').fetchHistory();
    const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment');
    const starts = history.events?.filter((e) => e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled?.eventId));
    assert.deepEqual(starts?.map((e) => e.activityTaskStartedEventAttributes?.attempt), [1]);
    const failure = history.events?.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes?.failure;
    assert.equal(failure?.applicationFailureInfo?.type, 'TrainerFatal');
    assert.equal(failure?.applicationFailureInfo?.nonRetryable, true);
    assert.equal(failure?.message, 'params.lr: expected a number > 0 and <= 100, received "fast"', 'the fatal message, verbatim');

    assert.equal(crashed.state, 'completed', crashed.reason ?? '');
    assert.equal(crashed.attempt, 2);
    assert.equal(crashed.resumedFrom, 1);
    const expected = uninterruptedResult(crash);
    assert.equal(crashed.result?.finalLoss, expected.metrics.loss);
    assert.equal(crashed.result?.modelSha256, expected.modelSha256);
    const firstFailure = logLines.find((l) => l.workflowId === 'cmd-exit:crash' && l.attempt === 1 && l.type === 'TrainerCrashed');
    assert.ok(firstFailure, 'attempt 1 logged its failure');
    assert.equal(firstFailure.level, 40);
    assert.equal(firstFailure.code, 1);
    assert.match(firstFailure.msg, /^trainer \(python3 examples\/python\/train\.py\) exited with code 1; last \d+ lines of stderr:\n/);
    assert.match(firstFailure.msg, /simulated crash at epoch 1 step 12/, 'the stderr tail is in the failure message');
  });
});
