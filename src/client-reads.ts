/**
 * Reading a session in bounded pieces, for the client (client.ts): the session's paged status
 * query, and Temporal visibility for what the session no longer holds (its experiment workflows,
 * counted or listed by their search attributes), and a running experiment's last heartbeat. No
 * answer here grows with the session's size.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { MAX_PAGE_LIMIT, sessionStatusQuery, WORKFLOW_TYPES, type SessionSnapshot } from './shared/definitions';
import { idProblem, parseExperimentWorkflowId } from './shared/ids';
import { InvalidInputError } from './shared/schema';
import { TERMINAL_EXPERIMENT_STATES, digestKind, type ExperimentState, type ExperimentStatus, type HeartbeatDetails } from './shared/types';
import type { sessionWorkflow } from './workflows/session/workflow';

/** One page of a session's experiments read from visibility (ExperimentsClient.experimentsPage). */
export interface ExperimentsPage {
  /** 1-based page number and its size. */
  readonly page: number;
  readonly pageSize: number;
  /** Experiment workflows of the session that visibility counts (started ones; queued rows have none yet). */
  readonly total: number;
  /** Each experiment's status from its workflow's memo, newest start first. */
  readonly experiments: ExperimentStatus[];
}

/** Most experiments one page may hold (the CLI's --page-size, ExperimentsClient.experimentsPage). */
export const MAX_PAGE_SIZE = 1000;
const DEFAULT_PAGE_SIZE = 100;

/**
 * Every row a running session holds (queued, running, and the ended rows it kept), read page by
 * page so each answer stays bounded: what the progress view, approval prompts, hints and the
 * report need. A session from before paged answers returns all rows in its first answer.
 */
export async function heldRows(handle: WorkflowHandle<typeof sessionWorkflow>): Promise<SessionSnapshot> {
  const first = await handle.query(sessionStatusQuery, { offset: 0, limit: MAX_PAGE_LIMIT });
  const { page } = first;
  if (!page || first.experiments.length >= page.held) return first;
  const { held } = page;
  const experiments = [...first.experiments];
  // The rows may change between two answers: a row can show twice or be missed once; the next read is whole again.
  while (experiments.length < held) {
    const next = await handle.query(sessionStatusQuery, { offset: experiments.length, limit: MAX_PAGE_LIMIT });
    if (next.experiments.length === 0) break;
    experiments.push(...next.experiments);
  }
  const ids = new Set<string>();
  const unique = experiments.filter((e) => !ids.has(e.id) && ids.add(e.id));
  return { ...first, experiments: unique, truncated: unique.length < (first.total ?? unique.length), page: { ...page, offset: 0, limit: unique.length } };
}

/**
 * One page of a session's experiments from visibility: every experiment workflow with
 * `SessionId = sessionId`, including those whose rows the session folded away at
 * continue-as-new (a session result or status query holds a bounded number). Each status is
 * the one the experiment published in its memo. A session id reused by a later session lists
 * the experiments of both. Visibility is eventually consistent: a just-ended experiment may
 * show its previous state for a moment.
 */
export async function experimentsPage(client: Client, sessionId: string, options: { page?: number; pageSize?: number } = {}): Promise<ExperimentsPage> {
  const page = options.page ?? 1;
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const problems = [pageProblem('page', page, Number.MAX_SAFE_INTEGER), pageProblem('pageSize', pageSize, MAX_PAGE_SIZE), idProblem('session', sessionId)].filter((p) => p !== undefined);
  if (problems.length > 0) throw new InvalidInputError(problems);
  const query = experimentsQuery(sessionId);
  const experiments: ExperimentStatus[] = [];
  let skip = (page - 1) * pageSize;
  for await (const wf of client.workflow.list({ query, pageSize: Math.min(pageSize * page, MAX_PAGE_SIZE) })) {
    if (skip > 0) {
      skip--;
      continue;
    }
    experiments.push(experimentFromMemo(sessionId, wf.workflowId, wf.memo));
    if (experiments.length >= pageSize) break;
  }
  const { count } = await client.workflow.count(query);
  return { page, pageSize, total: count, experiments };
}

/** Every experiment of a session from visibility, page by page (see experimentsPage). */
export async function* allExperiments(client: Client, sessionId: string, options: { pageSize?: number } = {}): AsyncGenerator<ExperimentStatus> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const problem = idProblem('session', sessionId) ?? pageProblem('pageSize', pageSize, MAX_PAGE_SIZE);
  if (problem) throw new InvalidInputError([problem]);
  for await (const wf of client.workflow.list({ query: experimentsQuery(sessionId), pageSize })) {
    yield experimentFromMemo(sessionId, wf.workflowId, wf.memo);
  }
}

/**
 * A session's experiments by state, counted by visibility (the `ExperimentState` search
 * attribute of every experiment workflow, folded ones included); states with none are left out.
 * Queued rows have no workflow yet: the session's own `counts` has them.
 */
export async function experimentCounts(client: Client, sessionId: string): Promise<Partial<Record<ExperimentState, number>>> {
  const problem = idProblem('session', sessionId);
  if (problem) throw new InvalidInputError([problem]);
  const states: ExperimentState[] = [...TERMINAL_EXPERIMENT_STATES, 'running', 'awaiting-resources', 'awaiting-approval'];
  const counts = await Promise.all(states.map(async (state) => [state, (await client.workflow.count(`${experimentsQuery(sessionId)} AND ExperimentState = "${state}"`)).count] as const));
  return Object.fromEntries(counts.filter(([, n]) => n > 0));
}

/** Merges the training activity's last heartbeat (attempt, epoch, checkpoint) into a status. */
export async function liveExperiment(client: Client, status: ExperimentStatus): Promise<ExperimentStatus> {
  try {
    const desc = await client.workflow.getHandle(status.workflowId).describe();
    const pending = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainExperiment');
    // A routed child waiting for a worker that fits is `running` to its session: its memo says more.
    const own = desc.memo?.experiment as ExperimentStatus | undefined;
    if (!pending) return own?.state === 'awaiting-resources' ? { ...status, state: own.state, reason: own.reason } : { ...status, ...(own?.hardwareClass && { hardwareClass: own.hardwareClass }) };
    // Raw from describe: the codecs (encryption) have not run on it yet.
    const payloads = pending.heartbeatDetails?.payloads;
    const details = payloads?.length ? await decodeFromPayloadsAtIndex<HeartbeatDetails>(client.options.loadedDataConverter, 0, payloads) : undefined;
    const latest = details?.latest ?? null;
    return {
      ...status,
      attempt: pending.attempt ?? status.attempt,
      epoch: details?.epoch ?? status.epoch,
      epochs: details?.epochs ?? status.epochs,
      resumedFrom: details?.resumedFrom ?? status.resumedFrom,
      latestCheckpoint: latest ? { id: latest.checkpointId, epoch: latest.epoch, sha256: latest.sha256, uri: latest.uri, ...digestKind(latest) } : status.latestCheckpoint,
      metrics: details?.metrics ?? status.metrics,
    };
  } catch {
    return status;
  }
}

/** The visibility query of a session's experiment workflows (the id is checked by idProblem first). */
function experimentsQuery(sessionId: string): string {
  return `SessionId = "${sessionId}" AND WorkflowType = "${WORKFLOW_TYPES.experiment}"`;
}

function pageProblem(field: string, value: unknown, max: number): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max) return undefined;
  return `${field}: expected an integer from 1 to ${max}, received ${JSON.stringify(value) ?? String(value)}`;
}

/** An experiment's status from its memo (`experiment`), or a blank one when the memo has none yet. */
function experimentFromMemo(sessionId: string, workflowId: string, memo: Record<string, unknown> | undefined): ExperimentStatus {
  const status = memo?.experiment as ExperimentStatus | undefined;
  if (status && typeof status === 'object' && typeof status.id === 'string') return status;
  const id = parseExperimentWorkflowId(workflowId)?.experimentId ?? workflowId;
  return { id, sessionId, workflowId, state: 'queued', timeoutMode: 'bounded', attempt: 0, epoch: 0, epochs: null, latestCheckpoint: null, resumedFrom: null, result: null, preemptions: 0, reason: 'no status published yet' };
}
