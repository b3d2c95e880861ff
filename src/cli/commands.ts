/**
 * The commands other than `run`. The client commands connect, make one ExperimentsClient call
 * and print the answer; they stay thin on purpose, since validation and behaviour live in the
 * client library, so the CLI and programmatic users get the same answers. `worker` and `server`
 * run a service in the foreground until SIGINT or SIGTERM.
 */
import * as path from 'node:path';
import { ProgramRegistry } from '../activities/trainers/command';
import { parseCheckpointUrl, s3ConnectionFromEnv } from '../activities/checkpoint-store/s3-config';
import { isPortFree, startDevServer } from '../dev-server';
import { configFromEnv, ENV_VARS } from '../config';
import { createLogger, installRuntimeLogger } from '../logging';
import { prometheusTelemetry } from '../metrics/exporter';
import { loadPipeline } from '../pipeline';
import { WORKFLOW_TYPES, type SessionSnapshot, type SessionSummary } from '../shared/definitions';
import { approveInputSchema, parseOrThrow } from '../shared/schema';
import type { ResumeHints } from '../shared/types';
import { runExperimentWorker } from '../worker';
import { hardwareOptions } from './commands/worker-hardware';
import { pageFooter, pageRequest, sessionPage } from './commands/status-page';
import { intOption, stringOption, type ParsedArgs } from './args';
import { connect, ensureReachable, offlineValidator, programsOf, configuredUiBase, workflowUrl, type Connected } from './connect';
import { fileLogger } from './embedded';
import { EXIT, UsageError } from './errors';
import { displayPath, experimentText, hintsText, sessionText } from './output';

export const say = (line: string) => process.stdout.write(`${line}\n`);

export async function withConnection<T>(fn: (c: Connected) => Promise<T>): Promise<T> {
  const c = await connect();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** Keys first that people look for first; the rest as the library returns them. */
function ordered<T extends object>(value: T, first: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of first) if (k in value) out[k] = (value as Record<string, unknown>)[k];
  for (const [k, v] of Object.entries(value)) if (!(k in out)) out[k] = v;
  return out as T;
}

const EXPERIMENT_KEYS = ['kind', 'id', 'sessionId', 'workflowId', 'state', 'timeoutMode', 'attempt', 'preemptions', 'epoch', 'epochs', 'latestCheckpoint', 'resumedFrom', 'result', 'reason'];

/** How long a status or hints call may wait for a worker to answer its queries. */
const QUERY_DEADLINE_MS = 15_000;

/**
 * Runs calls that query workflows with a deadline. Queries are answered by workers, so with none
 * polling the call would wait for the server's own timeout and end in "Failed to query
 * Workflow"; this says what is missing instead.
 */
export async function queried<T>(c: Connected, id: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await c.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, fn);
  } catch (err) {
    const text = `${(err as Error).message} ${String((err as { cause?: Error }).cause?.message ?? '')}`;
    if (!/Failed to query Workflow|deadline|DEADLINE_EXCEEDED/i.test(text)) throw err;
    let queue = c.experiments.taskQueue;
    try {
      queue = (await c.client.workflow.getHandle(id).describe()).taskQueue;
    } catch {
      // Keep the configured queue for the message.
    }
    throw new Error(
      `no worker answered the status query for ${JSON.stringify(id)} within ${QUERY_DEADLINE_MS / 1000}s; is a worker polling task queue ${JSON.stringify(queue)} on ${c.address}? Start one with \`experiments worker\``,
      { cause: err },
    );
  }
}

/**
 * A closed session's summary from its result, which needs no worker (a query on a closed
 * workflow does). Undefined when `id` is not a closed session that returned a result.
 */
export async function closedSessionSummary(c: Connected, id: string): Promise<SessionSnapshot | undefined> {
  try {
    const handle = c.client.workflow.getHandle(id);
    const desc = await handle.describe();
    if (desc.type !== WORKFLOW_TYPES.session || desc.status.name === 'RUNNING' || desc.status.name === 'CONTINUED_AS_NEW') return undefined;
    return (await handle.result()) as SessionSummary;
  } catch {
    return undefined;
  }
}

export async function statusCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  const uiBase = configuredUiBase(stringOption(parsed, 'ui-url'));
  const paging = pageRequest(parsed);
  return withConnection(async (c) => {
    const status = paging ? await sessionPage(c, id, paging) : ((await closedSessionSummary(c, id)) ?? (await queried(c, id, () => c.experiments.status(id))));
    if (parsed.options.json) {
      const json =
        status.kind === 'session'
          ? ordered({ ...status, experiments: status.experiments.map((e) => ordered({ ...e, kind: 'experiment' as const }, EXPERIMENT_KEYS)) }, ['kind', 'id', 'state', 'approval', 'experiments'])
          : ordered({ ...status, kind: 'experiment' as const }, EXPERIMENT_KEYS);
      say(JSON.stringify(json, null, 2));
      return EXIT.ok;
    }
    if (status.kind === 'session') {
      say(sessionText(status));
      const footer = pageFooter(status, paging);
      if (footer) say(`\n${footer}`);
      const url = workflowUrl(uiBase, c.namespace, status.id);
      if (url) say(`\nUI: ${url}`);
    } else {
      say(experimentText(status));
    }
    return EXIT.ok;
  });
}

export async function hintsCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  return withConnection(async (c) => {
    const hints = await queried(c, id, () => c.experiments.hints(id));
    const list: ResumeHints[] = Array.isArray(hints) ? hints : [hints];
    if (parsed.options.json) {
      const keys = ['id', 'latestCheckpoint', 'epochsRemaining', 'resumeCommand', 'resumeCall', 'warnings'];
      say(JSON.stringify(Array.isArray(hints) ? list.map((h) => ordered(h, keys)) : ordered(hints, keys), null, 2));
      return EXIT.ok;
    }
    say(list.map(hintsText).join('\n\n') || `session ${id} has no experiments`);
    return EXIT.ok;
  });
}

export async function cancelCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  const reason = stringOption(parsed, 'reason');
  return withConnection(async (c) => {
    await c.experiments.cancel(id, reason);
    say(`Cancellation requested for ${id}${reason ? ` (${reason})` : ''}; running experiments checkpoint and end interrupted.`);
    return EXIT.ok;
  });
}

export async function resumeCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  const session = stringOption(parsed, 'session');
  const approveAs = stringOption(parsed, 'approve-as');
  const preApproved = approveAs ? parseOrThrow(approveInputSchema, { by: approveAs, note: 'approved with --approve-as at resume' }, '--approve-as') : undefined;
  if (session && preApproved) throw new UsageError('--approve-as applies to a new session; with --session, approve that session with `experiments approve`');
  const uiBase = configuredUiBase(stringOption(parsed, 'ui-url'));
  return withConnection(async (c) => {
    const r = await c.experiments.resume(id, { session, preApproved });
    say(`Resumed ${id} as ${r.workflowId} (session ${r.sessionId}).`);
    say(`Follow it with: experiments status ${r.workflowId}`);
    const url = workflowUrl(uiBase, c.namespace, r.sessionId);
    if (url) say(`UI: ${url}`);
    return EXIT.ok;
  });
}

export async function submitCommand(parsed: ParsedArgs): Promise<number> {
  const [sessionId, file] = parsed.positionals;
  const config = configFromEnv();
  // Offline first: a bad file fails before any connection, with paths inside the file.
  loadPipeline(file, offlineValidator(config), { requireSession: false });
  return withConnection(async (c) => {
    const snap = (await closedSessionSummary(c, sessionId)) ?? (await queried(c, sessionId, () => c.experiments.sessionSnapshot(sessionId)));
    if (['completed', 'failed', 'cancelled'].includes(snap.state)) {
      throw new UsageError(`session ${JSON.stringify(sessionId)} has ended (${snap.state}); start a new session with \`experiments run\``);
    }
    const pipeline = loadPipeline(file, c.experiments, { requireSession: false, existingIds: snap.experiments.map((e) => e.id) });
    if (pipeline.session !== undefined && pipeline.session !== sessionId) {
      process.stderr.write(`note: ${file} names session ${JSON.stringify(pipeline.session)}; adding to ${JSON.stringify(sessionId)} as asked\n`);
    }
    if (pipeline.policy !== undefined) process.stderr.write(`note: the policy in ${file} is ignored; a running session keeps its own\n`);
    // Sweeps go as definitions where their id stems are their own (the client decides).
    const added = await c.experiments.addExperiments(sessionId, pipeline.explicit, { sweeps: pipeline.sweeps });
    say(`Added ${added.length} experiment(s) to session ${sessionId}:`);
    for (const id of added) say(`  ${id}`);
    return EXIT.ok;
  });
}

export async function workerCommand(parsed: ParsedArgs): Promise<number> {
  const config = configFromEnv();
  const taskQueue = stringOption(parsed, 'task-queue') ?? config.taskQueue;
  const checkpointDir = path.resolve(stringOption(parsed, 'checkpoint-dir') ?? config.checkpointDir);
  const checkpointUrl = stringOption(parsed, 'checkpoint-url') ?? (parsed.options['checkpoint-dir'] === undefined ? config.checkpointUrl : undefined);
  const checkpointCacheDir = path.resolve(stringOption(parsed, 'checkpoint-cache-dir') ?? config.checkpointCacheDir);
  // Checked before connecting, so a typo is one line and exit 2, not a failure at the first save.
  const where = checkpointStoreProblem(checkpointUrl);
  if (where) throw new UsageError(where);
  const maxConcurrentActivities = intOption(parsed, 'max-concurrent-activities', 1, 1000);
  const metricsPort = intOption(parsed, 'metrics-port', 1, 65535);
  if (metricsPort !== undefined && !(await isPortFree(metricsPort))) throw new UsageError(`--metrics-port: port ${metricsPort} is already in use; choose another`);
  // Read before connecting, so a bad programs file is exit 2 naming the field, with nothing started.
  const programs = programsOf(config, stringOption(parsed, 'programs') ?? config.programsFile) ?? new ProgramRegistry([]);
  const deploymentName = stringOption(parsed, 'deployment-name');
  const buildId = stringOption(parsed, 'build-id');
  const deployment = deploymentName !== undefined || buildId !== undefined ? { name: deploymentName, buildId } : undefined;
  const hardware = hardwareOptions(parsed);
  const address = config.address ?? 'localhost:7233';
  // Probe first, so a missing server is exit 3 naming the address rather than a native stack.
  await ensureReachable(address);
  // The worker is a service: its logs are its output (stdout, pretty on a terminal).
  const logger = createLogger();
  installRuntimeLogger(logger, metricsPort === undefined ? {} : { metrics: prometheusTelemetry({ port: metricsPort }) });
  const store = checkpointUrl ? { checkpointUrl, checkpointCacheDir } : { checkpointDir };
  logger.info({ address, namespace: config.namespace, taskQueue, ...store, programs: programs.names(), metricsPort }, 'connecting');
  if (programs.size === 0) logger.info('no programs registered: the command trainer runs nothing here (see --programs FILE)');
  await runExperimentWorker({ address, namespace: config.namespace, taskQueue, ...store, maxConcurrentActivities, logger, programs, deployment, hardware });
  return EXIT.ok;
}

export async function serverCommand(parsed: ParsedArgs): Promise<number> {
  const port = intOption(parsed, 'port', 1, 65535) ?? 7233;
  const uiPort = intOption(parsed, 'ui-port', 1, 65535) ?? (port + 1000 <= 65535 ? port + 1000 : undefined);
  if (uiPort === undefined) throw new UsageError(`--ui-port: needed when --port is above ${65535 - 1000}`);
  if (uiPort === port) throw new UsageError(`--ui-port: expected a port other than the gRPC port ${port}`);
  const dbFile = stringOption(parsed, 'db-file');
  for (const [p, flag] of [[port, '--port'], [uiPort, '--ui-port']] as const) {
    if (!(await isPortFree(p))) throw new UsageError(`port ${p} on 127.0.0.1 is already in use; stop whatever uses it or choose another with ${flag} PORT`);
  }
  const { logger, logFile } = fileLogger('server');
  say(`Starting the Temporal dev server (log: ${displayPath(logFile)})…`);
  const server = await startDevServer({ port, uiPort, dbFile, log: (line) => logger.info({ source: 'temporal-server' }, line), progress: say });
  say(`Temporal server ready.`);
  say(`  gRPC:     ${server.address}`);
  say(`  Web UI:   http://localhost:${uiPort}`);
  say(`  database: ${server.dbFile}`);
  say(`Use it from other shells with: export ${ENV_VARS.address}=${server.address} TEMPORAL_UI_URL=http://localhost:${uiPort}`);
  say('Ctrl-C stops it.');
  const stopped = new Promise<'signal' | 'exit'>((resolve) => {
    process.once('SIGINT', () => resolve('signal'));
    process.once('SIGTERM', () => resolve('signal'));
    server.process.once('exit', () => resolve('exit'));
  });
  const why = await stopped;
  if (why === 'exit') {
    process.stderr.write('experiments: the Temporal server exited unexpectedly (see the log)\n');
    return EXIT.failed;
  }
  say('Stopping the Temporal server…');
  await server.stop();
  say('Stopped.');
  return EXIT.ok;
}

/** Why the checkpoint URL or the S3 settings it needs cannot work, or undefined. */
function checkpointStoreProblem(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    if (parseCheckpointUrl(url).kind === 's3') s3ConnectionFromEnv();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
