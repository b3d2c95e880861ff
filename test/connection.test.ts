/**
 * Connection profiles without a server: what @temporalio/envconfig makes of the config file,
 * the TEMPORAL_* variables and the CLI's connection flags, and the embedded default.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { configFromEnv } from '../src/config';
import { applyConnectionFlags, connectionOptions, loadConnectionProfile } from '../src/connection';
import { InvalidInputError } from '../src/shared/schema';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-conn-'));
const configFile = path.join(tmp, 'temporal.toml');
const caFile = path.join(tmp, 'ca.pem');
fs.writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
fs.writeFileSync(
  configFile,
  `[profile.default]
address = "file-default:7233"
namespace = "file-ns"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "file-key"

[profile.mtls]
address = "secure:7233"
[profile.mtls.tls]
server_ca_cert_path = ${JSON.stringify(caFile)}
server_name = "temporal.internal"
`,
);
// HOME points at an empty directory: a developer's own ~/.config/temporalio must not leak in.
const base = { HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'xdg') };

test('no address anywhere: undefined (embedded mode), namespace "default"', () => {
  const config = configFromEnv(base);
  assert.equal(config.address, undefined);
  assert.equal(config.namespace, 'default');
  assert.deepEqual(connectionOptions(config.connection, 'localhost:7233'), { address: 'localhost:7233' });
});

test('the config file default profile, then TEMPORAL_PROFILE, then variables, then flags', () => {
  const env = { ...base, TEMPORAL_CONFIG_FILE: configFile };
  assert.equal(configFromEnv(env).address, 'file-default:7233');
  assert.equal(configFromEnv(env).namespace, 'file-ns');

  const cloud = configFromEnv({ ...env, TEMPORAL_PROFILE: 'cloud' });
  assert.equal(cloud.address, 'ns.acct.tmprl.cloud:7233');
  assert.equal(cloud.namespace, 'ns.acct');
  // An API key without TLS settings turns TLS on with system roots, as Temporal Cloud needs.
  assert.deepEqual(connectionOptions(cloud.connection, cloud.address!), { address: 'ns.acct.tmprl.cloud:7233', tls: true, apiKey: 'file-key' });

  const overridden = configFromEnv({ ...env, TEMPORAL_PROFILE: 'cloud', TEMPORAL_ADDRESS: 'env:1', TEMPORAL_API_KEY: 'env-key', TEMPORAL_TLS: 'false' });
  assert.equal(overridden.address, 'env:1');
  assert.equal(overridden.connection.apiKey, 'env-key');
  assert.equal(overridden.connection.tls, false, 'TEMPORAL_TLS=false wins over the API key default');

  const flagged: NodeJS.ProcessEnv = { ...env, TEMPORAL_ADDRESS: 'env:1' };
  applyConnectionFlags({ profile: 'cloud', address: 'flag:2', namespace: 'flag-ns', 'api-key': 'flag-key', json: true }, flagged);
  const fromFlags = configFromEnv(flagged);
  assert.equal(fromFlags.address, 'flag:2');
  assert.equal(fromFlags.namespace, 'flag-ns');
  assert.equal(fromFlags.connection.apiKey, 'flag-key');
});

test('TLS from the profile and from variables: CA bytes, server name, client pair', () => {
  const mtls = loadConnectionProfile({ ...base, TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'mtls' });
  assert.equal(mtls.address, 'secure:7233');
  assert.ok(mtls.tls && typeof mtls.tls === 'object');
  assert.equal(mtls.tls.serverNameOverride, 'temporal.internal');
  assert.equal(Buffer.from(mtls.tls.serverRootCACertificate ?? []).toString(), fs.readFileSync(caFile, 'utf8'));

  const fromEnv = loadConnectionProfile({ ...base, TEMPORAL_ADDRESS: 'x:1', TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile, TEMPORAL_TLS_CLIENT_CERT_PATH: caFile, TEMPORAL_TLS_CLIENT_KEY_PATH: caFile, TEMPORAL_GRPC_META_X_TEAM: 'ml' });
  assert.ok(fromEnv.tls && typeof fromEnv.tls === 'object');
  assert.ok(fromEnv.tls.clientCertPair, 'client certificate pair');
  assert.deepEqual(fromEnv.metadata, { 'x-team': 'ml' });
});

test('a missing profile, a bad config file and an empty flag are errors naming them', () => {
  assert.throws(() => configFromEnv({ ...base, TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'nope' }), (err: unknown) => {
    assert.ok(err instanceof InvalidInputError);
    assert.match(err.message, /connection profile "nope" \(config file .*temporal\.toml\): Profile 'nope' not found/);
    return true;
  });
  const bad = path.join(tmp, 'bad.toml');
  fs.writeFileSync(bad, '[profile.default\naddress = ');
  assert.throws(() => configFromEnv({ ...base, TEMPORAL_CONFIG_FILE: bad }), /connection profile "default" \(config file .*bad\.toml\)/);
  assert.throws(() => applyConnectionFlags({ address: ' ' }, {}), /--address: expected a non-empty value/);
});

test('CLI: --profile naming a missing profile is exit 2 with one line; --help lists the connection flags', () => {
  const bin = path.resolve(__dirname, '..', 'bin', 'experiments.js');
  const env: NodeJS.ProcessEnv = { ...process.env, ...base, TEMPORAL_CONFIG_FILE: configFile, NO_COLOR: '1' };
  delete env.TEMPORAL_ADDRESS;
  const r = spawnSync(process.execPath, [bin, 'status', 's1', '--profile', 'nope'], { env, encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.deepEqual(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /connection profile "nope"/);
  for (const command of ['run', 'submit', 'status', 'cancel', 'worker']) {
    const help = spawnSync(process.execPath, [bin, command, '--help'], { env, encoding: 'utf8' });
    for (const flag of ['--profile NAME', '--address HOST:PORT', '--namespace NAME', '--api-key KEY']) assert.ok(help.stdout.includes(flag), `${command} --help lists ${flag}`);
  }
});
