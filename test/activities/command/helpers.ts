/**
 * Shared by the `command` trainer tests: the programs they register (the reference trainer
 * examples/python/train.py and a few one-line Python programs for the failure paths), the
 * reference result of an uninterrupted train.py run started directly (without the plugin), a
 * TrainerContext without a server, and process checks. "Same result" always means what that
 * direct run prints: the same loss to the last digit and the same modelSha256.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { LocalCheckpointStore } from '../../../src/activities/checkpoint-store';
import type { StepReport, TrainerContext } from '../../../src/activities/trainer';
import { ProgramRegistry, type CommandParams, type ProgramDefinition } from '../../../src/activities/trainers/command';
import { storeKey } from '../../../src/shared/ids';
import type { CheckpointPointer, InterruptReason } from '../../../src/shared/types';
import { ROOT } from '../../helpers/env';

export const TRAIN = 'examples/python/train.py';
/** Debian's interpreter: a real executable, not pyenv's shim (which adds variables of its own). */
export const PYTHON = '/usr/bin/python3';

/** Prints the child's environment to stderr and a result line. */
const ENV_DUMP = 'import json, os, sys; print(json.dumps({"type": "result", "metrics": {"loss": 1}})); print(json.dumps(dict(os.environ)), file=sys.stderr)';
const STDERR_25 = Array.from({ length: 25 }, (_, i) => `print("line ${i}", file=sys.stderr)`).join('; ');

/** Every program the tests run, registered by name as a worker operator would. */
export const TEST_PROGRAMS: ProgramDefinition[] = [
  { name: 'softmax', argv: [PYTHON, TRAIN], cwd: ROOT, epochsParam: 'epochs' },
  { name: 'softmax-1s-grace', argv: [PYTHON, TRAIN], cwd: ROOT, gracePeriod: '1s' },
  { name: 'env-dump', argv: [PYTHON, '-c', ENV_DUMP], env: { EXTRA: 'x', HOME: '/nowhere' }, inheritEnv: ['PASS_ME', 'NOT_SET_ANYWHERE'] },
  { name: 'no-result', argv: [PYTHON, '-c', 'import sys; print("{\\"type\\":\\"result\\"}", flush=True); print("bye", file=sys.stderr)'] },
  { name: 'crash-7', argv: [PYTHON, '-c', `import sys; ${STDERR_25}; sys.exit(7)`] },
  { name: 'segv', argv: [PYTHON, '-c', 'import os, signal, sys; print("segfault coming", file=sys.stderr, flush=True); os.kill(os.getpid(), signal.SIGSEGV)'] },
  { name: 'sleeper', argv: [PYTHON, '-c', 'import time; time.sleep(120)'] },
  { name: 'not-on-path', argv: ['no-such-trainer-xyz', 'a'] },
  { name: 'no-such-file', argv: ['./no/such/file.py'], cwd: ROOT },
  { name: 'not-executable', argv: [path.join(ROOT, 'docs', 'trainer-protocol.md')] },
  { name: 'missing-cwd', argv: [PYTHON, TRAIN], cwd: path.join(os.tmpdir(), 'no-such-dir-for-command-tests') },
];
export const testRegistry = () => new ProgramRegistry(TEST_PROGRAMS);

/** A spec for the `command` trainer: a program name and its params, nothing else. */
export function spec(id: string, params: Record<string, unknown>, program = 'softmax') {
  return { id, trainer: 'command', params: { program, params } };
}

export interface ResultLine {
  type: 'result';
  metrics: { loss: number; accuracy: number };
  modelSha256: string;
}

/** Params that only steer the test (timing, faults), not the training. */
const TEST_HOOKS = ['step_delay', 'ignore_sigterm', 'bad_checkpoint_path', 'fail_at_epoch', 'stdout_noise'];
const references = new Map<string, ResultLine>();

/** train.py started directly, without the plugin and without test hooks: the reference result. */
export function uninterruptedResult(params: Record<string, unknown>): ResultLine {
  const own = Object.fromEntries(Object.entries(params).filter(([k]) => !TEST_HOOKS.includes(k)));
  const cacheKey = JSON.stringify(own);
  const cached = references.get(cacheKey);
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-py-direct-'));
  try {
    // stdin is /dev/null, not a pipe: train.py then does not watch it (a pipe closed at once would
    // look like a dead plugin).
    const run = spawnSync(PYTHON, [TRAIN], {
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

export { processGone } from '../../helpers/env';

/** A TrainerContext without a server: a real checkpoint store for adoption, logs kept in memory. */
export class FakeContext implements TrainerContext<CommandParams> {
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
  checkpointInBackground(): Promise<void> {
    throw new Error('not used by the command trainer');
  }
  async adoptCheckpoint(file: string, input: { epoch: number; step: number; metrics?: Record<string, number> }): Promise<CheckpointPointer> {
    const pointer = await this.store.adopt(storeKey(this.sessionId, this.experimentId), file, { ...input, attempt: this.attempt }, 10);
    this.adopted.push(pointer);
    return pointer;
  }
}

