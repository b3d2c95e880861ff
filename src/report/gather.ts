/**
 * Reads what a session report needs, from Temporal and the checkpoint store only (never a worker's
 * disk): the session snapshot (running or finished), each experiment's spec from its workflow memo
 * (one visibility listing, describe as the fallback for rows visibility has not indexed yet), and
 * each experiment's metric history through the store, a bounded number at a time.
 */
import type { Client } from '@temporalio/client';
import type { SessionSnapshot } from '../shared/definitions';
import { experimentWorkflowId } from '../shared/ids';
import type { MetricPoint } from '../shared/metric-history';
import { buildReport, type ReportData, type ReportSpec } from './model';

export interface ReportSource {
  readonly client: Client;
  sessionSnapshot(sessionId: string): Promise<SessionSnapshot>;
  /** The rewound metric history of an experiment workflow (`<session>:<experiment>`). */
  metrics(experimentWorkflowId: string): Promise<MetricPoint[]>;
}

export interface GatherOptions {
  /** Histories read at once. @default 16 */
  readonly concurrency?: number;
  /** ISO time stamped on the report. @default now */
  readonly generatedAt?: string;
}

const asSpec = (memo: Record<string, unknown> | undefined): ReportSpec | undefined => {
  const spec = memo?.spec as { trainer?: unknown; params?: unknown } | undefined;
  return spec && typeof spec.trainer === 'string' ? { trainer: spec.trainer, params: spec.params } : undefined;
};

/** Experiment specs of a session by experiment id, from the experiment workflows' memos. */
export async function experimentSpecs(client: Client, snapshot: SessionSnapshot): Promise<Map<string, ReportSpec>> {
  const specs = new Map<string, ReportSpec>();
  const wanted = new Map(snapshot.experiments.map((e) => [e.workflowId || experimentWorkflowId(snapshot.id, e.id), e.id]));
  const query = `SessionId = ${JSON.stringify(snapshot.id)} AND WorkflowType = "experimentWorkflow"`;
  for await (const info of client.workflow.list({ query })) {
    const id = wanted.get(info.workflowId);
    const spec = asSpec(info.memo);
    if (id !== undefined && spec && !specs.has(id)) specs.set(id, spec);
  }
  const missing = [...wanted].filter(([, id]) => !specs.has(id));
  await eachLimited(missing, 8, async ([workflowId, id]) => {
    const spec = await client.workflow
      .getHandle(workflowId)
      .describe()
      .then((d) => asSpec(d.memo))
      .catch(() => undefined); // not started yet (queued, awaiting approval): no spec to show
    if (spec) specs.set(id, spec);
  });
  return specs;
}

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(lanes);
}

/** Everything a report of `sessionId` shows, as of now. */
export async function gatherReport(source: ReportSource, sessionId: string, options: GatherOptions = {}): Promise<ReportData> {
  const snapshot = await source.sessionSnapshot(sessionId);
  const histories = new Map<string, MetricPoint[]>();
  const [specs] = await Promise.all([
    experimentSpecs(source.client, snapshot),
    eachLimited(snapshot.experiments, options.concurrency ?? 16, async (e) => {
      histories.set(e.id, await source.metrics(e.workflowId || experimentWorkflowId(sessionId, e.id)));
    }),
  ]);
  return buildReport(snapshot, specs, histories, options.generatedAt ?? new Date().toISOString());
}
