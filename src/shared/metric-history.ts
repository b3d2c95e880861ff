/**
 * Metric history: the points one experiment run reported, as stored next to its checkpoints and
 * read by `experiments metrics`, the client (`client.metrics`) and anything else that charts a
 * run. Plain data and pure logic only (sandbox-safe): the store's I/O lives in
 * src/activities/checkpoint-store/history*.ts.
 *
 * Positions. Every point has a position in training, compared like a checkpoint's (epoch, step):
 * a step point is at (epoch in progress, steps done in it), an epoch point at (epochs completed,
 * 0), which is exactly where the end-of-epoch checkpoint of that epoch sits.
 *
 * Rewind. Each training attempt records where it started (the checkpoint it resumed from, or
 * nothing for a fresh start) before it writes any point. A point written by an attempt is hidden
 * when a later attempt started at an earlier position: that later attempt trains those steps
 * again and writes their points itself. So after any number of crashes the visible history has
 * one point per position, written by the attempt whose work survived.
 */

/** One recorded point of a run's metric history. */
export interface MetricPoint {
  /** `epoch`: the end of an epoch (its checkpoint's metrics). `step`: a sampled training step. */
  kind: 'epoch' | 'step';
  /**
   * For an epoch point, the epochs completed (1 after the first epoch). For a step point, the
   * zero-based epoch in progress.
   */
  epoch: number;
  /** Steps done within `epoch` for a step point (1 after its first step); null for an epoch point. */
  step: number | null;
  /** Temporal's attempt number of the training activity that wrote it (1 for the first). */
  attempt: number;
  /** Training invocation of the run that wrote it (0 for the first; +1 after each preemption). */
  invocation: number;
  /** ISO-8601 time the trainer reported it. */
  time: string;
  /** Finite numbers only, e.g. `{ loss: 0.41 }`. */
  metrics: Record<string, number>;
}

/** A position in training: (epoch, step), compared lexicographically. */
export interface Position {
  readonly epoch: number;
  readonly step: number;
}

/** What one attempt records when it starts: the index entry that rewinds the history. */
export interface HistoryAttempt {
  readonly invocation: number;
  readonly attempt: number;
  /**
   * How many times this same (invocation, attempt) started before: a token the store's fence
   * accepts again (it allows re-registering the current one) starts a new part of the history.
   * 0 when absent.
   */
  readonly restart?: number;
  /** Position of the checkpoint it resumed from; null for a fresh start (position (0, 0)). */
  readonly resumedAt: Position | null;
  /** Id of that checkpoint, for people reading the index. */
  readonly checkpointId: string | null;
  /** ISO-8601 start time of the attempt. */
  readonly startedAt: string;
}

export function pointPosition(point: Pick<MetricPoint, 'epoch' | 'step'>): Position {
  return { epoch: point.epoch, step: point.step ?? 0 };
}

/** Negative when `a` is before `b`. */
export function comparePosition(a: Position, b: Position): number {
  return a.epoch - b.epoch || a.step - b.step;
}

interface Start {
  readonly invocation: number;
  readonly attempt: number;
  readonly restart?: number;
}

function compareStart(a: Start, b: Start): number {
  return a.invocation - b.invocation || a.attempt - b.attempt || (a.restart ?? 0) - (b.restart ?? 0);
}

/**
 * The visible history: every point not rewound by a later start, in training order (by
 * position; an epoch point after the step points that led to it). `restartOf` tells which start
 * of its (invocation, attempt) wrote a point (the store knows it from the batch's name). Pure, so
 * the rewind rule is tested without a store.
 */
export function visiblePoints(attempts: readonly HistoryAttempt[], points: readonly MetricPoint[], restartOf: (point: MetricPoint) => number = () => 0): MetricPoint[] {
  const starts = [...attempts].sort(compareStart);
  const startOf = (point: MetricPoint): Start => ({ invocation: point.invocation, attempt: point.attempt, restart: restartOf(point) });
  const visible = points.filter((point) => {
    const at = pointPosition(point);
    const own = startOf(point);
    return !starts.some((start) => compareStart(start, own) > 0 && comparePosition(at, start.resumedAt ?? { epoch: 0, step: 0 }) > 0);
  });
  return visible.sort((a, b) => comparePosition(pointPosition(a), pointPosition(b)) || kindOrder(a) - kindOrder(b) || compareStart(startOf(a), startOf(b)));
}

function kindOrder(point: MetricPoint): number {
  return point.kind === 'step' ? 0 : 1;
}

/** The metric names that occur in `points`, in first-seen order (CSV columns, charts). */
export function metricNames(points: readonly MetricPoint[]): string[] {
  const names = new Set<string>();
  for (const point of points) for (const name of Object.keys(point.metrics)) names.add(name);
  return [...names];
}
