/**
 * The pure side of hardware routing, without a server: nvidia-smi parsing, class names, fitting
 * and placement, the device pool behind the slot suppliers, and the schema's bad-input messages.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { estimateVsActual } from '../../src/cli/estimate-text';
import { parseNvidiaSmi } from '../../src/hardware/detect';
import { DevicePool, shapeSlotSupplier } from '../../src/hardware/slots';
import { deriveClassName, fitProblem, place, shapeQueue, type HardwareProfile, type WorkerEntry } from '../../src/shared/hardware';
import { experimentListSchema, inputProblems, sessionPolicySchema } from '../../src/shared/schema';
import { resolvePolicy, resourceTimeoutMs } from '../../src/shared/policy';

const H100 = '0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, NVIDIA H100 80GB HBM3, 81559 MiB\n';

const gpuProfile = (n: number, memoryGiB = 79.6): HardwareProfile => ({
  className: `gpu-h100x${n}`,
  cpu: { model: 'x', cores: 16 },
  memoryGiB: 128,
  gpus: Array.from({ length: n }, (_, index) => ({ index, model: 'NVIDIA H100 80GB HBM3', memoryGiB })),
});
const cpuProfile: HardwareProfile = { className: 'cpu-2c-8g', cpu: { model: 'x', cores: 2 }, memoryGiB: 8, gpus: [] };
const entry = (profile: HardwareProfile, free: number, taskQueue = 'q'): WorkerEntry => ({
  identity: `${profile.className}-w`,
  taskQueue,
  profile,
  slots: { total: Math.max(free, 1), free },
  seenAt: new Date().toISOString(),
});

test('nvidia-smi csv,noheader output parses to indexes, models and GiB', () => {
  assert.deepEqual(parseNvidiaSmi(H100), [
    { index: 0, model: 'NVIDIA H100 80GB HBM3', memoryGiB: 79.6 },
    { index: 1, model: 'NVIDIA H100 80GB HBM3', memoryGiB: 79.6 },
  ]);
  assert.deepEqual(parseNvidiaSmi(''), []);
  assert.throws(() => parseNvidiaSmi('0, A100, lots'), /nvidia-smi: expected lines .*received "0, A100, lots"/);
});

test('class names are derived from GPUs, else from cores and memory', () => {
  const { className: _c, ...gpu } = gpuProfile(8);
  assert.equal(deriveClassName(gpu), 'gpu-h100x8');
  assert.equal(deriveClassName({ ...gpu, gpus: [{ index: 0, model: 'NVIDIA GeForce RTX 4090', memoryGiB: 24 }] }), 'gpu-rtx4090x1');
  assert.equal(deriveClassName({ cpu: { model: 'x', cores: 2 }, memoryGiB: 23.6, gpus: [] }), 'cpu-2c-24g');
});

test('fitProblem says what a profile lacks', () => {
  assert.equal(fitProblem(gpuProfile(2), { gpus: 1 }, undefined), null);
  assert.equal(fitProblem(gpuProfile(2), { gpus: 8 }, undefined), '2 GPU(s) < 8');
  assert.equal(fitProblem(gpuProfile(2, 40), { gpus: 1, gpuMemoryGiB: 79 }, undefined), '0 GPU(s) with >= 79 GiB < 1');
  assert.equal(fitProblem(cpuProfile, { cpus: 4 }, undefined), '2 CPU cores < 4');
  assert.equal(fitProblem(cpuProfile, { memoryGiB: 16 }, undefined), '8 GiB memory < 16');
  assert.equal(fitProblem(cpuProfile, undefined, 'gpu-h100x2'), 'class cpu-2c-8g, not gpu-h100x2');
});

test('place picks the fitting class with the most free slots, or says why none fits', () => {
  const workers = [entry(cpuProfile, 4), entry(gpuProfile(2), 1), entry(gpuProfile(8), 5)];
  assert.deepEqual(place('q', workers, { gpus: 1 }, undefined), { kind: 'placed', taskQueue: shapeQueue('q', 'gpu-h100x8', 1), className: 'gpu-h100x8' });
  assert.deepEqual(place('q', workers, { gpus: 1 }, 'gpu-h100x2'), { kind: 'placed', taskQueue: 'q@gpu-h100x2/g1', className: 'gpu-h100x2' });
  assert.deepEqual(place('q', workers, { cpus: 2 }, undefined), { kind: 'placed', taskQueue: 'q@gpu-h100x8/g0', className: 'gpu-h100x8' });
  const none = place('q', workers, { gpus: 16 }, undefined);
  assert.equal(none.kind, 'unsatisfiable');
  assert.match(none.kind === 'unsatisfiable' ? none.reason : '', /no live worker satisfies gpus=16 \(cpu-2c-8g: 0 GPU\(s\) < 16; gpu-h100x2: 2 GPU\(s\) < 16; gpu-h100x8: 8 GPU\(s\) < 16\)/);
  const other = place('other', workers, { gpus: 1 }, undefined);
  assert.match(other.kind === 'unsatisfiable' ? other.reason : '', /no live worker on task queue other/);
});

test('the device pool hands out distinct GPUs, queues what does not fit, and frees on release', async () => {
  const pool = new DevicePool([0, 1], 4);
  const supplier = shapeSlotSupplier(pool, 'q@c/g1', 1);
  const ctx = { slotType: 'activity', taskQueue: 'q@c/g1', workerIdentity: 'w', workerBuildId: '', isSticky: false } as const;
  const a = await supplier.reserveSlot(ctx, new AbortController().signal);
  const b = await supplier.reserveSlot(ctx, new AbortController().signal);
  assert.equal(pool.free, 2, 'reserved by pollers, not yet running: still free to any task');
  assert.equal(supplier.tryReserveSlot(ctx), null, 'no third 1-GPU slot on 2 GPUs');
  let third: unknown = null;
  const pending = supplier.reserveSlot(ctx, new AbortController().signal).then((p) => (third = p));
  supplier.markSlotUsed({ slotInfo: { type: 'activity', activityType: 'trainExperiment' }, permit: a });
  supplier.markSlotUsed({ slotInfo: { type: 'activity', activityType: 'trainExperiment' }, permit: b });
  assert.equal(pool.free, 0, 'both running');
  const claimed = [await pool.claim('q@c/g1'), await pool.claim('q@c/g1')];
  assert.deepEqual(claimed.flat().sort(), [0, 1], 'two runs, two distinct devices');
  assert.equal(third, null, 'the third waits');
  supplier.releaseSlot({ permit: a });
  const got = (await pending) as { devices: number[] };
  assert.deepEqual(got.devices, (a as { devices: number[] }).devices, 'the third gets the freed device');

  const aborted = new AbortController();
  const waiting = supplier.reserveSlot(ctx, aborted.signal);
  aborted.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  assert.equal(await pool.claim('q@c/g1', 50), null, 'nothing to claim when no slot was used');
  const t0 = Date.now();
  assert.equal(await pool.claim('q'), null, 'a run on the base queue has no devices');
  assert.ok(Date.now() - t0 < 1000, 'and learns so at once, without waiting for a slot');
});

test('status shows an estimate beside the actual duration', () => {
  assert.equal(estimateVsActual({ estimatedDurationMs: 4000, actualDurationMs: 5000, hardwareClass: 'gpu-h100x8' }), 'est. 4s on gpu-h100x8, actual 5s (+25%)');
  assert.equal(estimateVsActual({ estimatedDurationMs: 22_200_000 }), 'est. 6h10m');
  assert.equal(estimateVsActual({}), null);
});

test('bad resources and classes are rejected naming the field', () => {
  const problems = (resources: unknown, extra: Record<string, unknown> = {}) =>
    inputProblems(experimentListSchema(), [{ id: 'e', trainer: 'mlp', resources, ...extra }], 'experiments').join('; ');
  assert.match(problems({ gpus: -1 }), /^experiments\[0\]\.resources\.gpus: .*>=0.*received -1/);
  assert.match(problems({ gpus: 1.5 }), /^experiments\[0\]\.resources\.gpus: expected int/);
  assert.match(problems({ gpus: 1000 }), /^experiments\[0\]\.resources\.gpus: .*<=64.*received 1000/);
  assert.match(problems({ memoryGiB: 1e9 }), /^experiments\[0\]\.resources\.memoryGiB: .*received 1000000000/);
  assert.match(problems({ cpus: 0 }), /^experiments\[0\]\.resources\.cpus: /);
  assert.match(problems({ tpus: 1 }), /^experiments\[0\]\.resources: unexpected field "tpus"/);
  assert.match(problems(undefined, { hardwareClass: 'Big GPU!' }), /^experiments\[0\]\.hardwareClass: expected a class name.*received "Big GPU!"/);
  assert.equal(problems({ gpus: 2, gpuMemoryGiB: 40, cpus: 8, memoryGiB: 64 }, { hardwareClass: 'gpu-h100x8' }), '');
  assert.match(inputProblems(sessionPolicySchema, { resourceTimeout: 'soon' }, 'policy').join(), /^policy\.resourceTimeout: expected a duration/);
  assert.equal(resourceTimeoutMs(resolvePolicy({ resourceTimeout: '5s' })), 5000);
  assert.equal(resourceTimeoutMs(resolvePolicy({})), 3_600_000);
});
