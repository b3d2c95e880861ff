/**
 * sweep-10k (issue #15): one session of 10,000 bounded `mlp` experiments (one epoch of one
 * 32-sample batch each), `maxConcurrent` 50, on the dev server with one in-process worker. The
 * experiments are one sweep passed by reference (SessionInput.sweeps: a 100 × 100 grid of seed
 * and lr). Reported: wall time, experiments/s, the largest payload anywhere in the session's
 * chain of runs (start input, every continue-as-new carry, child inputs and results, the
 * result) and in two experiment histories, the largest status-query answer sampled while it
 * ran, and the number of runs. Goal: every payload under 512 KB. The baseline is what the start
 * input alone would be with the same 10,000 points sent as specs (computed, not run).
 *
 * Opt-in (`npm run bench -- --only scale`): it takes about as long as the rest of the suite.
 */
import type { temporal } from '@temporalio/proto';
import { sessionStatusQuery, type SessionSnapshot } from '../../src/shared/definitions';
import { expandSweep, type Sweep } from '../../src/shared/sweep';
import { startWorker } from '../../test/helpers/env';
import { assertEachCompletedOnce, payloadSizes, type TinySpec } from '../../test/helpers/sessions';
import type { BenchEnv } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { progress } from '../lib/stats';

export interface ScaleOptions {
  /** Grid side: side × side experiments. */
  readonly side: number;
  readonly maxConcurrent: number;
}
export const SCALE_DEFAULTS: ScaleOptions = { side: 100, maxConcurrent: 50 };
const LIMIT = 512 * 1024;

export async function scale(env: BenchEnv, opts: ScaleOptions = SCALE_DEFAULTS): Promise<Figure[]> {
  const taskQueue = env.uniqueName('scale');
  const w = await startWorker(env.h, { taskQueue, maxConcurrentActivities: opts.maxConcurrent });
  try {
    const lrs = Array.from({ length: opts.side }, (_, i) => Number((0.01 + i * 0.001).toFixed(3)));
    const seeds = Array.from({ length: opts.side }, (_, i) => i);
    const sweep: Sweep = { idPrefix: 'x', trainer: 'mlp', params: { epochs: 1, samples: 32, batchSize: 32 }, grid: { lr: lrs, seed: seeds } };
    const specs = expandSweep(sweep).map((p) => p.spec) as TinySpec[];
    const count = specs.length;
    const sessionId = env.uniqueName('sweep-10k');
    progress(`scale: ${count} experiments in one session, maxConcurrent ${opts.maxConcurrent}, one sweep by reference`);
    const started = performance.now();
    const handle = await w.client.startSession({ sessionId, policy: { maxConcurrent: opts.maxConcurrent }, experiments: [], sweeps: [sweep] });
    let largestAnswer = 0;
    let answers = 0;
    let done = false;
    const result = handle.result().finally(() => (done = true));
    const sampler = (async () => {
      while (!done) {
        try {
          const snap: SessionSnapshot = await handle.query(sessionStatusQuery, { limit: 200 });
          largestAnswer = Math.max(largestAnswer, Buffer.byteLength(JSON.stringify(snap)));
          answers++;
          if (answers % 10 === 1) progress(`scale: ${snap.counts?.completed ?? 0}/${snap.total} completed, run ${snap.runs + 1}, ${((performance.now() - started) / 1000).toFixed(0)} s`);
        } catch {
          // between runs of the chain, or just completed
        }
        await new Promise((r) => setTimeout(r, 5_000));
      }
    })();
    const summary = await result;
    await sampler;
    const seconds = (performance.now() - started) / 1000;
    if (summary.state !== 'completed' || summary.completed !== count) throw new Error(`scale: ${sessionId} ended ${summary.state} with ${summary.completed}/${count} completed`);
    await assertEachCompletedOnce(w.client, sessionId, specs, { pageSize: 1000, timeoutMs: 120_000 });

    const runIds: string[] = [];
    for await (const wf of env.h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) runIds.push(wf.runId);
    let largest = 0;
    let largestCarry = 0;
    let events = 0;
    const histories: { workflowId: string; runId?: string }[] = [...runIds.map((runId) => ({ workflowId: sessionId, runId })), { workflowId: `${sessionId}:${specs[0].id}` }, { workflowId: `${sessionId}:${specs[count - 1].id}` }];
    for (const { workflowId, runId } of histories) {
      const history = await env.h.env.client.workflow.getHandle(workflowId, runId).fetchHistory();
      for (const event of history.events ?? []) {
        events++;
        largest = Math.max(largest, ...payloadSizes(event as temporal.api.history.v1.IHistoryEvent));
        const can = event.workflowExecutionContinuedAsNewEventAttributes;
        if (can) largestCarry = Math.max(largestCarry, ...payloadSizes(can.input));
      }
    }
    const asSpecs = Buffer.byteLength(JSON.stringify(specs));
    progress(`scale: ${count} experiments in ${seconds.toFixed(0)} s over ${summary.runs + 1} runs; largest payload ${largest} B (carry ${largestCarry} B), largest answer ${largestAnswer} B`);
    const run = { experiments: count, seconds, runs: summary.runs + 1, largestPayloadBytes: largest, largestCarryBytes: largestCarry, largestAnswerBytes: largestAnswer, answers, eventsRead: events, specsAsStartInputBytes: asSpecs };
    const baseline = { what: `the same ${count} points sent as specs: start input (computed)`, value: asSpecs, unit: 'B' };
    return [
      figure({
        name: 'sweep-10k:largest-payload',
        values: [largest],
        unit: 'B',
        goal: { op: '<=', value: LIMIT },
        baseline,
        runs: [run],
        notes: `every payload of the session's ${summary.runs + 1} runs and of two of its experiments' histories; the largest continue-as-new carry ${largestCarry} B; every experiment completed once with its own model (visibility)`,
      }),
      figure({ name: 'sweep-10k:wall-seconds', values: [seconds], unit: 's', goal: null, baseline: { what: 'none (a wall time)' }, runs: [], extra: true, notes: `${(count / seconds).toFixed(1)} experiments/s, maxConcurrent ${opts.maxConcurrent}, one in-process worker` }),
      figure({ name: 'sweep-10k:largest-status-answer', values: [largestAnswer], unit: 'B', goal: { op: '<=', value: LIMIT }, baseline: { what: 'none' }, runs: [], extra: true, notes: `the largest of ${answers} sessionStatus answers (200 rows) sampled every 5 s while it ran` }),
    ];
  } finally {
    await w.stop();
  }
}
