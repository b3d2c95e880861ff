/**
 * checkpoint-write-<size>: throughput of writeFileDurably ÷ throughput of a raw write + fsync of
 * the same bytes (= raw time / durable time), per repetition pair, in a child process per size.
 * The state is in shared memory, as the runtime's checkpoint buffer is; `:plain-buffer` is the
 * same write of an ordinary buffer.
 * checkpoint-rss-ratio: peak RSS during the durable write, above the process's RSS before the
 * state existed, ÷ state size (the largest over the sizes), with the raw write's as baseline.
 *
 * The suite runs this group first, before the dev server starts: the durable write hashes on
 * one core while the kernel copies and flushes on the other, so on a 2-core machine any other
 * runnable process (an idle dev server still ticks) slows it more than the single-threaded raw
 * write. Its absence is the fair condition for comparing the two writes.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { BENCH_DIR, ROOT } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, progress } from '../lib/stats';

export interface CheckpointWriteOptions {
  readonly sizesMiB: readonly number[];
  readonly reps: number;
}

export const CHECKPOINT_WRITE_DEFAULTS: CheckpointWriteOptions = { sizesMiB: [64, 256], reps: 31 };

interface ChildResult {
  bytes: number;
  memory: {
    canReset: boolean;
    rssBeforeStateKiB: number;
    rssWithStateKiB: number;
    durable: { rssAtStartKiB: number; peakKiB: number };
    raw: { rssAtStartKiB: number; peakKiB: number };
    plain: { rssAtStartKiB: number; peakKiB: number };
  };
  pairs: { rawMs: number; durableMs: number; plainMs: number; order: string }[];
  hashMs: number[];
  rawRenameDirFsyncMs: number[];
}

function runChild(bytes: number, reps: number, dir: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'checkpoint-child.ts'), String(bytes), String(reps), dir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`checkpoint child exited ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as ChildResult);
      } catch (e) {
        reject(new Error(`checkpoint child printed no result: ${(e as Error).message}; stderr: ${err.trim()}`));
      }
    });
  });
}

/** `tmpDir`: where the files are written (the same filesystem as the checkpoint directories). */
export async function checkpointWrite(tmpDir: string, opts: CheckpointWriteOptions = CHECKPOINT_WRITE_DEFAULTS): Promise<Figure[]> {
  const figures: Figure[] = [];
  const rss: { sizeMiB: number; durableRatio: number; rawRatio: number; durableExtraRatio: number; plainExtraRatio: number; memory: ChildResult['memory'] }[] = [];
  for (const mib of opts.sizesMiB) {
    const bytes = mib * 2 ** 20;
    progress(`checkpoint-write-${mib}MB: child process, ${opts.reps} raw/durable pairs`);
    const r = await runChild(bytes, opts.reps, path.join(tmpDir, `ckw-${mib}`));
    const ratios = r.pairs.map((p) => p.rawMs / p.durableMs);
    const rawMs = median(r.pairs.map((p) => p.rawMs));
    const durableMs = median(r.pairs.map((p) => p.durableMs));
    const plainMs = median(r.pairs.map((p) => p.plainMs));
    const hashMs = median(r.hashMs);
    progress(
      `checkpoint-write-${mib}MB: raw ${fmt(rawMs)} ms, durable ${fmt(durableMs)} ms (plain buffer ${fmt(plainMs)} ms), sha256 alone ${fmt(hashMs)} ms, ratio ${fmt(median(ratios))}`,
    );
    figures.push(
      figure({
        name: `checkpoint-write-${mib}MB`,
        values: ratios,
        unit: '× raw throughput',
        goal: { op: '>=', value: 0.9 },
        baseline: { what: 'raw write + fsync, median', value: (bytes / 2 ** 20 / rawMs) * 1000, unit: 'MiB/s' },
        runs: r.pairs.map((p) => ({ ...p, ratio: p.rawMs / p.durableMs })),
        notes: `durable median ${fmt(durableMs)} ms (${fmt((mib / durableMs) * 1000)} MiB/s), raw ${fmt(rawMs)} ms; sha256 of the same bytes alone ${fmt(hashMs)} ms (${fmt((mib / hashMs) * 1000)} MiB/s); raw + rename + directory fsync ${fmt(median(r.rawRenameDirFsyncMs))} ms`,
      }),
      figure({
        name: `checkpoint-write-${mib}MB:plain-buffer`,
        values: r.pairs.map((p) => p.rawMs / p.plainMs),
        unit: '× raw throughput',
        goal: null,
        baseline: { what: 'raw write + fsync, same rounds', value: (bytes / 2 ** 20 / rawMs) * 1000, unit: 'MiB/s' },
        runs: r.pairs.map((p) => ({ rawMs: p.rawMs, plainMs: p.plainMs, ratio: p.rawMs / p.plainMs })),
        extra: true,
        notes: `the same state in an ordinary (not shared) buffer, which the main thread copies to the sha256 helper piece by piece: durable median ${fmt(plainMs)} ms`,
      }),
      figure({
        name: `checkpoint-write-${mib}MB:sha256-alone-vs-raw`,
        values: r.hashMs.map((h) => h / rawMs),
        unit: '× raw time',
        goal: null,
        baseline: { what: 'raw write + fsync, median', value: rawMs, unit: 'ms' },
        runs: r.hashMs,
        extra: true,
        notes: 'hashing alone, on the main thread; > 1 means sha256 of the state takes longer than writing it, which bounds the ratio at 1/this',
      }),
    );
    const m = r.memory;
    rss.push({
      sizeMiB: mib,
      durableRatio: ((m.durable.peakKiB - m.rssBeforeStateKiB) * 1024) / bytes,
      rawRatio: ((m.raw.peakKiB - m.rssBeforeStateKiB) * 1024) / bytes,
      durableExtraRatio: ((m.durable.peakKiB - m.durable.rssAtStartKiB) * 1024) / bytes,
      plainExtraRatio: ((m.plain.peakKiB - m.plain.rssAtStartKiB) * 1024) / bytes,
      memory: m,
    });
  }
  const worst = rss.reduce((a, b) => (b.durableRatio > a.durableRatio ? b : a));
  figures.push(
    figure({
      name: 'checkpoint-rss-ratio',
      values: rss.map((r) => r.durableRatio),
      aggregate: 'max',
      unit: '× state size',
      goal: { op: '<=', value: 1.2 },
      baseline: { what: `raw write + fsync, same measure (${worst.sizeMiB} MB)`, value: worst.rawRatio, unit: '× state size' },
      runs: rss,
      notes:
        'per size, in a fresh child: (VmHWM during the durable write, reset via /proc/self/clear_refs just before it) − (VmRSS before the state buffer was allocated), ÷ state size; so 1.0 is the state itself. Value = max over sizes.',
    }),
    figure({
      name: 'checkpoint-rss-extra-ratio',
      values: rss.flatMap((r) => [r.durableExtraRatio, r.plainExtraRatio]),
      aggregate: 'max',
      unit: '× state size',
      goal: null,
      baseline: { what: 'RSS with the state resident, just before the write' },
      runs: rss.map((r) => ({ sizeMiB: r.sizeMiB, ratio: r.durableExtraRatio, plainBufferRatio: r.plainExtraRatio })),
      extra: true,
      notes: 'peak RSS added by the durable write itself, beyond the resident state; max over sizes and over the shared and the plain buffer',
    }),
  );
  return figures;
}
