/**
 * The session side of a search: takes the trials' gate reports, asks the pure schedulers
 * (src/shared/search/decide.ts) for the decisions that became possible, and signals each to its
 * trial. The decision state is plain data, carried across continue-as-new.
 */
import { getExternalWorkflowHandle, log } from '@temporalio/workflow';
import type { SessionRow } from '../../shared/definitions';
import { experimentWorkflowId } from '../../shared/ids';
import { recordReport, takeDecisions, type SearchState, type TrialView } from '../../shared/search/decide';
import { searchDecisionSignal } from '../../shared/search/definitions';
import type { ResolvedSearch, SearchDecision, TrialReport } from '../../shared/search/types';
import type { ChildRecord } from './scheduler';
import { isTerminal } from './scheduler';

/** Patch: a session with a `search` policy takes gate reports and sends decisions. */
export const SEARCH_SCHEDULER_PATCH = 'session-search-scheduler';

export class SessionSearch {
  private warnedMissing = false;

  constructor(
    private readonly sessionId: string,
    private readonly search: ResolvedSearch,
    readonly state: SearchState,
    private readonly rows: ReadonlyMap<string, SessionRow>,
    private readonly children: ReadonlyMap<string, ChildRecord>,
  ) {}

  /** A trialReport signal: accepted only from the child run this session started. Never throws. */
  onReport(payload: unknown): void {
    const r = (payload ?? {}) as Partial<TrialReport>;
    const child = typeof r.experimentId === 'string' ? this.children.get(r.experimentId) : undefined;
    const problem = !child
      ? 'experimentId: expected a child of this session'
      : r.runId !== child.runId
        ? 'runId: expected the run id of the child this session started'
        : !Number.isInteger(r.epoch) || (r.epoch as number) < 1
          ? 'epoch: expected a positive integer'
          : !r.metrics || typeof r.metrics !== 'object'
            ? 'metrics: expected an object of numbers'
            : null;
    if (problem) {
      log.warn(`trialReport signal ignored: ${problem}`, { sessionId: this.sessionId, received: JSON.stringify(payload)?.slice(0, 200) });
      return;
    }
    const report = r as TrialReport;
    const { already, missing } = recordReport(this.state, this.search, report);
    if (missing && !this.warnedMissing) {
      this.warnedMissing = true;
      log.warn(`search.metric ${JSON.stringify(this.search.metric)}: experiment ${report.experimentId} reported no such metric at epoch ${report.epoch} (it reports: ${Object.keys(report.metrics).join(', ') || 'none'}); trials without it are not pruned`, {
        sessionId: this.sessionId,
        experimentId: report.experimentId,
      });
    }
    if (already) this.send(already);
    else this.dispatch();
  }

  /** Sends every decision that became possible (after a report, or after a trial ended). */
  dispatch(): void {
    const trials: TrialView[] = [...this.rows.values()].map((row) => ({
      id: row.spec.id,
      phase: isTerminal(row) ? 'ended' : row.state === 'queued' || row.state === 'awaiting-approval' ? 'waiting' : 'running',
    }));
    for (const decision of takeDecisions(this.state, this.search, trials)) {
      log.info(`search decision: ${decision.action} ${decision.experimentId}`, { sessionId: this.sessionId, experimentId: decision.experimentId, epoch: decision.epoch, rung: decision.rung, reason: decision.reason });
      this.send(decision);
    }
  }

  private send(decision: SearchDecision): void {
    const runId = this.children.get(decision.experimentId)?.runId ?? undefined;
    const handle = getExternalWorkflowHandle(experimentWorkflowId(this.sessionId, decision.experimentId), runId);
    handle.signal(searchDecisionSignal, decision).catch((err: unknown) => {
      log.warn('search decision not delivered: the trial has ended', { sessionId: this.sessionId, experimentId: decision.experimentId, error: (err as Error).message });
    });
  }
}
