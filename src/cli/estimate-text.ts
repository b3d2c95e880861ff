/** How `status` and the run report show an `auto` estimate beside the actual training time. */
import { formatDuration } from '../shared/duration';
import type { ExperimentStatus } from '../shared/types';

/** `est. 4s, actual 5s (+12%)`; `est. 4s` before it ran; null without an estimate. */
export function estimateVsActual(e: Pick<ExperimentStatus, 'estimatedDurationMs' | 'actualDurationMs' | 'hardwareClass'>): string | null {
  if (e.estimatedDurationMs === undefined) return null;
  const on = e.hardwareClass ? ` on ${e.hardwareClass}` : '';
  const est = `est. ${formatDuration(e.estimatedDurationMs)}${on}`;
  if (e.actualDurationMs === undefined || e.actualDurationMs <= 0) return est;
  const gap = Math.round((100 * (e.actualDurationMs - e.estimatedDurationMs)) / e.estimatedDurationMs);
  return `${est}, actual ${formatDuration(e.actualDurationMs)} (${gap >= 0 ? '+' : ''}${gap}%)`;
}
