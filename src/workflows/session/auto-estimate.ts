/**
 * `estimatedDuration: "auto"`, the session side, pure: a child that profiled and projected more
 * than longRunningThreshold ends `awaiting-approval` with `estimatedDurationMs`. Its row then
 * becomes an ordinary long-running row (timeout mode `none`, the estimate as its
 * `estimatedDuration`, so the approval audit records it) that resumes from the profiling
 * checkpoint (`resumeFrom` its own store key) once the session is approved. When it ends, its
 * status gets the estimate and the training time of both runs.
 */
import type { SessionRow } from '../../shared/definitions';
import { storeKey } from '../../shared/ids';
import type { ExperimentSpec, ExperimentStatus } from '../../shared/types';

/** Patch: a profiled `auto` row is started again, long-running, after approval. */
export const AUTO_ESTIMATE_SESSION = 'session-auto-estimate-requeue';

/** Whether `status` is a profiled child's request for approval of an `auto` row. */
export function isProfiledRequest(row: SessionRow, status: ExperimentStatus): boolean {
  return row.spec.estimatedDuration === 'auto' && status.state === 'awaiting-approval' && typeof status.estimatedDurationMs === 'number';
}

/** Turns the row into a long-running one waiting for approval, resuming from the profiling checkpoint. */
export function requeueProfiled(sessionId: string, row: SessionRow, status: ExperimentStatus): void {
  const spec: ExperimentSpec = {
    ...row.spec,
    estimatedDuration: `${status.estimatedDurationMs}ms`,
    resumeFrom: { experiment: storeKey(sessionId, row.spec.id) },
  };
  Object.assign(row, { spec, state: 'queued', timeoutMode: 'none', awaitingSince: null, status, reason: status.reason });
}

/** The final status of a row that was profiled: the estimate kept, both runs' training time summed. */
export function withEstimate(previous: ExperimentStatus | null, next: ExperimentStatus): ExperimentStatus {
  if (typeof previous?.estimatedDurationMs !== 'number' || next.estimatedDurationMs !== undefined) return next;
  return {
    ...next,
    estimatedDurationMs: previous.estimatedDurationMs,
    actualDurationMs: (previous.actualDurationMs ?? 0) + (next.actualDurationMs ?? 0),
    ...(previous.hardwareClass && !next.hardwareClass ? { hardwareClass: previous.hardwareClass } : {}),
  };
}
