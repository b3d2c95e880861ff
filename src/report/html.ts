/**
 * Renders a session report as one self-contained HTML file: uPlot (its script and stylesheet),
 * our client script (assets/report/report.js) and the report data are inlined, so the file
 * needs no network and can be mailed or archived. Node side; the data comes from model.ts.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ReportData } from './model';

/** assets/ sits at the package root, two levels above this file in src/report and in a compiled lib/report. */
const ASSETS = path.resolve(__dirname, '..', '..', 'assets', 'report');

let cached: { uplotJs: string; uplotCss: string; client: string; css: string } | null = null;
function assets() {
  if (cached) return cached;
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  cached = {
    uplotJs: readFileSync(path.join(uplotDir, 'uPlot.iife.min.js'), 'utf8'),
    uplotCss: readFileSync(path.join(uplotDir, 'uPlot.min.css'), 'utf8'),
    client: readFileSync(path.join(ASSETS, 'report.js'), 'utf8'),
    css: readFileSync(path.join(ASSETS, 'report.css'), 'utf8'),
  };
  return cached;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON safe inside a <script> element: no `</script>`, no HTML comment openers, no U+2028/9 surprises. */
const scriptJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
/** A script body cannot contain `</script`; neither uPlot nor ours does, and this keeps it so. */
const inlineScript = (js: string): string => js.replace(/<\/script/gi, '<\\/script');

/** The line saying the report shows only some experiments, with the counts of all of them. */
function coverageText(sessionId: string, c: NonNullable<ReportData['coverage']>): string {
  const counts = Object.entries(c.counts)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([state, n]) => `${escapeHtml(state)} ${n}`)
    .join(', ');
  return (
    `Showing ${c.shown} of ${c.total} experiments: the session summary's rows (those that did not end well first, then the best by the search metric, else the latest).` +
    (counts ? ` Every experiment by state: ${counts}.` : '') +
    ` All of them: <code>experiments status ${escapeHtml(sessionId)} --page N</code>.`
  );
}

export function renderReportHtml(data: ReportData): string {
  const a = assets();
  const title = `Session ${data.sessionId} · ${data.state}`;
  const coverage = data.coverage ? `<p class="live" id="coverage">${coverageText(data.sessionId, data.coverage)}</p>` : '';
  const live = data.live ? `<p class="live" id="live">Session still ${escapeHtml(data.state)}: curves are partial (regenerate the report for more).</p>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>${a.uplotCss}</style>
<style>${a.css}</style>
</head>
<body data-session="${escapeHtml(data.sessionId)}">
<header>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${data.series.length} experiments · generated ${escapeHtml(data.generatedAt)} by <code>experiments report</code></p>
${live}
${coverage}
</header>
<nav class="controls">
<label>metric <select id="metric"></select></label>
<label><input type="checkbox" id="log"> log scale</label>
</nav>
<main>
<div id="overlay" class="overlay"></div>
<section id="search" class="search" hidden><h2>Search</h2></section>
<h2>Results</h2>
<table id="results" class="sortable"></table>
<h2>Experiments</h2>
<div id="experiments" class="grid"></div>
<h2>Approval audit</h2>
<table id="audit" class="sortable"></table>
<h2>Policy</h2>
<pre id="policy"></pre>
</main>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${inlineScript(a.uplotJs)}</script>
<script>${inlineScript(a.client)}</script>
</body>
</html>
`;
}
