/**
 * The `saru` director daemon. Owns the lifecycle of one director: the
 * control socket, the data-plane worker, the host-stack rules, the
 * neighbour resolver, the cluster agent (the coordinator on real sockets;
 * none with `static_slice`), the real-server health checks (saru/health/agent.ts,
 * whose results reach the data plane as a diff), and reloads of the services
 * file (ldirectord.cf or keepalived.conf; SIGHUP, saruadm --reload, or
 * ldirectord's autoreload) as a diff. Start order is control socket (fails fast when another daemon owns
 * the path), data plane (fails fast on a missing interface or permission),
 * host stack, neighbours, cluster agent (owning nothing until an allocation
 * is committed); stop undoes it in reverse and removes every rule and address
 * it added. A graceful stop first leaves the cluster: it hands its buckets
 * over and finishes its own connections in them (bounded by drain_timeout).
 */
import { dirname, join } from 'node:path';
import { readFileSync, statSync } from 'node:fs';
import {
  ErrorCode,
  SENSE_NAMES,
  SaruError,
  ServiceTable,
  formatBucketRanges,
  addService,
  configError,
  loadServicesFile,
  type ServicesFile,
  type ServicesLoadOptions,
  IpAddress,
  processClock,
  type CheckRunner,
  type ReconcileResult,
  type ServiceInitPair,
} from '../core/index.js';
import { createCheckRunner } from './health/checkers.js';
import { HealthAgent } from './health/agent.js';
import { formatHealth } from './adm-format.js';
import type { SaruConfig } from './config.js';
import { ControlServer, type ClusterInfo, type ControlRequest, type ControlResponse, type ControlSession, type Counter } from './control.js';
import { DataplaneHost } from './dataplane-host.js';
import { HostStack, type CommandRunner } from './hoststack.js';
import type { Logger } from './log.js';
import { NeighbourResolver } from './neighbour.js';
import { ClusterAgent, type ClusterAgentDeps } from './cluster.js';

export interface DirectorDeps {
  log: Logger;
  run: CommandRunner;
  /** Monotonic ms, for uptime. */
  now: () => number;
  /** Runs health checks; default the network checkers (saru/health/checkers.ts). */
  checkRunner?: CheckRunner;
}

/** How often a draining leave checks what is left, ms. */
const DRAIN_POLL_MS = 200;
/** How often autoreload looks at the services file, ms (ldirectord looks once per check loop). */
const AUTORELOAD_POLL_MS = 1000;

/** A file's identity for change detection: mtime, size and inode ("" when unreadable). */
function fileStamp(file: string): string {
  try {
    const st = statSync(file);
    return `${st.mtimeMs}|${st.size}|${st.ino}`;
  } catch {
    return '';
  }
}

/**
 * Read and validate a services file (ldirectord.cf or keepalived.conf):
 * parsed, mapped to service inits, and tried on a scratch table with every
 * real server up, so a reload applies all or nothing.
 * @throws SaruError SARU_ERR_CONFIG with file and line (or the read error),
 *   or the service model's error for a semantically invalid service (named
 *   with the file and line of its definition).
 */
export function loadServices(file: string, opts: ServicesLoadOptions = {}): ServicesFile {
  const loaded = loadServicesFile(file, opts);
  validatedTable(loaded);
  return loaded;
}

/**
 * The services of a loaded file in a scratch table, every real server up
 * (what `saru --check` lists).
 * @throws SaruError SARU_ERR_CONFIG naming the file and line of the service
 *   the service model refuses.
 */
export function validatedTable(loaded: ServicesFile): ServiceTable {
  const scratch = new ServiceTable();
  for (const cs of loaded.services) {
    try {
      addService(scratch, cs);
    } catch (e) {
      throw configError(cs.file, cs.line, (e as Error).message);
    }
  }
  return scratch;
}

/** Every address the data plane may forward to: all configured real servers and fallbacks, up or not. */
export function configuredAddresses(file: ServicesFile): string[] {
  const out = new Set<string>();
  for (const cs of file.services) {
    for (const rs of cs.realServers) out.add(IpAddress.parse(rs.address).text);
    if (cs.service.fallback) out.add(IpAddress.parse(cs.service.fallback.address).text);
  }
  return [...out];
}

/** The VIPs of a service set (firewall-mark services have none). */
export function serviceVips(inits: readonly ServiceInitPair[]): IpAddress[] {
  const seen = new Map<string, IpAddress>();
  for (const { service } of inits) {
    if (service.address === undefined) continue;
    const a = IpAddress.parse(service.address);
    seen.set(a.text, a);
  }
  return [...seen.values()];
}

/** Bucket numbers as sorted inclusive ranges. */
export function bucketRanges(buckets: readonly number[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const b of [...new Set(buckets)].sort((x, y) => x - y)) {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === b - 1) last[1] = b;
    else ranges.push([b, b]);
  }
  return ranges;
}

function counters(rec: Record<string, number>): Counter[] {
  return Object.entries(rec).map(([name, value]) => ({ name, value }));
}

export class Director {
  private readonly log: Logger;
  private control: ControlServer | null = null;
  private dataplane: DataplaneHost | null = null;
  private hostStack: HostStack | null = null;
  private neighbours: NeighbourResolver | null = null;
  /** The services file as loaded (configured services with their checks). */
  private servicesFile: ServicesFile | null = null;
  /** The services the data plane runs: the configured ones with health applied. */
  private services: ServiceInitPair[] = [];
  private health: HealthAgent | null = null;
  private autoreloadTimer: ReturnType<typeof setInterval> | null = null;
  private servicesStamp = '';
  private owned: number[] = [];
  private agent: ClusterAgent | null = null;
  private startedAt = 0;
  private hurry = false;
  private ioMode = '';
  private stopped = false;
  /** Called when the data plane dies under us: the daemon must exit (fate sharing). */
  onFatal: (e: Error) => void = () => {};

  constructor(
    private readonly config: SaruConfig,
    private readonly deps: DirectorDeps,
  ) {
    this.log = deps.log.child({ component: 'director' });
  }

  /**
   * Start forwarding.
   * @throws SaruError SARU_ERR_CONFIG (services file), SARU_ERR_CONTROL (socket
   *   in use), SARU_ERR_NO_SUCH_INTERFACE / NOT_PERMITTED / UNSUPPORTED_PLATFORM
   *   (packet socket), SARU_ERR_IO / NOT_PERMITTED (nft, ip). What was set up
   *   before the failure is undone.
   */
  async start(): Promise<void> {
    const cfg = this.config;
    this.startedAt = this.deps.now();
    this.servicesFile = loadServices(cfg.services, this.servicesOptions());
    this.servicesStamp = fileStamp(cfg.services);
    this.logIgnored(this.servicesFile);
    this.health = new HealthAgent(
      { enabled: cfg.healthChecks, maxParallel: cfg.checkParallel },
      { log: this.deps.log, run: this.deps.checkRunner ?? createCheckRunner({ log: this.deps.log.child({ component: 'health' }) }), apply: (inits) => this.applyServices(inits) },
    );
    this.services = this.health.setServices(this.servicesFile.services);
    // with a coordinator, nothing is owned until an allocation is committed
    this.owned = cfg.staticSlice ?? [];
    try {
      this.control = new ControlServer(cfg.controlSocket, (req, session) => this.handle(req, session), this.deps.log.child({ component: 'control' }));
      await this.control.start();

      this.dataplane = new DataplaneHost(cfg.interface, cfg.ioMode, {
        buckets: cfg.buckets,
        sense: cfg.sense,
        owned: this.owned,
        epoch: 0,
        services: this.services,
        connTableSize: cfg.connTableSize,
        midFlow: cfg.midFlow,
        batchSize: cfg.batchSize,
        socketFilter: cfg.socketFilter,
      });
      this.dataplane.onFailure = (e) => {
        this.log.error({ err: e.message }, 'data plane stopped');
        this.onFatal(e);
      };
      const ready = await this.dataplane.ready;
      this.ioMode = ready.ioMode;
      this.log.info(
        { interface: cfg.interface, mtu: ready.mtu, filterInsns: ready.filterInsns, filterError: ready.filterError || undefined },
        'data plane running',
      );

      this.warnIfForwarding();
      this.hostStack = new HostStack({ table: cfg.nftTable, interface: cfg.interface, addedFile: join(dirname(cfg.controlSocket), `${cfg.nftTable}.vips`) }, { run: this.deps.run, log: this.deps.log.child({ component: 'hoststack' }) });
      await this.applyHostStack();

      this.neighbours = new NeighbourResolver(
        { interface: cfg.interface, refreshMs: cfg.neighbourRefreshMs },
        {
          run: this.deps.run,
          log: this.deps.log.child({ component: 'neighbour' }),
          onChange: (macs) => {
            const entries = [...macs].map(([address, mac]) => ({ address, mac }));
            const body: { entries: typeof entries; gateway4?: string; gateway6?: string } = { entries };
            if (cfg.gateway) body.gateway4 = cfg.gateway.text;
            if (cfg.gateway6) body.gateway6 = cfg.gateway6.text;
            this.dataplane?.request('neigh', body).catch((e: Error) => this.log.warn({ err: e.message }, 'neighbour update failed'));
          },
        },
      );
      this.neighbours.setAddresses(this.neighbourAddresses());
      this.neighbours.start();
      this.health.start();
      this.watchServices();

      if (cfg.coordinator !== null) {
        const dp = this.dataplane;
        const agentDeps: ClusterAgentDeps = {
          log: this.deps.log,
          clock: processClock,
          wallNow: () => Date.now(),
          applySlice: async (u) => {
            // the newest decided set: the host stack (echo ownership, also on reload) follows it
            this.owned = u.owned;
            await dp.request('slice', { owned: u.owned, epoch: u.epoch, change: { handOver: u.handOver, leaseUntil: u.leaseUntil } });
          },
          applyHost: () => this.applyHostStack(),
          lease: (until) => {
            dp.request('lease', { until }).catch((e: Error) => this.log.warn({ err: e.message }, 'lease update failed'));
          },
        };
        this.agent = new ClusterAgent(
          { nodeId: cfg.nodeId, buckets: cfg.buckets, interface: cfg.interface, clusterInterface: cfg.clusterInterface, coordinator: cfg.coordinator },
          agentDeps,
        );
        await this.agent.start();
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.log.info(
      {
        nodeId: cfg.nodeId,
        sense: SENSE_NAMES[cfg.sense],
        buckets: cfg.buckets,
        slice: cfg.staticSlice ? this.sliceText() : 'from the coordinator',
        services: this.services.length,
      },
      'director started',
    );
  }

  /**
   * The kernel must not route on the data interface: with forwarding on, every
   * director's kernel would also forward NAT return traffic, un-rewritten
   * (docs/filter.md). Said loudly, not changed: the sysctl is the operator's.
   */
  private warnIfForwarding(): void {
    for (const [family, path] of [
      ['IPv4', `/proc/sys/net/ipv4/conf/${this.config.interface}/forwarding`],
      ['IPv6', `/proc/sys/net/ipv6/conf/${this.config.interface}/forwarding`],
    ] as const) {
      try {
        if (readFileSync(path, 'utf8').trim() === '1') {
          this.log.warn({ interface: this.config.interface, family }, `${family} forwarding is on for the data interface: the kernel would route NAT replies itself; set it to 0`);
        }
      } catch {
        // no such sysctl (IPv6 disabled): nothing to check
      }
    }
  }

  private sliceText(): string {
    return formatBucketRanges(bucketRanges(this.owned));
  }

  /** Real servers (all configured ones, up or not: one coming back needs no new resolution) and gateways. */
  private neighbourAddresses(): string[] {
    const out = this.servicesFile ? configuredAddresses(this.servicesFile) : [];
    if (this.config.gateway) out.push(this.config.gateway.text);
    if (this.config.gateway6) out.push(this.config.gateway6.text);
    return out;
  }

  private async applyHostStack(): Promise<void> {
    await this.hostStack!.apply({ table: this.config.nftTable, vips: serviceVips(this.services), buckets: this.config.buckets, echoOwned: bucketRanges(this.owned) });
  }

  /**
   * Re-read the services file and apply it as a diff: existing connections
   * continue; checkers of unchanged real servers keep their state. On an
   * error the running services stay as they were.
   * @throws SaruError from loadServices.
   */
  async reload(): Promise<ReconcileResult> {
    const stamp = fileStamp(this.config.services);
    const file = loadServices(this.config.services, this.servicesOptions());
    this.servicesStamp = stamp;
    this.servicesFile = file;
    this.logIgnored(file);
    this.health!.setServices(file.services);
    const r = (await this.health!.apply())!;
    await this.applyHostStack();
    this.neighbours?.setAddresses(this.neighbourAddresses());
    void this.neighbours?.refresh();
    this.log.info({ added: r.added, removed: r.removed, updated: r.updated }, 'services reloaded');
    this.watchServices();
    return r;
  }

  /** Give the data plane a service set (the health agent's queue calls this). */
  private async applyServices(inits: ServiceInitPair[]): Promise<ReconcileResult | undefined> {
    const dp = this.dataplane;
    if (!dp) return undefined;
    const reply = await dp.request('services', { services: inits });
    this.services = inits;
    const r = reply.reconcile!;
    if (r.added.length + r.removed.length + r.updated.length > 0) this.log.debug({ updated: r.updated, added: r.added, removed: r.removed }, 'services applied');
    return r;
  }

  private servicesOptions(): ServicesLoadOptions {
    const c = this.config;
    return { format: c.servicesFormat, ...(c.keepalivedInstance !== null ? { instance: c.keepalivedInstance } : {}) };
  }

  /** keepalived.conf parts we accept but do not act on: said once per load. */
  private logIgnored(file: ServicesFile): void {
    for (const i of file.ignored) this.log.info({ file: i.file, line: i.line }, `ignored: ${i.what}`);
  }

  /**
   * ldirectord's autoreload=yes: look at the services file every
   * AUTORELOAD_POLL_MS and reload it when it changed (mtime, size or inode).
   * A broken edit is logged and the running services stay.
   */
  private watchServices(): void {
    const want = this.servicesFile?.autoreload === true;
    if (!want && this.autoreloadTimer) {
      clearInterval(this.autoreloadTimer);
      this.autoreloadTimer = null;
    }
    if (!want || this.autoreloadTimer) return;
    let failedStamp = '';
    this.autoreloadTimer = setInterval(() => {
      const stamp = fileStamp(this.config.services);
      if (stamp === this.servicesStamp || stamp === failedStamp) return;
      this.log.info({ file: this.config.services }, 'services file changed: reloading (autoreload)');
      this.reload().then(
        () => (failedStamp = ''),
        (e: Error) => {
          failedStamp = stamp;
          this.log.error({ err: e.message }, 'autoreload failed; keeping the running services');
        },
      );
    }, AUTORELOAD_POLL_MS);
    this.autoreloadTimer.unref();
  }

  /** The saru-syncd connection receiving sync events, if any. */
  private syncSession: ControlSession | null = null;
  /** Sync event batches dropped because the subscriber did not keep up. */
  private syncPushDropped = 0;
  /** Every record of the current subscription reached it, so its SyncAcked counts ours. */
  private syncAckNumbering = true;
  /** Counts subscriptions; the data plane tags records with the one they were raised for. */
  private syncGeneration = 0;

  /**
   * saru-syncd subscribes: sync events go to this session from now on (a
   * newer subscription replaces it), until it closes.
   */
  private async subscribeSync(session: ControlSession, threshold: number, period: number): Promise<void> {
    const dp = this.dataplane!;
    const previous = this.syncSession;
    this.syncSession = session;
    if (previous !== session) {
      this.syncAckNumbering = true;
      this.syncGeneration++;
    }
    const generation = this.syncGeneration;
    dp.onSyncRecords = (records, count, epoch, gen) => {
      // Records raised for an earlier subscriber are not this one's: they would skew its count (SyncAcked).
      if (gen !== this.syncGeneration) return;
      if (!this.syncSession?.push({ records: { records, count, epoch, next: -1 } })) {
        this.syncPushDropped++;
        // syncd's count of records no longer matches ours: its SyncAcked cannot be trusted on this session.
        this.syncAckNumbering = false;
      }
    };
    if (previous !== session) {
      session.onClose(() => {
        if (this.syncSession !== session) return;
        this.syncSession = null;
        this.log.info({}, 'saru-syncd unsubscribed (connection closed)');
        this.dataplane?.request('subscribe', { on: false }).catch(() => {});
      });
    }
    await dp.request('subscribe', { on: true, threshold, period, newSubscriber: previous !== session, generation });
    if (previous && previous !== session) this.log.info({}, 'sync subscriber replaced');
    this.log.info({ syncThreshold: threshold, syncPeriod: period }, 'saru-syncd subscribed to sync events');
  }

  private async handle(req: ControlRequest, session: ControlSession): Promise<ControlResponse> {
    const dp = this.dataplane;
    if (!dp) throw new SaruError(ErrorCode.CONTROL, 'director is starting');
    if (req.listServices) {
      const r = await dp.request('list', { stats: req.listServices.stats ?? false, rate: req.listServices.rate ?? false, exact: req.listServices.exact ?? false });
      return { text: r.text ?? '' };
    }
    if (req.listConnections) {
      const r = await dp.request('conns', { limit: req.listConnections.limit ?? 0 });
      return { text: r.text ?? '' };
    }
    if (req.clusterStatus) return { cluster: await this.cluster() };
    if (req.syncReady) {
      if (!this.agent) return { text: 'no coordinator (static_slice): nothing waits for sync\n' };
      this.agent.setSynced(req.syncReady.synced ?? false);
      return { text: `synced ${req.syncReady.synced ? 'yes' : 'no'}\n` };
    }
    if (req.syncSubscribe) {
      await this.subscribeSync(session, req.syncSubscribe.syncThreshold ?? 3, req.syncSubscribe.syncPeriod ?? 50);
      return { text: 'subscribed\n' };
    }
    if (req.syncInject) {
      // A copy of exactly these bytes: the decoded field is a view into the whole socket read buffer,
      // which posting it to the worker would clone entire.
      const records = new Uint8Array(req.syncInject.records ?? new Uint8Array(0));
      const r = await dp.request('inject', { bytes: records, count: req.syncInject.count ?? 0 });
      return { inject: r.inject! };
    }
    if (req.syncAcked) {
      if (session !== this.syncSession || !this.syncAckNumbering) return { text: 'ignored: not the sync subscriber, or records were dropped on the way\n' };
      const r = await dp.request('acked', { records: req.syncAcked.records ?? 0 });
      if (r.released) this.log.info({ buckets: r.released }, 'handed-over buckets released: their connections are synced to every peer');
      return { text: `released ${r.released ?? 0}\n` };
    }
    if (req.syncDump) {
      const r = await dp.request('dump', { cursor: req.syncDump.cursor ?? 0, max: req.syncDump.max || 8192 });
      const d = r.records!;
      return { records: { records: d.bytes, count: d.count, epoch: d.epoch, next: d.next } };
    }
    if (req.healthStatus) {
      const rows = this.health?.status() ?? [];
      const now = processClock.now();
      return { text: req.healthStatus.json ? `${JSON.stringify(rows)}\n` : formatHealth(rows, now, this.config.healthChecks) };
    }
    if (req.reload) {
      const r = await this.reload();
      return { text: `added ${r.added.length}, removed ${r.removed.length}, updated ${r.updated.length}, unchanged ${r.unchanged.length}\n` };
    }
    throw new SaruError(ErrorCode.CONTROL, 'unknown request');
  }

  /** This node's state for `saruadm --cluster`. */
  async cluster(): Promise<ClusterInfo> {
    const st = (await this.dataplane!.request('status', {})).status!;
    const cfg = this.config;
    return {
      nodeId: cfg.nodeId,
      interface: cfg.interface,
      clusterInterface: cfg.clusterInterface,
      buckets: cfg.buckets,
      sense: SENSE_NAMES[cfg.sense],
      epoch: st.epoch,
      slice: formatBucketRanges(st.ranges),
      ownedBuckets: st.owned,
      state: this.agent?.info()?.state ?? 'static',
      uptimeMs: this.deps.now() - this.startedAt,
      connections: st.connections,
      tableCapacity: st.tableCapacity,
      counters: counters({ ...st.counters, syncPushDropped: this.syncPushDropped }),
      drops: counters(st.drops),
      port: counters(st.port),
      ioMode: this.ioMode,
      filterInsns: st.filterInsns,
      unresolved: st.unresolved,
      drainingBuckets: st.draining,
      draining: formatBucketRanges(st.drainingRanges),
      drainingConnections: st.drainingConnections,
      leaseExpired: st.leaseExpired,
      coordinator: this.agent?.info() ?? null,
    };
  }

  /**
   * Leave the cluster gracefully: hand the buckets over, then keep finishing
   * this director's own connections in them until none is left, drain_timeout
   * passes, or hurry() is called (a second SIGTERM).
   */
  private async leave(): Promise<void> {
    const agent = this.agent;
    const c = this.config.coordinator;
    if (!agent || !c || !this.dataplane) return;
    const handed = await agent.leave(2 * c.deadtimeMs + 1000, () => this.hurry);
    if (!handed) return;
    const start = this.deps.now();
    let last = { draining: 0, drainingConnections: 0 };
    while (!this.hurry && this.deps.now() - start < c.drainTimeoutMs) {
      const st = (await this.dataplane.request('status', {})).status!;
      last = st;
      if (st.draining === 0) break;
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
    const ms = Math.round(this.deps.now() - start);
    if (last.draining === 0) this.log.info({ ms }, 'own connections in handed-over buckets finished');
    else this.log.warn({ ms, buckets: last.draining, connections: last.drainingConnections }, 'stopping with connections still draining');
  }

  /** Stop waiting in a graceful stop (a second SIGTERM or SIGINT). */
  hurryStop(): void {
    this.hurry = true;
  }

  /**
   * Stop forwarding and remove every filter, rule and address this director
   * set up. `graceful`: leave the cluster first (see leave()). Idempotent.
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (opts.graceful) {
      try {
        await this.leave();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'graceful leave failed');
      }
    }
    if (this.autoreloadTimer) clearInterval(this.autoreloadTimer);
    this.autoreloadTimer = null;
    this.health?.stop();
    await this.agent?.stop();
    this.neighbours?.stop();
    try {
      await this.dataplane?.stop();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'data plane stop failed');
    }
    try {
      await this.hostStack?.remove();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'host-stack rules could not be removed');
    }
    await this.control?.stop();
    this.log.info({ nodeId: this.config.nodeId }, 'director stopped');
  }
}
