/**
 * Sync events: the ip_vs_sync_conn_needed rule (threshold/period, sync-able
 * TCP states, forced syncs on closing transitions), the fixed ring with its
 * overflow counter, and templates synced with their connections.
 */
import { strict as assert } from 'node:assert';
import { Fwd, Proto } from '../../../core/constants.js';
import { ConnSnapshot, Persistence } from '../../../core/conn/index.js';
import { flow, setup, tcp } from './helpers.js';

function drained(t: { drainSync(fn: (i: number) => void): number }): number[] {
  const out: number[] = [];
  t.drainSync((i) => out.push(i));
  return out;
}

describe('conn/sync: events', () => {
  it('with 3 50, an ESTABLISHED entry raises events on packets 3, 53, 103, 153', () => {
    const { table, rs } = setup({ fwd: Fwd.DR });
    const idx = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), rs[0]!);
    const at: number[] = [];
    for (let p = 1; p <= 160; p++) {
      table.packet(idx, false, tcp(p === 1 ? 'S' : 'A'));
      if (table.drainSync(() => {}) > 0) at.push(table.packets(idx));
    }
    assert.deepEqual(at, [3, 53, 103, 153]);
    assert.equal(table.counters.syncEvents, 4);
  });

  it('no event in non-syncable states even at the threshold (SYN_RECV)', () => {
    const { table, rs } = setup({ fwd: Fwd.DR });
    const idx = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), rs[0]!);
    for (let p = 1; p <= 5; p++) table.packet(idx, false, tcp('S'));
    assert.equal(table.stateName(idx), 'SYN_RECV');
    assert.deepEqual(drained(table), []);
  });

  it('forced events on the transitions to FIN_WAIT and CLOSE (and TIME_WAIT, CLOSE_WAIT), not on ESTABLISHED', () => {
    const { table, rs } = setup({ fwd: Fwd.DR });
    const idx = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), rs[0]!);
    table.packet(idx, false, tcp('S')); // 1 SYN_RECV
    table.packet(idx, false, tcp('A')); // 2 ESTABLISHED: not forced
    assert.deepEqual(drained(table), []);
    for (let p = 3; p <= 10; p++) table.packet(idx, false, tcp('A')); // event at 3
    assert.deepEqual(drained(table), [idx]);
    table.packet(idx, false, tcp('FA')); // 11 FIN_WAIT: forced
    assert.equal(table.stateName(idx), 'FIN_WAIT');
    assert.deepEqual(drained(table), [idx]);
    table.packet(idx, false, tcp('A')); // 12 still FIN_WAIT: no event
    assert.deepEqual(drained(table), []);
    table.packet(idx, false, tcp('R')); // 13 CLOSE: forced
    assert.deepEqual(drained(table), [idx]);
    table.packet(idx, false, tcp('R')); // 14 still CLOSE
    assert.deepEqual(drained(table), []);

    // NAT: CLOSE_WAIT (client FIN) and TIME_WAIT are forced too; the state
    // change made by a reply is synced on the next inbound packet.
    const n = setup({ fwd: Fwd.NAT });
    const j = n.table.create(flow(Proto.TCP, '198.51.100.8', 40000, '192.0.2.10', 80), n.rs[0]!);
    n.table.packet(j, false, tcp('S'));
    n.table.packet(j, true, tcp('SA'));
    n.table.packet(j, false, tcp('A'));
    n.table.packet(j, false, tcp('FA'));
    assert.equal(n.table.stateName(j), 'CLOSE_WAIT');
    assert.deepEqual(drained(n.table), [j]);
    n.table.packet(j, true, tcp('FA')); // TIME_WAIT by a reply: no event yet
    assert.equal(n.table.stateName(j), 'TIME_WAIT');
    assert.deepEqual(drained(n.table), []);
    n.table.packet(j, false, tcp('A'));
    assert.deepEqual(drained(n.table), [j]);
  });

  it('UDP follows the packet rule only; period 0 syncs once at the threshold', () => {
    const u = setup({ protocol: Proto.UDP, fwd: Fwd.DR });
    const i = u.table.create(flow(Proto.UDP, '198.51.100.7', 5000, '192.0.2.10', 80), u.rs[0]!);
    const at: number[] = [];
    for (let p = 1; p <= 60; p++) {
      u.table.packet(i, false, 0);
      if (u.table.drainSync(() => {}) > 0) at.push(p);
    }
    assert.deepEqual(at, [3, 53]);

    const z = setup({ protocol: Proto.UDP, fwd: Fwd.DR, table: { syncThreshold: 2, syncPeriod: 0 } });
    const k = z.table.create(flow(Proto.UDP, '198.51.100.7', 5000, '192.0.2.10', 80), z.rs[0]!);
    const at0: number[] = [];
    for (let p = 1; p <= 200; p++) {
      z.table.packet(k, false, 0);
      if (z.table.drainSync(() => {}) > 0) at0.push(p);
    }
    assert.deepEqual(at0, [2]);
  });

  it('replies (NAT output) neither count nor sync', () => {
    const { table, rs } = setup({ fwd: Fwd.NAT, protocol: Proto.UDP });
    const i = table.create(flow(Proto.UDP, '198.51.100.7', 5000, '192.0.2.10', 80), rs[0]!);
    for (let p = 0; p < 10; p++) table.packet(i, true, 0);
    assert.equal(table.packets(i), 0);
    assert.equal(table.pendingSync(), 0);
  });

  it('the ring has a fixed size; overflow is counted, not thrown', () => {
    const { table, rs } = setup({ protocol: Proto.UDP, fwd: Fwd.DR, table: { syncRingSize: 4 } });
    for (let c = 0; c < 10; c++) {
      const i = table.create(flow(Proto.UDP, '198.51.100.7', 5000 + c, '192.0.2.10', 80), rs[0]!);
      for (let p = 0; p < 3; p++) table.packet(i, false, 0);
    }
    assert.equal(table.counters.syncEvents, 4);
    assert.equal(table.counters.syncOverflow, 6);
    assert.equal(drained(table).length, 4);
    // Space again after draining.
    const i = table.create(flow(Proto.UDP, '198.51.100.7', 6000, '192.0.2.10', 80), rs[0]!);
    for (let p = 0; p < 3; p++) table.packet(i, false, 0);
    assert.deepEqual(drained(table), [i]);
  });

  it('events of entries freed before the drain are skipped', () => {
    const { table, rs } = setup({ protocol: Proto.UDP, fwd: Fwd.DR });
    const i = table.create(flow(Proto.UDP, '198.51.100.7', 5000, '192.0.2.10', 80), rs[0]!);
    for (let p = 0; p < 3; p++) table.packet(i, false, 0);
    table.remove(i);
    assert.deepEqual(drained(table), []);
  });

  it('a template is synced together with a connection it controls, and when re-armed at expiry', () => {
    const { clock, table, svc } = setup({ fwd: Fwd.DR, svc: { persistentTimeoutS: 300 } });
    const persist = new Persistence({}, { table, clock });
    const c = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const t = table.templateOf(c);
    assert.ok(t >= 0);
    table.packet(c, false, tcp('S'));
    table.packet(c, false, tcp('A'));
    table.packet(c, false, tcp('A'));
    assert.deepEqual(drained(table), [c, t]);
    const snap = new ConnSnapshot();
    table.snapshot(t, snap);
    assert.equal(snap.template, true);
    assert.equal(snap.packets, 3, 'template counts its connections\' inbound packets');
    // Persistent timeout passes while the connection lives: re-armed, synced.
    clock.advance(300_000);
    table.expire();
    assert.ok(table.isLive(t));
    assert.equal(table.remainingMs(t), 60_000);
    assert.deepEqual(drained(table), [t]);
  });
});
