/**
 * The demo story in the in-process simulator (no root needed), with the
 * code the daemons run: each director is a Dataplane (core's Engine, slice
 * filter, handover and lease; saru/dataplane.ts) on a MemoryPort, a
 * Coordinator in saru/coord/sim.ts's simulated cluster (heartbeats,
 * election, allocation over a simulated network, virtual time), and a
 * SyncNode (sync/node.ts: real codec and HMAC) over a simulated multicast
 * segment. Clients (sim-clients.ts) send synthetic TCP connections onto a
 * simulated shared segment: every frame reaches every live director, and
 * where the directors forward it decides whether a connection survives.
 * The phases are those of the namespace story, in virtual time: 1 all
 * forward; 2 a director (saru and saru-syncd) crashes, the survivors take
 * over; 3 it restarts, resyncs and rejoins; 4 settle.
 *
 * Reports only what the simulation measured: takeover = from the dead
 * director's last heartbeat as each survivor heard it to that survivor's
 * data plane forwarding its share of the dead director's buckets (virtual
 * ms, 1 ms steps); resync = the restarted SyncNode's bulk resync (virtual
 * ms). Virtual time advances no faster than the wall clock, so the view can
 * be watched. Owns everything it builds; nothing outside the process.
 */
import {
  ManualClock,
  SYNC_RECORD,
  Sense,
  TcpState,
  parseLdirectord,
  parseMac,
  toServiceInits,
  writeTcp4Frame,
  type ServiceInitPair,
} from '../../core/index.js';
import { MemoryPort } from '../../native/index.js';
import { SyncCodec } from '../../sync/codec.js';
import { SyncNode } from '../../sync/node.js';
import { EventQueue, SimTimers } from '../../sync/sim.js';
import type { PeerAddress, RecordBatch, SyncLocal, SyncTransport } from '../../sync/types.js';
import { Prng, Simulation, type Coordinator } from '../coord/index.js';
import { Dataplane } from '../dataplane.js';
import { ADDRESSES } from '../testbed/addresses.js';
import { renderServices } from '../testbed/config.js';
import type { DemoOptions } from './options.js';
import { SimClients } from './sim-clients.js';
import { phaseTimes } from './story.js';
import { chooseVictim, initialState, rate, splitConnections, type DemoState } from './state.js';
import type { DemoSummary, PhaseResult } from './summary.js';

const BUCKETS = 1024;
const KEEPALIVE_MS = 100;
const DEADTIME_MS = 300;
/** saru.conf's join_delay: a starting director waits this long at most for its resync. */
const JOIN_DELAY_MS = 30_000;
/** Virtual ms per simulation step. */
const STEP_MS = 1;
/** View refresh, virtual ms. */
const VIEW_MS = 500;
const SETTLE_MS = 20_000;
const TAKEOVER_MS = 10_000;
const REJOIN_MS = 30_000;
/** The sync key every simulated director shares. */
const SYNC_KEY = new Uint8Array(32).map((_, i) => (i * 53 + 3) & 0xff);
const SYNC_PORT = 7085;
/** At the end, a connection whose packet has gone unforwarded this long is lost (as the namespace client's --stalled-ms). */
const STALLED_MS = 2000;

export interface SimStoryDeps {
  /** Wall clock, ms (for pacing only). */
  now(): number;
  show(s: DemoState): void;
  /** True once the user interrupted (Ctrl-C). */
  interrupted(): boolean;
}

function ip4(text: string): number {
  return text.split('.').reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** One simulated director: data plane, sync node, and what it last applied. */
interface SimDirector {
  id: number;
  up: boolean;
  dp: Dataplane | null;
  port: MemoryPort | null;
  node: SyncNode | null;
  timers: SimTimers | null;
  /** The coordinator instance the data plane follows (a restart makes a new one). */
  coord: Coordinator | null;
  appliedEpoch: number;
  appliedCount: number;
  assigned: number[];
  assignedEpoch: number;
  lease: number;
  /** saru-syncd reported its table synced (SyncReady). */
  synced: boolean;
  syncedGiven: Coordinator | null;
  /** Samples for rates: virtual ms, txFrames, sync datagrams. */
  sampleAt: number;
  sampleTx: number;
  sampleDg: number;
  /** Resync reported by its sync node after a restart. */
  resync: { ms: number; entries: number; source: number } | null;
  generation: number;
}

class SimStory {
  readonly state: DemoState;
  private readonly sim: Simulation;
  private readonly clock: ManualClock;
  private readonly queue = new EventQueue();
  private readonly rng: Prng;
  private readonly directors: SimDirector[];
  private readonly clients: SimClients;
  private readonly services: ServiceInitPair[];
  private readonly rsByMac = new Map<string, number>();
  private readonly rsByIp = new Map<number, number>();
  private readonly vip = ip4(ADDRESSES.vip4);
  private readonly client = ip4(ADDRESSES.client4);
  private readonly sharedMac = parseMac(ADDRESSES.sharedMac);
  private readonly frame = new Uint8Array(2048);
  private readonly replies: Uint8Array[] = [];
  private wallStart = 0;
  private nextView = 0;
  private lastMaster = 0;
  // the failover under way
  private victim = 0;
  private victimBuckets: Uint8Array = new Uint8Array(BUCKETS);
  private crashAt = -1;
  private lastHeard = new Map<number, number>();
  private firstForward = new Map<number, { at: number; by: number }>();
  private downSeen = new Set<number>();
  private takeovers = new Map<number, number>();
  private restartAt = -1;
  private rejoinMs = NaN;

  constructor(private readonly opts: DemoOptions, private readonly why: string, private readonly deps: SimStoryDeps) {
    this.rng = new Prng(opts.seed ^ 0x6d656d6f);
    const ids = Array.from({ length: opts.directors }, (_, k) => k + 1);
    this.sim = new Simulation({
      seed: opts.seed,
      ids,
      buckets: BUCKETS,
      keepaliveMs: KEEPALIVE_MS,
      deadtimeMs: DEADTIME_MS,
      joinDelayMs: JOIN_DELAY_MS,
      stepMs: STEP_MS,
      network: { loss: 0, dup: 0, delayMinMs: 0, delayMaxMs: 1 },
      syncDelayMs: null,
    });
    this.clock = this.sim.clock;
    const text = renderServices({ realServers: opts.realServers, fwd: opts.forwarding, scheduler: opts.scheduler, weights: new Array<number>(opts.realServers).fill(1), ipv6: false, udp: false, port: 80 });
    this.services = toServiceInits(parseLdirectord(text, 'demo-services.cf'));
    for (let j = 1; j <= opts.realServers; j++) {
      const r = ADDRESSES.real(j);
      this.rsByMac.set(r.mac.toLowerCase(), j);
      this.rsByIp.set(ip4(r.ip4), j);
    }
    this.directors = ids.map((id) => ({
      id, up: false, dp: null, port: null, node: null, timers: null, coord: null, appliedEpoch: 0, appliedCount: -1, assigned: [], assignedEpoch: 0, lease: -1,
      synced: false, syncedGiven: null, sampleAt: 0, sampleTx: 0, sampleDg: 0, resync: null, generation: 0,
    }));
    this.clients = new SimClients(
      { connections: opts.connections, clientAddr: this.client, clientMac: parseMac(ADDRESSES.clientMac), vip: this.vip, sharedMac: this.sharedMac },
      this.rng,
    );
    const title =
      `simulated (${why}): ${opts.directors} directors, ${opts.realServers} real servers in one process; ${opts.forwarding}, ${opts.scheduler}; ` +
      `the daemons' engine, coordinator and sync code on a simulated segment, in virtual time`;
    this.state = initialState(title, opts.directors, opts.durationS * 1000, opts.connections);
    for (const d of this.directors) this.startDirector(d);
  }

  // ---- directors -----------------------------------------------------------------------

  private startDirector(d: SimDirector): void {
    d.generation++;
    const port = new MemoryPort({ ifname: `d${d.id}-eth0`, mac: ADDRESSES.sharedMac, mtu: 1500 });
    const dp = new Dataplane(
      { buckets: BUCKETS, sense: Sense.SRC_PORT, owned: [], epoch: 0, services: this.services, connTableSize: 1 << 16, midFlow: 'drop', batchSize: 64 },
      { port, clock: this.clock },
    );
    const neighbours = Array.from({ length: this.opts.realServers }, (_, k) => ({ address: ADDRESSES.real(k + 1).ip4, mac: ADDRESSES.real(k + 1).mac }));
    neighbours.push({ address: ADDRESSES.client4, mac: ADDRESSES.clientMac });
    dp.setNeighbours(neighbours, ADDRESSES.client4);
    const timers = new SimTimers(this.clock, this.queue);
    const address: PeerAddress = { address: ADDRESSES.director(d.id).cluster4, port: SYNC_PORT };
    const transport: SyncTransport = {
      broadcast: (bytes) => {
        for (const o of this.directors) if (o !== d) this.transmit(d, o, bytes, address);
      },
      sendTo: (bytes, to) => {
        const o = this.directors.find((x) => ADDRESSES.director(x.id).cluster4 === to.address);
        if (o) this.transmit(d, o, bytes, address);
      },
    };
    const local: SyncLocal = {
      inject: (batch: RecordBatch) => {
        dp.injectRecords(batch.bytes.subarray(0, batch.count * SYNC_RECORD.SIZE), batch.count);
      },
      dump: (cursor, max) => {
        const p = dp.dumpRecords(cursor, max);
        return Promise.resolve({ batch: { bytes: p.bytes, count: p.count }, next: p.next });
      },
      ready: (synced) => {
        if (d.dp === dp) d.synced = synced;
      },
      acked: (records) => {
        dp.syncAcked(records);
      },
    };
    const gen = d.generation;
    const log = {
      info: (o: object, m: string): void => {
        const f = o as Record<string, unknown>;
        if (m === 'sync resync finished' && d.generation === gen && gen > 1) {
          d.resync = { ms: Number(f.ms), entries: Number(f.entries), source: Number(f.source) };
          this.event(`d${d.id} resync done in ${Math.round(d.resync.ms)} ms (${d.resync.entries} entries from d${d.resync.source})`);
        }
      },
      warn: (): void => {},
      debug: (): void => {},
    };
    const node = new SyncNode({ nodeId: d.id, incarnation: 1_000_000 + this.clock.now() * 10 + d.generation }, { codec: new SyncCodec({ key: SYNC_KEY }), transport, local, timers, log });
    dp.setSyncSink(
      (bytes, count, epoch) => {
        if (d.node !== node) return;
        node.setEpoch(epoch);
        node.submit({ bytes, count });
      },
      3,
      50,
    );
    Object.assign(d, { up: true, dp, port, node, timers, coord: null, appliedEpoch: 0, appliedCount: -1, assigned: [], assignedEpoch: 0, lease: -1, synced: false, syncedGiven: null, sampleAt: this.clock.now(), sampleTx: 0, sampleDg: 0 });
    node.start();
  }

  private crashDirector(d: SimDirector): void {
    d.up = false;
    d.timers?.cancelAll();
    d.node?.stop();
    d.node = null;
    d.timers = null;
    d.dp = null;
    d.port = null;
    d.coord = null;
    this.sim.crash(d.id);
  }

  private transmit(from: SimDirector, to: SimDirector, bytes: Uint8Array, fromAddr: PeerAddress): void {
    if (!from.up) return;
    const node = to.node;
    this.queue.schedule(this.clock.now() + this.rng.int(0, 1), () => {
      if (to.up && to.node === node && node !== null) node.receive(bytes, fromAddr);
    });
  }

  /** Give each data plane what its coordinator says to forward now (as saru/cluster.ts does on onApply and lease changes). */
  private applyOwnership(): void {
    for (const d of this.directors) {
      if (!d.up || d.dp === null) continue;
      const c = this.sim.node(d.id);
      if (c === null) continue;
      if (c !== d.coord) {
        d.coord = c;
        d.appliedEpoch = -1;
      }
      if (d.synced && d.syncedGiven !== c) {
        c.setSynced(true);
        d.syncedGiven = c;
      }
      const epoch = c.committedEpoch();
      const until = c.leaseUntil();
      if (epoch !== d.appliedEpoch || (this.clock.now() % 50 === 0 && c.owned().buckets.length !== d.appliedCount)) {
        const owned = c.owned();
        let handOver: number[] = [];
        if (owned.epoch > d.assignedEpoch) {
          const now = new Set(owned.buckets);
          handOver = d.assigned.filter((b) => !now.has(b));
          d.assigned = owned.buckets;
          d.assignedEpoch = owned.epoch;
        } else if (owned.buckets.length > 0) {
          d.assigned = owned.buckets;
        }
        d.dp.setSlice(owned.buckets, owned.epoch, { handOver, leaseUntil: owned.until });
        d.appliedEpoch = epoch;
        d.appliedCount = owned.buckets.length;
        d.lease = owned.until;
        c.applied(owned.epoch);
      } else if (until !== d.lease) {
        d.dp.setLease(until);
        d.lease = until;
      }
    }
  }

  // ---- traffic ---------------------------------------------------------------------------

  private deliverFrames(): void {
    const now = this.clock.now();
    const live = this.directors.filter((d) => d.up && d.port !== null);
    const emit = (frame: Uint8Array, len: number): void => {
      for (const d of live) d.port!.inject(frame.subarray(0, len));
    };
    for (const r of this.replies.splice(0)) emit(r, r.length);
    this.clients.send(now, this.frame, emit);
    for (const d of live) {
      const port = d.port!;
      do d.dp!.runOnce(0);
      while (port.pending > 0);
      for (const f of port.sent) this.forwarded(d, f, now);
      port.sent.length = 0;
    }
  }

  /** A frame director `d` transmitted: which real server it reaches, for which client port. */
  private forwarded(d: SimDirector, f: Uint8Array, now: number): void {
    if (f.length < 54 || f[12] !== 0x08 || f[13] !== 0x00) return;
    const ihl = (f[14]! & 0x0f) * 4;
    const proto = f[23];
    const dst = ((f[30]! << 24) | (f[31]! << 16) | (f[32]! << 8) | f[33]!) >>> 0;
    let rs = 0;
    let tcp = 14 + ihl;
    if (proto === 4) {
      // ipip: the outer destination is the real server; the inner header follows
      rs = this.rsByIp.get(dst) ?? 0;
      tcp += (f[tcp]! & 0x0f) * 4;
    } else if (proto === 6) {
      const mac = Array.from(f.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
      rs = this.opts.forwarding === 'masq' ? (this.rsByIp.get(dst) ?? 0) : (this.rsByMac.get(mac) ?? 0);
    }
    if (rs === 0) return; // NAT replies towards the client, or something that reaches no real server
    const sport = (f[tcp]! << 8) | f[tcp + 1]!;
    const flags = f[tcp + 13]!;
    this.clients.forwarded(sport, rs, d.id, now);
    if (this.opts.forwarding === 'masq') this.reply(rs, sport, flags);
  }

  /** NAT: the real server answers through the directors (its default route), so they see both directions. */
  private reply(rs: number, sport: number, flags: number): void {
    const out = new Uint8Array(64);
    const r = ADDRESSES.real(rs);
    const f = flags & 0x02 ? 0x12 : flags & 0x01 ? 0x11 : 0x10; // SYN -> SYN|ACK, FIN -> FIN|ACK, else ACK
    const len = writeTcp4Frame(out, 0, { dstMac: this.sharedMac, srcMac: parseMac(r.mac), saddr: ip4(r.ip4), daddr: this.client, sport: 80, dport: sport, flags: f });
    this.replies.push(out.subarray(0, len));
  }

  // ---- one step and the view -----------------------------------------------------------------

  private step(): void {
    this.sim.step();
    const now = this.clock.now();
    for (let ev = this.queue.peek(); ev !== undefined && ev.at <= now; ev = this.queue.peek()) {
      this.queue.pop();
      if (!ev.cancelled) ev.fn();
    }
    this.applyOwnership();
    this.deliverFrames();
    this.watchFailover();
  }

  /** Run steps until virtual `until` or `done()`; paced so that virtual time never runs ahead of the wall clock. */
  private async runUntil(until: number, done?: () => boolean): Promise<boolean> {
    while (!this.deps.interrupted()) {
      const ahead = this.clock.now() - (this.deps.now() - this.wallStart);
      if (ahead > 0) await sleep(Math.min(ahead, 50));
      const batchEnd = Math.min(until, this.clock.now() + 20);
      while (this.clock.now() < batchEnd) {
        this.step();
        if (this.clock.now() >= this.nextView) this.refresh();
        if (done?.()) {
          this.refresh();
          return true;
        }
      }
      // let dump promises (resync) and their continuations run
      await new Promise<void>((r) => setImmediate(r));
      if (this.clock.now() >= until) return false;
    }
    return false;
  }

  private setPhase(text: string): void {
    this.state.phase = text;
    this.state.phaseAtMs = this.clock.now();
  }

  private event(text: string): void {
    this.state.events.push({ atMs: this.clock.now(), text });
  }

  private refresh(): void {
    const now = this.clock.now();
    this.nextView = now + VIEW_MS;
    let master = 0;
    let epoch = 0;
    for (const d of this.directors) {
      const row = this.state.directors[d.id - 1]!;
      if (!d.up || d.dp === null) {
        Object.assign(row, { state: 'down', master: false, buckets: 0, connsOwn: 0, connsSynced: 0, pps: 0, syncDps: 0 });
        continue;
      }
      const c = this.sim.node(d.id);
      const st = c?.status();
      if (st && st.epoch > epoch) {
        epoch = st.epoch;
        master = st.master;
      }
      const sync = d.node?.status();
      const slice = d.dp.slice;
      const owned = slice.ownedBuckets();
      row.state = sync && (!sync.synced || sync.resyncActive) ? 'resyncing' : st && (st.state === 'joining' || !st.ready) ? 'joining' : owned > 0 ? 'up' : 'joining';
      row.buckets = owned;
      const t = d.dp.engine.table;
      const rows: Array<{ cport: number; established: boolean }> = [];
      t.forEach((idx) => {
        if (!t.isTemplate(idx)) rows.push({ cport: t.clientPort(idx), established: t.state(idx) === TcpState.ESTABLISHED });
      });
      const split = splitConnections(rows, slice.owned);
      row.connsOwn = split.own;
      row.connsSynced = split.synced;
      const tx = d.dp.engine.counters.txFrames;
      const dg = sync ? sync.datagramsSent + sync.datagramsReceived : 0;
      row.pps = rate(d.sampleTx, tx, now - d.sampleAt);
      row.syncDps = rate(d.sampleDg, dg, now - d.sampleAt);
      d.sampleAt = now;
      d.sampleTx = tx;
      d.sampleDg = dg;
    }
    this.state.master = master;
    this.state.epoch = epoch;
    for (const r of this.state.directors) r.master = r.state !== 'down' && r.id === master;
    if (master > 0 && master !== this.lastMaster) {
      this.event(this.lastMaster === 0 ? `master d${master} elected (epoch ${epoch})` : `master is now d${master} (epoch ${epoch})`);
      this.lastMaster = master;
    }
    const k = this.clients.counts();
    Object.assign(this.state.traffic, { shortOpened: k.shortOpened, shortCompleted: k.shortCompleted, shortLost: k.shortLost });
    this.state.elapsedMs = now;
    this.deps.show(this.state);
  }

  // ---- failover bookkeeping ----------------------------------------------------------------

  /** After a crash: member-down events, and when each of the victim's buckets is first forwarded by a survivor. */
  private watchFailover(): void {
    if (this.crashAt < 0 || this.restartAt >= 0) return;
    const now = this.clock.now();
    for (const d of this.directors) {
      if (!d.up || d.dp === null || d.id === this.victim) continue;
      if (!this.downSeen.has(d.id)) {
        const m = this.sim.node(d.id)?.status().members.find((x) => x.id === this.victim);
        if (m && !m.alive) {
          this.downSeen.add(d.id);
          this.event(`d${d.id}: d${this.victim} is down (last heard ${Math.round(m.lastHeartbeatAgeMs ?? 0)} ms before)`);
        }
      }
      const owned = d.dp.slice.owned;
      let took = 0;
      for (let b = 0; b < BUCKETS; b++) {
        if (this.victimBuckets[b] === 1 && owned[b] === 1 && !this.firstForward.has(b)) {
          this.firstForward.set(b, { at: now, by: d.id });
          took++;
        }
      }
      if (took > 0 && this.takeoverComplete()) this.recordTakeovers();
    }
  }

  private takeoverComplete(): boolean {
    let n = 0;
    for (let b = 0; b < BUCKETS; b++) if (this.victimBuckets[b] === 1) n++;
    return this.firstForward.size === n;
  }

  private recordTakeovers(): void {
    const by = new Map<number, { at: number; buckets: number }>();
    for (const f of this.firstForward.values()) {
      const x = by.get(f.by) ?? { at: 0, buckets: 0 };
      x.at = Math.max(x.at, f.at);
      x.buckets++;
      by.set(f.by, x);
    }
    for (const [id, x] of [...by].sort((a, b) => a[0] - b[0])) {
      const ms = x.at - (this.lastHeard.get(id) ?? this.crashAt);
      this.takeovers.set(id, ms);
      this.state.events.push({ atMs: x.at, text: `d${id} took ${x.buckets} buckets of d${this.victim}: takeover in ${ms} ms (virtual)` });
    }
    this.state.events.sort((a, b) => a.atMs - b.atMs);
  }

  private converged(): boolean {
    return this.sim.unconverged() === null;
  }

  // ---- the story -----------------------------------------------------------------------------

  async run(): Promise<DemoSummary> {
    this.wallStart = this.deps.now();
    const phases: PhaseResult[] = [];
    const errors: string[] = [];
    const ids = this.directors.map((d) => d.id);
    this.setPhase('phase 1/4: waiting for the directors to share the buckets');
    this.refresh();
    this.event(`${ids.length} simulated directors start (coordinator + saru-syncd + data plane each), ${this.opts.realServers} real servers`);
    if (!(await this.runUntil(SETTLE_MS, () => this.converged()))) {
      if (this.deps.interrupted()) throw new Error('interrupted');
      phases.push({ name: '1 all forward', ok: false, detail: `no settled allocation within ${SETTLE_MS / 1000} s: ${this.sim.unconverged()}` });
      return this.finish(phases, errors);
    }
    this.event(`allocation epoch ${this.state.epoch}: ${this.directors.map((d) => `d${d.id} ${d.dp!.slice.ownedBuckets()}`).join(', ')} buckets`);
    const t0 = this.clock.now();
    const times = phaseTimes(this.opts.durationS * 1000);
    this.state.durationMs = t0 + times.endAt;
    this.clients.start(t0, t0 + times.endAt);
    this.event(`clients start: ${this.opts.connections} long-lived keep-alive connections and a short connection every 62 ms`);
    const txStart = this.directors.map((d) => d.dp!.engine.counters.txFrames);
    this.setPhase('phase 1/4: every director forwards its slice');
    await this.runUntil(t0 + times.killAt);
    if (this.deps.interrupted()) throw new Error('interrupted');
    const forwarded = this.directors.map((d, k) => (d.dp ? d.dp.engine.counters.txFrames - txStart[k]! : 0));
    const idle = ids.filter((_, k) => !(forwarded[k]! > 0));
    phases.push(
      idle.length === 0 && this.converged()
        ? { name: '1 all forward', ok: true, detail: `every director forwarded (${ids.map((i, k) => `d${i} ${forwarded[k]} frames`).join(', ')})` }
        : { name: '1 all forward', ok: false, detail: idle.length ? `d${idle.join(', d')} forwarded nothing` : `not converged: ${this.sim.unconverged()}` },
    );

    // Phase 2: crash the director carrying the most connections.
    this.refresh();
    const row = chooseVictim(this.state.directors);
    const victim = this.directors[row.id - 1]!;
    this.victim = victim.id;
    this.victimBuckets = Uint8Array.from(victim.dp!.slice.owned);
    for (const d of this.directors) {
      if (d === victim) continue;
      const age = this.sim.node(d.id)?.status().members.find((m) => m.id === victim.id)?.lastHeartbeatAgeMs;
      this.lastHeard.set(d.id, this.clock.now() - (typeof age === 'number' ? age : 0));
    }
    this.crashAt = this.clock.now();
    this.crashDirector(victim);
    this.event(`crash of d${victim.id} (saru and saru-syncd, as kill -9): it forwarded ${row.buckets} buckets and ${row.connsOwn} established connections`);
    this.setPhase(`phase 2/4: d${victim.id} crashed; the survivors take its slice and its connections`);
    const tookOver = await this.runUntil(this.clock.now() + TAKEOVER_MS, () => this.takeovers.size > 0 && this.converged());
    if (this.deps.interrupted()) throw new Error('interrupted');
    phases.push(
      tookOver
        ? { name: '2 kill', ok: true, detail: `d${victim.id} crashed; ${[...this.takeovers].map(([i, ms]) => `d${i} took over in ${ms} ms`).join(', ')} (virtual)` }
        : { name: '2 kill', ok: false, detail: `within ${TAKEOVER_MS / 1000} s: ${this.sim.unconverged() ?? 'the survivors did not forward every bucket of the victim'}` },
    );
    if (tookOver) this.event(`the survivors forward d${victim.id}'s buckets (epoch ${this.state.epoch}); its connections continue through them`);
    await this.runUntil(t0 + times.restartAt);
    if (this.deps.interrupted()) throw new Error('interrupted');

    // Phase 3: restart, resync, rejoin.
    this.restartAt = this.clock.now();
    this.startDirector(victim);
    this.sim.restart(victim.id);
    this.event(`d${victim.id} restarted (saru-syncd, then saru): its table is empty; it resyncs from a peer before taking buckets`);
    this.setPhase(`phase 3/4: d${victim.id} restarted: resync, then rejoin`);
    const rejoined = await this.runUntil(this.clock.now() + REJOIN_MS, () => victim.resync !== null && this.converged() && (victim.dp?.slice.ownedBuckets() ?? 0) > 0);
    if (this.deps.interrupted()) throw new Error('interrupted');
    if (rejoined) {
      this.rejoinMs = this.clock.now() - this.restartAt;
      this.event(`d${victim.id} rejoined: epoch ${this.state.epoch}, ${victim.dp!.slice.ownedBuckets()} buckets (${this.rejoinMs} ms after the restart)`);
      phases.push({ name: '3 restart and rejoin', ok: true, detail: `resync ${Math.round(victim.resync!.ms)} ms (${victim.resync!.entries} entries), rejoined ${this.rejoinMs} ms after the restart (virtual)` });
    } else {
      phases.push({ name: '3 restart and rejoin', ok: false, detail: `within ${REJOIN_MS / 1000} s: ${victim.resync === null ? 'no resync finished' : this.sim.unconverged()}` });
    }

    // Phase 4: settle until the end, then let the last short connections finish.
    this.setPhase('phase 4/4: all directors forward again; traffic continues');
    await this.runUntil(t0 + times.endAt);
    if (this.deps.interrupted()) throw new Error('interrupted');
    this.setPhase('stopping the clients');
    await this.runUntil(this.clock.now() + 5000, () => !this.clients.shortsInProgress());
    this.clients.finish(this.clock.now(), STALLED_MS);
    const end = this.sim.unconverged();
    phases.push(end === null ? { name: '4 settle', ok: true, detail: `one allocation (epoch ${this.state.epoch}) over all ${ids.length} directors at the end` } : { name: '4 settle', ok: false, detail: `at the end: ${end}` });
    if (this.sim.violations.length > 0) errors.push(`coordinator invariants violated: ${this.sim.violations.slice(0, 3).join('; ')}`);
    return this.finish(phases, errors);
  }

  private finish(phases: PhaseResult[], errors: string[]): DemoSummary {
    const k = this.clients.counts();
    const lostExamples = this.clients.lostConnections().slice(0, 5).map((c) => `${c.long ? 'long-lived' : 'short'} connection from port ${c.sport}: ${c.why}`);
    const victim = this.victim > 0 ? this.directors[this.victim - 1]! : null;
    const shortLost = k.shortOpened - k.shortCompleted;
    return {
      mode: 'simulated',
      opened: k.longOpened + k.shortOpened,
      completed: k.longOpened - k.longLost + k.shortCompleted,
      lost: k.longLost + shortLost,
      long: { opened: k.longOpened, lost: k.longLost, requests: k.longRequests },
      short: { opened: k.shortOpened, completed: k.shortCompleted, lost: shortLost },
      takeoverMs: [...this.takeovers.values()],
      resyncMs: victim?.resync?.ms ?? NaN,
      resyncEntries: victim?.resync?.entries ?? NaN,
      rejoinMs: this.rejoinMs,
      phases,
      errors,
      lostExamples,
      durationS: this.opts.durationS,
      wallS: (this.deps.now() - this.wallStart) / 1000,
      virtualTime: true,
    };
  }
}

/** Run the story in the simulator; `why` says why it is not in namespaces (shown in the first line). */
export async function runSimStory(opts: DemoOptions, why: string, deps: SimStoryDeps): Promise<DemoSummary> {
  return new SimStory(opts, why, deps).run();
}
