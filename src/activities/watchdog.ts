/**
 * The local watchdog of a training attempt: when the trainer shows no sign of life (a step, a
 * checkpoint, a line of output) for the heartbeat timeout, the attempt is stopped on this worker,
 * instead of running on beside the retry that Temporal starts elsewhere. Pure timing, no I/O.
 */

export interface Watchdog {
  /** A sign of life: restarts the countdown. */
  touch(): void;
  /** While `busy` (the runtime's own store calls), the countdown does not run out. */
  busy<T>(work: Promise<T>): Promise<T>;
  stop(): void;
}

/**
 * Calls `onStall(silentMs)` once when `touch()` has not been called for `timeoutMs`. Checked a few
 * times per timeout, so it fires between `timeoutMs` and `1.25 × timeoutMs` after the last touch.
 */
export function startWatchdog(timeoutMs: number, onStall: (silentMs: number) => void, now: () => number = () => performance.now()): Watchdog {
  let last = now();
  let inFlight = 0;
  let fired = false;
  const timer = setInterval(
    () => {
      const silent = now() - last;
      if (fired || inFlight > 0 || silent < timeoutMs) return;
      fired = true;
      clearInterval(timer);
      onStall(silent);
    },
    Math.max(10, Math.floor(timeoutMs / 4)),
  );
  timer.unref();
  return {
    touch() {
      last = now();
    },
    async busy(work) {
      inFlight++;
      try {
        return await work;
      } finally {
        inFlight--;
        last = now();
      }
    },
    stop() {
      clearInterval(timer);
    },
  };
}
