/**
 * What a worker tells a client about checkpoints, for client.ts: one-activity workflows on the
 * task queue (src/workflows/checkpoint-facts.ts), run by a worker that can reach the store, so the
 * caller needs neither the store nor its credentials. Each fails when no worker picks it up
 * within `timeoutMs`.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import {
  CHECKPOINT_COUNTS_WORKFLOW,
  CHECKPOINT_FACTS_WORKFLOW,
  MAX_COUNTED_EXPERIMENTS,
  type CheckpointCountsInput,
  type CheckpointFacts,
  type CheckpointFactsInput,
} from './shared/definitions';

const DEFAULT_TIMEOUT_MS = 60_000;
/** Count workflows in flight at once. */
const COUNT_LANES = 4;

/** Facts about one experiment's checkpoints, read and verified by a worker. */
export function checkpointFacts(client: Client, taskQueue: string, input: CheckpointFactsInput, options: { timeoutMs?: number } = {}): Promise<CheckpointFacts> {
  return client.workflow.execute<(i: CheckpointFactsInput) => Promise<CheckpointFacts>>(CHECKPOINT_FACTS_WORKFLOW, {
    taskQueue,
    workflowId: `checkpoint-facts-${input.sessionId}-${input.experimentId}-${randomUUID()}`,
    args: [{ sessionId: input.sessionId, experimentId: input.experimentId, ...(input.checkpointId ? { checkpointId: input.checkpointId } : {}) }],
    workflowExecutionTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}

/**
 * How many checkpoints each experiment of a session has in the store: one workflow per
 * MAX_COUNTED_EXPERIMENTS ids, COUNT_LANES at a time.
 */
export async function checkpointCounts(
  client: Client,
  taskQueue: string,
  sessionId: string,
  experimentIds: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<Map<string, number>> {
  const chunks: string[][] = [];
  for (let i = 0; i < experimentIds.length; i += MAX_COUNTED_EXPERIMENTS) chunks.push(experimentIds.slice(i, i + MAX_COUNTED_EXPERIMENTS));
  const counts = new Map<string, number>();
  let next = 0;
  const lanes = Array.from({ length: Math.min(COUNT_LANES, chunks.length) }, async () => {
    while (next < chunks.length) {
      const ids = chunks[next++];
      const got = await client.workflow.execute<(i: CheckpointCountsInput) => Promise<Record<string, number>>>(CHECKPOINT_COUNTS_WORKFLOW, {
        taskQueue,
        workflowId: `checkpoint-counts-${sessionId}-${randomUUID()}`,
        args: [{ sessionId, experimentIds: ids }],
        workflowExecutionTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      });
      for (const [id, n] of Object.entries(got)) counts.set(id, n);
    }
  });
  await Promise.all(lanes);
  return counts;
}
