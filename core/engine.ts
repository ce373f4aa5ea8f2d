/**
 * The director engine: what IPVS's ip_vs_in/ip_vs_out do in the kernel, over
 * a batch of frames. Owns the per-frame pipeline: shared-MAC filter, parse,
 * slice filter, service lookup, connection lookup or scheduling (with
 * persistence and fallback), state and sync events, forwarding rewrite, and
 * the transmit batch; plus counters per drop reason. It does no I/O and reads
 * time only from the injected Clock. Not per-packet: services, slice
 * ownership and neighbours are changed from outside between batches.
 */
import { addrEquals, IpAddress, maskAddr } from './addr.js';
import type { Clock } from './clock.js';
import { Fwd, Proto, type Family } from './constants.js';
import { ConnTable, Persistence, PERSIST_FULL, TcpState, type ConnTableInit, type PersistenceInit } from './conn/index.js';
import { ErrorCode, SaruError } from './errors.js';
import { FlowKey } from './flow.js';
import { buildTooBig, encapTunnel, rewriteDr, rewriteNatIcmpIn, rewriteNatIcmpOut, rewriteNatIn, rewriteNatOut } from './forward.js';
import { parseMac } from './mac.js';
import { NeighbourTable } from './neigh.js';
import { Drop, DROP_REASON_COUNT, EtherType, ParsedFrame, TcpFlag } from './packet/frame.js';
import { parseFrame } from './packet/parse.js';
import { TxBatch, type RxBatch } from './port.js';
import type { RealServer, ServiceTable, VirtualService } from './service.js';
import { SliceFilter, SliceState } from './slice.js';

/** What to do with a TCP packet without SYN that matches no connection. */
export type MidFlowPolicy = 'drop' | 'schedule';

/** Schedulers whose choice depends only on the packet and the real-server set. */
const DETERMINISTIC = new Set(['sh', 'dh', 'mh']);

/** A rule that gives matching packets a firewall mark (what iptables -t mangle -j MARK does for IPVS). */
export interface FwmarkRule {
  mark: number;
  /** 0 = any protocol. */
  protocol: number;
  /** Destination network, e.g. "198.18.0.0/24" or "2001:db8::/64". */
  destination: string;
  /** Inclusive destination port range; default all ports. */
  portMin?: number;
  portMax?: number;
}

interface CompiledRule {
  mark: number;
  protocol: number;
  family: Family;
  prefix: number;
  net: Uint32Array;
  portMin: number;
  portMax: number;
}

export interface EngineInit {
  /** The MAC address every director shares (6 bytes or "aa:bb:..."); frames for other MACs are ignored. */
  sharedMac: Uint8Array | string;
  /** Director's own IPv4 address: outer source of IPv4 tunnels. */
  localAddr4?: string;
  /** Director's own IPv6 address: outer source of IPv6 tunnels. */
  localAddr6?: string;
  /** MTU of the data interface in bytes (IP packet size); default 1500. */
  mtu?: number;
  /** Connection table settings (capacity, sync threshold/period, timeouts). */
  table: ConnTableInit;
  /** Mid-connection TCP packets without an entry: drop (default), or schedule with sh/dh/mh. */
  midFlow?: MidFlowPolicy;
  /** Frames per batch (transmit capacity); default 256. */
  batchSize?: number;
  /** Persistence settings (expire_quiescent_template). */
  persistence?: PersistenceInit;
}

export interface EngineDeps {
  clock: Clock;
  services: ServiceTable;
  slice: SliceFilter;
  neighbours?: NeighbourTable;
}

/** Engine counters beyond the per-reason drops. */
export class EngineCounters {
  /** Frames offered to the engine. */
  rxFrames = 0;
  /** Frames queued for transmit (forwarded or generated). */
  txFrames = 0;
  /** Frames left to the host stack (ARP, ICMP echo, traffic to the director's own address). */
  toHost = 0;
  /** Connections created by scheduling here. */
  scheduled = 0;
  /** Connections sent to a fallback (sorry) server. */
  fallback = 0;
  /** ICMP errors forwarded to the connection they belong to. */
  icmpRelated = 0;
  /** TCP SYNs that replaced a finished entry, or one whose real server takes no new connections (conn_reuse_mode). */
  connReused = 0;
  /** ICMP "fragmentation needed" / "packet too big" sent. */
  icmpTooBigSent = 0;
}

/**
 * The engine. Call processBatch() with received frames; read `tx` for the
 * frames to send; call tick() regularly (e.g. every 100 ms) to expire entries.
 */
export class Engine {
  readonly table: ConnTable;
  readonly services: ServiceTable;
  readonly slice: SliceFilter;
  readonly neighbours: NeighbourTable;
  readonly tx: TxBatch;
  /** drops[reason] counts frames dropped for each Drop value. */
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  readonly counters = new EngineCounters();
  readonly mtu: number;
  midFlow: MidFlowPolicy;

  private readonly clock: Clock;
  private readonly persistence: Persistence;
  private readonly sharedMac: Uint8Array;
  private readonly local4: Uint32Array;
  private readonly local6: Uint32Array;
  private readonly f = new ParsedFrame();
  private readonly flow = new FlowKey();
  private readonly scratchWords = new Uint32Array(4);
  /** Results of natReturn(): virtual port, next-hop MAC and real server of the connection. */
  private natVport = 0;
  private natMac: Uint8Array = new Uint8Array(6);
  private natRs: RealServer | null = null;
  private rules: CompiledRule[] = [];
  /** Per-frame chain heads found by the warm-up pass of processBatch. */
  private readonly warmHeads: Int32Array;
  private readonly warmWords = new Uint32Array([0, 0, 0xffff, 0]);

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT on a bad MAC, address or MTU. */
  constructor(init: EngineInit, deps: EngineDeps) {
    this.clock = deps.clock;
    this.services = deps.services;
    this.slice = deps.slice;
    this.neighbours = deps.neighbours ?? new NeighbourTable();
    this.sharedMac = typeof init.sharedMac === 'string' ? parseMac(init.sharedMac) : Uint8Array.from(init.sharedMac);
    if (this.sharedMac.length !== 6) throw new SaruError(ErrorCode.INVALID_ARGUMENT, 'shared MAC must be 6 bytes');
    this.local4 = init.localAddr4 ? IpAddress.parse(init.localAddr4).words : new Uint32Array(4);
    this.local6 = init.localAddr6 ? IpAddress.parse(init.localAddr6).words : new Uint32Array(4);
    this.mtu = init.mtu ?? 1500;
    if (!Number.isInteger(this.mtu) || this.mtu < 1280 || this.mtu > 65535) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `MTU must be 1280..65535 bytes, got ${this.mtu}`);
    }
    this.midFlow = init.midFlow ?? 'drop';
    this.table = new ConnTable(init.table, { clock: deps.clock, services: deps.services });
    this.persistence = new Persistence(init.persistence ?? {}, { table: this.table, clock: deps.clock });
    const batch = init.batchSize ?? 256;
    // Room for every frame of a batch to be rebuilt with a tunnel or ICMP header.
    this.tx = new TxBatch(batch, batch * (this.mtu + 100));
    this.warmHeads = new Int32Array(batch);
  }

  /** Give matching packets a firewall mark for FWM services. Replaces no rule; rules are tried in order. */
  addFwmarkRule(rule: FwmarkRule): void {
    const [net, len] = rule.destination.split('/');
    const a = IpAddress.parse(net ?? '');
    const max = a.family === 4 ? 32 : 128;
    const prefix = len === undefined ? max : Number(len);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `bad prefix length in "${rule.destination}"`);
    }
    const w = new Uint32Array(4);
    maskAddr(a.family, a.words, 0, prefix, w, 0);
    this.rules.push({
      mark: rule.mark,
      protocol: rule.protocol,
      family: a.family,
      prefix,
      net: w,
      portMin: rule.portMin ?? 0,
      portMax: rule.portMax ?? 65535,
    });
  }

  /** Remove every firewall-mark rule. */
  clearFwmarkRules(): void {
    this.rules = [];
  }

  /**
   * Process a batch of received frames. Frames to send are left in `this.tx`
   * (rewritten in place in `rx.buf`, or built in the tx scratch buffer).
   * Never throws on frame content; every dropped frame is counted in `drops`.
   */
  processBatch(rx: RxBatch): void {
    this.tx.reset(rx.buf);
    const now = this.clock.now();
    if (rx.count > 1) this.warm(rx);
    for (let i = 0; i < rx.count; i++) this.processFrame(rx.buf, rx.off[i]!, rx.len[i]!, now);
  }

  /**
   * Warm-up pass over a batch: for untagged IPv4 TCP/UDP frames, load the
   * connection table's hash-chain head, then the first two entries of each chain.
   * The loads of different frames are independent, so the CPU overlaps their
   * cache and TLB misses instead of taking them one frame at a time; the real
   * pass then finds them in cache. Only a hint: it reads, never decides.
   * Measured with a million entries in bench/core.ts (see the README).
   */
  private warm(rx: RxBatch): void {
    const buf = rx.buf;
    const heads = this.warmHeads;
    const w = this.warmWords;
    const table = this.table;
    const n = rx.count < heads.length ? rx.count : heads.length;
    for (let i = 0; i < n; i++) {
      heads[i] = -1;
      const off = rx.off[i]!;
      const end = off + rx.len[i]!;
      if (off + 34 > end || buf[off + 12] !== 0x08 || buf[off + 13] !== 0x00) continue;
      const proto = buf[off + 23]!;
      if (proto !== Proto.TCP && proto !== Proto.UDP) continue;
      const l4 = off + 14 + ((buf[off + 14]! & 0x0f) << 2);
      if (l4 + 2 > end) continue;
      w[3] = ((buf[off + 26]! << 24) | (buf[off + 27]! << 16) | (buf[off + 28]! << 8) | buf[off + 29]!) >>> 0;
      heads[i] = table.chainHead(proto, w, 0, (buf[l4]! << 8) | buf[l4 + 1]!);
    }
    // Two levels of the chain: at load factor ~1 half the hits are second in it.
    for (let level = 0; level < 2; level++) {
      for (let i = 0; i < n; i++) {
        const h = heads[i]!;
        if (h >= 0) heads[i] = table.warmEntry(h);
      }
    }
  }

  /**
   * Expire connection entries up to the clock's now. Call between batches,
   * after draining sync events. Returns the number of entries freed.
   */
  tick(): number {
    return this.table.expire();
  }

  /** Drain sync events raised since the last call; `fn` gets the entry index (read it with table.snapshot). */
  drainSync(fn: (idx: number) => void): number {
    return this.table.drainSync(fn);
  }

  private drop(reason: number): void {
    this.drops[reason]!++;
  }

  private processFrame(buf: Uint8Array, off: number, len: number, now: number): void {
    this.counters.rxFrames++;
    const mac = this.sharedMac;
    if (
      len < 6 ||
      buf[off] !== mac[0] ||
      buf[off + 1] !== mac[1] ||
      buf[off + 2] !== mac[2] ||
      buf[off + 3] !== mac[3] ||
      buf[off + 4] !== mac[4] ||
      buf[off + 5] !== mac[5]
    ) {
      this.drop(Drop.NOT_OUR_MAC);
      return;
    }
    const f = this.f;
    const r = parseFrame(buf, off, len, f);
    if (r !== Drop.OK) {
      // Protocols we do not balance still belong to the host stack.
      if (r === Drop.UNSUPPORTED_PROTOCOL) this.counters.toHost++;
      else this.drop(r);
      return;
    }
    if (f.etherType === EtherType.ARP) {
      this.counters.toHost++;
      return;
    }
    if (f.isFragment) {
      this.drop(Drop.FRAGMENT);
      return;
    }
    if (f.protocol === Proto.ICMP || f.protocol === Proto.ICMPV6) {
      if (f.hasInner) this.processIcmpError(buf, f);
      else this.counters.toHost++; // echo and neighbour discovery: the host stack's rules decide
      return;
    }
    const flow = this.flow;
    flow.family = f.family;
    flow.protocol = f.protocol;
    flow.saddr.set(f.saddr);
    flow.daddr.set(f.daddr);
    flow.sport = f.sport;
    flow.dport = f.dport;
    flow.fwmark = this.rules.length === 0 ? 0 : this.classify(flow);

    const svc = this.services.lookup(flow);
    if (svc !== null) {
      this.processIn(buf, f, flow, svc, now);
      return;
    }
    this.processOut(buf, f, flow);
  }

  /** Client -> VIP. */
  private processIn(buf: Uint8Array, f: ParsedFrame, flow: FlowKey, svc: VirtualService, now: number): void {
    const st = this.slice.state(flow.saddr, flow.sport, flow.daddr, flow.dport);
    if (st === SliceState.NONE) {
      this.drop(Drop.NOT_OUR_SLICE);
      return;
    }
    const table = this.table;
    let idx = table.lookupIn(flow);
    if (st === SliceState.DRAINING) {
      if (f.protocol === Proto.TCP && (f.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN) {
        // A SYN opens a new connection, even on a port whose old entry
        // lingers here (FIN_WAIT, TIME_WAIT): the new owner takes it. The old
        // entry goes, or its later packets would reach the old real server too.
        if (idx >= 0 && !table.isSynced(idx)) table.remove(idx);
        this.drop(Drop.HANDED_OVER);
        return;
      }
      if (!this.ownsDraining(idx)) return;
    }
    if (idx >= 0 && f.protocol === Proto.TCP && (f.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN && this.newConnExpected(idx)) {
      // conn_reuse_mode: the client reuses the port of a finished connection,
      // or the old entry's real server takes no new connections: a new one.
      table.remove(idx);
      this.counters.connReused++;
      idx = -1;
    }
    if (idx < 0) {
      if (f.protocol === Proto.TCP && (f.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) !== TcpFlag.SYN) {
        const sched = svc.scheduler;
        if (this.midFlow !== 'schedule' || sched === null || svc.persistent || !DETERMINISTIC.has(sched.name)) {
          this.drop(Drop.NO_CONNECTION);
          return;
        }
      }
      idx = this.schedule(svc, flow, now);
      if (idx < 0) return;
    }
    const rs = this.services.registry.get(table.realServerId(idx));
    if (rs !== undefined && !rs.available && rs.service.expireNodestConn) {
      // ip_vs_in with expire_nodest_conn: the real server left the service.
      table.remove(idx);
      this.drop(Drop.NODEST_EXPIRED);
      return;
    }
    table.packet(idx, false, f.tcpFlags);
    if (rs === undefined) {
      this.drop(Drop.NO_REAL_SERVER);
      return;
    }
    const bytes = f.ipTotalLen;
    svc.stats.inPkts++;
    svc.stats.inBytes += bytes;
    rs.stats.inPkts++;
    rs.stats.inBytes += bytes;
    this.forwardIn(buf, f, rs, table.realPort(idx), false);
  }

  /**
   * Whether a TCP SYN that found entry `idx` opens a new connection rather
   * than repeating the old one's SYN: IPVS's is_new_conn_expected with
   * conn_reuse_mode 3 (the old entry is TIME_WAIT or CLOSE, or FIN_WAIT on a
   * DR/TUN connection whose replies the director never sees), and ip_vs_in's
   * rescheduling when the old entry's real server takes no new connections
   * (weight 0 or removed: a failed health check). An entry controlled by a
   * persistence template stays (the template decides, as in IPVS).
   */
  private newConnExpected(idx: number): boolean {
    const table = this.table;
    if (table.templateOf(idx) >= 0) return false;
    const st = table.state(idx);
    if (st === TcpState.TIME_WAIT || st === TcpState.CLOSE) return true;
    if (st === TcpState.FIN_WAIT && table.fwd(idx) !== Fwd.NAT) return true;
    const rs = this.services.registry.get(table.realServerId(idx));
    return rs === undefined || !rs.available || rs.weight === 0;
  }

  /**
   * Schedule a new connection: the persistence template or the scheduler,
   * then the fallback server. Returns the entry index, or -1 (counted).
   */
  private schedule(svc: VirtualService, flow: FlowKey, now: number): number {
    const table = this.table;
    let idx: number;
    if (svc.persistent) {
      idx = this.persistence.schedule(svc, flow);
      if (idx === PERSIST_FULL) {
        this.drop(Drop.TABLE_FULL);
        return -1;
      }
    } else {
      const rs = svc.scheduler === null ? null : svc.scheduler.schedule(svc, flow, now);
      idx = rs === null ? -1 : table.create(flow, rs, -1);
      if (rs !== null && idx < 0) {
        this.drop(Drop.TABLE_FULL);
        return -1;
      }
    }
    if (idx < 0) {
      const fb = svc.fallback;
      if (fb === null) {
        this.drop(Drop.NO_REAL_SERVER);
        return -1;
      }
      idx = table.create(flow, fb, -1);
      if (idx < 0) {
        this.drop(Drop.TABLE_FULL);
        return -1;
      }
      this.counters.fallback++;
    }
    this.counters.scheduled++;
    svc.stats.conns++;
    const rs = this.services.registry.get(table.realServerId(idx));
    if (rs !== undefined) rs.stats.conns++;
    return idx;
  }

  /**
   * Forward a client-side packet (or an ICMP error about the connection) to
   * the real server by its forwarding method.
   */
  private forwardIn(buf: Uint8Array, f: ParsedFrame, rs: RealServer, rport: number, icmp: boolean): void {
    if (rs.fwd === Fwd.LOCAL) {
      this.counters.toHost++;
      return;
    }
    if (!rs.macKnown) {
      this.drop(Drop.NO_NEIGHBOUR);
      return;
    }
    const tx = this.tx;
    if (tx.count >= tx.capacity) {
      this.drop(Drop.TX_FULL);
      return;
    }
    switch (rs.fwd) {
      case Fwd.DR:
        rewriteDr(buf, f, rs.mac, this.sharedMac);
        break;
      case Fwd.NAT:
        if (icmp) rewriteNatIcmpIn(buf, f, rs.addr.words, rport, rs.mac, this.sharedMac);
        else rewriteNatIn(buf, f, rs.addr.words, rport, rs.mac, this.sharedMac);
        break;
      default: {
        // TUN: build the encapsulated frame in the scratch buffer.
        const local = rs.addr.family === 4 ? this.local4 : this.local6;
        const at = tx.scratchUsed;
        const n = encapTunnel(buf, f, tx.scratch, at, local, rs.addr.words, this.mtu, rs.mac, this.sharedMac);
        if (n < 0) {
          this.sendTooBig(buf, f);
          return;
        }
        this.queue(at, n, 1);
        return;
      }
    }
    this.queue(f.frameOff, f.frameLen, 0);
  }

  /** Real server -> client (NAT return traffic), or nothing of ours. */
  private processOut(buf: Uint8Array, f: ParsedFrame, flow: FlowKey): void {
    const idx = this.natReturn(flow);
    if (idx < 0) return;
    const rs = this.natRs!;
    this.table.packet(idx, true, f.tcpFlags);
    const bytes = f.ipTotalLen;
    rs.stats.outPkts++;
    rs.stats.outBytes += bytes;
    rs.service.stats.outPkts++;
    rs.service.stats.outBytes += bytes;
    rewriteNatOut(buf, f, this.scratchWords, this.natVport, this.natMac, this.sharedMac);
    this.queue(f.frameOff, f.frameLen, 0);
  }

  /**
   * For a frame from a NAT real server towards a client (`flow`: saddr RIP,
   * daddr CIP): find its connection, check the client side's bucket is ours,
   * find the next hop and room to transmit. Returns the entry index, leaving
   * the VIP in scratchWords and natVport/natMac/natRs set; or -1, counted
   * (no NAT connection: the frame is the host's).
   */
  private natReturn(flow: FlowKey): number {
    const table = this.table;
    const idx = table.lookupOut(flow);
    const rs = idx >= 0 ? this.services.registry.get(table.realServerId(idx)) : undefined;
    if (rs === undefined || rs.fwd !== Fwd.NAT) {
      this.counters.toHost++;
      return -1;
    }
    table.copyVirtualAddr(idx, this.scratchWords);
    this.natVport = table.virtualPort(idx);
    const st = this.slice.state(flow.daddr, flow.dport, this.scratchWords, this.natVport);
    if (st === SliceState.NONE) {
      this.drop(Drop.NOT_OUR_SLICE);
      return -1;
    }
    if (st === SliceState.DRAINING && !this.ownsDraining(idx)) return -1;
    const dmac = this.neighbours.lookup(flow.family, flow.daddr, 0);
    if (dmac === null) {
      this.drop(Drop.NO_NEIGHBOUR);
      return -1;
    }
    if (this.tx.count >= this.tx.capacity) {
      this.drop(Drop.TX_FULL);
      return -1;
    }
    this.natMac = dmac;
    this.natRs = rs;
    return idx;
  }

  /**
   * In a draining bucket (handed over, DESIGN section 4) this director
   * serves only the connections it created: entry `idx` (-1: none) must exist
   * and not have come from sync. Otherwise counts HANDED_OVER and says no.
   */
  private ownsDraining(idx: number): boolean {
    if (idx >= 0 && !this.table.isSynced(idx)) return true;
    this.drop(Drop.HANDED_OVER);
    return false;
  }

  /**
   * An ICMP error: find the connection its embedded header belongs to (as
   * ip_vs_in_icmp / ip_vs_out_icmp) and send it there; otherwise the host's.
   */
  private processIcmpError(buf: Uint8Array, f: ParsedFrame): void {
    const flow = this.flow;
    flow.family = f.innerFamily;
    flow.protocol = f.innerProtocol;
    flow.fwmark = 0;
    // The embedded packet went VIP -> client (a reply): the connection is client -> VIP.
    flow.saddr.set(f.innerDaddr);
    flow.sport = f.innerDport;
    flow.daddr.set(f.innerSaddr);
    flow.dport = f.innerSport;
    const table = this.table;
    const idx = table.lookupIn(flow);
    if (idx >= 0) {
      const st = this.slice.state(flow.saddr, flow.sport, flow.daddr, flow.dport);
      if (st === SliceState.NONE) {
        this.drop(Drop.NOT_OUR_SLICE);
        return;
      }
      if (st === SliceState.DRAINING && !this.ownsDraining(idx)) return;
      const rs = this.services.registry.get(table.realServerId(idx));
      if (rs === undefined) {
        this.drop(Drop.NO_REAL_SERVER);
        return;
      }
      this.counters.icmpRelated++;
      rs.stats.inPkts++;
      rs.stats.inBytes += f.ipTotalLen;
      this.forwardIn(buf, f, rs, table.realPort(idx), true);
      return;
    }
    // The embedded packet went client -> RIP (NAT): an error from the real server's side.
    flow.saddr.set(f.innerDaddr);
    flow.sport = f.innerDport;
    flow.daddr.set(f.innerSaddr);
    flow.dport = f.innerSport;
    if (this.natReturn(flow) < 0) return;
    this.counters.icmpRelated++;
    rewriteNatIcmpOut(buf, f, this.scratchWords, this.natVport, this.natMac, this.sharedMac);
    this.queue(f.frameOff, f.frameLen, 0);
  }

  /** Tunnel would exceed the MTU: tell the client, as ip_vs_tunnel_xmit's icmp_send. */
  private sendTooBig(buf: Uint8Array, f: ParsedFrame): void {
    this.drop(Drop.TOO_BIG);
    const tx = this.tx;
    if (tx.count >= tx.capacity) return;
    // Back to whoever sent the frame: its source MAC.
    const dmac = buf.subarray(f.frameOff + 6, f.frameOff + 12);
    const at = tx.scratchUsed;
    const n = buildTooBig(buf, f, tx.scratch, at, this.mtu, f.daddr, dmac, this.sharedMac);
    if (n > 0) {
      this.counters.icmpTooBigSent++;
      this.queue(at, n, 1);
    }
  }

  /** Queue a frame for transmit: in the receive buffer (scratch 0) or built in the scratch buffer (1). */
  private queue(off: number, len: number, scratch: 0 | 1): void {
    const tx = this.tx;
    const i = tx.count++;
    tx.off[i] = off;
    tx.len[i] = len;
    tx.inScratch[i] = scratch;
    tx.scratchUsed += scratch * len;
    this.counters.txFrames++;
  }

  private classify(flow: FlowKey): number {
    const w = this.scratchWords;
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (r.family !== flow.family || (r.protocol !== 0 && r.protocol !== flow.protocol)) continue;
      if (flow.dport < r.portMin || flow.dport > r.portMax) continue;
      maskAddr(r.family, flow.daddr, 0, r.prefix, w, 0);
      if (addrEquals(w, 0, r.net, 0)) return r.mark;
    }
    return 0;
  }
}
