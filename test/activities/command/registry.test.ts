/**
 * Registered programs without a server: what a spec may say (a program name and its params,
 * nothing else), the registry's own validation, programs files (JSON and YAML) and params
 * schemas. A bad field is always named, with what was expected and what was received.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { createCommandTrainer, loadProgramsFile, ProgramRegistry } from '../../../src/activities/trainers/command';
import { ExperimentsClient } from '../../../src/client';
import { loadPipeline, parsePipeline } from '../../../src/pipeline';
import { InvalidInputError } from '../../../src/shared/schema';
import { ROOT } from '../../helpers/env';
import { PYTHON, testRegistry, TRAIN } from './helpers';

const trainer = createCommandTrainer(testRegistry());
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'programs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('a spec names a registered program and gives only its params', () => {
  test('a registered program resolves to its definition; params pass through', () => {
    const p = trainer.parseParams({ program: 'softmax', params: { epochs: 4, lr: 0.1 } });
    assert.equal(p.program, 'softmax');
    assert.deepEqual(p.params, { epochs: 4, lr: 0.1 });
    assert.deepEqual(p.resolved?.argv, [PYTHON, TRAIN]);
    assert.equal(p.resolved?.gracePeriodMs, 10_000, 'default grace period');
    assert.equal(trainer.epochs?.(p), 4, 'epochs from the program\'s epochsParam');
    assert.deepEqual(trainer.parseParams({ program: 'softmax' }).params, {}, 'params default to {}');
    assert.equal(trainer.stopTimeMs?.(trainer.parseParams({ program: 'softmax-1s-grace' })), 1000);
  });

  test('an unregistered program is rejected, naming it and listing the registered ones', () => {
    assert.throws(() => trainer.parseParams({ program: 'bash' }), {
      message: /^params\.program: expected one of the programs registered on this worker \(crash-7, env-dump, .*softmax, softmax-1s-grace\), received "bash"$/,
    });
  });

  test('with no programs registered every program is rejected, saying how to register one', () => {
    assert.throws(() => createCommandTrainer(new ProgramRegistry()).parseParams({ program: 'softmax' }), {
      message: /^params\.program: expected a registered program, and this worker has none \(register them with `experiments worker --programs FILE`.*\), received "softmax"$/,
    });
  });

  const forbidden: [string, unknown][] = [
    ['command', ['bash', '-c', 'id']],
    ['executable', '/bin/sh'],
    ['argv', ['python3', 'evil.py']],
    ['cwd', '/tmp'],
    ['env', { LD_PRELOAD: '/tmp/x.so' }],
    ['inheritEnv', ['AWS_SECRET_ACCESS_KEY']],
    ['gracePeriod', '1h'],
  ];
  for (const [field, value] of forbidden) {
    test(`a spec setting ${field} is rejected, naming the field`, () => {
      for (const t of [trainer, createCommandTrainer(undefined)]) {
        assert.throws(() => t.parseParams({ program: 'softmax', [field]: value }), (err: Error) => {
          assert.match(err.message, new RegExp(`^params\\.${field}: expected no ${field} in a spec \\(a program's executable, arguments, working directory and environment are fixed where it is registered on the worker`));
          return true;
        });
      }
    });
  }

  test('other shapes are rejected with the field named', () => {
    assert.throws(() => trainer.parseParams('python3 train.py'), { message: 'params: expected an object { program, params }, received "python3 train.py"' });
    assert.throws(() => trainer.parseParams({}), { message: /^params\.program: expected string, received nothing$/ });
    assert.throws(() => trainer.parseParams({ program: 'softmax', params: [1] }), { message: /^params\.params: expected record, received \[1\]$/ });
    assert.throws(() => trainer.parseParams({ program: 'softmax', shell: true }), { message: /^params: unexpected field "shell"$/ });
  });

  test('a client that does not know the programs checks only the shape', () => {
    const client = createCommandTrainer(undefined);
    assert.equal(client.parseParams({ program: 'anything' }).resolved, undefined);
  });
});

describe('the registry', () => {
  test('a bad definition is rejected naming its field; duplicate names too', () => {
    const bad = (defs: unknown[], message: RegExp) => assert.throws(() => new ProgramRegistry(defs as never), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match(err.message, message);
      return true;
    });
    bad([{ name: 'x', argv: 'python3 train.py' }], /^programs\[0\]\.argv: expected array, received "python3 train\.py"$/);
    bad([{ name: 'x', argv: [] }], /^programs\[0\]\.argv: expected a non-empty array of strings/);
    bad([{ name: 'a b', argv: ['x'] }], /^programs\[0\]\.name: expected 1 to 128 letters/);
    bad([{ name: 'x', argv: ['x'], env: { EXPERIMENT_ID: 'y' } }], /^programs\[0\]\.env\.EXPERIMENT_ID: expected a name that does not start with EXPERIMENT_/);
    bad([{ name: 'x', argv: ['x'], inheritEnv: ['no good'] }], /^programs\[0\]\.inheritEnv\[0\]: expected an environment variable name/);
    bad([{ name: 'x', argv: ['x'], gracePeriod: '2h' }], /^programs\[0\]\.gracePeriod: expected a duration of at most 1h/);
    bad([{ name: 'x', argv: ['x'], shell: true }], /^programs\[0\]: unexpected field "shell"$/);
    bad([{ name: 'x', argv: ['x'] }, { name: 'x', argv: ['y'] }], /^programs\[1\]\.name: expected a unique program name, received duplicate "x"$/);
  });

  test('a params schema rejects bad params before anything starts, naming the field', () => {
    const registry = new ProgramRegistry([
      { name: 'typed', argv: ['x'], paramsSchema: { type: 'object', properties: { lr: { type: 'number', exclusiveMinimum: 0 }, epochs: { type: 'integer', minimum: 1 } }, required: ['epochs'], additionalProperties: false } },
    ]);
    const t = createCommandTrainer(registry);
    assert.ok(t.parseParams({ program: 'typed', params: { epochs: 3, lr: 0.1 } }));
    assert.throws(() => t.parseParams({ program: 'typed', params: { epochs: 0 } }), { message: /^params\.params\.epochs: Too small: expected number to be >=1, received 0$/ });
    assert.throws(() => t.parseParams({ program: 'typed', params: { epochs: 2, lr: 'fast' } }), { message: /^params\.params\.lr: expected number, received "fast"$/ });
    assert.throws(() => t.parseParams({ program: 'typed', params: { epochs: 2, extra: 1 } }), { message: /^params\.params: unexpected field "extra"$/ });
  });

  test('programs files, JSON and YAML: relative cwds are taken from the file, bad fields are named with the file', () => {
    const json = path.join(tmp, 'programs.json');
    fs.writeFileSync(json, JSON.stringify({ programs: [{ name: 'softmax', argv: [PYTHON, TRAIN], cwd: 'sub', gracePeriod: '30s' }] }));
    const fromJson = ProgramRegistry.fromFile(json);
    assert.deepEqual(fromJson.names(), ['softmax']);
    assert.equal(fromJson.get('softmax')?.cwd, path.join(tmp, 'sub'));
    assert.equal(fromJson.get('softmax')?.gracePeriodMs, 30_000);

    const yaml = path.join(tmp, 'programs.yaml');
    fs.writeFileSync(yaml, `programs:\n  - name: a\n    argv: [${PYTHON}, ${TRAIN}]\n  - name: b\n    argv: [x]\n    env: { OMP_NUM_THREADS: 1 }\n`);
    assert.throws(() => loadProgramsFile(yaml), { message: `${yaml}: programs[1].env.OMP_NUM_THREADS: expected string, received 1` });
    fs.writeFileSync(yaml, 'programs:\n  - name: a\n    argv: [python3]\n');
    assert.deepEqual(ProgramRegistry.fromFile(yaml).get('a')?.cwd, tmp);

    assert.throws(() => loadProgramsFile(path.join(tmp, 'none.json')), { message: /none\.json: cannot read the programs file \(ENOENT\)$/ });
    fs.writeFileSync(json, '{ programs: ');
    assert.throws(() => loadProgramsFile(json), { message: /programs\.json: expected JSON, received text that does not parse/ });
    fs.writeFileSync(json, '[]');
    assert.throws(() => loadProgramsFile(json), { message: /programs\.json: \(root\): expected object, received \[\]$/ });
  });
});

describe('the examples', () => {
  // A client that knows the programs, as the CLI is with EXPERIMENTS_PROGRAMS; its connection is never used.
  const validator = new ExperimentsClient({
    client: new Client({ connection: Connection.lazy({ address: 'localhost:7233' }) }),
    programs: ProgramRegistry.fromFile(path.join(ROOT, 'examples', 'python', 'programs.yaml')),
  });

  test('examples/softmax.yaml sweeps the program\'s own params through a dotted grid key', () => {
    const p = loadPipeline(path.join(ROOT, 'examples', 'softmax.yaml'), validator);
    assert.deepEqual(
      p.experiments.map((e) => [e.id, e.params]),
      [0.1, 0.5].map((lr) => [`softmax-lr${lr}`, { program: 'softmax', params: { epochs: 5, seed: 1, lr } }]),
    );
  });

  test('a grid value the program\'s schema rejects is named by its place in the grid', () => {
    const raw = { session: 's', sweeps: [{ idPrefix: 'x', trainer: 'command', params: { program: 'softmax' }, grid: { 'params.lr': [0.1, -1] } }] };
    assert.throws(() => parsePipeline(raw, validator), { message: /^sweeps\[0\]\.grid\.params\.lr\[1\]: Too small: expected number to be >0, received -1$/ });
    const unknown = { session: 's', experiments: [{ id: 'x', trainer: 'command', params: { program: 'pytorch' } }] };
    assert.throws(() => parsePipeline(unknown, validator), { message: /^experiments\[0\]\.params\.program: expected one of the programs registered on this worker \(digits-torch, softmax\), received "pytorch"$/ });
  });
});

test('`experiments worker --programs FILE` with a bad file exits 2 with one line naming the field, before connecting', () => {
  const file = path.join(tmp, 'bad-programs.yaml');
  fs.writeFileSync(file, 'programs:\n  - name: softmax\n    argv: python3 train.py\n');
  // An address where nothing listens: the file must be rejected before any connection is tried.
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'worker', '--programs', file], {
    cwd: tmp,
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stderr, `experiments: ${file}: programs[0].argv: expected array, received "python3 train.py"\n`);
});

