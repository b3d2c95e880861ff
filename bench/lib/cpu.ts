/** CPU time of this process (all threads) and of its Temporal dev server child, from /proc. */
import * as fs from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  cpuMs: number;
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces; fields after it are space-separated.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const rest = text.slice(close + 2).split(' ');
    // rest[0] = state (field 3), rest[1] = ppid (4), rest[11] = utime (14), rest[12] = stime (15)
    return { pid: Number(pid), comm, ppid: Number(rest[1]), cpuMs: (Number(rest[11]) + Number(rest[12])) * TICK_MS };
  } catch {
    return undefined;
  }
}

/** The dev server: a `temporal` child of this process (spawned by the SDK's Core). */
export function devServerPid(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(entry);
    if (s && s.ppid === process.pid && s.comm.startsWith('temporal')) return s.pid;
  }
  return undefined;
}

export interface CpuSnapshot {
  /** This process, all threads (worker, client, Core), ms. */
  readonly selfMs: number;
  /** The dev server process, ms (NaN when not found). */
  readonly serverMs: number;
}

export function cpuSnapshot(serverPid: number | undefined): CpuSnapshot {
  const u = process.cpuUsage();
  const server = serverPid === undefined ? undefined : readStat(String(serverPid));
  return { selfMs: (u.user + u.system) / 1000, serverMs: server ? server.cpuMs : NaN };
}

export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): { selfMs: number; serverMs: number } {
  return { selfMs: b.selfMs - a.selfMs, serverMs: b.serverMs - a.serverMs };
}

export interface ThreadCpu {
  /** The main (JavaScript) thread of this process, ms. */
  readonly mainMs: number;
  /** All other threads of this process (libuv pool, V8 helpers, Temporal Core, workflow threads), ms. */
  readonly othersMs: number;
  /** The dev server process, ms (NaN when not found). */
  readonly serverMs: number;
}

/** Per-thread CPU of this process from /proc/self/task, plus the dev server's. */
export function threadCpu(serverPid: number | undefined): ThreadCpu {
  let mainMs = NaN;
  let othersMs = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const s = readStat(`self/task/${tid}`);
    if (!s) continue;
    if (Number(tid) === process.pid) mainMs = s.cpuMs;
    else othersMs += s.cpuMs;
  }
  const server = serverPid === undefined ? undefined : readStat(String(serverPid));
  return { mainMs, othersMs, serverMs: server ? server.cpuMs : NaN };
}

export function threadCpuDelta(a: ThreadCpu, b: ThreadCpu): ThreadCpu {
  return { mainMs: b.mainMs - a.mainMs, othersMs: b.othersMs - a.othersMs, serverMs: b.serverMs - a.serverMs };
}
