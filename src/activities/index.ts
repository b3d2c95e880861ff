/**
 * The activities the plugin registers, built by a factory so the store, the trainers and the
 * logger are injected (workflows import only the type `Activities`).
 */
import { Context } from '@temporalio/activity';
import type { CheckpointPointer } from '../shared/types';
import { storeKey } from '../shared/ids';
import type { TrainInput } from '../shared/definitions';
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
  };
}

export type Activities = ReturnType<typeof createActivities>;
