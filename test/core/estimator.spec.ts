/**
 * Rate estimator (ip_vs_est.c): convergence under constant traffic, decay
 * without traffic, catch-up after late ticks, baseline on add, zeroing.
 * Time comes from a ManualClock; nothing sleeps.
 */
import assert from 'node:assert/strict';
import { ManualClock } from '../../core/clock.js';
import { ESTIMATOR_PERIOD_MS, RateEstimator } from '../../core/estimator.js';
import { Stats } from '../../core/stats.js';

/** Per-second traffic added to a Stats over `ms`. */
interface Traffic {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

function feed(s: Stats, t: Traffic, ms: number): void {
  const k = ms / 1000;
  s.conns += t.conns * k;
  s.inPkts += t.inPkts * k;
  s.outPkts += t.outPkts * k;
  s.inBytes += t.inBytes * k;
  s.outBytes += t.outBytes * k;
}

const rates = (s: Stats): number[] => [s.cps, s.inpps, s.outpps, s.inbps, s.outbps];

describe('RateEstimator', () => {
  const T: Traffic = { conns: 100, inPkts: 500, outPkts: 400, inBytes: 500_000, outBytes: 1_000_000 };

  it('converges to the per-second rates of constant traffic', () => {
    const clock = new ManualClock(1_000);
    const est = new RateEstimator(clock.now());
    const s = new Stats();
    est.add(s);
    const cpsSeen: number[] = [];
    for (let i = 0; i < 80; i++) {
      feed(s, T, ESTIMATOR_PERIOD_MS);
      clock.advance(ESTIMATOR_PERIOD_MS);
      assert.equal(est.tick(clock.now()), 1);
      cpsSeen.push(s.cps);
      // (3/4)^n convergence: cps within a dozen periods, large byte rates in about fifty.
      if (i === 40) assert.ok(s.inbps < 500_000 && s.inbps > 499_900, `inbps after 41 periods: ${s.inbps}`);
    }
    assert.deepEqual(rates(s), [100, 500, 400, 500_000, 1_000_000]);
    // First period: avg = rate/4, read out with the kernel's rounding.
    assert.equal(cpsSeen[0], Math.floor((Math.floor((200 * 512) / 4) + 0x1ff) / 1024));
    for (let i = 1; i < cpsSeen.length; i++) assert.ok(cpsSeen[i]! >= cpsSeen[i - 1]!, 'rises monotonically');
    assert.ok(cpsSeen[3]! < 100, 'the EWMA takes several periods (W = 1/4)');
  });

  it('decays to zero when traffic stops', () => {
    const clock = new ManualClock();
    const est = new RateEstimator(0);
    const s = new Stats();
    est.add(s);
    for (let i = 0; i < 30; i++) {
      feed(s, T, ESTIMATOR_PERIOD_MS);
      clock.advance(ESTIMATOR_PERIOD_MS);
      est.tick(clock.now());
    }
    let prev = rates(s);
    for (let i = 0; i < 80; i++) {
      clock.advance(ESTIMATOR_PERIOD_MS);
      est.tick(clock.now());
      const now = rates(s);
      now.forEach((v, j) => assert.ok(v <= prev[j]!, 'never rises without traffic'));
      prev = now;
    }
    assert.deepEqual(rates(s), [0, 0, 0, 0, 0]);
  });

  it('applies only whole 2-second periods and carries the remainder', () => {
    const est = new RateEstimator(0);
    const s = new Stats();
    est.add(s);
    s.conns = 200;
    assert.equal(est.tick(1_999), 0);
    assert.equal(s.cps, 0);
    assert.equal(est.tick(2_500), 1);
    const after1 = s.cps;
    assert.ok(after1 > 0);
    assert.equal(est.tick(3_999), 0, 'next period ends at 4000, not 4500');
    assert.equal(est.tick(4_000), 1);
    assert.equal(est.tick(3_000), 0, 'time going backwards is ignored');
  });

  it('a late tick spreads the delta over the elapsed periods, like on-time ticks', () => {
    const onTime = new RateEstimator(0);
    const late = new RateEstimator(0);
    const a = new Stats();
    const b = new Stats();
    onTime.add(a);
    late.add(b);
    for (let p = 1; p <= 3; p++) {
      feed(a, T, ESTIMATOR_PERIOD_MS);
      onTime.tick(p * ESTIMATOR_PERIOD_MS);
    }
    feed(b, T, 3 * ESTIMATOR_PERIOD_MS);
    assert.equal(late.tick(3 * ESTIMATOR_PERIOD_MS + 500), 3);
    assert.deepEqual(rates(b), rates(a));
  });

  it('a very late tick (hours) settles on the average rate without looping for ever', () => {
    const est = new RateEstimator(0);
    const s = new Stats();
    est.add(s);
    const hourMs = 3_600_000;
    feed(s, T, hourMs);
    assert.equal(est.tick(hourMs), hourMs / ESTIMATOR_PERIOD_MS);
    assert.deepEqual(rates(s), [100, 500, 400, 500_000, 1_000_000]);
  });

  it('add() takes the current counters as the baseline; remove() stops updates', () => {
    const est = new RateEstimator(0);
    const s = new Stats();
    s.conns = 1_000_000;
    s.inBytes = 5e12;
    est.add(s);
    est.add(s);
    assert.equal(est.size, 1, 'adding twice is a no-op');
    est.tick(2_000);
    assert.deepEqual(rates(s), [0, 0, 0, 0, 0]);
    s.conns += 20;
    est.tick(4_000);
    assert.ok(s.cps > 0);
    assert.equal(est.remove(s), true);
    assert.equal(est.remove(s), false);
    const frozen = s.cps;
    s.conns += 1_000;
    est.tick(6_000);
    assert.equal(s.cps, frozen);
    assert.equal(est.has(s), false);
  });

  it('zero() resets rates and baseline (ipvsadm -Z); counters going backwards count as no traffic', () => {
    const est = new RateEstimator(0);
    const s = new Stats();
    est.add(s);
    for (let p = 1; p <= 10; p++) {
      feed(s, T, ESTIMATOR_PERIOD_MS);
      est.tick(p * ESTIMATOR_PERIOD_MS);
    }
    assert.ok(s.cps > 0);
    s.conns = s.inPkts = s.outPkts = s.inBytes = s.outBytes = 0;
    est.zero(s);
    assert.deepEqual(rates(s), [0, 0, 0, 0, 0]);
    feed(s, T, ESTIMATOR_PERIOD_MS);
    est.tick(11 * ESTIMATOR_PERIOD_MS);
    assert.equal(s.cps, 25, 'one period of 100/s after zeroing, as from scratch');

    // Zeroed without telling the estimator: no negative rate.
    const u = new Stats();
    est.add(u);
    u.conns = 0;
    feed(u, T, 0);
    est.tick(12 * ESTIMATOR_PERIOD_MS);
    assert.equal(u.cps, 0);
  });

  it('estimates several Stats independently', () => {
    const est = new RateEstimator(0);
    const a = new Stats();
    const b = new Stats();
    est.add(a);
    est.add(b);
    for (let p = 1; p <= 80; p++) {
      feed(a, T, ESTIMATOR_PERIOD_MS);
      feed(b, { conns: 3, inPkts: 7, outPkts: 0, inBytes: 1_234, outBytes: 0 }, ESTIMATOR_PERIOD_MS);
      est.tick(p * ESTIMATOR_PERIOD_MS);
    }
    assert.deepEqual(rates(a), [100, 500, 400, 500_000, 1_000_000]);
    assert.deepEqual(rates(b), [3, 7, 0, 1_234, 0]);
  });
});
