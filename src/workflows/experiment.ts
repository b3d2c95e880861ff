/**
 * The experiment workflow: one training run, normally a child of its session. It picks the
 * timeout mode's activity options, runs the training activity, and turns every way a run can
 * end into an ExperimentStatus. Its Temporal status tells the same truth: Completed,
 * Canceled (interrupted by a cancel request) or Failed (failed, timed-out).
 *
 * Determinism: this file runs in the workflow sandbox. Any change to the commands it issues
 * goes behind `patched()`; see CONTRIBUTING.md and test/fixtures/histories.
 */
import {
  type ActivityOptions,
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  cancelReasonSignal,
  experimentFinishedSignal,
  experimentStatusQuery,
  hintsQuery,
  lastOutcomeQuery,
  type ExperimentInput,
} from '../shared/definitions';
import { NO_TIMEOUT_START_TO_CLOSE, type ResolvedPolicy } from '../shared/policy';
import { blankStatus, hintsFromStatus } from '../shared/hints';
import { searchAttributeKey } from '../shared/search-attributes';
import type { CheckpointPointer, ExperimentState, ExperimentStatus, TimeoutMode, TrainingOutcome } from '../shared/types';
import { describeFailure } from './failures';

/** Activity options of the training activity for a timeout mode. */
export function trainingActivityOptions(policy: ResolvedPolicy, mode: TimeoutMode): ActivityOptions {
  return {
    startToCloseTimeout: mode === 'bounded' ? policy.defaultTimeoutMs : NO_TIMEOUT_START_TO_CLOSE,
    heartbeatTimeout: policy.heartbeatTimeoutMs,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: policy.retry.initialIntervalMs,
      backoffCoefficient: policy.retry.backoffCoefficient,
      maximumInterval: policy.retry.maximumIntervalMs,
      maximumAttempts: policy.retry.maximumAttempts,
      nonRetryableErrorTypes: ['InvalidParams', 'UnknownTrainer', 'ExperimentTimedOut', 'NoCheckpoint', 'TrainerFatal'],
    },
  };
}

const { latestCheckpoint } = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

export async function experimentWorkflow(input: ExperimentInput): Promise<ExperimentStatus> {
  const { spec, sessionId, policy, timeoutMode } = input;
  let status = blankStatus({ id: spec.id, sessionId, workflowId: workflowInfo().workflowId, state: 'running', timeoutMode });
  let outcome: TrainingOutcome | null = null;
  let cancelReason: string | null = null;
  setHandler(experimentStatusQuery, () => status);
  setHandler(lastOutcomeQuery, () => outcome);
  setHandler(hintsQuery, () => hintsFromStatus(status, outcome?.latest));
  setHandler(cancelReasonSignal, ({ reason }) => {
    cancelReason = reason;
  });

  // The spec and policy go into the memo once, so `resume` can rebuild the run from any server.
  upsertMemo({ spec, policy });
  const publish = () => {
    upsertSearchAttributes([
      { key: searchAttributeKey('ExperimentState'), value: status.state },
      { key: searchAttributeKey('SessionId'), value: sessionId },
      { key: searchAttributeKey('ExperimentId'), value: spec.id },
      { key: searchAttributeKey('ExperimentEpoch'), value: status.epoch },
    ]);
    upsertMemo({ experiment: status });
    setCurrentDetails(detailsMarkdown(status));
  };
  publish();
  log.info('experiment started', { experimentId: spec.id, sessionId, timeoutMode, trainer: spec.trainer });

  const { trainExperiment } = proxyActivities<Activities>(trainingActivityOptions(policy, timeoutMode));
  let state: ExperimentState;
  let reason: string | null = null;
  try {
    const trained = await trainExperiment({
      sessionId,
      spec,
      timeoutMode,
      checkpointsToKeep: policy.checkpointsToKeep,
      heartbeatTimeoutMs: policy.heartbeatTimeoutMs,
      // Only when set: for every policy recorded before the field existed the input is unchanged.
      ...(policy.allowCrossSessionResume !== undefined ? { allowCrossSessionResume: policy.allowCrossSessionResume } : {}),
    });
    outcome = trained;
    status = withOutcome(status, trained);
    state = trained.status === 'completed' ? 'completed' : 'interrupted';
    if (state === 'interrupted') reason = cancelReason ?? trained.interruptReason;
  } catch (err) {
    const failure = describeFailure(err);
    state = isCancellation(err) ? 'interrupted' : failure.timedOut ? 'timed-out' : 'failed';
    reason = state === 'interrupted' ? cancelReason ?? 'cancelled' : failure.message;
    if (failure.attempt !== null) status = { ...status, attempt: failure.attempt };
  }

  const cancelRequested = CancellationScope.current().consideredCancelled;
  if (state !== 'completed') {
    // The activity's own report can be lost (a throttled heartbeat, a dead worker), the store's
    // manifest cannot: ask the store for the newest verified checkpoint before recording the end.
    const latest = await CancellationScope.nonCancellable(() => latestCheckpoint({ sessionId, experimentId: spec.id }));
    status = withCheckpoint(status, newest(latest, outcome?.latest ?? null));
  }
  status = { ...status, state, reason };
  publish();
  log.info('experiment ended', { experimentId: spec.id, state, reason, epoch: status.epoch, attempt: status.attempt });

  if (state === 'completed') return status;
  if (cancelRequested && input.parentWorkflowId) {
    // A Canceled child returns nothing to its parent, so the session learns the outcome here.
    const parent = getExternalWorkflowHandle(input.parentWorkflowId);
    await CancellationScope.nonCancellable(() => parent.signal(experimentFinishedSignal, { status }));
  }
  if (state === 'interrupted' && cancelRequested) throw new CancelledFailure(`experiment ${spec.id} interrupted: ${reason ?? 'cancelled'}`);
  if (state === 'interrupted') return status;
  throw ApplicationFailure.nonRetryable(
    `experiment ${spec.id} ${state}: ${reason ?? 'unknown reason'}`,
    state === 'timed-out' ? 'ExperimentTimedOut' : 'ExperimentFailed',
    status,
  );
}

function withOutcome(status: ExperimentStatus, outcome: TrainingOutcome): ExperimentStatus {
  return withCheckpoint(
    {
      ...status,
      attempt: outcome.attempt,
      epoch: outcome.epoch,
      epochs: outcome.epochs,
      resumedFrom: outcome.resumedFrom,
      result: outcome.result && {
        finalLoss: outcome.result.finalLoss,
        accuracy: outcome.result.accuracy,
        modelSha256: outcome.result.modelSha256,
      },
    },
    outcome.latest,
  );
}

function withCheckpoint(status: ExperimentStatus, pointer: CheckpointPointer | null): ExperimentStatus {
  if (!pointer) return status;
  return {
    ...status,
    epoch: Math.max(status.epoch, pointer.epoch),
    latestCheckpoint: { id: pointer.checkpointId, epoch: pointer.epoch, sha256: pointer.sha256, uri: pointer.uri },
  };
}

function newest(a: CheckpointPointer | null, b: CheckpointPointer | null): CheckpointPointer | null {
  if (!a || !b) return a ?? b;
  return a.epoch > b.epoch || (a.epoch === b.epoch && a.step >= b.step) ? a : b;
}

/**
 * Markdown shown as the workflow's current details in the Temporal UI. The UI shows about three
 * lines, so the first line holds what a person needs: state, checkpoint and reason. Current
 * details are answered by query, never recorded in history, so changing them is replay-safe.
 */
function detailsMarkdown(status: ExperimentStatus): string {
  const ck = status.latestCheckpoint;
  const epochs = status.epochs ? ` of ${status.epochs}` : '';
  const headline = [
    `**${status.state}**`,
    ck ? `checkpoint \`${ck.id}\` (epoch ${ck.epoch}${epochs})` : 'no checkpoint yet',
    status.reason ? `reason: ${status.reason}` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const detail =
    status.state === 'running'
      ? 'live epoch and checkpoint: Pending Activities → trainExperiment → heartbeat details'
      : `experiment \`${status.id}\` · ${status.timeoutMode === 'none' ? 'no-timeout' : 'bounded'} · attempt ${status.attempt}`;
  const model = status.result?.modelSha256 ? `modelSha256 \`${status.result.modelSha256.slice(0, 16)}…\`` : ck ? `sha256 \`${ck.sha256.slice(0, 16)}…\`` : '';
  return [headline, detail, model].filter(Boolean).join('  \n');
}
