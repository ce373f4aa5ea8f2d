/**
 * Weighted Least-Connection scheduling, as the kernel's ip_vs_wlc.c (the
 * ipvsadm default): the server with the smallest overhead/weight, where the
 * overhead is (activeconns << 8) + inactconns, compared by
 * cross-multiplication. Owns no state; must not allocate per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { leastConnWeighted } from './common.js';

/** ip_vs_wlc.c: ties go to the first server in kernel list order. */
export class WlcScheduler implements Scheduler {
  readonly name = 'wlc';

  update(_svc: VirtualService): void {}

  schedule(svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    return leastConnWeighted(svc);
  }
}
