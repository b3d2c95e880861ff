/**
 * Encryption keys for the payload codec: where they come from (a plugin option, or the
 * EXPERIMENTS_CODEC_KEYS / EXPERIMENTS_CODEC_KEY_FILE variables) and how they are checked.
 *
 * A key ring is an ordered list of `id:base64key` entries. The first is the **current** key:
 * new payloads are encrypted with it. Every key decrypts, so keys rotate by putting a new one
 * first and keeping the old ones for as long as histories encrypted with them exist.
 * Every mistake throws InvalidInputError naming the variable (or option) and the entry.
 */
import * as fs from 'node:fs';
import { InvalidInputError } from '../shared/schema';

export const CODEC_ENV_VARS = {
  /** `id1:base64key,id2:base64key`; the first is current. */
  keys: 'EXPERIMENTS_CODEC_KEYS',
  /** A file of `id:base64key` lines (`#` comments); the first is current. */
  keyFile: 'EXPERIMENTS_CODEC_KEY_FILE',
  /** The codec server's auth token (instead of `--auth-token`, which other users can see in `ps`). */
  authToken: 'EXPERIMENTS_CODEC_AUTH_TOKEN',
} as const;

/** AES-256 needs 32 bytes of key. */
export const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface CodecKeyInput {
  /** Stored in every payload it encrypts (metadata `encryption-key-id`): letters, digits, `._-`, at most 64. */
  readonly id: string;
  /** 32 bytes, or their base64. */
  readonly key: Uint8Array | string;
}

export interface CodecKey {
  readonly id: string;
  readonly key: Buffer;
}

export interface KeyRing {
  /** Encrypts new payloads. */
  readonly current: CodecKey;
  /** Every key by id, the current one included. */
  readonly byId: ReadonlyMap<string, CodecKey>;
}

/** A checked key ring; throws InvalidInputError naming `source` and the bad entry. */
export function keyRing(inputs: readonly CodecKeyInput[], source = 'encryption.keys'): KeyRing {
  if (inputs.length === 0) throw new InvalidInputError([`${source}: expected at least one key (id:base64key), received none`]);
  const byId = new Map<string, CodecKey>();
  inputs.forEach((input, i) => {
    const where = `${source}[${i}]`;
    if (!KEY_ID.test(input.id)) {
      throw new InvalidInputError([`${where}: expected a key id of letters, digits, '.', '_' or '-' (at most 64), received ${JSON.stringify(input.id)}`]);
    }
    if (byId.has(input.id)) throw new InvalidInputError([`${where}: key id ${JSON.stringify(input.id)} appears twice`]);
    const key = typeof input.key === 'string' ? decodeBase64(input.key, `${where} (${input.id})`) : Buffer.from(input.key);
    if (key.length !== KEY_BYTES) {
      throw new InvalidInputError([`${where} (${input.id}): expected a ${KEY_BYTES}-byte AES-256 key, received ${key.length} bytes (make one with \`openssl rand -base64 32\`)`]);
    }
    byId.set(input.id, { id: input.id, key });
  });
  return { current: byId.get(inputs[0].id) as CodecKey, byId };
}

function decodeBase64(text: string, where: string): Buffer {
  const trimmed = text.trim();
  if (!BASE64.test(trimmed) || trimmed.length % 4 !== 0) throw new InvalidInputError([`${where}: expected the key in base64, received text that is not base64`]);
  return Buffer.from(trimmed, 'base64');
}

/** Parses `id:base64key` entries (comma- or newline-separated); never echoes a key back. */
export function parseKeyList(text: string, source: string): CodecKeyInput[] {
  const entries = text
    .split(/[,\n]/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '');
  return entries.map((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon <= 0) throw new InvalidInputError([`${source}: entry ${i + 1}: expected id:base64key, received an entry without an id`]);
    return { id: entry.slice(0, colon).trim(), key: entry.slice(colon + 1).trim() };
  });
}

/**
 * The key ring the environment names, or undefined when neither variable is set (encryption
 * off). Setting both is an error: one place decides which key is current.
 */
export function keyRingFromEnv(env: NodeJS.ProcessEnv = process.env): KeyRing | undefined {
  const list = env[CODEC_ENV_VARS.keys]?.trim();
  const file = env[CODEC_ENV_VARS.keyFile]?.trim();
  if (list && file) throw new InvalidInputError([`${CODEC_ENV_VARS.keys} and ${CODEC_ENV_VARS.keyFile}: expected one of them, received both`]);
  if (list) return keyRing(parseKeyList(list, CODEC_ENV_VARS.keys), CODEC_ENV_VARS.keys);
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError([`${CODEC_ENV_VARS.keyFile}: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  const source = `${CODEC_ENV_VARS.keyFile} (${file})`;
  return keyRing(parseKeyList(text, source), source);
}
