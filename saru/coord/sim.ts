/**
 * The deterministic cluster simulator (TigerBeetle's VOPR is the model): N
 * coordinators in one process on one ManualClock, a simulated two-path
 * network (cluster and data) with loss, random delay (so reordering),
 * duplication and partitions per path, crashes and restarts (a restart is a
 * new Coordinator with a higher incarnation and what the old one persisted),
 * GC-like pauses and graceful leaves, all drawn from one seeded PRNG. Owns
 * the fault model and the invariant checks; it drives only the coordinator's
 * public API, as the daemon does, and never reads real time or Math.random.
 *
 * Checked after every step:
 * - same-epoch safety: no bucket forwarded by two live nodes in one epoch;
 * - epochs: a node's accepted and committed epochs never decrease, across
 *   restarts too (the node's saved state carries them);
 * - double ownership across epochs lasts at most deadtime + slack, where
 *   slack = keepalive + 2 * maximum network delay + 2 steps;
 * - liveness after healing: once faults stop, the network heals and crashed
 *   nodes restart, within joinDelay + 5 * deadtime + 4 * keepalive every
 *   bucket is forwarded by exactly one live node and all agree on the epoch.
 */
import { ManualClock } from '../../core/index.js';
import { Coordinator, type CoordLogger, type PersistedState } from './coordinator.js';

// --- PRNG ----------------------------------------------------------------------

/** sfc32 seeded through splitmix32: small, fast, good enough for fault schedules. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const sm = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)]!;
  }
}

// --- the simulated cluster ------------------------------------------------------

export interface NetworkParams {
  /** Probability that one copy on one path is lost. */
  loss: number;
  /** Probability that a delivered copy is duplicated. */
  dup: number;
  delayMinMs: number;
  delayMaxMs: number;
}

export interface SimulationInit {
  seed: number;
  /** Node ids (default 1..nodes). */
  ids?: number[];
  nodes?: number;
  /** Weights per node (default 1). */
  weights?: number[];
  buckets?: number;
  keepaliveMs?: number;
  deadtimeMs?: number;
  joinDelayMs?: number;
  stepMs?: number;
  network?: Partial<NetworkParams>;
  /** When a node's sync finishes after start: [min, max] ms; null: never (join delay). Default [0, joinDelay]. */
  syncDelayMs?: [number, number] | null;
  /** Record coordinator logs and faults in the trace. */
  trace?: boolean;
  /** Base of the simulated wall clock used for incarnations. */
  wallBaseMs?: number;
}

interface Delivery {
  at: number;
  order: number;
  to: number;
  path: number;
  bytes: Uint8Array;
}

interface SimNode {
  id: number;
  weight: number;
  coord: Coordinator | null;
  incarnation: number;
  disk: PersistedState | null;
  pausedUntil: number;
  buffered: Delivery[];
  syncAt: number;
  leaveStartedAt: number;
  /** Ownership the data plane enforces: set by onApply, bounded by the lease. */
  owned: Uint8Array;
  ownedEpoch: number;
  until: number;
  lastAccepted: number;
  lastCommitted: number;
  maxAcceptedBefore: number;
  maxCommittedBefore: number;
}

/**
 * A min-heap by (at, order): the one timeline of the simulators (this one's
 * deliveries, sync/sim.ts's timers and deliveries). `order` breaks ties in
 * insertion order, so a run is a function of its seed.
 */
export class TimelineHeap<T extends { at: number; order: number }> {
  private readonly xs: T[] = [];
  get size(): number {
    return this.xs.length;
  }
  peek(): T | undefined {
    return this.xs[0];
  }
  push(d: T): void {
    const xs = this.xs;
    xs.push(d);
    let i = xs.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (earlier(xs[p]!, xs[i]!)) break;
      [xs[p], xs[i]] = [xs[i]!, xs[p]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const xs = this.xs;
    const top = xs[0];
    const last = xs.pop();
    if (xs.length > 0 && last !== undefined) {
      xs[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < xs.length && earlier(xs[l]!, xs[m]!)) m = l;
        if (r < xs.length && earlier(xs[r]!, xs[m]!)) m = r;
        if (m === i) break;
        [xs[m], xs[i]] = [xs[i]!, xs[m]!];
        i = m;
      }
    }
    return top;
  }
}
function earlier(a: { at: number; order: number }, b: { at: number; order: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

const SIM_KEY = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);

/** A cluster under test. Scenario tests drive it by hand; runSimulation drives it from a seed. */
export class Simulation {
  readonly clock = new ManualClock(0);
  readonly rng: Prng;
  readonly violations: string[] = [];
  readonly trace: string[] = [];
  readonly ids: number[];
  readonly buckets: number;
  readonly keepaliveMs: number;
  readonly deadtimeMs: number;
  readonly joinDelayMs: number;
  readonly stepMs: number;
  net: NetworkParams;
  /** Longest double-ownership episode seen, ms. */
  maxDoubleMs = 0;
  /** Messages delivered. */
  delivered = 0;

  private readonly nodes = new Map<number, SimNode>();
  private readonly queue = new TimelineHeap<Delivery>();
  private order = 0;
  /** group[path].get(id): nodes talk on a path when their groups are equal. */
  private readonly group: [Map<number, number>, Map<number, number>] = [new Map(), new Map()];
  private readonly doubleSince: Float64Array;
  /** Forwarders per bucket as of the last full check. */
  private readonly count: Uint8Array;
  private dirty = true;
  private readonly activeLast = new Map<number, boolean>();
  private readonly doubleReported: Uint8Array;
  private readonly traceOn: boolean;
  private readonly wallBase: number;
  private readonly syncDelay: [number, number] | null;

  constructor(init: SimulationInit) {
    this.rng = new Prng(init.seed);
    this.ids = init.ids ?? Array.from({ length: init.nodes ?? 3 }, (_, i) => i + 1);
    this.buckets = init.buckets ?? 64;
    this.keepaliveMs = init.keepaliveMs ?? 100;
    this.deadtimeMs = init.deadtimeMs ?? 300;
    this.joinDelayMs = init.joinDelayMs ?? 400;
    this.stepMs = init.stepMs ?? 5;
    this.net = { loss: 0, dup: 0, delayMinMs: 0, delayMaxMs: 2, ...init.network };
    this.maxDelayMs = this.net.delayMaxMs;
    this.traceOn = init.trace === true;
    this.wallBase = init.wallBaseMs ?? 1_700_000_000_000;
    this.syncDelay = init.syncDelayMs === undefined ? [0, this.joinDelayMs] : init.syncDelayMs;
    this.doubleSince = new Float64Array(this.buckets).fill(-1);
    this.count = new Uint8Array(this.buckets);
    this.doubleReported = new Uint8Array(this.buckets);
    this.ids.forEach((id, i) => {
      const n: SimNode = {
        id,
        weight: init.weights?.[i] ?? 1,
        coord: null,
        incarnation: 0,
        disk: null,
        pausedUntil: -1,
        buffered: [],
        syncAt: -1,
        leaveStartedAt: -1,
        owned: new Uint8Array(this.buckets),
        ownedEpoch: 0,
        until: 0,
        lastAccepted: 0,
        lastCommitted: 0,
        maxAcceptedBefore: 0,
        maxCommittedBefore: 0,
      };
      this.nodes.set(id, n);
      this.group[0].set(id, 0);
      this.group[1].set(id, 0);
    });
    for (const id of this.ids) this.start(this.nodes.get(id)!);
  }

  /** Largest delay the network has been given so far. */
  private maxDelayMs = 0;

  /** Allowed double ownership beyond deadtime: keepalive + 2 * the largest network delay + 2 steps. */
  get slackMs(): number {
    return this.keepaliveMs + 2 * this.maxDelayMs + 2 * this.stepMs;
  }

  now(): number {
    return this.clock.now();
  }

  note(text: string): void {
    this.trace.push(`${String(this.now()).padStart(6)} ${text}`);
    if (!this.traceOn && this.trace.length > 400) this.trace.splice(0, 200);
  }

  /** The live coordinator of a node (null while crashed). */
  node(id: number): Coordinator | null {
    return this.nodes.get(id)?.coord ?? null;
  }

  isLeaving(id: number): boolean {
    const n = this.nodes.get(id);
    return n !== undefined && n.coord !== null && n.leaveStartedAt >= 0;
  }

  isUp(id: number): boolean {
    return this.nodes.get(id)?.coord != null;
  }

  /** Live nodes that forward bucket b now (the data plane's view: onApply set within its lease). */
  owners(b: number): number[] {
    const out: number[] = [];
    for (const n of this.nodes.values()) if (this.forwards(n, b)) out.push(n.id);
    return out;
  }

  // --- faults ------------------------------------------------------------------

  /** Split the network: nodes in different groups cannot hear each other on `paths`. Unlisted nodes join group 0. */
  partition(groups: number[][], paths: number[] = [0, 1]): void {
    for (const path of paths) {
      const g = this.group[path]!;
      for (const id of this.ids) g.set(id, 0);
      groups.forEach((ids, i) => ids.forEach((id) => g.set(id, i)));
    }
    this.note(`partition ${groups.map((g) => g.join(',')).join(' | ')} on path ${paths.join('+')}`);
  }

  /** Remove every partition. */
  heal(): void {
    for (const g of this.group) for (const id of this.ids) g.set(id, 0);
    this.note('network healed');
  }

  partitioned(): boolean {
    for (const g of this.group) for (const v of g.values()) if (v !== 0) return true;
    return false;
  }

  setNetwork(p: Partial<NetworkParams>): void {
    this.net = { ...this.net, ...p };
    this.maxDelayMs = Math.max(this.maxDelayMs, this.net.delayMaxMs);
    this.note(`network ${JSON.stringify(this.net)}`);
  }

  /** kill -9: the coordinator and its data plane stop at once. */
  crash(id: number): void {
    const n = this.nodes.get(id)!;
    if (n.coord === null) return;
    n.coord = null;
    this.dirty = true;
    n.owned.fill(0);
    n.until = 0;
    n.buffered = [];
    n.pausedUntil = -1;
    n.leaveStartedAt = -1;
    n.maxAcceptedBefore = Math.max(n.maxAcceptedBefore, n.lastAccepted);
    n.maxCommittedBefore = Math.max(n.maxCommittedBefore, n.lastCommitted);
    this.note(`crash ${id}`);
  }

  /** Start a crashed node again: new incarnation, restored from its saved state. */
  restart(id: number): void {
    const n = this.nodes.get(id)!;
    if (n.coord !== null) return;
    this.start(n);
    this.note(`restart ${id} incarnation ${n.incarnation} restore ${n.disk ? n.disk.epoch : '-'}`);
  }

  /** Freeze a node's event loop for `ms` (a GC pause): it neither ticks nor receives; its data plane keeps its lease. */
  pause(id: number, ms: number): void {
    const n = this.nodes.get(id)!;
    if (n.coord === null) return;
    n.pausedUntil = Math.max(n.pausedUntil, this.now() + ms);
    this.note(`pause ${id} for ${ms} ms`);
  }

  /** Graceful leave (SIGTERM): the node stops once handed over (see stopLeft). */
  leave(id: number): void {
    const n = this.nodes.get(id)!;
    if (n.coord === null || n.leaveStartedAt >= 0) return;
    n.leaveStartedAt = this.now();
    n.coord.leave();
    this.note(`leave ${id}`);
  }

  setWeight(id: number, weight: number): void {
    const n = this.nodes.get(id)!;
    n.weight = weight;
    n.coord?.setWeight(weight);
    this.note(`weight ${id} = ${weight}`);
  }

  // --- running -------------------------------------------------------------------

  /** Advance by `ms` in steps, checking the invariants after each. */
  run(ms: number, onStep?: () => void): void {
    const end = this.now() + ms;
    while (this.now() < end) {
      this.step();
      onStep?.();
    }
  }

  /** One step: advance the clock, deliver due messages, tick every running node, check. */
  step(): void {
    const t = this.now() + this.stepMs;
    this.clock.set(t);
    // deliveries
    for (let d = this.queue.peek(); d !== undefined && d.at <= t; d = this.queue.peek()) {
      this.queue.pop();
      const n = this.nodes.get(d.to)!;
      if (n.coord === null) continue;
      if (n.pausedUntil > t) {
        n.buffered.push(d);
        continue;
      }
      this.delivered++;
      n.coord.receive(d.bytes, d.path);
    }
    for (const n of this.nodes.values()) {
      const c = n.coord;
      if (c === null) continue;
      if (n.pausedUntil > t) continue;
      if (n.pausedUntil >= 0) {
        n.pausedUntil = -1;
        const buf = n.buffered;
        n.buffered = [];
        for (const d of buf) {
          this.delivered++;
          c.receive(d.bytes, d.path);
        }
      }
      if (n.syncAt >= 0 && n.syncAt <= t) {
        n.syncAt = -1;
        c.setSynced(true);
      }
      c.tick();
      if (n.leaveStartedAt >= 0 && c.hasLeft()) {
        this.note(`node ${n.id} left after ${t - n.leaveStartedAt} ms`);
        this.crash(n.id);
      }
    }
    this.check();
  }

  /** Why the cluster has not converged (null when every bucket has exactly one live owner and all agree). */
  unconverged(): string | null {
    const up = [...this.nodes.values()].filter((n) => n.coord !== null);
    if (up.length === 0) return 'no node is up';
    const epochs = new Set(up.map((n) => n.coord!.committedEpoch()));
    if (epochs.size !== 1) return `nodes disagree on the epoch: ${up.map((n) => `${n.id}:${n.coord!.committedEpoch()}`).join(' ')}`;
    const accepted = new Set(up.map((n) => n.coord!.acceptedEpoch()));
    if (accepted.size !== 1) return `nodes disagree on the accepted epoch: ${up.map((n) => `${n.id}:${n.coord!.acceptedEpoch()}`).join(' ')}`;
    const notReady = up.filter((n) => !n.coord!.isReady());
    if (notReady.length > 0) return `not ready: ${notReady.map((n) => n.id).join(',')}`;
    const weighted = up.some((n) => n.weight > 0);
    for (let b = 0; b < this.buckets; b++) {
      const o = this.owners(b);
      if (weighted ? o.length !== 1 : o.length !== 0) return `bucket ${b} forwarded by [${o.join(',')}]`;
    }
    const members = up[0]!.coord!.status().members.filter((m) => m.member).map((m) => m.id);
    const expected = up.filter((n) => n.weight >= 0).map((n) => n.id).sort((a, b) => a - b);
    if (members.join(',') !== expected.join(',')) return `members [${members.join(',')}] but up [${expected.join(',')}]`;
    return null;
  }

  // --- internals -------------------------------------------------------------------

  private start(n: SimNode): void {
    n.incarnation = Math.max(n.incarnation + 1, this.wallBase + this.now());
    const id = n.id;
    const log: CoordLogger | undefined = this.traceOn
      ? {
          info: (o, m) => this.note(`[${id}] ${m ?? ''} ${JSON.stringify(o)}`),
          warn: (o, m) => this.note(`[${id}] WARN ${m ?? ''} ${JSON.stringify(o)}`),
          debug: (o, m) => this.note(`[${id}] ${m ?? ''} ${JSON.stringify(o)}`),
        }
      : undefined;
    n.lastAccepted = 0;
    n.lastCommitted = 0;
    n.owned.fill(0);
    n.ownedEpoch = 0;
    n.until = 0;
    const coord: Coordinator = new Coordinator(
      {
        nodeId: id,
        weight: n.weight,
        incarnation: n.incarnation,
        buckets: this.buckets,
        keepaliveMs: this.keepaliveMs,
        deadtimeMs: this.deadtimeMs,
        joinDelayMs: this.joinDelayMs,
        key: SIM_KEY,
        restore: n.disk,
      },
      {
        clock: this.clock,
        send: (bytes) => this.send(id, bytes),
        ...(log ? { log } : {}),
        onApply: (epoch, buckets) => {
          this.dirty = true;
          n.owned.fill(0);
          for (const b of buckets) n.owned[b] = 1;
          n.ownedEpoch = epoch;
          coord.applied(epoch);
        },
        persist: (s) => {
          n.disk = { epoch: s.epoch, committedEpoch: s.committedEpoch, configs: s.configs.map((c) => c.slice()) };
        },
      },
    );
    n.coord = coord;
    n.syncAt = this.syncDelay === null ? -1 : this.now() + this.rng.int(this.syncDelay[0], this.syncDelay[1]);
  }

  private send(from: number, bytes: Uint8Array): void {
    const now = this.now();
    const net = this.net;
    for (const to of this.ids) {
      if (to === from) continue;
      for (let path = 0; path < 2; path++) {
        if (this.group[path]!.get(from) !== this.group[path]!.get(to)) continue;
        if (net.loss > 0 && this.rng.chance(net.loss)) continue;
        const copies = net.dup > 0 && this.rng.chance(net.dup) ? 2 : 1;
        for (let c = 0; c < copies; c++) {
          const at = now + net.delayMinMs + this.rng.float() * (net.delayMaxMs - net.delayMinMs);
          this.queue.push({ at, order: this.order++, to, path, bytes });
        }
      }
    }
  }

  private forwards(n: SimNode, b: number): boolean {
    return n.coord !== null && n.owned[b] === 1 && this.now() < this.leaseOf(n);
  }

  private leaseOf(n: SimNode): number {
    // a paused node's data plane keeps the lease it was last given; a running one gets it at every tick
    if (n.coord !== null && (n.pausedUntil < 0 || n.pausedUntil <= this.now())) n.until = n.coord.leaseUntil();
    return n.until;
  }

  private violation(text: string): void {
    this.violations.push(`t=${this.now()} ${text}`);
    this.note(`VIOLATION ${text}`);
  }

  private check(): void {
    const t = this.now();
    let dirty = this.dirty;
    this.dirty = false;
    for (const n of this.nodes.values()) {
      const c = n.coord;
      const active = c !== null && t < this.leaseOf(n);
      if (this.activeLast.get(n.id) !== active) {
        this.activeLast.set(n.id, active);
        dirty = true;
      }
      if (c === null) continue;
      // epochs never decrease, across restarts too
      const acc = c.acceptedEpoch();
      const com = c.committedEpoch();
      if (acc < n.lastAccepted) this.violation(`node ${n.id} accepted epoch went back ${n.lastAccepted} -> ${acc}`);
      if (com < n.lastCommitted) this.violation(`node ${n.id} committed epoch went back ${n.lastCommitted} -> ${com}`);
      if (acc > 0 && acc < n.maxAcceptedBefore) this.violation(`node ${n.id} accepted ${acc} below ${n.maxAcceptedBefore} from before its restart`);
      if (com > 0 && com < n.maxCommittedBefore) this.violation(`node ${n.id} committed ${com} below ${n.maxCommittedBefore} from before its restart`);
      n.lastAccepted = Math.max(n.lastAccepted, acc);
      n.lastCommitted = Math.max(n.lastCommitted, com);
    }
    const count = this.count;
    if (dirty) {
      // same-epoch safety, and forwarders per bucket
      count.fill(0);
      const epochOwner = new Map<number, Int32Array>();
      for (const n of this.nodes.values()) {
        if (this.activeLast.get(n.id) !== true) continue;
        for (let b = 0; b < this.buckets; b++) {
          if (n.owned[b] !== 1) continue;
          count[b]++;
          let byBucket = epochOwner.get(n.ownedEpoch);
          if (byBucket === undefined) epochOwner.set(n.ownedEpoch, (byBucket = new Int32Array(this.buckets).fill(-1)));
          const other = byBucket[b]!;
          if (other >= 0) this.violation(`bucket ${b} owned by ${other} and ${n.id} in the same epoch ${n.ownedEpoch}`);
          else byBucket[b] = n.id;
        }
      }
    }
    const limit = this.deadtimeMs + this.slackMs;
    for (let b = 0; b < this.buckets; b++) {
      if (count[b]! >= 2) {
        if (this.doubleSince[b]! < 0) this.doubleSince[b] = t;
        const d = t - this.doubleSince[b]!;
        if (d > this.maxDoubleMs) this.maxDoubleMs = d;
        if (d > limit && this.doubleReported[b] === 0) {
          this.doubleReported[b] = 1;
          this.violation(`bucket ${b} owned twice for ${d} ms (> ${limit}) by [${this.owners(b).join(',')}]`);
        }
      } else {
        this.doubleSince[b] = -1;
        this.doubleReported[b] = 0;
      }
    }
  }
}

// --- random runs ---------------------------------------------------------------

export interface SimOptions {
  seed: number;
  /** Cluster size (default 2..5 from the seed). */
  nodes?: number;
  /** Steps in the fault phase (default 600, i.e. 3 s at 5 ms). */
  steps?: number;
  buckets?: number;
  keepaliveMs?: number;
  deadtimeMs?: number;
  joinDelayMs?: number;
  /** Keep the full trace (coordinator logs too). */
  trace?: boolean;
  /** Multiplies every fault probability (default 1). */
  faultScale?: number;
}

export interface SimResult {
  ok: boolean;
  violations: string[];
  seed: number;
  /** The trace: every event when `trace` was set, else the last few hundred fault events. */
  trace?: string[];
  stats: { nodes: number; simulatedMs: number; delivered: number; maxDoubleMs: number };
}

/**
 * One random run: bootstrap without faults, `steps` steps of random faults,
 * then heal everything and check liveness. Deterministic for a seed.
 */
export function runSimulation(opts: SimOptions): SimResult {
  const seed = opts.seed >>> 0;
  const pre = new Prng(seed ^ 0x5a5a5a5a);
  const nodes = opts.nodes ?? pre.int(2, 5);
  const pool = Array.from({ length: 1024 }, (_, i) => i);
  const ids: number[] = [];
  for (let i = 0; i < nodes; i++) ids.push(pool.splice(pre.int(0, pool.length - 1), 1)[0]!);
  const weights = ids.map(() => pre.int(1, 3));
  const sim = new Simulation({
    seed,
    ids,
    weights,
    buckets: opts.buckets ?? 64,
    keepaliveMs: opts.keepaliveMs ?? 100,
    deadtimeMs: opts.deadtimeMs ?? 300,
    joinDelayMs: opts.joinDelayMs ?? 400,
    network: { loss: 0, dup: 0, delayMinMs: 0, delayMaxMs: 2 },
    trace: opts.trace ?? false,
  });
  const rng = sim.rng;
  const fail = (text: string): void => {
    sim.violations.push(`t=${sim.now()} ${text}`);
  };
  const settle = sim.joinDelayMs + 5 * sim.deadtimeMs + 4 * sim.keepaliveMs;

  // 1. bootstrap: every node starts at 0, syncs within the join delay
  sim.note(`seed ${seed}: nodes ${ids.join(',')} weights ${weights.join(',')}`);
  sim.run(settle);
  const boot = sim.unconverged();
  if (boot !== null) fail(`bootstrap did not converge: ${boot}`);

  // 2. faults
  const delayMax = rng.int(1, 20);
  sim.setNetwork({ loss: rng.float() * 0.2, dup: rng.float() * 0.1, delayMinMs: 0, delayMaxMs: delayMax });
  const restartAt = new Map<number, number>();
  let partitionEnd = -1;
  const steps = opts.steps ?? 600;
  const k = opts.faultScale ?? 1;
  for (let s = 0; s < steps; s++) {
    const t = sim.now();
    if (partitionEnd >= 0 && t >= partitionEnd) {
      sim.heal();
      partitionEnd = -1;
    } else if (partitionEnd < 0 && rng.chance(0.004 * k)) {
      const split = (): number[][] => {
        const k = nodes > 3 && rng.chance(0.25) ? 3 : 2;
        const groups: number[][] = Array.from({ length: k }, () => []);
        for (const id of ids) groups[rng.int(0, k - 1)]!.push(id);
        return groups;
      };
      const r = rng.float();
      if (r < 0.6) sim.partition(split(), [0, 1]);
      else if (r < 0.8) sim.partition(split(), [rng.int(0, 1)]);
      else {
        sim.partition(split(), [0]);
        sim.partition(split(), [1]);
      }
      partitionEnd = t + rng.int(100, 1500);
    }
    for (const [id, at] of [...restartAt]) {
      if (t >= at) {
        restartAt.delete(id);
        sim.restart(id);
      }
    }
    if (rng.chance(0.002 * k)) {
      const id = rng.pick(ids);
      if (sim.isUp(id)) {
        sim.crash(id);
        restartAt.set(id, t + rng.int(20, 1500));
      }
    }
    if (rng.chance(0.002 * k)) sim.pause(rng.pick(ids), rng.int(20, 2 * sim.deadtimeMs + 200));
    if (rng.chance(0.001 * k)) sim.leave(rng.pick(ids));
    if (rng.chance(0.001 * k)) sim.setWeight(rng.pick(ids), rng.int(0, 3));
    if (rng.chance(0.002 * k)) {
      sim.setNetwork({ loss: rng.float() * 0.3, dup: rng.float() * 0.1, delayMaxMs: rng.int(1, 20) });
    }
    sim.step();
    // a leaving node that stopped is restarted later, like a crashed one
    for (const id of ids) if (!sim.isUp(id) && !restartAt.has(id)) restartAt.set(id, sim.now() + rng.int(50, 1000));
  }

  // 3. heal: no more faults, every node back, then liveness within the bound
  sim.heal();
  sim.setNetwork({ loss: 0, dup: 0 });
  for (const id of ids) {
    if (sim.isLeaving(id)) sim.crash(id); // a leave in progress ends: the node comes back
    sim.restart(id);
  }
  sim.run(settle);
  const end = sim.unconverged();
  if (end !== null) fail(`not converged ${settle} ms after healing: ${end}`);

  const ok = sim.violations.length === 0;
  return {
    ok,
    violations: sim.violations.slice(),
    seed,
    ...(ok && !opts.trace ? {} : { trace: sim.trace.slice() }),
    stats: { nodes, simulatedMs: sim.now(), delivered: sim.delivered, maxDoubleMs: sim.maxDoubleMs },
  };
}
