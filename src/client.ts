/**
 * The client library: start sessions, approve, add experiments, read status and hints,
 * cancel and resume. The CLI is a thin layer over this class.
 *
 * Every input is validated here, before anything starts (the checks live in client-validation.ts):
 * structure through the shared zod schema, and params through the registered trainer's own
 * `parseParams`. A bad spec throws `InvalidInputError` naming the field, and no workflow is started.
 */
import { Client, WorkflowNotFoundError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { experimentIdProblem, openCheckpointStore, readNewestRunHistory, type CheckpointStore, type RunHistory } from './activities/checkpoint-store';
import type { AnyTrainer } from './activities/trainer';
import { builtInTrainers } from './activities/trainers';
import { ProgramRegistry, type ProgramDefinition } from './activities/trainers/command';
import { signClaim } from './approver-keys';
import { configFromEnv } from './config';
import {
  addExperimentsUpdate,
  addSweepsUpdate,
  approvalQuery,
  approveUpdate,
  cancelReasonSignal,
  rejectUpdate,
  type ApprovalState,
  experimentStatusQuery,
  sessionStatusQuery,
  WORKFLOW_TYPES,
  type CheckpointFacts,
  type CheckpointFactsInput,
  type SessionInput,
  type SessionSnapshot,
  type SessionStatusPage,
  type SessionSummary,
} from './shared/definitions';
import { hintsFromStatus } from './shared/hints';
import { pauseUpdate, unpauseUpdate, type PauseState } from './shared/pause';
import { idProblem, parseExperimentWorkflowId, storeKey } from './shared/ids';
import type { CheckpointPointer } from './shared/types';
import { resolvePolicy, taskPriority, type ResolvedPolicy } from './shared/policy';
import {
  InvalidInputError,
  approveInputSchema,
  sweepListSchema,
  rejectInputSchema,
  parseOrThrow,
  sessionPolicySchema,
} from './shared/schema';
import type { MetricPoint } from './shared/metric-history';
import type { ApprovalRecord, ApproveInput, ExperimentSpec, RejectInput, ExperimentStatus, ResumeHints, SessionPolicy } from './shared/types';
import { sessionDetails, sessionSummary } from './shared/user-metadata';
import { sweepStemIssues, type Sweep } from './shared/sweep';
import * as validation from './client-validation';
import type { ExperimentState } from './shared/types';
import { allExperiments, experimentCounts, experimentsPage, heldRows, liveExperiment, type ExperimentsPage } from './client-reads';
import { checkpointCounts, checkpointFacts } from './client-checkpoints';
import type { sessionWorkflow } from './workflows/session/workflow';

/** The session workflow's summary and details in the Temporal UI (src/shared/user-metadata.ts). */
function sessionMetadata(experiments: readonly ExperimentSpec[], policy: ResolvedPolicy) {
  return { staticSummary: sessionSummary(experiments), staticDetails: sessionDetails(experiments, policy) };
}

export { InvalidInputError } from './shared/schema';
export { MAX_PAGE_SIZE, type ExperimentsPage } from './client-reads';

export interface ExperimentsClientOptions {
  readonly client: Client;
  /** @default $TEMPORAL_TASK_QUEUE, else 'experiments' */
  readonly taskQueue?: string;
  /** Trainers known to the workers, for validating specs before anything starts. @default the built-ins */
  readonly trainers?: ReadonlyMap<string, AnyTrainer> | readonly AnyTrainer[];
  /**
   * The programs the workers run (the same list or file they were given), so that a `command`
   * spec naming another program, or params its schema rejects, fail here before anything
   * starts. Workers do not publish their programs through Temporal, so without this a client
   * checks only the shape of `command` specs and the worker rejects an unknown program when the
   * attempt starts (non-retryable). Ignored when `trainers` is given.
   * @default unknown
   */
  readonly programs?: readonly ProgramDefinition[] | ProgramRegistry;
  /**
   * The checkpoint store the workers write to. The client reads only metric history from it
   * (`metrics`), straight from the store (S3 included), never from a worker's disk. Hints, resume
   * and `run --resume` ask a worker through Temporal (`checkpointFacts`) instead, so they work on
   * a machine without the store or its credentials.
   * @default $EXPERIMENTS_CHECKPOINT_URL (S3 with the AWS_* variables), else the local store in $EXPERIMENTS_CHECKPOINT_DIR
   */
  readonly store?: CheckpointStore;
}

export interface StartSessionOptions {
  readonly sessionId: string;
  readonly policy?: SessionPolicy;
  readonly experiments: readonly unknown[];
  /**
   * Sweeps (the pipeline file's `sweeps`), run after `experiments`. Every point is validated
   * here; the session is given the definitions and makes rows of their points a window at a time
   * (SessionInput.sweeps), unless another id starts with a sweep's `<idPrefix>-` or two sweeps'
   * stems overlap: then it is given the points as experiments. @default none
   */
  readonly sweeps?: readonly unknown[];
  /** Start approved; recorded as `pre-approved` by this name. */
  readonly preApproved?: ApproveInput;
  readonly keepOpen?: boolean;
  readonly continueAsNewAfterEvents?: number;
}

/** Thrown when an id names no session or experiment. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

export type StatusResult = SessionSnapshot | (ExperimentStatus & { kind: 'experiment' });

export class ExperimentsClient {
  readonly client: Client;
  readonly taskQueue: string;
  readonly trainers: ReadonlyMap<string, AnyTrainer>;
  readonly store: CheckpointStore;

  constructor(options: ExperimentsClientOptions) {
    const env = configFromEnv();
    this.client = options.client;
    this.taskQueue = options.taskQueue ?? env.taskQueue;
    const programs = options.programs === undefined || options.programs instanceof ProgramRegistry ? options.programs : new ProgramRegistry(options.programs);
    const trainers = options.trainers ?? builtInTrainers(programs);
    this.trainers = trainers instanceof Map ? trainers : new Map((trainers as readonly AnyTrainer[]).map((t) => [t.name, t]));
    this.store = options.store ?? openCheckpointStore({ checkpointUrl: env.checkpointUrl, checkpointDir: env.checkpointDir, cacheDir: env.checkpointCacheDir });
  }

  /** Validates specs (structure, unique ids, known trainer, trainer params) or throws InvalidInputError (client-validation.ts). */
  validateExperiments(raw: readonly unknown[], existing: readonly string[] = [], prefix = 'experiments'): ExperimentSpec[] {
    return validation.validateExperiments(this.trainers, raw, existing, prefix);
  }

  /**
   * Every point of `sweeps` as a spec, each validated like an experiment (trainer, params, an id
   * unique against `explicit` and each other), or InvalidInputError naming the sweep's field.
   */
  validateSweepPoints(sweeps: readonly Sweep[], explicit: readonly ExperimentSpec[], held: readonly string[] = []): ExperimentSpec[] {
    return validation.validateSweepPoints(this, sweeps, explicit, held);
  }

  /** Throws InvalidInputError when a spec's resumeFrom reaches a session the policy does not allow. */
  checkResumeSources(specs: readonly ExperimentSpec[], sessionId: string, policy: ResolvedPolicy, prefix = 'experiments'): void {
    validation.checkResumeSources(specs, sessionId, policy, prefix);
  }

  /**
   * Throws InvalidInputError when the policy's search metric is one that no trainer of `specs`
   * reports, and every one of them declares its metrics (Trainer.metrics).
   */
  checkSearchMetric(policy: ResolvedPolicy, specs: readonly ExperimentSpec[]): void {
    validation.checkSearchMetric(this.trainers, policy, specs);
  }

  /** Throws InvalidInputError for a `hardwareClass` no worker of this task queue ever registered. */
  checkHardwareClasses(specs: readonly ExperimentSpec[], prefix = 'experiments'): Promise<void> {
    return validation.checkHardwareClasses(this.client, this.taskQueue, specs, prefix);
  }

  /** Whether payloads leave this client encoded (a payload codec such as encryption): then search attributes must not carry params. */
  private encrypts(): boolean {
    return (this.client.options.loadedDataConverter.payloadCodecs?.length ?? 0) > 0;
  }

  validatePolicy(raw: unknown): ResolvedPolicy {
    return resolvePolicy(parseOrThrow(sessionPolicySchema, raw ?? {}, 'policy'));
  }

  /** Validates everything, then starts the session workflow (id = sessionId). */
  async startSession(options: StartSessionOptions): Promise<WorkflowHandleWithFirstExecutionRunId<typeof sessionWorkflow>> {
    const problem = idProblem('session', options.sessionId);
    if (problem) throw new InvalidInputError([problem]);
    const policy = this.validatePolicy(options.policy);
    const explicit = this.validateExperiments(options.experiments);
    const sweeps = options.sweeps === undefined ? [] : parseOrThrow(sweepListSchema, options.sweeps, 'sweeps');
    // Every point is checked here, before anything starts; the session gets the definitions.
    const points = this.validateSweepPoints(sweeps, explicit);
    const experiments = [...explicit, ...points];
    this.checkResumeSources(experiments, options.sessionId, policy);
    this.checkSearchMetric(policy, experiments);
    await this.checkHardwareClasses(experiments);
    const preApproved = options.preApproved ? parseOrThrow(approveInputSchema, options.preApproved, 'preApproved') : undefined;
    // By reference where the sweeps' id stems are their own; else as the points themselves.
    const byReference = sweeps.length > 0 && sweepStemIssues(explicit.map((e) => e.id), sweeps).length === 0;
    const input: SessionInput = {
      sessionId: options.sessionId,
      policy,
      experiments: byReference ? explicit : experiments,
      ...(byReference && { sweeps }),
      preApproved,
      keepOpen: options.keepOpen,
      continueAsNewAfterEvents: options.continueAsNewAfterEvents,
      ...(this.encrypts() && { redactSearchAttributes: true }),
    };
    return this.client.workflow.start<typeof sessionWorkflow>(WORKFLOW_TYPES.session, {
      workflowId: options.sessionId,
      taskQueue: this.taskQueue,
      args: [input],
      ...sessionMetadata(experiments, policy),
      priority: taskPriority(policy, options.sessionId),
    });
  }

  /**
   * Approves a session through its `approveSession` update: a refused approval (not a listed
   * approver, a missing or bad signature) throws WorkflowUpdateFailedError with the reason.
   * With `keyFile` (an Ed25519 PEM key from `experiments keygen`) the approval is signed over
   * the session id, approver, time, note and the estimates of the experiments waiting now.
   */
  async approve(sessionId: string, input: ApproveInput, options: { keyFile?: string } = {}): Promise<ApprovalRecord> {
    const approval = parseOrThrow(approveInputSchema, input, 'approve');
    const signed = options.keyFile ? await this.signedClaim(sessionId, 'approve', approval.by, approval.note ?? null, options.keyFile) : {};
    return this.sessionHandle(sessionId).executeUpdate(approveUpdate, { args: [{ ...approval, ...signed }] });
  }

  /**
   * Pauses a session: its running experiments checkpoint and end their training invocation,
   * freeing their workers, and no experiment starts until `unpause`. Also a `pause` signal.
   */
  async pause(sessionId: string): Promise<PauseState> {
    return this.sessionHandle(sessionId).executeUpdate(pauseUpdate);
  }

  /** Resumes a paused session: its experiments continue from their checkpoints. Also an `unpause` signal. */
  async unpause(sessionId: string): Promise<PauseState> {
    return this.sessionHandle(sessionId).executeUpdate(unpauseUpdate);
  }

  /** Ends a session's waiting long-running experiments `rejected`, with the reason (same rules as approve). */
  async reject(sessionId: string, input: RejectInput, options: { keyFile?: string } = {}): Promise<ApprovalRecord> {
    const rejection = parseOrThrow(rejectInputSchema, input, 'reject');
    const signed = options.keyFile ? await this.signedClaim(sessionId, 'reject', rejection.by, rejection.reason, options.keyFile) : {};
    return this.sessionHandle(sessionId).executeUpdate(rejectUpdate, { args: [{ ...rejection, ...signed }] });
  }

  /** The approval state: the approval, the audit, and what is waiting for approval now. */
  async approvalState(sessionId: string): Promise<ApprovalState> {
    return this.sessionHandle(sessionId).query(approvalQuery);
  }

  private async signedClaim(sessionId: string, kind: 'approve' | 'reject', by: string, note: string | null, keyFile: string) {
    const estimates = (await this.approvalState(sessionId)).pending ?? [];
    const claim = { kind, by, at: new Date().toISOString(), note, estimates };
    return { at: claim.at, estimates, signature: signClaim(keyFile, sessionId, claim) };
  }

  /**
   * Adds experiments, and the points of `sweeps`, to a running session; returns the new ids.
   * Duplicates are rejected, and every point is checked before anything is sent. Sweeps whose id
   * stems are their own go by reference (the `addSweeps` update: a definition, however many points
   * it has), after the explicit experiments (their own update); otherwise all go as specs.
   */
  async addExperiments(sessionId: string, raw: readonly unknown[], options: { readonly sweeps?: readonly unknown[] } = {}): Promise<string[]> {
    const snapshot = await this.sessionSnapshot(sessionId);
    const held = snapshot.experiments.map((e) => e.id);
    const sweeps = options.sweeps === undefined ? [] : parseOrThrow(sweepListSchema, options.sweeps, 'sweeps');
    const specs = raw.length === 0 && sweeps.length > 0 ? [] : this.validateExperiments(raw, held);
    const points = this.validateSweepPoints(sweeps, specs, held);
    const all = [...specs, ...points];
    this.checkResumeSources(all, sessionId, snapshot.policy);
    await this.checkHardwareClasses(all);
    const byReference = sweeps.length > 0 && sweepStemIssues([...held, ...specs.map((e) => e.id)], sweeps).length === 0;
    const handle = this.sessionHandle(sessionId);
    const explicit = byReference ? specs : all;
    const added = explicit.length > 0 ? (await handle.executeUpdate(addExperimentsUpdate, { args: [explicit] })).added : [];
    if (byReference) await handle.executeUpdate(addSweepsUpdate, { args: [sweeps] });
    return byReference ? [...added, ...points.map((p) => p.id)] : added;
  }

  /** A session snapshot, or one experiment's status with live progress from its heartbeats. */
  async status(id: string): Promise<StatusResult> {
    const described = await this.describe(id);
    if (described?.type === WORKFLOW_TYPES.session) return this.liveSession(id);
    if (described?.type === WORKFLOW_TYPES.experiment) return { ...(await this.experimentStatus(id)), kind: 'experiment' };
    const parts = parseExperimentWorkflowId(id);
    if (parts) {
      const row = (await this.sessionSnapshot(parts.sessionId)).experiments.find((e) => e.id === parts.experimentId);
      if (row) return { ...row, kind: 'experiment' };
    }
    throw new NotFoundError(`no session or experiment with id ${JSON.stringify(id)}`);
  }

  /**
   * The checkpoint a `{ latest, best }` retention keeps as best for an experiment's newest run
   * (the manifest marks it; pruning never removes it), read from the store; undefined under a
   * plain count, or when the store cannot be read from here. Its blob is read back, so a
   * returned pointer's sha256 was verified.
   */
  async keptBestCheckpoint(sessionId: string, experimentId: string): Promise<CheckpointPointer | undefined> {
    const key = storeKey(sessionId, experimentId);
    try {
      const newest = (await this.store.list(key))[0];
      if (!newest || !this.store.retention) return undefined;
      const marks = await this.store.retention(key, newest.runId);
      const best = marks?.best[0];
      const pointer = best === undefined ? undefined : (await this.store.list(key, { runId: newest.runId })).find((p) => p.checkpointId === best);
      if (pointer) await this.store.read(pointer); // throws unless its sha256 matches
      return pointer;
    } catch {
      return undefined;
    }
  }

  /**
   * The metric history of an experiment's newest run, read from the store: one point per epoch
   * (and sampled steps), rewound past crashes so no position appears twice (see
   * src/shared/metric-history.ts). `experimentId` is `<session>:<experiment>` or
   * `<session>/<experiment>`. Empty when it has none yet.
   */
  async metrics(experimentId: string): Promise<MetricPoint[]> {
    return (await this.metricRun(experimentId))?.points ?? [];
  }

  /** Like `metrics`, with the run id, the attempts' index and every stored point; undefined when there is no history. */
  async metricRun(experimentId: string): Promise<RunHistory | undefined> {
    const problem = experimentIdProblem(experimentId);
    if (problem) throw new InvalidInputError([problem]);
    return readNewestRunHistory(this.store, experimentId);
  }

  /** Resumability hints for an experiment, or for every experiment of a session. */
  async hints(id: string): Promise<ResumeHints | ResumeHints[]> {
    const status = await this.status(id);
    if (status.kind === 'session') return Promise.all(status.experiments.map((e) => this.verifiedHints(e)));
    return this.verifiedHints(status);
  }

  /**
   * Interrupts an experiment (it checkpoints and ends `interrupted`) or a whole session (its
   * running experiments are interrupted, queued ones cancelled). The reason is recorded on
   * every experiment it interrupts.
   */
  async cancel(id: string, reason?: string): Promise<void> {
    const described = await this.describeOrThrow(id);
    const handle = this.client.workflow.getHandle(id);
    if (reason) {
      if (described.type === WORKFLOW_TYPES.session) await this.tellRunningExperiments(id, reason);
      await handle.signal(cancelReasonSignal, { reason });
    }
    await handle.cancel();
  }

  /**
   * Best effort: the running experiments learn the reason before the session's cancel reaches
   * them. It needs a worker to answer the session query, and must never hold up the cancel.
   */
  private async tellRunningExperiments(sessionId: string, reason: string): Promise<void> {
    try {
      const snap = await this.client.connection.withDeadline(Date.now() + 5_000, () => this.sessionHandle(sessionId).query(sessionStatusQuery, { state: 'running', limit: 200 }));
      const running = snap.experiments.filter((e) => e.state === 'running');
      await Promise.all(running.map((e) => this.client.workflow.getHandle(e.workflowId).signal(cancelReasonSignal, { reason }).catch(() => undefined)));
    } catch {
      // No worker answered: only the reason is lost, the cancel still goes through.
    }
  }

  /**
   * Starts a new run of an experiment from its newest verified checkpoint: in `session` when
   * given (added by update), else in a new session `<session>-resume-<n>` with the same policy.
   */
  async resume(experimentWorkflowId: string, options: { session?: string; preApproved?: ApproveInput } = {}): Promise<{ sessionId: string; experimentId: string; workflowId: string }> {
    const described = await this.describeOrThrow(experimentWorkflowId);
    if (described.type !== WORKFLOW_TYPES.experiment) throw new InvalidInputError([`${experimentWorkflowId}: expected an experiment workflow id (<session>:<experiment>), received a ${described.type}`]);
    const spec = described.memo.spec as ExperimentSpec | undefined;
    const policy = described.memo.policy as ResolvedPolicy | undefined;
    const parts = parseExperimentWorkflowId(experimentWorkflowId);
    if (!spec || !policy || !parts) throw new InvalidInputError([`${experimentWorkflowId}: this workflow has no recorded spec to resume`]);
    const source = storeKey(parts.sessionId, parts.experimentId);
    const { latest, warnings } = await this.checkpointFacts(parts);
    if (!latest) throw new InvalidInputError([`${experimentWorkflowId}: no verified checkpoint to resume from${warnings.length ? ` (${warnings.join('; ')})` : ''}`]);
    const next: ExperimentSpec = { ...spec, resumeFrom: { experiment: source, checkpointId: latest.checkpointId } };
    if (options.session) {
      const [id] = await this.addExperiments(options.session, [{ ...next, id: `${spec.id}-resumed` }]);
      return { sessionId: options.session, experimentId: id, workflowId: `${options.session}:${id}` };
    }
    const sessionId = await this.freeSessionId(`${parts.sessionId}-resume`);
    this.validateExperiments([next]);
    // The new session exists to resume this one: its policy allows exactly that source session more.
    const allowed = policy.allowCrossSessionResume;
    const resumePolicy: ResolvedPolicy =
      allowed === true ? policy : { ...policy, allowCrossSessionResume: [...new Set([...(Array.isArray(allowed) ? allowed : []), parts.sessionId])] };
    await this.client.workflow.start<typeof sessionWorkflow>(WORKFLOW_TYPES.session, {
      workflowId: sessionId,
      taskQueue: this.taskQueue,
      args: [{ sessionId, policy: resumePolicy, experiments: [next], preApproved: options.preApproved, ...(this.encrypts() && { redactSearchAttributes: true }) }],
      ...sessionMetadata([next], resumePolicy),
      priority: taskPriority(resumePolicy, sessionId),
    });
    return { sessionId, experimentId: spec.id, workflowId: `${sessionId}:${spec.id}` };
  }

  /** Waits for a session to end and returns its summary (also for failed and cancelled sessions). */
  async waitForSession(sessionId: string): Promise<SessionSummary> {
    const handle = this.sessionHandle(sessionId);
    try {
      return await handle.result();
    } catch {
      const snap = await this.sessionSnapshot(sessionId);
      const completed = snap.counts ? (snap.counts.completed ?? 0) : snap.experiments.filter((e) => e.state === 'completed').length;
      return { ...snap, completed, failed: (snap.total ?? snap.experiments.length) - completed };
    }
  }

  /** The session snapshot (one page, see SessionStatusPage) with each running experiment's last heartbeat merged in. */
  async liveSession(sessionId: string, page?: SessionStatusPage): Promise<SessionSnapshot> {
    const snap = await this.sessionSnapshot(sessionId, page);
    const experiments = await Promise.all(snap.experiments.map((e) => (e.state === 'running' ? liveExperiment(this.client, e) : e)));
    return { ...snap, experiments };
  }

  sessionHandle(sessionId: string): WorkflowHandle<typeof sessionWorkflow> {
    return this.client.workflow.getHandle<typeof sessionWorkflow>(sessionId);
  }

  /**
   * The session's own view. A closed, completed session is read from its result, which needs no
   * worker; a running or cancelled one is queried (a worker must be polling its task queue).
   */
  async sessionSnapshot(sessionId: string, page?: SessionStatusPage): Promise<SessionSnapshot> {
    const handle = this.sessionHandle(sessionId);
    try {
      const desc = await handle.describe();
      if (desc.status.name === 'COMPLETED') return await handle.result();
      return page ? await handle.query(sessionStatusQuery, page) : await heldRows(handle);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no session with id ${JSON.stringify(sessionId)}`);
      throw err;
    }
  }

  /** One page of a session's experiments from visibility, folded ones included (client-reads.ts). */
  experimentsPage(sessionId: string, options: { page?: number; pageSize?: number } = {}): Promise<ExperimentsPage> {
    return experimentsPage(this.client, sessionId, options);
  }

  /** Every experiment of a session from visibility, page by page (client-reads.ts). */
  allExperiments(sessionId: string, options: { pageSize?: number } = {}): AsyncGenerator<ExperimentStatus> {
    return allExperiments(this.client, sessionId, options);
  }

  /** A session's experiment workflows by state, counted by visibility (client-reads.ts). */
  experimentCounts(sessionId: string): Promise<Partial<Record<ExperimentState, number>>> {
    return experimentCounts(this.client, sessionId);
  }

  private async experimentStatus(workflowId: string): Promise<ExperimentStatus> {
    const handle = this.client.workflow.getHandle(workflowId);
    const desc = await handle.describe();
    let status: ExperimentStatus;
    if (desc.status.name === 'RUNNING') status = await handle.query(experimentStatusQuery);
    else status = ((desc.memo?.experiment as ExperimentStatus | undefined) ?? (await handle.query(experimentStatusQuery)));
    return status.state === 'running' ? liveExperiment(this.client, status) : status;
  }

  /**
   * Facts about an experiment's checkpoints, read and verified by a worker of the task queue
   * (client-checkpoints.ts), so the caller needs neither the store nor its credentials.
   */
  checkpointFacts(input: CheckpointFactsInput, options: { timeoutMs?: number } = {}): Promise<CheckpointFacts> {
    return checkpointFacts(this.client, this.taskQueue, input, options);
  }

  /** How many checkpoints each experiment of a session has, asked of a worker (client-checkpoints.ts). */
  checkpointCounts(sessionId: string, experimentIds: readonly string[], options: { timeoutMs?: number } = {}): Promise<Map<string, number>> {
    return checkpointCounts(this.client, this.taskQueue, sessionId, experimentIds, options);
  }

  private async verifiedHints(status: ExperimentStatus): Promise<ResumeHints> {
    const parts = parseExperimentWorkflowId(status.workflowId);
    let pointer = null;
    const warnings: string[] = [];
    if (parts && status.latestCheckpoint) {
      try {
        const facts = await this.checkpointFacts({ ...parts, checkpointId: status.latestCheckpoint.id });
        pointer = facts.named;
        if (!pointer) warnings.push(...facts.warnings.filter((w) => w.includes(status.latestCheckpoint!.id)));
      } catch (err) {
        warnings.push(`checkpoint ${status.latestCheckpoint.id} could not be checked by a worker: ${(err as Error).message}`);
      }
    }
    const hints = hintsFromStatus(status, pointer);
    return { ...hints, warnings: [...hints.warnings, ...warnings] };
  }

  private async describe(id: string): Promise<{ type: string; memo: Record<string, unknown> } | undefined> {
    try {
      const desc = await this.client.workflow.getHandle(id).describe();
      return { type: desc.type, memo: desc.memo ?? {} };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  private async describeOrThrow(id: string) {
    const found = await this.describe(id);
    if (!found) throw new NotFoundError(`no session or experiment with id ${JSON.stringify(id)}`);
    return found;
  }

  private async freeSessionId(base: string): Promise<string> {
    for (let n = 1; ; n++) {
      const candidate = `${base}-${n}`;
      if (!(await this.describe(candidate))) return candidate;
    }
  }
}
