/**
 * The Python side of the external trainer protocol, so that `npm test` covers it too, with real
 * PyTorch: the trainer library's unit tests (python/tests: durable write order, refusal of corrupt
 * files, the interruption flag, sampler-position resume, ...), the reference trainer's tests
 * (examples/python/test_train.py, standard library only) and the PyTorch example's
 * (examples/python/test_train_torch.py).
 *
 * Bytecode goes to a temporary PYTHONPYCACHEPREFIX rather than next to the sources.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT } from './helpers/env';
import { PYTHON, assertTorchInstalled } from './helpers/python';

let pycache: string;
before(() => {
  pycache = fs.mkdtempSync(path.join(os.tmpdir(), 'pycache-'));
});
after(() => fs.rmSync(pycache, { recursive: true, force: true }));

/** Runs the interpreter with output collected; stdin is /dev/null (trainers then do not watch it). */
function python(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: ROOT, env: { ...process.env, PYTHONPYCACHEPREFIX: pycache }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

async function unittest(what: string, args: string[], minTests: number) {
  const run = await python(['-m', 'unittest', ...args]);
  assert.equal(run.code, 0, `${PYTHON} -m unittest ${args.join(' ')} failed:\n${run.output}`);
  assert.match(run.output, /^OK/m, what);
  const ran = Number(/^Ran (\d+) tests?/m.exec(run.output)?.[1] ?? 0);
  assert.ok(ran >= minTests, `${what}: ran ${ran} tests, expected at least ${minTests}`);
}

test(`${PYTHON} has PyTorch and scikit-learn`, () => {
  assertTorchInstalled();
});

test('python/tests: the trainer library', async () => {
  await unittest('library tests', ['discover', '-s', 'python/tests', '-t', 'python/tests'], 20);
});

test('examples/python/test_train.py: the standard-library reference trainer', async () => {
  await unittest('train.py tests', ['examples/python/test_train.py'], 19);
});

test('examples/python/test_train_torch.py: the PyTorch example', async () => {
  await unittest('train_torch.py tests', ['examples/python/test_train_torch.py'], 5);
});
