/**
 * One director's coordinator: membership (heartbeats, death after deadtime),
 * master election, allocation epochs, the quorum rule for partitions, and the
 * set of buckets this director must forward now. Owns that state machine and
 * nothing else: it reads time only from the injected clock, sends only
 * through the injected `send`, sets no timers and opens no sockets. The
 * daemon calls receive() for every datagram, tick() after every batch and at
 * least every few milliseconds (nextDeadline() says when it must), programs
 * its filter from onApply()/owned() and reports back with applied().
 *
 * The protocol and its safety argument are in docs/coordinator.md. In short:
 * - every allocation has a unique epoch (term * 1024 + master id); a node
 *   accepts only allocations newer than the one it holds;
 * - an allocation becomes the one nodes forward by (committed) once a quorum
 *   of every membership that may still be in force has accepted it (the
 *   master's committed one, every newer one it or its peers accepted);
 * - a node forwards the buckets of its committed allocation only while it
 *   hears a quorum (strict majority, or exactly half including the lowest
 *   id) of each of those memberships, and only while it knows of no newer
 *   accepted allocation it lacks nor of a newer committed one;
 * - leaseUntil() says until when that holds without news, so the data plane
 *   can stop by itself when the coordinator stalls.
 */
import type { Clock } from '../../core/index.js';
import { ErrorCode, SaruError } from '../../core/index.js';
import { MAX_NODE_ID, MAX_WEIGHT, allocate, countOwners, type AllocMember } from './allocation.js';
import { MessageKey, ReplayGuard } from './auth.js';
import {
  MAX_TERM,
  MEMBER_STATE_NAMES,
  MemberState,
  decodeMessage,
  encodeMessage,
  epochTerm,
  makeEpoch,
  type AllocationMsg,
  type Body,
  type Heartbeat,
} from './protocol.js';

/** Defaults (docs/coordinator.md, "Timing"). */
export const COORD_DEFAULTS = {
  keepaliveMs: 100,
  deadtimeMs: 300,
  joinDelayMs: 30_000,
} as const;

/** Largest bucket count whose worst-case allocation fits one datagram. */
export const MAX_COORD_BUCKETS = 16384;

/** What the daemon saves (synchronously, in persist()) and passes back as `restore` after a restart. */
export interface PersistedState {
  /** Epoch of the newest allocation this node accepted (or issued). */
  epoch: number;
  /** Epoch of the newest allocation it knew committed. */
  committedEpoch: number;
  /** Member id lists whose quorum it needed (its committed allocation's and every newer one's). */
  configs: number[][];
}

export interface CoordinatorInit {
  /** 0..1023, unique in the cluster. */
  nodeId: number;
  /** Share of the buckets, integer >= 0 (0: owns nothing). */
  weight: number;
  /**
   * Positive integer below 2^43 that grows across restarts of this node.
   * Also the lowest term this node issues epochs with, so the daemon should
   * use max(wall-clock milliseconds at start, saved incarnation + 1).
   */
  incarnation: number;
  /** Power of two, 2..16384. */
  buckets: number;
  keepaliveMs?: number;
  deadtimeMs?: number;
  /** Longest wait for setSynced(true) before taking buckets anyway. */
  joinDelayMs?: number;
  /** Shared cluster key, >= 16 bytes. */
  key: Uint8Array;
  /** What persist() last saved before the restart, if anything. */
  restore?: PersistedState | null;
}

/** The subset of a pino logger the coordinator uses. */
export interface CoordLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface CoordinatorDeps {
  clock: Clock;
  /** Send to all peers on every cluster path (cluster and data networks). */
  send: (bytes: Uint8Array) => void;
  log?: CoordLogger;
  /**
   * The set of buckets to forward changed: program the filter, then call
   * applied(epoch). `takeovers` lists the buckets gained from members now
   * dead, with when each was last heard (for the takeover log and its duration).
   */
  onApply?: (epoch: number, buckets: number[], takeovers: Takeover[]) => void;
  /** Save this synchronously (write + fsync) before returning; pass it back as Init.restore after a restart. */
  persist?: (state: PersistedState) => void;
}

/** Buckets this node gained from a member that is no longer alive. */
export interface Takeover {
  /** The dead member's id. */
  from: number;
  /** How many of its buckets this node now forwards. */
  buckets: number;
  /** Clock time it was last heard (ms, the coordinator's clock). */
  lastHeard: number;
}

export interface OwnedSet {
  /** Epoch of the allocation the buckets come from (0: none yet). */
  epoch: number;
  /** Sorted bucket numbers to forward. */
  buckets: number[];
  /** Clock time after which the data plane must stop forwarding unless renewed (Infinity: no limit). */
  until: number;
}

export interface MemberStatus {
  id: number;
  self: boolean;
  alive: boolean;
  state: string;
  weight: number;
  synced: boolean;
  incarnation: number;
  /** Buckets it owns in this node's committed allocation. */
  buckets: number;
  /** In this node's committed allocation. */
  member: boolean;
  acceptedEpoch: number;
  appliedEpoch: number;
  /** Milliseconds since its last message (null: self or never heard). */
  lastHeartbeatAgeMs: number | null;
  /** Milliseconds since last heard on the cluster network and on the data network (null: never). */
  pathAgeMs: [number | null, number | null];
}

export interface CoordinatorStatus {
  nodeId: number;
  incarnation: number;
  /** joining | active | leaving | left */
  state: string;
  ready: boolean;
  synced: boolean;
  weight: number;
  /** The master this node believes in (-1: none). */
  master: number;
  isMaster: boolean;
  /** Committed epoch (the one forwarded by). */
  epoch: number;
  /** The node that issued it (-1: none). */
  epochMaster: number;
  acceptedEpoch: number;
  appliedEpoch: number;
  knownEpoch: number;
  quorate: boolean;
  stale: boolean;
  ownedBuckets: number;
  members: MemberStatus[];
  counters: Record<string, number>;
}

/** Counter names (drops, by reason, and events). */
export const COORD_COUNTERS = [
  'rx',
  'tx',
  'truncated',
  'oversized',
  'bad_magic',
  'bad_mac',
  'malformed',
  'duplicate',
  'too_old',
  'old_incarnation',
  'own',
  'wrong_buckets',
  'stale_allocation',
  'allocations_issued',
  'allocations_accepted',
  'commits',
  'relays',
  'unsendable',
] as const;
export type CoordCounter = (typeof COORD_COUNTERS)[number];

interface Alloc {
  epoch: number;
  master: number;
  members: AllocMember[];
  ids: number[];
  owners: Int32Array;
  /** This node's buckets in it (computed once, never mutated). */
  mine?: number[];
}

const NONE: number[] = [];

interface Peer {
  id: number;
  incarnation: number;
  lastHeard: number;
  /** Last time heard on path 0 (cluster) and 1 (data), duplicates included; -1: never. */
  pathHeard: [number, number];
  alive: boolean;
  heard: boolean; // sent a heartbeat in this incarnation
  state: MemberState;
  weight: number;
  synced: boolean;
  seen: number;
  known: number;
  accepted: number;
  committed: number;
  applied: number;
  lagging: number; // consecutive heartbeats showing an older accepted epoch than ours
  lastRelay: number;
  configs: number[][]; // from its last heartbeat
  configsEpoch: number;
}

interface Pending {
  epoch: number;
  bases: number[][];
  acked: Set<number>;
  lastSent: number;
  issuedAt: number;
  trigger: { reason: string; lastHeardMs?: number };
}

const noop = (): void => {};
const quietLog: CoordLogger = { info: noop, warn: noop, debug: noop };

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n >= 2 && (n & (n - 1)) === 0;
}

/** Quorum over `ids` (sorted): strict majority up, or exactly half up including the lowest id. */
export function quorate(ids: readonly number[], up: (id: number) => boolean): boolean {
  const n = ids.length;
  if (n === 0) return true;
  let c = 0;
  for (const id of ids) if (up(id)) c++;
  return 2 * c > n || (2 * c === n && up(ids[0]!));
}

function sameMembers(a: readonly AllocMember[], b: readonly AllocMember[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.id !== b[i]!.id || a[i]!.weight !== b[i]!.weight) return false;
  return true;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One director's coordinator (see the module comment). */
export class Coordinator {
  readonly nodeId: number;
  readonly incarnation: number;
  readonly buckets: number;
  readonly keepaliveMs: number;
  readonly deadtimeMs: number;
  readonly joinDelayMs: number;

  private readonly clock: Clock;
  private readonly sendFn: (bytes: Uint8Array) => void;
  private readonly log: CoordLogger;
  private readonly onApply: (epoch: number, buckets: number[], takeovers: Takeover[]) => void;
  private readonly persistFn: (state: PersistedState) => void;
  private readonly key: MessageKey;
  private readonly replay = new ReplayGuard();
  private readonly counters: Record<CoordCounter, number>;

  private weight: number;
  private readonly startedAt: number;
  private synced = false;
  private ready = false;
  private leaving = false;
  private left = false;
  private seq = 0;
  private nextHeartbeat: number;

  private readonly peers = new Map<number, Peer>();
  /** Newest accepted allocation. */
  private acc: Alloc | null = null;
  private accAt = 0;
  /** Newest allocation known committed (what this node forwards by). */
  private own: Alloc | null = null;
  /** Member lists of the allocations accepted after `own` (any may be committed elsewhere). */
  private chain: number[][] = [];
  private pending: Pending | null = null;
  /** Restored configurations (member id lists), used only until an allocation is held. */
  private readonly restored: number[][];
  private readonly acceptFloor: number;
  private readonly issueFloorTerm: number;
  /** Highest epoch number known (floors included). */
  private seen: number;
  /** Highest epoch known accepted by some node. */
  private known: number;
  /** Highest epoch a peer reported committed. */
  private knownCommitted = 0;
  private staleSince = -1;
  private appliedEpoch = 0;
  private lastAckedApplied = -1;
  private lastMaster = -1;
  private wasQuorate = false;

  /** Last computed ownership. */
  private ownedEpoch = 0;
  private ownedList: number[] = NONE;
  private ownedUntil = 0;
  private readonly ownedMask: Uint8Array;
  /** The allocation the last non-empty owned set came from (who owned what before a change). */
  private ownedFrom: Alloc | null = null;

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT on a bad Init. */
  constructor(init: CoordinatorInit, deps: CoordinatorDeps) {
    const bad = (what: string): never => {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `coordinator: ${what}`);
    };
    if (!Number.isInteger(init.nodeId) || init.nodeId < 0 || init.nodeId > MAX_NODE_ID) bad(`node id must be 0..${MAX_NODE_ID}, got ${init.nodeId}`);
    if (!Number.isInteger(init.weight) || init.weight < 0 || init.weight > MAX_WEIGHT) bad(`weight must be an integer >= 0, got ${init.weight}`);
    if (!Number.isSafeInteger(init.incarnation) || init.incarnation < 1 || init.incarnation > MAX_TERM) {
      bad(`incarnation must be an integer from 1 to ${MAX_TERM}, got ${init.incarnation}`);
    }
    if (!isPow2(init.buckets) || init.buckets > MAX_COORD_BUCKETS) bad(`buckets must be a power of two from 2 to ${MAX_COORD_BUCKETS}, got ${init.buckets}`);
    const keepalive = init.keepaliveMs ?? COORD_DEFAULTS.keepaliveMs;
    const deadtime = init.deadtimeMs ?? COORD_DEFAULTS.deadtimeMs;
    const joinDelay = init.joinDelayMs ?? COORD_DEFAULTS.joinDelayMs;
    if (!(keepalive > 0)) bad(`keepalive must be > 0 ms, got ${keepalive}`);
    if (!(deadtime >= 2 * keepalive)) bad(`deadtime (${deadtime} ms) must be at least twice keepalive (${keepalive} ms)`);
    if (!(joinDelay >= 0)) bad(`join delay must be >= 0 ms, got ${joinDelay}`);
    this.nodeId = init.nodeId;
    this.incarnation = init.incarnation;
    this.buckets = init.buckets;
    this.keepaliveMs = keepalive;
    this.deadtimeMs = deadtime;
    this.joinDelayMs = joinDelay;
    this.weight = init.weight;
    this.key = new MessageKey(init.key);
    this.clock = deps.clock;
    this.sendFn = deps.send;
    this.log = deps.log ?? quietLog;
    this.onApply = deps.onApply ?? noop;
    this.persistFn = deps.persist ?? noop;
    this.counters = Object.fromEntries(COORD_COUNTERS.map((c) => [c, 0])) as Record<CoordCounter, number>;
    this.ownedMask = new Uint8Array(this.buckets);

    const r = init.restore ?? null;
    const restored: number[][] = [];
    let floor = 0;
    if (r !== null) {
      if (!Number.isSafeInteger(r.epoch) || r.epoch < 0) bad(`restored epoch must be a safe integer >= 0, got ${r.epoch}`);
      floor = Math.max(r.epoch, r.committedEpoch ?? 0);
      for (const ids of r.configs ?? []) {
        if (!Array.isArray(ids) || ids.length === 0) continue;
        const sorted = [...new Set(ids)].sort((a, b) => a - b);
        if (!restored.some((x) => sameIds(x, sorted))) restored.push(sorted);
      }
    }
    this.restored = restored;
    this.acceptFloor = floor;
    this.issueFloorTerm = init.incarnation;
    this.seen = floor;
    this.known = floor;
    this.startedAt = this.clock.now();
    this.nextHeartbeat = this.startedAt;
    if (this.joinDelayMs === 0) this.ready = true;
    this.log.info(
      { nodeId: this.nodeId, incarnation: this.incarnation, restoredEpoch: floor, buckets: this.buckets },
      'coordinator started',
    );
  }

  // --- inputs ----------------------------------------------------------------

  /** One datagram from the network; `path` 0 = cluster network, 1 = data network. Never throws on bad input. */
  receive(bytes: Uint8Array, path: number): void {
    // a peer is alive when heard on any path; the copy on the other path is dropped as a duplicate
    const d = decodeMessage(bytes, this.key);
    if (!d.ok) {
      this.counters[d.reason]++;
      return;
    }
    const msg = d.msg;
    if (msg.sender === this.nodeId) {
      this.counters.own++;
      if (msg.incarnation !== this.incarnation) {
        this.log.warn({ nodeId: this.nodeId, incarnation: msg.incarnation }, 'another node sends with this node id');
      }
      return;
    }
    const verdict = this.replay.check(msg.sender, msg.incarnation, msg.seq);
    const now = this.clock.now();
    if (verdict !== 'ok') {
      this.counters[verdict]++;
      const q = this.peers.get(msg.sender);
      if (verdict === 'duplicate' && q !== undefined && q.incarnation === msg.incarnation) q.pathHeard[path === 1 ? 1 : 0] = now;
      return;
    }
    this.counters.rx++;
    const p = this.peerFor(msg.sender, msg.incarnation, now);
    p.lastHeard = now;
    p.pathHeard[path === 1 ? 1 : 0] = now;
    if (!p.alive) {
      p.alive = true;
      this.log.info({ member: p.id, incarnation: p.incarnation, epoch: this.ownEpoch() }, 'member up');
    }
    this.handle(p, msg.body, now);
  }

  /** Advance: heartbeats, deaths, master duties, ownership. Call after receives and at least by nextDeadline(). */
  tick(): void {
    const now = this.clock.now();
    if (!this.ready && now - this.startedAt >= this.joinDelayMs) {
      this.ready = true;
      this.log.info({ epoch: this.ownEpoch(), waitedMs: now - this.startedAt }, 'join delay expired: ready to take buckets');
      this.nextHeartbeat = now;
    }
    for (const p of this.peers.values()) {
      if (p.alive && now - p.lastHeard >= this.deadtimeMs) {
        p.alive = false;
        this.log.info({ member: p.id, lastHeardMs: now - p.lastHeard, epoch: this.ownEpoch() }, 'member down');
      }
    }
    const stale = this.known > this.accEpoch();
    if (stale && this.staleSince < 0) {
      this.staleSince = now;
      this.nextHeartbeat = Math.min(this.nextHeartbeat, now); // ask for the allocation at once
      this.log.debug({ known: this.known, accepted: this.accEpoch() }, 'a newer allocation exists: waiting for it');
    } else if (!stale) {
      this.staleSince = -1;
    }
    this.masterStep(now);
    if (now >= this.nextHeartbeat) {
      this.sendHeartbeat();
      this.nextHeartbeat = now + this.keepaliveMs;
    }
    this.evaluate(now);
  }

  /** The sync daemon finished (true) or lost (false) its bulk resync. Once ready, a node stays ready. */
  setSynced(ready: boolean): void {
    this.synced = ready;
    if (ready && !this.ready) {
      this.ready = true;
      this.log.info({ epoch: this.ownEpoch(), waitedMs: this.clock.now() - this.startedAt }, 'synced: ready to take buckets');
    }
    this.nextHeartbeat = this.clock.now();
  }

  /** Change this node's weight; the master reallocates. */
  setWeight(weight: number): void {
    if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `weight must be an integer >= 0, got ${weight}`);
    }
    this.weight = weight;
    this.nextHeartbeat = this.clock.now();
  }

  /** Graceful leave: announce it; buckets stay owned until an allocation without this node is committed. */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.log.info({ epoch: this.ownEpoch(), buckets: this.ownedList.length }, 'leaving the cluster');
    this.sendHeartbeat();
    this.nextHeartbeat = this.clock.now() + this.keepaliveMs;
  }

  /** The daemon has programmed its filter for `epoch`: acknowledge it. */
  applied(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) return;
    if (epoch > this.appliedEpoch) this.appliedEpoch = epoch;
    if (this.appliedEpoch !== this.lastAckedApplied) {
      this.lastAckedApplied = this.appliedEpoch;
      this.sendBody({
        kind: 'ack',
        ack: { acceptedEpoch: this.accEpoch(), appliedEpoch: this.appliedEpoch, configs: this.bases(), configsEpoch: this.configsEpoch() },
      });
    }
  }

  // --- outputs ---------------------------------------------------------------

  /** What this node must forward now (as of the last tick). */
  owned(): OwnedSet {
    return { epoch: this.ownedEpoch, buckets: this.ownedList.slice(), until: this.ownedUntil };
  }

  /** Whether bucket `b` is in the owned set (as of the last tick). */
  owns(b: number): boolean {
    return this.ownedMask[b] === 1;
  }

  /** Clock time until which the owned set stays valid without news (the data-plane lease). */
  leaseUntil(): number {
    return this.ownedUntil;
  }

  /** Epoch of the newest allocation accepted (0: none). */
  acceptedEpoch(): number {
    return this.accEpoch();
  }

  /** Epoch of the committed allocation this node forwards by (0: none). */
  committedEpoch(): number {
    return this.ownEpoch();
  }

  /** True once a leave() has been handed over (or nobody is left to hand over to). */
  hasLeft(): boolean {
    return this.left;
  }

  /** Whether this node is ready (synced or join delay expired). */
  isReady(): boolean {
    return this.ready;
  }

  /** The earliest clock time at which tick() has something to do. */
  nextDeadline(): number {
    let t = this.nextHeartbeat;
    for (const p of this.peers.values()) if (p.alive) t = Math.min(t, p.lastHeard + this.deadtimeMs);
    if (!this.ready) t = Math.min(t, this.startedAt + this.joinDelayMs);
    if (this.ownedUntil > 0) t = Math.min(t, this.ownedUntil);
    if (this.pending !== null) t = Math.min(t, this.pending.lastSent + this.keepaliveMs);
    const listened = this.startedAt + this.deadtimeMs;
    if (this.clock.now() < listened) t = Math.min(t, listened);
    if (this.acc !== null && this.own?.epoch !== this.acc.epoch) t = Math.min(t, this.accAt + this.deadtimeMs);
    return t;
  }

  /** Counters: rx, tx, drops per reason, events. */
  counterValues(): Record<string, number> {
    return { ...this.counters };
  }

  /** The view `saruadm --cluster` shows. */
  status(): CoordinatorStatus {
    const now = this.clock.now();
    const counts = this.own === null ? new Map<number, number>() : countOwners(this.own.owners);
    const inOwn = new Set(this.own?.ids ?? []);
    const members: MemberStatus[] = [
      {
        id: this.nodeId,
        self: true,
        alive: true,
        state: this.stateName(),
        weight: this.weight,
        synced: this.synced,
        incarnation: this.incarnation,
        buckets: counts.get(this.nodeId) ?? 0,
        member: inOwn.has(this.nodeId),
        acceptedEpoch: this.accEpoch(),
        appliedEpoch: this.appliedEpoch,
        lastHeartbeatAgeMs: null,
        pathAgeMs: [null, null],
      },
    ];
    for (const p of this.peers.values()) {
      members.push({
        id: p.id,
        self: false,
        alive: this.isAlive(p, now),
        state: MEMBER_STATE_NAMES[p.state],
        weight: p.weight,
        synced: p.synced,
        incarnation: p.incarnation,
        buckets: counts.get(p.id) ?? 0,
        member: inOwn.has(p.id),
        acceptedEpoch: p.accepted,
        appliedEpoch: p.applied,
        lastHeartbeatAgeMs: now - p.lastHeard,
        pathAgeMs: [p.pathHeard[0] < 0 ? null : now - p.pathHeard[0], p.pathHeard[1] < 0 ? null : now - p.pathHeard[1]],
      });
    }
    members.sort((a, b) => a.id - b.id);
    const master = this.electedMaster(now);
    return {
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      state: this.stateName(),
      ready: this.ready,
      synced: this.synced,
      weight: this.weight,
      master,
      isMaster: master === this.nodeId,
      epoch: this.ownEpoch(),
      epochMaster: this.own?.master ?? -1,
      acceptedEpoch: this.accEpoch(),
      appliedEpoch: this.appliedEpoch,
      knownEpoch: this.known,
      quorate: this.quorateNow(now),
      stale: this.known > this.accEpoch(),
      ownedBuckets: this.ownedList.length,
      members,
      counters: this.counterValues(),
    };
  }

  // --- message handling ------------------------------------------------------

  private peerFor(id: number, incarnation: number, now: number): Peer {
    let p = this.peers.get(id);
    if (p !== undefined && p.incarnation === incarnation) return p;
    if (p !== undefined) {
      this.log.info({ member: id, incarnation, previous: p.incarnation, epoch: this.ownEpoch() }, 'member restarted');
    }
    p = {
      id,
      incarnation,
      lastHeard: now,
      pathHeard: [-1, -1],
      alive: false,
      heard: false,
      state: MemberState.JOINING,
      weight: 0,
      synced: false,
      seen: 0,
      known: 0,
      accepted: 0,
      committed: 0,
      applied: 0,
      lagging: 0,
      lastRelay: -Infinity,
      configs: [],
      configsEpoch: 0,
    };
    this.peers.set(id, p);
    return p;
  }

  private handle(p: Peer, body: Body, now: number): void {
    switch (body.kind) {
      case 'heartbeat':
        this.onHeartbeat(p, body.heartbeat, now);
        break;
      case 'allocation':
        this.onAllocation(p, body.allocation, now);
        break;
      case 'ack':
        p.accepted = Math.max(p.accepted, body.ack.acceptedEpoch);
        p.applied = Math.max(p.applied, body.ack.appliedEpoch);
        this.learn(body.ack.acceptedEpoch, body.ack.acceptedEpoch);
        this.noteAccepted(p.id, body.ack.acceptedEpoch, body.ack.configs, body.ack.configsEpoch);
        break;
      case 'commit':
        p.committed = Math.max(p.committed, body.epoch);
        if (body.epoch > this.knownCommitted) this.knownCommitted = body.epoch;
        this.learn(body.epoch, body.epoch);
        if (this.acc !== null && body.epoch === this.acc.epoch) this.commitLocal('commit message');
        break;
    }
  }

  private onHeartbeat(p: Peer, hb: Heartbeat, now: number): void {
    if (!p.heard || p.state !== hb.state) {
      this.log.info({ member: p.id, state: MEMBER_STATE_NAMES[hb.state], weight: hb.weight, epoch: this.ownEpoch() }, 'member state');
    }
    p.heard = true;
    p.state = hb.state;
    p.weight = hb.weight;
    p.synced = hb.synced;
    p.seen = Math.max(p.seen, hb.seenEpoch);
    p.known = Math.max(p.known, hb.knownEpoch);
    p.accepted = Math.max(p.accepted, hb.acceptedEpoch);
    p.committed = Math.max(p.committed, hb.committedEpoch);
    p.applied = Math.max(p.applied, hb.appliedEpoch);
    p.configs = hb.configs;
    p.configsEpoch = hb.configsEpoch;
    if (hb.committedEpoch > this.knownCommitted) this.knownCommitted = hb.committedEpoch;
    this.learn(Math.max(hb.seenEpoch, hb.knownEpoch), Math.max(hb.knownEpoch, hb.acceptedEpoch, hb.committedEpoch));
    if (this.acc !== null && hb.committedEpoch === this.acc.epoch) this.commitLocal('peer heartbeat');
    this.noteAccepted(p.id, hb.acceptedEpoch, hb.configs, hb.configsEpoch);
    // relay our allocation to a peer that lacks it
    const acc = this.acc;
    if (acc !== null && hb.acceptedEpoch < acc.epoch) {
      p.lagging++;
      const iAmMaster = acc.master === this.nodeId || this.electedMaster(now) === this.nodeId;
      const due = iAmMaster ? now - p.lastRelay >= this.keepaliveMs / 2 : p.lagging >= 2 && now - p.lastRelay >= this.keepaliveMs;
      if (due) {
        p.lastRelay = now;
        this.counters.relays++;
        this.sendAllocation(acc, this.own !== null && this.own.epoch === acc.epoch);
      }
    } else {
      p.lagging = 0;
    }
  }

  private onAllocation(p: Peer, a: AllocationMsg, now: number): void {
    if (a.buckets !== this.buckets) {
      if (this.counters.wrong_buckets++ === 0) {
        this.log.warn({ member: p.id, theirs: a.buckets, ours: this.buckets }, 'allocation for a different bucket count: check saru.conf');
      }
      return;
    }
    p.accepted = Math.max(p.accepted, a.epoch);
    if (a.committed) {
      p.committed = Math.max(p.committed, a.epoch);
      if (a.epoch > this.knownCommitted) this.knownCommitted = a.epoch;
    }
    this.learn(a.epoch, a.epoch);
    const acc = this.acc;
    if (acc !== null && a.epoch === acc.epoch) {
      if (a.committed) this.commitLocal('relayed allocation');
      return;
    }
    if ((acc !== null && a.epoch < acc.epoch) || a.epoch < this.acceptFloor) {
      this.counters.stale_allocation++;
      return;
    }
    const prior = this.bases();
    const priorEpoch = this.configsEpoch();
    this.acc = { epoch: a.epoch, master: a.master, members: a.members, ids: a.members.map((m) => m.id), owners: a.owners };
    this.addToChain(this.acc.ids);
    this.accAt = now;
    this.counters.allocations_accepted++;
    if (this.pending !== null && this.pending.epoch !== a.epoch) this.pending = null;
    this.persistNow();
    this.log.info(
      { epoch: a.epoch, master: a.master, from: p.id, perNode: perNode(a.owners), committed: a.committed },
      'allocation accepted',
    );
    this.sendBody({ kind: 'ack', ack: { acceptedEpoch: a.epoch, appliedEpoch: this.appliedEpoch, configs: prior, configsEpoch: priorEpoch } });
    if (a.committed) this.commitLocal('allocation');
  }

  /** Raise the highest epochs known. */
  private learn(seen: number, known: number): void {
    if (known > this.known) this.known = known;
    if (seen > this.seen) this.seen = seen;
    if (this.known > this.seen) this.seen = this.known;
  }

  /**
   * A peer reports having accepted `epoch`, needing quorums of `configs`:
   * count it toward our pending commit, which from now on needs those
   * quorums too when they are newer than what we forward by (the peer may
   * have helped commit an allocation we never saw).
   */
  private noteAccepted(id: number, epoch: number, configs: readonly number[][], configsEpoch: number): void {
    const pd = this.pending;
    if (pd === null || epoch !== pd.epoch) return;
    if (configsEpoch > this.ownEpoch()) {
      for (const c of configs) if (c.length > 0 && !pd.bases.some((x) => sameIds(x, c))) pd.bases.push(c);
    }
    pd.acked.add(id);
    this.checkCommit();
  }

  private checkCommit(): void {
    const pd = this.pending;
    if (pd === null || this.acc === null || this.acc.epoch !== pd.epoch) return;
    for (const basis of pd.bases) if (!quorate(basis, (id) => pd.acked.has(id))) return;
    this.pending = null;
    this.commitLocal('quorum accepted');
    const now = this.clock.now();
    const t = pd.trigger;
    this.log.info(
      {
        epoch: pd.epoch,
        perNode: perNode(this.acc.owners),
        commitMs: now - pd.issuedAt,
        reason: t.reason,
        ...(t.lastHeardMs !== undefined ? { takeoverMs: now - pd.issuedAt + t.lastHeardMs } : {}),
      },
      'allocation committed',
    );
    this.sendBody({ kind: 'commit', epoch: pd.epoch });
  }

  private commitLocal(why: string): void {
    const acc = this.acc;
    if (acc === null || (this.own !== null && this.own.epoch >= acc.epoch)) return;
    this.own = acc;
    this.chain = [];
    this.counters.commits++;
    this.persistNow();
    this.log.debug({ epoch: acc.epoch, why }, 'forwarding by new allocation');
  }

  // --- master ----------------------------------------------------------------

  private isAlive(p: Peer, now: number): boolean {
    return p.alive && now - p.lastHeard < this.deadtimeMs;
  }

  private isUp(id: number, now: number): boolean {
    if (id === this.nodeId) return true;
    const p = this.peers.get(id);
    return p !== undefined && this.isAlive(p, now);
  }

  /** Ready to take buckets and not leaving (what its heartbeat calls "active"). */
  private isActive(): boolean {
    return this.ready && !this.leaving;
  }

  /** Lowest id among live active nodes (this one included); -1 if none. */
  private electedMaster(now: number): number {
    let m = this.isActive() ? this.nodeId : Infinity;
    for (const p of this.peers.values()) {
      if (p.id < m && p.heard && p.state === MemberState.ACTIVE && this.isAlive(p, now)) m = p.id;
    }
    return m === Infinity ? -1 : m;
  }

  /**
   * The member lists whose quorum this node needs: its committed allocation's
   * and those of every allocation accepted since (any of them may have been
   * committed by a master this node has not heard from); before it knows a
   * committed allocation, the restored ones.
   */
  private bases(): number[][] {
    const out: number[][] = [];
    const add = (ids: number[]): void => {
      if (ids.length > 0 && !out.some((x) => sameIds(x, ids))) out.push(ids);
    };
    if (this.own !== null) add(this.own.ids);
    else for (const r of this.restored) add(r);
    for (const c of this.chain) add(c);
    return out;
  }

  private addToChain(ids: number[]): void {
    if (!this.chain.some((x) => sameIds(x, ids))) this.chain.push(ids);
  }

  /**
   * This node's bases plus those its live peers report: a configuration a
   * peer needs may have been committed by a master this node never heard
   * (a restarted peer remembers it only as a member list).
   */
  private fullBases(now: number): number[][] {
    const out = this.bases();
    const ownEpoch = this.ownEpoch();
    for (const p of this.peers.values()) {
      // a peer whose newest list is no newer than our committed allocation tells us nothing new
      // (and one back from a long absence must not hold the cluster to long-gone members)
      if (!this.isAlive(p, now) || p.configsEpoch <= ownEpoch) continue;
      for (const c of p.configs) if (c.length > 0 && !out.some((x) => sameIds(x, c))) out.push(c);
    }
    return out;
  }

  private quorateNow(now: number): boolean {
    for (const b of this.fullBases(now)) if (!quorate(b, (id) => this.isUp(id, now))) return false;
    return true;
  }

  private desiredMembers(now: number): AllocMember[] {
    const out: AllocMember[] = [];
    if (this.isActive()) out.push({ id: this.nodeId, weight: this.weight });
    for (const p of this.peers.values()) {
      if (p.heard && p.state === MemberState.ACTIVE && this.isAlive(p, now)) out.push({ id: p.id, weight: p.weight });
    }
    return out.sort((a, b) => a.id - b.id);
  }

  private masterStep(now: number): void {
    const master = this.electedMaster(now);
    const listening = now - this.startedAt < this.deadtimeMs;
    if (master !== this.lastMaster && !listening) {
      this.lastMaster = master;
      this.log.info({ master, epoch: this.ownEpoch() }, master === this.nodeId ? 'this node is master' : 'master elected');
    }
    // keep resending our pending allocation until a quorum has it
    const pd = this.pending;
    if (pd !== null && this.acc !== null && now - pd.lastSent >= this.keepaliveMs) {
      pd.lastSent = now;
      this.sendAllocation(this.acc, false);
    }
    if (master !== this.nodeId) return;
    // a (re)started node listens for a deadtime before deciding anything, to know who is alive
    if (listening) return;
    if (!this.quorateNow(now)) return;
    const acc = this.acc;
    const accEpoch = this.accEpoch();
    if (this.known > accEpoch) {
      // a newer allocation exists: while a live node holds one we would accept, wait for its relay
      for (const p of this.peers.values()) {
        if (this.isAlive(p, now) && p.accepted > accEpoch && p.accepted >= this.acceptFloor) return;
      }
    }
    const desired = this.desiredMembers(now);
    let reason = '';
    let lastHeardMs: number | undefined;
    if (acc === null) reason = 'first allocation';
    else if (this.known > accEpoch) reason = 'newer epoch unavailable';
    else if (!sameMembers(desired, acc.members)) {
      reason = 'membership changed';
      const gone = acc.ids.filter((id) => !desired.some((m) => m.id === id));
      for (const id of gone) {
        const p = this.peers.get(id);
        if (p !== undefined && !this.isAlive(p, now)) lastHeardMs = Math.max(lastHeardMs ?? 0, now - p.lastHeard);
      }
    } else {
      let peerSeen = 0;
      for (const p of this.peers.values()) if (this.isAlive(p, now)) peerSeen = Math.max(peerSeen, p.seen);
      if (peerSeen > accEpoch) reason = 'a peer knows a higher epoch';
      else if (this.own?.epoch !== accEpoch && now - this.accAt >= this.deadtimeMs) {
        // not committed after a deadtime: its master is gone, or a quorum it waits for never
        // will be (a configuration reported by a peer that has since died or left)
        reason = acc.master === this.nodeId ? 'commit stalled' : 'uncommitted allocation of another master';
      }
    }
    if (reason === '' || desired.length === 0) return;
    this.issue(desired, now, reason, lastHeardMs);
  }

  private issue(members: AllocMember[], now: number, reason: string, lastHeardMs: number | undefined): void {
    const term = Math.max(epochTerm(this.seen) + 1, this.issueFloorTerm);
    if (term > MAX_TERM) {
      this.log.warn({ seen: this.seen }, 'epoch space exhausted');
      return;
    }
    const epoch = makeEpoch(term, this.nodeId);
    const bases = this.fullBases(now);
    const owners = allocate(this.buckets, members, this.acc?.owners ?? null);
    const moved = this.acc === null ? this.buckets : countMoved(this.acc.owners, owners);
    this.acc = { epoch, master: this.nodeId, members, ids: members.map((m) => m.id), owners };
    this.addToChain(this.acc.ids);
    this.accAt = now;
    this.seen = epoch;
    this.known = epoch;
    this.staleSince = -1;
    this.counters.allocations_issued++;
    this.persistNow();
    this.pending = {
      epoch,
      bases,
      acked: new Set([this.nodeId]),
      lastSent: now,
      issuedAt: now,
      trigger: lastHeardMs === undefined ? { reason } : { reason, lastHeardMs },
    };
    this.log.info({ epoch, reason, perNode: perNode(owners), moved, bases: bases.length }, 'allocation issued');
    this.sendAllocation(this.acc, false);
    this.checkCommit();
  }

  // --- ownership -------------------------------------------------------------

  /** Recompute what this node forwards; tell the daemon when it changed. */
  private evaluate(now: number): void {
    const own = this.own;
    let epoch = own?.epoch ?? 0;
    let until = 0;
    let list = NONE;
    // stale: a newer allocation exists that this node lacks, or a newer one than it forwards by is committed
    const stale = this.known > this.accEpoch() || this.knownCommitted > epoch;
    if (own !== null && this.ready && !stale && !this.left) {
      until = Infinity;
      for (const b of this.fullBases(now)) until = Math.min(until, this.quorumUntil(b, now));
      if (until > now) {
        if (own.mine === undefined) {
          own.mine = [];
          for (let b = 0; b < this.buckets; b++) if (own.owners[b] === this.nodeId) own.mine.push(b);
        }
        list = own.mine;
      }
      const q = until > now;
      if (q !== this.wasQuorate) {
        this.wasQuorate = q;
        this.log.info({ epoch, members: own.ids }, q ? 'quorum regained' : 'quorum lost: not forwarding');
      }
    }
    if (list.length === 0) until = 0;
    if (this.leaving && !this.left) {
      // handed over when neither the committed nor the newest allocation has this node
      const handed = (own === null || !own.ids.includes(this.nodeId)) && (this.acc === null || !this.acc.ids.includes(this.nodeId));
      let alone = true;
      for (const p of this.peers.values()) if (p.state === MemberState.ACTIVE && this.isAlive(p, now)) alone = false;
      if (handed || alone) {
        this.left = true;
        list = NONE;
        until = 0;
        this.log.info({ epoch }, 'left the cluster');
      }
    }
    this.ownedUntil = until;
    if (epoch === this.ownedEpoch && (list === this.ownedList || (list.length === 0 && this.ownedList.length === 0))) return;
    const before = this.ownedList.length;
    const takeovers = list.length > 0 ? this.takeovers(list, now) : [];
    this.ownedEpoch = epoch;
    this.ownedList = list;
    this.ownedMask.fill(0);
    for (const b of list) this.ownedMask[b] = 1;
    if (list.length > 0) this.ownedFrom = own;
    if (before !== list.length) this.log.info({ epoch, buckets: list.length, before }, 'owned buckets changed');
    this.onApply(epoch, list.slice(), takeovers);
  }

  /** Buckets of `list` not forwarded before whose previous owner is dead, per owner. */
  private takeovers(list: readonly number[], now: number): Takeover[] {
    const prev = this.ownedFrom;
    if (prev === null || prev === this.own) return [];
    const per = new Map<number, number>();
    for (const b of list) {
      if (this.ownedMask[b] === 1) continue;
      const from = prev.owners[b]!;
      if (from === this.nodeId || from < 0) continue;
      const p = this.peers.get(from);
      if (p !== undefined && this.isAlive(p, now)) continue;
      per.set(from, (per.get(from) ?? 0) + 1);
    }
    return [...per].map(([from, buckets]) => ({ from, buckets, lastHeard: this.peers.get(from)?.lastHeard ?? -1 }));
  }

  /** The time until which `ids` stays quorate if nothing more is heard (now or earlier: not quorate). */
  private quorumUntil(ids: readonly number[], now: number): number {
    if (ids.length === 0) return Infinity;
    // expiry of each member if nothing more is heard (ids are sorted: exp[0] is the lowest id)
    const n = ids.length;
    const exp = ids.map((id) => {
      if (id === this.nodeId) return Infinity;
      const p = this.peers.get(id);
      return p !== undefined && this.isAlive(p, now) ? p.lastHeard + this.deadtimeMs : -Infinity;
    });
    const q = (t: number): boolean => {
      let c = 0;
      for (const e of exp) if (e > t) c++;
      return 2 * c > n || (2 * c === n && exp[0]! > t);
    };
    if (!q(now)) return now;
    const times = [...new Set(exp.filter((e) => e > now && e !== Infinity))].sort((a, b) => a - b);
    for (const t of times) if (!q(t)) return t;
    return Infinity;
  }

  // --- sending ---------------------------------------------------------------

  private sendHeartbeat(): void {
    this.sendBody({
      kind: 'heartbeat',
      heartbeat: {
        state: this.leaving ? MemberState.LEAVING : this.isActive() ? MemberState.ACTIVE : MemberState.JOINING,
        weight: this.weight,
        synced: this.synced,
        seenEpoch: this.seen,
        knownEpoch: this.known,
        acceptedEpoch: this.accEpoch(),
        committedEpoch: this.ownEpoch(),
        appliedEpoch: this.appliedEpoch,
        configs: this.bases(),
        configsEpoch: this.configsEpoch(),
      },
    });
  }

  /** Epoch of the newest allocation among bases(): the newest accepted, or the restored floor. */
  private configsEpoch(): number {
    return Math.max(this.accEpoch(), this.ownEpoch(), this.own === null ? this.acceptFloor : 0);
  }

  private sendAllocation(a: Alloc, committed: boolean): void {
    this.sendBody({
      kind: 'allocation',
      allocation: { epoch: a.epoch, master: a.master, buckets: this.buckets, members: a.members, owners: a.owners, committed },
    });
  }

  private sendBody(body: Body): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage({ sender: this.nodeId, incarnation: this.incarnation, seq: ++this.seq, body }, this.key);
    } catch (err) {
      // only an allocation or member lists too large for one datagram (see MAX_COORD_BUCKETS)
      if (this.counters.unsendable++ === 0) this.log.warn({ kind: body.kind, err: String(err) }, 'message too large to send');
      return;
    }
    this.counters.tx++;
    this.sendFn(bytes);
  }

  private persistNow(): void {
    this.persistFn({ epoch: this.accEpoch(), committedEpoch: this.ownEpoch(), configs: this.bases().map((x) => x.slice()) });
  }

  private accEpoch(): number {
    return this.acc?.epoch ?? 0;
  }

  private ownEpoch(): number {
    return this.own?.epoch ?? 0;
  }

  private stateName(): string {
    if (this.left) return 'left';
    if (this.leaving) return 'leaving';
    return this.ready ? 'active' : 'joining';
  }
}

function perNode(owners: Int32Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [id, n] of [...countOwners(owners)].sort((a, b) => a[0] - b[0])) out[String(id)] = n;
  return out;
}

function countMoved(a: Int32Array, b: Int32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}
