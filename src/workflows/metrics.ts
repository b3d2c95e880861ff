/**
 * Metrics the workflows emit (through the worker's Runtime meter, see src/shared/metric-names.ts):
 * preemptions, counted once the experiment workflow learns of one, and the session's experiments
 * by state. The SDK drops workflow metrics during replay, so a replayed history counts nothing
 * twice. They issue no commands: no patch, no history events.
 */
import { metricMeter } from '@temporalio/workflow';
import { METRICS } from '../shared/metric-names';

export function countPreemption(session: string, trainer: string): void {
  metricMeter.createCounter(METRICS.preemptions, 'preemptions', 'Worker shutdowns a training went through').add(1, { session, trainer });
}

/**
 * Sets the experiments-by-state gauge of a session whenever the counts change; a state that
 * emptied is set to 0, not left at its old count. Returns the counts for the next call.
 */
export function publishStateCounts(session: string, states: readonly string[], previous: ReadonlyMap<string, number>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  const changed = [...new Set([...previous.keys(), ...counts.keys()])].filter((s) => previous.get(s) !== counts.get(s));
  if (changed.length === 0) return new Map(previous);
  const gauge = metricMeter.createGauge(METRICS.experimentsByState, 'int', 'experiments', 'Experiments of a session in each state');
  for (const s of changed) gauge.set(counts.get(s) ?? 0, { session, state: s });
  for (const s of previous.keys()) if (!counts.has(s)) counts.set(s, 0);
  return counts;
}
