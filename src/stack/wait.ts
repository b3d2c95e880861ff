import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` until it returns something other than undefined; throws naming `what` after the timeout. */
export async function waitUntil<T>(check: () => T | undefined | Promise<T | undefined>, opts: { timeoutMs: number; what: string; intervalMs?: number; abortIf?: () => string | undefined }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    const abort = opts.abortIf?.();
    if (abort) throw new Error(`${opts.what}: ${abort}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs / 1000}s waiting for ${opts.what}`);
    await sleep(opts.intervalMs ?? 500);
  }
}
