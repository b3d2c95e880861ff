/** A session scheduler's state for the pure tests of src/workflows/session (no server). */
import type { FoldedRows, SessionRow } from '../../src/shared/definitions';
import { resolvePolicy } from '../../src/shared/policy';
import type { SessionPolicy } from '../../src/shared/types';
import type { SchedulerState } from '../../src/workflows/session/scheduler';

/** A running, unapproved session `s` holding `rows`, with the policy and extra fields given. */
export function schedulerState(rows: readonly SessionRow[], options: { folded?: FoldedRows; policy?: SessionPolicy; unfed?: number } = {}): SchedulerState {
  return {
    sessionId: 's',
    policy: resolvePolicy(options.policy ?? {}),
    keepOpen: false,
    rows: new Map(rows.map((r) => [r.spec.id, r])),
    approval: null,
    audit: [],
    closeRequested: false,
    stopping: null,
    running: 0,
    draining: false,
    cancelled: false,
    runs: 0,
    ...(options.folded ? { folded: options.folded } : {}),
    ...(options.unfed !== undefined ? { unfed: options.unfed } : {}),
  };
}
