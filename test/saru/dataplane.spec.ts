/**
 * The data plane driven in-process: a MemoryPort instead of AF_PACKET and a
 * manual clock; what the daemon's worker thread runs, minus the thread.
 */
import assert from 'node:assert/strict';
import { ConnSnapshot, Fwd, ManualClock, Proto, SYNC_RECORD, Sense, readSyncRecord, syncRecordView, writeSyncRecord, type ServiceInitPair } from '../../core/index.js';
import { MemoryPort } from '../../native/index.js';
import { DRAIN_IDLE_MS, DRAIN_SWEEP_MS, Dataplane, TICK_MS, type DataplaneInit } from '../../saru/dataplane.js';
import { PacketBuilder, formatMac, parseMac } from '../helpers/packet-builder.js';

const SHARED = '02:5a:52:55:00:01';
const CLIENT_MAC = '02:00:00:00:00:c1';
const RS_MACS = ['02:00:00:00:01:01', '02:00:00:00:01:02'];
const VIP = '198.18.0.100';

function services(weights = [1, 2], fwd: Fwd = Fwd.DR): ServiceInitPair[] {
  return [
    {
      service: { protocol: Proto.TCP, address: VIP, port: 80, scheduler: 'wrr' },
      realServers: weights.map((weight, i) => ({ address: `198.18.0.${101 + i}`, port: 80, weight, fwd })),
    },
  ];
}

function rig(init: Partial<DataplaneInit> = {}) {
  const port = new MemoryPort({ ifname: 'mem0', mac: parseMac(SHARED), mtu: 1500 });
  const clock = new ManualClock(1000);
  const dp = new Dataplane(
    { buckets: 1024, sense: Sense.SRC_PORT, owned: [...Array(1024).keys()], epoch: 1, services: services(), connTableSize: 4096, midFlow: 'drop', batchSize: 64, ...init },
    { port, clock },
  );
  dp.setNeighbours(RS_MACS.map((mac, i) => ({ address: `198.18.0.${101 + i}`, mac })));
  return { port, clock, dp };
}

function syn(sport: number, flags = 'S'): Uint8Array {
  return new PacketBuilder().eth({ src: CLIENT_MAC, dst: SHARED }).ipv4({ src: '198.18.1.2', dst: VIP }).tcp({ sport, dport: 80, flags }).build();
}

describe('data plane (in-process, MemoryPort)', () => {
  it('forwards DR connections to real servers in wrr proportion, rewriting MACs only', () => {
    const { port, dp } = rig();
    for (let i = 0; i < 300; i++) port.inject(syn(20000 + i));
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 300);
    const perMac = new Map<string, number>();
    for (const f of port.sent) {
      assert.equal(formatMac(f.subarray(6, 12)), SHARED, 'source MAC is the shared MAC');
      const d = formatMac(f.subarray(0, 6));
      perMac.set(d, (perMac.get(d) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(perMac), { [RS_MACS[0]!]: 100, [RS_MACS[1]!]: 200 });
    const st = dp.status();
    assert.equal(st.connections, 300);
    assert.equal(st.counters.scheduled, 300);
    assert.ok(dp.listServices({}).includes('-> 198.18.0.102:80'));
    assert.match(dp.listConnections(0), /TCP .* SYN_RECV .*198\.18\.1\.2:20000 +198\.18\.0\.100:80 +198\.18\.0\.10[12]:80/);
  });

  it('attaches a socket filter and replaces it when the slice changes', () => {
    const { port, dp } = rig({ owned: [0, 1, 2, 3] });
    const first = port.filter;
    assert.ok(first && first.length > 0 && first.length % 8 === 0);
    assert.ok(dp.filterInsns > 0);
    dp.setSlice([4, 5], 2);
    assert.notDeepEqual(port.filter, first);
    assert.equal(dp.status().epoch, 2);
    assert.deepEqual(dp.status().ranges, [[4, 5]]);
  });

  it('forwards only its own slice and counts the rest', () => {
    const { port, dp } = rig({ owned: [...Array(512).keys()] }); // buckets 0-511 of 1024
    port.inject(syn(1024 + 5)); // bucket 5: ours
    port.inject(syn(1024 + 600)); // bucket 600: not ours
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 1);
    // The socket filter keeps the other slice out of user space altogether.
    assert.equal(port.filteredOut, 1);
    assert.equal(dp.status().drops.not_our_slice, undefined);
    // Without a filter, the engine drops it itself and counts it.
    const nf = rig({ owned: [...Array(512).keys()], socketFilter: false });
    nf.port.inject(syn(1024 + 600));
    nf.dp.runOnce(0);
    assert.equal(nf.port.sent.length, 0);
    assert.equal(nf.dp.status().drops.not_our_slice, 1);
  });

  it('hands a bucket over: finishes its own connections there, then releases it from the filter', () => {
    const { port, clock, dp } = rig({ owned: [5, 6] });
    port.inject(syn(1024 + 5)); // bucket 5
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 1);
    dp.setSlice([6], 2, { handOver: [5] });
    let st = dp.status();
    assert.equal(st.draining, 1);
    assert.deepEqual(st.drainingRanges, [[5, 5]]);
    port.inject(syn(1024 + 5, 'A')); // own connection: still forwarded
    port.inject(syn(2048 + 5)); // new connection in bucket 5: the new owner's
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 2);
    assert.equal(dp.status().drops.handed_over, 1);
    // a sweep while the connection is open keeps the bucket
    clock.advance(DRAIN_SWEEP_MS);
    dp.runOnce(0);
    st = dp.status();
    assert.equal(st.draining, 1);
    assert.equal(st.drainingConnections, 1);
    // the client resets it: the next sweep releases the bucket, and the filter drops it in the kernel
    port.inject(syn(1024 + 5, 'R'));
    while (dp.runOnce(0) > 0);
    clock.advance(DRAIN_SWEEP_MS);
    dp.runOnce(0);
    assert.equal(dp.status().draining, 0);
    const filtered = port.filteredOut;
    port.inject(syn(1024 + 5, 'A'));
    while (dp.runOnce(0) > 0);
    assert.equal(port.filteredOut, filtered + 1);
  });

  it('lets a closing connection hold a draining bucket only while packets still come', () => {
    const { port, clock, dp } = rig({ owned: [5] });
    port.inject(syn(1024 + 5));
    port.inject(syn(1024 + 5, 'A'));
    port.inject(syn(1024 + 5, 'FA')); // the client closes: CLOSE_WAIT in the input-only table, 60 s
    while (dp.runOnce(0) > 0);
    dp.setSlice([], 2, { handOver: [5] });
    clock.advance(DRAIN_SWEEP_MS);
    dp.runOnce(0);
    assert.equal(dp.status().draining, 1, 'just closed: its last ACKs may still come');
    clock.advance(DRAIN_IDLE_MS);
    dp.runOnce(0);
    assert.equal(dp.status().draining, 0, 'idle for DRAIN_IDLE_MS: released');
  });

  it('forwards none of its owned buckets once its lease runs out, draining ones still, and all again when renewed', () => {
    const { port, clock, dp } = rig({ owned: [0, 1, 2, 3], socketFilter: false });
    port.inject(syn(1024 + 3)); // bucket 3: will be handed over
    while (dp.runOnce(0) > 0);
    dp.setSlice([0, 1, 2], 2, { handOver: [3], leaseUntil: clock.now() + 300 });
    port.inject(syn(1024 + 1));
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 2);
    clock.advance(300);
    port.inject(syn(2048 + 1)); // owned, new: not forwarded without a lease
    port.inject(syn(1024 + 3, 'A')); // draining, own: still forwarded
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 3);
    let st = dp.status();
    assert.equal(st.leaseExpired, true);
    assert.equal(st.owned, 0);
    assert.equal(st.counters.leaseExpiries, 1);
    assert.equal(st.drops.not_our_slice, 1);
    dp.setLease(clock.now() + 300);
    port.inject(syn(2048 + 2));
    while (dp.runOnce(0) > 0);
    assert.equal(port.sent.length, 4);
    st = dp.status();
    assert.equal(st.leaseExpired, false);
    assert.equal(st.owned, 3);
    // a slice that arrives with a lease already past owns nothing until renewed
    dp.setSlice([0, 1], 3, { leaseUntil: clock.now() - 1 });
    assert.equal(dp.status().owned, 0);
    dp.setLease(Infinity);
    assert.deepEqual(dp.status().ranges, [[0, 1]]);
  });

  it('holds frames for a real server whose MAC is unknown, counted', () => {
    const { port, dp } = rig();
    dp.setNeighbours([{ address: '198.18.0.101', mac: '' }, { address: '198.18.0.102', mac: '' }]);
    port.inject(syn(30000));
    dp.runOnce(0);
    assert.equal(port.sent.length, 0);
    assert.deepEqual(dp.status().unresolved.sort(), ['198.18.0.101', '198.18.0.102']);
    assert.equal(dp.status().drops.no_neighbour, 1);
  });

  it('reloads services as a diff: established connections keep their real server', () => {
    const { port, dp } = rig({}, );
    port.inject(syn(40000));
    dp.runOnce(0);
    const first = formatMac(port.sent[0]!.subarray(0, 6));
    const r = dp.setServices(services([0, 5]));
    assert.deepEqual(r.updated, ['TCP 198.18.0.100:80']);
    port.sent.length = 0;
    port.inject(syn(40000, 'A'));
    dp.runOnce(0);
    assert.equal(formatMac(port.sent[0]!.subarray(0, 6)), first, 'same real server after reload');
    port.inject(syn(40001));
    dp.runOnce(0);
    assert.equal(formatMac(port.sent[1]!.subarray(0, 6)), RS_MACS[1], 'weight 0 takes no new connections');
  });

  it('expires entries on its clock ticks', () => {
    const { port, clock, dp } = rig();
    port.inject(syn(50000));
    dp.runOnce(0);
    assert.equal(dp.status().connections, 1);
    clock.advance(61_000 + TICK_MS); // SYN_RECV times out after 60 s in IPVS
    dp.runOnce(0);
    assert.equal(dp.status().connections, 0);
  });

  it('sends NAT replies to the gateway MAC', () => {
    const { port, dp } = rig({ services: services([1], Fwd.NAT) });
    dp.setNeighbours([{ address: '198.18.1.2', mac: CLIENT_MAC }], '198.18.1.2');
    port.inject(syn(41000));
    dp.runOnce(0);
    const fwd = port.sent[0]!;
    assert.equal(formatMac(fwd.subarray(0, 6)), RS_MACS[0]);
    const reply = new PacketBuilder().eth({ src: RS_MACS[0], dst: SHARED }).ipv4({ src: '198.18.0.101', dst: '198.18.1.2' }).tcp({ sport: 80, dport: 41000, flags: 'SA' }).build();
    port.inject(reply);
    dp.runOnce(0);
    const back = port.sent[1]!;
    assert.equal(formatMac(back.subarray(0, 6)), CLIENT_MAC);
    assert.deepEqual([...back.subarray(26, 30)], [198, 18, 0, 100], 'source rewritten to the VIP');
  });
});

describe('data plane sync (subscribe, inject, dump)', () => {
  const rec = (bytes: Uint8Array, i: number) => {
    const s = new ConnSnapshot();
    readSyncRecord(syncRecordView(bytes), i, s);
    return s;
  };

  it('without a subscriber events are discarded; with one, records arrive at the threshold and period', () => {
    const { port, dp } = rig();
    port.inject(syn(30000));
    for (let k = 0; k < 3; k++) port.inject(syn(30000, 'A'));
    while (dp.runOnce(0) > 0);
    assert.equal(dp.status().counters.syncEventsDiscarded, 1);
    const got: Array<{ bytes: Uint8Array; count: number; epoch: number }> = [];
    dp.setSyncSink((bytes, count, epoch) => got.push({ bytes, count, epoch }), 2, 10);
    for (let k = 0; k < 11; k++) port.inject(syn(30001, k === 0 ? 'S' : 'A'));
    dp.runOnce(0); // ring drained: the partial batch goes at once
    // packets 2 and 12 with "2 10"; this batch carries the one at packet 2 (11 packets)
    assert.equal(got.length, 1);
    assert.equal(got[0]!.count, 1);
    assert.equal(got[0]!.epoch, 1);
    assert.equal(got[0]!.bytes.length, SYNC_RECORD.SIZE);
    const s = rec(got[0]!.bytes, 0);
    assert.equal(s.cport, 30001);
    assert.equal(s.vport, 80);
    assert.equal(s.protocol, Proto.TCP);
    assert.equal(dp.status().counters.syncEventsSent, 1);
    dp.setSyncSink(null);
    port.inject(syn(30001, 'A'));
    while (dp.runOnce(0) > 0);
    assert.equal(got.length, 1, 'unsubscribed: nothing more');
  });

  it('inject creates synced entries that forward after a takeover; a zero timeout removes them; garbage is counted', () => {
    const src = rig();
    for (let i = 0; i < 20; i++) src.port.inject(syn(40000 + i));
    while (src.dp.runOnce(0) > 0);
    const page = src.dp.dumpRecords(0, 1000);
    assert.equal(page.count, 20);
    assert.equal(page.next, -1);

    const dst = rig({ owned: [] });
    const r = dst.dp.injectRecords(page.bytes, page.count);
    assert.deepEqual(r, { created: 20, updated: 0, removed: 0, notFound: 0, rejected: 0 });
    assert.equal(dst.dp.status().connections, 20);
    // takeover: the synced entry's mid-flow packet goes to the same real server (midFlow drop would drop it without the entry)
    dst.dp.setSlice([...Array(1024).keys()], 2);
    const want = rec(page.bytes, 7);
    dst.port.inject(syn(want.cport, 'A'));
    while (dst.dp.runOnce(0) > 0);
    assert.equal(dst.port.sent.length, 1);
    const rsIndex = want.daddr[3]! & 0xff; // 101 or 102
    assert.equal(formatMac(dst.port.sent[0]!.subarray(0, 6)), RS_MACS[rsIndex - 101]);

    // remove one (timeout 0) and inject one naming an unknown real server
    const two = new Uint8Array(2 * SYNC_RECORD.SIZE);
    const v = syncRecordView(two);
    const a = rec(page.bytes, 0);
    a.timeoutMs = 0;
    writeSyncRecord(v, 0, a);
    const b = rec(page.bytes, 1);
    b.daddr[3] = (b.daddr[3]! & 0xffffff00) | 250;
    writeSyncRecord(v, 1, b);
    assert.deepEqual(dst.dp.injectRecords(two, 2), { created: 0, updated: 0, removed: 1, notFound: 0, rejected: 1 });
    assert.throws(() => dst.dp.injectRecords(new Uint8Array(10), 1), /not 1 records/);
    const c = dst.dp.status().counters;
    assert.equal(c.injectCreated, 20);
    assert.equal(c.injectRemoved, 1);
    assert.equal(c.injectRejected, 1);
  });

  it('dump pages through the table with a cursor and visits every entry once', () => {
    const { port, dp } = rig();
    for (let i = 0; i < 300; i++) port.inject(syn(41000 + i));
    while (dp.runOnce(0) > 0);
    const seen = new Set<number>();
    let cursor = 0;
    let pages = 0;
    while (cursor >= 0) {
      const p = dp.dumpRecords(cursor, 64);
      for (let i = 0; i < p.count; i++) seen.add(rec(p.bytes, i).cport);
      cursor = p.next;
      pages++;
    }
    assert.equal(seen.size, 300);
    assert.ok(pages >= 5);
  });
});

describe('data plane: a handover ends once peers hold the connections (SyncAcked)', () => {
  it('sends the handed-over own connections at once and releases their buckets when that count is acknowledged', () => {
    const { port, dp } = rig({ owned: [5, 6, 7] });
    const got: number[] = [];
    dp.setSyncSink((_bytes, count) => got.push(count), 3, 50);
    port.inject(syn(1024 + 5)); // bucket 5, one packet: below the sync threshold
    port.inject(syn(1024 + 6)); // bucket 6
    port.inject(syn(2048 + 5)); // bucket 5 again
    while (dp.runOnce(0) > 0);
    assert.deepEqual(got, [], 'no event yet: one packet each');
    dp.setSlice([6, 7], 2, { handOver: [5] });
    // the two own connections of bucket 5 were raised and sent at the handover
    assert.deepEqual(got, [2]);
    assert.equal(dp.status().draining, 1);
    assert.equal(dp.syncAcked(1), 0, 'not all of them acknowledged yet');
    assert.equal(dp.status().draining, 1);
    assert.equal(dp.syncAcked(2), 1, 'bucket 5 released');
    const st = dp.status();
    assert.equal(st.draining, 0);
    assert.equal(st.counters.drainReleasedBySync, 1);
    assert.equal(dp.syncAcked(10), 0, 'nothing left to release');
  });

  it('without a subscriber, or after the subscriber changed, nothing is released early', () => {
    const { port, dp } = rig({ owned: [5, 6] });
    port.inject(syn(1024 + 5));
    while (dp.runOnce(0) > 0);
    dp.setSlice([6], 2, { handOver: [5] });
    assert.equal(dp.syncAcked(1_000_000), 0, 'no subscriber: the drain waits for the connection to close');
    const rig2 = rig({ owned: [5, 6] });
    rig2.dp.setSyncSink(() => {}, 3, 50);
    rig2.port.inject(syn(1024 + 5));
    while (rig2.dp.runOnce(0) > 0);
    rig2.dp.setSlice([6], 2, { handOver: [5] });
    rig2.dp.setSyncSink(() => {}, 3, 50, true); // a new subscriber: its count starts again
    assert.equal(rig2.dp.syncAcked(1_000_000), 0);
    assert.equal(rig2.dp.status().draining, 1);
  });
});
