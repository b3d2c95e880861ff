/**
 * The `command` trainer running one registered program as a real child process, without a
 * server: a FakeContext stands in for the activity runtime (it records steps and adopts
 * checkpoints into a real store), because the runtime needs a Temporal server. The programs are
 * the reference trainer examples/python/train.py and the one-liners of ./command/helpers.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import type { TrainerContext } from '../../src/activities/trainer';
import { createCommandTrainer, type CommandParams } from '../../src/activities/trainers/command';
import { ROOT, waitFor } from '../helpers/env';
import { FakeContext, processGone, PYTHON, testRegistry, uninterruptedResult } from './command/helpers';

const trainer = createCommandTrainer(testRegistry());

describe('one child process, no server', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'command-trainer-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const fake = (program: string, params: Record<string, unknown> = {}, resume?: TrainerContext<CommandParams>['resume']) =>
    new FakeContext(trainer.parseParams({ program, params }), new LocalCheckpointStore(fs.mkdtempSync(path.join(tmp, 'ck-'))), resume);

  test('a run reports progress, adopts its checkpoints, logs non-protocol output and returns the exact result', async () => {
    const params = { epochs: 2, stdout_noise: true };
    const ctx = fake('softmax', params);
    const result = await trainer.train(ctx);
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

  test('the child gets a minimal environment: PATH, HOME, LANG, and the program\'s inheritEnv and env, then the protocol variables', async () => {
    const saved = { ...process.env };
    process.env.SECRET_TOKEN = 'do-not-pass';
    process.env.PASS_ME = 'inherited';
    try {
      const ctx = fake('env-dump', { a: [1, 'b'] });
      assert.ok(await trainer.train(ctx));
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
    const first = fake('softmax', { epochs: 3 });
    await trainer.train(first);
    const pointer = first.adopted.find((p) => p.epoch === 1);
    assert.ok(pointer);
    const bytes = fs.readFileSync(fileURLToPath(pointer.uri));
    const ctx = fake('softmax', { epochs: 3 }, { pointer, data: bytes });
    const result = await trainer.train(ctx);
    assert.equal(result?.modelSha256, uninterruptedResult({ epochs: 3 }).modelSha256);
    assert.ok(ctx.lines.some((l) => l.stream === 'stderr' && String(l.line).includes(`resuming exp from ${fileURLToPath(pointer.uri)} (epoch 1 step 0)`)));
    assert.deepEqual(ctx.adopted.map((p) => p.epoch), [2, 3], 'training went on from epoch 1');
    assert.deepEqual(fs.readFileSync(fileURLToPath(pointer.uri)), bytes, 'the source file is untouched');
  });

  test('a program that cannot be started fails non-retryably with TrainerSpawn, naming it', async () => {
    for (const [program, message] of [
      ['not-on-path', /argv\[0\] "no-such-trainer-xyz" was not found on PATH .*ENOENT/],
      ['no-such-file', /program no-such-file: "\.\/no\/such\/file\.py" \(.*\/no\/such\/file\.py\): ENOENT/],
      ['not-executable', /trainer-protocol\.md.*: EACCES/],
      ['missing-cwd', /cannot start the trainer: program missing-cwd: cwd .*no-such-dir-for-command-tests: ENOENT/],
    ] as const) {
      await assert.rejects(trainer.train(fake(program)), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, 'TrainerSpawn');
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  test('exit 0 without a result line, a crash and an unexpected signal map to typed failures with the stderr tail', async () => {
    const run = async (program: string) => {
      const err = await trainer.train(fake(program)).then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApplicationFailure, String(err));
      return err;
    };
    const noResult = await run('no-result');
    assert.deepEqual([noResult.type, noResult.nonRetryable], ['TrainerProtocol', true]);
    assert.match(noResult.message, /exited with code 0 without a result line \(invalid result line: metrics: expected an object of numbers, received nothing\); last line of stderr:\nbye$/);

    const crash = await run('crash-7');
    assert.deepEqual([crash.type, crash.nonRetryable], ['TrainerCrashed', false]);
    assert.match(crash.message, /exited with code 7; last 20 lines of stderr:\nline 5\n(.|\n)*line 24$/);
    assert.doesNotMatch(crash.message, /line 4\n/);

    const killed = await run('segv');
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
        `import { createCommandTrainer, ProgramRegistry } from ${JSON.stringify(path.join(ROOT, 'src', 'activities', 'trainers', 'command', 'index.ts'))};`,
        `const trainer = createCommandTrainer(new ProgramRegistry([{ name: 'sleeper', argv: [${JSON.stringify(PYTHON)}, '-c', 'import time; time.sleep(120)'] }]));`,
        `const params = trainer.parseParams({ program: 'sleeper' });`,
        `const ctx = { experimentId: 'x', sessionId: 's', attempt: 1, params, resume: undefined, interrupted: false, interruptReason: undefined,`,
        `  interruption: new Promise(() => {}), signal: new AbortController().signal, checkpointDir: ${JSON.stringify(tmp)}, log: pino(),`,
        `  setEpochs() {}, async step() {}, async checkpoint() { throw new Error('unused'); }, async checkpointInBackground() { throw new Error('unused'); }, async adoptCheckpoint() { throw new Error('unused'); } };`,
        `void trainer.train(ctx as never);`,
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
    const ctx = fake('softmax', { epochs: 50, step_delay: 0.01 });
    const running = trainer.train(ctx);
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
