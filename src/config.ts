/**
 * Environment variables read by the worker, the CLI and docker-compose, in one place, so the
 * compose file, the Dockerfile and the code cannot disagree on a name.
 */
import * as path from 'node:path';

export const ENV_VARS = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  taskQueue: 'TEMPORAL_TASK_QUEUE',
  checkpointDir: 'EXPERIMENTS_CHECKPOINT_DIR',
  programs: 'EXPERIMENTS_PROGRAMS',
  logLevel: 'LOG_LEVEL',
} as const;

export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_TASK_QUEUE = 'experiments';
export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_ADDRESS = 'localhost:7233';

export interface RuntimeConfig {
  /** host:port of the Temporal frontend; undefined when TEMPORAL_ADDRESS is unset (embedded mode). */
  readonly address: string | undefined;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly checkpointDir: string;
  /** A programs file (JSON or YAML) the `command` trainer's programs come from; undefined when unset. */
  readonly programsFile: string | undefined;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  return {
    address: env[ENV_VARS.address] || undefined,
    namespace: env[ENV_VARS.namespace] || DEFAULT_NAMESPACE,
    taskQueue: env[ENV_VARS.taskQueue] || DEFAULT_TASK_QUEUE,
    checkpointDir: path.resolve(env[ENV_VARS.checkpointDir] || path.join(PROJECT_ROOT, '.data', 'checkpoints')),
    programsFile: env[ENV_VARS.programs] || undefined,
  };
}
