/**
 * A frozen worker: a real child-process worker is SIGSTOPped mid-epoch past the heartbeat timeout,
 * a second worker resumes the experiment, then the first is SIGCONTed. Its activity does not know
 * yet that it was timed out and goes on writing checkpoints: the store's fence refuses them, the
 * newer attempt's manifest never gains an entry from the old attempt, and the experiment ends
 * bit-identical to an uninterrupted run.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import { readJsonLines, spawnWorker, startHarness, uniqueQueue, waitFor, type ChildWorker, type Harness } from '../helpers/env';

let h: Harness;
const children: ChildWorker[] = [];
before(async () => {
  h = await startHarness();
});
after(async () => {
  for (const c of children) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) continue;
    c.child.kill('SIGCONT');
    c.child.kill('SIGKILL');
  }
  await h?.teardown();
});

// 16 steps × 50 ms ≈ 0.8 s per epoch: a freeze lands mid-epoch, and the run outlasts the takeover.
const params = { epochs: 14, samples: 512, batchSize: 32, stepDelayMs: 50, seed: 21 };

test('a worker frozen past the heartbeat timeout and thawed after another resumed cannot write: its checkpoints are refused', async () => {
  const name = 'frozen';
  const taskQueue = uniqueQueue(name);
  const checkpointDir = path.join(h.tmp, `ck-${name}`);
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: h.env.client, taskQueue, store });
  const worker = (label: string) => {
    const w = spawnWorker(h, { taskQueue, checkpointDir, name: `${name}-${label}` });
    children.push(w);
    return w;
  };
  const a = worker('a');
  await a.ready;
  const handle = await client.startSession({
    sessionId: name,
    policy: { heartbeatTimeout: '3s', checkpointsToKeep: 50, retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const key = storeKey(name, 'e');
  await waitFor(async () => ((await store.list(key))[0]?.epoch ?? 0) >= 2, { what: 'two epochs of checkpoints' });
  await new Promise((r) => setTimeout(r, 300)); // into the middle of the next epoch
  a.child.kill('SIGSTOP');

  const b = worker('b');
  const resumed = await waitFor(() => readJsonLines(b.logFile).find((l) => l.msg === 'resuming training'), {
    what: 'the second worker to resume after the heartbeat timeout',
    timeoutMs: 120_000,
  });
  // Usually attempt 2; 3 when the server had handed attempt 2 to the frozen worker's open poll.
  const newer = resumed.attempt as number;
  assert.ok(newer >= 2, `resumed by attempt ${newer}`);
  await waitFor(() => readJsonLines(b.logFile).some((l) => l.msg === 'checkpoint saved' && l.attempt === newer), { what: `a checkpoint of attempt ${newer}` });
  a.child.kill('SIGCONT');

  // The thawed attempt writes (an epoch checkpoint, or the interruption checkpoint once it learns
  // it was timed out), and every write is refused with both tokens logged.
  // (The thawed worker may also pick up an attempt the server handed to its open poll while it
  // was frozen; that one's registration is refused too, which is not what this looks for.)
  const refusal = await waitFor(
    () =>
      readJsonLines(a.logFile).find(
        (l) => l.level >= 50 && l.attempt === 1 && typeof l.msg === 'string' && l.msg.startsWith('checkpoint save for frozen/e') && l.msg.includes('is stale'),
      ),
    { what: 'the thawed attempt 1 to log a refused checkpoint write' },
  );
  const newest = refusal.newest as { invocation: number; attempt: number };
  assert.deepEqual(refusal.attempted, { invocation: 0, attempt: 1 });
  assert.ok(newest.invocation === 0 && newest.attempt >= newer, `refused for attempt ${newest.attempt}`);
  assert.match(String(refusal.msg), /^checkpoint save for frozen\/e \(run .*\) refused: attempt invocation 0 attempt 1 is stale, attempt invocation 0 attempt \d+ has started since/);
  assert.ok(!readJsonLines(a.logFile).some((l) => l.msg === 'checkpoint saved' && (l.time as number) > (resumed.time as number)), 'no save of attempt 1 succeeded after the resume');

  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'bit-identical to an uninterrupted run');
  const run = (await store.list(key)).filter((p) => Date.parse(p.savedAt) > (resumed.time as number));
  assert.ok(run.length > 0, 'attempt 2 checkpointed after the resume');
  assert.deepEqual(
    run.filter((p) => Number(/-a(\d+)-/.exec(p.checkpointId)?.[1]) < newer).map((p) => p.checkpointId),
    [],
    'the manifest holds no entry of an older attempt written after the resume',
  );
  for (const c of [a, b]) c.child.kill('SIGTERM');
  await Promise.all([a.exited, b.exited]);
});
