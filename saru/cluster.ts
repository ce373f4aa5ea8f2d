/**
 * The director's seat in the cluster: runs saru/coord's Coordinator on real
 * sockets and timers. Owns the cluster key and state file, the heartbeat
 * transport (multicast on the cluster and data networks), the tick loop,
 * and the translation of each new owned set into what the data plane needs:
 * the buckets to forward, the buckets handed over (draining: this director
 * finishes the connections it created there while the new owner takes new
 * ones), and the lease after which the data-plane thread stops forwarding by
 * itself. It logs every takeover with its duration (last heartbeat of the
 * dead director to this one forwarding its buckets). It does not touch
 * packets, the host stack or the control socket: the Director passes
 * callbacks for those.
 */
import type { Clock } from '../core/index.js';
import { Coordinator, type CoordinatorStatus, type PersistedState, type Takeover } from './coord/index.js';
import { ClusterTransport, loadClusterKey, loadCoordState, nextIncarnation, saveCoordState } from './coord-net.js';
import type { CoordinatorConfig } from './config.js';
import type { CoordinatorInfo } from './control.js';
import type { Logger } from './log.js';

/** What the data plane is told on every change of the owned set. */
export interface SliceUpdate {
  epoch: number;
  /** Buckets to forward, sorted. */
  owned: number[];
  /** Buckets a newer allocation moved to other directors: finish own connections there. */
  handOver: number[];
  /** Lease deadline on the agent's clock (Infinity: none). */
  leaseUntil: number;
}

/** The subset of ClusterTransport the agent uses (tests substitute their own). */
export interface Transport {
  start(): Promise<void>;
  send(bytes: Uint8Array): void;
  close(): Promise<void>;
}

export interface ClusterAgentDeps {
  log: Logger;
  /** Monotonic ms, the same in the data-plane thread (processClock). */
  clock: Clock;
  /** Wall-clock ms (Date.now): the floor of this run's incarnation. */
  wallNow: () => number;
  /** Program the data plane (resolves once it forwards by the new set). */
  applySlice: (u: SliceUpdate) => Promise<void>;
  /** Program the host stack for the owned set (ICMP echo ownership). */
  applyHost: (owned: number[]) => Promise<void>;
  /** Renew (or end) the data plane's lease. */
  lease: (until: number) => void;
  /** Build the transport; default a ClusterTransport on the two networks. */
  transport?: (onMessage: (bytes: Uint8Array, path: number) => void) => Transport;
}

export interface ClusterAgentInit {
  nodeId: number;
  buckets: number;
  /** Data interface (path 1) and cluster interface (path 0); equal: one path. */
  interface: string;
  clusterInterface: string;
  coordinator: CoordinatorConfig;
}

/** Longest wait between ticks, ms (the coordinator asks for less when it needs it). */
const MAX_TICK_MS = 50;
/** How often a waiting leave looks again, ms. */
const LEAVE_POLL_MS = 20;

export class ClusterAgent {
  private readonly log: Logger;
  private coord: Coordinator | null = null;
  private transport: Transport | null = null;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private lastLease = -1;
  private assigned: number[] = [];
  private assignedEpoch = 0;
  private hostChain: Promise<void> = Promise.resolve();
  private incarnation = 0;
  private stopped = false;

  constructor(
    private readonly init: ClusterAgentInit,
    private readonly deps: ClusterAgentDeps,
  ) {
    this.log = deps.log.child({ component: 'coord' });
  }

  /**
   * Read the key and the saved state, take a new incarnation (saved before
   * any heartbeat leaves), open the transport and start ticking.
   * @throws SaruError SARU_ERR_CONFIG (key file), SARU_ERR_IO (state file,
   *   sockets), SARU_ERR_NO_SUCH_INTERFACE (an interface without IPv4).
   */
  async start(): Promise<void> {
    const c = this.init.coordinator;
    const key = loadClusterKey(c.authkeys);
    const saved = loadCoordState(c.stateFile, this.log);
    this.incarnation = nextIncarnation(saved?.incarnation ?? null, this.deps.wallNow());
    const restore = saved?.state ?? null;
    saveCoordState(c.stateFile, { incarnation: this.incarnation, state: restore });
    const coord = new Coordinator(
      {
        nodeId: this.init.nodeId,
        weight: c.weight,
        incarnation: this.incarnation,
        buckets: this.init.buckets,
        keepaliveMs: c.keepaliveMs,
        deadtimeMs: c.deadtimeMs,
        joinDelayMs: c.waitForSync ? c.joinDelayMs : 0,
        key,
        restore,
      },
      {
        clock: this.deps.clock,
        send: (bytes) => this.transport?.send(bytes),
        log: this.log,
        onApply: (epoch, buckets, takeovers) => this.onApply(epoch, buckets, takeovers),
        persist: (state: PersistedState) => saveCoordState(c.stateFile, { incarnation: this.incarnation, state }),
      },
    );
    this.coord = coord;
    const onMessage = (bytes: Uint8Array, path: number): void => {
      if (this.stopped) return;
      coord.receive(bytes, path);
      // one tick per drained batch of datagrams
      this.immediate ??= setImmediate(() => {
        this.immediate = null;
        this.tick();
      });
    };
    this.transport = this.deps.transport
      ? this.deps.transport(onMessage)
      : new ClusterTransport(
          {
            group: c.mcastGroup,
            port: c.mcastPort,
            paths: this.init.clusterInterface === this.init.interface ? [{ ifname: this.init.clusterInterface }] : [{ ifname: this.init.clusterInterface }, { ifname: this.init.interface }],
          },
          { log: this.log, onMessage },
        );
    try {
      await this.transport.start();
    } catch (e) {
      this.transport = null;
      throw e;
    }
    this.tick();
  }

  /** saru-syncd finished (true) or lost (false) its bulk resync. */
  setSynced(synced: boolean): void {
    this.coord?.setSynced(synced);
    this.tick();
  }

  /**
   * Graceful leave: announce it and wait until an allocation without this
   * director is committed (or nobody is left to take over), at most
   * `timeoutMs` or until `hurry()` says stop waiting. Buckets stay forwarded
   * meanwhile; those handed over drain (see SliceUpdate.handOver).
   * @returns whether the handover completed.
   */
  async leave(timeoutMs: number, hurry: () => boolean): Promise<boolean> {
    const coord = this.coord;
    if (coord === null) return true;
    coord.leave();
    this.tick();
    const start = this.deps.clock.now();
    while (!coord.hasLeft() && !hurry() && this.deps.clock.now() - start < timeoutMs) {
      await new Promise((r) => setTimeout(r, LEAVE_POLL_MS));
    }
    if (coord.hasLeft()) this.log.info({ ms: Math.round(this.deps.clock.now() - start) }, 'buckets handed over');
    else this.log.warn({ ms: Math.round(this.deps.clock.now() - start) }, 'leave not acknowledged in time: peers take over after deadtime');
    return coord.hasLeft();
  }

  /** The coordinator's view for `saruadm --cluster`; null before start. */
  info(): CoordinatorInfo | null {
    const coord = this.coord;
    if (coord === null) return null;
    const st: CoordinatorStatus = coord.status();
    const until = coord.leaseUntil();
    return {
      master: st.master,
      isMaster: st.isMaster,
      epoch: st.epoch,
      epochMaster: st.epochMaster,
      acceptedEpoch: st.acceptedEpoch,
      appliedEpoch: st.appliedEpoch,
      quorate: st.quorate,
      stale: st.stale,
      ready: st.ready,
      state: st.state,
      weight: st.weight,
      incarnation: st.incarnation,
      keepaliveMs: coord.keepaliveMs,
      deadtimeMs: coord.deadtimeMs,
      leaseMs: until === Infinity ? -1 : Math.max(0, until - this.deps.clock.now()),
      members: st.members.map((m) => ({
        id: m.id,
        self: m.self,
        alive: m.alive,
        state: m.state,
        weight: m.weight,
        synced: m.synced,
        incarnation: m.incarnation,
        buckets: m.buckets,
        member: m.member,
        acceptedEpoch: m.acceptedEpoch,
        appliedEpoch: m.appliedEpoch,
        heartbeatAgeMs: m.lastHeartbeatAgeMs ?? -1,
        clusterPathAgeMs: m.pathAgeMs[0] ?? -1,
        dataPathAgeMs: m.pathAgeMs[1] ?? -1,
      })),
      counters: Object.entries(st.counters).map(([name, value]) => ({ name, value })),
    };
  }

  /** Stop ticking and close the sockets (peers declare this node dead after deadtime unless it left). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    await this.transport?.close();
    this.transport = null;
  }

  private tick(): void {
    const coord = this.coord;
    if (coord === null || this.stopped) return;
    try {
      coord.tick();
    } catch (e) {
      // a bug, not input (the coordinator never throws on datagrams): the lease stops the data plane
      this.log.error({ err: (e as Error).stack ?? String(e) }, 'coordinator tick failed');
    }
    const until = coord.leaseUntil();
    if (until !== this.lastLease) {
      this.lastLease = until;
      this.deps.lease(until);
    }
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.min(MAX_TICK_MS, Math.max(0, coord.nextDeadline() - this.deps.clock.now()));
    this.timer = setTimeout(() => this.tick(), Math.ceil(wait));
  }

  private onApply(epoch: number, owned: number[], takeovers: Takeover[]): void {
    const coord = this.coord!;
    let handOver: number[] = [];
    if (epoch > this.assignedEpoch) {
      // a newer allocation: what it moved away from this node is handed over, not dropped
      const now = new Set(owned);
      handOver = this.assigned.filter((b) => !now.has(b));
      this.assigned = owned;
      this.assignedEpoch = epoch;
    } else if (owned.length > 0) {
      this.assigned = owned;
    }
    const update: SliceUpdate = { epoch, owned, handOver, leaseUntil: coord.leaseUntil() };
    this.lastLease = update.leaseUntil;
    const dp = this.deps.applySlice(update).then(() => {
      const now = this.deps.clock.now();
      for (const t of takeovers) {
        this.log.info({ from: t.from, buckets: t.buckets, epoch, takeoverMs: t.lastHeard < 0 ? null : Math.round(now - t.lastHeard) }, 'takeover');
      }
    });
    const host = (this.hostChain = this.hostChain.then(() => this.deps.applyHost(owned)).catch((e: Error) => this.log.warn({ err: e.message }, 'host-stack update failed')));
    this.log.debug({ epoch, owned: owned.length, handOver: handOver.length }, 'applying allocation');
    Promise.all([dp, host]).then(
      () => {
        if (!this.stopped) coord.applied(epoch);
      },
      (e: Error) => {
        this.log.error({ err: e.message, epoch }, 'data plane did not take the new slice');
      },
    );
  }

  /** For tests: the coordinator (null before start). */
  get coordinator(): Coordinator | null {
    return this.coord;
  }
}
