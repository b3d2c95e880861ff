/**
 * Which encryption keys a saved history needs, so replay can say "this history needs key k1"
 * before it starts, rather than fail deep inside a workflow activation.
 */
import { encryptedKeyId, UnknownKeyError, type AesGcmCodec } from './aes-gcm';
import { CODEC_ENV_VARS } from './keys';

/** Key ids of every encrypted payload anywhere in `value` (a decoded history, or part of one). */
export function encryptedKeyIds(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const v of value) encryptedKeyIds(v, found);
  } else if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    const metadata = (value as { metadata?: unknown }).metadata;
    if (typeof metadata === 'object' && metadata !== null && ArrayBuffer.isView((metadata as { encoding?: unknown }).encoding)) {
      const id = encryptedKeyId(value as Parameters<typeof encryptedKeyId>[0]);
      if (id !== undefined) found.add(id);
    }
    for (const v of Object.values(value)) encryptedKeyIds(v, found);
  }
  return found;
}

/** Why `codec` cannot read a history holding payloads under `keyIds`; undefined when it can. */
export function missingKeyProblem(keyIds: ReadonlySet<string>, codec: AesGcmCodec | undefined): string | undefined {
  if (keyIds.size === 0) return undefined;
  const ids = [...keyIds].map((id) => JSON.stringify(id)).join(', ');
  if (!codec) return `the history holds payloads encrypted with key id ${ids}, and encryption is off: set ${CODEC_ENV_VARS.keys} or ${CODEC_ENV_VARS.keyFile}`;
  const missing = [...keyIds].find((id) => !codec.keys.byId.has(id));
  return missing === undefined ? undefined : new UnknownKeyError(missing, codec.keyIds).message.replace(/^payload is/, 'the history holds payloads');
}
