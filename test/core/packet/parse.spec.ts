/**
 * parseFrame: table-driven fixtures { description, input, expected } for every
 * protocol, option and Drop reason the parser knows, each run at offset 0 and
 * inside a larger batch buffer; systematic truncation; stale-field reset; and
 * agreement with tshark's decode of the same frames.
 */
import { strict as assert } from 'node:assert';
import { formatAddr } from '../../../core/addr.js';
import type { Family } from '../../../core/constants.js';
import { Drop, DROP_REASON_NAMES, ParsedFrame, parseFrame, tcpFlagsIllegal, TcpFlag } from '../../../core/packet/index.js';
import { PacketBuilder, fixIpv4Checksum } from '../../helpers/packet-builder.js';
import { NO_REASSEMBLY, tsharkFields } from '../../helpers/tshark.js';
import {
  C4, C6, V4, V6, R4, R6, v4, v6, tcp4, flagsOf, setIpv4Field16, validFixtures,
  innerTcp4, innerTcp6, innerUdp4, innerUdp6, type Expected, type Fixture,
} from './fixtures.js';

const OFFSET_FIELDS = new Set(['frameOff', 'l3Off', 'l4Off', 'innerL3Off', 'innerL4Off', 'arpShaOff', 'arpThaOff']);
const ADDR_FIELDS: Record<string, (p: ParsedFrame) => [Family, Uint32Array]> = {
  saddr: (p) => [p.family, p.saddr],
  daddr: (p) => [p.family, p.daddr],
  innerSaddr: (p) => [p.innerFamily, p.innerSaddr],
  innerDaddr: (p) => [p.innerFamily, p.innerDaddr],
};

const dropName = (d: number): string => `${DROP_REASON_NAMES[d] ?? '?'} (${d})`;

/** Parse `input` placed at `off` in a buffer with garbage around it. */
function parseAt(input: Uint8Array, off: number, out = new ParsedFrame()): { drop: Drop; out: ParsedFrame } {
  const buf = new Uint8Array(off + input.length + 13).fill(0xee);
  buf.set(input, off);
  return { drop: parseFrame(buf, off, input.length, out), out };
}

function check(fx: { description: string; input: Uint8Array; expected: Expected }, off: number): void {
  const { drop, out } = parseAt(fx.input, off);
  assert.equal(dropName(drop), dropName(fx.expected.drop), `${fx.description}: drop`);
  assert.equal(out.frameOff, off);
  assert.equal(out.frameLen, fx.input.length);
  for (const [k, v] of Object.entries(fx.expected)) {
    if (k === 'drop') continue;
    const addr = ADDR_FIELDS[k];
    if (addr) {
      const [fam, w] = addr(out);
      assert.equal(formatAddr(fam, w, 0), v, `${fx.description}: ${k}`);
      continue;
    }
    assert.ok(k in out, `${fx.description}: no field ${k}`);
    const want = OFFSET_FIELDS.has(k) ? (v as number) + off : v;
    assert.equal((out as unknown as Record<string, unknown>)[k], want, `${fx.description}: ${k}`);
  }
}

function runTable(fixtures: Fixture[]): void {
  for (const fx of fixtures) {
    it(fx.description, () => {
      check(fx, 0);
      check(fx, 37);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed frames. Each starts from a correct frame and breaks one thing.

function mutate(b: Uint8Array, edits: Array<[number, number]>, fixCsumAt?: number): Uint8Array {
  const c = new Uint8Array(b);
  for (const [i, v] of edits) c[i] = v;
  if (fixCsumAt !== undefined) fixIpv4Checksum(c, fixCsumAt);
  return c;
}
function cut(b: Uint8Array, n: number): Uint8Array {
  return new Uint8Array(b.subarray(0, n));
}
/** A frame with bytes `data` under IP protocol `proto` (to make short transports with consistent IP lengths). */
function raw4(proto: number, data: Uint8Array): Uint8Array {
  return new PacketBuilder().eth().ipv4(v4).raw(proto, data).build();
}
function raw6(proto: number, data: Uint8Array): Uint8Array {
  return new PacketBuilder().eth().ipv6(v6).raw(proto, data).build();
}
/** A TCP header with the given data offset word and flags byte, in 20 bytes + extra. */
function tcpHdr(doffWords: number, flags: number, extra = 0): Uint8Array {
  const h = new Uint8Array(20 + extra);
  h[1] = 1;
  h[3] = 80;
  h[12] = doffWords << 4;
  h[13] = flags;
  return h;
}
function udpHdr(ulen: number, payload = 0): Uint8Array {
  const h = new Uint8Array(8 + payload);
  h[1] = 1;
  h[3] = 53;
  h[4] = ulen >> 8;
  h[5] = ulen & 0xff;
  return h;
}
function icmp4Err(type: number, inner: Uint8Array): Uint8Array {
  return new PacketBuilder().eth().ipv4({ src: R4, dst: V4 }).icmp({ type, inner }).build();
}
function icmp6Err(type: number, inner: Uint8Array): Uint8Array {
  return new PacketBuilder().eth().ipv6({ src: R6, dst: V6 }).icmp({ type, inner }).build();
}

function dropFixtures(): Fixture[] {
  const f: Fixture[] = [];
  const add = (description: string, input: Uint8Array, drop: Drop, more: Omit<Expected, 'drop'> = {}): void => {
    f.push({ description, input, expected: { drop, ...more } });
  };
  const syn = tcp4('S').build();
  const udp = new PacketBuilder().eth().ipv4(v4).udp({ sport: 1, dport: 2 }).build(); // 42 bytes
  const syn6 = new PacketBuilder().eth().ipv6(v6).tcp({ sport: 1, dport: 2, flags: 'S' }).build();
  const qinq = new PacketBuilder().eth({ vlan: 1, outerVlan: 2 }).ipv4(v4).udp({ sport: 1, dport: 2 }).build();

  // ---- Ethernet ----
  add('empty frame', new Uint8Array(0), Drop.TRUNCATED_ETHERNET);
  add('13 bytes (EtherType cut)', cut(syn, 13), Drop.TRUNCATED_ETHERNET);
  add('802.1Q tag cut after the TPID', cut(new PacketBuilder().eth({ vlan: 5 }).ipv4(v4).udp({ sport: 1, dport: 2 }).build(), 16), Drop.TRUNCATED_ETHERNET);
  add('QinQ: inner tag cut', cut(qinq, 20), Drop.TRUNCATED_ETHERNET, { vlanId: 2 });
  add('three VLAN tags', (() => {
    const b = new Uint8Array(qinq.length + 4);
    b.set(qinq.subarray(0, 12));
    b.set([0x88, 0xa8, 0x00, 0x03], 12);
    b.set(qinq.subarray(12), 16);
    return b;
  })(), Drop.UNSUPPORTED_ETHERTYPE, { vlanId: 3, etherType: 0x8100 });
  add('EtherType LLDP (0x88cc)', mutate(syn, [[12, 0x88], [13, 0xcc]]), Drop.UNSUPPORTED_ETHERTYPE, { etherType: 0x88cc });
  add('802.3 length field instead of an EtherType', mutate(syn, [[12, 0x00], [13, 0x2e]]), Drop.UNSUPPORTED_ETHERTYPE);

  // ---- IPv4 header ----
  add('IPv4: 19 bytes of IP header', cut(syn, 33), Drop.TRUNCATED_IP, { etherType: 0x0800 });
  add('IPv4 EtherType but version 6', mutate(syn, [[14, 0x65]], 14), Drop.TRUNCATED_IP);
  add('IPv4 IHL 4', mutate(syn, [[14, 0x44]], 14), Drop.BAD_IP_HEADER_LENGTH);
  add('IPv4 IHL 0', mutate(syn, [[14, 0x40]]), Drop.BAD_IP_HEADER_LENGTH);
  add('IPv4 IHL 15 longer than the frame', mutate(udp, [[14, 0x4f]]), Drop.BAD_IP_HEADER_LENGTH);
  add('IPv4 header checksum wrong', mutate(syn, [[24, syn[24]! ^ 0x01]]), Drop.BAD_IP_CHECKSUM);
  add('IPv4 header checksum right but TTL changed', mutate(syn, [[22, 63]]), Drop.BAD_IP_CHECKSUM);
  add('IPv4 total length beyond the frame', setIpv4Field16(new Uint8Array(syn), 14, 2, 41), Drop.BAD_IP_TOTAL_LENGTH);
  add('IPv4 total length 19 (< IHL)', setIpv4Field16(new Uint8Array(syn), 14, 2, 19), Drop.BAD_IP_TOTAL_LENGTH);
  add('IPv4 total length 0', setIpv4Field16(new Uint8Array(syn), 14, 2, 0), Drop.BAD_IP_TOTAL_LENGTH);
  const withOpts = (o: number[]): Uint8Array =>
    new PacketBuilder().eth().ipv4({ ...v4, options: Uint8Array.of(...o) }).udp({ sport: 1, dport: 2 }).build();
  add('IPv4 option length 0', withOpts([7, 0, 4, 0]), Drop.BAD_IP_OPTIONS);
  add('IPv4 option length 1', withOpts([1, 68, 1, 0]), Drop.BAD_IP_OPTIONS);
  add('IPv4 option length past the header', withOpts([148, 6, 0, 0]), Drop.BAD_IP_OPTIONS);
  add('IPv4 option type in the last byte, no length byte', withOpts([1, 1, 1, 7]), Drop.BAD_IP_OPTIONS);
  add('IPv4 second option overruns', withOpts([148, 4, 0, 0, 7, 7, 4, 0]), Drop.BAD_IP_OPTIONS);

  // ---- IPv6 header and extensions ----
  add('IPv6: 39 bytes of IP header', cut(syn6, 53), Drop.TRUNCATED_IP);
  add('IPv6 EtherType but version 4', mutate(syn6, [[14, 0x45]]), Drop.TRUNCATED_IP);
  add('IPv6 payload length beyond the frame', mutate(syn6, [[19, 21]]), Drop.BAD_IP_TOTAL_LENGTH);
  add('IPv6 extension length past the payload', (() => {
    const b = new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 60 }] }).udp({ sport: 1, dport: 2 }).build();
    b[55] = 2; // 24 bytes of destination options, 16 available
    return b;
  })(), Drop.BAD_IPV6_EXTENSION);
  add('IPv6 AH length past the payload', (() => {
    const b = new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 51 }] }).udp({ sport: 1, dport: 2 }).build();
    b[55] = 200;
    return b;
  })(), Drop.BAD_IPV6_EXTENSION);
  add('IPv6 extension header cut after its first byte', raw6(60, Uint8Array.of(6)), Drop.BAD_IPV6_EXTENSION);
  add('IPv6 fragment header cut to 4 bytes', raw6(44, Uint8Array.of(6, 0, 0, 0)), Drop.BAD_IPV6_EXTENSION);
  add(
    'IPv6 nine extension headers',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: new Array(9).fill({ type: 60 }) }).udp({ sport: 1, dport: 2 }).build(),
    Drop.BAD_IPV6_EXTENSION,
  );
  add(
    'IPv6 hop-by-hop not first',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 60 }, { type: 0 }] }).udp({ sport: 1, dport: 2 }).build(),
    Drop.BAD_IPV6_EXTENSION,
  );

  // ---- protocols we do not balance (L3 filled) ----
  add('IPv4 GRE (47)', raw4(47, new Uint8Array(8)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 47, saddr: C4, daddr: V4, l4Off: 34, l4Len: 8 });
  add('IPv4 SCTP (132)', raw4(132, new Uint8Array(12)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 132, family: 4 });
  add('IPv4 later fragment of ESP', new PacketBuilder().eth().ipv4({ ...v4, fragOffset: 8 }).raw(50, new Uint8Array(8)).build(), Drop.UNSUPPORTED_PROTOCOL, {
    protocol: 50, isFragment: true, firstFragment: false,
  });
  add('IPv4 carrying ICMPv6 (58)', raw4(58, new Uint8Array(8)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 58 });
  add('IPv6 ESP (50) after a destination options header', (() => {
    return new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 60 }] }).raw(50, new Uint8Array(16)).build();
  })(), Drop.UNSUPPORTED_PROTOCOL, { protocol: 50, family: 6, ipHeaderLen: 48, l4Off: 62, saddr: C6, daddr: V6 });
  add('IPv6 no next header (59)', raw6(59, new Uint8Array(0)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 59, l4Len: 0 });
  add('IPv6 carrying ICMPv4 (1)', raw6(1, new Uint8Array(8)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 1 });
  add('IPv6 OSPF (89)', raw6(89, new Uint8Array(8)), Drop.UNSUPPORTED_PROTOCOL, { protocol: 89 });

  // ---- transport truncated (IP lengths consistent) ----
  for (const n of [0, 8, 19]) add(`IPv4 TCP header of ${n} bytes`, raw4(6, new Uint8Array(n)), Drop.TRUNCATED_L4, { protocol: 6, l4Len: n });
  add('IPv6 TCP header of 12 bytes', raw6(6, new Uint8Array(12)), Drop.TRUNCATED_L4);
  for (const n of [0, 7]) add(`IPv4 UDP header of ${n} bytes`, raw4(17, new Uint8Array(n)), Drop.TRUNCATED_L4);
  add('IPv6 UDP header of 4 bytes', raw6(17, new Uint8Array(4)), Drop.TRUNCATED_L4);
  add('ICMP header of 7 bytes', raw4(1, Uint8Array.of(8, 0, 0, 0, 0, 1, 0)), Drop.TRUNCATED_L4);
  add('ICMPv6 header of 4 bytes', raw6(58, Uint8Array.of(128, 0, 0, 0)), Drop.TRUNCATED_L4);
  add('IPv4 first fragment with a 10-byte TCP header', new PacketBuilder().eth().ipv4({ ...v4, moreFragments: true }).raw(6, new Uint8Array(10)).build(), Drop.TRUNCATED_L4, {
    isFragment: true, firstFragment: true,
  });

  // ---- TCP data offset ----
  add('TCP data offset 0', raw4(6, tcpHdr(0, TcpFlag.SYN)), Drop.BAD_TCP_HEADER_LENGTH, { sport: 1, dport: 80 });
  add('TCP data offset 4', raw4(6, tcpHdr(4, TcpFlag.SYN)), Drop.BAD_TCP_HEADER_LENGTH);
  add('TCP data offset 6 with a 20-byte segment', raw4(6, tcpHdr(6, TcpFlag.SYN)), Drop.BAD_TCP_HEADER_LENGTH);
  add('TCP data offset 15 with a 56-byte segment', raw4(6, tcpHdr(15, TcpFlag.ACK, 36)), Drop.BAD_TCP_HEADER_LENGTH);
  add('IPv6 TCP data offset 8 with a 28-byte segment', raw6(6, tcpHdr(8, TcpFlag.ACK, 8)), Drop.BAD_TCP_HEADER_LENGTH);

  // ---- TCP flags: every illegal combination named in the parser ----
  const illegal: Array<[string, string]> = [
    ['', 'no flags (null scan)'],
    ['E', 'ECE only (no core flags)'],
    ['C', 'CWR only'],
    ['EC', 'ECE+CWR only'],
    ['SF', 'SYN+FIN'],
    ['SFA', 'SYN+FIN+ACK'],
    ['SR', 'SYN+RST'],
    ['SRA', 'SYN+RST+ACK'],
    ['SFRPAU', 'every flag'],
    ['F', 'FIN without ACK'],
    ['FR', 'FIN+RST without ACK'],
    ['P', 'PSH without ACK'],
    ['RP', 'RST+PSH without ACK'],
    ['U', 'URG without ACK'],
    ['SU', 'SYN+URG without ACK'],
    ['FPU', 'FIN+PSH+URG without ACK (Xmas)'],
  ];
  for (const [flags, name] of illegal) {
    add(`TCP flags ${name}`, tcp4(flags).build(), Drop.BAD_TCP_FLAGS, { tcpFlags: flagsOf(flags), sport: 40000, dport: 80 });
    add(`IPv6 TCP flags ${name}`, new PacketBuilder().eth().ipv6(v6).tcp({ sport: 1, dport: 2, flags }).build(), Drop.BAD_TCP_FLAGS);
  }

  // ---- UDP length ----
  add('UDP length 7', raw4(17, udpHdr(7, 4)), Drop.BAD_UDP_LENGTH, { sport: 1, dport: 53 });
  add('UDP length 0 (jumbogram form) in IPv4', raw4(17, udpHdr(0, 4)), Drop.BAD_UDP_LENGTH);
  add('UDP length past the IP payload', raw4(17, udpHdr(13, 4)), Drop.BAD_UDP_LENGTH);
  add('IPv6 UDP length past the IP payload', raw6(17, udpHdr(100)), Drop.BAD_UDP_LENGTH);
  add('IPv4 first fragment with UDP length 4', new PacketBuilder().eth().ipv4({ ...v4, moreFragments: true }).raw(17, udpHdr(4, 8)).build(), Drop.BAD_UDP_LENGTH);

  // ---- ICMP errors with a bad inner packet ----
  add('ICMP 3 with no inner packet', icmp4Err(3, new Uint8Array(0)), Drop.BAD_ICMP_INNER, { icmpType: 3, hasInner: false });
  add('ICMP 11 with 19 bytes of inner IP header', icmp4Err(11, innerTcp4.subarray(0, 19)), Drop.BAD_ICMP_INNER);
  add('ICMP 3 with inner IP header but no transport', icmp4Err(3, innerTcp4.subarray(0, 20)), Drop.BAD_ICMP_INNER);
  add('ICMP 3 with 7 bytes of inner transport', icmp4Err(3, innerTcp4.subarray(0, 27)), Drop.BAD_ICMP_INNER);
  add('ICMP 12 with inner version 6', icmp4Err(12, mutate(innerTcp4.subarray(0, 28), [[0, 0x65]])), Drop.BAD_ICMP_INNER);
  add('ICMP 4 with inner IHL 4', icmp4Err(4, mutate(innerTcp4.subarray(0, 28), [[0, 0x44]])), Drop.BAD_ICMP_INNER);
  add('ICMP 5 with inner IHL 8 and only 28 bytes', icmp4Err(5, mutate(innerTcp4.subarray(0, 28), [[0, 0x48]])), Drop.BAD_ICMP_INNER);
  add('ICMP 3 quoting a non-first fragment', icmp4Err(3, mutate(innerUdp4, [[7, 0x10]])), Drop.BAD_ICMP_INNER);
  add('ICMPv6 1 with no inner packet', icmp6Err(1, new Uint8Array(0)), Drop.BAD_ICMP_INNER, { icmpType: 1 });
  add('ICMPv6 2 with 39 bytes of inner header', icmp6Err(2, innerTcp6.subarray(0, 39)), Drop.BAD_ICMP_INNER);
  add('ICMPv6 3 with inner header but 7 bytes of transport', icmp6Err(3, innerTcp6.subarray(0, 47)), Drop.BAD_ICMP_INNER);
  add('ICMPv6 4 quoting an IPv4 packet', icmp6Err(4, innerUdp4), Drop.BAD_ICMP_INNER);
  add('ICMPv6 1 quoting a truncated extension chain', icmp6Err(1, new PacketBuilder().ipv6(v6).raw(60, Uint8Array.of(17, 1, 0, 0, 0, 0, 0, 0, 0, 0)).buildIp()), Drop.BAD_ICMP_INNER);
  add('ICMPv6 1 quoting a non-first fragment', icmp6Err(1, new PacketBuilder().ipv6(v6).raw(44, Uint8Array.of(17, 0, 0, 0x08, 0, 0, 0, 1, 0, 1, 0, 2, 0, 8, 0, 0)).buildIp()), Drop.BAD_ICMP_INNER);
  add('ICMP 3 quoting an IPv6 packet in IPv4', icmp4Err(3, innerUdp6), Drop.BAD_ICMP_INNER);

  // ---- ARP ----
  const arp = (edits: Array<[number, number]>, n = 42): Uint8Array =>
    cut(mutate(new Uint8Array([...new Uint8Array(12).fill(0xff), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, ...new Array(20).fill(1)]), edits), n);
  add('ARP, 27 bytes', arp([], 41), Drop.BAD_ARP);
  add('ARP hardware type 6 (IEEE 802)', arp([[15, 6]]), Drop.BAD_ARP);
  add('ARP protocol type IPv6', arp([[16, 0x86], [17, 0xdd]]), Drop.BAD_ARP);
  add('ARP hardware length 8', arp([[18, 8]]), Drop.BAD_ARP);
  add('ARP protocol length 16', arp([[19, 16]]), Drop.BAD_ARP);
  add('ARP opcode 3 (RARP request)', arp([[21, 3]]), Drop.BAD_ARP);
  add('ARP opcode 0', arp([[21, 0]]), Drop.BAD_ARP);
  add('ARP well formed (control)', arp([]), Drop.OK, { arpOp: 1, arpSpa: 0x01010101 });
  return f;
}

describe('core/packet/parse parseFrame', () => {
  describe('valid frames', () => runTable(validFixtures()));
  describe('drops', () => runTable(dropFixtures()));

  it('returns every Drop reason the parser documents', () => {
    const seen = new Set(dropFixtures().map((f) => f.expected.drop));
    for (const d of [
      Drop.TRUNCATED_ETHERNET, Drop.UNSUPPORTED_ETHERTYPE, Drop.TRUNCATED_IP, Drop.BAD_IP_HEADER_LENGTH,
      Drop.BAD_IP_TOTAL_LENGTH, Drop.BAD_IP_CHECKSUM, Drop.BAD_IP_OPTIONS, Drop.BAD_IPV6_EXTENSION,
      Drop.TRUNCATED_L4, Drop.BAD_TCP_HEADER_LENGTH, Drop.BAD_TCP_FLAGS, Drop.BAD_UDP_LENGTH,
      Drop.BAD_ICMP_INNER, Drop.BAD_ARP, Drop.UNSUPPORTED_PROTOCOL,
    ]) {
      assert.ok(seen.has(d), `no fixture for ${dropName(d)}`);
    }
  });

  it('drops every strict prefix of every valid unpadded frame, by where the cut falls', () => {
    for (const fx of validFixtures()) {
      const full = parseAt(fx.input, 0).out;
      // ARP has its own test; a frame with Ethernet padding stays valid when only padding is cut.
      if (full.etherType === 0x0806 || full.l3Off + full.ipTotalLen < fx.input.length) continue;
      const l3 = full.l3Off;
      for (let n = 0; n < fx.input.length; n++) {
        const { drop } = parseAt(fx.input.subarray(0, n), 3);
        let want: Drop;
        if (n < l3) want = Drop.TRUNCATED_ETHERNET;
        else if (n < l3 + (full.family === 4 ? 20 : 40)) want = Drop.TRUNCATED_IP;
        else if (full.family === 4 && n < l3 + full.ipHeaderLen) want = Drop.BAD_IP_HEADER_LENGTH;
        else want = Drop.BAD_IP_TOTAL_LENGTH;
        assert.equal(dropName(drop), dropName(want), `${fx.description}: cut at ${n}`);
      }
    }
  });

  it('accepts an ARP frame with trailing padding and drops every prefix shorter than 42 bytes', () => {
    const a = validFixtures().find((f) => f.description === 'ARP request')!.input;
    const padded = new Uint8Array(60);
    padded.set(a);
    assert.equal(parseAt(padded, 0).drop, Drop.OK);
    for (let n = 0; n < a.length; n++) {
      assert.equal(parseAt(a.subarray(0, n), 0).drop, n < 14 ? Drop.TRUNCATED_ETHERNET : Drop.BAD_ARP, `cut at ${n}`);
    }
  });

  it('leaves no field stale from the previous frame', () => {
    const all = [...validFixtures(), ...dropFixtures()];
    const reused = new ParsedFrame();
    // Interleave rich frames (ICMP errors, ARP, IPv6 chains) with everything else.
    for (let i = 0; i < all.length; i++) {
      for (const prev of [all[(i * 7 + 3) % all.length]!, all[(i * 13 + 1) % all.length]!]) {
        parseAt(prev.input, 5, reused);
        const a = parseAt(all[i]!.input, 5, reused);
        const b = parseAt(all[i]!.input, 5, new ParsedFrame());
        assert.equal(a.drop, b.drop, all[i]!.description);
        assert.deepEqual(snapshot(a.out), snapshot(b.out), `${all[i]!.description} after ${prev.description}`);
      }
    }
  });

  it('rejects a frame range outside the buffer without reading it', () => {
    const f = tcp4('S').build();
    const out = new ParsedFrame();
    assert.equal(parseFrame(f, 10, f.length, out), Drop.TRUNCATED_ETHERNET);
    assert.equal(parseFrame(f, -1, 20, out), Drop.TRUNCATED_ETHERNET);
    assert.equal(parseFrame(f, 0, -5, out), Drop.TRUNCATED_ETHERNET);
  });
});

describe('core/packet/parse tcpFlagsIllegal', () => {
  it('matches the documented list for all 256 flag bytes', () => {
    const { FIN, SYN, RST, PSH, ACK, URG } = TcpFlag;
    let legal = 0;
    for (let f = 0; f < 256; f++) {
      const want =
        (f & (FIN | SYN | RST | PSH | ACK | URG)) === 0 ||
        ((f & SYN) !== 0 && (f & FIN) !== 0) ||
        ((f & SYN) !== 0 && (f & RST) !== 0) ||
        ((f & ACK) === 0 && ((f & FIN) !== 0 || (f & PSH) !== 0 || (f & URG) !== 0));
      assert.equal(tcpFlagsIllegal(f), want, `flags 0x${f.toString(16)}`);
      if (!want) legal++;
    }
    // Legal core combinations: SYN, RST, SYN+ACK, and ACK with any of FIN/PSH/URG/RST (16),
    // SYN+ACK with PSH/URG (4 incl. SYN+ACK), RST+ACK ones counted above: times 4 for ECE/CWR.
    assert.ok(legal > 0);
  });
});

describe('core/packet/parse agrees with tshark', () => {
  it('on addresses, ports, protocol, flags, VLAN and ICMP fields of every valid fixture', function () {
    this.timeout(60000);
    const fx = validFixtures();
    const fields = [
      'ieee8021ad.id', 'vlan.id', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.flags', 'tcp.hdr_len',
      'udp.srcport', 'udp.dstport', 'icmp.type', 'icmp.code', 'icmp.ident', 'icmpv6.type', 'icmpv6.code',
      'icmpv6.echo.identifier', 'arp.opcode', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4', 'ip.proto', 'ipv6.nxt',
    ];
    const rows = tsharkFields(fx.map((f) => f.input), fields, NO_REASSEMBLY);
    const col = (r: string[], name: string): string[] => (r[fields.indexOf(name)] ?? '').split(',').filter((x) => x !== '');
    const ipText = (n: number): string => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    fx.forEach((f, i) => {
      const r = rows[i]!;
      const p = parseAt(f.input, 0).out;
      const d = f.description;
      if (p.vlanId >= 0) assert.equal([...col(r, 'ieee8021ad.id'), ...col(r, 'vlan.id')][0], String(p.vlanId), `${d}: vlan`);
      if (p.etherType === 0x0806) {
        assert.deepEqual([col(r, 'arp.opcode')[0], col(r, 'arp.src.proto_ipv4')[0], col(r, 'arp.dst.proto_ipv4')[0]],
          [String(p.arpOp), ipText(p.arpSpa), ipText(p.arpTpa)], d);
        return;
      }
      const fam = p.family;
      const src = col(r, fam === 4 ? 'ip.src' : 'ipv6.src');
      const dst = col(r, fam === 4 ? 'ip.dst' : 'ipv6.dst');
      assert.equal(src[0], formatAddr(fam, p.saddr, 0), `${d}: saddr`);
      assert.equal(dst[0], formatAddr(fam, p.daddr, 0), `${d}: daddr`);
      if (p.hasInner) {
        assert.equal(src[1], formatAddr(p.innerFamily, p.innerSaddr, 0), `${d}: inner saddr`);
        assert.equal(dst[1], formatAddr(p.innerFamily, p.innerDaddr, 0), `${d}: inner daddr`);
      }
      if (!p.firstFragment) return; // tshark does not decode the transport of a later fragment either
      if (p.protocol === 6) {
        assert.equal(col(r, 'tcp.srcport')[0], String(p.sport), `${d}: sport`);
        assert.equal(col(r, 'tcp.dstport')[0], String(p.dport), `${d}: dport`);
        assert.equal(Number(col(r, 'tcp.flags')[0]), p.tcpFlags, `${d}: flags`);
        assert.equal(col(r, 'tcp.hdr_len')[0], String(p.tcpHeaderLen), `${d}: hdr len`);
      } else if (p.protocol === 17) {
        assert.equal(col(r, 'udp.srcport')[0], String(p.sport), `${d}: sport`);
        assert.equal(col(r, 'udp.dstport')[0], String(p.dport), `${d}: dport`);
      } else {
        const t = fam === 4 ? 'icmp' : 'icmpv6';
        assert.equal(col(r, `${t}.type`)[0], String(p.icmpType), `${d}: icmp type`);
        assert.equal(col(r, `${t}.code`)[0], String(p.icmpCode), `${d}: icmp code`);
        if (p.icmpId !== 0) assert.equal(Number(col(r, fam === 4 ? 'icmp.ident' : 'icmpv6.echo.identifier')[0]), p.icmpId, `${d}: id`);
        if (p.hasInner && (p.innerProtocol === 6 || p.innerProtocol === 17)) {
          const pre = p.innerProtocol === 6 ? 'tcp' : 'udp';
          assert.equal(col(r, `${pre}.srcport`)[0], String(p.innerSport), `${d}: inner sport`);
          assert.equal(col(r, `${pre}.dstport`)[0], String(p.innerDport), `${d}: inner dport`);
        }
      }
    });
  });
});

/** Every own field of a ParsedFrame, typed arrays as plain arrays. */
function snapshot(p: ParsedFrame): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) o[k] = v instanceof Uint32Array ? Array.from(v) : v;
  return o;
}
