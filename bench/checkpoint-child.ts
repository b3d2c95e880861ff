/**
 * Child process for the checkpoint-write figures (one process per size, so RSS is its own).
 *
 * argv: <bytes> <reps> <dir>. Prints one JSON object on stdout.
 *
 * 1. Memory: RSS before the state exists; the state is allocated and filled with random bytes;
 *    the peak-RSS counter is reset (/proc/self/clear_refs = 5) and one durable write runs; VmHWM
 *    is the peak during it. The same for one raw write, as the baseline.
 *    The state lives in a SharedArrayBuffer, as the runtime's own checkpoint buffer does
 *    (snapshot-buffer.ts, every `checkpointInBackground({ copy: true })`): the sha256 helper
 *    thread hashes it in place. Then the same for a plain copy of it (`plainPeakKiB`): the helper
 *    gets that one in copied pieces.
 * 2. Time: `reps` rounds of raw write (open, write, fsync, close) and writeFileDurably (temp file,
 *    write + hash, fsync, rename, directory fsync) of the shared state, and writeFileDurably of the
 *    plain copy, rotating which goes first. Every written file is deleted and the deletion
 *    committed (directory fsync) before the next timed write, so the filesystem's discard work is
 *    not charged to any side.
 * 3. Diagnostics: sha256 of the state alone, and raw write + rename + directory fsync.
 */
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileDurably } from '../src/activities/checkpoint-store';

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

async function rawWrite(file: string, data: Uint8Array): Promise<void> {
  const fh = await fsp.open(file, 'wx', 0o644);
  try {
    let offset = 0;
    while (offset < data.byteLength) {
      const { bytesWritten } = await fh.write(data, offset, data.byteLength - offset);
      offset += bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function removeCommitted(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await fsyncDir(path.dirname(file));
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await run();
  return performance.now() - t;
}

async function main(): Promise<void> {
  const [bytesArg, repsArg, dir] = process.argv.slice(2);
  const bytes = Number(bytesArg);
  const reps = Number(repsArg);
  fs.mkdirSync(dir, { recursive: true });
  const rawFile = path.join(dir, 'raw.bin');
  const durableFile = path.join(dir, 'durable.ckpt');

  // --- memory
  const beforeState = status();
  const state = Buffer.from(new SharedArrayBuffer(bytes));
  for (let offset = 0; offset < bytes; offset += 64 << 20) randomFillSync(state, offset, Math.min(64 << 20, bytes - offset));
  const withState = status();
  const canReset = resetPeak();
  const atDurable = status();
  await writeFileDurably(durableFile, state);
  const durablePeak = status();
  await removeCommitted(durableFile);
  resetPeak();
  const atRaw = status();
  await rawWrite(rawFile, state);
  const rawPeak = status();
  await removeCommitted(rawFile);
  const plain = Buffer.allocUnsafeSlow(bytes);
  plain.set(state);
  resetPeak();
  const atPlain = status();
  await writeFileDurably(durableFile, plain);
  const plainPeak = status();
  await removeCommitted(durableFile);
  const memory = {
    canReset,
    rssBeforeStateKiB: beforeState.rssKiB,
    rssWithStateKiB: withState.rssKiB,
    durable: { rssAtStartKiB: atDurable.rssKiB, peakKiB: durablePeak.hwmKiB },
    raw: { rssAtStartKiB: atRaw.rssKiB, peakKiB: rawPeak.hwmKiB },
    plain: { rssAtStartKiB: atPlain.rssKiB, peakKiB: plainPeak.hwmKiB },
  };

  // --- time (one untimed pair first, to settle the allocator and the filesystem)
  await rawWrite(rawFile, state);
  await removeCommitted(rawFile);
  await writeFileDurably(durableFile, state);
  await removeCommitted(durableFile);
  const ORDERS = [['raw', 'durable', 'plain'], ['durable', 'plain', 'raw'], ['plain', 'raw', 'durable']] as const;
  const pairs: { rawMs: number; durableMs: number; plainMs: number; order: string }[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const order = ORDERS[rep % ORDERS.length];
    const ms = { raw: 0, durable: 0, plain: 0 };
    for (const which of order) {
      const file = which === 'raw' ? rawFile : durableFile;
      ms[which] = await timed(() => (which === 'raw' ? rawWrite(file, state) : writeFileDurably(file, which === 'plain' ? plain : state)));
      await removeCommitted(file);
    }
    pairs.push({ rawMs: ms.raw, durableMs: ms.durable, plainMs: ms.plain, order: order.join(',') });
  }

  // --- diagnostics
  const hashMs: number[] = [];
  const renameMs: number[] = [];
  for (let rep = 0; rep < Math.max(2, Math.ceil(reps / 2)); rep++) {
    const t = performance.now();
    createHash('sha256').update(state).digest('hex');
    hashMs.push(performance.now() - t);
    const tmp = path.join(dir, '.tmp-raw');
    renameMs.push(
      await timed(async () => {
        await rawWrite(tmp, state);
        await fsp.rename(tmp, rawFile);
        await fsyncDir(dir);
      }),
    );
    await removeCommitted(rawFile);
  }

  process.stdout.write(`${JSON.stringify({ bytes, memory, pairs, hashMs, rawRenameDirFsyncMs: renameMs })}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
