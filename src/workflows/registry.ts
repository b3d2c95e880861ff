/**
 * The worker registry workflow (see src/shared/registry.ts): keeps the last beat of each worker,
 * prunes workers silent for their ttl, and continues as new before its history grows large.
 * Started by the first worker with signal-with-start; it runs on the base task queue.
 */
import { allHandlersFinished, condition, continueAsNew, log, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { registryQuery, workerBeatSignal, workerLeftSignal, isLive, type RegistryEntry, type RegistryInput } from '../shared/registry';

const CONTINUE_AS_NEW_AFTER_EVENTS = 2000;
const PRUNE_EVERY_MS = 30_000;

export async function workerRegistryWorkflow(input: RegistryInput): Promise<void> {
  const entries = new Map<string, RegistryEntry>((input.entries ?? []).map((e) => [e.identity, e]));
  const classes = new Set<string>(input.classes ?? []);
  setHandler(workerBeatSignal, (beat) => {
    const identity = beat?.entry?.identity;
    if (typeof identity !== 'string' || typeof beat.entry.profile?.className !== 'string' || !(beat.ttlMs > 0)) {
      log.warn('workerBeat signal ignored: expected { entry: { identity, profile, ... }, ttlMs > 0 }', { taskQueue: input.taskQueue });
      return;
    }
    if (!entries.has(identity)) log.info('worker registered', { identity, className: beat.entry.profile.className });
    entries.set(identity, { ...beat.entry, ttlMs: beat.ttlMs, seenAt: new Date().toISOString() });
    classes.add(beat.entry.profile.className);
  });
  setHandler(workerLeftSignal, (left) => {
    if (typeof left?.identity === 'string' && entries.delete(left.identity)) log.info('worker left', { identity: left.identity });
  });
  setHandler(registryQuery, () => ({ entries: [...entries.values()], classes: [...classes].sort() }));

  while (workflowInfo().historyLength < CONTINUE_AS_NEW_AFTER_EVENTS && !workflowInfo().continueAsNewSuggested) {
    await sleep(PRUNE_EVERY_MS);
    for (const [identity, entry] of entries) if (!isLive(entry, Date.now())) entries.delete(identity);
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof workerRegistryWorkflow>({ taskQueue: input.taskQueue, entries: [...entries.values()], classes: [...classes] });
}
