/**
 * A worker process (what src/worker.ts runs) whose checkpoint store is the real LocalCheckpointStore,
 * instrumented so that the save of epoch STUCK_PERSIST_EPOCH and later ones stop half way: the
 * first half of the bytes is handed to the durable write, then the producer hangs, so the process
 * is killed in the middle of a background persist (a temp file exists, nothing is renamed or
 * recorded). It logs `test: persist stuck` when it gets there.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalCheckpointStore, type SaveCheckpointInput } from '../../src/activities/checkpoint-store';
import { createLogger, runtimeLogger } from '../../src/logging';
import { runExperimentWorker } from '../../src/worker';
import type { CheckpointPointer } from '../../src/shared/types';

const stuckFrom = Number(process.env.STUCK_PERSIST_EPOCH);
const logger = runtimeLogger() ?? createLogger();

class StuckStore extends LocalCheckpointStore {
  override save(key: string, input: SaveCheckpointInput, keep: number): Promise<CheckpointPointer> {
    if (!(input.epoch >= stuckFrom && input.step === 0 && input.data instanceof Uint8Array)) return super.save(key, input, keep);
    const whole = input.data;
    const half = whole.subarray(0, whole.byteLength >> 1);
    async function* halfThenHang(): AsyncGenerator<Uint8Array> {
      yield half;
      logger.info({ epoch: input.epoch }, 'test: persist stuck');
      await sleep(600_000);
      yield whole.subarray(half.byteLength);
    }
    return super.save(key, { ...input, data: halfThenHang() }, keep);
  }
}

runExperimentWorker({ logger, store: new StuckStore(process.env.EXPERIMENTS_CHECKPOINT_DIR ?? '') }).then(
  () => process.exit(0),
  (err: unknown) => {
    logger.error({ err }, 'worker failed');
    process.exit(1);
  },
);
