/**
 * saru-syncd's link to the local `saru` daemon: a control-socket client
 * (saru/control.proto) that subscribes to sync events, injects entries
 * received from peers, pages through the table for a resync and reports
 * SyncReady. It reconnects when `saru` restarts and says so (onConnect), so
 * the daemon can run a resync into the new, empty table. Owns the ordering:
 * injects and SyncReady go out in the order they were given, over one
 * connection whose requests saru answers in order, so SyncReady(true) is
 * handled only after every entry of the resync has been imported. It knows
 * nothing of the wire format or of peers.
 */
import { ErrorCode, SaruError, SYNC_RECORD } from '../core/index.js';
import { ControlClient, type ControlResponse } from '../saru/index.js';
import type { RecordBatch, SyncLocal } from './types.js';

export interface DirectorLinkInit {
  /** saru's control socket path. */
  socket: string;
  /** Sync threshold and period to subscribe with ("3 50"). */
  syncThreshold: number;
  syncPeriod: number;
  /** Pause between connection attempts, ms (default 500). */
  retryMs?: number;
  /** Records per SyncInject request at most (default 8192: 576 KiB, under the 1 MiB request limit). */
  maxInjectRecords?: number;
  /** Requests in flight at most (default 4). */
  maxInFlight?: number;
  /** Records waiting to be injected at most; more are dropped and counted (default 2,000,000: 144 MB). */
  maxQueuedRecords?: number;
}

export interface DirectorLinkDeps {
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; debug(o: object, m: string): void };
  /** Sync events raised by the local data plane, with its allocation epoch. */
  onRecords(batch: RecordBatch, epoch: number): void;
  /** Connected and subscribed; `first` is false after a reconnection (saru restarted: its table is new). */
  onConnect(first: boolean): void;
  /** The connection ended. */
  onDisconnect(): void;
  /** Connect function (tests); default ControlClient.connect. */
  connect?: (path: string) => Promise<ControlClient>;
}

export interface DirectorLinkCounters {
  connects: number;
  disconnects: number;
  eventRecords: number;
  eventBatches: number;
  injectRequests: number;
  injectedRecords: number;
  created: number;
  updated: number;
  removed: number;
  notFound: number;
  rejected: number;
  /** Records dropped because saru was not connected or the queue was full. */
  injectDropped: number;
  injectErrors: number;
  dumpRequests: number;
  readySent: number;
  queuedRecords: number;
  /** SyncAcked requests sent. */
  ackedSent: number;
}

type DumpPage = { batch: RecordBatch; next: number };
type Op =
  | { kind: 'inject'; batch: RecordBatch }
  | { kind: 'ready'; synced: boolean }
  | { kind: 'dump'; cursor: number; max: number; resolve: (p: DumpPage) => void; reject: (e: Error) => void };

/** The SyncLocal of the real daemon. */
export class DirectorLink implements SyncLocal {
  private client: ControlClient | null = null;
  private stopped = false;
  private everConnected = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly queue: Op[] = [];
  private inFlight = 0;
  private readonly retryMs: number;
  private readonly maxInjectRecords: number;
  private readonly maxInFlight: number;
  private readonly maxQueuedRecords: number;
  private syncThreshold: number;
  private syncPeriod: number;
  readonly counters: DirectorLinkCounters = {
    connects: 0, disconnects: 0, eventRecords: 0, eventBatches: 0, injectRequests: 0, injectedRecords: 0,
    created: 0, updated: 0, removed: 0, notFound: 0, rejected: 0, injectDropped: 0, injectErrors: 0,
    dumpRequests: 0, readySent: 0, queuedRecords: 0, ackedSent: 0,
  };

  constructor(
    private readonly init: DirectorLinkInit,
    private readonly deps: DirectorLinkDeps,
  ) {
    this.retryMs = init.retryMs ?? 500;
    this.maxInjectRecords = init.maxInjectRecords ?? 8192;
    this.maxInFlight = init.maxInFlight ?? 4;
    this.maxQueuedRecords = init.maxQueuedRecords ?? 2_000_000;
    this.syncThreshold = init.syncThreshold;
    this.syncPeriod = init.syncPeriod;
  }

  /** The highest SyncAcked sent on the current connection. */
  private ackSent = 0;

  /**
   * Tell saru that every live peer holds the first `records` records of this
   * subscription (SyncAcked; only when it grew). Not queued behind injects.
   */
  acked(records: number): void {
    const client = this.client;
    if (client === null || !(records > this.ackSent)) return;
    this.ackSent = records;
    this.counters.ackedSent++;
    client.request({ syncAcked: { records } }).catch((e: Error) => this.deps.log.debug({ err: e.message }, 'SyncAcked failed'));
  }

  /** Whether saru is connected and subscribed. */
  get connected(): boolean {
    return this.client !== null;
  }

  /** Start connecting (retrying every retryMs until stop()). */
  start(): void {
    this.stopped = false;
    void this.attempt();
  }

  /** Close the connection and stop retrying. */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.client?.close();
    this.client = null;
  }

  /**
   * Change the threshold and period (SIGHUP) and resubscribe with them.
   * @throws SaruError SARU_ERR_CONTROL when saru refuses them (the values stay as they were there).
   */
  async setSyncPolicy(threshold: number, period: number): Promise<void> {
    // Kept only once saru accepts them, so a reconnection never subscribes with refused values.
    if (this.client) await this.client.request({ syncSubscribe: { syncThreshold: threshold, syncPeriod: period } });
    this.syncThreshold = threshold;
    this.syncPeriod = period;
  }

  /**
   * The local saru's node_id (from its cluster status).
   * @throws SaruError SARU_ERR_CONTROL when saru is not connected or does not answer.
   */
  async directorNodeId(): Promise<number> {
    if (this.client === null) throw new SaruError(ErrorCode.CONTROL, 'saru is not connected');
    const res = await this.client.request({ clusterStatus: {} });
    return res.cluster?.nodeId ?? 0;
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    let client: ControlClient;
    try {
      client = await (this.deps.connect ?? ControlClient.connect)(this.init.socket);
    } catch (e) {
      this.deps.log.debug({ err: (e as Error).message }, 'saru not reachable; retrying');
      this.retry();
      return;
    }
    if (this.stopped) {
      client.close();
      return;
    }
    client.onPush = (res) => this.pushed(res);
    client.onClose = (e) => this.closed(client, e);
    try {
      await client.request({ syncSubscribe: { syncThreshold: this.syncThreshold, syncPeriod: this.syncPeriod } });
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message, socket: this.init.socket }, 'saru refused the sync subscription; retrying');
      client.onClose = () => {};
      client.close();
      this.retry();
      return;
    }
    if (this.stopped) {
      client.onClose = () => {};
      client.close();
      return;
    }
    this.client = client;
    this.ackSent = 0;
    this.counters.connects++;
    const first = !this.everConnected;
    this.everConnected = true;
    this.deps.log.info({ socket: this.init.socket, first }, 'connected to saru; subscribed to sync events');
    this.deps.onConnect(first);
    this.pump();
  }

  private retry(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.attempt();
    }, this.retryMs);
  }

  private closed(client: ControlClient, e: Error): void {
    if (this.client !== client) return;
    this.client = null;
    this.counters.disconnects++;
    this.inFlight = 0;
    // What was queued went to a table that is gone: the resync after reconnecting replaces it.
    this.dropQueue();
    if (!this.stopped) this.deps.log.warn({ err: e.message }, 'lost the connection to saru; reconnecting');
    this.deps.onDisconnect();
    this.retry();
  }

  private pushed(res: ControlResponse): void {
    const r = res.records;
    if (!r) return;
    const count = r.count;
    if (!(r.records instanceof Uint8Array) || r.records.length !== count * SYNC_RECORD.SIZE) {
      throw new SaruError(ErrorCode.CONTROL, `saru pushed ${r.records?.length ?? 0} bytes for ${count} sync records`);
    }
    this.counters.eventRecords += count;
    this.counters.eventBatches++;
    this.deps.onRecords({ bytes: r.records, count }, r.epoch);
  }

  /** Entries from peers: queued and sent in order (dropped and counted while saru is away). */
  inject(batch: RecordBatch): void {
    if (batch.count === 0) return;
    if (this.client === null || this.counters.queuedRecords + batch.count > this.maxQueuedRecords) {
      this.counters.injectDropped += batch.count;
      return;
    }
    this.queue.push({ kind: 'inject', batch });
    this.counters.queuedRecords += batch.count;
    this.pump();
  }

  /** SyncReady, after every inject given before it. Remembered only while connected (a new saru gets a new resync). */
  ready(synced: boolean): void {
    if (this.client === null) return;
    this.queue.push({ kind: 'ready', synced });
    this.pump();
  }

  /**
   * One page of saru's table, after every inject given before it (so a dump
   * holds what this node has acknowledged).
   * @throws SaruError SARU_ERR_CONTROL when saru is not connected or fails the request.
   */
  dump(cursor: number, max: number): Promise<DumpPage> {
    if (this.client === null) return Promise.reject(new SaruError(ErrorCode.CONTROL, 'saru is not connected'));
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'dump', cursor, max, resolve, reject });
      this.pump();
    });
  }

  private dropQueue(): void {
    for (const op of this.queue) {
      if (op.kind === 'inject') this.counters.injectDropped += op.batch.count;
      else if (op.kind === 'dump') op.reject(new SaruError(ErrorCode.CONTROL, 'lost the connection to saru'));
    }
    this.queue.length = 0;
    this.counters.queuedRecords = 0;
  }

  private pump(): void {
    const client = this.client;
    while (client !== null && this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'ready') {
        this.queue.shift();
        this.send(client, { syncReady: { synced: head.synced } }, 0);
        this.counters.readySent++;
        continue;
      }
      if (head.kind === 'dump') {
        this.queue.shift();
        this.sendDump(client, head);
        continue;
      }
      // Coalesce consecutive injects up to maxInjectRecords.
      const parts: RecordBatch[] = [];
      let n = 0;
      while (this.queue.length > 0 && n < this.maxInjectRecords) {
        const op = this.queue[0]!;
        if (op.kind !== 'inject') break;
        const room = this.maxInjectRecords - n;
        if (op.batch.count > room) {
          if (n > 0) break;
          // One batch larger than a request: send its first part, keep the rest at the head.
          const cut = room * SYNC_RECORD.SIZE;
          parts.push({ bytes: op.batch.bytes.subarray(0, cut), count: room });
          op.batch = { bytes: op.batch.bytes.subarray(cut), count: op.batch.count - room };
          n += room;
          break;
        }
        this.queue.shift();
        parts.push(op.batch);
        n += op.batch.count;
      }
      this.counters.queuedRecords -= n;
      const bytes = parts.length === 1 ? parts[0]!.bytes : concat(parts, n);
      this.counters.injectRequests++;
      this.send(client, { syncInject: { records: bytes, count: n } }, n);
    }
  }

  private sendDump(client: ControlClient, op: Extract<Op, { kind: 'dump' }>): void {
    this.inFlight++;
    this.counters.dumpRequests++;
    client.request({ syncDump: { cursor: op.cursor, max: op.max } }, 30000).then(
      (res) => {
        if (this.client === client) this.inFlight--;
        const r = res.records;
        if (!r || !(r.records instanceof Uint8Array) || r.records.length !== r.count * SYNC_RECORD.SIZE) {
          op.reject(new SaruError(ErrorCode.CONTROL, 'saru sent a malformed dump page'));
        } else {
          op.resolve({ batch: { bytes: r.records, count: r.count }, next: r.next });
        }
        this.pump();
      },
      (e: Error) => {
        if (this.client === client) this.inFlight--;
        op.reject(e);
        this.pump();
      },
    );
  }

  private send(client: ControlClient, req: Parameters<ControlClient['request']>[0], records: number): void {
    this.inFlight++;
    client.request(req, 30000).then(
      (res) => {
        if (this.client !== client) return;
        this.inFlight--;
        const r = res.inject;
        if (r) {
          this.counters.injectedRecords += records;
          this.counters.created += r.created;
          this.counters.updated += r.updated;
          this.counters.removed += r.removed;
          this.counters.notFound += r.notFound;
          this.counters.rejected += r.rejected;
        }
        this.pump();
      },
      (e: Error) => {
        if (this.client !== client) return;
        this.inFlight--;
        this.counters.injectErrors++;
        this.deps.log.warn({ err: e.message }, 'request to saru failed');
        this.pump();
      },
    );
  }
}

function concat(parts: RecordBatch[], count: number): Uint8Array {
  const out = new Uint8Array(count * SYNC_RECORD.SIZE);
  let off = 0;
  for (const p of parts) {
    out.set(p.bytes, off);
    off += p.bytes.length;
  }
  return out;
}
