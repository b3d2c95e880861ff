/**
 * Checks docker-compose.yml against the code it deploys: the worker must get exactly the
 * environment variables the code reads, checkpoints in the S3 service, and the one-shot service
 * must register every search attribute the plugin writes. And it must describe the same topology
 * as `scripts/stack.sh` (src/stack/topology.ts), which test/stack.test.ts runs for real: the same
 * services, published ports, versions and worker variables. CI has no Docker engine, so these are
 * structural checks; when a compose CLI is installed we also let it validate the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { ENV_VARS } from '../src/config';
import { MATCHER_DYNAMIC_CONFIG } from '../src/server-features';
import { SEARCH_ATTRIBUTES } from '../src/shared/search-attributes';
import { TEMPORAL_SERVER_VERSION, UI_SERVER_VERSION } from '../src/stack/binaries';
import { PG_BIN } from '../src/stack/postgres';
import { BASE_PORTS, STACK_BUCKET, STACK_SERVICES, stackPorts, workerEnv } from '../src/stack/topology';
import { VERSITYGW_VERSION } from '../src/versitygw';

const ROOT = path.resolve(__dirname, '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string> | string[];
  ports?: (string | { target: number; published: number | string })[];
  volumes?: (string | { type?: string; source?: string; target: string })[];
  command?: string | string[];
  entrypoint?: string | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;

function service(name: string): Service {
  const svc = compose.services?.[name];
  assert.ok(svc, `docker-compose.yml has no service "${name}"`);
  return svc;
}

/** Compose allows both the map and the KEY=VALUE list form. */
function env(svc: Service): Record<string, string> {
  const e = svc.environment ?? {};
  if (!Array.isArray(e)) return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(e.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

function publishedPorts(svc: Service): { published: string; target: string }[] {
  return (svc.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { published: String(p.published), target: String(p.target) };
    const parts = p.split(':'); // [ip:]published:target
    return { published: parts[parts.length - 2] ?? '', target: parts[parts.length - 1] ?? '' };
  });
}

/** The host address of every published port; a port with none listens on every interface ('0.0.0.0'). */
function bindAddresses(svc: Service): string[] {
  return (svc.ports ?? []).map((p) => {
    if (typeof p !== 'string') return (p as { host_ip?: string }).host_ip ?? '0.0.0.0';
    const parts = p.split(':');
    return parts.length >= 3 ? parts.slice(0, -2).join(':') : '0.0.0.0';
  });
}

function volumeMounts(svc: Service): { source: string; target: string }[] {
  return (svc.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source ?? '', target: v.target };
    const [source = '', target = ''] = v.split(':');
    return { source, target };
  });
}

function commandText(svc: Service): string {
  const parts = [svc.entrypoint, svc.command].flat().filter((x): x is string => typeof x === 'string');
  return parts.join(' ');
}

function dependsOn(svc: Service): Record<string, string | undefined> {
  const d = svc.depends_on ?? [];
  if (Array.isArray(d)) return Object.fromEntries(d.map((name) => [name, undefined]));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v?.condition]));
}

void test('temporal runs the server on PostgreSQL', () => {
  const temporal = service('temporal');
  assert.match(temporal.image ?? '', /^temporalio\/(auto-setup|server):\d/, 'pinned temporalio/auto-setup or temporalio/server image');
  const e = env(temporal);
  assert.match(e.DB ?? '', /^postgres/);
  assert.equal(e.POSTGRES_SEEDS, 'postgresql');
  assert.ok(e.POSTGRES_USER && e.POSTGRES_PWD, 'postgres credentials set');
  assert.ok(publishedPorts(temporal).some((p) => p.target === '7233'), 'gRPC port 7233 published for host clients');
  assert.deepEqual(bindAddresses(temporal), ['127.0.0.1'], 'gRPC is reachable from this machine only (no authorization in front of it)');

  // The dynamic config file it reads enables what task priority and fairness need, as the stack does.
  const mount = volumeMounts(temporal).find((m) => m.target === e.DYNAMIC_CONFIG_FILE_PATH);
  assert.ok(mount, `DYNAMIC_CONFIG_FILE_PATH ${e.DYNAMIC_CONFIG_FILE_PATH} is mounted`);
  const dyn = parse(readFileSync(path.join(ROOT, mount.source), 'utf8')) as Record<string, { value: unknown }[]>;
  for (const [k, v] of Object.entries(MATCHER_DYNAMIC_CONFIG)) assert.deepEqual(dyn[k]?.[0]?.value, v, k);

  const pg = service('postgresql');
  assert.match(pg.image ?? '', /^postgres:\d/);
  assert.equal(env(pg).POSTGRES_USER, e.POSTGRES_USER);
  assert.equal(env(pg).POSTGRES_PASSWORD, e.POSTGRES_PWD);
});

void test('temporal-ui points at temporal:7233 and publishes 8080', () => {
  const ui = service('temporal-ui');
  assert.match(ui.image ?? '', /^temporalio\/ui:\d/);
  assert.equal(env(ui).TEMPORAL_ADDRESS, 'temporal:7233');
  assert.ok(
    publishedPorts(ui).some((p) => p.published === '8080' && p.target === '8080'),
    `port 8080 published; got ${JSON.stringify(ui.ports)}`,
  );
  assert.deepEqual(bindAddresses(ui), ['127.0.0.1'], 'the UI (no login) is reachable from this machine only');
});

void test('worker is built from this repo and configured through the env vars src/config.ts reads', () => {
  const worker = service('worker');
  const build = worker.build;
  const context = typeof build === 'string' ? build : (build as { context?: string } | undefined)?.context;
  assert.equal(context, '.', 'worker builds from the repository root (Dockerfile)');

  const e = env(worker);
  assert.equal(ENV_VARS.address, 'TEMPORAL_ADDRESS');
  for (const key of ['address', 'namespace', 'taskQueue', 'checkpointUrl', 'checkpointCacheDir', 'programs'] as const) {
    assert.ok(e[ENV_VARS[key]], `worker sets ${ENV_VARS[key]} (ENV_VARS.${key})`);
  }
  assert.equal(e[ENV_VARS.address], 'temporal:7233');
  // The S3 connection is the standard AWS variables src/activities/checkpoint-store/s3-config.ts reads.
  const aws = ['AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
  const unknown = Object.keys(e).filter((name) => !(Object.values(ENV_VARS) as string[]).includes(name) && !aws.includes(name));
  assert.deepEqual(unknown, [], 'every worker env var is one the code reads (ENV_VARS or the AWS ones)');

  // Checkpoints live in the S3 service, whose data is a named volume that survives re-creation.
  assert.match(e[ENV_VARS.checkpointUrl], new RegExp(`^s3://${STACK_BUCKET}/`));
  assert.equal(e.AWS_ENDPOINT_URL, `http://s3:${BASE_PORTS.s3}`);
  const s3 = service('s3');
  assert.equal(env(s3).ROOT_ACCESS_KEY_ID, e.AWS_ACCESS_KEY_ID, 'the worker uses the S3 service\'s credentials');
  assert.equal(env(s3).ROOT_SECRET_ACCESS_KEY, e.AWS_SECRET_ACCESS_KEY);
  const mount = volumeMounts(s3)[0];
  assert.ok(mount && compose.volumes && mount.source in compose.volumes, 'the S3 data is a named volume, so checkpoints survive container re-creation');
  assert.match(commandText(s3), new RegExp(`mkdir -p ${mount.target}/${STACK_BUCKET}\\b`), 'the bucket exists before workers start');
  assert.equal(dependsOn(worker).s3, 'service_started');

  assert.equal(dependsOn(worker)['temporal-admin-tools'], 'service_completed_successfully', 'worker starts after the search attributes exist');
});

void test('temporal-admin-tools registers every search attribute in SEARCH_ATTRIBUTES', () => {
  const admin = service('temporal-admin-tools');
  assert.match(admin.image ?? '', /^temporalio\/admin-tools:\d/);
  assert.equal(env(admin).TEMPORAL_ADDRESS, 'temporal:7233');
  const text = commandText(admin);
  assert.match(text, /temporal operator search-attribute create/);
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    assert.match(text, new RegExp(`\\b${name}=${type}\\b`), `${name}=${type} is registered by temporal-admin-tools`);
  }
});

void test('docker-compose.yml and scripts/stack.sh describe the same topology: services, published ports, versions, worker variables', () => {
  assert.deepEqual(Object.keys(compose.services).sort(), STACK_SERVICES.map((s) => s.name).sort(), 'the same services');
  const ports = stackPorts({ portOffset: 0 });
  for (const spec of STACK_SERVICES) {
    const published = publishedPorts(service(spec.name)).map((p) => `${p.published}:${p.target}`);
    assert.deepEqual(published, spec.published.map((name) => `${ports[name]}:${ports[name]}`), `${spec.name} publishes what the stack binds`);
    assert.ok(bindAddresses(service(spec.name)).every((a) => a === '127.0.0.1'), `${spec.name} publishes on 127.0.0.1 only, like the stack`);
  }
  // The same versions the stack builds and runs.
  assert.equal(service('postgresql').image, `postgres:${/postgresql\/(\d+)\//.exec(PG_BIN)?.[1]}`);
  assert.equal(service('temporal').image, `temporalio/auto-setup:${TEMPORAL_SERVER_VERSION}`);
  assert.match(service('temporal-admin-tools').image ?? '', new RegExp(`^temporalio/admin-tools:${TEMPORAL_SERVER_VERSION.replace(/\./g, '\\.')}-`));
  assert.equal(service('temporal-ui').image, `temporalio/ui:${UI_SERVER_VERSION}`);
  assert.equal(service('s3').image, `versity/versitygw:v${VERSITYGW_VERSION}`);
  // The worker gets the same variables; values that are not host names or paths are equal.
  const stackWorker = workerEnv(ports, { accessKeyId: 'x', secretAccessKey: 'y' }, { cacheDir: '/c', checkpointDir: '/d', programsFile: '/p' });
  const composeWorker = env(service('worker'));
  assert.deepEqual(Object.keys(composeWorker).sort(), Object.keys(stackWorker).sort(), 'the same worker variables');
  for (const k of ['TEMPORAL_NAMESPACE', 'TEMPORAL_TASK_QUEUE', 'EXPERIMENTS_CHECKPOINT_URL', 'AWS_REGION', 'LOG_LEVEL']) {
    assert.equal(composeWorker[k], stackWorker[k], `${k} is the same in both`);
  }
  const portOf = (v: string | undefined) => /:(\d+)$/.exec(v ?? '')?.[1];
  for (const k of ['TEMPORAL_ADDRESS', 'AWS_ENDPOINT_URL']) assert.equal(portOf(composeWorker[k]), portOf(stackWorker[k]), `${k} names the same port`);
});

void test('a compose CLI, when installed, accepts the file', (t) => {
  // The CI machine has the docker client but neither the compose plugin nor a daemon; Debian only
  // packages the older docker-compose v1. `config -q` needs no daemon, so use whichever exists,
  // and say so when none does: the structural tests above still ran.
  const candidates: [string, string[]][] = [
    ['docker', ['compose', '-f', COMPOSE_FILE, 'config', '-q']],
    ['docker-compose', ['-f', COMPOSE_FILE, 'config', '-q']],
  ];
  for (const [cmd, args] of candidates) {
    const probe = spawnSync(cmd, cmd === 'docker' ? ['compose', 'version'] : ['version'], { encoding: 'utf8' });
    if (probe.status !== 0) continue;
    const res = spawnSync(cmd, args, { encoding: 'utf8', cwd: ROOT });
    assert.equal(res.status, 0, `${cmd} ${args.join(' ')} failed:\n${res.stderr}`);
    t.diagnostic(`validated with ${cmd} (${probe.stdout.split('\n')[0]})`);
    return;
  }
  t.diagnostic('no compose CLI installed (neither `docker compose` nor `docker-compose`): structural checks only');
});
