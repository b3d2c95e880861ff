/**
 * The AES-256-GCM payload codec. It runs on the Node side only (workers, clients, replay, the
 * codec server): the SDK applies codecs outside the workflow sandbox, so node:crypto is fine.
 *
 * An encrypted payload keeps nothing of the original in the clear: the whole original payload
 * (its metadata, so its encoding, and its data) is serialised and encrypted. What stays
 * readable is the metadata the codec needs: `encoding: binary/encrypted` and
 * `encryption-key-id`. Data is `iv (12 bytes) | ciphertext | tag (16 bytes)`; the key id is
 * authenticated too (GCM additional data), so relabelling a payload fails to decrypt.
 *
 * Payloads that are not `binary/encrypted` decode unchanged, so histories written before
 * encryption was switched on stay readable.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { KeyRing } from './keys';
import { CODEC_ENV_VARS } from './keys';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

/** A payload encrypted with a key id this codec does not know. */
export class UnknownKeyError extends Error {
  override readonly name = 'UnknownKeyError';
  constructor(
    readonly keyId: string,
    known: readonly string[],
  ) {
    super(`payload is encrypted with key id ${JSON.stringify(keyId)}, which is not among the known keys (${known.join(', ')}); add it to ${CODEC_ENV_VARS.keys} or ${CODEC_ENV_VARS.keyFile}`);
  }
}

/** A payload that does not decrypt: a wrong key under a reused id, or changed bytes. */
export class DecryptError extends Error {
  override readonly name = 'DecryptError';
}

/** The key id of an encrypted payload, undefined for any other payload. */
export function encryptedKeyId(payload: Payload): string | undefined {
  if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return undefined;
  return text(payload.metadata?.[KEY_ID_METADATA]) ?? '';
}

export class AesGcmCodec implements PayloadCodec {
  constructor(readonly keys: KeyRing) {}

  /** Ids of every key this codec decrypts with, current first. */
  get keyIds(): string[] {
    return [...this.keys.byId.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decrypt(p));
  }

  encrypt(payload: Payload): Payload {
    const { id, key } = this.keys.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(utf8(id));
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return { metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(id) }, data };
  }

  decrypt(payload: Payload): Payload {
    const id = encryptedKeyId(payload);
    if (id === undefined) return payload;
    const entry = this.keys.byId.get(id);
    if (!entry) throw new UnknownKeyError(id, this.keyIds);
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new DecryptError(`payload encrypted with key id ${JSON.stringify(id)} is truncated (${data.length} bytes)`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', entry.key, data.subarray(0, IV_BYTES));
      decipher.setAAD(utf8(id));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    } catch (err) {
      throw new DecryptError(`payload encrypted with key id ${JSON.stringify(id)} does not decrypt: the key under that id differs, or the payload was changed`, { cause: err });
    }
  }
}
