/**
 * Writing synthetic frames: an Ethernet/IPv4/TCP frame with correct IPv4
 * header and TCP checksums, written in place. For traffic generators (the
 * benchmarks, the in-process demo and simulator), not the forwarding path.
 * No allocation.
 */
import { ipv4HeaderChecksum, pseudoHeaderSum, put16, transportChecksum } from './checksum.js';

/** One synthetic IPv4/TCP segment. Addresses are IPv4 values as unsigned 32-bit numbers. */
export interface Tcp4Spec {
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  /** TCP flags byte (TcpFlag bits). */
  flags: number;
  seq?: number;
  ack?: number;
  /** Payload bytes (zeros) after the 20-byte TCP header. Default 0. */
  payloadLen?: number;
}

const scratchWords = new Uint32Array([0, 0, 0xffff, 0]);
const scratchWords2 = new Uint32Array([0, 0, 0xffff, 0]);

/**
 * Write the frame at buf[off..]: 14 bytes Ethernet, 20 bytes IPv4 (DF set,
 * TTL 64), 20 bytes TCP, then `payloadLen` zero bytes. Returns the frame
 * length in bytes. The caller provides room (54 + payloadLen bytes).
 */
export function writeTcp4Frame(buf: Uint8Array, off: number, s: Tcp4Spec): number {
  const payload = s.payloadLen ?? 0;
  buf.set(s.dstMac.subarray(0, 6), off);
  buf.set(s.srcMac.subarray(0, 6), off + 6);
  put16(buf, off + 12, 0x0800);
  const ip = off + 14;
  buf[ip] = 0x45;
  buf[ip + 1] = 0;
  put16(buf, ip + 2, 40 + payload);
  put16(buf, ip + 4, 0);
  put16(buf, ip + 6, 0x4000);
  buf[ip + 8] = 64;
  buf[ip + 9] = 6;
  put16(buf, ip + 10, 0);
  put32(buf, ip + 12, s.saddr);
  put32(buf, ip + 16, s.daddr);
  put16(buf, ip + 10, ipv4HeaderChecksum(buf, ip, 20));
  const tcp = ip + 20;
  put16(buf, tcp, s.sport);
  put16(buf, tcp + 2, s.dport);
  put32(buf, tcp + 4, s.seq ?? 0);
  put32(buf, tcp + 8, s.ack ?? 0);
  buf[tcp + 12] = 5 << 4;
  buf[tcp + 13] = s.flags;
  put16(buf, tcp + 14, 65535);
  put16(buf, tcp + 16, 0);
  put16(buf, tcp + 18, 0);
  buf.fill(0, tcp + 20, tcp + 20 + payload);
  scratchWords[3] = s.saddr >>> 0;
  scratchWords2[3] = s.daddr >>> 0;
  const pseudo = pseudoHeaderSum(4, scratchWords, scratchWords2, 6, 20 + payload);
  put16(buf, tcp + 16, transportChecksum(buf, tcp, 20 + payload, tcp + 16, pseudo));
  return 54 + payload;
}

function put32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}
