/**
 * Worked sequences derived by hand from the kernel sources
 * (net/netfilter/ipvs/ip_vs_<name>.c). Throughout: the kernel adds a
 * destination at the head of svc->destinations, so servers added A, B, C
 * are walked C, B, A ("first in the list" = most recently added).
 */
import assert from 'node:assert/strict';
import type { RealServer, VirtualService } from '../../../core/service.js';
import { LblcrScheduler } from '../../../core/sched/index.js';
import { flow, makeService } from './fixtures.js';

function seq(svc: VirtualService, n: number, nowMs = 0): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(svc.scheduler!.schedule(svc, flow('203.0.113.9'), nowMs)?.addr.text ?? 'null');
  return out;
}

const A = '10.0.0.1';
const B = '10.0.0.2';
const C = '10.0.0.3';

describe('sched sequences: rr (ip_vs_rr.c)', () => {
  it('walks the kernel list C, B, A and wraps', () => {
    const { svc } = makeService('rr', [{ address: A, weight: 1 }, { address: B, weight: 1 }, { address: C, weight: 1 }]);
    assert.deepEqual(seq(svc, 6), [C, B, A, C, B, A]);
  });

  it('skips a quiescent server', () => {
    const { svc } = makeService('rr', [{ address: A, weight: 1 }, { address: B, weight: 0 }, { address: C, weight: 1 }]);
    assert.deepEqual(seq(svc, 4), [C, A, C, A]);
  });

  it('after removing the marked server, continues after the entry before it (ip_vs_rr_del_dest)', () => {
    const { svc } = makeService('rr', [{ address: A, weight: 1 }, { address: B, weight: 1 }, { address: C, weight: 1 }]);
    assert.deepEqual(seq(svc, 2), [C, B]);
    svc.removeRealServer(B, 80); // marker moves back to C
    assert.deepEqual(seq(svc, 3), [A, C, A]);
  });

  it('a new server goes to the head of the list; the marker stays on its server', () => {
    const { svc } = makeService('rr', [{ address: A, weight: 1 }, { address: B, weight: 1 }, { address: C, weight: 1 }]);
    assert.deepEqual(seq(svc, 1), [C]);
    svc.addRealServer({ address: '10.0.0.4', port: 80, weight: 1 }); // list D, C, B, A
    assert.deepEqual(seq(svc, 4), [B, A, '10.0.0.4', C]);
  });
});

describe('sched sequences: wrr (ip_vs_wrr.c)', () => {
  const after = { attachAfter: true };

  it('weights 4,3,2 in kernel list order: A A B A B C A B C, repeating', () => {
    // Added C, B, A so that the kernel list is A(4), B(3), C(2); scheduler
    // attached afterwards (init_service: cw = mw = 4, di = 1).
    // cw=4 -> A; cw=3 -> A, B; cw=2 -> A, B, C; cw=1 -> A, B, C; cw back to 4.
    const { svc } = makeService('wrr', [{ address: C, weight: 2 }, { address: B, weight: 3 }, { address: A, weight: 4 }], after);
    assert.deepEqual(seq(svc, 18), [A, A, B, A, B, C, A, B, C, A, A, B, A, B, C, A, B, C]);
  });

  it('weights 4,3,2 added A, B, C (kernel list C(2), B(3), A(4)): A B A C B A C B A', () => {
    const { svc } = makeService('wrr', [{ address: A, weight: 4 }, { address: B, weight: 3 }, { address: C, weight: 2 }], after);
    assert.deepEqual(seq(svc, 9), [A, B, A, C, B, A, C, B, A]);
  });

  it('servers added one by one to a live service: cw stays 1 from the first add, so the first cycle is the last pass', () => {
    // Empty service: mw = 0, cw = 0. Add C(2): di = 2, mw = 1, cw = 0 -> 1.
    // Add B(3), A(4): di = 1, mw = 3 then 4, cw = 1 kept (not > mw, not 0, di = 1).
    // cw=1 -> A, B, C; cw 0 -> back to mw = 4 -> A; 3 -> A, B; 2 -> A, B, C.
    const { svc } = makeService('wrr', [{ address: C, weight: 2 }, { address: B, weight: 3 }, { address: A, weight: 4 }]);
    assert.deepEqual(seq(svc, 12), [A, B, C, A, A, B, A, B, C, A, B, C]);
  });

  it('weights 6,4 (gcd 2): mw = 6 - 1 = 5, passes cw 5, 3, 1', () => {
    // Kernel list B(4), A(6). cw=5: A. cw=3: B, A. cw=1: B, A. Then cw=5 again.
    const { svc } = makeService('wrr', [{ address: A, weight: 6 }, { address: B, weight: 4 }], after);
    assert.deepEqual(seq(svc, 10), [A, B, A, B, A, A, B, A, B, A]);
  });

  it('dest_changed: back to the head, cw rounded onto the new gcd grid', () => {
    const { svc, rs } = makeService('wrr', [{ address: A, weight: 4 }, { address: B, weight: 3 }, { address: C, weight: 2 }], after);
    assert.deepEqual(seq(svc, 2), [A, B]); // cw is now 3
    rs[1]!.edit({ weight: 2 });
    svc.changed(); // di = 2, mw = 3, cw = (3 / 2) * 2 + 1 = 3, cl = head
    assert.deepEqual(seq(svc, 8), [A, C, B, A, A, C, B, A]);
  });

  it('all weights 0: mw = 0, no destination', () => {
    const { svc } = makeService('wrr', [{ address: A, weight: 0 }]);
    assert.deepEqual(seq(svc, 2), ['null', 'null']);
  });

  it('all overloaded: null, then recovers', () => {
    const { svc, rs } = makeService('wrr', [{ address: A, weight: 2 }, { address: B, weight: 1 }]);
    for (const r of rs) r.overloaded = true;
    assert.deepEqual(seq(svc, 2), ['null', 'null']);
    rs[1]!.overloaded = false;
    assert.deepEqual(seq(svc, 3), [B, B, B]);
  });
});

describe('sched sequences: lc (ip_vs_lc.c)', () => {
  it('smallest (active << 8) + inactive; a tie goes to the first in the kernel list', () => {
    const { svc, rs } = makeService('lc', [
      { address: A, weight: 1, active: 1, inact: 0 }, // 256
      { address: B, weight: 9, active: 0, inact: 300 }, // 300
      { address: C, weight: 1, active: 0, inact: 256 }, // 256, first in the kernel list
    ]);
    assert.deepEqual(seq(svc, 1), [C]);
    rs[2]!.inactConns = 257;
    assert.deepEqual(seq(svc, 1), [A]);
  });
});

describe('sched sequences: wlc (ip_vs_wlc.c)', () => {
  it('smallest overhead/weight by cross-multiplication', () => {
    const { svc, rs } = makeService('wlc', [
      { address: A, weight: 1, active: 2, inact: 0 }, // 512 / 1
      { address: B, weight: 2, active: 3, inact: 10 }, // 778 / 2 = 389
      { address: C, weight: 3, active: 4, inact: 100 }, // 1124 / 3 = 374.7
    ]);
    assert.deepEqual(seq(svc, 1), [C]);
    rs[2]!.inactConns = 200; // 1224 / 3 = 408
    assert.deepEqual(seq(svc, 1), [B]);
  });

  it('equal load: the first in the kernel list (the newer server) wins', () => {
    const { svc } = makeService('wlc', [
      { address: A, weight: 1, active: 1 }, // 256 / 1
      { address: B, weight: 2, active: 2 }, // 512 / 2
    ]);
    assert.deepEqual(seq(svc, 1), [B]);
  });
});

describe('sched sequences: sed (ip_vs_sed.c)', () => {
  it('(active + 1) / weight, inactive ignored, ties to the first in the list', () => {
    const { svc, rs } = makeService('sed', [
      { address: A, weight: 1, active: 0, inact: 0 }, // 1 / 1
      { address: B, weight: 3, active: 2, inact: 1000 }, // 3 / 3
    ]);
    assert.deepEqual(seq(svc, 1), [B]);
    rs[1]!.activeConns = 3; // 4 / 3
    assert.deepEqual(seq(svc, 1), [A]);
  });
});

describe('sched sequences: nq (ip_vs_nq.c)', () => {
  it('an idle server is taken at once; otherwise as sed', () => {
    const { svc, rs } = makeService('nq', [
      { address: A, weight: 1, active: 0 },
      { address: B, weight: 10, active: 1 }, // first in the list, (1 + 1) / 10
    ]);
    assert.deepEqual(seq(svc, 1), [A]); // sed would pick B
    rs[0]!.activeConns = 1; // 2 / 1
    assert.deepEqual(seq(svc, 1), [B]);
  });
});

describe('sched sequences: fo (ip_vs_fo.c)', () => {
  it('highest weight, the first in the kernel list on ties, overloaded skipped', () => {
    const { svc, rs } = makeService('fo', [{ address: A, weight: 5 }, { address: B, weight: 7 }, { address: C, weight: 7 }]);
    assert.deepEqual(seq(svc, 2), [C, C]);
    rs[2]!.overloaded = true;
    assert.deepEqual(seq(svc, 1), [B]);
  });
});

describe('sched sequences: ovf (ip_vs_ovf.c)', () => {
  it('highest weight among servers with activeconns <= weight', () => {
    const { svc, rs } = makeService('ovf', [
      { address: A, weight: 3, active: 3 }, // 3 > 3 is false: still eligible
      { address: B, weight: 5, active: 6 }, // overflowed
      { address: C, weight: 2, active: 0 },
    ]);
    assert.deepEqual(seq(svc, 1), [A]);
    rs[0]!.activeConns = 4;
    assert.deepEqual(seq(svc, 1), [C]);
    rs[2]!.activeConns = 3;
    assert.deepEqual(seq(svc, 1), ['null']);
  });
});

const H = 3_600_000;

function to(svc: VirtualService, dst: string, nowMs: number): RealServer | null {
  return svc.scheduler!.schedule(svc, flow('203.0.113.9', 40000, dst), nowMs);
}

describe('sched sequences: lblc (ip_vs_lblc.c)', () => {
  it('binds a destination address, keeps it, rebinds when lblc-overloaded', () => {
    const { svc, rs } = makeService('lblc', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    // Empty cache: weighted least-connection, tie to the first in the list (B).
    assert.equal(to(svc, '192.0.2.10', 0)?.addr.text, B);
    // B busier but not lblc-overloaded (1 > 1 is false): the binding holds.
    rs[1]!.activeConns = 1;
    assert.equal(to(svc, '192.0.2.10', 1000)?.addr.text, B);
    // A new address gets the least loaded.
    assert.equal(to(svc, '192.0.2.11', 1000)?.addr.text, A);
    // B over its weight while A has activeconns * 2 < weight: rebind to A.
    rs[1]!.activeConns = 2;
    assert.equal(to(svc, '192.0.2.10', 2000)?.addr.text, A);
    rs[1]!.activeConns = 0;
    rs[0]!.activeConns = 1;
    assert.equal(to(svc, '192.0.2.10', 3000)?.addr.text, A); // stays on A
  });

  it('a cached server with weight 0 or removed is replaced', () => {
    const { svc, rs } = makeService('lblc', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    assert.equal(to(svc, '192.0.2.10', 0)?.addr.text, B);
    rs[1]!.edit({ weight: 0 });
    svc.changed();
    assert.equal(to(svc, '192.0.2.10', 1)?.addr.text, A);
    rs[1]!.edit({ weight: 1 });
    rs[0]!.activeConns = 5;
    svc.removeRealServer(A, 80);
    assert.equal(to(svc, '192.0.2.10', 2)?.addr.text, B);
  });

  it('kernel quirk: a cached server is not checked for the threshold overload flag', () => {
    // ip_vs_lblc_schedule accepts the cached dest when AVAILABLE, weight > 0 and
    // not lblc-overloaded; IP_VS_DEST_F_OVERLOAD is only tested for a new choice.
    const { svc, rs } = makeService('lblc', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    assert.equal(to(svc, '192.0.2.10', 0)?.addr.text, B);
    rs[1]!.overloaded = true;
    assert.equal(to(svc, '192.0.2.10', 1)?.addr.text, B);
    assert.equal(to(svc, '192.0.2.11', 1)?.addr.text, A); // a new choice skips it
  });

  it('an idle binding expires after lblc_expiration (24 h) at the next full check', () => {
    const { svc, rs } = makeService('lblc', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    assert.equal(to(svc, '192.0.2.10', 0)?.addr.text, B);
    assert.equal(to(svc, '192.0.2.20', 0)?.addr.text, B);
    rs[1]!.activeConns = 1; // a fresh choice would now be A
    // 23 h idle: still bound.
    assert.equal(to(svc, '192.0.2.10', 23 * H)?.addr.text, B);
    // 24.5 h idle: the full check (every 30 min) removed it; rebound by wlc.
    assert.equal(to(svc, '192.0.2.20', 24.5 * H)?.addr.text, A);
  });
});

describe('sched sequences: lblcr (ip_vs_lblcr.c)', () => {
  it('grows the server set when its least loaded member is overloaded, shrinks it after 24 h without change', () => {
    const sched = new LblcrScheduler();
    const { svc, rs } = makeService('lblcr', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    svc.setScheduler(sched);
    const X = '192.0.2.10';
    const xw = flow('203.0.113.9', 1, X).daddr;
    const members = () => sched.members(4, xw).map((r) => r.addr.text);
    assert.equal(to(svc, X, 0)?.addr.text, B); // set {B}
    rs[1]!.activeConns = 2; // B: 2 > 1 and A: 0 * 2 < 1 -> overloaded
    assert.equal(to(svc, X, 1000)?.addr.text, A); // A joins: set {A, B}, lastmod 1000
    assert.deepEqual(members(), [A, B]);
    // The least loaded member serves: A (overhead 0) over B (512).
    assert.equal(to(svc, X, 2000)?.addr.text, A);
    // Keep the entry alive without changing the set.
    assert.equal(to(svc, X, 12 * H)?.addr.text, A);
    // More than 24 h since the last change: the most loaded member (B) is dropped.
    assert.equal(to(svc, X, 1000 + 24 * H + 1)?.addr.text, A);
    assert.deepEqual(members(), [A]);
  });

  it('a member that left the service is not used', () => {
    const { svc, rs } = makeService('lblcr', [{ address: A, weight: 1 }, { address: B, weight: 1 }]);
    assert.equal(to(svc, '192.0.2.10', 0)?.addr.text, B);
    rs[0]!.activeConns = 3;
    svc.removeRealServer(B, 80);
    assert.equal(to(svc, '192.0.2.10', 1)?.addr.text, A);
  });
});
