/**
 * Locality-Based Least-Connection with Replication scheduling, as the
 * kernel's ip_vs_lblcr.c: each destination address (the packet's daddr)
 * maps to a set of servers; the least loaded usable member serves it,
 * a new weighted least-connection choice joins the set when the member is
 * missing or overloaded in lblc's sense, and when the set has not changed
 * for the expiration time its most loaded member is dropped. Entries expire
 * as the kernel's (see addrcache.ts). Owns the address table and a pool of
 * set elements; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { AddrCache, type AddrCacheInit } from './addrcache.js';
import { connOverhead, leastConnWeighted } from './common.js';
import { lblcOverloaded } from './lblc.js';

export interface LblcrInit extends AddrCacheInit {
  /** Set elements shared by all entries; default 2 * capacity. A full pool leaves a set unchanged, as a failed kmalloc does. */
  setElements?: number;
}

/** ip_vs_lblcr.c. */
export class LblcrScheduler implements Scheduler {
  readonly name = 'lblcr';
  readonly cache: AddrCache;
  /** Per entry: first set element (-1 = empty), set size, last modification time. */
  private readonly setHead: Int32Array;
  private readonly setSize: Int32Array;
  private readonly lastMod: Float64Array;
  /** Set elements: next element and server; free ones chained through elNext. */
  private readonly elNext: Int32Array;
  private readonly elDest: (RealServer | null)[];
  private elFree: number;

  constructor(init: LblcrInit = {}) {
    this.cache = new AddrCache(init);
    const cap = this.cache.capacity;
    this.setHead = new Int32Array(cap).fill(-1);
    this.setSize = new Int32Array(cap);
    this.lastMod = new Float64Array(cap);
    const n = init.setElements ?? 2 * cap;
    this.elNext = new Int32Array(n);
    for (let i = 0; i < n; i++) this.elNext[i] = i + 1 < n ? i + 1 : -1;
    this.elDest = new Array<RealServer | null>(n).fill(null);
    this.elFree = n > 0 ? 0 : -1;
    this.cache.onRemove = (e: number): void => this.eraseAll(e);
  }

  /** The servers in an entry's set, most recently added first (for inspection and tests). Allocates. */
  members(family: 4 | 6, words: Uint32Array): RealServer[] {
    const out: RealServer[] = [];
    const e = this.cache.find(family, words, 0);
    if (e < 0) return out;
    for (let x = this.setHead[e]!; x >= 0; x = this.elNext[x]!) out.push(this.elDest[x]!);
    return out;
  }

  /** lblcr has no add/del/upd hooks in the kernel: removed servers stay in sets (unavailable) until dropped. */
  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, flow: FlowKey, nowMs: number): RealServer | null {
    const c = this.cache;
    c.tick(nowMs);
    const e = c.find(flow.family, flow.daddr, 0);
    if (e >= 0) {
      c.lastUse[e] = nowMs;
      const min = this.setMin(e);
      // More than one member and no change for the expiration time: drop the most loaded.
      if (this.setSize[e]! > 1 && nowMs > this.lastMod[e]! + c.expirationMs) {
        const m = this.setMax(e);
        if (m !== null) this.erase(e, m, nowMs);
      }
      if (min !== null && !lblcOverloaded(min, svc)) return min;
      const rs = leastConnWeighted(svc);
      if (rs === null) return null;
      this.insert(e, rs, true, nowMs);
      return rs;
    }
    const rs = leastConnWeighted(svc);
    if (rs === null) return null;
    const n = c.insert(flow.family, flow.daddr, 0, nowMs);
    if (n >= 0) {
      this.setHead[n] = -1;
      this.setSize[n] = 0;
      this.insert(n, rs, false, nowMs);
    }
    return rs;
  }

  /** ip_vs_dest_set_insert: add at the head unless (with check) already there. */
  private insert(e: number, rs: RealServer, check: boolean, nowMs: number): void {
    if (check) {
      for (let x = this.setHead[e]!; x >= 0; x = this.elNext[x]!) if (this.elDest[x] === rs) return;
    }
    const x = this.elFree;
    if (x < 0) return;
    this.elFree = this.elNext[x]!;
    this.elDest[x] = rs;
    this.elNext[x] = this.setHead[e]!;
    this.setHead[e] = x;
    this.setSize[e] = this.setSize[e]! + 1;
    this.lastMod[e] = nowMs;
  }

  /** ip_vs_dest_set_erase. */
  private erase(e: number, rs: RealServer, nowMs: number): void {
    let prev = -1;
    for (let x = this.setHead[e]!; x >= 0; prev = x, x = this.elNext[x]!) {
      if (this.elDest[x] !== rs) continue;
      this.setSize[e] = this.setSize[e]! - 1;
      this.lastMod[e] = nowMs;
      if (prev < 0) this.setHead[e] = this.elNext[x]!;
      else this.elNext[prev] = this.elNext[x]!;
      this.freeElement(x);
      return;
    }
  }

  private eraseAll(e: number): void {
    let x = this.setHead[e]!;
    while (x >= 0) {
      const nx = this.elNext[x]!;
      this.freeElement(x);
      x = nx;
    }
    this.setHead[e] = -1;
    this.setSize[e] = 0;
  }

  private freeElement(x: number): void {
    this.elDest[x] = null;
    this.elNext[x] = this.elFree;
    this.elFree = x;
  }

  /** ip_vs_dest_set_min: weighted least-connection member that is usable. */
  private setMin(e: number): RealServer | null {
    let x = this.setHead[e]!;
    let least: RealServer | null = null;
    for (; x >= 0; x = this.elNext[x]!) {
      const rs = this.elDest[x]!;
      if (rs.overloaded) continue;
      if (rs.weight > 0 && rs.available) {
        least = rs;
        break;
      }
    }
    if (least === null) return null;
    let loh = connOverhead(least);
    for (x = this.elNext[x]!; x >= 0; x = this.elNext[x]!) {
      const rs = this.elDest[x]!;
      if (rs.overloaded) continue;
      const doh = connOverhead(rs);
      if (loh * rs.weight > doh * least.weight && rs.available) {
        least = rs;
        loh = doh;
      }
    }
    return least;
  }

  /** ip_vs_dest_set_max: weighted most-connection member with weight > 0. */
  private setMax(e: number): RealServer | null {
    let x = this.setHead[e]!;
    let most: RealServer | null = null;
    for (; x >= 0; x = this.elNext[x]!) {
      if (this.elDest[x]!.weight > 0) {
        most = this.elDest[x]!;
        break;
      }
    }
    if (most === null) return null;
    let moh = connOverhead(most);
    for (x = this.elNext[x]!; x >= 0; x = this.elNext[x]!) {
      const rs = this.elDest[x]!;
      const doh = connOverhead(rs);
      if (moh * rs.weight < doh * most.weight && rs.weight > 0) {
        most = rs;
        moh = doh;
      }
    }
    return most;
  }
}
