/**
 * The production-like stack as data: its services, the ports they bind (all on 127.0.0.1) and
 * the variables its workers get, plus the Temporal server's and the UI server's config files.
 * Pure: `scripts/stack.sh` runs it (src/stack/stack.ts) and test/compose.test.ts checks that
 * docker-compose.yml describes the same topology.
 */
import * as path from 'node:path';
import { MATCHER_DYNAMIC_CONFIG } from '../server-features';
import { SEARCH_ATTRIBUTES } from '../shared/search-attributes';

/** The loopback address every stack process binds. */
export const STACK_HOST = '127.0.0.1';
export const STACK_NAMESPACE = 'default';
export const STACK_TASK_QUEUE = 'experiments';
export const STACK_BUCKET = 'checkpoints';
export const STACK_CHECKPOINT_PREFIX = 'experiments';
export const STACK_DB_USER = 'temporal';
export const STACK_DATABASES = { temporal: 'temporal', visibility: 'temporal_visibility' } as const;

/** Ports with offset 0; the published ones are the same as docker-compose.yml's. */
export const BASE_PORTS = {
  postgresql: 5432,
  frontend: 7233,
  frontendHttp: 7243,
  history: 7234,
  matching: 7235,
  internalWorker: 7239,
  frontendMembership: 6933,
  historyMembership: 6934,
  matchingMembership: 6935,
  internalWorkerMembership: 6939,
  ui: 8080,
  s3: 7070,
} as const;

export type PortName = keyof typeof BASE_PORTS;

export interface StackOptions {
  /** Directory of the stack's data, config, logs and pid files. @default <project>/.data/stack */
  readonly dir: string;
  /** Added to every port in BASE_PORTS, to run beside another stack or a busy port. @default 0 */
  readonly portOffset: number;
  /** Number of experiment workers. @default 2 */
  readonly workers: number;
}

/**
 * The Temporal server stores membership ports in a PostgreSQL smallint column
 * (cluster_membership.rpc_port), so they must stay at or below 32767.
 */
export const MAX_MEMBERSHIP_PORT = 32767;

/** The ports with `portOffset` added; throws when the offset puts a port out of range. */
export function stackPorts(opts: Pick<StackOptions, 'portOffset'>): Record<PortName, number> {
  const maxOffset = MAX_MEMBERSHIP_PORT - BASE_PORTS.internalWorkerMembership;
  if (!Number.isInteger(opts.portOffset) || opts.portOffset < 0 || opts.portOffset > maxOffset) {
    throw new Error(`EXPERIMENTS_STACK_PORT_OFFSET: expected an integer from 0 to ${maxOffset} (the server keeps membership ports in a smallint), received ${JSON.stringify(opts.portOffset)}`);
  }
  return Object.fromEntries(Object.entries(BASE_PORTS).map(([k, v]) => [k, v + opts.portOffset])) as Record<PortName, number>;
}

/** One service of the stack: the ports it publishes to clients (the rest are internal). */
export interface ServiceSpec {
  readonly name: string;
  readonly published: readonly PortName[];
}

/** The services, named as in docker-compose.yml. `temporal-admin-tools` is the one-shot setup. */
export const STACK_SERVICES: readonly ServiceSpec[] = [
  { name: 'postgresql', published: [] },
  { name: 'temporal', published: ['frontend'] },
  { name: 'temporal-admin-tools', published: [] },
  { name: 'temporal-ui', published: ['ui'] },
  { name: 's3', published: ['s3'] },
  { name: 'worker', published: [] },
];

/** Paths inside the stack directory. */
export function stackPaths(dir: string) {
  return {
    dir,
    pgData: path.join(dir, 'postgresql', 'data'),
    pgLog: path.join(dir, 'postgresql', 'postgresql.log'),
    pgPasswordFile: path.join(dir, 'postgresql', 'password'),
    temporalRoot: path.join(dir, 'temporal'),
    temporalConfig: path.join(dir, 'temporal', 'config', 'stack.yaml'),
    dynamicConfig: path.join(dir, 'temporal', 'config', 'dynamicconfig.yaml'),
    uiRoot: path.join(dir, 'ui'),
    s3Root: path.join(dir, 's3'),
    s3CredentialsFile: path.join(dir, 's3', 'credentials.json'),
    logs: path.join(dir, 'logs'),
    pids: path.join(dir, 'pids'),
    workerPlaces: (i: number, programsFile: string): WorkerPlaces => ({
      cacheDir: path.join(dir, 'workers', `worker-${i}`, 'cache'),
      checkpointDir: path.join(dir, 'workers', `worker-${i}`, 'checkpoints'),
      programsFile,
    }),
  };
}

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** A worker's own places: its S3 cache, its (unused) local-store directory and its programs file. */
export interface WorkerPlaces {
  readonly cacheDir: string;
  readonly checkpointDir: string;
  readonly programsFile: string;
}

/** Variables only a worker needs; a client of the stack gets the others (`scripts/stack.sh env`). */
export const WORKER_ONLY_ENV = ['EXPERIMENTS_CHECKPOINT_CACHE_DIR', 'EXPERIMENTS_CHECKPOINT_DIR', 'EXPERIMENTS_PROGRAMS'] as const;

/** What a worker needs: the variables src/config.ts and s3-config.ts read (the same names as docker-compose.yml's worker). */
export function workerEnv(ports: Record<PortName, number>, creds: S3Credentials, places: WorkerPlaces): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: `${STACK_HOST}:${ports.frontend}`,
    TEMPORAL_NAMESPACE: STACK_NAMESPACE,
    TEMPORAL_TASK_QUEUE: STACK_TASK_QUEUE,
    EXPERIMENTS_CHECKPOINT_URL: `s3://${STACK_BUCKET}/${STACK_CHECKPOINT_PREFIX}`,
    EXPERIMENTS_CHECKPOINT_CACHE_DIR: places.cacheDir,
    EXPERIMENTS_CHECKPOINT_DIR: places.checkpointDir,
    AWS_ENDPOINT_URL: `http://${STACK_HOST}:${ports.s3}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    EXPERIMENTS_PROGRAMS: places.programsFile,
    LOG_LEVEL: 'info',
  };
}

/**
 * Dynamic config the experiments need beyond the server defaults: search attributes visible the
 * moment they are registered, and updates (approval) and multi-operations enabled.
 */
export const STACK_DYNAMIC_CONFIG: Record<string, unknown> = {
  'system.forceSearchAttributesCacheRefreshOnRead': true,
  'frontend.enableUpdateWorkflowExecution': true,
  'frontend.enableExecuteMultiOperation': true,
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted': true,
  ...MATCHER_DYNAMIC_CONFIG,
};

export function dynamicConfigYaml(values: Record<string, unknown> = STACK_DYNAMIC_CONFIG): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}:\n  - value: ${JSON.stringify(v)}\n    constraints: {}\n`)
    .join('');
}

function datastore(database: string, ports: Record<PortName, number>, password: string, maxConns: number): string {
  return [
    `      sql:`,
    `        pluginName: "postgres12"`,
    `        databaseName: "${database}"`,
    `        connectAddr: "${STACK_HOST}:${ports.postgresql}"`,
    `        connectProtocol: "tcp"`,
    `        user: "${STACK_DB_USER}"`,
    `        password: ${JSON.stringify(password)}`,
    `        maxConns: ${maxConns}`,
    `        maxIdleConns: ${maxConns}`,
    `        maxConnLifetime: "1h"`,
  ].join('\n');
}

function rpc(grpc: number, membership: number, http?: number): string {
  return [`    rpc:`, `      grpcPort: ${grpc}`, `      membershipPort: ${membership}`, `      bindOnIP: "${STACK_HOST}"`, ...(http ? [`      httpPort: ${http}`] : [])].join('\n');
}

/** The Temporal server's config: PostgreSQL (postgres12 plugin) for both stores, SQL visibility, loopback only. */
export function temporalConfigYaml(ports: Record<PortName, number>, password: string, dynamicConfigFile: string): string {
  return `# Generated by scripts/stack.sh (src/stack/topology.ts); rewritten at every \`up\`.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
${datastore(STACK_DATABASES.temporal, ports, password, 20)}
    postgres-visibility:
${datastore(STACK_DATABASES.visibility, ports, password, 4)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "${STACK_HOST}"
services:
  frontend:
${rpc(ports.frontend, ports.frontendMembership, ports.frontendHttp)}
  history:
${rpc(ports.history, ports.historyMembership)}
  matching:
${rpc(ports.matching, ports.matchingMembership)}
  worker:
${rpc(ports.internalWorker, ports.internalWorkerMembership)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "${STACK_HOST}:${ports.frontend}"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: ${JSON.stringify(dynamicConfigFile)}
  pollInterval: "10s"
`;
}

/** The Web UI server's config (base.yaml of its config directory). */
export function uiConfigYaml(ports: Record<PortName, number>): string {
  return `# Generated by scripts/stack.sh (src/stack/topology.ts); rewritten at every \`up\`.
temporalGrpcAddress: ${STACK_HOST}:${ports.frontend}
host: ${STACK_HOST}
port: ${ports.ui}
enableUi: true
defaultNamespace: ${STACK_NAMESPACE}
refreshInterval: 1m
notifyOnNewVersion: false
cors:
  cookieInsecure: true
  allowOrigins:
    - "http://${STACK_HOST}:${ports.ui}"
    - "http://localhost:${ports.ui}"
auth:
  enabled: false
`;
}

/** Our custom search attributes as `name=Type` (the compose one-shot registers the same list). */
export function searchAttributePairs(): string[] {
  return Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => `${name}=${type}`);
}
