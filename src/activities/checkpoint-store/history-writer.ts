/**
 * Writes one training attempt's metric history (the layout is in history.ts):
 *
 * - `begin`, before training: the attempt's index entry, which records where it resumed and so
 *   rewinds the history of the attempts before it (src/shared/metric-history.ts). It must land
 *   before any point of this attempt, so a failure fails the attempt (it is retried).
 * - `step`, every trainer step: a step point at most every STEP_POINT_INTERVAL_MS, held in memory.
 * - `checkpoint`, before each checkpoint is saved: an end-of-epoch checkpoint (step 0) becomes an
 *   epoch point, written with the held step points in one batch BEFORE the checkpoint commits.
 *   Write-ahead: if the worker dies between the two, the next attempt resumes from the previous
 *   checkpoint and the point is rewound; the other order could lose the epoch's point for good.
 * - held step points are also written every FLUSH_INTERVAL_MS and by `close` (end of the attempt).
 *
 * So a run writes at most one batch per checkpoint plus one per FLUSH_INTERVAL_MS. Step points not
 * yet written when a worker dies are lost (they are samples); epoch points never are. A failed
 * point write is logged and training goes on: metrics never fail a training run.
 */
import type { Logger } from 'pino';
import { comparePosition, type HistoryAttempt, type MetricPoint, type Position } from '../../shared/metric-history';
import type { CheckpointPointer, Metrics } from '../../shared/types';
import { attemptName, nextRestart, pointsName, type HistoryObjects, type StartToken } from './history';
import { finiteMetrics } from './manifest';

/** Least time between two step points of one attempt, in ms. */
export const STEP_POINT_INTERVAL_MS = 1000;
/** Longest time step points are held in memory before they are written, in ms. */
export const FLUSH_INTERVAL_MS = 30_000;
/** Most step points held; older ones are dropped first if writes keep failing. */
const MAX_HELD = 2000;

export interface HistoryWriterOptions {
  /** @default STEP_POINT_INTERVAL_MS */
  readonly stepIntervalMs?: number;
  /** @default FLUSH_INTERVAL_MS */
  readonly flushIntervalMs?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

export class MetricHistoryWriter {
  private token: StartToken;
  private readonly stepIntervalMs: number;
  private readonly flushIntervalMs: number;
  private readonly now: () => Date;
  private held: MetricPoint[] = [];
  private seq = 0;
  private lastStepMs = -Infinity;
  private lastFlushMs = performance.now();
  private resumedAt: Position = { epoch: 0, step: 0 };
  private lastEpoch = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly objects: HistoryObjects | undefined,
    private readonly key: string,
    private readonly runId: string | undefined,
    token: { invocation: number; attempt: number },
    private readonly log: Logger,
    options: HistoryWriterOptions = {},
  ) {
    this.token = { invocation: token.invocation, attempt: token.attempt, restart: 0 };
    this.stepIntervalMs = options.stepIntervalMs ?? STEP_POINT_INTERVAL_MS;
    this.flushIntervalMs = options.flushIntervalMs ?? FLUSH_INTERVAL_MS;
    this.now = options.now ?? (() => new Date());
  }

  /** Records where this attempt starts; throws when the index entry cannot be written. */
  async begin(resume: CheckpointPointer | undefined): Promise<void> {
    if (resume) this.resumedAt = { epoch: resume.epoch, step: resume.step };
    this.lastEpoch = this.resumedAt.epoch;
    if (!this.objects) return;
    // The fence lets the current token register again; such a start gets its own part.
    this.token = { ...this.token, restart: nextRestart(await this.objects.list(this.key, this.runId), this.token) };
    const entry: HistoryAttempt = {
      ...this.token,
      resumedAt: resume ? this.resumedAt : null,
      checkpointId: resume?.checkpointId ?? null,
      startedAt: this.now().toISOString(),
    };
    await this.objects.create(this.key, this.runId, attemptName(this.token), Buffer.from(JSON.stringify(entry) + '\n'));
  }

  /** A trainer step: sampled into a held step point; written in the background now and then. */
  step(report: { epoch: number; step: number; metrics?: Metrics }): void {
    if (!this.objects || !report.metrics) return;
    const nowMs = performance.now();
    if (nowMs - this.lastStepMs < this.stepIntervalMs) return;
    if (comparePosition({ epoch: report.epoch, step: report.step }, this.resumedAt) <= 0) return;
    const metrics = finiteMetrics(report.metrics);
    if (Object.keys(metrics).length === 0) return;
    this.lastStepMs = nowMs;
    this.held.push(this.point('step', report.epoch, report.step, metrics));
    if (this.held.length > MAX_HELD) this.held.splice(0, this.held.length - MAX_HELD);
    if (nowMs - this.lastFlushMs >= this.flushIntervalMs) void this.flush();
  }

  /** Before a checkpoint is saved: its epoch point (at an epoch's end) and the held points. */
  async checkpoint(c: { epoch: number; step: number; metrics?: Metrics }): Promise<void> {
    if (!this.objects) return;
    const metrics = finiteMetrics(c.metrics);
    if (c.step === 0 && c.epoch > this.lastEpoch && Object.keys(metrics).length > 0) {
      this.lastEpoch = c.epoch;
      this.held.push(this.point('epoch', c.epoch, null, metrics));
    }
    await this.flush();
  }

  /** Writes what is held; waits for every write started before. */
  async close(): Promise<void> {
    await this.flush();
  }

  private point(kind: MetricPoint['kind'], epoch: number, step: number | null, metrics: Record<string, number>): MetricPoint {
    return { kind, epoch, step, attempt: this.token.attempt, invocation: this.token.invocation, time: this.now().toISOString(), metrics };
  }

  /** Writes are chained, so batches are numbered and land in the order they were taken. */
  private flush(): Promise<void> {
    this.lastFlushMs = performance.now();
    const batch = this.held;
    this.held = [];
    if (batch.length === 0 || !this.objects) return this.chain;
    const objects = this.objects;
    const name = pointsName(this.token, this.seq++);
    const body = Buffer.from(batch.map((p) => JSON.stringify(p)).join('\n') + '\n');
    this.chain = this.chain.then(() =>
      objects.create(this.key, this.runId, name, body).catch((err: unknown) => {
        this.log.warn({ err, points: batch.length, object: name }, 'metric history: could not write points; training goes on without them');
      }),
    );
    return this.chain;
  }
}
