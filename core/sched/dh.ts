/**
 * Destination Hashing scheduling, as the kernel's ip_vs_dh.c: a 256-bucket
 * table (IP_VS_DH_TAB_BITS 8) filled round-robin with one bucket per server
 * in kernel list order (weights do not shape it), indexed by
 * hash_32(destination address fold, 8). An unusable server's bucket gives
 * null; there is no fallback. Owns the bucket table; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { kernelOrder, usable } from './common.js';
import { foldAddr, hash32 } from './hash.js';

/** IP_VS_DH_TAB_BITS (CONFIG_IP_VS_DH_TAB_BITS default). */
export const DH_TAB_BITS = 8;
/** IP_VS_DH_TAB_SIZE. */
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

/** ip_vs_dh_hashkey: hash_32(addr_fold, 8). */
export function dhHashKey(family: 4 | 6, addr: Uint32Array, addrOff: number): number {
  return hash32(foldAddr(family, addr, addrOff), DH_TAB_BITS);
}

/** ip_vs_dh.c. */
export class DhScheduler implements Scheduler {
  readonly name = 'dh';
  private readonly buckets: (RealServer | null)[] = new Array<RealServer | null>(DH_TAB_SIZE).fill(null);
  private readonly order: RealServer[] = [];

  /** ip_vs_dh_reassign. */
  update(svc: VirtualService): void {
    const d = kernelOrder(svc, this.order);
    for (let i = 0; i < DH_TAB_SIZE; i++) this.buckets[i] = d.length === 0 ? null : d[i % d.length]!;
  }

  schedule(_svc: VirtualService, flow: FlowKey, _nowMs: number): RealServer | null {
    const rs = this.buckets[dhHashKey(flow.family, flow.daddr, 0)]!;
    return rs !== null && usable(rs) ? rs : null;
  }
}
