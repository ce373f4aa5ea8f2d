/**
 * The simulator's clients: synthetic TCP connections to the VIP as a client
 * stack would send them, judged by where the directors forward their
 * packets. Long-lived keep-alive connections send a request every
 * interval/2..1.5 interval for the whole story; short connections send SYN,
 * ACK, request, ACK, FIN, ACK and are done. A packet no director forwards is
 * retransmitted (SYN after 1 s then 2 s; data after 200 ms, doubling to
 * 3.2 s), as Linux does. A connection is LOST when a packet reaches another
 * real server than its first (that server would answer with a reset), or
 * when a packet stays unforwarded past the client's limit (10 s for
 * long-lived connections, 3 s for short ones, as the namespace clients).
 *
 * Pure logic over injected time (ms) and a seeded PRNG: it writes frames
 * into a caller's buffer and owns no I/O.
 */
import { TcpFlag, writeTcp4Frame } from '../../core/index.js';
import type { Prng } from '../coord/index.js';

/** One connection's state. */
export interface SimConn {
  sport: number;
  long: boolean;
  /** Packets forwarded so far (the next one to send is number `step`). */
  step: number;
  /** Real server index (1-based) of its first forwarded packet; 0: none yet. */
  rs: number;
  /** Director that forwarded its last packet (0: none). */
  director: number;
  /** A packet is outstanding (sent, not yet forwarded). */
  awaiting: boolean;
  /** When the outstanding packet was first sent, and last (re)sent. */
  firstSentAt: number;
  sentAt: number;
  rtoMs: number;
  /** When the next packet goes (when not awaiting). */
  nextAt: number;
  done: boolean;
  lost: boolean;
  why: string;
  /** Requests (long: PSH segments forwarded). */
  requests: number;
}

export interface SimClientsInit {
  /** Long-lived connections. */
  connections: number;
  /** Mean interval between requests on a long-lived connection, ms (default 250). */
  intervalMs?: number;
  /** A new short connection every this many ms (default 62: about 16 per second). */
  shortEveryMs?: number;
  clientAddr: number;
  clientMac: Uint8Array;
  vip: number;
  sharedMac: Uint8Array;
}

/** Flags of a short connection's packets, in order. */
const SHORT_STEPS = [TcpFlag.SYN, TcpFlag.ACK, TcpFlag.ACK | TcpFlag.PSH, TcpFlag.ACK, TcpFlag.FIN | TcpFlag.ACK, TcpFlag.ACK] as const;
const SHORT_PAYLOAD = [0, 0, 80, 0, 0, 0] as const;
const LONG_LIMIT_MS = 10_000;
const SHORT_LIMIT_MS = 3000;
const SYN_RTO_MS = 1000;
const DATA_RTO_MS = 200;
const MAX_RTO_MS = 3200;
/**
 * Client ports: long-lived ones 2000 + 3 i (the stride spreads them over
 * all buckets, as random ephemeral ports would), short ones cycle through
 * Linux's ephemeral range 32768..60999.
 */
const LONG_PORT_BASE = 2000;
const LONG_PORT_STRIDE = 3;
const SHORT_PORT_LO = 32768;
const SHORT_PORT_SPAN = 60999 - 32768 + 1;
/** Time between a forwarded packet and the next one of a short connection (one round trip), ms. */
const RTT_MS = 1;

export class SimClients {
  readonly conns = new Map<number, SimConn>();
  private readonly intervalMs: number;
  private readonly shortEveryMs: number;
  private nextShortAt = Infinity;
  private nextShortPort = 0;
  private shortStopAt = Infinity;
  /** Packets forwarded by two directors at once (each is a duplicate the server ignores). */
  duplicates = 0;
  /** Packet transmissions, first sends and retransmissions. */
  sent = 0;
  retransmitted = 0;

  constructor(
    private readonly init: SimClientsInit,
    private readonly rng: Prng,
  ) {
    this.intervalMs = init.intervalMs ?? 250;
    this.shortEveryMs = init.shortEveryMs ?? 62;
  }

  /** Open the long-lived connections (20 every 50 ms, as the namespace client) and start the short stream. */
  start(now: number, shortUntil: number): void {
    for (let i = 0; i < this.init.connections; i++) this.add(LONG_PORT_BASE + LONG_PORT_STRIDE * i, true, now + Math.floor(i / 20) * 50);
    this.nextShortAt = now;
    this.shortStopAt = shortUntil;
  }

  private add(sport: number, long: boolean, at: number): void {
    this.conns.set(sport, { sport, long, step: 0, rs: 0, director: 0, awaiting: false, firstSentAt: 0, sentAt: 0, rtoMs: SYN_RTO_MS, nextAt: at, done: false, lost: false, why: '', requests: 0 });
  }

  /**
   * The frames to send at `now`: new short connections, next packets, and
   * retransmissions; a connection past its limit is marked lost instead.
   * Calls `emit(frame, length)` for each (the buffer is reused).
   */
  send(now: number, buf: Uint8Array, emit: (frame: Uint8Array, len: number) => void): void {
    while (this.nextShortAt <= now && this.nextShortAt < this.shortStopAt) {
      let port = SHORT_PORT_LO + (this.nextShortPort++ % SHORT_PORT_SPAN);
      // never reuse a port still in use (the stream wraps after 28,232 connections)
      while (this.conns.get(port)?.done === false) port = SHORT_PORT_LO + (this.nextShortPort++ % SHORT_PORT_SPAN);
      this.add(port, false, this.nextShortAt);
      this.nextShortAt += this.shortEveryMs;
    }
    for (const c of this.conns.values()) {
      if (c.done || c.lost) continue;
      if (c.awaiting) {
        if (now - c.firstSentAt >= (c.long ? LONG_LIMIT_MS : SHORT_LIMIT_MS)) {
          this.lose(c, `packet ${c.step + 1} not forwarded within ${c.long ? LONG_LIMIT_MS : SHORT_LIMIT_MS} ms`);
          continue;
        }
        if (now - c.sentAt < c.rtoMs) continue;
        c.rtoMs = Math.min(MAX_RTO_MS, c.rtoMs * 2);
        this.retransmitted++;
      } else {
        if (c.nextAt > now) continue;
        c.awaiting = true;
        c.firstSentAt = now;
        c.rtoMs = c.step === 0 ? SYN_RTO_MS : DATA_RTO_MS;
      }
      c.sentAt = now;
      this.sent++;
      emit(buf, this.frame(c, buf));
    }
  }

  private frame(c: SimConn, buf: Uint8Array): number {
    const i = this.init;
    let flags: number;
    let payloadLen: number;
    if (c.long) {
      flags = c.step === 0 ? TcpFlag.SYN : c.step === 1 ? TcpFlag.ACK : TcpFlag.ACK | TcpFlag.PSH;
      payloadLen = c.step >= 2 ? 60 : 0;
    } else {
      flags = SHORT_STEPS[c.step]!;
      payloadLen = SHORT_PAYLOAD[c.step]!;
    }
    return writeTcp4Frame(buf, 0, {
      dstMac: i.sharedMac,
      srcMac: i.clientMac,
      saddr: i.clientAddr,
      daddr: i.vip,
      sport: c.sport,
      dport: 80,
      flags,
      seq: 1000 + c.step * 100,
      ack: c.step === 0 ? 0 : 1,
      payloadLen,
    });
  }

  /**
   * Director `director` forwarded the outstanding packet of the connection
   * with client port `sport` to real server `rs`, at `now`.
   */
  forwarded(sport: number, rs: number, director: number, now: number): void {
    const c = this.conns.get(sport);
    if (!c || c.done || c.lost) return;
    if (c.rs !== 0 && rs !== c.rs) {
      this.lose(c, `packet ${c.step + 1} reached r${rs} instead of r${c.rs} (reset)`);
      return;
    }
    if (!c.awaiting) {
      this.duplicates++;
      return;
    }
    c.rs = rs;
    c.director = director;
    c.awaiting = false;
    c.step++;
    if (c.long) {
      if (c.step > 2) c.requests++;
      c.nextAt = c.step < 2 ? now + RTT_MS : now + this.intervalMs / 2 + this.rng.float() * this.intervalMs;
    } else if (c.step === SHORT_STEPS.length) {
      c.done = true;
    } else {
      c.nextAt = now + RTT_MS;
    }
  }

  /**
   * The story ended: a connection whose packet has gone unforwarded for more
   * than `stalledMs` is lost too (a stall the end cut short of the limit),
   * as the namespace client's --stalled-ms. Long-lived connections stop.
   */
  finish(now: number, stalledMs: number): void {
    for (const c of this.conns.values()) {
      if (c.done || c.lost) continue;
      if (c.awaiting && now - c.firstSentAt > stalledMs) this.lose(c, `packet ${c.step + 1} unforwarded for ${now - c.firstSentAt} ms when the clients stopped`);
      else if (c.long) c.done = true;
    }
    this.shortStopAt = now;
  }

  private lose(c: SimConn, why: string): void {
    c.lost = true;
    c.awaiting = false;
    c.why = why;
  }

  /** Counts so far. Long-lived connections count as completed once the story ends without losing them. */
  counts(): { longOpened: number; longLost: number; longRequests: number; shortOpened: number; shortCompleted: number; shortLost: number; shortOpen: number } {
    const r = { longOpened: 0, longLost: 0, longRequests: 0, shortOpened: 0, shortCompleted: 0, shortLost: 0, shortOpen: 0 };
    for (const c of this.conns.values()) {
      if (c.long) {
        r.longOpened++;
        if (c.lost) r.longLost++;
        r.longRequests += c.requests;
      } else {
        r.shortOpened++;
        if (c.done) r.shortCompleted++;
        else if (c.lost) r.shortLost++;
        else r.shortOpen++;
      }
    }
    return r;
  }

  /** Whether a short connection is still in progress (the story waits for them at its end). */
  shortsInProgress(): boolean {
    for (const c of this.conns.values()) if (!c.long && !c.done && !c.lost) return true;
    return false;
  }

  /** Lost connections, for the summary's reasons. */
  lostConnections(): SimConn[] {
    return [...this.conns.values()].filter((c) => c.lost);
  }
}
