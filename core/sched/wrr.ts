/**
 * Weighted Round-Robin scheduling, as the kernel's ip_vs_wrr.c: passes over
 * the list with a current weight cw that starts at mw = max weight - (gcd - 1)
 * and drops by di = gcd of the weights after each pass; a server is taken
 * when its weight >= cw. Owns the mark (cl, cw, mw, di); must not allocate
 * per call.
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, Scheduler, VirtualService } from '../service.js';
import { gcd, kernelOrder } from './common.js';

/** ip_vs_wrr.c. */
export class WrrScheduler implements Scheduler {
  readonly name = 'wrr';
  private dests: RealServer[] = [];
  /** Current position: index in `dests`, -1 = the list head. */
  private cl = -1;
  /** Current weight. */
  private cw = 0;
  /** Maximum weight, reduced by (di - 1). */
  private mw = 0;
  /** Decreasing interval: gcd of the positive weights (1 when none). */
  private di = 1;
  private initialised = false;

  /**
   * ip_vs_wrr_init_svc on the first call, ip_vs_wrr_dest_changed after:
   * position back to the head, new di and mw, cw kept when still valid
   * (rounded into the new di grid).
   */
  update(svc: VirtualService): void {
    kernelOrder(svc, this.dests);
    let g = 0;
    let max = 0;
    for (const rs of this.dests) {
      const w = rs.weight;
      if (w > 0) g = g > 0 ? gcd(w, g) : w;
      if (w > max) max = w;
    }
    this.di = g > 0 ? g : 1;
    this.mw = max - (this.di - 1);
    this.cl = -1;
    if (!this.initialised) {
      this.cw = this.mw;
      this.initialised = true;
    } else if (this.cw > this.mw || this.cw === 0) {
      this.cw = this.mw;
    } else if (this.di > 1) {
      this.cw = Math.trunc(this.cw / this.di) * this.di + 1;
    }
  }

  schedule(_svc: VirtualService, _flow: FlowKey, _nowMs: number): RealServer | null {
    const d = this.dests;
    const n = d.length;
    if (this.mw === 0) return null; // no available dests
    const last = this.cl;
    let pos = this.cl;
    let stop = -2; // none
    let lastPass = false;
    let restarted = false;
    for (;;) {
      for (let i = pos + 1; i < n; i++) {
        const rs = d[i]!;
        if (!rs.overloaded && rs.available && rs.weight >= this.cw) {
          this.cl = i;
          return rs;
        }
        if (i === stop) {
          this.cl = i;
          return null; // all destinations are overloaded
        }
      }
      pos = -1; // the walk ended at the list head
      this.cw -= this.di;
      if (this.cw <= 0) {
        this.cw = this.mw;
        // Stop if the last pass (weight >= 1) already covered every server.
        if (lastPass || last === -1) {
          this.cl = -1;
          return null;
        }
        restarted = true;
      }
      lastPass = this.cw <= this.di;
      if (lastPass && restarted && last !== -1) {
        // The first weight >= 1 pass only covered servers after `last`;
        // now cover those up to it.
        stop = last;
      }
    }
  }
}
