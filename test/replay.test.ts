/**
 * Replay: every history recorded in test/fixtures/histories must replay against the current
 * workflow code, through the plugin's replay configuration (so the workflows are the ones the
 * plugin ships). A failure here means the change would break sessions that are running now:
 * guard it with patched() (CONTRIBUTING.md); never re-record the fixture.
 *
 * The negative tests prove that replay would notice: deliberately changed copies of the
 * workflows (test/fixtures/altered-workflows) are rejected on a recorded history.
 * No server is needed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { DefaultLogger, Runtime, Worker, type ReplayResult } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { ExperimentPlugin, WORKFLOWS_PATH } from '../src/plugin';
import { describeHistory, historyFromJson, historyToJson, loadHistoryFile, replayHistoryFiles, runReplayCommand, type History } from '../src/replay';

const DIR = path.join(__dirname, 'fixtures', 'histories');
const WORKFLOW_TYPES = ['sessionWorkflow', 'experimentWorkflow'];
/** Every scenario scripts/record-histories.ts records; deleting a fixture set fails the coverage test. */
const SCENARIOS = [
  'approval',
  'bounded-and-none',
  'crash-resume',
  'graceful-shutdown',
  'cancel',
  'cancel-session',
  'bounded-timeout',
  'rejected-approval',
  'continue-as-new',
  'preemption-storm',
  'cancel-run-report',
  'bounded-total',
  'raw-start-invalid',
  'user-metadata',
  'priority',
  'search-asha',
  'pause-session',
  'hardware-routing',
  'auto-estimate',
  'auto-estimate-rejected',
  'bounded-carry',
  'sweep-feed',
  'lean-start',
  'add-sweeps',
];
/** A completed experiment: the history the altered workflows are replayed on. */
const NEGATIVE_FIXTURE = 'experimentWorkflow.approval.short.json';
const ALTERED = {
  'an added timer': require.resolve('./fixtures/altered-workflows/added-timer'),
  'activities in another order': require.resolve('./fixtures/altered-workflows/activity-order'),
};
// Bundling the workflows takes seconds on a busy two-core machine; each replay worker bundles once.
const BUNDLE_TIMEOUT = 180_000;

// Warnings only: at the default level every replay worker prints its bundler report.
Runtime.install({ logger: new DefaultLogger('WARN') });

const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];
const plugin = new ExperimentPlugin({ installRuntimeLogger: false });
const outcomes = new Map<string, { result?: ReplayResult; loadError?: string }>();

function load(file: string): History {
  return loadHistoryFile(path.join(DIR, file));
}

before(
  async () => {
    const histories: { file: string; workflowId: string; history: History }[] = [];
    for (const file of files) {
      try {
        const history = load(file);
        histories.push({ file, workflowId: describeHistory(history).workflowId ?? file, history });
      } catch (err) {
        outcomes.set(file, { loadError: (err as Error).message });
      }
    }
    // One replay worker for all fixtures: the bundle is built once, each history is replayed in turn.
    let i = 0;
    for await (const result of Worker.runReplayHistories({ plugins: [plugin] }, histories)) {
      outcomes.set(histories[i++].file, { result });
    }
  },
  { timeout: BUNDLE_TIMEOUT },
);

test('the replay configuration comes from the plugin: its workflows, not a path of ours', () => {
  assert.equal(plugin.configureReplayWorker({}).workflowsPath, WORKFLOWS_PATH);
});

test('the fixtures cover both workflow types and every recorded scenario', () => {
  assert.ok(files.length >= 8, `expected at least 8 fixtures in ${DIR}, found ${files.length}`);
  const parsed = files.map((f) => {
    const [type, scenario] = f.split('.');
    return { type, scenario };
  });
  for (const type of WORKFLOW_TYPES) assert.ok(parsed.some((p) => p.type === type), `no ${type} fixture`);
  for (const scenario of SCENARIOS) {
    for (const type of WORKFLOW_TYPES) {
      assert.ok(
        parsed.some((p) => p.type === type && p.scenario === scenario),
        `no ${type} fixture for scenario ${scenario}: fixtures are never deleted (record with npm run record-histories)`,
      );
    }
  }
  const runs = files.filter((f) => /^sessionWorkflow\.continue-as-new\.run\d+\.json$/.test(f));
  assert.ok(runs.length >= 2, `expected a history per continue-as-new run, found ${runs.join(', ') || 'none'}`);
  assert.ok(files.includes(NEGATIVE_FIXTURE), `${NEGATIVE_FIXTURE} is missing`);
});

test('each fixture names its workflow type in its file name', () => {
  for (const file of files) {
    const { workflowType } = describeHistory(load(file));
    assert.equal(workflowType, file.split('.')[0], file);
  }
});

for (const file of files) {
  test(`replays ${file}`, () => {
    const outcome = outcomes.get(file);
    assert.ok(outcome, `${file} was not replayed`);
    assert.equal(outcome.loadError, undefined, `${file} could not be loaded: ${outcome.loadError}`);
    const error = outcome.result?.error;
    assert.equal(error, undefined, `${file} does not replay: ${error?.name}: ${error?.message}`);
  });
}

for (const [change, workflowsPath] of Object.entries(ALTERED)) {
  test(`a workflow changed by ${change} is rejected with DeterminismViolationError on ${NEGATIVE_FIXTURE}`, { timeout: BUNDLE_TIMEOUT }, async () => {
    // Meaningful only if the unaltered workflows accept the same history.
    assert.equal(outcomes.get(NEGATIVE_FIXTURE)?.result?.error, undefined, 'the unaltered workflows replay it');
    await assert.rejects(Worker.runReplayHistory({ workflowsPath }, load(NEGATIVE_FIXTURE)), (err: unknown) => {
      assert.ok(err instanceof DeterminismViolationError, `expected DeterminismViolationError, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
      assert.equal(err.name, 'DeterminismViolationError');
      return true;
    });
  });
}

test('the unaltered workflows replay the negative fixture when given by path, like the altered ones', { timeout: BUNDLE_TIMEOUT }, async () => {
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, load(NEGATIVE_FIXTURE));
});

test('replayHistoryFiles reports each file: ok, a determinism violation, a missing file', { timeout: BUNDLE_TIMEOUT }, async () => {
  const altered = new ExperimentPlugin({ installRuntimeLogger: false, workflowsPath: ALTERED['an added timer'] });
  const session = path.join(DIR, 'sessionWorkflow.approval.json');
  const experiment = path.join(DIR, NEGATIVE_FIXTURE);
  const missing = path.join(DIR, 'no-such-history.json');
  const results = await replayHistoryFiles([session, experiment, missing], { plugin: altered });
  assert.deepEqual(
    results.map((r) => [r.file, r.ok, r.workflowId]),
    [
      [session, true, 'approval'],
      [experiment, false, 'approval:short'],
      [missing, false, ''],
    ],
  );
  // The line names the event and the command that disagree, not just "nondeterminism".
  assert.match(results[1].error ?? '', /^DeterminismViolationError: \[TMPRL1100\] Nondeterminism error: Timer machine does not handle this event/);
  assert.equal(results[2].error, 'no such file or directory');
});

test('history files with the short enum names some Temporal tools write load the same as canonical ones', () => {
  const canonical = JSON.parse(fs.readFileSync(path.join(DIR, 'sessionWorkflow.cancel.json'), 'utf8')) as { events: Record<string, unknown>[] };
  // EVENT_TYPE_WORKFLOW_EXECUTION_STARTED → WorkflowExecutionStarted, and likewise nested enums.
  const shorten = (prefix: string, v: string) =>
    v.slice(prefix.length).toLowerCase().replace(/(^|_)([a-z])/g, (_m: string, _u: string, c: string) => c.toUpperCase());
  const short = JSON.parse(
    JSON.stringify(canonical)
      .replace(/"(EVENT_TYPE_[A-Z_]+)"/g, (_m, v: string) => `"${shorten('EVENT_TYPE_', v)}"`)
      .replace(/"(TASK_QUEUE_KIND_[A-Z_]+)"/g, (_m, v: string) => `"${shorten('TASK_QUEUE_KIND_', v)}"`)
      .replace(/"(PARENT_CLOSE_POLICY_[A-Z_]+)"/g, (_m, v: string) => `"${shorten('PARENT_CLOSE_POLICY_', v)}"`),
  ) as unknown;
  assert.notDeepEqual(short, canonical);
  assert.match(JSON.stringify(short), /"eventType":"WorkflowExecutionStarted"/);
  assert.deepEqual(historyToJson(historyFromJson(short)), canonical);
});

test('the replay command replays against --workflows-path, with one line per file', { timeout: BUNDLE_TIMEOUT }, async () => {
  const out: string[] = [];
  const err: string[] = [];
  const session = path.join(DIR, 'sessionWorkflow.approval.json');
  const experiment = path.join(DIR, NEGATIVE_FIXTURE);
  const workflowsPath = path.relative(process.cwd(), ALTERED['activities in another order']);
  const code = await runReplayCommand([session, experiment, '--workflows-path', workflowsPath], { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  assert.equal(code, 1);
  assert.equal(out.length, 2, out.join('\n'));
  assert.equal(out[0], `ok   ${session} (approval)`);
  assert.match(out[1], new RegExp(`^FAIL ${experiment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: DeterminismViolationError: \\[TMPRL1100\\]`));
  assert.deepEqual(err, ['2 histories replayed, 1 failed']);
});

test('patch experiment-lean-start: a bounded experiment takes 17 events with one patch marker and one start memo, where it took 22', () => {
  const shape = (file: string) => {
    const events = load(file).events ?? [];
    return {
      events: events.length,
      markers: events.filter((e) => e.markerRecordedEventAttributes).length,
      memoUpserts: events.filter((e) => e.workflowPropertiesModifiedEventAttributes).length,
    };
  };
  // Both: a completed bounded mlp experiment of a session, one training activity.
  assert.deepEqual(shape('experimentWorkflow.sweep-feed.solo.json'), { events: 22, markers: 3, memoUpserts: 3 });
  assert.deepEqual(shape('experimentWorkflow.lean-start.bounded.json'), { events: 17, markers: 1, memoUpserts: 2 });
  // The one start memo still holds what `resume` and the UI read.
  const memo = load('experimentWorkflow.lean-start.bounded.json').events?.find((e) => e.workflowPropertiesModifiedEventAttributes)?.workflowPropertiesModifiedEventAttributes?.upsertedMemo?.fields ?? {};
  assert.deepEqual(Object.keys(memo).sort(), ['experiment', 'policy', 'spec']);
});
