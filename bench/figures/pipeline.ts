/**
 * pipeline-throughput-ratio: completed experiments per second of a 200-experiment session of tiny
 * mlp experiments (epochs 1, samples 32) with maxConcurrent 20, ÷ the same 200 trainings run by a
 * bare Temporal workflow (bench/baseline-workflows.ts: the plugin's trainExperiment activity in
 * Promise.all batches of 20). Both workers run in this process, on the same dev server, with
 * the same activity slots (20) and heartbeat throttle; repetitions alternate which goes first.
 *
 * Diagnosis from the histories of the last plugin run: events and workflow tasks per
 * experiment, and where an experiment's time goes between the session starting its child
 * workflow and the session recording its completion.
 */
import * as path from 'node:path';
import { Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { createActivities } from '../../src/activities';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { mlpTrainer } from '../../src/activities/trainers/mlp';
import type { TrainInput } from '../../src/shared/definitions';
import { resolvePolicy } from '../../src/shared/policy';
import type { ExperimentSpec } from '../../src/shared/types';
import { startWorker } from '../../test/helpers/env';
import type { baselineChildPipeline, baselinePipeline, baselineWindowPipeline } from '../baseline-workflows';
import type { BenchEnv } from '../lib/env';
import { cpuDelta, cpuSnapshot, devServerPid } from '../lib/cpu';
import { BENCH_DIR } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, progress, sum } from '../lib/stats';

export interface PipelineOptions {
  readonly experiments: number;
  readonly maxConcurrent: number;
  readonly reps: number;
  /** Repetitions that also run the bare child-workflow pipeline (the fair baseline). */
  readonly childReps: number;
}

export const PIPELINE_DEFAULTS: PipelineOptions = { experiments: 200, maxConcurrent: 20, reps: 3, childReps: 3 };

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

function eventMs(e: HistoryEvent | undefined): number {
  const t = e?.eventTime;
  return t ? Number(t.seconds) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}

function typeName(e: HistoryEvent): string {
  // eventType is a numeric enum; the attributes field that is set names the event.
  const key = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k]);
  return key ? key.replace(/EventAttributes$/, '') : String(e.eventType);
}

function countTypes(events: readonly HistoryEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) out[typeName(e)] = (out[typeName(e)] ?? 0) + 1;
  return out;
}

export async function pipeline(env: BenchEnv, opts: PipelineOptions = PIPELINE_DEFAULTS): Promise<Figure[]> {
  const specs: ExperimentSpec[] = Array.from({ length: opts.experiments }, (_, i) => ({
    id: `x${String(i).padStart(3, '0')}`,
    trainer: 'mlp',
    params: { epochs: 1, samples: 32, seed: i + 1 },
  }));
  const policyInput = { maxConcurrent: opts.maxConcurrent };
  const policy = resolvePolicy(policyInput);

  const pluginQueue = env.uniqueName('pipe-plugin');
  const plugin = await startWorker(env.h, { taskQueue: pluginQueue, maxConcurrentActivities: opts.maxConcurrent });

  const baseQueue = env.uniqueName('pipe-base');
  const baseStore = new LocalCheckpointStore(path.join(env.tmp, `ck-${baseQueue}`));
  const baseWorker = await Worker.create({
    connection: env.h.env.nativeConnection,
    taskQueue: baseQueue,
    workflowsPath: path.join(BENCH_DIR, 'baseline-workflows.ts'),
    activities: createActivities({ store: baseStore, trainers: new Map([[mlpTrainer.name, mlpTrainer]]), logger: env.h.logger }),
    // As createExperimentWorker configures the plugin's worker.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrent,
    shutdownForceTime: '30s',
    maxHeartbeatThrottleInterval: '1s',
    defaultHeartbeatThrottleInterval: '1s',
  });
  const baseRun = baseWorker.run();
  const client = env.h.env.client;
  const serverPid = devServerPid();
  const measured = async <T extends { ms: number }>(run: () => Promise<T>) => {
    const a = cpuSnapshot(serverPid);
    const r = await run();
    const d = cpuDelta(a, cpuSnapshot(serverPid));
    return { ...r, cpu: { benchProcessMsPerExperiment: d.selfMs / opts.experiments, serverMsPerExperiment: d.serverMs / opts.experiments } };
  };

  const runPlugin = async () => {
    const sessionId = env.uniqueName('pipe');
    const t = Date.now();
    const handle = await plugin.client.startSession({ sessionId, policy: policyInput, experiments: specs });
    const summary = await handle.result();
    const ms = Date.now() - t;
    return { sessionId, ms, completed: summary.completed, shas: summary.experiments.map((e) => e.result?.modelSha256 ?? null) };
  };
  type Kind = 'baselinePipeline' | 'baselineChildPipeline' | 'baselineWindowPipeline';
  const runBaseline = async (kind: Kind = 'baselinePipeline') => {
    const sessionId = env.uniqueName(kind);
    const inputs: TrainInput[] = specs.map((spec) => ({
      sessionId,
      spec,
      timeoutMode: 'bounded',
      checkpointsToKeep: policy.checkpointsToKeep,
      heartbeatTimeoutMs: policy.heartbeatTimeoutMs,
    }));
    const t = Date.now();
    const result = await client.workflow.execute<typeof baselinePipeline | typeof baselineChildPipeline | typeof baselineWindowPipeline>(kind, {
      taskQueue: baseQueue,
      workflowId: sessionId,
      args: [{ policy, inputs, batch: opts.maxConcurrent }],
    });
    const ms = Date.now() - t;
    return { workflowId: sessionId, ms, completed: result.completed, shas: result.modelSha256 };
  };

  try {
    progress(`pipeline: warm-up (20 experiments each)`);
    {
      const few = specs.slice(0, opts.maxConcurrent);
      const h = await plugin.client.startSession({ sessionId: env.uniqueName('pipe-warm'), policy: policyInput, experiments: few });
      await h.result();
      const sessionId = env.uniqueName('base-warm');
      await client.workflow.execute<typeof baselinePipeline>('baselinePipeline', {
        taskQueue: baseQueue,
        workflowId: sessionId,
        args: [{ policy, inputs: few.map((spec) => ({ sessionId, spec, timeoutMode: 'bounded', checkpointsToKeep: 3, heartbeatTimeoutMs: policy.heartbeatTimeoutMs })), batch: opts.maxConcurrent }],
      });
    }
    const runs: {
      rep: number;
      order: string;
      pluginSeconds: number;
      baselineSeconds: number;
      pluginPerSec: number;
      baselinePerSec: number;
      ratio: number;
      sameModels: boolean;
      bareChildrenPerSec: number | null;
      windowPerSec: number;
      cpuMsPerExperiment: Record<string, Cpu['cpu'] | null>;
    }[] = [];
    type Cpu = { cpu: { benchProcessMsPerExperiment: number; serverMsPerExperiment: number } };
    let lastPlugin: (Awaited<ReturnType<typeof runPlugin>> & Cpu) | undefined;
    let lastBase: (Awaited<ReturnType<typeof runBaseline>> & Cpu) | undefined;
    for (let rep = 0; rep < opts.reps; rep++) {
      const baseFirst = rep % 2 === 0;
      if (baseFirst) lastBase = await measured(() => runBaseline());
      lastPlugin = await measured(runPlugin);
      if (!baseFirst) lastBase = await measured(() => runBaseline());
      const p = lastPlugin;
      const b = lastBase!;
      if (p.completed !== opts.experiments || b.completed !== opts.experiments) {
        throw new Error(`pipeline: completed plugin ${p.completed}, baseline ${b.completed} of ${opts.experiments}`);
      }
      const children = rep < opts.childReps ? await measured(() => runBaseline('baselineChildPipeline')) : undefined;
      const window = await measured(() => runBaseline('baselineWindowPipeline'));
      const pluginPerSec = (p.completed / p.ms) * 1000;
      const baselinePerSec = (b.completed / b.ms) * 1000;
      runs.push({
        rep,
        order: baseFirst ? 'baseline,plugin' : 'plugin,baseline',
        pluginSeconds: p.ms / 1000,
        baselineSeconds: b.ms / 1000,
        pluginPerSec,
        baselinePerSec,
        ratio: pluginPerSec / baselinePerSec,
        sameModels: p.shas.every((s, i) => s !== null && s === b.shas[i]),
        bareChildrenPerSec: children ? (children.completed / children.ms) * 1000 : null,
        windowPerSec: (window.completed / window.ms) * 1000,
        cpuMsPerExperiment: { plugin: p.cpu, baseline: b.cpu, bareChildren: children?.cpu ?? null, window: window.cpu },
      });
      progress(`pipeline rep ${rep + 1}/${opts.reps}: plugin ${fmt(pluginPerSec)}/s (${fmt(p.ms / 1000)} s), baseline ${fmt(baselinePerSec)}/s (${fmt(b.ms / 1000)} s), ratio ${fmt(pluginPerSec / baselinePerSec)}${children ? `; bare child workflows ${fmt((children.completed / children.ms) * 1000)}/s` : ''}; activities in a sliding window ${fmt((window.completed / window.ms) * 1000)}/s`);
    }

    progress('pipeline: reading histories for the diagnosis');
    const diagnosis = await diagnose(env, lastPlugin!.sessionId, lastBase!.workflowId, specs.map((s) => s.id));
    const d = diagnosis.summary;
    return [
      figure({
        name: 'pipeline-throughput-fair',
        values: runs.filter((r) => r.bareChildrenPerSec !== null).map((r) => r.pluginPerSec / r.bareChildrenPerSec!),
        unit: '×',
        goal: { op: '>=', value: 0.9 },
        baseline: { what: 'bare child workflow per experiment (baselineChildPipeline), 20 in flight, experiments/s', value: median(runs.filter((r) => r.bareChildrenPerSec !== null).map((r) => r.bareChildrenPerSec!)), unit: '/s' },
        runs: runs.filter((r) => r.bareChildrenPerSec !== null).map((r) => ({ rep: r.rep, pluginPerSec: r.pluginPerSec, bareChildrenPerSec: r.bareChildrenPerSec })),
        notes: `the plugin's experiments/s ÷ the same trainings, each in a minimal child workflow (one activity, no memo, search attributes, queries or patches), with the same concurrency (${opts.maxConcurrent}), in the same repetition. Per experiment the plugin's histories (session and child) hold ${fmt(d.pluginEventsPerExperiment)} events; see pipeline-experiment-latency-seconds for where its time goes.`,
      }),
      figure({
        name: 'pipeline-throughput-ratio:activity-loop',
        values: runs.map((r) => r.ratio),
        unit: '×',
        goal: null,
        extra: true,
        baseline: { what: 'bare workflow, Promise.all batches of 20, experiments/s', value: median(runs.map((r) => r.baselinePerSec)), unit: '/s' },
        runs,
        notes: `${opts.experiments} experiments {epochs 1, samples 32}, maxConcurrent ${opts.maxConcurrent}; worker activity slots ${opts.maxConcurrent} on both sides; plugin ${fmt(median(runs.map((r) => r.pluginPerSec)))}/s. Per experiment: plugin ${fmt(d.pluginEventsPerExperiment)} history events and ${fmt(d.pluginWorkflowTasksPerExperiment)} workflow tasks, baseline ${fmt(d.baselineEventsPerExperiment)} events and ${fmt(d.baselineWorkflowTasksPerExperiment)} workflow tasks.`,
      }),
      figure({
        name: 'pipeline-throughput-ratio:bare-child-workflows',
        values: runs.filter((r) => r.bareChildrenPerSec !== null).map((r) => r.bareChildrenPerSec! / r.baselinePerSec),
        unit: '×',
        goal: null,
        baseline: { what: 'bare workflow, Promise.all batches of 20 (same runs)' },
        runs: runs.filter((r) => r.bareChildrenPerSec !== null).map((r) => ({ rep: r.rep, bareChildrenPerSec: r.bareChildrenPerSec, baselinePerSec: r.baselinePerSec })),
        extra: true,
        notes: 'diagnostic: each activity wrapped in a minimal child workflow (no memo/search attributes/queries), 20 in flight as a sliding window like the session: what child workflows cost by themselves',
      }),
      figure({
        name: 'pipeline-throughput-ratio:activity-window',
        values: runs.map((r) => r.windowPerSec / r.baselinePerSec),
        unit: '×',
        goal: null,
        baseline: { what: 'bare workflow, Promise.all batches of 20 (same runs)' },
        runs: runs.map((r) => ({ rep: r.rep, windowPerSec: r.windowPerSec, baselinePerSec: r.baselinePerSec })),
        extra: true,
        notes: 'diagnostic: the same activities with 20 in flight as a sliding window (no child workflows): the bound for a session that ran bounded experiments as activities',
      }),
      figure({
        name: 'pipeline-cpu-ms-per-experiment',
        values: runs.map((r) => (r.cpuMsPerExperiment.plugin?.benchProcessMsPerExperiment ?? NaN) + (r.cpuMsPerExperiment.plugin?.serverMsPerExperiment ?? NaN)),
        unit: 'ms CPU',
        goal: null,
        baseline: {
          what: 'bare workflow, same measure',
          value: median(runs.map((r) => (r.cpuMsPerExperiment.baseline?.benchProcessMsPerExperiment ?? NaN) + (r.cpuMsPerExperiment.baseline?.serverMsPerExperiment ?? NaN))),
          unit: 'ms CPU',
        },
        runs: runs.map((r) => ({ rep: r.rep, ...r.cpuMsPerExperiment })),
        extra: true,
        notes: 'CPU time per experiment of the bench process (in-process worker: activities, workflow thread, Core; plus the client) and of the dev server process, from /proc; on 2 cores their sum bounds the rate',
      }),
      figure({
        name: 'pipeline-experiment-latency-seconds',
        values: diagnosis.pluginLatencies,
        unit: 's',
        goal: null,
        baseline: { what: 'baseline activity scheduled → completed, median', value: median(diagnosis.baselineLatencies), unit: 's' },
        runs: [diagnosis.summary],
        extra: true,
        notes: 'plugin: StartChildWorkflowExecutionInitiated → ChildWorkflowExecutionCompleted in the session history, per experiment; runs[0] is the breakdown (medians, seconds) from the child histories',
      }),
    ];
  } finally {
    await plugin.stop();
    baseWorker.shutdown();
    await baseRun;
  }
}

async function diagnose(env: BenchEnv, sessionId: string, baselineId: string, ids: readonly string[]) {
  const client = env.h.env.client;
  const history = async (id: string) => (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const session = await history(sessionId);
  const children: HistoryEvent[][] = [];
  for (let i = 0; i < ids.length; i += 20) {
    children.push(...(await Promise.all(ids.slice(i, i + 20).map((id) => history(`${sessionId}:${id}`)))));
  }
  const base = await history(baselineId);

  // Session side: when each child was initiated and when its completion was recorded.
  const initiated = new Map<string, number>();
  const initiatedById = new Map<number, string>();
  const recorded = new Map<string, number>();
  for (const e of session) {
    const a = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (a?.workflowId) {
      initiated.set(a.workflowId, eventMs(e));
      initiatedById.set(Number(e.eventId), a.workflowId);
    }
    const c = e.childWorkflowExecutionCompletedEventAttributes;
    if (c?.workflowExecution?.workflowId) recorded.set(c.workflowExecution.workflowId, eventMs(e));
  }
  const seg = { initiatedToChildStarted: [] as number[], childStartedToActivityScheduled: [] as number[], activityQueued: [] as number[], activityRun: [] as number[], activityDoneToChildClosed: [] as number[], childClosedToRecorded: [] as number[] };
  const latencies: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const h = children[i];
    const wid = `${sessionId}:${ids[i]}`;
    const started = eventMs(h.find((e) => e.workflowExecutionStartedEventAttributes));
    const scheduled = eventMs(h.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainExperiment'));
    const actStarted = eventMs(h.find((e) => e.activityTaskStartedEventAttributes));
    const actDone = eventMs(h.find((e) => e.activityTaskCompletedEventAttributes));
    const closed = eventMs(h.find((e) => e.workflowExecutionCompletedEventAttributes));
    const init = initiated.get(wid) ?? NaN;
    const rec = recorded.get(wid) ?? NaN;
    seg.initiatedToChildStarted.push(started - init);
    seg.childStartedToActivityScheduled.push(scheduled - started);
    seg.activityQueued.push(actStarted - scheduled);
    seg.activityRun.push(actDone - actStarted);
    seg.activityDoneToChildClosed.push(closed - actDone);
    seg.childClosedToRecorded.push(rec - closed);
    latencies.push((rec - init) / 1000);
  }
  const baseScheduled = new Map<number, number>();
  const baseLatencies: number[] = [];
  const baseQueued: number[] = [];
  const baseRun: number[] = [];
  const baseStarted = new Map<number, number>();
  for (const e of base) {
    if (e.activityTaskScheduledEventAttributes) baseScheduled.set(Number(e.eventId), eventMs(e));
    const s = e.activityTaskStartedEventAttributes;
    if (s) {
      const sched = Number(s.scheduledEventId);
      baseStarted.set(sched, eventMs(e));
      baseQueued.push(eventMs(e) - (baseScheduled.get(sched) ?? NaN));
    }
    const c = e.activityTaskCompletedEventAttributes;
    if (c) {
      const sched = Number(c.scheduledEventId);
      baseLatencies.push((eventMs(e) - (baseScheduled.get(sched) ?? NaN)) / 1000);
      baseRun.push(eventMs(e) - (baseStarted.get(sched) ?? NaN));
    }
  }
  // Workflow tasks: waiting for a worker (scheduled → started) and processing (started → completed).
  const wftLatency = (events: readonly HistoryEvent[]) => {
    const queued: number[] = [];
    const processing: number[] = [];
    const scheduledAt = new Map<number, number>();
    const startedAt = new Map<number, number>();
    for (const e of events) {
      if (e.workflowTaskScheduledEventAttributes) scheduledAt.set(Number(e.eventId), eventMs(e));
      const st = e.workflowTaskStartedEventAttributes;
      if (st) {
        startedAt.set(Number(e.eventId), eventMs(e));
        queued.push(eventMs(e) - (scheduledAt.get(Number(st.scheduledEventId)) ?? NaN));
      }
      const c = e.workflowTaskCompletedEventAttributes;
      if (c) processing.push(eventMs(e) - (startedAt.get(Number(c.startedEventId)) ?? NaN));
    }
    return { queued, processing };
  };
  const childWft = children.map(wftLatency);
  const sessionWft = wftLatency(session);
  const baseWft = wftLatency(base);
  const childEvents = sum(children.map((h) => h.length));
  const wft = (events: readonly HistoryEvent[]) => events.filter((e) => e.workflowTaskCompletedEventAttributes).length;
  const childTypes = countTypes(children.flat());
  const perExperiment = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Math.round((v / ids.length) * 100) / 100]));
  const ms = (values: number[]) => Math.round(median(values) * 10) / 10;
  const summary = {
    pluginEventsPerExperiment: (session.length + childEvents) / ids.length,
    pluginSessionEvents: session.length,
    pluginChildEventsPerExperiment: childEvents / ids.length,
    pluginWorkflowTasksPerExperiment: (wft(session) + sum(children.map(wft))) / ids.length,
    baselineEventsPerExperiment: base.length / ids.length,
    baselineWorkflowTasksPerExperiment: wft(base) / ids.length,
    childEventTypesPerExperiment: perExperiment(childTypes),
    sessionEventTypesPerExperiment: perExperiment(countTypes(session)),
    medianMs: {
      initiatedToChildStarted: ms(seg.initiatedToChildStarted),
      childStartedToActivityScheduled: ms(seg.childStartedToActivityScheduled),
      activityQueued: ms(seg.activityQueued),
      activityRun: ms(seg.activityRun),
      activityDoneToChildClosed: ms(seg.activityDoneToChildClosed),
      childClosedToRecorded: ms(seg.childClosedToRecorded),
      experimentTotal: ms(latencies.map((l) => l * 1000)),
      baselineActivityQueued: ms(baseQueued),
      baselineActivityRun: ms(baseRun),
      baselineScheduledToCompleted: ms(baseLatencies.map((l) => l * 1000)),
      childWorkflowTaskQueued: ms(childWft.flatMap((w) => w.queued)),
      childWorkflowTaskProcessing: ms(childWft.flatMap((w) => w.processing)),
      sessionWorkflowTaskQueued: ms(sessionWft.queued),
      sessionWorkflowTaskProcessing: ms(sessionWft.processing),
      baselineWorkflowTaskQueued: ms(baseWft.queued),
      baselineWorkflowTaskProcessing: ms(baseWft.processing),
    },
  };
  progress(`pipeline diagnosis: ${JSON.stringify(summary.medianMs)}`);
  return { summary, pluginLatencies: latencies, baselineLatencies: baseLatencies };
}
