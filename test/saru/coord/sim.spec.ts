/**
 * The deterministic cluster simulation: 1,000 random seeds (each a cluster of
 * 2 to 5 directors with loss, delay, duplication, reordering, partitions,
 * crashes, restarts, pauses, leaves and weight changes), then fixed scenarios.
 *
 *   SARU_SIM_SEED=<n>      run only seed n, and print its full trace
 *   SARU_SIM_SEEDS=<count> number of random seeds (default 1000)
 *   SARU_SIM_FROM=<n>      first random seed (default 1)
 */
import assert from 'node:assert/strict';
import { Prng, Simulation, runSimulation, type SimResult } from '../../../saru/coord/index.js';

const only = process.env.SARU_SIM_SEED;
const count = Number(process.env.SARU_SIM_SEEDS ?? 1000);
const from = Number(process.env.SARU_SIM_FROM ?? 1);

function report(failed: SimResult[]): string {
  return failed
    .map((r) => `seed ${r.seed} (${r.stats.nodes} nodes): ${r.violations.slice(0, 3).join('; ')}\n  replay: SARU_SIM_SEED=${r.seed} npx mocha --no-config --require dist/test/fc-seed.js dist/test/saru/coord/sim.spec.js`)
    .join('\n');
}

describe('coordinator simulation', function () {
  this.timeout(120_000);

  if (only !== undefined && only !== '') {
    it(`replays seed ${only}`, () => {
      const r = runSimulation({ seed: Number(only), trace: true });
      if (!r.ok) {
        console.log(r.trace!.join('\n'));
        assert.fail(report([r]));
      }
    });
    return;
  }

  it(`holds safety and liveness over ${count} seeds`, () => {
    const failed: SimResult[] = [];
    let maxDouble = 0;
    for (let seed = from; seed < from + count; seed++) {
      const r = runSimulation({ seed });
      if (!r.ok) failed.push(r);
      maxDouble = Math.max(maxDouble, r.stats.maxDoubleMs);
    }
    assert.equal(failed.length, 0, `\n${report(failed)}`);
    assert.ok(maxDouble <= 300 + 100 + 2 * 20 + 10, `longest double ownership ${maxDouble} ms`);
  });

  it('is deterministic: a seed replays the same run', () => {
    const a = runSimulation({ seed: 4242, trace: true });
    const b = runSimulation({ seed: 4242, trace: true });
    assert.deepEqual(a.trace, b.trace);
    assert.deepEqual(a.stats, b.stats);
    const c = runSimulation({ seed: 4243, trace: true });
    assert.notDeepEqual(a.trace, c.trace);
  });

  it('draws the same numbers from the same seed', () => {
    const x = new Prng(7);
    const y = new Prng(7);
    const xs = Array.from({ length: 100 }, () => x.u32());
    assert.deepEqual(xs, Array.from({ length: 100 }, () => y.u32()));
    assert.ok(new Set(xs).size > 95);
    const r = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const v = r.int(3, 9);
      assert.ok(v >= 3 && v <= 9 && Number.isInteger(v));
    }
  });

  describe('scenarios', () => {
    const deadtime = 300;

    function cluster(nodes: number, seed = 1): Simulation {
      const sim = new Simulation({ seed, nodes, syncDelayMs: [0, 50], network: { loss: 0.02, dup: 0.02, delayMinMs: 0, delayMaxMs: 5 } });
      sim.run(1500);
      assert.equal(sim.unconverged(), null);
      return sim;
    }

    function ownersWithin(sim: Simulation, allowed: number[]): boolean {
      for (let b = 0; b < sim.buckets; b++) {
        const o = sim.owners(b);
        if (o.length !== 1 || !allowed.includes(o[0]!)) return false;
      }
      return true;
    }

    function healAndConverge(sim: Simulation): void {
      sim.heal();
      sim.setNetwork({ loss: 0, dup: 0 });
      sim.run(5 * deadtime + 400);
      assert.equal(sim.unconverged(), null);
      assert.deepEqual(sim.violations, []);
    }

    it('partition 2|1: the majority serves everything within deadtime + slack; no double ownership beyond it', () => {
      const sim = cluster(3);
      sim.partition([[1, 2], [3]]);
      sim.run(deadtime + sim.slackMs);
      assert.ok(ownersWithin(sim, [1, 2]), 'majority owns every bucket, minority none');
      sim.run(2000);
      assert.ok(ownersWithin(sim, [1, 2]));
      assert.deepEqual(sim.violations, []);
      healAndConverge(sim);
    });

    it('partition 2|2: the side with the lowest id serves; the other stops', () => {
      const sim = cluster(4);
      sim.partition([[1, 3], [2, 4]]);
      sim.run(deadtime + sim.slackMs);
      assert.ok(ownersWithin(sim, [1, 3]));
      sim.run(2000);
      assert.ok(ownersWithin(sim, [1, 3]));
      assert.deepEqual(sim.violations, []);
      healAndConverge(sim);
    });

    it('partition 1|1|1 of three: nobody has a majority, so nobody forwards (no split brain)', () => {
      const sim = cluster(3);
      sim.partition([[1], [2], [3]]);
      sim.run(deadtime + sim.slackMs);
      for (let b = 0; b < sim.buckets; b++) assert.deepEqual(sim.owners(b), []);
      healAndConverge(sim);
    });

    it('crash and restart of the master: takeover within deadtime + slack, rejoin with higher epochs', () => {
      const sim = cluster(3);
      const before = sim.node(2)!.committedEpoch();
      sim.crash(1);
      sim.run(deadtime + sim.slackMs);
      assert.ok(ownersWithin(sim, [2, 3]));
      assert.equal(sim.node(2)!.status().master, 2);
      const during = sim.node(2)!.committedEpoch();
      assert.ok(during > before);
      sim.restart(1);
      sim.run(5 * deadtime);
      assert.equal(sim.unconverged(), null);
      assert.equal(sim.node(3)!.status().master, 1);
      assert.ok(sim.node(1)!.committedEpoch() > during);
      assert.deepEqual(sim.violations, []); // includes: node 1's epochs never went below its pre-crash ones
    });

    it('a GC pause longer than deadtime: the lease stops the paused node, the others take over', () => {
      const sim = cluster(3);
      sim.pause(2, 3 * deadtime);
      sim.run(deadtime + sim.slackMs);
      assert.ok(ownersWithin(sim, [1, 3]));
      sim.run(3 * deadtime);
      assert.deepEqual(sim.violations, []);
      healAndConverge(sim);
    });

    it('one network down: peers still heard on the other path, nothing moves', () => {
      const sim = cluster(3);
      const epoch = sim.node(1)!.committedEpoch();
      sim.partition([[1], [2], [3]], [0]);
      sim.run(3000);
      assert.equal(sim.node(1)!.committedEpoch(), epoch);
      assert.equal(sim.unconverged(), null);
      assert.deepEqual(sim.violations, []);
    });

    it('a graceful leave and a rejoin under loss', () => {
      const sim = cluster(5);
      sim.setNetwork({ loss: 0.1, dup: 0.05, delayMaxMs: 10 });
      sim.leave(3);
      sim.run(1000);
      assert.equal(sim.isUp(3), false, 'the leaving node handed over and stopped');
      assert.ok(ownersWithin(sim, [1, 2, 4, 5]));
      sim.restart(3);
      healAndConverge(sim);
    });
  });
});
