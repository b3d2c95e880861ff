/**
 * The embedded environment of `experiments run` without TEMPORAL_ADDRESS: a local Temporal dev
 * server plus an in-process worker, alive for one run, so the quick start needs no setup.
 *
 * Decisions, and why:
 * - Logs (SDK, workflow, activity, the server's own output) go to a file under .data/logs/ at
 *   LOG_LEVEL (default info), not to the terminal, so they cannot garble the progress bars; the
 *   CLI prints the file's path. The pino logger becomes the Temporal Runtime logger before any
 *   connection, as the SDK requires.
 * - The Runtime is installed without its SIGINT/SIGTERM hook: it would shut the worker down on the first
 *   Ctrl-C, while `run` first cancels the session so every experiment checkpoints and ends
 *   `interrupted` with a reason, and only a second Ctrl-C stops the worker at once.
 * - Each run gets a fresh database (.data/embedded/<port>.db, replaced at the next run on that
 *   port): a session left running by a killed run would otherwise wake up and train on the next
 *   run's worker. Progress is not lost by this: checkpoints live in the checkpoint directory, and
 *   `run --resume` continues each experiment of the same session id from its newest one.
 */
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { ExperimentsClient } from '../client';
import type { RuntimeConfig } from '../config';
import { isPortFree, startDevServer, type DevServer, freePort } from '../dev-server';
import { createLogger, installRuntimeLogger, type Logger } from '../logging';
import { ExperimentPlugin } from '../plugin';
import { projectRoot } from '../temporal-cli';
import { createExperimentWorker } from '../worker';
import { programsOf } from './connect';

export const DEFAULT_PORTS = { grpc: 7233, ui: 8233 } as const;

export interface Embedded {
  readonly address: string;
  /** Base URL of the Web UI, with `localhost` as host. */
  readonly uiBase: string;
  readonly namespace: string;
  readonly client: Client;
  readonly experiments: ExperimentsClient;
  readonly worker: Worker;
  readonly logger: Logger;
  readonly logFile: string;
  /** Stops the worker at once: running trainings checkpoint and fail their attempt as retryable. */
  stopWorker(): void;
  /** Stops the worker, closes connections and stops the server. Safe to call twice. */
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly config: RuntimeConfig;
  /** Progress messages for the user (one line each). */
  readonly say: (line: string) => void;
  /** Checked between start-up steps; true aborts the start-up. */
  readonly aborted?: () => boolean;
}

export class StartAborted extends Error {
  override readonly name = 'StartAborted';
}

/** A log file for this run under <project>/.data/logs/, and a pino logger writing to it. */
export function fileLogger(label: string): { logger: Logger; logFile: string } {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const logFile = path.join(projectRoot(), '.data', 'logs', `${label}-${stamp}.log`);
  const logger = createLogger({ destination: pino.destination({ dest: logFile, mkdir: true, sync: true }) });
  return { logger, logFile };
}


async function choosePorts(): Promise<{ grpc: number; ui: number; defaults: boolean }> {
  if ((await isPortFree(DEFAULT_PORTS.grpc)) && (await isPortFree(DEFAULT_PORTS.ui))) return { ...DEFAULT_PORTS, defaults: true };
  const grpc = await freePort();
  let ui = await freePort();
  while (ui === grpc) ui = await freePort();
  return { grpc, ui, defaults: false };
}

export async function startEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const { config, say } = options;
  const { logger, logFile } = fileLogger('run');
  // No Runtime signal hook: the first Ctrl-C must cancel the session (experiments checkpoint) rather than stop the worker.
  installRuntimeLogger(logger, { shutdownSignals: [] });
  const check = () => {
    if (options.aborted?.()) throw new StartAborted('interrupted while starting');
  };

  const ports = await choosePorts();
  const dbFile = path.join(projectRoot(), '.data', 'embedded', `${ports.grpc}.db`);
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${dbFile}${suffix}`, { force: true });
  say(
    ports.defaults
      ? `Starting a local Temporal server on 127.0.0.1:${ports.grpc} (Web UI port ${ports.ui})…`
      : `Ports ${DEFAULT_PORTS.grpc}/${DEFAULT_PORTS.ui} are busy; starting a local Temporal server on free ports 127.0.0.1:${ports.grpc} (Web UI port ${ports.ui})…`,
  );
  let server: DevServer | undefined;
  let nativeConnection: NativeConnection | undefined;
  let connection: Connection | undefined;
  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closed ??= (async () => {
      if (worker && worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun?.catch((err: unknown) => logger.error({ err }, 'embedded worker failed'));
      await nativeConnection?.close().catch(() => undefined);
      await connection?.close().catch(() => undefined);
      await server?.stop();
      logger.info('embedded server and worker stopped');
      logger.flush();
    })();
    return closed;
  };

  const t0 = Date.now();
  try {
    server = await startDevServer({
      port: ports.grpc,
      uiPort: ports.ui,
      dbFile,
      namespace: config.namespace,
      log: (line) => logger.debug({ source: 'temporal-server' }, line),
      progress: say,
    });
    say(`Local Temporal server ready in ${((Date.now() - t0) / 1000).toFixed(1)}s; starting an in-process worker.`);
    check();
    const plugin = new ExperimentPlugin({ logger, checkpointDir: config.checkpointDir, programs: programsOf(config) });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    const created = await createExperimentWorker({ connection: nativeConnection, plugin, namespace: config.namespace, taskQueue: config.taskQueue, logger });
    worker = created.worker;
    workerRun = worker.run();
    connection = await Connection.connect({ address: server.address, connectTimeout: 10_000 });
    const client = new Client({ connection, namespace: config.namespace });
    const experiments = new ExperimentsClient({ client, taskQueue: config.taskQueue, trainers: plugin.trainers, store: plugin.store });
    check();
    const startedWorker = worker;
    logger.info({ address: server.address, ui: server.uiUrl, dbFile, taskQueue: config.taskQueue }, 'embedded server and worker started');
    return {
      address: server.address,
      uiBase: `http://localhost:${ports.ui}`,
      namespace: config.namespace,
      client,
      experiments,
      worker: startedWorker,
      logger,
      logFile,
      stopWorker: () => {
        if (startedWorker.getState() === 'RUNNING') startedWorker.shutdown();
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
