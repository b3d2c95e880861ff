/**
 * Hashing of large buffers on a helper thread, so that hashing a checkpoint does not take the event
 * loop (and the training loop running on it) for the whole hash.
 *
 * - `sha256OffThread`: the plain sha256 of a buffer.
 * - `blockDigestsOffThread`: the digests of some blocks of a block digest (block-hash.ts, which
 *   shares the blocks of one hash between the helper and the calling thread).
 *
 * A buffer in a SharedArrayBuffer is hashed where it is, with no copy on either thread. Any other
 * buffer is copied by the main thread in pieces (a copy costs a fraction of the hash) that are
 * handed over. Memory stays bounded: each hash owns at most IN_FLIGHT piece buffers, which travel
 * to the helper and back (transferred both ways, never cloned), so a hash adds at most
 * IN_FLIGHT × PIECE bytes however large the buffer, and no garbage for either thread's collector.
 *
 * One helper (a thread costs about 10 MB of RSS) serves every hash of the process, in order of
 * arrival; it keeps the process alive only while it has work. If it cannot be started or dies, the
 * hashes it was serving fail with that error (the write they belong to then fails like any other
 * I/O error), and the next hash starts a new one.
 */
import { Worker } from 'node:worker_threads';

/** Unit of the copies handed to the helper thread (the block size of block-hash.ts). */
const PIECE = 4 << 20;
/** Pieces copied and not yet hashed, per plain hash. */
const IN_FLIGHT = 2;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
function digests(view, size) {
  const count = Math.ceil(view.byteLength / size);
  const out = new Uint8Array(32 * count);
  for (let i = 0; i < count; i++) out.set(createHash('sha256').update(view.subarray(i * size, (i + 1) * size)).digest(), 32 * i);
  return out;
}
parentPort.on('message', (m) => {
  if (m.blocks) {
    const out = digests(m.blocks, m.blockBytes);
    if (m.shared) parentPort.postMessage({ id: m.id, digests: out }, [out.buffer]);
    else parentPort.postMessage({ id: m.id, digests: out, ack: m.blocks }, [out.buffer, m.blocks.buffer]);
    return;
  }
  let hash = open.get(m.id);
  if (!hash) { hash = createHash('sha256'); open.set(m.id, hash); }
  if (m.shared) { hash.update(m.shared); open.delete(m.id); parentPort.postMessage({ id: m.id, hex: hash.digest('hex') }); return; }
  if (m.piece) { hash.update(m.piece); parentPort.postMessage({ id: m.id, ack: m.piece }, [m.piece.buffer]); return; }
  open.delete(m.id);
  parentPort.postMessage({ id: m.id, hex: hash.digest('hex') });
});
`;

interface Reply {
  readonly id: number;
  readonly ack?: Uint8Array;
  readonly hex?: string;
  readonly digests?: Uint8Array;
}

interface Pending {
  onMessage(reply: Reply): void;
  reject(err: unknown): void;
}

/** One helper: its thread while it lives, and the requests it still owes an answer. */
class Helper {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();

  /** Sends `message` (for request `id`) and routes the replies to `handler` until `done(id)`. */
  send(id: number, message: object, transfer: ArrayBuffer[], handler: Pending): void {
    const w = this.thread();
    if (!this.pending.has(id)) {
      if (this.pending.size === 0) w.ref();
      this.pending.set(id, handler);
    }
    w.postMessage(message, transfer);
  }

  done(id: number): void {
    if (!this.pending.delete(id)) return;
    if (this.pending.size === 0) this.worker?.unref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: Reply) => this.pending.get(m.id)?.onMessage(m));
    const fail = (err: unknown) => {
      // 'exit' follows 'error': by then a new thread may serve new requests, which are not its to fail.
      if (this.worker !== w) return;
      this.worker = undefined;
      const owed = [...this.pending.values()];
      this.pending.clear();
      for (const p of owed) p.reject(err);
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the sha256 helper thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }
}

const helper = new Helper();
let nextId = 0;
/** Piece buffers back from finished hashes, reused by the next ones. */
const spare: ArrayBuffer[] = [];
const SPARE = 2 * IN_FLIGHT;

const isShared = (data: Uint8Array) => data.buffer instanceof SharedArrayBuffer;

/**
 * The hex sha256 of `data`, computed on a helper thread: from copies of it in pieces, or, when
 * `data` lives in a SharedArrayBuffer (the runtime's snapshot buffers do), from the very memory,
 * with no copy on either thread. Either way the caller must not change `data` before this resolves.
 */
export async function sha256OffThread(data: Uint8Array): Promise<string> {
  const id = nextId++;
  let hex = '';
  const slots = new PieceSlots();
  const result = new Promise<void>((resolve, reject) => {
    const handler: Pending = {
      onMessage: (m) => {
        if (m.ack) return slots.release(m.ack);
        hex = m.hex ?? '';
        helper.done(id);
        resolve();
      },
      reject: (err) => {
        slots.fail();
        reject(err);
      },
    };
    if (isShared(data)) {
      // A view of shared memory is posted as a view of the same memory, never cloned.
      helper.send(id, { id, shared: data }, [], handler);
      return;
    }
    void (async () => {
      for (let offset = 0; offset < data.byteLength; offset += PIECE) {
        const piece = await slots.copyOf(data.subarray(offset, offset + PIECE));
        if (!piece) return;
        helper.send(id, { id, piece }, [piece.buffer as ArrayBuffer], handler);
      }
      if (!slots.failed) helper.send(id, { id }, [], handler);
    })().catch(handler.reject);
  });
  await result.finally(() => slots.recycle());
  return hex;
}

/**
 * The SHA-256 of each block of `view`, concatenated (32 bytes per block), computed on the helper:
 * in place when `view` is shared memory, else from a copy (at most PIECE bytes, so the caller
 * bounds the memory by how many it keeps in flight). The caller must not change `view` before
 * this resolves.
 */
export function blockDigestsOffThread(view: Uint8Array, blockBytes: number): Promise<Uint8Array> {
  const id = nextId++;
  return new Promise<Uint8Array>((resolve, reject) => {
    const handler: Pending = {
      onMessage: (m) => {
        helper.done(id);
        if (m.ack && spare.length < SPARE && m.ack.buffer.byteLength === PIECE) spare.push(m.ack.buffer as ArrayBuffer);
        resolve(m.digests ?? new Uint8Array(0));
      },
      reject,
    };
    if (isShared(view)) return helper.send(id, { id, blocks: view, blockBytes, shared: true }, [], handler);
    if (view.byteLength > PIECE) throw new RangeError(`blockDigestsOffThread: a copied view holds at most ${PIECE} bytes, received ${view.byteLength}`);
    const piece = new Uint8Array(spare.pop() ?? new ArrayBuffer(PIECE), 0, view.byteLength);
    piece.set(view);
    helper.send(id, { id, blocks: piece, blockBytes }, [piece.buffer as ArrayBuffer], handler);
  });
}

/**
 * The piece buffers of one plain hash: at most IN_FLIGHT, allocated on first use (or
 * taken from `spare`), waited for while all are at the helper.
 */
class PieceSlots {
  private readonly free: ArrayBuffer[] = [];
  private owned = 0;
  private wake: (() => void) | undefined;
  failed = false;

  /** A copy of `source` in one of our buffers, or undefined once the hash failed. */
  async copyOf(source: Uint8Array): Promise<Uint8Array | undefined> {
    if (this.free.length === 0 && this.owned < IN_FLIGHT) {
      this.free.push(spare.pop() ?? new ArrayBuffer(PIECE));
      this.owned++;
    }
    while (this.free.length === 0 && !this.failed) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.failed) return undefined;
    // The caller's buffer cannot be handed over: a transfer would detach it, a view would clone all of it.
    const piece = new Uint8Array(this.free.pop()!, 0, source.byteLength);
    piece.set(source);
    return piece;
  }

  release(piece: Uint8Array): void {
    this.free.push(piece.buffer as ArrayBuffer);
    this.wake?.();
  }

  fail(): void {
    this.failed = true;
    this.wake?.();
  }

  /** Returns the buffers back from the helper to `spare`, for the next hashes. */
  recycle(): void {
    spare.push(...this.free.splice(0, Math.max(0, SPARE - spare.length)));
  }
}
