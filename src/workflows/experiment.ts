/**
 * The experiment workflow: one training run, normally a child of its session. It picks the
 * timeout mode's activity options, runs the training activity, and turns every way a run can
 * end into an ExperimentStatus. Its Temporal status tells the same truth: Completed,
 * Canceled (interrupted by a cancel request) or Failed (failed, timed-out).
 *
 * A worker shutdown (preemption) ends one training invocation, never an attempt: the activity
 * checkpoints and fails with the non-retryable `WorkerShutdown`, and the workflow schedules the
 * next invocation at once. A bounded experiment gets `defaultTimeout` in total: each invocation's
 * schedule-to-close is the time left before the deadline fixed when the first one was scheduled.
 *
 * Determinism: this file runs in the workflow sandbox. Any change to the commands it issues
 * goes behind `patched()`; see CONTRIBUTING.md and test/fixtures/histories.
 */
import {
  type ActivityOptions,
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
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
  type TrainInput,
} from '../shared/definitions';
import { formatDuration } from '../shared/duration';
import { experimentWorkflowId } from '../shared/ids';
import { NO_TIMEOUT_START_TO_CLOSE, maxPreemptions, profileWindow, resourceTimeoutMs, taskPriority, type ResolvedPolicy } from '../shared/policy';
import { blankStatus, hintsFromStatus } from '../shared/hints';
import { experimentInputSchema, inputProblems } from '../shared/schema';
import { searchAttributeKey } from '../shared/search-attributes';
import { digestKind, type CheckpointPointer, type ExperimentState, type ExperimentStatus, type TimeoutMode, type TrainingOutcome } from '../shared/types';
import { experimentListSummary, experimentSummary, trainingSummary } from '../shared/user-metadata';
import { describeFailure } from './failures';
import { countPreemption } from './metrics';
import { SEARCH_GATES_PATCH, TrialGates } from './search/trial';
import { PAUSED, PauseGuard } from './pause';
import type { SearchDecision } from '../shared/search/types';
import { HARDWARE_ROUTING, awaitPlacement } from './placement';
import { AUTO_ESTIMATE, estimateText, profileRun, stoppedForProfile } from './profiling';
import { wantsResources } from '../shared/hardware';

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

/**
 * Patch: start input checked against the client's schema; preemptions loop into new invocations
 * (WorkerShutdown is non-retryable); a bounded experiment's limit is a schedule-to-close total.
 */
const PREEMPTION_LOOP = 'experiment-preemption-loop-total-deadline';
/** Patch: the training activity carries a one-line summary for the Temporal UI (see session/workflow.ts). */
const USER_METADATA = 'experiment-user-metadata';
/** Patch: training activities carry the policy's task priority and fairness key. */
const TASK_PRIORITY = 'experiment-training-priority';
/**
 * Patch: one marker stands for the three above (each `patched()` of a new run costs a marker
 * and an upsert of TemporalChangeVersion), and the start writes one memo upsert, not two: a
 * bounded experiment's history is 17 events instead of 22. Histories without it take the old
 * path, patch by patch.
 */
const LEAN_START = 'experiment-lean-start';

/**
 * Activity options of one training invocation under PREEMPTION_LOOP: `remainingMs` (bounded
 * mode) is both the schedule-to-close and the start-to-close bound, and `maximumAttempts` what
 * earlier invocations left of the policy's budget.
 */
export function invocationOptions(policy: ResolvedPolicy, mode: TimeoutMode, remainingMs: number | null, maximumAttempts: number): ActivityOptions {
  const base = trainingActivityOptions(policy, mode);
  return {
    ...base,
    ...(remainingMs === null ? {} : { scheduleToCloseTimeout: remainingMs, startToCloseTimeout: remainingMs }),
    retry: { ...base.retry, maximumAttempts, nonRetryableErrorTypes: [...(base.retry?.nonRetryableErrorTypes ?? []), 'WorkerShutdown'] },
  };
}

const { latestCheckpoint } = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

export async function experimentWorkflow(input: ExperimentInput): Promise<ExperimentStatus> {
  // First of all patches: an old history has no LEAN_START marker, so it replays patch by patch.
  const lean = patched(LEAN_START);
  const v2 = validateStart(input, lean);
  const { spec, sessionId, policy, timeoutMode } = input;
  // The training activity's one-line summary in the UI (an activity option, so behind the patch).
  const withMetadata = lean || patched(USER_METADATA);
  const summarize = withMetadata ? (invocation: number) => ({ summary: trainingSummary(spec, invocation) }) : () => ({});
  let status = blankStatus({ id: spec.id, sessionId, workflowId: workflowInfo().workflowId, state: 'running', timeoutMode });
  let outcome: TrainingOutcome | null = null;
  let cancelReason: string | null = null;
  setHandler(experimentStatusQuery, () => status);
  setHandler(lastOutcomeQuery, () => outcome);
  setHandler(hintsQuery, () => hintsFromStatus(status, outcome?.latest));
  setHandler(cancelReasonSignal, (payload: unknown) => {
    const reason = (payload as { reason?: unknown } | null | undefined)?.reason;
    if (typeof reason === 'string') cancelReason = reason.slice(0, 500);
    else log.warn('cancelReason signal ignored: reason: expected a string', { experimentId: spec.id, received: typeof payload });
  });

  // The spec and policy go into the memo once, so `resume` can rebuild the run from any server:
  // under LEAN_START with the first status, in one upsert.
  if (!lean) upsertMemo({ spec, policy });
  const publish = (memo: Record<string, unknown> = {}) => {
    upsertSearchAttributes([
      { key: searchAttributeKey('ExperimentState'), value: status.state },
      { key: searchAttributeKey('SessionId'), value: sessionId },
      { key: searchAttributeKey('ExperimentId'), value: spec.id },
      { key: searchAttributeKey('ExperimentEpoch'), value: status.epoch },
      // The UI's workflow list shows search attributes, not user metadata: the summary as a column.
      ...(withMetadata ? [{ key: searchAttributeKey('ExperimentSummary'), value: input.redactSearchAttributes ? experimentListSummary(spec, timeoutMode) : experimentSummary(spec, timeoutMode) }] : []),
    ]);
    upsertMemo({ ...memo, experiment: status });
    setCurrentDetails(detailsMarkdown(status));
  };
  publish(lean ? { spec, policy } : {});
  log.info('experiment started', { experimentId: spec.id, sessionId, timeoutMode, trainer: spec.trainer });
  // Routed experiments only (no recorded history has one): wait for a worker class that fits.
  const placement = wantsResources(spec) && patched(HARDWARE_ROUTING)
    ? await awaitPlacement(spec, workflowInfo().taskQueue, resourceTimeoutMs(policy), (waiting) => {
        status = { ...status, state: 'awaiting-resources', reason: waiting };
        publish();
        log.info('experiment awaiting resources', { experimentId: spec.id, reason: waiting });
      })
    : null;
  if (placement && 'rejected' in placement) {
    status = { ...status, state: 'rejected', reason: placement.rejected };
    publish();
    log.warn('experiment rejected: no live worker satisfies its resources', { experimentId: spec.id, reason: placement.rejected });
    return status;
  }
  if (placement) {
    status = { ...status, state: 'running', reason: null, hardwareClass: placement.className };
    publish();
  }

  const trainInput: TrainInput = {
    sessionId,
    spec,
    timeoutMode,
    checkpointsToKeep: policy.checkpointsToKeep,
    heartbeatTimeoutMs: policy.heartbeatTimeoutMs,
    // Only when set: for every policy recorded before the field existed the input is unchanged.
    ...(policy.allowCrossSessionResume !== undefined ? { allowCrossSessionResume: policy.allowCrossSessionResume } : {}),
  };
  const priority = v2 && (lean || patched(TASK_PRIORITY)) ? { priority: taskPriority(policy, sessionId) } : {};
  const loop = v2 ? new PreemptionLoop(input, summarize, placement?.taskQueue, (preempted) => {
    countPreemption(sessionId, spec.trainer);
    status = withCheckpoint({ ...status, preemptions: preempted.preemptions }, preempted.latest);
    publish();
  }, priority) : null;
  // A search session's trial trains between gates and may be pruned (src/workflows/search/trial.ts).
  const parentWorkflowId = input.parentWorkflowId;
  const gates = loop && policy.search && parentWorkflowId && patched(SEARCH_GATES_PATCH) ? new TrialGates({ ...input, parentWorkflowId }, policy.search) : null;
  let pruned: SearchDecision | null = null;
  let state: ExperimentState;
  let reason: string | null = null;
  try {
    // `auto` (behind its patch): a short profiling invocation first; see profiling.ts.
    const profiled = loop && spec.estimatedDuration === 'auto' && patched(AUTO_ESTIMATE) ? await profileRun((i) => loop.run(i), trainInput, profileWindow(policy)) : null;
    if (profiled) {
      status = { ...withOutcome(status, profiled.outcome, loop?.failedAttempts ?? 0), ...(profiled.estimatedMs !== null && { estimatedDurationMs: profiled.estimatedMs }) };
      if (stoppedForProfile(profiled.outcome) && profiled.estimatedMs !== null && profiled.estimatedMs > policy.longRunningThresholdMs) {
        status = { ...status, state: 'awaiting-approval', reason: estimateText(profiled.estimatedMs, profiled.outcome.profile?.hardwareClass), actualDurationMs: profiled.outcome.trainingMs };
        publish();
        log.info('profiled: estimate over longRunningThreshold, waiting for approval', { experimentId: spec.id, estimatedDurationMs: profiled.estimatedMs });
        return status;
      }
    }
    const trained = profiled && !stoppedForProfile(profiled.outcome)
      ? profiled.outcome
      : gates && loop
        ? await gates.run(trainInput, (next) => loop.run(next)).then((g) => ((pruned = g.pruned), g.outcome))
        : loop ? await loop.run(trainInput) : await proxyActivities<Activities>({ ...trainingActivityOptions(policy, timeoutMode), ...summarize(0) }).trainExperiment(trainInput);
    outcome = trained;
    status = withOutcome(status, trained, loop?.failedAttempts ?? 0);
    // Training time of this run (profiling included), to set beside an estimate; absent in old outcomes.
    const profiledMs = profiled && profiled.outcome !== trained ? profiled.outcome.trainingMs ?? 0 : 0;
    if (trained.trainingMs !== undefined) status = { ...status, actualDurationMs: profiledMs + trained.trainingMs };
    state = trained.status === 'completed' ? 'completed' : pruned ? 'pruned' : 'interrupted';
    if (state === 'interrupted') reason = cancelReason ?? trained.interruptReason;
    if (pruned) reason = (pruned as SearchDecision).reason;
  } catch (err) {
    const failure = describeFailure(err);
    state = isCancellation(err) ? 'interrupted' : failure.timedOut ? 'timed-out' : 'failed';
    reason = state === 'interrupted' ? cancelReason ?? 'cancelled' : failure.message;
    if (failure.attempt !== null) status = { ...status, attempt: failure.attempt + (loop?.failedAttempts ?? 0) };
  }

  const cancelRequested = CancellationScope.current().consideredCancelled;
  if (state !== 'completed') {
    // The activity's own report can be lost (a throttled heartbeat, a dead worker), the store's
    // manifest cannot: ask the store for the newest verified checkpoint before recording the end.
    const latest = await CancellationScope.nonCancellable(() => latestCheckpoint({ sessionId, experimentId: spec.id }));
    status = withCheckpoint(status, newest(latest, outcome?.latest ?? null));
  }
  // Under the loop the limit is the policy's total, whichever side (activity or server) hit it first.
  if (loop && state === 'timed-out' && timeoutMode === 'bounded') reason = timeoutReason(spec.id, policy, status);
  status = { ...status, state, reason };
  if (gates) status = searchStatus(status, outcome, pruned);
  publish();
  log.info('experiment ended', { experimentId: spec.id, state, reason, epoch: status.epoch, attempt: status.attempt, preemptions: status.preemptions });

  if (state === 'completed' || state === 'pruned') return status;
  if (cancelRequested && input.parentWorkflowId) {
    // A Canceled child returns nothing to its parent, so the session learns the outcome here;
    // the run id lets the session tell this run's report from a forged one.
    const parent = getExternalWorkflowHandle(input.parentWorkflowId);
    const report = v2 ? { status, runId: workflowInfo().runId } : { status };
    await CancellationScope.nonCancellable(() => parent.signal(experimentFinishedSignal, report));
  }
  if (state === 'interrupted' && cancelRequested) throw new CancelledFailure(`experiment ${spec.id} interrupted: ${reason ?? 'cancelled'}`);
  if (state === 'interrupted') return status;
  throw ApplicationFailure.nonRetryable(
    `experiment ${spec.id} ${state}: ${reason ?? 'unknown reason'}`,
    state === 'timed-out' ? 'ExperimentTimedOut' : 'ExperimentFailed',
    status,
  );
}

/**
 * Training invocations until one ends other than by a worker shutdown. Each shutdown is a
 * preemption: counted, reported through `onPreempted`, and followed at once by the next
 * invocation (`invocation` + 1), whose attempt budget is what earlier invocations left of
 * `retry.maximumAttempts` and whose schedule-to-close is the time left of a bounded limit.
 */
class PreemptionLoop {
  preemptions = 0;
  /**
   * Training invocations so far: run() is called once per search segment and after a profiling
   * run, and the fencing token only grows.
   */
  private invocation = 0;
  /** Attempts that failed (not preempted) in earlier invocations. */
  failedAttempts = 0;
  private readonly deadline: number | null;
  /** Session pauses end an invocation like a preemption does, and the next one waits for unpause. */
  private readonly pause: PauseGuard;

  constructor(
    private readonly input: ExperimentInput,
    private readonly summarize: (invocation: number) => { summary?: string },
    /** The placed shape queue of a routed experiment; the workflow's own queue when undefined. */
    private readonly taskQueue: string | undefined,
    private readonly onPreempted: (p: { preemptions: number; latest: CheckpointPointer | null }) => void,
    private readonly priority: Pick<ActivityOptions, 'priority'> = {},
  ) {
    this.deadline = input.timeoutMode === 'bounded' ? Date.now() + input.policy.defaultTimeoutMs : null;
    this.pause = new PauseGuard(input.spec.id);
  }

  async run(trainInput: TrainInput): Promise<TrainingOutcome> {
    const { policy, spec, timeoutMode } = this.input;
    for (; ; this.invocation++) {
      const invocation = this.invocation;
      const remaining = this.deadline === null ? null : this.deadline - Date.now();
      if (remaining !== null && remaining <= 0) {
        throw ApplicationFailure.nonRetryable(`experiment ${spec.id}: no time left of defaultTimeout`, 'ExperimentTimedOut');
      }
      const attempts = policy.retry.maximumAttempts === 0 ? 0 : Math.max(1, policy.retry.maximumAttempts - this.failedAttempts);
      const options = { ...invocationOptions(policy, timeoutMode, remaining, attempts), ...this.summarize(invocation), ...this.priority };
      const { trainExperiment } = proxyActivities<Activities>(this.taskQueue ? { ...options, taskQueue: this.taskQueue } : options);
      try {
        const trained = await this.pause.run(() => trainExperiment({ ...trainInput, invocation }));
        if (trained === PAUSED) {
          await this.pause.resumed();
          continue;
        }
        this.invocation++;
        return trained;
      } catch (err) {
        const stopped = preemption(err);
        if (!stopped) throw err;
        this.preemptions++;
        this.failedAttempts += Math.max(0, stopped.attempt - 1);
        log.info('preempted: the next training invocation resumes from the checkpoint', {
          experimentId: spec.id,
          invocation,
          preemptions: this.preemptions,
          checkpointId: stopped.latest?.checkpointId ?? null,
        });
        this.onPreempted({ preemptions: this.preemptions, latest: stopped.latest });
        const bound = maxPreemptions(policy);
        if (bound > 0 && this.preemptions > bound) {
          throw ApplicationFailure.nonRetryable(
            `experiment ${spec.id} was preempted ${this.preemptions} times, more than policy.maxPreemptions ${bound}`,
            'TooManyPreemptions',
          );
        }
      }
    }
  }
}

/** A search trial's final metrics (the result's, else its last checkpoint's) and where it was pruned. */
function searchStatus(status: ExperimentStatus, outcome: TrainingOutcome | null, pruned: SearchDecision | null): ExperimentStatus {
  const metrics = outcome?.result?.metrics ?? outcome?.latest?.metrics;
  return { ...status, ...(metrics ? { metrics } : {}), ...(pruned ? { pruned: { epoch: pruned.epoch, rung: pruned.rung } } : {}) };
}

/** The stopped outcome a WorkerShutdown failure carries, or null for any other error. */
function preemption(err: unknown): TrainingOutcome | null {
  if (isCancellation(err)) return null;
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure) || cause.type !== 'WorkerShutdown') return null;
  const detail = cause.details?.[0] as Partial<TrainingOutcome> | undefined;
  return {
    status: 'interrupted',
    interruptReason: 'worker-shutdown',
    result: null,
    latest: detail?.latest ?? null,
    attempt: typeof detail?.attempt === 'number' ? detail.attempt : 1,
    resumedFrom: detail?.resumedFrom ?? null,
    epochs: detail?.epochs ?? null,
    epoch: typeof detail?.epoch === 'number' ? detail.epoch : 0,
  };
}

function timeoutReason(id: string, policy: ResolvedPolicy, status: ExperimentStatus): string {
  const ck = status.latestCheckpoint;
  return `experiment ${id} reached its start-to-close limit of ${formatDuration(policy.defaultTimeoutMs)} (defaultTimeout, in total across attempts); last checkpoint ${ck?.id ?? 'none'} (epoch ${ck?.epoch ?? 0})`;
}

/**
 * Checks the start input with the client's schema, and that the workflow id is the
 * experiment's own. Invalid input fails the run at once, non-retryably, naming the field
 * (behind the patch, which LEAN_START implies). Returns whether this run has the patch.
 */
function validateStart(input: unknown, lean: boolean): boolean {
  const problems = inputProblems(experimentInputSchema, input);
  const { sessionId, spec } = (input ?? {}) as { sessionId?: unknown; spec?: { id?: unknown } };
  const expected = problems.length === 0 ? experimentWorkflowId(String(sessionId), String(spec?.id)) : null;
  if (expected !== null && workflowInfo().workflowId !== expected) {
    problems.push(`sessionId, spec.id: expected the workflow id to be ${JSON.stringify(expected)}, received ${JSON.stringify(workflowInfo().workflowId)}`);
  }
  const v2 = lean || patched(PREEMPTION_LOOP);
  if (v2 && problems.length > 0) {
    throw ApplicationFailure.nonRetryable(`invalid experiment input: ${problems.slice(0, 3).join('; ')}`, 'InvalidExperimentInput', problems);
  }
  return v2;
}

/** `failedAttempts`: attempts that failed in earlier invocations, added to the last one's attempt number. */
function withOutcome(status: ExperimentStatus, outcome: TrainingOutcome, failedAttempts: number): ExperimentStatus {
  return withCheckpoint(
    {
      ...status,
      attempt: outcome.attempt + failedAttempts,
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
    latestCheckpoint: { id: pointer.checkpointId, epoch: pointer.epoch, sha256: pointer.sha256, uri: pointer.uri, ...digestKind(pointer) },
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
      : `experiment \`${status.id}\` · ${status.timeoutMode === 'none' ? 'no-timeout' : 'bounded'} · attempt ${status.attempt}${status.preemptions ? ` · ${status.preemptions} preemptions` : ''}`;
  const model = status.result?.modelSha256 ? `modelSha256 \`${status.result.modelSha256.slice(0, 16)}…\`` : ck ? `sha256 \`${ck.sha256.slice(0, 16)}…\`` : '';
  return [headline, detail, model].filter(Boolean).join('  \n');
}
