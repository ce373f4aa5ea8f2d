/**
 * The compliance suite every scheduler in SCHEDULER_NAMES passes: no server
 * from an empty or all-quiescent service, quiescent/overloaded/removed
 * servers never chosen, IPv6 flows accepted, weights honoured (exactly for
 * wrr, within a stated tolerance for the hashing and connection-counting
 * schedulers).
 */
import assert from 'node:assert/strict';
import { ErrorCode, SaruError } from '../../../core/errors.js';
import { SCHEDULER_NAMES, createScheduler } from '../../../core/sched/index.js';
import type { FlowKey } from '../../../core/flow.js';
import { flow, makeService, prng, setV4, tally } from './fixtures.js';

/** Vary source and destination (lblc/lblcr/dh key on the destination) per flow. */
function randomClients(seed: number): (i: number, f: FlowKey) => void {
  const r = prng(seed);
  return (_i, f) => {
    setV4(f, r(), 0xc6120000 | (r() & 0xffff));
    f.sport = 1024 + (r() % 60000);
  };
}

const ALL_KERNEL_NAMES = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'];

describe('sched: createScheduler / SCHEDULER_NAMES', () => {
  it('knows every IPVS scheduler by its ipvsadm name', () => {
    assert.deepEqual([...SCHEDULER_NAMES].sort(), [...ALL_KERNEL_NAMES].sort());
    for (const n of SCHEDULER_NAMES) assert.equal(createScheduler(n).name, n);
  });

  it('throws SARU_ERR_UNKNOWN_SCHEDULER naming the valid ones', () => {
    assert.throws(
      () => createScheduler('wrrr'),
      (e: unknown) => e instanceof SaruError && e.code === ErrorCode.UNKNOWN_SCHEDULER && /wlc/.test(e.message) && /mh/.test(e.message),
    );
    assert.throws(() => createScheduler('toString'), SaruError);
  });

  it('gives each call its own instance (state per service)', () => {
    assert.notEqual(createScheduler('wrr'), createScheduler('wrr'));
  });
});

for (const name of SCHEDULER_NAMES) {
  describe(`sched compliance: ${name}`, () => {
    it('returns null for an empty service', () => {
      const { svc } = makeService(name, []);
      assert.equal(svc.scheduler!.schedule(svc, flow('203.0.113.5'), 0), null);
    });

    it('returns null when every weight is 0', () => {
      const { svc } = makeService(name, [
        { address: '10.0.0.1', weight: 0 },
        { address: '10.0.0.2', weight: 0 },
      ]);
      const { counts } = tally(svc, flow('203.0.113.5'), 500, randomClients(1));
      assert.equal(counts.size, 0);
    });

    it('never chooses a weight-0 (quiescent) server', () => {
      const { svc } = makeService(name, [
        { address: '10.0.0.1', weight: 3 },
        { address: '10.0.0.2', weight: 0 },
        { address: '10.0.0.3', weight: 1 },
      ]);
      const { counts } = tally(svc, flow('203.0.113.5'), 3000, randomClients(2), { load: true });
      assert.equal(counts.get('10.0.0.2'), undefined);
      assert.ok(counts.size > 0);
    });

    it('never chooses an overloaded server', () => {
      const { svc } = makeService(name, [
        { address: '10.0.0.1', weight: 5, overloaded: true },
        { address: '10.0.0.2', weight: 1 },
        { address: '10.0.0.3', weight: 1 },
      ]);
      const { counts } = tally(svc, flow('203.0.113.5'), 3000, randomClients(3), { load: true });
      assert.equal(counts.get('10.0.0.1'), undefined);
    });

    it('never returns a server after it was removed', () => {
      const { svc } = makeService(name, [
        { address: '10.0.0.1', weight: 2 },
        { address: '10.0.0.2', weight: 3 },
        { address: '10.0.0.3', weight: 2 },
      ]);
      // Warm up caches and markers with the same clients used afterwards.
      const before = tally(svc, flow('203.0.113.5'), 2000, randomClients(4), { load: true });
      assert.ok((before.counts.get('10.0.0.2') ?? 0) > 0);
      svc.removeRealServer('10.0.0.2', 80);
      for (const r of svc.realServers) r.activeConns = 0; // (ovf would have overflowed them all)
      const after = tally(svc, flow('203.0.113.5'), 2000, randomClients(4), { load: true });
      assert.equal(after.counts.get('10.0.0.2'), undefined);
      assert.ok(after.counts.size > 0);
    });

    it('schedules IPv6 flows without throwing', () => {
      const { svc } = makeService(
        name,
        [
          { address: '2001:db8:1::1', weight: 1 },
          { address: '2001:db8:1::2', weight: 2 },
        ],
        { v6: true },
      );
      const r = prng(5);
      const f = flow('2001:db8:ff::1', 40000, '2001:db8::1');
      for (let i = 0; i < 500; i++) {
        f.saddr[0] = r();
        f.saddr[3] = r();
        f.daddr[3] = r();
        const rs = svc.scheduler!.schedule(svc, f, i);
        assert.notEqual(rs, null);
      }
      // An IPv6 flow offered to an IPv4 service must not throw either.
      const v4 = makeService(name, [{ address: '10.0.0.1', weight: 1 }]).svc;
      v4.scheduler!.schedule(v4, f, 0);
    });
  });
}

/** Share of each server over `n` choices from distinct clients, with the load simulation when asked. */
function shares(name: string, weights: number[], n: number, load: boolean): number[] {
  const { svc, rs } = makeService(
    name,
    weights.map((w, i) => ({ address: `10.0.0.${i + 1}`, weight: w })),
  );
  const f = flow('203.0.113.5');
  const next = randomClients(7);
  const c = weights.map(() => 0);
  for (let i = 0; i < n; i++) {
    next(i, f);
    const r = svc.scheduler!.schedule(svc, f, 0);
    assert.notEqual(r, null);
    c[rs.indexOf(r!)]!++;
    if (load) r!.activeConns++;
  }
  return c.map((x) => x / n);
}

describe('sched compliance: weights honoured', () => {
  const W = [1, 2, 6];
  const ideal = W.map((w) => w / 9);

  it('wrr: exactly weight/sum over each cycle', () => {
    const { svc, rs } = makeService('wrr', [
      { address: '10.0.0.1', weight: 4 },
      { address: '10.0.0.2', weight: 3 },
      { address: '10.0.0.3', weight: 2 },
    ]);
    for (let cycle = 0; cycle < 5; cycle++) {
      const c = [0, 0, 0];
      for (let i = 0; i < 9; i++) c[rs.indexOf(svc.scheduler!.schedule(svc, flow('203.0.113.5'), 0)!)]!++;
      assert.deepEqual(c, [4, 3, 2]);
    }
  });

  // Connection-counting schedulers: every choice opens a connection that stays
  // active; the active counts then converge to the weight ratio. Tolerance 0.02.
  for (const name of ['wlc', 'sed', 'nq', 'lblc', 'lblcr']) {
    it(`${name}: active connections follow the weights (±0.02 of the share)`, () => {
      const s = shares(name, W, 900, true);
      s.forEach((x, i) => assert.ok(Math.abs(x - ideal[i]!) <= 0.02, `${name} server ${i}: ${x} vs ${ideal[i]}`));
    });
  }

  // Hashing schedulers over 20000 random clients: the table shares are the
  // weights (sh: 256 buckets, mh: 4093 entries); sampling tolerance 0.03.
  for (const name of ['sh', 'mh']) {
    it(`${name}: distinct clients spread by weight (±0.03 of the share)`, () => {
      const s = shares(name, W, 20000, false);
      s.forEach((x, i) => assert.ok(Math.abs(x - ideal[i]!) <= 0.03, `${name} server ${i}: ${x} vs ${ideal[i]}`));
    });
  }

  it('fo and ovf: everything to the highest weight while it qualifies', () => {
    assert.deepEqual(shares('fo', W, 200, false), [0, 0, 1]);
    assert.deepEqual(shares('ovf', W, 200, false), [0, 0, 1]);
  });

  // The kernel's rr, lc and dh do not weigh (weight only quiesces at 0).
  it('rr, lc and dh ignore positive weights, as the kernel does', () => {
    const rr = shares('rr', W, 900, false);
    rr.forEach((x) => assert.ok(Math.abs(x - 1 / 3) < 1e-9));
    const lc = shares('lc', W, 900, true);
    lc.forEach((x) => assert.ok(Math.abs(x - 1 / 3) < 0.01));
    const dh = shares('dh', W, 20000, false);
    dh.forEach((x) => assert.ok(Math.abs(x - 1 / 3) < 0.03));
  });
});
