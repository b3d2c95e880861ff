/**
 * The activities the plugin registers, built by a factory so the store, the trainers and the
 * logger are injected (workflows import only the type `Activities`).
 */
import { Context } from '@temporalio/activity';
import { readRegistry } from '../hardware/registry-client';
import { place, type Placement, type ResourceRequest } from '../shared/hardware';
import type { CheckpointPointer } from '../shared/types';
import { storeKey } from '../shared/ids';
import type { CheckpointCountsInput, CheckpointFacts, CheckpointFactsInput, TrainInput } from '../shared/definitions';
import { runTraining, type TrainingDeps } from './training';

export type { TrainingDeps } from './training';

export function createActivities(deps: TrainingDeps) {
  return {
    /** Runs or resumes one experiment's training; see training.ts. */
    async trainExperiment(input: TrainInput) {
      return runTraining(deps, input);
    },
    /** The newest checkpoint of an experiment that verifies, or null. */
    async latestCheckpoint(input: { sessionId: string; experimentId: string }): Promise<CheckpointPointer | null> {
      // Called by the experiment workflow itself: its run's checkpoints only.
      const runId = Context.current().info.workflowExecution?.runId;
      const { checkpoint, warnings } = await deps.store.latestVerified(storeKey(input.sessionId, input.experimentId), [], { runId });
      for (const warning of warnings) deps.logger.warn({ ...input, warning }, 'skipping a checkpoint that does not verify');
      return checkpoint?.pointer ?? null;
    },
    /**
     * Where a routed experiment trains: the shape queue of a live worker class that satisfies the
     * request, from the worker registry of base queue `taskQueue` (src/shared/hardware.ts place).
     */
    async placeExperiment(input: { taskQueue: string; resources?: ResourceRequest; hardwareClass?: string }): Promise<Placement> {
      const { workers } = await readRegistry(Context.current().client, input.taskQueue);
      return place(input.taskQueue, workers, input.resources, input.hardwareClass);
    },
    /**
     * How many checkpoints each of a session's experiments has in the store (`run` asks before it
     * starts a session again, to offer --resume): one activity for up to MAX_COUNTED_EXPERIMENTS ids.
     */
    async countCheckpoints(input: CheckpointCountsInput): Promise<Record<string, number>> {
      const counts: Record<string, number> = {};
      let next = 0;
      const lanes = Array.from({ length: Math.min(16, input.experimentIds.length) }, async () => {
        while (next < input.experimentIds.length) {
          const id = input.experimentIds[next++];
          try {
            counts[id] = (await deps.store.list(storeKey(input.sessionId, id))).length;
          } catch (err) {
            // An unreadable manifest counts as none here; the training activity reports it when it runs.
            deps.logger.warn({ sessionId: input.sessionId, experimentId: id, err: (err as Error).message }, 'counting checkpoints: manifest unreadable');
            counts[id] = 0;
          }
          Context.current().heartbeat();
        }
      });
      await Promise.all(lanes);
      return counts;
    },
    /**
     * Checkpoint facts for clients that cannot reach the store (hints, resume, `run --resume`),
     * read and verified here, on a worker that can.
     */
    async describeCheckpoints(input: CheckpointFactsInput): Promise<CheckpointFacts> {
      const key = storeKey(input.sessionId, input.experimentId);
      const listed = await deps.store.list(key);
      const { checkpoint, warnings } = await deps.store.latestVerified(key);
      let named: CheckpointPointer | null = null;
      if (input.checkpointId !== undefined) {
        const pointer = listed.find((p) => p.checkpointId === input.checkpointId);
        if (!pointer) warnings.push(`checkpoint ${input.checkpointId} is missing from the store's manifest`);
        else if (pointer.checkpointId === checkpoint?.pointer.checkpointId) named = pointer;
        else {
          try {
            await deps.store.read(pointer);
            named = pointer;
          } catch (err) {
            warnings.push(`checkpoint ${input.checkpointId} does not verify: ${(err as Error).message}`);
          }
        }
      }
      return { count: listed.length, latest: checkpoint?.pointer ?? null, named, warnings };
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
