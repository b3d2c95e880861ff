/** The figure record written to bench/results.json and the markdown table printed from it. */
import * as os from 'node:os';
import { fmt, round, spread, type Spread } from './stats';

export type GoalOp = '>=' | '<=';

export interface Goal {
  readonly op: GoalOp;
  readonly value: number;
  /** How the goal reads in the table, e.g. `≤ heartbeatTimeout + 2 s (4 s)`. */
  readonly text?: string;
}

export interface Baseline {
  /** What the figure is compared with. */
  readonly what: string;
  /** The baseline's own median, when it is a measurement. */
  readonly value?: number;
  readonly unit?: string;
}

export interface Figure {
  readonly name: string;
  /** The headline value (a median unless the figure says otherwise: max, rate). */
  readonly value: number | null;
  readonly unit: string;
  readonly goal: Goal | null;
  readonly met: boolean | null;
  readonly baseline: Baseline;
  /** Median and spread of the per-repetition values. */
  readonly stats: Spread | null;
  /** How `value` is derived from the runs when it is not their median. */
  readonly aggregate: 'median' | 'max' | 'rate';
  readonly runs: unknown[];
  readonly notes?: string;
  /** Extra figures (not in the contract) are marked so the table can group them. */
  readonly extra?: boolean;
}

export function checkGoal(value: number | null, goal: Goal | null): boolean | null {
  if (goal === null || value === null || !Number.isFinite(value)) return goal === null ? null : false;
  return goal.op === '>=' ? value >= goal.value : value <= goal.value;
}

export function figure(f: {
  name: string;
  values: readonly number[];
  unit: string;
  goal: Goal | null;
  baseline: Baseline;
  runs: unknown[];
  aggregate?: 'median' | 'max' | 'rate';
  value?: number;
  notes?: string;
  extra?: boolean;
}): Figure {
  const stats = f.values.length > 0 ? roundSpread(spread(f.values)) : null;
  const aggregate = f.aggregate ?? 'median';
  const raw = f.value ?? (stats ? (aggregate === 'max' ? stats.max : stats.median) : null);
  const value = raw === null || Number.isNaN(raw) ? null : round(raw);
  return {
    name: f.name,
    value,
    unit: f.unit,
    goal: f.goal,
    met: checkGoal(value, f.goal),
    baseline: f.baseline.value === undefined ? f.baseline : { ...f.baseline, value: round(f.baseline.value) },
    stats,
    aggregate,
    runs: f.runs,
    notes: f.notes,
    extra: f.extra,
  };
}

function roundSpread(s: Spread): Spread {
  return { n: s.n, median: round(s.median), min: round(s.min), max: round(s.max), q1: round(s.q1), q3: round(s.q3) };
}

export interface Machine {
  readonly cpus: number;
  readonly model: string;
  readonly memGiB: number;
  readonly node: string;
  readonly os: string;
}

export function machine(): Machine {
  return {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export interface Results {
  readonly machine: Machine;
  readonly date: string;
  readonly wallSeconds?: number;
  readonly load?: { readonly before: number[]; readonly after: number[]; readonly samples1m: number[] };
  readonly settings?: Record<string, unknown>;
  readonly figures: Figure[];
}

function goalText(goal: Goal | null): string {
  if (!goal) return '—';
  return goal.text ?? `${goal.op === '>=' ? '≥' : '≤'} ${goal.value}`;
}

function valueText(f: Figure): string {
  if (f.value === null) return 'n/a';
  return `${fmt(f.value)} ${f.unit}`.trim();
}

function baselineText(b: Baseline): string {
  return b.value === undefined ? b.what : `${b.what}: ${fmt(b.value)}${b.unit ? ` ${b.unit}` : ''}`;
}

function spreadText(f: Figure): string {
  if (!f.stats || f.stats.n === 0) return 'n/a';
  const s = f.stats;
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}; IQR ${fmt(s.q1)}–${fmt(s.q3)})`;
}

function escape(cell: string): string {
  return cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(results: Results): string {
  const header = '| name | value | goal | met? | baseline | median (spread) | runs |\n|---|---|---|---|---|---|---|';
  const row = (f: Figure) =>
    `| ${[
      f.extra ? `*${f.name}*` : `**${f.name}**`,
      valueText(f),
      goalText(f.goal),
      f.met === null ? '—' : f.met ? 'yes' : '**no**',
      baselineText(f.baseline),
      spreadText(f),
      String(f.runs.length),
    ]
      .map(escape)
      .join(' | ')} |`;
  const m = results.machine;
  const lines = [
    `Machine: ${m.cpus} × ${m.model}, ${m.memGiB} GiB, Node ${m.node}, ${m.os}. Date: ${results.date}.`,
  ];
  if (results.wallSeconds !== undefined) lines.push(`Wall time: ${results.wallSeconds.toFixed(0)} s.`);
  if (results.load) {
    const s = spread(results.load.samples1m);
    lines.push(
      `Load average (1 min) before: ${results.load.before.map((v) => v.toFixed(2)).join(', ')}; during the run: median ${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}); after: ${results.load.after.map((v) => v.toFixed(2)).join(', ')}.`,
    );
  }
  lines.push('', header, ...results.figures.map(row));
  return lines.join('\n');
}
