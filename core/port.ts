/**
 * The frame batches that cross between the engine and a PacketPort (native
 * AF_PACKET I/O, or a recording in-memory port in tests): the receive batch
 * the engine reads and the transmit batch it fills. Layouts only; no I/O.
 */

/** A batch of received frames: frame i is buf[off[i] .. off[i] + len[i]). */
export interface RxBatch {
  buf: Uint8Array;
  off: Uint32Array;
  len: Uint32Array;
  count: number;
}

/**
 * Frames to transmit. Frame i lives in the receive buffer (rewritten in place,
 * `inScratch[i] === 0`) or in the engine's scratch buffer (built anew, e.g. a
 * tunnel encapsulation or an ICMP error, `inScratch[i] === 1`), at off[i] with
 * length len[i] bytes. Cleared at the start of every batch.
 */
export class TxBatch {
  readonly capacity: number;
  readonly off: Uint32Array;
  readonly len: Uint32Array;
  readonly inScratch: Uint8Array;
  /** Buffer for frames built by the engine; `scratchUsed` bytes are in use. */
  readonly scratch: Uint8Array;
  scratchUsed = 0;
  count = 0;
  /** The receive buffer the in-place frames point into. */
  rxBuf: Uint8Array = new Uint8Array(0);

  /**
   * @param capacity frames per batch
   * @param scratchBytes bytes for engine-built frames per batch
   */
  constructor(capacity: number, scratchBytes: number) {
    this.capacity = capacity;
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.inScratch = new Uint8Array(capacity);
    this.scratch = new Uint8Array(scratchBytes);
  }

  /** Empty the batch. */
  reset(rxBuf: Uint8Array): void {
    this.count = 0;
    this.scratchUsed = 0;
    this.rxBuf = rxBuf;
  }

  /** The bytes of frame i (a view; allocates the view: for tests and slow paths). */
  frame(i: number): Uint8Array {
    const b = this.inScratch[i] === 1 ? this.scratch : this.rxBuf;
    return b.subarray(this.off[i]!, this.off[i]! + this.len[i]!);
  }
}
