/**
 * Hardware profiles, `experiments workers`, routing, resource-bounded slots and unsatisfiable
 * requests, end to end: a real dev server, two real `experiments worker` child processes (one
 * "GPU" worker, one CPU-only), real `command` trainer children.
 *
 * Test double, declared: no GPU exists on this machine, so the GPU worker finds a fake
 * `nvidia-smi` first on its PATH, a shell script that checks it was called with the query the
 * detector uses and prints what the real tool prints for it on a 2x H100 machine. Everything
 * else (detection, the registry, routing, the slot supplier, CUDA_VISIBLE_DEVICES) is real.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { ProgramRegistry } from '../../src/activities/trainers/command';
import { ExperimentsClient } from '../../src/client';
import { detectProfile } from '../../src/hardware/detect';
import { InvalidInputError } from '../../src/shared/schema';
import type { WorkerEntry } from '../../src/shared/hardware';
import { ROOT, spawnWorker, startHarness, uniqueQueue, waitFor, type ChildWorker, type Harness } from '../helpers/env';

const run = promisify(execFile);
const FAKE_NVIDIA_SMI = `#!/bin/sh
# Test double for nvidia-smi (no GPU exists here): the real output of this query on 2x H100.
if [ "$1" != "--query-gpu=index,name,memory.total" ] || [ "$2" != "--format=csv,noheader" ]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2
fi
printf '0, NVIDIA H100 80GB HBM3, 81559 MiB\\n1, NVIDIA H100 80GB HBM3, 81559 MiB\\n'
`;

/** Records which worker ran it, the devices it saw, and when; GPU trials wait for `barrier` peers. */
const PROBE = `
import json, os, time
p = json.loads(os.environ["EXPERIMENT_PARAMS"])
d = os.environ["RECORD_DIR"]
me = os.environ["EXPERIMENT_ID"]
rec = {"id": me, "worker": os.environ.get("WORKER_TAG"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": time.time()}
with open(os.path.join(d, me + ".start"), "w") as f: f.write(json.dumps(rec))
barrier = p.get("barrier", 0)
deadline = time.time() + 20
while barrier and time.time() < deadline and len([n for n in os.listdir(d) if n.startswith("gpu") and n.endswith(".start")]) < barrier:
    time.sleep(0.05)
time.sleep(p.get("hold", 0.3))
rec["end"] = time.time()
with open(os.path.join(d, me + ".done"), "w") as f: f.write(json.dumps(rec))
print(json.dumps({"type": "result", "metrics": {"loss": 1}}), flush=True)
`;

let h: Harness;
const children: ChildWorker[] = [];
let taskQueue: string;
let client: ExperimentsClient;
let records: string;
let fakeBin: string;

before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('hw');
  fakeBin = path.join(h.tmp, 'fake-bin');
  records = path.join(h.tmp, 'records');
  fs.mkdirSync(fakeBin);
  fs.mkdirSync(records);
  fs.writeFileSync(path.join(fakeBin, 'nvidia-smi'), FAKE_NVIDIA_SMI, { mode: 0o755 });
  const programsFile = path.join(h.tmp, 'programs.json');
  const program = { name: 'probe', argv: ['/usr/bin/python3', '-c', PROBE], env: { RECORD_DIR: records }, inheritEnv: ['WORKER_TAG'] };
  fs.writeFileSync(programsFile, JSON.stringify({ programs: [program] }));
  const checkpointDir = path.join(h.tmp, 'ck');
  const worker = (name: string, extraEnv: Record<string, string>) => {
    const w = spawnWorker(h, { taskQueue, checkpointDir, name, programsFile, extraEnv: { WORKER_TAG: name, ...extraEnv } });
    children.push(w);
    return w;
  };
  const gpu = worker('gpu', { PATH: `${fakeBin}:${process.env.PATH ?? ''}` });
  const cpu = worker('cpu', {});
  await Promise.all([gpu.ready, cpu.ready]);
  client = new ExperimentsClient({ client: h.env.client, taskQueue, programs: ProgramRegistry.fromFile(programsFile) });
});
after(async () => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await h?.teardown();
});

async function workersCli(): Promise<WorkerEntry[]> {
  const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'workers', '--json'], {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue },
  });
  return JSON.parse(stdout) as WorkerEntry[];
}

test('profiles: this machine detected right; the fake 2-GPU worker and the CPU worker listed by `experiments workers`', { timeout: 120_000 }, async () => {
  const { profile } = await detectProfile();
  const { stdout: nproc } = await run('nproc');
  const memKiB = Number(/MemTotal:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);
  assert.equal(profile.cpu.cores, Number(nproc.trim()), 'cores as nproc counts them');
  assert.ok(Math.abs(profile.memoryGiB - memKiB / 1024 ** 2) < 0.1, `memory ${profile.memoryGiB} GiB as /proc/meminfo says`);
  assert.deepEqual(profile.gpus, [], 'no nvidia-smi on this PATH: no GPUs');

  const withFake = await detectProfile({}, { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ''}` });
  assert.deepEqual(withFake.profile.gpus.map((g) => [g.index, g.memoryGiB]), [[0, 79.6], [1, 79.6]]);
  assert.equal(withFake.profile.className, 'gpu-h100x2');

  const listed = await waitFor(async () => {
    const w = await workersCli();
    return w.length === 2 ? w : null;
  }, { timeoutMs: 60_000, what: 'both workers in `experiments workers`' });
  const gpu = listed.find((w) => w.profile.gpus.length > 0);
  const cpu = listed.find((w) => w.profile.gpus.length === 0);
  assert.equal(gpu?.profile.className, 'gpu-h100x2');
  assert.deepEqual(gpu?.profile.gpus.map((g) => g.memoryGiB), [79.6, 79.6]);
  assert.deepEqual(gpu?.slots, { total: 2, free: 2 });
  assert.equal(cpu?.profile.className, `cpu-${profile.cpu.cores}c-${Math.round(profile.memoryGiB)}g`);
  assert.equal(cpu?.profile.cpu.cores, profile.cpu.cores);
  for (const c of children) assert.match(fs.readFileSync(c.logFile, 'utf8'), /hardware profile (gpu-h100x2|cpu-\d+c-\d+g): /, 'the worker shows its profile at start');
  const { stdout: text } = await run(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'workers'], {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: h.address, TEMPORAL_TASK_QUEUE: taskQueue },
  });
  assert.match(text, /gpu-h100x2 .*2x NVIDIA H100 80GB HBM3 \(79\.6G, 79\.6G\)\s+2\/2/, 'the table shows the GPUs and free slots');
  assert.match(text, new RegExp(`cpu-${profile.cpu.cores}c-`), 'and the CPU worker');
});

test('routing: 1-GPU trials run only on the GPU worker, two at once, on distinct devices; CPU trials run anywhere', { timeout: 180_000 }, async () => {
  const gpuSpecs = ['gpu-1', 'gpu-2', 'gpu-3'].map((id) => ({ id, trainer: 'command', resources: { gpus: 1 }, params: { program: 'probe', params: { barrier: 2, hold: 0.5 } } }));
  const cpuSpecs = ['cpu-1', 'cpu-2'].map((id) => ({ id, trainer: 'command', params: { program: 'probe', params: {} } }));
  const handle = await client.startSession({ sessionId: 'route', policy: { maxConcurrent: 5 }, experiments: [...gpuSpecs, ...cpuSpecs] });
  const summary = await handle.result();
  for (const e of summary.experiments) assert.equal(e.state, 'completed', `${e.id}: ${e.reason ?? ''}`);

  const done = (id: string) => JSON.parse(fs.readFileSync(path.join(records, `${id}.done`), 'utf8')) as { worker: string; cuda: string | null; start: number; end: number };
  const gpus = gpuSpecs.map((s) => done(s.id));
  assert.deepEqual(gpus.map((g) => g.worker), ['gpu', 'gpu', 'gpu'], 'GPU trials only on the GPU worker');
  for (const g of gpus) assert.match(g.cuda ?? '', /^[01]$/, 'each saw one device');
  const overlapping = (a: { start: number; end: number }, b: { start: number; end: number }) => a.start < b.end && b.start < a.end;
  const maxAtOnce = Math.max(...gpus.map((a) => gpus.filter((b) => overlapping(a, b)).length));
  assert.equal(maxAtOnce, 2, 'two 1-GPU trials at once on 2 GPUs, never three');
  for (const a of gpus) for (const b of gpus) if (a !== b && overlapping(a, b)) assert.notEqual(a.cuda, b.cuda, 'trials at once see distinct CUDA_VISIBLE_DEVICES');
  for (const id of ['cpu-1', 'cpu-2']) {
    const c = done(id);
    assert.ok(c.worker === 'gpu' || c.worker === 'cpu');
    assert.equal(c.cuda, null, 'an unrouted trial is given no devices');
  }
  const status = await client.status('route:gpu-1');
  assert.equal(status.kind === 'experiment' && status.hardwareClass, 'gpu-h100x2', 'the status names the class it ran on');
});

test('unsatisfiable: 8 GPUs is awaiting-resources with the reason, then rejected after resourceTimeout', { timeout: 120_000 }, async () => {
  const handle = await client.startSession({
    sessionId: 'big',
    policy: { resourceTimeout: '6s' },
    experiments: [{ id: 'e', trainer: 'command', resources: { gpus: 8 }, params: { program: 'probe', params: {} } }],
  });
  const waiting = await waitFor(async () => {
    const s = await client.status('big:e');
    return s.kind === 'experiment' && s.state === 'awaiting-resources' ? s : null;
  }, { timeoutMs: 60_000, what: 'big:e awaiting-resources' });
  assert.match(waiting.reason ?? '', /no live worker satisfies gpus=8 .*gpu-h100x2: 2 GPU\(s\) < 8/);
  const session = await client.status('big');
  assert.equal(session.kind === 'session' && session.experiments[0].state, 'awaiting-resources', 'the session status shows it too');
  const summary = await handle.result();
  assert.equal(summary.experiments[0].state, 'rejected');
  assert.match(summary.experiments[0].reason ?? '', /gpus=8.*gave up after resourceTimeout/);
  assert.equal(fs.existsSync(path.join(records, 'e.start')), false, 'it never trained');
});

test('bad input: negative or absurd resources and an unknown class are rejected before start, naming the field', { timeout: 60_000 }, async () => {
  const start = (extra: Record<string, unknown>) =>
    client.startSession({ sessionId: `bad-${Object.keys(extra).join('-')}`, experiments: [{ id: 'e', trainer: 'command', params: { program: 'probe', params: {} }, ...extra }] });
  await assert.rejects(start({ resources: { gpus: -2 } }), (err: unknown) => err instanceof InvalidInputError && /^experiments\[0\]\.resources\.gpus: /.test(err.message));
  await assert.rejects(start({ resources: { memoryGiB: 1e7 } }), (err: unknown) => err instanceof InvalidInputError && /^experiments\[0\]\.resources\.memoryGiB: /.test(err.message));
  await assert.rejects(start({ hardwareClass: 'gpu-tpu9000x1' }), (err: unknown) =>
    err instanceof InvalidInputError && /^experiments\[0\]\.hardwareClass: expected a class registered on task queue .*gpu-h100x2.*received "gpu-tpu9000x1"/.test(err.message));
  const cli = await run(process.execPath, [path.join(ROOT, 'bin', 'experiments.js'), 'worker', '--class', 'Big GPU!'], { cwd: ROOT, env: { ...process.env, TEMPORAL_ADDRESS: h.address } }).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(cli.code, 2, 'a bad --class is a usage error');
  assert.match(cli.stderr.trim(), /^experiments: --class: expected lowercase letters.*received "Big GPU!"$/);
});
