/**
 * The verdict of a chaos run, computed from what the run collected: the faults it injected, the
 * workers' pino lines ("checkpoint saved", "starting training", "resuming training"), heartbeat
 * samples of running attempts, and each experiment's end. Pure, so every rule here is unit-tested
 * without a server. Definitions (also in chaos/README.md):
 *
 * - Position: epoch + step / stepsPerEpoch, in epochs.
 * - Restart: any start of an experiment's training after its first (a retry attempt, or a new
 *   invocation after a preemption, whose attempt number starts again at 1). Restarts are ordered
 *   by time, not by attempt number, for that reason.
 * - Checkpoint lost: a checkpoint that was durable (its "checkpoint saved" line was logged) before
 *   a restart of the same experiment, while that restart resumed from an earlier position. The
 *   restart could have used it and did not.
 * - Epochs recomputed after a fault: for each restart, the furthest position the experiment had
 *   reached before it (checkpoint lines and heartbeat samples) minus the position it resumed
 *   from. Samples are at most one heartbeat interval old, so this is a lower bound by that much.
 * - The run passes when every experiment completed with the modelSha256 of an uninterrupted run,
 *   no checkpoint was lost, and no fault cost more than one checkpoint interval (one epoch).
 */
import { FAULT_KINDS, type FaultKind } from './schedule';

export interface PositionEvent {
  readonly experimentId: string;
  readonly attempt: number;
  readonly epoch: number;
  readonly step: number;
  /** Epoch milliseconds. */
  readonly time: number;
}

export interface CheckpointEvent extends PositionEvent {
  readonly checkpointId: string;
}

export interface FaultRecord {
  readonly n: number;
  readonly kind: FaultKind;
  readonly atMs: number;
  readonly injected: boolean;
  readonly detail: string;
}

export interface ExperimentEnd {
  readonly id: string;
  readonly trainer: string;
  readonly longRunning: boolean;
  /** State in the session's summary, or `unfinished` when the session never ended. */
  readonly state: string;
  readonly modelSha256: string | null;
  readonly expectedSha256: string;
  readonly attempts: number;
  /** Worker shutdowns the experiment went through, as its status reports them. */
  readonly preemptions: number;
  readonly reason: string | null;
}

export interface ChaosRun {
  readonly seed: number;
  readonly faultPeriodMs: number;
  readonly wallMs: number;
  readonly faults: readonly FaultRecord[];
  readonly experiments: readonly ExperimentEnd[];
  readonly checkpoints: readonly CheckpointEvent[];
  /** "starting training" / "resuming training" lines: where each attempt began. */
  readonly starts: readonly PositionEvent[];
  readonly samples: readonly PositionEvent[];
  readonly stepsPerEpoch: Readonly<Record<string, number>>;
  /** WorkflowTaskFailed events in all of the run's histories (informational). */
  readonly workflowTaskFailures: number;
  readonly guards: GuardCounts;
}

export interface LostCheckpoint {
  readonly experimentId: string;
  readonly checkpointId: string;
  readonly position: number;
  readonly savedBy: number;
  readonly resumedAttempt: number;
  readonly resumedAt: number;
}

export interface ChaosReport {
  readonly seed: number;
  readonly faultPeriodMs: number;
  readonly wallMs: number;
  readonly faultsByKind: Readonly<Record<FaultKind, { injected: number; skipped: number }>>;
  readonly experiments: number;
  readonly completed: number;
  readonly identical: number;
  readonly checkpointsSaved: number;
  readonly lost: readonly LostCheckpoint[];
  readonly retries: number;
  readonly preemptions: number;
  readonly maxRecomputed: { epochs: number; experimentId: string; attempt: number } | null;
  readonly workflowTaskFailures: number;
  readonly guards: GuardCounts;
  readonly problems: readonly string[];
  readonly pass: boolean;
}

/** How often the plugin's own guards acted, from the workers' lines (informational). */
export interface GuardCounts {
  /** A stale attempt's checkpoint write refused by the store's fencing. */
  readonly staleWritesRefused: number;
  /** A silent trainer stopped by its worker's watchdog. */
  readonly watchdogStops: number;
}

/** A pino line as the workers write it. */
export interface LogLine {
  readonly msg?: unknown;
  readonly [field: string]: unknown;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Checkpoint and attempt-start events from the workers' JSON lines; other lines are ignored. */
export function eventsFromLogs(lines: Iterable<LogLine>): { checkpoints: CheckpointEvent[]; starts: PositionEvent[]; guards: GuardCounts } {
  const checkpoints: CheckpointEvent[] = [];
  const starts: PositionEvent[] = [];
  const guards = { staleWritesRefused: 0, watchdogStops: 0 };
  for (const line of lines) {
    const msg = typeof line.msg === 'string' ? line.msg : '';
    if (line.attempted !== undefined && line.newest !== undefined && msg.includes('is stale')) guards.staleWritesRefused++;
    if (msg.startsWith('no step, checkpoint or output from the trainer')) guards.watchdogStops++;
    const experimentId = typeof line.experimentId === 'string' ? line.experimentId : undefined;
    const [attempt, epoch, step, time] = [num(line.attempt), num(line.epoch), num(line.step), num(line.time)];
    if (!experimentId || attempt === undefined || epoch === undefined || step === undefined || time === undefined) continue;
    const at = { experimentId, attempt, epoch, step, time };
    if (line.msg === 'checkpoint saved' && typeof line.checkpointId === 'string') checkpoints.push({ ...at, checkpointId: line.checkpointId });
    else if (line.msg === 'starting training' || line.msg === 'resuming training') starts.push(at);
  }
  return { checkpoints, starts, guards };
}

function position(e: PositionEvent, stepsPerEpoch: Readonly<Record<string, number>>): number {
  const spe = stepsPerEpoch[e.experimentId];
  return e.epoch + (spe ? e.step / spe : 0);
}

/** Every start of an experiment's training except its first: the restarts after faults. */
function restarts(starts: readonly PositionEvent[]): PositionEvent[] {
  const first = new Map<string, number>();
  for (const s of starts) first.set(s.experimentId, Math.min(first.get(s.experimentId) ?? Infinity, s.time));
  return starts.filter((s) => s.time > first.get(s.experimentId)!);
}

export function lostCheckpoints(run: Pick<ChaosRun, 'checkpoints' | 'starts' | 'stepsPerEpoch'>): LostCheckpoint[] {
  const lost = new Map<string, LostCheckpoint>();
  for (const start of restarts(run.starts)) {
    const from = position(start, run.stepsPerEpoch);
    for (const c of run.checkpoints) {
      if (c.experimentId !== start.experimentId || c.time >= start.time) continue;
      const at = position(c, run.stepsPerEpoch);
      if (at > from + 1e-9 && !lost.has(c.checkpointId)) {
        lost.set(c.checkpointId, { experimentId: c.experimentId, checkpointId: c.checkpointId, position: at, savedBy: c.attempt, resumedAttempt: start.attempt, resumedAt: from });
      }
    }
  }
  return [...lost.values()];
}

export function maxRecomputed(run: Pick<ChaosRun, 'checkpoints' | 'starts' | 'samples' | 'stepsPerEpoch'>): ChaosReport['maxRecomputed'] {
  let worst: ChaosReport['maxRecomputed'] = null;
  const reached = [...run.checkpoints, ...run.samples];
  for (const start of restarts(run.starts)) {
    let furthest = -Infinity;
    for (const e of reached) {
      if (e.experimentId === start.experimentId && e.time < start.time) furthest = Math.max(furthest, position(e, run.stepsPerEpoch));
    }
    if (furthest === -Infinity) continue;
    const epochs = Math.max(0, furthest - position(start, run.stepsPerEpoch));
    if (!worst || epochs > worst.epochs) worst = { epochs, experimentId: start.experimentId, attempt: start.attempt };
  }
  return worst;
}

/** One checkpoint interval (an epoch), plus rounding slack. */
const RECOMPUTE_BOUND = 1 + 1e-6;

export function chaosReport(run: ChaosRun): ChaosReport {
  const faultsByKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, { injected: 0, skipped: 0 }])) as Record<FaultKind, { injected: number; skipped: number }>;
  for (const f of run.faults) faultsByKind[f.kind][f.injected ? 'injected' : 'skipped']++;
  const completed = run.experiments.filter((e) => e.state === 'completed');
  const identical = completed.filter((e) => e.modelSha256 === e.expectedSha256);
  const lost = lostCheckpoints(run);
  const worst = maxRecomputed(run);
  const problems: string[] = [];
  for (const e of run.experiments) {
    if (e.state !== 'completed') problems.push(`${e.id}: ended ${e.state}${e.reason ? ` (${e.reason})` : ''}`);
    else if (e.modelSha256 !== e.expectedSha256) problems.push(`${e.id}: modelSha256 ${e.modelSha256} differs from the uninterrupted run's ${e.expectedSha256}`);
  }
  for (const l of lost) {
    problems.push(`${l.experimentId}: checkpoint ${l.checkpointId} (epoch ${l.position.toFixed(2)}, attempt ${l.savedBy}) lost: attempt ${l.resumedAttempt} resumed at ${l.resumedAt.toFixed(2)}`);
  }
  if (worst && worst.epochs > RECOMPUTE_BOUND) {
    problems.push(`${worst.experimentId}: attempt ${worst.attempt} recomputed ${worst.epochs.toFixed(2)} epochs, more than one checkpoint interval`);
  }
  if (run.experiments.length === 0) problems.push('no experiments ran');
  return {
    seed: run.seed,
    faultPeriodMs: run.faultPeriodMs,
    wallMs: run.wallMs,
    faultsByKind,
    experiments: run.experiments.length,
    completed: completed.length,
    identical: identical.length,
    checkpointsSaved: run.checkpoints.length,
    lost,
    retries: restarts(run.starts).length,
    preemptions: run.experiments.reduce((n, e) => n + e.preemptions, 0),
    maxRecomputed: worst,
    workflowTaskFailures: run.workflowTaskFailures,
    guards: run.guards,
    problems,
    pass: problems.length === 0,
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The results table (markdown), as printed and as pasted into chaos/README.md. */
export function reportTable(r: ChaosReport): string {
  const faults = FAULT_KINDS.map((k) => {
    const { injected, skipped } = r.faultsByKind[k];
    return `${k} ${injected}${skipped ? ` (+${skipped} skipped)` : ''}`;
  }).join(', ');
  const total = FAULT_KINDS.reduce((s, k) => s + r.faultsByKind[k].injected, 0);
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['fault period', seconds(r.faultPeriodMs)],
    ['faults injected', `${total}: ${faults}`],
    ['experiments completed', `${r.completed} / ${r.experiments}`],
    ['bit-identical to an uninterrupted run', `${r.identical} / ${r.experiments}`],
    ['checkpoints saved / lost', `${r.checkpointsSaved} / ${r.lost.length}`],
    ['training restarts (attempts or invocations after the first)', String(r.retries)],
    ['preemptions reported in the statuses', String(r.preemptions)],
    ['most epochs recomputed after one fault', r.maxRecomputed ? `${r.maxRecomputed.epochs.toFixed(2)} (${r.maxRecomputed.experimentId}, attempt ${r.maxRecomputed.attempt})` : 'none'],
    ['workflow task failures (all histories)', String(r.workflowTaskFailures)],
    ['stale checkpoint writes refused / watchdog stops', `${r.guards.staleWritesRefused} / ${r.guards.watchdogStops}`],
    ['wall time', seconds(r.wallMs)],
    ['verdict', r.pass ? 'PASS' : `FAIL (${r.problems.length} problems)`],
  ];
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
