/**
 * Persistence through templates, as ip_vs_sched_persist (net/netfilter/ipvs/
 * ip_vs_core.c) and ip_vs_check_template (ip_vs_conn.c): a new connection to
 * a persistent service first looks for the template of its client network;
 * a valid one gives the real server, otherwise the scheduler picks one and a
 * template is created with the service's persistent timeout. The connection
 * is linked to (controlled by) the template, which keeps the template alive
 * past its timeout while the connection lives; each use restarts the
 * template's timer.
 *
 * Template key (the kernel's ip_vs_conn_param for templates):
 *  - packet to the service's own port:  <protocol, masked CIP, 0, VIP, vport>
 *  - port-zero service:                 <protocol, masked CIP, 0, VIP, 0>
 *  - firewall-mark service:             <0 (IPPROTO_IP), masked CIP, 0, mark as address, 0>
 * where the client address is masked with the service's persistent netmask.
 *
 * Owns the template policy only; entries live in the ConnTable. Does not
 * allocate per connection (one scratch key).
 */
import { maskAddr } from '../addr.js';
import type { Clock } from '../clock.js';
import { FlowKey } from '../flow.js';
import type { VirtualService } from '../service.js';
import type { ConnTable } from './table.js';

/** Settings of the persistence engine. */
export interface PersistenceInit {
  /**
   * The sysctl expire_quiescent_template: when true, a template whose real
   * server has weight 0 is invalid (new connections are rescheduled). Default
   * false, as the kernel: quiescent servers keep their persistent clients.
   */
  expireQuiescentTemplate?: boolean;
}

/** Collaborators of the persistence engine. */
export interface PersistenceDeps {
  table: ConnTable;
  clock: Clock;
}

/** Counters of the persistence engine. */
export interface PersistenceCounters {
  /** Connections created through an existing valid template. */
  reused: number;
  /** Templates created. */
  templatesCreated: number;
  /** Templates found but invalid (real server removed, or quiescent with expireQuiescentTemplate). */
  invalidated: number;
  /** No template and the scheduler found no real server. */
  noDest: number;
  /** Template or connection could not be created: table full. */
  dropsFull: number;
}

/** Writes the template key of `flow` for `svc` into `key` (exported for tests and listings). */
export function templateKey(svc: VirtualService, flow: FlowKey, key: FlowKey): void {
  key.family = flow.family;
  key.protocol = flow.protocol;
  maskAddr(flow.family, flow.saddr, 0, svc.persistentPrefix, key.saddr, 0);
  key.sport = 0;
  key.fwmark = flow.fwmark;
  if (flow.dport === svc.port) {
    // Non-FTP template. (The kernel uses vport 0 for FTP, port 21; Saru has
    // no FTP helper, so port 21 is treated like any other port.)
    key.daddr.set(flow.daddr);
    key.dport = flow.dport;
  } else if (svc.fwmark !== 0) {
    key.protocol = 0;
    key.daddr.fill(0);
    // The kernel's `.ip = htonl(fwmark)`: an IPv4 address in our layout
    // (IPv4-mapped, value in word 3), or the first word of an IPv6 address.
    if (flow.family === 4) {
      key.daddr[2] = 0x0000ffff;
      key.daddr[3] = svc.fwmark >>> 0;
    } else {
      key.daddr[0] = svc.fwmark >>> 0;
    }
    key.dport = 0;
    key.fwmark = svc.fwmark;
  } else {
    key.daddr.set(flow.daddr);
    key.dport = 0;
  }
}

/** Persistence.schedule() result: no real server available (the fallback may take it). */
export const PERSIST_NO_DEST = -1;
/** Persistence.schedule() result: the connection table is full. */
export const PERSIST_FULL = -2;

/** The persistence engine used by the data plane on a new connection to a persistent service. */
export class Persistence {
  readonly counters: PersistenceCounters = { reused: 0, templatesCreated: 0, invalidated: 0, noDest: 0, dropsFull: 0 };
  private readonly table: ConnTable;
  private readonly clock: Clock;
  private readonly expireQuiescent: boolean;
  private readonly key = new FlowKey();

  constructor(init: PersistenceInit, deps: PersistenceDeps) {
    this.table = deps.table;
    this.clock = deps.clock;
    this.expireQuiescent = init.expireQuiescentTemplate ?? false;
  }

  /**
   * Create the connection for the first packet `flow` of a persistent
   * service `svc` (the caller has checked the table missed). Returns the new
   * connection's index, PERSIST_NO_DEST (-1) when no real server is available
   * (the caller may then use the service's fallback server), or PERSIST_FULL
   * (-2) when the table is full; both counted. The caller then runs
   * table.packet() for the packet.
   */
  schedule(svc: VirtualService, flow: FlowKey): number {
    const table = this.table;
    const key = this.key;
    templateKey(svc, flow, key);
    let t = table.lookupTemplate(key);
    if (t >= 0 && !table.checkTemplate(t, this.expireQuiescent)) {
      this.counters.invalidated++;
      t = -1;
    }
    let rs;
    if (t < 0) {
      rs = svc.scheduler !== null ? svc.scheduler.schedule(svc, flow, this.clock.now()) : null;
      if (rs === null) {
        this.counters.noDest++;
        return PERSIST_NO_DEST;
      }
      t = table.createTemplate(key, rs, svc.persistentTimeoutMs);
      if (t < 0) {
        this.counters.dropsFull++;
        return PERSIST_FULL;
      }
      this.counters.templatesCreated++;
    } else {
      rs = table.realServer(t);
      if (rs === undefined) {
        this.counters.noDest++;
        return PERSIST_NO_DEST;
      }
      this.counters.reused++;
    }
    const c = table.create(flow, rs, t);
    // ip_vs_conn_put(ct): the template's timer restarts on every use.
    table.touch(t, svc.persistentTimeoutMs);
    if (c < 0) {
      this.counters.dropsFull++;
      return PERSIST_FULL;
    }
    return c;
  }
}
