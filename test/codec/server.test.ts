/**
 * `experiments codec-server` as a real child process, over plain HTTP: the protocol (encode,
 * decode, the namespace segment, 404/405/400), CORS (preflight, allowed and refused origins),
 * the auth token, key rotation through the server, and its one-line errors and clean stop.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, keyRing } from '../../src/codec';
import { freePort } from '../../src/dev-server';
import { ROOT, waitFor } from '../helpers/env';

const BIN = path.join(ROOT, 'bin', 'experiments.js');
const k0 = { id: 'k0', key: randomBytes(32).toString('base64') };
const k1 = { id: 'k1', key: randomBytes(32).toString('base64') };
const TOKEN = 'codec-test-token-3141';
const UI_ORIGIN = 'http://127.0.0.1:18233';

let child: ChildProcess;
let output = '';
let base: string;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [BIN, 'codec-server', '--port', String(port), '--origin', `${UI_ORIGIN},http://localhost:18233`], {
    env: { ...process.env, EXPERIMENTS_CODEC_KEYS: `k1:${k1.key},k0:${k0.key}`, EXPERIMENTS_CODEC_AUTH_TOKEN: TOKEN, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(() => output.includes('Ctrl-C stops it'), { timeoutMs: 60_000, what: `the codec server to start (output: ${output})`, abortIf: () => (child.exitCode !== null ? `codec server exited: ${output}` : undefined) });
});
after(() => {
  if (child.exitCode === null) child.kill('SIGKILL');
});

const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const fromJson = (p: { metadata: Record<string, string>; data: string }): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data, 'base64'),
});

function post(route: string, body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) {
  return fetch(`${base}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

test('encode then decode round-trips through the server, also under a namespace segment; new payloads use the current key', async () => {
  const value = { lr: 0.0137911, dataset: 'distinctive-dataset-2718' };
  const enc = await post('/encode', { payloads: [toJson(defaultPayloadConverter.toPayload(value))] });
  assert.equal(enc.status, 200);
  assert.equal(enc.headers.get('content-type'), 'application/json');
  const encoded = (await enc.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
  assert.equal(Buffer.from(encoded.payloads[0].metadata['encryption-key-id'], 'base64').toString(), 'k1');
  assert.ok(!Buffer.from(encoded.payloads[0].data, 'base64').toString().includes('distinctive'));
  const doubled = await post('//decode', encoded);
  assert.equal(doubled.status, 200, 'a doubled slash (the temporal CLI sends one) is the same route');
  const dec = await post('/default/decode', encoded, { Authorization: `Bearer ${TOKEN}`, 'X-Namespace': 'default' });
  assert.equal(dec.status, 200);
  const decoded = (await dec.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
  assert.deepEqual(defaultPayloadConverter.fromPayload(fromJson(decoded.payloads[0])), value);
});

test('rotation: a payload encrypted with the old key (k0) decodes on a server whose current key is k1', async () => {
  const [old] = await new AesGcmCodec(keyRing([k0])).encode([defaultPayloadConverter.toPayload('old-secret-1618')]);
  const res = await post('/decode', { payloads: [toJson(old)] });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
  assert.equal(defaultPayloadConverter.fromPayload(fromJson(body.payloads[0])), 'old-secret-1618');
});

test('a payload under an unknown key id is a 400 naming the id', async () => {
  const [other] = await new AesGcmCodec(keyRing([{ id: 'k9', key: randomBytes(32) }])).encode([defaultPayloadConverter.toPayload(1)]);
  const res = await post('/decode', { payloads: [toJson(other)] });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /key id "k9", which is not among the known keys \(k1, k0\)/);
});

test('auth token: missing or wrong is 401; Bearer token or the bare token passes', async () => {
  const plain = { payloads: [toJson(defaultPayloadConverter.toPayload(1))] };
  const none = await post('/encode', plain, {});
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  assert.equal((await post('/encode', plain, { Authorization: 'Bearer wrong' })).status, 401);
  assert.equal((await post('/decode', plain, { Authorization: `Bearer ${TOKEN}x` })).status, 401);
  assert.equal((await post('/decode', plain, { Authorization: TOKEN })).status, 200);
});

test('CORS: a preflight from the UI origin is answered without the token; other origins are refused', async () => {
  const pre = await fetch(`${base}/decode`, {
    method: 'OPTIONS',
    headers: { Origin: UI_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace,authorization' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), UI_ORIGIN);
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
  const allowed = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/,\s*/);
  for (const h of ['content-type', 'x-namespace', 'authorization']) assert.ok(allowed.includes(h), `preflight allows ${h}: ${allowed.join(', ')}`);

  const fromUi = await post('/decode', { payloads: [] }, { Origin: 'http://localhost:18233', Authorization: `Bearer ${TOKEN}` });
  assert.equal(fromUi.status, 200);
  assert.equal(fromUi.headers.get('access-control-allow-origin'), 'http://localhost:18233');
  assert.equal(fromUi.headers.get('vary'), 'Origin');

  const evilPre = await fetch(`${base}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(evilPre.status, 403);
  assert.equal(evilPre.headers.get('access-control-allow-origin'), null);
  const evil = await post('/decode', { payloads: [] }, { Origin: 'http://evil.example', Authorization: `Bearer ${TOKEN}` });
  assert.equal(evil.status, 403, 'a page elsewhere cannot make the server decrypt, even with the token');
});

test('protocol errors: unknown path 404, other method 405, bad body 400 naming the field', async () => {
  assert.equal((await post('/a/b/decode', { payloads: [] })).status, 404);
  assert.equal((await post('/download', { payloads: [] })).status, 404);
  const get = await fetch(`${base}/decode`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST, OPTIONS');
  const notJson = await post('/decode', '{nope');
  assert.equal(notJson.status, 400);
  assert.match(await notJson.text(), /body: expected JSON/);
  const badField = await post('/decode', { payloads: [{ data: 42 }] });
  assert.equal(badField.status, 400);
  assert.match(await badField.text(), /body\.payloads\[0\]\.data/);
});

test('bad keys, no keys or a bad origin: one line, exit 2, before listening', () => {
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [BIN, 'codec-server', '--port', '1'], { env: { ...process.env, EXPERIMENTS_CODEC_KEYS: '', EXPERIMENTS_CODEC_KEY_FILE: '', ...env }, encoding: 'utf8' });
  const bad = run({ EXPERIMENTS_CODEC_KEYS: `k1:${randomBytes(8).toString('base64')}` });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), 'experiments: EXPERIMENTS_CODEC_KEYS[0] (k1): expected a 32-byte AES-256 key, received 8 bytes (make one with `openssl rand -base64 32`)');
  const none = run({});
  assert.equal(none.status, 2);
  assert.match(none.stderr.trim(), /^experiments: codec-server: no keys to serve; set EXPERIMENTS_CODEC_KEYS or EXPERIMENTS_CODEC_KEY_FILE/);
  const origin = spawnSync(process.execPath, [BIN, 'codec-server', '--origin', 'localhost:8233/ui'], { env: { ...process.env, EXPERIMENTS_CODEC_KEYS: `k1:${k1.key}` }, encoding: 'utf8' });
  assert.equal(origin.status, 2);
  assert.match(origin.stderr.trim(), /^experiments: --origin: expected origins such as http:\/\/localhost:8233 .*received "localhost:8233\/ui"$/);
});

test('SIGTERM stops it with exit 0', async () => {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(output, /Stopped\./);
});
