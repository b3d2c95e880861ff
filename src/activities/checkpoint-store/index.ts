/** The checkpoint store: the interface other modules code against, and the local-disk store. */
export type { AdoptCheckpointInput, CheckpointStore, LatestVerifiedResult, SaveCheckpointInput, VerifiedCheckpoint } from './types';
export { LocalCheckpointStore } from './local';
export { writeFileDurably } from './durable-write';
export { CheckpointReadError, DurableWriteError, ManifestError } from './errors';
