/**
 * Cancelling with a reason. The experiment workflow records the reason it receives by signal
 * before the cancel request; the session workflow has no such handler, so for a session the
 * reason is sent to each of its running experiments too, or it would be lost and every
 * interrupted experiment would just say "cancelled". Passing the reason on is best effort: it
 * needs a worker to answer the session query, and must never hold up the cancel itself.
 */
import type { ExperimentsClient } from '../client';
import { cancelReasonSignal, WORKFLOW_TYPES } from '../shared/definitions';

export async function cancelWithReason(experiments: ExperimentsClient, id: string, reason?: string): Promise<void> {
  if (reason) {
    const running = await runningExperimentsOf(experiments, id);
    await Promise.all(running.map((wf) => experiments.client.workflow.getHandle(wf).signal(cancelReasonSignal, { reason }).catch(() => undefined)));
  }
  await experiments.cancel(id, reason);
}

/** Workflow ids of the running experiments when `id` is a running session; empty otherwise or when unknown. */
async function runningExperimentsOf(experiments: ExperimentsClient, id: string): Promise<string[]> {
  try {
    const desc = await experiments.client.workflow.getHandle(id).describe();
    if (desc.type !== WORKFLOW_TYPES.session || desc.status.name !== 'RUNNING') return [];
    const snap = await experiments.client.connection.withDeadline(Date.now() + 5_000, () => experiments.sessionSnapshot(id));
    return snap.experiments.filter((e) => e.state === 'running').map((e) => e.workflowId);
  } catch {
    // An unknown id is reported by the cancel call, with the library's message; a session query
    // that no worker answers only costs the reason.
    return [];
  }
}
