/**
 * Node side of the worker registry (src/workflows/registry.ts): workers publish beats with
 * signal-with-start; readers query it and keep the entries live at their own clock.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { HardwareProfile, WorkerEntry } from '../shared/hardware';
import { isLive, registryQuery, registryWorkflowId, workerBeatSignal, workerLeftSignal, type RegistryEntry, type WorkerBeat } from '../shared/registry';
import type { workerRegistryWorkflow } from '../workflows/registry';

/** How often a worker beats. The registry counts it gone after three missed beats. @default 5000 ms */
export const DEFAULT_BEAT_MS = 5000;

export async function publishBeat(client: Client, beat: WorkerBeat): Promise<void> {
  const taskQueue = beat.entry.taskQueue;
  await client.workflow.signalWithStart<typeof workerRegistryWorkflow, [WorkerBeat]>('workerRegistryWorkflow', {
    workflowId: registryWorkflowId(taskQueue),
    taskQueue,
    args: [{ taskQueue }],
    signal: workerBeatSignal,
    signalArgs: [beat],
  });
}

/** The live workers of base queue `taskQueue`, and every class ever registered; none when no registry exists. */
export async function readRegistry(client: Client, taskQueue: string, nowMs = Date.now()): Promise<{ workers: WorkerEntry[]; classes: string[] }> {
  try {
    const view = await client.workflow.getHandle(registryWorkflowId(taskQueue)).query(registryQuery);
    const workers = view.entries.filter((e) => isLive(e, nowMs)).map(({ ttlMs: _ttl, ...entry }: RegistryEntry) => entry);
    return { workers: workers.sort((a, b) => a.identity.localeCompare(b.identity)), classes: [...view.classes] };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { workers: [], classes: [] };
    throw err;
  }
}

export interface Publisher {
  /** Sends a beat now (e.g. after slots changed). */
  beat(): Promise<void>;
  /** Stops beating and tells the registry this worker left. */
  stop(): Promise<void>;
}

/** Beats every `everyMs` with the current free slots until stopped; a failed beat is logged, never thrown. */
export function startPublishing(
  client: Client,
  base: { identity: string; taskQueue: string; profile: HardwareProfile },
  slots: () => { total: number; free: number },
  logger: Logger,
  everyMs = DEFAULT_BEAT_MS,
): Publisher {
  const beat = async () => {
    try {
      await publishBeat(client, { entry: { ...base, slots: slots() }, ttlMs: everyMs * 3 });
    } catch (err) {
      logger.warn({ err: (err as Error).message, taskQueue: base.taskQueue }, 'could not publish the hardware profile to the worker registry');
    }
  };
  const timer = setInterval(() => void beat(), everyMs);
  timer.unref();
  return {
    beat,
    async stop() {
      clearInterval(timer);
      await client.workflow
        .getHandle(registryWorkflowId(base.taskQueue))
        .signal(workerLeftSignal, { identity: base.identity })
        .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not tell the worker registry this worker left'));
    },
  };
}
