/**
 * The runtime's copy of a trainer's state for `checkpointInBackground({ copy: true })`: one buffer
 * per attempt, filled again at each checkpoint. The caller guarantees that the persist of the
 * previous copy has ended before it asks for the next (at most one persist is in flight, and the
 * call waits for it first), so one buffer is enough. A state of another size gets a new buffer.
 */
export class SnapshotBuffer {
  private buffer: Buffer | undefined;

  /** A copy of `data` in the runtime's buffer, valid until the next call. */
  copy(data: Uint8Array): Buffer {
    if (this.buffer?.byteLength !== data.byteLength) {
      this.buffer = undefined; // let the old one go before the new one is allocated
      // Shared memory, so the persist's sha256 helper thread reads it in place (hash-thread.ts).
      this.buffer = Buffer.from(new SharedArrayBuffer(data.byteLength));
    }
    this.buffer.set(data);
    return this.buffer;
  }
}
