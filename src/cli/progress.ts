/**
 * Live progress of a session, for `experiments run`: reading it (the session query plus each
 * running experiment's last heartbeat, which carries epoch, attempt, checkpoint and loss) and
 * showing it, either as progress bars on a terminal or as one log line per change otherwise.
 * The bars view also owns the keyboard, for the "approve now?" prompt and for Ctrl-C, since a
 * terminal in raw mode no longer turns Ctrl-C into SIGINT.
 */
import cliProgress from 'cli-progress';
import type { ExperimentsClient } from '../client';
import type { SessionSnapshot } from '../shared/definitions';
import type { ExperimentStatus } from '../shared/types';
import { colorState, fmtNumber, fmtPercent, fmtElapsed, styles } from './output';
import { LossTrails } from './sparkline';
import { safe, safeText } from './terminal';
import { estimateVsActual } from './estimate-text';

export interface LiveExperiment extends ExperimentStatus {
  /** Loss of the latest step (from the heartbeat), or the final loss once completed. */
  readonly loss: number | null;
}

export interface LiveSnapshot extends Omit<SessionSnapshot, 'experiments'> {
  readonly experiments: LiveExperiment[];
}

const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The session snapshot with live progress (epoch, attempt, checkpoint, loss) merged into running experiments. */
export async function readLive(client: ExperimentsClient, sessionId: string): Promise<LiveSnapshot> {
  const snap = await client.liveSession(sessionId);
  return { ...snap, experiments: snap.experiments.map((e) => ({ ...e, loss: finite(e.metrics?.loss) ?? finite(e.result?.finalLoss) })) };
}

/** Experiments waiting for the session's approval right now. */
export function awaitingApproval(snap: Pick<LiveSnapshot, 'approval' | 'experiments'>): LiveExperiment[] {
  if (snap.approval.approved) return [];
  return snap.experiments.filter((e) => e.state === 'awaiting-approval');
}

export interface ProgressView {
  update(snap: LiveSnapshot): void;
  /** A line of news (printed above the bars in a terminal). */
  note(line: string): void;
  /** Asks a question on the terminal; resolves with the typed line, or null if cancelled. Undefined when it cannot ask. */
  ask?(question: string): Promise<string | null>;
  /** Withdraws an open question (it was answered elsewhere). */
  cancelAsk?(): void;
  stop(): void;
}

const time = () => new Date().toTimeString().slice(0, 8);

function counts(snap: LiveSnapshot): string {
  const order = ['running', 'queued', 'awaiting-approval', 'awaiting-resources', 'completed', 'pruned', 'interrupted', 'failed', 'timed-out', 'rejected', 'cancelled'];
  // The session's counts cover every experiment, also those a long session folded away.
  const n = new Map<string, number>(Object.entries(snap.counts ?? {}).filter((entry): entry is [string, number] => typeof entry[1] === 'number'));
  if (!snap.counts) for (const e of snap.experiments) n.set(e.state, (n.get(e.state) ?? 0) + 1);
  return order
    .filter((s) => n.has(s))
    .map((s) => `${n.get(s)} ${s === 'awaiting-approval' ? 'awaiting approval' : s}`)
    .join(' · ');
}

function endLine(e: LiveExperiment): string {
  const parts: string[] = [e.state];
  if (e.state === 'completed') parts.push(`loss ${fmtNumber(e.result?.finalLoss ?? e.loss)}`, `accuracy ${fmtPercent(e.result?.accuracy)}`);
  else if (e.reason) parts.push(`(${safeText(e.reason)})`);
  if (e.attempt > 1) parts.push(`after ${e.attempt} attempts`);
  if (e.resumedFrom !== null) parts.push(`resumed from epoch ${e.resumedFrom}`);
  const estimate = estimateVsActual(e);
  if (estimate && e.state === 'completed') parts.push(estimate);
  return parts.join('  ');
}

/** Without a terminal: one line per change of state, epoch or attempt. */
export class LogView implements ProgressView {
  private readonly seen = new Map<string, { state: string; epoch: number; attempt: number }>();
  private sessionState = '';
  private approved: boolean | null = null;

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  private line(text: string): void {
    this.out.write(`[${time()}] ${text}\n`);
  }

  note(line: string): void {
    this.line(safeText(line));
  }

  update(snap: LiveSnapshot): void {
    if (snap.state !== this.sessionState) {
      this.sessionState = snap.state;
      this.line(`session ${snap.id}: ${snap.state} (${counts(snap)})`);
    }
    if (snap.approval.required && this.approved !== snap.approval.approved) {
      if (snap.approval.approved) this.line(`session ${snap.id}: approved by ${safe(snap.approval.by)}${snap.approval.note ? ` (“${safe(snap.approval.note)}”)` : ''}`);
      this.approved = snap.approval.approved;
    }
    for (const e of snap.experiments) {
      const prev = this.seen.get(e.id);
      const now = { state: e.state, epoch: e.epoch, attempt: e.attempt };
      this.seen.set(e.id, now);
      if (!prev || prev.state !== e.state) {
        if (e.state === 'running') this.line(`${e.id}: running${e.timeoutMode === 'none' ? ' (long-running, no timeout)' : ''}`);
        else if (e.state === 'queued' || e.state === 'awaiting-approval') this.line(`${e.id}: ${e.state}`);
        else this.line(`${e.id}: ${endLine(e)}`);
        if (e.state !== 'running') continue;
      }
      if (e.state !== 'running') continue;
      if (prev && prev.state === 'running' && e.attempt !== prev.attempt && prev.attempt > 0) {
        this.line(`${e.id}: attempt ${e.attempt}${e.resumedFrom !== null ? ` (resumed from epoch ${e.resumedFrom})` : ''}`);
      }
      if (e.epoch !== (prev?.state === 'running' ? prev.epoch : -1) && e.epoch > 0) {
        this.line(`${e.id}: epoch ${e.epoch}${e.epochs !== null ? `/${e.epochs}` : ''}  loss ${fmtNumber(e.loss)}  attempt ${Math.max(1, e.attempt)}`);
      }
    }
  }

  stop(): void {}
}

interface BarPayload {
  readonly kind: 'text' | 'experiment';
  readonly text?: string;
  readonly e?: LiveExperiment;
}

/** On a terminal: a header line, one bar per running experiment, and a prompt line when needed. */
export class BarsView implements ProgressView {
  private readonly multibar: cliProgress.MultiBar;
  private readonly header: cliProgress.SingleBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly ended = new Set<string>();
  private readonly started = Date.now();
  private readonly idWidth: number;
  private prompt: { bar: cliProgress.SingleBar; question: string; buffer: string; resolve: (v: string | null) => void } | undefined;
  private readonly keyboard: boolean;
  private stopped = false;
  private approved: boolean | null = null;
  private readonly st = styles(process.stdout);
  private readonly trails = new LossTrails();

  constructor(
    private readonly out: NodeJS.WriteStream,
    ids: readonly string[],
    private readonly onInterrupt: () => void,
  ) {
    this.idWidth = Math.min(40, Math.max(10, ...ids.map((id) => id.length)));
    const bar = cliProgress.Format.BarFormat;
    this.multibar = new cliProgress.MultiBar(
      {
        stream: out,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        linewrap: false,
        fps: 10,
        barsize: 20,
        barCompleteChar: '█',
        barIncompleteChar: '░',
        format: (options, _params, payload: BarPayload) => {
          if (payload.kind === 'text') return payload.text ?? '';
          const e = payload.e as LiveExperiment;
          const progress = e.epochs ? Math.min(1, e.epoch / e.epochs) : 0;
          const id = e.id.length > this.idWidth ? `${e.id.slice(0, this.idWidth - 1)}…` : e.id.padEnd(this.idWidth);
          const epochs = e.epochs ? `${String(e.epoch).padStart(String(e.epochs).length)}/${e.epochs} epochs` : 'starting';
          const trail = this.trails.line(e.id);
          const extra = [`loss ${fmtNumber(e.loss)}${trail ? ` ${trail}` : ''}`, `attempt ${Math.max(1, e.attempt)}`];
          if (e.resumedFrom !== null) extra.push(`resumed from epoch ${e.resumedFrom}`);
          if (e.timeoutMode === 'none') extra.push('no timeout');
          return ` ${id} ${bar(progress, options)} ${epochs}  ${extra.join('  ')}`;
        },
      },
      cliProgress.Presets.shades_classic,
    );
    this.header = this.multibar.create(1, 0, { kind: 'text', text: 'starting…' });
    this.keyboard = process.stdin.isTTY === true;
    if (this.keyboard) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', this.onKey);
    }
  }

  private readonly onKey = (chunk: Buffer) => {
    for (const ch of chunk.toString('utf8')) {
      if (ch === '\x03') {
        this.onInterrupt();
        continue;
      }
      const p = this.prompt;
      if (!p) continue;
      if (ch === '\r' || ch === '\n') {
        this.prompt = undefined;
        this.multibar.remove(p.bar);
        p.resolve(p.buffer);
      } else if (ch === '\x7f' || ch === '\b') {
        p.buffer = p.buffer.slice(0, -1);
      } else if (ch === '\x1b') {
        // Escape sequences (arrow keys) are not line editing we support; ignore the rest of the chunk.
        break;
      } else if (ch >= ' ' && p.buffer.length < 200) {
        p.buffer += ch;
      }
      if (this.prompt) this.prompt.bar.update(0, { kind: 'text', text: `${this.prompt.question} ${this.prompt.buffer}▏` });
    }
  };

  /** Above the bars. Each line clears its row first: the bar drawn there before may be longer. */
  private log(line: string): void {
    this.multibar.log(`\x1b[2K${line}\n`);
  }

  note(line: string): void {
    // Notes quote server and child messages; our own styles are added by the view, not in notes.
    const text = safeText(line);
    if (this.stopped) this.out.write(`${text}\n`);
    else this.log(text);
  }

  update(snap: LiveSnapshot): void {
    if (this.stopped) return;
    const title = `${this.st.bold(`Session ${snap.id}`)}  ${colorState(snap.state, this.out)}  ${counts(snap)}  ${this.st.dim(fmtElapsed(Date.now() - this.started))}`;
    this.header.update(0, { kind: 'text', text: title });
    if (snap.approval.required && this.approved === false && snap.approval.approved) {
      this.log(`${this.st.green('✓')} session approved by ${safe(snap.approval.by)}${snap.approval.note ? ` (“${safe(snap.approval.note)}”)` : ''}`);
    }
    if (snap.approval.required) this.approved = snap.approval.approved;
    for (const e of snap.experiments) {
      const bar = this.bars.get(e.id);
      if (e.state === 'running') {
        this.trails.add(e.id, e.loss);
        const payload: BarPayload = { kind: 'experiment', e };
        if (bar) bar.update(e.epoch, payload);
        else this.bars.set(e.id, this.multibar.create(e.epochs ?? 1, e.epoch, payload));
        continue;
      }
      if (bar) {
        this.multibar.remove(bar);
        this.bars.delete(e.id);
        this.trails.delete(e.id);
      }
      const terminal = !['queued', 'awaiting-approval', 'awaiting-resources', 'running'].includes(e.state);
      if (terminal && !this.ended.has(e.id)) {
        this.ended.add(e.id);
        const mark = e.state === 'completed' ? this.st.green('✓') : this.st.red('✗');
        this.log(`${mark} ${e.id.padEnd(this.idWidth)} ${endLine(e)}`);
      }
    }
  }

  ask(question: string): Promise<string | null> {
    if (!this.keyboard || this.stopped) return Promise.resolve(null);
    this.cancelAsk();
    return new Promise((resolve) => {
      const bar = this.multibar.create(1, 0, { kind: 'text', text: `${question} ▏` });
      this.prompt = { bar, question, buffer: '', resolve };
    });
  }

  cancelAsk(): void {
    const p = this.prompt;
    if (!p) return;
    this.prompt = undefined;
    this.multibar.remove(p.bar);
    p.resolve(null);
  }

  stop(): void {
    if (this.stopped) return;
    this.cancelAsk();
    for (const bar of this.bars.values()) this.multibar.remove(bar);
    this.bars.clear();
    this.multibar.update();
    this.multibar.stop();
    this.stopped = true;
    if (this.keyboard) {
      process.stdin.off('data', this.onKey);
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
  }
}
