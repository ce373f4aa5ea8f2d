/**
 * Source Hashing scheduling, as the kernel's ip_vs_sh.c: a 256-bucket table
 * (IP_VS_SH_TAB_BITS 8) filled in kernel list order with `weight`
 * consecutive buckets per server (one for a weight-0 server), indexed by
 * hash_32(source address fold + source port if sh-port, 8). With sh-fallback
 * an unusable server's bucket makes it walk on to other buckets.
 * Owns the bucket table; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import { SvcFlag, type RealServer, type Scheduler, type VirtualService } from '../service.js';
import { hashPort, kernelOrder } from './common.js';
import { foldAddr, hash32 } from './hash.js';

/** IP_VS_SH_TAB_BITS (CONFIG_IP_VS_SH_TAB_BITS default). */
export const SH_TAB_BITS = 8;
/** IP_VS_SH_TAB_SIZE. */
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
const SH_TAB_MASK = SH_TAB_SIZE - 1;

/** sh's notion of unusable (is_unavailable): weight <= 0 or overloaded. */
function unavailable(rs: RealServer): boolean {
  return rs.weight <= 0 || rs.overloaded || !rs.available;
}

/**
 * ip_vs_sh_hashkey: (offset + hash_32(port + addr_fold, 8)) & 255, the
 * port and address in host order, their sum wrapping at 32 bits.
 */
export function shHashKey(family: 4 | 6, addr: Uint32Array, addrOff: number, port: number, offset: number): number {
  return (offset + hash32((port + foldAddr(family, addr, addrOff)) >>> 0, SH_TAB_BITS)) & SH_TAB_MASK;
}

/** ip_vs_sh.c. */
export class ShScheduler implements Scheduler {
  readonly name = 'sh';
  /** Bucket -> real server; null when the service has none. */
  private readonly buckets: (RealServer | null)[] = new Array<RealServer | null>(SH_TAB_SIZE).fill(null);
  private readonly order: RealServer[] = [];

  /** ip_vs_sh_reassign. */
  update(svc: VirtualService): void {
    const d = kernelOrder(svc, this.order);
    if (d.length === 0) {
      this.buckets.fill(null);
      return;
    }
    let p = 0;
    let count = 0;
    for (let i = 0; i < SH_TAB_SIZE; i++) {
      const rs = d[p]!;
      this.buckets[i] = rs;
      // Do not move to the next server until its weight is filled.
      if (++count >= rs.weight) {
        p = (p + 1) % d.length;
        count = 0;
      }
    }
  }

  schedule(svc: VirtualService, flow: FlowKey, _nowMs: number): RealServer | null {
    const port = (svc.flags & SvcFlag.SCHED2) !== 0 ? hashPort(flow) : 0;
    const fam = flow.family;
    const ihash = shHashKey(fam, flow.saddr, 0, port, 0);
    const first = this.buckets[ihash]!;
    if (first === null) return null;
    if (!unavailable(first)) return first;
    if ((svc.flags & SvcFlag.SCHED1) === 0) return null;
    // ip_vs_sh_get_fallback: walk from the original hash value.
    for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) % SH_TAB_SIZE;
      const rs = this.buckets[shHashKey(fam, flow.saddr, 0, port, roffset)]!;
      if (rs === null) break;
      if (!unavailable(rs)) return rs;
    }
    return null;
  }
}
