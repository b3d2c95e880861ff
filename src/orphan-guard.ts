/**
 * Child processes that never outlive this one, however it dies, `kill -9` included. On Linux the
 * child runs under `setpriv --pdeathsig KILL` (util-linux): the kernel SIGKILLs it when we die.
 * Elsewhere, or without a setpriv that knows the flag, a tiny Node watchdog stands between us and
 * the child: it holds a pipe from us, and when the pipe closes (we died) it SIGKILLs the child.
 * Either way the returned process takes SIGTERM/SIGINT like the child itself.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export type GuardMethod = 'pdeathsig' | 'watchdog';

/** The watchdog, as a script for `node -e` (argv: the program and its arguments). */
const WATCHDOG = `
const { spawn } = require('node:child_process');
const [exe, ...args] = process.argv.slice(1);
const child = spawn(exe, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const send = (signal) => { try { child.kill(signal); } catch {} };
process.stdin.on('close', () => send('SIGKILL'));
process.stdin.on('end', () => send('SIGKILL'));
process.stdin.on('error', () => send('SIGKILL'));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => send(signal));
child.on('error', (err) => { process.stderr.write(exe + ': ' + err.message + '\\n'); process.exit(127); });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
`;

let pdeathsig: boolean | undefined;

/** Whether `setpriv --pdeathsig` is available here (checked once). */
export function pdeathsigAvailable(): boolean {
  if (pdeathsig === undefined) {
    try {
      pdeathsig = process.platform === 'linux' && execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('--pdeathsig');
    } catch {
      pdeathsig = false;
    }
  }
  return pdeathsig;
}

/**
 * `spawn(exe, args)`, tied to this process's life. stdin of the child is always ignored (the
 * watchdog needs it). @param method @default 'pdeathsig' where available, else 'watchdog'
 */
export function spawnTiedToParent(
  exe: string,
  args: readonly string[],
  options: Omit<SpawnOptions, 'stdio'> & { stdout?: 'pipe' | 'ignore'; stderr?: 'pipe' | 'ignore' } = {},
  method: GuardMethod = pdeathsigAvailable() ? 'pdeathsig' : 'watchdog',
): ChildProcess {
  const { stdout = 'pipe', stderr = 'pipe', ...rest } = options;
  if (method === 'pdeathsig') return spawn('setpriv', ['--pdeathsig', 'KILL', '--', exe, ...args], { ...rest, stdio: ['ignore', stdout, stderr] });
  return spawn(process.execPath, ['-e', WATCHDOG, exe, ...args], { ...rest, stdio: ['pipe', stdout, stderr] });
}
