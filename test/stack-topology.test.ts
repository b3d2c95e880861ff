/**
 * The stack's generated configs and ports, without starting anything (test/stack.test.ts runs
 * them): loopback everywhere, the postgres12 plugin for both stores, the port offset's limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { BASE_PORTS, dynamicConfigYaml, MAX_MEMBERSHIP_PORT, STACK_DYNAMIC_CONFIG, stackPorts, temporalConfigYaml, uiConfigYaml } from '../src/stack/topology';

void test('stackPorts adds the offset and refuses one that pushes membership ports past the smallint the server stores them in', () => {
  const ports = stackPorts({ portOffset: 100 });
  for (const [name, port] of Object.entries(ports)) assert.equal(port, BASE_PORTS[name as keyof typeof BASE_PORTS] + 100);
  const max = MAX_MEMBERSHIP_PORT - BASE_PORTS.internalWorkerMembership;
  assert.equal(stackPorts({ portOffset: max }).internalWorkerMembership, MAX_MEMBERSHIP_PORT);
  assert.throws(() => stackPorts({ portOffset: max + 1 }), /EXPERIMENTS_STACK_PORT_OFFSET: expected an integer from 0 to 25828 .* received 25829/);
  assert.throws(() => stackPorts({ portOffset: -1 }), /received -1/);
});

void test('the server config: both stores on postgres12 at the stack port, every service bound to 127.0.0.1', () => {
  const ports = stackPorts({ portOffset: 0 });
  const cfg = parse(temporalConfigYaml(ports, 'pw"with\'quotes', '/d/dyn.yaml')) as {
    persistence: { datastores: Record<string, { sql: { pluginName: string; connectAddr: string; password: string; databaseName: string } }> };
    services: Record<string, { rpc: { bindOnIP: string; grpcPort: number; membershipPort: number } }>;
    dynamicConfigClient: { filepath: string };
  };
  const stores = Object.values(cfg.persistence.datastores);
  assert.deepEqual(stores.map((s) => s.sql.databaseName).sort(), ['temporal', 'temporal_visibility']);
  for (const s of stores) {
    assert.equal(s.sql.pluginName, 'postgres12');
    assert.equal(s.sql.connectAddr, `127.0.0.1:${ports.postgresql}`);
    assert.equal(s.sql.password, 'pw"with\'quotes', 'the password survives YAML quoting');
  }
  assert.deepEqual(Object.keys(cfg.services).sort(), ['frontend', 'history', 'matching', 'worker']);
  for (const svc of Object.values(cfg.services)) assert.equal(svc.rpc.bindOnIP, '127.0.0.1');
  assert.equal(cfg.services.frontend.rpc.grpcPort, ports.frontend);
  assert.equal(cfg.dynamicConfigClient.filepath, '/d/dyn.yaml');
});

void test('the dynamic config and the UI config parse, and the UI points at the frontend on loopback', () => {
  const dyn = parse(dynamicConfigYaml()) as Record<string, { value: unknown }[]>;
  for (const [k, v] of Object.entries(STACK_DYNAMIC_CONFIG)) assert.deepEqual(dyn[k]?.[0]?.value, v, k);
  const ports = stackPorts({ portOffset: 7 });
  const ui = parse(uiConfigYaml(ports)) as { temporalGrpcAddress: string; host: string; port: number };
  assert.equal(ui.temporalGrpcAddress, `127.0.0.1:${ports.frontend}`);
  assert.equal(ui.host, '127.0.0.1');
  assert.equal(ui.port, ports.ui);
});
