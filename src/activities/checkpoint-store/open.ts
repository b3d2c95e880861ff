/**
 * Opens the store a worker is configured for: S3 for `s3://bucket/prefix`, the local store for a
 * directory. One place decides, so the plugin, the CLI and the tests agree.
 */
import type { Logger } from 'pino';
import { LocalCheckpointStore } from './local';
import { S3CheckpointStore } from './s3';
import { parseCheckpointUrl, s3ConnectionFromEnv } from './s3-config';
import { createS3Client } from './s3-io';
import type { CheckpointStore } from './types';

export interface OpenStoreOptions {
  /** `s3://bucket/prefix`, `file:///dir` or a directory; undefined selects `checkpointDir`. */
  readonly checkpointUrl?: string;
  /** The local store's directory when no URL is given. */
  readonly checkpointDir: string;
  /** Local cache directory of a remote store (files for `command` trainers). */
  readonly cacheDir: string;
  /** Where the S3 connection settings come from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  readonly logger?: Logger;
}

export function openCheckpointStore(options: OpenStoreOptions): CheckpointStore {
  if (options.checkpointUrl === undefined || options.checkpointUrl === '') return new LocalCheckpointStore(options.checkpointDir);
  const location = parseCheckpointUrl(options.checkpointUrl);
  if (location.kind === 'local') return new LocalCheckpointStore(location.dir);
  const client = createS3Client(s3ConnectionFromEnv(options.env));
  return new S3CheckpointStore({ client, bucket: location.bucket, prefix: location.prefix, cacheDir: options.cacheDir, logger: options.logger });
}
