/** The checkpoint store: the interface other modules code against, and the local-disk store. */
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
