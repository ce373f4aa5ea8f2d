/**
 * Rate estimator: derives connections, packets and bytes per second from the
 * Stats counters of virtual services and real servers, as the kernel's
 * net/netfilter/ipvs/ip_vs_est.c. Owns the list of estimated Stats and each
 * one's estimator state; writes only the rate fields of Stats (cps, inpps,
 * outpps, inbps, outbps). Must not read the clock or set timers: the owner
 * calls tick(nowMs) with the injected clock's time.
 *
 * The kernel's algorithm (ip_vs_est.c estimation_timer / ip_vs_read_estimator,
 * read in torvalds/linux at 03351ff4):
 *
 *   every 2 seconds, for each counter:
 *     rate = (counter - last) << 9      (cps, pps: per 2 s, scaled by 2^10)
 *     rate = (counter - last) << 4      (bps: per 2 s, scaled by 2^5)
 *     avg += (rate - avg) >> 2          (EWMA, W = 1/4; arithmetic shift)
 *   read-out:
 *     cps/pps = (avg + 0x1FF) >> 10,  bps = (avg + 0xF) >> 5
 *
 * Our numbers are doubles, so the shifts are done as multiplications and
 * Math.floor divisions (the same results for the integers involved, and no
 * 32-bit overflow for large byte counts).
 *
 * When tick() is called late and several 2-second periods have elapsed, the
 * counter delta is spread evenly over them (remainder to the last period) and
 * each period is applied in turn, as if the kernel timer had fired on time
 * with steady traffic. At most MAX_CATCHUP periods are applied; older ones
 * would contribute less than (3/4)^64 of their value.
 */
import type { Stats } from './stats.js';

/** The estimator's period, as the kernel's 2*HZ timer. */
export const ESTIMATOR_PERIOD_MS = 2000;
const MAX_CATCHUP = 64;

/** Estimator state of one Stats (struct ip_vs_estimator). */
class EstState {
  lastConns = 0;
  lastInPkts = 0;
  lastOutPkts = 0;
  lastInBytes = 0;
  lastOutBytes = 0;
  /** Scaled averages: cps/pps by 2^10, bps by 2^5. */
  cps = 0;
  inpps = 0;
  outpps = 0;
  inbps = 0;
  outbps = 0;

  snapshot(s: Stats): void {
    this.lastConns = s.conns;
    this.lastInPkts = s.inPkts;
    this.lastOutPkts = s.outPkts;
    this.lastInBytes = s.inBytes;
    this.lastOutBytes = s.outBytes;
  }
}

/** avg += (rate - avg) >> 2, with an arithmetic (flooring) shift. */
function ewma(avg: number, rate: number): number {
  return avg + Math.floor((rate - avg) / 4);
}

/** Counter delta; a counter that went backwards (zeroed without zero()) counts as 0. */
function delta(now: number, last: number): number {
  return now >= last ? now - last : 0;
}

/** Per-period share of `d` spread over `k` periods; period `i` (0-based) of `k`. */
function share(d: number, k: number, i: number): number {
  const base = Math.floor(d / k);
  return i === k - 1 ? d - base * (k - 1) : base;
}

export class RateEstimator {
  private readonly list: Stats[] = [];
  private readonly states = new Map<Stats, EstState>();
  private lastTickMs: number;

  /** @param nowMs the injected clock's time at creation; periods are counted from it. */
  constructor(nowMs: number) {
    this.lastTickMs = nowMs;
  }

  /**
   * Start estimating `s` (ip_vs_start_estimator). Its current counters become
   * the baseline, so traffic before add() does not show up as a rate.
   * Adding the same Stats twice is a no-op.
   */
  add(s: Stats): void {
    if (this.states.has(s)) return;
    const st = new EstState();
    st.snapshot(s);
    this.states.set(s, st);
    this.list.push(s);
  }

  /** Stop estimating `s` (ip_vs_stop_estimator). Returns whether it was there. Its rate fields are left as they are. */
  remove(s: Stats): boolean {
    if (!this.states.delete(s)) return false;
    this.list.splice(this.list.indexOf(s), 1);
    return true;
  }

  has(s: Stats): boolean {
    return this.states.has(s);
  }

  get size(): number {
    return this.list.length;
  }

  /**
   * Reset the estimator of `s` after its counters were zeroed (ipvsadm -Z):
   * the kernel's ip_vs_zero_estimator. Rates become 0 and the current
   * counters the new baseline.
   */
  zero(s: Stats): void {
    const st = this.states.get(s);
    if (!st) return;
    st.snapshot(s);
    st.cps = st.inpps = st.outpps = st.inbps = st.outbps = 0;
    s.cps = s.inpps = s.outpps = s.inbps = s.outbps = 0;
  }

  /**
   * Advance to `nowMs`: apply every whole 2-second period elapsed since the
   * last applied one and update the rate fields of every estimated Stats.
   * Returns the number of periods elapsed (0 when less than 2 s passed).
   * Time going backwards is ignored.
   */
  tick(nowMs: number): number {
    const elapsed = nowMs - this.lastTickMs;
    if (!(elapsed >= ESTIMATOR_PERIOD_MS)) return 0;
    const periods = Math.floor(elapsed / ESTIMATOR_PERIOD_MS);
    this.lastTickMs += periods * ESTIMATOR_PERIOD_MS;
    const apply = Math.min(periods, MAX_CATCHUP);
    for (const s of this.list) {
      const st = this.states.get(s)!;
      const dConns = delta(s.conns, st.lastConns);
      const dInPkts = delta(s.inPkts, st.lastInPkts);
      const dOutPkts = delta(s.outPkts, st.lastOutPkts);
      const dInBytes = delta(s.inBytes, st.lastInBytes);
      const dOutBytes = delta(s.outBytes, st.lastOutBytes);
      st.snapshot(s);
      for (let i = periods - apply; i < periods; i++) {
        // scaled by 2^10, but divided by 2 seconds: << 9
        st.cps = ewma(st.cps, share(dConns, periods, i) * 512);
        st.inpps = ewma(st.inpps, share(dInPkts, periods, i) * 512);
        st.outpps = ewma(st.outpps, share(dOutPkts, periods, i) * 512);
        // scaled by 2^5, divided by 2 seconds: << 4
        st.inbps = ewma(st.inbps, share(dInBytes, periods, i) * 16);
        st.outbps = ewma(st.outbps, share(dOutBytes, periods, i) * 16);
      }
      // ip_vs_read_estimator: decode to per-second units.
      s.cps = Math.floor((st.cps + 0x1ff) / 1024);
      s.inpps = Math.floor((st.inpps + 0x1ff) / 1024);
      s.outpps = Math.floor((st.outpps + 0x1ff) / 1024);
      s.inbps = Math.floor((st.inbps + 0xf) / 32);
      s.outbps = Math.floor((st.outbps + 0xf) / 32);
    }
    return periods;
  }
}
