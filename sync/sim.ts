/**
 * The deterministic simulation of saru-syncd (TigerBeetle's VOPR is the
 * model): N SyncNodes (sync/node.ts) in one process on one ManualClock, each
 * with the real codec (real bytes, real HMAC), a fake director table
 * (FakeLocal) and timers from one event queue, over a simulated network
 * that loses, duplicates and delays (so reorders) every datagram
 * independently, with partitions and crashes. Everything random comes from
 * one seeded PRNG, so a seed replays a run exactly.
 *
 * Owns the fault model, the workload (random entries, updates and removals,
 * each connection owned by one node incarnation) and the convergence check.
 * It drives only SyncNode's public API, as the daemon does, and never reads
 * real time or Math.random. Used by test/sync/sim.spec.ts and reusable by a
 * benchmark (SyncSim.stats()).
 */
import { ConnSnapshot, Fwd, ManualClock, SYNC_RECORD, SYNC_RECORD_FLAG, syncRecordView, writeSyncRecord } from '../core/index.js';
import { Prng, TimelineHeap } from '../saru/index.js';
import { SyncCodec } from './codec.js';
import { SyncNode, syncRecordKey, type SyncNodeInit, type SyncStatus } from './node.js';
import type { PeerAddress, RecordBatch, SyncLocal, SyncTimers, SyncTransport } from './types.js';

const R = SYNC_RECORD;

// The PRNG is saru/coord/sim.ts's Prng: one seed replays a run.

// --- events ------------------------------------------------------------------------

/** A scheduled event; `cancelled` ones are skipped. */
export interface SimEvent {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** A min-heap of events by (at, order): timers and deliveries in one timeline. */
export class EventQueue {
  private readonly heap = new TimelineHeap<SimEvent>();
  private order = 0;

  get size(): number {
    return this.heap.size;
  }

  schedule(at: number, fn: () => void): SimEvent {
    const ev: SimEvent = { at, order: this.order++, fn, cancelled: false };
    this.heap.push(ev);
    return ev;
  }

  peek(): SimEvent | undefined {
    return this.heap.peek();
  }

  pop(): SimEvent | undefined {
    return this.heap.pop();
  }
}

/** SyncTimers over the event queue; remembers its timers so a crash can drop them. */
export class SimTimers implements SyncTimers {
  private readonly live = new Set<SimEvent>();
  constructor(
    readonly clock: ManualClock,
    private readonly queue: EventQueue,
  ) {}

  setTimeout(fn: () => void, ms: number): unknown {
    const ev = this.queue.schedule(this.clock.now() + Math.max(0, ms), () => {
      this.live.delete(ev);
      fn();
    });
    this.live.add(ev);
    return ev;
  }

  clearTimeout(handle: unknown): void {
    const ev = handle as SimEvent;
    ev.cancelled = true;
    this.live.delete(ev);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.live.size;
  }

  cancelAll(): void {
    for (const ev of this.live) ev.cancelled = true;
    this.live.clear();
  }
}

// --- the fake director table --------------------------------------------------------

/**
 * The director's connection table as SyncLocal sees it: records by
 * connection identity (syncRecordKey). inject() stores entries flagged
 * synced and deletes on a remove (timeout 0); dump() pages over slots that
 * keep their position while the table changes (like a hash table's), so an
 * entry present during the whole dump is never skipped. dump() resolves
 * after `dumpDelayMs` of simulated time.
 */
export class FakeLocal implements SyncLocal {
  /** Connection identity -> slot; record of slot i at arena[i * 72]. */
  private readonly map = new Map<string, number>();
  private slots: Array<string | null> = [];
  private arena = new Uint8Array(1024 * R.SIZE);
  readonly readyCalls: Array<{ at: number; synced: boolean }> = [];
  injectedBatches = 0;
  injectedRecords = 0;
  dumps = 0;
  /** The last acked() count: records every live peer holds (of the node's current incarnation). */
  ackedRecords = 0;

  constructor(
    private readonly clock: ManualClock,
    private readonly queue: EventQueue,
    private readonly dumpDelayMs: number,
    /** Called when a dump promise resolved (the simulation then lets microtasks run). */
    private readonly onResolve: () => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  acked(records: number): void {
    this.ackedRecords = records;
  }

  inject(batch: RecordBatch): void {
    this.injectedBatches++;
    this.injectedRecords += batch.count;
    this.apply(batch, true);
  }

  /** The director's own connections (what it submits to sync). */
  applyOwn(batch: RecordBatch): void {
    this.apply(batch, false);
  }

  private apply(batch: RecordBatch, synced: boolean): void {
    const b = batch.bytes;
    const v = syncRecordView(b);
    for (let i = 0; i < batch.count; i++) {
      const o = i * R.SIZE;
      const k = syncRecordKey(b, i);
      const remove = (b[o + R.FLAGS]! & SYNC_RECORD_FLAG.REMOVE) !== 0 || v.getUint32(o + R.TIMEOUT_MS, true) === 0;
      let slot = this.map.get(k);
      if (remove) {
        if (slot !== undefined) {
          this.slots[slot] = null;
          this.map.delete(k);
        }
        continue;
      }
      if (slot === undefined) {
        slot = this.slots.length;
        this.slots.push(k);
        this.map.set(k, slot);
        if ((slot + 1) * R.SIZE > this.arena.length) {
          const grown = new Uint8Array(this.arena.length * 2);
          grown.set(this.arena);
          this.arena = grown;
        }
      }
      const at = slot * R.SIZE;
      this.arena.set(b.subarray(o, o + R.SIZE), at);
      const f = this.arena[at + R.FLAGS]!;
      this.arena[at + R.FLAGS] = synced ? f | SYNC_RECORD_FLAG.SYNCED : f & ~SYNC_RECORD_FLAG.SYNCED;
    }
  }

  dump(cursor: number, max: number): Promise<{ batch: RecordBatch; next: number }> {
    this.dumps++;
    return new Promise((resolve) => {
      this.queue.schedule(this.clock.now() + this.dumpDelayMs, () => {
        const picked: number[] = [];
        let i = Math.max(0, cursor);
        while (i < this.slots.length && picked.length < max) {
          if (this.slots[i] !== null) picked.push(i);
          i++;
        }
        while (i < this.slots.length && this.slots[i] === null) i++;
        const bytes = new Uint8Array(picked.length * R.SIZE);
        picked.forEach((s, j) => bytes.set(this.arena.subarray(s * R.SIZE, (s + 1) * R.SIZE), j * R.SIZE));
        resolve({ batch: { bytes, count: picked.length }, next: i >= this.slots.length ? -1 : i });
        this.onResolve();
      });
    });
  }

  ready(synced: boolean): void {
    this.readyCalls.push({ at: this.clock.now(), synced });
  }

  /** Every entry as canonicalHex (synced flag cleared), by identity. */
  snapshot(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [k, slot] of this.map) out.set(k, canonicalHex(this.arena, slot));
    return out;
  }

  /** The director restarted: its table is gone. */
  clear(): void {
    this.map.clear();
    this.slots = [];
  }
}

/** Hex of record `i` with the synced flag and the packet counter cleared (what sync carries). */
export function canonicalHex(bytes: Uint8Array, i: number): string {
  const o = i * R.SIZE;
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset + o, R.SIZE).toString('hex');
  const flags = (bytes[o + R.FLAGS]! & ~SYNC_RECORD_FLAG.SYNCED).toString(16).padStart(2, '0');
  return hex.slice(0, 2 * R.FLAGS) + flags + hex.slice(2 * R.FLAGS + 2, 2 * R.PACKETS) + '00000000' + hex.slice(2 * R.PACKETS + 8);
}

// --- workload records --------------------------------------------------------------

const scratch = new ConnSnapshot();

/**
 * Write connection `k` of (owner, generation) at `version` as record `i`
 * of `view`: TCP, IPv4, client 10.owner.k/256.k%256 port 1000+generation,
 * virtual 192.0.2.1:80, one of 3 real servers. Timeouts are multiples of
 * 100 ms so the wire's 100 ms units carry them exactly. A removal has the
 * remove flag and timeout 0.
 */
export function writeWorkloadRecord(view: DataView, i: number, owner: number, generation: number, k: number, version: number, remove: boolean): void {
  const s = scratch;
  s.reset();
  s.family = 4;
  s.dfamily = 4;
  s.protocol = 6;
  s.fwd = Fwd.DR;
  s.state = 1 + (version % 10);
  s.cport = 1000 + (generation % 60000);
  s.vport = 80;
  s.dport = 80;
  s.caddr.set([0, 0, 0xffff, ((10 << 24) | (owner << 16) | (k & 0xffff)) >>> 0]);
  s.vaddr.set([0, 0, 0xffff, 0xc0000201]);
  s.daddr.set([0, 0, 0xffff, (0xc6120000 | (1 + (k % 3))) >>> 0]);
  s.timeoutMs = remove ? 0 : 100 * (1 + ((version * 7919 + k) % 9000));
  s.remove = remove;
  writeSyncRecord(view, i, s);
}

// --- the simulation ------------------------------------------------------------------

export interface SimNetParams {
  /** Probability that one datagram (one copy to one receiver) is lost. */
  loss: number;
  /** Probability that a delivered datagram is delivered twice. */
  dup: number;
  delayMinMs: number;
  /** Each copy is delayed uniformly in [delayMinMs, delayMaxMs]: later ones overtake (reordering). */
  delayMaxMs: number;
}

export interface SyncSimInit {
  seed: number;
  /** Nodes 1..nodes (2..5). */
  nodes: number;
  net?: Partial<SimNetParams>;
  /** Settings of every SyncNode (nodeId and incarnation are the simulation's). */
  node?: Partial<Omit<SyncNodeInit, 'nodeId' | 'incarnation'>>;
  /** Simulated latency of one dump page, ms (default 1). */
  dumpDelayMs?: number;
  maxDatagramBytes?: number;
  /** Keep the last this many delivered datagrams (for replay attacks), default 0. */
  capture?: number;
  /** Record node logs (info and warn) in `trace`. */
  trace?: boolean;
}

/** The key every simulated node shares. */
export const SIM_KEY = new Uint8Array(32).map((_, i) => (i * 29 + 7) & 0xff);

interface SimMember {
  id: number;
  address: PeerAddress;
  local: FakeLocal;
  node: SyncNode | null;
  timers: SimTimers | null;
  codec: SyncCodec | null;
  up: boolean;
  generation: number;
  incarnation: number;
  /** Keys of its current generation still present, and their versions. */
  liveKeys: number[];
  versions: Map<number, number>;
  nextKey: number;
}

interface Truth {
  owner: number;
  generation: number;
  /** Latest version's canonical hex; null: removed. */
  latest: string | null;
  versions: Set<string>;
  removedEver: boolean;
}

export interface SimCheckOptions {
  /** Entries whose owner removed them may linger (a removal lost in an unrecoverable gap; they expire by timeout). */
  staleRemovalsOk?: boolean;
  /** Check connections of crashed incarnations exactly too (only valid when they were fully delivered before the crash). */
  strictDead?: boolean;
}

/** Counters of one run, summed over the nodes. */
export interface SimStats {
  delivered: number;
  lost: number;
  duplicated: number;
  blocked: number;
  submitted: number;
  injected: number;
}

/** A simulated sync cluster; see the module comment. */
export class SyncSim {
  readonly clock = new ManualClock(0);
  readonly queue = new EventQueue();
  readonly rng: Prng;
  readonly members = new Map<number, SimMember>();
  readonly trace: string[] = [];
  readonly captured: Array<{ to: number; from: PeerAddress; bytes: Uint8Array }> = [];
  net: SimNetParams;
  private readonly blocked = new Set<string>();
  private readonly truth = new Map<string, Truth>();
  private readonly init: SyncSimInit;
  private drain = false;
  private readonly counters: SimStats = { delivered: 0, lost: 0, duplicated: 0, blocked: 0, submitted: 0, injected: 0 };

  constructor(init: SyncSimInit) {
    this.init = init;
    this.rng = new Prng(init.seed);
    this.net = { loss: 0, dup: 0, delayMinMs: 0, delayMaxMs: 2, ...init.net };
    for (let id = 1; id <= init.nodes; id++) {
      this.members.set(id, {
        id,
        address: { address: `10.0.0.${id}`, port: 8848 },
        local: new FakeLocal(this.clock, this.queue, init.dumpDelayMs ?? 1, () => (this.drain = true)),
        node: null,
        timers: null,
        codec: null,
        up: false,
        generation: 0,
        incarnation: 0,
        liveKeys: [],
        versions: new Map(),
        nextKey: 0,
      });
    }
  }

  member(id: number): SimMember {
    const m = this.members.get(id);
    if (m === undefined) throw new RangeError(`no simulated node ${id}`);
    return m;
  }

  /** Start (or restart after crash()) node `id` with a new, higher incarnation. */
  start(id: number): SyncNode {
    const m = this.member(id);
    if (m.up) throw new Error(`node ${id} is already up`);
    m.generation++;
    m.incarnation = 1_000_000 + this.clock.now() * 10 + m.generation;
    m.liveKeys = [];
    m.versions = new Map();
    m.nextKey = 0;
    const timers = new SimTimers(this.clock, this.queue);
    const codec = new SyncCodec({ key: SIM_KEY, maxDatagramBytes: this.init.maxDatagramBytes });
    const transport: SyncTransport = {
      broadcast: (bytes) => {
        if (!m.up || m.node !== node) return;
        for (const other of this.members.values()) if (other.id !== id) this.transmit(m, other.id, bytes);
      },
      sendTo: (bytes, to) => {
        if (!m.up || m.node !== node) return;
        const target = [...this.members.values()].find((x) => x.address.address === to.address && x.address.port === to.port);
        if (target) this.transmit(m, target.id, bytes);
      },
    };
    const log = this.init.trace
      ? {
          info: (o: object, msg: string) => this.trace.push(`${this.clock.now()} ${id} ${msg} ${JSON.stringify(o)}`),
          warn: (o: object, msg: string) => this.trace.push(`${this.clock.now()} ${id} WARN ${msg} ${JSON.stringify(o)}`),
          debug: () => {},
        }
      : undefined;
    const node = new SyncNode({ ...this.init.node, nodeId: id, incarnation: m.incarnation }, { codec, transport, local: m.local, timers, log });
    m.node = node;
    m.timers = timers;
    m.codec = codec;
    m.up = true;
    node.start();
    return node;
  }

  /** Start every node that is down. */
  startAll(): void {
    for (const m of this.members.values()) if (!m.up) this.start(m.id);
  }

  /** Crash `id`: syncd and saru die together, the table is gone, timers and in-flight work are dropped. */
  crash(id: number): void {
    const m = this.member(id);
    if (!m.up) return;
    m.up = false;
    m.timers?.cancelAll();
    m.node?.stop(); // its sends are already dropped (m.up is false)
    m.node = null;
    m.timers = null;
    m.local.clear();
    this.trace.push(`${this.clock.now()} ${id} CRASH`);
  }

  /** Block (or unblock) both directions between a and b. */
  partition(a: number, b: number, on: boolean): void {
    for (const k of [`${a}>${b}`, `${b}>${a}`]) {
      if (on) this.blocked.add(k);
      else this.blocked.delete(k);
    }
  }

  /** Remove every partition and set loss and duplication to 0. */
  heal(): void {
    this.blocked.clear();
    this.net = { ...this.net, loss: 0, dup: 0 };
  }

  private transmit(from: SimMember, to: number, bytes: Uint8Array): void {
    if (this.blocked.has(`${from.id}>${to}`)) {
      this.counters.blocked++;
      return;
    }
    if (this.rng.chance(this.net.loss)) {
      this.counters.lost++;
      return;
    }
    const copies = this.rng.chance(this.net.dup) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let c = 0; c < copies; c++) {
      const delay = this.rng.int(this.net.delayMinMs, this.net.delayMaxMs);
      this.queue.schedule(this.clock.now() + delay, () => this.deliver(to, from.address, bytes));
    }
  }

  private deliver(to: number, from: PeerAddress, bytes: Uint8Array): void {
    const m = this.member(to);
    if (!m.up || m.node === null) return;
    this.counters.delivered++;
    if (this.init.capture) {
      this.captured.push({ to, from, bytes });
      if (this.captured.length > this.init.capture) this.captured.shift();
    }
    m.node.receive(bytes, from);
  }

  /** Hand raw bytes to node `to` after `delayMs`, as if sent from `from` (attack traffic). */
  inject(to: number, bytes: Uint8Array, from: PeerAddress, delayMs = 0): void {
    this.queue.schedule(this.clock.now() + delayMs, () => this.deliver(to, from, bytes));
  }

  /**
   * Node `id`'s director creates, updates or removes `n` of its connections
   * (60% new, 30% update, 10% removal of a live one), applies them to its
   * own table, records the truth and submits them to sync.
   */
  submitRandom(id: number, n: number): void {
    const m = this.member(id);
    if (!m.up || m.node === null) return;
    const bytes = new Uint8Array(n * R.SIZE);
    const view = syncRecordView(bytes);
    for (let i = 0; i < n; i++) {
      const r = this.rng.float();
      let k: number;
      let remove = false;
      if (m.liveKeys.length === 0 || r < 0.6 || m.nextKey >= 0xffff) {
        if (m.nextKey >= 0xffff) k = this.rng.pick(m.liveKeys);
        else {
          k = m.nextKey++;
          m.liveKeys.push(k);
        }
      } else {
        const j = this.rng.int(0, m.liveKeys.length - 1);
        k = m.liveKeys[j]!;
        if (r >= 0.9) {
          remove = true;
          m.liveKeys[j] = m.liveKeys[m.liveKeys.length - 1]!;
          m.liveKeys.pop();
        }
      }
      const version = (m.versions.get(k) ?? 0) + 1;
      m.versions.set(k, version);
      writeWorkloadRecord(view, i, id, m.generation, k, version, remove);
      const key = syncRecordKey(bytes, i);
      let t = this.truth.get(key);
      if (t === undefined) {
        t = { owner: id, generation: m.generation, latest: null, versions: new Set(), removedEver: false };
        this.truth.set(key, t);
      }
      if (remove) {
        t.latest = null;
        t.removedEver = true;
      } else {
        t.latest = canonicalHex(bytes, i);
        t.versions.add(t.latest);
      }
    }
    const batch = { bytes, count: n };
    m.local.applyOwn(batch);
    this.counters.submitted += n;
    m.node.submit(batch);
  }

  /** Run the timeline until `t` (ms), letting dump promises resolve in order. */
  async runUntil(t: number): Promise<void> {
    for (;;) {
      const ev = this.queue.peek();
      if (ev === undefined || ev.at > t) break;
      this.queue.pop();
      if (ev.cancelled) continue;
      if (ev.at > this.clock.now()) this.clock.set(ev.at);
      ev.fn();
      if (this.drain) {
        this.drain = false;
        // A dump page resolved: let the node's continuation run before the next event.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (t > this.clock.now()) this.clock.set(t);
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.clock.now() + ms);
  }

  /**
   * Run `ms` of traffic: every 1..`everyMs` ms a random up node submits
   * 1..`maxBatch` records.
   */
  async traffic(ms: number, everyMs: number, maxBatch: number, who?: number[]): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      const ids = (who ?? [...this.members.keys()]).filter((id) => this.member(id).up);
      if (ids.length > 0) this.submitRandom(this.rng.pick(ids), this.rng.int(1, maxBatch));
      await this.runUntil(Math.min(end, this.clock.now() + this.rng.int(1, everyMs)));
    }
  }

  status(id: number): SyncStatus | null {
    return this.member(id).node?.status() ?? null;
  }

  /**
   * Compare every up node's table with the truth. Connections of an owner's
   * current incarnation (and, with strictDead, of crashed ones) must be at
   * their latest version, removed ones absent; connections of crashed
   * incarnations may hold any version their owner sent, or be absent.
   * Returns the problems found (at most 20), [] when converged.
   */
  check(opts: SimCheckOptions = {}): string[] {
    const problems: string[] = [];
    const add = (s: string): void => {
      if (problems.length < 20) problems.push(s);
    };
    for (const m of this.members.values()) {
      if (!m.up) continue;
      const snap = m.local.snapshot();
      let missing = 0;
      let stale = 0;
      let extra = 0;
      for (const [key, t] of this.truth) {
        const v = snap.get(key);
        const owner = this.member(t.owner);
        const current = owner.up && owner.generation === t.generation;
        if (current || opts.strictDead) {
          if (t.latest === null) {
            if (v !== undefined && !opts.staleRemovalsOk) {
              extra++;
              add(`node ${m.id}: connection ${describe(key)} of node ${t.owner} was removed but is present`);
            }
          } else if (v === undefined) {
            missing++;
            add(`node ${m.id}: connection ${describe(key)} of node ${t.owner} missing`);
          } else if (v !== t.latest) {
            stale++;
            add(`node ${m.id}: connection ${describe(key)} of node ${t.owner} stale${t.versions.has(v) ? ' (an older version)' : ' (never sent)'}`);
          }
        } else if (v !== undefined && !t.versions.has(v)) {
          add(`node ${m.id}: connection ${describe(key)} of crashed node ${t.owner} holds a version never sent`);
        }
      }
      for (const key of snap.keys()) {
        if (!this.truth.has(key)) add(`node ${m.id}: connection ${describe(key)} nobody sent`);
      }
      if (missing + stale + extra > 0) add(`node ${m.id}: ${missing} missing, ${stale} stale, ${extra} removed-but-present of ${this.truth.size}`);
    }
    return problems;
  }

  /** Connections (present, latest version) the cluster should hold. */
  get expectedEntries(): number {
    let n = 0;
    for (const t of this.truth.values()) if (t.latest !== null) n++;
    return n;
  }

  stats(): SimStats {
    let injected = 0;
    for (const m of this.members.values()) injected += m.local.injectedRecords;
    return { ...this.counters, injected };
  }
}

function describe(key: string): string {
  // caddr's last word is at key offset 6 + 12.
  const b = (i: number): number => key.charCodeAt(i);
  return `${b(18)}.${b(19)}.${b(20)}.${b(21)}:${b(2) | (b(3) << 8)}`;
}
