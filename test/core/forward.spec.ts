/**
 * Forwarding rewrites (core/forward.ts): table-driven fixtures for DR, NAT in
 * and out, NAT of ICMP errors, IP-in-IP and the "too big" ICMP, for IPv4 and
 * IPv6, TCP, UDP and UDP without checksum, with a VLAN tag and with IPv4
 * options. Each rewritten frame is (a) re-parsed with parseFrame and its
 * checksums recomputed in full, and (b) decoded by tshark with checksum
 * validation on: addresses, ports, MACs, tunnel headers and ICMP fields must
 * agree and every checksum tshark validates must be good. A fast-check
 * property checks the incremental updates against a full recomputation and
 * that the rewrites are reversible.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IpAddress } from '../../core/addr.js';
import { Proto } from '../../core/constants.js';
import {
  buildTooBig,
  encapTunnel,
  mayAnswerWithIcmp,
  rewriteDr,
  rewriteNatIcmpIn,
  rewriteNatIcmpOut,
  rewriteNatIn,
  rewriteNatOut,
} from '../../core/forward.js';
import { get16, ipv4HeaderChecksum } from '../../core/packet/index.js';
import { PacketBuilder, formatMac, parseMac } from '../helpers/packet-builder.js';
import { tsharkChecksumStatus, tsharkFields } from '../helpers/tshark.js';
import { assertChecksumsFull, mirror, mustParse, parseL3, withoutMacs } from '../helpers/forward-util.js';

// ---------------------------------------------------------------- addresses

const ADDR = {
  4: { cip: '198.18.0.10', vip: '198.18.1.1', rip: '198.18.2.2', dip: '198.18.3.3', router: '198.18.0.1' },
  6: { cip: '2001:db8::10', vip: '2001:db8:1::1', rip: '2001:db8:2::2', dip: '2001:db8:3::3', router: '2001:db8::1' },
} as const;
const CPORT = 40000;
const VPORT = 80;
const RPORT = 8080;
const CLIENT_MAC = '02:00:00:00:00:0c';
const SHARED_MAC = '02:00:00:00:00:aa';
const RS_MAC = '02:00:00:00:00:0b';
const ROUTER_MAC = '02:00:00:00:00:01';

const words = (s: string): Uint32Array => IpAddress.parse(s).words;
const canon = (s: string): string => (s === '' ? '' : IpAddress.parse(s).text);
/** tshark joins repeated fields with ','; IPv6 addresses contain no ','. */
const list = (s: string): string[] => (s === '' ? [] : s.split(','));

type Fam = 4 | 6;
type L4Kind = 'tcp' | 'udp' | 'udp0';

interface Variant {
  description: string;
  family: Fam;
  l4: L4Kind;
  vlan?: number;
  options?: Uint8Array;
  /** IPv6 hop-by-hop extension header. */
  ext?: boolean;
}

/** IPv4 router alert option (RFC 2113), 4 bytes. */
const ROUTER_ALERT = Uint8Array.from([0x94, 0x04, 0x00, 0x00]);

const VARIANTS: Variant[] = [
  { description: 'IPv4 TCP', family: 4, l4: 'tcp' },
  { description: 'IPv4 UDP', family: 4, l4: 'udp' },
  { description: 'IPv4 UDP zero checksum', family: 4, l4: 'udp0' },
  { description: 'IPv4 TCP VLAN 42', family: 4, l4: 'tcp', vlan: 42 },
  { description: 'IPv4 UDP with options', family: 4, l4: 'udp', options: ROUTER_ALERT },
  { description: 'IPv4 TCP with options VLAN 7', family: 4, l4: 'tcp', options: ROUTER_ALERT, vlan: 7 },
  { description: 'IPv6 TCP', family: 6, l4: 'tcp' },
  { description: 'IPv6 UDP', family: 6, l4: 'udp' },
  { description: 'IPv6 UDP VLAN 42', family: 6, l4: 'udp', vlan: 42 },
  { description: 'IPv6 TCP hop-by-hop', family: 6, l4: 'tcp', ext: true },
];

interface Ends {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  srcMac: string;
  dstMac: string;
  payload?: Uint8Array | string;
  ttl?: number;
  tos?: number;
  df?: boolean;
}

/** Build the packet of a variant (IP layer only when `ipOnly`). */
function build(v: Variant, e: Ends, ipOnly = false): Buffer {
  const b = new PacketBuilder().eth({ src: e.srcMac, dst: e.dstMac, ...(v.vlan !== undefined ? { vlan: v.vlan } : {}) });
  if (v.family === 4) {
    b.ipv4({
      src: e.src,
      dst: e.dst,
      ttl: e.ttl ?? 61,
      tos: e.tos ?? 0x28,
      id: 0x1234,
      df: e.df ?? true,
      ...(v.options ? { options: v.options } : {}),
    });
  } else {
    b.ipv6({
      src: e.src,
      dst: e.dst,
      hopLimit: e.ttl ?? 61,
      trafficClass: e.tos ?? 0x28,
      flowLabel: 0x12345,
      ...(v.ext ? { extensions: [{ type: 0 }] } : {}),
    });
  }
  const payload = e.payload ?? 'GET / HTTP/1.1\r\nHost: saru\r\n\r\n';
  if (v.l4 === 'tcp') b.tcp({ sport: e.sport, dport: e.dport, flags: 'PA', seq: 0x01020304, ack: 0x0a0b0c0d, payload });
  else b.udp({ sport: e.sport, dport: e.dport, payload, zeroChecksum: v.l4 === 'udp0' });
  return ipOnly ? b.buildIp() : b.build();
}

const clientToVip = (v: Variant, payload?: Uint8Array | string): Ends => ({
  src: ADDR[v.family].cip,
  dst: ADDR[v.family].vip,
  sport: CPORT,
  dport: VPORT,
  srcMac: ROUTER_MAC,
  dstMac: SHARED_MAC,
  ...(payload !== undefined ? { payload } : {}),
});
const rsToClient = (v: Variant): Ends => ({
  src: ADDR[v.family].rip,
  dst: ADDR[v.family].cip,
  sport: RPORT,
  dport: CPORT,
  srcMac: RS_MAC,
  dstMac: SHARED_MAC,
});

const ipF = (fam: Fam): string => (fam === 4 ? 'ip' : 'ipv6');
const l4F = (k: L4Kind): string => (k === 'tcp' ? 'tcp' : 'udp');

/** Fields asked of tshark for every frame. */
const FIELDS = [
  'eth.dst', 'eth.src', 'vlan.id',
  'ip.src', 'ip.dst', 'ip.proto', 'ip.ttl', 'ip.dsfield', 'ip.flags.df', 'ip.len', 'ip.id',
  'ipv6.src', 'ipv6.dst', 'ipv6.nxt', 'ipv6.hlim', 'ipv6.tclass', 'ipv6.plen', 'ipv6.flow',
  'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport', 'udp.checksum',
  'icmp.type', 'icmp.code', 'icmp.mtu', 'icmpv6.type', 'icmpv6.code', 'icmpv6.mtu',
  'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status',
] as const;
type Row = Record<(typeof FIELDS)[number], string>;

/** Decode frames with tshark into named rows. */
function decode(frames: Uint8Array[]): Row[] {
  return tsharkFields(frames, [...FIELDS]).map((cols) => {
    const r = {} as Row;
    FIELDS.forEach((k, i) => (r[k] = cols[i] ?? ''));
    return r;
  });
}

/**
 * Every checksum status tshark reports is 1 (good) or 2 (not verifiable, e.g.
 * UDP zero or a cut quote), never 0 (bad), and at least `minGood` are good.
 */
function assertTsharkChecksums(frames: Uint8Array[], what: string[], minGood = 1): void {
  tsharkChecksumStatus(frames).forEach((rec, i) => {
    const all = Object.entries(rec).flatMap(([k, vs]) => vs.map((s) => `${k}=${s}`));
    assert.ok(!all.some((s) => s.endsWith('=0')), `${what[i]}: tshark reports a bad checksum: ${all.join(' ')}`);
    const good = all.filter((s) => s.endsWith('=1')).length;
    assert.ok(good >= minGood, `${what[i]}: tshark verified ${good} < ${minGood} checksums: ${all.join(' ')}`);
  });
}

/** Count of checksums tshark can verify in a TCP/UDP packet of the variant (IPv4 header + transport). */
function verifiable(v: Variant): number {
  return (v.family === 4 ? 1 : 0) + (v.l4 === 'udp0' ? 0 : 1);
}

// ---------------------------------------------------------------- tests

describe('core/forward', function () {
  this.timeout(60_000);

  describe('rewriteDr', () => {
    const cases = VARIANTS.map((v) => ({ description: v.description, v, input: build(v, clientToVip(v)) }));

    it('changes the MACs only; re-parsed fields and tshark agree', () => {
      const out: Buffer[] = [];
      for (const c of cases) {
        const frame = Buffer.from(c.input);
        const f = mustParse(frame);
        rewriteDr(frame, f, parseMac(RS_MAC), parseMac(SHARED_MAC));
        assert.equal(formatMac(frame, 0), RS_MAC, c.description);
        assert.equal(formatMac(frame, 6), SHARED_MAC, c.description);
        assert.deepEqual(frame.subarray(12), c.input.subarray(12), `${c.description}: bytes after the MACs`);
        const g = mustParse(frame);
        assert.equal(g.vlanId, c.v.vlan ?? -1);
        assertChecksumsFull(frame, g, c.v.l4 === 'udp0');
        out.push(frame);
      }
      const rows = decode(out);
      rows.forEach((r, i) => {
        const c = cases[i]!;
        assert.equal(r['eth.dst'], RS_MAC, c.description);
        assert.equal(r['eth.src'], SHARED_MAC, c.description);
        assert.equal(r['vlan.id'], c.v.vlan !== undefined ? String(c.v.vlan) : '', c.description);
        assert.equal(canon(r[`${ipF(c.v.family)}.dst` as keyof Row]), ADDR[c.v.family].vip, c.description);
        assert.equal(r[`${l4F(c.v.l4)}.dstport` as keyof Row], String(VPORT), c.description);
      });
      assertTsharkChecksums(out, cases.map((c) => c.description), 1);
    });
  });

  describe('rewriteNatIn / rewriteNatOut', () => {
    const inCases = VARIANTS.map((v) => ({ description: `in: ${v.description}`, v, input: build(v, clientToVip(v)) }));
    const outCases = VARIANTS.map((v) => ({ description: `out: ${v.description}`, v, input: build(v, rsToClient(v)) }));

    it('NAT in: destination becomes RIP:RPORT, checksums exact, tshark agrees', () => {
      const out: Buffer[] = [];
      for (const c of inCases) {
        const frame = Buffer.from(c.input);
        const f = mustParse(frame);
        const fam = c.v.family;
        rewriteNatIn(frame, f, words(ADDR[fam].rip), RPORT, parseMac(RS_MAC), parseMac(SHARED_MAC));
        const g = mustParse(frame);
        assert.equal(IpAddress.fromWords(fam, g.daddr).text, ADDR[fam].rip, c.description);
        assert.equal(IpAddress.fromWords(fam, g.saddr).text, ADDR[fam].cip, c.description);
        assert.equal(g.dport, RPORT, c.description);
        assert.equal(g.sport, CPORT, c.description);
        assert.equal(g.ttl, 61, `${c.description}: TTL untouched`);
        assert.equal(g.ipHeaderLen, f.ipHeaderLen, c.description);
        assertChecksumsFull(frame, g, c.v.l4 === 'udp0');
        // Nothing but addresses, ports, checksums and MACs changed: the payload is intact.
        assert.deepEqual(frame.subarray(g.l4Off + 8 + (c.v.l4 === 'tcp' ? 12 : 0)), c.input.subarray(f.l4Off + 8 + (c.v.l4 === 'tcp' ? 12 : 0)));
        out.push(frame);
      }
      const rows = decode(out);
      rows.forEach((r, i) => {
        const c = inCases[i]!;
        const fam = c.v.family;
        assert.equal(r['eth.dst'], RS_MAC, c.description);
        assert.equal(r['eth.src'], SHARED_MAC, c.description);
        assert.equal(r['vlan.id'], c.v.vlan !== undefined ? String(c.v.vlan) : '', c.description);
        assert.equal(canon(r[`${ipF(fam)}.src` as keyof Row]), ADDR[fam].cip, c.description);
        assert.equal(canon(r[`${ipF(fam)}.dst` as keyof Row]), ADDR[fam].rip, c.description);
        assert.equal(r[`${l4F(c.v.l4)}.srcport` as keyof Row], String(CPORT), c.description);
        assert.equal(r[`${l4F(c.v.l4)}.dstport` as keyof Row], String(RPORT), c.description);
        if (c.v.l4 === 'udp0') assert.equal(r['udp.checksum'], '0x0000', `${c.description}: zero checksum kept`);
      });
      assertTsharkChecksums(out, inCases.map((c) => c.description), 1);
      // Every checksum that can be verified is good (not merely unverified).
      tsharkChecksumStatus(out).forEach((rec, i) => {
        const good = Object.values(rec).flat().filter((s) => s === '1').length;
        assert.equal(good, verifiable(inCases[i]!.v), inCases[i]!.description);
      });
    });

    it('NAT out: source becomes VIP:VPORT, checksums exact, tshark agrees', () => {
      const out: Buffer[] = [];
      for (const c of outCases) {
        const frame = Buffer.from(c.input);
        const f = mustParse(frame);
        const fam = c.v.family;
        rewriteNatOut(frame, f, words(ADDR[fam].vip), VPORT, parseMac(CLIENT_MAC), parseMac(SHARED_MAC));
        const g = mustParse(frame);
        assert.equal(IpAddress.fromWords(fam, g.saddr).text, ADDR[fam].vip, c.description);
        assert.equal(IpAddress.fromWords(fam, g.daddr).text, ADDR[fam].cip, c.description);
        assert.equal(g.sport, VPORT, c.description);
        assert.equal(g.dport, CPORT, c.description);
        assertChecksumsFull(frame, g, c.v.l4 === 'udp0');
        out.push(frame);
      }
      const rows = decode(out);
      rows.forEach((r, i) => {
        const c = outCases[i]!;
        const fam = c.v.family;
        assert.equal(r['eth.dst'], CLIENT_MAC, c.description);
        assert.equal(r['eth.src'], SHARED_MAC, c.description);
        assert.equal(canon(r[`${ipF(fam)}.src` as keyof Row]), ADDR[fam].vip, c.description);
        assert.equal(canon(r[`${ipF(fam)}.dst` as keyof Row]), ADDR[fam].cip, c.description);
        assert.equal(r[`${l4F(c.v.l4)}.srcport` as keyof Row], String(VPORT), c.description);
        assert.equal(r[`${l4F(c.v.l4)}.dstport` as keyof Row], String(CPORT), c.description);
        if (c.v.l4 === 'udp0') assert.equal(r['udp.checksum'], '0x0000', `${c.description}: zero checksum kept`);
      });
      tsharkChecksumStatus(out).forEach((rec, i) => {
        const all = Object.values(rec).flat();
        assert.ok(!all.includes('0'), `${outCases[i]!.description}: ${JSON.stringify(rec)}`);
        assert.equal(all.filter((s) => s === '1').length, verifiable(outCases[i]!.v), outCases[i]!.description);
      });
    });

    it('a UDP checksum that updates to 0 is stored as 0xffff', () => {
      // Find a payload word that makes the updated checksum exactly 0 (a full
      // computation then gives 0 too, stored as 0xffff by RFC 768).
      const v: Variant = { description: 'IPv4 UDP', family: 4, l4: 'udp' };
      let hit = 0;
      for (let w = 0; w < 0x10000 && hit === 0; w++) {
        const frame = build(v, clientToVip(v, Uint8Array.from([w >> 8, w & 0xff])));
        const f = mustParse(frame);
        rewriteNatIn(frame, f, words(ADDR[4].rip), RPORT, parseMac(RS_MAC), parseMac(SHARED_MAC));
        const g = mustParse(frame);
        if (get16(frame, g.l4Off + 6) === 0xffff) {
          assertChecksumsFull(frame, g);
          hit++;
        }
        assert.notEqual(get16(frame, g.l4Off + 6), 0);
      }
      assert.equal(hit, 1, 'some payload produced a computed zero');
    });

    it('an IPv6 UDP datagram with (illegal) zero checksum gets a full checksum, as udp_dnat_handler', () => {
      const v: Variant = { description: 'IPv6 UDP', family: 6, l4: 'udp' };
      const frame = build(v, clientToVip(v));
      const f0 = mustParse(frame);
      frame[f0.l4Off + 6] = 0;
      frame[f0.l4Off + 7] = 0;
      const f = mustParse(frame);
      rewriteNatIn(frame, f, words(ADDR[6].rip), RPORT, parseMac(RS_MAC), parseMac(SHARED_MAC));
      assertChecksumsFull(frame, mustParse(frame));
    });

    it('a non-first IPv4 fragment gets the address change only', () => {
      const b = new PacketBuilder()
        .eth({ src: ROUTER_MAC, dst: SHARED_MAC })
        .ipv4({ src: ADDR[4].cip, dst: ADDR[4].vip, fragOffset: 1480, id: 7 })
        .raw(Proto.UDP, new Uint8Array(64).fill(0x55));
      const input = b.build();
      const frame = Buffer.from(input);
      const f = mustParse(frame);
      assert.equal(f.firstFragment, false);
      rewriteNatIn(frame, f, words(ADDR[4].rip), RPORT, parseMac(RS_MAC), parseMac(SHARED_MAC));
      const g = mustParse(frame);
      assert.equal(IpAddress.fromWords(4, g.daddr).text, ADDR[4].rip);
      assert.deepEqual(frame.subarray(g.l4Off), input.subarray(f.l4Off), 'payload untouched');
      assert.equal(get16(frame, g.l3Off + 10), ipv4HeaderChecksum(frame, g.l3Off, g.ipHeaderLen));
    });
  });

  // ------------------------------------------------------------ ICMP errors in NAT

  describe('rewriteNatIcmpIn / rewriteNatIcmpOut', () => {
    interface IcmpCase {
      description: string;
      v: Variant;
      dir: 'in' | 'out';
      /** Bytes of the quoted packet: whole, or IP header + 8 as a router may send. */
      cut: boolean;
      input: Buffer;
    }
    const cases: IcmpCase[] = [];
    for (const v of VARIANTS) {
      for (const dir of ['in', 'out'] as const) {
        for (const cut of [false, true]) {
          const fam = v.family;
          const a = ADDR[fam];
          // in: error from the client side about VIP:VPORT -> CIP:CPORT (sent by the director after SNAT).
          // out: error from the real-server side about CIP:CPORT -> RIP:RPORT (sent by the director after DNAT).
          const quoted: Ends =
            dir === 'in'
              ? { src: a.vip, dst: a.cip, sport: VPORT, dport: CPORT, srcMac: SHARED_MAC, dstMac: ROUTER_MAC }
              : { src: a.cip, dst: a.rip, sport: CPORT, dport: RPORT, srcMac: SHARED_MAC, dstMac: RS_MAC };
          let inner: Uint8Array = build({ ...v, vlan: undefined } as Variant, quoted, true);
          if (cut) {
            const hl = fam === 4 ? 20 + (v.options?.length ?? 0) : 40 + (v.ext ? 8 : 0);
            inner = inner.subarray(0, hl + 8);
          }
          const outerSrc = dir === 'in' ? a.router : a.rip;
          const outerDst = dir === 'in' ? a.vip : a.cip;
          const b = new PacketBuilder().eth({
            src: dir === 'in' ? ROUTER_MAC : RS_MAC,
            dst: SHARED_MAC,
            ...(v.vlan !== undefined ? { vlan: v.vlan } : {}),
          });
          if (fam === 4) b.ipv4({ src: outerSrc, dst: outerDst, ttl: 64 });
          else b.ipv6({ src: outerSrc, dst: outerDst, hopLimit: 64 });
          // IPv4: port unreachable (3/3) or frag needed (3/4); IPv6: destination unreachable / packet too big.
          if (fam === 4) b.icmp(cut ? { type: 3, code: 3, inner } : { type: 3, code: 4, mtu: 1400, inner });
          else b.icmp(cut ? { type: 1, code: 4, inner } : { type: 2, mtu: 1400, inner });
          cases.push({ description: `${dir} ${cut ? 'cut' : 'whole'}: ${v.description}`, v, dir, cut, input: b.build() });
        }
      }
    }

    it('rewrites outer and embedded address/port, checksums exact, tshark agrees', () => {
      const out: Buffer[] = [];
      for (const c of cases) {
        const frame = Buffer.from(c.input);
        const f = mustParse(frame);
        assert.ok(f.hasInner, c.description);
        const fam = c.v.family;
        const a = ADDR[fam];
        if (c.dir === 'in') rewriteNatIcmpIn(frame, f, words(a.rip), RPORT, parseMac(RS_MAC), parseMac(SHARED_MAC));
        else rewriteNatIcmpOut(frame, f, words(a.vip), VPORT, parseMac(CLIENT_MAC), parseMac(SHARED_MAC));
        const g = mustParse(frame);
        const txt = (w: Uint32Array): string => IpAddress.fromWords(fam, w).text;
        if (c.dir === 'in') {
          assert.equal(txt(g.daddr), a.rip, c.description);
          assert.equal(txt(g.saddr), a.router, c.description);
          assert.equal(txt(g.innerSaddr), a.rip, c.description);
          assert.equal(txt(g.innerDaddr), a.cip, c.description);
          assert.equal(g.innerSport, RPORT, c.description);
          assert.equal(g.innerDport, CPORT, c.description);
        } else {
          assert.equal(txt(g.saddr), a.vip, c.description);
          assert.equal(txt(g.daddr), a.cip, c.description);
          assert.equal(txt(g.innerSaddr), a.cip, c.description);
          assert.equal(txt(g.innerDaddr), a.vip, c.description);
          assert.equal(g.innerSport, CPORT, c.description);
          assert.equal(g.innerDport, VPORT, c.description);
        }
        assert.equal(g.icmpType, f.icmpType);
        assertChecksumsFull(frame, g);
        // The embedded packet is now exactly what the peer sent / will see:
        // compare with a packet built directly with the translated addresses.
        const expectInner =
          c.dir === 'in'
            ? { src: a.rip, dst: a.cip, sport: RPORT, dport: CPORT, srcMac: RS_MAC, dstMac: SHARED_MAC }
            : { src: a.cip, dst: a.vip, sport: CPORT, dport: VPORT, srcMac: ROUTER_MAC, dstMac: SHARED_MAC };
        const want = build({ ...c.v, vlan: undefined } as Variant, expectInner, true);
        const got = frame.subarray(g.innerL3Off, g.l4Off + g.l4Len);
        assert.deepEqual(got, want.subarray(0, got.length), `${c.description}: embedded packet`);
        out.push(frame);
      }
      const rows = decode(out);
      rows.forEach((r, i) => {
        const c = cases[i]!;
        const fam = c.v.family;
        const a = ADDR[fam];
        const ips = list(r[`${ipF(fam)}.src` as keyof Row]).map(canon);
        const ipd = list(r[`${ipF(fam)}.dst` as keyof Row]).map(canon);
        const l4 = l4F(c.v.l4);
        const sp = list(r[`${l4}.srcport` as keyof Row]);
        const dp = list(r[`${l4}.dstport` as keyof Row]);
        if (c.dir === 'in') {
          assert.deepEqual([ips, ipd], [[a.router, a.rip], [a.rip, a.cip]], c.description);
          assert.deepEqual([sp, dp], [[String(RPORT)], [String(CPORT)]], c.description);
          assert.equal(r['eth.dst'], RS_MAC);
        } else {
          assert.deepEqual([ips, ipd], [[a.vip, a.cip], [a.cip, a.vip]], c.description);
          assert.deepEqual([sp, dp], [[String(CPORT)], [String(VPORT)]], c.description);
          assert.equal(r['eth.dst'], CLIENT_MAC);
        }
        if (fam === 4) assert.equal(r['icmp.type'], '3', c.description);
        else assert.equal(r['icmpv6.type'], c.cut ? '1' : '2', c.description);
      });
      // Good: outer IPv4 header, embedded IPv4 header, ICMP; the embedded
      // transport checksum too when tshark sees the whole segment.
      assertTsharkChecksums(out, cases.map((c) => c.description), 1);
      tsharkChecksumStatus(out).forEach((rec, i) => {
        const c = cases[i]!;
        const icmpOk = (c.v.family === 4 ? rec['icmp.checksum.status'] : rec['icmpv6.checksum.status']) ?? [];
        assert.deepEqual(icmpOk, ['1'], `${c.description}: ICMP checksum ${JSON.stringify(rec)}`);
        if (c.v.family === 4) assert.deepEqual(rec['ip.checksum.status'], ['1', '1'], c.description);
      });
    });

    it('an embedded UDP zero checksum stays zero', () => {
      const c = cases.find((x) => x.v.l4 === 'udp0' && !x.cut && x.dir === 'out')!;
      const frame = Buffer.from(c.input);
      const f = mustParse(frame);
      rewriteNatIcmpOut(frame, f, words(ADDR[4].vip), VPORT, parseMac(CLIENT_MAC), parseMac(SHARED_MAC));
      const g = mustParse(frame);
      assert.equal(get16(frame, g.innerL4Off + 6), 0);
      assertChecksumsFull(frame, g);
    });
  });

  // ------------------------------------------------------------ IP-in-IP

  describe('encapTunnel', () => {
    const MTU = 1500;
    interface TunCase {
      description: string;
      v: Variant;
      payloadLen: number;
      df: boolean;
      /** -1 expected (too big and may not fragment). */
      tooBig: boolean;
    }
    const big = (fam: Fam): number => MTU - (fam === 4 ? 20 : 40) - (fam === 4 ? 20 : 40) - 20 + 1; // one byte over with TCP
    const TUN_CASES: TunCase[] = [
      ...VARIANTS.map((v) => ({ description: v.description, v, payloadLen: 100, df: true, tooBig: false })),
      { description: 'IPv4 TCP DF exactly fits', v: VARIANTS[0]!, payloadLen: big(4) - 1, df: true, tooBig: false },
      { description: 'IPv4 TCP DF one byte too big', v: VARIANTS[0]!, payloadLen: big(4), df: true, tooBig: true },
      { description: 'IPv4 TCP no DF too big: sent, caller fragments', v: VARIANTS[0]!, payloadLen: big(4), df: false, tooBig: false },
      { description: 'IPv4 TCP no DF fits', v: VARIANTS[3]!, payloadLen: 200, df: false, tooBig: false },
      { description: 'IPv6 TCP exactly fits', v: VARIANTS[6]!, payloadLen: big(6) - 1, df: true, tooBig: false },
      { description: 'IPv6 TCP one byte too big', v: VARIANTS[6]!, payloadLen: big(6), df: true, tooBig: true },
    ];
    const inputs = TUN_CASES.map((c) =>
      build(c.v, { ...clientToVip(c.v, 'x'.repeat(c.payloadLen)), ttl: 57, tos: 0xb8, df: c.df }),
    );

    it('writes Ethernet + outer header + the original packet; -1 when too big and DF', () => {
      const frames: Buffer[] = [];
      const ok: TunCase[] = [];
      TUN_CASES.forEach((c, i) => {
        const input = inputs[i]!;
        const f = mustParse(input);
        const fam = c.v.family;
        const out = Buffer.alloc(2048, 0xee);
        const n = encapTunnel(input, f, out, 0, words(ADDR[fam].dip), words(ADDR[fam].rip), MTU, parseMac(RS_MAC), parseMac(SHARED_MAC));
        if (c.tooBig) {
          assert.equal(n, -1, c.description);
          return;
        }
        const tags = f.l3Off - 14;
        const outerLen = fam === 4 ? 20 : 40;
        assert.equal(n, input.length + outerLen, c.description);
        const frame = out.subarray(0, n);
        assert.equal(formatMac(frame, 0), RS_MAC);
        assert.equal(formatMac(frame, 6), SHARED_MAC);
        assert.deepEqual(frame.subarray(12, 12 + tags), input.subarray(12, 12 + tags), 'VLAN tag copied');
        assert.deepEqual(frame.subarray(14 + tags + outerLen), input.subarray(f.l3Off), `${c.description}: inner packet unchanged`);
        const g = parseL3(frame);
        assert.equal(g.protocol, fam === 4 ? 4 : 41);
        assert.equal(IpAddress.fromWords(fam, g.saddr).text, ADDR[fam].dip);
        assert.equal(IpAddress.fromWords(fam, g.daddr).text, ADDR[fam].rip);
        assert.equal(g.ttl, 57);
        assert.equal(g.ipTotalLen, f.ipTotalLen + outerLen);
        if (fam === 4) {
          assert.equal(g.dontFragment, c.df);
          assert.equal(frame[g.l3Off + 1], 0xb8, 'TOS copied');
          assert.equal(get16(frame, g.l3Off + 4), c.df ? 0 : 0x1234, 'IP id');
          assert.equal(get16(frame, g.l3Off + 10), ipv4HeaderChecksum(frame, g.l3Off, 20));
        } else {
          assert.equal(((frame[g.l3Off]! & 0x0f) << 4) | (frame[g.l3Off + 1]! >> 4), 0xb8, 'traffic class copied');
          assert.equal(frame[g.l3Off + 1]! & 0x0f, 0, 'flow label 0');
          assert.equal(get16(frame, g.l3Off + 2), 0, 'flow label 0');
        }
        // The inner packet still parses as the original did.
        const innerFrame = Buffer.concat([input.subarray(0, f.l3Off), frame.subarray(g.l4Off)]);
        assertChecksumsFull(innerFrame, mustParse(innerFrame), c.v.l4 === 'udp0');
        frames.push(Buffer.from(frame));
        ok.push(c);
      });
      const rows = decode(frames);
      rows.forEach((r, i) => {
        const c = ok[i]!;
        const fam = c.v.family;
        const a = ADDR[fam];
        assert.equal(r['eth.dst'], RS_MAC);
        assert.equal(r['vlan.id'], c.v.vlan !== undefined ? String(c.v.vlan) : '', c.description);
        if (fam === 4) {
          assert.deepEqual(list(r['ip.src']).map(canon), [a.dip, a.cip], c.description);
          assert.deepEqual(list(r['ip.dst']).map(canon), [a.rip, a.vip], c.description);
          assert.deepEqual(list(r['ip.proto']), ['4', c.v.l4 === 'tcp' ? '6' : '17'], c.description);
          assert.deepEqual(list(r['ip.ttl']), ['57', '57'], c.description);
          assert.deepEqual(list(r['ip.dsfield']), ['0xb8', '0xb8'], c.description);
          const df = c.df ? '1' : '0';
          assert.deepEqual(list(r['ip.flags.df']).map((x) => (x === 'True' ? '1' : x === 'False' ? '0' : x)), [df, df], c.description);
        } else {
          assert.deepEqual(list(r['ipv6.src']).map(canon), [a.dip, a.cip], c.description);
          assert.deepEqual(list(r['ipv6.dst']).map(canon), [a.rip, a.vip], c.description);
          assert.equal(list(r['ipv6.nxt'])[0], '41', c.description);
          assert.deepEqual(list(r['ipv6.hlim']), ['57', '57'], c.description);
          assert.deepEqual(list(r['ipv6.tclass']), ['0x000000b8', '0x000000b8'], c.description);
          assert.deepEqual(list(r['ipv6.flow']), ['0x000000', '0x012345'], c.description);
        }
        assert.equal(r[`${l4F(c.v.l4)}.dstport` as keyof Row], String(VPORT), c.description);
      });
      assertTsharkChecksums(frames, ok.map((c) => c.description), 1);
      tsharkChecksumStatus(frames).forEach((rec, i) => {
        const c = ok[i]!;
        const good = Object.values(rec).flat().filter((s) => s === '1').length;
        // IPv4: outer + inner header + transport; IPv6: transport only.
        assert.equal(good, verifiable(c.v) + (c.v.family === 4 ? 1 : 0), `${c.description}: ${JSON.stringify(rec)}`);
      });
    });

    it('an ICMP error with DF that does not fit is still tunnelled (IPv4), as ip_vs_iph_icmp', () => {
      const inner = build(VARIANTS[0]!, clientToVip(VARIANTS[0]!), true);
      const input = new PacketBuilder()
        .eth({ src: ROUTER_MAC, dst: SHARED_MAC })
        .ipv4({ src: ADDR[4].router, dst: ADDR[4].vip, df: true })
        .icmp({ type: 3, code: 4, mtu: 1400, inner })
        .build();
      const f = mustParse(input);
      const out = new Uint8Array(2048);
      const mtu = f.ipTotalLen + 19;
      assert.equal(encapTunnel(input, f, out, 0, words(ADDR[4].dip), words(ADDR[4].rip), mtu, parseMac(RS_MAC), parseMac(SHARED_MAC)), input.length + 20);
    });

    it('encapsulates in place into headroom (out === buf)', () => {
      for (const v of [VARIANTS[3]!, VARIANTS[8]!]) {
        const input = build(v, clientToVip(v));
        const outer = v.family === 4 ? 20 : 40;
        const buf = Buffer.alloc(outer + input.length + 16, 0xee);
        input.copy(buf, outer);
        const f = mustParse(buf, outer, input.length);
        const fam = v.family;
        const n = encapTunnel(buf, f, buf, 0, words(ADDR[fam].dip), words(ADDR[fam].rip), 1500, parseMac(RS_MAC), parseMac(SHARED_MAC));
        const separate = Buffer.alloc(n);
        const f2 = mustParse(input);
        encapTunnel(input, f2, separate, 0, words(ADDR[fam].dip), words(ADDR[fam].rip), 1500, parseMac(RS_MAC), parseMac(SHARED_MAC));
        assert.deepEqual(buf.subarray(0, n), separate, v.description);
      }
    });

    it('writes at a non-zero output offset', () => {
      const v = VARIANTS[0]!;
      const input = build(v, clientToVip(v));
      const f = mustParse(input);
      const out = Buffer.alloc(4096, 0xee);
      const n = encapTunnel(input, f, out, 1000, words(ADDR[4].dip), words(ADDR[4].rip), 1500, parseMac(RS_MAC), parseMac(SHARED_MAC));
      assert.equal(out[999], 0xee);
      assert.equal(out[1000 + n], 0xee);
      const g = parseL3(out, 1000, n);
      assert.equal(g.protocol, 4);
      assert.equal(g.frameLen, n);
    });
  });

  // ------------------------------------------------------------ too big

  describe('buildTooBig', () => {
    interface TbCase {
      description: string;
      v: Variant;
      payloadLen: number;
      /** The quote is shorter than the packet. */
      cut: boolean;
    }
    const TB: TbCase[] = [
      { description: 'IPv4 TCP 1480, quote cut to 548', v: VARIANTS[0]!, payloadLen: 1440, cut: true },
      { description: 'IPv4 UDP small, quoted whole', v: VARIANTS[1]!, payloadLen: 100, cut: false },
      { description: 'IPv4 UDP large, quote cut', v: VARIANTS[1]!, payloadLen: 1400, cut: true },
      { description: 'IPv4 UDP zero checksum, large', v: VARIANTS[2]!, payloadLen: 1400, cut: true },
      { description: 'IPv4 TCP VLAN with options', v: VARIANTS[5]!, payloadLen: 1400, cut: true },
      { description: 'IPv4 TCP 520, quoted whole (548 limit)', v: VARIANTS[0]!, payloadLen: 508, cut: false },
      { description: 'IPv6 TCP 1500, quote cut to 1232', v: VARIANTS[6]!, payloadLen: 1440, cut: true },
      { description: 'IPv6 UDP VLAN small, quoted whole', v: VARIANTS[8]!, payloadLen: 100, cut: false },
      { description: 'IPv6 UDP 1232, quoted whole', v: VARIANTS[7]!, payloadLen: 1232 - 48, cut: false },
    ];
    const MTU = 1500;

    it('builds frag-needed / packet-too-big with the tunnel MTU and a quote as Linux', () => {
      const frames: Buffer[] = [];
      for (const c of TB) {
        const input = build(c.v, clientToVip(c.v, 'y'.repeat(c.payloadLen)));
        const f = mustParse(input);
        const fam = c.v.family;
        assert.ok(mayAnswerWithIcmp(f));
        const out = Buffer.alloc(2048, 0xee);
        const n = buildTooBig(input, f, out, 0, MTU, words(ADDR[fam].vip), parseMac(ROUTER_MAC), parseMac(SHARED_MAC));
        const tags = f.l3Off - 14;
        const maxIp = fam === 4 ? 576 : 1280;
        const quote = Math.min(f.ipTotalLen, maxIp - (fam === 4 ? 28 : 48));
        assert.equal(quote < f.ipTotalLen, c.cut, `${c.description}: fixture`);
        assert.equal(n, 14 + tags + (fam === 4 ? 28 : 48) + quote, c.description);
        const frame = out.subarray(0, n);
        const g = mustParse(frame);
        assert.ok(g.hasInner, c.description);
        assert.ok(g.ipTotalLen <= maxIp);
        assert.equal(IpAddress.fromWords(fam, g.saddr).text, ADDR[fam].vip);
        assert.equal(IpAddress.fromWords(fam, g.daddr).text, ADDR[fam].cip);
        assert.equal(g.ttl, 64);
        assert.equal(g.vlanId, c.v.vlan ?? -1);
        assert.deepEqual(frame.subarray(g.l4Off + 8), input.subarray(f.l3Off, f.l3Off + quote), 'quote');
        assertChecksumsFull(frame, g);
        if (fam === 4) {
          assert.deepEqual([g.icmpType, g.icmpCode, get16(frame, g.l4Off + 6)], [3, 4, MTU - 20]);
          assert.equal(frame[g.l3Off + 1], (0x28 & 0x1e) | 0xc0, 'TOS as icmp_send');
          assert.equal(g.dontFragment, false);
        } else {
          assert.deepEqual([g.icmpType, g.icmpCode, get16(frame, g.l4Off + 4), get16(frame, g.l4Off + 6)], [2, 0, 0, MTU - 40]);
        }
        frames.push(Buffer.from(frame));
      }
      const rows = decode(frames);
      rows.forEach((r, i) => {
        const c = TB[i]!;
        const fam = c.v.family;
        const a = ADDR[fam];
        assert.equal(r['eth.dst'], ROUTER_MAC);
        assert.equal(r['eth.src'], SHARED_MAC);
        assert.equal(r['vlan.id'], c.v.vlan !== undefined ? String(c.v.vlan) : '', c.description);
        if (fam === 4) {
          assert.deepEqual(list(r['ip.src']).map(canon), [a.vip, a.cip], c.description);
          assert.deepEqual(list(r['ip.dst']).map(canon), [a.cip, a.vip], c.description);
          assert.deepEqual([r['icmp.type'], r['icmp.code'], r['icmp.mtu']], ['3', '4', String(MTU - 20)], c.description);
          assert.ok(Number(list(r['ip.len'])[0]) <= 576);
        } else {
          assert.deepEqual(list(r['ipv6.src']).map(canon), [a.vip, a.cip], c.description);
          assert.deepEqual(list(r['ipv6.dst']).map(canon), [a.cip, a.vip], c.description);
          assert.deepEqual([r['icmpv6.type'], r['icmpv6.code'], r['icmpv6.mtu']], ['2', '0', String(MTU - 40)], c.description);
          assert.ok(Number(list(r['ipv6.plen'])[0]) + 40 <= 1280);
        }
      });
      // What tshark must report, per case. The embedded transport checksum of
      // a quote cut short cannot verify (it covers the whole segment), yet
      // tshark 4.0 checks a TCP checksum over whatever bytes are quoted and
      // calls it bad; a UDP one it leaves unverified (its length field says
      // the datagram is longer). Linux's own icmp_send output gets the same
      // verdict: a frag-needed from a kernel router in a network namespace on
      // this machine decodes as ip 1,1 / tcp 0 / icmp 1. The quote is asserted
      // byte-identical to the original packet above instead.
      tsharkChecksumStatus(frames).forEach((rec, i) => {
        const c = TB[i]!;
        const want: Record<string, string[]> = {};
        if (c.v.family === 4) {
          want['ip.checksum.status'] = ['1', '1'];
          want['icmp.checksum.status'] = ['1'];
        } else {
          want['icmpv6.checksum.status'] = ['1'];
        }
        const inner = c.v.l4 === 'tcp' ? 'tcp.checksum.status' : 'udp.checksum.status';
        want[inner] = [c.v.l4 === 'udp0' ? '3' : !c.cut ? '1' : c.v.l4 === 'tcp' ? '0' : '2'];
        assert.deepEqual(rec, want, c.description);
      });
    });

    it('sends nothing about an ICMP error or a non-first fragment, as icmp_send', () => {
      const inner = build(VARIANTS[0]!, clientToVip(VARIANTS[0]!), true);
      const err4 = new PacketBuilder().eth().ipv4({ src: ADDR[4].router, dst: ADDR[4].vip, df: true }).icmp({ type: 11, inner }).build();
      const inner6 = build(VARIANTS[6]!, clientToVip(VARIANTS[6]!), true);
      const err6 = new PacketBuilder().eth().ipv6({ src: ADDR[6].router, dst: ADDR[6].vip }).icmp({ type: 3, inner: inner6 }).build();
      const frag = new PacketBuilder()
        .eth()
        .ipv4({ src: ADDR[4].cip, dst: ADDR[4].vip, df: false, fragOffset: 1480 })
        .raw(Proto.TCP, new Uint8Array(1400))
        .build();
      const echo = new PacketBuilder().eth().ipv4({ src: ADDR[4].cip, dst: ADDR[4].vip, df: true }).icmp({ type: 8, id: 1, seq: 1, payload: 'z'.repeat(1600) }).build();
      const out = new Uint8Array(2048);
      for (const [name, fr, fam, want] of [['ICMPv4 time exceeded', err4, 4, 0], ['ICMPv6 time exceeded', err6, 6, 0], ['non-first fragment', frag, 4, 0], ['ICMP echo', echo, 4, 590]] as const) {
        const f = mustParse(fr);
        const n = buildTooBig(fr, f, out, 0, 1500, words(ADDR[fam].vip), parseMac(ROUTER_MAC), parseMac(SHARED_MAC));
        assert.equal(n, want, name);
      }
    });
  });

  // ------------------------------------------------------------ properties

  describe('properties', () => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 }))
      .map((p) => p.join('.'));
    const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
      .map((g) => IpAddress.parse([0x2001, ...g.slice(1)].map((x) => x.toString(16)).join(':')).text);
    const port = fc.integer({ min: 0, max: 65535 });
    const payload = fc.uint8Array({ minLength: 0, maxLength: 300 });
    const scenario = fc.record({
      family: fc.constantFrom<Fam>(4, 6),
      l4: fc.constantFrom<L4Kind>('tcp', 'udp', 'udp0'),
      vlan: fc.option(fc.integer({ min: 1, max: 4094 }), { nil: undefined }),
      options: fc.boolean(),
      a4: fc.tuple(v4, v4, v4),
      a6: fc.tuple(v6, v6, v6),
      ports: fc.tuple(port, port, port),
      payload,
    });

    type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;
    function buildScenario(s: Scenario) {
      const fam = s.family;
      const l4: L4Kind = fam === 6 && s.l4 === 'udp0' ? 'udp' : s.l4;
      const [cip, vip, rip] = fam === 4 ? s.a4 : s.a6;
      const [cport, vport, rport] = s.ports;
      const b = new PacketBuilder().eth({ src: ROUTER_MAC, dst: SHARED_MAC, ...(s.vlan !== undefined ? { vlan: s.vlan } : {}) });
      if (fam === 4) b.ipv4({ src: cip, dst: vip, ...(s.options ? { options: ROUTER_ALERT } : {}) });
      else b.ipv6({ src: cip, dst: vip });
      if (l4 === 'tcp') b.tcp({ sport: cport, dport: vport, flags: 'A', payload: s.payload });
      else b.udp({ sport: cport, dport: vport, payload: s.payload, zeroChecksum: l4 === 'udp0' });
      return { input: b.build(), fam, l4, vip, rip, vport, rport };
    }

    it('incremental checksums equal a full recomputation; NAT out of the reply and NAT back restore the bytes', () => {
      fc.assert(
        fc.property(scenario, (s) => {
          const { input, l4, vip, rip, vport, rport } = buildScenario(s);
          const frame = Buffer.from(input);
          const f = mustParse(frame);
          rewriteNatIn(frame, f, words(rip), rport, parseMac(RS_MAC), parseMac(SHARED_MAC));
          const g = mustParse(frame);
          assertChecksumsFull(frame, g, l4 === 'udp0');
          assert.equal(g.dport, rport);

          // The real server answers: the mirror image of what it received.
          const reply = Buffer.from(frame);
          mirror(reply, g);
          const r = mustParse(reply);
          rewriteNatOut(reply, r, words(vip), vport, parseMac(ROUTER_MAC), parseMac(SHARED_MAC));
          const r2 = mustParse(reply);
          assertChecksumsFull(reply, r2, l4 === 'udp0');
          mirror(reply, r2);
          assert.deepEqual(withoutMacs(reply), withoutMacs(input), 'reply NAT is the inverse of NAT in');

          // NAT in with the original destination restores the packet too.
          rewriteNatIn(frame, g, words(vip), vport, parseMac(ROUTER_MAC), parseMac(SHARED_MAC));
          assert.deepEqual(withoutMacs(frame), withoutMacs(input), 'NAT in is reversible');
        }),
        { numRuns: 500 },
      );
    });

    it('ICMP error NAT: checksums equal a full recomputation', () => {
      fc.assert(
        fc.property(scenario, fc.boolean(), fc.integer({ min: 0, max: 40 }), (s, out, cutExtra) => {
          const { input, fam, vip, rip, vport, rport } = buildScenario(s);
          const f0 = mustParse(input);
          // Quote the client packet after DNAT (out) or a VIP -> client packet (in).
          const quoted = Buffer.from(input);
          if (out) rewriteNatIn(quoted, f0, words(rip), rport, parseMac(RS_MAC), parseMac(SHARED_MAC));
          else mirror(quoted, f0);
          const ip = quoted.subarray(f0.l3Off, f0.l3Off + Math.min(f0.ipTotalLen, f0.ipHeaderLen + 8 + cutExtra * 8));
          const a = ADDR[fam];
          const b = new PacketBuilder().eth({ src: RS_MAC, dst: SHARED_MAC });
          const outerSrc = out ? rip : a.router;
          const outerDst = out ? IpAddress.fromWords(fam, f0.saddr).text : vip;
          if (fam === 4) b.ipv4({ src: outerSrc, dst: outerDst }).icmp({ type: 3, code: 1, inner: ip });
          else b.ipv6({ src: outerSrc, dst: outerDst }).icmp({ type: 1, code: 3, inner: ip });
          const frame = b.build();
          const f = mustParse(frame);
          if (out) rewriteNatIcmpOut(frame, f, words(vip), vport, parseMac(ROUTER_MAC), parseMac(SHARED_MAC));
          else rewriteNatIcmpIn(frame, f, words(rip), rport, parseMac(RS_MAC), parseMac(SHARED_MAC));
          const g = mustParse(frame);
          assertChecksumsFull(frame, g);
          assert.equal(out ? g.innerDport : g.innerSport, out ? vport : rport);
        }),
        { numRuns: 300 },
      );
    });
  });
});
