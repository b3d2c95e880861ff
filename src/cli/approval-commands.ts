/**
 * `experiments approve`, `reject` and `keygen`: the approval gate from the command line.
 * Approve and reject go through the session's updates, so a refused attempt (an unlisted name,
 * a missing or bad signature) exits 2 with the session's reason.
 */
import * as path from 'node:path';
import { writeKeyPair } from '../approver-keys';
import { approveInputSchema, parseOrThrow, rejectInputSchema } from '../shared/schema';
import type { ApprovalRecord } from '../shared/types';
import { stringOption, type ParsedArgs } from './args';
import { closedSessionSummary, queried, say, withConnection } from './commands';
import { EXIT, UsageError } from './errors';
import { safe } from './terminal';
import type { Connected } from './connect';

async function ensureOpen(c: Connected, sessionId: string, what: string): Promise<void> {
  const closed = await closedSessionSummary(c, sessionId);
  if (closed) throw new UsageError(`session ${JSON.stringify(sessionId)} has ended (${closed.state}); there is nothing to ${what}`);
  await queried(c, sessionId, () => c.experiments.approvalState(sessionId));
}

export async function approveCommand(parsed: ParsedArgs): Promise<number> {
  const [sessionId] = parsed.positionals;
  const by = stringOption(parsed, 'by');
  if (by === undefined) throw new UsageError('`experiments approve` needs --by NAME (who approves; it goes into the audit record)');
  const note = stringOption(parsed, 'note');
  const input = parseOrThrow(approveInputSchema, note === undefined ? { by } : { by, note }, 'approve');
  const keyFile = stringOption(parsed, 'key');
  return withConnection(async (c) => {
    await ensureOpen(c, sessionId, 'approve');
    const before = await c.experiments.approvalState(sessionId);
    const record = await c.experiments.approve(sessionId, input, { keyFile });
    const released = coveredText(record);
    say(
      before.approval
        ? `Session ${sessionId} was already approved by ${safe(before.approval.by)}; your approval is added to the audit.`
        : `Approved session ${sessionId} as ${safe(record.by)}${record.signed ? ' (signed)' : ''}${released ? `; ${released} may start now` : ''}.`,
    );
    return EXIT.ok;
  });
}

/** The experiments a record covered, for one line: up to 10 ids, then how many more. */
function coveredText(record: ApprovalRecord): string {
  const ids = (record.estimates ?? []).map((e) => e.experimentId);
  const total = record.covered?.experiments ?? ids.length;
  if (total <= 10) return ids.join(', ');
  return `${ids.slice(0, 10).join(', ')} and ${total - 10} more`;
}

export async function rejectCommand(parsed: ParsedArgs): Promise<number> {
  const [sessionId] = parsed.positionals;
  const by = stringOption(parsed, 'by');
  const reason = stringOption(parsed, 'reason');
  if (by === undefined || reason === undefined) throw new UsageError('`experiments reject` needs --by NAME and --reason TEXT (both go into the audit record)');
  const input = parseOrThrow(rejectInputSchema, { by, reason }, 'reject');
  const keyFile = stringOption(parsed, 'key');
  return withConnection(async (c) => {
    await ensureOpen(c, sessionId, 'reject');
    const record = await c.experiments.reject(sessionId, input, { keyFile });
    const ended = coveredText(record);
    say(`Rejected ${ended || 'nothing (no experiment was waiting)'} in session ${sessionId}: ${safe(input.reason)}.`);
    return EXIT.ok;
  });
}

export async function keygenCommand(parsed: ParsedArgs): Promise<number> {
  const out = stringOption(parsed, 'out');
  if (out === undefined) throw new UsageError('`experiments keygen` needs --out BASE (writes BASE.key and BASE.pub)');
  const files = writeKeyPair(path.resolve(out));
  say(`Wrote ${files.privateKeyFile} (private: keep it secret, mode 0600) and ${files.publicKeyFile}.`);
  say(`Policy entry: { "name": "<approver>", "publicKey": "${files.publicKey}" }`);
  return EXIT.ok;
}
