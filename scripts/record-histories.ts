/**
 * Records the replay fixtures in test/fixtures/histories: runs each scenario against a real
 * dev server (in-process worker, or child-process workers where a process must die) and saves
 * the history of the session and of its experiments, in the format `experiments history
 * export` writes. test/replay.test.ts replays them against the current workflow code.
 *
 * Fixtures are a record of what older workflow code did, so they are never re-recorded to make
 * a change pass (see CONTRIBUTING.md). That is why an existing fixture is only overwritten
 * with --force, and a plain run records only scenarios that have no fixtures yet.
 *
 * Files: `<workflowType>.<scenario>.json` for the session (`.run<N>` per continue-as-new run)
 * and `experimentWorkflow.<scenario>.<experimentId>.json` for its experiments.
 *
 *   npm run record-histories                      # scenarios without fixtures
 *   npm run record-histories -- --only NAME[,..]  # just these (refuses if they exist)
 *   npm run record-histories -- --list
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { LocalCheckpointStore } from '../src/activities/checkpoint-store';
import type { CheckpointStore } from '../src/activities/checkpoint-store';
import { ExperimentsClient } from '../src/client';
import { exportHistory, writeHistory, type HistoryJson } from '../src/replay';
import { sessionStatusQuery, type SessionSnapshot } from '../src/shared/definitions';
import { storeKey } from '../src/shared/ids';
import { resolvePolicy } from '../src/shared/policy';
import { readRegistry } from '../src/hardware/registry-client';
import { ROOT, spawnWorker, startHarness, startWorker, uniqueQueue, waitFor, type ChildWorker, type Harness, type RunningWorker } from '../test/helpers/env';

const OUT_DIR = path.join(ROOT, 'test', 'fixtures', 'histories');

/** Tiny: milliseconds of training. */
const tiny = { epochs: 2, samples: 64 };
/** 8 steps × 50 ms ≈ 0.4 s per epoch: slow enough to land an interruption mid-epoch. */
const slow = { epochs: 4, samples: 256, batchSize: 32, stepDelayMs: 50, seed: 11 };
/** ≈ 10 s in all (16 steps × 80 ms per epoch): outlasts starting a second worker process. */
const slower = { epochs: 8, samples: 512, batchSize: 32, stepDelayMs: 80, seed: 11 };

interface Context {
  h: Harness;
  /** In-process worker on its own task queue. */
  w: RunningWorker;
  /** Child-process workers on a fresh task queue with a shared checkpoint directory. */
  processWorkers(name: string): { client: ExperimentsClient; store: LocalCheckpointStore; spawn(label: string): ChildWorker };
}

interface Recording {
  sessionId: string;
  /** Experiments whose history to save (experiments that never started have none). */
  experiments: string[];
}

interface Scenario {
  readonly name: string;
  readonly about: string;
  run(ctx: Context): Promise<Recording>;
}

const rowOf = (snap: SessionSnapshot, id: string) => snap.experiments.find((e) => e.id === id);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function newestCheckpointEpoch(store: CheckpointStore, key: string): Promise<number> {
  return (await store.list(key))[0]?.epoch ?? 0;
}

/** Awaits a session's result; a cancelled or failed session is an expected ending here. */
async function settle(result: Promise<unknown>): Promise<void> {
  try {
    await result;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
  }
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'approval',
    about: 'long-running experiments wait, a bounded one runs, approve releases them, a late one is added, a second approval is audited, close ends the session',
    async run({ w }) {
      const sessionId = 'approval';
      const handle = await w.client.startSession({
        sessionId,
        keepOpen: true,
        policy: { heartbeatTimeout: '10s' },
        experiments: [
          { id: 'long', trainer: 'mlp', params: tiny, longRunning: true },
          { id: 'estimated', trainer: 'mlp', params: tiny, estimatedDuration: '3h' },
          { id: 'short', trainer: 'mlp', params: tiny },
        ],
      });
      await waitFor(
        async () => {
          const snap = await handle.query(sessionStatusQuery);
          return rowOf(snap, 'short')?.state === 'completed' && rowOf(snap, 'long')?.state === 'awaiting-approval';
        },
        { what: 'the bounded experiment to complete while the long ones wait' },
      );
      await w.client.approve(sessionId, { by: 'alice', note: 'budget ok' });
      await w.client.addExperiments(sessionId, [{ id: 'late', trainer: 'mlp', params: tiny, longRunning: true }]);
      await w.client.approve(sessionId, { by: 'bob' });
      await waitFor(async () => (await handle.query(sessionStatusQuery)).experiments.every((e) => e.state === 'completed'), { what: 'all four to complete' });
      await handle.signal('close');
      await handle.result();
      return { sessionId, experiments: ['long', 'estimated', 'short', 'late'] };
    },
  },
  {
    name: 'bounded-and-none',
    about: 'a pre-approved session: one bounded experiment and one in no-timeout mode',
    async run({ w }) {
      const sessionId = 'bounded-and-none';
      const handle = await w.client.startSession({
        sessionId,
        preApproved: { by: 'ops', note: 'nightly' },
        experiments: [
          { id: 'bounded', trainer: 'mlp', params: tiny },
          { id: 'none', trainer: 'mlp', params: tiny, longRunning: true },
        ],
      });
      await handle.result();
      return { sessionId, experiments: ['bounded', 'none'] };
    },
  },
  {
    name: 'priority',
    about: 'a session with policy priority and fairnessKey: its children and training activities carry them (patches session-child-priority, experiment-training-priority)',
    async run({ w }) {
      const sessionId = 'priority';
      const handle = await w.client.startSession({
        sessionId,
        policy: { priority: 2, fairnessKey: 'team-a' },
        experiments: [
          { id: 'first', trainer: 'mlp', params: tiny },
          { id: 'second', trainer: 'mlp', params: tiny },
        ],
      });
      await handle.result();
      return { sessionId, experiments: ['first', 'second'] };
    },
  },
  {
    name: 'crash-resume',
    about: 'kill -9 of a child-process worker mid-epoch; a second worker resumes after the heartbeat timeout',
    async run({ processWorkers }) {
      const sessionId = 'crash-resume';
      const { client, store, spawn } = processWorkers(sessionId);
      const a = spawn('a');
      await a.ready;
      const handle = await client.startSession({
        sessionId,
        policy: { heartbeatTimeout: '3s', retry: { initialInterval: '200ms' } },
        experiments: [{ id: 'e', trainer: 'mlp', params: slow }],
      });
      await waitFor(async () => (await newestCheckpointEpoch(store, storeKey(sessionId, 'e'))) >= 1, { what: 'the first epoch checkpoint' });
      await pause(150);
      a.child.kill('SIGKILL');
      await a.exited;
      const b = spawn('b');
      const summary = await handle.result();
      if (summary.experiments[0].attempt < 2) throw new Error('crash-resume: the kill did not land mid-training (attempt 1 completed)');
      b.child.kill('SIGTERM');
      await b.exited;
      return { sessionId, experiments: ['e'] };
    },
  },
  {
    name: 'graceful-shutdown',
    about: 'SIGTERM to a child-process worker mid-epoch: it checkpoints and fails the attempt, a second worker resumes at once',
    async run({ processWorkers }) {
      const sessionId = 'graceful-shutdown';
      const { client, store, spawn } = processWorkers(sessionId);
      const a = spawn('a');
      await a.ready;
      const handle = await client.startSession({
        sessionId,
        policy: { heartbeatTimeout: '60s', retry: { initialInterval: '200ms' } },
        experiments: [{ id: 'e', trainer: 'mlp', params: slower }],
      });
      await waitFor(async () => (await newestCheckpointEpoch(store, storeKey(sessionId, 'e'))) >= 1, { what: 'the first epoch checkpoint' });
      const b = spawn('b');
      await b.ready;
      a.child.kill('SIGTERM');
      await a.exited;
      const summary = await handle.result();
      if (summary.experiments[0].attempt < 2) throw new Error('graceful-shutdown: SIGTERM did not land mid-training (attempt 1 completed)');
      b.child.kill('SIGTERM');
      await b.exited;
      return { sessionId, experiments: ['e'] };
    },
  },
  {
    name: 'cancel',
    about: 'one running experiment is cancelled with a reason: it checkpoints, ends interrupted, and reports to its session by signal',
    async run({ w }) {
      const sessionId = 'cancel';
      const handle = await w.client.startSession({ sessionId, experiments: [{ id: 'e', trainer: 'mlp', params: slow }] });
      await waitFor(async () => (await newestCheckpointEpoch(w.client.store, storeKey(sessionId, 'e'))) >= 1, {
        what: 'the first epoch checkpoint',
      });
      await w.client.cancel(`${sessionId}:e`, 'wrong learning rate');
      await handle.result();
      return { sessionId, experiments: ['e'] };
    },
  },
  {
    name: 'cancel-session',
    about: 'the whole session is cancelled: the running experiment is interrupted, the queued one marked cancelled',
    async run({ w }) {
      const sessionId = 'cancel-session';
      const handle = await w.client.startSession({
        sessionId,
        policy: { maxConcurrent: 1 },
        experiments: [
          { id: 'running', trainer: 'mlp', params: slow },
          { id: 'queued', trainer: 'mlp', params: slow },
        ],
      });
      await waitFor(async () => (await newestCheckpointEpoch(w.client.store, storeKey(sessionId, 'running'))) >= 1, {
        what: 'the first experiment to checkpoint',
      });
      await w.client.cancel(sessionId);
      await settle(handle.result());
      return { sessionId, experiments: ['running'] };
    },
  },
  {
    name: 'bounded-timeout',
    about: 'a bounded experiment outlives defaultTimeout and ends timed-out (its workflow Failed)',
    async run({ w }) {
      const sessionId = 'bounded-timeout';
      const handle = await w.client.startSession({
        sessionId,
        policy: { defaultTimeout: '1s', heartbeatTimeout: '10s' },
        experiments: [{ id: 'bounded', trainer: 'mlp', params: { ...slow, epochs: 6 } }],
      });
      const summary = await handle.result();
      if (summary.experiments[0].state !== 'timed-out') throw new Error(`bounded-timeout: expected timed-out, got ${summary.experiments[0].state}`);
      return { sessionId, experiments: ['bounded'] };
    },
  },
  {
    name: 'rejected-approval',
    about: 'no approval within approvalTimeout: the long-running experiment is rejected by the wake-up timer, the bounded one runs',
    async run({ w }) {
      const sessionId = 'rejected-approval';
      const handle = await w.client.startSession({
        sessionId,
        policy: { approvalTimeout: '2s' },
        experiments: [
          { id: 'long', trainer: 'mlp', params: tiny, longRunning: true },
          { id: 'short', trainer: 'mlp', params: tiny },
        ],
      });
      const summary = await handle.result();
      if (rowOf(summary, 'long')?.state !== 'rejected') throw new Error('rejected-approval: the long experiment was not rejected');
      return { sessionId, experiments: ['short'] };
    },
  },
  {
    name: 'continue-as-new',
    about: 'twelve tiny experiments, two at a time, with continueAsNewAfterEvents 40: the session drains and continues as new, carrying its rows',
    async run({ h, w }) {
      const sessionId = 'continue-as-new';
      const ids = Array.from({ length: 12 }, (_, i) => `e${String(i + 1).padStart(2, '0')}`);
      const handle = await w.client.startSession({
        sessionId,
        // Two at a time, so experiments are still queued when history passes the threshold (a
        // session that has started them all just finishes).
        policy: { maxConcurrent: 2 },
        continueAsNewAfterEvents: 40,
        experiments: ids.map((id) => ({ id, trainer: 'mlp', params: { epochs: 1, samples: 64 } })),
      });
      const summary = await handle.result();
      if (summary.runs < 1) {
        const events = (await exportHistory(h.env.client, sessionId)).events.length;
        throw new Error(`continue-as-new: the session never continued as new (${events} events in its only run)`);
      }
      return { sessionId, experiments: [ids[0], ids[ids.length - 1]] };
    },
  },
  {
    name: 'bounded-carry',
    about: 'a hundred tiny experiments, eight at a time, with continueAsNewAfterEvents 300 (patch session-bounded-carry): more than KEPT_ROWS rows have ended at continue-as-new, so they fold into counts and an id filter, queued rows travel as specs',
    async run({ h, w }) {
      const sessionId = 'bounded-carry';
      const ids = Array.from({ length: 100 }, (_, i) => `b${String(i + 1).padStart(3, '0')}`);
      const handle = await w.client.startSession({
        sessionId,
        policy: { maxConcurrent: 8 },
        continueAsNewAfterEvents: 300,
        experiments: ids.map((id) => ({ id, trainer: 'mlp', params: { epochs: 1, samples: 64 } })),
      });
      const summary = await handle.result();
      if (summary.runs < 1 || summary.total !== ids.length || summary.completed !== ids.length) {
        const events = (await exportHistory(h.env.client, sessionId)).events.length;
        throw new Error(`bounded-carry: expected a continue-as-new and ${ids.length} completed, got ${summary.runs} runs, ${summary.completed} completed (${events} events in the last run)`);
      }
      return { sessionId, experiments: [ids[0], ids[ids.length - 1]] };
    },
  },
  {
    name: 'sweep-feed',
    about: 'a 150-point sweep by reference (SessionInput.sweeps) next to one experiment, eight at a time, with continueAsNewAfterEvents 120: the session makes rows a window (100) at a time and carries the cursor of the points left (SessionCarry.feed) across continue-as-new',
    async run({ h, w }) {
      const sessionId = 'sweep-feed';
      const handle = await w.client.startSession({
        sessionId,
        policy: { maxConcurrent: 8 },
        continueAsNewAfterEvents: 120,
        experiments: [{ id: 'solo', trainer: 'mlp', params: tiny }],
        sweeps: [{ idPrefix: 'sw', trainer: 'mlp', params: tiny, grid: { lr: [0.1, 0.05], seed: Array.from({ length: 75 }, (_, i) => i) } }],
      });
      const summary = await handle.result();
      if (summary.runs < 1 || summary.total !== 151 || summary.completed !== 151) {
        throw new Error(`sweep-feed: expected a continue-as-new and 151 completed, got ${summary.runs} runs, ${summary.completed} completed of ${summary.total}`);
      }
      let cursors = 0;
      for await (const wf of h.env.client.workflow.list({ query: `WorkflowId = '${sessionId}'` })) {
        const first = (await h.env.client.workflow.getHandle(sessionId, wf.runId).fetchHistory()).events?.[0];
        const data = first?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
        if (data && (JSON.parse(Buffer.from(data).toString('utf8')) as { carry?: { feed?: unknown } }).carry?.feed) cursors++;
      }
      if (cursors === 0) throw new Error('sweep-feed: no continue-as-new carried a feed cursor; lower continueAsNewAfterEvents');
      return { sessionId, experiments: ['solo', 'sw-lr0.05-seed74'] };
    },
  },
  {
    name: 'lean-start',
    about: 'patch experiment-lean-start: one patch marker for three and one start memo upsert; a pre-approved session with a bounded experiment, one in no-timeout mode and one cancelled after its first checkpoint',
    async run({ w }) {
      const sessionId = 'lean-start';
      const handle = await w.client.startSession({
        sessionId,
        preApproved: { by: 'ops', note: 'lean' },
        experiments: [
          { id: 'bounded', trainer: 'mlp', params: tiny },
          { id: 'none', trainer: 'mlp', params: tiny, longRunning: true },
          { id: 'cancelled', trainer: 'mlp', params: slow },
        ],
      });
      await waitFor(async () => (await newestCheckpointEpoch(w.client.store, storeKey(sessionId, 'cancelled'))) >= 1, { what: 'the first epoch checkpoint' });
      await w.client.cancel(`${sessionId}:cancelled`, 'wrong learning rate');
      const summary = await handle.result();
      if (rowOf(summary, 'cancelled')?.state !== 'interrupted' || summary.completed !== 2) {
        throw new Error(`lean-start: expected 2 completed and one interrupted, got ${summary.completed} completed, cancelled ${rowOf(summary, 'cancelled')?.state}`);
      }
      return { sessionId, experiments: ['bounded', 'none', 'cancelled'] };
    },
  },
  {
    name: 'add-sweeps',
    about: 'a sweep added to a running session by reference (the addSweeps update) next to an explicit experiment, fed a window at a time after the session had started',
    async run({ w }) {
      const sessionId = 'add-sweeps';
      const handle = await w.client.startSession({ sessionId, keepOpen: true, policy: { maxConcurrent: 4 }, experiments: [{ id: 'first', trainer: 'mlp', params: tiny }] });
      const added = await w.client.addExperiments(sessionId, [{ id: 'extra', trainer: 'mlp', params: tiny }], {
        sweeps: [{ idPrefix: 'late', trainer: 'mlp', params: tiny, grid: { seed: Array.from({ length: 12 }, (_, i) => i) } }],
      });
      if (added.length !== 13) throw new Error(`add-sweeps: expected 13 ids added, got ${added.length}`);
      await waitFor(async () => (await handle.query(sessionStatusQuery)).experiments.filter((e) => e.state === 'completed').length === 14, { what: 'all 14 to complete' });
      await handle.signal('close');
      await handle.result();
      return { sessionId, experiments: ['extra', 'late-seed11'] };
    },
  },
  {
    name: 'preemption-storm',
    about: 'three SIGTERMs with retry.maximumAttempts 2, one worker at a time: each preemption starts a new training invocation, the experiment completes',
    async run({ processWorkers }) {
      const sessionId = 'preemption-storm';
      const { client, spawn } = processWorkers(sessionId);
      let current = spawn('0');
      await current.ready;
      const handle = await client.startSession({
        sessionId,
        policy: { heartbeatTimeout: '60s', retry: { maximumAttempts: 2, initialInterval: '200ms' } },
        experiments: [{ id: 'e', trainer: 'mlp', params: slower }],
      });
      for (let n = 1; n <= 3; n++) {
        const worker = current;
        await waitFor(() => fs.readFileSync(worker.logFile, 'utf8').includes(n === 1 ? 'starting training' : 'resuming training'), { what: `worker ${n - 1} to train` });
        worker.child.kill('SIGTERM');
        await worker.exited;
        current = spawn(String(n));
        await current.ready;
      }
      const summary = await handle.result();
      if (summary.experiments[0].preemptions !== 3) throw new Error(`preemption-storm: expected 3 preemptions, got ${summary.experiments[0].preemptions}`);
      current.child.kill('SIGTERM');
      await current.exited;
      return { sessionId, experiments: ['e'] };
    },
  },
  {
    name: 'user-metadata',
    about: 'a two-experiment sweep with UI summaries (patch experiment-user-metadata); one SIGTERM preemption, so the next invocation has its own activity summary',
    async run({ processWorkers }) {
      const sessionId = 'user-metadata';
      const { client, spawn } = processWorkers(sessionId);
      const first = spawn('0');
      await first.ready;
      const handle = await client.startSession({
        sessionId,
        policy: { heartbeatTimeout: '60s', retry: { initialInterval: '200ms' } },
        experiments: [
          { id: 'lr-0.05', trainer: 'mlp', params: { ...slower, lr: 0.05, hidden: 16 } },
          { id: 'lr-0.2', trainer: 'mlp', params: { ...tiny, lr: 0.2, hidden: 16 } },
        ],
      });
      await waitFor(() => fs.readFileSync(first.logFile, 'utf8').includes('starting training'), { what: 'worker 0 to train' });
      first.child.kill('SIGTERM');
      await first.exited;
      const second = spawn('1');
      const summary = await handle.result();
      if (summary.experiments[0].preemptions !== 1) throw new Error(`user-metadata: expected 1 preemption, got ${summary.experiments[0].preemptions}`);
      second.child.kill('SIGTERM');
      await second.exited;
      return { sessionId, experiments: ['lr-0.05', 'lr-0.2'] };
    },
  },
  {
    name: 'cancel-run-report',
    about: 'forged and payload-less signals are ignored; one experiment is cancelled and its run-tied report is applied once it settles, the other completes',
    async run({ h, w }) {
      const sessionId = 'cancel-run-report';
      const handle = await w.client.startSession({
        sessionId,
        experiments: [
          { id: 'cancelled', trainer: 'mlp', params: slow },
          { id: 'done', trainer: 'mlp', params: tiny },
        ],
      });
      await waitFor(async () => (await newestCheckpointEpoch(w.client.store, storeKey(sessionId, 'cancelled'))) >= 1, { what: 'the first epoch checkpoint' });
      const session = h.env.client.workflow.getHandle(sessionId);
      await session.signal('experimentFinished');
      await session.signal('approve', null);
      await session.signal('experimentFinished', { status: { id: 'cancelled', state: 'failed', reason: 'forged' }, runId: 'not-the-child' });
      await w.client.cancel(`${sessionId}:cancelled`, 'wrong learning rate');
      const summary = await handle.result();
      if (rowOf(summary, 'cancelled')?.reason !== 'wrong learning rate') throw new Error(`cancel-run-report: the run's own report was not applied (${rowOf(summary, 'cancelled')?.reason})`);
      return { sessionId, experiments: ['cancelled', 'done'] };
    },
  },
  {
    name: 'bounded-total',
    about: 'a bounded experiment with a schedule-to-close total of defaultTimeout ends timed-out; a short one completes within it',
    async run({ w }) {
      const sessionId = 'bounded-total';
      const handle = await w.client.startSession({
        sessionId,
        policy: { defaultTimeout: '2s', heartbeatTimeout: '10s' },
        experiments: [
          { id: 'bounded', trainer: 'mlp', params: { ...slow, epochs: 8 } },
          { id: 'short', trainer: 'mlp', params: tiny },
        ],
      });
      const summary = await handle.result();
      if (rowOf(summary, 'bounded')?.state !== 'timed-out') throw new Error(`bounded-total: expected timed-out, got ${rowOf(summary, 'bounded')?.state}`);
      return { sessionId, experiments: ['bounded', 'short'] };
    },
  },
  {
    name: 'raw-start-invalid',
    about: 'a session and an experiment started by type with malformed input (no maxConcurrent; no spec) fail at once, non-retryably',
    async run({ h, w }) {
      const sessionId = 'raw-start-invalid';
      const { maxConcurrent: _omitted, ...policy } = resolvePolicy({});
      const session = await h.env.client.workflow.start('sessionWorkflow', { workflowId: sessionId, taskQueue: w.client.taskQueue, args: [{ sessionId, policy, experiments: [] }] });
      const experiment = await h.env.client.workflow.start('experimentWorkflow', {
        workflowId: `${sessionId}:e`,
        taskQueue: w.client.taskQueue,
        args: [{ sessionId, policy: resolvePolicy({}), timeoutMode: 'bounded' }],
      });
      for (const handle of [session, experiment]) {
        const failed = await handle.result().then(() => false, (err: unknown) => err instanceof WorkflowFailedError);
        if (!failed) throw new Error(`raw-start-invalid: ${handle.workflowId} did not fail`);
      }
      return { sessionId, experiments: ['e'] };
    },
  },
  {
    name: 'search-asha',
    about: 'an ASHA search (η 2, grace 1, 4 epochs): trials train in segments between rungs, some are pruned with their checkpoint, the best is named',
    async run({ w }) {
      const sessionId = 'search-asha';
      const trial = (id: string, lr: number) => ({ id, trainer: 'mlp', params: { epochs: 4, samples: 128, lr, seed: 1 } });
      const handle = await w.client.startSession({
        sessionId,
        policy: { maxConcurrent: 2, search: { metric: 'loss', mode: 'min', scheduler: { type: 'asha', reductionFactor: 2, gracePeriod: 1, maxEpochs: 4 } } },
        experiments: [trial('lr0.03', 0.03), trial('lr0.0001', 0.0001), trial('lr0.01', 0.01), trial('lr0.00003', 0.00003)],
      });
      const summary = await handle.result();
      const pruned = summary.experiments.filter((e) => e.state === 'pruned').length;
      if (pruned === 0 || summary.state !== 'completed') throw new Error(`search-asha: expected a completed session with pruned trials, got ${summary.state} with ${pruned} pruned`);
      return { sessionId, experiments: summary.experiments.map((e) => e.id) };
    },
  },
  {
    name: 'pause-session',
    about: 'a session paused by signal while one experiment trains (it checkpoints and waits, the queued one does not start), then unpaused by update: both complete',
    async run({ h, w }) {
      const sessionId = 'pause-session';
      const handle = await w.client.startSession({
        sessionId,
        policy: { maxConcurrent: 1 },
        experiments: [
          { id: 'running', trainer: 'mlp', params: slow },
          { id: 'queued', trainer: 'mlp', params: tiny },
        ],
      });
      await waitFor(async () => (await newestCheckpointEpoch(w.client.store, storeKey(sessionId, 'running'))) >= 1, { what: 'the first epoch checkpoint' });
      await handle.signal('pause');
      const child = h.env.client.workflow.getHandle(`${sessionId}:running`);
      await waitFor(async () => ((await child.describe()).raw.pendingActivities?.length ?? 0) === 0, { what: 'the running experiment to stop its training invocation' });
      await pause(1000);
      if (rowOf(await handle.query(sessionStatusQuery), 'queued')?.state !== 'queued') throw new Error('pause-session: the queued experiment started while paused');
      await w.client.unpause(sessionId);
      const summary = await handle.result();
      if (!summary.experiments.every((e) => e.state === 'completed')) throw new Error(`pause-session: expected both completed, got ${summary.experiments.map((e) => e.state).join(', ')}`);
      return { sessionId, experiments: ['running', 'queued'] };
    },
  },
  {
    name: 'hardware-routing',
    about: 'a 1-GPU experiment placed on a worker with a (given) 1-GPU profile and trained on its shape queue; an 8-GPU one awaiting-resources, then rejected',
    async run({ h }) {
      const sessionId = 'hardware-routing';
      const taskQueue = uniqueQueue(sessionId);
      const gpu = { index: 0, model: 'Recorded GPU', memoryGiB: 16 };
      const hw = await startWorker(h, { taskQueue, hardware: { overrides: { className: 'rec-gpu1', gpus: [gpu] }, beatIntervalMs: 1000 } });
      try {
        await waitFor(async () => (await readRegistry(h.env.client, taskQueue)).workers.length > 0, { what: 'the worker in the registry' });
        const handle = await hw.client.startSession({
          sessionId,
          policy: { resourceTimeout: '3s' },
          experiments: [
            { id: 'placed', trainer: 'mlp', params: tiny, resources: { gpus: 1 } },
            { id: 'big', trainer: 'mlp', params: tiny, resources: { gpus: 8 } },
          ],
        });
        const summary = await handle.result();
        if (rowOf(summary, 'placed')?.state !== 'completed') throw new Error(`hardware-routing: placed ${rowOf(summary, 'placed')?.state}`);
        if (rowOf(summary, 'big')?.state !== 'rejected') throw new Error(`hardware-routing: big ${rowOf(summary, 'big')?.state}`);
      } finally {
        await hw.stop();
      }
      return { sessionId, experiments: ['placed', 'big'] };
    },
  },
  {
    name: 'auto-estimate',
    about: 'estimatedDuration auto: one over the threshold profiles, waits, is approved and restarts long-running from the profiling checkpoint; one under it goes on bounded',
    async run({ w }) {
      const sessionId = 'auto-estimate';
      const handle = await w.client.startSession({
        sessionId,
        policy: { longRunningThreshold: '1s', profile: { steps: 10 } },
        experiments: [{ id: 'long', trainer: 'mlp', params: { ...slow, epochs: 4 }, estimatedDuration: 'auto' }],
        keepOpen: true,
      });
      await waitFor(async () => rowOf(await handle.query(sessionStatusQuery), 'long')?.state === 'awaiting-approval', { what: 'long awaiting approval' });
      await w.client.approve(sessionId, { by: 'recorder' });
      await w.client.addExperiments(sessionId, [{ id: 'short', trainer: 'mlp', params: { epochs: 3, samples: 256, batchSize: 32, stepDelayMs: 5, seed: 11 }, estimatedDuration: 'auto' }]);
      await waitFor(async () => (await handle.query(sessionStatusQuery)).experiments.every((e) => e.state === 'completed'), { timeoutMs: 120_000, what: 'both completed' });
      await handle.signal('close');
      await handle.result();
      return { sessionId, experiments: ['long', 'short'] };
    },
  },
  {
    name: 'auto-estimate-rejected',
    about: 'estimatedDuration auto over the threshold: the profiling run ends awaiting-approval with the estimate, and the session rejects it',
    async run({ w }) {
      const sessionId = 'auto-estimate-rejected';
      const handle = await w.client.startSession({
        sessionId,
        policy: { longRunningThreshold: '1s', profile: { steps: 10 } },
        experiments: [{ id: 'long', trainer: 'mlp', params: { ...slow, epochs: 4 }, estimatedDuration: 'auto' }],
      });
      await waitFor(async () => rowOf(await handle.query(sessionStatusQuery), 'long')?.state === 'awaiting-approval', { what: 'long awaiting approval' });
      await w.client.reject(sessionId, { by: 'recorder', reason: 'too long' });
      const summary = await handle.result().catch(() => w.client.sessionSnapshot(sessionId));
      if (rowOf(summary, 'long')?.state !== 'rejected') throw new Error(`auto-estimate-rejected: long ${rowOf(summary, 'long')?.state}`);
      return { sessionId, experiments: ['long'] };
    },
  },
];

const CLOSED_EVENT = /^workflowExecution(Completed|Failed|Canceled|TimedOut|Terminated|ContinuedAsNew)EventAttributes$/;

function closeEventAttributes(history: HistoryJson): [string, Record<string, unknown>] | undefined {
  const last = history.events[history.events.length - 1] as Record<string, unknown>;
  const key = Object.keys(last).find((k) => CLOSED_EVENT.test(k));
  return key ? [key, last[key] as Record<string, unknown>] : undefined;
}

type StartedAttributes = { workflowType?: { name?: string }; firstExecutionRunId?: string; originalExecutionRunId?: string };

function startedAttributes(history: HistoryJson): StartedAttributes {
  const started = (history.events[0] as { workflowExecutionStartedEventAttributes?: StartedAttributes }).workflowExecutionStartedEventAttributes;
  if (!started) throw new Error('a history without a WorkflowExecutionStarted event');
  return started;
}

/**
 * Every run of a closed workflow, first to last: the newest run names the first, and each
 * run's continue-as-new event names the next.
 */
async function exportRuns(client: Client, workflowId: string): Promise<HistoryJson[]> {
  const newest = await exportHistory(client, workflowId);
  const { firstExecutionRunId, originalExecutionRunId } = startedAttributes(newest);
  let history = !firstExecutionRunId || firstExecutionRunId === originalExecutionRunId ? newest : await exportHistory(client, workflowId, { runId: firstExecutionRunId });
  const runs: HistoryJson[] = [];
  for (;;) {
    const closed = closeEventAttributes(history);
    if (!closed) throw new Error(`${workflowId} is still open; fixtures are recorded from closed workflows`);
    runs.push(history);
    if (closed[0] !== 'workflowExecutionContinuedAsNewEventAttributes') return runs;
    history = await exportHistory(client, workflowId, { runId: String(closed[1].newExecutionRunId) });
  }
}

function workflowTypeOf(history: HistoryJson): string {
  const name = startedAttributes(history).workflowType?.name;
  if (!name) throw new Error('a history whose start event names no workflow type');
  return name;
}

async function record(client: Client, scenario: Scenario, rec: Recording): Promise<Map<string, HistoryJson>> {
  const files = new Map<string, HistoryJson>();
  const sessionRuns = await exportRuns(client, rec.sessionId);
  sessionRuns.forEach((history, i) => {
    const run = sessionRuns.length > 1 ? `.run${i + 1}` : '';
    files.set(`${workflowTypeOf(history)}.${scenario.name}${run}.json`, history);
  });
  for (const experimentId of rec.experiments) {
    const [history] = await exportRuns(client, `${rec.sessionId}:${experimentId}`);
    files.set(`${workflowTypeOf(history)}.${scenario.name}.${experimentId}.json`, history);
  }
  return files;
}

/** Fixtures of a scenario already on disk: `<type>.<scenario>.json` and `<type>.<scenario>.<suffix>.json`. */
function existingFixtures(dir: string, scenario: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const escaped = scenario.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^[A-Za-z]+\\.${escaped}(\\.[^/]+)?\\.json$`);
  return fs.readdirSync(dir).filter((f) => pattern.test(f)).sort();
}

const REFUSAL =
  'Fixtures record what the workflow code did when they were recorded; replaying them is how a change is shown to be ' +
  'compatible with running sessions. Re-recording one to make a change pass hides exactly the break the test exists ' +
  'to catch. Guard the change with patched() and record a NEW scenario beside the old ones (CONTRIBUTING.md). Use ' +
  '--force only to replace a fixture that was itself recorded wrongly, and say so in review.';

const USAGE = `Usage: npm run record-histories -- [--only NAME[,NAME...]] [--force] [--out DIR] [--list]

Without --only, records every scenario that has no fixtures yet and skips the rest.
Scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string', multiple: true },
      force: { type: 'boolean', default: false },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const outDir = path.resolve(values.out ?? OUT_DIR);
  if (values.list) {
    for (const s of SCENARIOS) console.log(`${s.name.padEnd(18)} ${existingFixtures(outDir, s.name).length ? 'recorded' : 'NEW     '}  ${s.about}`);
    return 0;
  }
  const only = values.only?.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const selected = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const todo: Scenario[] = [];
  let refused = false;
  for (const s of selected) {
    const existing = existingFixtures(outDir, s.name);
    if (existing.length === 0 || values.force) {
      todo.push(s);
      continue;
    }
    if (only) {
      console.error(`refusing to overwrite the fixtures of "${s.name}" (${existing.join(', ')}) without --force.`);
      refused = true;
    } else {
      console.log(`skip ${s.name}: already recorded (${existing.length} files)`);
    }
  }
  if (refused) {
    console.error(REFUSAL);
    return 1;
  }
  if (todo.length === 0) {
    console.log('nothing to record: every scenario has fixtures. To add one, add a scenario to scripts/record-histories.ts and run this again.');
    return 0;
  }

  fs.mkdirSync(outDir, { recursive: true });
  const h = await startHarness();
  const children: ChildWorker[] = [];
  let w: RunningWorker | undefined;
  try {
    w = await startWorker(h, { taskQueue: uniqueQueue('record') });
    const ctx: Context = {
      h,
      w,
      processWorkers(name) {
        const taskQueue = uniqueQueue(name);
        const checkpointDir = path.join(h.tmp, `ck-${name}`);
        const store = new LocalCheckpointStore(checkpointDir);
        const client = new ExperimentsClient({ client: h.env.client, taskQueue, store });
        return {
          client,
          store,
          spawn(label) {
            const child = spawnWorker(h, { taskQueue, checkpointDir, name: `${name}-${label}` });
            children.push(child);
            return child;
          },
        };
      },
    };
    for (const scenario of todo) {
      const started = Date.now();
      console.log(`recording ${scenario.name}: ${scenario.about}`);
      const files = await record(h.env.client, scenario, await scenario.run(ctx));
      // Written only once the whole scenario succeeded, so a failed run leaves no partial set.
      for (const stale of values.force ? existingFixtures(outDir, scenario.name) : []) {
        if (!files.has(stale)) {
          fs.rmSync(path.join(outDir, stale));
          console.log(`  removed ${path.relative(ROOT, path.join(outDir, stale))} (--force)`);
        }
      }
      for (const [name, history] of files) {
        const file = path.join(outDir, name);
        const replaced = fs.existsSync(file);
        await writeHistory(file, history);
        console.log(`  wrote ${path.relative(ROOT, file)} (${history.events.length} events, ${fs.statSync(file).size} bytes)${replaced ? ' [overwritten: --force]' : ''}`);
      }
      console.log(`  ${scenario.name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    return 0;
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await w?.stop();
    await h.teardown();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
