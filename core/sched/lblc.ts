/**
 * Locality-Based Least-Connection scheduling, as the kernel's ip_vs_lblc.c:
 * each destination address (the packet's daddr) is bound to one server,
 * first chosen by weighted least-connection; the binding holds while that
 * server is in the service, has weight > 0 and is not "overloaded" in
 * lblc's sense (activeconns > weight while some server has
 * activeconns * 2 < weight), otherwise a new least-connection choice
 * replaces it. Bindings expire as the kernel's (see addrcache.ts: lazily,
 * driven by `nowMs`). Owns the address table; must not allocate per call.
 *
 * Kernel quirk kept: a cached server is not checked for the threshold
 * overload flag (IP_VS_DEST_F_OVERLOAD), only a new choice is.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { AddrCache, type AddrCacheInit } from './addrcache.js';
import { leastConnWeighted } from './common.js';

/**
 * lblc's is_overloaded(): activeconns > weight, and some server of the
 * service has activeconns * 2 < weight. Shared with lblcr.
 */
export function lblcOverloaded(rs: RealServer, svc: VirtualService): boolean {
  if (rs.activeConns > rs.weight) {
    const list = svc.realServers;
    for (let i = list.length - 1; i >= 0; i--) {
      const d = list[i]!;
      if (d.activeConns * 2 < d.weight) return true;
    }
  }
  return false;
}

/** ip_vs_lblc.c. */
export class LblcScheduler implements Scheduler {
  readonly name = 'lblc';
  readonly cache: AddrCache;
  private readonly dest: (RealServer | null)[];

  constructor(init: AddrCacheInit = {}) {
    this.cache = new AddrCache(init);
    this.dest = new Array<RealServer | null>(this.cache.capacity).fill(null);
    this.cache.onRemove = (e: number): void => {
      this.dest[e] = null;
    };
  }

  /** lblc has no add/del/upd hooks in the kernel: bindings to removed servers stay until they expire. */
  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, flow: FlowKey, nowMs: number): RealServer | null {
    const c = this.cache;
    c.tick(nowMs);
    const e = c.find(flow.family, flow.daddr, 0);
    if (e >= 0) {
      c.lastUse[e] = nowMs;
      const cached = this.dest[e]!;
      if (cached.available && cached.weight > 0 && !lblcOverloaded(cached, svc)) return cached;
    }
    const rs = leastConnWeighted(svc);
    if (rs === null) return null;
    // ip_vs_lblc_new: keep an entry already bound to rs, else replace it.
    if (e >= 0) {
      if (this.dest[e] === rs) return rs;
      c.remove(e);
    }
    const n = c.insert(flow.family, flow.daddr, 0, nowMs);
    if (n >= 0) this.dest[n] = rs;
    return rs;
  }
}
