/**
 * Sweeps by reference, pure: a session started with `SessionInput.sweeps` holds each sweep as its
 * definition and a cursor, and turns points into rows only a window at a time, so neither its
 * start input nor its continue-as-new carry grows with the number of points (a sweep of 10,000
 * experiments is about a kilobyte; 10,000 specs would be ~1.1 MB, past what a
 * payload should hold).
 *
 * - The window: rows still to start (queued or awaiting approval) are topped up to
 *   `feedWindow(policy)` from the sweeps in order, each sweep's points in order.
 * - Ids: every id of a sweep starts with `<idPrefix>-`. Experiments added while a sweep still has
 *   points to give may not use an id under that stem (the validator refuses them), so a point can
 *   never meet a row with its id; the start input obeys the same rule (shared/schema.ts).
 * - Counts: the points not yet fed count as `queued` in the session's counts and total.
 * - Approval: points not yet fed count as submitted with the sweep. A long-running one fed while
 *   the session has no approval waits from when the first one did, so `approvalTimeout` rejects
 *   the whole sweep in one span; after a `reject` of the session each is rejected as it is fed.
 *
 * No Temporal calls: test/workflows/feed.test.ts covers it without a server.
 */
import { MAX_EXPERIMENTS } from '../../shared/schema';
import type { ResolvedPolicy } from '../../shared/policy';
import { sweepIdStem, sweepPointAt, sweepSize, sweepStemIssues, type Sweep, type SweepFeedState } from '../../shared/sweep';
import type { FoldedRows, SessionRow } from '../../shared/definitions';
import type { ExperimentSpec } from '../../shared/types';
import { firstFolded } from './fold';

/** Sweeps a session holds by reference at once (the carry's schema allows this many). */
export const MAX_PENDING_SWEEPS = 100;

/** Rows still to start that the session holds while a sweep has points to give. */
export function feedWindow(policy: Pick<ResolvedPolicy, 'maxConcurrent'>): number {
  return Math.min(1000, Math.max(100, 2 * policy.maxConcurrent));
}

export class SweepFeed {
  private readonly sweeps: Sweep[];
  private readonly next: number[];
  private waitingSince: number | undefined;
  private rejected: string | undefined;

  constructor(state: SweepFeedState | undefined) {
    this.sweeps = [...(state?.sweeps ?? [])];
    this.next = this.sweeps.map((_, i) => state?.next[i] ?? 0);
    this.waitingSince = state?.waitingSince;
    this.rejected = state?.rejected;
    this.dropFed();
  }

  /** A feed of whole sweeps, from a start input. */
  static of(sweeps: readonly Sweep[] | undefined): SweepFeed {
    return new SweepFeed({ sweeps: sweeps ?? [], next: (sweeps ?? []).map(() => 0) });
  }

  /** Points not fed yet. */
  get remaining(): number {
    return this.sweeps.reduce((n, sweep, i) => n + sweepSize(sweep) - this.next[i], 0);
  }

  /** Sweeps added to a running session (the addSweeps update), fed after those already held. */
  add(sweeps: readonly Sweep[]): void {
    for (const sweep of sweeps) {
      this.sweeps.push(sweep);
      this.next.push(0);
    }
    this.dropFed();
  }

  /**
   * The addSweeps validator's problem, or null: at most MAX_EXPERIMENTS points and
   * MAX_PENDING_SWEEPS sweeps held; each new stem its own, against the ids the session holds, the
   * sweeps it still feeds and each other; and no point's id one that a folded row had.
   */
  addProblem(sweeps: readonly Sweep[], heldIds: readonly string[], folded: FoldedRows | undefined): string | null {
    const points = sweeps.reduce((n, s) => n + sweepSize(s), 0);
    if (points > MAX_EXPERIMENTS) return `sweeps: expected at most ${MAX_EXPERIMENTS} experiments with every sweep point counted, received ${points}`;
    if (this.sweeps.length + sweeps.length > MAX_PENDING_SWEEPS) {
      return `sweeps: expected at most ${MAX_PENDING_SWEEPS} sweeps with points left in one session, received ${sweeps.length} more next to ${this.sweeps.length}`;
    }
    const held = this.sweeps.length;
    const name = (k: number) => (k < held ? 'a sweep this session still feeds' : `sweeps[${k - held}]`);
    const issue = sweepStemIssues(heldIds, [...this.sweeps, ...sweeps], name).find((i) => i.index >= held);
    if (issue) return `${name(issue.index)}.idPrefix: ${issue.message}`;
    for (const [k, sweep] of sweeps.entries()) {
      const size = sweepSize(sweep);
      const at = firstFolded(folded, (function* () {
        for (let n = 0; n < size; n++) yield sweepPointAt(sweep, n).spec.id;
      })());
      if (at !== -1) {
        return `sweeps[${k}].idPrefix: expected ids this session has not used, received point ${at} ${JSON.stringify(sweepPointAt(sweep, at).spec.id)}, which an ended experiment of this session had (folded at continue-as-new)`;
      }
    }
    return null;
  }

  /** The next `count` points (fewer when the sweeps run out), as specs, in order. */
  take(count: number): ExperimentSpec[] {
    const specs: ExperimentSpec[] = [];
    while (specs.length < count && this.sweeps.length > 0) {
      const sweep = this.sweeps[0];
      specs.push(sweepPointAt(sweep, this.next[0]).spec);
      this.next[0]++;
      this.dropFed();
    }
    return specs;
  }

  /**
   * The addExperiments validator's problem with ids under the stem of a sweep that still has
   * points to give, or null.
   */
  idProblem(specs: readonly unknown[]): string | null {
    for (const [i, spec] of specs.entries()) {
      const id = (spec as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') continue;
      const sweep = this.sweeps.find((s) => id.startsWith(sweepIdStem(s)));
      if (sweep) {
        return `experiments[${i}].id: expected an id outside "${sweepIdStem(sweep)}…", which this session's sweep ${JSON.stringify(sweep.idPrefix)} still gives to experiments it has not started, received ${JSON.stringify(id)}`;
      }
    }
    return null;
  }

  /**
   * A fed row that needs an approval the session does not have: unfed points count as submitted
   * with the sweep, so it waits from when the first such point did (approvalTimeout is
   * sweep-wide), or is rejected at once after a `reject` of the session (until an approval).
   */
  gate(row: SessionRow, approved: boolean, now: number): void {
    if (approved || row.state !== 'queued' || row.timeoutMode !== 'none') return;
    if (this.rejected !== undefined) {
      row.state = 'rejected';
      row.reason = this.rejected;
      return;
    }
    this.waitingSince ??= now;
    row.state = 'awaiting-approval';
    row.awaitingSince = this.waitingSince;
  }

  /** A `reject` of the session: the long-running points still to feed are rejected with `reason`. */
  reject(reason: string): void {
    this.rejected = reason;
  }

  /** An approval: nothing waits any more. */
  approved(): void {
    this.rejected = undefined;
    this.waitingSince = undefined;
  }

  /** The carry: undefined once every point was fed. */
  get state(): SweepFeedState | undefined {
    if (this.sweeps.length === 0) return undefined;
    return {
      sweeps: [...this.sweeps],
      next: [...this.next],
      ...(this.waitingSince !== undefined && { waitingSince: this.waitingSince }),
      ...(this.rejected !== undefined && { rejected: this.rejected }),
    };
  }

  private dropFed(): void {
    while (this.sweeps.length > 0 && this.next[0] >= sweepSize(this.sweeps[0])) {
      this.sweeps.shift();
      this.next.shift();
    }
  }
}
