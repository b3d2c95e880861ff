/**
 * Worker wiring: a Temporal Worker with the ExperimentPlugin, configured from options or the
 * environment (the connection profile of src/connection.ts: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TLS; then TEMPORAL_TASK_QUEUE, EXPERIMENTS_CHECKPOINT_DIR,
 * EXPERIMENTS_CHECKPOINT_URL, EXPERIMENTS_PROGRAMS, EXPERIMENTS_DEPLOYMENT_NAME,
 * EXPERIMENTS_BUILD_ID, LOG_LEVEL). Thin on purpose: behaviour lives in the plugin.
 *
 * On SIGTERM or SIGINT the SDK's Runtime shuts the worker down: every running training is
 * interrupted at once with reason `worker-shutdown`, checkpoints at its next step boundary and
 * fails its attempt as retryable, so another worker resumes it right away.
 * `shutdownGraceTime` bounds how long that may take before the worker gives up waiting.
 */
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type NativeConnectionOptions } from '@temporalio/worker';
import { withCodec } from './codec';
import { createHardwareSide, detectHardware, type HardwareOptions, type HardwareSide } from './hardware/fleet';
import { ProgramRegistry } from './activities/trainers/command';
import { configFromEnv, DEFAULT_ADDRESS } from './config';
import { connectionOptions } from './connection';
import { pinnedDeploymentOptions, resolveDeploymentVersion, type DeploymentVersionOptions } from './deployment';
import { createLogger, runtimeLogger, type Logger } from './logging';
import { parseDuration } from './shared/duration';
import { ExperimentPlugin, type ExperimentPluginOptions } from './plugin';

export interface ExperimentWorkerOptions extends ExperimentPluginOptions {
  /**
   * host:port of the Temporal frontend; TLS, API key and headers come from the connection
   * profile either way. @default the profile's address ($TEMPORAL_ADDRESS), else localhost:7233
   */
  readonly address?: string;
  /** An existing connection; replaces `address`. */
  readonly connection?: NativeConnection;
  readonly namespace?: string;
  readonly taskQueue?: string;
  /** Trainings (activities) run at once by this worker. @default 4 */
  readonly maxConcurrentActivities?: number;
  /**
   * Time a SIGTERM'd worker allows its trainings to checkpoint and stop before it exits anyway.
   * @default '30s'
   */
  readonly shutdownGraceTime?: string | number;
  /**
   * Longest time between heartbeats sent to the server; cancellation is delivered in heartbeat
   * responses, so this bounds how fast a cancel reaches the training loop. @default '1s'
   */
  readonly heartbeatThrottle?: string | number;
  /** Plugin to use instead of building one from these options (the CLI's embedded mode shares one). */
  readonly plugin?: ExperimentPlugin;
  /**
   * Register a worker deployment version and pin every workflow to it (src/deployment.ts).
   * Absent: versioned only when EXPERIMENTS_DEPLOYMENT_NAME or EXPERIMENTS_BUILD_ID is set.
   * @default unversioned
   */
  readonly deployment?: DeploymentVersionOptions;
  /**
   * Hardware profile, resource-routed shape queues and the worker registry (src/hardware/fleet.ts):
   * on with the given options, off with `false`. Ignored when `plugin` is given.
   * @default false for createExperimentWorker; `{}` (detected) for runExperimentWorker and `experiments worker`
   */
  readonly hardware?: HardwareOptions | false;
}

export interface ExperimentWorker {
  readonly worker: Worker;
  readonly plugin: ExperimentPlugin;
  readonly connection: NativeConnection;
  readonly taskQueue: string;
  readonly logger: Logger;
  /** The deployment version it registered; undefined for an unversioned worker. */
  readonly version: { deploymentName: string; buildId: string } | undefined;
  /** The hardware side (profile, shape workers, registry publisher) when `hardware` was on. */
  readonly hardware: HardwareSide | undefined;
  /** Runs the main worker and the shape workers until `shutdown()` (or a signal) stops them. */
  run(): Promise<void>;
  /** Shuts every worker down (training checkpoints first) and leaves the registry. */
  shutdown(): void;
}

export async function createExperimentWorker(options: ExperimentWorkerOptions = {}): Promise<ExperimentWorker> {
  const env = configFromEnv();
  const logger = options.logger ?? runtimeLogger() ?? createLogger();
  // Heartbeats the runtime sends no faster than the throttle gain nothing; sent slower, they
  // make the throttle pointless. So a throttle given here sets the runtime's interval too.
  const throttleMs = typeof options.heartbeatThrottle === 'string' ? parseDuration(options.heartbeatThrottle) : options.heartbeatThrottle;
  // `programs` given here replaces $EXPERIMENTS_PROGRAMS; neither means the command trainer runs nothing.
  const programs = options.programs ?? (env.programsFile ? ProgramRegistry.fromFile(env.programsFile) : undefined);
  const hw = options.hardware !== undefined && options.hardware !== false && !options.plugin ? options.hardware : undefined;
  const detected = hw ? await detectHardware(hw, logger) : undefined;
  const plugin =
    options.plugin ?? new ExperimentPlugin({ heartbeatIntervalMs: throttleMs, ...options, programs, logger, devices: detected?.pool });
  const connection =
    options.connection ??
    (await NativeConnection.connect({ ...connectionOptions(env.connection, options.address ?? env.address ?? DEFAULT_ADDRESS) } satisfies NativeConnectionOptions));
  const taskQueue = options.taskQueue ?? env.taskQueue;
  const version = resolveDeploymentVersion(options.deployment);
  const worker = await Worker.create({
    ...(version && { workerDeploymentOptions: pinnedDeploymentOptions(version) }),
    connection,
    namespace: options.namespace ?? env.namespace,
    taskQueue,
    plugins: [plugin],
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities ?? 4,
    shutdownForceTime: options.shutdownGraceTime ?? '30s',
    maxHeartbeatThrottleInterval: options.heartbeatThrottle ?? '1s',
    defaultHeartbeatThrottleInterval: options.heartbeatThrottle ?? '1s',
  });
  const namespace = options.namespace ?? env.namespace;
  const hardware = detected && hw
    ? await createHardwareSide({
        ...detected,
        connection,
        client: new Client({ connection, namespace, ...(plugin.codec && { dataConverter: withCodec(undefined, plugin.codec) }) }),
        namespace,
        taskQueue,
        activities: plugin.activities,
        codec: plugin.codec,
        logger: plugin.logger,
        beatIntervalMs: hw.beatIntervalMs,
        shutdownForceTime: options.shutdownGraceTime ?? '30s',
        heartbeatThrottle: options.heartbeatThrottle ?? '1s',
      })
    : undefined;
  const all = [worker, ...(hardware?.workers ?? [])];
  return {
    worker,
    plugin,
    connection,
    taskQueue,
    logger: plugin.logger,
    version,
    hardware,
    async run() {
      await hardware?.publisher.beat();
      // One worker stopping (a signal reaches all, a fatal error one) stops the rest.
      const runs = all.map((w) => w.run().finally(() => all.forEach((o) => o.getState() === 'RUNNING' && o.shutdown())));
      // Wait for every worker to stop (never leave one draining), then report the first failure.
      const settled = await Promise.allSettled(runs);
      await hardware?.publisher.stop();
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown() {
      for (const w of all) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}

/** Runs a worker until it is shut down (SIGTERM, SIGINT, or `worker.shutdown()`). */
export async function runExperimentWorker(options: ExperimentWorkerOptions = {}): Promise<void> {
  const running = await createExperimentWorker({ hardware: {}, ...options });
  const { connection, taskQueue, logger, version } = running;
  logger.info(
    { taskQueue, pid: process.pid, hardwareClass: running.hardware?.profile.className, ...(version && { deploymentName: version.deploymentName, buildId: version.buildId }) },
    'experiment worker started',
  );
  try {
    await running.run();
  } finally {
    if (!options.connection) await connection.close();
    logger.info({ taskQueue }, 'experiment worker stopped');
  }
}

if (require.main === module) {
  runExperimentWorker().then(
    () => process.exit(0),
    (err: unknown) => {
      (runtimeLogger() ?? createLogger()).error({ err }, 'worker failed');
      process.exit(1);
    },
  );
}
