/**
 * The search schedulers, pure: ASHA and the median stopping rule, the gate epochs at which a
 * trial reports, and the decision state a session keeps (and carries across continue-as-new).
 *
 * Determinism: a decision depends only on the metric values and on the session's experiment
 * order, never on when reports arrive. Trial i's decision at epoch e is made against the
 * trials before it in the order that recorded epoch e; it waits until each of them has
 * recorded e, moved past it, or ended. Trials before i that have not started (awaiting
 * approval) do not hold it up. So a re-run, a replay, a worker crash or a pause gives the same
 * pruned set at the same rungs.
 */
import type { ResolvedSearch, SearchDecision, TrialReport } from './types';

/** What a session keeps of its search: plain JSON, carried across continue-as-new. */
export interface SearchState {
  /** Metric value per trial and epoch (as a string key); null when the report lacked the metric. */
  readonly reports: Record<string, Record<string, number | null>>;
  readonly decided: Record<string, Record<string, SearchDecision>>;
}

/** One trial as the session sees it, in the session's experiment order. */
export interface TrialView {
  readonly id: string;
  /** `waiting`: not started (queued, awaiting approval); `ended`: in a terminal state. */
  readonly phase: 'waiting' | 'running' | 'ended';
}

export const newSearchState = (): SearchState => ({ reports: {}, decided: {} });

/** ASHA's rung epochs: round(gracePeriod · η^k) below maxEpochs, increasing. */
export function ashaRungs(s: { reductionFactor: number; gracePeriod: number; maxEpochs: number }): number[] {
  const rungs: number[] = [];
  for (let r = s.gracePeriod; Math.round(r) < s.maxEpochs; r *= s.reductionFactor) {
    const epoch = Math.round(r);
    if (epoch > (rungs[rungs.length - 1] ?? 0)) rungs.push(epoch);
  }
  return rungs;
}

/** The next epoch after `epochsDone` at which a trial stops to report and await a decision, or null. */
export function nextGate(search: ResolvedSearch, epochsDone: number): number | null {
  const s = search.scheduler;
  if (!s) return null;
  if (s.type === 'median') return Math.max(s.gracePeriod, epochsDone + 1);
  return ashaRungs(s).find((r) => r > epochsDone) ?? null;
}

/**
 * Records a trial's report. Returns the decision already made for that epoch (a repeated
 * report is answered again), else null. `missing` is true when the report lacks the metric.
 */
export function recordReport(state: SearchState, search: ResolvedSearch, report: TrialReport): { already: SearchDecision | null; missing: boolean } {
  const raw = report.metrics[search.metric];
  const value = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
  const key = String(report.epoch);
  // A trial pruned earlier has no later reports to count: it is answered with its prune again.
  const decided = state.decided[report.experimentId] ?? {};
  const already = decided[key] ?? Object.values(decided).find((d) => d.action === 'prune') ?? null;
  if (!already) (state.reports[report.experimentId] ??= {})[key] = value;
  return { already, missing: value === null };
}

/** Every decision that became possible, in the session's order; each is recorded as made. */
export function takeDecisions(state: SearchState, search: ResolvedSearch, trials: readonly TrialView[]): SearchDecision[] {
  const made: SearchDecision[] = [];
  trials.forEach((trial, i) => {
    const reports = state.reports[trial.id] ?? {};
    for (const key of Object.keys(reports).sort((a, b) => Number(a) - Number(b))) {
      if (state.decided[trial.id]?.[key]) continue;
      const epoch = Number(key);
      const before = trials.slice(0, i);
      if (before.some((t) => blocks(state, t, epoch))) break;
      const decision = decide(state, search, trial.id, epoch, before.map((t) => t.id));
      (state.decided[trial.id] ??= {})[key] = decision;
      made.push(decision);
      if (decision.action === 'prune') break;
    }
  });
  return made;
}

/** Whether trial `t` (before the one deciding) has yet to record `epoch`. */
function blocks(state: SearchState, t: TrialView, epoch: number): boolean {
  if (t.phase !== 'running') return false;
  if (Object.values(state.decided[t.id] ?? {}).some((d) => d.action === 'prune')) return false;
  const epochs = Object.keys(state.reports[t.id] ?? {}).map(Number);
  return !epochs.some((e) => e >= epoch);
}

const better = (mode: 'min' | 'max', a: number, b: number) => (mode === 'min' ? a < b : a > b);
const fmt = (v: number) => (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? Number(v.toPrecision(5)).toString() : v.toExponential(4));

function decide(state: SearchState, search: ResolvedSearch, id: string, epoch: number, before: readonly string[]): SearchDecision {
  const s = search.scheduler;
  const value = state.reports[id]?.[String(epoch)] ?? null;
  const base = { experimentId: id, epoch };
  if (!s) return { ...base, action: 'continue', rung: null, reason: 'no scheduler' };
  const rung = s.type === 'asha' ? ashaRungs(s).indexOf(epoch) : null;
  if (rung === -1) {
    // A trial resumed from a checkpoint past a rung (`experiments resume`) reports where it stopped first.
    return { ...base, action: 'continue', rung: null, reason: `epoch ${epoch} is not an ASHA rung (the trial resumed past one): it continues` };
  }
  if (value === null) {
    return { ...base, action: 'continue', rung, reason: `no value of metric ${JSON.stringify(search.metric)} at epoch ${epoch}: no decision, the trial continues` };
  }
  const at = (other: string) => state.reports[other]?.[String(epoch)];
  const others = before.map(at).filter((v): v is number => typeof v === 'number');
  if (s.type === 'asha') {
    const recorded = [...others, value];
    const keep = Math.ceil(recorded.length / s.reductionFactor);
    // Ties go to the earlier trial: it recorded first in the session's order.
    const rank = others.filter((v) => !better(search.mode, value, v)).length;
    const action = rank < keep ? 'continue' : 'prune';
    return {
      ...base,
      action,
      rung,
      reason: `ASHA rung ${rung} (epoch ${epoch}): ${search.metric} ${fmt(value)} ranks ${rank + 1} of ${recorded.length} recorded there; the top ${keep} (1/${s.reductionFactor}) continue`,
    };
  }
  if (others.length < s.minTrials) {
    return { ...base, action: 'continue', rung, reason: `median rule at epoch ${epoch}: ${others.length} other trials recorded there, fewer than minTrials ${s.minTrials}` };
  }
  const own = Object.entries(state.reports[id] ?? {})
    .filter(([e, v]) => Number(e) <= epoch && typeof v === 'number')
    .map(([, v]) => v as number);
  const best = own.reduce((a, b) => (better(search.mode, b, a) ? b : a));
  const med = median(others);
  const action = better(search.mode, med, best) ? 'prune' : 'continue';
  return {
    ...base,
    action,
    rung,
    reason: `median rule at epoch ${epoch}: best ${search.metric} so far ${fmt(best)} is ${action === 'prune' ? 'worse than' : 'no worse than'} the median ${fmt(med)} of ${others.length} other trials there`,
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
