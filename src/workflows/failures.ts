/**
 * Classifies the errors a training activity can end with. Branches on failure names and
 * types rather than `instanceof`, which does not hold across the sandbox boundary.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure, isCancellation } from '@temporalio/workflow';

export interface FailureDescription {
  readonly message: string;
  readonly timedOut: boolean;
  /** Attempt number reported in the failure's details, when the activity put one there. */
  readonly attempt: number | null;
}

export function describeFailure(err: unknown): FailureDescription {
  if (isCancellation(err)) return { message: 'cancelled', timedOut: false, attempt: null };
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof TimeoutFailure) {
    const kind = String(cause.timeoutType ?? '').replace(/^TIMEOUT_TYPE_/, '').toLowerCase().replace(/_/g, '-');
    // A heartbeat timeout that used up the retries is a dead worker, not a slow experiment.
    const timedOut = kind !== 'heartbeat';
    return { message: `activity ${kind || 'timeout'} timeout${timedOut ? '' : ' on the last allowed attempt'}`, timedOut, attempt: null };
  }
  if (cause instanceof ApplicationFailure) {
    const detail = cause.details?.[0] as { attempt?: unknown } | undefined;
    const attempt = typeof detail?.attempt === 'number' ? detail.attempt : null;
    return { message: cause.message, timedOut: cause.type === 'ExperimentTimedOut', attempt };
  }
  return { message: err instanceof Error ? err.message : String(err), timedOut: false, attempt: null };
}
