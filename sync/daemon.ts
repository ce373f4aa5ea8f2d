/**
 * The saru-syncd daemon: wires the reliability engine (sync/node.ts) to its
 * adapters: the UDP transport (sync/transport.ts), the local `saru` over its
 * control socket (sync/director-link.ts), real timers, and a status socket
 * for `saruadm --sync`. Owns the start-up order and what a (re)connection to
 * saru means: on the first connection the node starts (discovery, then a
 * bulk resync from a synced peer); after saru restarts, its table is new,
 * so the node resyncs again, and saru joins the cluster once SyncReady says
 * the table is complete (wait_for_sync). It forwards no packets.
 */
import { ErrorCode, SaruError, processClock, type Clock } from '../core/index.js';
import { ControlServer, loadClusterKey, type ControlRequest, type ControlResponse, type Counter, type Logger } from '../saru/index.js';
import type { SyncInfo, SyncPeerInfo } from '../saru/control.js';
import { SyncCodec } from './codec.js';
import type { SyncConfig } from './config.js';
import { DirectorLink } from './director-link.js';
import { SyncNode } from './node.js';
import { UdpSyncTransport } from './transport.js';
import type { SyncTimers } from './types.js';

export interface SyncDaemonDeps {
  log: Logger;
  /** Wall clock in ms for the incarnation (default Date.now). */
  wallMs?: () => number;
  /** Monotonic clock (default processClock). */
  clock?: Clock;
}

/** Numbers and booleans of a plain object as counters (nested objects skipped). */
function toCounters(obj: object, prefix = ''): Counter[] {
  const out: Counter[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'number' && Number.isFinite(v)) out.push({ name: prefix + k, value: v });
    else if (typeof v === 'boolean') out.push({ name: prefix + k, value: v ? 1 : 0 });
  }
  return out;
}

export class SyncDaemon {
  private readonly log: Logger;
  private readonly clock: Clock;
  readonly incarnation: number;
  private codec: SyncCodec | null = null;
  private transport: UdpSyncTransport | null = null;
  private node: SyncNode | null = null;
  private link: DirectorLink | null = null;
  private status: ControlServer | null = null;
  private epoch = 0;
  private stopped = false;
  private nodeStarted: Promise<void> | null = null;
  /** Records given to the node, and that count when the current subscription began (SyncAcked numbering). */
  private submitted = 0;
  private subscriptionBase = 0;

  constructor(
    private readonly config: SyncConfig,
    private readonly deps: SyncDaemonDeps,
  ) {
    this.log = deps.log;
    this.clock = deps.clock ?? processClock;
    this.incarnation = Math.floor((deps.wallMs ?? Date.now)());
  }

  /**
   * Load the key, open the status socket and start connecting to saru. The
   * transport and the node start on the first connection to saru.
   * @throws SaruError SARU_ERR_CONFIG (key file), SARU_ERR_CONTROL (status socket in use).
   */
  async start(): Promise<void> {
    const cfg = this.config;
    const key = loadClusterKey(cfg.authkeys);
    this.codec = new SyncCodec({ key, maxDatagramBytes: cfg.maxDatagramBytes });
    this.status = new ControlServer(cfg.statusSocket, (req) => this.handle(req), this.log.child({ component: 'status' }));
    await this.status.start();
    this.link = new DirectorLink(
      { socket: cfg.controlSocket, syncThreshold: cfg.syncThreshold, syncPeriod: cfg.syncPeriod },
      {
        log: this.log.child({ component: 'director-link' }),
        onRecords: (batch, epoch) => {
          if (epoch !== this.epoch) {
            this.epoch = epoch;
            this.node?.setEpoch(epoch);
          }
          if (this.node) {
            this.node.submit(batch);
            this.submitted += batch.count;
          }
        },
        onConnect: (first) => {
          this.subscriptionBase = this.submitted;
          void this.checkNodeId();
          if (first) {
            this.nodeStarted = this.startNode().catch((e: Error) => {
              this.log.fatal({ err: e.message }, 'cannot start the sync transport');
              this.onFatal(e);
            });
          } else {
            this.log.info({}, 'saru restarted: resyncing its table from peers');
            void this.nodeStarted?.then(() => this.node?.resync());
          }
        },
        // saru's table is gone with it: stop being anyone's resync source until a resync into the next saru completes.
        onDisconnect: () => void this.nodeStarted?.then(() => this.node?.localLost()),
      },
    );
    this.link.start();
    this.log.info(
      { nodeId: cfg.nodeId, incarnation: this.incarnation, controlSocket: cfg.controlSocket, statusSocket: cfg.statusSocket },
      'saru-syncd started; waiting for saru',
    );
  }

  /** saru-syncd.conf's node_id must be the local saru's: peers tell directors apart by it. */
  private async checkNodeId(): Promise<void> {
    let id: number;
    try {
      id = await this.link!.directorNodeId();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot read the local saru\'s node_id');
      return;
    }
    if (id !== this.config.nodeId) {
      const e = new SaruError(
        ErrorCode.CONFIG,
        `${this.config.file}: node_id ${this.config.nodeId} differs from the local saru's node_id ${id}; they must be the same`,
      );
      this.log.fatal({ err: e.message }, 'wrong node_id');
      this.onFatal(e);
    }
  }

  /** Called when the daemon cannot go on (the transport failed to open, or node_id is not saru's). */
  onFatal: (e: Error) => void = () => {};

  private async startNode(): Promise<void> {
    const cfg = this.config;
    const timers: SyncTimers = {
      clock: this.clock,
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const nodeLog = this.log.child({ component: 'node' });
    const link = this.link!;
    this.transport = new UdpSyncTransport(
      { ifname: cfg.interface, group: cfg.mcastGroup, port: cfg.mcastPort, ttl: cfg.mcastTtl, peers: cfg.peers },
      { onMessage: (bytes, from) => this.node?.receive(bytes, from), log: this.log.child({ component: 'transport' }) },
    );
    this.node = new SyncNode(
      {
        nodeId: cfg.nodeId,
        incarnation: this.incarnation,
        flushIntervalMs: cfg.flushIntervalMs,
        aliveIntervalMs: cfg.aliveIntervalMs,
        ringDatagrams: cfg.ringDatagrams,
      },
      {
        codec: this.codec!,
        transport: this.transport,
        local: {
          inject: (b) => link.inject(b),
          dump: (cursor, max) => link.dump(cursor, max),
          ready: (synced) => link.ready(synced),
          // The node counts records since it was built; saru since this subscription began.
          acked: (records) => link.acked(records - this.subscriptionBase),
        },
        timers,
        log: nodeLog,
      },
    );
    await this.transport.start();
    if (this.stopped) {
      await this.transport.stop();
      return;
    }
    this.node.setEpoch(this.epoch);
    this.node.start();
    this.log.info(
      { mode: cfg.peers ? 'unicast' : 'multicast', address: this.transport.address, group: cfg.peers ? undefined : `${cfg.mcastGroup}:${cfg.mcastPort}` },
      'sync transport open',
    );
  }

  /**
   * SIGHUP: re-read what can change at run time (the sync threshold and
   * period); other keys need a restart and are reported.
   */
  async reload(next: SyncConfig): Promise<void> {
    const cfg = this.config;
    const changed = (Object.keys(next) as Array<keyof SyncConfig>).filter(
      (k) => k !== 'file' && k !== 'syncThreshold' && k !== 'syncPeriod' && JSON.stringify(next[k]) !== JSON.stringify(cfg[k]),
    );
    if (changed.length > 0) this.log.warn({ keys: changed }, 'these keys change only with a restart of saru-syncd');
    if (next.syncThreshold !== cfg.syncThreshold || next.syncPeriod !== cfg.syncPeriod) {
      await this.link!.setSyncPolicy(next.syncThreshold, next.syncPeriod);
      cfg.syncThreshold = next.syncThreshold;
      cfg.syncPeriod = next.syncPeriod;
      this.log.info({ syncThreshold: next.syncThreshold, syncPeriod: next.syncPeriod }, 'sync threshold changed');
    }
  }

  private async handle(req: ControlRequest): Promise<ControlResponse> {
    if (req.syncStatus) return { sync: this.info() };
    return { errorCode: 'SARU_ERR_CONTROL', error: 'saru-syncd answers SyncStatus only (saruadm --sync); other requests go to saru' };
  }

  /** The status `saruadm --sync` prints. */
  info(): SyncInfo {
    const cfg = this.config;
    const counters: Counter[] = [];
    let peers: SyncPeerInfo[] = [];
    let synced = false;
    if (this.node) {
      const st = this.node.status() as unknown as Record<string, unknown> & { peers?: Array<Record<string, unknown>> };
      synced = this.node.synced;
      counters.push(...toCounters(st));
      peers = (st.peers ?? []).map((p) => ({
        nodeId: Number(p.nodeId ?? 0),
        address: String(p.address ?? ''),
        incarnation: Number(p.incarnation ?? 0),
        alive: p.alive === true,
        lastHeardMs: typeof p.lastHeardMs === 'number' ? p.lastHeardMs : -1,
        counters: toCounters(p).filter((c) => !['nodeId', 'incarnation', 'lastHeardMs', 'alive'].includes(c.name)),
      }));
    }
    if (this.codec) counters.push(...toCounters(this.codec.counters, 'codec.'));
    if (this.transport) counters.push(...toCounters(this.transport.counters(), 'transport.'));
    if (this.link) counters.push(...toCounters(this.link.counters, 'saru.'));
    return {
      nodeId: cfg.nodeId,
      incarnation: this.incarnation,
      synced,
      directorConnected: this.link?.connected ?? false,
      epoch: this.epoch,
      mode: cfg.peers ? 'unicast' : 'multicast',
      counters,
      peers,
    };
  }

  /** Stop everything this daemon opened. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.link?.stop();
    await this.nodeStarted;
    this.node?.stop();
    await this.transport?.stop();
    await this.status?.stop();
    this.log.info({}, 'saru-syncd stopped');
  }
}
