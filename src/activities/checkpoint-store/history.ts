/**
 * Metric history in the checkpoint store: its layout, the I/O contract a store provides for it,
 * and the reader. The writer used by the training runtime is history-writer.ts; the rewind rule
 * is pure, in src/shared/metric-history.ts.
 *
 * Layout. Each experiment run's place (next to its manifest and blobs) has a `history/` folder
 * of objects that are written once and never changed or deleted (append-only on any store,
 * S3 included, which cannot append to an object):
 * - `attempt-<invocation>-<attempt>.json`: the index, one small entry per training attempt,
 *   written before the attempt's first point: where it resumed (see HistoryAttempt);
 * - `points-<invocation>-<attempt>-<seq>.jsonl`: that attempt's points, one MetricPoint a line,
 *   in batches (see history-writer.ts for when a batch is written).
 * A reader lists the folder, reads the index and the batches, and hides rewound points.
 */
import { z } from 'zod';
import { idProblem, parseExperimentWorkflowId, storeKey } from '../../shared/ids';
import { visiblePoints, type HistoryAttempt, type MetricPoint } from '../../shared/metric-history';
import type { CheckpointStore } from './types';

/** The folder of a place that holds its history. */
export const HISTORY_DIR = 'history';

/** Create-once objects in the `history/` folder of one run's place; implemented by each store. */
export interface HistoryObjects {
  /** Writes `name` durably; it becomes visible only complete. Refuses to replace an existing one. */
  create(key: string, runId: string | undefined, name: string, body: Buffer): Promise<void>;
  /** Names in the place's history folder; empty when it has none. */
  list(key: string, runId: string | undefined): Promise<string[]>;
  /** Text of one object; undefined when it does not exist. */
  read(key: string, runId: string | undefined, name: string): Promise<string | undefined>;
  /** The key's run ids that have a place (`undefined` stands for the run-less place). */
  runs(key: string): Promise<(string | undefined)[]>;
}

/** A store that keeps metric history (both built-in stores do). */
export interface WithMetricHistory {
  metricHistory(): HistoryObjects;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** One start of an attempt: its token and how many times that token started before. */
export interface StartToken {
  readonly invocation: number;
  readonly attempt: number;
  readonly restart: number;
}

const startPart = (t: StartToken) => `${pad(t.invocation, 6)}-${pad(t.attempt, 6)}-${pad(t.restart, 3)}`;

export function attemptName(start: StartToken): string {
  return `attempt-${startPart(start)}.json`;
}

export function pointsName(start: StartToken, seq: number): string {
  return `points-${startPart(start)}-${pad(seq, 8)}.jsonl`;
}

const ATTEMPT_NAME = /^attempt-(\d{6})-(\d{6})-(\d{3})\.json$/;
const POINTS_NAME = /^points-\d{6}-\d{6}-(\d{3})-\d{8}\.jsonl$/;

/** The next free restart number of `token` among the names of a history folder. */
export function nextRestart(names: readonly string[], token: { invocation: number; attempt: number }): number {
  let next = 0;
  for (const name of names) {
    const m = ATTEMPT_NAME.exec(name);
    if (m && Number(m[1]) === token.invocation && Number(m[2]) === token.attempt) next = Math.max(next, Number(m[3]) + 1);
  }
  return next;
}

const count = z.number().int().min(0);
const position = z.strictObject({ epoch: count, step: count });
const attemptSchema = z.object({
  invocation: count,
  attempt: count,
  restart: count.optional(),
  resumedAt: position.nullable(),
  checkpointId: z.string().nullable(),
  startedAt: z.string(),
});
const pointSchema = z.object({
  kind: z.enum(['epoch', 'step']),
  epoch: count,
  step: count.nullable(),
  attempt: count,
  invocation: count,
  time: z.string(),
  metrics: z.record(z.string(), z.number()),
});

/** Thrown when a history object cannot be parsed; names the object and the line. */
export class MetricHistoryError extends Error {
  override readonly name = 'MetricHistoryError';
}

export function historyObjectsOf(store: CheckpointStore): HistoryObjects {
  const candidate = store as Partial<WithMetricHistory>;
  if (typeof candidate.metricHistory !== 'function') {
    throw new Error(`checkpoint store ${store.constructor.name}: expected a store that keeps metric history (metricHistory()), received one without`);
  }
  return candidate.metricHistory();
}

/** `<sessionId>:<experimentId>` (an experiment workflow id) or `<sessionId>/<experimentId>` (a store key) to a store key. */
export function historyKey(experimentId: string): string {
  const problem = experimentIdProblem(experimentId);
  if (problem) throw new Error(problem);
  const parts = splitId(experimentId)!;
  return storeKey(parts.sessionId, parts.experimentId);
}

/** What is wrong with an experiment id given to readMetricHistory, naming it; undefined when valid. */
export function experimentIdProblem(experimentId: unknown): string | undefined {
  const parts = typeof experimentId === 'string' ? splitId(experimentId) : undefined;
  const problem = parts ? idProblem('sessionId', parts.sessionId) ?? idProblem('experimentId', parts.experimentId) : 'expected "<sessionId>:<experimentId>" or "<sessionId>/<experimentId>"';
  return problem ? `experiment id ${JSON.stringify(experimentId)}: ${problem}` : undefined;
}

function splitId(value: string): { sessionId: string; experimentId: string } | undefined {
  const parts = value.split('/');
  return parseExperimentWorkflowId(value) ?? (parts.length === 2 ? { sessionId: parts[0], experimentId: parts[1] } : undefined);
}

/** One run's history as stored: its index and every point, before and after the rewind. */
export interface RunHistory {
  readonly runId: string | undefined;
  readonly attempts: HistoryAttempt[];
  /** Every stored point, rewound ones included. */
  readonly stored: MetricPoint[];
  /** The history as it should be read: one point per position. */
  readonly points: MetricPoint[];
}

/** Reads one run's history (`runId` undefined: the key's run-less place). */
export async function readRunHistory(objects: HistoryObjects, key: string, runId: string | undefined): Promise<RunHistory> {
  const names = (await objects.list(key, runId)).sort();
  const attempts: HistoryAttempt[] = [];
  const stored: MetricPoint[] = [];
  const restarts = new Map<MetricPoint, number>();
  for (const name of names) {
    const isAttempt = ATTEMPT_NAME.test(name);
    const batch = POINTS_NAME.exec(name);
    if (!isAttempt && !batch) continue;
    const text = await objects.read(key, runId, name);
    if (text === undefined) continue;
    const where = `metric history of ${key}${runId ? ` run ${runId}` : ''}, ${name}`;
    if (isAttempt) attempts.push(parseLine(attemptSchema, text, where));
    else
      text.split('\n').forEach((line, index) => {
        if (line.trim() === '') return;
        const point = parseLine(pointSchema, line, `${where} line ${index + 1}`);
        stored.push(point);
        restarts.set(point, Number(batch![1]));
      });
  }
  return { runId, attempts, stored, points: visiblePoints(attempts, stored, (p) => restarts.get(p) ?? 0) };
}

function parseLine<T>(schema: z.ZodType<T>, text: string, where: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MetricHistoryError(`${where}: expected JSON, received ${JSON.stringify(text.slice(0, 60))} (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MetricHistoryError(`${where}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The newest run's history of an experiment (the run whose latest attempt started last), rewound.
 * `experimentId` is `<sessionId>:<experimentId>` or `<sessionId>/<experimentId>`. Empty when the
 * experiment has no history (never trained, or trained before history existed).
 */
export async function readMetricHistory(store: CheckpointStore, experimentId: string): Promise<MetricPoint[]> {
  return (await readNewestRunHistory(store, experimentId))?.points ?? [];
}

/** Like readMetricHistory, with the run id, the index and the stored points too; undefined when none. */
export async function readNewestRunHistory(store: CheckpointStore, experimentId: string): Promise<RunHistory | undefined> {
  const objects = historyObjectsOf(store);
  const key = historyKey(experimentId);
  let newest: { runId: string | undefined; startedAt: string } | undefined;
  for (const runId of await objects.runs(key)) {
    for (const name of await objects.list(key, runId)) {
      if (!ATTEMPT_NAME.test(name)) continue;
      const text = await objects.read(key, runId, name);
      if (text === undefined) continue;
      const { startedAt } = parseLine(attemptSchema, text, `metric history of ${key}, ${name}`);
      if (!newest || startedAt > newest.startedAt) newest = { runId, startedAt };
    }
  }
  return newest ? readRunHistory(objects, key, newest.runId) : undefined;
}
