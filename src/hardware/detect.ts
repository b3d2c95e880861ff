/**
 * Detects this machine's hardware profile: CPU model and cores and memory from `node:os`, GPUs
 * by running `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader` when it is
 * on PATH (none when it is absent). Overrides (flags or a JSON file) replace detected fields.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { z } from 'zod';
import { CLASS_NAME, deriveClassName, type GpuInfo, type HardwareProfile } from '../shared/hardware';
import { parseOrThrow } from '../shared/schema';

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,name,memory.total', '--format=csv,noheader'] as const;

const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader` output, lines
 * such as `0, NVIDIA H100 80GB HBM3, 81559 MiB`. Throws naming the line for one it cannot read.
 */
export function parseNvidiaSmi(output: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of output.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const fields = line.split(',').map((f) => f.trim());
    const memory = /^(\d+(?:\.\d+)?)\s*(MiB|GiB)$/i.exec(fields[fields.length - 1] ?? '');
    const index = Number(fields[0]);
    if (fields.length < 3 || !Number.isInteger(index) || !memory) {
      throw new Error(`nvidia-smi: expected lines "<index>, <name>, <memory> MiB", received ${JSON.stringify(line.slice(0, 120))}`);
    }
    const mib = Number(memory[1]) * (memory[2].toLowerCase() === 'gib' ? 1024 : 1);
    gpus.push({ index, model: fields.slice(1, -1).join(','), memoryGiB: round1(mib / 1024) });
  }
  return gpus;
}

/** GPUs from `nvidia-smi` on PATH; none when it is missing or fails (logged by the caller). */
export function detectGpus(env: NodeJS.ProcessEnv = process.env): Promise<{ gpus: GpuInfo[]; problem: string | null }> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', [...NVIDIA_SMI_ARGS], { env, timeout: 10_000 }, (err, stdout) => {
      if (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        resolve({ gpus: [], problem: missing ? null : `nvidia-smi failed: ${err.message}` });
        return;
      }
      try {
        resolve({ gpus: parseNvidiaSmi(stdout), problem: null });
      } catch (parseErr) {
        resolve({ gpus: [], problem: (parseErr as Error).message });
      }
    });
  });
}

const overridesSchema = z.strictObject({
  className: z.string().regex(CLASS_NAME, 'expected lowercase letters, digits, ".", "_", "-" (at most 64)').optional(),
  cpu: z.strictObject({ model: z.string().min(1).max(200).optional(), cores: z.number().int().min(1).max(4096).optional() }).optional(),
  memoryGiB: z.number().positive().max(65_536).optional(),
  gpus: z.array(z.strictObject({ index: z.number().int().min(0), model: z.string().min(1).max(200), memoryGiB: z.number().positive().max(1024) })).max(64).optional(),
});

/** Fields that replace detected ones (`experiments worker --hardware FILE`, `--class`). */
export type ProfileOverrides = z.infer<typeof overridesSchema>;

/** Reads and checks a profile overrides file (JSON); errors name the file and the field. */
export function readOverridesFile(file: string): ProfileOverrides {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: expected a JSON hardware profile, ${(err as Error).message}`, { cause: err });
  }
  return parseOrThrow(overridesSchema, raw, file);
}

/** Checks overrides given in code (ExperimentWorkerOptions.hardware). */
export function checkOverrides(value: unknown, where = 'hardware'): ProfileOverrides {
  return parseOrThrow(overridesSchema, value, where);
}

/** This machine's profile, with `overrides` applied; the class is derived unless given. */
export async function detectProfile(overrides: ProfileOverrides = {}, env: NodeJS.ProcessEnv = process.env): Promise<{ profile: HardwareProfile; problem: string | null }> {
  const cpus = os.cpus();
  const detected = overrides.gpus ? { gpus: overrides.gpus, problem: null } : await detectGpus(env);
  const base = {
    cpu: { model: overrides.cpu?.model ?? (cpus[0]?.model.trim() || 'unknown'), cores: overrides.cpu?.cores ?? (os.availableParallelism?.() ?? cpus.length) },
    memoryGiB: overrides.memoryGiB ?? round1(os.totalmem() / 1024 ** 3),
    gpus: detected.gpus,
  };
  return { profile: { className: overrides.className ?? deriveClassName(base), ...base }, problem: detected.problem };
}

/** One line for logs and the CLI: `gpu-h100x2: 2 CPU cores (AMD EPYC), 7.8 GiB, 2 GPU(s): 0 NVIDIA H100 80GB HBM3 79.6 GiB, …`. */
export function describeProfile(p: HardwareProfile): string {
  const gpus = p.gpus.length === 0 ? 'no GPUs' : `${p.gpus.length} GPU(s): ${p.gpus.map((g) => `${g.index} ${g.model} ${g.memoryGiB} GiB`).join(', ')}`;
  return `${p.className}: ${p.cpu.cores} CPU cores (${p.cpu.model}), ${p.memoryGiB} GiB memory, ${gpus}`;
}
