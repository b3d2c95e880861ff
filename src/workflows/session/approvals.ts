/**
 * The session's approval gate, pure: how an `approve` or `reject` (signal, update or the start
 * input's `preApproved`) is read, checked against the policy's approvers, and applied to the
 * scheduler state. No Temporal calls and no clock of its own: the workflow passes workflow time
 * in. Every function here accepts any payload and never throws.
 *
 * Signals and pre-approval record a refused attempt in the audit and change nothing else; update
 * validators call `refusal` first, so a refused update is rejected with the reason instead.
 */
import { checkApproval, type ApprovalClaim, type ApprovalEstimate } from '../../shared/approval';
import type { ApprovalState, SessionRow } from '../../shared/definitions';
import { parseDuration } from '../../shared/duration';
import type { ApprovalRecord } from '../../shared/types';
import type { SchedulerState } from './scheduler';

export type ClaimKind = ApprovalClaim['kind'];
export type ClaimSource = ApprovalRecord['source'];

/** What one approve or reject did. */
export type ApprovalOutcome =
  /** The first approval: long-running experiments may start. */
  | { readonly kind: 'approved'; readonly record: ApprovalRecord }
  /** A later approval, only added to the audit. */
  | { readonly kind: 'recorded'; readonly record: ApprovalRecord }
  /** A rejection: `rows` ended `rejected`. */
  | { readonly kind: 'rejected'; readonly record: ApprovalRecord; readonly rows: readonly SessionRow[] }
  /** Not an approver, or a missing or bad signature: audited, nothing else changed. */
  | { readonly kind: 'refused'; readonly record: ApprovalRecord }
  /** Not a readable approve/reject payload: nothing recorded. */
  | { readonly kind: 'ignored'; readonly problem: string };

const MAX_ESTIMATES = 10_000;
/**
 * Estimates listed in one approval record and in the `pending` answer: the first ones waiting.
 * A record covering more says how many it covered in all (`covered`), so neither the audit, the
 * continue-as-new carry nor a query answer grows with the size of the session.
 */
export const MAX_LISTED_ESTIMATES = 200;
/** Audit records kept; past it the oldest refused record goes first (refusals are what anyone can send). */
export const MAX_AUDIT_RECORDS = 200;

/** Long-running rows waiting for approval now (the first MAX_LISTED_ESTIMATES), with their estimates: what an approver signs. */
export function pendingEstimates(state: SchedulerState): ApprovalEstimate[] {
  if (state.approval) return [];
  return waitingRows(state).slice(0, MAX_LISTED_ESTIMATES).map(estimateOf);
}

/** The approval query's answer: approval, audit, and the waiting estimates with their full count. */
export function approvalAnswer(state: SchedulerState): ApprovalState {
  const waiting = state.approval ? [] : waitingRows(state);
  const pending = waiting.slice(0, MAX_LISTED_ESTIMATES).map(estimateOf);
  return { approval: state.approval, audit: state.audit, pending, ...(waiting.length > MAX_LISTED_ESTIMATES && { pendingTotal: waiting.length }) };
}

/** A record's estimates: the first MAX_LISTED_ESTIMATES, and what all of them covered when that is more. */
function recordEstimates(rows: readonly SessionRow[]): Pick<ApprovalRecord, 'estimates' | 'covered'> {
  const all = rows.map(estimateOf);
  if (all.length <= MAX_LISTED_ESTIMATES) return { estimates: all };
  const known = all.filter((e) => e.estimatedDurationMs !== null);
  return {
    estimates: all.slice(0, MAX_LISTED_ESTIMATES),
    covered: { experiments: all.length, estimatedMs: known.reduce((n, e) => n + (e.estimatedDurationMs ?? 0), 0), unestimated: all.length - known.length },
  };
}

function audit(state: SchedulerState, record: ApprovalRecord): void {
  state.audit.push(record);
  if (state.audit.length <= MAX_AUDIT_RECORDS) return;
  const refused = state.audit.findIndex((r) => r.outcome === 'refused');
  state.audit.splice(refused === -1 ? 0 : refused, 1);
}

/** The reason an approve/reject would be refused or ignored, or null when it would apply. */
export function refusal(state: SchedulerState, kind: ClaimKind, payload: unknown, nowMs: number): string | null {
  try {
    const read = readClaim(kind, payload);
    if ('problem' in read) return read.problem;
    const verdict = checkApproval(state.sessionId, state.policy.approvers, read.claim, nowMs);
    return verdict.ok ? null : verdict.reason;
  } catch (err) {
    return `${kind}: ${String(err)}`;
  }
}

/** Judges and applies one approve or reject at workflow time `nowMs`. */
export function applyClaim(state: SchedulerState, kind: ClaimKind, payload: unknown, nowMs: number, source: ClaimSource): ApprovalOutcome {
  try {
    const read = readClaim(kind, payload);
    if ('problem' in read) return { kind: 'ignored', problem: read.problem };
    const { claim } = read;
    const at = new Date(nowMs).toISOString();
    const verdict = checkApproval(state.sessionId, state.policy.approvers, claim, nowMs);
    const base = { by: claim.by, at, note: claim.note, source };
    if (!verdict.ok) {
      const record: ApprovalRecord = { ...base, outcome: 'refused', refusedReason: verdict.reason, signed: false, estimates: [] };
      audit(state, record);
      return { kind: 'refused', record };
    }
    if (kind === 'reject') {
      const rows = state.approval ? [] : waitingRows(state);
      for (const row of rows) {
        row.state = 'rejected';
        row.reason = `rejected by ${claim.by}: ${claim.note ?? ''}`;
      }
      const record: ApprovalRecord = { ...base, outcome: 'rejected', signed: verdict.signed, ...recordEstimates(rows) };
      audit(state, record);
      return { kind: 'rejected', record, rows };
    }
    const record: ApprovalRecord = { ...base, outcome: 'approved', signed: verdict.signed, ...recordEstimates(state.approval ? [] : waitingRows(state)) };
    audit(state, record);
    if (state.approval) return { kind: 'recorded', record };
    state.approval = record;
    return { kind: 'approved', record };
  } catch (err) {
    return { kind: 'ignored', problem: `${kind} ignored: ${String(err)}` };
  }
}

function waitingRows(state: SchedulerState): SessionRow[] {
  return [...state.rows.values()].filter((row) => row.timeoutMode === 'none' && (row.state === 'queued' || row.state === 'awaiting-approval'));
}

function estimateOf(row: SessionRow): ApprovalEstimate {
  const ms = row.spec.estimatedDuration === undefined ? undefined : parseDuration(row.spec.estimatedDuration);
  return { experimentId: row.spec.id, estimatedDurationMs: ms ?? null };
}

/**
 * Reads a claim leniently (by and note as the approve signal always took them, extra fields
 * ignored), so histories recorded before approver lists replay the same way.
 */
function readClaim(kind: ClaimKind, payload: unknown): { claim: ApprovalClaim } | { problem: string } {
  const p = (payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload : {}) as Record<string, unknown>;
  const by = typeof p.by === 'string' ? p.by.trim().slice(0, 200) : '';
  if (by === '') {
    const shape = kind === 'approve' ? '{"by": "<approver>", "note"?: "<text>"}' : '{"by": "<approver>", "reason": "<text>"}';
    return { problem: `${kind} signal ignored: by: expected ${shape}` };
  }
  const text = kind === 'approve' ? p.note : p.reason;
  if (kind === 'reject' && (typeof text !== 'string' || text.trim() === '')) {
    return { problem: 'reject signal ignored: reason: expected a non-empty string' };
  }
  const claim: ApprovalClaim = {
    kind,
    by,
    at: typeof p.at === 'string' ? p.at.slice(0, 40) : '',
    note: typeof text === 'string' ? text.slice(0, 2000) : null,
    estimates: readEstimates(p.estimates),
    ...(typeof p.signature === 'string' ? { signature: p.signature.slice(0, 200) } : {}),
  };
  return { claim };
}

function readEstimates(value: unknown): ApprovalEstimate[] {
  if (!Array.isArray(value)) return [];
  const out: ApprovalEstimate[] = [];
  for (const e of value.slice(0, MAX_ESTIMATES)) {
    const { experimentId, estimatedDurationMs } = (e ?? {}) as { experimentId?: unknown; estimatedDurationMs?: unknown };
    if (typeof experimentId !== 'string') continue;
    out.push({ experimentId: experimentId.slice(0, 200), estimatedDurationMs: typeof estimatedDurationMs === 'number' && Number.isFinite(estimatedDurationMs) ? estimatedDurationMs : null });
  }
  return out;
}
