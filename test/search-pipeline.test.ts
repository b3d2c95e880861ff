/**
 * Random search spaces in pipeline files, without a server: seeded expansion (the same file draws
 * the same trials), readable unique ids, trainer params checked per draw, and bad spaces
 * rejected with the path of every bad field.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { offlineValidator } from '../src/cli/connect';
import { loadPipeline, parsePipeline } from '../src/pipeline';
import { InvalidInputError } from '../src/shared/schema';

const validator = offlineValidator();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'search-pipeline-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function problems(raw: unknown): string[] {
  try {
    parsePipeline(raw, validator);
  } catch (err) {
    assert.ok(err instanceof InvalidInputError, String(err));
    return err.problems;
  }
  assert.fail('expected an InvalidInputError');
}

const randomSweep = (random: unknown) => ({ session: 's', sweeps: [{ idPrefix: 'mlp', trainer: 'mlp', params: { epochs: 2, samples: 64 }, random }] });
const space = { lr: { loguniform: [0.0001, 0.1] }, hidden: { randint: [4, 32] }, batchSize: { choice: [16, 32] } };

test('a random sweep draws `samples` trials with readable unique ids, the same ones for the same file', () => {
  const file = path.join(tmp, 'random.yaml');
  fs.writeFileSync(file, ['session: s', 'sweeps:', '  - idPrefix: mlp', '    trainer: mlp', '    params: { epochs: 2, samples: 64 }', '    random:', '      samples: 12', '      seed: 7', '      space:', '        lr: { loguniform: [0.0001, 0.1] }', '        hidden: { randint: [4, 32] }', '        batchSize: { choice: [16, 32] }', ''].join('\n'));
  const first = loadPipeline(file, validator).experiments;
  const second = loadPipeline(file, validator).experiments;
  assert.deepEqual(first, second, 'a re-run of the same file draws the same trials');
  assert.equal(first.length, 12);
  assert.equal(new Set(first.map((e) => e.id)).size, 12);
  for (const [n, e] of first.entries()) {
    const p = e.params as { lr: number; hidden: number; batchSize: number; epochs: number };
    assert.equal(p.epochs, 2, 'base params stay');
    assert.ok(p.lr >= 0.0001 && p.lr < 0.1 && Number.isInteger(p.hidden) && p.hidden >= 4 && p.hidden <= 32 && [16, 32].includes(p.batchSize));
    assert.equal(e.id, `mlp-${String(n).padStart(2, '0')}-lr${Number(p.lr.toPrecision(3))}-hidden${p.hidden}-batchSize${p.batchSize}`);
  }
  const reseeded = parsePipeline(randomSweep({ samples: 12, seed: 8, space }), validator).experiments;
  assert.notDeepEqual(reseeded.map((e) => e.params), first.map((e) => e.params), 'another seed draws other trials');
  const more = parsePipeline(randomSweep({ samples: 20, seed: 7, space }), validator).experiments;
  assert.deepEqual(more.slice(0, 12).map((e) => e.params), first.map((e) => e.params), 'more samples keep the earlier draws');
  const unseeded = () => parsePipeline(randomSweep({ samples: 3, space }), validator).experiments.map((e) => e.params);
  assert.deepEqual(unseeded(), unseeded(), 'without a seed the idPrefix seeds the draws');
});

test('bad random spaces are rejected before anything starts, naming the path', () => {
  assert.deepEqual(problems(randomSweep({ space })), ['sweeps[0].random.samples: expected number, received nothing']);
  assert.match(problems(randomSweep({ samples: 0, space }))[0], /^sweeps\[0\]\.random\.samples: Too small/);
  assert.match(problems(randomSweep({ samples: 2, space: { lr: { loguniform: [0, 1] } } }))[0], /^sweeps\[0\]\.random\.space\.lr\.loguniform: expected \[low, high\] with 0 < low < high, received \[0, 1\]$/);
  assert.match(problems(randomSweep({ samples: 2, space: { lr: { normal: [0, 1] } } }))[0], /^sweeps\[0\]\.random\.space\.lr: expected one of \{uniform: \[low, high\]\}/);
  assert.match(problems(randomSweep({ samples: 2, space: { hidden: { randint: [8, 4] } } }))[0], /^sweeps\[0\]\.random\.space\.hidden\.randint: expected \[low, high\] with low <= high/);
  assert.match(problems(randomSweep({ samples: 2, space: {} }))[0], /^sweeps\[0\]\.random\.space: expected at least one parameter/);
  assert.deepEqual(problems({ session: 's', sweeps: [{ idPrefix: 'm', trainer: 'mlp', grid: { lr: [0.1] }, random: { samples: 2, space } }] }), ['sweeps[0].grid: expected exactly one of "grid" or "random", received both']);
  assert.deepEqual(problems({ session: 's', sweeps: [{ idPrefix: 'm', trainer: 'mlp' }] }), ['sweeps[0].grid: expected exactly one of "grid" or "random", received neither']);
  // A drawn value the trainer refuses names the space entry and the sample.
  const refused = problems(randomSweep({ samples: 2, seed: 1, space: { lr: { uniform: [-2, -1] } } }));
  assert.match(refused[0], /^sweeps\[0\]\.random\.space\.lr \(sample 0\): /);
});

test('a search policy in the file is validated with the rest, naming the path', () => {
  const bad = { session: 's', policy: { search: { metric: 'loss', scheduler: { type: 'asha', reductionFactor: -1, maxEpochs: 9 } } }, experiments: [{ id: 'a', trainer: 'mlp' }] };
  assert.match(problems(bad)[0], /^policy\.search\.scheduler\.reductionFactor: expected a reduction factor \(η\) greater than 1, received -1$/);
});

test('a search metric no trainer reports is rejected before start, naming the path and the metrics they do report', () => {
  const doc = (metric: string, trainer = 'mlp') => ({ session: 's', policy: { search: { metric, scheduler: { type: 'asha', maxEpochs: 9 } } }, experiments: [{ id: 'a', trainer, params: trainer === 'mlp' ? { epochs: 2 } : { program: 'p' } }] });
  assert.deepEqual(problems(doc('acc')), ['policy.search.metric: expected a metric the trainers report at each epoch (mlp: loss), received "acc"']);
  assert.equal(parsePipeline(doc('loss'), validator).experiments.length, 1);
});
