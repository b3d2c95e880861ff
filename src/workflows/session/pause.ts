/**
 * The session side of pause and unpause: the flag that stops new starts (read by the
 * scheduler's plan) and the signals to the running experiments. Handlers never throw; the
 * update validators reject with a message.
 */
import { getExternalWorkflowHandle, log, patched, setHandler } from '@temporalio/workflow';
import { experimentWorkflowId } from '../../shared/ids';
import { pauseExperimentSignal, pauseSignal, pauseUpdate, unpauseExperimentSignal, unpauseSignal, unpauseUpdate, type PauseState } from '../../shared/pause';
import type { ChildRecord, SchedulerState } from './scheduler';

/** Patch: a session signals its running experiments to pause and to resume. */
export const SESSION_PAUSE_PATCH = 'session-pause';

export function installPauseHandlers(state: SchedulerState, children: ReadonlyMap<string, ChildRecord>, changed: () => void): { started(experimentId: string): void } {
  const running = () => [...state.rows.values()].filter((r) => r.state === 'running').map((r) => r.spec.id);
  const tell = (experimentId: string, paused: boolean) => {
    const runId = children.get(experimentId)?.runId;
    // Not started yet: started() tells it once its run exists.
    if (!runId) return;
    const handle = getExternalWorkflowHandle(experimentWorkflowId(state.sessionId, experimentId), runId);
    handle.signal(paused ? pauseExperimentSignal : unpauseExperimentSignal).catch((err: unknown) => {
      log.warn(`${paused ? 'pause' : 'unpause'} not delivered: the experiment has ended`, { sessionId: state.sessionId, experimentId, error: (err as Error).message });
    });
  };
  const apply = (paused: boolean): PauseState => {
    const experiments = running();
    if (state.paused === paused || !patched(SESSION_PAUSE_PATCH)) return { paused: state.paused === true, experiments: [] };
    state.paused = paused;
    log.info(paused ? 'session paused: running experiments checkpoint and wait, none starts' : 'session unpaused', { sessionId: state.sessionId, experiments });
    for (const id of experiments) tell(id, paused);
    changed();
    return { paused, experiments };
  };
  const validator = () => {
    if (state.cancelled) throw new Error(`session ${state.sessionId} is cancelled`);
    if (state.stopping) throw new Error(`session ${state.sessionId} is stopping (${state.stopping})`);
  };
  setHandler(pauseSignal, () => void apply(true));
  setHandler(unpauseSignal, () => void apply(false));
  setHandler(pauseUpdate, () => apply(true), { validator });
  setHandler(unpauseUpdate, () => apply(false), { validator });
  return {
    started(experimentId) {
      if (state.paused) tell(experimentId, true);
    },
  };
}
