/**
 * Packet fixtures shared by the parser, builder and fuzz specs: valid frames
 * of every kind the parser accepts, built with PacketBuilder, each with the
 * ParsedFrame fields it must produce. Test-only.
 */
import { PacketBuilder, arpFrame, fixIpv4Checksum } from '../../helpers/packet-builder.js';
import { Drop, TcpFlag } from '../../../core/packet/index.js';

/** Expected parse result: the Drop, and any ParsedFrame fields (addresses as text). */
export interface Expected {
  drop: Drop;
  [field: string]: number | boolean | string;
}
export interface Fixture {
  description: string;
  input: Uint8Array;
  expected: Expected;
}

export const C4 = '198.51.100.7';
export const V4 = '192.0.2.10';
export const R4 = '10.1.0.5';
export const C6 = '2001:db8:c::7';
export const V6 = '2001:db8:f::10';
export const R6 = 'fe80::1';

export const v4 = { src: C4, dst: V4 };
export const v6 = { src: C6, dst: V6 };

export function tcp4(flags: string | number = 'S', extra: Record<string, unknown> = {}): PacketBuilder {
  return new PacketBuilder().eth().ipv4({ ...v4, ...extra }).tcp({ sport: 40000, dport: 80, flags });
}

/** The first `n` bytes of an IP packet, as quoted in an ICMP error. */
function head(b: Uint8Array, n: number): Uint8Array {
  return b.subarray(0, Math.min(n, b.length));
}

// Inner packets (as sent by the real server / client, quoted back by a router).
export const innerTcp4 = new PacketBuilder()
  .ipv4({ src: V4, dst: C4, ttl: 1 })
  .tcp({ sport: 80, dport: 40000, flags: 'SA', payload: 'x'.repeat(200) })
  .buildIp();
export const innerUdp4 = new PacketBuilder()
  .ipv4({ src: C4, dst: V4, ttl: 1 })
  .udp({ sport: 5353, dport: 53, payload: 'query' })
  .buildIp();
export const innerUdp4Opts = new PacketBuilder()
  .ipv4({ src: C4, dst: V4, options: Uint8Array.of(148, 4, 0, 0) })
  .udp({ sport: 5353, dport: 53, payload: 'q' })
  .buildIp();
export const innerEcho4 = new PacketBuilder().ipv4({ src: C4, dst: V4 }).icmp({ type: 8, id: 77, seq: 1 }).buildIp();
export const innerTcp6 = new PacketBuilder()
  .ipv6({ src: V6, dst: C6 })
  .tcp({ sport: 443, dport: 50000, flags: 'PA', payload: 'y'.repeat(1400) })
  .buildIp();
export const innerUdp6 = new PacketBuilder().ipv6({ src: C6, dst: V6 }).udp({ sport: 6000, dport: 53, payload: 'q' }).buildIp();
export const innerUdp6Ext = new PacketBuilder()
  .ipv6({ src: C6, dst: V6, extensions: [{ type: 60 }, { type: 44, moreFragments: true }] })
  .udp({ sport: 6001, dport: 53, payload: 'q'.repeat(40) })
  .buildIp();

const TCP_OPTS = Uint8Array.of(2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0); // MSS, NOP, WS, SACKOK, TS

export function validFixtures(): Fixture[] {
  const f: Fixture[] = [];
  const add = (description: string, input: Uint8Array, expected: Omit<Expected, 'drop'> & { drop?: Drop }): void => {
    f.push({ description, input, expected: { drop: Drop.OK, ...expected } });
  };

  // ---- IPv4 TCP ----
  add('IPv4 TCP SYN, untagged', tcp4('S').build(), {
    etherType: 0x0800, vlanId: -1, l3Off: 14, family: 4, ipHeaderLen: 20, ipTotalLen: 40, protocol: 6,
    l4Off: 34, l4Len: 20, ttl: 64, dontFragment: false, isFragment: false, firstFragment: true,
    saddr: C4, daddr: V4, sport: 40000, dport: 80, tcpFlags: TcpFlag.SYN, tcpHeaderLen: 20, hasInner: false,
  });
  add(
    'IPv4 TCP SYN with options (MSS, WS, SACK-permitted, timestamps), DF, TTL 3',
    new PacketBuilder().eth().ipv4({ ...v4, df: true, ttl: 3 }).tcp({ sport: 1, dport: 65535, flags: 'S', options: TCP_OPTS }).build(),
    { tcpHeaderLen: 40, l4Len: 40, ipTotalLen: 60, dontFragment: true, ttl: 3, sport: 1, dport: 65535 },
  );
  add(
    'IPv4 TCP PSH+ACK with payload',
    new PacketBuilder().eth().ipv4(v4).tcp({ sport: 40000, dport: 80, flags: 'PA', payload: 'GET / HTTP/1.0\r\n\r\n' }).build(),
    { tcpFlags: TcpFlag.PSH | TcpFlag.ACK, l4Len: 38, ipTotalLen: 58 },
  );
  for (const flags of ['S', 'SA', 'A', 'PA', 'FA', 'FPA', 'R', 'RA', 'UA', 'SEC', 'SAE', 'AC']) {
    add(`IPv4 TCP legal flags "${flags}"`, tcp4(flags).build(), { tcpFlags: flagsOf(flags) });
  }

  // ---- VLAN ----
  add(
    'IPv4 UDP in an 802.1Q tag',
    new PacketBuilder().eth({ vlan: 100 }).ipv4(v4).udp({ sport: 5353, dport: 53, payload: 'abc' }).build(),
    { vlanId: 100, etherType: 0x0800, l3Off: 18, l4Off: 38, protocol: 17, sport: 5353, dport: 53, l4Len: 11 },
  );
  add(
    'IPv6 TCP in QinQ (802.1ad outer 200, 802.1Q inner 100): vlanId is the outer tag',
    new PacketBuilder().eth({ vlan: 100, outerVlan: 200 }).ipv6(v6).tcp({ sport: 1000, dport: 443, flags: 'S' }).build(),
    { vlanId: 200, etherType: 0x86dd, l3Off: 22, l4Off: 62, family: 6, protocol: 6, sport: 1000, dport: 443 },
  );
  {
    const b = new PacketBuilder().eth({ vlan: 7, outerVlan: 4095 }).ipv4(v4).udp({ sport: 1, dport: 2 }).build();
    b[12] = 0x81; // outer TPID 0x8100 instead of 0x88a8: two stacked 802.1Q tags
    b[13] = 0x00;
    add('IPv4 UDP under two stacked 802.1Q tags', b, { vlanId: 4095, l3Off: 22, sport: 1, dport: 2 });
  }

  // ---- IPv4 options ----
  add(
    'IPv4 options: NOP, record route (3 slots), router alert',
    new PacketBuilder().eth().ipv4({ ...v4, options: Uint8Array.of(1, 7, 15, 4, ...new Array(12).fill(0), 148, 4, 0, 0) })
      .tcp({ sport: 40000, dport: 80, flags: 'A' }).build(),
    { ipHeaderLen: 40, l4Off: 54, ipTotalLen: 60, tcpFlags: TcpFlag.ACK },
  );
  add(
    'IPv4 options: timestamp, then EOL and non-option bytes after it',
    new PacketBuilder().eth().ipv4({ ...v4, options: Uint8Array.of(68, 12, 5, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0xff, 0xff, 0xff) })
      .udp({ sport: 9, dport: 9 }).build(),
    { ipHeaderLen: 36, l4Off: 50 },
  );
  add(
    'IPv4 maximum header (IHL 15, 40 bytes of NOP options)',
    new PacketBuilder().eth().ipv4({ ...v4, options: new Uint8Array(40).fill(1) }).udp({ sport: 9, dport: 9 }).build(),
    { ipHeaderLen: 60, l4Off: 74 },
  );

  // ---- IPv4 fragments ----
  add(
    'IPv4 first fragment (MF, offset 0) of TCP: transport parsed',
    new PacketBuilder().eth().ipv4({ ...v4, moreFragments: true, id: 9 }).tcp({ sport: 40000, dport: 80, flags: 'PA', payload: 'z'.repeat(64) }).build(),
    { isFragment: true, firstFragment: true, sport: 40000, dport: 80, tcpFlags: TcpFlag.PSH | TcpFlag.ACK },
  );
  add(
    'IPv4 first fragment of UDP: UDP length covers the whole datagram',
    (() => {
      const b = new PacketBuilder().eth().ipv4({ ...v4, moreFragments: true }).udp({ sport: 7, dport: 8, payload: 'p'.repeat(32) }).build();
      b[38] = 0x05; // UDP length 1480 > fragment payload
      b[39] = 0xc8;
      return b;
    })(),
    { isFragment: true, firstFragment: true, sport: 7, dport: 8, l4Len: 40 },
  );
  add(
    'IPv4 later fragment (offset 1480) of TCP: OK, ports 0, engine decides',
    new PacketBuilder().eth().ipv4({ ...v4, fragOffset: 1480, id: 9 }).raw(6, new Uint8Array(100).fill(0xff)).build(),
    { isFragment: true, firstFragment: false, protocol: 6, sport: 0, dport: 0, tcpFlags: 0, tcpHeaderLen: 0, l4Len: 100 },
  );
  add(
    'IPv4 middle fragment (MF, offset 8) of UDP with 3 bytes',
    new PacketBuilder().eth().ipv4({ ...v4, fragOffset: 8, moreFragments: true }).raw(17, Uint8Array.of(1, 2, 3)).build(),
    { isFragment: true, firstFragment: false, protocol: 17, sport: 0, dport: 0, l4Len: 3 },
  );

  // ---- IPv4 UDP ----
  add('IPv4 UDP, zero checksum', new PacketBuilder().eth().ipv4(v4).udp({ sport: 68, dport: 67, zeroChecksum: true }).build(), {
    protocol: 17, sport: 68, dport: 67, l4Len: 8,
  });
  {
    const b = new PacketBuilder().eth().ipv4(v4).udp({ sport: 1, dport: 2, payload: 'abcd' }).build();
    b[39] = 10; // UDP length 10 < IP payload 12: accepted (kernel trims)
    add('IPv4 UDP length shorter than the IP payload', b, { l4Len: 12 });
  }
  {
    const b = new PacketBuilder().eth().ipv4(v4).udp({ sport: 1, dport: 2, payload: 'ab' }).build();
    const padded = new Uint8Array(60);
    padded.set(b);
    padded.fill(0xa5, b.length);
    add('IPv4 UDP in a frame with Ethernet padding to 60 bytes', padded, { ipTotalLen: 30, l4Len: 10, sport: 1 });
  }

  // ---- ICMPv4 ----
  add('ICMP echo request', new PacketBuilder().eth().ipv4(v4).icmp({ type: 8, id: 0x1234, seq: 1, payload: 'ping' }).build(), {
    protocol: 1, icmpType: 8, icmpCode: 0, icmpId: 0x1234, sport: 0, dport: 0, hasInner: false,
  });
  add('ICMP echo reply', new PacketBuilder().eth().ipv4({ src: V4, dst: C4 }).icmp({ type: 0, id: 0xbeef, seq: 9 }).build(), {
    icmpType: 0, icmpId: 0xbeef,
  });
  add('ICMP timestamp request (not echo, not error)', new PacketBuilder().eth().ipv4(v4).icmp({ type: 13, id: 5, payload: new Uint8Array(12) }).build(), {
    icmpType: 13, icmpId: 0, hasInner: false,
  });
  const inner4 = {
    hasInner: true, innerL3Off: 42, innerFamily: 4, innerIpHeaderLen: 20, innerL4Off: 62,
  };
  add(
    'ICMP fragmentation needed (3/4) quoting a TCP SYN+ACK (IP header + 8 bytes)',
    new PacketBuilder().eth().ipv4({ src: R4, dst: V4 }).icmp({ type: 3, code: 4, mtu: 1400, inner: head(innerTcp4, 28) }).build(),
    { ...inner4, icmpType: 3, icmpCode: 4, innerProtocol: 6, innerSaddr: V4, innerDaddr: C4, innerSport: 80, innerDport: 40000, saddr: R4 },
  );
  add(
    'ICMP port unreachable (3/3) quoting a UDP datagram, full inner',
    new PacketBuilder().eth().ipv4({ src: V4, dst: C4 }).icmp({ type: 3, code: 3, inner: innerUdp4 }).build(),
    { ...inner4, icmpType: 3, icmpCode: 3, innerProtocol: 17, innerSaddr: C4, innerDaddr: V4, innerSport: 5353, innerDport: 53 },
  );
  add(
    'ICMP source quench (4) quoting TCP with 28 bytes of transport',
    new PacketBuilder().eth().ipv4({ src: R4, dst: V4 }).icmp({ type: 4, inner: head(innerTcp4, 48) }).build(),
    { ...inner4, icmpType: 4, innerProtocol: 6, innerSport: 80 },
  );
  add(
    'ICMP redirect (5) quoting UDP',
    new PacketBuilder().eth().ipv4({ src: R4, dst: C4 }).icmp({ type: 5, code: 1, inner: head(innerUdp4, 28) }).build(),
    { ...inner4, icmpType: 5, icmpCode: 1, innerProtocol: 17, innerDport: 53 },
  );
  add(
    'ICMP time exceeded (11) quoting UDP with IP options (inner IHL 6)',
    new PacketBuilder().eth().ipv4({ src: R4, dst: C4 }).icmp({ type: 11, inner: head(innerUdp4Opts, 32) }).build(),
    { ...inner4, icmpType: 11, innerIpHeaderLen: 24, innerL4Off: 66, innerProtocol: 17, innerSport: 5353, innerDport: 53 },
  );
  add(
    'ICMP parameter problem (12) quoting TCP, in a VLAN',
    new PacketBuilder().eth({ vlan: 3 }).ipv4({ src: R4, dst: V4 }).icmp({ type: 12, inner: head(innerTcp4, 28) }).build(),
    { ...inner4, innerL3Off: 46, innerL4Off: 66, icmpType: 12, innerProtocol: 6, innerSport: 80, innerDport: 40000 },
  );
  add(
    'ICMP time exceeded quoting an ICMP echo: inner ports 0',
    new PacketBuilder().eth().ipv4({ src: R4, dst: C4 }).icmp({ type: 11, inner: innerEcho4 }).build(),
    { ...inner4, icmpType: 11, innerProtocol: 1, innerSport: 0, innerDport: 0 },
  );

  // ---- IPv6 ----
  add('IPv6 TCP SYN', new PacketBuilder().eth().ipv6({ ...v6, hopLimit: 255 }).tcp({ sport: 50000, dport: 443, flags: 'S' }).build(), {
    etherType: 0x86dd, family: 6, l3Off: 14, ipHeaderLen: 40, ipTotalLen: 60, protocol: 6, l4Off: 54, l4Len: 20, ttl: 255,
    dontFragment: true, isFragment: false, firstFragment: true, saddr: C6, daddr: V6, sport: 50000, dport: 443, tcpFlags: TcpFlag.SYN,
  });
  add('IPv6 UDP', new PacketBuilder().eth().ipv6({ src: R6, dst: 'ff02::1:2' }).udp({ sport: 546, dport: 547, payload: 'solicit' }).build(), {
    family: 6, protocol: 17, saddr: R6, daddr: 'ff02::1:2', sport: 546, dport: 547, l4Len: 15,
  });
  add('ICMPv6 echo request', new PacketBuilder().eth().ipv6(v6).icmp({ type: 128, id: 42, seq: 1, payload: 'ping' }).build(), {
    protocol: 58, icmpType: 128, icmpId: 42, hasInner: false,
  });
  add('ICMPv6 echo reply', new PacketBuilder().eth().ipv6({ src: V6, dst: C6 }).icmp({ type: 129, id: 43 }).build(), {
    icmpType: 129, icmpId: 43,
  });
  add('ICMPv6 neighbour solicitation (not echo, not error)', new PacketBuilder().eth().ipv6({ src: R6, dst: 'ff02::1:ff00:10' }).icmp({ type: 135, payload: new Uint8Array(16) }).build(), {
    icmpType: 135, icmpId: 0, hasInner: false,
  });
  const extCases: Array<[string, number, number]> = [
    ['hop-by-hop options', 0, 8],
    ['routing (type 0, segments left 0)', 43, 8],
    ['destination options (16 bytes)', 60, 16],
    ['authentication header', 51, 24],
    ['atomic fragment (offset 0, M clear)', 44, 8],
  ];
  for (const [name, type, size] of extCases) {
    const data = type === 60 ? new Uint8Array(14) : undefined;
    add(
      `IPv6 TCP after a ${name} header`,
      new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type, ...(data ? { data } : {}) }] }).tcp({ sport: 50000, dport: 80, flags: 'A' }).build(),
      { ipHeaderLen: 40 + size, l4Off: 54 + size, protocol: 6, sport: 50000, dport: 80, isFragment: false, firstFragment: true },
    );
  }
  add(
    'IPv6 UDP after hop-by-hop, destination options, routing, AH, destination options',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 0 }, { type: 60 }, { type: 43 }, { type: 51 }, { type: 60 }] })
      .udp({ sport: 1, dport: 2 }).build(),
    { ipHeaderLen: 40 + 8 + 8 + 8 + 24 + 8, protocol: 17, sport: 1, dport: 2 },
  );
  add(
    'IPv6 eight extension headers (the limit)',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 0 }, ...new Array(7).fill({ type: 60 })] }).udp({ sport: 1, dport: 2 }).build(),
    { ipHeaderLen: 40 + 64, protocol: 17, sport: 1 },
  );
  add(
    'IPv6 first fragment of UDP (offset 0, M set)',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 44, moreFragments: true }] }).udp({ sport: 3, dport: 4, payload: 'f'.repeat(24) }).build(),
    { isFragment: true, firstFragment: true, ipHeaderLen: 48, protocol: 17, sport: 3, dport: 4 },
  );
  add(
    'IPv6 later fragment of TCP (offset 1232): OK, ports 0',
    new PacketBuilder().eth().ipv6({ ...v6, extensions: [{ type: 0 }, { type: 44, fragOffset: 1232 }] }).raw(6, new Uint8Array(40).fill(0xff)).build(),
    { isFragment: true, firstFragment: false, ipHeaderLen: 56, protocol: 6, sport: 0, dport: 0, tcpFlags: 0, l4Len: 40 },
  );
  const inner6 = { hasInner: true, innerL3Off: 62, innerFamily: 6, innerIpHeaderLen: 40, innerL4Off: 102 };
  add(
    'ICMPv6 destination unreachable (1/4) quoting UDP',
    new PacketBuilder().eth().ipv6({ src: V6, dst: C6 }).icmp({ type: 1, code: 4, inner: innerUdp6 }).build(),
    { ...inner6, icmpType: 1, icmpCode: 4, innerProtocol: 17, innerSaddr: C6, innerDaddr: V6, innerSport: 6000, innerDport: 53 },
  );
  add(
    'ICMPv6 packet too big (2) quoting TCP (first 1232 bytes)',
    new PacketBuilder().eth().ipv6({ src: R6, dst: V6 }).icmp({ type: 2, mtu: 1280, inner: head(innerTcp6, 1232) }).build(),
    { ...inner6, icmpType: 2, innerProtocol: 6, innerSaddr: V6, innerDaddr: C6, innerSport: 443, innerDport: 50000 },
  );
  add(
    'ICMPv6 time exceeded (3) quoting TCP, IP header + 8 bytes',
    new PacketBuilder().eth().ipv6({ src: R6, dst: V6 }).icmp({ type: 3, inner: head(innerTcp6, 48) }).build(),
    { ...inner6, icmpType: 3, innerProtocol: 6, innerSport: 443 },
  );
  add(
    'ICMPv6 parameter problem (4) quoting UDP behind destination options and a first-fragment header',
    new PacketBuilder().eth().ipv6({ src: R6, dst: C6 }).icmp({ type: 4, code: 1, inner: innerUdp6Ext }).build(),
    { ...inner6, icmpType: 4, icmpCode: 1, innerIpHeaderLen: 56, innerL4Off: 118, innerProtocol: 17, innerSport: 6001, innerDport: 53 },
  );
  add(
    'ICMPv6 error behind a hop-by-hop header, in a VLAN',
    new PacketBuilder().eth({ vlan: 9 }).ipv6({ src: R6, dst: V6, extensions: [{ type: 0 }] }).icmp({ type: 1, inner: innerUdp6 }).build(),
    { ...inner6, innerL3Off: 74, innerL4Off: 114, ipHeaderLen: 48, icmpType: 1, innerSport: 6000 },
  );

  // ---- ARP ----
  add(
    'ARP request',
    arpFrame({ op: 1, senderMac: '02:00:00:00:00:09', senderIp: '10.1.0.9', targetIp: '10.1.0.1' }),
    { etherType: 0x0806, l3Off: 14, arpOp: 1, arpShaOff: 22, arpThaOff: 32, arpSpa: 0x0a010009, arpTpa: 0x0a010001, protocol: 0 },
  );
  add(
    'ARP reply in a VLAN',
    (() => {
      const a = arpFrame({ op: 2, senderMac: '02:00:00:00:00:01', senderIp: '10.1.0.1', targetMac: '02:00:00:00:00:09', targetIp: '10.1.0.9' });
      const b = new Uint8Array(a.length + 4);
      b.set(a.subarray(0, 12));
      b.set([0x81, 0x00, 0x00, 0x05], 12);
      b.set(a.subarray(12), 16);
      return b;
    })(),
    { etherType: 0x0806, vlanId: 5, l3Off: 18, arpOp: 2, arpShaOff: 26, arpThaOff: 36, arpSpa: 0x0a010001, arpTpa: 0x0a010009 },
  );
  return f;
}

export function flagsOf(s: string): number {
  const m: Record<string, number> = { F: 1, S: 2, R: 4, P: 8, A: 16, U: 32, E: 64, C: 128 };
  let v = 0;
  for (const c of s) v |= m[c]!;
  return v;
}

/** Set a 16-bit field of the IPv4 header and fix the header checksum. */
export function setIpv4Field16(frame: Uint8Array, l3Off: number, at: number, v: number): Uint8Array {
  frame[l3Off + at] = v >> 8;
  frame[l3Off + at + 1] = v & 0xff;
  fixIpv4Checksum(frame, l3Off);
  return frame;
}
