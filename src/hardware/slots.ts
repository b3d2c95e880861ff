/**
 * Resource-bounded activity slots: one DevicePool per worker process, and a CustomSlotSupplier
 * (the SDK's slot-supplier mechanism, @temporalio/worker's WorkerTuner) per shape queue that
 * reserves a trial's GPUs from the pool before the SDK may poll for it. So a 2-GPU worker holds
 * at most two 1-GPU trials at once, and the third waits in the server's queue (or goes to another
 * worker). The training activity then claims the devices of the slot it runs in, for
 * `CUDA_VISIBLE_DEVICES` and `ctx.devices`.
 *
 * A reserved slot whose poll timed out is released by the SDK, so idle pollers of one shape do
 * not hold devices from another shape for longer than one long poll.
 */
import type { CustomSlotSupplier, ActivitySlotInfo, SlotPermit } from '@temporalio/worker';

interface Permit extends SlotPermit {
  readonly id: number;
  readonly taskQueue: string;
  readonly devices: readonly number[];
}

interface Waiter {
  readonly gpus: number;
  readonly resolve: (devices: number[]) => void;
}

/** The GPUs (by index) and CPU-trial slots of one worker, handed out first come, first served. */
export class DevicePool {
  private readonly freeGpus: number[];
  private freeCpuSlots: number;
  private readonly waiters: Waiter[] = [];
  private readonly used: Permit[] = [];
  /** Permits running a task now (marked used, not yet released); idle pollers' reservations are not. */
  private readonly busy = new Set<Permit>();
  private nextId = 1;
  /** The shape queues whose slots come from this pool; a run on any other queue has no devices. */
  private readonly queues = new Set<string>();

  constructor(
    readonly gpuIndexes: readonly number[],
    /** Trials that ask for no GPU (shape g0) run at once. */
    readonly cpuSlots: number,
    /** The worker's hardware class, for profiling measurements. */
    readonly className?: string,
  ) {
    this.freeGpus = [...gpuIndexes];
    this.freeCpuSlots = cpuSlots;
  }

  /** Total slots: GPUs for a GPU worker, else the CPU-trial slots. */
  get total(): number {
    return this.gpuIndexes.length > 0 ? this.gpuIndexes.length : this.cpuSlots;
  }

  /**
   * Slots not running a task, in the same unit as `total`. Pollers waiting for a task hold
   * reservations too; those count as free, since any task that arrives takes them.
   */
  get free(): number {
    const busy = [...this.busy];
    return this.gpuIndexes.length > 0
      ? this.total - busy.reduce((n, p) => n + p.devices.length, 0)
      : this.total - busy.filter((p) => p.devices.length === 0).length;
  }

  /** Resolves with `gpus` device indexes (or [] and a CPU slot for 0) once they are free. */
  acquire(gpus: number, signal?: AbortSignal): Promise<number[]> {
    const now = this.tryAcquire(gpus);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { gpus, resolve };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        const err = new Error('slot reservation aborted');
        err.name = 'AbortError';
        reject(err);
      });
    });
  }

  tryAcquire(gpus: number): number[] | null {
    if (gpus === 0) {
      if (this.freeCpuSlots <= 0) return null;
      this.freeCpuSlots--;
      return [];
    }
    if (this.freeGpus.length < gpus) return null;
    this.freeGpus.sort((a, b) => a - b);
    return this.freeGpus.splice(0, gpus);
  }

  release(devices: readonly number[]): void {
    if (devices.length === 0) this.freeCpuSlots++;
    else this.freeGpus.push(...devices);
    // First come, first served among waiters whose need now fits.
    for (let i = 0; i < this.waiters.length; ) {
      const got = this.tryAcquire(this.waiters[i].gpus);
      if (!got) {
        i++;
        continue;
      }
      const [waiter] = this.waiters.splice(i, 1);
      waiter.resolve(got);
    }
  }

  /** Registers a shape queue served from this pool (shapeSlotSupplier does). */
  serve(taskQueue: string): void {
    this.queues.add(taskQueue);
  }

  permit(taskQueue: string, devices: readonly number[]): Permit {
    return { id: this.nextId++, taskQueue, devices };
  }

  markUsed(permit: Permit): void {
    this.used.push(permit);
    this.busy.add(permit);
  }

  /**
   * The devices of the oldest slot of `taskQueue` marked used and not yet claimed: the slot the
   * activity that just started runs in. Waits briefly, as the SDK may report the slot used a
   * moment after the activity starts.
   */
  async claim(taskQueue: string, timeoutMs = 10_000): Promise<readonly number[] | null> {
    if (!this.queues.has(taskQueue)) return null;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.used.findIndex((p) => p.taskQueue === taskQueue);
      if (i >= 0) return this.used.splice(i, 1)[0].devices;
      if (Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Called by the SDK when a slot ends (task done, or a poll that timed out). */
  releasePermit(permit: Permit): void {
    const i = this.used.indexOf(permit);
    if (i >= 0) this.used.splice(i, 1);
    this.busy.delete(permit);
    this.release(permit.devices);
  }
}

/** The activity slot supplier of shape queue `taskQueue` (trials of `gpus` GPUs each). */
export function shapeSlotSupplier(pool: DevicePool, taskQueue: string, gpus: number): CustomSlotSupplier<ActivitySlotInfo> {
  pool.serve(taskQueue);
  return {
    type: 'custom',
    async reserveSlot(_ctx, abortSignal) {
      return pool.permit(taskQueue, await pool.acquire(gpus, abortSignal));
    },
    tryReserveSlot() {
      const devices = pool.tryAcquire(gpus);
      return devices ? pool.permit(taskQueue, devices) : null;
    },
    markSlotUsed(ctx) {
      pool.markUsed(ctx.permit as Permit);
    },
    releaseSlot(ctx) {
      pool.releasePermit(ctx.permit as Permit);
    },
  };
}
