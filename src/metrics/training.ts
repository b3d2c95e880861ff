/**
 * The training activity's metrics (Node side): steps, epochs, epoch duration, checkpoint writes,
 * resumes and interruptions, recorded on a Temporal MetricMeter (the Runtime's, so they come out
 * of its Prometheus exporter; see exporter.ts). One `TrainingMetrics` per worker; each training
 * attempt takes a `RunMetrics` bound to its bounded labels (session, trainer).
 *
 * Progress arrives as (epoch, step-within-epoch) reports; `ProgressTally` turns them into step
 * and epoch increments, pure, so it is tested without a meter.
 */
import type { MetricCounter, MetricHistogram, MetricMeter } from '@temporalio/common';
import type { InterruptReason } from '../shared/types';
import { METRICS } from '../shared/metric-names';

/** Increments derived from one progress report. */
export interface ProgressDelta {
  readonly steps: number;
  readonly epochs: number;
  /** Seconds of the epoch that just ended, when this attempt saw it start; else null. */
  readonly epochSeconds: number | null;
}

/**
 * Steps and epochs between successive (epoch, step) reports of one attempt. An epoch's duration
 * is known only when its start was seen here: the epoch a resumed attempt starts in mid-way is
 * not timed.
 */
export class ProgressTally {
  private epochStartedAt: number | null;
  constructor(
    private epoch: number,
    private step: number,
    now: number,
  ) {
    this.epochStartedAt = step === 0 ? now : null;
  }

  /** `now` in milliseconds (performance.now()). Reports going backwards count nothing. */
  observe(epoch: number, step: number, now: number): ProgressDelta {
    if (epoch < this.epoch || (epoch === this.epoch && step <= this.step)) return { steps: 0, epochs: 0, epochSeconds: null };
    if (epoch === this.epoch) {
      const steps = step - this.step;
      this.step = step;
      return { steps, epochs: 0, epochSeconds: null };
    }
    const epochs = epoch - this.epoch;
    // One epoch ended: it is timed if its start was seen. Several at once: none is timed exactly.
    const epochSeconds = epochs === 1 && this.epochStartedAt !== null ? (now - this.epochStartedAt) / 1000 : null;
    this.epoch = epoch;
    this.step = step;
    this.epochStartedAt = step === 0 ? now : null;
    return { steps: step, epochs, epochSeconds };
  }
}

/** The metrics of one training attempt, labelled with its session and trainer. */
export interface RunMetrics {
  /** A step or checkpoint report at (epoch, step within it). */
  progress(epoch: number, step: number): void;
  /** A durable checkpoint write took `seconds` and wrote `bytes`. */
  checkpoint(seconds: number, bytes: number): void;
  /** The attempt resumed from a checkpoint. */
  resumed(): void;
  interrupted(reason: InterruptReason): void;
}

interface Instruments {
  readonly steps: MetricCounter;
  readonly epochs: MetricCounter;
  readonly epochDuration: MetricHistogram;
  readonly checkpoints: MetricCounter;
  readonly checkpointWrite: MetricHistogram;
  readonly checkpointBytes: MetricCounter;
  readonly resumes: MetricCounter;
  readonly interruptions: MetricCounter;
}

function instruments(meter: MetricMeter): Instruments {
  return {
    steps: meter.createCounter(METRICS.steps, 'steps', 'Training steps done'),
    epochs: meter.createCounter(METRICS.epochs, 'epochs', 'Training epochs completed'),
    epochDuration: meter.createHistogram(METRICS.epochDuration, 'float', 's', 'Wall time of an epoch trained from its start on this worker'),
    checkpoints: meter.createCounter(METRICS.checkpoints, 'checkpoints', 'Checkpoints written'),
    checkpointWrite: meter.createHistogram(METRICS.checkpointWriteDuration, 'float', 's', 'Time to write a checkpoint durably'),
    checkpointBytes: meter.createCounter(METRICS.checkpointBytes, 'bytes', 'Bytes of checkpoints written'),
    resumes: meter.createCounter(METRICS.resumes, 'resumes', 'Training attempts that resumed from a checkpoint'),
    interruptions: meter.createCounter(METRICS.interruptions, 'interruptions', 'Trainings interrupted on this worker, by reason'),
  };
}

export class TrainingMetrics {
  private made: Instruments | undefined;

  /**
   * `meter` may be a function, called at the first training: the plugin is built before the
   * Runtime that owns the meter may exist, and asking for it early would create a default one.
   */
  constructor(private readonly meter: MetricMeter | (() => MetricMeter)) {}

  /** A recorder for one attempt, starting at (epoch, step). */
  forRun(labels: { session: string; trainer: string }, epoch: number, step: number): RunMetrics {
    const m = (this.made ??= instruments(typeof this.meter === 'function' ? this.meter() : this.meter));
    const tags = { session: labels.session, trainer: labels.trainer };
    const tally = new ProgressTally(epoch, step, performance.now());
    return {
      progress: (e, s) => {
        const d = tally.observe(e, s, performance.now());
        if (d.steps > 0) m.steps.add(d.steps, tags);
        if (d.epochs > 0) m.epochs.add(d.epochs, tags);
        if (d.epochSeconds !== null) m.epochDuration.record(d.epochSeconds, tags);
      },
      checkpoint: (seconds, bytes) => {
        m.checkpoints.add(1, tags);
        m.checkpointWrite.record(seconds, tags);
        if (bytes > 0) m.checkpointBytes.add(bytes, tags);
      },
      resumed: () => m.resumes.add(1, tags),
      interrupted: (reason) => m.interruptions.add(1, { ...tags, reason }),
    };
  }
}
