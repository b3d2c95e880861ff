/**
 * The seeded fault schedule of a chaos run: which fault, when, against which worker slot or
 * workflow, with which payload. Pure: the same seed and options always give the same schedule,
 * so a failing run is replayed with `npm run chaos -- --seed N`. What the runner does when the
 * chosen slot is not up (another slot, or a skip that keeps one worker alive) is decided at run
 * time and logged with the fault, since it depends on how fast workers restart.
 */
import { mulberry32 } from '../bench/lib/stats';

export const FAULT_KINDS = ['worker-kill9', 'worker-sigterm', 'worker-sigstop', 'server-kill9', 'forged-signal'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How a forged signal's payload looks. `none` sends the signal with no input at all. */
export const PAYLOAD_KINDS = ['none', 'null', 'number', 'string', 'huge-string', 'wrong-shape', 'forged-status'] as const;
export type PayloadKind = (typeof PAYLOAD_KINDS)[number];

/** Signals the plugin's workflows define; a forged one goes to a session or an experiment. */
export const SIGNAL_NAMES = ['approve', 'experimentFinished', 'cancelReason'] as const;
export type SignalName = (typeof SIGNAL_NAMES)[number];

export interface ForgedSignal {
  readonly name: SignalName;
  readonly payload: PayloadKind;
  /** 0 is the session; i >= 1 is experiment i - 1 (it may not have started, or be closed). */
  readonly target: number;
  /** For `forged-status`: the experiment whose end it claims (index into the experiments). */
  readonly claims: number;
}

export interface Fault {
  /** Sequence number, from 1. */
  readonly n: number;
  /** Offset from the start of the fault period, in milliseconds. */
  readonly atMs: number;
  readonly kind: FaultKind;
  /** Worker slot the fault prefers (worker faults only). */
  readonly slot: number;
  /** How long a SIGSTOPped worker stays frozen, in milliseconds (worker-sigstop only). */
  readonly stopMs: number;
  readonly signal: ForgedSignal | null;
}

export interface ScheduleOptions {
  readonly seed: number;
  /** Length of the fault period, in milliseconds. */
  readonly durationMs: number;
  /** Gap between two faults: uniform in [minGapMs, maxGapMs]. @default 3000, 6000 */
  readonly minGapMs?: number;
  readonly maxGapMs?: number;
  readonly workers: number;
  /** Experiments a forged signal may target (besides the session). */
  readonly experiments: number;
  /** The session's heartbeat timeout: a SIGSTOP lasts longer than it. */
  readonly heartbeatTimeoutMs: number;
  /** Relative weight of each kind. @default DEFAULT_WEIGHTS */
  readonly weights?: Readonly<Record<FaultKind, number>>;
}

/** A server restart costs several seconds of outage, so it comes less often than the rest. */
export const DEFAULT_WEIGHTS: Readonly<Record<FaultKind, number>> = {
  'worker-kill9': 3,
  'worker-sigterm': 3,
  'worker-sigstop': 2,
  'server-kill9': 1,
  'forged-signal': 3,
};

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

function weighted(random: () => number, weights: Readonly<Record<FaultKind, number>>): FaultKind {
  const total = FAULT_KINDS.reduce((s, k) => s + weights[k], 0);
  let r = random() * total;
  for (const kind of FAULT_KINDS) {
    r -= weights[kind];
    if (r < 0) return kind;
  }
  return FAULT_KINDS[FAULT_KINDS.length - 1];
}

export function faultSchedule(o: ScheduleOptions): Fault[] {
  const minGap = o.minGapMs ?? 3000;
  const maxGap = o.maxGapMs ?? 6000;
  if (!(minGap > 0 && maxGap >= minGap)) throw new Error(`schedule: expected 0 < minGapMs <= maxGapMs, received ${minGap} and ${maxGap}`);
  if (!(o.workers >= 1)) throw new Error(`schedule: expected at least one worker, received ${o.workers}`);
  const random = mulberry32(o.seed);
  const weights = o.weights ?? DEFAULT_WEIGHTS;
  const faults: Fault[] = [];
  for (let at = minGap + random() * (maxGap - minGap); at < o.durationMs; at += minGap + random() * (maxGap - minGap)) {
    const kind = weighted(random, weights);
    // Every draw happens for every fault, so one kind's parameters never shift another's.
    const slot = Math.floor(random() * o.workers);
    const stopMs = Math.round(o.heartbeatTimeoutMs + 1500 + random() * 2500);
    const signal: ForgedSignal = {
      name: pick(random, SIGNAL_NAMES),
      payload: pick(random, PAYLOAD_KINDS),
      target: Math.floor(random() * (o.experiments + 1)),
      claims: Math.floor(random() * Math.max(1, o.experiments)),
    };
    faults.push({
      n: faults.length + 1,
      atMs: Math.round(at),
      kind,
      slot: kind.startsWith('worker-') ? slot : -1,
      stopMs: kind === 'worker-sigstop' ? stopMs : 0,
      signal: kind === 'forged-signal' ? signal : null,
    });
  }
  return faults;
}

/** One line per fault, as printed before the run starts. */
export function describeFault(f: Fault): string {
  const at = `${(f.atMs / 1000).toFixed(1).padStart(6)}s`;
  switch (f.kind) {
    case 'worker-sigstop':
      return `#${f.n} ${at} ${f.kind} slot ${f.slot} for ${(f.stopMs / 1000).toFixed(1)}s`;
    case 'forged-signal': {
      const s = f.signal!;
      return `#${f.n} ${at} ${f.kind} ${s.name}(${s.payload}) to ${s.target === 0 ? 'the session' : `experiment #${s.target - 1}`}`;
    }
    case 'server-kill9':
      return `#${f.n} ${at} ${f.kind}`;
    default:
      return `#${f.n} ${at} ${f.kind} slot ${f.slot}`;
  }
}

/**
 * The arguments a forged signal carries. `forged-status` claims that an experiment completed
 * with a model nobody trained: a session that believes it reports a wrong modelSha256.
 */
export function signalArgs(s: ForgedSignal, ctx: { readonly sessionId: string; readonly experimentIds: readonly string[] }): unknown[] {
  const claimed = ctx.experimentIds[s.claims] ?? 'unknown';
  switch (s.payload) {
    case 'none':
      return [];
    case 'null':
      return [null];
    case 'number':
      return [42];
    case 'string':
      return ['chaos'];
    case 'huge-string':
      return ['x'.repeat(256 * 1024)];
    case 'wrong-shape':
      return [{ by: 7, status: 'done', reason: ['not', 'a', 'string'] }];
    case 'forged-status':
      return [
        {
          by: 'forger',
          status: {
            id: claimed,
            sessionId: ctx.sessionId,
            workflowId: `${ctx.sessionId}:${claimed}`,
            state: 'completed',
            timeoutMode: 'bounded',
            attempt: 1,
            epoch: 1,
            epochs: 1,
            latestCheckpoint: null,
            resumedFrom: null,
            result: { finalLoss: 0, accuracy: 1, modelSha256: 'forged' },
            reason: null,
          },
        },
      ];
  }
}
