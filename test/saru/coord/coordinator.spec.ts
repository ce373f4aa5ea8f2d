import assert from 'node:assert/strict';
import { ManualClock, SaruError } from '../../../core/index.js';
import type { Logger } from '../../../saru/log.js';
import {
  Coordinator,
  MessageKey,
  encodeMessage,
  epochMaster,
  epochTerm,
  makeEpoch,
  type CoordinatorDeps,
  type CoordinatorInit,
  type PersistedState,
} from '../../../saru/coord/index.js';

const KEY = new Uint8Array(32).fill(42);
const BUCKETS = 64;
const DEAD = 300;
const STEP = 5;

interface TestNode {
  id: number;
  c: Coordinator;
  up: boolean;
  /** Every datagram it sent, in order. */
  sent: Uint8Array[];
  outbox: Uint8Array[];
  /** Every onApply call. */
  applies: Array<{ t: number; epoch: number; buckets: number[] }>;
  disk: PersistedState | null;
  incarnation: number;
}

/** A recording transport: datagrams queue per sender and reach every other up node on both paths at the next step. */
class Cluster {
  readonly clock = new ManualClock(0);
  readonly nodes = new Map<number, TestNode>();
  /** Return true to drop a datagram from `from` to `to` on `path`. */
  blocked: (from: number, to: number, path: number) => boolean = () => false;

  add(id: number, init: Partial<CoordinatorInit> = {}, synced = true): TestNode {
    const prev = this.nodes.get(id);
    const n: TestNode = { id, c: null as unknown as Coordinator, up: true, sent: [], outbox: [], applies: [], disk: prev?.disk ?? null, incarnation: (prev?.incarnation ?? 0) + 1 };
    n.c = new Coordinator(
      { nodeId: id, weight: 1, incarnation: n.incarnation, buckets: BUCKETS, keepaliveMs: 100, deadtimeMs: DEAD, joinDelayMs: 10_000, key: KEY, restore: n.disk, ...init },
      {
        clock: this.clock,
        send: (b) => {
          n.sent.push(b);
          n.outbox.push(b);
        },
        onApply: (epoch, buckets) => {
          n.applies.push({ t: this.clock.now(), epoch, buckets });
          n.c.applied(epoch);
        },
        persist: (s) => {
          n.disk = structuredClone(s);
        },
      },
    );
    if (synced) n.c.setSynced(true);
    this.nodes.set(id, n);
    return n;
  }

  node(id: number): TestNode {
    return this.nodes.get(id)!;
  }

  crash(id: number): void {
    const n = this.node(id);
    n.up = false;
    n.outbox = [];
  }

  step(): void {
    this.clock.advance(STEP);
    for (const from of this.nodes.values()) {
      const out = from.outbox;
      from.outbox = [];
      if (!from.up) continue;
      for (const bytes of out) {
        for (const to of this.nodes.values()) {
          if (to === from || !to.up) continue;
          for (const path of [0, 1]) if (!this.blocked(from.id, to.id, path)) to.c.receive(bytes, path);
        }
      }
    }
    for (const n of this.nodes.values()) if (n.up) n.c.tick();
  }

  run(ms: number, each?: () => void): void {
    for (let t = 0; t < ms; t += STEP) {
      this.step();
      each?.();
    }
  }

  /** Runs until `cond` holds; returns the time it took. */
  until(cond: () => boolean, maxMs: number): number {
    const start = this.clock.now();
    while (!cond()) {
      if (this.clock.now() - start > maxMs) assert.fail(`condition not met within ${maxMs} ms`);
      this.step();
    }
    return this.clock.now() - start;
  }

  owners(b: number): number[] {
    return [...this.nodes.values()].filter((n) => n.up && n.c.owns(b)).map((n) => n.id);
  }

  /** Every bucket owned by exactly one up node. */
  covered(): boolean {
    for (let b = 0; b < BUCKETS; b++) if (this.owners(b).length !== 1) return false;
    return true;
  }

  /** Every up node forwards by the same epoch. */
  agreed(): boolean {
    const e = new Set([...this.nodes.values()].filter((n) => n.up).map((n) => n.c.committedEpoch()));
    return e.size === 1 && !e.has(0);
  }
}

function converged(k: Cluster): boolean {
  return k.covered() && k.agreed();
}

function start(ids: number[]): Cluster {
  const k = new Cluster();
  for (const id of ids) k.add(id);
  k.until(() => converged(k), 2000);
  return k;
}

describe('coordinator', () => {
  it('elects the lowest id, allocates every bucket once, balanced, and every node acks', () => {
    const k = start([3, 1, 2]);
    const st = k.node(2).c.status();
    assert.equal(st.master, 1);
    assert.equal(epochMaster(st.epoch), 1);
    const counts = [1, 2, 3].map((id) => k.node(id).c.owned().buckets.length);
    assert.deepEqual(counts.sort(), [21, 21, 22]);
    k.run(200);
    const ms = k.node(1).c.status();
    assert.equal(ms.isMaster, true);
    for (const m of ms.members) {
      assert.equal(m.acceptedEpoch, ms.epoch, `member ${m.id} accepted`);
      assert.equal(m.appliedEpoch, ms.epoch, `member ${m.id} applied`);
      assert.equal(m.alive, true);
      assert.ok(m.self || (m.lastHeartbeatAgeMs !== null && m.lastHeartbeatAgeMs <= 100 + STEP));
    }
    assert.equal(ms.members.reduce((s, m) => s + m.buckets, 0), BUCKETS);
    // the daemon was told, and what it was told is what owned() says
    for (const id of [1, 2, 3]) {
      const n = k.node(id);
      const last = n.applies[n.applies.length - 1]!;
      assert.deepEqual(last.buckets, n.c.owned().buckets);
      assert.equal(last.epoch, n.c.owned().epoch);
    }
  });

  it('takes no buckets until synced, or until the join delay expires', () => {
    const k = start([1, 2]);
    const late = k.add(3, { joinDelayMs: 2000 }, false);
    const waited = k.add(4, { joinDelayMs: 5000 }, false);
    k.run(1500);
    assert.equal(late.c.owned().buckets.length, 0);
    assert.equal(waited.c.owned().buckets.length, 0);
    assert.equal(late.c.status().state, 'joining');
    waited.c.setSynced(true); // the sync daemon finished
    const t = k.until(() => waited.c.owned().buckets.length > 0, 1000);
    assert.ok(t < 100, `took ${t} ms after setSynced`);
    assert.equal(late.c.owned().buckets.length, 0);
    k.until(() => late.c.owned().buckets.length > 0, 700); // join delay (2000 ms from its start) expires
    assert.ok(k.clock.now() >= 2000 + 0);
    k.until(() => converged(k), 500);
  });

  it('detects a dead member within deadtime and gives its buckets to the survivors', () => {
    const k = start([1, 2, 3]);
    k.run(1000);
    const before = k.node(1).c.committedEpoch();
    k.crash(3);
    const took = k.until(() => k.covered(), 2000);
    assert.ok(took <= DEAD + 30, `takeover took ${took} ms`);
    assert.ok(took >= DEAD - 100 - STEP, `takeover too early (${took} ms)`);
    assert.ok(k.node(1).c.committedEpoch() > before);
    assert.equal(k.node(2).c.status().members.find((m) => m.id === 3)!.alive, false);
  });

  it('fails over the master: the next lowest id takes over with a higher epoch', () => {
    const k = start([1, 2, 3]);
    k.run(500);
    const before = k.node(2).c.committedEpoch();
    k.crash(1);
    const took = k.until(() => k.covered(), 2000);
    assert.ok(took <= DEAD + 30, `takeover took ${took} ms`);
    const after = k.node(2).c.committedEpoch();
    assert.ok(after > before);
    assert.equal(epochMaster(after), 2);
    assert.equal(k.node(3).c.status().master, 2);
    assert.equal(k.node(2).c.owned().buckets.length + k.node(3).c.owned().buckets.length, BUCKETS);
  });

  it('hands over on a graceful leave without a moment where a bucket has no owner', () => {
    const k = start([1, 2, 3]);
    k.run(300);
    const mine = k.node(2).c.owned().buckets.length;
    assert.ok(mine > 0);
    k.node(2).c.leave();
    let gap = 0;
    let kept = 0;
    k.run(600, () => {
      for (let b = 0; b < BUCKETS; b++) if (k.owners(b).length === 0) gap++;
      if (!k.node(2).c.hasLeft() && k.node(2).c.owned().buckets.length === mine) kept++;
    });
    assert.equal(gap, 0, 'a bucket had no owner during the handover');
    assert.ok(kept >= 1, 'the leaving node kept its buckets until the new allocation was committed');
    assert.equal(k.node(2).c.hasLeft(), true);
    assert.equal(k.node(2).c.owned().buckets.length, 0);
    assert.equal(k.node(2).c.status().state, 'left');
    k.crash(2);
    assert.ok(converged(k));
  });

  it('ignores an allocation with an older epoch, and counts it', () => {
    const k = start([1, 2]);
    const n = k.node(2);
    const epoch = n.c.committedEpoch();
    const owned = n.c.owned().buckets;
    const key = new MessageKey(KEY);
    const stale = encodeMessage(
      {
        sender: 1,
        incarnation: 1,
        seq: 1_000_000,
        body: { kind: 'allocation', allocation: { epoch: makeEpoch(epochTerm(epoch) - 1, 1), master: 1, buckets: BUCKETS, members: [{ id: 2, weight: 1 }], owners: new Int32Array(BUCKETS).fill(2), committed: true } },
      },
      key,
    );
    n.c.receive(stale, 0);
    k.run(50);
    assert.equal(n.c.counterValues().stale_allocation, 1);
    assert.equal(n.c.committedEpoch(), epoch);
    assert.deepEqual(n.c.owned().buckets, owned);
  });

  it('counts and drops forged, garbled, replayed and old-incarnation datagrams', () => {
    const k = start([1, 2]);
    const n = k.node(2);
    const before = n.c.owned();
    const forged = encodeMessage({ sender: 1, incarnation: 1, seq: 9_999_999, body: { kind: 'commit', epoch: 1 << 20 } }, new MessageKey(new Uint8Array(32).fill(1)));
    n.c.receive(forged, 0);
    n.c.receive(new Uint8Array(10), 0);
    n.c.receive(new Uint8Array(100), 1);
    const old = k.node(1).sent[k.node(1).sent.length - 1]!;
    n.c.receive(old, 0); // already delivered on both paths
    const counters = n.c.counterValues();
    assert.equal(counters.bad_mac, 1);
    assert.equal(counters.truncated, 1);
    assert.equal(counters.bad_magic, 1);
    assert.ok(counters.duplicate! >= 2);
    // node 1 restarts: its old incarnation's datagrams are refused
    const oldIncarnation = k.node(1).sent[3]!;
    k.crash(1);
    k.add(1);
    k.run(20);
    n.c.receive(oldIncarnation, 0);
    assert.equal(n.c.counterValues().old_incarnation, 1);
    assert.deepEqual(n.c.owned().buckets, before.buckets);
    // its own datagrams looped back are counted, not processed
    n.c.receive(n.sent[0]!, 0);
    assert.equal(n.c.counterValues().own, 1);
  });

  it('accepts a peer heard on the data path only', () => {
    const k = start([1, 2, 3]);
    const epoch = k.node(1).c.committedEpoch();
    k.blocked = (_f, _t, path) => path === 0; // the cluster network is down
    k.run(2000);
    assert.equal(k.node(1).c.committedEpoch(), epoch, 'no membership change');
    assert.ok(converged(k));
    const m = k.node(1).c.status().members.find((x) => x.id === 2)!;
    assert.ok(m.pathAgeMs[0]! >= 1900 && m.pathAgeMs[1]! <= 100 + STEP, JSON.stringify(m.pathAgeMs));
  });

  it('partition 2|1: the majority reallocates, the minority stops forwarding after deadtime', () => {
    const k = start([1, 2, 3]);
    k.run(500);
    const side = (id: number): number => (id === 3 ? 1 : 0);
    k.blocked = (f, t) => side(f) !== side(t);
    const t = k.until(() => k.node(3).c.owned().buckets.length === 0, 1000);
    assert.ok(t <= DEAD + STEP, `minority stopped after ${t} ms`);
    k.until(() => [1, 2].reduce((s, id) => s + k.node(id).c.owned().buckets.length, 0) === BUCKETS, 200);
    k.run(1000);
    assert.equal(k.node(3).c.owned().buckets.length, 0);
    assert.equal(k.node(3).c.status().quorate, false);
    k.blocked = () => false;
    k.until(() => converged(k), 2000);
    assert.ok(k.node(3).c.owned().buckets.length > 0);
  });

  it('partition 2|2: the side with the lowest id keeps serving', () => {
    const k = start([1, 2, 3, 4]);
    k.run(500);
    const sideA = new Set([1, 3]);
    k.blocked = (f, t) => sideA.has(f) !== sideA.has(t);
    k.run(DEAD + 100);
    assert.equal(k.node(2).c.owned().buckets.length + k.node(4).c.owned().buckets.length, 0);
    assert.equal(k.node(1).c.owned().buckets.length + k.node(3).c.owned().buckets.length, BUCKETS);
    k.blocked = () => false;
    k.until(() => converged(k), 2000);
  });

  it('gives the data plane a lease that ends a deadtime after the quorum was last heard', () => {
    const k = start([1, 2, 3]);
    k.run(200);
    const n = k.node(3);
    const until = n.c.leaseUntil();
    assert.ok(until > k.clock.now() && until <= k.clock.now() + DEAD, `lease until ${until} at ${k.clock.now()}`);
    assert.deepEqual(n.c.owned().until, until);
    const solo = start([5]);
    assert.equal(solo.node(5).c.leaseUntil(), Infinity);
  });

  it('never goes below its old epochs after a restart, and never reuses one', () => {
    const k = start([1, 2, 3]);
    k.run(300);
    const issuedBefore = k.node(1).c.committedEpoch();
    assert.equal(epochMaster(issuedBefore), 1);
    k.crash(1);
    k.until(() => k.covered(), 1000);
    // restart with what it saved: epochs only grow, and a fresh epoch from node 1 is above all of them
    const saved = k.node(1).disk!;
    assert.equal(saved.epoch, issuedBefore);
    const n = k.add(1);
    k.until(() => converged(k), 2000);
    assert.ok(n.c.acceptedEpoch() >= saved.epoch);
    assert.ok(n.c.committedEpoch() > issuedBefore);
    assert.equal(n.c.status().master, 1);
    // and a restart that lost its state still issues above: the incarnation is the lowest term it uses
    k.crash(1);
    k.nodes.get(1)!.disk = null;
    const m = k.add(1, { incarnation: 5_000 });
    k.until(() => converged(k) && epochMaster(m.c.committedEpoch()) === 1, 3000);
    assert.ok(epochTerm(m.c.committedEpoch()) >= 5_000);
  });

  it('a node back with saved state newer than the cluster\'s makes the master issue above it', () => {
    const k = start([1, 2, 3]);
    const e = k.node(1).c.committedEpoch();
    k.crash(1);
    k.until(() => k.covered(), 1000);
    // as if node 1 had issued, saved and crashed before anyone heard: the others never saw this epoch
    const ahead = makeEpoch(epochTerm(e) + 50, 1);
    k.node(1).disk = { epoch: ahead, committedEpoch: ahead, configs: [[1, 2, 3]] };
    const n = k.add(1);
    k.until(() => converged(k), 2000);
    assert.ok(n.c.acceptedEpoch() > ahead && k.node(2).c.committedEpoch() > ahead);
  });

  it('a node back with long-outdated saved state does not stop the cluster', () => {
    const k = start([1, 2, 3]);
    k.crash(3);
    k.until(() => k.covered(), 1000);
    k.node(3).disk = { epoch: 1025, committedEpoch: 1025, configs: [[7, 8, 9]] }; // members long gone
    k.add(3);
    // buckets moving from the master to the newcomer have no owner between the master's commit
    // and the newcomer hearing of it (one message delay); nothing else may be unowned
    const since = new Array<number>(BUCKETS).fill(-1);
    let longest = 0;
    k.run(1000, () => {
      for (let b = 0; b < BUCKETS; b++) {
        if (k.owners(b).length > 0) since[b] = -1;
        else {
          if (since[b] === -1) since[b] = k.clock.now();
          longest = Math.max(longest, k.clock.now() - since[b]! + STEP);
        }
      }
    });
    assert.ok(longest <= STEP, `a bucket had no owner for ${longest} ms`);
    assert.ok(converged(k));
  });

  it('reports its state for saruadm --cluster', () => {
    const k = start([1, 2]);
    const st = k.node(2).c.status();
    assert.equal(st.nodeId, 2);
    assert.equal(st.state, 'active');
    assert.equal(st.master, 1);
    assert.equal(st.quorate, true);
    assert.equal(st.stale, false);
    assert.equal(st.ownedBuckets, 32);
    assert.deepEqual(st.members.map((m) => [m.id, m.self, m.member, m.buckets]), [[1, false, true, 32], [2, true, true, 32]]);
    assert.ok(st.counters.rx! > 0 && st.counters.tx! > 0);
  });

  it('reallocates when a weight changes', () => {
    const k = start([1, 2]);
    k.node(2).c.setWeight(3);
    k.until(() => k.node(2).c.owned().buckets.length === 48, 500);
    assert.equal(k.node(1).c.owned().buckets.length, 16);
  });

  it('takes a pino child logger as its log', () => {
    const lines: string[] = [];
    const fake = { info: (_o: object, m?: string) => lines.push(m ?? ''), warn: () => {}, debug: () => {} };
    const asPino: Logger | null = null;
    const deps: CoordinatorDeps = { clock: new ManualClock(), send: () => {}, log: asPino ?? fake }; // compiles: pino's Logger fits CoordLogger
    new Coordinator({ nodeId: 1, weight: 1, incarnation: 1, buckets: 64, key: KEY }, deps);
    assert.deepEqual(lines, ['coordinator started']);
  });

  it('rejects a bad configuration with SARU_ERR_INVALID_ARGUMENT', () => {
    const clock = new ManualClock();
    const base: CoordinatorInit = { nodeId: 1, weight: 1, incarnation: 1, buckets: 64, key: KEY };
    const bad = (init: Partial<CoordinatorInit>): void =>
      assert.throws(() => new Coordinator({ ...base, ...init }, { clock, send: () => {} }), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_INVALID_ARGUMENT');
    bad({ nodeId: 1024 });
    bad({ buckets: 100 });
    bad({ buckets: 32768 });
    bad({ weight: -1 });
    bad({ incarnation: 0 });
    bad({ keepaliveMs: 100, deadtimeMs: 150 });
    bad({ key: new Uint8Array(8) });
    const c = new Coordinator(base, { clock, send: () => {} });
    assert.equal(c.keepaliveMs, 100);
    assert.equal(c.deadtimeMs, 300);
    assert.equal(c.joinDelayMs, 30_000);
  });
});
