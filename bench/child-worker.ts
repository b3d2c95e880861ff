/**
 * A worker process for the benchmarks: exactly what `src/worker.ts` runs (runExperimentWorker
 * with the configuration from the environment), plus the heartbeat throttle from
 * BENCH_HEARTBEAT_THROTTLE, which the package's entry point has no variable for.
 */
import { createLogger, runtimeLogger } from '../src/logging';
import { runExperimentWorker } from '../src/worker';

const heartbeatThrottle = process.env.BENCH_HEARTBEAT_THROTTLE || undefined;

runExperimentWorker({ heartbeatThrottle }).then(
  () => process.exit(0),
  (err: unknown) => {
    (runtimeLogger() ?? createLogger()).error({ err }, 'worker failed');
    process.exit(1);
  },
);
