/**
 * Bounded sessions, pure: what a session keeps of its ended experiments across continue-as-new,
 * and the bounded views of them (the summary, one page of the status query).
 *
 * Behind the patch `session-bounded-carry`, at continue-as-new the terminal rows are folded into
 * a `FoldedRows` aggregate: counts by state, and a Bloom filter of their ids (so `addExperiments`
 * still refuses an id the session already used). At most `KEPT_ROWS` terminal rows are carried
 * on as rows: the ones that did not end well first (failed, timed-out, rejected, interrupted,
 * cancelled), then the best by the search metric (policy `search`), else the latest submitted.
 * Rows still to run (queued, awaiting-approval; none is running at continue-as-new) are carried
 * as before, except that a plain queued row (no status, never waited) travels as its spec alone
 * (`SessionCarry.queued`) and is rebuilt with newRow, after the carried rows. Every ended experiment stays readable through its own workflow and visibility
 * (`SessionId = "<session>"`, ExperimentsClient.experimentsPage).
 *
 * No Temporal calls: test/workflows/fold.test.ts covers it without a server.
 */
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type FoldedRows, type SessionCarry, type SessionRow, type SessionStatusPage } from '../../shared/definitions';
import type { ResolvedPolicy } from '../../shared/policy';
import { rankTrials } from '../../shared/search/best';
import { TERMINAL_EXPERIMENT_STATES, type ExperimentSpec, type ExperimentState } from '../../shared/types';

/** Patch: terminal rows are folded into `SessionCarry.folded` at continue-as-new. */
export const BOUNDED_CARRY_PATCH = 'session-bounded-carry';
/** Terminal rows carried on as rows at each continue-as-new. */
export const KEPT_ROWS = 50;
/** Rows in the session's result (`SessionSummary.experiments`). */
export const SUMMARY_ROWS = 100;
export { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../../shared/definitions';

export type StateCounts = Partial<Record<ExperimentState, number>>;

const isTerminalRow = (row: SessionRow): boolean => TERMINAL_EXPERIMENT_STATES.includes(row.state);
const endedWell = (row: SessionRow): boolean => row.state === 'completed' || row.state === 'pruned';

/** Counts of `rows` by state, added to `base`. */
export function countStates(rows: Iterable<SessionRow>, base: StateCounts = {}): StateCounts {
  const counts: StateCounts = { ...base };
  for (const row of rows) counts[row.state] = (counts[row.state] ?? 0) + 1;
  return counts;
}

export const totalOf = (counts: StateCounts): number => Object.values(counts).reduce((a, n) => a + (n ?? 0), 0);

/**
 * The rows worth keeping of `rows` (terminal ones), at most `limit`, in their original order:
 * those that did not end well first (the latest of them when there are too many), then the best
 * by the search metric when the policy has `search`, else the latest submitted.
 */
export function selectRows(rows: readonly SessionRow[], policy: Pick<ResolvedPolicy, 'search'>, limit: number): SessionRow[] {
  if (rows.length <= limit) return [...rows];
  const bad = rows.filter((r) => !endedWell(r));
  const good = rows.filter(endedWell);
  const chosen = new Set<SessionRow>(bad.slice(Math.max(0, bad.length - limit)));
  const room = limit - chosen.size;
  if (room > 0) {
    const { search } = policy;
    const ordered = search
      ? rankTrials(good.map((row) => ({ row, state: row.state, metrics: row.status?.metrics })), search).map((t) => t.row)
      : [...good].reverse();
    for (const row of ordered.slice(0, room)) chosen.add(row);
  }
  return rows.filter((r) => chosen.has(r));
}

/** A queued row that `newRow(row.spec, policy)` rebuilds exactly: carried as its spec alone. */
const isPlainQueued = (row: SessionRow): boolean => row.state === 'queued' && row.status === null && row.awaitingSince === null && row.reason === null;

/**
 * Folds the terminal rows of `rows` into `previous`: returns the rows to carry (the kept terminal
 * ones and the rows still to run that carry state of their own, in their order), the specs of
 * the plain queued rows (rebuilt with newRow, after the rows), and the new aggregate.
 */
export function foldRows(
  rows: readonly SessionRow[],
  previous: FoldedRows | undefined,
  policy: Pick<ResolvedPolicy, 'search'>,
  keep = KEPT_ROWS,
): { rows: SessionRow[]; queued: ExperimentSpec[]; folded: FoldedRows } {
  const terminal = rows.filter(isTerminalRow);
  const kept = new Set(selectRows(terminal, policy, keep));
  const dropped = terminal.filter((r) => !kept.has(r));
  const filter = previous?.ids ? decodeBloom(previous.ids) : newBloom();
  for (const row of dropped) bloomAdd(filter, row.spec.id);
  return {
    rows: rows.filter((r) => (isTerminalRow(r) ? kept.has(r) : !isPlainQueued(r))),
    queued: rows.filter(isPlainQueued).map((r) => r.spec),
    folded: {
      counts: countStates(dropped, previous?.counts),
      ids: dropped.length > 0 || previous?.ids ? encodeBloom(filter) : '',
      approvalRequired: (previous?.approvalRequired ?? false) || dropped.some((r) => r.timeoutMode === 'none'),
    },
  };
}

/** The rows part of a carry: every row as before (old histories), or folded (`bounded`, behind the patch). */
export function carriedRows(rows: readonly SessionRow[], previous: FoldedRows | undefined, policy: Pick<ResolvedPolicy, 'search'>, bounded: boolean): Pick<SessionCarry, 'rows' | 'folded' | 'queued'> {
  return bounded ? foldRows(rows, previous, policy) : { rows: [...rows] };
}

/** One page (SessionStatusPage, validated with readPage) of `rows`. */
export function pageOf<T>(rows: readonly T[], raw: unknown): T[] {
  const { offset, limit } = readPage(raw);
  return rows.slice(offset, offset + limit);
}

/** Whether `id` may be the id of a folded row (false: certainly not; true: almost certainly). */
export function mayBeFolded(folded: FoldedRows | undefined, id: string): boolean {
  return folded?.ids ? bloomHas(decodeBloom(folded.ids), id) : false;
}

/** A validated page of the status query: bad or missing fields fall back to the defaults (a query never throws). */
export function readPage(raw: unknown): { offset: number; limit: number; state: ExperimentState | null; problem: string | null } {
  const page = (raw !== null && typeof raw === 'object' ? raw : {}) as Partial<Record<keyof SessionStatusPage, unknown>>;
  const problems: string[] = [];
  const int = (name: 'offset' | 'limit', value: unknown, min: number, max: number, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    problems.push(`${name}: expected an integer from ${min} to ${max}, received ${JSON.stringify(value)?.slice(0, 40)}`);
    return fallback;
  };
  const offset = int('offset', page.offset, 0, Number.MAX_SAFE_INTEGER, 0);
  const limit = int('limit', page.limit, 1, MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT);
  let state: ExperimentState | null = null;
  if (typeof page.state === 'string') state = page.state as ExperimentState;
  else if (page.state !== undefined && page.state !== null) problems.push(`state: expected an experiment state, received ${JSON.stringify(page.state)?.slice(0, 40)}`);
  if (raw !== undefined && raw !== null && typeof raw !== 'object') problems.push(`page: expected { offset, limit, state }, received ${typeof raw}`);
  return { offset, limit, state, problem: problems.length > 0 ? problems.join('; ') : null };
}

// A Bloom filter of fixed size (2^18 bits = 32 KiB, 43,692 base64 characters in the carry):
// with 10,000 folded ids and 7 hashes, about 4 in 100,000 new ids are refused wrongly (never a
// used one accepted). Hashes: FNV-1a and a second FNV variant, combined (Kirsch-Mitzenmacher).
const BLOOM_BITS = 1 << 18;
const BLOOM_HASHES = 7;

function newBloom(): Uint8Array {
  return new Uint8Array(BLOOM_BITS / 8);
}

function hashes(id: string): number[] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 + c, 0x5bd1e995) >>> 0;
    h2 ^= h2 >>> 15;
  }
  h2 = (h2 | 1) >>> 0;
  return Array.from({ length: BLOOM_HASHES }, (_, k) => (h1 + Math.imul(k, h2)) >>> 0);
}

function bloomAdd(bits: Uint8Array, id: string): void {
  for (const h of hashes(id)) bits[(h % BLOOM_BITS) >>> 3] |= 1 << (h & 7);
}

function bloomHas(bits: Uint8Array, id: string): boolean {
  return hashes(id).every((h) => (bits[(h % BLOOM_BITS) >>> 3] & (1 << (h & 7))) !== 0);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Base64 without Buffer or btoa (neither is certain in the workflow sandbox). */
export function encodeBloom(bits: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bits.length; i += 3) {
    const n = (bits[i] << 16) | ((bits[i + 1] ?? 0) << 8) | (bits[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (i + 1 < bits.length ? B64[(n >> 6) & 63] : '=') + (i + 2 < bits.length ? B64[n & 63] : '=');
  }
  return out;
}

export function decodeBloom(text: string): Uint8Array {
  const bits = newBloom();
  let j = 0;
  for (let i = 0; i + 3 < text.length && j < bits.length; i += 4) {
    const v = [0, 1, 2, 3].map((k) => Math.max(0, B64.indexOf(text[i + k])));
    const n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    bits[j++] = (n >> 16) & 255;
    if (j < bits.length) bits[j++] = (n >> 8) & 255;
    if (j < bits.length) bits[j++] = n & 255;
  }
  return bits;
}

/** The addExperiments validator's problem with ids that were folded away, or null. */
export function foldedIdProblem(folded: FoldedRows | undefined, specs: readonly unknown[]): string | null {
  const ids = specs.map((spec) => (spec as { id?: unknown } | null)?.id);
  const i = firstFolded(folded, ids);
  if (i === -1) return null;
  return `experiments[${i}].id: expected an id this session has not used, received ${JSON.stringify(ids[i])}, which an ended experiment of this session had (its row was folded at continue-as-new; see its workflow ${JSON.stringify(ids[i])} via visibility)`;
}

/** The index of the first of `ids` that may be a folded row's (the filter decoded once), or -1. */
export function firstFolded(folded: FoldedRows | undefined, ids: Iterable<unknown>): number {
  if (!folded?.ids) return -1;
  const bits = decodeBloom(folded.ids);
  let i = 0;
  for (const id of ids) {
    if (typeof id === 'string' && bloomHas(bits, id)) return i;
    i++;
  }
  return -1;
}

/** The states of `counts`, one entry per experiment (for the experiments-by-state gauge). */
export function expandCounts(counts: StateCounts): string[] {
  return Object.entries(counts).flatMap(([state, n]) => Array.from({ length: n ?? 0 }, () => state));
}
