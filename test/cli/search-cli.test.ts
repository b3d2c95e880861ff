/**
 * A search from the command line, as users run it (`node bin/experiments.js` against a real dev
 * server and an in-process worker): `run` of a random sweep under ASHA exits 0 with pruned
 * trials and a results table sorted by the metric, `best --json` names the best trial whose
 * checkpoint verifies by sha256, and bad search input exits 2 with one line naming the path.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { BestTrial } from '../../src/shared/search/types';
import { ROOT, startHarness, startWorker, uniqueQueue, type Harness, type RunningWorker } from '../helpers/env';

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('search-cli');
  w = await startWorker(h, { taskQueue });
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue, EXPERIMENTS_CHECKPOINT_DIR: w.checkpointDir, NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), ...args], { cwd: h.tmp, env, timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function pipelineFile(name: string, doc: unknown): string {
  const file = path.join(h.tmp, name);
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

const search = { metric: 'loss', mode: 'min', scheduler: { type: 'asha', reductionFactor: 3, gracePeriod: 1, maxEpochs: 9 } };
const sweep = { idPrefix: 'r', trainer: 'mlp', params: { epochs: 9, samples: 256 }, random: { samples: 9, seed: 5, space: { lr: { loguniform: [0.0003, 0.05] }, hidden: { randint: [4, 16] } } } };

test('run a random sweep under ASHA, then `best --json`: the best trial, its params and a checkpoint that verifies', async () => {
  const file = pipelineFile('asha.json', { session: 'cli-asha', policy: { maxConcurrent: 3, search }, sweeps: [sweep] });
  const run = await cli(['run', file]);
  assert.equal(run.code, 0, `pruned trials end the run successfully\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /experiments completed, \d+ pruned by the search/);
  // The table is sorted best first: completed trials by loss, then the pruned ones.
  const rows = run.stdout.split('\n').filter((l) => /^r-\d/.test(l));
  assert.equal(rows.length, 9);
  const states = rows.map((l) => l.split(/\s+/)[1]);
  const firstPruned = states.indexOf('pruned');
  assert.ok(firstPruned > 0 && states.slice(firstPruned).every((s) => s === 'pruned'), states.join(' '));
  const losses = rows.slice(0, firstPruned).map((l) => Number(l.split(/\s+/)[2]));
  assert.deepEqual(losses, [...losses].sort((a, b) => a - b));

  const json = await cli(['best', 'cli-asha', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const best = JSON.parse(json.stdout) as BestTrial;
  assert.equal(best.experimentId, rows[0].split(/\s+/)[0]);
  assert.equal(best.state, 'completed');
  assert.equal(best.metric, 'loss');
  assert.ok(typeof (best.params as { lr?: unknown }).lr === 'number');
  assert.ok(best.checkpoint, 'a checkpoint');
  const bytes = fs.readFileSync(fileURLToPath(best.checkpoint.uri));
  assert.equal(createHash('sha256').update(bytes).digest('hex'), best.checkpoint.sha256, 'its sha256 verifies');
  const text = await cli(['best', 'cli-asha']);
  assert.match(text.stdout, new RegExp(`^best trial of cli-asha: ${best.experimentId} \\(completed\\)\\nloss \\(min\\): `));
});

test('bad search input exits 2 with one line naming the path and starts nothing; `best` of a session without a search exits 2', async () => {
  // Every other bad search field is checked without a server in test/shared/search.test.ts and test/search-pipeline.test.ts.
  const r = await cli(['run', pipelineFile('bad.json', { session: 'cli-bad', policy: { search: { ...search, scheduler: { type: 'hyperband', maxEpochs: 9 } } }, sweeps: [sweep] })]);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /policy\.search\.scheduler\.type: expected one of "asha", "median", received "hyperband"/);
  await assert.rejects(h.env.client.workflow.getHandle('cli-bad').describe(), /not found/i, 'nothing started');

  await (await w.client.startSession({ sessionId: 'cli-plain', experiments: [{ id: 'a', trainer: 'mlp', params: { epochs: 1, samples: 64 } }] })).result();
  const plain = await cli(['best', 'cli-plain']);
  assert.equal(plain.code, 2, plain.stderr);
  assert.match(plain.stderr, /best: session "cli-plain" has no search policy \(policy\.search: \{ metric, mode, scheduler \}\)/);
});

test('keep-best: under { latest: 2, best: 1 } the best epoch survives while later, worse epochs come and go; `best` names it and its sha256 verifies', async () => {
  // mlp at lr 0.6, seed 1: the mean minibatch loss is lowest after epoch 6, then rises (0.478, 0.601, 0.650).
  const params = { epochs: 8, samples: 256, batchSize: 32, lr: 0.6, seed: 1 };
  const file = pipelineFile('keep-best.json', {
    session: 'cli-keep-best',
    policy: { search: { metric: 'loss', mode: 'min' }, checkpointsToKeep: { latest: 2, best: 1 } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const run = await cli(['run', file]);
  assert.equal(run.code, 0, run.stderr);
  const kept = await w.client.store.list('cli-keep-best/e');
  const byEpoch = new Map(kept.map((p) => [p.epoch, p]));
  assert.deepEqual([...byEpoch.keys()].sort((a, b) => a - b), [6, 7, 8], 'the latest two and the best epoch are kept, the rest pruned');
  const best6 = byEpoch.get(6)!;
  assert.ok(best6.metrics.loss < byEpoch.get(7)!.metrics.loss && best6.metrics.loss < byEpoch.get(8)!.metrics.loss, 'the later epochs are worse');
  const marks = await w.client.store.retention!('cli-keep-best/e', best6.runId);
  assert.deepEqual(marks?.best, [best6.checkpointId], 'the manifest marks it as best');

  const json = await cli(['best', 'cli-keep-best', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const best = JSON.parse(json.stdout) as BestTrial;
  assert.equal(best.keptBest, true);
  assert.equal(best.checkpoint?.id, best6.checkpointId, '`best` names the kept-best checkpoint');
  const bytes = fs.readFileSync(fileURLToPath(best.checkpoint!.uri));
  assert.equal(createHash('sha256').update(bytes).digest('hex'), best.checkpoint!.sha256, 'its sha256 verifies');
  const text = await cli(['best', 'cli-keep-best']);
  assert.match(text.stdout, /checkpoint \(kept as best, verified\): /);
});
