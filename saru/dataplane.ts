/**
 * The data plane of one director: the loop that wires core's Engine to a
 * PacketPort (native AF_PACKET I/O, or a MemoryPort in tests), plus the
 * requests the control side makes of it (listings, counters, new services,
 * a new slice, neighbour MACs). It runs in a worker thread (saru/dataplane-
 * worker.ts) so packet bursts never delay heartbeats or control requests,
 * and it is a plain class so tests can drive it in-process with a manual clock.
 * It owns the engine, the rate estimator and the socket filter program; it
 * does not open sockets itself, read configuration files or log.
 */
import {
  DROP_REASON_NAMES,
  Engine,
  Fwd,
  Proto,
  TcpState,
  IpAddress,
  RateEstimator,
  ServiceTable,
  SliceFilter,
  formatAddr,
  formatConnectionList,
  formatServiceList,
  reconcileServices,
  type Clock,
  type ConnListRow,
  type RealServer,
  type ReconcileResult,
  type ServiceInitPair,
  type Sense,
  type Stats,
  ConnSnapshot,
  ErrorCode,
  ImportResult,
  SaruError,
  SYNC_RECORD,
  readSyncRecord,
  syncRecordView,
  writeSyncRecord,
} from '../core/index.js';
import type { PacketPort } from '../native/index.js';
import { compileSliceFilter } from './bpf.js';

/** Settings of the data plane (plain data: it crosses into the worker). */
export interface DataplaneInit {
  buckets: number;
  sense: Sense;
  /** Owned buckets and the epoch they belong to. */
  owned: number[];
  epoch: number;
  services: ServiceInitPair[];
  /** Connection table capacity, entries. */
  connTableSize: number;
  midFlow: 'drop' | 'schedule';
  /** Frames per batch (the engine's transmit capacity). */
  batchSize: number;
  /** Director's own addresses: outer source of IP-in-IP tunnels. */
  localAddr4?: string;
  localAddr6?: string;
  /** Compile and attach the slice's socket filter (default true). */
  socketFilter?: boolean;
}

export interface DataplaneDeps {
  port: PacketPort;
  clock: Clock;
  /** Clock the lease deadline is read against (processClock in the worker: the coordinator's clock). Default `clock`. */
  leaseClock?: Clock;
}

/** How a new owned set treats the draining buckets (Dataplane.setSlice). */
export interface SliceChange {
  /**
   * Buckets handed over to another director by a newer allocation: this
   * director keeps finishing the connections it created in them (draining).
   */
  handOver?: number[];
  /** New lease deadline on the lease clock (Infinity: none; 0 or past: forward nothing). */
  leaseUntil?: number;
}

/** One neighbour binding: an address and its MAC ("aa:bb:cc:dd:ee:ff"). */
export interface NeighbourEntry {
  address: string;
  mac: string;
}

/** Counters and state for `saruadm --cluster`. */
export interface DataplaneStatus {
  epoch: number;
  owned: number;
  ranges: Array<[number, number]>;
  /** Buckets handed over whose own connections are still being finished here. */
  draining: number;
  drainingRanges: Array<[number, number]>;
  /** Own (not synced) connections left in draining buckets at the last sweep. */
  drainingConnections: number;
  /** The lease has run out: nothing is forwarded until the coordinator renews it. */
  leaseExpired: boolean;
  connections: number;
  tableCapacity: number;
  counters: Record<string, number>;
  drops: Record<string, number>;
  port: Record<string, number>;
  filterInsns: number;
  unresolved: string[];
}

/** Sync records handed to the subscriber at once at most (72 KiB). */
export const SYNC_BATCH_RECORDS = 1024;

/** A partly filled batch of sync records waits at most this long, ms (it goes at once when the receive ring is drained). */
export const SYNC_FLUSH_MS = 5;

/** Receives batches of sync records (core/conn/record.ts) and the epoch they were raised under. Takes ownership of `bytes`. */
export type SyncSink = (bytes: Uint8Array, count: number, epoch: number) => void;

/** What an injected batch did (ConnTable.importSynced outcomes). */
export interface InjectResult {
  created: number;
  updated: number;
  removed: number;
  notFound: number;
  rejected: number;
}

/** Engine tick (entry expiry) period, ms. */
export const TICK_MS = 100;

/** How often draining buckets are checked for own connections left, ms. */
export const DRAIN_SWEEP_MS = 500;

/** Closing TCP and UDP entries idle this long no longer hold a draining bucket, ms. */
export const DRAIN_IDLE_MS = 2000;

function parseMacText(text: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  return m ? Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16))) : null;
}

export class Dataplane {
  readonly engine: Engine;
  readonly services: ServiceTable;
  readonly slice: SliceFilter;
  private readonly port: PacketPort;
  private readonly clock: Clock;
  private readonly estimator: RateEstimator;
  private readonly macs = new Map<string, Uint8Array>();
  private readonly useFilter: boolean;
  private nextTick: number;
  private readonly leaseClock: Clock;
  private leaseUntil = Infinity;
  private leaseExpired = false;
  private nextSweep = 0;
  private drainingConnections = 0;
  /** The owned set as last given (the slice holds none of it while the lease is expired). */
  private ownedList: number[] = [];
  /** Times the lease ran out. */
  private leaseExpiries = 0;
  /** Instructions in the attached socket filter; 0 = none. */
  filterInsns = 0;
  /** Why no filter is attached, if none is. */
  filterError = '';
  /** Sync events drained while nobody subscribes (saru-syncd arrives later). */
  syncEventsDiscarded = 0;
  /** Sync events handed to the subscriber, and batches of them. */
  private syncEventsSent = 0;
  private syncBatchesSent = 0;
  /** Entries received from peers (injected) and what became of them. */
  private readonly injected: InjectResult = { created: 0, updated: 0, removed: 0, notFound: 0, rejected: 0 };
  private syncSink: SyncSink | null = null;
  /** Records handed to the current subscriber since it subscribed (the numbering of syncAcked()). */
  private syncEmitted = 0;
  /** Handed-over buckets whose own connections were sent to the subscriber as records up to `barrier`. */
  private drainBarriers: Array<{ barrier: number; buckets: number[] }> = [];
  /** Draining buckets released because peers acknowledged their connections, not because they closed. */
  private drainReleasedBySync = 0;
  private syncBytes: Uint8Array | null = null;
  private syncView: DataView | null = null;
  private syncCount = 0;
  private syncFirstAt = 0;
  private readonly snap = new ConnSnapshot();

  /**
   * @throws SaruError from the service model when `init.services` is invalid,
   *   and from the port when the filter cannot be attached.
   */
  constructor(init: DataplaneInit, deps: DataplaneDeps) {
    this.port = deps.port;
    this.clock = deps.clock;
    this.leaseClock = deps.leaseClock ?? deps.clock;
    this.services = new ServiceTable();
    reconcileServices(this.services, init.services);
    this.slice = new SliceFilter({ buckets: init.buckets, sense: init.sense });
    this.slice.setOwned(init.owned, init.epoch);
    this.ownedList = init.owned.slice();
    const engineInit: ConstructorParameters<typeof Engine>[0] = {
      sharedMac: this.port.mac,
      mtu: this.port.mtu,
      table: { capacity: init.connTableSize },
      midFlow: init.midFlow,
      batchSize: init.batchSize,
    };
    if (init.localAddr4) engineInit.localAddr4 = init.localAddr4;
    if (init.localAddr6) engineInit.localAddr6 = init.localAddr6;
    this.engine = new Engine(engineInit, { clock: this.clock, services: this.services, slice: this.slice });
    this.estimator = new RateEstimator(this.clock.now());
    this.syncEstimator();
    this.useFilter = init.socketFilter !== false;
    this.nextTick = this.clock.now() + TICK_MS;
    this.programFilter();
  }

  /**
   * One turn of the loop: receive a batch (waiting up to `timeoutMs`), run
   * the engine, transmit, and run the timers when due. Returns the frames received.
   */
  runOnce(timeoutMs: number): number {
    const port = this.port;
    const n = port.receive(timeoutMs);
    if (!this.leaseExpired && this.leaseUntil !== Infinity && this.leaseClock.now() >= this.leaseUntil) this.expireLease();
    if (n > 0) {
      const engine = this.engine;
      engine.processBatch(port.rx);
      if (engine.tx.count > 0) port.transmit(engine.tx);
      this.collectSync();
    }
    const now = this.clock.now();
    if (now >= this.nextTick) {
      this.nextTick = now + TICK_MS;
      this.collectSync();
      this.engine.tick();
      this.collectSync(); // templates re-armed by expiry raise events too
      this.estimator.tick(now);
    }
    if (this.syncCount > 0 && (n < port.rx.off.length || now - this.syncFirstAt >= SYNC_FLUSH_MS)) this.flushSync();
    if (this.slice.drainingBuckets() > 0 && now >= this.nextSweep) {
      this.nextSweep = now + DRAIN_SWEEP_MS;
      this.sweepDraining();
    }
    return n;
  }

  /**
   * Subscribe (sink) or unsubscribe (null) to sync events, as saru-syncd
   * does over the control socket, and set the sync threshold and period
   * (net.ipv4.vs.sync_threshold, "3 50") of the connection table. Without a
   * subscriber events are counted and discarded.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT for a threshold/period the
   *   table refuses (period must be 0 or greater than the threshold).
   */
  setSyncSink(sink: SyncSink | null, threshold?: number, period?: number, newSubscriber = true): void {
    if (threshold !== undefined && period !== undefined) this.engine.table.setSyncPolicy(threshold, period);
    this.collectSync();
    if (this.syncCount > 0) this.flushSync();
    this.syncSink = sink;
    if (newSubscriber || sink === null) {
      this.syncEmitted = 0;
      this.drainBarriers = [];
    }
  }

  /**
   * The subscriber reports that every live peer holds the first `records`
   * records sent to it since it subscribed (saru-syncd's acknowledgements).
   * Handed-over buckets whose own connections were all sent by then are
   * released at once: the new owners hold those connections as synced
   * entries and forward them (DESIGN section 4: "until they are synced or
   * closed"). Returns the buckets released.
   */
  syncAcked(records: number): number {
    let released = 0;
    const done = this.drainBarriers.filter((d) => d.barrier <= records);
    if (done.length === 0) return 0;
    this.drainBarriers = this.drainBarriers.filter((d) => d.barrier > records);
    const slice = this.slice;
    const free = new Set<number>();
    for (const d of done) for (const b of d.buckets) if (slice.draining[b] === 1 && slice.owned[b] !== 1) free.add(b);
    if (free.size === 0) return 0;
    const keep: number[] = [];
    for (let b = 0; b < slice.buckets; b++) if (slice.draining[b] === 1 && !free.has(b)) keep.push(b);
    slice.setDraining(keep);
    this.programFilter();
    released = free.size;
    this.drainReleasedBySync += released;
    return released;
  }

  /**
   * With a subscriber: raise a sync event for every own connection in the
   * buckets just handed over, send them at once, and remember the record
   * count that covers them (syncAcked() releases the buckets then).
   */
  private syncHandedOver(buckets: number[]): void {
    if (this.syncSink === null || buckets.length === 0) return;
    const slice = this.slice;
    const t = this.engine.table;
    const set = new Uint8Array(slice.buckets);
    for (const b of buckets) set[b] = 1;
    this.collectSync();
    t.forEach((idx) => {
      if (t.isSynced(idx)) return;
      if (set[this.entryBucket(idx)] === 1 || t.isTemplate(idx)) t.requestSync(idx);
    });
    this.collectSync();
    if (this.syncCount > 0) this.flushSync();
    this.drainBarriers.push({ barrier: this.syncEmitted, buckets });
  }

  /** Move pending sync events into the record batch (or count them as discarded). */
  private collectSync(): void {
    const engine = this.engine;
    if (this.syncSink === null) {
      this.syncEventsDiscarded += engine.drainSync(() => {});
      return;
    }
    engine.drainSync((idx) => {
      if (!engine.table.snapshot(idx, this.snap)) return;
      if (this.syncBytes === null) {
        this.syncBytes = new Uint8Array(SYNC_BATCH_RECORDS * SYNC_RECORD.SIZE);
        this.syncView = syncRecordView(this.syncBytes);
        this.syncFirstAt = this.clock.now();
      }
      writeSyncRecord(this.syncView!, this.syncCount++, this.snap);
      if (this.syncCount === SYNC_BATCH_RECORDS) this.flushSync();
    });
  }

  private flushSync(): void {
    const bytes = this.syncBytes!;
    const count = this.syncCount;
    this.syncBytes = null;
    this.syncView = null;
    this.syncCount = 0;
    this.syncEventsSent += count;
    this.syncEmitted += count;
    this.syncBatchesSent++;
    this.syncSink?.(count === SYNC_BATCH_RECORDS ? bytes : bytes.slice(0, count * SYNC_RECORD.SIZE), count, this.slice.epoch);
  }

  /**
   * Put entries received from peers into the table as synced entries
   * (ConnTable.importSynced: create, update, or remove on a zero timeout).
   * `bytes` holds `count` sync records. Never throws on the records' content:
   * rejections are counted.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT when `bytes` is not count * 72 bytes.
   */
  injectRecords(bytes: Uint8Array, count: number): InjectResult {
    if (!Number.isInteger(count) || count < 0 || bytes.length !== count * SYNC_RECORD.SIZE) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `inject: ${bytes.length} bytes is not ${count} records of ${SYNC_RECORD.SIZE} bytes`);
    }
    this.collectSync(); // an import may delete an entry whose event is pending
    const view = syncRecordView(bytes);
    const out: InjectResult = { created: 0, updated: 0, removed: 0, notFound: 0, rejected: 0 };
    const t = this.engine.table;
    for (let i = 0; i < count; i++) {
      readSyncRecord(view, i, this.snap);
      switch (t.importSynced(this.snap)) {
        case ImportResult.CREATED: out.created++; break;
        case ImportResult.UPDATED: out.updated++; break;
        case ImportResult.REMOVED: out.removed++; break;
        case ImportResult.NOT_FOUND: out.notFound++; break;
        default: out.rejected++;
      }
    }
    for (const k of Object.keys(out) as Array<keyof InjectResult>) this.injected[k] += out[k];
    return out;
  }

  /**
   * One page of the table for a resync: up to `max` live entries (templates
   * included) from table slot `cursor` on, as sync records. `next` is the
   * slot to continue from, -1 when the table has been walked. Entries that
   * stay in the table during the walk are all visited once; new ones reach
   * peers through sync events.
   */
  dumpRecords(cursor: number, max: number): { bytes: Uint8Array; count: number; next: number } {
    const t = this.engine.table;
    const cap = Math.max(1, Math.min(max, 65536));
    const bytes = new Uint8Array(cap * SYNC_RECORD.SIZE);
    const view = syncRecordView(bytes);
    let n = 0;
    let i = Math.max(0, Math.floor(cursor));
    for (; i < t.capacity && n < cap; i++) {
      if (t.snapshot(i, this.snap)) writeSyncRecord(view, n++, this.snap);
    }
    return { bytes: n === cap ? bytes : bytes.slice(0, n * SYNC_RECORD.SIZE), count: n, next: i >= t.capacity ? -1 : i };
  }

  /**
   * Fate sharing: the coordinator has not renewed the lease, so other
   * directors may own these buckets by now. Forward none of them (the
   * filter drops them in the kernel) until a later lease arrives. Draining
   * buckets stay: their connections are this director's alone.
   */
  private expireLease(): void {
    this.leaseExpired = true;
    this.leaseExpiries++;
    this.slice.setOwned([], this.slice.epoch);
    this.programFilter();
  }

  private readonly bucketC = new Uint32Array(4);
  private readonly bucketV = new Uint32Array(4);

  /** The slice bucket of connection entry `idx` (its client side, as the engine buckets its packets). */
  private entryBucket(idx: number): number {
    const t = this.engine.table;
    t.copyClientAddr(idx, this.bucketC);
    t.copyVirtualAddr(idx, this.bucketV);
    return this.slice.bucket(this.bucketC, t.clientPort(idx), this.bucketV, t.virtualPort(idx));
  }

  /**
   * Release draining buckets in which no connection this director created is
   * still open. Synced entries and TCP entries in TIME_WAIT or CLOSE never
   * hold a bucket. Closing TCP entries (FIN_WAIT, CLOSE_WAIT, LAST_ACK: with
   * direct routing the director sees only the client's side, and IPVS's
   * input-only table leaves a finished connection in CLOSE_WAIT for 60 s)
   * and UDP entries hold it only while a packet came within DRAIN_IDLE_MS.
   * ESTABLISHED entries hold it until they close or time out.
   */
  sweepDraining(): void {
    const slice = this.slice;
    const t = this.engine.table;
    const left = new Uint32Array(slice.buckets);
    let total = 0;
    t.forEach((idx) => {
      if (t.isSynced(idx) || t.isTemplate(idx)) return;
      const proto = t.protocol(idx);
      const st = t.state(idx);
      if (proto === Proto.TCP && (st === TcpState.TIME_WAIT || st === TcpState.CLOSE)) return;
      if (proto !== Proto.TCP || st === TcpState.FIN_WAIT || st === TcpState.CLOSE_WAIT || st === TcpState.LAST_ACK) {
        const idleMs = t.timeouts.forState(proto, st) - t.remainingMs(idx);
        if (idleMs >= DRAIN_IDLE_MS) return;
      }
      const b = this.entryBucket(idx);
      if (slice.draining[b] === 1 && slice.owned[b] !== 1) {
        left[b]!++;
        total++;
      }
    });
    this.drainingConnections = total;
    const keep: number[] = [];
    for (let b = 0; b < slice.buckets; b++) if (slice.draining[b] === 1 && slice.owned[b] !== 1 && left[b]! > 0) keep.push(b);
    if (keep.length !== slice.drainingBuckets()) {
      slice.setDraining(keep);
      this.programFilter();
    }
  }

  /** Replace the services with a new set, as a diff (existing connections continue). */
  setServices(services: ServiceInitPair[]): ReconcileResult {
    const result = reconcileServices(this.services, services);
    this.syncEstimator();
    this.applyMacs();
    this.programFilter();
    return result;
  }

  /**
   * Replace the owned buckets (a new allocation epoch, or none when the
   * quorum is lost), add the handed-over buckets to the draining set, and
   * reprogram the socket filter once for both. Draining buckets are released
   * only by sweepDraining(): their connections are this director's alone, so
   * losing the quorum does not stop them.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT on a bucket out of range.
   */
  setSlice(owned: number[], epoch: number, change: SliceChange = {}): void {
    const slice = this.slice;
    const draining = new Set<number>();
    for (let b = 0; b < slice.buckets; b++) if (slice.draining[b] === 1) draining.add(b);
    for (const b of change.handOver ?? []) draining.add(b);
    for (const b of owned) draining.delete(b);
    this.ownedList = owned.slice();
    if (change.leaseUntil !== undefined) this.leaseUntil = change.leaseUntil;
    this.leaseExpired = !(this.leaseClock.now() < this.leaseUntil);
    slice.setOwned(this.leaseExpired ? [] : owned, epoch);
    const newlyHanded = (change.handOver ?? []).filter((b) => slice.draining[b] !== 1 && draining.has(b));
    slice.setDraining(draining);
    this.nextSweep = this.clock.now() + DRAIN_SWEEP_MS;
    this.programFilter();
    this.syncHandedOver(newlyHanded);
  }

  /**
   * Set the lease: from `until` (lease clock, ms) on, the owned buckets are
   * not forwarded until a later lease arrives (fate sharing with a stalled
   * coordinator, docs/coordinator.md). Infinity: no limit.
   */
  setLease(until: number): void {
    this.leaseUntil = until;
    const valid = this.leaseClock.now() < until;
    if (valid && this.leaseExpired) {
      this.leaseExpired = false;
      this.slice.setOwned(this.ownedList, this.slice.epoch);
      this.programFilter();
    } else if (!valid && !this.leaseExpired) {
      this.expireLease();
    }
  }

  /**
   * Record neighbour MACs (from the resolver) and apply them to real servers
   * and the gateways. An entry with an empty mac forgets the address.
   */
  setNeighbours(entries: NeighbourEntry[], gateway4?: string, gateway6?: string): void {
    for (const e of entries) {
      let key: string;
      try {
        key = IpAddress.parse(e.address).text;
      } catch {
        continue;
      }
      const mac = parseMacText(e.mac);
      if (mac) this.macs.set(key, mac);
      else this.macs.delete(key);
    }
    const nt = this.engine.neighbours;
    nt.gateway = gateway4 !== undefined ? (this.macs.get(IpAddress.parse(gateway4).text) ?? null) : nt.gateway;
    nt.gateway6 = gateway6 !== undefined ? (this.macs.get(IpAddress.parse(gateway6).text) ?? null) : nt.gateway6;
    this.applyMacs();
  }

  /** Addresses of every real server (and fallback) of every service. */
  realServerAddresses(): string[] {
    const out = new Set<string>();
    this.forEachRealServer((rs) => out.add(rs.addr.text));
    return [...out];
  }

  /** Every real server of every service, fallback (sorry) servers included. */
  private forEachRealServer(fn: (rs: RealServer) => void): void {
    for (const svc of this.services.services) {
      for (const rs of svc.realServers) fn(rs);
      if (svc.fallback) fn(svc.fallback);
    }
  }

  private applyMacs(): void {
    this.forEachRealServer((rs) => {
      const mac = this.macs.get(rs.addr.text);
      if (mac) rs.mac.set(mac);
      rs.macKnown = mac !== undefined;
    });
  }

  private syncEstimator(): void {
    const want = new Set<Stats>();
    for (const svc of this.services.services) want.add(svc.stats);
    this.forEachRealServer((rs) => want.add(rs.stats));
    for (const s of want) if (!this.estimator.has(s)) this.estimator.add(s);
    this.estimatorMembers.forEach((s) => {
      if (!want.has(s)) this.estimator.remove(s);
    });
    this.estimatorMembers = want;
  }
  private estimatorMembers = new Set<Stats>();

  private programFilter(): void {
    if (!this.useFilter) return;
    const natRealServers: Array<{ family: 4 | 6; addr: Uint32Array; port: number }> = [];
    this.forEachRealServer((rs) => {
      if (rs.fwd === Fwd.NAT) natRealServers.push({ family: rs.addr.family, addr: rs.addr.words, port: rs.port });
    });
    try {
      const prog = compileSliceFilter({ buckets: this.slice.buckets, sense: this.slice.sense, owned: this.slice.admittedRanges(), natRealServers });
      this.port.setFilter(prog);
      this.filterInsns = prog.length / 8;
      this.filterError = '';
    } catch (e) {
      // Too many ranges for a classic BPF program: user space still enforces the slice.
      this.port.setFilter(null);
      this.filterInsns = 0;
      this.filterError = (e as Error).message;
    }
  }

  /** `ipvsadm -L -n` text. */
  listServices(opts: { stats?: boolean; rate?: boolean; exact?: boolean }): string {
    return formatServiceList(this.services.services, { ...opts, tableSize: this.engine.table.capacity });
  }

  /** `ipvsadm -L -n -c` text, at most `limit` entries (0 = all). */
  listConnections(limit: number): string {
    const t = this.engine.table;
    const rows: ConnListRow[] = [];
    const c = new Uint32Array(4);
    const v = new Uint32Array(4);
    t.forEach((idx) => {
      if (limit > 0 && rows.length >= limit) return;
      const rs = t.realServer(idx);
      const family = t.family(idx);
      t.copyClientAddr(idx, c);
      t.copyVirtualAddr(idx, v);
      rows.push({
        protocol: t.protocol(idx),
        family,
        caddr: formatAddr(family, c, 0),
        cport: t.clientPort(idx),
        vaddr: formatAddr(family, v, 0),
        vport: t.virtualPort(idx),
        daddr: rs ? rs.addr.text : '?',
        dport: t.realPort(idx),
        stateName: t.stateName(idx),
        expiresMs: t.remainingMs(idx),
      });
    });
    return formatConnectionList(rows);
  }

  status(): DataplaneStatus {
    const e = this.engine;
    const counters: Record<string, number> = { ...(e.counters as unknown as Record<string, number>) };
    counters.syncEventsDiscarded = this.syncEventsDiscarded;
    counters.syncEventsSent = this.syncEventsSent;
    counters.syncBatchesSent = this.syncBatchesSent;
    counters.syncSubscribed = this.syncSink !== null ? 1 : 0;
    counters.drainReleasedBySync = this.drainReleasedBySync;
    counters.injectCreated = this.injected.created;
    counters.injectUpdated = this.injected.updated;
    counters.injectRemoved = this.injected.removed;
    counters.injectNotFound = this.injected.notFound;
    counters.injectRejected = this.injected.rejected;
    counters.leaseExpiries = this.leaseExpiries;
    const drops: Record<string, number> = {};
    DROP_REASON_NAMES.forEach((name, i) => {
      if (e.drops[i]! > 0) drops[name] = e.drops[i]!;
    });
    const drainingRanges = this.slice.drainingRanges();
    const unresolved: string[] = [];
    for (const svc of this.services.services) for (const rs of svc.realServers) if (!rs.macKnown) unresolved.push(rs.addr.text);
    return {
      epoch: this.slice.epoch,
      owned: this.slice.ownedBuckets(),
      ranges: this.slice.ownedRanges(),
      draining: drainingRanges.reduce((n, [a, b]) => n + b - a + 1, 0),
      drainingRanges,
      drainingConnections: this.slice.drainingBuckets() > 0 ? this.drainingConnections : 0,
      leaseExpired: this.leaseExpired && this.ownedList.length > 0,
      connections: e.table.size,
      tableCapacity: e.table.capacity,
      counters,
      drops,
      port: { ...(this.port.stats() as unknown as Record<string, number>) },
      filterInsns: this.filterInsns,
      unresolved,
    };
  }
}
