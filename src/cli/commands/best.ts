/**
 * `experiments best SESSION [--json]`: the best trial of a search session — its params, its
 * value of the search metric and its checkpoint (uri, sha256) — from the session's own summary.
 */
import type { SessionSnapshot } from '../../shared/definitions';
import type { ParsedArgs } from '../args';
import { closedSessionSummary, queried, say, withConnection } from '../commands';
import { EXIT, UsageError } from '../errors';

export async function bestCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  return withConnection(async (c) => {
    const status = (await closedSessionSummary(c, id)) ?? (await queried(c, id, () => c.experiments.status(id)));
    if (status.kind !== 'session') throw new UsageError(`best: SESSION: expected a session id, received the experiment ${JSON.stringify(id)}`);
    const search = status.policy.search;
    if (!search) throw new UsageError(`best: session ${JSON.stringify(id)} has no search policy (policy.search: { metric, mode, scheduler }), so it has no best trial`);
    const best = status.best ?? null;
    if (parsed.options.json) {
      say(JSON.stringify(best, null, 2));
      return EXIT.ok;
    }
    say(bestText(status, best));
    return EXIT.ok;
  });
}

function bestText(snap: SessionSnapshot, best: SessionSnapshot['best']): string {
  const search = snap.policy.search;
  if (!best || !search) return `session ${snap.id}: no trial has reported ${search?.metric ?? 'the metric'} yet`;
  const ck = best.checkpoint;
  return [
    `best trial of ${snap.id}: ${best.experimentId} (${best.state})`,
    `${best.metric} (${best.mode}): ${best.value}`,
    `params: ${JSON.stringify(best.params)}`,
    ck ? `checkpoint: ${ck.id} (epoch ${ck.epoch})\n  uri:    ${ck.uri}\n  sha256: ${ck.sha256}` : 'checkpoint: none',
  ].join('\n');
}
