/**
 * Connection table mechanics: lookups in both directions, full table,
 * removal, IPv6, wheel behaviour over long clock jumps, memory per entry.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../../core/clock.js';
import { Fwd, Proto } from '../../../core/constants.js';
import { ServiceTable } from '../../../core/service.js';
import { ConnSnapshot, ConnTable } from '../../../core/conn/index.js';
import { flow, setup, tcp } from './helpers.js';

describe('conn/table', () => {
  it('capacity is rounded up to a power of two', () => {
    const { table } = setup({ table: { capacity: 1000 } });
    assert.equal(table.capacity, 1024);
    assert.throws(() => setup({ table: { capacity: 0 } }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
    assert.throws(() => setup({ table: { syncThreshold: 50, syncPeriod: 50 } }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
  });

  it('lookupIn by the client 5-tuple, lookupOut by the NAT reply; same chain', () => {
    const { table, rs } = setup({ fwd: Fwd.NAT });
    const i = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), rs[1]!);
    assert.equal(table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80)), i);
    assert.equal(table.lookupOut(flow(Proto.TCP, '10.0.0.2', 8080, '198.51.100.7', 40000)), i);
    assert.equal(table.lookupOut(flow(Proto.TCP, '10.0.0.1', 8080, '198.51.100.7', 40000)), -1, 'other RIP');
    assert.equal(table.lookupOut(flow(Proto.TCP, '10.0.0.2', 80, '198.51.100.7', 40000)), -1, 'other RPORT');
    assert.equal(table.lookupIn(flow(Proto.UDP, '198.51.100.7', 40000, '192.0.2.10', 80)), -1, 'other protocol');
    assert.equal(table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40001, '192.0.2.10', 80)), -1);
    assert.equal(table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.11', 80)), -1, 'other VIP');
    assert.equal(table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 81)), -1, 'other VPORT');
  });

  it('real port falls back to the virtual port for port-0 real servers', () => {
    const { table, rs } = setup({ rport: 0, svc: { port: 0, persistentTimeoutS: 60 } });
    const i = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 443), rs[0]!);
    assert.equal(table.realPort(i), 443);
    assert.equal(table.lookupOut(flow(Proto.TCP, '10.0.0.1', 443, '198.51.100.7', 40000)), i);
  });

  it('IPv6 entries and IPv4 entries do not mix', () => {
    const clock = new ManualClock(0);
    const services = new ServiceTable();
    const svc = services.add({ protocol: Proto.TCP, address: '2001:db8::10', port: 80 });
    const r = svc.addRealServer({ address: '2001:db8:1::1', port: 80, fwd: Fwd.NAT });
    const table = new ConnTable({ capacity: 16 }, { clock, services });
    const i = table.create(flow(Proto.TCP, '2001:db8:ff::7', 40000, '2001:db8::10', 80), r);
    assert.equal(table.lookupIn(flow(Proto.TCP, '2001:db8:ff::7', 40000, '2001:db8::10', 80)), i);
    assert.equal(table.lookupOut(flow(Proto.TCP, '2001:db8:1::1', 80, '2001:db8:ff::7', 40000)), i);
    assert.equal(table.family(i), 6);
    const s = new ConnSnapshot();
    table.snapshot(i, s);
    assert.equal(s.family, 6);
    assert.equal(s.dfamily, 6);
  });

  it('a full table drops (-1), counts, never throws; capacity frees after expiry', () => {
    const { clock, table, rs } = setup({ protocol: Proto.UDP, fwd: Fwd.DR, table: { capacity: 8 } });
    for (let p = 0; p < 8; p++) {
      const i = table.create(flow(Proto.UDP, '198.51.100.7', 1000 + p, '192.0.2.10', 80), rs[0]!);
      assert.ok(i >= 0);
      table.packet(i, false, 0);
    }
    assert.equal(table.create(flow(Proto.UDP, '198.51.100.7', 2000, '192.0.2.10', 80), rs[0]!), -1);
    assert.equal(table.create(flow(Proto.UDP, '198.51.100.7', 2001, '192.0.2.10', 80), rs[0]!), -1);
    assert.equal(table.counters.dropsFull, 2);
    assert.equal(rs[0]!.inactConns, 8);
    clock.advance(300_000);
    assert.equal(table.expire(), 8);
    assert.equal(table.size, 0);
    for (let p = 0; p < 8; p++) assert.ok(table.create(flow(Proto.UDP, '198.51.100.8', 1000 + p, '192.0.2.10', 80), rs[0]!) >= 0);
  });

  it('the VIP table has a limit too: entries beyond it are dropped and counted', () => {
    const { table, rs } = setup({ table: { maxVips: 2 } });
    assert.ok(table.create(flow(Proto.TCP, '198.51.100.7', 1, '192.0.2.10', 80), rs[0]!) >= 0);
    assert.ok(table.create(flow(Proto.TCP, '198.51.100.7', 2, '192.0.2.11', 80), rs[0]!) >= 0);
    assert.equal(table.create(flow(Proto.TCP, '198.51.100.7', 3, '192.0.2.12', 80), rs[0]!), -1);
    assert.ok(table.create(flow(Proto.TCP, '198.51.100.7', 4, '192.0.2.10', 80), rs[0]!) >= 0, 'known VIPs still fine');
  });

  it('expiry is exact across long clock jumps and wheel wrap-around', () => {
    const { clock, table, rs } = setup({ fwd: Fwd.DR, table: { wheelTickMs: 16, wheelSlots: 16 } });
    const f = flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80);
    const i = table.create(f, rs[0]!);
    table.packet(i, false, tcp('S'));
    table.packet(i, false, tcp('A')); // 900 s: many wheel rounds at 256 ms span
    for (let k = 0; k < 50; k++) {
      clock.advance(17_999);
      assert.equal(table.expire(), 0);
    }
    clock.advance(900_000 - 50 * 17_999 - 1);
    assert.equal(table.expire(), 0);
    clock.advance(1);
    assert.equal(table.expire(), 1);
    // A shortened timeout (ESTABLISHED -> CLOSE) is honoured without waiting for the old slot.
    const j = table.create(f, rs[0]!);
    table.packet(j, false, tcp('A'));
    clock.advance(5);
    table.packet(j, false, tcp('R'));
    clock.advance(10_000);
    assert.equal(table.expire(), 1);
  });

  it('expiry works across the u32 millisecond wrap', () => {
    const { clock, table, rs } = setup({ fwd: Fwd.DR, startMs: 2 ** 32 - 5000 });
    const i = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), rs[0]!);
    table.packet(i, false, tcp('R')); // CLOSE, 10 s: expiry past the wrap
    assert.equal(table.remainingMs(i), 10_000);
    clock.advance(9_999);
    assert.equal(table.expire(), 0);
    clock.advance(1);
    assert.equal(table.expire(), 1);
  });

  it('remove() frees at once; forEach lists live entries; snapshot fills the reusable object', () => {
    const { table, rs } = setup({ fwd: Fwd.NAT });
    const a = table.create(flow(Proto.TCP, '198.51.100.7', 1, '192.0.2.10', 80), rs[0]!);
    const b = table.create(flow(Proto.TCP, '198.51.100.7', 2, '192.0.2.10', 80), rs[1]!);
    table.packet(b, false, tcp('S'));
    const seen: number[] = [];
    table.forEach((i) => seen.push(i));
    assert.deepEqual(seen.sort(), [a, b].sort());
    assert.equal(table.remove(a), true);
    assert.equal(table.remove(a), false);
    assert.equal(table.size, 1);
    const s = new ConnSnapshot();
    assert.equal(table.snapshot(a, s), false);
    assert.equal(table.snapshot(b, s), true);
    assert.deepEqual(
      [s.protocol, s.cport, s.vport, s.dport, s.fwd, s.state, s.timeoutMs, s.template, s.synced, s.packets, s.daddr[3]],
      [Proto.TCP, 2, 80, 8080, Fwd.NAT, 3, 60_000, false, false, 1, 0x0a000002],
    );
  });

  it('bytesPerEntry <= 64 at capacity 2^20', function () {
    this.timeout(20_000);
    const { table } = setup({ table: { capacity: 1 << 20 } });
    const b = table.bytesPerEntry();
    assert.ok(b <= 64, `bytes per entry ${b}`);
    assert.ok(b >= 59, `counts every array (${b})`);
  });
});
