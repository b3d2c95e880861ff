/**
 * Where checkpoints go, from a URL: `s3://bucket/prefix` selects the S3 store, a path or
 * `file:///path` the local one. The S3 connection comes from the standard AWS variables
 * (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 * or any other source of the SDK's default credential chain) plus EXPERIMENTS_S3_FORCE_PATH_STYLE.
 * Pure parsing: nothing here opens a connection.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHECKPOINT_URL_ENV = 'EXPERIMENTS_CHECKPOINT_URL';
export const FORCE_PATH_STYLE_ENV = 'EXPERIMENTS_S3_FORCE_PATH_STYLE';

export interface S3Location {
  readonly kind: 's3';
  readonly bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket's root. */
  readonly prefix: string;
}

export interface LocalLocation {
  readonly kind: 'local';
  readonly dir: string;
}

export type CheckpointLocation = S3Location | LocalLocation;

/** S3 client settings taken from the environment. */
export interface S3ConnectionConfig {
  /** Endpoint of an S3-compatible server; undefined for AWS itself. */
  readonly endpoint: string | undefined;
  /** @default 'us-east-1' (local servers ignore it, but the SDK insists on one) */
  readonly region: string;
  /** Path-style addressing (`http://host/bucket/key`). @default true when an endpoint is set */
  readonly forcePathStyle: boolean;
}

// DNS bucket names (3-63 of a-z, 0-9, '.', '-'); S3-compatible servers accept this subset too.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parses a checkpoint URL; throws a message naming the URL and what was expected. */
export function parseCheckpointUrl(url: string): CheckpointLocation {
  const expected = 'expected s3://<bucket>[/<prefix>], file:///<dir> or a directory path';
  if (typeof url !== 'string' || url.trim() === '') throw new Error(`checkpoint URL: ${expected}, received ${JSON.stringify(url)}`);
  if (url.startsWith('file:')) {
    try {
      return { kind: 'local', dir: fileURLToPath(url) };
    } catch (err) {
      throw new Error(`checkpoint URL ${JSON.stringify(url)}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { kind: 'local', dir: path.resolve(url) };
  if (!url.startsWith('s3://')) throw new Error(`checkpoint URL ${JSON.stringify(url)}: ${expected}`);
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket)) {
    throw new Error(`checkpoint URL ${JSON.stringify(url)}: bucket: expected 3-63 characters of a-z, 0-9, '.' or '-', received ${JSON.stringify(bucket)}`);
  }
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((part) => part === '..' || part === '.') || /[\\\0]|\/\//.test(prefix)) {
    throw new Error(`checkpoint URL ${JSON.stringify(url)}: prefix: expected '/'-separated names without '.', '..', '//' or '\\', received ${JSON.stringify(prefix)}`);
  }
  return { kind: 's3', bucket, prefix };
}

/** The S3 settings in `env`; a malformed value is an error naming the variable. */
export function s3ConnectionFromEnv(env: NodeJS.ProcessEnv = process.env): S3ConnectionConfig {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new Error(`AWS_ENDPOINT_URL: expected an http:// or https:// URL, received ${JSON.stringify(endpoint)}`);
  }
  const style = env[FORCE_PATH_STYLE_ENV];
  let forcePathStyle = endpoint !== undefined;
  if (style !== undefined && style !== '') {
    if (!['true', 'false', '1', '0'].includes(style)) {
      throw new Error(`${FORCE_PATH_STYLE_ENV}: expected true or false, received ${JSON.stringify(style)}`);
    }
    forcePathStyle = style === 'true' || style === '1';
  }
  return { endpoint, region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1', forcePathStyle };
}
