/**
 * `experiments worker --metrics-port`: real worker processes (the CLI) against the real dev
 * server, scraped over HTTP while they train. A SIGTERM to the first worker is a real
 * preemption; the second worker resumes the training and, running the experiment workflow,
 * counts the preemption.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/dev-server';
import { LocalCheckpointStore } from '../../src/activities/checkpoint-store';
import { ExperimentsClient } from '../../src/client';
import { METRICS } from '../../src/shared/metric-names';
import { storeKey } from '../../src/shared/ids';
import { harnessWithWorkers, uniqueQueue, waitFor } from '../helpers/env';
import { scrape, total, type Sample } from '../helpers/prometheus';

const bed = harnessWithWorkers();

/** The Runtime's exporter suffixes counters with _total (its prefix applies to the SDK's own metrics only). */
const counter = (name: string) => `${name}_total`;

test('metrics: valid Prometheus text with SDK and training metrics; steps and checkpoints rise; a SIGTERM preemption is counted', { timeout: 300_000 }, async () => {
  const taskQueue = uniqueQueue('metrics');
  const checkpointDir = path.join(bed.h.tmp, 'ck-metrics');
  const store = new LocalCheckpointStore(checkpointDir);
  const client = new ExperimentsClient({ client: bed.h.env.client, taskQueue, store });
  const worker = async (label: string) => {
    const port = await freePort();
    const w = bed.spawn({ taskQueue, checkpointDir, name: `metrics-${label}`, cliArgs: ['--metrics-port', String(port)] });
    await w.ready;
    return { ...w, port };
  };
  const a = await worker('a');
  // 16 steps × 40 ms per epoch, 40 epochs: long enough for two scrapes and a preemption.
  const params = { epochs: 40, samples: 512, batchSize: 32, stepDelayMs: 40, seed: 5 };
  const handle = await client.startSession({
    sessionId: 'metrics',
    policy: { heartbeatTimeout: '5s', retry: { initialInterval: '200ms' } },
    experiments: [{ id: 'e', trainer: 'mlp', params }],
  });
  const labels = { session: 'metrics', trainer: 'mlp' };
  const steps = (s: Sample[]) => total(s, counter(METRICS.steps), labels);
  const checkpoints = (s: Sample[]) => total(s, counter(METRICS.checkpoints), labels);

  const first = await waitFor(async () => {
    const s = await scrape(a.port);
    return checkpoints(s) >= 1 ? s : undefined;
  }, { timeoutMs: 120_000, what: 'a first checkpoint counted on worker a' });
  // The Runtime's own metrics come out of the same endpoint.
  assert.ok(first.some((s) => s.name === 'temporal_worker_task_slots_used'), 'SDK metrics present');
  assert.ok(first.every((s) => !('experimentId' in s.labels) && !('experiment' in s.labels)), 'no experiment id label');
  assert.ok(first.filter((s) => s.name.startsWith(METRICS.steps)).every((s) => s.labels.worker), 'worker label on our series');
  assert.equal(total(first, METRICS.experimentsByState, { session: 'metrics', state: 'running' }), 1, 'experiments by state: one running');
  assert.ok(total(first, `${METRICS.checkpointWriteDuration}_count`, labels) >= 1, 'checkpoint write-duration histogram');
  assert.ok(total(first, counter(METRICS.checkpointBytes), labels) > 0, 'checkpoint bytes');

  const second = await waitFor(async () => {
    const s = await scrape(a.port);
    return steps(s) > steps(first) && checkpoints(s) > checkpoints(first) ? s : undefined;
  }, { timeoutMs: 120_000, what: 'steps and checkpoints to rise between two scrapes' });
  assert.ok(total(second, counter(METRICS.epochs), labels) >= 1, 'epochs counted');

  // A standby worker, then a real SIGTERM to the one training: a preemption.
  const b = await worker('b');
  assert.equal(total(await scrape(b.port), counter(METRICS.preemptions), labels), 0);
  a.child.kill('SIGTERM');
  assert.equal((await a.exited).code, 0, 'worker a shut down cleanly');
  const onB = await waitFor(async () => {
    const s = await scrape(b.port);
    return total(s, counter(METRICS.preemptions), labels) >= 1 && total(s, counter(METRICS.resumes), labels) >= 1 ? s : undefined;
  }, { timeoutMs: 120_000, what: 'worker b to count the preemption and the resume' });
  assert.equal(total(onB, counter(METRICS.preemptions), labels), 1);
  const resumedAt = (await store.list(storeKey('metrics', 'e')))[0]?.epoch ?? 0;
  assert.ok(resumedAt > 0, 'checkpoints exist to resume from');
  await handle.cancel();
  await client.waitForSession('metrics');
});
