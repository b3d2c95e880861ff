/**
 * The experiment side of a session pause: each training invocation runs in its own cancellation
 * scope; `pauseExperiment` cancels it (the activity checkpoints at its next step boundary and
 * ends the invocation), and the experiment waits for `unpauseExperiment` before the next
 * invocation resumes from that checkpoint. Time paused counts toward a bounded experiment's
 * defaultTimeout (it is a total).
 */
import { CancellationScope, condition, isCancellation, log, patched, setHandler } from '@temporalio/workflow';
import { pauseExperimentSignal, unpauseExperimentSignal } from '../shared/pause';
import type { TrainingOutcome } from '../shared/types';

/** The invocation ended because of a pause: run the next one after unpause. */
export const PAUSED = Symbol('paused');

/**
 * Patch: a pause signal cancels the running training invocation. Checked when the first pause
 * arrives, so a history in which code without the handler dropped the signal replays unchanged.
 */
export const EXPERIMENT_PAUSE_PATCH = 'experiment-pause';

export class PauseGuard {
  private paused = false;
  private scope: CancellationScope | null = null;

  constructor(experimentId: string) {
    setHandler(pauseExperimentSignal, () => {
      if (this.paused || !patched(EXPERIMENT_PAUSE_PATCH)) return;
      this.paused = true;
      log.info('paused by the session: checkpointing and stopping this invocation', { experimentId });
      this.scope?.cancel();
    });
    setHandler(unpauseExperimentSignal, () => {
      if (this.paused) log.info('unpaused by the session: resuming from the checkpoint', { experimentId });
      this.paused = false;
    });
  }

  /** Runs one invocation, or returns PAUSED when a pause ended it (or came before it started). */
  async run(invocation: () => Promise<TrainingOutcome>): Promise<TrainingOutcome | typeof PAUSED> {
    if (this.paused) return PAUSED;
    const scope = new CancellationScope();
    this.scope = scope;
    try {
      const outcome = await scope.run(invocation);
      return this.paused && outcome.status === 'interrupted' && outcome.interruptReason === 'cancelled' ? PAUSED : outcome;
    } catch (err) {
      // A cancel of the whole experiment is not a pause: it propagates.
      if (this.paused && isCancellation(err) && !CancellationScope.current().consideredCancelled) return PAUSED;
      throw err;
    } finally {
      this.scope = null;
    }
  }

  /** Resolves on unpause (throws if the experiment is cancelled meanwhile). */
  async resumed(): Promise<void> {
    await condition(() => !this.paused);
  }
}
