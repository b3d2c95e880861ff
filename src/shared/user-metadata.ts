/**
 * The Temporal UI's user metadata for our workflows and the training activity: one-line static
 * summaries (what the workflow list shows next to the id) and markdown static details. Pure
 * text from the spec, so the workflow sandbox, the client and the tests build the same strings.
 * The live state (epoch, loss, checkpoint) stays in each workflow's current details.
 */
import { formatDuration } from './duration';
import type { ResolvedPolicy } from './policy';
import type { ExperimentSpec, TimeoutMode } from './types';

/** Longest summary; the UI truncates long ones anyway, the list must stay readable. */
export const MAX_SUMMARY_CHARS = 200;
const MAX_VALUE_CHARS = 32;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function valueText(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  // One line: newlines or pipes in a string param would break the list and the markdown table.
  return clip(text.replace(/[\r\n|]+/g, ' '), MAX_VALUE_CHARS);
}

/** `lr=0.05 hidden=16`, the params in the spec's order. */
export function paramsText(params: ExperimentSpec['params']): string {
  return Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${valueText(v)}`)
    .join(' ');
}

/** An experiment workflow's summary, e.g. `mlp lr=0.05 hidden=16 · bounded`. */
export function experimentSummary(spec: ExperimentSpec, mode: TimeoutMode): string {
  const params = paramsText(spec.params);
  const resumed = spec.resumeFrom ? ` · from ${spec.resumeFrom.experiment}` : '';
  return clip(`${spec.trainer}${params ? ` ${params}` : ''} · ${mode}${resumed}`, MAX_SUMMARY_CHARS);
}

/** The summary without param values, for search attributes of encrypted sessions: `mlp (lr, hidden) · bounded`. */
export function experimentListSummary(spec: ExperimentSpec, mode: TimeoutMode): string {
  const names = Object.keys(spec.params ?? {}).join(', ');
  return clip(`${spec.trainer}${names ? ` (${names})` : ''} · ${mode}`, MAX_SUMMARY_CHARS);
}

/** An experiment workflow's details: what it trains, in which session, under which limits. */
export function experimentDetails(spec: ExperimentSpec, sessionId: string, mode: TimeoutMode, policy: ResolvedPolicy): string {
  const rows: [string, string][] = [
    ['experiment', spec.id],
    ['session', sessionId],
    ['trainer', spec.trainer],
    ['mode', mode === 'bounded' ? `bounded (${formatDuration(policy.defaultTimeoutMs)} in total)` : 'long-running'],
  ];
  if (spec.estimatedDuration) rows.push(['estimated duration', spec.estimatedDuration]);
  if (spec.resumeFrom) rows.push(['resumes from', `${spec.resumeFrom.experiment}${spec.resumeFrom.checkpointId ? ` @ ${spec.resumeFrom.checkpointId}` : ''}`]);
  for (const [k, v] of Object.entries(spec.params ?? {})) rows.push([`param ${k}`, valueText(v)]);
  return ['| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

/** The training activity's summary: the same one line, and which invocation after preemptions. */
export function trainingSummary(spec: ExperimentSpec, invocation: number): string {
  const params = paramsText(spec.params);
  return clip(`train ${spec.trainer}${params ? ` ${params}` : ''}${invocation > 0 ? ` · invocation ${invocation + 1}` : ''}`, MAX_SUMMARY_CHARS);
}

/** A session workflow's summary, e.g. `session · 5 experiments · mlp`. */
export function sessionSummary(experiments: readonly ExperimentSpec[]): string {
  const trainers = [...new Set(experiments.map((e) => e.trainer))].join(', ');
  const n = experiments.length;
  return clip(`session · ${n} experiment${n === 1 ? '' : 's'}${trainers ? ` · ${trainers}` : ''}`, MAX_SUMMARY_CHARS);
}

/** A session workflow's details: its experiments, one line each, and the main limits. */
export function sessionDetails(experiments: readonly ExperimentSpec[], policy: ResolvedPolicy): string {
  const limits = `bounded experiments: ${formatDuration(policy.defaultTimeoutMs)} · long-running above ${formatDuration(policy.longRunningThresholdMs)} · ${policy.maxConcurrent} at once`;
  const shown = experiments.slice(0, 50).map((e) => `- **${e.id}**: ${e.trainer} ${paramsText(e.params)}`.trimEnd());
  const more = experiments.length > shown.length ? [`- … and ${experiments.length - shown.length} more`] : [];
  return [limits, '', ...shown, ...more].join('\n');
}
