/**
 * Classifies the errors a training activity can end with. Branches on failure names and
 * types rather than `instanceof`, which does not hold across the sandbox boundary.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure, isCancellation } from '@temporalio/workflow';

export interface FailureDescription {
  readonly message: string;
  readonly timedOut: boolean;
  /** Attempt number reported in the failure's details or the last heartbeat, when there is one. */
  readonly attempt: number | null;
}

export function describeFailure(err: unknown): FailureDescription {
  if (isCancellation(err)) return { message: 'cancelled', timedOut: false, attempt: null };
  const cause = err instanceof ActivityFailure ? err.cause : err;
  // The schedule-to-close bound (a bounded experiment's total limit) ran out, whatever the last attempt did.
  const outOfTime = err instanceof ActivityFailure && String(err.retryState).replace(/^RETRY_STATE_/, '') === 'TIMEOUT';
  if (cause instanceof TimeoutFailure) {
    const kind = String(cause.timeoutType ?? '').replace(/^TIMEOUT_TYPE_/, '').toLowerCase().replace(/_/g, '-');
    // A heartbeat timeout that used up the retries is a dead worker, not a slow experiment.
    const timedOut = kind !== 'heartbeat' || outOfTime;
    const beat = cause.lastHeartbeatDetails as { attempt?: unknown } | null | undefined;
    const attempt = typeof beat?.attempt === 'number' ? beat.attempt : null;
    return { message: `activity ${kind || 'timeout'} timeout${timedOut ? '' : ' on the last allowed attempt'}`, timedOut, attempt };
  }
  if (cause instanceof ApplicationFailure) {
    const detail = cause.details?.[0] as { attempt?: unknown } | undefined;
    const attempt = typeof detail?.attempt === 'number' ? detail.attempt : null;
    return { message: cause.message, timedOut: cause.type === 'ExperimentTimedOut' || outOfTime, attempt };
  }
  return { message: err instanceof Error ? err.message : String(err), timedOut: false, attempt: null };
}
