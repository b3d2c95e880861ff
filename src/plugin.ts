/**
 * `ExperimentPlugin`: everything a Temporal Worker, Client or replay worker needs to run
 * experiment sessions, as one `SimplePlugin` from `@temporalio/plugin`.
 *
 * What it contributes, and how it merges with what you pass to `Worker.create`:
 * - `workflowsPath`: **replaces** yours with this package's workflows. To run your own
 *   workflows on the same worker, write one module that re-exports both
 *   (`export * from 'temporal-experiments/workflows'; export * from './my-workflows';`)
 *   and pass it as `new ExperimentPlugin({ workflowsPath: require.resolve('./all-workflows') })`.
 * - `activities`: **appended** to yours (the training activity with the trainers and the
 *   checkpoint store injected, and the checkpoint lookup used when recording outcomes).
 * - `programs`: this plugin's own option (Worker.create has nothing like it): the complete set
 *   of programs the `command` trainer may run on this worker.
 * - `dataConverter`: with encryption on (the `encryption` option, or EXPERIMENTS_CODEC_KEYS /
 *   EXPERIMENTS_CODEC_KEY_FILE), the AES-256-GCM codec is **appended** to your `payloadCodecs`;
 *   the rest of your data converter is kept. Replay workers get the same codec.
 * - bundling: `preloadModules` gets src/workflows/preload.ts **appended**, so a reusable V8
 *   context evaluates zod once instead of once per workflow run.
 * - logging: installs the pino logger as the Temporal Runtime logger (once per process, before
 *   the first connection), so SDK, workflow and activity logs come out through pino.
 */
import type { DataConverter } from '@temporalio/common';
import { SimplePlugin } from '@temporalio/plugin';
import { Runtime, type BundleOptions } from '@temporalio/worker';
import { createActivities } from './activities';
import { prometheusTelemetry, type MetricsEndpointOptions } from './metrics/exporter';
import { TrainingMetrics } from './metrics/training';
import { openCheckpointStore } from './activities/checkpoint-store';
import type { CheckpointStore } from './activities/checkpoint-store';
import type { AnyTrainer } from './activities/trainer';
import { builtInTrainers } from './activities/trainers';
import { ProgramRegistry, type ProgramDefinition } from './activities/trainers/command';
import { resolveCodec, withCodec, type AesGcmCodec, type EncryptionOptions } from './codec';
import { configFromEnv } from './config';
import { createLogger, installRuntimeLogger, runtimeLogger, type Logger } from './logging';
import type { DeviceClaims } from './activities/training';

export interface ExperimentPluginOptions {
  /**
   * Directory for checkpoint blobs and manifests; a shared mount when workers run on several
   * machines. Ignored when `store` or `checkpointUrl` is given.
   * @default $EXPERIMENTS_CHECKPOINT_DIR, else `<project>/.data/checkpoints`
   */
  readonly checkpointDir?: string;
  /**
   * Where checkpoints go, as a URL: `s3://bucket/prefix` selects the S3 store (connection from
   * AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and
   * EXPERIMENTS_S3_FORCE_PATH_STYLE, path-style by default when an endpoint is set); a directory
   * or `file:///dir` the local store. Replaces `checkpointDir`; ignored when `store` is given.
   * @default $EXPERIMENTS_CHECKPOINT_URL, else the local store in `checkpointDir`
   */
  readonly checkpointUrl?: string;
  /**
   * Local cache of a remote store: `command` trainers write their files here and read resumed
   * checkpoints from here. Each worker may have its own, empty one.
   * @default $EXPERIMENTS_CHECKPOINT_CACHE_DIR, else `<project>/.data/checkpoint-cache`
   */
  readonly checkpointCacheDir?: string;
  /** A checkpoint store of your own; replaces the local-directory store. */
  readonly store?: CheckpointStore;
  /**
   * Your trainers, registered by `name`. They are **added** to the built-in ones (`mlp`); a
   * trainer with a built-in's name replaces it.
   */
  readonly trainers?: readonly AnyTrainer[];
  /**
   * The programs the built-in `command` trainer may run on this worker, by name: the complete
   * list (there are no built-in programs to add to; a name given twice is an error). A spec
   * names one (`params.program`) and gives only its params; it can never choose an executable,
   * arguments, a working directory or environment variables. Relative `cwd`s are taken from the
   * working directory when the plugin is built. A `ProgramRegistry` (e.g.
   * `ProgramRegistry.fromFile('programs.yaml')`, what `experiments worker --programs` uses) is
   * used as it is.
   * @default none: the `command` trainer runs nothing and rejects every spec, naming the program
   */
  readonly programs?: readonly ProgramDefinition[] | ProgramRegistry;
  /** Register the built-in trainers. @default true */
  readonly builtInTrainers?: boolean;
  /** The pino logger for everything. @default the installed Runtime logger, else `createLogger()` */
  readonly logger?: Logger;
  /** Install `logger` as the Temporal Runtime logger if no Runtime exists yet. @default true */
  readonly installRuntimeLogger?: boolean;
  /**
   * Serve Prometheus metrics (the SDK's and ours, see README "Metrics") on this port, through
   * the Runtime the plugin installs; ignored, with a warning, when a Runtime already exists or
   * `installRuntimeLogger` is false (then pass `prometheusTelemetry()` to your own Runtime.install).
   * @default no endpoint (metrics are still recorded on whatever meter the Runtime has)
   */
  readonly metrics?: MetricsEndpointOptions;
  /** Workflows module; replaces the worker's `workflowsPath` (see the module comment). @default this package's */
  readonly workflowsPath?: string;
  /**
   * Least milliseconds between two heartbeats the training runtime sends.
   * @default min(1000, heartbeatTimeout / 4)
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * How often metric history samples step points and writes held ones (src/activities/checkpoint-store/history-writer.ts).
   * @default $EXPERIMENTS_METRICS_STEP_INTERVAL_MS (else 1000 ms) and $EXPERIMENTS_METRICS_FLUSH_INTERVAL_MS (else 30000 ms)
   */
  readonly metricHistory?: { readonly stepIntervalMs?: number; readonly flushIntervalMs?: number };
  /**
   * Encrypt every payload (inputs, results, heartbeats, signals, queries, memos) with
   * AES-256-GCM; the first key is current, every key decrypts. `false` switches it off even when
   * the environment names keys. Failure messages, search attributes and ids stay plain text.
   * @default keys from $EXPERIMENTS_CODEC_KEYS or $EXPERIMENTS_CODEC_KEY_FILE, else off
   */
  readonly encryption?: EncryptionOptions | false;
  /**
   * This worker's GPUs and CPU-trial slots (src/hardware/slots.ts), from which a training run on a
   * shape queue claims its devices (`ctx.devices`, `CUDA_VISIBLE_DEVICES`). Set by
   * createExperimentWorker when `hardware` is on. @default none: trainers get no devices
   */
  readonly devices?: DeviceClaims;
}

export const PLUGIN_NAME = 'temporal-experiments';
export const WORKFLOWS_PATH = require.resolve('./workflows');
/** Evaluated once per reusable V8 context instead of once per workflow run (see its comment). */
export const PRELOAD_PATH = require.resolve('./workflows/preload');

export class ExperimentPlugin extends SimplePlugin {
  readonly trainers: ReadonlyMap<string, AnyTrainer>;
  /** The programs the `command` trainer runs here. */
  readonly programs: ProgramRegistry;
  readonly store: CheckpointStore;
  readonly logger: Logger;
  /** The payload codec when encryption is on, for clients that share this plugin's keys. */
  readonly codec: AesGcmCodec | undefined;
  /** The activities this plugin registers (shape-queue workers register the same ones). */
  readonly activities: ReturnType<typeof createActivities>;

  constructor(options: ExperimentPluginOptions = {}) {
    const logger = options.logger ?? runtimeLogger() ?? createLogger();
    if (options.installRuntimeLogger !== false) {
      try {
        installRuntimeLogger(logger, options.metrics ? { metrics: prometheusTelemetry(options.metrics) } : {});
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'the plugin did not install the Temporal Runtime (its logger and any metrics endpoint): create the plugin before any connection or worker');
      }
    }
    const programs = options.programs instanceof ProgramRegistry ? options.programs : new ProgramRegistry(options.programs ?? []);
    const trainers = new Map<string, AnyTrainer>();
    for (const t of [...(options.builtInTrainers === false ? [] : builtInTrainers(programs)), ...(options.trainers ?? [])]) {
      trainers.set(t.name, t);
    }
    const env = configFromEnv();
    const store =
      options.store ??
      openCheckpointStore({
        checkpointUrl: options.checkpointUrl ?? (options.checkpointDir === undefined ? env.checkpointUrl : undefined),
        checkpointDir: options.checkpointDir ?? env.checkpointDir,
        cacheDir: options.checkpointCacheDir ?? env.checkpointCacheDir,
        logger,
      });
    const codec = resolveCodec(options.encryption);
    const activities = createActivities({
      store,
      trainers,
      logger,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      devices: options.devices,
      metricHistory: { stepIntervalMs: env.metricsStepIntervalMs, flushIntervalMs: env.metricsFlushIntervalMs, ...options.metricHistory },
      metrics: new TrainingMetrics(() => Runtime.instance().metricMeter),
    });
    super({
      name: PLUGIN_NAME,
      ...(codec && { dataConverter: (existing: DataConverter | undefined) => withCodec(existing, codec) }),
      workflowsPath: options.workflowsPath ?? WORKFLOWS_PATH,
      activities,
    });
    this.trainers = trainers;
    this.programs = programs;
    this.store = store;
    this.logger = logger;
    this.codec = codec;
    this.activities = activities;
  }

  /** Appends PRELOAD_PATH to `preloadModules`: zod is evaluated once per V8 context, not per workflow. */
  override configureBundler(options: BundleOptions): BundleOptions {
    const configured = super.configureBundler(options);
    const preload = [...(configured.preloadModules ?? [])];
    if (!preload.includes(PRELOAD_PATH)) preload.push(PRELOAD_PATH);
    return { ...configured, preloadModules: preload };
  }
}
