/**
 * Payload encryption, switched on in one place for workers, clients, the CLI and replay: a key
 * ring from an option or the environment becomes an AesGcmCodec, appended to the data
 * converter's `payloadCodecs` (after any codec already there, so it encrypts last, for example
 * after compression).
 */
import type { DataConverter } from '@temporalio/common';
import { AesGcmCodec } from './aes-gcm';
import { keyRing, keyRingFromEnv, type CodecKeyInput } from './keys';

export { AesGcmCodec, DecryptError, ENCRYPTED_ENCODING, KEY_ID_METADATA, UnknownKeyError, encryptedKeyId } from './aes-gcm';
export { CODEC_ENV_VARS, keyRing, keyRingFromEnv, parseKeyList, type CodecKey, type CodecKeyInput, type KeyRing } from './keys';

export interface EncryptionOptions {
  /** The key ring, current key first; every key decrypts. */
  readonly keys: readonly CodecKeyInput[];
}

/**
 * The codec an `encryption` option asks for: `false` is off, options build one, and undefined
 * reads EXPERIMENTS_CODEC_KEYS / EXPERIMENTS_CODEC_KEY_FILE (off when neither is set).
 */
export function resolveCodec(encryption: EncryptionOptions | false | undefined, env: NodeJS.ProcessEnv = process.env): AesGcmCodec | undefined {
  if (encryption === false) return undefined;
  const ring = encryption ? keyRing(encryption.keys) : keyRingFromEnv(env);
  return ring ? new AesGcmCodec(ring) : undefined;
}

/** `existing` with `codec` appended to its payload codecs. */
export function withCodec(existing: DataConverter | undefined, codec: AesGcmCodec): DataConverter {
  return { ...existing, payloadCodecs: [...(existing?.payloadCodecs ?? []), codec] };
}
