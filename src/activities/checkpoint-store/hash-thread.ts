/**
 * sha256 of a large buffer on a helper thread, so that hashing a checkpoint does not take the
 * event loop (and the training loop running on it) for the whole hash.
 *
 * - A buffer in a SharedArrayBuffer is hashed where it is, with no copy on either thread.
 * - Any other buffer is copied by the main thread in pieces (a copy costs a fraction of the hash)
 *   that are handed over. Memory stays bounded: each hash owns IN_FLIGHT piece buffers, which
 *   travel to the helper and back (transferred both ways, never cloned), so a hash adds at most
 *   IN_FLIGHT × PIECE bytes however large the buffer, and no garbage for either thread's collector.
 *
 * One helper thread serves every hash of the process, in order of arrival; it keeps the process
 * alive only while a hash is pending. If the thread cannot be started or dies, the hash fails with
 * that error (the write it belongs to then fails like any other I/O error, and the next hash
 * starts a new thread).
 */
import { Worker } from 'node:worker_threads';

/** Unit of the copies handed to the helper thread. */
const PIECE = 4 << 20;
/** Pieces copied and not yet hashed, per hash. */
const IN_FLIGHT = 2;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  let hash = open.get(m.id);
  if (!hash) { hash = createHash('sha256'); open.set(m.id, hash); }
  if (m.shared) { hash.update(m.shared); open.delete(m.id); parentPort.postMessage({ id: m.id, hex: hash.digest('hex') }); return; }
  if (m.piece) { hash.update(m.piece); parentPort.postMessage({ id: m.id, ack: m.piece }, [m.piece.buffer]); return; }
  open.delete(m.id);
  parentPort.postMessage({ id: m.id, hex: hash.digest('hex') });
});
`;

interface Pending {
  /** The helper hashed a piece and hands its buffer back. */
  onAck(piece: Uint8Array): void;
  resolve(hex: string): void;
  reject(err: unknown): void;
}

/** Piece buffers back from finished hashes, reused by the next ones (at most SPARE of them). */
const spare: ArrayBuffer[] = [];
const SPARE = 2 * IN_FLIGHT;

let helper: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 0;

function thread(): Worker {
  if (helper) return helper;
  const w = new Worker(SOURCE, { eval: true });
  w.unref();
  w.on('message', (m: { id: number; ack?: Uint8Array; hex?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    if (m.ack) p.onAck(m.ack);
    else {
      pending.delete(m.id);
      if (pending.size === 0) w.unref();
      p.resolve(m.hex ?? '');
    }
  });
  const fail = (err: unknown) => {
    if (helper === w) helper = undefined;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(err);
    }
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the sha256 helper thread exited (code ${code})`)));
  helper = w;
  return w;
}

/**
 * The hex sha256 of `data`, computed on the helper thread: from copies of it in pieces, or, when
 * `data` lives in a SharedArrayBuffer (the runtime's snapshot buffers do), from the very memory,
 * with no copy on either thread. Either way the caller must not change `data` before this resolves.
 */
export async function sha256OffThread(data: Uint8Array): Promise<string> {
  const w = thread();
  const id = nextId++;
  w.ref();
  if (data.buffer instanceof SharedArrayBuffer) {
    const hashed = new Promise<string>((resolve, reject) => pending.set(id, { onAck: () => undefined, resolve, reject }));
    // A view of shared memory is posted as a view of the same memory, never cloned.
    w.postMessage({ id, shared: data });
    return hashed;
  }
  // Piece buffers not at the helper; allocated on first use, at most IN_FLIGHT of them.
  const free: ArrayBuffer[] = [];
  let owned = 0;
  let wake: (() => void) | undefined;
  const result = new Promise<string>((resolve, reject) => {
    pending.set(id, {
      onAck: (piece) => {
        free.push(piece.buffer as ArrayBuffer);
        wake?.();
      },
      resolve,
      reject: (err) => {
        wake?.();
        reject(err);
      },
    });
  });
  // Handled here so a failure while pieces are still being posted is not reported as unhandled.
  void result.catch(() => undefined);
  for (let offset = 0; offset < data.byteLength && pending.has(id); offset += PIECE) {
    if (free.length === 0 && owned < IN_FLIGHT) {
      free.push(spare.pop() ?? new ArrayBuffer(PIECE));
      owned++;
    }
    while (free.length === 0 && pending.has(id)) await new Promise<void>((resolve) => (wake = resolve));
    if (!pending.has(id)) break;
    // A copy of this piece into a buffer of ours (the caller's buffer cannot be handed over: a
    // transfer would detach it, a view would clone all of it), transferred to the helper.
    const source = data.subarray(offset, offset + PIECE);
    const piece = new Uint8Array(free.pop()!, 0, source.byteLength);
    piece.set(source);
    w.postMessage({ id, piece }, [piece.buffer]);
  }
  if (pending.has(id)) w.postMessage({ id });
  const hex = await result.finally(() => spare.push(...free.splice(0, Math.max(0, SPARE - spare.length))));
  return hex;
}
