/**
 * Placement of a routed experiment (one with `resources` or `hardwareClass`): asks the worker
 * registry, through the `placeExperiment` activity, for the shape queue of a live worker class
 * that satisfies the request. While none does, the experiment is `awaiting-resources` with the
 * reason, and checks again with a growing interval; after the policy's resourceTimeout it gives
 * up, and the experiment ends `rejected`. Workflow sandbox code.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ExperimentSpec } from '../shared/types';

/** Patch: routed experiments place themselves before training, and train on the placed queue. */
export const HARDWARE_ROUTING = 'experiment-hardware-routing';

const FIRST_RECHECK_MS = 1000;
const MAX_RECHECK_MS = 60_000;

const { placeExperiment } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

export type PlacementOutcome = { readonly taskQueue: string; readonly className: string } | { readonly rejected: string };

/**
 * Waits for a placement of `spec` on base queue `taskQueue`; `onWaiting` gets the reason while
 * none is possible (called again only when the reason changes).
 */
export async function awaitPlacement(spec: ExperimentSpec, taskQueue: string, timeoutMs: number, onWaiting: (reason: string) => void): Promise<PlacementOutcome> {
  const start = Date.now();
  let interval = FIRST_RECHECK_MS;
  let shown: string | null = null;
  for (;;) {
    const placed = await placeExperiment({ taskQueue, resources: spec.resources, hardwareClass: spec.hardwareClass });
    if (placed.kind === 'placed') return { taskQueue: placed.taskQueue, className: placed.className };
    const waited = Date.now() - start;
    if (waited >= timeoutMs) return { rejected: `${placed.reason}; gave up after resourceTimeout` };
    if (placed.reason !== shown) {
      shown = placed.reason;
      onWaiting(placed.reason);
    }
    await sleep(Math.min(interval, timeoutMs - waited));
    interval = Math.min(MAX_RECHECK_MS, interval * 2);
  }
}
