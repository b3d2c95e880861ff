/**
 * Human-readable output: tables and one-line descriptions of sessions, experiments and hints.
 * JSON output is not built here: `--json` prints the library's own objects, so the CLI and
 * the client library can never disagree on a field.
 */
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import type { SessionSnapshot } from '../shared/definitions';
import { metricValue, rankTrials } from '../shared/search/best';
import type { ResolvedSearch } from '../shared/search/types';
import type { ExperimentStatus, ResumeHints } from '../shared/types';
import { safe, safeText } from './terminal';
import { estimateVsActual } from './estimate-text';

const useColor = (stream: NodeJS.WriteStream = process.stdout) => stream.isTTY === true && !process.env.NO_COLOR;

/** ANSI styles, applied only on a colour TTY. */
export function styles(stream: NodeJS.WriteStream = process.stdout) {
  const on = useColor(stream);
  const wrap = (code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: wrap('1'), dim: wrap('2'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), cyan: wrap('36') };
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const visible = (s: string) => s.replace(ANSI, '').length;

/** A plain text table; `right` lists the columns to right-align. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((h, c) => Math.max(visible(h), ...rows.map((r) => visible(r[c] ?? ''))));
  const pad = (cell: string, c: number) => {
    const fill = ' '.repeat(Math.max(0, widths[c] - visible(cell)));
    return right.has(c) ? fill + cell : cell + fill;
  };
  const line = (cells: readonly string[]) => cells.map((cell, c) => pad(cell ?? '', c)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** A path relative to the working directory when it lies inside it, else absolute. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.resolve(p);
}

export function fmtNumber(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value.toFixed(digits);
}

export function fmtPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return `${(value * 100).toFixed(1)}%`;
}

export function fmtEpochs(e: Pick<ExperimentStatus, 'epoch' | 'epochs'>): string {
  return e.epochs === null ? (e.epoch > 0 ? String(e.epoch) : '-') : `${e.epoch}/${e.epochs}`;
}

export function fmtElapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function colorState(state: string, stream?: NodeJS.WriteStream): string {
  const st = styles(stream);
  if (state === 'completed') return st.green(state);
  if (state === 'running' || state === 'queued') return st.cyan(state);
  if (state === 'awaiting-approval' || state === 'pruned') return st.yellow(state);
  return st.red(state);
}

/**
 * The results table: one row per experiment. With a search, sorted best first by its metric
 * (completed trials before pruned ones), with a column for the metric.
 */
export function experimentsTable(experiments: readonly ExperimentStatus[], stream?: NodeJS.WriteStream, search?: ResolvedSearch): string {
  const headers = ['ID', 'STATE', 'TIMEOUT', 'ATTEMPTS', 'PREEMPTED', 'RESUMED', 'EPOCHS', 'FINAL LOSS', 'ACCURACY', 'MODEL SHA256', 'LATEST CHECKPOINT'];
  const sorted = search ? rankTrials(experiments, search) : experiments;
  const rows = sorted.map((e) => [
    e.id,
    colorState(e.state, stream),
    e.timeoutMode,
    e.attempt > 0 ? String(e.attempt) : '-',
    String(e.preemptions ?? 0),
    e.resumedFrom === null ? '-' : `epoch ${e.resumedFrom}`,
    fmtEpochs(e),
    fmtNumber(e.result?.finalLoss),
    fmtPercent(e.result?.accuracy),
    e.result?.modelSha256 ? e.result.modelSha256.slice(0, 12) : '-',
    e.latestCheckpoint ? `${e.latestCheckpoint.id} (epoch ${e.latestCheckpoint.epoch})` : '-',
  ]);
  if (!search) return table(headers, rows, new Set([3, 4, 7, 8]));
  const value = (e: ExperimentStatus) => fmtNumber(metricValue(e, search.metric));
  return table([...headers.slice(0, 2), search.metric.toUpperCase(), ...headers.slice(2)], rows.map((r, i) => [...r.slice(0, 2), value(sorted[i]), ...r.slice(2)]), new Set([2, 4, 5, 8, 9]));
}

/** Why experiments did not complete, one line each (empty when all completed). */
export function reasonsBlock(experiments: readonly ExperimentStatus[]): string[] {
  return experiments.filter((e) => e.state !== 'completed' && e.reason).map((e) => `  ${e.id}: ${e.state}: ${safeText(e.reason ?? '')}`);
}

/** The directories holding the experiments' checkpoints, from their file:// URIs. */
export function checkpointDirs(experiments: readonly ExperimentStatus[]): string[] {
  const dirs = new Set<string>();
  for (const e of experiments) {
    const uri = e.latestCheckpoint?.uri;
    if (!uri?.startsWith('file://')) continue;
    try {
      dirs.add(path.dirname(path.dirname(fileURLToPath(uri))));
    } catch {
      // Not a local file: nothing to show.
    }
  }
  return [...dirs];
}

export function sessionText(snap: SessionSnapshot, stream?: NodeJS.WriteStream): string {
  const st = styles(stream);
  const a = snap.approval;
  const approval = a.approved
    ? `approved by ${safe(a.by)} at ${safe(a.at)}${a.note ? ` (“${safe(a.note)}”)` : ''}`
    : a.required
      ? st.yellow(`required, not given — \`experiments approve ${snap.id} --by NAME\``)
      : 'not required';
  const counts = new Map<string, number>(Object.entries(snap.counts ?? {}));
  if (!snap.counts) for (const e of snap.experiments) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const lines = [
    `${st.bold('Session')} ${snap.id}  state: ${colorState(snap.state, stream)}${snap.runs > 0 ? `  (continued as new ${snap.runs}×)` : ''}`,
    `approval: ${approval}`,
    `experiments: ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ') || 'none'}`,
    '',
    experimentsTable(snap.experiments, stream, snap.policy.search),
  ];
  const reasons = reasonsBlock(snap.experiments);
  if (reasons.length > 0) lines.push('', 'not completed:', ...reasons);
  if (snap.audit.length > 0) {
    lines.push('', 'approval audit:', ...snap.audit.map((r) => `  ${safe(r.at)}  ${safe(r.source)}  by ${safe(r.by)}${r.note ? `  “${safe(r.note)}”` : ''}`));
  }
  return lines.join('\n');
}

export function experimentText(e: ExperimentStatus, stream?: NodeJS.WriteStream): string {
  const ck = e.latestCheckpoint;
  const rows: [string, string][] = [
    ['experiment', e.id],
    ['workflow id', e.workflowId],
    ['session', e.sessionId],
    ['state', colorState(e.state, stream)],
    ['timeout mode', e.timeoutMode],
    ['attempt', e.attempt > 0 ? String(e.attempt) : '-'],
    // Statuses recorded before the field existed have none.
    ['preemptions', String(e.preemptions ?? 0)],
    ['epochs', fmtEpochs(e)],
    ['resumed from', e.resumedFrom === null ? '-' : `epoch ${e.resumedFrom}`],
    ['latest checkpoint', ck ? `${ck.id} (epoch ${ck.epoch}, ${digestLabel(ck)} ${ck.sha256.slice(0, 12)}…)` : '-'],
    ['checkpoint uri', ck ? safe(ck.uri) : '-'],
    ['final loss', fmtNumber(e.result?.finalLoss)],
    ['accuracy', fmtPercent(e.result?.accuracy)],
    ['model sha256', e.result?.modelSha256 ?? '-'],
  ];
  if (e.reason) rows.push(['reason', safeText(e.reason)]);
  const estimate = estimateVsActual(e);
  if (estimate) rows.push(['duration', estimate]);
  if (e.hardwareClass && !estimate) rows.push(['hardware class', e.hardwareClass]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n');
}

/**
 * What a checkpoint's `sha256` is: `sha256` (of the bytes, as `sha256sum` prints it) or
 * `block sha256 (4 MiB blocks)` (docs/checkpoints.md).
 */
export function digestLabel(ck: { readonly hashBlockBytes?: number }): string {
  return ck.hashBlockBytes === undefined ? 'sha256' : `block sha256 (${ck.hashBlockBytes / 2 ** 20} MiB blocks)`;
}

export function hintsText(h: ResumeHints): string {
  const ck = h.latestCheckpoint;
  const lines = [
    `${h.id}: ${ck ? `checkpoint ${ck.id} at epoch ${ck.epoch}${h.epochsRemaining !== null ? `, ${h.epochsRemaining} epoch(s) remaining` : ''}` : 'no checkpoint'}`,
  ];
  if (ck) lines.push(`  uri: ${safe(ck.uri)}`, `  ${digestLabel(ck)}: ${ck.sha256}`);
  lines.push(`  resume: ${h.resumeCommand ?? '(completed; nothing to resume)'}`);
  for (const w of h.warnings) lines.push(`  warning: ${safeText(w)}`);
  return lines.join('\n');
}
