/**
 * Never Queue scheduling, as the kernel's ip_vs_nq.c: the first idle server
 * (no active connections) if there is one, otherwise the shortest expected
 * delay ((activeconns + 1) / weight) as sed. Owns no state; must not
 * allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { usable } from './common.js';

/** ip_vs_nq.c, in kernel list order. */
export class NqScheduler implements Scheduler {
  readonly name = 'nq';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const list = svc.realServers;
    let least: RealServer | null = null;
    let loh = 0;
    for (let i = list.length - 1; i >= 0; i--) {
      const rs = list[i]!;
      if (!usable(rs)) continue;
      // Return an idle server directly.
      if (rs.activeConns === 0) return rs;
      const doh = rs.activeConns + 1;
      if (least === null || loh * rs.weight > doh * least.weight) {
        least = rs;
        loh = doh;
      }
    }
    return least;
  }
}
