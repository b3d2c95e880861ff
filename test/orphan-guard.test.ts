/**
 * Children spawned tied to their parent never outlive it: a real parent process spawns a real
 * `sleep` through each guard method, is killed with SIGKILL, and the sleep must be gone. The
 * watchdog method is the fallback where setpriv is missing; it is forced here so both are tested.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { pdeathsigAvailable, spawnTiedToParent, type GuardMethod } from '../src/orphan-guard';
import { ROOT, waitFor } from './helpers/env';

/**
 * Pids of live `sleep` processes whose command line contains `marker`. Only the sleep counts: the
 * watchdog method's Node process carries the marker in its argv too, and counting it made the
 * "one tied sleep runs" wait pass before the sleep itself existed.
 */
function pidsWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // a zombie is dead already
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'sleep') continue;
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes(marker)) pids.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

describe('spawnTiedToParent', () => {
  test('setpriv with --pdeathsig is available on this machine (the default method)', () => {
    assert.equal(pdeathsigAvailable(), true, 'util-linux setpriv with --pdeathsig');
  });

  for (const method of ['pdeathsig', 'watchdog'] as GuardMethod[]) {
    test(`${method}: the child dies with a SIGKILLed parent, and takes SIGTERM like the program itself`, async (t) => {
      // A duration no other process on the machine uses marks our sleeps.
      const marker = `${900 + Math.floor(Math.random() * 99)}.${process.pid}${Date.now() % 100000}`;
      const script = `
        const { spawnTiedToParent } = require(${JSON.stringify(path.join(ROOT, 'src', 'orphan-guard'))});
        const child = spawnTiedToParent('sleep', [${JSON.stringify(marker)}], { stdout: 'ignore', stderr: 'ignore' }, ${JSON.stringify(method)});
        child.on('spawn', () => process.stdout.write('spawned\\n'));
        setInterval(() => undefined, 1000);`;
      const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      // Whatever fails below, nothing this test started outlives it (a leaked parent keeps the
      // test runner from exiting); the sleeps are killed by marker as a last resort.
      const spawned: ChildProcess[] = [parent];
      t.after(() => {
        for (const p of spawned) p.kill('SIGKILL');
        for (const pid of pidsWith(marker)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      });
      await waitFor(() => pidsWith(marker).length === 1, { what: `the tied sleep ${marker} to run` });
      parent.kill('SIGKILL');
      await waitFor(() => pidsWith(marker).length === 0, { what: `sleep ${marker} to die with its parent`, timeoutMs: 15000, intervalMs: 50 });

      const second = spawnTiedToParent('sleep', [marker], { stdout: 'ignore', stderr: 'ignore' }, method);
      spawned.push(second);
      await waitFor(() => pidsWith(marker).length === 1, { what: `a second tied sleep ${marker}` });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => second.once('exit', (code, signal) => resolve({ code, signal })));
      second.kill('SIGTERM');
      const end = await exited;
      assert.ok(end.signal === 'SIGTERM' || end.code === 128, `ended by the SIGTERM (${JSON.stringify(end)})`);
      await waitFor(() => pidsWith(marker).length === 0, { what: `sleep ${marker} to stop on SIGTERM`, timeoutMs: 15000 });
    });
  }
});
