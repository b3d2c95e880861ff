/**
 * `experiments status SESSION --page N [--page-size S]`: one page of a session's experiments.
 * A running session answers from its status query (the rows it holds: queued, running, and the
 * ended rows it kept; counts cover every experiment); a closed one is paged through visibility,
 * every experiment workflow of the session, including those whose rows the session folded away
 * at continue-as-new (README "Large sessions").
 */
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type SessionSnapshot } from '../../shared/definitions';
import { intOption, type ParsedArgs } from '../args';
import { closedSessionSummary, queried } from '../commands';
import type { Connected } from '../connect';
import { UsageError } from '../errors';

export interface PageRequest {
  readonly page: number;
  readonly pageSize: number;
}

/** --page and --page-size, or undefined when neither is given. Bad values: UsageError naming the flag. */
export function pageRequest(parsed: ParsedArgs): PageRequest | undefined {
  const page = intOption(parsed, 'page', 1);
  const pageSize = intOption(parsed, 'page-size', 1, MAX_PAGE_LIMIT);
  if (page === undefined && pageSize === undefined) return undefined;
  return { page: page ?? 1, pageSize: pageSize ?? DEFAULT_PAGE_LIMIT };
}

/** The session with `experiments` set to the page asked for. */
export async function sessionPage(c: Connected, id: string, req: PageRequest): Promise<SessionSnapshot> {
  const offset = (req.page - 1) * req.pageSize;
  const closed = await closedSessionSummary(c, id);
  if (closed) {
    const found = await c.experiments.experimentsPage(id, { page: req.page, pageSize: req.pageSize });
    return { ...closed, experiments: found.experiments, truncated: found.experiments.length < found.total, page: { offset, limit: req.pageSize, held: found.total, state: null, problem: null } };
  }
  const status = await queried(c, id, () => c.experiments.status(id));
  if (status.kind !== 'session') throw new UsageError(`--page: expected a session id (pages list a session's experiments), received the experiment ${JSON.stringify(id)}`);
  return queried(c, id, () => c.experiments.liveSession(id, { offset, limit: req.pageSize }));
}

/** The line under a page: where it is, and how to see the next one. */
export function pageFooter(snap: SessionSnapshot, req: PageRequest | undefined): string | undefined {
  const total = snap.total ?? snap.experiments.length;
  if (!req) return snap.truncated ? `showing ${snap.experiments.length} of ${total} experiments; see the rest with --page N [--page-size S] (at most ${MAX_PAGE_LIMIT})` : undefined;
  const listed = snap.page?.held ?? total;
  const pages = Math.max(1, Math.ceil(listed / req.pageSize));
  const from = (req.page - 1) * req.pageSize;
  const range = snap.experiments.length > 0 ? `experiments ${from + 1}-${from + snap.experiments.length}` : 'no experiments';
  return `page ${req.page} of ${pages}: ${range} of ${listed} listed (${total} in the session)${req.page < pages ? `; next: --page ${req.page + 1}` : ''}`;
}
