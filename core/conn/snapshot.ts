/**
 * The portable form of one connection entry: what ConnTable.snapshot() fills
 * and ConnTable.importSynced() accepts, and what the sync daemon puts on the
 * wire. Modelled on the IPVS sync message v1 (struct ip_vs_sync_v4/v6 in
 * net/netfilter/ipvs/ip_vs_sync.c): protocol, client/virtual/real addresses
 * and ports, firewall mark, state, flags (template, forwarding method) and
 * the remaining timeout. Owns the data shape and the result codes only.
 */
import { Fwd, type Family } from '../constants.js';

/** One reusable connection description. Allocate once, refill per entry. */
export class ConnSnapshot {
  /** Family of the client and virtual addresses. */
  family: Family = 4;
  /** IP protocol; 0 (IPPROTO_IP) for firewall-mark templates, as the kernel. */
  protocol = 0;
  /** Client address (for templates: the client network, masked). 4 words, see core/addr.ts. */
  readonly caddr = new Uint32Array(4);
  /** Virtual address (for firewall-mark templates: the mark as an address). */
  readonly vaddr = new Uint32Array(4);
  /** Real server address. */
  readonly daddr = new Uint32Array(4);
  /** Family of the real server address (differs from `family` only for TUN across families). */
  dfamily: Family = 4;
  cport = 0;
  vport = 0;
  /** Real server port (real server's port, or the virtual port when that is 0). */
  dport = 0;
  /** Forwarding method of the entry. */
  fwd: Fwd = Fwd.DR;
  /** Protocol state (TcpState for TCP, 0 for others and templates). */
  state = 0;
  /** Remaining time before expiry, ms. In an import, 0 means "delete it". */
  timeoutMs = 0;
  /** Persistence template (IP_VS_CONN_F_TEMPLATE). */
  template = false;
  /** Firewall mark the entry was created with; 0 = none. */
  fwmark = 0;
  /** Set by snapshot(): the entry was received by sync (IP_VS_CONN_F_SYNC). Ignored by import. */
  synced = false;
  /** Inbound packets counted on the entry. */
  packets = 0;
  /** Import only: delete the entry instead of creating or updating it. */
  remove = false;

  /** Back to the defaults (all zero). */
  reset(): void {
    this.family = 4;
    this.protocol = 0;
    this.caddr.fill(0);
    this.vaddr.fill(0);
    this.daddr.fill(0);
    this.dfamily = 4;
    this.cport = 0;
    this.vport = 0;
    this.dport = 0;
    this.fwd = Fwd.DR;
    this.state = 0;
    this.timeoutMs = 0;
    this.template = false;
    this.fwmark = 0;
    this.synced = false;
    this.packets = 0;
    this.remove = false;
  }

  /** Copy another snapshot into this one. */
  copyFrom(o: ConnSnapshot): void {
    this.family = o.family;
    this.protocol = o.protocol;
    this.caddr.set(o.caddr);
    this.vaddr.set(o.vaddr);
    this.daddr.set(o.daddr);
    this.dfamily = o.dfamily;
    this.cport = o.cport;
    this.vport = o.vport;
    this.dport = o.dport;
    this.fwd = o.fwd;
    this.state = o.state;
    this.timeoutMs = o.timeoutMs;
    this.template = o.template;
    this.fwmark = o.fwmark;
    this.synced = o.synced;
    this.packets = o.packets;
    this.remove = o.remove;
  }
}

/** Outcome of ConnTable.importSynced(). Rejections are counted, never thrown. */
export const ImportResult = {
  /** A new synced entry was created. */
  CREATED: 0,
  /** An existing entry's state, timeout (and real server, if it changed) were updated. */
  UPDATED: 1,
  /** The entry was deleted (remove request or zero timeout). */
  REMOVED: 2,
  /** Remove request or zero timeout for an entry we do not have: nothing to do. */
  NOT_FOUND: 3,
  /** No virtual service matches (protocol, VIP, port) or the firewall mark. */
  REJECT_NO_SERVICE: 4,
  /** The service has no real server (or fallback) with that address and port. */
  REJECT_NO_DEST: 5,
  /** State out of range for the protocol, or a template with a state. */
  REJECT_BAD_STATE: 6,
  /** The table (or its VIP table) is full. */
  REJECT_FULL: 7,
} as const;
export type ImportResult = (typeof ImportResult)[keyof typeof ImportResult];
