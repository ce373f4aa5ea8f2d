/**
 * The cluster agent (saru/cluster.ts): three agents with the real
 * coordinator, key and state files, on an in-memory transport instead of
 * multicast sockets, with the real clock and timers (short keepalive and
 * deadtime). Every wait is for an event (an applied slice, a log line) with
 * a generous limit, never a fixed sleep. Checks: the first allocation covers
 * every bucket once and is applied to data plane and host stack, then
 * acknowledged; a silent member's buckets are taken over and the takeover
 * logged with its duration; a graceful leave hands the buckets over as
 * draining; a restart takes a higher incarnation from the state file; a key
 * file readable by others is refused.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SaruError, processClock } from '../../core/index.js';
import { ClusterAgent, type SliceUpdate, type Transport } from '../../saru/cluster.js';
import type { CoordinatorConfig } from '../../saru/config.js';
import { createLogger } from '../../saru/log.js';

const BUCKETS = 64;

/** An in-memory multicast segment: every datagram reaches every other attached, asynchronously. */
class Bus {
  private readonly members = new Map<number, (bytes: Uint8Array, path: number) => void>();
  attach(id: number, onMessage: (bytes: Uint8Array, path: number) => void): Transport {
    return {
      start: async () => {
        this.members.set(id, onMessage);
      },
      send: (bytes) => {
        for (const [other, fn] of this.members) if (other !== id) setImmediate(() => fn(bytes, 0));
      },
      close: async () => {
        this.members.delete(id);
      },
    };
  }
}

interface Node {
  agent: ClusterAgent;
  updates: SliceUpdate[];
  host: number[][];
  leases: number[];
  log: Array<Record<string, unknown>>;
  /** Resolves the next time `pred` holds after an update. */
  until(pred: (u: SliceUpdate) => boolean, what: string): Promise<SliceUpdate>;
}

describe('saru/cluster: the coordinator on timers and a transport', function () {
  this.timeout(20_000);
  let dir: string;
  let key: string;
  const running: ClusterAgent[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'saru-cluster-'));
    key = join(dir, 'authkey');
    writeFileSync(key, 'a cluster key of at least sixteen bytes\n', { mode: 0o600 });
  });

  afterEach(async () => {
    for (const a of running.splice(0)) await a.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function coordinator(id: number, o: Partial<CoordinatorConfig> = {}): CoordinatorConfig {
    return {
      authkeys: key,
      weight: 1,
      mcastGroup: '239.192.83.1',
      mcastPort: 7083,
      keepaliveMs: 20,
      deadtimeMs: 80,
      joinDelayMs: 0,
      waitForSync: false,
      stateFile: join(dir, `d${id}`, 'coordinator.state'),
      drainTimeoutMs: 1000,
      ...o,
    };
  }

  function node(bus: Bus, id: number, o: Partial<CoordinatorConfig> = {}, wallMs = Date.now()): Node {
    const updates: SliceUpdate[] = [];
    const host: number[][] = [];
    const leases: number[] = [];
    const log: Array<Record<string, unknown>> = [];
    const out = new PassThrough();
    out.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) if (l !== '') log.push(JSON.parse(l) as Record<string, unknown>);
    });
    const waiters: Array<{ pred: (u: SliceUpdate) => boolean; resolve: (u: SliceUpdate) => void }> = [];
    const agent = new ClusterAgent(
      { nodeId: id, buckets: BUCKETS, interface: 'eth0', clusterInterface: 'eth1', coordinator: coordinator(id, o) },
      {
        log: createLogger({ name: 'saru', facility: 'daemon', destination: out }),
        clock: processClock,
        wallNow: () => wallMs,
        applySlice: async (u) => {
          updates.push(u);
          for (const w of waiters.splice(0)) {
            if (w.pred(u)) w.resolve(u);
            else waiters.push(w);
          }
        },
        applyHost: async (owned) => {
          host.push(owned);
        },
        lease: (until) => leases.push(until),
        transport: (onMessage) => bus.attach(id, onMessage),
      },
    );
    running.push(agent);
    const until = (pred: (u: SliceUpdate) => boolean, what: string): Promise<SliceUpdate> => {
      const seen = updates.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`node ${id}: never ${what}; updates ${JSON.stringify(updates.map((u) => [u.epoch, u.owned.length, u.handOver.length]))}`)), 10_000);
        waiters.push({ pred, resolve: (u) => (clearTimeout(t), resolve(u)) });
      });
    };
    return { agent, updates, host, leases, log, until };
  }

  /** Wait (polling every 10 ms, at most 10 s) until the nodes' latest updates share one epoch and own every bucket exactly once. */
  async function settled(nodes: Node[]): Promise<number> {
    for (let tries = 0; ; tries++) {
      const last = nodes.map((n) => n.updates[n.updates.length - 1]);
      const epochs = new Set(last.map((u) => u?.epoch ?? 0));
      const owned = last.flatMap((u) => u?.owned ?? []);
      if (epochs.size === 1 && !epochs.has(0) && owned.length === BUCKETS && new Set(owned).size === BUCKETS) return [...epochs][0]!;
      assert.ok(tries < 1000, `never settled: ${JSON.stringify(last.map((u) => u && [u.epoch, u.owned.length]))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('allocates every bucket once among three, applies it to data plane and host stack, and acknowledges', async () => {
    const bus = new Bus();
    const nodes = [1, 2, 3].map((id) => node(bus, id));
    await Promise.all(nodes.map((n) => n.agent.start()));
    const epoch = await settled(nodes);
    for (const n of nodes) {
      const u = n.updates[n.updates.length - 1]!;
      assert.ok(u.owned.length >= 21 && u.owned.length <= 22, `balanced: ${u.owned.length}`);
      assert.ok(u.leaseUntil > processClock.now(), 'a lease in the future');
    }
    // acknowledged: every member shows the epoch applied, and the host stack got the same sets
    for (let tries = 0; ; tries++) {
      const info = nodes[0]!.agent.info()!;
      if (info.members.every((m) => m.appliedEpoch === epoch)) break;
      assert.ok(tries < 500, JSON.stringify(info.members));
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const n of nodes) assert.deepEqual(n.host[n.host.length - 1], n.updates[n.updates.length - 1]!.owned);
    const info = nodes[1]!.agent.info()!;
    assert.equal(info.master, 1);
    assert.equal(info.quorate, true);
    assert.deepEqual(info.members.map((m) => m.id), [1, 2, 3]);
  });

  it('takes over a silent member and logs the takeover with its duration', async () => {
    const bus = new Bus();
    const nodes = [1, 2, 3].map((id) => node(bus, id));
    await Promise.all(nodes.map((n) => n.agent.start()));
    const before = await settled(nodes);
    const lost = nodes[1]!.updates[nodes[1]!.updates.length - 1]!.owned;
    await nodes[1]!.agent.stop(); // silent from now on, like a crash
    const [a, c] = [nodes[0]!, nodes[2]!];
    await Promise.all([a, c].map((n) => n.until((u) => u.epoch > before && u.owned.length >= 32, 'took over')));
    const after = await settled([a, c]);
    assert.ok(after > before);
    const gained = [a, c].flatMap((n) => n.updates[n.updates.length - 1]!.owned.filter((b) => lost.includes(b)));
    assert.deepEqual(gained.sort((x, y) => x - y), [...lost].sort((x, y) => x - y));
    for (const n of [a, c]) {
      assert.deepEqual(n.updates[n.updates.length - 1]!.handOver, [], 'nothing handed over in a takeover');
      for (let tries = 0; !n.log.some((l) => l.msg === 'takeover'); tries++) {
        assert.ok(tries < 500, 'takeover logged');
        await new Promise((r) => setTimeout(r, 10));
      }
      const t = n.log.find((l) => l.msg === 'takeover')!;
      assert.equal(t.from, 2);
      assert.ok(typeof t.takeoverMs === 'number' && t.takeoverMs >= 80, `takeover measured from the last heartbeat: ${t.takeoverMs}`);
    }
  });

  it('a graceful leave hands the buckets over as draining, and the others take them', async () => {
    const bus = new Bus();
    const nodes = [1, 2, 3].map((id) => node(bus, id));
    await Promise.all(nodes.map((n) => n.agent.start()));
    await settled(nodes);
    const leaving = nodes[2]!;
    const had = leaving.updates[leaving.updates.length - 1]!.owned;
    assert.equal(await leaving.agent.leave(2000, () => false), true);
    const last = leaving.updates[leaving.updates.length - 1]!;
    assert.deepEqual(last.owned, []);
    assert.deepEqual(last.handOver, had, 'its buckets drain: it finishes its own connections there');
    await settled([nodes[0]!, nodes[1]!]);
    assert.equal(leaving.agent.info()!.state, 'left');
  });

  it('a restarted node takes a higher incarnation from its state file and rejoins', async () => {
    const bus = new Bus();
    const wall = 1_800_000_000_000;
    const first = [1, 2].map((id) => node(bus, id, {}, wall));
    await Promise.all(first.map((n) => n.agent.start()));
    const epoch = await settled(first);
    const saved = JSON.parse(readFileSync(join(dir, 'd2', 'coordinator.state'), 'utf8')) as { incarnation: number; state: { epoch: number } | null };
    assert.equal(saved.incarnation, wall);
    assert.ok(saved.state && saved.state.epoch >= epoch, 'the accepted epoch was persisted');
    await first[1]!.agent.stop();
    await first[0]!.until((u) => u.owned.length === BUCKETS, 'took over all buckets');
    const alone = await settled([first[0]!]);
    const again = node(bus, 2, {}, wall); // the wall clock did not move: the saved incarnation still grows
    await again.agent.start();
    assert.equal(again.agent.info()!.incarnation, wall + 1);
    await again.until((u) => u.owned.length > 0, 'owned buckets again');
    const e2 = await settled([first[0]!, again]);
    assert.ok(e2 > alone && alone > epoch, 'rejoined under a newer epoch');
  });

  it('refuses a key file others can read, naming the fix', async () => {
    chmodSync(key, 0o644);
    const n = node(new Bus(), 1);
    await assert.rejects(n.agent.start(), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_CONFIG' && /chmod 600/.test(e.message));
  });
});
