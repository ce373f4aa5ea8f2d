/**
 * Maglev Hashing scheduling, as the kernel's ip_vs_mh.c: every server gets
 * a preference list (offset and skip from two fixed-key hsiphash values of
 * its address and port) over a prime-sized lookup table (IP_VS_MH_TAB_SIZE
 * 4093: primes[CONFIG_IP_VS_MH_TAB_INDEX 12 - 8]); the table is populated in
 * kernel list order, `turns` = (last_weight / gcd) >> rshift entries per
 * server per round. A flow is looked up by hsiphash of its source address
 * (and source port with mh-port); mh-fallback walks on when the chosen
 * server is unusable. Owns the lookup table and setup arrays; must not
 * allocate per call.
 *
 * last_weight: the kernel keeps each server's latest non-zero weight
 * (ip_vs_ctl.c __ip_vs_update_dest) so that a server set to weight 0 keeps
 * its table entries. This scheduler stores it in RealServer.schedData, the
 * scratch slot reserved for the service's scheduler: a new server starts
 * at 0 and update() copies every non-zero weight into it, which gives the
 * kernel's "set on add, or when the new weight is non-zero".
 */
import type { FlowKey } from '../flow.js';
import { SvcFlag, type RealServer, type Scheduler, type VirtualService } from '../service.js';
import { gcd, hashPort, kernelOrder } from './common.js';
import { hsiphash32, sipKey, sipState } from './hash.js';

/** The kernel's table of primes for the MH lookup table. */
export const MH_PRIMES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
/** CONFIG_IP_VS_MH_TAB_INDEX default. */
export const MH_CONFIG_TAB_INDEX = 12;
/** IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2. */
export const MH_TAB_BITS = Math.trunc(MH_CONFIG_TAB_INDEX / 2);
/** IP_VS_MH_TAB_SIZE = primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] = 4093. */
export const MH_TAB_SIZE = MH_PRIMES[MH_CONFIG_TAB_INDEX - 8]!;

/** generate_hash_secret(): hash1 = {2654435761, 2654435761}, hash2 = {2654446892, 2654446892} (64-bit longs). */
export const MH_KEY1 = sipKey(0, 2654435761, 0, 2654435761);
export const MH_KEY2 = sipKey(0, 2654446892, 0, 2654446892);

/** fls(): 1-based index of the highest set bit, 0 for 0. */
function fls(x: number): number {
  return x === 0 ? 0 : 32 - Math.clz32(x);
}

/**
 * ip_vs_mh_hashkey: hsiphash of the u32 (offset + port + addr_fold), all in
 * host order, the sum wrapping at 32 bits. `fold` is the folded address.
 */
export function mhHashKey(fold: number, port: number, key: Uint32Array, offset: number, st: Uint32Array): number {
  return hsiphash32((offset + port + fold) >>> 0, key, st);
}

/**
 * The addr_fold of a real server's address under the service's family, as
 * the kernel reads it from union nf_inet_addr: an IPv4 address is its
 * 32 bits either way; an IPv6 address is the XOR of its words in an IPv6
 * service and its first word in an IPv4 one (mixed-family tunnels).
 */
function foldDest(svcFamily: 4 | 6, rs: RealServer): number {
  const w = rs.addr.words;
  if (rs.addr.family === 4) return w[3]!;
  if (svcFamily === 4) return w[0]!;
  return (w[0]! ^ w[1]! ^ w[2]! ^ w[3]!) >>> 0;
}

function unavailable(rs: RealServer): boolean {
  return rs.weight <= 0 || rs.overloaded || !rs.available;
}

/** ip_vs_mh.c. */
export class MhScheduler implements Scheduler {
  readonly name = 'mh';
  /** Lookup table: position -> real server (null when the table is reset). */
  private readonly lookup: (RealServer | null)[] = new Array<RealServer | null>(MH_TAB_SIZE).fill(null);
  private readonly order: RealServer[] = [];
  private readonly st = sipState();
  private readonly taken = new Uint8Array(MH_TAB_SIZE);

  /** ip_vs_mh_dest_changed: gcd, rshift, permutation and population. */
  update(svc: VirtualService): void {
    const d = kernelOrder(svc, this.order);
    let g = 0;
    let max = 0;
    for (const rs of d) {
      if (rs.weight !== 0) rs.schedData = rs.weight; // last_weight
      const lw = rs.schedData;
      if (lw > 0) g = g > 0 ? gcd(lw, g) : lw;
      if (lw > max) max = lw;
    }
    if (g < 1) {
      // No servers, or every last_weight is zero: reset the lookup table.
      this.lookup.fill(null);
      return;
    }
    const shift = fls(Math.trunc(max / g)) - MH_TAB_BITS;
    const rshift = shift >= 0 ? shift : 0;

    // ip_vs_mh_permutate (setup arrays are per update, not per packet).
    const n = d.length;
    const perm = new Uint32Array(n);
    const skip = new Uint32Array(n);
    const turns = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const rs = d[i]!;
      const fold = foldDest(svc.family, rs);
      const port = rs.port & 0xffff;
      perm[i] = mhHashKey(fold, port, MH_KEY1, 0, this.st) % MH_TAB_SIZE;
      skip[i] = (mhHashKey(fold, port, MH_KEY2, 0, this.st) % (MH_TAB_SIZE - 1)) + 1;
      const lw = rs.schedData;
      const t = Math.trunc(lw / g) >> rshift;
      turns[i] = t !== 0 ? t : lw !== 0 ? 1 : 0;
    }

    // ip_vs_mh_populate.
    this.taken.fill(0);
    let filled = 0;
    let dtCount = 0;
    while (filled < MH_TAB_SIZE) {
      for (let i = 0; i < n; ) {
        if (turns[i]! < 1) {
          i++;
          continue;
        }
        let c = perm[i]!;
        while (this.taken[c] !== 0) {
          c += skip[i]!;
          if (c >= MH_TAB_SIZE) c -= MH_TAB_SIZE;
        }
        perm[i] = c;
        this.taken[c] = 1;
        this.lookup[c] = d[i]!;
        if (++filled === MH_TAB_SIZE) return;
        if (++dtCount >= turns[i]!) {
          dtCount = 0;
          i++;
        }
      }
    }
  }

  schedule(svc: VirtualService, flow: FlowKey, _nowMs: number): RealServer | null {
    const port = (svc.flags & SvcFlag.SCHED2) !== 0 ? hashPort(flow) : 0;
    const a = flow.saddr;
    const fold = flow.family === 4 ? a[3]! : (a[0]! ^ a[1]! ^ a[2]! ^ a[3]!) >>> 0;
    const ihash = mhHashKey(fold, port, MH_KEY1, 0, this.st) % MH_TAB_SIZE;
    const first = this.lookup[ihash]!;
    if (first === null) return null;
    if (!unavailable(first)) return first;
    if ((svc.flags & SvcFlag.SCHED1) === 0) return null;
    // ip_vs_mh_get_fallback: rehash with growing offsets from ihash.
    for (let offset = 0; offset < MH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) % MH_TAB_SIZE;
      const rs = this.lookup[mhHashKey(fold, port, MH_KEY1, roffset, this.st) % MH_TAB_SIZE]!;
      if (rs === null) break;
      if (!unavailable(rs)) return rs;
    }
    return null;
  }
}
