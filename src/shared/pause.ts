/**
 * Pausing a whole session: the signals and updates a person (CLI, Web UI) sends to a session,
 * and the ones the session sends to its running experiments. A paused session starts no
 * experiment; its running ones checkpoint and end their current training invocation, freeing
 * their workers, and wait; unpause resumes each from its checkpoint in the same workflow run,
 * so the approval, the search state and the metric history are untouched.
 */
import { defineSignal, defineUpdate } from '@temporalio/workflow';

/** What pause and unpause answer (updates) and what a session reports. */
export interface PauseState {
  readonly paused: boolean;
  /** Experiments told to pause (or to resume). */
  readonly experiments: string[];
}

/** Pauses the session (idempotent). From the Web UI: signal `pause` with no input. */
export const pauseSignal = defineSignal('pause');
export const unpauseSignal = defineSignal('unpause');
/** Like the signals; rejected by the validator when the session can no longer pause (stopping, cancelled). */
export const pauseUpdate = defineUpdate<PauseState>('pauseSession');
export const unpauseUpdate = defineUpdate<PauseState>('unpauseSession');

/** Session → experiment: stop training at the next step boundary (checkpointing) and wait. */
export const pauseExperimentSignal = defineSignal('pauseExperiment');
/** Session → experiment: resume from the checkpoint. */
export const unpauseExperimentSignal = defineSignal('unpauseExperiment');
