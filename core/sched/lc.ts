/**
 * Least-Connection scheduling, as the kernel's ip_vs_lc.c: the server with
 * the smallest connection overhead ((activeconns << 8) + inactconns),
 * weights ignored except that weight 0 is quiesced. Owns no state; must not
 * allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { connOverhead, usable } from './common.js';

/** ip_vs_lc.c: first server in kernel list order with the strictly smallest overhead. */
export class LcScheduler implements Scheduler {
  readonly name = 'lc';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const list = svc.realServers;
    let least: RealServer | null = null;
    let loh = 0;
    for (let i = list.length - 1; i >= 0; i--) {
      const rs = list[i]!;
      if (!usable(rs)) continue;
      const doh = connOverhead(rs);
      if (least === null || doh < loh) {
        least = rs;
        loh = doh;
      }
    }
    return least;
  }
}
