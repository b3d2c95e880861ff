/**
 * Resumability hints computed from an experiment's status: pure, so the experiment workflow's
 * `hints` query and the client library give the same answer. The client adds warnings from
 * verifying the checkpoint file itself.
 */
import { digestKind, type CheckpointPointer, type ExperimentStatus, type ResumeHints } from './types';

export function hintsFromStatus(status: ExperimentStatus, pointer?: CheckpointPointer | null): ResumeHints {
  const ck = status.latestCheckpoint;
  const warnings: string[] = [];
  if (!ck) warnings.push('no checkpoint yet: a new run starts from scratch');
  const done = status.state === 'completed';
  return {
    id: status.id,
    latestCheckpoint: ck
      ? { id: ck.id, epoch: ck.epoch, step: pointer?.step ?? 0, uri: ck.uri, sha256: ck.sha256, savedAt: pointer?.savedAt ?? '', ...digestKind(ck) }
      : null,
    epochsRemaining: status.epochs === null ? null : Math.max(0, status.epochs - (ck?.epoch ?? 0)),
    // Statuses recorded before the field existed have none.
    preemptions: status.preemptions ?? 0,
    resumeCommand: done ? null : `experiments resume ${status.workflowId}`,
    resumeCall: done ? null : `experiments.resume(${JSON.stringify(status.workflowId)})`,
    warnings,
  };
}

/** An experiment's status before anything is known of its training. */
export function blankStatus(fields: Pick<ExperimentStatus, 'id' | 'sessionId' | 'workflowId' | 'state' | 'timeoutMode'> & { reason?: string | null }): ExperimentStatus {
  return {
    kind: 'experiment',
    attempt: 0,
    preemptions: 0,
    epoch: 0,
    epochs: null,
    latestCheckpoint: null,
    resumedFrom: null,
    result: null,
    ...fields,
    reason: fields.reason ?? null,
  };
}
