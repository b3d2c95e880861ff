/**
 * Background processes of the stack, tracked by pid files: start one detached (its output to a
 * log file), tell whether the pid in a file is still that program (a recycled pid is not), and
 * stop it (SIGTERM, then SIGKILL after a grace period).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Tracked {
  /** Pid file path. */
  readonly pidFile: string;
  /** A string the process's command line contains (its binary or script), to detect a recycled pid. */
  readonly marker: string;
}

export function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

function zombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The live pid of `t`, or undefined when its pid file is missing, dead or now another program. */
export function runningPid(t: Tracked): number | undefined {
  const pid = readPid(t.pidFile);
  if (pid === undefined) return undefined;
  const cmd = cmdline(pid);
  return cmd !== undefined && cmd.includes(t.marker) && !zombie(pid) ? pid : undefined;
}

/** Starts `cmd args` detached from us, output appended to `logFile`, pid written to `t.pidFile`. */
export function startDetached(t: Tracked, cmd: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; cwd: string; logFile: string }): number {
  fs.mkdirSync(path.dirname(t.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const out = fs.openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${cmd} (see ${opts.logFile})`);
  child.unref();
  fs.writeFileSync(t.pidFile, `${child.pid}\n`);
  return child.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !zombie(pid);
  } catch {
    return false;
  }
}

/** SIGTERM, up to `graceMs` to exit, then SIGKILL; removes the pid file. Returns whether it was running. */
export async function stopTracked(t: Tracked, graceMs = 20_000): Promise<boolean> {
  const pid = runningPid(t);
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await sleep(200);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(100);
  }
  fs.rmSync(t.pidFile, { force: true });
  return pid !== undefined;
}

/** Runs a command to completion; throws with its output's tail when it fails. */
export function runChecked(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; what: string; okIf?: (output: string) => boolean }): string {
  const r = spawnSync(cmd, args, { env: opts.env ?? process.env, encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) throw new Error(`${opts.what}: ${r.error.message}`);
  if (r.status !== 0 && !opts.okIf?.(output)) throw new Error(`${opts.what} failed (exit ${r.status ?? r.signal}): ${output.trim().split('\n').slice(-5).join(' | ')}`);
  return output;
}
