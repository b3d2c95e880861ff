/**
 * `experiments run FILE`: the main job. Validate the whole file first (nothing starts when it is
 * invalid), then start the session on TEMPORAL_ADDRESS or on an embedded server and worker,
 * show progress until the session ends, print the results table, and exit 0 only if every
 * experiment completed.
 *
 * Ctrl-C means different things in the two modes. Embedded, the server dies with this process,
 * so Ctrl-C cancels the session: every running experiment checkpoints and ends `interrupted`,
 * and a rerun resumes from those checkpoints. With TEMPORAL_ADDRESS the session lives on the
 * server, so Ctrl-C only stops watching and says how to look again or cancel.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { ExperimentsClient } from '../client';
import { configFromEnv, ENV_VARS, type RuntimeConfig } from '../config';
import { loadPipeline, type Pipeline } from '../pipeline';
import type { SessionSummary } from '../shared/definitions';
import { storeKey } from '../shared/ids';
import { isLongRunning, resolvePolicy } from '../shared/policy';
import { approveInputSchema, parseOrThrow } from '../shared/schema';
import type { ApproveInput, ExperimentSpec } from '../shared/types';
import { stringOption, type ParsedArgs } from './args';
import { configuredUiBase, connect, offlineValidator, workflowUrl } from './connect';
import { startEmbedded, StartAborted, type Embedded } from './embedded';
import { EXIT, ExitCode, UsageError } from './errors';
import { checkpointDirs, displayPath, experimentsTable, fmtElapsed, reasonsBlock, styles } from './output';
import { safe } from './terminal';
import { awaitingApproval, BarsView, LogView, readLive, type LiveSnapshot, type ProgressView } from './progress';

const POLL_MS = 500;
/** A poll that takes longer than this is skipped (a query waits for a worker to answer it). */
const POLL_TIMEOUT_MS = 10_000;

export function currentUser(): string {
  try {
    return os.userInfo().username || process.env.USER || 'unknown';
  } catch {
    return process.env.USER || process.env.USERNAME || 'unknown';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts Ctrl-C / SIGTERM and calls the current handler; the first one and later ones differ. */
class Interrupts {
  count = 0;
  /** How the last interruption arrived, for messages. */
  how = 'Ctrl-C';
  private handler: (count: number) => void = () => undefined;
  private readonly onSigint = () => this.fire('Ctrl-C');
  private readonly onSigterm = () => this.fire('SIGTERM');

  constructor() {
    process.on('SIGINT', this.onSigint);
    process.on('SIGTERM', this.onSigterm);
  }

  fire(how: string): void {
    this.how = how;
    this.count++;
    this.handler(this.count);
  }

  on(handler: (count: number) => void): void {
    this.handler = handler;
  }

  dispose(): void {
    process.off('SIGINT', this.onSigint);
    process.off('SIGTERM', this.onSigterm);
  }
}

interface Target {
  readonly experiments: ExperimentsClient;
  readonly address: string;
  readonly namespace: string;
  readonly uiBase: string | undefined;
  readonly embedded: Embedded | undefined;
  close(): Promise<void>;
}

export async function runCommand(parsed: ParsedArgs): Promise<number> {
  const [file] = parsed.positionals;
  const approveAs = stringOption(parsed, 'approve-as');
  const detach = parsed.options.detach === true;
  const resume = parsed.options.resume === true;
  const uiUrl = configuredUiBase(stringOption(parsed, 'ui-url'));
  const config = configFromEnv();
  const embeddedMode = config.address === undefined;
  if (detach && embeddedMode) {
    throw new UsageError(`--detach needs a server that outlives this command: set ${ENV_VARS.address} (start a server with \`experiments server\`), or run without --detach`);
  }
  const pipeline = loadPipeline(file, offlineValidator(config));
  const sessionId = pipeline.session as string;
  const preApproved: ApproveInput | undefined = approveAs
    ? parseOrThrow(approveInputSchema, { by: approveAs, note: 'approved with --approve-as at start' }, '--approve-as')
    : pipeline.preApproved;

  const out = process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const interrupts = new Interrupts();
  let target: Target | undefined;
  try {
    interrupts.on((n) => {
      // Before the session exists there is nothing to cancel; stop starting.
      if (n === 1) say('Interrupted: stopping…');
      else process.exit(EXIT.interrupted);
    });
    target = embeddedMode ? await embeddedTarget(config, say, () => interrupts.count > 0) : await remoteTarget(config, uiUrl);
    if (interrupts.count > 0) throw new ExitCode(EXIT.interrupted);
    await ensureNotRunning(target, sessionId);
    // Earlier checkpoints are looked up by a worker, so only when one is polling.
    const workers = target.embedded || (await warnIfNoWorkers(target, config, say));
    const experiments = workers ? await withEarlierCheckpoints(target.experiments, pipeline, config, resume, say) : pipeline.experiments;
    if (!workers && resume) say('Note: --resume needs a worker to look up earlier checkpoints; this run starts from scratch.');

    const started = Date.now();
    // Unchanged by --resume, the sweeps go as definitions (a session holds them by reference).
    const specs = experiments === pipeline.experiments ? { experiments: pipeline.explicit, sweeps: pipeline.sweeps } : { experiments };
    await target.experiments.startSession({ sessionId, policy: pipeline.policy, ...specs, preApproved });
    const url = workflowUrl(uiUrl ?? target.uiBase, target.namespace, sessionId);
    const policy = resolvePolicy(pipeline.policy);
    const longRunning = pipeline.experiments.filter((e) => isLongRunning(e, policy)).length;
    say(
      `Session ${sessionId} started: ${pipeline.experiments.length} experiment(s)${longRunning ? `, ${longRunning} long-running (needs approval)` : ''}` +
        `${preApproved ? `, pre-approved by ${preApproved.by}` : ''} — server ${target.address}, task queue ${config.taskQueue}`,
    );
    if (url) say(`Watch or cancel it in the Temporal UI: ${url}`);
    if (detach) {
      say(`Detached. Follow it with: experiments status ${sessionId}`);
      return EXIT.ok;
    }
    if (target.embedded) say(`Logs: ${displayPath(target.embedded.logFile)}  ·  Ctrl-C cancels the session (running experiments checkpoint first)`);

    const summary = await watch(target, sessionId, pipeline.experiments.map((e) => e.id), interrupts, say);
    printResults(summary, Date.now() - started, say);
    if (interrupts.count > 0) return EXIT.interrupted;
    // A trial the search pruned ended as the session meant it to.
    // The counts cover every experiment (the rows of a large session's summary are bounded).
    const allCompleted = summary.counts
      ? (summary.total ?? 0) > 0 && summary.completed + (summary.pruned ?? 0) === summary.total
      : summary.experiments.length > 0 && summary.experiments.every((e) => e.state === 'completed' || e.state === 'pruned');
    return allCompleted ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (err instanceof StartAborted) return EXIT.interrupted;
    throw err;
  } finally {
    interrupts.on((n) => {
      if (n > 1) process.exit(EXIT.interrupted);
    });
    if (target?.embedded) say('Stopping the local Temporal server and worker…');
    await target?.close();
    interrupts.dispose();
  }
}

async function embeddedTarget(config: RuntimeConfig, say: (line: string) => void, aborted: () => boolean): Promise<Target> {
  const embedded = await startEmbedded({ config, say, aborted });
  return {
    experiments: embedded.experiments,
    address: embedded.address,
    namespace: embedded.namespace,
    uiBase: embedded.uiBase,
    embedded,
    close: () => embedded.close(),
  };
}

async function remoteTarget(config: RuntimeConfig, uiBase: string | undefined): Promise<Target> {
  const c = await connect({ config });
  return { experiments: c.experiments, address: c.address, namespace: c.namespace, uiBase, embedded: undefined, close: () => c.close() };
}

/**
 * A running session with this id is someone's live work: refuse rather than touch it. Resolves
 * true when a closed session of this id exists (Temporal allows starting it again).
 */
async function ensureNotRunning(target: Target, sessionId: string): Promise<boolean> {
  try {
    const desc = await target.experiments.client.workflow.getHandle(sessionId).describe();
    if (desc.status.name === 'RUNNING') {
      throw new UsageError(
        `session ${JSON.stringify(sessionId)} is already running on ${target.address}; watch it with \`experiments status ${sessionId}\`, or give the file another "session" id`,
      );
    }
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/**
 * A run of a session id starts from scratch, even when an earlier run of the same id left
 * checkpoints (its params may have changed). With --resume, experiments that have verified
 * checkpoints from an earlier run continue from the newest one (`resumeFrom`); without it, say
 * that they exist and how to continue them.
 */
/** How long `run` waits for a worker to say whether earlier checkpoints exist. */
const EARLIER_CHECKPOINTS_TIMEOUT_MS = 20_000;

async function withEarlierCheckpoints(
  client: ExperimentsClient,
  pipeline: Pipeline,
  config: RuntimeConfig,
  resume: boolean,
  say: (line: string) => void,
): Promise<ExperimentSpec[]> {
  const sessionId = pipeline.session as string;
  const earlier = new Set<string>();
  try {
    // Asked of a worker through Temporal: this machine may have neither the store nor its credentials.
    const counts = await client.checkpointCounts(sessionId, pipeline.experiments.map((spec) => spec.id), { timeoutMs: EARLIER_CHECKPOINTS_TIMEOUT_MS });
    for (const [id, n] of counts) if (n > 0) earlier.add(id);
  } catch {
    // No worker answered in time, or a manifest is unreadable: the training activity reports it.
  }
  if (earlier.size === 0) return pipeline.experiments;
  const dir = config.checkpointUrl ?? displayPath(path.join(config.checkpointDir, sessionId));
  if (!resume) {
    say(`Note: ${earlier.size} experiment(s) of session ${sessionId} have checkpoints from an earlier run in ${dir}; this run starts from scratch (add --resume to continue from them).`);
    return pipeline.experiments;
  }
  say(`Resuming ${earlier.size} experiment(s) from their newest checkpoints of an earlier run in ${dir}.`);
  return pipeline.experiments.map((spec) =>
    earlier.has(spec.id) && !spec.resumeFrom ? { ...spec, resumeFrom: { experiment: storeKey(sessionId, spec.id) } } : spec,
  );
}

/** With a remote server, a session without workers just sits there; say so up front. */
async function warnIfNoWorkers(target: Target, config: RuntimeConfig, say: (line: string) => void): Promise<boolean> {
  try {
    const res = await target.experiments.client.workflowService.describeTaskQueue({
      namespace: target.namespace,
      taskQueue: { name: config.taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    if ((res.pollers ?? []).length === 0) {
      say(`Warning: no worker is polling task queue ${JSON.stringify(config.taskQueue)} on ${target.address}; start one with \`experiments worker\` (the session waits until then).`);
      return false;
    }
  } catch {
    // Only advice; the run does not depend on it.
  }
  return true;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}

/** Polls and shows progress until the session ends; handles approval prompts and Ctrl-C. */
async function watch(target: Target, sessionId: string, ids: readonly string[], interrupts: Interrupts, say: (line: string) => void): Promise<SessionSummary> {
  const { experiments } = target;
  const tty = process.stdout.isTTY === true;
  const view: ProgressView = tty ? new BarsView(process.stdout, ids, () => interrupts.fire('Ctrl-C')) : new LogView(process.stdout);
  let ended = false;
  let summary: SessionSummary | undefined;
  let failure: unknown;
  const done = experiments.waitForSession(sessionId).then(
    (s) => {
      summary = s;
      ended = true;
    },
    (err: unknown) => {
      failure = err;
      ended = true;
    },
  );
  let stopWatching: ((code: number) => void) | undefined;
  const detached = new Promise<number>((resolve) => (stopWatching = resolve));

  const onInterrupt = (n: number) => {
    if (!target.embedded) {
      view.stop();
      say(`\nStopped watching. Session ${sessionId} keeps running on ${target.address}: \`experiments status ${sessionId}\` to look again, \`experiments cancel ${sessionId}\` to stop it.`);
      stopWatching?.(EXIT.interrupted);
      return;
    }
    if (n === 1) {
      view.note(`${interrupts.how}: cancelling session ${sessionId}; running experiments checkpoint and stop (Ctrl-C again stops the worker at once)`);
      experiments.cancel(sessionId, `interrupted with ${interrupts.how} from experiments run`).catch((err: unknown) => view.note(`cancel failed: ${(err as Error).message}`));
    } else if (n === 2) {
      view.note(`${interrupts.how} again: stopping the worker now (trainings checkpoint at their next step)`);
      target.embedded.stopWorker();
      stopWatching?.(EXIT.interrupted);
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  interrupts.on(onInterrupt);

  try {
    view.update(await withTimeout(readLive(experiments, sessionId), POLL_TIMEOUT_MS));
  } catch {
    // The first workflow task may not have run yet; the loop below keeps trying.
  }

  let asked = false;
  let toldHowToApprove = false;
  let failures = 0;
  const approveHint = () =>
    `${target.embedded ? `${ENV_VARS.address}=${target.address} ` : ''}experiments approve ${sessionId} --by NAME`;

  const loop = (async () => {
    while (!ended) {
      await Promise.race([sleep(POLL_MS), done]);
      if (ended) break;
      let snap: LiveSnapshot;
      try {
        snap = await withTimeout(readLive(experiments, sessionId), POLL_TIMEOUT_MS);
        failures = 0;
      } catch (err) {
        if (ended) break;
        if (++failures === 6) view.note(`(no status from the session for a while: ${(err as Error).message.split('\n')[0]}; still waiting)`);
        continue;
      }
      view.update(snap);
      const waiting = awaitingApproval(snap);
      if (waiting.length === 0) {
        if (asked) view.cancelAsk?.();
        continue;
      }
      const names = waiting.map((e) => e.id).join(', ');
      if (!asked && view.ask && process.stdin.isTTY) {
        asked = true;
        const me = currentUser();
        void view.ask(`${styles().yellow('Approval needed')} for long-running ${names}. Approve now as ${me}? [y/N or type a name]`).then(async (answer) => {
          if (answer === null) return;
          const a = answer.trim();
          if (a === '' || /^n(o)?$/i.test(a)) {
            view.note(`Not approved here. Approve later with: ${approveHint()}`);
            return;
          }
          const by = /^y(es)?$/i.test(a) ? me : a;
          try {
            // The view announces the approval once the session reports it.
            await experiments.approve(sessionId, { by, note: 'approved at the prompt of experiments run' });
          } catch (err) {
            view.note(`Approval failed: ${(err as Error).message}`);
          }
        });
      } else if (!asked && !toldHowToApprove) {
        toldHowToApprove = true;
        view.note(`Waiting for approval of long-running ${names}: run \`${approveHint()}\` in another shell`);
      }
    }
  })();

  const code = await Promise.race([loop.then(() => undefined), detached]);
  if (code !== undefined) {
    view.stop();
    throw new ExitCode(code);
  }
  await done;
  if (failure !== undefined || !summary) {
    view.stop();
    throw failure ?? new Error(`session ${sessionId} ended without a summary`);
  }
  // Show the final state of every bar before the table replaces it.
  const final = summary;
  view.update({ ...final, experiments: final.experiments.map((e) => ({ ...e, loss: e.result?.finalLoss ?? null })) });
  view.stop();
  return final;
}

function printResults(summary: SessionSummary, elapsedMs: number, say: (line: string) => void): void {
  const st = styles();
  const total = summary.total ?? summary.experiments.length;
  const completed = summary.counts ? (summary.counts.completed ?? 0) : summary.experiments.filter((e) => e.state === 'completed').length;
  say('');
  if (summary.truncated) say(`${summary.experiments.length} of ${total} experiments shown; all of them: experiments status ${summary.id} --page N`);
  say(experimentsTable(summary.experiments, undefined, summary.policy.search));
  const reasons = reasonsBlock(summary.experiments);
  if (reasons.length > 0) say(['', 'Not completed:', ...reasons].join('\n'));
  const dirs = checkpointDirs(summary.experiments);
  say('');
  if (dirs.length > 0) say(`Checkpoints: ${dirs.map(displayPath).join(', ')}`);
  if (summary.approval.required) {
    const a = summary.approval;
    say(`Approval: ${a.approved ? `by ${safe(a.by)} at ${safe(a.at)}${a.note ? ` (“${safe(a.note)}”)` : ''}` : 'not given'}`);
  }
  const pruned = summary.experiments.filter((e) => e.state === 'pruned').length;
  if (summary.best) say(`Best: ${summary.best.experimentId}  ${summary.best.metric} ${summary.best.value}  (experiments best ${summary.id})`);
  const line = `Session ${summary.id} ${summary.state}: ${completed}/${total} experiments completed${pruned > 0 ? `, ${pruned} pruned by the search` : ''} in ${fmtElapsed(elapsedMs)}`;
  say(completed + pruned === total && total > 0 ? st.green(line) : st.red(line));
}
