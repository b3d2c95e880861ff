/**
 * Cancelling with a reason. The experiment workflow records the reason it receives by signal
 * before the cancel request; the session workflow has no such handler, so for a session the
 * reason is sent to each of its running experiments too, or it would be lost and every
 * interrupted experiment would just say "cancelled".
 */
import { WorkflowNotFoundError } from '@temporalio/common';
import type { ExperimentsClient } from '../client';
import { cancelReasonSignal, WORKFLOW_TYPES } from '../shared/definitions';

export async function cancelWithReason(experiments: ExperimentsClient, id: string, reason?: string): Promise<void> {
  if (reason) {
    try {
      const desc = await experiments.client.workflow.getHandle(id).describe();
      if (desc.type === WORKFLOW_TYPES.session && desc.status.name === 'RUNNING') {
        const snap = await experiments.sessionSnapshot(id);
        await Promise.all(
          snap.experiments
            .filter((e) => e.state === 'running')
            .map((e) => experiments.client.workflow.getHandle(e.workflowId).signal(cancelReasonSignal, { reason }).catch(() => undefined)),
        );
      }
    } catch (err) {
      // An unknown id is reported by the cancel call below, with the library's message.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
  await experiments.cancel(id, reason);
}
