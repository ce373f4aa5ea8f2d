/**
 * Test-only fluent builder of Ethernet frames and IP packets with correct
 * lengths and checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6), in the manner
 * of Katran's PacketBuilder. Owns nothing but the layers it is given; it
 * allocates freely and is never used on the data path. Malformed frames are
 * made by building a correct one and mutating bytes in the test.
 */
import { IpAddress } from '../../core/addr.js';
import { pseudoHeaderSum, transportChecksum, ipv4HeaderChecksum, put16 } from '../../core/packet/checksum.js';
import { EtherType, TcpFlag } from '../../core/packet/frame.js';
import { Proto } from '../../core/constants.js';

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

export interface EthOpts {
  src?: string;
  dst?: string;
  /** 802.1Q (TPID 0x8100) tag. With outerVlan it is the inner (customer) tag. */
  vlan?: number;
  /** Addition to the brief's API: an outer 802.1ad (TPID 0x88a8) service tag, for QinQ. */
  outerVlan?: number;
}
export interface Ipv4Opts {
  src: string;
  dst: string;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  /** Raw option bytes; padded with zeros (EOL) to a multiple of 4. */
  options?: Uint8Array;
  /** Fragment offset in bytes, a multiple of 8. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** Override the protocol field (default: the transport layer's). */
  protocol?: number;
}
export interface Ipv6Ext {
  /** 0 hop-by-hop, 43 routing, 44 fragment, 60 destination options, 51 AH. */
  type: number;
  /**
   * Bytes after the first two (next header, length) of the extension; padded with
   * zeros (Pad1 options / reserved) to the header's unit. Ignored for fragment.
   */
  data?: Uint8Array;
  fragOffset?: number;
  moreFragments?: boolean;
}
export interface Ipv6Opts {
  src: string;
  dst: string;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  extensions?: Ipv6Ext[];
}
export interface TcpOpts {
  sport: number;
  dport: number;
  /** A flags byte, or letters: F S R P A U E C (e.g. 'S', 'SA', 'PA'). */
  flags: number | string;
  seq?: number;
  ack?: number;
  window?: number;
  /** Raw option bytes; padded with zeros (EOL) to a multiple of 4. */
  options?: Uint8Array;
  payload?: Uint8Array | string;
}
export interface UdpOpts {
  sport: number;
  dport: number;
  payload?: Uint8Array | string;
  /** Send checksum 0 ("none"; IPv4 only is legal). */
  zeroChecksum?: boolean;
}
export interface IcmpOpts {
  type: number;
  code?: number;
  id?: number;
  seq?: number;
  /** Next-hop MTU for ICMP 3/4 (frag needed) and ICMPv6 2 (packet too big). */
  mtu?: number;
  /** An IP packet (or its head), carried by an error message. */
  inner?: Uint8Array;
  payload?: Uint8Array | string;
}

type L3 = { v: 4; o: Ipv4Opts } | { v: 6; o: Ipv6Opts };
type L4 =
  | { k: 'tcp'; o: TcpOpts }
  | { k: 'udp'; o: UdpOpts }
  | { k: 'icmp'; o: IcmpOpts }
  | { k: 'raw'; protocol: number; data: Uint8Array };

const FLAG_LETTERS: Record<string, number> = {
  F: TcpFlag.FIN,
  S: TcpFlag.SYN,
  R: TcpFlag.RST,
  P: TcpFlag.PSH,
  A: TcpFlag.ACK,
  U: TcpFlag.URG,
  E: TcpFlag.ECE,
  C: TcpFlag.CWR,
};

/** TCP flag letters ('SA') to the flags byte. */
export function tcpFlags(f: number | string): number {
  if (typeof f === 'number') return f & 0xff;
  let v = 0;
  for (const ch of f.toUpperCase()) {
    const bit = FLAG_LETTERS[ch];
    if (bit === undefined) throw new Error(`unknown TCP flag letter "${ch}" in "${f}"`);
    v |= bit;
  }
  return v;
}

function bytes(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

function padTo(b: Uint8Array, unit: number, min = 0): Uint8Array {
  const len = Math.max(min, Math.ceil(b.length / unit) * unit);
  const out = new Uint8Array(len);
  out.set(b);
  return out;
}

function addrBytes(s: string, family: 4 | 6): Uint8Array {
  const a = IpAddress.parse(s);
  if (a.family !== family) throw new Error(`address ${s} is not IPv${family}`);
  return a.toBytes();
}

export { parseMac, formatMac } from '../../core/mac.js';
import { parseMac } from '../../core/mac.js';

function ethHeader(o: EthOpts, etherType: number): Uint8Array {
  const tags = (o.outerVlan !== undefined ? 1 : 0) + (o.vlan !== undefined ? 1 : 0);
  const h = new Uint8Array(14 + 4 * tags);
  h.set(parseMac(o.dst ?? DEFAULT_DST_MAC), 0);
  h.set(parseMac(o.src ?? DEFAULT_SRC_MAC), 6);
  let p = 12;
  if (o.outerVlan !== undefined) {
    put16(h, p, EtherType.QINQ);
    put16(h, p + 2, o.outerVlan & 0xfff);
    p += 4;
  }
  if (o.vlan !== undefined) {
    put16(h, p, EtherType.VLAN);
    put16(h, p + 2, o.vlan & 0xfff);
    p += 4;
  }
  put16(h, p, etherType);
  return h;
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

export class PacketBuilder {
  private ethOpts: EthOpts = {};
  private l3: L3 | undefined;
  private l4: L4 | undefined;

  eth(o: EthOpts = {}): this {
    this.ethOpts = o;
    return this;
  }
  ipv4(o: Ipv4Opts): this {
    this.l3 = { v: 4, o };
    return this;
  }
  ipv6(o: Ipv6Opts): this {
    this.l3 = { v: 6, o };
    return this;
  }
  tcp(o: TcpOpts): this {
    this.l4 = { k: 'tcp', o };
    return this;
  }
  udp(o: UdpOpts): this {
    this.l4 = { k: 'udp', o };
    return this;
  }
  /** ICMPv4 under ipv4(), ICMPv6 under ipv6(). */
  icmp(o: IcmpOpts): this {
    this.l4 = { k: 'icmp', o };
    return this;
  }
  /** Any payload under protocol number `protocol`, no checksum computed. */
  raw(protocol: number, data: Uint8Array): this {
    this.l4 = { k: 'raw', protocol, data };
    return this;
  }

  /** The whole Ethernet frame. */
  build(): Buffer {
    const ip = this.buildIp();
    return concat([ethHeader(this.ethOpts, this.l3!.v === 4 ? EtherType.IPV4 : EtherType.IPV6), ip]);
  }

  /** The IP packet only. */
  buildIp(): Buffer {
    if (!this.l3) throw new Error('PacketBuilder: call ipv4() or ipv6() before build');
    if (!this.l4) throw new Error('PacketBuilder: call tcp(), udp(), icmp() or raw() before build');
    return this.l3.v === 4 ? this.buildV4(this.l3.o, this.l4) : this.buildV6(this.l3.o, this.l4);
  }

  private buildV4(o: Ipv4Opts, l4: L4): Buffer {
    const src = addrBytes(o.src, 4);
    const dst = addrBytes(o.dst, 4);
    const opts = padTo(o.options ?? new Uint8Array(0), 4);
    const hlen = 20 + opts.length;
    const proto = l4Protocol(l4, 4);
    const seg = buildL4(l4, 4, src, dst);
    const h = new Uint8Array(hlen);
    h[0] = 0x40 | (hlen >> 2);
    h[1] = o.tos ?? 0;
    put16(h, 2, hlen + seg.length);
    put16(h, 4, o.id ?? 1);
    const fo = o.fragOffset ?? 0;
    if (fo % 8 !== 0) throw new Error(`fragOffset ${fo} is not a multiple of 8`);
    put16(h, 6, (o.df ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | (fo >> 3));
    h[8] = o.ttl ?? 64;
    h[9] = o.protocol ?? proto;
    h.set(src, 12);
    h.set(dst, 16);
    h.set(opts, 20);
    put16(h, 10, ipv4HeaderChecksum(h, 0, hlen));
    return concat([h, seg]);
  }

  private buildV6(o: Ipv6Opts, l4: L4): Buffer {
    const src = addrBytes(o.src, 6);
    const dst = addrBytes(o.dst, 6);
    const proto = l4Protocol(l4, 6);
    const seg = buildL4(l4, 6, src, dst);
    const exts = o.extensions ?? [];
    const extBufs: Uint8Array[] = [];
    for (let i = 0; i < exts.length; i++) {
      const e = exts[i]!;
      const next = i + 1 < exts.length ? exts[i + 1]!.type : proto;
      extBufs.push(buildExt(e, next));
    }
    const extLen = extBufs.reduce((a, b) => a + b.length, 0);
    const h = new Uint8Array(40);
    const tc = o.trafficClass ?? 0;
    const fl = o.flowLabel ?? 0;
    h[0] = 0x60 | (tc >> 4);
    h[1] = ((tc & 0xf) << 4) | ((fl >> 16) & 0xf);
    put16(h, 2, fl & 0xffff);
    put16(h, 4, extLen + seg.length);
    h[6] = exts.length > 0 ? exts[0]!.type : proto;
    h[7] = o.hopLimit ?? 64;
    h.set(src, 8);
    h.set(dst, 24);
    return concat([h, ...extBufs, seg]);
  }
}

function l4Protocol(l4: L4, v: 4 | 6): number {
  switch (l4.k) {
    case 'tcp':
      return Proto.TCP;
    case 'udp':
      return Proto.UDP;
    case 'icmp':
      return v === 4 ? Proto.ICMP : Proto.ICMPV6;
    case 'raw':
      return l4.protocol;
  }
}

function buildExt(e: Ipv6Ext, next: number): Uint8Array {
  if (e.type === 44) {
    const b = new Uint8Array(8);
    b[0] = next;
    const fo = e.fragOffset ?? 0;
    if (fo % 8 !== 0) throw new Error(`fragOffset ${fo} is not a multiple of 8`);
    put16(b, 2, (fo & 0xfff8) | (e.moreFragments ? 1 : 0));
    put16(b, 4, 0);
    put16(b, 6, 0x1234);
    return b;
  }
  if (e.type === 51) {
    // AH: next, payload len (4-octet units - 2), reserved, SPI, sequence, ICV.
    const def = new Uint8Array(22);
    def[5] = 1; // SPI 1
    def[9] = 1; // sequence 1
    const body = e.data ?? def;
    // IPv6 AH is a multiple of 8 octets (RFC 4302 section 2.2), at least 12 (no ICV).
    const b = new Uint8Array(Math.max(16, Math.ceil((2 + body.length) / 8) * 8));
    b[0] = next;
    b[1] = b.length / 4 - 2;
    b.set(body, 2);
    return b;
  }
  // Hop-by-hop, routing, destination options: 8-octet units, length field = units - 1.
  // Zero padding is Pad1 options for 0/60; for routing the default is type 0, segments left 0.
  const body = e.data ?? new Uint8Array(6);
  const total = Math.max(8, Math.ceil((2 + body.length) / 8) * 8);
  const b = new Uint8Array(total);
  b[0] = next;
  b[1] = total / 8 - 1;
  b.set(body, 2);
  return b;
}

function buildL4(l4: L4, v: 4 | 6, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const fam = v;
  const sw = IpAddress.fromBytes(src).words;
  const dw = IpAddress.fromBytes(dst).words;
  switch (l4.k) {
    case 'raw':
      return l4.data;
    case 'tcp': {
      const o = l4.o;
      const opts = padTo(o.options ?? new Uint8Array(0), 4);
      const pl = bytes(o.payload);
      const hl = 20 + opts.length;
      const s = new Uint8Array(hl + pl.length);
      put16(s, 0, o.sport);
      put16(s, 2, o.dport);
      new DataView(s.buffer).setUint32(4, (o.seq ?? 1000) >>> 0);
      new DataView(s.buffer).setUint32(8, (o.ack ?? 0) >>> 0);
      s[12] = (hl >> 2) << 4;
      s[13] = tcpFlags(o.flags);
      put16(s, 14, o.window ?? 65535);
      s.set(opts, 20);
      s.set(pl, hl);
      put16(s, 16, transportChecksum(s, 0, s.length, 16, pseudoHeaderSum(fam, sw, dw, Proto.TCP, s.length)));
      return s;
    }
    case 'udp': {
      const o = l4.o;
      const pl = bytes(o.payload);
      const s = new Uint8Array(8 + pl.length);
      put16(s, 0, o.sport);
      put16(s, 2, o.dport);
      put16(s, 4, s.length);
      s.set(pl, 8);
      if (!o.zeroChecksum) {
        const c = transportChecksum(s, 0, s.length, 6, pseudoHeaderSum(fam, sw, dw, Proto.UDP, s.length));
        put16(s, 6, c === 0 ? 0xffff : c);
      }
      return s;
    }
    case 'icmp': {
      const o = l4.o;
      const body = o.inner ?? bytes(o.payload);
      const s = new Uint8Array(8 + body.length);
      s[0] = o.type;
      s[1] = o.code ?? 0;
      if (o.mtu !== undefined) {
        if (v === 4) put16(s, 6, o.mtu);
        else new DataView(s.buffer).setUint32(4, o.mtu >>> 0);
      } else {
        put16(s, 4, o.id ?? 0);
        put16(s, 6, o.seq ?? 0);
      }
      s.set(body, 8);
      const pseudo = v === 6 ? pseudoHeaderSum(6, sw, dw, Proto.ICMPV6, s.length) : 0;
      put16(s, 2, transportChecksum(s, 0, s.length, 2, pseudo));
      return s;
    }
  }
}

/** An Ethernet/IPv4 ARP frame. Ethernet dst defaults to broadcast for requests, the target MAC for replies. */
export function arpFrame(o: {
  op: 1 | 2;
  senderMac: string;
  senderIp: string;
  targetMac?: string;
  targetIp: string;
  src?: string;
  dst?: string;
}): Buffer {
  const tha = o.targetMac ?? '00:00:00:00:00:00';
  const eth = ethHeader(
    { src: o.src ?? o.senderMac, dst: o.dst ?? (o.op === 1 ? 'ff:ff:ff:ff:ff:ff' : tha) },
    EtherType.ARP,
  );
  const a = new Uint8Array(28);
  put16(a, 0, 1); // hardware type Ethernet
  put16(a, 2, EtherType.IPV4);
  a[4] = 6;
  a[5] = 4;
  put16(a, 6, o.op);
  a.set(parseMac(o.senderMac), 8);
  a.set(addrBytes(o.senderIp, 4), 14);
  a.set(parseMac(tha), 18);
  a.set(addrBytes(o.targetIp, 4), 24);
  return concat([eth, a]);
}

/** Recompute the IPv4 header checksum in place after a test mutated the header at `l3Off`. */
export function fixIpv4Checksum(frame: Uint8Array, l3Off = 14): void {
  const hlen = (frame[l3Off]! & 0x0f) * 4;
  put16(frame, l3Off + 10, 0);
  put16(frame, l3Off + 10, ipv4HeaderChecksum(frame, l3Off, hlen));
}
