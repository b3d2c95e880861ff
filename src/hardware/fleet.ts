/**
 * A worker's hardware side, next to its main Worker: the profile, the device pool, one
 * activity-only Worker per shape queue it can run (`<base>@<class>/g<k>`, k = 0..GPUs; see
 * src/shared/hardware.ts), each with the pool's slot supplier, and the registry publisher.
 */
import { hostname } from 'node:os';
import type { Client } from '@temporalio/client';
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { Logger } from 'pino';
import { withCodec, type AesGcmCodec } from '../codec';
import { shapeQueue, type HardwareProfile } from '../shared/hardware';
import { describeProfile, detectProfile, type ProfileOverrides } from './detect';
import { startPublishing, DEFAULT_BEAT_MS, type Publisher } from './registry-client';
import { DevicePool, shapeSlotSupplier } from './slots';

export interface HardwareOptions {
  /** Fields that replace detected ones (class name, CPU, memory, GPUs). @default {} (all detected) */
  readonly overrides?: ProfileOverrides;
  /** Trials asking for no GPU (shape g0) this worker runs at once. @default 4 */
  readonly cpuSlots?: number;
  /** Milliseconds between beats to the registry. @default 5000 */
  readonly beatIntervalMs?: number;
}

export interface HardwareSide {
  readonly profile: HardwareProfile;
  readonly pool: DevicePool;
  readonly workers: readonly Worker[];
  readonly publisher: Publisher;
}

/** Detects the profile (logged) and makes the device pool. */
export async function detectHardware(hardware: HardwareOptions, logger: Logger): Promise<{ profile: HardwareProfile; pool: DevicePool }> {
  const { profile, problem } = await detectProfile(hardware.overrides ?? {});
  if (problem) logger.warn({ problem }, 'GPU detection failed: this worker offers no GPUs');
  logger.info({ profile }, `hardware profile ${describeProfile(profile)}`);
  return { profile, pool: new DevicePool(profile.gpus.map((g) => g.index), hardware.cpuSlots ?? 4, profile.className) };
}

/** Builds the shape workers (not yet running) and the registry publisher (not yet beating). */
export async function createHardwareSide(opts: {
  readonly profile: HardwareProfile;
  readonly pool: DevicePool;
  readonly connection: NativeConnection;
  readonly client: Client;
  readonly namespace: string;
  readonly taskQueue: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the plugin's activities, registered as they are
  readonly activities: Record<string, (...args: any[]) => Promise<unknown>>;
  readonly codec: AesGcmCodec | undefined;
  readonly logger: Logger;
  readonly beatIntervalMs?: number;
  readonly shutdownForceTime: string | number;
  readonly heartbeatThrottle: string | number;
}): Promise<HardwareSide> {
  const { profile, pool } = opts;
  const fixed = { type: 'fixed-size', numSlots: 1 } as const;
  const workers: Worker[] = [];
  for (let gpus = 0; gpus <= profile.gpus.length; gpus++) {
    const taskQueue = shapeQueue(opts.taskQueue, profile.className, gpus);
    workers.push(
      await Worker.create({
        connection: opts.connection,
        namespace: opts.namespace,
        taskQueue,
        activities: opts.activities,
        ...(opts.codec && { dataConverter: withCodec(undefined, opts.codec) }),
        tuner: {
          activityTaskSlotSupplier: shapeSlotSupplier(pool, taskQueue, gpus),
          workflowTaskSlotSupplier: fixed,
          localActivityTaskSlotSupplier: fixed,
          nexusTaskSlotSupplier: fixed,
        },
        shutdownForceTime: opts.shutdownForceTime,
        maxHeartbeatThrottleInterval: opts.heartbeatThrottle,
        defaultHeartbeatThrottleInterval: opts.heartbeatThrottle,
      }),
    );
  }
  const identity = `${process.pid}@${hostname()}`;
  const publisher = startPublishing(
    opts.client,
    { identity, taskQueue: opts.taskQueue, profile },
    () => ({ total: pool.total, free: pool.free }),
    opts.logger,
    opts.beatIntervalMs ?? DEFAULT_BEAT_MS,
  );
  return { profile, pool, workers, publisher };
}
