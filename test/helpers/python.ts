/**
 * The Python interpreter the tests run trainers with: Debian's /usr/bin/python3, which has
 * python3-torch and python3-sklearn (.ci/run installs them). A `python3` found on PATH may be another
 * interpreter (a pyenv shim here) that cannot import them. EXPERIMENTS_TEST_PYTHON overrides it.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './env';

export const PYTHON = process.env.EXPERIMENTS_TEST_PYTHON ?? '/usr/bin/python3';
export const TRAIN_TORCH = path.join(ROOT, 'examples/python/train_torch.py');

/** Throws a message saying what to install when PYTHON cannot import torch and sklearn. */
export function assertTorchInstalled(): void {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, sklearn; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = probe.error ? String(probe.error) : (probe.stderr ?? '').trim().split('\n').at(-1);
    throw new Error(`${PYTHON} cannot import torch and sklearn (${why}); on Debian: apt-get install python3-torch python3-sklearn`);
  }
}
