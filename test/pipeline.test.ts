/**
 * Pipeline files without a server: sweep expansion, validation through the client library
 * (structure and trainer params), error paths that point into the file, and the file-level
 * errors (missing file, JSON and YAML syntax with line numbers).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { offlineValidator } from '../src/cli/connect';
import { expandSweep, loadPipeline, locateJsonError, parsePipeline } from '../src/pipeline';
import { InvalidInputError } from '../src/shared/schema';

const validator = offlineValidator();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pipeline-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The problems of an InvalidInputError thrown by `fn`. */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected an InvalidInputError');
}

const sweep = {
  idPrefix: 'mlp',
  trainer: 'mlp',
  params: { epochs: 2, samples: 64 },
  grid: { lr: [0.1, 0.01], hidden: [16, 32] },
};

describe('sweeps', () => {
  test('expand to the cartesian product, first key slowest, with valid derived ids', () => {
    const p = parsePipeline({ session: 's1', sweeps: [sweep] }, validator);
    assert.deepEqual(
      p.experiments.map((e) => e.id),
      ['mlp-lr0.1-hidden16', 'mlp-lr0.1-hidden32', 'mlp-lr0.01-hidden16', 'mlp-lr0.01-hidden32'],
    );
    assert.deepEqual(p.experiments[1].params, { epochs: 2, samples: 64, lr: 0.1, hidden: 32 });
    assert.deepEqual(p.experiments[2].params, { epochs: 2, samples: 64, lr: 0.01, hidden: 16 });
    for (const e of p.experiments) {
      assert.equal(e.trainer, 'mlp');
      assert.match(e.id, /^[A-Za-z0-9._-]+$/);
      assert.ok(!e.id.includes('..'));
    }
  });

  test('come after explicit experiments and keep longRunning / estimatedDuration', () => {
    const p = parsePipeline(
      {
        session: 's1',
        experiments: [{ id: 'first', trainer: 'mlp', params: { epochs: 1 } }],
        sweeps: [{ ...sweep, grid: { lr: [0.5] }, longRunning: true, estimatedDuration: '3h' }],
      },
      validator,
    );
    assert.deepEqual(p.experiments.map((e) => e.id), ['first', 'mlp-lr0.5']);
    assert.equal(p.experiments[1].longRunning, true);
    assert.equal(p.experiments[1].estimatedDuration, '3h');
  });

  test('values outside the id alphabet are replaced in derived ids', () => {
    const points = expandSweep({ idPrefix: 'x', trainer: 'mlp', grid: { opt: ['adam/w', 'a..b', true], lr: [-1e-7] } });
    assert.deepEqual(points.map((p) => p.spec.id), ['x-optadam_w-lr-1e-7', 'x-opta.b-lr-1e-7', 'x-opttrue-lr-1e-7']);
  });

  test('a bad grid value is reported at its place in the grid, once', () => {
    const lines = problems(() => parsePipeline({ session: 's1', sweeps: [{ ...sweep, grid: { lr: [0.1, -1], hidden: [16, 32] } }] }, validator));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /^sweeps\[0\]\.grid\.lr\[1\]: expected a positive number, received -1$/);
  });

  test('a bad base param is reported once at sweeps[i].params', () => {
    const lines = problems(() => parsePipeline({ session: 's1', sweeps: [{ ...sweep, params: { epochs: 0 } }] }, validator));
    assert.deepEqual(lines, ['sweeps[0].params.epochs: expected a positive integer, received 0']);
  });

  test('an empty or malformed grid names sweeps[0].grid', () => {
    const empty = problems(() => parsePipeline({ session: 's1', sweeps: [{ ...sweep, grid: { lr: [] } }] }, validator));
    assert.match(empty.join('\n'), /^sweeps\[0\]\.grid\.lr: /m);
    const notObject = problems(() => parsePipeline({ session: 's1', sweeps: [{ ...sweep, grid: [1, 2] }] }, validator));
    assert.match(notObject.join('\n'), /^sweeps\[0\]\.grid: /m);
  });
});

describe('validation', () => {
  test('errors name the path inside the file', () => {
    const lines = problems(() =>
      parsePipeline(
        {
          session: 's1',
          policy: { heartbeatTimeout: 'soon' },
          experiments: [
            { id: 'a', trainer: 'mlp' },
            { id: 'b', trainer: 'mlp', params: { lr: 'fast' } },
          ],
        },
        validator,
      ),
    );
    assert.match(lines.join('\n'), /^policy\.heartbeatTimeout: expected a duration/m);
    const pipelineOk = problems(() => parsePipeline({ session: 's1', experiments: [{ id: 'a', trainer: 'mlp' }, { id: 'b', trainer: 'mlp', params: { lr: 'fast' } }] }, validator));
    assert.deepEqual(pipelineOk, ['experiments[1].params.lr: expected a positive number, received "fast"']);
  });

  test('unknown trainers, bad ids and unknown fields are named', () => {
    const unknown = problems(() => parsePipeline({ session: 's1', experiments: [{ id: 'a', trainer: 'gpt' }] }, validator));
    assert.equal(unknown.length, 1);
    assert.match(unknown[0], /^experiments\[0\]\.trainer: expected one of (\w+, )*mlp(, \w+)*, received "gpt"$/);
    assert.match(problems(() => parsePipeline({ session: 's1', experiments: [{ id: '../x', trainer: 'mlp' }] }, validator))[0], /^experiments\[0\]\.id: /);
    assert.match(problems(() => parsePipeline({ session: '../etc', experiments: [{ id: 'x', trainer: 'mlp' }] }, validator))[0], /^session: /);
    assert.match(problems(() => parsePipeline({ session: 's', experiment: [] }, validator))[0], /^\(root\): unexpected field "experiment"/);
  });

  test('a pipeline needs a session (for run) and at least one experiment', () => {
    assert.match(problems(() => parsePipeline({ experiments: [{ id: 'x', trainer: 'mlp' }] }, validator))[0], /^session: expected string/);
    assert.match(problems(() => parsePipeline({ session: 's' }, validator))[0], /^experiments: expected at least one experiment/);
    const p = parsePipeline({ experiments: [{ id: 'x', trainer: 'mlp' }] }, validator, { requireSession: false });
    assert.equal(p.session, undefined);
  });

  test('duplicate ids across experiments and sweeps are rejected, naming both places', () => {
    const lines = problems(() =>
      parsePipeline({ session: 's1', experiments: [{ id: 'mlp-lr0.01-hidden32', trainer: 'mlp' }], sweeps: [sweep] }, validator),
    );
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /^sweeps\[0\]\.grid: .*lr=0\.01, hidden=32 gives "mlp-lr0\.01-hidden32", already used by experiments\[0\]$/);
    const twoSweeps = problems(() => parsePipeline({ session: 's1', sweeps: [sweep, { ...sweep, grid: { lr: [0.1], hidden: [32] } }] }, validator));
    assert.match(twoSweeps[0], /^sweeps\[1\]\.grid: .*already used by sweeps\[0\] \(lr=0\.1, hidden=32\)$/);
    const explicit = problems(() => parsePipeline({ session: 's1', experiments: [{ id: 'a', trainer: 'mlp' }, { id: 'a', trainer: 'mlp' }] }, validator));
    assert.match(explicit[0], /^experiments\[1\]\.id: expected a unique id/);
    const existing = problems(() => parsePipeline({ sweeps: [sweep] }, validator, { requireSession: false, existingIds: ['mlp-lr0.1-hidden16'] }));
    assert.match(existing[0], /already used by the session$/);
  });
});

describe('files', () => {
  const doc = { session: 'files', experiments: [{ id: 'one', trainer: 'mlp', params: { epochs: 1 } }], sweeps: [sweep] };

  test('JSON and YAML load to the same pipeline', () => {
    const json = loadPipeline(write('p.json', JSON.stringify(doc, null, 2)), validator);
    const yamlText = `session: files
experiments:
  - id: one
    trainer: mlp
    params: { epochs: 1 }
sweeps:
  - idPrefix: mlp
    trainer: mlp
    params:
      epochs: 2
      samples: 64
    grid:
      lr: [0.1, 0.01]
      hidden: [16, 32]
`;
    const yaml = loadPipeline(write('p.yaml', yamlText), validator);
    const yml = loadPipeline(write('p.yml', yamlText), validator);
    assert.deepEqual(yaml.experiments, json.experiments);
    assert.deepEqual(yml.experiments, json.experiments);
    assert.equal(json.experiments.length, 5);
    assert.equal(yaml.session, 'files');
  });

  test('errors carry the file name and one line each', () => {
    const file = write('bad-params.json', JSON.stringify({ session: 's', experiments: [{ id: 'a', trainer: 'mlp' }, { id: 'b', trainer: 'mlp', params: { lr: -1 } }] }));
    assert.deepEqual(problems(() => loadPipeline(file, validator)), [`${file}: experiments[1].params.lr: expected a positive number, received -1`]);
  });

  test('JSON syntax errors give line and column', () => {
    const file = write('broken.json', '{\n  "session": "s",\n  "experiments": [\n    { "id": "a", "trainer": "mlp" },\n  ]\n}\n');
    const [line] = problems(() => loadPipeline(file, validator));
    assert.equal(line, `${file}: invalid JSON at line 5, column 3: trailing comma before "]"`);
    const missingComma = write('broken2.json', '{\n  "session": "s"\n  "experiments": []\n}');
    assert.equal(problems(() => loadPipeline(missingComma, validator))[0], `${missingComma}: invalid JSON at line 3, column 3: expected ',' or '}' after a property value, found "\\""`);
  });

  test('the JSON locator agrees with JSON.parse on what is valid', () => {
    for (const ok of ['{}', '[]', '{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"]}', ' 1 ', '"s"']) {
      JSON.parse(ok);
      assert.equal(locateJsonError(ok), undefined, ok);
    }
    for (const bad of ['', '{', '{"a":1,}', '[1 2]', '{"a" 1}', '01', '"\\x"', 'nul', '{}{}', '{"a":"b\n"}']) {
      assert.throws(() => JSON.parse(bad));
      assert.notEqual(locateJsonError(bad), undefined, bad);
    }
  });

  test('YAML syntax errors give line and column', () => {
    const file = write('broken.yaml', 'session: s\nexperiments:\n  - id: a\n    trainer: [mlp\n');
    const [line] = problems(() => loadPipeline(file, validator));
    assert.match(line, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid YAML at line \\d+, column \\d+: `));
    assert.ok(!line.includes('\n'));
    const dup = write('dup.yaml', 'session: s\nsession: t\n');
    assert.match(problems(() => loadPipeline(dup, validator))[0], /invalid YAML at line 2, column 1: Map keys must be unique/);
  });

  test('missing files, directories and unknown extensions are one-line errors', () => {
    assert.deepEqual(problems(() => loadPipeline(path.join(tmp, 'nope.json'), validator)), [`${path.join(tmp, 'nope.json')}: cannot read the pipeline file (no such file)`]);
    assert.match(problems(() => loadPipeline(write('p.txt', '{}'), validator))[0], /expected a \.json, \.yaml or \.yml file, received a \.txt file$/);
    fs.mkdirSync(path.join(tmp, 'dir.json'));
    assert.match(problems(() => loadPipeline(path.join(tmp, 'dir.json'), validator))[0], /expected a file, received a directory$/);
    assert.match(problems(() => loadPipeline(write('empty.yaml', ''), validator))[0], /empty document/);
  });
});

describe('examples', () => {
  const dir = path.resolve(__dirname, '..', 'examples');
  for (const name of fs.readdirSync(dir).filter((f) => /\.(json|ya?ml)$/.test(f))) {
    test(`${name} is a valid pipeline`, () => {
      const p = loadPipeline(path.join(dir, name), validator);
      assert.ok(p.experiments.length > 0);
    });
  }

  test('the quick start has a small sweep and one long-running experiment', () => {
    const p = loadPipeline(path.join(dir, 'quickstart.json'), validator);
    assert.equal(p.session, 'quickstart');
    assert.equal(p.experiments.filter((e) => e.longRunning).length, 1);
    assert.equal(p.experiments.filter((e) => e.id.startsWith('mlp-lr')).length, 4);
  });
});
