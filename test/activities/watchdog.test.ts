/**
 * The local watchdog: the countdown itself without a server (on an injected clock), then a real
 * hung trainer on the real dev server. A python3 child run by the command trainer goes silent on
 * attempt 1 (prints nothing, ignores SIGTERM, sleeps); its worker stops it by itself, SIGTERM and
 * then SIGKILL to its process group after the grace period, and attempt 2 completes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWatchdog } from '../../src/activities/watchdog';
import { PYTHON } from './command/helpers';
import { logLines, processGone, ROOT, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

describe('startWatchdog', () => {
  test('fires once after the timeout without a touch, never while touched or busy', async () => {
    let now = 0;
    const fired: number[] = [];
    const dog = startWatchdog(40, (silent) => fired.push(silent), () => now);
    try {
      // Touched every "30 ms" of the injected clock for many real check periods: never fires.
      for (let i = 0; i < 20; i++) {
        now += 30;
        dog.touch();
        await new Promise((r) => setTimeout(r, 12));
      }
      assert.deepEqual(fired, []);
      // A store call in flight holds it off however long it takes.
      let finish!: () => void;
      const busy = dog.busy(new Promise<void>((resolve) => (finish = resolve)));
      now += 1000;
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(fired, []);
      finish();
      await busy;
      assert.deepEqual(fired, [], 'finishing the call counts as a sign of life');
      now += 41;
      await waitFor(() => fired.length > 0, { what: 'the watchdog to fire', timeoutMs: 10_000, intervalMs: 5 });
      now += 1000;
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(fired, [41], 'once, with the silence it saw');
    } finally {
      dog.stop();
    }
  });
});

// Attempt 1 prints nothing and ignores SIGTERM, so only the grace period's SIGKILL stops it;
// later attempts run the reference trainer.
const SILENT_ON_FIRST_ATTEMPT = `
import os, signal, sys, time
if os.environ["EXPERIMENT_ATTEMPT"] == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)
os.execvp(sys.executable, [sys.executable, "examples/python/train.py"])
`;

describe('a hung command trainer on the dev server', () => {
  let h: Harness;
  let w: RunningWorker;
  before(async () => {
    h = await startHarness();
    // Registered as a worker operator would: the silent script, and the reference trainer.
    const programs = [
      { name: 'silent-first', argv: [PYTHON, '-c', SILENT_ON_FIRST_ATTEMPT], cwd: ROOT, epochsParam: 'epochs', gracePeriod: '1s' },
      { name: 'reference', argv: [PYTHON, 'examples/python/train.py'], cwd: ROOT, epochsParam: 'epochs' },
    ];
    w = await startWorker(h, { taskQueue: uniqueQueue('watchdog'), programs });
  });
  after(async () => {
    await w?.stop();
    await h?.teardown();
  });

  test('a child silent for the heartbeat timeout is killed on its worker within 2x the timeout, and attempt 2 completes', async () => {
    const heartbeatTimeoutMs = 3000;
    const params = { epochs: 2, seed: 4 };
    const command = (program: string) => ({ id: 'e', trainer: 'command', params: { program, params } });
    const policy = { heartbeatTimeout: `${heartbeatTimeoutMs}ms`, retry: { initialInterval: '200ms' } };
    const handle = await w.client.startSession({ sessionId: 'hung', policy, experiments: [command('silent-first')] });

    const started = await waitFor(() => logLines.find((l) => l.msg === 'trainer process started' && l.workflowId === 'hung:e' && l.attempt === 1), {
      what: 'attempt 1 to start its child',
    });
    const pid = started.pid as number;
    assert.ok(pid > 0 && !processGone(pid), 'the silent child is running');
    // The worker's own log times the stop: SIGTERM at the heartbeat timeout, SIGKILL a grace period
    // later, all within 2x the timeout of the attempt's start. The poll for the pid is a safety limit.
    await waitFor(() => processGone(pid), { what: `silent child ${pid} to be killed`, timeoutMs: 4 * heartbeatTimeoutMs, intervalMs: 50 });
    const runLines = logLines.filter((l) => l.workflowId === 'hung:e' && l.attempt === 1);
    const attemptStart = runLines.find((l) => l.msg === 'starting training');
    assert.ok(runLines.some((l) => l.msg === 'interrupted: checkpointing at the next step boundary' && l.reason === 'stalled'), 'interrupted as stalled');
    const term = runLines.find((l) => l.msg === 'interrupting the trainer: SIGTERM to its process group');
    assert.equal(term?.reason, 'stalled');
    assert.ok((term.time as number) - (attemptStart?.time as number) >= heartbeatTimeoutMs, 'not before the heartbeat timeout');
    const kill = runLines.find((l) => l.msg === 'the trainer did not exit within its grace period: SIGKILL to its process group' && l.pid === pid);
    assert.ok(kill, 'SIGKILL after the grace period');
    const killedAfter = (kill.time as number) - (attemptStart?.time as number);
    assert.ok(killedAfter <= 2 * heartbeatTimeoutMs, `killed ${killedAfter} ms after the attempt started (limit ${2 * heartbeatTimeoutMs})`);

    const summary = await handle.result();
    const e = summary.experiments[0];
    assert.equal(e.state, 'completed', e.reason ?? '');
    assert.equal(e.attempt, 2);

    // The same params run once without hanging: attempt 2 started fresh and ends identical.
    const plain = await w.client.startSession({ sessionId: 'hung-reference', experiments: [command('reference')] });
    const reference = (await plain.result()).experiments[0];
    assert.equal(reference.state, 'completed');
    assert.equal(e.result?.modelSha256, reference.result?.modelSha256);
    assert.match(String(e.result?.modelSha256), /^[0-9a-f]{64}$/);
  });
});
