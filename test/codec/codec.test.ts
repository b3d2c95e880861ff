/**
 * The AES-GCM codec and its key ring, without a server: round trips, key rotation, unknown key
 * ids, tampering, pass-through of plain payloads, and every configuration mistake named.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmCodec, DecryptError, ENCRYPTED_ENCODING, keyRing, keyRingFromEnv, resolveCodec, UnknownKeyError } from '../../src/codec';
import { encryptedKeyIds, missingKeyProblem } from '../../src/codec/history';

const k0 = { id: 'k0', key: randomBytes(32).toString('base64') };
const k1 = { id: 'k1', key: randomBytes(32).toString('base64') };
const secret = { lr: 0.0137911, note: 'distinctive-plaintext-4711' };
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');

test('encode hides the whole payload, metadata included; decode restores it exactly', async () => {
  const codec = new AesGcmCodec(keyRing([k0]));
  const plain = defaultPayloadConverter.toPayload(secret);
  const [enc] = await codec.encode([plain]);
  assert.equal(text(enc.metadata?.encoding), ENCRYPTED_ENCODING);
  assert.equal(text(enc.metadata?.['encryption-key-id']), 'k0');
  assert.deepEqual(Object.keys(enc.metadata ?? {}).sort(), ['encoding', 'encryption-key-id']);
  assert.ok(!text(enc.data).includes('distinctive') && !text(enc.data).includes('json/plain'));
  const [dec] = await codec.decode([enc]);
  assert.deepEqual(defaultPayloadConverter.fromPayload(dec), secret);
  assert.equal(text(dec.metadata?.encoding), 'json/plain');
  const [again] = await codec.encode([plain]);
  assert.notDeepEqual(Buffer.from(again.data ?? []), Buffer.from(enc.data ?? []), 'a fresh IV for every payload');
});

test('rotation: a payload encoded with the old key decodes once a new current key is added; new payloads use the new key', async () => {
  const [old] = await new AesGcmCodec(keyRing([k0])).encode([defaultPayloadConverter.toPayload(secret)]);
  const rotated = new AesGcmCodec(keyRing([k1, k0]));
  assert.deepEqual(defaultPayloadConverter.fromPayload((await rotated.decode([old]))[0]), secret);
  const [fresh] = await rotated.encode([defaultPayloadConverter.toPayload(secret)]);
  assert.equal(text(fresh.metadata?.['encryption-key-id']), 'k1');
  assert.deepEqual(rotated.keyIds, ['k1', 'k0']);
});

test('an unknown key id fails naming the id and the known ones; a wrong key under a known id or changed bytes fail to decrypt', async () => {
  const [old] = await new AesGcmCodec(keyRing([k0])).encode([defaultPayloadConverter.toPayload(secret)]);
  await assert.rejects(new AesGcmCodec(keyRing([k1])).decode([old]), (err: Error) => {
    assert.ok(err instanceof UnknownKeyError);
    assert.match(err.message, /key id "k0", which is not among the known keys \(k1\); add it to EXPERIMENTS_CODEC_KEYS/);
    return true;
  });
  const impostor = new AesGcmCodec(keyRing([{ id: 'k0', key: randomBytes(32) }]));
  await assert.rejects(impostor.decode([old]), (err: Error) => err instanceof DecryptError && /key id "k0" does not decrypt/.test(err.message));
  const data = Buffer.from(old.data ?? []);
  data[20] ^= 1;
  await assert.rejects(new AesGcmCodec(keyRing([k0])).decode([{ ...old, data }]), DecryptError);
});

test('plain payloads (histories from before encryption) decode unchanged', async () => {
  const plain = defaultPayloadConverter.toPayload(secret);
  assert.deepEqual(await new AesGcmCodec(keyRing([k0])).decode([plain]), [plain]);
});

test('history key check names what replay will need', async () => {
  const [enc] = await new AesGcmCodec(keyRing([k0])).encode([defaultPayloadConverter.toPayload(secret)]);
  const history = { events: [{ attrs: { input: { payloads: [enc, defaultPayloadConverter.toPayload(1)] } } }] };
  const ids = encryptedKeyIds(history);
  assert.deepEqual([...ids], ['k0']);
  assert.match(missingKeyProblem(ids, undefined) ?? '', /key id "k0", and encryption is off: set EXPERIMENTS_CODEC_KEYS or EXPERIMENTS_CODEC_KEY_FILE/);
  assert.match(missingKeyProblem(ids, new AesGcmCodec(keyRing([k1]))) ?? '', /^the history holds payloads encrypted with key id "k0", which is not among the known keys \(k1\)/);
  assert.equal(missingKeyProblem(ids, new AesGcmCodec(keyRing([k1, k0]))), undefined);
  assert.equal(missingKeyProblem(encryptedKeyIds({ events: [] }), undefined), undefined);
});

test('keys from the environment: the list or a file, first current; each mistake names the variable and the entry', () => {
  assert.equal(keyRingFromEnv({}), undefined, 'off when neither variable is set');
  assert.equal(resolveCodec(false, { EXPERIMENTS_CODEC_KEYS: `k1:${k1.key}` }), undefined, 'false wins over the environment');
  const ring = keyRingFromEnv({ EXPERIMENTS_CODEC_KEYS: ` k1:${k1.key} , k0:${k0.key} ` });
  assert.equal(ring?.current.id, 'k1');
  assert.deepEqual([...(ring?.byId.keys() ?? [])], ['k1', 'k0']);

  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'codec-keys-')), 'keys');
  fs.writeFileSync(file, `# rotated 2026-01\nk1:${k1.key}\n\nk0:${k0.key}  # old\n`);
  assert.equal(keyRingFromEnv({ EXPERIMENTS_CODEC_KEY_FILE: file })?.current.id, 'k1');

  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ EXPERIMENTS_CODEC_KEYS: `k1:${k1.key}`, EXPERIMENTS_CODEC_KEY_FILE: file }, /EXPERIMENTS_CODEC_KEYS and EXPERIMENTS_CODEC_KEY_FILE: expected one of them, received both/],
    [{ EXPERIMENTS_CODEC_KEYS: k1.key }, /EXPERIMENTS_CODEC_KEYS: entry 1: expected id:base64key/],
    [{ EXPERIMENTS_CODEC_KEYS: `k1:${randomBytes(16).toString('base64')}` }, /EXPERIMENTS_CODEC_KEYS\[0\] \(k1\): expected a 32-byte AES-256 key, received 16 bytes/],
    [{ EXPERIMENTS_CODEC_KEYS: 'k1:not base64!' }, /EXPERIMENTS_CODEC_KEYS\[0\] \(k1\): expected the key in base64/],
    [{ EXPERIMENTS_CODEC_KEYS: `k1:${k1.key},k1:${k0.key}` }, /EXPERIMENTS_CODEC_KEYS\[1\]: key id "k1" appears twice/],
    [{ EXPERIMENTS_CODEC_KEYS: `bad id:${k1.key}` }, /EXPERIMENTS_CODEC_KEYS\[0\]: expected a key id of letters/],
    [{ EXPERIMENTS_CODEC_KEYS: ' , ' }, /expected at least one key/],
    [{ EXPERIMENTS_CODEC_KEY_FILE: path.join(path.dirname(file), 'missing') }, /EXPERIMENTS_CODEC_KEY_FILE: cannot read .*missing.* \(ENOENT\)/],
  ];
  for (const [env, expected] of cases) {
    assert.throws(() => keyRingFromEnv(env), (err: Error) => {
      assert.match(err.message, expected);
      assert.ok(!err.message.includes(k1.key) && !err.message.includes(k0.key), 'a key is never echoed');
      return true;
    });
  }
  assert.throws(() => resolveCodec({ keys: [] }), /encryption\.keys: expected at least one key/);
});
