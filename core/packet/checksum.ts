/**
 * Internet checksums: the full one's-complement sum (RFC 1071) and the
 * incremental update of RFC 1624 (eqn. 3: HC' = ~(~HC + ~m + m')), over
 * Uint8Array views. Owns no state; never allocates. Callers check bounds.
 */
import type { Family } from '../constants.js';

/**
 * One's-complement sum of `len` bytes at `buf[off..]` as big-endian 16-bit
 * words (an odd last byte is padded with zero), added to `sum`.
 * Returns an unfolded sum (< 2^53 for any frame); fold with csumFold.
 */
export function csumPartial(buf: Uint8Array, off: number, len: number, sum: number): number {
  let s = sum;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) s += buf[off + len - 1]! << 8;
  return s;
}

/** Fold a sum to 16 bits with end-around carry (not inverted). */
export function csumFold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

/** The checksum field value for a sum that excludes the field: ~fold(sum) & 0xffff. */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** Sum of the address words at `w[off..]` (2 halves per word; IPv4 uses word 3 only). */
export function csumAddr(family: Family, w: Uint32Array, off: number, sum: number): number {
  let s = sum;
  for (let i = family === 4 ? 3 : 0; i < 4; i++) {
    const x = w[off + i]!;
    s += (x >>> 16) + (x & 0xffff);
  }
  return s;
}

/**
 * Pseudo-header sum for TCP, UDP and ICMPv6 (RFC 793, RFC 768, RFC 8200 section 8.1).
 * `l4Len` is the transport length in bytes.
 */
export function pseudoHeaderSum(family: Family, saddr: Uint32Array, daddr: Uint32Array, protocol: number, l4Len: number): number {
  return csumAddr(family, daddr, 0, csumAddr(family, saddr, 0, 0)) + protocol + (l4Len >>> 16) + (l4Len & 0xffff);
}

/**
 * The IPv4 header checksum of the `hlen`-byte header at `off`, computed with
 * the checksum field (bytes 10-11) taken as zero. Returns the 16-bit value to store.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, hlen: number): number {
  const s = csumPartial(buf, off, hlen, 0) - ((buf[off + 10]! << 8) | buf[off + 11]!);
  return csumFinish(s);
}

/** True when the IPv4 header at `off` carries a correct checksum. */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number, hlen: number): boolean {
  return csumFold(csumPartial(buf, off, hlen, 0)) === 0xffff;
}

/**
 * The transport checksum (TCP, UDP, ICMPv6 with pseudo-header; ICMPv4 without:
 * pass `pseudo = 0`) of `len` bytes at `off`, with the 16-bit checksum field at
 * `fieldOff` taken as zero. Returns the value to store (a computed 0 is
 * returned as 0, UDP callers map it to 0xffff as RFC 768 requires).
 */
export function transportChecksum(buf: Uint8Array, off: number, len: number, fieldOff: number, pseudo: number): number {
  const s = csumPartial(buf, off, len, pseudo) - ((buf[fieldOff]! << 8) | buf[fieldOff + 1]!);
  return csumFinish(s);
}

/** True when the transport segment at `off` verifies against the pseudo-header sum. */
export function transportChecksumOk(buf: Uint8Array, off: number, len: number, pseudo: number): boolean {
  return csumFold(csumPartial(buf, off, len, pseudo)) === 0xffff;
}

/**
 * RFC 1624 eqn. 3: the new checksum after a 16-bit word of the covered data
 * changes from `oldVal` to `newVal`. `check` is the stored checksum field.
 */
export function csumReplace16(check: number, oldVal: number, newVal: number): number {
  return ~csumFold((~check & 0xffff) + (~oldVal & 0xffff) + (newVal & 0xffff)) & 0xffff;
}

/** RFC 1624 update for a 32-bit value (two 16-bit words) that changed. */
export function csumReplace32(check: number, oldVal: number, newVal: number): number {
  const s =
    (~check & 0xffff) +
    (~(oldVal >>> 16) & 0xffff) +
    (~oldVal & 0xffff) +
    (newVal >>> 16) +
    (newVal & 0xffff);
  return ~csumFold(s) & 0xffff;
}

/**
 * RFC 1624 update for an address that changed from `oldW[oOff..]` to
 * `newW[nOff..]` (1 word for IPv4, 4 for IPv6).
 */
export function csumReplaceAddr(
  check: number,
  family: Family,
  oldW: Uint32Array,
  oOff: number,
  newW: Uint32Array,
  nOff: number,
): number {
  let s = ~check & 0xffff;
  for (let i = family === 4 ? 3 : 0; i < 4; i++) {
    const o = oldW[oOff + i]!;
    const n = newW[nOff + i]!;
    s += (~(o >>> 16) & 0xffff) + (~o & 0xffff) + (n >>> 16) + (n & 0xffff);
  }
  return ~csumFold(s) & 0xffff;
}

/** Read the 16-bit big-endian value at `off`. */
export function get16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}

/** Write a 16-bit big-endian value at `off`. */
export function put16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}
