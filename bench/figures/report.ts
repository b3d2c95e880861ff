/**
 * report-generation: `experiments report` for a 1,000-experiment session with 50 epochs each,
 * from the gathered data (snapshot, specs, histories — synthetic here, in the shapes the session
 * and the store return) to the written HTML file: buildReport + renderReportHtml + write.
 * Baseline, side by side: JSON.stringify of the same inputs (the least any report must do).
 * Also the file size, and as an extra, Chromium's time until the page says it has drawn.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { LocalCheckpointStore, readMetricHistory } from '../../src/activities/checkpoint-store';
import { MetricHistoryWriter } from '../../src/activities/checkpoint-store/history-writer';
import { renderReportHtml } from '../../src/report/html';
import { buildReport, type ReportSpec } from '../../src/report/model';
import type { SessionSnapshot } from '../../src/shared/definitions';
import type { MetricPoint } from '../../src/shared/metric-history';
import { figure, type Figure } from '../lib/results';
import { median, mulberry32, progress } from '../lib/stats';

export const REPORT_DEFAULTS = { experiments: 1000, epochs: 50, reps: 5, browser: true };

function synthetic(n: number, epochs: number) {
  const random = mulberry32(17);
  const experiments = [];
  const specs = new Map<string, ReportSpec>();
  const histories = new Map<string, MetricPoint[]>();
  for (let i = 0; i < n; i++) {
    const id = `e${String(i).padStart(4, '0')}`;
    const lr = 0.01 + random() * 0.1;
    specs.set(id, { trainer: 'mlp', params: { lr, hidden: 16 + (i % 4) * 16, seed: i } });
    const points: MetricPoint[] = [];
    let loss = 2 + random();
    for (let e = 1; e <= epochs; e++) {
      loss *= 0.93 + random() * 0.05;
      const attempt = i % 10 === 0 && e > epochs / 2 ? 2 : 1; // every tenth experiment resumed once
      points.push({ kind: 'epoch', epoch: e, step: null, attempt, invocation: 0, time: new Date(1.7e12 + e * 1000).toISOString(), metrics: { loss, accuracy: 1 - loss / 3 } });
    }
    histories.set(id, points);
    experiments.push({
      id, sessionId: 'bench', workflowId: `bench:${id}`, state: 'completed', timeoutMode: 'bounded', attempt: i % 10 === 0 ? 2 : 1,
      epoch: epochs, epochs, latestCheckpoint: null, resumedFrom: i % 10 === 0 ? epochs / 2 : null,
      result: { finalLoss: loss, accuracy: 1 - loss / 3, modelSha256: 'f'.repeat(64) }, preemptions: 0, reason: null,
    });
  }
  const snapshot = { kind: 'session', id: 'bench', state: 'completed', approval: { required: false, approved: false, by: null, at: null, note: null }, audit: [], policy: {}, experiments, runs: 3 } as unknown as SessionSnapshot;
  return { snapshot, specs, histories };
}

async function browserReadyMs(file: string): Promise<number> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const t0 = performance.now();
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
    return performance.now() - t0;
  } finally {
    await browser.close();
  }
}

/** Writes every history into a real local store, as training does (an attempt entry, one epoch point per checkpoint). */
async function storeHistories(dir: string, histories: Map<string, MetricPoint[]>): Promise<LocalCheckpointStore> {
  const store = new LocalCheckpointStore(dir);
  const objects = store.metricHistory();
  const log = pino({ level: 'silent' });
  const ids = [...histories.keys()];
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < ids.length) {
      const id = ids[next++];
      const writer = new MetricHistoryWriter(objects, `bench/${id}`, 'run1', { invocation: 0, attempt: 1 }, log);
      await writer.begin(undefined);
      for (const point of histories.get(id)!) await writer.checkpoint({ epoch: point.epoch, step: 0, metrics: point.metrics });
      await writer.close();
    }
  }));
  return store;
}

/** The histories read back from the store, 16 at a time (what gather.ts does through the client). */
async function readHistories(store: LocalCheckpointStore, ids: readonly string[]): Promise<Map<string, MetricPoint[]>> {
  const out = new Map<string, MetricPoint[]>();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < ids.length) {
      const id = ids[next++];
      out.set(id, await readMetricHistory(store, `bench:${id}`));
    }
  }));
  return out;
}

export async function reportGeneration(tmp: string, opts = REPORT_DEFAULTS): Promise<Figure[]> {
  const input = synthetic(opts.experiments, opts.epochs);
  const file = path.join(tmp, 'report-bench.html');
  progress(`report: writing ${opts.experiments} × ${opts.epochs} epoch points into a local store (setup, not timed)`);
  const store = await storeHistories(path.join(tmp, 'report-store'), input.histories);
  const ids = [...input.histories.keys()];
  const fromStore: number[] = [];
  for (let rep = 0; rep < Math.min(3, opts.reps); rep++) {
    const t0 = performance.now();
    const histories = await readHistories(store, ids);
    fs.writeFileSync(file, renderReportHtml(buildReport(input.snapshot, input.specs, histories, new Date().toISOString())));
    fromStore.push((performance.now() - t0) / 1000);
    const points = [...histories.values()].reduce((n, h) => n + h.length, 0);
    if (points !== opts.experiments * opts.epochs) throw new Error(`report bench: read ${points} points back, expected ${opts.experiments * opts.epochs}`);
    progress(`report: from the store, rep ${rep + 1}: ${fromStore.at(-1)!.toFixed(3)} s`);
  }
  const gen: number[] = [];
  const base: number[] = [];
  let bytes = 0;
  for (let rep = 0; rep < opts.reps; rep++) {
    let t0 = performance.now();
    const html = renderReportHtml(buildReport(input.snapshot, input.specs, input.histories, new Date().toISOString()));
    fs.writeFileSync(file, html);
    gen.push((performance.now() - t0) / 1000);
    bytes = Buffer.byteLength(html);
    t0 = performance.now();
    fs.writeFileSync(`${file}.json`, JSON.stringify({ snapshot: input.snapshot, specs: [...input.specs], histories: [...input.histories] }));
    base.push((performance.now() - t0) / 1000);
    progress(`report: rep ${rep + 1}/${opts.reps}: ${gen.at(-1)!.toFixed(3)} s, ${(bytes / 2 ** 20).toFixed(2)} MiB`);
  }
  const label = `${opts.experiments} experiments × ${opts.epochs} epochs`;
  const figures = [
    figure({ name: 'report-generation-seconds', values: fromStore, unit: 's', goal: { op: '<=', value: 5 }, baseline: { what: 'JSON.stringify + write of the same inputs', value: median(base), unit: 's' }, runs: fromStore, notes: `${label}; every history read back from a local checkpoint store (readMetricHistory, 16 at a time), then built, rendered and written; the session snapshot and specs are synthetic (one query and one visibility listing in the CLI)` }),
    figure({ name: 'report-render-seconds', values: gen, unit: 's', goal: null, baseline: { what: 'JSON.stringify + write of the same inputs', value: median(base), unit: 's' }, runs: gen, extra: true, notes: `${label}; from gathered data to the written file` }),
    figure({ name: 'report-file-MB', values: [bytes / 1e6], unit: 'MB', goal: { op: '<=', value: 5 }, baseline: { what: 'the inputs as JSON', value: fs.statSync(`${file}.json`).size / 1e6, unit: 'MB' }, runs: [bytes], notes: label }),
  ];
  if (opts.browser) {
    const ready = [await browserReadyMs(file)];
    figures.push(figure({ name: 'report-chromium-ready-seconds', values: ready.map((ms) => ms / 1000), unit: 's', goal: null, baseline: { what: 'none (page load to data-ready, offline)' }, runs: ready, extra: true, notes: `${label}; small charts below the fold draw when scrolled into view` }));
  }
  return figures;
}
