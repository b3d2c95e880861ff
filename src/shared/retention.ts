/**
 * Checkpoint retention (the session policy's `checkpointsToKeep`): which checkpoints of a run the
 * store keeps when it prunes. Pure and sandbox-safe: the workflow resolves the policy with it and
 * both stores prune with it (through manifest.ts).
 *
 * - A number K keeps the newest K checkpoints (by recording time), as it always has.
 * - `{ latest: K, best: B }` keeps the newest K for resume plus the B best by a metric. Only
 *   end-of-epoch checkpoints (step 0) compete for best: their metrics are the epoch's, while a
 *   mid-epoch (interruption) checkpoint carries one step's. A best checkpoint is dropped only when
 *   B better ones exist; the latest K never push it out.
 */

/** `checkpointsToKeep` in its object form. */
export interface CheckpointRetention {
  /** Newest checkpoints kept (for resume). At least 1. */
  readonly latest: number;
  /** Best checkpoints kept by `metric`, besides the latest. @default 0 */
  readonly best?: number;
  /**
   * Metric that ranks checkpoints for `best`, as the trainer reports it in checkpoint metrics.
   * @default the session's search metric (`policy.search.metric`) when set, else `'loss'`
   */
  readonly metric?: string;
  /**
   * Whether lower (`min`) or higher (`max`) is better. @default the search's mode when `metric`
   * defaults to the search metric, else `'min'`
   */
  readonly mode?: 'min' | 'max';
}

/** The object form with every default applied, as the workflow passes it to training. */
export interface ResolvedRetention {
  readonly latest: number;
  readonly best: number;
  readonly metric: string;
  readonly mode: 'min' | 'max';
}

/** What a store prunes to: a count (the newest K) or the resolved object form. */
export type Retention = number | ResolvedRetention;

/** Metric ranking `best` when neither the retention nor a search names one. */
export const DEFAULT_BEST_METRIC = 'loss';

/**
 * Applies defaults. A number stays a number, so a policy recorded before keep-best resolves (and
 * replays) exactly as it did. `search` is the session's search policy, when it has one.
 */
export function resolveRetention(keep: number | CheckpointRetention, search?: { readonly metric?: string; readonly mode?: 'min' | 'max' }): Retention {
  if (typeof keep === 'number') return keep;
  const metric = keep.metric ?? search?.metric ?? DEFAULT_BEST_METRIC;
  const mode = keep.mode ?? (keep.metric === undefined ? search?.mode : undefined) ?? 'min';
  return { latest: keep.latest, best: keep.best ?? 0, metric, mode };
}

/** What is wrong with a resolved retention, as `: <what>` or `.<field>: <what>`; undefined when valid. */
export function retentionProblem(keep: unknown): string | undefined {
  const int = (v: unknown, min: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  if (typeof keep === 'number') return int(keep, 1) ? undefined : `: expected an integer >= 1, received ${String(keep)}`;
  if (typeof keep !== 'object' || keep === null) return `: expected an integer >= 1 or { latest, best, metric, mode }, received ${String(keep)}`;
  const { latest, best, metric, mode } = keep as Record<string, unknown>;
  if (!int(latest, 1)) return `.latest: expected an integer >= 1, received ${String(latest)}`;
  if (!int(best, 0)) return `.best: expected an integer >= 0, received ${String(best)}`;
  if (typeof metric !== 'string' || metric === '') return `.metric: expected a metric name, received ${String(metric)}`;
  if (mode !== 'min' && mode !== 'max') return `.mode: expected "min" or "max", received ${String(mode)}`;
  return undefined;
}

/** How a manifest marks what it keeps and why: checkpoint ids, newest or best first. */
export interface RetentionMarks {
  readonly latest: string[];
  readonly best: string[];
  readonly metric: string;
  readonly mode: 'min' | 'max';
}

interface Ranked {
  readonly checkpointId: string;
  readonly epoch: number;
  readonly step: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * Which of `entries` (in recording order, the new one last) to keep under `keep`, in the same
 * order, and which fall out; `marks` for the object form.
 */
export function retain<T extends Ranked>(entries: readonly T[], keep: Retention): { kept: T[]; dropped: T[]; marks: RetentionMarks | undefined } {
  const latestCount = typeof keep === 'number' ? keep : keep.latest;
  const latest = entries.slice(-latestCount);
  if (typeof keep === 'number') return { kept: latest, dropped: entries.slice(0, entries.length - latest.length), marks: undefined };
  const best = bestOf(entries, keep);
  const keptIds = new Set([...latest, ...best].map((entry) => entry.checkpointId));
  return {
    kept: entries.filter((entry) => keptIds.has(entry.checkpointId)),
    dropped: entries.filter((entry) => !keptIds.has(entry.checkpointId)),
    marks: { latest: latest.map((e) => e.checkpointId).reverse(), best: best.map((e) => e.checkpointId), metric: keep.metric, mode: keep.mode },
  };
}

/** The `keep.best` best end-of-epoch entries by the metric, best first; on a tie the earlier one. */
export function bestOf<T extends Ranked>(entries: readonly T[], keep: ResolvedRetention): T[] {
  const sign = keep.mode === 'min' ? 1 : -1;
  return entries
    .filter((entry) => entry.step === 0 && entry.epoch > 0 && Number.isFinite(entry.metrics[keep.metric]))
    .map((entry, order) => ({ entry, order }))
    .sort((a, b) => sign * (a.entry.metrics[keep.metric] - b.entry.metrics[keep.metric]) || a.order - b.order)
    .slice(0, keep.best)
    .map(({ entry }) => entry);
}
