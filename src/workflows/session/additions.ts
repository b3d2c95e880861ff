/**
 * Adding work to a running session: `addExperiments` (specs, held as rows) and `addSweeps`
 * (definitions, fed a window at a time by ./feed.ts, so a large sweep is a small update). The
 * validators reject with a message naming the field; the handlers never throw.
 *
 * Versioning: `addSweeps` is newer than every recorded history, so no fixture holds it and the
 * commands of each stay as they were (CONTRIBUTING.md, new input fields).
 */
import { log, setHandler } from '@temporalio/workflow';
import { addExperimentsUpdate, addSweepsUpdate } from '../../shared/definitions';
import { experimentListSchema, parseOrThrow, sweepListSchema } from '../../shared/schema';
import { sweepSize } from '../../shared/sweep';
import type { SweepFeed } from './feed';
import { foldedIdProblem } from './fold';
import { preview } from './preview';
import { newRow, type SchedulerState } from './scheduler';

/** `added`: called after either update added work, so the session schedules again. */
export function installAdditionHandlers(state: SchedulerState, feed: SweepFeed, added: () => void): void {
  const { sessionId, rows } = state;
  const open = () => {
    if (state.stopping) throw new Error(`session ${sessionId} is stopping (${state.stopping}); start a new session`);
  };
  setHandler(
    addExperimentsUpdate,
    (specs) => {
      for (const spec of specs) rows.set(spec.id, newRow(spec, state.policy));
      added();
      log.info('experiments added', { sessionId, count: specs.length });
      return { added: specs.map((s) => s.id) };
    },
    {
      validator: (specs: unknown) => {
        open();
        if (!Array.isArray(specs) || specs.length === 0) throw new Error(`experiments: expected a non-empty array of experiment specs, received ${preview(specs)}`);
        parseOrThrow(experimentListSchema([...rows.keys()]), specs, 'experiments');
        const folded = foldedIdProblem(state.folded, specs) ?? feed.idProblem(specs);
        if (folded) throw new Error(folded);
      },
    },
  );
  setHandler(
    addSweepsUpdate,
    (sweeps) => {
      feed.add(sweeps);
      state.unfed = feed.remaining > 0 ? feed.remaining : undefined;
      added();
      const experiments = sweeps.reduce((n, s) => n + sweepSize(s), 0);
      log.info('sweeps added', { sessionId, sweeps: sweeps.map((s) => s.idPrefix), experiments });
      return { sweeps: sweeps.map((s) => s.idPrefix), experiments };
    },
    {
      validator: (sweeps: unknown) => {
        open();
        if (!Array.isArray(sweeps) || sweeps.length === 0) throw new Error(`sweeps: expected a non-empty array of sweeps, received ${preview(sweeps)}`);
        const problem = feed.addProblem(parseOrThrow(sweepListSchema, sweeps, 'sweeps'), [...rows.keys()], state.folded);
        if (problem) throw new Error(problem);
      },
    },
  );
}
