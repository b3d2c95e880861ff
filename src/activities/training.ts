/**
 * The training activity's runtime: it turns a registered Trainer into a durable Temporal
 * activity. This is where resume, checkpoint-then-heartbeat and interruption live:
 *
 * - Resume: the newest checkpoint that verifies, from the last heartbeat's pointer and the
 *   store's manifest (a throttled heartbeat can be lost in a crash, the manifest cannot);
 *   then, for a new run, the `resumeFrom` source.
 * - Every heartbeat carries a small CheckpointPointer plus progress, never the weights.
 * - Interruption is a flag: cancellation (UI, CLI, API), worker shutdown, the bounded-mode
 *   deadline, activity pause and the local watchdog (no sign of life for the heartbeat timeout)
 *   all set `interrupted` with a reason; the trainer checkpoints at its next step boundary and
 *   returns, and the reason decides how the attempt ends.
 * - Fencing: each attempt registers its token (invocation, attempt) with the store before it picks
 *   its resume point; the store then refuses writes from any older attempt still running.
 */
import { AsyncResource } from 'node:async_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { logContext } from '../logging';
import type { TrainingMetrics } from '../metrics/training';
import type { TrainInput } from '../shared/definitions';
import { formatDuration } from '../shared/duration';
import { storeKey } from '../shared/ids';
import { crossSessionResumeProblem } from '../shared/policy';
import type { CheckpointPointer, HeartbeatDetails, InterruptReason, Metrics, TrainingOutcome } from '../shared/types';
import { Profiler } from './profiler';
import { StaleAttemptError, type CheckpointStore, type FenceToken, type VerifiedCheckpoint } from './checkpoint-store';
import { MetricHistoryWriter, type HistoryWriterOptions } from './checkpoint-store/history-writer';
import type { AnyTrainer, Trainer, TrainerContext } from './trainer';
import { startWatchdog } from './watchdog';
import { BackgroundPersist } from './background-persist';
import { SnapshotBuffer } from './snapshot-buffer';

export interface TrainingDeps {
  readonly store: CheckpointStore;
  readonly trainers: ReadonlyMap<string, AnyTrainer>;
  readonly logger: Logger;
  /**
   * Least time between two heartbeats sent by the runtime (Core throttles further).
   * @default min(1000, heartbeatTimeout / 4) milliseconds
   */
  readonly heartbeatIntervalMs?: number;
  /** Step-point sampling and write intervals of the metric history (history-writer.ts). */
  readonly metricHistory?: HistoryWriterOptions;
  /** Prometheus metrics of the trainings (src/metrics/training.ts). @default none recorded */
  readonly metrics?: TrainingMetrics;
  /** Where a run on a shape queue claims the devices of its slot. @default none (no devices) */
  readonly devices?: DeviceClaims;
}

/** The devices of the slot an activity on `taskQueue` just started in (src/hardware/slots.ts DevicePool). */
export interface DeviceClaims {
  claim(taskQueue: string): Promise<readonly number[] | null>;
  /** The worker's hardware class, recorded with profiling measurements. */
  readonly className?: string;
}

/**
 * How long before the bounded-mode limit (see boundedDeadline) the trainer is told to stop: a small
 * share of the limit, or the trainer's own stop time plus a second, but never over half of it.
 */
function deadlineMargin(timeoutMs: number, stopTimeMs: number): number {
  const own = Math.min(2000, Math.floor(timeoutMs / 10));
  return Math.min(Math.floor(timeoutMs / 2), Math.max(own, stopTimeMs > 0 ? stopTimeMs + 1000 : 0));
}

/**
 * When the server ends this attempt at the latest: the schedule-to-close bound (a bounded
 * experiment's total limit, across attempts) or this attempt's start-to-close, whichever is
 * first. `timeoutMs` is the length of that bound, for the margin. Activities scheduled before the
 * workflow set a schedule-to-close have only the start-to-close.
 */
function boundedDeadline(info: Context['info']): { timeoutMs: number; deadline: number } {
  const attemptEnd = info.currentAttemptScheduledTimestampMs + info.startToCloseTimeoutMs;
  const total = info.scheduleToCloseTimeoutMs > 0 ? info.scheduledTimestampMs + info.scheduleToCloseTimeoutMs : Infinity;
  return total <= attemptEnd
    ? { timeoutMs: info.scheduleToCloseTimeoutMs, deadline: total }
    : { timeoutMs: info.startToCloseTimeoutMs, deadline: attemptEnd };
}

/** Cancellation reasons the SDK reports (the CancelledFailure message) mapped to ours. */
function reasonFromCancellation(ctx: Context): InterruptReason {
  const details = ctx.cancellationDetails;
  if (details?.paused) return 'paused';
  if (details?.timedOut) return 'timed-out';
  if (details?.workerShutdown) return 'worker-shutdown';
  const message = (ctx.cancellationSignal.reason as Error | undefined)?.message;
  switch (message) {
    case 'WORKER_SHUTDOWN':
      return 'worker-shutdown';
    case 'TIMED_OUT':
    case 'NOT_FOUND':
      return 'timed-out';
    case 'PAUSED':
      return 'paused';
    default:
      return 'cancelled';
  }
}

export async function runTraining(deps: TrainingDeps, input: TrainInput): Promise<TrainingOutcome> {
  const ctx = Context.current();
  const { info } = ctx;
  const { spec, sessionId } = input;
  const workflowId = info.workflowExecution?.workflowId ?? '';
  const fields = { workflowId, sessionId, experimentId: spec.id, attempt: info.attempt, epoch: 0 };
  return logContext.run(fields, () => train(deps, input, ctx, fields));
}

async function train(
  deps: TrainingDeps,
  input: TrainInput,
  ctx: Context,
  fields: { workflowId: string; experimentId: string; attempt: number; epoch: number },
): Promise<TrainingOutcome> {
  const { info } = ctx;
  const { spec, sessionId } = input;
  const attempt = info.attempt;
  // workflowId, experimentId, attempt and epoch come from logContext (the root logger's mixin),
  // so they are on every line, the SDK's own activity logs included, and never duplicated.
  const log = deps.logger;

  const trainer = deps.trainers.get(spec.trainer);
  if (!trainer) {
    const known = [...deps.trainers.keys()].join(', ');
    throw ApplicationFailure.nonRetryable(`experiment ${spec.id}: trainer: expected one of ${known}, received ${JSON.stringify(spec.trainer)}`, 'UnknownTrainer');
  }
  let params: unknown;
  try {
    params = trainer.parseParams(spec.params ?? {});
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`experiment ${spec.id}: ${(err as Error).message}`, 'InvalidParams');
  }

  const key = storeKey(sessionId, spec.id);
  const runId = info.workflowExecution?.runId;
  const fence: FenceToken | undefined = runId ? { invocation: input.invocation ?? 0, attempt } : undefined;
  // Before choosing the resume point: from here on no older attempt can add a checkpoint.
  if (runId && fence) await deps.store.registerAttempt(key, runId, fence).catch((err: unknown) => rethrowStale(err, log));
  const resume = await findResumePoint(deps.store, key, runId, input, info.heartbeatDetails as HeartbeatDetails | undefined, log);
  // Rewinds the metric history to the resume point before this attempt writes any point.
  const history = new MetricHistoryWriter(deps.store.metricHistory?.(), key, runId, { invocation: input.invocation ?? 0, attempt }, log, deps.metricHistory);
  await history.begin(resume?.pointer);

  let latest: CheckpointPointer | null = resume?.pointer ?? null;
  let epoch = resume?.pointer.epoch ?? 0;
  let step = resume?.pointer.step ?? 0;
  let metrics: Metrics = resume?.pointer.metrics ?? {};
  let epochs = trainer.epochs?.(params) ?? null;
  const resumedFrom = resume ? resume.pointer.epoch : null;
  fields.epoch = epoch;
  const meter = deps.metrics?.forRun({ session: sessionId, trainer: trainer.name }, epoch, step);
  if (resume) meter?.resumed();

  const beatEveryMs = deps.heartbeatIntervalMs ?? Math.max(20, Math.min(1000, Math.floor(input.heartbeatTimeoutMs / 4)));
  let lastBeat = 0;
  const beat = () => {
    lastBeat = performance.now();
    const details: HeartbeatDetails = { latest, epoch, step, epochs, metrics, attempt, resumedFrom };
    ctx.heartbeat(details);
  };

  let reason: InterruptReason | undefined;
  const abort = new AbortController();
  let resolveInterruption!: (r: InterruptReason) => void;
  const interruption = new Promise<InterruptReason>((resolve) => (resolveInterruption = resolve));
  const interrupt = (why: InterruptReason) => {
    if (reason) return;
    reason = why;
    meter?.interrupted(why);
    log.info({ reason: why, epoch, step }, 'interrupted: checkpointing at the next step boundary');
    abort.abort(why);
    resolveInterruption(why);
  };
  // Cancellation and the deadline fire from outside this run's async context: bind them to it so
  // their log lines carry the run's fields.
  const onCancel = AsyncResource.bind(() => interrupt(reasonFromCancellation(ctx)));
  ctx.cancellationSignal.addEventListener('abort', onCancel);
  let deadlineTimer: NodeJS.Timeout | undefined;
  if (input.timeoutMode === 'bounded') {
    const { timeoutMs, deadline } = boundedDeadline(info);
    const margin = deadlineMargin(timeoutMs, trainer.stopTimeMs?.(params) ?? 0);
    deadlineTimer = setTimeout(AsyncResource.bind(() => interrupt('timed-out')), Math.max(0, deadline - margin - Date.now()));
  }

  let stale: ApplicationFailure | undefined;
  // Store calls of this attempt: a refusal as stale stops the trainer (the server has already
  // timed this attempt out, or a newer one would not exist) and decides how the attempt ends.
  const fenced = async <T>(write: Promise<T>): Promise<T> => {
    // A remote store's write can outlast the heartbeat timeout (a large upload, a server pausing):
    // keep heartbeating the previous pointer meanwhile, so the server does not time the attempt out.
    const keepAlive = setInterval(AsyncResource.bind(beat), beatEveryMs);
    try {
      return await watchdog.busy(write);
    } catch (err) {
      if (!(err instanceof StaleAttemptError)) throw err;
      stale ??= staleFailure(err, log);
      interrupt('timed-out');
      throw stale;
    } finally {
      clearInterval(keepAlive);
    }
  };
  const watchdog = startWatchdog(
    input.heartbeatTimeoutMs,
    AsyncResource.bind((silentMs: number) => {
      log.warn({ silentMs: Math.round(silentMs), heartbeatTimeoutMs: input.heartbeatTimeoutMs }, 'no step, checkpoint or output from the trainer for the heartbeat timeout: stopping it on this worker');
      interrupt('stalled');
    }),
  );
  let checkpointDir: string | undefined;
  const devices = (await deps.devices?.claim(info.taskQueue)) ?? [];
  if (devices.length > 0) log.info({ devices, taskQueue: info.taskQueue }, 'devices of this slot');
  const profiler = input.profile ? new Profiler(input.profile, () => interrupt('profiled')) : null;
  const background = new BackgroundPersist();
  const snapshots = new SnapshotBuffer();

  let lastYield = performance.now();
  const tctx: TrainerContext<unknown> = {
    experimentId: spec.id,
    sessionId,
    params,
    attempt,
    resume,
    devices,
    get interrupted() {
      return reason !== undefined;
    },
    get interruptReason() {
      return reason;
    },
    interruption,
    signal: abort.signal,
    get checkpointDir() {
      // Per attempt, so a stale attempt's program never overwrites a newer one's files.
      checkpointDir ??= deps.store.dirFor(key, runId, fence);
      return checkpointDir;
    },
    log,
    touch() {
      watchdog.touch();
      if (performance.now() - lastBeat >= beatEveryMs) beat();
    },
    setEpochs(n) {
      epochs = n;
    },
    async step(report) {
      background.throwFailure();
      watchdog.touch();
      if (!reason) profiler?.step();
      epoch = report.epoch;
      step = report.step;
      fields.epoch = epoch;
      if (report.metrics) metrics = report.metrics;
      history.step(report);
      meter?.progress(epoch, step);
      const now = performance.now();
      if (now - lastBeat >= beatEveryMs) beat();
      // Cancellation reaches the activity through the event loop; a tight synchronous loop
      // would never see it.
      if (now - lastYield >= 5) {
        lastYield = now;
        await yieldToEventLoop();
      }
    },
    async checkpoint(c) {
      await background.settled();
      await fenced(history.checkpoint(c));
      const startedAt = performance.now();
      const pointer = await fenced(deps.store.save(key, { epoch: c.epoch, step: c.step, attempt, data: c.data, metrics: c.metrics, runId, fence }, input.checkpointsToKeep));
      return recorded(pointer, startedAt);
    },
    async checkpointInBackground(c) {
      if (!(c.data instanceof Uint8Array)) {
        throw new TypeError(`checkpointInBackground: data: expected a Uint8Array the trainer no longer changes, received ${typeof c.data}; stream chunks with checkpoint()`);
      }
      // A call not awaited by the trainer may have started a persist meanwhile: wait for that one
      // too, so that at most one is in flight and the snapshot buffer is never refilled under it.
      // The check and the start below run with no await between them.
      do await background.settled();
      while (background.busy);
      // No persist is in flight now, so the runtime's snapshot buffer is free to be filled again.
      const data = c.copy === true ? snapshots.copy(c.data) : c.data;
      watchdog.touch();
      // The trainer is at the checkpoint's position now: progress says so at once (with the
      // previous pointer as `latest` until this one is durable).
      moveTo(c);
      beat();
      // A search gate stops the trainer now, at the call; the attempt ends once the persist lands.
      if (gateReached(c.epoch, c.step)) interrupt('gate');
      const startedAt = performance.now();
      // The history point is written before the checkpoint commits (history-writer.ts).
      const save = fenced(history.checkpoint(c)).then(() => fenced(deps.store.save(key, { epoch: c.epoch, step: c.step, attempt, data, metrics: c.metrics, runId, fence, background: true }, input.checkpointsToKeep)));
      background.start(save, (pointer) => {
        recorded(pointer, startedAt, false);
      });
    },
    async adoptCheckpoint(file, c) {
      await fenced(history.checkpoint(c));
      const startedAt = performance.now();
      const pointer = await fenced(deps.store.adopt(key, file, { epoch: c.epoch, step: c.step, attempt, metrics: c.metrics, runId, fence }, input.checkpointsToKeep));
      return recorded(pointer, startedAt);
    },
  };
  /** A search gate (TrainInput.stopAtEpoch): an end-of-epoch checkpoint at or past it, before the last epoch. */
  const gateReached = (atEpoch: number, atStep: number) =>
    input.stopAtEpoch !== undefined && atStep === 0 && atEpoch >= input.stopAtEpoch && (epochs === null || atEpoch < epochs);
  // Checkpoint first, then heartbeat: a pointer is never sent before its blob is durable. A
  // background persist lands after newer steps: it moves only `latest`, not the progress.
  /** The trainer reached a checkpoint's position: progress (epoch, step, metrics) moves there. */
  const moveTo = (at: { epoch: number; step: number; metrics?: Metrics }) => {
    meter?.progress(at.epoch, at.step);
    epoch = at.epoch;
    step = at.step;
    fields.epoch = epoch;
    if (at.metrics && Object.keys(at.metrics).length > 0) metrics = at.metrics;
  };
  const recorded = (pointer: CheckpointPointer, startedAt: number, position = true) => {
    meter?.checkpoint((performance.now() - startedAt) / 1000, pointer.bytes);
    latest = pointer;
    if (position) moveTo(pointer);
    beat();
    // The checkpoint's own position: a background persist lands after training has moved on.
    log.info({ epoch: pointer.epoch, step: pointer.step, checkpointId: pointer.checkpointId, sha256: pointer.sha256, bytes: pointer.bytes }, 'checkpoint saved');
    // A search gate: this epoch's checkpoint is the stopping point; the session decides what follows.
    if (gateReached(pointer.epoch, pointer.step)) interrupt('gate');
    return pointer;
  };

  log.info({ epoch, step, resumedFrom, trainer: trainer.name, timeoutMode: input.timeoutMode }, resume ? 'resuming training' : 'starting training');
  beat();
  const trainStart = performance.now();
  const outcome = (status: TrainingOutcome['status'], result: TrainingOutcome['result']): TrainingOutcome => ({
    status,
    interruptReason: reason ?? null,
    result,
    latest,
    attempt,
    resumedFrom,
    epochs,
    epoch,
    trainingMs: Math.round(performance.now() - trainStart),
    ...(profiler && { profile: profiler.measurement(trainer.totalSteps?.(params) ?? null, deps.devices?.className ?? null) }),
  });

  let trained: Awaited<ReturnType<Trainer['train']>>;
  try {
    trained = await trainer.train(tctx);
    // The persist in flight belongs to this attempt: completion and interruption wait for it.
    await background.settled();
  } catch (err) {
    // So do a failure and a shutdown, so the outcome names the newest durable checkpoint.
    await background.landed();
    if (stale) throw stale;
    if (reason === 'cancelled') {
      log.warn({ err }, 'trainer failed while stopping after a cancel; recording the interruption');
      return outcome('interrupted', null);
    }
    if (reason === 'worker-shutdown') throw shutdownFailure(spec.id, outcome('interrupted', null));
    throw err;
  } finally {
    await history.close();
    watchdog.stop();
    clearTimeout(deadlineTimer);
    ctx.cancellationSignal.removeEventListener('abort', onCancel);
  }

  if (stale) throw stale;
  if (trained !== undefined) {
    const result = {
      finalLoss: trained.finalLoss ?? null,
      accuracy: trained.accuracy ?? null,
      modelSha256: trained.modelSha256 ?? null,
      metrics: trained.metrics ?? {},
    };
    log.info({ epoch, finalLoss: result.finalLoss, accuracy: result.accuracy, modelSha256: result.modelSha256 }, 'training completed');
    return outcome('completed', result);
  }
  if (!reason) {
    throw ApplicationFailure.nonRetryable(`trainer ${trainer.name} returned no result without being interrupted`, 'TrainerContract');
  }
  const stopped = outcome('interrupted', null);
  log.info({ reason, epoch, step, checkpointId: latest?.checkpointId ?? null }, 'training stopped at a step boundary');
  switch (reason) {
    case 'cancelled':
    case 'gate':
    case 'profiled':
      return stopped;
    case 'worker-shutdown':
      throw shutdownFailure(spec.id, stopped);
    case 'timed-out':
      throw ApplicationFailure.nonRetryable(
        `experiment ${spec.id} reached its start-to-close limit of ${formatDuration(info.startToCloseTimeoutMs)}; last checkpoint ${latest?.checkpointId ?? 'none'} (epoch ${latest?.epoch ?? 0})`,
        'ExperimentTimedOut',
        stopped,
      );
    case 'paused':
      // Rethrowing the cancellation lets the server reschedule the activity when it is unpaused.
      throw ctx.cancellationSignal.reason;
    case 'stalled':
      // Retryable: the server retries the attempt (after its own heartbeat timeout) on any worker.
      throw ApplicationFailure.create({
        message: `experiment ${spec.id}: the trainer showed no sign of life (step, checkpoint or output) for the heartbeat timeout of ${formatDuration(input.heartbeatTimeoutMs)} and was stopped on this worker; last checkpoint ${latest?.checkpointId ?? 'none'}`,
        type: 'TrainerStalled',
        details: [stopped],
      });
  }
}

/** A store refusal as stale, logged with both tokens, as the failure that ends the attempt. */
function staleFailure(err: StaleAttemptError, log: Logger): ApplicationFailure {
  log.error({ attempted: err.attempted, newest: err.newest, runId: err.runId }, `${err.message}`);
  return ApplicationFailure.nonRetryable(err.message, err.type, { attempted: err.attempted, newest: err.newest });
}

function rethrowStale(err: unknown, log: Logger): never {
  if (err instanceof StaleAttemptError) throw staleFailure(err, log);
  throw err;
}

function shutdownFailure(experimentId: string, stopped: TrainingOutcome): ApplicationFailure {
  const at = stopped.latest ? `checkpoint ${stopped.latest.checkpointId} (epoch ${stopped.latest.epoch}, step ${stopped.latest.step})` : 'no checkpoint yet';
  return ApplicationFailure.create({
    message: `worker shutting down: experiment ${experimentId} stopped at ${at}; another worker resumes it`,
    type: 'WorkerShutdown',
    details: [stopped],
    // The checkpoint is durable and the worker is leaving: retry now, not after the policy's backoff.
    nextRetryDelay: '100ms',
  });
}

/**
 * Own checkpoints first (this experiment workflow run's: a session re-run with the same ids
 * starts fresh), then the explicit `resumeFrom` source, across all of its runs.
 */
async function findResumePoint(
  store: CheckpointStore,
  key: string,
  runId: string | undefined,
  input: TrainInput,
  heartbeat: HeartbeatDetails | undefined,
  log: Logger,
): Promise<VerifiedCheckpoint | undefined> {
  // The client checks this too; a starter that bypasses it meets the same rule here, before any read.
  const problem = crossSessionResumeProblem(input.spec, input.sessionId, input.allowCrossSessionResume);
  if (problem) throw ApplicationFailure.nonRetryable(`experiment ${input.spec.id}: ${problem}`, 'CrossSessionResume');
  const own = await store.latestVerified(key, [heartbeat?.latest], { runId });
  for (const warning of own.warnings) log.warn({ warning }, 'skipping a checkpoint that does not verify');
  if (own.checkpoint) return own.checkpoint;
  const source = input.spec.resumeFrom;
  if (!source) return undefined;

  const found = source.checkpointId
    ? await verifiedById(store, source.experiment, source.checkpointId)
    : await store.latestVerified(source.experiment);
  for (const warning of found.warnings) log.warn({ warning, resumeFrom: source.experiment }, 'skipping a checkpoint that does not verify');
  if (!found.checkpoint) {
    throw ApplicationFailure.nonRetryable(
      `experiment ${input.spec.id}: resumeFrom ${source.experiment}${source.checkpointId ? ` checkpoint ${source.checkpointId}` : ''}: no verified checkpoint to resume from${found.warnings.length ? ` (${found.warnings.join('; ')})` : ''}`,
      'NoCheckpoint',
    );
  }
  log.info({ resumeFrom: source.experiment, checkpointId: found.checkpoint.pointer.checkpointId }, 'new run resumes from another experiment');
  return found.checkpoint;
}

async function verifiedById(store: CheckpointStore, key: string, checkpointId: string) {
  const pointer = (await store.list(key)).find((p) => p.checkpointId === checkpointId);
  if (!pointer) return { checkpoint: undefined, warnings: [`checkpoint ${checkpointId} is not in the manifest of ${key}`] };
  try {
    return { checkpoint: { pointer, data: await store.read(pointer) }, warnings: [] };
  } catch (err) {
    return { checkpoint: undefined, warnings: [(err as Error).message] };
  }
}
