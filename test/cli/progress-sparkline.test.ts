/**
 * The loss sparkline in `experiments run`'s progress bars, on a real terminal: the CLI runs
 * self-contained (its own dev server and worker) under util-linux `script`, which gives it a
 * pseudo-terminal, so stdout is a TTY exactly as in a person's shell. Without a terminal the
 * same run stays line-based, with no sparkline.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/env';

const BLOCKS = /[▁▂▃▄▅▆▇█]/;
// 40 steps × 40 ms per epoch: several refreshes of the bars per epoch.
const pipeline = { session: 'spark', experiments: [{ id: 'e', trainer: 'mlp', params: { epochs: 4, samples: 1000, batchSize: 25, seed: 3, stepDelayMs: 40 } }] };

function run(tty: boolean): { status: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-spark-'));
  try {
    fs.writeFileSync(path.join(dir, 'p.json'), JSON.stringify(pipeline));
    const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(ROOT, 'bin', 'experiments.js'))} run p.json`;
    // Self-contained mode: no TEMPORAL_ADDRESS, so the CLI starts its own server and worker.
    const env: NodeJS.ProcessEnv = { ...process.env, EXPERIMENTS_CHECKPOINT_DIR: path.join(dir, 'ck') };
    delete env.TEMPORAL_ADDRESS;
    const r = tty
      ? spawnSync('script', ['-qfec', cli, '/dev/null'], { cwd: dir, env, encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawnSync('sh', ['-c', cli], { cwd: dir, env, encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.error) throw new Error(`${tty ? 'script (util-linux) is needed for a pseudo-terminal' : 'sh'}: ${r.error.message}`);
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('on a terminal the progress bar shows a sparkline of the recent loss next to it', { timeout: 300_000 }, () => {
  const { status, out } = run(true);
  assert.equal(status, 0, out.slice(-2000));
  const trails = [...out.matchAll(/loss \d+\.\d+ ([▁▂▃▄▅▆▇█]{2,})/g)].map((m) => m[1]);
  assert.ok(trails.length > 0, `a bar with a sparkline after the loss:\n${out.slice(-2000)}`);
  assert.ok(trails.every((t) => [...t].length <= 12), 'at most 12 values');
  assert.ok(trails.some((t) => new Set(t).size > 1), 'the trail follows the loss (not one flat block)');
});

test('without a terminal the output stays one line per change, without a sparkline', { timeout: 300_000 }, () => {
  const { status, out } = run(false);
  assert.equal(status, 0, out.slice(-2000));
  assert.match(out, /e: epoch 1\/4 {2}loss \d/);
  assert.ok(!BLOCKS.test(out), `no block characters in line output:\n${out.slice(-2000)}`);
});
