/**
 * Metric history and keep-best retention, for every store: the local and the S3 store test files
 * both run `historyContract(name, harness)` with the harness of checkpoint-store-contract.ts. The
 * writer is the one the training runtime uses; the reader is a second store on the same backing,
 * as a client on another machine opens it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { MetricHistoryWriter, readMetricHistory, readNewestRunHistory, type CheckpointStore } from '../../src/activities/checkpoint-store';
import { resolveRetention } from '../../src/shared/retention';
import { KEY, bytes, sha256, type StoreHarness } from './checkpoint-store-contract';

const RUN_A = '33333333-aaaa-4bbb-8ccc-00000000000a';
const RUN_B = '44444444-aaaa-4bbb-8ccc-00000000000b';
const log = pino({ level: 'silent' });
const stepsPerEpoch = 4;

/** One attempt of a fake training loop through the real writer and store: epochs [from, to). */
async function trainAttempt(store: CheckpointStore, runId: string, attempt: number, from: number, to: number, options: { dieAfterSteps?: number } = {}) {
  const writer = new MetricHistoryWriter(store.metricHistory!(), KEY, runId, { invocation: 0, attempt }, log, { stepIntervalMs: 0 });
  const resume = (await store.latestVerified(KEY, [], { runId })).checkpoint?.pointer;
  await writer.begin(resume);
  for (let epoch = resume?.epoch ?? from; epoch < to; epoch++) {
    for (let step = 1; step <= stepsPerEpoch; step++) {
      writer.step({ epoch, step, metrics: { loss: 10 - epoch - step / 10 } });
      if (options.dieAfterSteps !== undefined && epoch === to - 1 && step === options.dieAfterSteps) {
        // What reached the store before the crash: the held step points, as a periodic flush writes them.
        await writer.close();
        return;
      }
    }
    const metrics = { loss: 10 - epoch - 1 };
    await writer.checkpoint({ epoch: epoch + 1, step: 0, metrics });
    await store.save(KEY, { epoch: epoch + 1, step: 0, attempt, data: bytes(500, epoch), metrics, runId, fence: { invocation: 0, attempt } }, 10);
  }
  await writer.close();
}

export function historyContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  void describe(`metric history and keep-best: ${name}`, () => {
    void test('a crash mid-epoch and a resume leave one epoch point per epoch, and the dead attempt’s later steps are rewound', async () => {
      const h = await makeHarness();
      await h.store.registerAttempt(KEY, RUN_A, { invocation: 0, attempt: 1 });
      await trainAttempt(h.store, RUN_A, 1, 0, 3, { dieAfterSteps: 3 }); // epochs 1, 2 done; dies in epoch 2 (zero-based)
      await h.store.registerAttempt(KEY, RUN_A, { invocation: 0, attempt: 2 });
      await trainAttempt(h.store, RUN_A, 2, 0, 4);

      const reader = h.another();
      const run = await readNewestRunHistory(reader, 'sess-1:exp-a');
      assert.ok(run);
      assert.equal(run.runId, RUN_A);
      assert.deepEqual(run.attempts.map((a) => [a.attempt, a.resumedAt]), [[1, null], [2, { epoch: 2, step: 0 }]]);
      const epochs = run.points.filter((p) => p.kind === 'epoch');
      assert.deepEqual(epochs.map((p) => [p.epoch, p.attempt, p.metrics.loss]), [[1, 1, 9], [2, 1, 8], [3, 2, 7], [4, 2, 6]]);
      const steps = run.points.filter((p) => p.kind === 'step').map((p) => `${p.epoch}.${p.step}@${p.attempt}`);
      assert.equal(new Set(steps.map((s) => s.split('@')[0])).size, steps.length, `no step twice: ${steps.join(' ')}`);
      assert.deepEqual(steps.filter((s) => s.startsWith('2.')), ['2.1@2', '2.2@2', '2.3@2', '2.4@2'], 'epoch 2 (zero-based) steps from the attempt that finished it');
      assert.ok(run.stored.some((p) => p.kind === 'step' && p.epoch === 2 && p.attempt === 1), 'the dead attempt’s steps are still stored (append-only), only hidden');
      // The same through the contract entry point, by store key too.
      assert.deepEqual(await readMetricHistory(reader, KEY), run.points);
    });

    void test('the newest run is read; a history object is written once and never replaced', async () => {
      const h = await makeHarness();
      await trainAttempt(h.store, RUN_A, 1, 0, 1);
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct start times
      await trainAttempt(h.store, RUN_B, 1, 0, 2);
      const points = await readMetricHistory(h.another(), KEY);
      assert.deepEqual(points.filter((p) => p.kind === 'epoch').map((p) => p.epoch), [1, 2]);
      const objects = h.store.metricHistory!();
      await assert.rejects(objects.create(KEY, RUN_A, 'attempt-000000-000001-000.json', Buffer.from('{}\n')), /metric history write failed for sess-1\/exp-a/);
      assert.deepEqual(await readMetricHistory(h.another(), 'sess-1:never-trained'), []);
      await assert.rejects(readMetricHistory(h.store, 'no-separator'), /experiment id "no-separator": expected/);
    });

    void test('keep-best {latest: 2, best: 1}: the best checkpoint survives pruning while worse epochs come and go, and verifies', async () => {
      const h = await makeHarness();
      const keep = resolveRetention({ latest: 2, best: 1 });
      const losses = [0.9, 0.3, 0.5, 0.6, 0.45, 0.8, 0.7];
      const saved = [];
      for (const [i, loss] of losses.entries()) {
        const data = bytes(2000, i);
        saved.push({ pointer: await h.store.save(KEY, { epoch: i + 1, step: 0, attempt: 1, data, metrics: { loss }, runId: RUN_A }, keep), sha: sha256(data) });
        const listed = (await h.store.list(KEY, { runId: RUN_A })).map((p) => p.checkpointId);
        const bestSoFar = saved.reduce((a, b) => (b.pointer.metrics.loss < a.pointer.metrics.loss ? b : a));
        assert.ok(listed.includes(bestSoFar.pointer.checkpointId), `after epoch ${i + 1} the best (loss ${bestSoFar.pointer.metrics.loss}) is kept`);
        assert.ok(listed.length <= 3, `at most latest 2 + best 1, got ${listed.length}`);
      }
      const best = saved[1];
      const marks = await h.store.retention!(KEY, RUN_A);
      assert.deepEqual(marks, { latest: [saved[6].pointer.checkpointId, saved[5].pointer.checkpointId], best: [best.pointer.checkpointId], metric: 'loss', mode: 'min' });
      assert.deepEqual((await h.store.list(KEY, { runId: RUN_A })).map((p) => p.epoch), [7, 6, 2]);
      assert.ok(!(await h.stored(KEY, RUN_A)).includes(h.blobName(saved[4].pointer)), 'a worse epoch was pruned, blob and all');
      const data = await h.another().read(best.pointer);
      assert.equal(sha256(data), best.sha);
      assert.equal(best.pointer.sha256, best.sha);
      // A plain count after keep-best drops the marks and prunes to the newest again.
      await h.store.save(KEY, { epoch: 8, step: 0, attempt: 1, data: bytes(10, 8), metrics: { loss: 1 }, runId: RUN_A }, 2);
      assert.equal(await h.store.retention!(KEY, RUN_A), undefined);
      assert.deepEqual((await h.store.list(KEY, { runId: RUN_A })).map((p) => p.epoch), [8, 7]);
      await assert.rejects(h.store.save(KEY, { epoch: 9, step: 0, attempt: 1, data: bytes(10, 9), runId: RUN_A }, { latest: 1, best: 1, metric: 'loss', mode: 'lowest' as 'min' }), /checkpoints to keep\.mode: expected "min" or "max", received lowest/);
    });
  });
}
