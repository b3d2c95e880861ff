/**
 * The two signals of a search: a trial's report at a gate epoch (experiment → session) and the
 * session's decision (session → experiment). Both workflows import these same definitions.
 */
import { defineSignal } from '@temporalio/workflow';
import type { SearchDecision, TrialReport } from './types';

/** An experiment of a search session reached a gate epoch: its metrics there. */
export const trialReportSignal = defineSignal<[TrialReport]>('trialReport');
/** The session's decision for a trial at a gate epoch: continue, or prune. */
export const searchDecisionSignal = defineSignal<[SearchDecision]>('searchDecision');
