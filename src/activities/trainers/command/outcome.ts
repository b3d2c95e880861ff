/**
 * How a child's end becomes an outcome: the exit table of docs/trainer-protocol.md section 9 as
 * one pure function, so every row is unit-tested without a process.
 */
import type { Metrics } from '../../../shared/types';
import type { TrainerResultInput } from '../../trainer';
import type { Position } from './protocol';

/** Exit code by which a program says "do not retry" (section 9). */
export const EXIT_NONRETRYABLE = 3;

/** What the child said about how it ended; the outcome is decided from this plus its exit. */
export interface ChildReport {
  result?: { metrics: Metrics; modelSha256: string | undefined };
  interrupted?: Position;
  fatal?: string;
  /** Protocol violations worth repeating in a failure message (an invalid result line). */
  readonly violations: string[];
}

export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The plugin sent SIGTERM (and maybe SIGKILL after the grace period). */
  readonly asked: boolean;
  readonly report: ChildReport;
  readonly stderrTail: readonly string[];
  /** The registered program's name. */
  readonly program: string;
}

export type Decision =
  | { readonly kind: 'completed'; readonly result: TrainerResultInput }
  | { readonly kind: 'interrupted' }
  | { readonly kind: 'failed'; readonly retryable: boolean; readonly type: string; readonly message: string };

function withTail(message: string, tail: readonly string[]): string {
  if (tail.length === 0) return `${message} (nothing on stderr)`;
  return `${message}; last ${tail.length === 1 ? 'line' : `${tail.length} lines`} of stderr:\n${tail.join('\n')}`;
}

export function decideOutcome(end: ChildEnd): Decision {
  const { code, signal, asked, report, stderrTail } = end;
  const who = `trainer (program ${end.program})`;
  const fail = (retryable: boolean, type: string, message: string): Decision => ({ kind: 'failed', retryable, type, message });
  if (report.fatal !== undefined) return fail(false, 'TrainerFatal', report.fatal);
  if (code === 0 && report.result) {
    const { metrics, modelSha256 } = report.result;
    return { kind: 'completed', result: { finalLoss: metrics.loss, accuracy: metrics.accuracy, modelSha256, metrics } };
  }
  if (code === EXIT_NONRETRYABLE) return fail(false, 'TrainerFatal', withTail(`${who} exited with code ${EXIT_NONRETRYABLE}`, stderrTail));
  // We asked it to stop: however it went (interrupted line, our SIGKILL, a non-zero exit from a
  // program without a SIGTERM handler), the run stopped because we asked; the runtime maps the reason.
  if (asked) return { kind: 'interrupted' };
  if (signal !== null) return fail(true, 'TrainerCrashed', withTail(`${who} was killed by ${signal}`, stderrTail));
  if (code === 0 && report.interrupted) {
    const at = `epoch ${report.interrupted.epoch} step ${report.interrupted.step}`;
    return fail(true, 'TrainerCrashed', withTail(`${who} stopped at ${at} on a signal the plugin did not send (another process signalled it)`, stderrTail));
  }
  if (code === 0) {
    const why = report.violations.length > 0 ? ` (${report.violations.join('; ')})` : '';
    return fail(false, 'TrainerProtocol', withTail(`${who} exited with code 0 without a result line${why}`, stderrTail));
  }
  const after = report.result ? ' after printing its result (the retry resumes from the final checkpoint)' : '';
  return fail(true, 'TrainerCrashed', withTail(`${who} exited with code ${String(code)}${after}`, stderrTail));
}
