import assert from 'node:assert/strict';
import { Fwd, Proto, ServiceTable, reconcileServices, type ServiceInitPair } from '../../core/index.js';

function svc(port: number, reals: Array<[string, number, Fwd?]>, extra: Partial<ServiceInitPair['service']> = {}): ServiceInitPair {
  return {
    service: { protocol: Proto.TCP, address: '198.18.0.100', port, scheduler: 'wrr', ...extra },
    realServers: reals.map(([address, weight, fwd]) => ({ address, port: port, weight, fwd: fwd ?? Fwd.DR })),
  };
}

describe('reconcileServices', () => {
  it('adds, keeps, edits and removes as a diff', () => {
    const t = new ServiceTable();
    const r1 = reconcileServices(t, [svc(80, [['198.18.0.101', 1], ['198.18.0.102', 2]]), svc(443, [['198.18.0.101', 1]])]);
    assert.deepEqual(r1.added, ['TCP 198.18.0.100:80', 'TCP 198.18.0.100:443']);
    const web = t.services[0]!;
    const kept = web.realServers[0]!;
    kept.stats.conns = 42;
    kept.activeConns = 3;
    web.stats.conns = 99;

    const r2 = reconcileServices(t, [svc(80, [['198.18.0.101', 5], ['198.18.0.103', 1]]), svc(8080, [['198.18.0.104', 1]])]);
    assert.deepEqual(r2.added, ['TCP 198.18.0.100:8080']);
    assert.deepEqual(r2.removed, ['TCP 198.18.0.100:443']);
    assert.deepEqual(r2.updated, ['TCP 198.18.0.100:80']);
    assert.equal(t.services[0], web, 'the service object stays');
    assert.equal(web.stats.conns, 99, 'statistics stay');
    assert.equal(web.realServers[0], kept, 'the kept real server is the same object');
    assert.equal(kept.weight, 5);
    assert.equal(kept.stats.conns, 42);
    assert.deepEqual(web.realServers.map((r) => r.addr.text), ['198.18.0.101', '198.18.0.103']);
    assert.ok(web.scheduler, 'scheduler attached');

    const r3 = reconcileServices(t, [svc(80, [['198.18.0.101', 5], ['198.18.0.103', 1]]), svc(8080, [['198.18.0.104', 1]])]);
    assert.deepEqual(r3.unchanged, ['TCP 198.18.0.100:80', 'TCP 198.18.0.100:8080']);
    assert.deepEqual([...r3.added, ...r3.removed, ...r3.updated], []);
  });

  it('changes scheduler, persistence and fallback in place', () => {
    const t = new ServiceTable();
    reconcileServices(t, [svc(80, [['198.18.0.101', 1]])]);
    const s = t.services[0]!;
    const r = reconcileServices(t, [svc(80, [['198.18.0.101', 1]], { scheduler: 'mh', persistentTimeoutS: 300, fallback: { address: '198.18.0.200', port: 80 } })]);
    assert.deepEqual(r.updated, ['TCP 198.18.0.100:80']);
    assert.equal(t.services[0], s);
    assert.equal(s.schedulerName, 'mh');
    assert.equal(s.scheduler?.name, 'mh');
    assert.equal(s.persistentTimeoutMs, 300000);
    assert.equal(s.persistent, true);
    assert.equal(s.fallback?.addr.text, '198.18.0.200');
    reconcileServices(t, [svc(80, [['198.18.0.101', 1]], { scheduler: 'mh' })]);
    assert.equal(s.persistent, false);
    assert.equal(s.fallback, null);
  });

  it('retires a removed real server that still has connections (IPVS trash)', () => {
    const t = new ServiceTable();
    reconcileServices(t, [svc(80, [['198.18.0.101', 1], ['198.18.0.102', 1]])]);
    const gone = t.services[0]!.realServers[1]!;
    gone.activeConns = 1;
    reconcileServices(t, [svc(80, [['198.18.0.101', 1]])]);
    assert.equal(gone.available, false);
    assert.equal(t.registry.get(gone.id), gone, 'still reachable by id for its entries');
  });
});
