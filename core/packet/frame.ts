/**
 * The result of parsing one frame in place (core/packet/parse.ts fills it),
 * and the reasons a frame is dropped. One ParsedFrame is reused for every
 * frame: offsets point into the caller's buffer; nothing is copied except
 * addresses into the preallocated word arrays.
 */
import type { Family } from '../constants.js';

/**
 * Why a frame was not accepted by the parser. 0 is success. Each value is an
 * index into the engine's per-reason drop counters; names are in DROP_REASON_NAMES.
 */
export const Drop = {
  OK: 0,
  /** Shorter than an Ethernet header (or the 802.1Q tag). */
  TRUNCATED_ETHERNET: 1,
  /** EtherType we do not forward (not IPv4/IPv6/ARP). */
  UNSUPPORTED_ETHERTYPE: 2,
  /** Shorter than the minimum IP header, or version field wrong. */
  TRUNCATED_IP: 3,
  /** IPv4 IHL < 5, or header longer than the packet. */
  BAD_IP_HEADER_LENGTH: 4,
  /** IPv4 total length / IPv6 payload length disagrees with the frame. */
  BAD_IP_TOTAL_LENGTH: 5,
  /** IPv4 header checksum wrong. */
  BAD_IP_CHECKSUM: 6,
  /** IPv4 options malformed (option length runs past the header). */
  BAD_IP_OPTIONS: 7,
  /** IPv6 extension header chain malformed or too long. */
  BAD_IPV6_EXTENSION: 8,
  /** Transport header shorter than its minimum. */
  TRUNCATED_L4: 9,
  /** TCP data offset < 5 or past the segment. */
  BAD_TCP_HEADER_LENGTH: 10,
  /** TCP flag combination that is never legal (SYN+FIN, SYN+RST, no flags, ...). */
  BAD_TCP_FLAGS: 11,
  /** UDP length field disagrees with the IP payload. */
  BAD_UDP_LENGTH: 12,
  /** ICMP error whose embedded header is truncated or malformed. */
  BAD_ICMP_INNER: 13,
  /** ARP frame malformed. */
  BAD_ARP: 14,
  /** Non-first fragment: no transport header to classify. */
  FRAGMENT: 15,
  /** IP protocol we do not balance. */
  UNSUPPORTED_PROTOCOL: 16,
  /** Frame not addressed to the shared MAC. */
  NOT_OUR_MAC: 17,
  /** Flow in a bucket another director owns. */
  NOT_OUR_SLICE: 18,
  /** No virtual service and no connection for it. */
  NO_SERVICE: 19,
  /** Scheduler and fallback found no real server. */
  NO_REAL_SERVER: 20,
  /** Connection table full: new connection dropped. */
  TABLE_FULL: 21,
  /** Mid-connection TCP packet with no entry, policy "drop". */
  NO_CONNECTION: 22,
  /** Real server's MAC not yet resolved. */
  NO_NEIGHBOUR: 23,
  /** Transmit queue full. */
  TX_FULL: 24,
  /** Tunnel encapsulation exceeds the MTU and DF is set: ICMP sent instead. */
  TOO_BIG: 25,
  /**
   * Packet in a bucket this director is handing over (graceful leave, join,
   * weight change) that is not one of the connections it created there: the
   * new owner takes new connections, this director only finishes its own.
   */
  HANDED_OVER: 26,
  /**
   * Packet of a connection whose real server was removed from a service with
   * expire_nodest_conn (a failed health check with quiescent=no): the entry is
   * expired and the packet dropped, as IPVS's sysctl expire_nodest_conn.
   */
  NODEST_EXPIRED: 27,
} as const;
export type Drop = (typeof Drop)[keyof typeof Drop];

export const DROP_REASON_COUNT = 28;

/** snake_case names of the Drop values, indexed by value (for saruadm and metrics). */
export const DROP_REASON_NAMES: readonly string[] = Object.entries(Drop)
  .sort((a, b) => a[1] - b[1])
  .map(([k]) => k.toLowerCase());

/** EtherTypes. */
export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
} as const;

/** TCP flag bits (byte 13 of the TCP header). */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** Parsed view of one frame; reused, filled by parseFrame. All offsets are absolute in the buffer. */
export class ParsedFrame {
  /** Offset of the frame (destination MAC) in the buffer. */
  frameOff = 0;
  /** Frame length in bytes. */
  frameLen = 0;
  /** EtherType after any 802.1Q/802.1ad tags. */
  etherType = 0;
  /** VLAN id of the outermost 802.1Q tag, or -1 when untagged. */
  vlanId = -1;
  /** Offset of the L3 (IP or ARP) header. */
  l3Off = 0;

  // ---- IP ----
  family: Family = 4;
  /** IPv4 header length incl. options, or IPv6 fixed header + extension headers, in bytes. */
  ipHeaderLen = 0;
  /** Length of the IP packet (header + payload) in bytes, from the IP header. */
  ipTotalLen = 0;
  /** Transport protocol (after IPv6 extension headers). */
  protocol = 0;
  /** Offset of the transport header. */
  l4Off = 0;
  /** Length of the transport header + payload in bytes. */
  l4Len = 0;
  /** TTL / hop limit. */
  ttl = 0;
  /** IPv4 DF bit set (always true for IPv6, which routers never fragment). */
  dontFragment = false;
  /** Part of a fragmented datagram (IPv4 MF or offset, or IPv6 Fragment header). */
  isFragment = false;
  /** True for the first fragment (offset 0), which carries the transport header. */
  firstFragment = true;
  readonly saddr = new Uint32Array(4);
  readonly daddr = new Uint32Array(4);

  // ---- transport ----
  sport = 0;
  dport = 0;
  /** TCP flags byte. */
  tcpFlags = 0;
  /** TCP header length (data offset * 4). */
  tcpHeaderLen = 0;
  /** ICMP/ICMPv6 type and code. */
  icmpType = 0;
  icmpCode = 0;
  /** ICMP echo identifier (used as the "port" of ICMP echo flows), else 0. */
  icmpId = 0;

  // ---- inner header carried by an ICMP error ----
  /** The frame is an ICMP/ICMPv6 error carrying the header of the packet it is about. */
  hasInner = false;
  innerL3Off = 0;
  innerFamily: Family = 4;
  innerProtocol = 0;
  innerIpHeaderLen = 0;
  /** Offset of the inner transport header (at least 8 bytes of it are present). */
  innerL4Off = 0;
  readonly innerSaddr = new Uint32Array(4);
  readonly innerDaddr = new Uint32Array(4);
  innerSport = 0;
  innerDport = 0;

  // ---- ARP (etherType 0x0806) ----
  arpOp = 0;
  /** Sender/target hardware address offsets (6 bytes each). */
  arpShaOff = 0;
  arpThaOff = 0;
  /** Sender/target protocol address (IPv4), as a number. */
  arpSpa = 0;
  arpTpa = 0;
}
