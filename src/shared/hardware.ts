/**
 * Hardware profiles, resource requests and routing: the pure part, shared by workers (which
 * publish their profile), the worker registry workflow, the experiment workflow (which picks a
 * task queue) and the CLI. Plain data and pure functions only, so the workflow sandbox can
 * import it; detection lives in src/hardware/detect.ts.
 *
 * Routing: a worker with profile class `C` polls, besides the base task queue, one activity
 * queue per request shape it can run: `<base>@C/g<k>` for k = 0..its GPU count, where k is the
 * GPUs one trial asks for. An experiment with a request trains on the queue of a live worker
 * class that satisfies it, so only matching workers ever see its activities.
 */

/** One GPU as `nvidia-smi` reports it. */
export interface GpuInfo {
  /** Device index, as `CUDA_VISIBLE_DEVICES` names it. */
  readonly index: number;
  readonly model: string;
  /** Total memory, in GiB (MiB / 1024, rounded to 0.1). */
  readonly memoryGiB: number;
}

/** What a worker has. Detected at start (src/hardware/detect.ts), overridable by flags or a file. */
export interface HardwareProfile {
  /** Class name: given, or derived (`cpu-2c-24g`, `gpu-h100x8`; see deriveClassName). */
  readonly className: string;
  readonly cpu: { readonly model: string; readonly cores: number };
  /** Total memory, in GiB (rounded to 0.1). */
  readonly memoryGiB: number;
  /** Empty when the machine has none (no `nvidia-smi`). */
  readonly gpus: readonly GpuInfo[];
}

/** What one experiment needs of the worker that trains it. Every field is optional; absent means any. */
export interface ResourceRequest {
  /** GPUs given to the trial, whole devices. Each worker runs at most (its GPUs / gpus) such trials at once. */
  readonly gpus?: number;
  /** Least memory of each GPU given, in GiB. */
  readonly gpuMemoryGiB?: number;
  /** Least CPU cores of the worker. */
  readonly cpus?: number;
  /** Least memory of the worker, in GiB. */
  readonly memoryGiB?: number;
}

/** Upper bounds above which a request is absurd and rejected at validation. */
export const RESOURCE_LIMITS = { gpus: 64, gpuMemoryGiB: 1024, cpus: 4096, memoryGiB: 65_536 } as const;

/** Class names: lowercase letters, digits, `-`, `_`, `.`; 1-64 characters, starting with a letter or digit. */
export const CLASS_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** One live worker as the registry reports it. */
export interface WorkerEntry {
  /** The worker's Temporal identity (`pid@host`). */
  readonly identity: string;
  /** Base task queue it polls. */
  readonly taskQueue: string;
  readonly profile: HardwareProfile;
  /** Resource-bounded training slots: total, and free now (free GPUs, for GPU workers). */
  readonly slots: { readonly total: number; readonly free: number };
  /** ISO time of its last heartbeat to the registry. */
  readonly seenAt: string;
}

/** Derived class name: `gpu-<model>x<count>` with GPUs, else `cpu-<cores>c-<GiB>g`. */
export function deriveClassName(profile: Omit<HardwareProfile, 'className'>): string {
  if (profile.gpus.length > 0) {
    const model = shortGpuModel(profile.gpus[0].model);
    return `gpu-${model}x${profile.gpus.length}`;
  }
  return `cpu-${profile.cpu.cores}c-${Math.round(profile.memoryGiB)}g`;
}

/** `NVIDIA H100 80GB HBM3` → `h100`; `NVIDIA GeForce RTX 4090` → `rtx4090`. */
function shortGpuModel(model: string): string {
  const words = model.toLowerCase().replace(/nvidia|geforce|tesla|quadro/g, ' ').split(/[^a-z0-9]+/).filter(Boolean);
  const named = words.filter((w) => !/^\d+gb$/.test(w) && !/^(hbm\d*e?|pcie|sxm\d*|gddr\d*x?)$/.test(w));
  const short = (named.length > 0 ? named : words).slice(0, 2).join('');
  return short.slice(0, 24) || 'gpu';
}

/** The GPUs a trial of `request` occupies (0 when it asks for none). */
export function gpusOf(request: ResourceRequest | undefined): number {
  return request?.gpus ?? 0;
}

/** The activity task queue of request shape `gpus` on workers of class `className`. */
export function shapeQueue(baseQueue: string, className: string, gpus: number): string {
  return `${baseQueue}@${className}/g${gpus}`;
}

/** Why `profile` cannot run a trial of `request` (and `hardwareClass`), or null when it can. */
export function fitProblem(profile: HardwareProfile, request: ResourceRequest | undefined, hardwareClass: string | undefined): string | null {
  if (hardwareClass !== undefined && profile.className !== hardwareClass) return `class ${profile.className}, not ${hardwareClass}`;
  const r = request ?? {};
  if (r.cpus !== undefined && profile.cpu.cores < r.cpus) return `${profile.cpu.cores} CPU cores < ${r.cpus}`;
  if (r.memoryGiB !== undefined && profile.memoryGiB < r.memoryGiB) return `${profile.memoryGiB} GiB memory < ${r.memoryGiB}`;
  const fitting = profile.gpus.filter((g) => r.gpuMemoryGiB === undefined || g.memoryGiB >= r.gpuMemoryGiB);
  const want = r.gpus ?? (r.gpuMemoryGiB !== undefined ? 1 : 0);
  if (fitting.length < want) {
    const mem = r.gpuMemoryGiB !== undefined ? ` with >= ${r.gpuMemoryGiB} GiB` : '';
    return `${fitting.length} GPU(s)${mem} < ${want}`;
  }
  return null;
}

export type Placement =
  | { readonly kind: 'placed'; readonly taskQueue: string; readonly className: string }
  | { readonly kind: 'unsatisfiable'; readonly reason: string };

/**
 * Where a trial of `request` trains: the shape queue of the live class with the most free slots
 * among those that fit (ties by name), or why none fits. `workers` is the registry's live list.
 */
export function place(baseQueue: string, workers: readonly WorkerEntry[], request: ResourceRequest | undefined, hardwareClass: string | undefined): Placement {
  const live = workers.filter((w) => w.taskQueue === baseQueue);
  const free = new Map<string, number>();
  const problems = new Map<string, string>();
  for (const w of live) {
    const problem = fitProblem(w.profile, request, hardwareClass);
    if (problem === null) free.set(w.profile.className, (free.get(w.profile.className) ?? 0) + w.slots.free);
    else problems.set(w.profile.className, problem);
  }
  const best = [...free.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
  if (best) return { kind: 'placed', taskQueue: shapeQueue(baseQueue, best[0], effectiveGpus(request)), className: best[0] };
  const wanted = describeRequest(request, hardwareClass);
  if (live.length === 0) return { kind: 'unsatisfiable', reason: `no live worker on task queue ${baseQueue} to satisfy ${wanted}` };
  const why = [...problems.entries()].map(([c, p]) => `${c}: ${p}`).join('; ');
  return { kind: 'unsatisfiable', reason: `no live worker satisfies ${wanted} (${why})` };
}

/** GPUs a trial occupies: `gpus`, or 1 when it asks only for GPU memory. */
export function effectiveGpus(request: ResourceRequest | undefined): number {
  return request?.gpus ?? (request?.gpuMemoryGiB !== undefined ? 1 : 0);
}

/** `gpus=8, class gpu-h100x8`, for messages. */
export function describeRequest(request: ResourceRequest | undefined, hardwareClass: string | undefined): string {
  const parts = Object.entries(request ?? {}).map(([k, v]) => `${k}=${String(v)}`);
  if (hardwareClass !== undefined) parts.push(`hardwareClass=${hardwareClass}`);
  return parts.length > 0 ? parts.join(', ') : 'any worker';
}

/** Whether a spec asks for anything (and so is routed). */
export function wantsResources(spec: { readonly resources?: ResourceRequest; readonly hardwareClass?: string }): boolean {
  return spec.resources !== undefined || spec.hardwareClass !== undefined;
}
