/**
 * Who may approve (or reject) a session, and how a claimed approval is checked.
 *
 * Pure and sandbox-safe: the session workflow verifies with these functions and the CLI signs
 * the same bytes, so the two can never disagree on what was signed. Ed25519 comes from
 * @noble/curves (audited, pure JS, no Node builtins).
 *
 * What this protects against: a namespace user who is not a listed approver releasing
 * long-running work (names only), and anyone without the approver's private key doing so
 * (keys), including replaying a signature made for another session or another note. What it
 * does not: who may send signals at all (that is Temporal's namespace authorization), and a
 * stolen private key.
 */
import { ed25519 } from '@noble/curves/ed25519';

/** One person who may approve a session's long-running experiments. */
export interface Approver {
  /** The name approvals must carry in `by`. */
  readonly name: string;
  /**
   * Ed25519 public key, 64 hex characters (32 raw bytes), as `experiments keygen` prints it.
   * With a key, an approval by this name must carry a valid signature.
   */
  readonly publicKey?: string;
}

/** What one approval covered: an experiment and the duration it was estimated to run. */
export interface ApprovalEstimate {
  readonly experimentId: string;
  /** The spec's `estimatedDuration` in milliseconds; null when it had none (forced long-running). */
  readonly estimatedDurationMs: number | null;
}

/** The fields an approver asserts, and signs when their name has a key. */
export interface ApprovalClaim {
  readonly kind: 'approve' | 'reject';
  readonly by: string;
  /** ISO-8601 time of signing; a signed claim is accepted only near the workflow's own clock. */
  readonly at: string;
  /** The note (approve) or the reason (reject). */
  readonly note: string | null;
  /** The experiments the approver was shown as waiting, with their estimates. */
  readonly estimates: readonly ApprovalEstimate[];
  /** Ed25519 signature over `approvalMessage(sessionId, claim)`, 128 hex characters. */
  readonly signature?: string;
}

export type ApprovalVerdict = { readonly ok: true; readonly signed: boolean } | { readonly ok: false; readonly reason: string };

/** How far a signed claim's `at` may be from the workflow's clock (either way). */
export const SIGNATURE_MAX_SKEW_MS = 15 * 60_000;

const MESSAGE_PREFIX = 'temporal-experiments approval v1\n';

/** The exact bytes a signature covers: session id, kind, approver, time, note and estimates. */
export function approvalMessage(sessionId: string, claim: Omit<ApprovalClaim, 'signature'>): Uint8Array {
  const estimates = claim.estimates.map((e) => [e.experimentId, e.estimatedDurationMs]);
  return new TextEncoder().encode(MESSAGE_PREFIX + JSON.stringify([sessionId, claim.kind, claim.by, claim.at, claim.note, estimates]));
}

/**
 * Decides whether `claim` may approve (or reject) session `sessionId`. With no approvers listed,
 * anyone may (the behaviour before approver lists existed). Never throws.
 */
export function checkApproval(sessionId: string, approvers: readonly Approver[] | undefined, claim: ApprovalClaim, nowMs: number): ApprovalVerdict {
  if (!approvers || approvers.length === 0) return { ok: true, signed: false };
  const approver = approvers.find((a) => a.name === claim.by);
  if (!approver) {
    return { ok: false, reason: `${JSON.stringify(claim.by)} is not an approver of this session (approvers: ${approvers.map((a) => a.name).join(', ')})` };
  }
  if (!approver.publicKey) return { ok: true, signed: false };
  if (!claim.signature) return { ok: false, reason: `approver ${approver.name} has a key: the ${claim.kind} must be signed (experiments ${claim.kind} --key FILE)` };
  const at = Date.parse(claim.at);
  if (!Number.isFinite(at) || Math.abs(at - nowMs) > SIGNATURE_MAX_SKEW_MS) {
    return { ok: false, reason: `signed time ${JSON.stringify(claim.at)} is not within ${SIGNATURE_MAX_SKEW_MS / 60_000} minutes of the session's clock` };
  }
  const signature = hexBytes(claim.signature, 64);
  const key = hexBytes(approver.publicKey, 32);
  if (!signature || !key) return { ok: false, reason: 'signature: expected 128 hex characters' };
  if (!verifies(signature, approvalMessage(sessionId, claim), key)) {
    return { ok: false, reason: `signature does not verify with ${approver.name}'s key (another key, or signed for another session, time, note or estimates)` };
  }
  return { ok: true, signed: true };
}

/** One problem with an approver list: the index and field it is at, and what is wrong. */
export interface ApproverProblem {
  readonly index: number;
  readonly field: 'name' | 'publicKey';
  readonly message: string;
}

/** Problems with an approver list (duplicate names, malformed keys), for policy validation. */
export function approverProblems(approvers: readonly Approver[]): ApproverProblem[] {
  const problems: ApproverProblem[] = [];
  const seen = new Set<string>();
  approvers.forEach((a, index) => {
    if (seen.has(a.name)) problems.push({ index, field: 'name', message: `expected a unique name, received duplicate ${JSON.stringify(a.name)}` });
    seen.add(a.name);
    if (a.publicKey !== undefined && !hexBytes(a.publicKey, 32)) {
      problems.push({
        index,
        field: 'publicKey',
        message: `expected 64 hex characters (an Ed25519 public key from \`experiments keygen\`), received ${JSON.stringify(a.publicKey.slice(0, 80))}`,
      });
    }
  });
  return problems;
}

function verifies(signature: Uint8Array, message: Uint8Array, key: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, key);
  } catch {
    // A key that is not a curve point, or a malformed signature: not valid, never a throw.
    return false;
  }
}

function hexBytes(hex: string, length: number): Uint8Array | null {
  if (typeof hex !== 'string' || hex.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
