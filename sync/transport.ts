/**
 * UdpSyncTransport: saru-syncd's datagrams in and out (SyncTransport from
 * sync/types.ts) over one UDP/IPv4 socket on the cluster interface.
 * Owns that socket: binding, multicast membership, buffer sizes, counters and
 * rate-limited warnings. Two modes:
 * - multicast (no peers): bound to 0.0.0.0:port, joined to the group on the
 *   interface's first IPv4 address, sending from it with the given TTL and
 *   without loopback; broadcast() sends once to group:port. Binding the
 *   wildcard address (not the group) lets the same socket receive the unicast
 *   replies peers send with sendTo() (NACK answers, resync chunks);
 * - unicast (peers set, for networks without multicast): bound to the
 *   interface's address and port; broadcast() sends one copy per peer.
 * It must not interpret datagrams (decoding, authentication and replay are
 * the codec's and the node's), set timers, or throw from a socket event.
 *
 * The socket does not use SO_REUSEADDR, so a second saru-syncd on the same
 * host and port fails to start loudly instead of silently sharing (or
 * stealing) the datagrams, as IPVS's sync daemon would refuse a second one.
 */
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import { ErrorCode, SaruError, systemClock, type Clock } from '../core/index.js';
import type { PeerAddress, SyncTransport } from './types.js';
import { WarnLimiter, closeDgram } from '../saru/index.js';

/** The logger the transport writes to (a pino logger fits). */
export interface SyncTransportLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface UdpSyncTransportInit {
  /** Cluster interface name; its first IPv4 address is bound (unicast) or joined and sent from (multicast). */
  ifname: string;
  /** IPv4 multicast group, 224.0.0.0/4 (unused with peers, still validated). */
  group: string;
  /** UDP port 1..65535: bound, and the group's destination port. */
  port: number;
  /** Multicast TTL 1..255 (default 1: the datagrams stay on the link). */
  ttl?: number;
  /** Unicast peers (non-empty) instead of multicast; null or absent = multicast. */
  peers?: PeerAddress[] | null;
  /** SO_RCVBUF to ask for, bytes (default 8 MiB; best effort: the kernel caps it at net.core.rmem_max). */
  recvBufferBytes?: number;
  /** SO_SNDBUF to ask for, bytes (default: the kernel's). */
  sendBufferBytes?: number;
  /** os.networkInterfaces by default; injectable for tests. */
  interfaces?: () => ReturnType<typeof os.networkInterfaces>;
}

export interface UdpSyncTransportDeps {
  /**
   * Every received datagram not sent by this socket itself. `bytes` is a
   * fresh Buffer the callee may keep; `from` is the sender's address and
   * port (Node's rinfo, fresh per datagram). Exceptions are caught, counted
   * (handlerErrors) and logged.
   */
  onMessage(bytes: Uint8Array, from: PeerAddress): void;
  /** info: open/close; warn: errors (at most once a second per kind) and a short receive buffer. */
  log: SyncTransportLog;
  /** Monotonic clock for the log rate limit (default systemClock). */
  clock?: Clock;
}

export interface UdpSyncTransportCounters {
  /** Datagrams the kernel accepted for sending (one per unicast peer in broadcast()). */
  sent: number;
  /** Datagrams received (own datagrams excluded). */
  received: number;
  /** Sends that failed: not open, EMSGSIZE, no route, a destination that is not IPv4... */
  sendErrors: number;
  /** 'error' events of the socket after it was opened. */
  socketErrors: number;
  /** Exceptions thrown by onMessage. */
  handlerErrors: number;
  /** SO_RCVBUF as the kernel reports it once open (Linux reports twice the size granted), else 0. */
  recvBufferBytes: number;
}

/** Default SO_RCVBUF request: a resync burst of ~5,000 full datagrams. */
export const DEFAULT_RECV_BUFFER_BYTES = 8 << 20;

/** Largest UDP/IPv4 payload. */
const MAX_UDP_PAYLOAD = 65507;


function isMulticastV4(a: unknown): a is string {
  if (typeof a !== 'string' || !isIPv4(a)) return false;
  const first = Number(a.slice(0, a.indexOf('.')));
  return first >= 224 && first <= 239;
}

function isPort(p: unknown): p is number {
  return Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65535;
}

/** A Node error's message, with its errno code when the message lacks it ("bind EADDRINUSE 0.0.0.0:7085"). */
function osReason(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}

function errnoCode(e: unknown): string | undefined {
  return e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
}

/**
 * The first IPv4 address of `ifname` in `all` (os.networkInterfaces(), which
 * lists only interfaces that are up with carrier).
 * @throws SaruError SARU_ERR_NO_SUCH_INTERFACE naming the interface when it is
 *   missing, down, without carrier, or has no IPv4 address.
 */
export function interfaceIPv4(all: ReturnType<typeof os.networkInterfaces>, ifname: string): string {
  const list = all[ifname];
  if (list === undefined) {
    const have = Object.keys(all).sort().join(', ') || 'none';
    throw new SaruError(
      ErrorCode.NO_SUCH_INTERFACE,
      `sync interface ${ifname} has no IPv4 address: no interface of that name is up (with carrier) and has an address (those that are: ${have})`,
    );
  }
  const v4 = list.find((a) => a.family === 'IPv4');
  if (v4 === undefined) {
    throw new SaruError(
      ErrorCode.NO_SUCH_INTERFACE,
      `sync interface ${ifname} has no IPv4 address: saru-syncd speaks UDP over IPv4; give it one (ip address add ADDR/LEN dev ${ifname}) or name another interface`,
    );
  }
  return v4.address;
}

/**
 * The UDP adapter of SyncTransport. Construct, start(), then broadcast() and
 * sendTo() freely; stop() releases the socket. Never throws from sending or
 * from a socket event: failures are counted and logged at most once a second
 * per kind.
 */
export class UdpSyncTransport implements SyncTransport {
  private readonly ifname: string;
  private readonly group: string;
  private readonly port: number;
  private readonly ttl: number;
  private readonly peers: PeerAddress[] | null;
  private readonly recvBufferRequest: number;
  private readonly sendBufferRequest: number | null;
  private readonly interfaces: () => ReturnType<typeof os.networkInterfaces>;
  private readonly log: SyncTransportLog;
  private readonly clock: Clock;
  private readonly onMessage: (bytes: Uint8Array, from: PeerAddress) => void;
  private state: 'new' | 'starting' | 'open' | 'closed' = 'new';
  private socket: dgram.Socket | null = null;
  /** Rejects the pending bind when the socket fails or is closed before it completes. */
  private pendingBind: ((err: Error) => void) | null = null;
  private closing: Promise<void> | null = null;
  private ownAddress = '';
  private sent = 0;
  private received = 0;
  private sendErrors = 0;
  private socketErrors = 0;
  private handlerErrors = 0;
  private recvBufferBytes = 0;
  private readonly warnings: WarnLimiter;
  /** The send callback, made once. */
  private readonly onSent = (err: Error | null): void => {
    if (err) this.sendFailed(err);
    else this.sent++;
  };

  /**
   * Validates the settings; opens nothing (see start()).
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT for an empty interface name, a
   *   group outside 224.0.0.0/4, a port outside 1..65535, a TTL outside
   *   1..255, an empty peer list or a peer that is not an IPv4 address with a
   *   port 1..65535, or buffer sizes that are not positive integers.
   */
  constructor(init: UdpSyncTransportInit, deps: UdpSyncTransportDeps) {
    const bad = (msg: string): never => {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync transport: ${msg}`);
    };
    if (typeof init.ifname !== 'string' || init.ifname === '') bad(`ifname must name an interface, got ${JSON.stringify(init.ifname)}`);
    if (!isMulticastV4(init.group)) bad(`group must be an IPv4 multicast address (224.0.0.0 to 239.255.255.255), got ${JSON.stringify(init.group)}`);
    if (!isPort(init.port)) bad(`port must be an integer from 1 to 65535, got ${init.port}`);
    const ttl = init.ttl ?? 1;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) bad(`ttl must be an integer from 1 to 255, got ${ttl}`);
    let peers: PeerAddress[] | null = null;
    if (init.peers !== undefined && init.peers !== null) {
      if (!Array.isArray(init.peers) || init.peers.length === 0) bad('peers must be a non-empty list (null for multicast)');
      peers = init.peers.map((p) => {
        if (!isIPv4(p?.address) || !isPort(p?.port)) bad(`each peer needs an IPv4 address and a port 1-65535, got ${JSON.stringify(p)}`);
        return { address: p.address, port: p.port };
      });
    }
    const rcv = init.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES;
    if (!Number.isSafeInteger(rcv) || rcv < 1) bad(`recvBufferBytes must be a positive integer, got ${rcv}`);
    const snd = init.sendBufferBytes ?? null;
    if (snd !== null && (!Number.isSafeInteger(snd) || snd < 1)) bad(`sendBufferBytes must be a positive integer, got ${snd}`);
    this.ifname = init.ifname;
    this.group = init.group;
    this.port = init.port;
    this.ttl = ttl;
    this.peers = peers;
    this.recvBufferRequest = rcv;
    this.sendBufferRequest = snd;
    this.interfaces = init.interfaces ?? os.networkInterfaces;
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.warnings = new WarnLimiter(this.log, this.clock);
    this.onMessage = deps.onMessage;
  }

  /** Our IPv4 address on the interface once start() looked it up; '' before. */
  get address(): string {
    return this.ownAddress;
  }

  /** 'multicast' or 'unicast' (peers given). */
  get mode(): 'multicast' | 'unicast' {
    return this.peers === null ? 'multicast' : 'unicast';
  }

  /**
   * Look up the interface's IPv4 address, open and bind the socket, size its
   * buffers, and in multicast mode join the group and set the outgoing
   * interface, TTL and loopback (off). On failure closes what it opened;
   * start() may then be called again.
   * @throws SaruError SARU_ERR_NO_SUCH_INTERFACE when the interface is
   *   missing, down, without carrier, or has no IPv4 address (naming it);
   *   SARU_ERR_IO when the bind fails (the port in use: naming address and
   *   port), the group cannot be joined or another system call fails, or
   *   stop() was called meanwhile; SARU_ERR_INVALID_ARGUMENT when already
   *   started or stopped.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync transport: start() when ${this.state}`);
    this.state = 'starting';
    try {
      this.ownAddress = interfaceIPv4(this.interfaces(), this.ifname);
      await this.open();
    } catch (e) {
      await this.closeSocket();
      if (this.state === 'starting') this.state = 'new';
      if (e instanceof SaruError) throw e;
      throw new SaruError(ErrorCode.IO, `sync transport: ${osReason(e)}`);
    }
    if ((this.state as string) === 'closed') throw new SaruError(ErrorCode.IO, 'sync transport: stopped while starting');
    this.state = 'open';
    this.log.info(
      {
        mode: this.mode,
        ifname: this.ifname,
        address: this.ownAddress,
        port: this.port,
        ...(this.peers === null ? { group: this.group, ttl: this.ttl } : { peers: this.peers.map((p) => `${p.address}:${p.port}`) }),
        recvBufferBytes: this.recvBufferBytes,
      },
      'sync transport open',
    );
  }

  private async open(): Promise<void> {
    const bindAddress = this.peers === null ? '0.0.0.0' : this.ownAddress;
    const where = `sync transport (${this.ifname}, UDP ${bindAddress}:${this.port})`;
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    this.socket = sock;
    sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(msg, rinfo));
    sock.on('error', (err: Error) => {
      const pending = this.pendingBind;
      if (pending) {
        this.pendingBind = null;
        pending(err);
        return;
      }
      this.socketErrors++;
      this.warnLimited('socket', { err: osReason(err) }, 'sync socket error');
    });
    try {
      await new Promise<void>((resolve, reject) => {
        this.pendingBind = reject;
        sock.bind({ port: this.port, address: bindAddress }, () => {
          if (this.pendingBind !== reject) return; // failed or closed meanwhile
          this.pendingBind = null;
          resolve();
        });
      });
    } catch (e) {
      if (e instanceof SaruError) throw e;
      if (errnoCode(e) === 'EADDRINUSE') {
        throw new SaruError(
          ErrorCode.IO,
          `${where}: UDP port ${this.port} is in use (EADDRINUSE); is another saru-syncd running? Stop it or choose another mcast_port`,
        );
      }
      throw new SaruError(ErrorCode.IO, `${where}: bind failed: ${osReason(e)}`);
    }
    if (this.state === 'closed') throw new SaruError(ErrorCode.IO, 'sync transport: stopped while starting');
    this.sizeBuffers(sock);
    if (this.peers !== null) return;
    try {
      sock.addMembership(this.group, this.ownAddress);
    } catch (e) {
      throw new SaruError(ErrorCode.IO, `${where}: cannot join multicast group ${this.group} on ${this.ownAddress}: ${osReason(e)}`);
    }
    try {
      sock.setMulticastInterface(this.ownAddress);
      sock.setMulticastTTL(this.ttl);
      sock.setMulticastLoopback(false);
    } catch (e) {
      throw new SaruError(ErrorCode.IO, `${where}: cannot set the multicast interface, TTL or loopback: ${osReason(e)}`);
    }
  }

  /** Best effort: ask for the buffer sizes, record what the kernel granted, warn when it is less. */
  private sizeBuffers(sock: dgram.Socket): void {
    try {
      sock.setRecvBufferSize(this.recvBufferRequest);
    } catch (e) {
      this.log.warn({ requested: this.recvBufferRequest, err: osReason(e) }, 'cannot set the sync receive buffer size');
    }
    try {
      this.recvBufferBytes = sock.getRecvBufferSize();
    } catch {
      this.recvBufferBytes = 0;
    }
    if (this.recvBufferBytes < this.recvBufferRequest) {
      this.log.warn(
        { requested: this.recvBufferRequest, obtained: this.recvBufferBytes },
        'sync receive buffer is smaller than asked (capped by net.core.rmem_max); a resync burst may overflow it: sysctl -w net.core.rmem_max=16777216',
      );
    }
    if (this.sendBufferRequest !== null) {
      try {
        sock.setSendBufferSize(this.sendBufferRequest);
      } catch (e) {
        this.log.warn({ requested: this.sendBufferRequest, err: osReason(e) }, 'cannot set the sync send buffer size');
      }
    }
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // Our own datagram back (multicast on lo, or a peer list naming us): not a peer's.
    if (rinfo.port === this.port && rinfo.address === this.ownAddress) return;
    this.received++;
    try {
      this.onMessage(msg, rinfo);
    } catch (e) {
      this.handlerErrors++;
      this.warnLimited('handler', { from: `${rinfo.address}:${rinfo.port}`, err: e instanceof Error ? e.stack ?? e.message : String(e) }, 'sync message handler threw');
    }
  }

  /**
   * Send `bytes` (at most 65507) to every peer: once to group:port, or once
   * to each unicast peer other than this socket itself. Never throws:
   * failures are counted (sendErrors) and logged at most once a second. Node
   * may send after returning, so `bytes` must not be changed afterwards.
   */
  broadcast(bytes: Uint8Array): void {
    if (this.peers === null) {
      this.sendOne(bytes, this.port, this.group);
      return;
    }
    for (const p of this.peers) {
      if (p.port === this.port && p.address === this.ownAddress) continue;
      this.sendOne(bytes, p.port, p.address);
    }
  }

  /**
   * Send `bytes` to one peer (a NACK answer, a resync chunk), in either mode.
   * Never throws: a destination that is not an IPv4 address and port, and
   * every send failure, are counted (sendErrors) and logged at most once a
   * second. `bytes` must not be changed afterwards.
   */
  sendTo(bytes: Uint8Array, to: PeerAddress): void {
    if (!isIPv4(to?.address) || !isPort(to?.port)) {
      this.sendFailed(new SaruError(ErrorCode.INVALID_ARGUMENT, `not an IPv4 address and port: ${JSON.stringify(to)}`));
      return;
    }
    this.sendOne(bytes, to.port, to.address);
  }

  private sendOne(bytes: Uint8Array, port: number, address: string): void {
    const sock = this.state === 'open' ? this.socket : null;
    if (sock === null) {
      this.sendFailed(new SaruError(ErrorCode.IO, `sync transport is ${this.state === 'open' ? 'broken' : this.state === 'new' || this.state === 'starting' ? 'not started' : 'stopped'}`));
      return;
    }
    if (bytes.length > MAX_UDP_PAYLOAD) {
      this.sendFailed(new SaruError(ErrorCode.INVALID_ARGUMENT, `datagram of ${bytes.length} bytes; UDP/IPv4 carries at most ${MAX_UDP_PAYLOAD}`));
      return;
    }
    try {
      sock.send(bytes, port, address, this.onSent);
    } catch (e) {
      this.sendFailed(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private sendFailed(err: Error): void {
    this.sendErrors++;
    this.warnLimited('send', { err: err instanceof SaruError ? err.message : osReason(err) }, 'sync send failed');
  }

  /** The counters; a fresh object. */
  counters(): UdpSyncTransportCounters {
    return {
      sent: this.sent,
      received: this.received,
      sendErrors: this.sendErrors,
      socketErrors: this.socketErrors,
      handlerErrors: this.handlerErrors,
      recvBufferBytes: this.recvBufferBytes,
    };
  }

  /**
   * Close the socket (leaving the group). Idempotent; resolves once closed.
   * Later sends are counted as errors; start() is refused.
   */
  async stop(): Promise<void> {
    if (this.closing) return this.closing;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.closing = this.closeSocket().then(() => {
      if (wasOpen) this.log.info({ counters: this.counters() }, 'sync transport closed');
    });
    return this.closing;
  }

  private async closeSocket(): Promise<void> {
    const sock = this.socket;
    if (sock === null) return;
    this.socket = null;
    const pending = this.pendingBind;
    if (pending) {
      this.pendingBind = null;
      pending(new SaruError(ErrorCode.IO, 'sync transport: stopped while starting'));
    }
    await closeDgram(sock);
  }

  private warnLimited(kind: string, obj: Record<string, unknown>, msg: string): void {
    this.warnings.warn(kind, obj, msg);
  }
}
