/**
 * Acknowledged records (sync/node.ts decision 8): once every live peer's
 * Alive acks the datagrams carrying them, the node reports how many of the
 * records given to submit() are held everywhere; under loss the count still
 * reaches the total once the gaps are repaired, and it never goes back.
 */
import assert from 'node:assert/strict';
import { SyncSim } from '../../sync/sim.js';

describe('sync/node acked()', () => {
  for (const [seed, loss] of [[1, 0], [2, 0.1], [3, 0.3]] as const) {
    it(`with ${loss * 100}% loss, the acked count reaches every record submitted (seed ${seed})`, async () => {
      const s = new SyncSim({ seed, nodes: 3, net: { loss, dup: 0.05, delayMaxMs: 20 } });
      s.startAll();
      await s.runFor(800);
      s.submitRandom(1, 500);
      const submitted = s.stats().submitted;
      assert.ok(submitted >= 500);
      await s.runFor(100);
      const early = s.member(1).local.ackedRecords;
      await s.runFor(3000);
      const local = s.member(1).local;
      assert.ok(local.ackedRecords >= early);
      assert.equal(local.ackedRecords, s.member(1).node!.status().entriesSent, 'every record node 1 sent is held by both peers');
    });
  }

  it('a dead peer stops holding the count back', async () => {
    const s = new SyncSim({ seed: 9, nodes: 3, net: { loss: 0, dup: 0, delayMaxMs: 2 } });
    s.startAll();
    await s.runFor(800);
    s.crash(3);
    s.submitRandom(1, 200);
    await s.runFor(2000);
    assert.equal(s.member(1).local.ackedRecords, s.member(1).node!.status().entriesSent);
  });
});
