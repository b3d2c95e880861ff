/**
 * s3-checkpoint-write-<size>: throughput of a durable S3 checkpoint save ÷ throughput of a raw
 * PutObject of the same bytes to the same versitygw, in the same run (= raw time / durable time),
 * per repetition pair. s3-roundtrip-rss-ratio: peak RSS of a save and of a resume of a 256 MB
 * checkpoint, above the RSS before the state existed, ÷ the blob size (the larger of the two).
 * Runs without the dev server, in a child process with its own RSS.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startS3Server } from '../../test/helpers/s3-server';
import { BENCH_DIR, ROOT } from '../lib/env';
import { figure, type Figure } from '../lib/results';
import { fmt, median, progress } from '../lib/stats';

export interface S3Options {
  readonly sizeMiB: number;
  readonly reps: number;
  readonly rssMiB: number;
}

export const S3_DEFAULTS: S3Options = { sizeMiB: 64, reps: 9, rssMiB: 256 };

interface ChildResult {
  bytes: number;
  pairs: { rawMs: number; durableMs: number; order: string }[];
  memory: { canReset: boolean; rssBytes: number; rssBeforeStateKiB: number; saveStartKiB: number; savePeakKiB: number; resumeStartKiB: number; resumePeakKiB: number };
}

function runChild(options: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(BENCH_DIR, 's3-child.ts'), JSON.stringify(options)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`s3 child exited ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as ChildResult);
      } catch (e) {
        reject(new Error(`s3 child printed no result: ${(e as Error).message}; stderr: ${err.trim()}`));
      }
    });
  });
}

export async function s3Checkpoints(tmpDir: string, opts: S3Options = S3_DEFAULTS): Promise<Figure[]> {
  progress('s3: starting versitygw on 127.0.0.1');
  const server = await startS3Server();
  try {
    const cacheDir = path.join(tmpDir, 's3-cache');
    fs.mkdirSync(cacheDir, { recursive: true });
    const bytes = opts.sizeMiB * 2 ** 20;
    progress(`s3-checkpoint-write-${opts.sizeMiB}MB: ${opts.reps} raw/durable pairs; then a ${opts.rssMiB} MB round trip for RSS`);
    const r = await runChild({
      endpoint: server.endpoint,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      bucket: server.bucket,
      cacheDir,
      bytes,
      reps: opts.reps,
      rssBytes: opts.rssMiB * 2 ** 20,
    });
    const ratios = r.pairs.map((p) => p.rawMs / p.durableMs);
    const rawMs = median(r.pairs.map((p) => p.rawMs));
    const durableMs = median(r.pairs.map((p) => p.durableMs));
    progress(`s3-checkpoint-write-${opts.sizeMiB}MB: raw PutObject ${fmt(rawMs)} ms, durable save ${fmt(durableMs)} ms, ratio ${fmt(median(ratios))}`);
    const m = r.memory;
    const saveRatio = ((m.savePeakKiB - m.rssBeforeStateKiB) * 1024) / m.rssBytes;
    const resumeRatio = ((m.resumePeakKiB - m.rssBeforeStateKiB) * 1024) / m.rssBytes;
    progress(`s3-roundtrip-rss-ratio: save ${fmt(saveRatio)}, resume ${fmt(resumeRatio)} × blob`);
    return [
      figure({
        name: `s3-checkpoint-write-${opts.sizeMiB}MB`,
        values: ratios,
        unit: '× raw PutObject throughput',
        goal: { op: '>=', value: 0.9 },
        baseline: { what: 'raw PutObject of the same bytes to the same versitygw, median', value: (opts.sizeMiB / rawMs) * 1000, unit: 'MiB/s' },
        runs: r.pairs.map((p) => ({ ...p, ratio: p.rawMs / p.durableMs })),
        notes: `durable save median ${fmt(durableMs)} ms (${fmt((opts.sizeMiB / durableMs) * 1000)} MiB/s: sha256, multipart in 16 MiB parts × 4, conditional manifest PUT and read-back), raw ${fmt(rawMs)} ms`,
      }),
      figure({
        name: 's3-roundtrip-rss-ratio',
        values: [saveRatio, resumeRatio],
        aggregate: 'max',
        unit: '× blob size',
        goal: { op: '<=', value: 1.5 },
        baseline: { what: 'RSS before the state buffer existed' },
        runs: [{ phase: 'save', ratio: saveRatio }, { phase: 'resume', ratio: resumeRatio }, m],
        notes: `${opts.rssMiB} MB, in a fresh child: (VmHWM during the save, resp. during the resume with the state dropped) − (VmRSS before the state existed), ÷ blob size; 1.0 is the blob itself${m.canReset ? '' : ' (VmHWM could not be reset: the resume peak includes the save)'}`,
      }),
    ];
  } finally {
    await server.stop();
  }
}
