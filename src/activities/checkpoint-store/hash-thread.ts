/**
 * sha256 of a large buffer on a helper thread, so that hashing a checkpoint does not take the
 * event loop (and the training loop running on it) for the whole hash: the main thread only copies
 * the buffer in pieces (a copy costs a fraction of the hash) and hands each piece over.
 *
 * Memory stays bounded: at most IN_FLIGHT pieces are copied and not yet hashed. One helper thread
 * serves every hash of the process, in order of the pieces' arrival; it keeps the process alive
 * only while a hash is pending. If the thread cannot be started or dies, the hash fails with that error (the write it
 * belongs to then fails like any other I/O error, and the next hash starts a new thread).
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
  if (m.piece) { hash.update(m.piece); parentPort.postMessage({ id: m.id, ack: true }); return; }
  open.delete(m.id);
  parentPort.postMessage({ id: m.id, hex: hash.digest('hex') });
});
`;

interface Pending {
  onAck(): void;
  resolve(hex: string): void;
  reject(err: unknown): void;
}

let helper: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 0;

function thread(): Worker {
  if (helper) return helper;
  const w = new Worker(SOURCE, { eval: true });
  w.unref();
  w.on('message', (m: { id: number; ack?: boolean; hex?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    if (m.ack) p.onAck();
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

/** The hex sha256 of `data`, computed on the helper thread from copies of it. */
export async function sha256OffThread(data: Uint8Array): Promise<string> {
  const w = thread();
  const id = nextId++;
  w.ref();
  let unacked = 0;
  let wake: (() => void) | undefined;
  const result = new Promise<string>((resolve, reject) => {
    pending.set(id, {
      onAck: () => {
        unacked--;
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
    while (unacked >= IN_FLIGHT && pending.has(id)) await new Promise<void>((resolve) => (wake = resolve));
    // A copy of exactly this piece (a view would clone its whole underlying buffer), transferred.
    const piece = new Uint8Array(data.subarray(offset, offset + PIECE));
    unacked++;
    w.postMessage({ id, piece }, [piece.buffer]);
  }
  if (pending.has(id)) w.postMessage({ id });
  return result;
}
