/**
 * The PacketPort contract shared by the AF_PACKET port (packet-port.ts) and
 * the recording in-memory port (memory-port.ts): shapes, units and the
 * meaning of every counter. Types only; no I/O.
 */
import type { RxBatch, TxBatch } from '../core/index.js';

/** Counters since open; monotonic. */
export interface PortStats {
  /** Frames delivered by receive(), and their bytes (Ethernet header included, no FCS). */
  rxFrames: number;
  rxBytes: number;
  /** Frames the kernel accepted for transmission, and their bytes. */
  txFrames: number;
  txBytes: number;
  /** Frames the kernel refused: EAGAIN/ENOBUFS (queue full), EMSGSIZE (bigger than the MTU), link down. */
  txErrors: number;
  /** Frames of a TxBatch outside their buffer or shorter than an Ethernet header: never handed to the kernel. */
  txInvalid: number;
  /** Frames that passed the filter but were not addressed to this host (sll_pkttype != PACKET_HOST). */
  skippedNotHost: number;
  /** Frames bigger than frameSize (or cut by the filter's return value): dropped whole, never delivered in part. */
  truncated: number;
  /** Receive-side socket errors (ENETDOWN when the link went down). */
  rxErrors: number;
  /** Frames the kernel dropped because the ring or socket buffer was full (PACKET_STATISTICS tp_drops, accumulated). */
  kernelDrops: number;
  /** Times the TPACKET_V3 ring was found full (tp_freeze_q_cnt); 0 in mmsg mode. */
  kernelFreezes: number;
}

/** A source and sink of Ethernet frames on one interface. */
export interface PacketPort {
  readonly ifname: string;
  /** 6 bytes, the interface's MAC. */
  readonly mac: Uint8Array;
  /** Bytes (IP MTU, without the Ethernet header). */
  readonly mtu: number;
  /** Filled by receive(); frame i is rx.buf[rx.off[i] .. rx.off[i] + rx.len[i]). Valid until the next receive(). */
  readonly rx: RxBatch;
  /**
   * Wait up to timeoutMs (0 = do not wait) for frames addressed to this host.
   * @returns frames now in rx (rx.count)
   * @throws SaruError INVALID_ARGUMENT for a negative or NaN timeout; IO after close() or when a system call fails
   */
  receive(timeoutMs: number): number;
  /**
   * Send every frame of the batch (tx.count frames).
   * @returns frames sent; the others are counted in stats().txErrors / txInvalid
   * @throws SaruError INVALID_ARGUMENT when tx.count exceeds tx.capacity; IO after close()
   */
  transmit(tx: TxBatch): number;
  /** Send one frame (slow path: tests, ARP). @returns whether the kernel took it */
  send(frame: Uint8Array): boolean;
  /**
   * Attach, or atomically replace, the classic BPF socket filter: N*8 bytes of
   * struct sock_filter in host byte order (see native/bpf.ts); null accepts all.
   * @throws SaruError INVALID_ARGUMENT for a length that is not 1..4096 instructions; IO when the kernel rejects the program
   */
  setFilter(program: Uint8Array | null): void;
  stats(): PortStats;
  /** Release the socket and receive memory; idempotent. Every other call afterwards throws SaruError IO. */
  close(): void;
}

/** Settings of an AF_PACKET port. */
export interface PacketPortInit {
  /** Interface name (1..15 bytes). */
  ifname: string;
  /** Frames per receive() (default 64). */
  batchSize?: number;
  /** 'ring': TPACKET_V3 mmap ring, zero-copy; 'mmsg': recvmmsg into batchSize slots. Default: the faster on the bench (docs/native.md). */
  mode?: 'ring' | 'mmsg';
  /** Bytes per frame slot (default 2048); must hold MTU + 14 (Ethernet) + 4 (one VLAN tag). Bigger frames count as truncated. */
  frameSize?: number;
  /** Ring mode: number of blocks (default 16). */
  ringBlocks?: number;
  /** Ring mode: bytes per block, a multiple of the page size (default 1 MiB). */
  ringBlockSize?: number;
  /** Ring mode: ms after which a block holding frames is handed over though not full (tp_retire_blk_tov, default 1). */
  ringTimeoutMs?: number;
  /** SO_RCVBUF / SO_SNDBUF in bytes (default 4 MiB each; set with the FORCE variants when permitted). */
  rcvbufBytes?: number;
  sndbufBytes?: number;
  /**
   * Open the socket inside this network namespace: a name from `ip netns`
   * (/run/netns/NAME) or a path to a namespace file. The calling thread
   * returns to its own namespace afterwards. Needs CAP_SYS_ADMIN.
   */
  netns?: string;
  /** First filter program, attached atomically at open (default: accept all). */
  filter?: Uint8Array | null;
}
