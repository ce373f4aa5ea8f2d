/**
 * Engine tests: the whole per-frame pipeline (MAC filter, parse, slice,
 * service lookup, scheduling with persistence and fallback, connection state,
 * sync events, DR/NAT/TUN forwarding, ICMP errors), with frames from the
 * packet builder, a manual clock, and tshark as the independent decoder of
 * what the engine transmits.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { Fwd, Proto } from '../../core/constants.js';
import { Engine, type EngineInit } from '../../core/engine.js';
import { parseMac } from '../../core/mac.js';
import { Drop, DROP_REASON_NAMES, ParsedFrame } from '../../core/packet/frame.js';
import { parseFrame } from '../../core/packet/parse.js';
import type { RxBatch } from '../../core/port.js';
import { createScheduler } from '../../core/sched/index.js';
import { ServiceTable, type RealServer, type VirtualServiceInit } from '../../core/service.js';
import { Sense, SliceFilter } from '../../core/slice.js';
import { IpAddress } from '../../core/addr.js';
import { ConnSnapshot, ImportResult, TcpState } from '../../core/conn/index.js';
import { formatMac, PacketBuilder } from '../helpers/packet-builder.js';
import { tsharkChecksumsOk, tsharkFields } from '../helpers/tshark.js';

const SHARED = '02:53:41:52:55:01';
const CLIENT_MAC = '02:00:00:00:00:c1';
const VIP = '198.18.0.100';
const VIP6 = '2001:db8::100';

interface Rig {
  engine: Engine;
  clock: ManualClock;
  services: ServiceTable;
  slice: SliceFilter;
  rs: RealServer[];
}

function rig(
  svcInit: Partial<VirtualServiceInit> & { fwd?: Fwd; weights?: number[]; family?: 4 | 6 } = {},
  engineInit: Partial<EngineInit> = {},
): Rig {
  const clock = new ManualClock(1_000_000);
  const services = new ServiceTable();
  const family = svcInit.family ?? 4;
  const svc = services.add({
    protocol: Proto.TCP,
    address: family === 4 ? VIP : VIP6,
    port: 80,
    scheduler: 'rr',
    ...svcInit,
  });
  const rs = (svcInit.weights ?? [1, 1, 1]).map((w, i) => {
    const r = svc.addRealServer({
      address: family === 4 ? `198.18.1.${i + 1}` : `2001:db8:1::${i + 1}`,
      port: svcInit.fwd === Fwd.NAT ? 8080 : 80,
      weight: w,
      fwd: svcInit.fwd ?? Fwd.DR,
    });
    r.mac.set([0x02, 0, 0, 0, 0x01, i + 1]);
    r.macKnown = true;
    return r;
  });
  svc.setScheduler(createScheduler(svc.schedulerName));
  const slice = new SliceFilter({ buckets: 16, sense: Sense.SRC_PORT });
  slice.ownAll();
  const engine = new Engine(
    { sharedMac: SHARED, localAddr4: '198.18.0.2', localAddr6: '2001:db8::2', table: { capacity: 1024 }, ...engineInit },
    { clock, services, slice },
  );
  engine.neighbours.gateway = parseMac('02:00:00:00:00:fe');
  return { engine, clock, services, slice, rs };
}

/** Run frames through the engine as one batch; return copies of the transmitted frames. */
function run(engine: Engine, ...frames: Uint8Array[]): Uint8Array[] {
  const total = frames.reduce((a, f) => a + f.length, 0);
  const rx: RxBatch = { buf: new Uint8Array(total + 64), off: new Uint32Array(frames.length), len: new Uint32Array(frames.length), count: frames.length };
  let p = 0;
  frames.forEach((f, i) => {
    rx.buf.set(f, p);
    rx.off[i] = p;
    rx.len[i] = f.length;
    p += f.length;
  });
  engine.processBatch(rx);
  const out: Uint8Array[] = [];
  for (let i = 0; i < engine.tx.count; i++) out.push(Uint8Array.from(engine.tx.frame(i)));
  return out;
}

function tcp4(sport: number, flags: string, o: { src?: string; dst?: string; dport?: number; payload?: string; dstMac?: string } = {}): Buffer {
  return new PacketBuilder()
    .eth({ src: CLIENT_MAC, dst: o.dstMac ?? SHARED })
    .ipv4({ src: o.src ?? '198.18.200.1', dst: o.dst ?? VIP, df: true })
    .tcp({ sport, dport: o.dport ?? 80, flags, payload: o.payload })
    .build();
}

function parsed(frame: Uint8Array): ParsedFrame {
  const f = new ParsedFrame();
  assert.equal(parseFrame(frame, 0, frame.length, f), Drop.OK);
  return f;
}

function drops(engine: Engine): Record<string, number> {
  const out: Record<string, number> = {};
  engine.drops.forEach((v, i) => {
    if (v > 0) out[DROP_REASON_NAMES[i]!] = v;
  });
  return out;
}

describe('Engine', () => {
  describe('DR', () => {
    it('schedules a SYN, rewrites MACs only, and keeps the connection on its real server', () => {
      const { engine, rs } = rig({ scheduler: 'rr' });
      const syn = tcp4(40000, 'S');
      const [out] = run(engine, syn);
      assert.ok(out, 'the SYN is forwarded');
      // ip_vs_rr.c walks the kernel's list, newest real server first.
      assert.equal(formatMac(out, 0), formatMac(rs[2]!.mac));
      assert.equal(formatMac(out, 6), SHARED);
      assert.deepEqual(out.subarray(12), Uint8Array.from(syn.subarray(12)), 'nothing but MACs changes in DR');
      // rr would move on to the next real server for a new connection; the same connection stays.
      const request = 'GET / HTTP/1.0\r\n\r\n';
      for (const flags of ['A', 'PA', 'A']) {
        const [o] = run(engine, tcp4(40000, flags, { payload: flags === 'PA' ? request : undefined }));
        assert.equal(formatMac(o!, 0), formatMac(rs[2]!.mac));
      }
      const [other] = run(engine, tcp4(40001, 'S'));
      assert.equal(formatMac(other!, 0), formatMac(rs[1]!.mac), 'rr gives the next connection to the next real server');
      assert.equal(engine.counters.scheduled, 2);
      assert.equal(rs[2]!.stats.inPkts, 4);
      assert.equal(rs[2]!.service.stats.conns, 2);
      assert.equal(rs[2]!.stats.inBytes, 4 * 40 + request.length, 'IP bytes counted');
    });

    it('counts and drops frames for another MAC, another slice, or a mid-connection packet without entry', () => {
      const { engine, slice } = rig();
      assert.equal(run(engine, tcp4(40000, 'S', { dstMac: '02:00:00:00:00:77' })).length, 0);
      slice.setOwned([0, 1, 2, 3]); // 16 buckets by source port: port 40005 is bucket 5
      assert.equal(run(engine, tcp4(40005, 'S')).length, 0);
      assert.equal(run(engine, tcp4(40001, 'A')).length, 0);
      assert.equal(run(engine, tcp4(40002, 'S')).length, 1);
      assert.deepEqual(drops(engine), { not_our_mac: 1, not_our_slice: 1, no_connection: 1 });
      assert.equal(engine.table.size, 1, 'no entry for dropped frames');
    });

    it('schedules mid-connection packets only with a deterministic scheduler when told to', () => {
      const sh = rig({ scheduler: 'sh' }, { midFlow: 'schedule' });
      assert.equal(run(sh.engine, tcp4(40000, 'A')).length, 1);
      const rr = rig({ scheduler: 'rr' }, { midFlow: 'schedule' });
      assert.equal(run(rr.engine, tcp4(40000, 'A')).length, 0);
      assert.equal(rr.engine.drops[Drop.NO_CONNECTION], 1);
    });

    it('does not forward to a real server whose MAC is unknown', () => {
      const { engine, rs } = rig({ weights: [1] });
      rs[0]!.macKnown = false;
      assert.equal(run(engine, tcp4(40000, 'S')).length, 0);
      assert.equal(engine.drops[Drop.NO_NEIGHBOUR], 1);
    });

    it('leaves ARP, ICMP echo and traffic to unknown destinations to the host stack', () => {
      const { engine } = rig();
      const echo = new PacketBuilder().eth({ dst: SHARED }).ipv4({ src: '198.18.200.1', dst: VIP }).icmp({ type: 8, id: 1, seq: 1 }).build();
      const other = tcp4(40000, 'S', { dst: '198.18.0.2' });
      assert.equal(run(engine, echo, other).length, 0);
      assert.equal(engine.counters.toHost, 2);
      assert.equal(engine.drops.reduce((a, b) => a + b, 0), 0);
    });
  });

  describe('scheduling', () => {
    it('sends new connections to the fallback server when every real server is quiescent, existing ones stay', () => {
      const { engine, rs, services } = rig({ weights: [1, 1] });
      const svc = services.services[0]!;
      const [first] = run(engine, tcp4(40000, 'S'));
      assert.equal(formatMac(first!, 0), formatMac(rs[1]!.mac));
      svc.setFallback({ address: '198.18.1.99', port: 80, fwd: Fwd.DR });
      svc.fallback!.mac.set([2, 0, 0, 0, 1, 0x99]);
      svc.fallback!.macKnown = true;
      rs.forEach((r) => r.edit({ weight: 0 }));
      svc.changed();
      const [fb] = run(engine, tcp4(40001, 'S'));
      assert.equal(formatMac(fb!, 0), '02:00:00:00:01:99');
      const [cont] = run(engine, tcp4(40000, 'A'));
      assert.equal(formatMac(cont!, 0), formatMac(rs[1]!.mac), 'quiescent: the existing connection continues');
      assert.equal(engine.counters.fallback, 1);
    });

    it('a removed real server keeps its connections by default (IPVS trash list)', () => {
      const { engine, rs, services } = rig({ weights: [1, 1] });
      const [first] = run(engine, tcp4(40000, 'S'));
      const to = formatMac(first!, 0);
      const gone = rs.find((r) => formatMac(r.mac) === to)!;
      services.services[0]!.removeRealServer(gone.addr.text, gone.port);
      const [cont] = run(engine, tcp4(40000, 'A'));
      assert.equal(formatMac(cont!, 0), to);
      assert.equal(engine.drops[Drop.NODEST_EXPIRED], 0);
    });

    it('expireNodestConn: the next packet to a removed real server expires the entry and is dropped; a new SYN is scheduled afresh', () => {
      const { engine, rs, services } = rig({ weights: [1, 1], expireNodestConn: true });
      const [first] = run(engine, tcp4(40000, 'S'));
      run(engine, tcp4(40001, 'S'));
      const gone = rs.find((r) => formatMac(r.mac) === formatMac(first!, 0))!;
      const other = rs.find((r) => r !== gone)!;
      services.services[0]!.removeRealServer(gone.addr.text, gone.port);
      assert.equal(run(engine, tcp4(40000, 'A')).length, 0, 'dropped');
      assert.equal(engine.drops[Drop.NODEST_EXPIRED], 1);
      assert.equal(run(engine, tcp4(40000, 'A')).length, 0, 'entry gone: a mid-flow packet finds nothing');
      assert.equal(engine.drops[Drop.NO_CONNECTION], 1);
      const [again] = run(engine, tcp4(40000, 'S'));
      assert.equal(formatMac(again!, 0), formatMac(other.mac), 'the new connection goes to a server still in the service');
      assert.equal(gone.totalConns(), 0, 'the removed real server holds no entry');
      // connections on the remaining real server are untouched
      const [kept] = run(engine, tcp4(40001, 'A'));
      assert.ok(kept !== undefined);
    });

    it('expireNodestConn: a SYN reusing the entry of a removed real server is rescheduled at once', () => {
      const { engine, rs, services } = rig({ weights: [1, 1], expireNodestConn: true });
      const [first] = run(engine, tcp4(40000, 'S'));
      const gone = rs.find((r) => formatMac(r.mac) === formatMac(first!, 0))!;
      services.services[0]!.removeRealServer(gone.addr.text, gone.port);
      const [syn] = run(engine, tcp4(40000, 'S'));
      assert.ok(syn !== undefined);
      assert.notEqual(formatMac(syn, 0), formatMac(gone.mac));
      assert.equal(engine.drops[Drop.NODEST_EXPIRED], 0);
    });

    it('conn_reuse_mode: a SYN on a finished DR entry, or on one whose real server is quiescent, is a new connection', () => {
      const { engine, rs } = rig({ weights: [1, 1] });
      const first = formatMac(run(engine, tcp4(40000, 'S'))[0]!, 0);
      run(engine, tcp4(40000, 'A'));
      const repeat = run(engine, tcp4(40000, 'S'));
      assert.equal(formatMac(repeat[0]!, 0), first, 'a SYN on a live (ESTABLISHED) entry with a usable server stays');
      assert.equal(engine.counters.connReused, 0);
      run(engine, tcp4(40000, 'FA')); // DR: FIN_WAIT, the end the director sees
      const next = formatMac(run(engine, tcp4(40000, 'S'))[0]!, 0);
      assert.equal(engine.counters.connReused, 1);
      assert.notEqual(next, first, 'rescheduled: rr moves on to the other real server');
      // quiescent real server: a SYN on its live entry goes elsewhere
      const q = rs.find((r) => formatMac(r.mac) === next)!;
      q.edit({ weight: 0 });
      q.service.changed();
      const moved = formatMac(run(engine, tcp4(40000, 'S'))[0]!, 0);
      assert.notEqual(moved, formatMac(q.mac));
      assert.equal(engine.counters.connReused, 2);
    });

    it('conn_reuse_mode leaves an entry controlled by a persistence template alone', () => {
      const { engine, rs } = rig({ weights: [1, 1], persistentTimeoutS: 300 });
      const first = formatMac(run(engine, tcp4(40000, 'S'))[0]!, 0);
      rs.find((r) => formatMac(r.mac) === first)!.edit({ weight: 0 });
      assert.equal(formatMac(run(engine, tcp4(40000, 'S'))[0]!, 0), first);
      assert.equal(engine.counters.connReused, 0);
    });

    it('drops a new connection when no real server and no fallback can take it', () => {
      const { engine } = rig({ weights: [0, 0] });
      assert.equal(run(engine, tcp4(40000, 'S')).length, 0);
      assert.equal(engine.drops[Drop.NO_REAL_SERVER], 1);
    });

    it('keeps a client network on one real server through persistence templates', () => {
      const { engine, rs } = rig({ scheduler: 'rr', persistentTimeoutS: 300, persistentPrefix: 24 });
      const a = run(engine, tcp4(40000, 'S', { src: '198.18.200.1' }))[0]!;
      const b = run(engine, tcp4(40001, 'S', { src: '198.18.200.77' }))[0]!;
      const c = run(engine, tcp4(40002, 'S', { src: '198.18.201.1' }))[0]!;
      assert.equal(formatMac(a, 0), formatMac(rs[2]!.mac));
      assert.equal(formatMac(b, 0), formatMac(rs[2]!.mac), 'same /24: same real server');
      assert.equal(formatMac(c, 0), formatMac(rs[1]!.mac), 'another /24 is scheduled anew');
    });

    it('drops new connections when the table is full and counts them, without throwing', () => {
      const { engine } = rig({}, { table: { capacity: 4 } });
      let sent = 0;
      for (let p = 0; p < 16; p++) sent += run(engine, tcp4(40000 + p, 'S')).length;
      assert.equal(engine.table.capacity, 4);
      assert.equal(sent, 4, 'as many connections as the table holds');
      assert.equal(engine.drops[Drop.TABLE_FULL], 16 - sent);
    });
  });

  describe('sync events', () => {
    it('raises one on the third packet and every 50 after (sync_threshold 3 50)', () => {
      const { engine } = rig();
      const seen: number[] = [];
      run(engine, tcp4(40000, 'S'));
      for (let n = 2; n <= 110; n++) {
        run(engine, tcp4(40000, 'A'));
        engine.drainSync(() => seen.push(n));
      }
      assert.deepEqual(seen, [3, 53, 103]);
    });
  });

  describe('NAT', () => {
    it('rewrites client -> VIP to the real server and the reply back to the VIP, checksums valid per tshark', () => {
      const { engine, rs } = rig({ fwd: Fwd.NAT, weights: [1] });
      const [inbound] = run(engine, tcp4(40000, 'S'));
      const fin = parsed(inbound!);
      assert.equal(fin.daddr[3], rs[0]!.addr.words[3]);
      assert.equal(fin.dport, 8080);
      const reply = new PacketBuilder()
        .eth({ src: '02:00:00:00:01:01', dst: SHARED })
        .ipv4({ src: '198.18.1.1', dst: '198.18.200.1' })
        .tcp({ sport: 8080, dport: 40000, flags: 'SA' })
        .build();
      const [outbound] = run(engine, reply);
      assert.ok(outbound, 'the reply is forwarded');
      const rows = tsharkFields([inbound!, outbound!], ['eth.dst', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport']);
      assert.deepEqual(rows[0], ['02:00:00:00:01:01', '198.18.200.1', '198.18.1.1', '40000', '8080']);
      assert.deepEqual(rows[1], ['02:00:00:00:00:fe', VIP, '198.18.200.1', '80', '40000']);
      assert.deepEqual(tsharkChecksumsOk([inbound!, outbound!]), [true, true]);
      assert.equal(rs[0]!.stats.outPkts, 1);
    });

    it('maps return traffic to the bucket of its client side', () => {
      const { engine, slice } = rig({ fwd: Fwd.NAT, weights: [1] });
      run(engine, tcp4(40002, 'S'));
      slice.setOwned([3]); // the client port 40002 is bucket 2: the reply is another director's now
      const reply = new PacketBuilder()
        .eth({ dst: SHARED })
        .ipv4({ src: '198.18.1.1', dst: '198.18.200.1' })
        .tcp({ sport: 8080, dport: 40002, flags: 'SA' })
        .build();
      assert.equal(run(engine, reply).length, 0);
      assert.equal(engine.drops[Drop.NOT_OUR_SLICE], 1);
      slice.setOwned([2]);
      assert.equal(run(engine, reply).length, 1);
    });
  });

  describe('handover (draining buckets)', () => {
    it('finishes its own connections in a draining bucket and leaves new ones to the new owner', () => {
      const { engine, slice } = rig({ weights: [1] });
      assert.equal(run(engine, tcp4(40002, 'S')).length, 1); // bucket 2, created here
      slice.setOwned([0, 1]);
      slice.setDraining([2]);
      assert.equal(run(engine, tcp4(40002, 'A')).length, 1, 'own connection continues');
      assert.equal(run(engine, tcp4(40018, 'S')).length, 0, 'a new connection in bucket 2 is the new owner\'s');
      assert.equal(engine.drops[Drop.HANDED_OVER], 1);
      assert.equal(run(engine, tcp4(40003, 'S')).length, 0, 'bucket 3 is neither owned nor draining');
      assert.equal(engine.drops[Drop.NOT_OUR_SLICE], 1);
      slice.setDraining([]);
      assert.equal(run(engine, tcp4(40002, 'A')).length, 0, 'drained: no longer served here');
      assert.equal(engine.drops[Drop.NOT_OUR_SLICE], 2);
    });

    it('gives a SYN that reuses the port of an own connection to the new owner, and forgets the old connection', () => {
      const { engine, slice } = rig({ weights: [1] });
      assert.equal(run(engine, tcp4(40002, 'S')).length, 1);
      assert.equal(run(engine, tcp4(40002, 'A')).length, 1);
      slice.setOwned([]);
      slice.setDraining([2]);
      assert.equal(run(engine, tcp4(40002, 'S')).length, 0, 'the new connection is the new owner\'s');
      assert.equal(engine.drops[Drop.HANDED_OVER], 1);
      assert.equal(run(engine, tcp4(40002, 'A')).length, 0, 'its later packets are not sent to the old real server');
      assert.equal(engine.drops[Drop.HANDED_OVER], 2);
      assert.equal(engine.table.size, 0);
    });

    it('does not serve connections it only knows from sync in a draining bucket', () => {
      const { engine, slice, rs } = rig({ weights: [1] });
      const s = new ConnSnapshot();
      s.family = 4;
      s.protocol = Proto.TCP;
      s.caddr.set(IpAddress.parse('198.18.200.1').words);
      s.vaddr.set(IpAddress.parse(VIP).words);
      s.daddr.set(rs[0]!.addr.words);
      s.dfamily = 4;
      s.cport = 40004;
      s.vport = 80;
      s.dport = 80;
      s.fwd = Fwd.DR;
      s.state = TcpState.ESTABLISHED;
      s.timeoutMs = 60_000;
      s.packets = 3;
      assert.equal(engine.table.importSynced(s), ImportResult.CREATED);
      slice.setOwned([]);
      slice.setDraining([4]);
      assert.equal(run(engine, tcp4(40004, 'A')).length, 0);
      assert.equal(engine.drops[Drop.HANDED_OVER], 1);
      slice.setOwned([4]); // owned again (say, after a takeover): the synced entry is used
      assert.equal(run(engine, tcp4(40004, 'A')).length, 1);
    });

    it('keeps NAT return traffic of its own connections in a draining bucket', () => {
      const { engine, slice } = rig({ fwd: Fwd.NAT, weights: [1] });
      run(engine, tcp4(40002, 'S'));
      slice.setOwned([]);
      slice.setDraining([2]);
      const reply = new PacketBuilder()
        .eth({ dst: SHARED })
        .ipv4({ src: '198.18.1.1', dst: '198.18.200.1' })
        .tcp({ sport: 8080, dport: 40002, flags: 'SA' })
        .build();
      assert.equal(run(engine, reply).length, 1);
    });
  });

  describe('TUN', () => {
    it('encapsulates IPv4 in IPv4 from the director address to the RIP', () => {
      const { engine, rs } = rig({ fwd: Fwd.TUN, weights: [1] });
      const syn = tcp4(40000, 'S');
      const [out] = run(engine, syn);
      const rows = tsharkFields([out!], ['eth.dst', 'ip.src', 'ip.dst', 'ip.proto', 'tcp.srcport']);
      assert.deepEqual(rows[0], [formatMac(rs[0]!.mac), '198.18.0.2,198.18.200.1', '198.18.1.1,198.18.0.100', '4,6', '40000']);
      assert.deepEqual(tsharkChecksumsOk([out!]), [true]);
    });

    it('encapsulates IPv6 in IPv6', () => {
      const { engine } = rig({ fwd: Fwd.TUN, weights: [1], family: 6 });
      const syn = new PacketBuilder().eth({ dst: SHARED }).ipv6({ src: '2001:db8:c::1', dst: VIP6 }).tcp({ sport: 40000, dport: 80, flags: 'S' }).build();
      const [out] = run(engine, syn);
      const rows = tsharkFields([out!], ['ipv6.src', 'ipv6.dst', 'ipv6.nxt']);
      assert.deepEqual(rows[0], ['2001:db8::2,2001:db8:c::1', '2001:db8:1::1,2001:db8::100', '41,6']);
    });

    it('answers "fragmentation needed" when the tunnel would exceed the MTU and DF is set', () => {
      const { engine } = rig({ fwd: Fwd.TUN, weights: [1] });
      const big = tcp4(40000, 'S', { payload: 'x'.repeat(1460) });
      const [icmp] = run(engine, big);
      assert.ok(icmp);
      const rows = tsharkFields([icmp], ['eth.dst', 'ip.src', 'ip.dst', 'icmp.type', 'icmp.code', 'icmp.mtu']);
      assert.deepEqual(rows[0]!.slice(0, 6), [CLIENT_MAC, VIP + ',198.18.200.1', '198.18.200.1,' + VIP, '3', '4', '1480']);
      assert.deepEqual(tsharkChecksumsOk([icmp]), [true]);
      assert.equal(engine.drops[Drop.TOO_BIG], 1);
    });
  });

  describe('ICMP errors', () => {
    it('sends an error about a reply to the real server that owns the connection', () => {
      const { engine, rs } = rig({ weights: [1, 1] });
      run(engine, tcp4(40000, 'S'));
      run(engine, tcp4(40001, 'S'));
      // A router reports that the real server's reply (VIP:80 -> client:40001) could not be delivered.
      const inner = new PacketBuilder().ipv4({ src: VIP, dst: '198.18.200.1' }).tcp({ sport: 80, dport: 40001, flags: 'SA' }).buildIp();
      const err = new PacketBuilder().eth({ dst: SHARED }).ipv4({ src: '198.18.9.1', dst: VIP }).icmp({ type: 3, code: 1, inner }).build();
      const [out] = run(engine, err);
      assert.equal(formatMac(out!, 0), formatMac(rs[0]!.mac), 'the second connection went to the older real server');
      assert.equal(engine.counters.icmpRelated, 1);
    });
  });

  describe('ICMP errors in NAT', () => {
    it('sends an error from the real server side to the client with the VIP restored, as ip_vs_out_icmp', () => {
      const { engine } = rig({ fwd: Fwd.NAT, weights: [1] });
      run(engine, tcp4(40000, 'S'));
      // The real server reports that the client's packet (client:40000 -> RIP:8080) could not be handled.
      const inner = new PacketBuilder().ipv4({ src: '198.18.200.1', dst: '198.18.1.1' }).tcp({ sport: 40000, dport: 8080, flags: 'A' }).buildIp();
      const err = new PacketBuilder()
        .eth({ src: '02:00:00:00:01:01', dst: SHARED })
        .ipv4({ src: '198.18.1.1', dst: '198.18.200.1' })
        .icmp({ type: 3, code: 3, inner })
        .build();
      const [out] = run(engine, err);
      assert.ok(out, 'the error is forwarded');
      const rows = tsharkFields([out], ['eth.dst', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport']);
      assert.deepEqual(rows[0], ['02:00:00:00:00:fe', VIP + ',198.18.200.1', '198.18.200.1,' + VIP, '40000', '80']);
      assert.deepEqual(tsharkChecksumsOk([out]), [true]);
      assert.equal(engine.counters.icmpRelated, 1);
    });
  });

  describe('bad input', () => {
    it('never throws on random bytes and counts every frame once', () => {
      const { engine } = rig();
      const shared = parseMac(SHARED);
      fc.assert(
        fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { maxLength: 16 }), fc.boolean(), (frames, ours) => {
          const fs = frames.map((f) => {
            if (ours && f.length >= 6) f.set(shared);
            return f;
          });
          const before = engine.counters.rxFrames;
          run(engine, ...fs);
          assert.equal(engine.counters.rxFrames - before, fs.length);
        }),
        { numRuns: 2000 },
      );
    });
  });
});
