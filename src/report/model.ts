/**
 * The data of a session report, pure: from a session snapshot and each experiment's metric
 * history to the compact, columnar shape the report page charts. No I/O, so every rule (one
 * point per epoch, where markers go, which rows the table has) is tested without a server
 * (test/report/model.test.ts). gather.ts reads the inputs; html.ts renders the result.
 */
import type { SessionSnapshot } from '../shared/definitions';
import type { MetricPoint } from '../shared/metric-history';
import type { BestTrial, ResolvedSearch } from '../shared/search/types';
import type { ExperimentStatus } from '../shared/types';

/** The search a session ran, when its policy had one: rungs, pruned trials and the best trial. */
export interface ReportSearch {
  readonly metric: string;
  readonly mode: 'min' | 'max';
  readonly scheduler: string;
  /** ASHA's rung epochs (grace·η^k up to maxEpochs); empty for the median rule. */
  readonly rungs: number[];
  readonly pruned: { readonly id: string; readonly epoch: number; readonly rung: number | null; readonly reason: string | null }[];
  readonly best: BestTrial | null;
}

/** Where an attempt of an experiment ended and the next one took over from a checkpoint. */
export interface ReportMarker {
  /** `resume`: a later attempt or invocation continued from the checkpoint at `epoch`. */
  readonly kind: 'resume';
  /** Epochs completed at the checkpoint the next attempt resumed from. */
  readonly epoch: number;
  /** `preemption` when the invocation changed (a worker shutdown), `retry` when the attempt did (a crash, a timeout). */
  readonly cause: 'preemption' | 'retry';
  readonly from: { readonly invocation: number; readonly attempt: number };
  readonly to: { readonly invocation: number; readonly attempt: number };
}

/** One experiment's curves: epochs on x, one column per metric (null where a point lacks it). */
export interface ReportSeries {
  readonly id: string;
  readonly label: string;
  readonly state: ExperimentStatus['state'];
  readonly epochs: number[];
  readonly metrics: Record<string, (number | null)[]>;
  readonly markers: ReportMarker[];
}

export interface ReportRow {
  readonly id: string;
  readonly state: string;
  readonly trainer: string;
  readonly params: string;
  readonly epoch: string;
  readonly attempts: number;
  readonly preemptions: number;
  readonly finalLoss: number | null;
  readonly accuracy: number | null;
  readonly resumedFrom: number | null;
  readonly reason: string | null;
}

export interface ReportData {
  readonly sessionId: string;
  readonly state: string;
  readonly generatedAt: string;
  /** True when the session was still running: the curves are partial. */
  readonly live: boolean;
  /** Every metric name any experiment reported, `loss` first when present. */
  readonly metricNames: string[];
  readonly series: ReportSeries[];
  readonly rows: ReportRow[];
  readonly audit: SessionSnapshot['audit'];
  readonly policy: SessionSnapshot['policy'];
  readonly search: ReportSearch | null;
  /**
   * Set when the report shows only some of the session's experiments (a bounded summary of a
   * large session): how many it shows, how many there are, and every experiment by state.
   */
  readonly coverage: { readonly shown: number; readonly total: number; readonly counts: Partial<Record<ExperimentStatus['state'], number>> } | null;
}

/** ASHA's rungs: gracePeriod·η^k for k = 0, 1, … while at most maxEpochs. */
export function ashaRungs(scheduler: { gracePeriod: number; reductionFactor: number; maxEpochs: number }): number[] {
  const rungs: number[] = [];
  for (let r = scheduler.gracePeriod; r <= scheduler.maxEpochs && rungs.length < 64; r *= scheduler.reductionFactor) rungs.push(r);
  return rungs;
}

function searchOf(snapshot: SessionSnapshot): ReportSearch | null {
  const search = (snapshot.policy as { search?: ResolvedSearch }).search;
  if (!search) return null;
  const s = search.scheduler;
  return {
    metric: search.metric,
    mode: search.mode,
    scheduler: s ? (s.type === 'asha' ? `ASHA η=${s.reductionFactor} grace=${s.gracePeriod} max=${s.maxEpochs}` : `median rule grace=${s.gracePeriod} minTrials=${s.minTrials}`) : 'none',
    rungs: s && s.type === 'asha' ? ashaRungs(s) : [],
    pruned: snapshot.experiments.filter((e) => e.state === 'pruned').map((e) => ({ id: e.id, epoch: e.pruned?.epoch ?? e.epoch, rung: e.pruned?.rung ?? null, reason: e.reason })),
    best: snapshot.best ?? null,
  };
}

/** Keeps only epoch points, one per epoch (the last written wins, as after a rewind), in order. */
export function epochPoints(points: readonly MetricPoint[]): MetricPoint[] {
  const byEpoch = new Map<number, MetricPoint>();
  for (const point of points) if (point.kind === 'epoch') byEpoch.set(point.epoch, point);
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/** A resume marker wherever two consecutive epoch points were written by different attempts. */
export function resumeMarkers(points: readonly MetricPoint[]): ReportMarker[] {
  const markers: ReportMarker[] = [];
  for (let i = 1; i < points.length; i++) {
    const prev = points[i - 1];
    const next = points[i];
    if (prev.invocation === next.invocation && prev.attempt === next.attempt) continue;
    markers.push({
      kind: 'resume',
      epoch: prev.epoch,
      cause: next.invocation !== prev.invocation ? 'preemption' : 'retry',
      from: { invocation: prev.invocation, attempt: prev.attempt },
      to: { invocation: next.invocation, attempt: next.attempt },
    });
  }
  return markers;
}

function paramsLabel(params: unknown): string {
  if (params === null || typeof params !== 'object') return '';
  const entries = Object.entries(params as Record<string, unknown>).filter(([, v]) => typeof v !== 'object' || v === null);
  return entries.map(([k, v]) => `${k}=${typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v)}`).join(' ');
}

/** Metric names, the search metric (else `loss`) first. */
function metricOrder(names: Iterable<string>, first = 'loss'): string[] {
  return [...new Set(names)].sort((a, b) => (a === first ? -1 : b === first ? 1 : a.localeCompare(b)));
}

/** What the report shows of a spec: its trainer and params (from the experiment workflow's memo). */
export interface ReportSpec {
  readonly trainer: string;
  readonly params?: unknown;
}

/**
 * Builds the report from a snapshot (running or finished), the experiments' specs and their
 * histories, both keyed by experiment id.
 */
export function buildReport(
  snapshot: SessionSnapshot,
  specs: ReadonlyMap<string, ReportSpec>,
  histories: ReadonlyMap<string, readonly MetricPoint[]>,
  generatedAt: string,
): ReportData {
  const names = new Set<string>();
  const series: ReportSeries[] = [];
  const rows: ReportRow[] = [];
  for (const status of snapshot.experiments) {
    const points = epochPoints(histories.get(status.id) ?? []);
    const own = new Set(points.flatMap((p) => Object.keys(p.metrics)));
    const metrics: Record<string, (number | null)[]> = {};
    for (const name of own) {
      names.add(name);
      metrics[name] = points.map((p) => (Number.isFinite(p.metrics[name]) ? p.metrics[name] : null));
    }
    series.push({ id: status.id, label: status.id, state: status.state, epochs: points.map((p) => p.epoch), metrics, markers: resumeMarkers(points) });
    const spec = describeSpec(specs.get(status.id));
    rows.push({
      id: status.id,
      state: status.state,
      trainer: spec.trainer,
      params: paramsLabel(spec.params),
      epoch: status.epochs === null ? String(status.epoch) : `${status.epoch}/${status.epochs}`,
      attempts: status.attempt,
      preemptions: status.preemptions ?? 0,
      finalLoss: status.result?.finalLoss ?? null,
      accuracy: status.result?.accuracy ?? null,
      resumedFrom: status.resumedFrom,
      reason: status.reason,
    });
  }
  return {
    sessionId: snapshot.id,
    state: snapshot.state,
    generatedAt,
    live: snapshot.state === 'running' || snapshot.state === 'awaiting-approval',
    metricNames: metricOrder(names, (snapshot.policy as { search?: ResolvedSearch }).search?.metric),
    series,
    rows,
    audit: snapshot.audit,
    policy: snapshot.policy,
    search: searchOf(snapshot),
    coverage: coverageOf(snapshot),
  };
}

/** What share of the session the report shows: null when it is every experiment. */
function coverageOf(snapshot: SessionSnapshot): ReportData['coverage'] {
  const total = snapshot.total ?? snapshot.experiments.length;
  if (!snapshot.truncated && total <= snapshot.experiments.length) return null;
  return { shown: snapshot.experiments.length, total, counts: snapshot.counts ?? {} };
}

/** The trainer and params a row shows; a `command` spec shows its program and the program's params. */
function describeSpec(spec: ReportSpec | undefined): { trainer: string; params: unknown } {
  if (!spec) return { trainer: '', params: null };
  const p = spec.params as { program?: unknown; params?: unknown } | undefined;
  if (spec.trainer === 'command' && p && typeof p.program === 'string') return { trainer: `command:${p.program}`, params: p.params };
  return { trainer: spec.trainer, params: spec.params };
}
