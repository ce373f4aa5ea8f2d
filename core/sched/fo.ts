/**
 * Weighted Fail Over scheduling, as the kernel's ip_vs_fo.c: the usable
 * server with the highest weight, the first in kernel list order on ties.
 * Owns no state; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { usable } from './common.js';

/** ip_vs_fo.c. */
export class FoScheduler implements Scheduler {
  readonly name = 'fo';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const list = svc.realServers;
    let best: RealServer | null = null;
    let hw = 0;
    for (let i = list.length - 1; i >= 0; i--) {
      const rs = list[i]!;
      if (usable(rs) && rs.weight > hw) {
        best = rs;
        hw = rs.weight;
      }
    }
    return best;
  }
}
