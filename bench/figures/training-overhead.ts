/**
 * training-overhead: steps/s of the built-in mlp trainer inside the plugin's training activity
 * (real dev server, in-process worker, a session with one experiment) ÷ steps/s of the same
 * loop run bare (runMlpBare) in the same process, alternating bare/plugin in every repetition.
 *
 * Steps/s inside the activity come from the worker's own pino lines: 'starting training' →
 * 'training completed' (ms timestamps), so workflow start and activity scheduling are excluded.
 * Both sides include building the dataset and the final evaluate + model hash.
 *
 * Attribution runs use `mlp-probe` (the same trainer behind a timing context) to split the
 * plugin's extra time into ctx.step, per-epoch evaluate + encode, and checkpoint writes.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseMlpParams, runMlpBare, stepsPerEpoch, type MlpParams } from '../../src/activities/trainers/mlp';
import { startWorker } from '../../test/helpers/env';
import { devServerPid, threadCpu, threadCpuDelta, type ThreadCpu } from '../lib/cpu';
import type { BenchEnv, LogLine } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, progress, spread } from '../lib/stats';
import { bareInActivityTrainer, probeStats, probeTrainer } from '../probe-trainer';

export interface TrainingOverheadOptions {
  readonly reps: number;
  readonly probeReps: number;
  readonly params: Partial<MlpParams>;
  readonly heartbeatTimeout: string;
}

export const TRAINING_OVERHEAD_DEFAULTS: TrainingOverheadOptions = {
  reps: 9,
  probeReps: 3,
  // 4096 steps per epoch (~0.3 s bare on an idle 2-core EPYC), 6 epochs: ~2 s bare, ~3 s in the plugin.
  params: { epochs: 6, samples: 131072, batchSize: 32, hidden: 32, seed: 7 },
  heartbeatTimeout: '2s',
};

interface PluginRun {
  steps: number;
  activityMs: number;
  /** Process CPU time (all threads) between the two log lines. */
  activityCpuMs: number;
  /** Per-thread CPU between the two log lines. */
  threads: ThreadCpu;
  /** GC pauses between the two log lines. */
  gcMs: number;
  endToEndMs: number;
  stepsPerSec: number;
  modelSha256: string | null;
}

function lineFor(lines: readonly LogLine[], workflowId: string, msg: string): LogLine | undefined {
  return lines.find((l) => l.msg === msg && l.workflowId === workflowId);
}

export async function trainingOverhead(env: BenchEnv, opts: TrainingOverheadOptions = TRAINING_OVERHEAD_DEFAULTS): Promise<Figure[]> {
  const params = parseMlpParams(opts.params);
  const totalSteps = params.epochs * stepsPerEpoch(params);
  const taskQueue = env.uniqueName('overhead');
  const w = await startWorker(env.h, { taskQueue, trainers: [probeTrainer, bareInActivityTrainer] });
  const policy = { heartbeatTimeout: opts.heartbeatTimeout, maxConcurrent: 1 };

  const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
  const serverPid = devServerPid();
  // Garbage-collection pauses of this process, to charge them to the side they fall in.
  const gcPauses: { start: number; duration: number }[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, duration: e.duration });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const gcMsBetween = (a: number, b: number) => gcPauses.filter((g) => g.start >= a && g.start < b).reduce((acc, g) => acc + g.duration, 0);
  const bare = () => {
    const th = threadCpu(serverPid);
    const c = process.cpuUsage();
    const t = performance.now();
    const r = runMlpBare(params);
    const end = performance.now();
    const ms = end - t;
    const cpu = cpuMs(process.cpuUsage(c));
    return { steps: r.steps, ms, cpuMs: cpu, gcMs: gcMsBetween(t, end), threads: threadCpuDelta(th, threadCpu(serverPid)), stepsPerSec: (r.steps / ms) * 1000, modelSha256: r.modelSha256 };
  };
  // CPU time at the moment the worker logs the start and the end of a training.
  const cpuAt = new Map<string, { process: NodeJS.CpuUsage; threads: ThreadCpu; at: number }>();
  const stopWatching = env.onLogLine((l) => {
    if (l.msg === 'starting training' || l.msg === 'training completed') {
      cpuAt.set(`${String(l.workflowId)}|${l.msg}`, { process: process.cpuUsage(), threads: threadCpu(serverPid), at: performance.now() });
    }
  });

  const plugin = async (trainer: 'mlp' | 'mlp-bare-in-activity', label: string): Promise<PluginRun> => {
    const sessionId = env.uniqueName(label);
    const experimentId = 'e';
    const t = Date.now();
    // The bare loop in the activity never yields, so nothing heartbeats until it ends.
    const runPolicy = trainer === 'mlp' ? policy : { ...policy, heartbeatTimeout: '5m' };
    const handle = await w.client.startSession({ sessionId, policy: runPolicy, experiments: [{ id: experimentId, trainer, params: opts.params }] });
    const summary = await handle.result();
    const endToEndMs = Date.now() - t;
    const e = summary.experiments[0];
    if (e.state !== 'completed') throw new Error(`training-overhead: ${sessionId} ended ${e.state}: ${e.reason}`);
    const workflowId = `${sessionId}:${experimentId}`;
    const started = lineFor(env.logs(), workflowId, 'starting training');
    const completed = lineFor(env.logs(), workflowId, 'training completed');
    if (!started || !completed) throw new Error(`training-overhead: no start/completion log lines for ${workflowId}`);
    const activityMs = (completed.time as number) - (started.time as number);
    const c0 = cpuAt.get(`${workflowId}|starting training`);
    const c1 = cpuAt.get(`${workflowId}|training completed`);
    const activityCpuMs = c0 && c1 ? cpuMs(c1.process) - cpuMs(c0.process) : NaN;
    const threads = c0 && c1 ? threadCpuDelta(c0.threads, c1.threads) : { mainMs: NaN, othersMs: NaN, serverMs: NaN };
    const gcMs = c0 && c1 ? gcMsBetween(c0.at, c1.at) : NaN;
    return { steps: totalSteps, activityMs, activityCpuMs, threads, gcMs, endToEndMs, stepsPerSec: (totalSteps / activityMs) * 1000, modelSha256: e.result?.modelSha256 ?? null };
  };

  try {
    progress(`training-overhead: ${totalSteps} steps per run (${JSON.stringify(opts.params)}), warming up`);
    bare();
    await plugin('mlp', 'warm');

    const runs: {
      rep: number;
      order: string;
      bareStepsPerSec: number;
      pluginStepsPerSec: number;
      ratio: number;
      cpuRatio: number;
      mainThreadRatio: number;
      bareThreads: ThreadCpu;
      activityThreads: ThreadCpu;
      bareMs: number;
      bareGcMs: number;
      activityGcMs: number;
      bareCpuMs: number;
      activityMs: number;
      activityCpuMs: number;
      endToEndMs: number;
      sameModel: boolean;
    }[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      const bareFirst = rep % 2 === 0;
      let b: ReturnType<typeof bare> | undefined;
      let p: PluginRun | undefined;
      if (bareFirst) b = bare();
      p = await plugin('mlp', 'ovh');
      if (!bareFirst) b = bare();
      b = b!;
      p = p!;
      const ratio = p.stepsPerSec / b.stepsPerSec;
      runs.push({
        rep,
        order: bareFirst ? 'bare,plugin' : 'plugin,bare',
        bareStepsPerSec: Math.round(b.stepsPerSec),
        pluginStepsPerSec: Math.round(p.stepsPerSec),
        ratio,
        cpuRatio: b.cpuMs / p.activityCpuMs,
        mainThreadRatio: b.threads.mainMs / p.threads.mainMs,
        bareThreads: b.threads,
        activityThreads: p.threads,
        bareMs: Math.round(b.ms),
        bareGcMs: Math.round(b.gcMs * 10) / 10,
        activityGcMs: Math.round(p.gcMs * 10) / 10,
        bareCpuMs: Math.round(b.cpuMs),
        activityMs: p.activityMs,
        activityCpuMs: Math.round(p.activityCpuMs),
        endToEndMs: p.endToEndMs,
        sameModel: p.modelSha256 === b.modelSha256,
      });
      progress(`training-overhead rep ${rep + 1}/${opts.reps}: bare ${Math.round(b.stepsPerSec)} steps/s, plugin ${Math.round(p.stepsPerSec)} steps/s, ratio ${fmt(ratio)}; CPU ms main thread bare ${b.threads.mainMs} / plugin ${p.threads.mainMs}, other threads ${b.threads.othersMs} / ${p.threads.othersMs}, dev server ${b.threads.serverMs} / ${p.threads.serverMs}; GC pauses ${fmt(b.gcMs)} / ${fmt(p.gcMs)} ms`);
    }

    // Attribution: where the plugin's extra time goes, measured inside the activity.
    const probes: Record<string, number>[] = [];
    for (let rep = 0; rep < opts.probeReps; rep++) {
      const b = bare();
      const handle = await w.client.startSession({ sessionId: env.uniqueName('probe'), policy, experiments: [{ id: 'e', trainer: 'mlp-probe', params: opts.params }] });
      await handle.result();
      const s = probeStats.get('e');
      if (!s) throw new Error('training-overhead: probe stats missing');
      probeStats.delete('e');
      const extraMs = s.totalMs - b.ms;
      probes.push({
        bareMs: b.ms,
        probeTotalMs: s.totalMs,
        extraMs,
        stepMs: s.stepMs,
        slowSteps: s.slowSteps,
        slowStepMs: s.slowStepMs,
        epochEndMs: s.epochEndMs,
        checkpointMs: s.checkpointMs,
        checkpoints: s.checkpoints,
        otherMs: extraMs - s.stepMs - s.epochEndMs - s.checkpointMs,
      });
      progress(
        `training-overhead probe ${rep + 1}/${opts.probeReps}: +${extraMs.toFixed(0)} ms over bare ${b.ms.toFixed(0)} ms = ctx.step ${s.stepMs.toFixed(0)} ms (of which ${s.slowSteps} calls over 20 µs, i.e. yields, ${s.slowStepMs.toFixed(0)} ms) + evaluate/encode ${s.epochEndMs.toFixed(0)} ms + checkpoint ${s.checkpointMs.toFixed(0)} ms (${s.checkpoints}×)`,
      );
    }

    // The bare loop inside the activity: what being in a worker process costs, without the runtime.
    const inActivity: { rep: number; bareStepsPerSec: number; inActivityStepsPerSec: number; ratio: number; mainThreadRatio: number }[] = [];
    for (let rep = 0; rep < opts.probeReps; rep++) {
      const b = bare();
      const p = await plugin('mlp-bare-in-activity', 'inact');
      inActivity.push({
        rep,
        bareStepsPerSec: Math.round(b.stepsPerSec),
        inActivityStepsPerSec: Math.round(p.stepsPerSec),
        ratio: p.stepsPerSec / b.stepsPerSec,
        mainThreadRatio: b.threads.mainMs / p.threads.mainMs,
      });
      progress(`training-overhead: runMlpBare inside the activity ${Math.round(p.stepsPerSec)} steps/s vs bare ${Math.round(b.stepsPerSec)} (ratio ${fmt(p.stepsPerSec / b.stepsPerSec)})`);
    }

    const bareMedian = spread(runs.map((r) => r.bareStepsPerSec)).median;
    const share = (key: string) => probes.map((p) => p[key] / p.bareMs);
    const base = { what: 'runMlpBare in the same process', value: bareMedian, unit: 'steps/s' };
    const probeBase = { what: 'share of the bare run time (mlp-probe attribution runs)' };
    const ratios = runs.map((r) => r.ratio);
    const withoutEvaluate = probes.map((p) => p.bareMs / (p.probeTotalMs - p.epochEndMs));
    return [
      figure({
        name: 'training-overhead',
        values: ratios,
        unit: '×',
        goal: { op: '>=', value: 0.97 },
        baseline: base,
        runs,
        notes: `steps/s measured inside the activity from the worker's pino lines 'starting training' → 'training completed'; params ${JSON.stringify(opts.params)} (${stepsPerEpoch(params)} steps/epoch, ${totalSteps} steps); policy heartbeatTimeout ${opts.heartbeatTimeout} (runtime heartbeat every ${Math.min(1000, Math.floor(parseFloat(opts.heartbeatTimeout) * 250))} ms), checkpoint every epoch, worker heartbeatThrottle 1s.`,
      }),
      figure({
        name: 'training-overhead:cpu-time',
        values: runs.map((r) => r.cpuRatio),
        unit: '×',
        goal: { op: '>=', value: 0.97 },
        baseline: { what: 'runMlpBare, process CPU time (all threads)' },
        runs: runs.map((r) => ({ rep: r.rep, bareCpuMs: r.bareCpuMs, activityCpuMs: r.activityCpuMs })),
        extra: true,
        notes: 'the same runs measured in process CPU time (user + system, all threads) instead of wall time: insensitive to other processes taking the CPU, but charges the worker’s own background threads to the plugin',
      }),
      figure({
        name: 'training-overhead:main-thread-cpu',
        values: runs.map((r) => r.mainThreadRatio),
        unit: '×',
        goal: { op: '>=', value: 0.97 },
        baseline: { what: 'runMlpBare, CPU time of the main (JavaScript) thread' },
        runs: runs.map((r) => ({ rep: r.rep, bare: r.bareThreads, plugin: r.activityThreads, bareMs: r.bareMs, activityMs: r.activityMs })),
        extra: true,
        notes: 'bare ÷ plugin CPU time of the thread that trains (from /proc/self/task, 10 ms ticks): what the runtime costs the training thread itself. runs[] also hold the CPU of the process’s other threads and of the dev server during each side',
      }),
      figure({
        name: 'training-overhead:bare-loop-in-activity',
        values: inActivity.map((r) => r.ratio),
        unit: '×',
        goal: null,
        baseline: { what: 'runMlpBare outside any activity, same process' },
        runs: inActivity,
        extra: true,
        notes: 'runMlpBare called inside the training activity (no ctx.step, no checkpoints, no yields): the cost of the environment (worker threads, dev server, CPU sharing) without the runtime',
      }),
      figure({ name: 'training-overhead:ctx.step-share', values: share('stepMs'), unit: '× bare time', goal: null, baseline: probeBase, runs: probes, extra: true }),
      figure({ name: 'training-overhead:evaluate+encode-share', values: share('epochEndMs'), unit: '× bare time', goal: null, baseline: probeBase, runs: share('epochEndMs'), extra: true,
        notes: "the mlp trainer's per-epoch evaluate() over the whole dataset (for the checkpoint's loss/accuracy metrics) plus run.encode(); runMlpBare does neither" }),
      figure({ name: 'training-overhead:checkpoint-share', values: share('checkpointMs'), unit: '× bare time', goal: null, baseline: probeBase, runs: share('checkpointMs'), extra: true }),
      figure({ name: 'training-overhead:without-evaluate', values: withoutEvaluate, unit: '×', goal: { op: '>=', value: 0.97 }, baseline: { what: 'projection: probe run minus its evaluate/encode time, ÷ bare' }, runs: withoutEvaluate, extra: true }),
    ];
  } finally {
    gcObserver.disconnect();
    stopWatching();
    await w.stop();
  }
}
