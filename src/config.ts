/**
 * Environment variables read by the worker, the CLI and docker-compose, in one place, so the
 * compose file, the Dockerfile and the code cannot disagree on a name.
 */
import * as path from 'node:path';
import { loadConnectionProfile, type ConnectionProfile } from './connection';

export const ENV_VARS = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  taskQueue: 'TEMPORAL_TASK_QUEUE',
  checkpointDir: 'EXPERIMENTS_CHECKPOINT_DIR',
  programs: 'EXPERIMENTS_PROGRAMS',
  checkpointUrl: 'EXPERIMENTS_CHECKPOINT_URL',
  checkpointCacheDir: 'EXPERIMENTS_CHECKPOINT_CACHE_DIR',
  logLevel: 'LOG_LEVEL',
  metricsStepIntervalMs: 'EXPERIMENTS_METRICS_STEP_INTERVAL_MS',
  metricsFlushIntervalMs: 'EXPERIMENTS_METRICS_FLUSH_INTERVAL_MS',
  deploymentName: 'EXPERIMENTS_DEPLOYMENT_NAME',
  buildId: 'EXPERIMENTS_BUILD_ID',
} as const;

export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_TASK_QUEUE = 'experiments';
export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_ADDRESS = 'localhost:7233';

export interface RuntimeConfig {
  /**
   * host:port of the Temporal frontend, from TEMPORAL_ADDRESS or the connection profile
   * (src/connection.ts); undefined when neither names one (embedded mode).
   */
  readonly address: string | undefined;
  /** From TEMPORAL_NAMESPACE or the profile. @default 'default' */
  readonly namespace: string;
  /** TLS, API key and headers of the connection profile; see `connectionOptions`. */
  readonly connection: ConnectionProfile;
  readonly taskQueue: string;
  readonly checkpointDir: string;
  /** A programs file (JSON or YAML) the `command` trainer's programs come from; undefined when unset. */
  readonly programsFile: string | undefined;
  /** `s3://bucket/prefix` (or a directory); when set it replaces `checkpointDir`. */
  readonly checkpointUrl: string | undefined;
  /** Local cache of a remote store. @default <project>/.data/checkpoint-cache */
  readonly checkpointCacheDir: string;
  /** Least ms between two step points of a run's metric history (at least 100). @default 1000 */
  readonly metricsStepIntervalMs: number | undefined;
  /** Longest ms step points are held before they are written (at least 200). @default 30000 */
  readonly metricsFlushIntervalMs: number | undefined;
}

/** Reads the environment and the connection profile; a malformed config file is an InvalidInputError. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const connection = loadConnectionProfile(env);
  return {
    address: connection.address,
    namespace: connection.namespace ?? DEFAULT_NAMESPACE,
    connection,
    taskQueue: env[ENV_VARS.taskQueue] || DEFAULT_TASK_QUEUE,
    checkpointDir: path.resolve(env[ENV_VARS.checkpointDir] || path.join(PROJECT_ROOT, '.data', 'checkpoints')),
    programsFile: env[ENV_VARS.programs] || undefined,
    checkpointUrl: env[ENV_VARS.checkpointUrl] || undefined,
    checkpointCacheDir: path.resolve(env[ENV_VARS.checkpointCacheDir] || path.join(PROJECT_ROOT, '.data', 'checkpoint-cache')),
    metricsStepIntervalMs: msVar(env, ENV_VARS.metricsStepIntervalMs, 100),
    metricsFlushIntervalMs: msVar(env, ENV_VARS.metricsFlushIntervalMs, 200),
  };
}

/** An integer number of milliseconds >= `min` from `name`, or undefined when unset. */
function msVar(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name}: expected an integer number of milliseconds >= ${min}, received ${JSON.stringify(raw)}`);
  return value;
}
