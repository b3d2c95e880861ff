/**
 * The experiment side of a search: training in segments between gate epochs. Each segment is a
 * training invocation with `stopAtEpoch`; at the gate the trial has checkpointed, reports its
 * metrics to the session and waits for the session's decision, then trains on (resuming from
 * that checkpoint) or ends pruned. The worker is free while the trial waits. The trainer knows
 * nothing of this: the activity runtime stops it after the gate epoch's checkpoint.
 */
import { condition, getExternalWorkflowHandle, log, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ExperimentInput, TrainInput } from '../../shared/definitions';
import { nextGate } from '../../shared/search/decide';
import { searchDecisionSignal, trialReportSignal } from '../../shared/search/definitions';
import type { ResolvedSearch, SearchDecision } from '../../shared/search/types';
import type { TrainingOutcome } from '../../shared/types';

/** Patch: experiments of a search session train in segments between gates and can end `pruned`. */
export const SEARCH_GATES_PATCH = 'experiment-search-gates';

export interface GatedOutcome {
  readonly outcome: TrainingOutcome;
  /** The decision that pruned the trial, or null. */
  readonly pruned: SearchDecision | null;
}

/** Installs the decision handler; `run` then trains through the gates. */
export class TrialGates {
  private readonly decisions = new Map<number, SearchDecision>();

  constructor(
    private readonly input: ExperimentInput & { readonly parentWorkflowId: string },
    private readonly search: ResolvedSearch,
  ) {
    setHandler(searchDecisionSignal, (payload: unknown) => {
      const d = payload as Partial<SearchDecision> | null | undefined;
      if (d && typeof d.epoch === 'number' && (d.action === 'continue' || d.action === 'prune') && d.experimentId === input.spec.id) {
        this.decisions.set(d.epoch, { experimentId: input.spec.id, epoch: d.epoch, action: d.action, rung: typeof d.rung === 'number' ? d.rung : null, reason: String(d.reason ?? '') });
      } else {
        log.warn('searchDecision signal ignored: expected {experimentId, epoch, action: "continue"|"prune"} for this experiment', { experimentId: input.spec.id });
      }
    });
  }

  /** Segments until one ends other than at a gate, or the session prunes the trial. */
  async run(trainInput: TrainInput, segment: (input: TrainInput) => Promise<TrainingOutcome>): Promise<GatedOutcome> {
    const { spec } = this.input;
    const parent = getExternalWorkflowHandle(this.input.parentWorkflowId);
    let done = 0;
    let resumedFrom: number | null | undefined;
    for (;;) {
      const gate = nextGate(this.search, done);
      const trained = await segment(gate === null ? trainInput : { ...trainInput, stopAtEpoch: gate });
      // The run resumed from where its first segment did, not from the last gate.
      resumedFrom ??= trained.resumedFrom;
      const outcome = { ...trained, resumedFrom };
      if (outcome.status !== 'interrupted' || outcome.interruptReason !== 'gate' || !outcome.latest) return { outcome, pruned: null };
      const epoch = outcome.latest.epoch;
      await parent.signal(trialReportSignal, { experimentId: spec.id, runId: workflowInfo().runId, epoch, metrics: outcome.latest.metrics });
      await condition(() => this.decisions.has(epoch));
      const decision = this.decisions.get(epoch) as SearchDecision;
      log.info(`search: ${decision.action} at epoch ${epoch}`, { experimentId: spec.id, epoch, rung: decision.rung, reason: decision.reason });
      if (decision.action === 'prune') return { outcome, pruned: decision };
      done = epoch;
    }
  }
}
