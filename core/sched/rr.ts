/**
 * Round-Robin scheduling, as the kernel's ip_vs_rr.c: continue after the
 * last chosen server in the kernel's list order, skip overloaded and
 * weight-0 servers, wrap around. Owns the position marker (svc->sched_data
 * in the kernel); must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { kernelOrder, usable } from './common.js';

/** ip_vs_rr.c. */
export class RrScheduler implements Scheduler {
  readonly name = 'rr';
  /** Real servers in kernel list order (newest first), rebuilt by update(). */
  private dests: RealServer[] = [];
  private spare: RealServer[] = [];
  /** Index in `dests` of the last chosen server; -1 = the list head (start from the first). */
  private last = -1;

  /**
   * Rebuild the list. The marker stays on the same server when it is still
   * there (a new server is added at the head of the kernel list, before
   * it); when the marked server was removed the marker moves to the entry
   * before it, as ip_vs_rr_del_dest does.
   */
  update(svc: VirtualService): void {
    const old = this.dests;
    const fresh = kernelOrder(svc, this.spare);
    let last = -1;
    if (this.last >= 0 && this.last < old.length) {
      for (let j = this.last; j >= 0 && last < 0; j--) {
        const k = fresh.indexOf(old[j]!);
        if (k >= 0) last = k;
      }
    }
    this.spare = old;
    this.dests = fresh;
    this.last = last;
  }

  schedule(_svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const d = this.dests;
    const n = d.length;
    const start = this.last;
    // From the entry after the marker to the end, then from the first entry
    // up to and including the marked one (only when the marker is not the head).
    for (let i = start + 1; i < n; i++) {
      if (usable(d[i]!)) {
        this.last = i;
        return d[i]!;
      }
    }
    for (let i = 0; i <= start && i < n; i++) {
      if (usable(d[i]!)) {
        this.last = i;
        return d[i]!;
      }
    }
    return null;
  }
}
