/**
 * Import of synced entries (ip_vs_proc_conn): create, update, shorten on
 * close, remove, rejections counted, synced flag, and the snapshot round trip.
 */
import { strict as assert } from 'node:assert';
import { IpAddress } from '../../../core/addr.js';
import { ManualClock } from '../../../core/clock.js';
import { Fwd, Proto } from '../../../core/constants.js';
import { ServiceTable } from '../../../core/service.js';
import { ConnSnapshot, ConnTable, ImportResult, Persistence, TcpState } from '../../../core/conn/index.js';
import { flow, setup, tcp, TestRoundRobin } from './helpers.js';

function snap(o: Partial<Omit<ConnSnapshot, 'caddr' | 'vaddr' | 'daddr'>> & { c?: string; v?: string; d?: string } = {}): ConnSnapshot {
  const s = new ConnSnapshot();
  s.family = 4;
  s.protocol = Proto.TCP;
  s.caddr.set(IpAddress.parse(o.c ?? '198.51.100.7').words);
  s.vaddr.set(IpAddress.parse(o.v ?? '192.0.2.10').words);
  s.daddr.set(IpAddress.parse(o.d ?? '10.0.0.2').words);
  s.dfamily = 4;
  s.cport = 40000;
  s.vport = 80;
  s.dport = 8080;
  s.fwd = Fwd.NAT;
  s.state = TcpState.ESTABLISHED;
  s.timeoutMs = 800_000;
  s.packets = 3;
  for (const [k, v] of Object.entries(o)) if (!['c', 'v', 'd'].includes(k)) (s as unknown as Record<string, unknown>)[k] = v;
  return s;
}

describe('conn/import: synced entries', () => {
  it('creates a synced entry bound to the named real server, counted active for ESTABLISHED', () => {
    const { table, rs } = setup();
    assert.equal(table.importSynced(snap()), ImportResult.CREATED);
    const i = table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    assert.ok(i >= 0);
    assert.equal(table.isSynced(i), true);
    assert.equal(table.realServerId(i), rs[1]!.id);
    assert.equal(table.realPort(i), 8080);
    assert.equal(table.stateName(i), 'ESTABLISHED');
    assert.equal(table.remainingMs(i), 800_000);
    assert.equal(table.packets(i), 3);
    assert.deepEqual([rs[1]!.activeConns, rs[1]!.inactConns], [1, 0]);
    assert.equal(table.counters.imported, 1);
    // Locally created entries are not synced.
    const j = table.create(flow(Proto.TCP, '198.51.100.8', 1, '192.0.2.10', 80), rs[0]!);
    assert.equal(table.isSynced(j), false);
  });

  it('updates state and timeout; a CLOSE update shortens the life and moves the counter', () => {
    const { clock, table, rs } = setup();
    table.importSynced(snap());
    const i = table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    clock.advance(1000);
    assert.equal(table.importSynced(snap({ state: TcpState.CLOSE, timeoutMs: 10_000 })), ImportResult.UPDATED);
    assert.equal(table.stateName(i), 'CLOSE');
    assert.equal(table.remainingMs(i), 10_000);
    assert.deepEqual([rs[1]!.activeConns, rs[1]!.inactConns], [0, 1]);
    clock.advance(9_999);
    assert.equal(table.expire(), 0);
    clock.advance(1);
    assert.equal(table.expire(), 1, 'expires at the shortened timeout, not the old 800 s');
    assert.deepEqual([rs[1]!.activeConns, rs[1]!.inactConns], [0, 0]);
  });

  it('an update naming another real server rebinds the entry', () => {
    const { table, rs } = setup();
    table.importSynced(snap());
    assert.equal(table.importSynced(snap({ d: '10.0.0.1' } as never)), ImportResult.UPDATED);
    const i = table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    assert.equal(table.realServerId(i), rs[0]!.id);
    assert.equal(rs[1]!.activeConns, 0);
    assert.equal(rs[0]!.activeConns, 1);
    assert.equal(table.counters.importRebound, 1);
  });

  it('a remove request or a zero timeout deletes; unknown ones are counted as not found', () => {
    const { table, rs } = setup();
    table.importSynced(snap());
    assert.equal(table.importSynced(snap({ remove: true })), ImportResult.REMOVED);
    assert.equal(table.size, 0);
    assert.equal(rs[1]!.totalConns(), 0);
    table.importSynced(snap());
    assert.equal(table.importSynced(snap({ timeoutMs: 0 })), ImportResult.REMOVED);
    assert.equal(table.importSynced(snap({ timeoutMs: 0 })), ImportResult.NOT_FOUND);
    assert.equal(table.counters.importRejected.notFound, 1);
  });

  it('rejects unknown services, real servers and states, counted by reason, never throws', () => {
    const { table } = setup();
    assert.equal(table.importSynced(snap({ v: '192.0.2.99' } as never)), ImportResult.REJECT_NO_SERVICE);
    assert.equal(table.importSynced(snap({ vport: 443 })), ImportResult.REJECT_NO_SERVICE);
    assert.equal(table.importSynced(snap({ d: '10.9.9.9' } as never)), ImportResult.REJECT_NO_DEST);
    assert.equal(table.importSynced(snap({ dport: 9999 })), ImportResult.REJECT_NO_DEST);
    assert.equal(table.importSynced(snap({ state: 11 })), ImportResult.REJECT_BAD_STATE);
    assert.equal(table.importSynced(snap({ protocol: Proto.UDP, state: 1 })), ImportResult.REJECT_BAD_STATE);
    assert.deepEqual(table.counters.importRejected, { noService: 2, noDest: 2, badState: 2, full: 0, notFound: 0 });
    assert.equal(table.size, 0);
  });

  it('resolves the fallback server, port-0 real servers and firewall-mark services', () => {
    const clock = new ManualClock(0);
    const services = new ServiceTable();
    const web = services.add({ protocol: Proto.TCP, address: '192.0.2.10', port: 80, fallback: { address: '10.0.9.9', port: 80 } });
    web.setScheduler(new TestRoundRobin());
    const fwm = services.add({ protocol: Proto.TCP, fwmark: 7 });
    const r0 = fwm.addRealServer({ address: '10.0.1.1', port: 0, fwd: Fwd.DR });
    const table = new ConnTable({ capacity: 64 }, { clock, services });
    assert.equal(table.importSynced(snap({ d: '10.0.9.9', dport: 80 } as never)), ImportResult.CREATED);
    assert.equal(table.importSynced(snap({ v: '192.0.2.77', vport: 443, fwmark: 7, fwd: Fwd.DR, d: '10.0.1.1', dport: 443 } as never)), ImportResult.CREATED);
    const i = table.lookupIn(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.77', 443));
    assert.equal(table.realServerId(i), r0.id);
    assert.equal(table.realPort(i), 443);
    assert.equal(table.fwmark(i), 7);
  });

  it('a full table rejects imports (counted)', () => {
    const { table } = setup({ table: { capacity: 1 } });
    assert.equal(table.importSynced(snap()), ImportResult.CREATED);
    assert.equal(table.importSynced(snap({ cport: 1 })), ImportResult.REJECT_FULL);
    assert.equal(table.counters.importRejected.full, 1);
  });

  it('snapshot -> import on a peer reproduces the entry (connections and templates)', () => {
    const a = setup({ fwd: Fwd.DR, svc: { persistentTimeoutS: 600, persistentPrefix: 24 } });
    const b = setup({ fwd: Fwd.DR, svc: { persistentTimeoutS: 600, persistentPrefix: 24 } });
    const persist = new Persistence({}, { table: a.table, clock: a.clock });
    const c = persist.schedule(a.svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    a.table.packet(c, false, tcp('S'));
    a.table.packet(c, false, tcp('A'));
    const s = new ConnSnapshot();
    const back = new ConnSnapshot();
    for (const idx of [a.table.templateOf(c), c]) {
      assert.ok(a.table.snapshot(idx, s));
      assert.equal(b.table.importSynced(s), ImportResult.CREATED);
    }
    let seen = 0;
    b.table.forEach((j) => {
      b.table.snapshot(j, back);
      const idx = back.template ? a.table.templateOf(c) : c;
      a.table.snapshot(idx, s);
      assert.equal(back.synced, true);
      back.synced = false;
      assert.deepEqual(back, s);
      seen++;
    });
    assert.equal(seen, 2);
    // The imported template serves persistence on the peer.
    const pb = new Persistence({}, { table: b.table, clock: b.clock });
    const c2 = pb.schedule(b.svc, flow(Proto.TCP, '198.51.100.99', 40001, '192.0.2.10', 80));
    assert.equal(b.table.realServerId(c2), a.table.realServerId(c));
    assert.equal(pb.counters.reused, 1);
    assert.equal(b.sched.calls, 0);
  });
});
