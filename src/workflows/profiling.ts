/**
 * `estimatedDuration: "auto"`, the experiment side: one profiling invocation of the training
 * activity (TrainInput.profile) that trains for the policy's short window, checkpoints and
 * reports its step rate; the projection is the trainer's total steps at that rate. Above the
 * session's longRunningThreshold the experiment ends `awaiting-approval` with the estimate and
 * its session restarts it long-running from the profiling checkpoint once approved (see
 * session/auto-estimate.ts); otherwise it goes on at once, bounded, from the same checkpoint.
 * Workflow sandbox code.
 */
import { formatDuration } from '../shared/duration';
import type { TrainInput } from '../shared/definitions';
import type { ProfileMeasurement, TrainingOutcome } from '../shared/types';

/** Patch: `auto` experiments profile first (a new invocation with TrainInput.profile). */
export const AUTO_ESTIMATE = 'experiment-auto-estimate';

export interface Profiled {
  readonly outcome: TrainingOutcome;
  /** The projected total, or null when the window measured no rate (it ended too soon). */
  readonly estimatedMs: number | null;
}

/**
 * Total training time projected from a profiling measurement, in ms: the profiling run's own time
 * plus the steps left at the measured rate; null without a rate or total.
 */
export function projectMs(m: ProfileMeasurement | undefined): number | null {
  if (!m || m.totalSteps === null || !(m.stepsPerSecond > 0)) return null;
  const left = Math.max(0, m.totalSteps - m.steps);
  return Math.round((m.elapsedMs ?? 0) + (left / m.stepsPerSecond) * 1000);
}

/** `est. 6h10m on gpu-h100x8`, as shown while the experiment waits for approval. */
export function estimateText(estimatedMs: number, hardwareClass: string | null | undefined): string {
  return `est. ${formatDuration(estimatedMs)} on ${hardwareClass ?? 'an unprofiled worker'}`;
}

/** Runs the profiling invocation through `run` (the preemption loop) and projects the total. */
export async function profileRun(run: (input: TrainInput) => Promise<TrainingOutcome>, trainInput: TrainInput, window: TrainInput['profile']): Promise<Profiled> {
  const outcome = await run({ ...trainInput, profile: window });
  return { outcome, estimatedMs: projectMs(outcome.profile) };
}

/** Whether the profiling invocation stopped for its window (not for a cancel, or by completing). */
export const stoppedForProfile = (o: TrainingOutcome): boolean => o.status === 'interrupted' && o.interruptReason === 'profiled';
