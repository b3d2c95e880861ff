/**
 * Types of a session's hyperparameter search: the `search` policy (which metric, which way is
 * better, which early-stopping scheduler) and the decisions the session makes with it. Plain
 * data, importable from the workflow sandbox.
 */

/**
 * Asynchronous successive halving (ASHA). Rungs are at `gracePeriod · reductionFactor^k` epochs
 * (below `maxEpochs`). A trial that reaches a rung continues only if it is in the top
 * 1/`reductionFactor` (rounded up) of the trials recorded at that rung; otherwise it is pruned.
 * "Recorded" follows the session's experiment order, not arrival time: a trial's rung decision
 * waits for the trials before it to record at that rung (or end), so the same session always
 * prunes the same trials at the same rungs, whatever the timing, crashes or pauses.
 */
export interface AshaScheduler {
  readonly type: 'asha';
  /** η: the share of trials promoted at each rung is 1/η. Greater than 1. @default 3 */
  readonly reductionFactor?: number;
  /** The first rung, in epochs (the least training a trial gets). @default 1 */
  readonly gracePeriod?: number;
  /** Training budget of one trial, in epochs; rungs lie below it. Set it to the trainer's epochs. */
  readonly maxEpochs: number;
}

/**
 * The median stopping rule: from `gracePeriod` epochs on, a trial whose best metric so far is
 * worse than the median of the other trials' metric at the same epoch is pruned. "Other trials"
 * are those before it in the session's order (so decisions are deterministic), and the rule
 * decides only when at least `minTrials` of them recorded that epoch.
 */
export interface MedianScheduler {
  readonly type: 'median';
  /** Epochs a trial always trains before the rule applies. @default 1 */
  readonly gracePeriod?: number;
  /** Other trials needed at an epoch before the rule prunes there. @default 3 */
  readonly minTrials?: number;
}

export type SearchScheduler = AshaScheduler | MedianScheduler;

/** SessionPolicy.search: what the session optimises, and how it stops unpromising trials early. */
export interface SearchPolicy {
  /** Name of the metric the trainer reports in its checkpoints (and final result), e.g. `loss`. */
  readonly metric: string;
  /** Whether a smaller (`min`) or a larger (`max`) value is better. @default 'min' */
  readonly mode?: 'min' | 'max';
  /** Early stopping; absent: every trial runs to the end, and the session still names the best. */
  readonly scheduler?: SearchScheduler;
}

/** SearchPolicy with every default applied (what ResolvedPolicy.search holds). */
export interface ResolvedSearch {
  readonly metric: string;
  readonly mode: 'min' | 'max';
  readonly scheduler:
    | { readonly type: 'asha'; readonly reductionFactor: number; readonly gracePeriod: number; readonly maxEpochs: number }
    | { readonly type: 'median'; readonly gracePeriod: number; readonly minTrials: number }
    | null;
}

/** What the session tells a trial at a gate epoch. */
export interface SearchDecision {
  readonly experimentId: string;
  /** Epochs completed when the trial reported. */
  readonly epoch: number;
  readonly action: 'continue' | 'prune';
  /** ASHA rung index k (rung at gracePeriod·η^k); null for the median rule. */
  readonly rung: number | null;
  /** Why, in words, with the figures. */
  readonly reason: string;
}

/** Sent by an experiment of a search session at each gate epoch: its metrics at that checkpoint. */
export interface TrialReport {
  readonly experimentId: string;
  /** Run id of the reporting experiment run; the session accepts reports only from the run it started. */
  readonly runId: string;
  readonly epoch: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** The best trial of a search session (summary, `experiments best`). */
export interface BestTrial {
  readonly experimentId: string;
  readonly state: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly metric: string;
  readonly mode: 'min' | 'max';
  readonly value: number;
  /** Its newest checkpoint (the history branch's keep-best retention can name a better one). */
  readonly checkpoint: { readonly id: string; readonly epoch: number; readonly uri: string; readonly sha256: string; readonly hashBlockBytes?: number } | null;
  /** Set by `experiments best` when `checkpoint` is the one a `{ latest, best }` retention keeps as best (read back and verified). */
  readonly keptBest?: boolean;
}
