/** The checkpoint store: the interface other modules code against, the local-disk store and the S3 store. */
export type {
  AdoptCheckpointInput,
  CheckpointStore,
  FenceToken,
  LatestVerifiedResult,
  SaveCheckpointInput,
  VerifiedCheckpoint,
  WriterIdentity,
} from './types';
export { LocalCheckpointStore } from './local';
export { writeFileDurably } from './durable-write';
export { CheckpointReadError, DurableWriteError, ManifestError, StaleAttemptError, formatFence } from './errors';
export { compareFence } from './manifest';
export { S3CheckpointStore, type S3CheckpointStoreOptions } from './s3';
export { CHECKPOINT_URL_ENV, FORCE_PATH_STYLE_ENV, parseCheckpointUrl, s3ConnectionFromEnv } from './s3-config';
export { createS3Client } from './s3-io';
export { openCheckpointStore, type OpenStoreOptions } from './open';
export { experimentIdProblem, readMetricHistory, readNewestRunHistory, readRunHistory, MetricHistoryError, type HistoryObjects, type RunHistory } from './history';
export { MetricHistoryWriter, STEP_POINT_INTERVAL_MS, FLUSH_INTERVAL_MS } from './history-writer';
