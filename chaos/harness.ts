/**
 * A chaos run, end to end: seeded experiments and faults, one dev server and three child-process
 * workers sharing one checkpoint root, the session started and approved once, faults injected for
 * the fault period while heartbeats are sampled, then a wait for the session to end and the
 * verdict (chaos/report.ts). `npm run chaos` (chaos/main.ts) and test/chaos.test.ts both call
 * runChaos; only the options differ.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { ProgramDefinition } from '../src/activities/trainers/command';
import { parseMlpParams, runMlpBare } from '../src/activities/trainers/mlp';
import { ExperimentsClient } from '../src/client';
import { freePort } from '../src/dev-server';
import type { SessionSummary } from '../src/shared/definitions';
import type { ExperimentSpec, HeartbeatDetails, SessionPolicy } from '../src/shared/types';
import { ROOT } from '../bench/lib/env';
import { sleep } from '../bench/lib/stats';
import { ChaosServer, WorkerPool } from './cluster';
import { experimentSet, referenceParams, type ChaosExperiment } from './experiments';
import { injectFault } from './faults';
import { chaosReport, eventsFromLogs, type ChaosReport, type ChaosRun, type ExperimentEnd, type FaultRecord, type PositionEvent } from './report';
import { describeFault, faultSchedule } from './schedule';

export interface ChaosOptions {
  /** Seeds the experiments and the fault schedule. */
  readonly seed: number;
  /** How long faults are injected, in milliseconds. */
  readonly faultPeriodMs: number;
  /** Experiments in all, of which `python` run train.py through `command` and `longRunning` need the approval. */
  readonly experiments: number;
  readonly python: number;
  readonly longRunning: number;
  /** Worker processes (slots). @default 3 */
  readonly workers: number;
  /** Experiments training at once (the session's maxConcurrent). */
  readonly maxConcurrent: number;
  /** Length of one epoch, the checkpoint interval, in milliseconds. */
  readonly epochMs: number;
  /** The session's heartbeat timeout; a SIGSTOP outlasts it. */
  readonly heartbeatTimeout: string;
  readonly heartbeatTimeoutMs: number;
  /** Gap between faults, in milliseconds. */
  readonly minGapMs: number;
  readonly maxGapMs: number;
  /** retry.maximumAttempts of the session (generous: every fault may cost an attempt). */
  readonly maximumAttempts: number;
  /** How long to wait for the session to end after the fault period, in milliseconds. */
  readonly finishTimeoutMs: number;
  /**
   * The checkpoint store every worker shares (one setting, so another store can replace it).
   * @default `<workDir>/checkpoints`
   */
  readonly checkpointRoot?: string;
  /** Scratch directory (server db, worker dirs, logs). @default a new directory under the OS tmp dir */
  readonly workDir?: string;
  /** Keep the work directory (server db, worker logs, run.json) after a passing run too; a failing run always keeps it. @default false */
  readonly keep: boolean;
  readonly log: (line: string) => void;
}

/** `npm run chaos`: about 3 minutes of faults on 36 experiments. */
export const CHAOS_DEFAULTS: Omit<ChaosOptions, 'log' | 'seed'> = {
  faultPeriodMs: 180_000,
  experiments: 36,
  python: 6,
  longRunning: 10,
  workers: 3,
  maxConcurrent: 12,
  epochMs: 2000,
  heartbeatTimeout: '4s',
  heartbeatTimeoutMs: 4000,
  minGapMs: 3000,
  maxGapMs: 6000,
  maximumAttempts: 200,
  finishTimeoutMs: 600_000,
  keep: false,
};

/** The variant inside `npm test`: about 45 s of faults on 12 experiments, each kind several times. */
export const SHORT_CHAOS: Omit<ChaosOptions, 'log' | 'seed'> = {
  ...CHAOS_DEFAULTS,
  faultPeriodMs: 45_000,
  experiments: 12,
  python: 3,
  longRunning: 4,
  minGapMs: 2500,
  maxGapMs: 4500,
  finishTimeoutMs: 300_000,
};

const PYTHON = '/usr/bin/python3';
const TRAIN_PY = path.join(ROOT, 'examples', 'python', 'train.py');
/** The one program the workers register for the `command` trainer: the Python reference trainer. */
const PROGRAMS: ProgramDefinition[] = [{ name: 'train-py', argv: [PYTHON, TRAIN_PY], epochsParam: 'epochs', gracePeriod: '5s' }];

/** The spec the session runs for one chaos experiment. */
export function chaosSpec(e: ChaosExperiment): ExperimentSpec {
  const base = { id: e.id, ...(e.longRunning ? { longRunning: true } : {}) };
  if (e.trainer === 'mlp') return { ...base, trainer: 'mlp', params: e.params };
  return { ...base, trainer: 'command', params: { program: PROGRAMS[0].name, params: e.params } };
}

/** modelSha256 of an uninterrupted run with the same params, run bare (no plugin, no delays). */
export function referenceSha(e: ChaosExperiment, scratch: string): string {
  const params = referenceParams(e);
  if (e.trainer === 'mlp') return runMlpBare(parseMlpParams(params)).modelSha256;
  const dir = fs.mkdtempSync(path.join(scratch, `ref-${e.id}-`));
  const run = spawnSync(PYTHON, [TRAIN_PY], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, EXPERIMENT_CHECKPOINT_DIR: dir, EXPERIMENT_PARAMS: JSON.stringify(params) },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 120_000,
  });
  const result = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type?: string; modelSha256?: string })
    .find((m) => m.type === 'result');
  if (run.status !== 0 || !result?.modelSha256) throw new Error(`train.py run bare for ${e.id} failed (exit ${run.status}): ${run.stderr}`);
  return result.modelSha256;
}

function sessionPolicy(o: ChaosOptions): SessionPolicy {
  return {
    heartbeatTimeout: o.heartbeatTimeout,
    maxConcurrent: o.maxConcurrent,
    defaultTimeout: '30m',
    checkpointsToKeep: 3,
    retry: { initialInterval: '200ms', backoffCoefficient: 1.5, maximumInterval: '2s', maximumAttempts: o.maximumAttempts },
  };
}

/** Heartbeat progress of every running training attempt, sampled once a second. */
async function sampleHeartbeats(client: Client, out: PositionEvent[]): Promise<void> {
  const running = client.workflow.list({ query: `WorkflowType = 'experimentWorkflow' AND ExecutionStatus = 'Running'` });
  for await (const wf of running) {
    const desc = await client.workflow.getHandle(wf.workflowId).describe();
    const pending = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainExperiment');
    const payload = pending?.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const d = client.options.loadedDataConverter.payloadConverter.fromPayload<HeartbeatDetails>(payload);
    const experimentId = wf.workflowId.slice(wf.workflowId.indexOf(':') + 1);
    if (typeof d?.attempt === 'number') out.push({ experimentId, attempt: d.attempt, epoch: d.epoch, step: d.step, time: Date.now() });
  }
}

/** Polls until the session workflow is closed, riding out server restarts. */
async function waitClosed(client: Client, sessionId: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await client.workflow.getHandle(sessionId).describe()).status.name !== 'RUNNING') return true;
    } catch {
      // the server is restarting
    }
    await sleep(1000);
  }
  return false;
}

async function workflowTaskFailures(client: Client, ids: readonly string[]): Promise<number> {
  let n = 0;
  for (const id of ids) {
    try {
      const history = await client.workflow.getHandle(id).fetchHistory();
      n += (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length;
    } catch {
      // never started (the session ended first)
    }
  }
  return n;
}

function experimentEnds(set: readonly ChaosExperiment[], expected: ReadonlyMap<string, string>, summary: SessionSummary | undefined): ExperimentEnd[] {
  return set.map((e) => {
    const s = summary?.experiments.find((x) => x.id === e.id);
    return {
      id: e.id,
      trainer: e.trainer,
      longRunning: e.longRunning,
      state: s?.state ?? 'unfinished',
      modelSha256: s?.result?.modelSha256 ?? null,
      expectedSha256: expected.get(e.id)!,
      attempts: s?.attempt ?? 0,
      preemptions: s?.preemptions ?? 0,
      reason: s?.reason ?? null,
    };
  });
}

export interface ChaosResult {
  readonly report: ChaosReport;
  readonly run: ChaosRun;
  readonly workDir: string;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const startedAt = Date.now();
  const log = (line: string) => o.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}`);
  const set = experimentSet({ seed: o.seed, count: o.experiments, python: o.python, longRunning: o.longRunning, trainMs: (o.faultPeriodMs * o.maxConcurrent * 1.1) / o.experiments, epochMs: o.epochMs });
  const schedule = faultSchedule({ seed: o.seed, durationMs: o.faultPeriodMs, minGapMs: o.minGapMs, maxGapMs: o.maxGapMs, workers: o.workers, experiments: set.length, heartbeatTimeoutMs: o.heartbeatTimeoutMs });
  log(`chaos seed ${o.seed}: ${set.length} experiments, ${schedule.length} faults over ${o.faultPeriodMs / 1000} s (replay with --seed ${o.seed})`);
  for (const f of schedule) log(`  ${describeFault(f)}`);

  const workDir = o.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `chaos-${o.seed}-`));
  fs.mkdirSync(workDir, { recursive: true });
  const checkpointRoot = o.checkpointRoot ?? path.join(workDir, 'checkpoints');
  const expected = new Map(set.map((e) => [e.id, referenceSha(e, workDir)]));
  log(`reference modelSha256 computed for ${expected.size} experiments`);

  const server = new ChaosServer({ port: await freePort(), uiPort: await freePort(), dbFile: path.join(workDir, 'temporal.db'), log });
  await server.start();
  const taskQueue = `chaos-${o.seed}`;
  const programsFile = path.join(workDir, 'programs.json');
  fs.writeFileSync(programsFile, JSON.stringify({ programs: PROGRAMS }));
  const pool = new WorkerPool({
    size: o.workers,
    address: server.address,
    taskQueue,
    checkpointRoot,
    workRoot: workDir,
    heartbeatThrottle: '500ms',
    extraEnv: { EXPERIMENTS_PROGRAMS: programsFile },
    log,
  });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const faults: FaultRecord[] = [];
  const samples: PositionEvent[] = [];
  const thawing: Promise<void>[] = [];
  let summary: SessionSummary | undefined;

  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();
  let passed = false;
  try {
    pool.start();
    await pool.allUp(180_000);
    log(`server ${server.address} and ${o.workers} workers up; checkpoint root ${checkpointRoot}`);

    const sessionId = `chaos-${o.seed}`;
    const experiments = new ExperimentsClient({ client, taskQueue, programs: PROGRAMS });
    await experiments.startSession({ sessionId, policy: sessionPolicy(o), experiments: set.map(chaosSpec) });
    await experiments.approve(sessionId, { by: 'chaos', note: 'one approval for every long-running experiment' });
    sampler = (async () => {
      while (sampling) {
        await sampleHeartbeats(client, samples).catch(() => undefined);
        await sleep(1000);
      }
    })();

    const faultStart = Date.now();
    const targets = { server, pool, client, sessionId, experimentIds: set.map((e) => e.id), thawing };
    for (const f of schedule) {
      await sleep(faultStart + f.atMs - Date.now());
      const r = await injectFault(f, targets, o.workers);
      faults.push(r);
      log(`fault #${f.n} ${f.kind}${r.injected ? '' : ' SKIPPED'}: ${r.detail}`);
    }
    await sleep(faultStart + o.faultPeriodMs - Date.now());
    await Promise.all(thawing);
    log('fault period over; waiting for the session to end');

    if (await waitClosed(client, sessionId, o.finishTimeoutMs)) {
      summary = await client.workflow.getHandle(sessionId).result().catch(() => undefined);
    } else log(`session did not end within ${o.finishTimeoutMs / 1000} s`);
    sampling = false;
    await sampler;

    const { checkpoints, starts, guards } = eventsFromLogs(pool.lines());
    const run: ChaosRun = {
      seed: o.seed,
      faultPeriodMs: o.faultPeriodMs,
      wallMs: Date.now() - startedAt,
      faults,
      experiments: experimentEnds(set, expected, summary),
      checkpoints,
      starts,
      samples,
      stepsPerEpoch: Object.fromEntries(set.map((e) => [e.id, e.stepsPerEpoch])),
      workflowTaskFailures: await workflowTaskFailures(client, [sessionId, ...set.map((e) => `${sessionId}:${e.id}`)]),
      guards,
    };
    fs.writeFileSync(path.join(workDir, 'run.json'), JSON.stringify(run, null, 1));
    const report = chaosReport(run);
    passed = report.pass;
    return { report, run, workDir };
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    await pool.close();
    await connection.close().catch(() => undefined);
    await server.stop().catch(() => undefined);
    if (passed && !o.keep) fs.rmSync(workDir, { recursive: true, force: true });
    else log(`work directory kept: ${workDir}`);
  }
}
