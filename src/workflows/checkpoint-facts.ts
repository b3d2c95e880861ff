/**
 * A one-activity workflow a client starts to learn about an experiment's checkpoints from a worker
 * that can reach the store (hints, resume, `run --resume` on a machine without it). It issues no
 * other commands and keeps no state.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CheckpointFacts, CheckpointFactsInput } from '../shared/definitions';

const { describeCheckpoints } = proxyActivities<Activities>({
  // Verifying reads every candidate blob; a large one over a slow link takes a while.
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

export async function checkpointFactsWorkflow(input: CheckpointFactsInput): Promise<CheckpointFacts> {
  return describeCheckpoints(input);
}
