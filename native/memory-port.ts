/**
 * MemoryPort: a recording in-memory PacketPort for tests and the simulator.
 * Owns a queue of injected frames, the frames transmitted, a filter program
 * and the same counters as the AF_PACKET port; it models the kernel's order:
 * socket filter first (native/bpf.ts, same checks and semantics as
 * SO_ATTACH_FILTER), then the port's PACKET_HOST rule (destination MAC = this
 * port's MAC), then the frameSize limit. Must not do I/O or read the clock.
 */
import { ErrorCode, SaruError, parseMac, type RxBatch, type TxBatch } from '../core/index.js';
import { BpfProgram, checkProgram, programLengthError, unsupportedAncillary, type BpfContext } from './bpf.js';
import type { PacketPort, PortStats } from './types.js';

/** sll_pkttype values (linux/if_packet.h). */
export const PacketType = { HOST: 0, BROADCAST: 1, MULTICAST: 2, OTHERHOST: 3 } as const;

export interface MemoryPortInit {
  /** Default "mem0". */
  ifname?: string;
  /** 6 bytes or "aa:bb:cc:dd:ee:ff"; default 02:00:00:00:00:01. */
  mac?: Uint8Array | string;
  /** Bytes; default 1500. */
  mtu?: number;
  /** Frames per receive(); default 64. */
  batchSize?: number;
  /** Bytes per slot; default 2048. Bigger frames count as truncated. */
  frameSize?: number;
  /** Seen by SKF_AD_IFINDEX; default 1. */
  ifindex?: number;
}

function zeroStats(): PortStats {
  return {
    rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txErrors: 0, txInvalid: 0,
    skippedNotHost: 0, truncated: 0, rxErrors: 0, kernelDrops: 0, kernelFreezes: 0,
  };
}

/** A PacketPort in memory: inject() frames in, read `sent` out. */
export class MemoryPort implements PacketPort {
  readonly ifname: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly rx: RxBatch;
  readonly batchSize: number;
  readonly frameSize: number;
  readonly ifindex: number;
  /** Copies of every frame transmitted (transmit() and send()), in order. */
  readonly sent: Uint8Array[] = [];
  /** The program last attached (null: accept all). */
  filter: Uint8Array | null = null;
  /** Frames the filter rejected (the kernel does not count these). */
  filteredOut = 0;
  /** The next this-many frames offered for transmission fail as the kernel's ENOBUFS would (counted in txErrors). */
  failNextTx = 0;
  private program: BpfProgram | null = null;
  private queue: Uint8Array[] = [];
  private head = 0;
  private counters: PortStats = zeroStats();
  private closed = false;
  private readonly ctx: BpfContext = { protocol: 0, pktType: 0, ifindex: 0 };

  constructor(init: MemoryPortInit = {}) {
    this.ifname = init.ifname ?? 'mem0';
    const mac = init.mac ?? '02:00:00:00:00:01';
    this.mac = typeof mac === 'string' ? parseMac(mac) : Uint8Array.from(mac);
    if (this.mac.length !== 6) throw new SaruError(ErrorCode.INVALID_ARGUMENT, 'mac must be 6 bytes');
    this.mtu = init.mtu ?? 1500;
    this.batchSize = init.batchSize ?? 64;
    this.frameSize = init.frameSize ?? 2048;
    this.ifindex = init.ifindex ?? 1;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `batchSize must be a positive integer, got ${this.batchSize}`);
    if (!Number.isInteger(this.frameSize) || this.frameSize < this.mtu + 18)
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `frameSize ${this.frameSize} cannot hold MTU ${this.mtu} + 18`);
    this.rx = {
      buf: new Uint8Array(this.batchSize * this.frameSize),
      off: new Uint32Array(this.batchSize),
      len: new Uint32Array(this.batchSize),
      count: 0,
    };
  }

  /** Queue a copy of a frame as if it arrived on the wire. */
  inject(frame: Uint8Array): void {
    this.check('inject');
    this.queue.push(Uint8Array.from(frame));
  }

  /** Frames injected and not yet looked at by receive(). */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Delivers up to batchSize queued frames that pass the filter and are addressed to this MAC. Ignores the timeout. */
  receive(timeoutMs: number): number {
    this.check('receive');
    if (!(timeoutMs >= 0)) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `receive: timeoutMs must be >= 0, got ${timeoutMs}`);
    const rx = this.rx;
    let n = 0;
    while (n < this.batchSize && this.head < this.queue.length) {
      const f = this.queue[this.head++]!;
      const pktType = this.packetType(f);
      let keep = 0xffffffff;
      if (this.program) {
        this.ctx.protocol = f.length >= 14 ? (f[12]! << 8) | f[13]! : 0;
        this.ctx.pktType = pktType;
        this.ctx.ifindex = this.ifindex;
        keep = this.program.run(f, 0, f.length, this.ctx);
        if (keep === 0) {
          this.filteredOut++;
          continue;
        }
      }
      if (pktType !== PacketType.HOST) this.counters.skippedNotHost++;
      else if (keep < f.length || f.length > this.frameSize) this.counters.truncated++;
      else {
        const off = n * this.frameSize;
        rx.buf.set(f, off);
        rx.off[n] = off;
        rx.len[n] = f.length;
        this.counters.rxFrames++;
        this.counters.rxBytes += f.length;
        n++;
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    rx.count = n;
    return n;
  }

  transmit(tx: TxBatch): number {
    this.check('transmit');
    if (tx.count > tx.capacity)
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `transmit: count ${tx.count} exceeds capacity ${tx.capacity}`);
    let sent = 0;
    for (let i = 0; i < tx.count; i++) {
      const buf = tx.inScratch[i] ? tx.scratch : tx.rxBuf;
      const off = tx.off[i]!;
      const len = tx.len[i]!;
      if (len < 14 || off + len > buf.length) {
        this.counters.txInvalid++;
        continue;
      }
      if (this.offer(buf.subarray(off, off + len))) sent++;
    }
    return sent;
  }

  send(frame: Uint8Array): boolean {
    this.check('send');
    if (frame.length < 14) {
      this.counters.txErrors++; // the kernel refuses frames shorter than the link header (EINVAL)
      return false;
    }
    return this.offer(frame);
  }

  /** Same checks and errors as the AF_PACKET port; refuses ancillary loads it does not model. */
  setFilter(program: Uint8Array | null): void {
    this.check('setFilter');
    if (program === null) {
      this.filter = null;
      this.program = null;
      return;
    }
    const lenErr = programLengthError(program);
    if (lenErr) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `setFilter on "${this.ifname}": ${lenErr}`);
    const err = checkProgram(program);
    if (err)
      throw new SaruError(ErrorCode.IO, `setFilter on "${this.ifname}": the kernel would reject the classic BPF program: ${err}`);
    const anc = unsupportedAncillary(program);
    if (anc) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `setFilter on "${this.ifname}": MemoryPort: ${anc}`);
    this.program = new BpfProgram(program);
    this.filter = Uint8Array.from(program);
  }

  stats(): PortStats {
    this.check('stats');
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rx.count = 0;
  }

  private offer(frame: Uint8Array): boolean {
    if (frame.length > this.mtu + 18 || this.failNextTx > 0) {
      if (this.failNextTx > 0) this.failNextTx--;
      this.counters.txErrors++;
      return false;
    }
    this.sent.push(Uint8Array.from(frame));
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    return true;
  }

  private packetType(f: Uint8Array): number {
    if (f.length < 6) return PacketType.OTHERHOST;
    if ((f[0]! & 1) !== 0) {
      return f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff
        ? PacketType.BROADCAST
        : PacketType.MULTICAST;
    }
    for (let i = 0; i < 6; i++) if (f[i] !== this.mac[i]) return PacketType.OTHERHOST;
    return PacketType.HOST;
  }

  private check(action: string): void {
    if (this.closed) throw new SaruError(ErrorCode.IO, `${action}: packet port "${this.ifname}" is closed`);
  }
}
