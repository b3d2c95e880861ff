/**
 * Child process for the S3 figures (one process, so RSS is its own). argv: <json options>.
 * Prints one JSON object on stdout.
 *
 * 1. Time: `reps` pairs, alternating which goes first, of a raw PutObject of the state (one
 *    request, no hashing, no manifest) and a durable S3CheckpointStore.save of the same bytes
 *    (hashed multipart upload, conditional manifest commit and its read-back), to the same server.
 * 2. Memory, for `rssBytes`: RSS before the state exists; peak RSS (VmHWM, reset through
 *    /proc/self/clear_refs) during a save of the state; then, with the state dropped, during a
 *    resume (latestVerified: download into one buffer, hashing on the way).
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3CheckpointStore, createS3Client } from '../src/activities/checkpoint-store';

interface Options {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  cacheDir: string;
  bytes: number;
  reps: number;
  rssBytes: number;
}

function status(): { rssKiB: number; hwmKiB: number } {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name: string) => Number(/\s(\d+) kB/.exec(text.split('\n').find((l) => l.startsWith(name)) ?? '')?.[1] ?? NaN);
  return { rssKiB: field('VmRSS:'), hwmKiB: field('VmHWM:') };
}

function resetPeak(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as Options;
  const credentials = { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey };
  const connection = { endpoint: o.endpoint, region: 'us-east-1', forcePathStyle: true };
  const client = createS3Client(connection, { credentials });
  const store = new S3CheckpointStore({ client, bucket: o.bucket, prefix: 'bench', cacheDir: o.cacheDir });

  const state = randomFillSync(Buffer.allocUnsafe(o.bytes));
  const pairs: { rawMs: number; durableMs: number; order: string }[] = [];
  const raw = async (i: number) => {
    const t = performance.now();
    await client.send(new PutObjectCommand({ Bucket: o.bucket, Key: `raw/blob-${i}`, Body: state }));
    return performance.now() - t;
  };
  const durable = async (i: number) => {
    const t = performance.now();
    await store.save('bench/throughput', { epoch: i, step: 0, attempt: 1, data: state, runId: 'r' }, 2);
    return performance.now() - t;
  };
  // One untimed pair warms connections and the JIT.
  await raw(-1);
  await durable(0);
  for (let i = 1; i <= o.reps; i++) {
    const rawFirst = i % 2 === 1;
    const a = rawFirst ? await raw(i) : await durable(i);
    const b = rawFirst ? await durable(i) : await raw(i);
    pairs.push(rawFirst ? { rawMs: a, durableMs: b, order: 'raw-first' } : { rawMs: b, durableMs: a, order: 'durable-first' });
  }

  // Memory: a fresh state of rssBytes, saved, dropped, then resumed.
  gc();
  const rssBeforeStateKiB = status().rssKiB;
  // The state lives only inside this call, so it can be collected before the resume.
  const { canReset, saveStartKiB, savePeakKiB } = await (async () => {
    const big = randomFillSync(Buffer.allocUnsafe(o.rssBytes));
    const reset = resetPeak();
    const start = status().rssKiB;
    await store.save('bench/rss', { epoch: 1, step: 0, attempt: 1, data: big, runId: 'r' }, 1);
    return { canReset: reset, saveStartKiB: start, savePeakKiB: status().hwmKiB };
  })();
  gc();
  const resumeStartKiB = status().rssKiB;
  resetPeak();
  const resumed = await store.latestVerified('bench/rss', [], { runId: 'r' });
  const resumePeakKiB = status().hwmKiB;
  if (resumed.checkpoint?.data.byteLength !== o.rssBytes) throw new Error('resume returned the wrong size');
  client.destroy();
  process.stdout.write(
    `${JSON.stringify({ bytes: o.bytes, pairs, memory: { canReset, rssBytes: o.rssBytes, rssBeforeStateKiB, saveStartKiB, savePeakKiB, resumeStartKiB, resumePeakKiB } })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
