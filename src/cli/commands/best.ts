/**
 * `experiments best SESSION [--json]`: the best trial of a search session — its params, its
 * value of the search metric and its checkpoint (uri, sha256) — from the session's own summary;
 * under a `{ latest, best }` retention, the checkpoint the store keeps as that trial's best.
 */
import type { SessionSnapshot } from '../../shared/definitions';
import { digestKind } from '../../shared/types';
import type { ParsedArgs } from '../args';
import { closedSessionSummary, queried, say, withConnection } from '../commands';
import { EXIT, UsageError } from '../errors';
import { digestLabel } from '../output';

export async function bestCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  return withConnection(async (c) => {
    const status = (await closedSessionSummary(c, id)) ?? (await queried(c, id, () => c.experiments.status(id)));
    if (status.kind !== 'session') throw new UsageError(`best: SESSION: expected a session id, received the experiment ${JSON.stringify(id)}`);
    const search = status.policy.search;
    if (!search) throw new UsageError(`best: session ${JSON.stringify(id)} has no search policy (policy.search: { metric, mode, scheduler }), so it has no best trial`);
    let best = status.best ?? null;
    // Under a `{ latest, best }` retention the store keeps the trial's best checkpoint: name that one.
    const kept = best ? await c.experiments.keptBestCheckpoint(status.id, best.experimentId) : undefined;
    if (best && kept) best = { ...best, checkpoint: { id: kept.checkpointId, epoch: kept.epoch, uri: kept.uri, sha256: kept.sha256, ...digestKind(kept) }, keptBest: true };
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
    ck ? `checkpoint${best.keptBest ? ' (kept as best, verified)' : ''}: ${ck.id} (epoch ${ck.epoch})\n  uri:    ${ck.uri}\n  ${digestLabel(ck)}: ${ck.sha256}` : 'checkpoint: none',
  ].join('\n');
}
