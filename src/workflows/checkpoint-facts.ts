/**
 * One-activity workflows a client starts to learn about checkpoints from a worker that can reach
 * the store (hints, resume, `run --resume` on a machine without it): the facts of one experiment,
 * or the checkpoint counts of many. They issue no other commands and keep no state.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import { idProblem } from '../shared/ids';
import type { Activities } from '../activities';
import { MAX_COUNTED_EXPERIMENTS, type CheckpointCountsInput, type CheckpointFacts, type CheckpointFactsInput } from '../shared/definitions';

const { describeCheckpoints } = proxyActivities<Activities>({
  // Verifying reads every candidate blob; a large one over a slow link takes a while.
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});
const { countCheckpoints } = proxyActivities<Activities>({
  // It heartbeats after each experiment's manifest.
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

export async function checkpointFactsWorkflow(input: CheckpointFactsInput): Promise<CheckpointFacts> {
  return describeCheckpoints(input);
}

export async function checkpointCountsWorkflow(input: CheckpointCountsInput): Promise<Record<string, number>> {
  const ids = Array.isArray(input?.experimentIds) ? input.experimentIds.filter((id): id is string => typeof id === 'string') : [];
  const bad = typeof input?.sessionId !== 'string' || idProblem('sessionId', input.sessionId) !== undefined || ids.some((id) => idProblem('experimentId', id) !== undefined);
  if (bad || ids.length > MAX_COUNTED_EXPERIMENTS) {
    throw ApplicationFailure.nonRetryable(`checkpointCounts: expected { sessionId, experimentIds: at most ${MAX_COUNTED_EXPERIMENTS} valid ids }`, 'InvalidInput');
  }
  return countCheckpoints({ sessionId: input.sessionId, experimentIds: ids });
}
