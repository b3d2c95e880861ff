/**
 * kill -9 during a background persist, with real processes against the real dev server: worker A
 * (test/helpers/stuck-persist-worker.ts: the real worker and local store, whose epoch-2 save stops
 * half way through its durable write) is SIGKILLed while the mlp trainer goes on training past
 * that checkpoint; worker B (src/worker.ts) resumes from the previous checkpoint.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import { ExperimentsClient } from '../../src/client';
import { storeKey } from '../../src/shared/ids';
import { harnessWithWorkers, readJsonLines, ROOT, uniqueQueue, waitFor } from '../helpers/env';

const bed = harnessWithWorkers();

const params = { epochs: 5, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 17 };

test('kill -9 during a background persist loses only that checkpoint: the run resumes from the previous one, bit-identical', { timeout: 300_000 }, async () => {
  const taskQueue = uniqueQueue('bg-crash');
  const checkpointDir = path.join(bed.h.tmp, 'ck-bg-crash');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store });
  const a = bed.spawn({ taskQueue, checkpointDir, name: 'bg-crash-a', script: path.join(ROOT, 'test/helpers/stuck-persist-worker.ts'), extraEnv: { STUCK_PERSIST_EPOCH: '2' } });
  await a.ready;
  const handle = await client.startSession({
    sessionId: 'bg-crash',
    policy: { heartbeatTimeout: '3s', retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const stuck = await waitFor(() => readJsonLines(a.logFile).find((l) => l.msg === 'test: persist stuck'), { timeoutMs: 120_000, what: 'the epoch-2 persist to be half way' });
  assert.equal(stuck.epoch, 2);
  // Training goes on while the checkpoint persists: wait until the trainer reports steps of epoch 2.
  const workflowId = 'bg-crash:e';
  await waitFor(
    async () => {
      const s = await client.status(workflowId);
      return s.kind === 'experiment' && (s.epoch ?? 0) >= 2 ? s : undefined;
    },
    { what: 'training to go on into epoch 2 while the epoch-2 checkpoint persists' },
  );
  const key = storeKey('bg-crash', 'e');
  const before = (await store.list(key)).map((p) => [p.epoch, p.step]);
  assert.deepEqual(before[0], [1, 0], `the newest durable checkpoint is epoch 1's; listed ${JSON.stringify(before)}`);
  a.child.kill('SIGKILL');
  assert.equal((await a.exited).signal, 'SIGKILL');

  const b = bed.spawn({ taskQueue, checkpointDir, name: 'bg-crash-b' });
  const summary = await handle.result();
  const e = summary.experiments[0];
  assert.equal(e.state, 'completed', e.reason ?? '');
  assert.equal(e.resumedFrom, 1, 'resumed from the checkpoint before the one that was persisting');
  assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(params)).modelSha256, 'bit-identical to an uninterrupted run');
  const resumed = readJsonLines(b.logFile).find((l) => l.msg === 'resuming training');
  assert.equal(resumed?.epoch, 1);
  const warnings = readJsonLines(b.logFile).filter((l) => l.msg === 'skipping a checkpoint that does not verify');
  assert.deepEqual(warnings, [], 'the half-written checkpoint was never recorded, so nothing had to be skipped');
  // The half-written temp file of the dead worker is not a checkpoint, and the next write in its directory sweeps it.
  const files = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(path.join(dir, d.name)) : [d.name]));
  assert.ok(!files(checkpointDir).some((name) => name.startsWith('.tmp-')), 'no temp file left after the resumed run wrote its checkpoints');
  b.child.kill('SIGTERM');
  await b.exited;
});
