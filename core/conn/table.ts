/**
 * The connection table: IPVS's ip_vs_conn_tab (net/netfilter/ipvs/ip_vs_conn.c)
 * as a fixed-capacity struct of typed arrays, with the TCP/UDP state machine
 * (core/conn/states.ts), expiry by a timer wheel driven by the injected clock,
 * persistence templates and their control links, per-entry packet counts and
 * the sync-event ring, and import of entries received by sync.
 *
 * Owns: entry storage, lookup in both directions, real-server connection
 * counters for the entries it holds (RealServer.bind/unbind/moveActive),
 * expiry. Must not: schedule (core/sched, core/conn/persist.ts do), allocate on
 * lookup/create/packet, read the wall clock, throw on the data path.
 *
 * Hashing is on the client side only (protocol, CIP, CPORT), as IPVS hashes
 * (ip_vs_conn_hashkey_conn uses caddr/cport), so a NAT reply RIP:RPORT ->
 * CIP:CPORT lands in the same chain as the client's packets.
 *
 * Memory layout, per entry (one typed array per field, capacity entries each):
 *
 * | field    | type   | bytes | meaning                                          |
 * |----------|--------|-------|--------------------------------------------------|
 * | caddr    | u32 x4 | 16    | client address (template: masked client network) |
 * | vip      | u16    | 2     | index into the interned (VIP, fwmark) table      |
 * | cport    | u16    | 2     | client port (0 in templates)                     |
 * | vport    | u16    | 2     | virtual port                                     |
 * | proto    | u8     | 1     | IP protocol (0 for firewall-mark templates)      |
 * | state    | u8     | 1     | TcpState, 0 for UDP/ICMP/templates               |
 * | oldState | u8     | 1     | state at the last sync (cp->old_state)           |
 * | flags    | u16    | 2     | F_* bits below, forwarding method in bits 8-9    |
 * | rs       | u32    | 4     | RealServer.id (registry)                         |
 * | pkts     | u32    | 4     | inbound packets (cp->in_pkts)                    |
 * | expiry   | u32    | 4     | expiry time, ms mod 2^32, compared wrap-safely   |
 * | hnext    | i32    | 4     | hash chain next (free list next when free)       |
 * | wnext    | i32    | 4     | timer wheel list next                            |
 * | wprev    | i32    | 4     | timer wheel list previous                        |
 * | control  | i32    | 4     | connection: its template or -1; template: n_control |
 * | (heads)  | i32    | 4     | hash heads, one per entry (load factor 1)        |
 *
 * = 59 bytes per entry, plus the wheel heads, the sync ring and the VIP table,
 * which do not grow with capacity (under 0.5 byte per entry at 2^20 entries).
 * bytesPerEntry() computes the figure from the arrays themselves.
 */
import { addrEquals } from '../addr.js';
import type { Clock } from '../clock.js';
import { Fwd, Proto, type Family } from '../constants.js';
import { ErrorCode, SaruError } from '../errors.js';
import { FlowKey } from '../flow.js';
import type { RealServer, ServiceTable, VirtualService } from '../service.js';
import { ConnSnapshot, ImportResult } from './snapshot.js';
import {
  MAX_TIMEOUT_MS,
  NEW_ENTRY_TIMEOUT_MS,
  TEMPLATE_REARM_MS,
  TcpDir,
  TcpState,
  Timeouts,
  stateCount,
  stateName,
  tcpNextState,
  tcpStateActive,
  type TimeoutsInit,
} from './states.js';

/** Entry flag bits. */

/**
 * Entry layout, defined once: byte offsets in the two per-entry blocks (see
 * the module comment). The typed-array views index them as offset / width;
 * test/core/conn/layout.spec.ts checks bounds, alignment and overlaps.
 */
export const CONN_LAYOUT = {
  /** Key block: what a lookup reads. */
  key: {
    bytes: 32,
    caddr: { off: 0, width: 4, count: 4 },
    cport: { off: 16, width: 2, count: 1 },
    vport: { off: 18, width: 2, count: 1 },
    flags: { off: 20, width: 2, count: 1 },
    vip: { off: 22, width: 2, count: 1 },
    hnext: { off: 24, width: 4, count: 1 },
    proto: { off: 28, width: 1, count: 1 },
    state: { off: 29, width: 1, count: 1 },
    oldState: { off: 30, width: 1, count: 1 },
  },
  /** Per-packet block: what packet() updates. */
  pkt: {
    bytes: 16,
    rs: { off: 0, width: 4, count: 1 },
    pkts: { off: 4, width: 4, count: 1 },
    expiry: { off: 8, width: 4, count: 1 },
    control: { off: 12, width: 4, count: 1 },
  },
} as const;
const K = CONN_LAYOUT.key;
const P = CONN_LAYOUT.pkt;
/** Strides of the views, in elements per entry. */
const K32 = K.bytes / 4;
const K16 = K.bytes / 2;
const K8 = K.bytes;
const P32 = P.bytes / 4;
/** Element indexes of the fields within an entry, per view. */
const K_CADDR = K.caddr.off / 4;
const K_HNEXT = K.hnext.off / 4;
const K_CPORT = K.cport.off / 2;
const K_VPORT = K.vport.off / 2;
const K_FLAGS = K.flags.off / 2;
const K_VIP = K.vip.off / 2;
const K_PROTO = K.proto.off;
const K_STATE = K.state.off;
const K_OLDSTATE = K.oldState.off;
const P_RS = P.rs.off / 4;
const P_PKTS = P.pkts.off / 4;
const P_EXPIRY = P.expiry.off / 4;
const P_CONTROL = P.control.off / 4;

const F_LIVE = 0x01;
const F_V6 = 0x02;
/** IP_VS_CONN_F_TEMPLATE. */
const F_TEMPLATE = 0x04;
/** IP_VS_CONN_F_SYNC: received by sync. */
const F_SYNCED = 0x08;
/** IP_VS_CONN_F_INACTIVE: counted in the real server's inactConns. */
const F_INACTIVE = 0x10;
/** IP_VS_CONN_F_NOOUTPUT: the director sees no replies; TCP uses the INPUT_ONLY table. */
const F_NOOUTPUT = 0x20;
/** In the hash table (a template invalidated by ip_vs_check_template is not). */
const F_HASHED = 0x40;
const FWD_SHIFT = 8;
const FWD_MASK = 0x300;

/** TCP states in which ip_vs_sync_conn_needed() syncs at all (ip_vs_sync.c). */
const SYNC_STATES =
  (1 << TcpState.ESTABLISHED) |
  (1 << TcpState.FIN_WAIT) |
  (1 << TcpState.CLOSE) |
  (1 << TcpState.CLOSE_WAIT) |
  (1 << TcpState.TIME_WAIT);

const MAX_CAPACITY = 1 << 26;

/** Settings of a connection table (plain data). */
export interface ConnTableInit {
  /** Maximum number of entries (connections and templates); rounded up to a power of two. */
  capacity: number;
  /** sync_threshold first value: sync when pkts % period == threshold. Default 3. */
  syncThreshold?: number;
  /** sync_threshold second value (sync_period). 0 = sync once at the threshold. Default 50. */
  syncPeriod?: number;
  /** Entries of the sync-event ring; rounded up to a power of two. Default 65536. */
  syncRingSize?: number;
  /** Timeout overrides (ipvsadm --set). */
  timeouts?: TimeoutsInit;
  /** Timer wheel tick in ms, a power of two. Default 128. */
  wheelTickMs?: number;
  /** Timer wheel slots, a power of two. Default 8192 (about 17 minutes at 128 ms). */
  wheelSlots?: number;
  /** Distinct (VIP, firewall mark) pairs the table can refer to, at most 65536. Default 4096. */
  maxVips?: number;
  /** Hash seed (give a random one in production; fixed default for reproducible runs). */
  hashSeed?: number;
}

/** Collaborators of a connection table. */
export interface ConnTableDeps {
  clock: Clock;
  /** Services, for importSynced() resolution; its registry maps RealServer ids. */
  services: ServiceTable;
}

/** Reasons an import was rejected (or had nothing to do). */
export interface ImportRejects {
  noService: number;
  noDest: number;
  badState: number;
  full: number;
  notFound: number;
}

/** Data-path counters. */
export interface ConnCounters {
  /** Entries created here (connections and templates). */
  created: number;
  /** Entries freed by expiry. */
  expired: number;
  /** Entries freed by remove() (including import removals). */
  removed: number;
  /** create()/createTemplate() refused: table (or VIP table) full. */
  dropsFull: number;
  /** Events put on the sync ring. */
  syncEvents: number;
  /** Events lost because the ring was full. */
  syncOverflow: number;
  /** Synced entries created by importSynced(). */
  imported: number;
  /** Existing entries updated by importSynced(). */
  importUpdated: number;
  /** Updates that moved an entry to another real server. */
  importRebound: number;
  /** Entries deleted by importSynced(). */
  importRemoved: number;
  importRejected: ImportRejects;
}

/**
 * Wrap-safe "a is at or after b" for u32 millisecond times (time_after_eq).
 */
function timeAfterEq(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

function ceilPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Interned (family, address, fwmark) triples: what the entries' u16 `vip` refers to. */
class VipTable {
  readonly words: Uint32Array;
  readonly fwmark: Uint32Array;
  readonly family: Uint8Array;
  readonly refs: Uint32Array;
  readonly next: Int32Array;
  readonly heads: Int32Array;
  private freeHead: number;
  private readonly mask: number;

  constructor(max: number) {
    this.words = new Uint32Array(max * 4);
    this.fwmark = new Uint32Array(max);
    this.family = new Uint8Array(max);
    this.refs = new Uint32Array(max);
    this.next = new Int32Array(max);
    const buckets = ceilPow2(max);
    this.heads = new Int32Array(buckets).fill(-1);
    this.mask = buckets - 1;
    for (let i = 0; i < max; i++) this.next[i] = i + 1 < max ? i + 1 : -1;
    this.freeHead = 0;
  }

  byteLength(): number {
    return (
      this.words.byteLength +
      this.fwmark.byteLength +
      this.family.byteLength +
      this.refs.byteLength +
      this.next.byteLength +
      this.heads.byteLength
    );
  }

  private bucket(w: Uint32Array, off: number, fwmark: number): number {
    let h = Math.imul(w[off + 3]! ^ fwmark, 0x9e3779b1);
    h = Math.imul(h ^ w[off + 2]! ^ w[off + 1]! ^ w[off]!, 0x85ebca6b);
    return (h ^ (h >>> 15)) & this.mask;
  }

  /** Take a reference to the triple, interning it if new. -1 when full. */
  acquire(family: Family, w: Uint32Array, off: number, fwmark: number): number {
    const b = this.bucket(w, off, fwmark);
    for (let i = this.heads[b]!; i >= 0; i = this.next[i]!) {
      if (this.fwmark[i] === fwmark && this.family[i] === family && addrEquals(this.words, i * 4, w, off)) {
        this.refs[i]!++;
        return i;
      }
    }
    const i = this.freeHead;
    if (i < 0) return -1;
    this.freeHead = this.next[i]!;
    this.words[i * 4] = w[off]!;
    this.words[i * 4 + 1] = w[off + 1]!;
    this.words[i * 4 + 2] = w[off + 2]!;
    this.words[i * 4 + 3] = w[off + 3]!;
    this.fwmark[i] = fwmark;
    this.family[i] = family;
    this.refs[i] = 1;
    this.next[i] = this.heads[b]!;
    this.heads[b] = i;
    return i;
  }

  release(i: number): void {
    if (--this.refs[i]! !== 0) return;
    const b = this.bucket(this.words, i * 4, this.fwmark[i]!);
    let p = -1;
    for (let j = this.heads[b]!; j >= 0; p = j, j = this.next[j]!) {
      if (j !== i) continue;
      if (p < 0) this.heads[b] = this.next[j]!;
      else this.next[p] = this.next[j]!;
      break;
    }
    this.next[i] = this.freeHead;
    this.freeHead = i;
  }
}

/** The connection table. See the module comment for layout and semantics. */
export class ConnTable {
  /** Number of entry slots (a power of two). */
  readonly capacity: number;
  readonly timeouts: Timeouts;
  /** Sync threshold and period (net.ipv4.vs.sync_threshold); see setSyncPolicy. */
  syncThreshold: number;
  syncPeriod: number;
  readonly counters: ConnCounters = {
    created: 0,
    expired: 0,
    removed: 0,
    dropsFull: 0,
    syncEvents: 0,
    syncOverflow: 0,
    imported: 0,
    importUpdated: 0,
    importRebound: 0,
    importRemoved: 0,
    importRejected: { noService: 0, noDest: 0, badState: 0, full: 0, notFound: 0 },
  };

  private readonly clock: Clock;
  private readonly services: ServiceTable;
  private readonly seed: number;
  private liveCount = 0;

  // Entry fields (see the layout table).
  /**
   * Lookup block, 32 bytes per entry (byte offset idx * 32), read through four
   * views of one buffer: caddr u32 x4 @0, cport u16 @16, vport u16 @18,
   * flags u16 @20, vip u16 @22, hnext i32 @24, proto u8 @28, state u8 @29,
   * oldState u8 @30. One cache line holds two entries' keys.
   */
  private readonly k32: Uint32Array;
  private readonly k16: Uint16Array;
  private readonly k8: Uint8Array;
  private readonly ki32: Int32Array;
  /** Per-packet block, 16 bytes per entry: rs u32 @0, pkts u32 @4, expiry u32 @8, control i32 @12. */
  private readonly p32: Uint32Array;
  private readonly pi32: Int32Array;
  private readonly wnext: Int32Array;
  private readonly wprev: Int32Array;
  private readonly heads: Int32Array;
  private readonly mask: number;
  private freeHead: number;

  // Timer wheel.
  private readonly wheel: Int32Array;
  private readonly wheelMask: number;
  private readonly tickShift: number;
  private readonly tickMs: number;
  private curTick: number;

  // Sync ring.
  private readonly ring: Uint32Array;
  private readonly ringMask: number;
  private ringHead = 0;
  private ringTail = 0;

  private readonly vips: VipTable;
  /** Scratch key for imports (never escapes). */
  private readonly scratch = new FlowKey();

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT on bad settings. */
  constructor(init: ConnTableInit, deps: ConnTableDeps) {
    if (!Number.isInteger(init.capacity) || init.capacity < 1 || init.capacity > MAX_CAPACITY) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `connection table capacity must be 1..${MAX_CAPACITY}, got ${init.capacity}`);
    }
    const cap = ceilPow2(init.capacity);
    this.capacity = cap;
    this.mask = cap - 1;
    this.clock = deps.clock;
    this.services = deps.services;
    this.timeouts = new Timeouts(init.timeouts);
    this.syncThreshold = 3;
    this.syncPeriod = 50;
    this.setSyncPolicy(init.syncThreshold ?? 3, init.syncPeriod ?? 50);
    this.seed = (init.hashSeed ?? 0x2545f491) | 0;

    const keys = new ArrayBuffer(cap * K.bytes);
    this.k32 = new Uint32Array(keys);
    this.k16 = new Uint16Array(keys);
    this.k8 = new Uint8Array(keys);
    this.ki32 = new Int32Array(keys);
    const per = new ArrayBuffer(cap * P.bytes);
    this.p32 = new Uint32Array(per);
    this.pi32 = new Int32Array(per);
    this.wnext = new Int32Array(cap);
    this.wprev = new Int32Array(cap);
    this.heads = new Int32Array(cap).fill(-1);
    for (let i = 0; i < cap; i++) this.ki32[i * K32 + K_HNEXT] = i + 1 < cap ? i + 1 : -1;
    this.freeHead = 0;

    const tick = init.wheelTickMs ?? 128;
    const slots = init.wheelSlots ?? 8192;
    if (!isPow2(tick) || !isPow2(slots) || Math.log2(tick) + Math.log2(slots) > 32) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `wheel tick (${tick} ms) and slots (${slots}) must be powers of two spanning <= 2^32 ms`);
    }
    this.tickMs = tick;
    this.tickShift = Math.log2(tick);
    this.wheel = new Int32Array(slots).fill(-1);
    this.wheelMask = slots - 1;
    this.curTick = Math.floor(this.clock.now() / tick);

    const ringSize = ceilPow2(init.syncRingSize ?? 65536);
    this.ring = new Uint32Array(ringSize);
    this.ringMask = ringSize - 1;

    const maxVips = init.maxVips ?? 4096;
    if (!Number.isInteger(maxVips) || maxVips < 1 || maxVips > 65536) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `maxVips must be 1..65536, got ${maxVips}`);
    }
    this.vips = new VipTable(maxVips);
  }

  /** Live entries (connections and templates). */
  get size(): number {
    return this.liveCount;
  }

  /**
   * Bytes of typed-array storage per entry slot: every array the table owns
   * (entries, hash heads, wheel, sync ring, VIP table) divided by capacity.
   */
  bytesPerEntry(): number {
    const arrays = [
      this.k32,
      this.p32,
      this.wnext,
      this.wprev,
      this.heads,
      this.wheel,
      this.ring,
    ];
    let total = this.vips.byteLength();
    for (const a of arrays) total += a.byteLength;
    return total / this.capacity;
  }

  // ---------------------------------------------------------------- lookups

  private bucket(protocol: number, w: Uint32Array, off: number, port: number): number {
    let h = this.seed ^ Math.imul(protocol ^ (port << 8), 0x9e3779b1);
    h = Math.imul(h ^ w[off + 3]!, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h ^ w[off + 2]!, 0xc2b2ae35);
    h ^= h >>> 16;
    h = Math.imul(h ^ w[off + 1]!, 0x85ebca6b);
    h = Math.imul(h ^ w[off]!, 0xc2b2ae35);
    h ^= h >>> 15;
    return h & this.mask;
  }

  private vipMatches(i: number, family: Family, w: Uint32Array): boolean {
    const v = this.k16[i * K16 + K_VIP]!;
    return this.vips.family[v] === family && addrEquals(this.vips.words, v * 4, w, 0);
  }

  /**
   * Find the connection of a client -> VIP packet (ip_vs_conn_in_get):
   * saddr = CIP, sport = CPORT, daddr = VIP, dport = VPORT. -1 when absent.
   * Templates are never returned. No allocation.
   */
  lookupIn(flow: FlowKey): number {
    const fam6 = flow.family === 6 ? F_V6 : 0;
    for (let i = this.heads[this.bucket(flow.protocol, flow.saddr, 0, flow.sport)]!; i >= 0; i = this.ki32[i * K32 + K_HNEXT]!) {
      const f = this.k16[i * K16 + K_FLAGS]!;
      if (
        this.k16[i * K16 + K_CPORT] === flow.sport &&
        this.k16[i * K16 + K_VPORT] === flow.dport &&
        this.k8[i * K8 + K_PROTO] === flow.protocol &&
        (f & (F_TEMPLATE | F_V6)) === fam6 &&
        addrEquals(this.k32, i * K32 + K_CADDR, flow.saddr, 0) &&
        this.vipMatches(i, flow.family, flow.daddr)
      ) {
        return i;
      }
    }
    return -1;
  }

  /**
   * The first entry of the hash chain a lookup of (protocol, client address
   * words at w[off..], client port) would walk, or -1. With warmEntry(), lets
   * the engine issue the memory loads of a whole batch before processing it,
   * so that the cache misses of different frames overlap (the software
   * pipelining DPDK and VPP do with prefetch instructions). No allocation.
   */
  chainHead(protocol: number, w: Uint32Array, off: number, port: number): number {
    return this.heads[this.bucket(protocol, w, off, port)]!;
  }

  /**
   * Read the key and per-packet blocks of entry `idx` (the caller keeps the
   * reads alive by consuming `warmSink`); returns the next entry in its hash
   * chain, or -1, for the caller to warm in a further pass.
   */
  warmEntry(idx: number): number {
    this.warmSink ^= this.k32[idx * K32]! ^ this.p32[idx * P32]!;
    return this.ki32[idx * K32 + K_HNEXT]!;
  }

  /** Accumulates warm-up reads so the compiler cannot drop them. */
  warmSink = 0;

  /**
   * Find the connection of a NAT reply (ip_vs_conn_out_get): saddr = RIP,
   * sport = RPORT, daddr = CIP, dport = CPORT. -1 when absent. No allocation.
   */
  lookupOut(flow: FlowKey): number {
    for (let i = this.heads[this.bucket(flow.protocol, flow.daddr, 0, flow.dport)]!; i >= 0; i = this.ki32[i * K32 + K_HNEXT]!) {
      if (
        this.k16[i * K16 + K_CPORT] !== flow.dport ||
        this.k8[i * K8 + K_PROTO] !== flow.protocol ||
        (this.k16[i * K16 + K_FLAGS]! & F_TEMPLATE) !== 0 ||
        !addrEquals(this.k32, i * K32 + K_CADDR, flow.daddr, 0)
      ) {
        continue;
      }
      const rs = this.services.registry.get(this.p32[i * P32 + P_RS]!);
      if (rs === undefined || rs.addr.family !== flow.family || !addrEquals(rs.addr.words, 0, flow.saddr, 0)) continue;
      if ((rs.port || this.k16[i * K16 + K_VPORT]!) === flow.sport) return i;
    }
    return -1;
  }

  /**
   * Find a valid persistence template (ip_vs_ct_in_get) by its key:
   * protocol (0 for firewall-mark templates), saddr = masked client network,
   * daddr = VIP (or the mark as an address), dport = virtual port or 0,
   * family. sport is ignored (always 0 in templates). -1 when absent.
   */
  lookupTemplate(key: FlowKey): number {
    const fam6 = key.family === 6 ? F_V6 : 0;
    for (let i = this.heads[this.bucket(key.protocol, key.saddr, 0, 0)]!; i >= 0; i = this.ki32[i * K32 + K_HNEXT]!) {
      if (
        this.k16[i * K16 + K_VPORT] === key.dport &&
        this.k8[i * K8 + K_PROTO] === key.protocol &&
        (this.k16[i * K16 + K_FLAGS]! & (F_TEMPLATE | F_V6)) === (F_TEMPLATE | fam6) &&
        addrEquals(this.k32, i * K32 + K_CADDR, key.saddr, 0) &&
        this.vipMatches(i, key.family, key.daddr)
      ) {
        return i;
      }
    }
    return -1;
  }

  // --------------------------------------------------------------- creation

  private alloc(family: Family, vaddr: Uint32Array, fwmark: number): number {
    const idx = this.freeHead;
    if (idx < 0) return -1;
    const v = this.vips.acquire(family, vaddr, 0, fwmark);
    if (v < 0) return -1;
    this.freeHead = this.ki32[idx * K32 + K_HNEXT]!;
    this.k16[idx * K16 + K_VIP] = v;
    this.liveCount++;
    return idx;
  }

  private hashIn(idx: number): void {
    const b = this.bucket(this.k8[idx * K8 + K_PROTO]!, this.k32, idx * K32 + K_CADDR, this.k16[idx * K16 + K_CPORT]!);
    this.ki32[idx * K32 + K_HNEXT] = this.heads[b]!;
    this.heads[b] = idx;
    this.k16[idx * K16 + K_FLAGS]! |= F_HASHED;
  }

  private unhash(idx: number): void {
    if ((this.k16[idx * K16 + K_FLAGS]! & F_HASHED) === 0) return;
    const b = this.bucket(this.k8[idx * K8 + K_PROTO]!, this.k32, idx * K32 + K_CADDR, this.k16[idx * K16 + K_CPORT]!);
    let p = -1;
    for (let j = this.heads[b]!; j >= 0; p = j, j = this.ki32[j * K32 + K_HNEXT]!) {
      if (j !== idx) continue;
      if (p < 0) this.heads[b] = this.ki32[j * K32 + K_HNEXT]!;
      else this.ki32[p * K32 + K_HNEXT] = this.ki32[j * K32 + K_HNEXT]!;
      break;
    }
    this.ki32[idx * K32 + K_HNEXT] = -1;
    this.k16[idx * K16 + K_FLAGS]! &= ~F_HASHED;
  }

  private setCaddr(idx: number, w: Uint32Array): void {
    const o = idx * K32 + K_CADDR;
    this.k32[o] = w[0]!;
    this.k32[o + 1] = w[1]!;
    this.k32[o + 2] = w[2]!;
    this.k32[o + 3] = w[3]!;
  }

  private now32(): number {
    return Math.floor(this.clock.now()) >>> 0;
  }

  /**
   * Write every field of a freshly allocated entry, hash it and put it on the
   * timer wheel: the one initialisation shared by connections, templates and
   * synced entries. `control` is the template of a connection (or -1), or a
   * template's count of controlled connections; `expiry` is ms mod 2^32.
   */
  private initEntry(
    idx: number,
    caddr: Uint32Array,
    cport: number,
    vport: number,
    protocol: number,
    state: number,
    flags: number,
    rsId: number,
    packets: number,
    control: number,
    expiry: number,
  ): void {
    this.setCaddr(idx, caddr);
    this.k16[idx * K16 + K_CPORT] = cport;
    this.k16[idx * K16 + K_VPORT] = vport;
    this.k8[idx * K8 + K_PROTO] = protocol;
    this.k8[idx * K8 + K_STATE] = state;
    this.k8[idx * K8 + K_OLDSTATE] = state;
    this.k16[idx * K16 + K_FLAGS] = flags;
    this.p32[idx * P32 + P_RS] = rsId;
    this.p32[idx * P32 + P_PKTS] = packets;
    this.pi32[idx * P32 + P_CONTROL] = control;
    this.hashIn(idx);
    this.p32[idx * P32 + P_EXPIRY] = expiry;
    this.wheelLink(idx);
  }

  /**
   * Create a connection for the first packet `flow` (client -> VIP) bound to
   * `rs`, optionally controlled by the persistence template `templateIdx`
   * (ip_vs_conn_new + ip_vs_bind_dest + ip_vs_control_add). The entry starts
   * in state NONE with the kernel's 3 s; call packet() for the packet itself.
   * It is counted in rs.inactConns, as the kernel's dest conn_flags carry
   * IP_VS_CONN_F_INACTIVE; TCP moves it to active on its first transition.
   * Replies are expected (OUTPUT table) only when rs forwards by NAT.
   * The caller has checked lookupIn() missed.
   * Returns the index, or -1 when the table is full (counted in dropsFull).
   */
  create(flow: FlowKey, rs: RealServer, templateIdx = -1): number {
    const idx = this.alloc(flow.family, flow.daddr, flow.fwmark);
    if (idx < 0) {
      this.counters.dropsFull++;
      return -1;
    }
    let control = -1;
    if (templateIdx >= 0 && (this.k16[templateIdx * K16 + K_FLAGS]! & (F_LIVE | F_TEMPLATE)) === (F_LIVE | F_TEMPLATE)) {
      control = templateIdx;
      this.pi32[templateIdx * P32 + P_CONTROL]!++;
    }
    const flags =
      F_LIVE | (flow.family === 6 ? F_V6 : 0) | F_INACTIVE | (rs.fwd !== Fwd.NAT ? F_NOOUTPUT : 0) | ((rs.fwd << FWD_SHIFT) & FWD_MASK);
    this.initEntry(idx, flow.saddr, flow.sport, flow.dport, flow.protocol, TcpState.NONE, flags, rs.id, 0, control, (this.now32() + NEW_ENTRY_TIMEOUT_MS) >>> 0);
    rs.bind(false, true);
    this.counters.created++;
    return idx;
  }

  /**
   * Create a persistence template (ip_vs_sched_persist's ip_vs_conn_new with
   * IP_VS_CONN_F_TEMPLATE): `key` as in lookupTemplate(), plus `fwmark`.
   * Counted in rs.persistConns. Returns the index or -1 when full.
   */
  createTemplate(key: FlowKey, rs: RealServer, timeoutMs: number): number {
    const idx = this.alloc(key.family, key.daddr, key.fwmark);
    if (idx < 0) {
      this.counters.dropsFull++;
      return -1;
    }
    const flags = F_LIVE | F_TEMPLATE | (key.family === 6 ? F_V6 : 0) | ((rs.fwd << FWD_SHIFT) & FWD_MASK);
    this.initEntry(idx, key.saddr, 0, key.dport, key.protocol, 0, flags, rs.id, 0, 0, (this.now32() + clampTimeout(timeoutMs)) >>> 0);
    rs.bind(true, false);
    this.counters.created++;
    return idx;
  }

  /**
   * ip_vs_check_template: a template is usable while its real server is
   * still in its service (and, with `expireQuiescent` = the sysctl
   * expire_quiescent_template, default off, has weight > 0). An unusable one
   * is unhashed so it is not found again, and left to expire; connections it
   * controls keep it alive.
   */
  checkTemplate(idx: number, expireQuiescent = false): boolean {
    const rs = this.services.registry.get(this.p32[idx * P32 + P_RS]!);
    if (rs !== undefined && rs.available && !(expireQuiescent && rs.weight === 0)) return true;
    this.unhash(idx);
    return false;
  }

  /** Restart an entry's timer with `timeoutMs` from now (ip_vs_conn_put on a template). */
  touch(idx: number, timeoutMs: number): void {
    this.setExpiry(idx, (this.now32() + clampTimeout(timeoutMs)) >>> 0);
  }

  // ------------------------------------------------------------ per packet

  /**
   * Account one packet of entry `idx`: `dirOut` is true for a NAT reply
   * (real server -> client), `tcpFlags` the TCP flags byte (ignored for
   * other protocols). Runs set_tcp_state (INPUT, OUTPUT or, while no reply
   * has been seen on a DR/TUN entry, INPUT_ONLY), moves the real server's
   * active/inactive counters as the kernel, restarts the timer with the new
   * state's timeout, and for inbound packets counts the packet and raises a
   * sync event as ip_vs_sync_conn_needed would. No allocation.
   */
  packet(idx: number, dirOut: boolean, tcpFlags: number): void {
    let f = this.k16[idx * K16 + K_FLAGS]!;
    if ((f & (F_LIVE | F_TEMPLATE)) !== F_LIVE) return;
    const protocol = this.k8[idx * K8 + K_PROTO]!;
    let timeout: number;
    if (protocol === Proto.TCP) {
      let dir: TcpDir = dirOut ? TcpDir.OUTPUT : TcpDir.INPUT;
      if (f & F_NOOUTPUT) {
        if (dirOut) f &= ~F_NOOUTPUT;
        else dir = TcpDir.INPUT_ONLY;
      }
      const cur = this.k8[idx * K8 + K_STATE]!;
      const next = tcpNextState(dir, tcpFlags, cur);
      if (next !== cur) {
        const active = tcpStateActive(next);
        if ((f & F_INACTIVE) === 0 && !active) {
          this.services.registry.get(this.p32[idx * P32 + P_RS]!)?.moveActive(true);
          f |= F_INACTIVE;
        } else if ((f & F_INACTIVE) !== 0 && active) {
          this.services.registry.get(this.p32[idx * P32 + P_RS]!)?.moveActive(false);
          f &= ~F_INACTIVE;
        }
        this.k8[idx * K8 + K_STATE] = next;
      }
      this.k16[idx * K16 + K_FLAGS] = f;
      timeout = this.timeouts.tcpMs[next]!;
    } else {
      timeout = this.timeouts.forState(protocol, 0);
    }
    this.setExpiry(idx, (this.now32() + timeout) >>> 0);
    if (dirOut) return;
    const pkts = (this.p32[idx * P32 + P_PKTS]! + 1) >>> 0;
    this.p32[idx * P32 + P_PKTS] = pkts;
    const t = this.pi32[idx * P32 + P_CONTROL]!;
    if (t >= 0) this.p32[t * P32 + P_PKTS] = (this.p32[t * P32 + P_PKTS]! + 1) >>> 0;
    if (this.syncNeeded(idx, pkts)) {
      this.pushSync(idx);
      // "synchronize its controller if it has" (ip_vs_sync_conn).
      if (t >= 0) this.pushSync(t);
    }
  }

  /**
   * ip_vs_sync_conn_needed (ip_vs_sync.c) with sync_refresh_period = 0 (the
   * default): TCP entries sync only in ESTABLISHED, FIN_WAIT, CLOSE,
   * CLOSE_WAIT and TIME_WAIT; a change into one of those other than
   * ESTABLISHED since the last sync forces a sync; otherwise (ESTABLISHED
   * included) a sync happens when pkts % period == threshold (or, with
   * period 0, when pkts == threshold). Other protocols: the packet rule only.
   */
  private syncNeeded(idx: number, pkts: number): boolean {
    const s = this.k8[idx * K8 + K_STATE]!;
    if (this.k8[idx * K8 + K_PROTO] === Proto.TCP) {
      if (((1 << s) & SYNC_STATES) === 0) return false;
      const force = s !== this.k8[idx * K8 + K_OLDSTATE];
      if (!(force && s !== TcpState.ESTABLISHED) && !this.packetRule(pkts)) return false;
    } else if (!this.packetRule(pkts)) {
      return false;
    }
    this.k8[idx * K8 + K_OLDSTATE] = s;
    return true;
  }

  private packetRule(pkts: number): boolean {
    return this.syncPeriod > 0 ? pkts % this.syncPeriod === this.syncThreshold : pkts === this.syncThreshold;
  }

  /**
   * Set when entries raise sync events: at `threshold` packets, then every
   * `period` packets (period 0: once), as the IPVS sysctl
   * net.ipv4.vs.sync_threshold ("3 50"). Applies to the next packets.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT unless threshold is an
   *   integer >= 0 and period is 0 or an integer greater than threshold.
   */
  setSyncPolicy(threshold: number, period: number): void {
    if (!Number.isInteger(threshold) || threshold < 0) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync threshold must be an integer >= 0, got ${threshold}`);
    }
    if (!Number.isInteger(period) || period < 0 || (period > 0 && threshold >= period)) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync period must be 0 or greater than the threshold, got ${period}`);
    }
    this.syncThreshold = threshold;
    this.syncPeriod = period;
  }

  /**
   * Raise a sync event for entry `idx` now, whatever its packet count (a
   * graceful handover sends the current state of the connections it hands
   * over). Counted as any event; no-op for a free slot.
   */
  requestSync(idx: number): void {
    if (this.isLive(idx)) this.pushSync(idx);
  }

  private pushSync(idx: number): void {
    if (this.ringTail - this.ringHead > this.ringMask) {
      this.counters.syncOverflow++;
      return;
    }
    this.ring[this.ringTail & this.ringMask] = idx;
    this.ringTail++;
    this.counters.syncEvents++;
  }

  /**
   * Hand every pending sync event to `fn` (entry index; read it with
   * snapshot()). Returns the number delivered. Events of entries freed since
   * they were raised are skipped. The engine drains before calling expire()
   * (and before remove()/importSynced() that delete), so that an index is not
   * reused by a new entry before its event is read.
   */
  drainSync(fn: (idx: number) => void): number {
    let n = 0;
    while (this.ringHead !== this.ringTail) {
      const idx = this.ring[this.ringHead & this.ringMask]!;
      this.ringHead++;
      if ((this.k16[idx * K16 + K_FLAGS]! & F_LIVE) === 0) continue;
      fn(idx);
      n++;
    }
    return n;
  }

  /** Sync events waiting in the ring. */
  pendingSync(): number {
    return this.ringTail - this.ringHead;
  }

  // ----------------------------------------------------------- timer wheel

  private slotOf(exp: number): number {
    return (exp >>> this.tickShift) & this.wheelMask;
  }

  private wheelLink(idx: number): void {
    const s = this.slotOf(this.p32[idx * P32 + P_EXPIRY]!);
    const h = this.wheel[s]!;
    this.wnext[idx] = h;
    this.wprev[idx] = -1 - s; // negative: head of slot s
    if (h >= 0) this.wprev[h] = idx;
    this.wheel[s] = idx;
  }

  private wheelUnlink(idx: number): void {
    const p = this.wprev[idx]!;
    const n = this.wnext[idx]!;
    if (p >= 0) this.wnext[p] = n;
    else this.wheel[-1 - p] = n;
    if (n >= 0) this.wprev[n] = p;
  }

  /**
   * Set a new expiry. Later expiries are left in their slot and re-slotted
   * lazily when the wheel reaches it; earlier ones are re-slotted now, so an
   * entry's slot is never after its expiry.
   */
  private setExpiry(idx: number, exp: number): void {
    const old = this.p32[idx * P32 + P_EXPIRY]!;
    this.p32[idx * P32 + P_EXPIRY] = exp;
    if (((exp - old) | 0) < 0) {
      this.wheelUnlink(idx);
      this.wheelLink(idx);
    }
  }

  /**
   * Advance the wheel to clock.now() and free every entry whose expiry is at
   * or before now (ip_vs_conn_expire): real server unbound, template control
   * released. A template still controlling connections is re-armed with 60 s
   * and a sync event, as the kernel's expire_later. Returns entries freed.
   * Drain sync events first (see drainSync).
   */
  expire(): number {
    const nowF = this.clock.now();
    const now = Math.floor(nowF) >>> 0;
    const nowTick = Math.floor(nowF / this.tickMs);
    let n = nowTick - this.curTick + 1;
    if (n > this.wheelMask + 1) n = this.wheelMask + 1;
    let freed = 0;
    for (let k = 0; k < n; k++) {
      const slot = (this.curTick + k) & this.wheelMask;
      let i = this.wheel[slot]!;
      while (i >= 0) {
        const next = this.wnext[i]!;
        const exp = this.p32[i * P32 + P_EXPIRY]!;
        if (timeAfterEq(now, exp)) {
          if ((this.k16[i * K16 + K_FLAGS]! & F_TEMPLATE) !== 0 && this.pi32[i * P32 + P_CONTROL]! > 0) {
            this.p32[i * P32 + P_EXPIRY] = (now + TEMPLATE_REARM_MS) >>> 0;
            this.wheelUnlink(i);
            this.wheelLink(i);
            this.pushSync(i);
          } else {
            this.free(i);
            this.counters.expired++;
            freed++;
          }
        } else {
          const s = this.slotOf(exp);
          if (s !== slot) {
            this.wheelUnlink(i);
            this.wheelLink(i);
          }
        }
        i = next;
      }
    }
    this.curTick = nowTick;
    return freed;
  }

  private free(idx: number): void {
    const f = this.k16[idx * K16 + K_FLAGS]!;
    this.unhash(idx);
    this.wheelUnlink(idx);
    const template = (f & F_TEMPLATE) !== 0;
    if (!template) {
      const t = this.pi32[idx * P32 + P_CONTROL]!;
      if (t >= 0) this.pi32[t * P32 + P_CONTROL]!--;
    }
    this.k16[idx * K16 + K_FLAGS] = 0;
    this.vips.release(this.k16[idx * K16 + K_VIP]!);
    this.ki32[idx * K32 + K_HNEXT] = this.freeHead;
    this.freeHead = idx;
    this.liveCount--;
    this.services.registry.get(this.p32[idx * P32 + P_RS]!)?.unbind(template, (f & F_INACTIVE) !== 0);
  }

  /**
   * Delete an entry now (ipvsadm flush, sync removal, engine policy).
   * A template that still controls connections cannot go yet: it is
   * unhashed (no new connection finds it) and expires once they are gone,
   * as ip_vs_conn_expire_now + expire_later; returns false then.
   * Returns true when the entry was freed.
   */
  remove(idx: number): boolean {
    const f = this.k16[idx * K16 + K_FLAGS]!;
    if ((f & F_LIVE) === 0) return false;
    if ((f & F_TEMPLATE) !== 0 && this.pi32[idx * P32 + P_CONTROL]! > 0) {
      this.unhash(idx);
      this.setExpiry(idx, this.now32());
      return false;
    }
    this.free(idx);
    this.counters.removed++;
    return true;
  }

  // --------------------------------------------------------------- accessors

  /** Whether `idx` holds a live entry. */
  isLive(idx: number): boolean {
    return idx >= 0 && idx < this.capacity && (this.k16[idx * K16 + K_FLAGS]! & F_LIVE) !== 0;
  }
  state(idx: number): number {
    return this.k8[idx * K8 + K_STATE]!;
  }
  /** ipvsadm -L -c state column. */
  stateName(idx: number): string {
    return stateName(this.k8[idx * K8 + K_PROTO]!, this.k8[idx * K8 + K_STATE]!, (this.k16[idx * K16 + K_FLAGS]! & F_TEMPLATE) !== 0);
  }
  protocol(idx: number): number {
    return this.k8[idx * K8 + K_PROTO]!;
  }
  family(idx: number): Family {
    return (this.k16[idx * K16 + K_FLAGS]! & F_V6) !== 0 ? 6 : 4;
  }
  realServerId(idx: number): number {
    return this.p32[idx * P32 + P_RS]!;
  }
  /** The bound real server (an array read in the registry). */
  realServer(idx: number): RealServer | undefined {
    return this.services.registry.get(this.p32[idx * P32 + P_RS]!);
  }
  /** Port on the real server: its configured port, or the virtual port when that is 0. */
  realPort(idx: number): number {
    const rs = this.services.registry.get(this.p32[idx * P32 + P_RS]!);
    return (rs?.port || this.k16[idx * K16 + K_VPORT]!) & 0xffff;
  }
  clientPort(idx: number): number {
    return this.k16[idx * K16 + K_CPORT]!;
  }
  virtualPort(idx: number): number {
    return this.k16[idx * K16 + K_VPORT]!;
  }
  /** Forwarding method fixed at creation. */
  fwd(idx: number): Fwd {
    return ((this.k16[idx * K16 + K_FLAGS]! & FWD_MASK) >> FWD_SHIFT) as Fwd;
  }
  fwmark(idx: number): number {
    return this.vips.fwmark[this.k16[idx * K16 + K_VIP]!]!;
  }
  isSynced(idx: number): boolean {
    return (this.k16[idx * K16 + K_FLAGS]! & F_SYNCED) !== 0;
  }
  isTemplate(idx: number): boolean {
    return (this.k16[idx * K16 + K_FLAGS]! & F_TEMPLATE) !== 0;
  }
  /** Counted in the real server's inactConns (IP_VS_CONN_F_INACTIVE). */
  isInactive(idx: number): boolean {
    return (this.k16[idx * K16 + K_FLAGS]! & F_INACTIVE) !== 0;
  }
  /** The controlling template of a connection, or -1. */
  templateOf(idx: number): number {
    return (this.k16[idx * K16 + K_FLAGS]! & F_TEMPLATE) !== 0 ? -1 : this.pi32[idx * P32 + P_CONTROL]!;
  }
  /** Connections controlled by a template (n_control); 0 for connections. */
  controlled(idx: number): number {
    return (this.k16[idx * K16 + K_FLAGS]! & F_TEMPLATE) !== 0 ? this.pi32[idx * P32 + P_CONTROL]! : 0;
  }
  /** Milliseconds until expiry (0 when due). */
  remainingMs(idx: number): number {
    const r = (this.p32[idx * P32 + P_EXPIRY]! - this.now32()) | 0;
    return r > 0 ? r : 0;
  }
  packets(idx: number): number {
    return this.p32[idx * P32 + P_PKTS]!;
  }
  /** Copy the client address words into out[off..off+3]. */
  copyClientAddr(idx: number, out: Uint32Array, off = 0): void {
    for (let k = 0; k < 4; k++) out[off + k] = this.k32[idx * K32 + K_CADDR + k]!;
  }
  /** Copy the virtual address words into out[off..off+3]. */
  copyVirtualAddr(idx: number, out: Uint32Array, off = 0): void {
    const v = this.k16[idx * K16 + K_VIP]!;
    for (let k = 0; k < 4; k++) out[off + k] = this.vips.words[v * 4 + k]!;
  }

  /**
   * Call `fn` for each live entry, in slot order. `fn` may remove the entry
   * it is given. Not for the packet path (visits every slot).
   */
  forEach(fn: (idx: number) => void): void {
    for (let i = 0; i < this.capacity; i++) if ((this.k16[i * K16 + K_FLAGS]! & F_LIVE) !== 0) fn(i);
  }

  // ------------------------------------------------------------------- sync

  /**
   * Fill `out` with entry `idx` as the sync daemon sends it (ip_vs_sync_conn
   * v1 fields). Returns false when `idx` is not live. No allocation.
   */
  snapshot(idx: number, out: ConnSnapshot): boolean {
    if (!this.isLive(idx)) return false;
    const f = this.k16[idx * K16 + K_FLAGS]!;
    out.family = (f & F_V6) !== 0 ? 6 : 4;
    out.protocol = this.k8[idx * K8 + K_PROTO]!;
    this.copyClientAddr(idx, out.caddr);
    this.copyVirtualAddr(idx, out.vaddr);
    const rs = this.services.registry.get(this.p32[idx * P32 + P_RS]!);
    if (rs !== undefined) {
      out.daddr.set(rs.addr.words);
      out.dfamily = rs.addr.family;
    } else {
      out.daddr.fill(0);
      out.dfamily = out.family;
    }
    out.cport = this.k16[idx * K16 + K_CPORT]!;
    out.vport = this.k16[idx * K16 + K_VPORT]!;
    out.dport = this.realPort(idx);
    out.fwd = ((f & FWD_MASK) >> FWD_SHIFT) as Fwd;
    out.state = this.k8[idx * K8 + K_STATE]!;
    out.timeoutMs = this.remainingMs(idx);
    out.template = (f & F_TEMPLATE) !== 0;
    out.fwmark = this.vips.fwmark[this.k16[idx * K16 + K_VIP]!]!;
    out.synced = (f & F_SYNCED) !== 0;
    out.packets = this.p32[idx * P32 + P_PKTS]!;
    out.remove = false;
    return true;
  }

  /**
   * Accept an entry received by sync (ip_vs_proc_conn, ip_vs_sync.c): create
   * it as a synced entry, or update an existing one's state, remaining
   * timeout, packet count and (if it changed) real server. The sender's
   * remaining timeout is used as is, so a CLOSE or TIME_WAIT update shortens
   * the entry's life. `remove`, or a timeout of 0, deletes the entry.
   * The service is resolved by firewall mark, (protocol, VIP, port) or the
   * VIP's port-zero service (ServiceTable.lookup; templates of firewall-mark
   * services by mark), the real server among that service's real servers and
   * fallback by address and port, trying the real port then port 0 (or the
   * reverse for non-NAT firewall-mark entries) as ip_vs_find_dest. Activity
   * follows the state: TCP in an active state counts as active, UDP/ICMP
   * entries as inactive, as on the sender. Synced connections are not linked
   * to templates (the kernel's backup does not link them either).
   * Never throws; rejections are counted in counters.importRejected.
   */
  importSynced(s: ConnSnapshot): ImportResult {
    const rej = this.counters.importRejected;
    if (s.template ? s.state !== 0 : !(Number.isInteger(s.state) && s.state >= 0 && s.state < stateCount(s.protocol))) {
      rej.badState++;
      return ImportResult.REJECT_BAD_STATE;
    }
    const k = this.scratch;
    k.family = s.family;
    k.protocol = s.protocol;
    k.saddr.set(s.caddr);
    k.sport = s.template ? 0 : s.cport;
    k.daddr.set(s.vaddr);
    k.dport = s.vport;
    k.fwmark = s.fwmark;
    const existing = s.template ? this.lookupTemplate(k) : this.lookupIn(k);

    if (s.remove || !(s.timeoutMs > 0)) {
      if (existing < 0) {
        rej.notFound++;
        return ImportResult.NOT_FOUND;
      }
      this.remove(existing);
      this.counters.importRemoved++;
      return ImportResult.REMOVED;
    }

    let svc: VirtualService | null;
    if (s.template && s.protocol === 0) {
      svc = s.fwmark !== 0 ? this.services.findByMark(s.fwmark, s.family) : null;
      if (svc !== null && svc.family !== s.family) svc = null;
    } else {
      svc = this.services.lookup(k);
    }
    if (svc === null) {
      rej.noService++;
      return ImportResult.REJECT_NO_SERVICE;
    }
    const rs = findDest(svc, s);
    if (rs === null) {
      rej.noDest++;
      return ImportResult.REJECT_NO_DEST;
    }
    const inactive = s.template ? false : s.protocol === Proto.TCP ? !tcpStateActive(s.state) : true;
    const exp = (this.now32() + clampTimeout(s.timeoutMs)) >>> 0;

    if (existing >= 0) {
      const f = this.k16[existing * K16 + K_FLAGS]!;
      const template = (f & F_TEMPLATE) !== 0;
      const wasInactive = (f & F_INACTIVE) !== 0;
      let nf = f;
      if (this.p32[existing * P32 + P_RS] !== rs.id) {
        this.services.registry.get(this.p32[existing * P32 + P_RS]!)?.unbind(template, wasInactive);
        this.p32[existing * P32 + P_RS] = rs.id;
        rs.bind(template, inactive);
        nf = (nf & ~(FWD_MASK | F_NOOUTPUT)) | ((rs.fwd << FWD_SHIFT) & FWD_MASK) | (rs.fwd !== Fwd.NAT && !template ? F_NOOUTPUT : 0);
        this.counters.importRebound++;
      } else if (!template && wasInactive !== inactive) {
        rs.moveActive(inactive);
      }
      this.k16[existing * K16 + K_FLAGS] = inactive ? nf | F_INACTIVE : nf & ~F_INACTIVE;
      this.k8[existing * K8 + K_STATE] = s.state;
      this.k8[existing * K8 + K_OLDSTATE] = s.state;
      this.p32[existing * P32 + P_PKTS] = s.packets >>> 0;
      this.setExpiry(existing, exp);
      this.counters.importUpdated++;
      return ImportResult.UPDATED;
    }

    const idx = this.alloc(s.family, s.vaddr, s.fwmark);
    if (idx < 0) {
      rej.full++;
      return ImportResult.REJECT_FULL;
    }
    const flags =
      F_LIVE |
      F_SYNCED |
      (s.template ? F_TEMPLATE : 0) |
      (s.family === 6 ? F_V6 : 0) |
      (inactive ? F_INACTIVE : 0) |
      (rs.fwd !== Fwd.NAT && !s.template ? F_NOOUTPUT : 0) |
      ((rs.fwd << FWD_SHIFT) & FWD_MASK);
    this.initEntry(idx, s.caddr, s.template ? 0 : s.cport, s.vport, s.protocol, s.state, flags, rs.id, s.packets >>> 0, s.template ? 0 : -1, exp);
    rs.bind(s.template, inactive);
    this.counters.imported++;
    return ImportResult.CREATED;
  }
}

function clampTimeout(ms: number): number {
  if (!(ms > 0)) return 0;
  return ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : Math.floor(ms);
}

/**
 * ip_vs_find_dest (ip_vs_ctl.c): the real server with the snapshot's address
 * and port, else port 0 (for a non-NAT firewall-mark entry port 0 first).
 * Searches the real servers, then the fallback. No allocation.
 */
function findDest(svc: VirtualService, s: ConnSnapshot): RealServer | null {
  const first = s.fwmark !== 0 && s.fwd !== Fwd.NAT ? 0 : s.dport;
  const second = first ^ s.dport;
  const a = matchDest(svc, s, first);
  if (a !== null || second === first) return a;
  return matchDest(svc, s, second);
}

function matchDest(svc: VirtualService, s: ConnSnapshot, port: number): RealServer | null {
  const list = svc.realServers;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (r.port === port && r.addr.family === s.dfamily && addrEquals(r.addr.words, 0, s.daddr, 0)) return r;
  }
  const fb = svc.fallback;
  if (fb !== null && fb.port === port && fb.addr.family === s.dfamily && addrEquals(fb.addr.words, 0, s.daddr, 0)) return fb;
  return null;
}
