/**
 * The best trial of a search session, and the order of its results table: pure, shared by the
 * session workflow (summary), the client and the CLI (`experiments best`, `status`).
 */
import { digestKind, type ExperimentSpec, type ExperimentStatus } from '../types';
import type { BestTrial, ResolvedSearch } from './types';

/** A trial's value of the search metric (its final metrics), or null. */
export function metricValue(status: Pick<ExperimentStatus, 'metrics'>, metric: string): number | null {
  const v = status.metrics?.[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * Orders trials best first: completed ones (they ran their whole budget) before the rest, each
 * group by the metric in the search's mode, trials without the metric last; ties keep the
 * session's order.
 */
export function rankTrials<T extends Pick<ExperimentStatus, 'metrics' | 'state'>>(trials: readonly T[], search: Pick<ResolvedSearch, 'metric' | 'mode'>): T[] {
  const key = (t: T) => [t.state === 'completed' ? 0 : 1, metricValue(t, search.metric)] as const;
  return trials
    .map((t, i) => ({ t, i, k: key(t) }))
    .sort((a, b) => {
      const [ga, va] = a.k;
      const [gb, vb] = b.k;
      if (va === null || vb === null) return va === vb ? a.i - b.i : va === null ? 1 : -1;
      if (ga !== gb) return ga - gb;
      const d = search.mode === 'min' ? va - vb : vb - va;
      return d !== 0 ? d : a.i - b.i;
    })
    .map(({ t }) => t);
}

/** The best trial, or null when none has the metric yet. */
export function bestTrial(trials: readonly ExperimentStatus[], specs: ReadonlyMap<string, ExperimentSpec>, search: Pick<ResolvedSearch, 'metric' | 'mode'>): BestTrial | null {
  const [top] = rankTrials(trials, search);
  const value = top ? metricValue(top, search.metric) : null;
  if (!top || value === null) return null;
  const ck = top.latestCheckpoint;
  return {
    experimentId: top.id,
    state: top.state,
    params: { ...(specs.get(top.id)?.params ?? {}) },
    metric: search.metric,
    mode: search.mode,
    value,
    checkpoint: ck ? { id: ck.id, epoch: ck.epoch, uri: ck.uri, sha256: ck.sha256, ...digestKind(ck) } : null,
  };
}
