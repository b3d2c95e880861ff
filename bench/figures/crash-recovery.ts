/**
 * Crash recovery: kill -9 of the child-process worker running an mlp training, at a random
 * point of it, with a second worker already polling the same task queue (the standby).
 *
 * Per run: start a session with one experiment; the worker that logs 'starting training' is the
 * victim; after a random delay it gets SIGKILL. Nothing else happens until the server notices
 * the missing heartbeats (heartbeatTimeout), schedules the retry after retry.initialInterval,
 * and the standby resumes from the newest verified checkpoint. A replacement worker is spawned
 * only after that (it becomes the next run's standby), so it cannot pick the retry up.
 *
 * Measured:
 * - kill → the resuming worker's 'resuming training' line (or 'starting training' with
 *   attempt ≥ 2 when the kill came before the first checkpoint): its pino timestamp − kill time;
 * - epochs recomputed: training position at the kill − position of the resumed checkpoint. The
 *   position at the kill is interpolated from the victim's own log: epochs whose checkpoint it
 *   logged, plus the elapsed fraction of the current epoch (time since its last checkpoint line
 *   ÷ the measured epoch duration, capped at 1);
 * - exact resume: the session's final modelSha256 equals runMlpBare's (the uninterrupted run).
 */
import * as path from 'node:path';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare, stepsPerEpoch } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import type { SessionSummary } from '../../src/shared/definitions';
import type { BenchEnv, ChildWorker, LogLine } from '../lib/env';
import { waitFor } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, mulberry32, progress, sleep } from '../lib/stats';

export interface CrashOptions {
  readonly runs: number;
  readonly heartbeatTimeout: string;
  readonly heartbeatTimeoutMs: number;
  readonly retryInitialInterval: string;
  readonly params: { epochs: number; samples: number; batchSize: number; stepDelayMs: number; seed: number };
  readonly seed: number;
}

export const CRASH_DEFAULTS: CrashOptions = {
  runs: 12,
  heartbeatTimeout: '2s',
  heartbeatTimeoutMs: 2000,
  retryInitialInterval: '200ms',
  // 16 steps × ~36 ms ≈ 0.6 s per epoch, 5 epochs ≈ 3 s of training.
  params: { epochs: 5, samples: 512, batchSize: 32, stepDelayMs: 35, seed: 11 },
  seed: 20240601,
};

const isWorkflow = (workflowId: string) => (l: LogLine) => l.workflowId === workflowId;

export interface CrashRun {
  run: number;
  killAfterMs: number;
  killToResumeMs: number;
  positionAtKill: number;
  resumedPosition: number;
  epochsRecomputed: number;
  resumedBy: 'standby' | 'replacement' | string;
  resumedLine: string;
  /** Server-side timeline of the retry, ms after the kill (from polling describe every 50 ms). */
  server: Record<string, number | null>;
  modelSha256: string | null;
  exact: boolean;
  state: string;
  attempts: number;
}

export async function crashRecovery(env: BenchEnv, opts: CrashOptions = CRASH_DEFAULTS): Promise<Figure[]> {
  const params = parseMlpParams(opts.params);
  const perEpoch = stepsPerEpoch(params);
  const expectedSha = runMlpBare(params).modelSha256;
  const taskQueue = env.uniqueName('crash');
  const checkpointDir = path.join(env.tmp, 'ck-crash');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: env.h.env.client, taskQueue, store });
  const random = mulberry32(opts.seed);
  let spawned = 0;
  const spawn = () => env.spawnWorker({ taskQueue, checkpointDir, name: `crash-w${++spawned}` });

  let workers: ChildWorker[] = [spawn(), spawn()];
  await Promise.all(workers.map((w) => w.ready));
  // Measured epoch durations (ms) from victims' checkpoint lines, for interpolating the kill point.
  const epochDurations: number[] = [];
  const nominalEpochMs = perEpoch * (opts.params.stepDelayMs + 1.5);
  const trainingMs = opts.params.epochs * nominalEpochMs;
  const runs: CrashRun[] = [];
  const sessions: { sessionId: string; handle: Promise<SessionSummary>; run: CrashRun }[] = [];
  const policy = { heartbeatTimeout: opts.heartbeatTimeout, maxConcurrent: 1, retry: { initialInterval: opts.retryInitialInterval } };

  for (let i = 0; i < opts.runs; i++) {
    const sessionId = env.uniqueName('crash');
    const workflowId = `${sessionId}:e`;
    const handle = await client.startSession({ sessionId, policy, experiments: [{ id: 'e', trainer: 'mlp', params: opts.params }] });
    const { victim, started } = await waitFor(
      () => {
        for (const w of workers) {
          const line = w.lines().find((l) => isWorkflow(workflowId)(l) && l.msg === 'starting training');
          if (line) return { victim: w, started: line };
        }
        return undefined;
      },
      { what: `${workflowId} to start training`, timeoutMs: 60_000 },
    );
    // A random point of the training: anywhere from its first step to 90 % of its length.
    const killAfterMs = Math.round(random() * 0.9 * trainingMs);
    const due = (started.time as number) + killAfterMs;
    await sleep(Math.max(0, due - Date.now()));
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const standby = workers.filter((w) => w !== victim);

    // Position at the kill, from the victim's own lines (a dead process writes no more).
    const mine = victim.lines().filter(isWorkflow(workflowId));
    const checkpoints = mine.filter((l) => l.msg === 'checkpoint saved');
    let previous = started.time as number;
    for (const c of checkpoints) {
      epochDurations.push((c.time as number) - previous);
      previous = c.time as number;
    }
    const epochMs = epochDurations.length > 0 ? median(epochDurations) : nominalEpochMs;
    const last = checkpoints.at(-1);
    const lastEpoch = last ? (last.epoch as number) + (last.step as number) / perEpoch : 0;
    const lastTime = last ? (last.time as number) : (started.time as number);
    const positionAtKill = lastEpoch + Math.min(1, Math.max(0, (killedAt - lastTime) / epochMs));

    const timeline = watchRetry(env, workflowId);
    const resumed = await waitFor(
      () => {
        for (const w of standby) {
          const line = w
            .lines()
            .find((l) => isWorkflow(workflowId)(l) && (l.msg === 'resuming training' || l.msg === 'starting training') && (l.attempt as number) >= 2);
          if (line) return { w, line };
        }
        return undefined;
      },
      { what: `${workflowId} to resume after the kill`, timeoutMs: 120_000 },
    );
    const killToResumeMs = (resumed.line.time as number) - killedAt;
    const server = await timeline.stop();
    const resumedPosition = (resumed.line.epoch as number) + ((resumed.line.step as number) ?? 0) / perEpoch;
    const run: CrashRun = {
      run: i,
      killAfterMs,
      killToResumeMs,
      positionAtKill,
      resumedPosition,
      epochsRecomputed: positionAtKill - resumedPosition,
      resumedBy: resumed.w.name,
      resumedLine: resumed.line.msg,
      server: relativeTo(killedAt, server),
      modelSha256: null,
      exact: false,
      state: 'running',
      attempts: 0,
    };
    runs.push(run);
    sessions.push({ sessionId, handle: handle.result(), run });
    progress(
      `crash run ${i + 1}/${opts.runs}: kill at +${killAfterMs} ms (epoch ${fmt(positionAtKill)}), resumed ${fmt(killToResumeMs / 1000)} s later from epoch ${fmt(resumedPosition)} (${resumed.line.msg}); server, ms after kill: ${JSON.stringify(run.server)}`,
    );

    // The replacement becomes the next standby; wait for this training to finish first, so the
    // next kill never hits a worker still running this one.
    const replacement = spawn();
    workers = [...standby, replacement];
    await waitFor(() => resumed.w.lines().some((l) => isWorkflow(workflowId)(l) && l.msg === 'training completed'), {
      what: `${workflowId} to finish training`,
      timeoutMs: 120_000,
    });
    await replacement.ready;
  }

  // Final results: a workflow task may wait for a dead worker's sticky queue to time out first.
  await Promise.all(
    sessions.map(async (s) => {
      const summary = await s.handle;
      const e = summary.experiments[0];
      s.run.state = e.state;
      s.run.attempts = e.attempt;
      s.run.modelSha256 = e.result?.modelSha256 ?? null;
      s.run.exact = e.state === 'completed' && s.run.modelSha256 === expectedSha;
    }),
  );
  for (const w of workers) await env.stopWorker(w);

  const hbMs = opts.heartbeatTimeoutMs;
  const resumeS = runs.map((r) => r.killToResumeMs / 1000);
  const common = `${runs.length} kill -9s; policy heartbeatTimeout ${opts.heartbeatTimeout}, retry.initialInterval ${opts.retryInitialInterval}; worker heartbeatThrottle 1s; standby worker polling before each kill, replacement spawned after the resume; params ${JSON.stringify(opts.params)}`;
  return [
    figure({
      name: 'crash-resume-seconds',
      values: resumeS,
      unit: 's',
      goal: { op: '<=', value: hbMs / 1000 + 2, text: `≤ heartbeatTimeout + 2 s (${hbMs / 1000 + 2} s)` },
      baseline: { what: 'heartbeatTimeout', value: hbMs / 1000, unit: 's' },
      runs,
      notes: `${common}. Time from SIGKILL to the resuming worker's 'resuming training' log line.`,
    }),
    figure({
      name: 'crash-resume-vs-heartbeat-timeout',
      values: resumeS.map((s) => s / (hbMs / 1000)),
      unit: '× heartbeatTimeout',
      goal: { op: '<=', value: (hbMs / 1000 + 2) / (hbMs / 1000) },
      baseline: { what: 'heartbeatTimeout', value: hbMs / 1000, unit: 's' },
      runs: resumeS,
    }),
    figure({
      name: 'crash-epochs-recomputed',
      values: runs.map((r) => r.epochsRecomputed),
      aggregate: 'max',
      unit: 'epochs',
      goal: { op: '<=', value: 1 },
      baseline: { what: 'checkpoint every epoch: at most the epoch in progress' },
      runs: runs.map((r) => ({ run: r.run, positionAtKill: r.positionAtKill, resumedPosition: r.resumedPosition })),
      notes: 'max over runs of (position at the kill, interpolated from the victim’s checkpoint log times) − (resumed checkpoint epoch + step/stepsPerEpoch)',
    }),
    figure({
      name: 'crash-exact-resume-rate',
      values: runs.map((r) => (r.exact ? 1 : 0)),
      aggregate: 'rate',
      value: runs.filter((r) => r.exact).length / runs.length,
      unit: 'fraction',
      goal: { op: '>=', value: 1 },
      baseline: { what: `uninterrupted run (runMlpBare) modelSha256 ${expectedSha.slice(0, 12)}…` },
      runs: runs.map((r) => ({ run: r.run, state: r.state, attempts: r.attempts, modelSha256: r.modelSha256, exact: r.exact })),
    }),
  ];
}

interface RetryTimeline {
  /** Last heartbeat the server recorded for attempt 1. */
  lastHeartbeat: number | null;
  /** When the server closed attempt 1 (the heartbeat timeout). */
  attemptTimedOut: number | null;
  /** When attempt 2 was due to be dispatched (timeout + retry interval). */
  nextAttemptDue: number | null;
  /** When a worker picked attempt 2 up. */
  attempt2Started: number | null;
}

function ms(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number | null {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return null;
  return Number(ts.seconds) * 1000 + (ts.nanos ?? 0) / 1e6;
}

/** Polls the experiment's pending training activity every 50 ms until stopped. */
function watchRetry(env: BenchEnv, workflowId: string): { stop(): Promise<RetryTimeline> } {
  const t: RetryTimeline = { lastHeartbeat: null, attemptTimedOut: null, nextAttemptDue: null, attempt2Started: null };
  let running = true;
  const loop = (async () => {
    const handle = env.h.env.client.workflow.getHandle(workflowId);
    while (running) {
      try {
        const desc = await handle.describe();
        const p = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainExperiment');
        if (p) {
          const attempt = p.attempt ?? 1;
          if (process.env.BENCH_DEBUG_RETRY) {
            process.stderr.write(`${Date.now()} attempt=${attempt} state=${p.state} hb=${ms(p.lastHeartbeatTime)} started=${ms(p.lastStartedTime)} sched=${ms(p.scheduledTime)} next=${ms(p.nextAttemptScheduleTime)} complete=${ms(p.lastAttemptCompleteTime)}\n`);
          }
          if (attempt <= 1) t.lastHeartbeat = ms(p.lastHeartbeatTime) ?? t.lastHeartbeat;
          else {
            t.attemptTimedOut ??= ms(p.lastAttemptCompleteTime);
            t.nextAttemptDue ??= ms(p.nextAttemptScheduleTime) ?? ms(p.scheduledTime);
            t.attempt2Started ??= ms(p.lastStartedTime);
          }
        }
      } catch {
        // The workflow may not be visible for a moment; keep polling.
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      // One more sample after the resume, so attempt 2's start time is in.
      await sleep(60);
      running = false;
      await loop;
      return t;
    },
  };
}

function relativeTo(origin: number, t: RetryTimeline): Record<string, number | null> {
  const rel = (v: number | null) => (v === null ? null : Math.round(v - origin));
  return {
    lastHeartbeat: rel(t.lastHeartbeat),
    attemptTimedOut: rel(t.attemptTimedOut),
    nextAttemptDue: rel(t.nextAttemptDue),
    attempt2Started: rel(t.attempt2Started),
  };
}
