/**
 * The flow key: the 5-tuple of one packet, filled in place by the parser and
 * read by the service lookup, schedulers, persistence and connection table.
 * One instance is reused for every packet; never keep a reference to it.
 */
import type { Family } from './constants.js';

export class FlowKey {
  family: Family = 4;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6). */
  protocol = 0;
  /** Source address, four words (see core/addr.ts). */
  readonly saddr = new Uint32Array(4);
  /** Source port (0 for ICMP). */
  sport = 0;
  /** Destination address, four words. */
  readonly daddr = new Uint32Array(4);
  /** Destination port (0 for ICMP). */
  dport = 0;
  /** Firewall mark assigned by the engine's classifier; 0 = none. */
  fwmark = 0;

  /** Copy another key into this one. */
  copyFrom(o: FlowKey): void {
    this.family = o.family;
    this.protocol = o.protocol;
    this.saddr.set(o.saddr);
    this.sport = o.sport;
    this.daddr.set(o.daddr);
    this.dport = o.dport;
    this.fwmark = o.fwmark;
  }
}
