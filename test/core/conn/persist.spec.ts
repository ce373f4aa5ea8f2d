/**
 * Persistence templates (ip_vs_sched_persist, ip_vs_check_template):
 * stickiness per client network, netmask grouping, template timeout and
 * re-arm while controlling, invalidation by a removed real server, and
 * quiescent servers keeping their clients.
 */
import { strict as assert } from 'node:assert';
import { Fwd, Proto } from '../../../core/constants.js';
import { FlowKey } from '../../../core/flow.js';
import { Persistence, templateKey } from '../../../core/conn/index.js';
import { flow, setup, tcp } from './helpers.js';

function persistSetup(prefix?: number, timeoutS = 300, extra: Parameters<typeof setup>[0] = {}) {
  const s = setup({ fwd: Fwd.DR, n: 3, svc: { persistentTimeoutS: timeoutS, ...(prefix !== undefined ? { persistentPrefix: prefix } : {}) }, ...extra });
  const persist = new Persistence({}, { table: s.table, clock: s.clock });
  return { ...s, persist };
}

describe('conn/persist: templates', () => {
  it('the same client gets the same real server across connections; others are scheduled', () => {
    const { table, svc, persist, sched, rs } = persistSetup();
    const a1 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const a2 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40001, '192.0.2.10', 80));
    const b1 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.8', 40000, '192.0.2.10', 80));
    assert.equal(table.realServerId(a1), table.realServerId(a2));
    assert.notEqual(table.realServerId(a1), table.realServerId(b1));
    assert.equal(sched.calls, 2);
    assert.equal(table.templateOf(a1), table.templateOf(a2));
    assert.equal(table.controlled(table.templateOf(a1)), 2);
    assert.equal(rs[0]!.persistConns, 1);
    assert.equal(table.stateName(table.templateOf(a1)), 'NONE');
    assert.equal(persist.counters.reused, 1);
    assert.equal(persist.counters.templatesCreated, 2);
  });

  it('a /24 netmask groups clients of one network', () => {
    const { table, svc, persist, sched } = persistSetup(24);
    const ids = new Set<number>();
    for (let h = 1; h < 20; h++) ids.add(table.realServerId(persist.schedule(svc, flow(Proto.TCP, `198.51.100.${h}`, 40000, '192.0.2.10', 80))));
    assert.equal(ids.size, 1);
    assert.equal(sched.calls, 1);
    const other = persist.schedule(svc, flow(Proto.TCP, '198.51.101.1', 40000, '192.0.2.10', 80));
    assert.ok(!ids.has(table.realServerId(other)));
  });

  it('templates of port-zero and firewall-mark services use port 0 / protocol 0 keys', () => {
    const s = setup({ svc: { port: 0, persistentTimeoutS: 60 } });
    const k = new FlowKey();
    templateKey(s.svc, flow(Proto.TCP, '198.51.100.7', 1234, '192.0.2.10', 443), k);
    assert.equal(k.dport, 0);
    assert.equal(k.protocol, Proto.TCP);
    const m = setup({ svc: { address: undefined, port: undefined, fwmark: 9, persistentTimeoutS: 60 } });
    templateKey(m.svc, flow(Proto.TCP, '198.51.100.7', 1234, '192.0.2.10', 443, 9), k);
    assert.deepEqual([k.protocol, k.dport, k.daddr[3], k.fwmark], [0, 0, 9, 9]);
    // A fwmark template is shared across the VIPs the mark covers.
    const p = new Persistence({}, { table: m.table, clock: m.clock });
    const c1 = p.schedule(m.svc, flow(Proto.TCP, '198.51.100.7', 1234, '192.0.2.10', 443, 9));
    const c2 = p.schedule(m.svc, flow(Proto.TCP, '198.51.100.7', 1235, '192.0.2.11', 80, 9));
    assert.equal(m.table.templateOf(c1), m.table.templateOf(c2));
    assert.equal(m.table.realPort(c2), 8080);
  });

  it('the template expires after the persistent timeout once its connections are gone', () => {
    const { clock, table, svc, persist, sched } = persistSetup(undefined, 300);
    const c = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const t = table.templateOf(c);
    table.packet(c, false, tcp('S'));
    table.packet(c, false, tcp('A'));
    table.packet(c, false, tcp('R')); // CLOSE, 10 s
    clock.advance(10_000);
    table.expire();
    assert.equal(table.isLive(c), false);
    assert.equal(table.controlled(t), 0);
    assert.equal(table.remainingMs(t), 290_000);
    clock.advance(289_999);
    table.expire();
    assert.ok(table.isLive(t));
    // Reuse before the timeout restarts it.
    persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40001, '192.0.2.10', 80));
    assert.equal(table.remainingMs(t), 300_000);
    assert.equal(sched.calls, 1);
  });

  it('a template still controlling a connection is re-armed (60 s) instead of freed', () => {
    const { clock, table, svc, persist, rs } = persistSetup(undefined, 30);
    const c = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const t = table.templateOf(c);
    table.packet(c, false, tcp('S'));
    table.packet(c, false, tcp('A')); // ESTABLISHED 900 s
    clock.advance(30_000);
    table.expire();
    assert.ok(table.isLive(t));
    assert.equal(table.remainingMs(t), 60_000);
    table.remove(c);
    clock.advance(60_000);
    assert.equal(table.expire(), 1);
    assert.equal(table.isLive(t), false);
    assert.equal(rs[0]!.persistConns, 0);
  });

  it('a removed real server invalidates the template: the next connection is rescheduled', () => {
    const { table, svc, persist, sched } = persistSetup();
    const c1 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const old = table.realServer(c1)!;
    svc.removeRealServer(old.addr.text, old.port);
    const c2 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40001, '192.0.2.10', 80));
    assert.notEqual(table.realServerId(c2), old.id);
    assert.equal(persist.counters.invalidated, 1);
    assert.equal(sched.calls, 2);
    // The old connection keeps its server and the old template until they expire.
    assert.equal(table.realServerId(c1), old.id);
    assert.notEqual(table.templateOf(c1), table.templateOf(c2));
    const c3 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40002, '192.0.2.10', 80));
    assert.equal(table.templateOf(c3), table.templateOf(c2));
  });

  it('a quiescent (weight 0) real server keeps its template (expire_quiescent_template = 0)', () => {
    const { table, svc, persist, sched, clock } = persistSetup();
    const c1 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80));
    const r = table.realServer(c1)!;
    r.edit({ weight: 0 });
    const c2 = persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40001, '192.0.2.10', 80));
    assert.equal(table.realServerId(c2), r.id);
    assert.equal(sched.calls, 1);
    // With expireQuiescentTemplate the template is dropped.
    const strict = new Persistence({ expireQuiescentTemplate: true }, { table, clock });
    const c3 = strict.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40002, '192.0.2.10', 80));
    assert.notEqual(table.realServerId(c3), r.id);
  });

  it('no usable real server: -1 and counted; full table: -2 and counted', () => {
    const { svc, persist, rs } = persistSetup();
    for (const r of rs) r.edit({ weight: 0 });
    assert.equal(persist.schedule(svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80)), -1);
    assert.equal(persist.counters.noDest, 1);
    const small = persistSetup(undefined, 300, { table: { capacity: 1 } });
    assert.equal(small.persist.schedule(small.svc, flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80)), -2);
    assert.equal(small.persist.counters.dropsFull, 1);
    assert.equal(small.table.size, 1, 'the template stays');
  });
});
