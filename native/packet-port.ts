/**
 * The AF_PACKET PacketPort: validates settings, opens the native socket and
 * turns its errno-carrying errors into SaruError. Owns one socket per port
 * and the RxBatch views over the receive memory the addon exposes once; must
 * not decide which frames matter (the filter program and the engine do).
 * receive() and transmit() allocate nothing and contain no try/catch.
 *
 * Kernel sources: packet(7); Documentation/networking/packet_mmap.rst;
 * Documentation/networking/filter.rst.
 */
import { constants as osConstants } from 'node:os';
import { ErrorCode, SaruError, type RxBatch, type TxBatch } from '../core/index.js';
import { loadAddon, type NativeSocket } from './addon.js';
import { programLengthError } from './bpf.js';
import type { PacketPort, PacketPortInit, PortStats } from './types.js';

/** The receive mode chosen by bench/native-io.ts (see docs/native.md). */
export const DEFAULT_MODE: 'ring' | 'mmsg' = 'ring';

const E = osConstants.errno;

/** Where the socket was being used, for messages: `open "veth0" (netns ns1)`. */
function where(ifname: string, netns: string | undefined): string {
  return `"${ifname}"${netns ? ` in network namespace ${netns}` : ''}`;
}

/**
 * Map an error thrown by the addon (errno + syscall, or RangeError) to SaruError:
 * ENODEV/ENXIO -> NO_SUCH_INTERFACE, EPERM/EACCES -> NOT_PERMITTED,
 * RangeError/TypeError -> INVALID_ARGUMENT, anything else -> IO.
 */
export function toSaruError(e: unknown, action: string, ifname: string, netns?: string): SaruError {
  if (e instanceof SaruError) return e;
  const err = e as { errno?: unknown; syscall?: unknown; message?: unknown };
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  if (typeof err?.errno === 'number') {
    const n = err.errno;
    const syscall = typeof err.syscall === 'string' ? err.syscall : '';
    if (n === E.ENODEV || n === E.ENXIO)
      return new SaruError(ErrorCode.NO_SUCH_INTERFACE, `no such interface ${where(ifname, netns)} (${msg})`);
    if (n === E.EPERM || n === E.EACCES) {
      const need = syscall.startsWith('setns')
        ? 'entering a network namespace needs CAP_SYS_ADMIN (or root)'
        : 'packet sockets need CAP_NET_RAW, and filters and forced buffer sizes CAP_NET_ADMIN (or root)';
      return new SaruError(ErrorCode.NOT_PERMITTED, `${action} ${where(ifname, netns)}: ${msg}: ${need}`);
    }
    if (n === E.ENOENT && syscall.startsWith('open('))
      return new SaruError(ErrorCode.NO_SUCH_INTERFACE, `${action} ${where(ifname, netns)}: no such network namespace (${msg})`);
    if (n === E.EINVAL && syscall.includes('SO_ATTACH_FILTER'))
      return new SaruError(ErrorCode.IO, `${action} ${where(ifname, netns)}: the kernel rejected the classic BPF program: ${msg}`);
    return new SaruError(ErrorCode.IO, `${action} ${where(ifname, netns)}: ${msg}`);
  }
  if (e instanceof RangeError || e instanceof TypeError)
    return new SaruError(ErrorCode.INVALID_ARGUMENT, `${action} ${where(ifname, netns)}: ${msg}`);
  return new SaruError(ErrorCode.IO, `${action} ${where(ifname, netns)}: ${msg}`);
}

function closedError(ifname: string, action: string): SaruError {
  return new SaruError(ErrorCode.IO, `${action}: packet port "${ifname}" is closed`);
}

function checkInt(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min || x > max)
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `${name} must be an integer in ${min}..${max}, got ${v}`);
  return x;
}

/** `ip netns` names live in /run/netns; anything with a slash is a path. */
function netnsPath(ns: string | undefined): string | undefined {
  if (ns === undefined || ns === '') return undefined;
  return ns.includes('/') ? ns : `/run/netns/${ns}`;
}

/** A PacketPort over an AF_PACKET socket (see PacketPort for the contract). */
export class NativePacketPort implements PacketPort {
  readonly ifname: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly rx: RxBatch;
  /** Receive mode in use. */
  readonly mode: 'ring' | 'mmsg';
  readonly ifindex: number;
  readonly batchSize: number;
  readonly frameSize: number;
  private readonly sock: NativeSocket;
  private readonly netns: string | undefined;
  private closed = false;

  /** Use openPacketPort(). */
  constructor(init: PacketPortInit) {
    if (process.platform !== 'linux')
      throw new SaruError(ErrorCode.UNSUPPORTED_PLATFORM, `packet I/O needs Linux (AF_PACKET); this is ${process.platform}`);
    const { addon, error } = loadAddon();
    if (!addon) throw new SaruError(ErrorCode.IO, error);
    const ifname = init.ifname;
    if (typeof ifname !== 'string' || ifname.length === 0 || Buffer.byteLength(ifname) > 15 || /[\s/:\0]/.test(ifname))
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `not an interface name: "${ifname}" (1..15 bytes, no space, "/" or ":")`);
    const mode = init.mode ?? DEFAULT_MODE;
    if (mode !== 'ring' && mode !== 'mmsg')
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `mode must be 'ring' or 'mmsg', got ${String(mode)}`);
    const batchSize = checkInt('batchSize', init.batchSize, 64, 1, 65536);
    const frameSize = checkInt('frameSize', init.frameSize, 2048, 64, 65536);
    const ringBlocks = checkInt('ringBlocks', init.ringBlocks, 16, 2, 65536);
    const ringBlockSize = checkInt('ringBlockSize', init.ringBlockSize, 1 << 20, 4096, 1 << 30);
    const ringTimeoutMs = checkInt('ringTimeoutMs', init.ringTimeoutMs, 1, 1, 60000);
    const rcvbuf = checkInt('rcvbufBytes', init.rcvbufBytes, 4 << 20, 0, 0x7fffffff);
    const sndbuf = checkInt('sndbufBytes', init.sndbufBytes, 4 << 20, 0, 0x7fffffff);
    if (init.filter) {
      const err = programLengthError(init.filter);
      if (err) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `open "${ifname}": ${err}`);
    }
    const netns = netnsPath(init.netns);
    const off = new Uint32Array(batchSize);
    const len = new Uint32Array(batchSize);
    let sock: NativeSocket;
    try {
      sock = new addon.PacketSocket(
        ifname,
        {
          mode,
          batchSize,
          frameSize,
          ringBlocks,
          ringBlockSize,
          ringTimeoutMs,
          rcvbuf,
          sndbuf,
          ...(netns ? { netns } : {}),
          ...(init.filter ? { filter: init.filter } : {}),
        },
        off,
        len,
      );
    } catch (e) {
      throw toSaruError(e, 'open', ifname, netns);
    }
    const info = sock.info();
    this.sock = sock;
    this.ifname = ifname;
    this.netns = netns;
    this.mac = info.mac;
    this.mtu = info.mtu;
    this.mode = info.mode;
    this.ifindex = info.ifindex;
    this.batchSize = batchSize;
    this.frameSize = frameSize;
    this.rx = { buf: new Uint8Array(info.buffer), off, len, count: 0 };
  }

  receive(timeoutMs: number): number {
    if (this.closed) throw closedError(this.ifname, 'receive');
    if (!(timeoutMs >= 0)) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `receive: timeoutMs must be >= 0, got ${timeoutMs}`);
    const n = this.sock.receive(timeoutMs);
    if (n < 0) this.raisePending('receive');
    this.rx.count = n;
    return n;
  }

  transmit(tx: TxBatch): number {
    if (this.closed) throw closedError(this.ifname, 'transmit');
    if (tx.count > tx.capacity)
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `transmit: count ${tx.count} exceeds capacity ${tx.capacity}`);
    return this.sock.transmit(tx.rxBuf, tx.scratch, tx.off, tx.len, tx.inScratch, tx.count);
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) throw closedError(this.ifname, 'send');
    if (!(frame instanceof Uint8Array)) throw new SaruError(ErrorCode.INVALID_ARGUMENT, 'send: frame must be a Uint8Array');
    return this.sock.send(frame);
  }

  setFilter(program: Uint8Array | null): void {
    if (this.closed) throw closedError(this.ifname, 'setFilter');
    if (program !== null) {
      const err = programLengthError(program);
      if (err) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `setFilter on "${this.ifname}": ${err}`);
    }
    try {
      this.sock.setFilter(program);
    } catch (e) {
      throw toSaruError(e, 'setFilter on', this.ifname, this.netns);
    }
  }

  stats(): PortStats {
    if (this.closed) throw closedError(this.ifname, 'stats');
    let s: Record<string, number>;
    try {
      s = this.sock.stats();
    } catch (e) {
      throw toSaruError(e, 'stats of', this.ifname, this.netns);
    }
    return {
      rxFrames: s.rxFrames!,
      rxBytes: s.rxBytes!,
      txFrames: s.txFrames!,
      txBytes: s.txBytes!,
      txErrors: s.txErrors!,
      txInvalid: s.txInvalid!,
      skippedNotHost: s.skippedNotHost!,
      truncated: s.truncated!,
      rxErrors: s.rxErrors!,
      kernelDrops: s.kernelDrops!,
      kernelFreezes: s.kernelFreezes!,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rx.count = 0;
    this.sock.close();
  }

  /** Cold path: convert the error behind receive()'s -1. */
  private raisePending(action: string): never {
    try {
      this.sock.takeError();
    } catch (e) {
      throw toSaruError(e, action, this.ifname, this.netns);
    }
    throw new SaruError(ErrorCode.IO, `${action} on "${this.ifname}" failed`);
  }
}

/**
 * Open an AF_PACKET port on an Ethernet interface: socket(AF_PACKET,
 * SOCK_RAW, 0), a drop-all filter, PACKET_IGNORE_OUTGOING, buffers, the
 * receive ring or slots, bind(ETH_P_ALL, ifindex), then init.filter (or
 * accept-all) atomically, so no frame is seen before the caller's filter.
 * @throws SaruError UNSUPPORTED_PLATFORM off Linux; NO_SUCH_INTERFACE; NOT_PERMITTED
 *   without CAP_NET_RAW/CAP_NET_ADMIN; INVALID_ARGUMENT for bad settings, a
 *   non-Ethernet interface or a frameSize below MTU + 18; IO otherwise
 *   (message "<syscall>: <strerror> (errno N)").
 */
export function openPacketPort(init: PacketPortInit): NativePacketPort {
  return new NativePacketPort(init);
}

/** Whether openPacketPort can work here: Linux and the addon built and loadable. */
export function nativeAvailable(): boolean {
  return process.platform === 'linux' && loadAddon().addon !== null;
}
