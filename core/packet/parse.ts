/**
 * The frame parser of the data path: validates one Ethernet frame in place
 * and fills a reused ParsedFrame with offsets, addresses, ports and flags.
 *
 * Owns: header validation (lengths, IPv4 header checksum and options, IPv6
 * extension chain, TCP data offset and flag sanity, UDP length, the header
 * embedded in ICMP errors) and the Drop reason for anything malformed.
 * Must not: allocate, create closures or strings, throw, or read a byte
 * outside [off, off + len). Every read is an index expression preceded by a
 * bounds check, so a test can prove the read range with a Proxy. Transport
 * checksums are not verified here (IPVS leaves that to the real server; the
 * NAT path updates them incrementally); the IPv4 header checksum is, as the
 * kernel's ip_rcv does before IPVS sees the packet.
 *
 * Decisions (documented in the tests too):
 * - vlanId is the VID of the outermost tag (802.1Q 0x8100 or 802.1ad 0x88a8);
 *   at most two tags; a third tag is UNSUPPORTED_ETHERTYPE.
 * - IPv4 order of checks as ip_rcv: version/IHL, header checksum, total
 *   length (> frame: BAD_IP_TOTAL_LENGTH; < IHL: BAD_IP_TOTAL_LENGTH), then
 *   option lengths. Bytes after the total length (Ethernet padding) are ignored.
 * - Fragments: isFragment / firstFragment are set. A non-first fragment of
 *   TCP, UDP, ICMP or ICMPv6 returns OK with ports 0 and no transport fields;
 *   the engine decides (Drop.FRAGMENT exists for it). A first fragment has its
 *   transport header validated, except that the UDP length (which covers the
 *   whole datagram) is only checked to be >= 8. An IPv6 fragment header with
 *   offset 0 and M clear (atomic fragment, RFC 6946) is not a fragment.
 * - IPv6 extension headers: hop-by-hop (only first), routing, fragment,
 *   destination options, AH; at most 8. ESP (50) and No Next Header (59) end
 *   the walk with protocol set to them and UNSUPPORTED_PROTOCOL.
 * - TCP flags rejected (BAD_TCP_FLAGS), ECE/CWR ignored:
 *   none of FIN/SYN/RST/PSH/ACK/URG set; SYN+FIN; SYN+RST;
 *   FIN without ACK; PSH without ACK; URG without ACK.
 * - UDP length must be >= 8 and <= the IP payload; a shorter UDP length is
 *   accepted (the kernel trims); l4Len stays the IP payload length.
 * - ICMP errors (v4 types 3, 4, 5, 11, 12; v6 types 1, 2, 3, 4) must carry
 *   an inner IP header of the same family, valid version and header length
 *   (IPv6 extension chain walked), not a non-first fragment, and at least 8
 *   bytes of its transport header; else BAD_ICMP_INNER. Inner ports are
 *   filled for TCP and UDP, 0 for other inner protocols. Inner checksums and
 *   inner total length are not checked (the quoted packet is usually cut).
 * - ICMP (1) in IPv6 and ICMPv6 (58) in IPv4 are UNSUPPORTED_PROTOCOL.
 * - ARP: Ethernet/IPv4 only (htype 1, ptype 0x0800, hlen 6, plen 4), op 1 or
 *   2; anything else, or shorter than 28 bytes, is BAD_ARP.
 */
import { Drop, EtherType, ParsedFrame, TcpFlag } from './frame.js';
import { ipv4HeaderChecksumOk } from './checksum.js';
import { readAddr } from '../addr.js';
import { Proto } from '../constants.js';

/** Maximum number of IPv6 extension headers walked before the chain is declared malformed. */
export const MAX_IPV6_EXTENSIONS = 8;

const IPPROTO_HOPOPTS = 0;
const IPPROTO_ROUTING = 43;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_AH = 51;
const IPPROTO_DSTOPTS = 60;

const FLAGS_CORE = TcpFlag.FIN | TcpFlag.SYN | TcpFlag.RST | TcpFlag.PSH | TcpFlag.ACK | TcpFlag.URG;

/**
 * True for a TCP flag combination that is never legal (see the module comment).
 * ECE and CWR are ignored.
 */
export function tcpFlagsIllegal(flags: number): boolean {
  if ((flags & FLAGS_CORE) === 0) return true;
  if ((flags & TcpFlag.SYN) !== 0 && (flags & (TcpFlag.FIN | TcpFlag.RST)) !== 0) return true;
  if ((flags & TcpFlag.ACK) === 0 && (flags & (TcpFlag.FIN | TcpFlag.PSH | TcpFlag.URG)) !== 0) return true;
  return false;
}

/** Read a big-endian u16; the caller has checked i + 1 < end. */
function rd16(buf: Uint8Array, i: number): number {
  return (buf[i]! << 8) | buf[i + 1]!;
}

/** Read a big-endian u32; the caller has checked i + 3 < end. */
function rd32(buf: Uint8Array, i: number): number {
  return ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
}

/** Clear every field of `out` that a previous frame may have set. */
function reset(out: ParsedFrame, off: number, len: number): void {
  out.frameOff = off;
  out.frameLen = len;
  out.etherType = 0;
  out.vlanId = -1;
  out.l3Off = 0;
  out.family = 4;
  out.ipHeaderLen = 0;
  out.ipTotalLen = 0;
  out.protocol = 0;
  out.l4Off = 0;
  out.l4Len = 0;
  out.ttl = 0;
  out.dontFragment = false;
  out.isFragment = false;
  out.firstFragment = true;
  const s = out.saddr;
  const d = out.daddr;
  s[0] = 0; s[1] = 0; s[2] = 0; s[3] = 0;
  d[0] = 0; d[1] = 0; d[2] = 0; d[3] = 0;
  out.sport = 0;
  out.dport = 0;
  out.tcpFlags = 0;
  out.tcpHeaderLen = 0;
  out.icmpType = 0;
  out.icmpCode = 0;
  out.icmpId = 0;
  out.hasInner = false;
  out.innerL3Off = 0;
  out.innerFamily = 4;
  out.innerProtocol = 0;
  out.innerIpHeaderLen = 0;
  out.innerL4Off = 0;
  const is = out.innerSaddr;
  const id = out.innerDaddr;
  is[0] = 0; is[1] = 0; is[2] = 0; is[3] = 0;
  id[0] = 0; id[1] = 0; id[2] = 0; id[3] = 0;
  out.innerSport = 0;
  out.innerDport = 0;
  out.arpOp = 0;
  out.arpShaOff = 0;
  out.arpThaOff = 0;
  out.arpSpa = 0;
  out.arpTpa = 0;
}

/**
 * Parse the frame at `buf[off .. off+len)` into `out`. Returns Drop.OK or the
 * reason the frame is malformed or not something we balance. On a drop, the
 * fields filled before the failing check stay set (L2, then L3), the rest are reset.
 */
export function parseFrame(buf: Uint8Array, off: number, len: number, out: ParsedFrame): Drop {
  reset(out, off, len);
  const end = off + len;
  if (off < 0 || len < 14 || end > buf.length) return Drop.TRUNCATED_ETHERNET;

  // ---- Ethernet, up to two VLAN tags ----
  let p = off + 12;
  let et = rd16(buf, p);
  p += 2;
  let tags = 0;
  while (et === EtherType.VLAN || et === EtherType.QINQ) {
    if (tags === 2) {
      out.etherType = et;
      return Drop.UNSUPPORTED_ETHERTYPE;
    }
    if (p + 4 > end) return Drop.TRUNCATED_ETHERNET;
    if (tags === 0) out.vlanId = rd16(buf, p) & 0x0fff;
    et = rd16(buf, p + 2);
    p += 4;
    tags++;
  }
  out.etherType = et;
  out.l3Off = p;

  if (et === EtherType.IPV4) return parseIpv4(buf, p, end, out);
  if (et === EtherType.IPV6) return parseIpv6(buf, p, end, out);
  if (et === EtherType.ARP) return parseArp(buf, p, end, out);
  return Drop.UNSUPPORTED_ETHERTYPE;
}

function parseArp(buf: Uint8Array, p: number, end: number, out: ParsedFrame): Drop {
  if (p + 28 > end) return Drop.BAD_ARP;
  if (rd16(buf, p) !== 1 || rd16(buf, p + 2) !== EtherType.IPV4 || buf[p + 4] !== 6 || buf[p + 5] !== 4) {
    return Drop.BAD_ARP;
  }
  const op = rd16(buf, p + 6);
  if (op !== 1 && op !== 2) return Drop.BAD_ARP;
  out.arpOp = op;
  out.arpShaOff = p + 8;
  out.arpSpa = rd32(buf, p + 14);
  out.arpThaOff = p + 18;
  out.arpTpa = rd32(buf, p + 24);
  return Drop.OK;
}

function parseIpv4(buf: Uint8Array, p: number, end: number, out: ParsedFrame): Drop {
  if (p + 20 > end) return Drop.TRUNCATED_IP;
  const b0 = buf[p]!;
  if (b0 >> 4 !== 4) return Drop.TRUNCATED_IP;
  const ihl = (b0 & 0x0f) << 2;
  if (ihl < 20 || p + ihl > end) return Drop.BAD_IP_HEADER_LENGTH;
  if (!ipv4HeaderChecksumOk(buf, p, ihl)) return Drop.BAD_IP_CHECKSUM;
  const total = rd16(buf, p + 2);
  if (total < ihl || p + total > end) return Drop.BAD_IP_TOTAL_LENGTH;

  // Options: walk the lengths (RFC 791: EOL 0 ends, NOP 1 is one byte, others type-length-value).
  const optEnd = p + ihl;
  for (let i = p + 20; i < optEnd; ) {
    const t = buf[i]!;
    if (t === 0) break;
    if (t === 1) {
      i++;
      continue;
    }
    if (i + 1 >= optEnd) return Drop.BAD_IP_OPTIONS;
    const olen = buf[i + 1]!;
    if (olen < 2 || i + olen > optEnd) return Drop.BAD_IP_OPTIONS;
    i += olen;
  }

  const fo = rd16(buf, p + 6);
  const fragOff = fo & 0x1fff;
  const proto = buf[p + 9]!;
  out.family = 4;
  out.ipHeaderLen = ihl;
  out.ipTotalLen = total;
  out.protocol = proto;
  out.ttl = buf[p + 8]!;
  out.dontFragment = (fo & 0x4000) !== 0;
  out.isFragment = (fo & 0x2000) !== 0 || fragOff !== 0;
  out.firstFragment = fragOff === 0;
  readAddr(buf, p + 12, 4, out.saddr, 0);
  readAddr(buf, p + 16, 4, out.daddr, 0);
  out.l4Off = optEnd;
  out.l4Len = total - ihl;

  if (proto !== Proto.TCP && proto !== Proto.UDP && proto !== Proto.ICMP) return Drop.UNSUPPORTED_PROTOCOL;
  if (fragOff !== 0) return Drop.OK;
  return parseL4(buf, out);
}

function parseIpv6(buf: Uint8Array, p: number, end: number, out: ParsedFrame): Drop {
  if (p + 40 > end) return Drop.TRUNCATED_IP;
  if (buf[p]! >> 4 !== 6) return Drop.TRUNCATED_IP;
  const total = 40 + rd16(buf, p + 4);
  if (p + total > end) return Drop.BAD_IP_TOTAL_LENGTH;
  out.family = 6;
  out.ipTotalLen = total;
  out.ttl = buf[p + 7]!;
  out.dontFragment = true;
  readAddr(buf, p + 8, 6, out.saddr, 0);
  readAddr(buf, p + 24, 6, out.daddr, 0);

  const l4 = walkV6(buf, p + 40, p + total, buf[p + 6]!, out, false);
  if (l4 < 0) return -l4 as Drop;
  out.ipHeaderLen = l4 - p;
  out.l4Off = l4;
  out.l4Len = p + total - l4;
  const proto = out.protocol;
  if (proto !== Proto.TCP && proto !== Proto.UDP && proto !== Proto.ICMPV6) return Drop.UNSUPPORTED_PROTOCOL;
  if (!out.firstFragment) return Drop.OK;
  return parseL4(buf, out);
}

/**
 * Walk an IPv6 extension chain starting with next-header `nh` at `p`, within
 * `end`. Sets out.protocol (or out.innerProtocol when `inner`), and for the
 * outer header the fragment fields. Returns the transport header's offset, or
 * a negated Drop. For `inner`, every failure is BAD_ICMP_INNER.
 */
function walkV6(buf: Uint8Array, p: number, end: number, nh: number, out: ParsedFrame, inner: boolean): number {
  const bad = inner ? -Drop.BAD_ICMP_INNER : -Drop.BAD_IPV6_EXTENSION;
  let n = 0;
  for (;;) {
    if (
      nh !== IPPROTO_HOPOPTS &&
      nh !== IPPROTO_ROUTING &&
      nh !== IPPROTO_FRAGMENT &&
      nh !== IPPROTO_DSTOPTS &&
      nh !== IPPROTO_AH
    ) {
      break;
    }
    if (n === MAX_IPV6_EXTENSIONS) return bad;
    if (nh === IPPROTO_HOPOPTS && n !== 0) return bad;
    n++;
    if (nh === IPPROTO_FRAGMENT) {
      if (p + 8 > end) return bad;
      const next = buf[p]!;
      const fo = rd16(buf, p + 2);
      const fragOff = fo & 0xfff8;
      const more = (fo & 1) !== 0;
      p += 8;
      nh = next;
      if (fragOff !== 0 || more) {
        if (inner) {
          if (fragOff !== 0) return bad;
        } else {
          out.isFragment = true;
          out.firstFragment = fragOff === 0;
          // A non-first fragment has no transport header: stop here.
          if (fragOff !== 0) break;
        }
      }
      continue;
    }
    if (p + 2 > end) return bad;
    const next = buf[p]!;
    const hlen = nh === IPPROTO_AH ? (buf[p + 1]! + 2) << 2 : (buf[p + 1]! + 1) << 3;
    if (p + hlen > end) return bad;
    p += hlen;
    nh = next;
  }
  // ESP and No Next Header end the walk like a transport protocol; the caller
  // rejects them as UNSUPPORTED_PROTOCOL with L3 filled.
  if (inner) out.innerProtocol = nh;
  else out.protocol = nh;
  return p;
}

/** Transport header of the outer packet (out.l4Off / l4Len / protocol / family are set). */
function parseL4(buf: Uint8Array, out: ParsedFrame): Drop {
  const p = out.l4Off;
  const l4Len = out.l4Len;
  const end = p + l4Len;
  const proto = out.protocol;
  if (proto === Proto.TCP) {
    if (l4Len < 20) return Drop.TRUNCATED_L4;
    out.sport = rd16(buf, p);
    out.dport = rd16(buf, p + 2);
    const doff = (buf[p + 12]! >> 4) << 2;
    if (doff < 20 || doff > l4Len) return Drop.BAD_TCP_HEADER_LENGTH;
    const flags = buf[p + 13]!;
    out.tcpHeaderLen = doff;
    out.tcpFlags = flags;
    if (tcpFlagsIllegal(flags)) return Drop.BAD_TCP_FLAGS;
    return Drop.OK;
  }
  if (proto === Proto.UDP) {
    if (l4Len < 8) return Drop.TRUNCATED_L4;
    out.sport = rd16(buf, p);
    out.dport = rd16(buf, p + 2);
    const ulen = rd16(buf, p + 4);
    if (ulen < 8 || (!out.isFragment && ulen > l4Len)) return Drop.BAD_UDP_LENGTH;
    return Drop.OK;
  }
  // ICMP (IPv4) or ICMPv6 (IPv6); the caller filtered the other combinations.
  if (l4Len < 8) return Drop.TRUNCATED_L4;
  const type = buf[p]!;
  out.icmpType = type;
  out.icmpCode = buf[p + 1]!;
  if (out.family === 4) {
    if (type === 0 || type === 8) {
      out.icmpId = rd16(buf, p + 4);
      return Drop.OK;
    }
    if (type === 3 || type === 4 || type === 5 || type === 11 || type === 12) return parseInner4(buf, p + 8, end, out);
    return Drop.OK;
  }
  if (type === 128 || type === 129) {
    out.icmpId = rd16(buf, p + 4);
    return Drop.OK;
  }
  if (type >= 1 && type <= 4) return parseInner6(buf, p + 8, end, out);
  return Drop.OK;
}

function parseInner4(buf: Uint8Array, p: number, end: number, out: ParsedFrame): Drop {
  if (p + 20 > end) return Drop.BAD_ICMP_INNER;
  const b0 = buf[p]!;
  if (b0 >> 4 !== 4) return Drop.BAD_ICMP_INNER;
  const ihl = (b0 & 0x0f) << 2;
  if (ihl < 20 || p + ihl + 8 > end) return Drop.BAD_ICMP_INNER;
  if ((rd16(buf, p + 6) & 0x1fff) !== 0) return Drop.BAD_ICMP_INNER;
  out.innerL3Off = p;
  out.innerFamily = 4;
  out.innerIpHeaderLen = ihl;
  out.innerProtocol = buf[p + 9]!;
  readAddr(buf, p + 12, 4, out.innerSaddr, 0);
  readAddr(buf, p + 16, 4, out.innerDaddr, 0);
  return innerPorts(buf, p + ihl, out);
}

function parseInner6(buf: Uint8Array, p: number, end: number, out: ParsedFrame): Drop {
  if (p + 40 > end) return Drop.BAD_ICMP_INNER;
  if (buf[p]! >> 4 !== 6) return Drop.BAD_ICMP_INNER;
  const l4 = walkV6(buf, p + 40, end, buf[p + 6]!, out, true);
  if (l4 < 0) return -l4 as Drop;
  if (l4 + 8 > end) return Drop.BAD_ICMP_INNER;
  out.innerL3Off = p;
  out.innerFamily = 6;
  out.innerIpHeaderLen = l4 - p;
  readAddr(buf, p + 8, 6, out.innerSaddr, 0);
  readAddr(buf, p + 24, 6, out.innerDaddr, 0);
  return innerPorts(buf, l4, out);
}

/** The inner transport header at `p` has at least 8 bytes (checked by the caller). */
function innerPorts(buf: Uint8Array, p: number, out: ParsedFrame): Drop {
  out.innerL4Off = p;
  const ip = out.innerProtocol;
  if (ip === Proto.TCP || ip === Proto.UDP) {
    out.innerSport = rd16(buf, p);
    out.innerDport = rd16(buf, p + 2);
  }
  out.hasInner = true;
  return Drop.OK;
}
