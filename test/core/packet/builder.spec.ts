/**
 * Sanity of the test helpers themselves: PacketBuilder frames decode in
 * tshark as intended with every checksum good; arpFrame, MAC helpers, pcap
 * writer; and the tshark oracle does report a bad checksum as bad.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Drop, ParsedFrame, parseFrame } from '../../../core/packet/index.js';
import {
  DEFAULT_DST_MAC, DEFAULT_SRC_MAC, PacketBuilder, arpFrame, formatMac, parseMac, tcpFlags,
} from '../../helpers/packet-builder.js';
import { NO_REASSEMBLY, tsharkChecksumStatus, tsharkChecksumsOk, tsharkFields, writePcap } from '../../helpers/tshark.js';
import { C4, C6, V4, V6, innerTcp4, innerUdp6, validFixtures } from './fixtures.js';

describe('test/helpers/packet-builder', () => {
  it('every checksummed valid fixture decodes in tshark with all checksums good', function () {
    this.timeout(60000);
    const fx = validFixtures().filter((f) => {
      const p = new ParsedFrame();
      parseFrame(f.input, 0, f.input.length, p);
      // Later fragments have no transport checksum to verify, and tshark leaves an IPv6 first fragment's
      // unverified; ARP has none; a zero UDP checksum is "none".
      return p.etherType !== 0x0806 && p.firstFragment && !(p.family === 6 && p.isFragment) && !f.description.includes('zero checksum') && !f.description.includes('UDP length');
    });
    assert.ok(fx.length > 40);
    // Without reassembly tshark verifies a first fragment's transport checksum over the fragment,
    // which is what the builder computed it over.
    const ok = tsharkChecksumsOk(fx.map((f) => f.input), NO_REASSEMBLY);
    fx.forEach((f, i) => assert.ok(ok[i], `${f.description}: ${JSON.stringify(tsharkChecksumStatus([f.input], NO_REASSEMBLY)[0])}`));
  });

  it('tshark reports a corrupted IP, TCP, UDP, ICMP or ICMPv6 checksum as bad', function () {
    this.timeout(60000);
    const frames = [
      { f: new PacketBuilder().ipv4({ src: C4, dst: V4 }).tcp({ sport: 1, dport: 2, flags: 'S' }).build(), at: 24 }, // IP checksum
      { f: new PacketBuilder().ipv4({ src: C4, dst: V4 }).tcp({ sport: 1, dport: 2, flags: 'S' }).build(), at: 50 }, // TCP checksum
      { f: new PacketBuilder().ipv6({ src: C6, dst: V6 }).udp({ sport: 1, dport: 2, payload: 'x' }).build(), at: 60 }, // UDP
      { f: new PacketBuilder().ipv4({ src: C4, dst: V4 }).icmp({ type: 8, id: 1 }).build(), at: 36 }, // ICMP
      { f: new PacketBuilder().ipv6({ src: C6, dst: V6 }).icmp({ type: 128, id: 1 }).build(), at: 56 }, // ICMPv6
    ];
    const bad = frames.map(({ f, at }) => {
      const c = new Uint8Array(f);
      c[at] = c[at]! ^ 0x40;
      return c;
    });
    assert.deepEqual(tsharkChecksumsOk(frames.map((x) => x.f)), [true, true, true, true, true]);
    assert.deepEqual(tsharkChecksumsOk(bad), [false, false, false, false, false]);
  });

  it('fields land where tshark expects them (IPv4, TCP, UDP, ICMP, VLAN, MACs)', () => {
    const frames = [
      new PacketBuilder()
        .eth({ src: '0a:0b:0c:0d:0e:0f', dst: 'aa:bb:cc:dd:ee:ff', vlan: 42 })
        .ipv4({ src: C4, dst: V4, ttl: 17, tos: 0xb8, id: 0x4242, df: true })
        .tcp({ sport: 1025, dport: 8080, flags: 'SEC', seq: 0xdeadbeef, ack: 7, window: 1234, options: Uint8Array.of(2, 4, 5, 0xb4) })
        .build(),
      new PacketBuilder().ipv4({ src: C4, dst: V4, fragOffset: 0, moreFragments: true, id: 7 }).udp({ sport: 9, dport: 10, payload: 'hello' }).build(),
      new PacketBuilder().ipv4({ src: C4, dst: V4, fragOffset: 64, id: 7 }).raw(17, new Uint8Array(3)).build(),
      new PacketBuilder().ipv4({ src: '10.9.9.9', dst: V4 }).icmp({ type: 3, code: 4, mtu: 1400, inner: innerTcp4.subarray(0, 28) }).build(),
    ];
    const fields = [
      'eth.src', 'eth.dst', 'vlan.id', 'ip.ttl', 'ip.dsfield', 'ip.id', 'ip.flags.df', 'ip.flags.mf', 'ip.frag_offset', 'ip.hdr_len', 'ip.len',
      'tcp.seq_raw', 'tcp.ack_raw', 'tcp.window_size_value', 'tcp.flags', 'tcp.hdr_len', 'tcp.options.mss_val', 'udp.length', 'udp.srcport',
      'icmp.type', 'icmp.code', 'icmp.mtu',
    ];
    const r = tsharkFields(frames, fields, NO_REASSEMBLY).map((row) => Object.fromEntries(fields.map((f, i) => [f, row[i]])));
    assert.deepEqual(
      [r[0]!['eth.src'], r[0]!['eth.dst'], r[0]!['vlan.id'], r[0]!['ip.ttl'], Number(r[0]!['ip.dsfield']), Number(r[0]!['ip.id']), r[0]!['ip.flags.df']],
      ['0a:0b:0c:0d:0e:0f', 'aa:bb:cc:dd:ee:ff', '42', '17', 0xb8, 0x4242, '1'],
    );
    assert.deepEqual(
      [r[0]!['tcp.seq_raw'], r[0]!['tcp.ack_raw'], r[0]!['tcp.window_size_value'], Number(r[0]!['tcp.flags']), r[0]!['tcp.hdr_len'], r[0]!['tcp.options.mss_val']],
      [String(0xdeadbeef), '7', '1234', 0xc2, '24', '1460'],
    );
    assert.deepEqual([r[1]!['eth.src'], r[1]!['eth.dst']], [DEFAULT_SRC_MAC, DEFAULT_DST_MAC]);
    assert.deepEqual([r[1]!['ip.flags.mf'], r[1]!['ip.frag_offset'], r[1]!['udp.length'], r[1]!['udp.srcport']], ['1', '0', '13', '9']);
    assert.deepEqual([r[2]!['ip.flags.mf'], r[2]!['ip.frag_offset'], r[2]!['ip.len']], ['0', '8', '23']); // tshark 4.0 shows 8-byte units
    assert.deepEqual([r[3]!['icmp.type'], r[3]!['icmp.code'], r[3]!['icmp.mtu'], r[3]!['ip.hdr_len']], ['3', '4', '1400', '20,20']);
  });

  it('IPv6 header fields and the extension-header chain are what tshark decodes', () => {
    const f = [
      new PacketBuilder()
        .eth({ vlan: 10, outerVlan: 20 })
        .ipv6({ src: C6, dst: V6, hopLimit: 9, trafficClass: 0x2e, flowLabel: 0xabcde, extensions: [{ type: 0 }, { type: 43 }, { type: 44, moreFragments: true }, { type: 60 }, { type: 51 }] })
        .tcp({ sport: 1, dport: 2, flags: 'A' })
        .build(),
      new PacketBuilder().ipv6({ src: V6, dst: C6 }).icmp({ type: 2, mtu: 1280, inner: innerUdp6 }).build(),
    ];
    const fields = ['ieee8021ad.id', 'vlan.id', 'ipv6.hlim', 'ipv6.tclass', 'ipv6.flow', 'frame.protocols', 'ipv6.fraghdr.more', 'ah.spi', 'icmpv6.type', 'icmpv6.mtu', 'udp.dstport'];
    const r = tsharkFields(f, fields, NO_REASSEMBLY);
    assert.deepEqual(r[0]!.slice(0, 5).map((x, i) => (i >= 3 ? Number(x) : x)), ['20', '10', '9', 0x2e, 0xabcde]);
    assert.equal(r[0]![5], 'eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ipv6:ipv6.hopopts:ipv6.routing:ipv6.fraghdr:ipv6.dstopts:ah:tcp');
    assert.equal(r[0]![6], '1');
    assert.equal(Number(r[0]![7]), 1);
    assert.deepEqual(r[1]!.slice(8), ['2', '1280', '53']);
  });

  it('arpFrame: request to broadcast, reply to the target; tshark agrees', () => {
    const req = arpFrame({ op: 1, senderMac: '02:aa:00:00:00:01', senderIp: '10.0.0.1', targetIp: '10.0.0.2' });
    const rep = arpFrame({ op: 2, senderMac: '02:aa:00:00:00:02', senderIp: '10.0.0.2', targetMac: '02:aa:00:00:00:01', targetIp: '10.0.0.1' });
    assert.equal(req.length, 42);
    const fields = ['eth.dst', 'eth.src', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4'];
    assert.deepEqual(tsharkFields([req, rep], fields), [
      ['ff:ff:ff:ff:ff:ff', '02:aa:00:00:00:01', '1', '02:aa:00:00:00:01', '10.0.0.1', '00:00:00:00:00:00', '10.0.0.2'],
      ['02:aa:00:00:00:01', '02:aa:00:00:00:02', '2', '02:aa:00:00:00:02', '10.0.0.2', '02:aa:00:00:00:01', '10.0.0.1'],
    ]);
    const p = new ParsedFrame();
    assert.equal(parseFrame(rep, 0, rep.length, p), Drop.OK);
    assert.equal(formatMac(rep, p.arpShaOff), '02:aa:00:00:00:02');
    assert.equal(formatMac(rep, p.arpThaOff), '02:aa:00:00:00:01');
  });

  it('parseMac / formatMac / tcpFlags', () => {
    assert.deepEqual(Array.from(parseMac('0A:0b:c:dd:EE:ff')), [10, 11, 12, 0xdd, 0xee, 0xff]);
    assert.equal(formatMac(parseMac('0A-0b-0c-dd-EE-ff')), '0a:0b:0c:dd:ee:ff');
    assert.equal(formatMac(Uint8Array.of(9, 1, 2, 3, 4, 5, 6), 1), '01:02:03:04:05:06');
    assert.throws(() => parseMac('01:02:03:04:05'), { code: 'SARU_ERR_INVALID_ARGUMENT', message: /not a MAC address/ });
    assert.throws(() => parseMac('01:02:03:04:05:zz'), { code: 'SARU_ERR_INVALID_ARGUMENT', message: /not a MAC address/ });
    assert.equal(tcpFlags('SA'), 0x12);
    assert.equal(tcpFlags('fpu'), 0x29);
    assert.equal(tcpFlags(0x1ff), 0xff);
    assert.throws(() => tcpFlags('SX'), /unknown TCP flag/);
  });

  it('builder refuses incomplete or impossible packets', () => {
    assert.throws(() => new PacketBuilder().tcp({ sport: 1, dport: 2, flags: 'S' }).build(), /ipv4\(\) or ipv6\(\)/);
    assert.throws(() => new PacketBuilder().ipv4({ src: C4, dst: V4 }).build(), /tcp\(\)/);
    assert.throws(() => new PacketBuilder().ipv4({ src: C4, dst: V6 }).udp({ sport: 1, dport: 2 }).build(), /not IPv4/);
    assert.throws(() => new PacketBuilder().ipv4({ src: C4, dst: V4, fragOffset: 3 }).udp({ sport: 1, dport: 2 }).build(), /multiple of 8/);
  });
});

describe('test/helpers/tshark', () => {
  it('writePcap writes a classic little-endian pcap, linktype 1, microsecond records', () => {
    const dir = mkdtempSync(join(tmpdir(), 'saru-pcap-'));
    try {
      const file = join(dir, 'x.pcap');
      writePcap(file, [Uint8Array.of(1, 2, 3), new Uint8Array(60)]);
      const b = readFileSync(file);
      assert.equal(b.readUInt32LE(0), 0xa1b2c3d4);
      assert.deepEqual([b.readUInt16LE(4), b.readUInt16LE(6), b.readUInt32LE(20)], [2, 4, 1]);
      assert.deepEqual([b.readUInt32LE(24 + 8), b.readUInt32LE(24 + 12)], [3, 3]);
      assert.deepEqual(Array.from(b.subarray(40, 43)), [1, 2, 3]);
      assert.equal(b.readUInt32LE(43 + 4), 1); // second record: 1 microsecond
      assert.equal(b.length, 24 + 16 + 3 + 16 + 60);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throws a clear error (the test fails, never skips) when tshark is not installed', () => {
    const helper = new URL('../../helpers/tshark.js', import.meta.url).href;
    const script = `import(${JSON.stringify(helper)}).then((m) => { try { m.tsharkFields([new Uint8Array(14)], ['eth.src']); console.log('no error'); } catch (e) { console.log(e.message); } });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: '/nonexistent' }, encoding: 'utf8' });
    assert.match(r.stdout, /tshark is not installed.*install-system-deps\.sh/);
  });

  it('returns one row per frame, even for frames tshark cannot decode', () => {
    const rows = tsharkFields([new Uint8Array(5), new PacketBuilder().ipv4({ src: C4, dst: V4 }).udp({ sport: 1, dport: 2 }).build()], ['ip.src', 'udp.dstport']);
    assert.deepEqual(rows, [['', ''], [C4, '2']]);
    assert.deepEqual(tsharkFields([], ['ip.src']), []);
  });
});
