import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SaruError } from '../../core/index.js';
import { formatCluster } from '../../saru/adm-format.js';
import type { ClusterInfo, MemberInfo } from '../../saru/control.js';
import { bucketRanges, configuredAddresses, loadServices, serviceVips } from '../../saru/director.js';
import { createLogger } from '../../saru/log.js';

describe('director helpers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'saru-dir-'));

  it('loads a services file and lists its VIPs once each', () => {
    const f = join(dir, 'ok.cf');
    writeFileSync(
      f,
      'virtual=198.18.0.100:80\n\treal=198.18.0.101:80 gate 1\n\tscheduler=rr\n' +
        'virtual=198.18.0.100:443\n\treal=198.18.0.101:443 gate 1\n' +
        'virtual6=[2001:2::100]:80\n\treal6=[2001:2::101]:80 gate 1\n',
    );
    const loaded = loadServices(f);
    assert.equal(loaded.format, 'ldirectord');
    assert.equal(loaded.services.length, 3);
    assert.deepEqual(serviceVips(loaded.services).map((a) => a.text), ['198.18.0.100', '2001:2::100']);
    assert.deepEqual(configuredAddresses(loaded), ['198.18.0.101', '2001:2::101']);
  });

  it('names file and line for a bad services file, and says when it cannot be read', () => {
    const f = join(dir, 'bad.cf');
    writeFileSync(f, 'virtual=198.18.0.100:80\n\treal=198.18.0.101:80 gate one\n');
    assert.throws(() => loadServices(f), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_CONFIG' && e.message.startsWith(`${f}:2:`));
    assert.throws(() => loadServices(join(dir, 'none.cf')), /cannot read services file .*none\.cf/);
  });

  it('rejects a semantically invalid service before anything is applied', () => {
    const f = join(dir, 'sched.cf');
    writeFileSync(f, 'virtual=198.18.0.100:80\n\treal=198.18.0.101:80 gate 1\n\tscheduler=nosuch\n');
    assert.throws(() => loadServices(f), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_CONFIG' && e.message.startsWith(`${f}:1:`) && /nosuch/.test(e.message));
  });

  it('turns bucket lists into sorted ranges', () => {
    assert.deepEqual(bucketRanges([5, 1, 2, 3, 9, 3, 10]), [[1, 3], [5, 5], [9, 10]]);
    assert.deepEqual(bucketRanges([]), []);
  });

  it('formats --cluster output', () => {
    const c: ClusterInfo = {
      nodeId: 2, interface: 'eth0', clusterInterface: 'eth1', buckets: 1024, sense: 'src-port', epoch: 0, slice: '342-682', ownedBuckets: 341,
      state: 'static', uptimeMs: 1500, connections: 3, tableCapacity: 1024, counters: [{ name: 'scheduled', value: 3 }], drops: [],
      port: [{ name: 'rxFrames', value: 9 }], ioMode: 'ring', filterInsns: 22, unresolved: ['198.18.0.102'],
        drainingBuckets: 0, draining: '', drainingConnections: 0, leaseExpired: false,
    };
    const text = formatCluster(c);
    assert.match(text, /^Node 2 {2}state static {2}epoch 0 {2}uptime 1\.5 s$/m);
    assert.match(text, /owned 341: 342-682/);
    assert.match(text, /socket filter 22 insns/);
    assert.match(text, /Unresolved real servers \(no MAC yet\): 198\.18\.0\.102/);
    assert.match(text, /^ {2}scheduled +3$/m);
    assert.doesNotMatch(text, /Dropped:/);
  });

  it('formats the coordinator part of --cluster: master, epoch as term.master, members with buckets and heartbeat ages', () => {
    const epoch = 1_763_700_000_000 * 1024 + 1;
    const m = (id: number, o: Partial<MemberInfo> = {}): MemberInfo => ({
      id, self: false, alive: true, state: 'active', weight: 1, synced: true, incarnation: 1, buckets: 341, member: true,
      acceptedEpoch: epoch, appliedEpoch: epoch, heartbeatAgeMs: 40, clusterPathAgeMs: 40, dataPathAgeMs: 45, ...o,
    });
    const c: ClusterInfo = {
      nodeId: 2, interface: 'eth0', clusterInterface: 'eth1', buckets: 1024, sense: 'src-port', epoch, slice: '342-682', ownedBuckets: 341,
      state: 'active', uptimeMs: 1500, connections: 3, tableCapacity: 1024, counters: [], drops: [], port: [], ioMode: 'ring', filterInsns: 22, unresolved: [],
      drainingBuckets: 3, draining: '0-2', drainingConnections: 4, leaseExpired: false,
      coordinator: {
        master: 1, isMaster: false, epoch, epochMaster: 1, acceptedEpoch: epoch, appliedEpoch: epoch, quorate: true, stale: false, ready: true, state: 'active',
        weight: 1, incarnation: 5, keepaliveMs: 100, deadtimeMs: 300, leaseMs: 260,
        members: [m(1, { buckets: 342 }), m(2, { self: true, heartbeatAgeMs: -1, clusterPathAgeMs: -1, dataPathAgeMs: -1 }), m(3, { alive: false, heartbeatAgeMs: 12_000, buckets: 0 })],
        counters: [{ name: 'rx', value: 12 }, { name: 'bad_mac', value: 0 }],
      },
    };
    const text = formatCluster(c);
    assert.match(text, /^Node 2 {2}state active {2}epoch 1763700000000\.1 /m);
    assert.match(text, /^Draining 3 \(own connections left: 4\): 0-2$/m);
    assert.match(text, /^Coordinator: active {2}master 1 {2}epoch 1763700000000\.1 {2}quorum yes {2}lease 260ms$/m);
    assert.match(text, /^ {5}1 {2}active +yes +1 +342 +1763700000000\.1 +40ms +40ms +45ms$/m);
    assert.match(text, /^ {5}2\* active +yes +1 +341 +1763700000000\.1 +- +- +-$/m);
    assert.match(text, /^ {5}3 {2}active +NO +1 +0 .* 12s /m);
    assert.match(text, /^ {2}rx +12$/m);
    assert.doesNotMatch(text, /bad_mac/);
  });

  it('logs JSON lines with syslog facility and severity, and rejects unknown facilities', () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const log = createLogger({ name: 'saru', facility: 'local3', destination: out });
    log.child({ component: 'director' }).warn({ epoch: 4 }, 'slice acquired');
    log.debug('hidden at info level');
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(rec.facility, 'local3');
    assert.equal(rec.severity, 4);
    assert.equal(rec.level, 'warn');
    assert.equal(rec.component, 'director');
    assert.equal(rec.epoch, 4);
    assert.equal(rec.msg, 'slice acquired');
    assert.throws(() => createLogger({ name: 'saru', facility: 'local9' }), /local0.*local7/);
  });
});
