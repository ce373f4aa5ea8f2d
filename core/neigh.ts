/**
 * Next-hop MAC addresses for frames the engine sends towards clients (NAT
 * return traffic, ICMP errors): a neighbour table filled from outside (the
 * ARP / neighbour-discovery resolver in saru/) and a default gateway MAC.
 * Real servers' MACs live on RealServer.mac. No I/O here.
 */
import { formatAddr } from './addr.js';
import type { Family } from './constants.js';

export class NeighbourTable {
  private readonly v4 = new Map<number, Uint8Array>();
  private readonly v6 = new Map<string, Uint8Array>();
  /** MAC of the IPv4 default gateway on the data segment, used when an IPv4 client has no entry. */
  gateway: Uint8Array | null = null;
  /** MAC of the IPv6 default gateway; null = use `gateway` for IPv6 clients too. */
  gateway6: Uint8Array | null = null;

  /** Record `mac` (6 bytes, copied) for the address at words[off..]. */
  set(family: Family, words: Uint32Array, off: number, mac: Uint8Array): void {
    const m = Uint8Array.from(mac.subarray(0, 6));
    if (family === 4) this.v4.set(words[off + 3]!, m);
    else this.v6.set(formatAddr(6, words, off), m);
  }

  /** Forget the entry for an address. */
  delete(family: Family, words: Uint32Array, off: number): void {
    if (family === 4) this.v4.delete(words[off + 3]!);
    else this.v6.delete(formatAddr(6, words, off));
  }

  /**
   * The MAC to send to for a destination address: its own entry, else the
   * gateway's of its family (gateway6 for IPv6 when set, else gateway), else null. IPv4 lookups do not allocate; IPv6 ones format a key
   * (IPv6 NAT return traffic pays one string per packet).
   */
  lookup(family: Family, words: Uint32Array, off: number): Uint8Array | null {
    const m = family === 4 ? this.v4.get(words[off + 3]!) : this.v6.size > 0 ? this.v6.get(formatAddr(6, words, off)) : undefined;
    return m ?? (family === 6 && this.gateway6 !== null ? this.gateway6 : this.gateway);
  }

  get size(): number {
    return this.v4.size + this.v6.size;
  }
}
