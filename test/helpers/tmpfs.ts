/**
 * A real full filesystem for ENOSPC tests: a tmpfs of `size` (mount(8) syntax, e.g. `256k`,
 * `40m`) mounted on `mountPoint` while `run` runs, unmounted after it either way. Needs root and
 * permission to mount; without them the test fails with a message saying so (it is not skipped).
 */
import { execFileSync } from 'node:child_process';

export async function withTmpfs<T>(mountPoint: string, size: string, run: () => Promise<T>): Promise<T> {
  try {
    if (process.getuid?.() !== 0) throw new Error('not root');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot mount a tmpfs for the real ENOSPC test (needs root and mount permission): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
  }
  try {
    return await run();
  } finally {
    execFileSync('umount', ['-l', mountPoint]);
  }
}
