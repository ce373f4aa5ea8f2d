/**
 * Shortest Expected Delay scheduling, as the kernel's ip_vs_sed.c: the
 * server with the smallest (activeconns + 1) / weight, compared by
 * cross-multiplication; inactive connections do not count.
 * Owns no state; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { usable } from './common.js';

/** ip_vs_sed.c: ties go to the first server in kernel list order. */
export class SedScheduler implements Scheduler {
  readonly name = 'sed';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const list = svc.realServers;
    let i = list.length - 1;
    let least: RealServer | null = null;
    for (; i >= 0; i--) {
      if (usable(list[i]!)) {
        least = list[i]!;
        break;
      }
    }
    if (least === null) return null;
    let loh = least.activeConns + 1;
    for (i--; i >= 0; i--) {
      const rs = list[i]!;
      if (rs.overloaded || !rs.available) continue;
      const doh = rs.activeConns + 1;
      if (loh * rs.weight > doh * least.weight) {
        least = rs;
        loh = doh;
      }
    }
    return least;
  }
}
