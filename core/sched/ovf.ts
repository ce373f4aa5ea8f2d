/**
 * Overflow-connection scheduling, as the kernel's ip_vs_ovf.c: the server
 * with the highest weight among those whose active connections do not
 * exceed their weight (the kernel skips a server when activeconns > weight,
 * so activeconns == weight still qualifies); first in kernel list order on
 * ties. Owns no state; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { usable } from './common.js';

/** ip_vs_ovf.c. */
export class OvfScheduler implements Scheduler {
  readonly name = 'ovf';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const list = svc.realServers;
    let best: RealServer | null = null;
    let hw = 0;
    for (let i = list.length - 1; i >= 0; i--) {
      const rs = list[i]!;
      const w = rs.weight;
      if (!usable(rs) || rs.activeConns > w) continue;
      if (best === null || w > hw) {
        best = rs;
        hw = w;
      }
    }
    return best;
  }
}
