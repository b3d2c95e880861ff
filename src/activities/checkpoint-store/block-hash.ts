/**
 * The block digest of large checkpoints: what a pointer's `sha256` is when it carries
 * `hashBlockBytes` (see CheckpointPointer in src/shared/types.ts).
 *
 *   sha256 = SHA-256( SHA-256(block 0) ‖ SHA-256(block 1) ‖ … ‖ SHA-256(block n-1) )
 *
 * where the blocks are the blob's consecutive `hashBlockBytes`-byte pieces (the last may be
 * shorter; an empty blob has no blocks). One SHA-256 stream runs at about the speed of a raw
 * write plus fsync on the reference machine, so a durable write that hashes one stream can never
 * reach raw throughput; blocks can be hashed on several threads at once. This is the scheme of
 * Dropbox's content hash and of S3's composite checksums. The pointer's `bytes` fixes the block
 * count, and every inner digest is 32 bytes, so the outer input is unambiguous.
 *
 * Blobs written whole below BLOCK_HASH_MIN_BYTES (and every stream, adoption and S3 object) keep
 * the plain SHA-256 of their bytes, which `sha256sum` reproduces.
 */
import { createHash } from 'node:crypto';
import { blockDigestsOffThread } from './hash-thread';

/** Block size of the block digests this version writes. */
export const HASH_BLOCK_BYTES = 4 << 20;
/** Whole buffers from this size on get a block digest. */
export const BLOCK_HASH_MIN_BYTES = 32 << 20;
/** Block sizes a pointer may name: powers of two from 64 KiB to 1 GiB (a forged 1-byte block would make verification crawl). */
const MIN_BLOCK = 64 << 10;
const MAX_BLOCK = 1 << 30;

/** Why `value` is not a block size a pointer may carry, or undefined when it is one. */
export function hashBlockBytesProblem(value: unknown): string | undefined {
  const ok = typeof value === 'number' && Number.isSafeInteger(value) && value >= MIN_BLOCK && value <= MAX_BLOCK && (value & (value - 1)) === 0;
  return ok ? undefined : `hashBlockBytes: expected a power of two from ${MIN_BLOCK} to ${MAX_BLOCK}, received ${JSON.stringify(value)}`;
}

/** The SHA-256 of each consecutive block of `view`, concatenated (32 bytes per block). */
export function blockDigests(view: Uint8Array, blockBytes: number): Buffer {
  const count = Math.ceil(view.byteLength / blockBytes);
  const out = Buffer.allocUnsafe(32 * count);
  for (let i = 0; i < count; i++) createHash('sha256').update(view.subarray(i * blockBytes, (i + 1) * blockBytes)).digest().copy(out, 32 * i);
  return out;
}

/** The outer digest, from the inner ones in block order. */
export function combineBlockDigests(parts: readonly Uint8Array[]): string {
  const outer = createHash('sha256');
  for (const part of parts) outer.update(part);
  return outer.digest('hex');
}

/** The block digest of `data`, on this thread: the reference the tests and small reads use. */
export function blockSha256(data: Uint8Array, blockBytes: number = HASH_BLOCK_BYTES): string {
  return combineBlockDigests([blockDigests(data, blockBytes)]);
}

/** Blocks handed to the helper and not yet answered, per hash: it always has the next one queued. */
const HELPER_QUEUE = 2;
/** What this thread hashes between two yields to I/O. */
const HERE_SLICE = 1 << 20;

const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The block digests of `run` on this thread, in slices with yields to I/O between them. */
export async function blockDigestsHere(run: Uint8Array, blockBytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(32 * Math.ceil(run.byteLength / blockBytes));
  for (let offset = 0; offset < run.byteLength; offset += blockBytes) {
    if (offset > 0) await yieldToIo();
    out.set(await digestHere(run.subarray(offset, offset + blockBytes)), (32 * offset) / blockBytes);
  }
  return out;
}

/** The SHA-256 of one block on this thread, in slices with yields between them. */
async function digestHere(block: Uint8Array): Promise<Buffer> {
  const hash = createHash('sha256');
  for (let offset = 0; offset < block.byteLength; offset += HERE_SLICE) {
    if (offset > 0) await yieldToIo();
    hash.update(block.subarray(offset, offset + HERE_SLICE));
  }
  return hash.digest();
}

/**
 * The block digest of `data`, its blocks shared between the helper thread and this one: each takes
 * the next unhashed block when it is free.
 *
 * This thread joins once `joinAfter` settles, or never when it is null (the event loop has other
 * work, such as training beside a background persist: the helper then hashes every block). A
 * write passes the moment its last write syscall returned: until then the other core copies the
 * bytes into the page cache, and hashing there would slow the write. It hashes in slices of
 * HERE_SLICE (under a millisecond) between yields, so each I/O completion starts the next syscall
 * at once.
 *
 * One helper rather than two: a second thread would cost about 10 MB of RSS, more than the
 * 1.2 × state bound leaves for a 64 MB state. The caller must not change `data` before this
 * resolves.
 */
export async function blockSha256Split(data: Uint8Array, blockBytes: number = HASH_BLOCK_BYTES, joinAfter: Promise<unknown> | null = Promise.resolve()): Promise<string> {
  const blocks = Math.ceil(data.byteLength / blockBytes);
  const digests = Buffer.allocUnsafe(32 * blocks);
  const block = (i: number) => data.subarray(i * blockBytes, (i + 1) * blockBytes);
  let next = 0;
  let failed = false;
  const helper = async () => {
    const queued = new Set<Promise<void>>();
    try {
      while (next < blocks && !failed) {
        const i = next++;
        const done: Promise<void> = blockDigestsOffThread(block(i), blockBytes).then((d) => void digests.set(d, 32 * i));
        queued.add(done);
        void done.then(() => queued.delete(done), () => undefined);
        if (queued.size >= HELPER_QUEUE) await Promise.race(queued);
      }
      await Promise.all(queued);
    } catch (err) {
      failed = true;
      // Let the blocks still at the helper finish (or fail) before the caller may reuse `data`.
      await Promise.allSettled(queued);
      throw err;
    }
  };
  const here = async () => {
    if (joinAfter === null) return;
    await joinAfter.catch(() => undefined);
    while (next < blocks && !failed) {
      await yieldToIo();
      if (next >= blocks || failed) break;
      const i = next++;
      digests.set(await digestHere(block(i)), 32 * i);
    }
  };
  await Promise.all([helper(), here()]);
  return combineBlockDigests([digests]);
}
