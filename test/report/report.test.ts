/**
 * `experiments report` end to end: a real dev server, a 5-experiment mlp sweep on a child-process
 * worker that is killed with SIGKILL mid-epoch (a second worker resumes the experiments), the CLI
 * writing the report of the running and of the finished session, and Chromium loading the file
 * from a file:// URL with every network request refused. The DOM must hold one series per
 * experiment with exactly one point per epoch, resume markers on the resumed experiments, and the
 * results table rows. The PNG goes to .artifacts/report.png.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import type { ReportData } from '../../src/report/model';
import { harnessWithWorkers, ROOT, uniqueQueue, waitFor } from '../helpers/env';
import { ARTIFACTS, launchBrowser } from '../ui/helpers';

const bed = harnessWithWorkers();

const EPOCHS = 10;
// 16 steps × 60 ms ≈ 1 s per epoch; four at once (the default maxConcurrent), then e5.
const params = (seed: number) => ({ epochs: EPOCHS, samples: 512, batchSize: 32, stepDelayMs: 60, seed, lr: 0.05 + seed / 100 });

function cli(taskQueue: string, checkpointDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, TEMPORAL_ADDRESS: bed.h.address, TEMPORAL_TASK_QUEUE: taskQueue, EXPERIMENTS_CHECKPOINT_DIR: checkpointDir, NO_COLOR: '1' };
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), ...args], { cwd: bed.h.tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** The data the report embeds, read back from the file (what the page charts). */
function embedded(file: string): ReportData {
  const html = fs.readFileSync(file, 'utf8');
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'the report embeds its data');
  return JSON.parse(m[1]) as ReportData;
}

test('report of a running and of a finished sweep with a kill -9 resume: Chromium offline shows every series, one point per epoch, resume markers and the table', { timeout: 300_000 }, async () => {
  const taskQueue = uniqueQueue('report');
  const checkpointDir = path.join(bed.h.tmp, 'ck-report');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store });
  const worker = (label: string) => {
    return bed.spawn({ taskQueue, checkpointDir, name: `report-${label}` });
  };
  const a = worker('a');
  await a.ready;
  const ids = ['e1', 'e2', 'e3', 'e4', 'e5'];
  const handle = await client.startSession({
    sessionId: 'rep',
    policy: { heartbeatTimeout: '4s', retry: { initialInterval: '200ms' } },
    experiments: ids.map((id, i) => ({ id, trainer: 'mlp', params: params(i + 1) })),
  });
  await waitFor(async () => ((await store.list(storeKey('rep', 'e1')))[0]?.epoch ?? 0) >= 2, { what: 'two epochs of e1' });

  // While it runs: the report works and its curves are partial.
  const running = path.join(bed.h.tmp, 'running.html');
  const r1 = await cli(taskQueue, checkpointDir, ['report', 'rep', '--out', running]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.match(r1.stdout, /partial/);
  const partial = embedded(running);
  assert.equal(partial.live, true);
  assert.ok(partial.series.some((s) => s.epochs.length > 0 && s.epochs.length < EPOCHS), 'partial curves');
  assert.match(fs.readFileSync(running, 'utf8'), /id="live"/);

  // e5 starts last, so once it has a checkpoint it has most of its epochs still to train.
  await waitFor(async () => ((await store.list(storeKey('rep', 'e5')))[0]?.epoch ?? 0) >= 1, { what: 'the first epoch of e5' });
  await new Promise((r) => setTimeout(r, 300)); // into the middle of an epoch
  a.child.kill('SIGKILL');
  await a.exited;
  const b = worker('b');
  const summary = await handle.result();
  assert.deepEqual(summary.experiments.map((e) => e.state), ids.map(() => 'completed'));
  const resumed = summary.experiments.filter((e) => e.attempt > 1).map((e) => e.id);
  assert.ok(resumed.includes('e5'), `the kill -9 made e5 resume (resumed: ${resumed.join(', ')})`);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const out = path.join(bed.h.tmp, 'report.html');
  const png = path.join(ARTIFACTS, 'report.png');
  const r2 = await cli(taskQueue, checkpointDir, ['report', 'rep', '--out', out, '--png', png]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual([...fs.readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG was written');
  fs.copyFileSync(out, path.join(ARTIFACTS, 'report.html'));

  const ui = await launchBrowser();
  try {
    const requested: string[] = [];
    await ui.context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      requested.push(url);
      return route.abort();
    });
    await ui.context.setOffline(true);
    await ui.page.goto(pathToFileURL(out).href);
    await ui.page.waitForSelector('body[data-ready="1"]');
    const sections = await ui.page.$$eval('section.experiment', (els) => els.map((e) => ({ id: e.getAttribute('data-experiment'), epochs: JSON.parse(e.getAttribute('data-epochs') ?? '[]') as number[], markers: e.querySelectorAll('.marker[data-kind="resume"]').length, drawn: e.getAttribute('data-drawn') })));
    assert.deepEqual(sections.map((s) => s.id), ids, 'one series per experiment');
    const oneToN = Array.from({ length: EPOCHS }, (_, i) => i + 1);
    for (const s of sections) {
      assert.deepEqual(s.epochs, oneToN, `${s.id}: exactly one point per epoch`);
      assert.equal(s.drawn, '1', `${s.id}: its chart was drawn`);
    }
    for (const id of resumed) assert.ok(sections.find((s) => s.id === id)!.markers >= 1, `${id} resumed: it has a resume marker`);
    // The overlay's legend names every experiment (uPlot's legend is DOM, its lines a canvas).
    const legend = await ui.page.$$eval('#overlay .u-series .u-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(legend.slice(1), ids);
    const rows = await ui.page.$$eval('#results tbody tr', (els) => els.map((e) => e.getAttribute('data-experiment')));
    assert.deepEqual(rows, ids, 'the results table rows');
    // Sorting by final loss reorders the rows by that column.
    await ui.page.click('#results th[data-key="finalLoss"]');
    const sorted = await ui.page.$$eval('#results tbody tr', (els) => els.map((e) => Number(e.children[7].textContent)));
    assert.deepEqual(sorted, [...sorted].sort((x, y) => x - y));
    assert.deepEqual(requested, [], 'the report made no network request');
    await ui.page.screenshot({ path: path.join(ARTIFACTS, 'report-chromium.png'), fullPage: true });
  } finally {
    await ui.close();
  }
  b.child.kill('SIGTERM');
  await b.exited;
});
