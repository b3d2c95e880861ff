/**
 * The child's stdout, as the protocol reads it (docs/trainer-protocol.md section 4): bytes split
 * into lines with a length cap, and each line parsed into one message or a violation. Pure: no
 * I/O and no state beyond the splitter's buffer, so every rule is unit-tested without a process.
 */
import { describe } from '../../../shared/ids';
import type { Metrics } from '../../../shared/types';

/** Longest protocol line (section 4.1); longer lines are logged truncated, never parsed. */
export const MAX_LINE_BYTES = 64 * 1024;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function received(value: unknown): string {
  return typeof value === 'number' ? String(value) : describe(value);
}

/** Splits a byte stream into lines; a line over the cap is cut, and the rest of it dropped. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(private readonly onLine: (line: string, truncated: boolean) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      this.append(chunk.subarray(start, nl === -1 ? chunk.length : nl));
      if (nl === -1) return;
      this.flush();
      start = nl + 1;
    }
  }

  /** A last line without a newline still counts: a child killed mid-write may leave one. */
  end(): void {
    if (this.size > 0 || this.truncated) this.flush();
  }

  private append(piece: Buffer): void {
    const room = MAX_LINE_BYTES - this.size;
    if (piece.length > room) {
      this.truncated = true;
      piece = piece.subarray(0, room);
    }
    if (piece.length === 0) return;
    this.parts.push(piece);
    this.size += piece.length;
  }

  private flush(): void {
    let line = Buffer.concat(this.parts, this.size).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const truncated = this.truncated;
    this.parts = [];
    this.size = 0;
    this.truncated = false;
    this.onLine(line, truncated);
  }
}

export interface Position {
  readonly epoch: number;
  readonly step: number;
}

/** Metric values that are not finite numbers are dropped (`dropped` says which, for a warning). */
interface WithMetrics {
  readonly metrics: Metrics;
  readonly dropped: readonly string[];
}

/** One stdout line, read. `text` is not a protocol line (logged); `violation` is a broken one. */
export type Message =
  | { readonly type: 'text' }
  | ({ readonly type: 'progress'; readonly epochs: number | undefined } & Position & WithMetrics)
  | ({ readonly type: 'checkpoint'; readonly path: string } & Position & WithMetrics)
  | ({ readonly type: 'result'; readonly modelSha256: string | undefined } & WithMetrics)
  | ({ readonly type: 'interrupted' } & Position)
  | { readonly type: 'fatal'; readonly message: string }
  | { readonly type: 'unknown'; readonly name: string }
  | { readonly type: 'violation'; readonly of: string; readonly problem: string };

class Violation extends Error {}

function position(msg: Record<string, unknown>, field: 'epoch' | 'step'): number {
  const n = msg[field];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Violation(`${field}: expected an integer >= 0, received ${received(n)}`);
  return n;
}

function metricsOf(msg: Record<string, unknown>, required: boolean): WithMetrics {
  const raw = msg.metrics;
  if (raw === undefined && !required) return { metrics: {}, dropped: [] };
  if (!isRecord(raw)) throw new Violation(`metrics: expected an object of numbers, received ${received(raw)}`);
  const metrics: Record<string, number> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value === 'number' && Number.isFinite(value)) metrics[name] = value;
    else dropped.push(`metrics.${name}: expected a finite number, received ${received(value)}`);
  }
  return { metrics, dropped };
}

function read(type: string, msg: Record<string, unknown>): Message {
  switch (type) {
    case 'progress': {
      const n = msg.epochs;
      if (n !== undefined && (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)) throw new Violation(`epochs: expected an integer >= 1, received ${received(n)}`);
      return { type, epoch: position(msg, 'epoch'), step: position(msg, 'step'), epochs: n, ...metricsOf(msg, false) };
    }
    case 'checkpoint': {
      if (typeof msg.path !== 'string' || msg.path === '') throw new Violation(`path: expected a non-empty string, received ${received(msg.path)}`);
      return { type, path: msg.path, epoch: position(msg, 'epoch'), step: position(msg, 'step'), ...metricsOf(msg, false) };
    }
    case 'result': {
      const withMetrics = metricsOf(msg, true);
      const sha = msg.modelSha256;
      if (sha !== undefined && (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))) {
        throw new Violation(`modelSha256: expected 64 lowercase hex digits, received ${received(sha)}`);
      }
      return { type, modelSha256: sha, ...withMetrics };
    }
    case 'interrupted':
      return { type, epoch: position(msg, 'epoch'), step: position(msg, 'step') };
    case 'fatal':
      if (typeof msg.message !== 'string' || msg.message === '') throw new Violation(`message: expected a non-empty string, received ${received(msg.message)}`);
      return { type, message: msg.message };
    default:
      // Forward compatibility (section 4.1): unknown types are logged and ignored.
      return { type: 'unknown', name: type };
  }
}

/** Reads one stdout line (section 4): a JSON object with a string `type`, else log text. */
export function parseLine(line: string, truncated: boolean): Message {
  if (truncated) return { type: 'text' };
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { type: 'text' };
  }
  if (!isRecord(msg) || typeof msg.type !== 'string') return { type: 'text' };
  try {
    return read(msg.type, msg);
  } catch (err) {
    if (err instanceof Violation) return { type: 'violation', of: msg.type, problem: err.message };
    throw err;
  }
}
