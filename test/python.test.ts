/**
 * The Python side of the external trainer protocol, so that `npm test` covers it too: the
 * reference trainer's own unit tests (examples/python/test_train.py, standard library only), and a
 * syntax check of the PyTorch example, which CI cannot run (no PyTorch there).
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

let pycache: string;
before(() => {
  pycache = fs.mkdtempSync(path.join(os.tmpdir(), 'pycache-'));
});
after(() => fs.rmSync(pycache, { recursive: true, force: true }));

/** Runs python3 with output collected; stdin is /dev/null (train.py then does not watch it). */
function python(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, { cwd: ROOT, env: { ...process.env, PYTHONPYCACHEPREFIX: pycache }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

test('examples/python/test_train.py passes', async () => {
  const run = await python(['-m', 'unittest', '-v', 'examples/python/test_train.py']);
  assert.equal(run.code, 0, `python3 -m unittest examples/python/test_train.py failed:\n${run.output}`);
  assert.match(run.output, /^OK/m);
});

test('examples/python/train_torch.py compiles', async () => {
  const run = await python(['-m', 'py_compile', 'examples/python/train_torch.py']);
  assert.equal(run.code, 0, `python3 -m py_compile examples/python/train_torch.py failed:\n${run.output}`);
});
