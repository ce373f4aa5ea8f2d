/**
 * The saru-syncd simulation (sync/sim.ts): whole clusters of SyncNodes with
 * the real codec on a lossy, duplicating, reordering network, over many
 * seeds per scenario. Each scenario ends with the network healed and checks
 * that every node's table holds every connection at its owner's latest
 * version (removed ones absent).
 *
 *   SARU_SYNC_SIM_SEED=<n>    run only seed n of every scenario, print its trace on failure
 *   SARU_SYNC_SIM_SCALE=<k>   k times as many seeds (default 1)
 */
import assert from 'node:assert/strict';
import { MessageKey } from '../../saru/index.js';
import { SyncCodec } from '../../sync/codec.js';
import { SIM_KEY, SyncSim, type SyncSimInit } from '../../sync/sim.js';
import type { PeerAddress } from '../../sync/types.js';

const only = process.env.SARU_SYNC_SIM_SEED;
const scale = Math.max(1, Number(process.env.SARU_SYNC_SIM_SCALE ?? 1));
const REPLAY = 'npx mocha --no-config --require dist/test/fc-seed.js dist/test/sync/sim.spec.js';

/** Seeds `from`, `from + 1`, ... (`count` times the scale), or only SARU_SYNC_SIM_SEED. */
function seeds(from: number, count: number): number[] {
  if (only !== undefined && only !== '') return [Number(only)];
  return Array.from({ length: count * scale }, (_, i) => from + i);
}

type Scenario = (seed: number, trace: boolean) => Promise<{ sim: SyncSim; problems: string[] }>;

async function runSeeds(name: string, list: number[], scenario: Scenario): Promise<void> {
  const failed: string[] = [];
  for (const seed of list) {
    const trace = only !== undefined && only !== '';
    let r: { sim: SyncSim; problems: string[] };
    try {
      r = await scenario(seed, trace);
    } catch (e) {
      failed.push(`seed ${seed}: threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      continue;
    }
    if (r.problems.length > 0) {
      if (trace) console.log(r.sim.trace.join('\n'));
      failed.push(`seed ${seed}: ${r.problems.slice(0, 4).join('; ')}`);
    }
  }
  assert.equal(failed.length, 0, `${name}:\n${failed.join('\n')}\nreplay one: SARU_SYNC_SIM_SEED=<seed> ${REPLAY}`);
}

function sim(seed: number, trace: boolean, init: Omit<SyncSimInit, 'seed'>): SyncSim {
  return new SyncSim({ seed, trace, ...init });
}

/** The bulk-resync ready() calls of the node's current incarnation are exactly [false, true]. */
function readyOnce(s: SyncSim, id: number, sinceMs: number): string[] {
  const calls = s.member(id).local.readyCalls.filter((r) => r.at >= sinceMs).map((r) => r.synced);
  return calls.length === 2 && calls[0] === false && calls[1] === true ? [] : [`node ${id}: ready calls ${JSON.stringify(calls)}`];
}

function allSynced(s: SyncSim): string[] {
  const out: string[] = [];
  for (const m of s.members.values()) {
    const st = m.node?.status();
    if (st && !st.synced) out.push(`node ${m.id} not synced`);
    if (st && st.handlerErrors > 0) out.push(`node ${m.id}: ${st.handlerErrors} handler errors`);
  }
  return out;
}

/** Others' submissions only. */
function except(s: SyncSim, ...ids: number[]): number[] {
  return [...s.members.keys()].filter((id) => !ids.includes(id));
}

describe('sync simulation', function () {
  this.timeout(120_000);

  describe('1. loss, duplication and reordering', () => {
    const lossy =
      (loss: number): Scenario =>
      async (seed, trace) => {
        const s = sim(seed, trace, { nodes: 2 + (seed % 4), net: { loss, dup: 0.05, delayMaxMs: 20 } });
        s.startAll();
        await s.runFor(800);
        await s.traffic(1500, 8, 40);
        s.heal();
        await s.runFor(2500);
        const problems = [...s.check(), ...allSynced(s)];
        if (loss > 0 && s.stats().lost === 0) problems.push('nothing was lost');
        return { sim: s, problems };
      };
    for (const loss of [0, 0.1, 0.2, 0.3]) {
      it(`converges with ${loss * 100}% loss, 5% duplication, 0..20 ms delay`, async () => {
        await runSeeds(`loss ${loss}`, seeds(1000 + loss * 100, 8), lossy(loss));
      });
    }

    it('the workload really updates and removes connections, and the network really reorders', async () => {
      const { sim: s } = await lossy(0.2)(7, false);
      const st = [...s.members.values()].map((m) => m.node!.status());
      assert.ok(st.some((x) => x.superseded > 0), 'an older datagram arrived after a newer one for the same connection');
      assert.ok(st.some((x) => x.retransmitted > 0));
      assert.ok(s.stats().duplicated > 0);
      assert.ok(s.expectedEntries > 500);
    });

    it('is deterministic: a seed replays the same run', async () => {
      const a = await lossy(0.2)(4242, true);
      const b = await lossy(0.2)(4242, true);
      assert.deepEqual(a.sim.stats(), b.sim.stats());
      assert.deepEqual(a.sim.trace, b.sim.trace);
      for (const id of a.sim.members.keys()) {
        assert.deepEqual(a.sim.member(id).local.snapshot(), b.sim.member(id).local.snapshot());
        assert.deepEqual(a.sim.status(id), b.sim.status(id));
      }
    });
  });

  describe('2. late starts', () => {
    it('a node started after thousands of entries resyncs, calls ready(true) once, and ends with every entry', async () => {
      await runSeeds('late join', seeds(2000, 6), async (seed, trace) => {
        const n = 3 + (seed % 3);
        const s = sim(seed, trace, {
          nodes: n,
          net: { loss: [0, 0.1, 0.3][seed % 3]!, dup: 0.05, delayMaxMs: 20 },
          node: { resyncPageEntries: 500, resyncWindow: 8 },
        });
        for (let id = 1; id < n; id++) s.start(id);
        await s.runFor(800);
        await s.traffic(1000, 5, 60);
        const expectedAtJoin = s.expectedEntries;
        const joinedAt = s.clock.now();
        s.start(n);
        await s.traffic(1000, 5, 60); // the others keep going during the resync
        s.heal();
        await s.runFor(3000);
        const problems = [...s.check(), ...allSynced(s), ...readyOnce(s, n, joinedAt)];
        const st = s.status(n)!;
        if (expectedAtJoin < 2000) problems.push(`only ${expectedAtJoin} entries before the join`);
        if (st.resyncEntriesReceived < expectedAtJoin / 2) problems.push(`resync brought only ${st.resyncEntriesReceived} entries`);
        return { sim: s, problems };
      });
    });

    it('nodes started at random times during traffic all converge (cold cluster, then joins)', async () => {
      await runSeeds('staggered starts', seeds(2100, 10), async (seed, trace) => {
        const n = 2 + (seed % 4);
        const s = sim(seed, trace, { nodes: n, net: { loss: [0.05, 0.2][seed % 2]!, dup: 0.05, delayMaxMs: 20 } });
        s.start(1);
        const starts = Array.from({ length: n - 1 }, (_, i) => ({ id: i + 2, at: s.rng.int(0, 2000) })).sort((a, b) => a.at - b.at);
        for (const st of starts) {
          await s.traffic(st.at - s.clock.now(), 4, 40);
          s.start(st.id);
        }
        await s.traffic(1000, 4, 40);
        s.heal();
        await s.runFor(3000);
        const problems = [...s.check(), ...allSynced(s)];
        for (const id of s.members.keys()) problems.push(...readyOnce(s, id, 0));
        return { sim: s, problems };
      });
    });
  });

  describe('2b. a resync source that lags', () => {
    it('a joiner whose source lacks part of a sender stream fetches that part from the sender', async () => {
      await runSeeds('lagging source', seeds(2200, 4), async (seed, trace) => {
        const s = sim(seed, trace, { nodes: 3, net: { loss: [0, 0.1][seed % 2]!, dup: 0.05, delayMaxMs: 20 } });
        s.start(1);
        s.start(2);
        await s.runFor(800);
        await s.traffic(500, 5, 40, [2]);
        // Node 1 (the joiner's source: lowest id) stops hearing node 2, which keeps sending.
        s.partition(1, 2, true);
        await s.traffic(500, 5, 40, [2]);
        const joinedAt = s.clock.now();
        s.start(3); // hears node 2 well ahead of what node 1 holds of it
        await s.traffic(1500, 5, 40, [2]);
        s.partition(1, 2, false);
        await s.traffic(500, 5, 40, [2]);
        s.heal();
        await s.runFor(3000);
        const problems = [...s.check(), ...allSynced(s), ...readyOnce(s, 3, joinedAt)];
        const p2 = s.status(3)!.peers.find((p) => p.nodeId === 2)!;
        if (p2.nacksSent === 0) problems.push('the joiner never NACKed node 2');
        return { sim: s, problems };
      });
    });
  });

  describe('3. crash and restart', () => {
    it('a crashed node restarts with a higher incarnation: peers reset for it, it resyncs and converges', async () => {
      await runSeeds('crash restart', seeds(3000, 8), async (seed, trace) => {
        const n = 3 + (seed % 3);
        const s = sim(seed, trace, { nodes: n, net: { loss: [0, 0.1, 0.3][seed % 3]!, dup: 0.05, delayMaxMs: 20 } });
        s.startAll();
        await s.runFor(800);
        await s.traffic(500, 5, 40);
        const victim = s.rng.int(1, n);
        s.crash(victim); // mid-traffic: what it had not yet delivered is lost with it
        await s.traffic(s.rng.int(100, 1500), 5, 40);
        const restartedAt = s.clock.now();
        s.start(victim);
        await s.traffic(1000, 5, 40);
        s.heal();
        await s.runFor(3000);
        const problems = [...s.check(), ...allSynced(s), ...readyOnce(s, victim, restartedAt)];
        for (const id of except(s, victim)) {
          const p = s.status(id)!.peers.find((x) => x.nodeId === victim);
          if (p?.restarts !== 1 || p.incarnation !== s.member(victim).incarnation) problems.push(`node ${id} did not see node ${victim} restart`);
        }
        return { sim: s, problems };
      });
    });

    it('after a crash in a quiet moment, the restarted node gets back exactly what it had sent', async () => {
      await runSeeds('crash when quiet', seeds(3100, 4), async (seed, trace) => {
        const s = sim(seed, trace, { nodes: 3, net: { loss: 0.2, dup: 0.05, delayMaxMs: 20 } });
        s.startAll();
        await s.runFor(800);
        await s.traffic(800, 5, 40);
        await s.traffic(1500, 5, 40, [2, 3]); // node 1 is quiet: its entries reach everyone
        s.crash(1);
        await s.traffic(300, 5, 40, [2, 3]);
        s.start(1);
        await s.traffic(800, 5, 40);
        s.heal();
        await s.runFor(3000);
        return { sim: s, problems: [...s.check({ strictDead: true }), ...allSynced(s)] };
      });
    });
  });

  describe('4. the resync source crashes mid-resync', () => {
    it('the requester retries another source and converges', async () => {
      await runSeeds('source crash', seeds(4000, 6), async (seed, trace) => {
        const n = 3 + (seed % 3);
        const s = sim(seed, trace, {
          nodes: n,
          net: { loss: [0, 0.1, 0.3][seed % 3]!, dup: 0.05, delayMaxMs: 20 },
          dumpDelayMs: 10,
          node: { resyncPageEntries: 200, resyncWindow: 4 },
        });
        for (let id = 1; id < n; id++) s.start(id);
        await s.runFor(800);
        await s.traffic(800, 3, 60, except(s, n));
        // Nodes 1 and 2 (the likely sources) go quiet, so everything they sent reaches everyone
        // and the check can hold their connections exactly after one of them crashes.
        await s.traffic(1500, 5, 20, except(s, 1, 2, n));
        const joinedAt = s.clock.now();
        s.start(n);
        let source = 0;
        for (let i = 0; i < 1000 && source === 0; i++) {
          await s.traffic(2, 2, 20, except(s, 1, 2, n));
          const st = s.status(n)!;
          if (st.resyncSource !== 0 && st.resyncChunksReceived > 0 && !st.synced) source = st.resyncSource;
        }
        if (source === 0) return { sim: s, problems: ['the late node never fetched from anyone'] };
        const problems: string[] = [];
        if (source > 2) problems.push(`resync source ${source}, expected one of the lowest ids`);
        s.crash(source);
        await s.traffic(1000, 5, 20, except(s, source, n));
        s.heal();
        await s.runFor(4000);
        problems.push(...s.check({ strictDead: true }), ...allSynced(s), ...readyOnce(s, n, joinedAt));
        if (s.status(n)!.resyncs < 2) problems.push('no second source was tried');
        return { sim: s, problems };
      });
    });
  });

  describe('5. ring overflow', () => {
    it('a receiver partitioned past the sender ring converges through a gap resync', async () => {
      await runSeeds('ring overflow', seeds(5000, 8), async (seed, trace) => {
        const s = sim(seed, trace, { nodes: 3, net: { loss: [0, 0.1, 0.3][seed % 3]!, dup: 0.05, delayMaxMs: 20 }, node: { ringDatagrams: 16 } });
        s.startAll();
        await s.runFor(800);
        await s.traffic(300, 5, 40);
        s.partition(1, 3, true);
        await s.traffic(s.rng.int(600, 2000), 5, 80);
        s.partition(1, 3, false);
        await s.traffic(500, 5, 40);
        s.heal();
        await s.runFor(3000);
        // A removal lost in the gap is not repaired (dumps carry present entries); it expires by timeout.
        const problems = [...s.check({ staleRemovalsOk: true }), ...allSynced(s)];
        const st = s.status(3)!;
        const p1 = st.peers.find((p) => p.nodeId === 1)!;
        if (p1.unrecoverable === 0 || st.gapResyncs === 0) problems.push(`no gap resync (unrecoverable ${p1.unrecoverable})`);
        return { sim: s, problems };
      });
    });
  });

  describe('6. hostile datagrams', () => {
    it('forged, truncated, oversized, malformed, random and replayed datagrams are counted and change nothing', async () => {
      await runSeeds('attacks', seeds(6000, 4), async (seed, trace) => {
        const s = sim(seed, trace, { nodes: 3, net: { loss: 0.1, dup: 0.05, delayMaxMs: 20 }, capture: 400 });
        s.startAll();
        await s.runFor(800);
        await s.traffic(1000, 5, 40);
        s.heal();
        await s.runFor(2000);
        const problems = s.check();
        const before = new Map([...s.members.keys()].map((id) => [id, { snap: s.member(id).local.snapshot(), st: s.status(id)! }]));
        const forger = new SyncCodec({ key: new Uint8Array(32).fill(0x5a) });
        const signer = new MessageKey(SIM_KEY);
        const want = new Map([...s.members.keys()].map((id) => [id, { authFailures: 0, truncated: 0, oversized: 0, malformed: 0, replayed: 0 }]));
        const fake: PeerAddress = { address: '10.0.0.66', port: 8848 };
        const rand = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => s.rng.int(0, 255));
        const captured = [...s.captured];
        for (let i = 0; i < 200; i++) {
          const to = s.rng.int(1, 3);
          const w = want.get(to)!;
          const kind = s.rng.int(0, 6);
          let bytes: Uint8Array;
          let from: PeerAddress = fake;
          if (kind === 0) {
            const victim = s.member(s.rng.int(1, 3));
            bytes = forger.encode({ nodeId: victim.id, incarnation: victim.incarnation, seq: 1e9 + i, epoch: 0, body: { kind: 'entries', dataSeq: 1e6, entries: { bytes: new Uint8Array(0), count: 0 } } });
            w.authFailures++;
          } else if (kind === 1) {
            bytes = rand(s.rng.int(0, 32));
            w.truncated++;
          } else if (kind === 2) {
            bytes = rand(s.rng.int(1473, 3000));
            w.oversized++;
          } else if (kind === 3) {
            bytes = rand(s.rng.int(33, 1472));
            w.authFailures++;
          } else if (kind === 4) {
            const c = s.rng.pick(captured);
            bytes = c.bytes.subarray(0, Math.max(33, c.bytes.length >> 1));
            w.authFailures++;
          } else if (kind === 5) {
            // Authentic (right key) but not a valid Message: node id 0, or no body.
            const body = s.rng.chance(0.5) ? Uint8Array.of(0x08, 0x00) : Uint8Array.of(0x08, 0x05, 0x10, 0x01);
            bytes = new Uint8Array([...body, ...signer.tag(body)]);
            w.malformed++;
          } else {
            // A replay of a datagram this node already took (or refused as a replay).
            const mine = captured.filter((c) => c.to === to);
            const c = s.rng.pick(mine);
            bytes = c.bytes;
            from = c.from;
            w.replayed++;
          }
          s.inject(to, bytes, from, s.rng.int(0, 500));
        }
        await s.runFor(1000);
        for (const [id, b] of before) {
          const st = s.status(id)!;
          const w = want.get(id)!;
          for (const k of Object.keys(w) as Array<keyof typeof w>) {
            if (st[k] - b.st[k] !== w[k]) problems.push(`node ${id}: ${k} +${st[k] - b.st[k]}, expected +${w[k]}`);
          }
          if (st.entriesReceived !== b.st.entriesReceived) problems.push(`node ${id}: entries injected by hostile traffic`);
          assert.deepEqual(s.member(id).local.snapshot(), b.snap, `seed ${seed}: node ${id}'s table changed`);
        }
        // And under traffic and loss, with hostile traffic mixed in, it still converges.
        s.net = { ...s.net, loss: 0.1, dup: 0.05 };
        for (let i = 0; i < 20; i++) {
          const c = s.rng.pick(captured);
          s.inject(c.to, c.bytes, c.from, s.rng.int(0, 800));
          s.inject(s.rng.int(1, 3), rand(s.rng.int(33, 1472)), fake, s.rng.int(0, 800));
        }
        await s.traffic(800, 5, 40);
        s.heal();
        await s.runFor(2500);
        problems.push(...s.check(), ...allSynced(s));
        return { sim: s, problems };
      });
    });
  });
});
