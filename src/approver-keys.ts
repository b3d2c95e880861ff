/**
 * Approver keys on the CLI side: `experiments keygen` writes an Ed25519 key pair, and
 * `experiments approve --key FILE` signs the claim the session workflow verifies
 * (src/shared/approval.ts holds the message; node:crypto signs it, @noble/curves verifies it).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { approvalMessage, type ApprovalClaim } from './shared/approval';
import { InvalidInputError } from './shared/schema';

export interface KeyPairFiles {
  readonly privateKeyFile: string;
  readonly publicKeyFile: string;
  readonly publicKey: string;
}

/** Writes `<base>.key` (PKCS#8 PEM, mode 0600) and `<base>.pub` (hex); refuses to overwrite. */
export function writeKeyPair(base: string): KeyPairFiles {
  const privateKeyFile = `${base}.key`;
  const publicKeyFile = `${base}.pub`;
  for (const file of [privateKeyFile, publicKeyFile]) {
    if (fs.existsSync(file)) throw new InvalidInputError([`${file} exists; choose another --out or remove it first`]);
  }
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const hex = publicKeyHex(publicKey);
  fs.writeFileSync(privateKeyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  fs.writeFileSync(publicKeyFile, `${hex}\n`, { flag: 'wx' });
  return { privateKeyFile, publicKeyFile, publicKey: hex };
}

/** Signs a claim for `sessionId` with the PEM private key in `file`; returns the hex signature. */
export function signClaim(file: string, sessionId: string, claim: Omit<ApprovalClaim, 'signature'>): string {
  const key = readPrivateKey(file);
  return crypto.sign(null, approvalMessage(sessionId, claim), key).toString('hex');
}

export function readPrivateKey(file: string): crypto.KeyObject {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError([`--key: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch {
    throw new InvalidInputError([`--key: expected a PEM private key from \`experiments keygen\`, received ${file} that is not one`]);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new InvalidInputError([`--key: expected an Ed25519 key, received a ${key.asymmetricKeyType ?? 'unknown'} key in ${file}`]);
  return key;
}

/** Raw 32-byte public key as hex, the form a policy's `approvers[].publicKey` takes. */
export function publicKeyHex(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url').toString('hex');
}
