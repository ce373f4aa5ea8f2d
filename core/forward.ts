/**
 * Forwarding rewrites: what the director does to a frame once the connection
 * table has chosen a real server. DR (MAC rewrite), NAT in both directions
 * with RFC 1624 incremental checksum updates, NAT of ICMP errors that quote a
 * NATed packet, IP-in-IP encapsulation (TUN), and the ICMP "fragmentation
 * needed" / ICMPv6 "packet too big" the director sends when a tunnelled
 * packet would not fit.
 *
 * Owns: byte-level header rewrites of one frame. Must not: look up
 * connections, choose real servers, resolve MACs, count, or send. Never throws
 * and never allocates per packet (one exception, see copyBytes).
 *
 * Common preconditions (the parser, core/packet/parse.ts, established them):
 * - `f` is the ParsedFrame that parseFrame filled for this very frame in `buf`
 *   and returned Drop.OK; every header offset it holds is in bounds, and the
 *   frame is IPv4 or IPv6 (not ARP).
 * - `f` describes the frame as it was parsed; the rewrites do not update it.
 * - Addresses are 4-word arrays (core/addr.ts) of the frame's family; MACs
 *   are 6-byte arrays.
 *
 * Kernel behaviour carried over (Linux net/netfilter/ipvs/, cited per function):
 * ip_vs_xmit.c (ip_vs_dr_xmit, ip_vs_nat_xmit, ip_vs_tunnel_xmit(_v6),
 * ensure_mtu_is_adequate), ip_vs_core.c (ip_vs_nat_icmp(_v6), handle_response),
 * ip_vs_proto_tcp.c / ip_vs_proto_udp.c (tcp/udp_snat_handler,
 * tcp/udp_dnat_handler), net/ipv4/icmp.c (__icmp_send) and net/ipv6/icmp.c
 * (icmp6_send).
 */
import type { Family } from './constants.js';
import { Proto } from './constants.js';
import { writeAddr } from './addr.js';
import {
  csumReplace16,
  csumReplaceAddr,
  get16,
  ipv4HeaderChecksum,
  pseudoHeaderSum,
  put16,
  transportChecksum,
} from './packet/checksum.js';
import type { ParsedFrame } from './packet/frame.js';

const ETH_ALEN = 6;
const ETH_HLEN = 14;
const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
const ICMP_HLEN = 8;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_IPIP = 4;
const IPPROTO_IPV6 = 41;
const IPPROTO_SCTP = 132;
const IP_DF = 0x4000;
const IP_OFFSET_MASK = 0x1fff;
/** IPTOS_TOS_MASK and IPTOS_PREC_INTERNETCONTROL (include/uapi/linux/ip.h). */
const IPTOS_TOS_MASK = 0x1e;
const IPTOS_PREC_INTERNETCONTROL = 0xc0;
/** sysctl net.ipv4.ip_default_ttl and net.ipv6.conf.*.hop_limit defaults. */
const DEFAULT_TTL = 64;
/** RFC 1812 / __icmp_send: an ICMPv4 error is at most 576 bytes. */
const ICMP_MAX_LEN = 576;
/** IPV6_MIN_MTU: icmp6_send quotes at most 1280 - 40 - 8 bytes. */
const IPV6_MIN_MTU = 1280;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMPV6_PKT_TOOBIG = 2;

// ---------------------------------------------------------------- helpers

/** Write destination and source MAC at the start of the frame at `off`. */
function writeMacs(out: Uint8Array, off: number, dstMac: Uint8Array, srcMac: Uint8Array): void {
  for (let i = 0; i < ETH_ALEN; i++) {
    out[off + i] = dstMac[i]!;
    out[off + ETH_ALEN + i] = srcMac[i]!;
  }
}

/**
 * memmove of `len` bytes. `set(subarray)` creates one short-lived view object;
 * that is deliberate: on Node 20 it copies 1500 bytes in ~42 ns where an
 * allocation-free byte loop takes ~1600 ns. Overlap is only handled (as
 * memmove) when `src === dst`.
 */
function copyBytes(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, len: number): void {
  if (len <= 0 || (src === dst && srcOff === dstOff)) return;
  if (src === dst) dst.copyWithin(dstOff, srcOff, srcOff + len);
  else dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}

/** Byte offset of the source (`src`) or destination address in an IP header. */
function addrOffset(family: Family, l3Off: number, src: boolean): number {
  if (family === 4) return l3Off + (src ? 12 : 16);
  return l3Off + (src ? 8 : 24);
}

/** True for ICMPv4 error types (RFC 792/1812): unreach, quench, redirect, time exceeded, parameter problem. */
function isIcmpv4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Transport checksum delta for a rewritten address/port, shared by the NAT
 * paths. Returns the new checksum; `oldAddr`/`newAddr` change in the
 * pseudo-header, `oldPort`/`newPort` in the header (pass equal values to skip).
 */
function l4Delta(check: number, family: Family, oldAddr: Uint32Array, newAddr: Uint32Array, oldPort: number, newPort: number): number {
  return csumReplace16(csumReplaceAddr(check, family, oldAddr, 0, newAddr, 0), oldPort, newPort);
}

// ---------------------------------------------------------------- DR

/**
 * Direct routing: the destination MAC becomes the real server's, the source
 * MAC ours (the shared MAC); addresses, ports, TTL and checksums are untouched
 * and the VLAN tag, if any, stays. ip_vs_xmit.c ip_vs_dr_xmit(_v6) routes the
 * unchanged IP packet to the real server. Recent kernels also decrement the
 * TTL / hop limit there (ip_vs_xmit.c decrement_ttl, called from
 * __ip_vs_get_out_rt(_v6) for DR, NAT and TUN, with ICMP time exceeded at 1);
 * Saru, which forwards on one L2 segment like the original LVS-DR, does not.
 */
export function rewriteDr(buf: Uint8Array, f: ParsedFrame, dstMac: Uint8Array, srcMac: Uint8Array): void {
  writeMacs(buf, f.frameOff, dstMac, srcMac);
}

// ---------------------------------------------------------------- NAT

/**
 * The body of both NAT directions. `src` selects the field: false rewrites the
 * destination address and port (DNAT, client -> real server), true the source
 * (SNAT, real server -> client).
 *
 * Checksums, as ip_vs_proto_tcp.c / ip_vs_proto_udp.c *_fast_csum_update and
 * ip_vs_nat_xmit / handle_response (which then call ip_send_check):
 * - IPv4 header checksum: RFC 1624 update for the address.
 * - TCP: RFC 1624 update for pseudo-header address and port.
 * - UDP: the same, and a result of 0 is stored as 0xffff (CSUM_MANGLED_0).
 *   A zero checksum over IPv4 means "no checksum" and stays zero (RFC 768;
 *   nf_nat does the same). The kernel's IPVS instead computes a full checksum
 *   in that case; over IPv6, where zero is not allowed (RFC 8200 8.1), we do
 *   as the kernel and compute it in full, unless the datagram is fragmented.
 * - ICMPv6 (non-error, e.g. echo): RFC 1624 update for the pseudo-header.
 * Non-first fragments carry no transport header: only the address changes
 * (udp_dnat_handler returns early for IPv6 fragoffs; the transport checksum of
 * a first fragment still gets the delta, which is exact).
 */
function natRewrite(buf: Uint8Array, f: ParsedFrame, src: boolean, addr: Uint32Array, port: number): void {
  const fam = f.family;
  const old = src ? f.saddr : f.daddr;
  if (fam === 4) {
    const c = f.l3Off + 10;
    put16(buf, c, csumReplaceAddr(get16(buf, c), 4, old, 0, addr, 0));
  }
  writeAddr(buf, addrOffset(fam, f.l3Off, src), fam, addr, 0);
  if (!f.firstFragment) return;

  const l4 = f.l4Off;
  const portOff = l4 + (src ? 0 : 2);
  switch (f.protocol) {
    case Proto.TCP: {
      const c = l4 + 16;
      put16(buf, c, l4Delta(get16(buf, c), fam, old, addr, get16(buf, portOff), port));
      put16(buf, portOff, port);
      return;
    }
    case Proto.UDP: {
      const c = l4 + 6;
      const check = get16(buf, c);
      if (check !== 0) {
        const n = l4Delta(check, fam, old, addr, get16(buf, portOff), port);
        put16(buf, c, n === 0 ? 0xffff : n);
        put16(buf, portOff, port);
      } else {
        put16(buf, portOff, port);
        if (fam === 6 && !f.isFragment) {
          const ps = pseudoHeaderSum(6, src ? addr : f.saddr, src ? f.daddr : addr, Proto.UDP, f.l4Len);
          const n = transportChecksum(buf, l4, f.l4Len, c, ps);
          put16(buf, c, n === 0 ? 0xffff : n);
        }
      }
      return;
    }
    case Proto.ICMPV6: {
      const c = l4 + 2;
      put16(buf, c, csumReplaceAddr(get16(buf, c), 6, old, 0, addr, 0));
      return;
    }
    default:
      return;
  }
}

/**
 * NAT, client -> real server: destination address and port become RIP/RPORT
 * (ip_vs_xmit.c ip_vs_nat_xmit(_v6) with tcp/udp_dnat_handler), checksums
 * updated incrementally (see natRewrite), MACs set. Other protocols get the
 * address change only (IPv4 header / ICMPv6 pseudo-header checksum updated).
 * Precondition: not an ICMP error (use rewriteNatIcmpIn for those). The TTL is
 * not decremented (see rewriteDr).
 */
export function rewriteNatIn(
  buf: Uint8Array,
  f: ParsedFrame,
  rip: Uint32Array,
  rport: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): void {
  natRewrite(buf, f, false, rip, rport);
  writeMacs(buf, f.frameOff, dstMac, srcMac);
}

/**
 * NAT, real server -> client: source address and port back to VIP/VPORT
 * (ip_vs_core.c handle_response with tcp/udp_snat_handler), same checksum
 * rules as rewriteNatIn, MACs set. Precondition: not an ICMP error (use
 * rewriteNatIcmpOut).
 */
export function rewriteNatOut(
  buf: Uint8Array,
  f: ParsedFrame,
  vip: Uint32Array,
  vport: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): void {
  natRewrite(buf, f, true, vip, vport);
  writeMacs(buf, f.frameOff, dstMac, srcMac);
}

// ---------------------------------------------------------------- NAT of ICMP errors

/**
 * ip_vs_core.c ip_vs_nat_icmp / ip_vs_nat_icmp_v6. `out` is the kernel's
 * `inout`: true for an error travelling real-server side -> client (outer
 * source and embedded destination address/port become VIP/VPORT), false for
 * client side -> real server (outer destination and embedded source become
 * RIP/RPORT).
 *
 * As the kernel: the embedded IPv4 header checksum is recomputed
 * (ip_send_check(ciph)); embedded ports are rewritten for TCP, UDP and SCTP
 * unless the embedded packet is a non-first fragment; the ICMP checksum is
 * made correct (ICMPv6 including the pseudo-header).
 *
 * Differences, both invisible for a valid message:
 * - The ICMP checksum is updated incrementally (RFC 1624) instead of
 *   recomputed over the whole message; the kernel verifies it first
 *   (handle_response_icmp / ip_vs_in_icmp drop on failure) and recomputes, so
 *   a message that arrived corrupt stays detectably corrupt here rather than
 *   being re-signed.
 * - The embedded TCP/UDP checksum gets the same RFC 1624 delta when its field
 *   lies within the quoted bytes (UDP: unless zero). IPVS leaves it stale;
 *   netfilter NAT (nf_nat_icmp_reply_translation, which manipulates the inner
 *   tuple with the l4proto handler) updates it. The quoted packet then matches
 *   byte for byte what the peer really sent.
 */
function natIcmp(buf: Uint8Array, f: ParsedFrame, out: boolean, addr: Uint32Array, port: number): void {
  const fam = f.family;
  const l3 = f.l3Off;
  const ckOff = f.l4Off + 2;
  let ck = get16(buf, ckOff);

  // Outer address (outer source when out, destination otherwise).
  const outerOld = out ? f.saddr : f.daddr;
  if (fam === 4) {
    put16(buf, l3 + 10, csumReplaceAddr(get16(buf, l3 + 10), 4, outerOld, 0, addr, 0));
  } else {
    ck = csumReplaceAddr(ck, 6, outerOld, 0, addr, 0); // ICMPv6 pseudo-header
  }
  writeAddr(buf, addrOffset(fam, l3, out), fam, addr, 0);

  // Embedded address (destination when out, source otherwise).
  const ifam = f.innerFamily;
  const il3 = f.innerL3Off;
  const innerOld = out ? f.innerDaddr : f.innerSaddr;
  ck = csumReplaceAddr(ck, ifam, innerOld, 0, addr, 0);
  writeAddr(buf, addrOffset(ifam, il3, !out), ifam, addr, 0);

  let innerFirst = true;
  if (ifam === 4) {
    const c = il3 + 10;
    const oldIc = get16(buf, c);
    const newIc = ipv4HeaderChecksum(buf, il3, f.innerIpHeaderLen);
    put16(buf, c, newIc);
    ck = csumReplace16(ck, oldIc, newIc);
    innerFirst = (get16(buf, il3 + 6) & IP_OFFSET_MASK) === 0;
  }

  const ip = f.innerProtocol;
  if (innerFirst && (ip === Proto.TCP || ip === Proto.UDP || ip === IPPROTO_SCTP)) {
    const il4 = f.innerL4Off;
    const portOff = il4 + (out ? 2 : 0);
    const oldPort = get16(buf, portOff);
    // The ICMP message ends at l4Off + l4Len; the quote may stop mid-header.
    const end = f.l4Off + f.l4Len;
    const c = ip === Proto.TCP ? il4 + 16 : ip === Proto.UDP ? il4 + 6 : -1;
    if (c >= 0 && c + 2 <= end) {
      const oldL4 = get16(buf, c);
      if (ip === Proto.TCP || oldL4 !== 0) {
        let n = l4Delta(oldL4, ifam, innerOld, addr, oldPort, port);
        if (ip === Proto.UDP && n === 0) n = 0xffff;
        put16(buf, c, n);
        ck = csumReplace16(ck, oldL4, n);
      }
    }
    put16(buf, portOff, port);
    ck = csumReplace16(ck, oldPort, port);
  }
  put16(buf, ckOff, ck);
}

/**
 * NAT of an ICMP/ICMPv6 error from the client side about a packet the
 * director sent as VIP:VPORT -> client (ip_vs_xmit.c ip_vs_icmp_xmit(_v6) ->
 * ip_vs_nat_icmp(_v6) with inout = 0): outer destination becomes RIP, the
 * embedded source address/port RIP/RPORT; checksums as natIcmp; MACs set.
 * Precondition: f.hasInner.
 */
export function rewriteNatIcmpIn(
  buf: Uint8Array,
  f: ParsedFrame,
  rip: Uint32Array,
  rport: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): void {
  natIcmp(buf, f, false, rip, rport);
  writeMacs(buf, f.frameOff, dstMac, srcMac);
}

/**
 * NAT of an ICMP/ICMPv6 error from the real-server side about a packet the
 * director sent as client -> RIP:RPORT (ip_vs_core.c ip_vs_out_icmp(_v6) ->
 * handle_response_icmp -> ip_vs_nat_icmp(_v6) with inout = 1): outer source
 * becomes VIP, the embedded destination address/port VIP/VPORT; checksums as
 * natIcmp; MACs set. Precondition: f.hasInner.
 */
export function rewriteNatIcmpOut(
  buf: Uint8Array,
  f: ParsedFrame,
  vip: Uint32Array,
  vport: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): void {
  natIcmp(buf, f, true, vip, vport);
  writeMacs(buf, f.frameOff, dstMac, srcMac);
}

// ---------------------------------------------------------------- TUN

/**
 * Write Ethernet header (MACs, then the input frame's 802.1Q/802.1ad tags
 * verbatim, then `etherType`) at `out[outOff..]`; returns the L3 offset.
 * Tags are moved first with memmove semantics, so `out === buf` with a lower
 * `outOff` (headroom) is safe.
 */
function writeEthernet(
  buf: Uint8Array,
  f: ParsedFrame,
  out: Uint8Array,
  outOff: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  etherType: number,
): number {
  const tagLen = f.l3Off - f.frameOff - ETH_HLEN;
  copyBytes(buf, f.frameOff + 12, out, outOff + 12, tagLen);
  writeMacs(out, outOff, dstMac, srcMac);
  put16(out, outOff + 12 + tagLen, etherType);
  return outOff + ETH_HLEN + tagLen;
}

/**
 * IP-in-IP encapsulation to the real server (ip_vs_xmit.c ip_vs_tunnel_xmit
 * and ip_vs_tunnel_xmit_v6; the outer family is the packet's family, as in
 * those functions). Writes into `out` at `outOff`: Ethernet (MACs, the input's
 * VLAN tags) + outer header + the original IP packet, unchanged. Returns the
 * frame length, or -1 when the packet must not be sent (TOO_BIG; the caller
 * may then send buildTooBig):
 * - IPv4 (ensure_mtu_is_adequate with IP_VS_RT_MODE_TUNNEL, pmtu_disc on):
 *   -1 when DF is set and ipTotalLen > mtu - 20, except for ICMP errors
 *   (ip_vs_iph_icmp), which the kernel sends and lets IP fragment. A packet
 *   without DF that does not fit is returned whole (length > mtu + L2): the
 *   caller must fragment or drop it.
 * - IPv6 (__mtu_check_toobig_v6): -1 when ipTotalLen > mtu - 40 (never
 *   fragmented by the director).
 * Outer IPv4 (ip_vs_prepare_tunneled_skb, ip_select_ident): version 4, IHL 5,
 * TOS and TTL copied from the inner header, DF copied with offset/MF cleared,
 * protocol 4, id 0 when DF is set (as the kernel for a DF packet without a
 * socket) and otherwise the inner packet's id (the kernel draws from a per-
 * destination counter; Saru keeps no such state), header checksum computed.
 * Outer IPv6: traffic class and hop limit copied, flow label 0, payload
 * length = inner packet length, next header 41.
 * The TTL is not decremented (see rewriteDr).
 *
 * @param mtu link MTU towards the real server in IP bytes; the caller checks at
 *   configuration that mtu - 20 >= 68 (IPv4) / mtu - 40 >= 1280 (IPv6), as
 *   __ip_vs_get_out_rt(_v6) does.
 * Preconditions: `out` has room for frame length bytes from outOff. `out` does
 * not overlap the input frame, except `out === buf` with
 * `outOff === f.frameOff - 20` (IPv4) / `- 40` (IPv6): in-place encapsulation
 * into headroom, where the inner packet does not move.
 */
export function encapTunnel(
  buf: Uint8Array,
  f: ParsedFrame,
  out: Uint8Array,
  outOff: number,
  localAddr: Uint32Array,
  rip: Uint32Array,
  mtu: number,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): number {
  const l3 = f.l3Off;
  const ipLen = f.ipTotalLen;
  if (f.family === 4) {
    const df = (get16(buf, l3 + 6) & IP_DF) !== 0;
    if (df && ipLen + IPV4_HLEN > mtu && !f.hasInner) return -1;
    // Read what the outer header needs before anything is overwritten.
    const tos = buf[l3 + 1]!;
    const ttl = buf[l3 + 8]!;
    const id = df ? 0 : get16(buf, l3 + 4);
    const o = writeEthernet(buf, f, out, outOff, dstMac, srcMac, ETHERTYPE_IPV4);
    copyBytes(buf, l3, out, o + IPV4_HLEN, ipLen);
    out[o] = 0x45;
    out[o + 1] = tos;
    put16(out, o + 2, ipLen + IPV4_HLEN);
    put16(out, o + 4, id);
    put16(out, o + 6, df ? IP_DF : 0);
    out[o + 8] = ttl;
    out[o + 9] = IPPROTO_IPIP;
    put16(out, o + 10, 0);
    writeAddr(out, o + 12, 4, localAddr, 0);
    writeAddr(out, o + 16, 4, rip, 0);
    put16(out, o + 10, ipv4HeaderChecksum(out, o, IPV4_HLEN));
    return o + IPV4_HLEN + ipLen - outOff;
  }
  if (ipLen + IPV6_HLEN > mtu) return -1;
  const tclass = ((buf[l3]! & 0x0f) << 4) | (buf[l3 + 1]! >>> 4);
  const hop = buf[l3 + 7]!;
  const o = writeEthernet(buf, f, out, outOff, dstMac, srcMac, ETHERTYPE_IPV6);
  copyBytes(buf, l3, out, o + IPV6_HLEN, ipLen);
  out[o] = 0x60 | (tclass >>> 4);
  out[o + 1] = (tclass & 0x0f) << 4;
  out[o + 2] = 0;
  out[o + 3] = 0;
  put16(out, o + 4, ipLen);
  out[o + 6] = IPPROTO_IPV6;
  out[o + 7] = hop;
  writeAddr(out, o + 8, 6, localAddr, 0);
  writeAddr(out, o + 24, 6, rip, 0);
  return o + IPV6_HLEN + ipLen - outOff;
}

/**
 * True when Linux's icmp_send / icmp6_send would answer this packet with an
 * error at all: never about an ICMP(v6) error, never about a non-first
 * fragment (net/ipv4/icmp.c __icmp_send; net/ipv6/icmp.c icmp6_send /
 * is_ineligible; ip_vs_xmit.c sends "too big" only for !fragoffs and not for
 * ip_vs_iph_icmp packets).
 */
export function mayAnswerWithIcmp(f: ParsedFrame): boolean {
  if (f.hasInner) return false;
  if (f.isFragment && !f.firstFragment) return false;
  if (f.family === 4) return !(f.protocol === Proto.ICMP && isIcmpv4Error(f.icmpType));
  return !(f.protocol === Proto.ICMPV6 && f.icmpType < 128);
}

/**
 * The error the director sends to the client when encapTunnel returned -1
 * (ip_vs_xmit.c ensure_mtu_is_adequate): ICMP destination unreachable /
 * fragmentation needed (type 3 code 4, next-hop MTU = mtu - 20) or ICMPv6
 * packet too big (type 2, MTU = mtu - 40), from `srcAddr` to the packet's
 * source. Written at `out[outOff..]` with Ethernet (MACs, the input's VLAN
 * tags). Returns the frame length, or 0 when Linux would send nothing (see
 * mayAnswerWithIcmp).
 *
 * As __icmp_send: TOS = (inner TOS & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL,
 * TTL 64, DF clear, the quote is the original IP packet cut so that the whole
 * error is at most 576 bytes (548 quoted bytes). The kernel may echo IP
 * options (ip_options_echo: record route, timestamps, source route); Saru
 * sends none. IP id 0 (the kernel draws one from ip_select_ident).
 * As icmp6_send: hop limit 64, traffic class and flow label 0, the quote cut
 * so that the error fits the IPv6 minimum MTU (1280 - 40 - 8 = 1232 bytes).
 * Checksums computed (ICMPv6 with the pseudo-header).
 *
 * Preconditions: `out` has room for the frame and does not overlap the input
 * frame; `srcAddr` is of the frame's family.
 */
export function buildTooBig(
  buf: Uint8Array,
  f: ParsedFrame,
  out: Uint8Array,
  outOff: number,
  mtu: number,
  srcAddr: Uint32Array,
  dstMac: Uint8Array,
  srcMac: Uint8Array,
): number {
  if (!mayAnswerWithIcmp(f)) return 0;
  const l3 = f.l3Off;
  if (f.family === 4) {
    const quote = Math.min(f.ipTotalLen, ICMP_MAX_LEN - IPV4_HLEN - ICMP_HLEN);
    const o = writeEthernet(buf, f, out, outOff, dstMac, srcMac, ETHERTYPE_IPV4);
    const ic = o + IPV4_HLEN;
    out[o] = 0x45;
    out[o + 1] = (buf[l3 + 1]! & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL;
    put16(out, o + 2, IPV4_HLEN + ICMP_HLEN + quote);
    put16(out, o + 4, 0);
    put16(out, o + 6, 0);
    out[o + 8] = DEFAULT_TTL;
    out[o + 9] = Proto.ICMP;
    put16(out, o + 10, 0);
    writeAddr(out, o + 12, 4, srcAddr, 0);
    writeAddr(out, o + 16, 4, f.saddr, 0);
    put16(out, o + 10, ipv4HeaderChecksum(out, o, IPV4_HLEN));
    out[ic] = ICMP_DEST_UNREACH;
    out[ic + 1] = ICMP_FRAG_NEEDED;
    put16(out, ic + 2, 0);
    put16(out, ic + 4, 0);
    put16(out, ic + 6, mtu - IPV4_HLEN);
    copyBytes(buf, l3, out, ic + ICMP_HLEN, quote);
    put16(out, ic + 2, transportChecksum(out, ic, ICMP_HLEN + quote, ic + 2, 0));
    return ic + ICMP_HLEN + quote - outOff;
  }
  const quote = Math.min(f.ipTotalLen, IPV6_MIN_MTU - IPV6_HLEN - ICMP_HLEN);
  const o = writeEthernet(buf, f, out, outOff, dstMac, srcMac, ETHERTYPE_IPV6);
  const ic = o + IPV6_HLEN;
  const len = ICMP_HLEN + quote;
  out[o] = 0x60;
  out[o + 1] = 0;
  out[o + 2] = 0;
  out[o + 3] = 0;
  put16(out, o + 4, len);
  out[o + 6] = Proto.ICMPV6;
  out[o + 7] = DEFAULT_TTL;
  writeAddr(out, o + 8, 6, srcAddr, 0);
  writeAddr(out, o + 24, 6, f.saddr, 0);
  const mtu6 = mtu - IPV6_HLEN;
  out[ic] = ICMPV6_PKT_TOOBIG;
  out[ic + 1] = 0;
  put16(out, ic + 2, 0);
  put16(out, ic + 4, mtu6 >>> 16);
  put16(out, ic + 6, mtu6 & 0xffff);
  copyBytes(buf, l3, out, ic + ICMP_HLEN, quote);
  const ps = pseudoHeaderSum(6, srcAddr, f.saddr, Proto.ICMPV6, len);
  put16(out, ic + 2, transportChecksum(out, ic, len, ic + 2, ps));
  return ic + len - outOff;
}
