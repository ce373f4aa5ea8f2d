/**
 * IPv4 and IPv6 addresses as four 32-bit words, the form the hot path uses.
 * Owns parsing, formatting, comparison and masking of addresses; no state.
 *
 * Layout: words[0..3] hold the 16 bytes of the address in network order,
 * word i = bytes 4i..4i+3 read big-endian. An IPv4 address is stored as
 * the IPv4-mapped IPv6 address ::ffff:a.b.c.d = [0, 0, 0x0000ffff, v4], so
 * the IPv4 value is always words[3]. The family is carried separately.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ErrorCode, SaruError } from './errors.js';
import type { Family } from './constants.js';

/** Word 2 of an IPv4-mapped address. */
export const V4_MAPPED_WORD2 = 0x0000ffff;

/** An immutable parsed address for the model layer (services, real servers, config). */
export class IpAddress {
  readonly family: Family;
  /** Four words as described in the module comment. Do not mutate. */
  readonly words: Uint32Array;
  /** Canonical text (dotted quad, or RFC 5952 compressed IPv6). */
  readonly text: string;

  private constructor(family: Family, words: Uint32Array) {
    this.family = family;
    this.words = words;
    this.text = formatAddr(family, words, 0);
  }

  /**
   * Parse "192.0.2.1" or "2001:db8::1" (brackets allowed around IPv6).
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT when it is not an address.
   */
  static parse(text: string): IpAddress {
    const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    const words = new Uint32Array(4);
    if (isIPv4(t)) {
      const p = t.split('.').map(Number);
      words[2] = V4_MAPPED_WORD2;
      words[3] = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
      return new IpAddress(4, words);
    }
    if (isIPv6(t)) {
      parseV6(t, words);
      return new IpAddress(6, words);
    }
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `not an IP address: "${text}"`);
  }

  /** Build from words (copied). */
  static fromWords(family: Family, words: Uint32Array, off = 0): IpAddress {
    const w = new Uint32Array(4);
    if (family === 4) {
      w[2] = V4_MAPPED_WORD2;
      w[3] = words[off + 3]!;
    } else {
      w.set(words.subarray(off, off + 4));
    }
    return new IpAddress(family, w);
  }

  /** Build from the 4 or 16 bytes of an address. */
  static fromBytes(bytes: Uint8Array): IpAddress {
    const w = new Uint32Array(4);
    if (bytes.length === 4) {
      readAddr(bytes, 0, 4, w, 0);
      return new IpAddress(4, w);
    }
    if (bytes.length === 16) {
      readAddr(bytes, 0, 6, w, 0);
      return new IpAddress(6, w);
    }
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `address must be 4 or 16 bytes, got ${bytes.length}`);
  }

  /** The 4 or 16 bytes of the address in network order. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.family === 4 ? 4 : 16);
    writeAddr(out, 0, this.family, this.words, 0);
    return out;
  }

  equals(other: IpAddress): boolean {
    return this.family === other.family && addrEquals(this.words, 0, other.words, 0);
  }

  toString(): string {
    return this.text;
  }
}

function parseV6(t: string, out: Uint32Array): void {
  // Embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  let s = t;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const p = tail.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const halves = s.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const groups = new Array<number>(8).fill(0);
  head.forEach((g, i) => (groups[i] = parseInt(g, 16)));
  rest.forEach((g, i) => (groups[8 - rest.length + i] = parseInt(g, 16)));
  for (let i = 0; i < 4; i++) out[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
}

/**
 * Read an address of `family` from `buf[off..]` (4 or 16 bytes, network order)
 * into `out[outOff..outOff+3]`. The caller checks bounds.
 */
export function readAddr(buf: Uint8Array, off: number, family: Family, out: Uint32Array, outOff: number): void {
  if (family === 4) {
    out[outOff] = 0;
    out[outOff + 1] = 0;
    out[outOff + 2] = V4_MAPPED_WORD2;
    out[outOff + 3] = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
    return;
  }
  for (let i = 0; i < 4; i++) {
    const o = off + 4 * i;
    out[outOff + i] = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  }
}

/** Write the address in `words[wOff..]` to `buf[off..]` (4 or 16 bytes). The caller checks bounds. */
export function writeAddr(buf: Uint8Array, off: number, family: Family, words: Uint32Array, wOff: number): void {
  const first = family === 4 ? 3 : 0;
  let o = off;
  for (let i = first; i < 4; i++) {
    const w = words[wOff + i]!;
    buf[o++] = w >>> 24;
    buf[o++] = (w >>> 16) & 0xff;
    buf[o++] = (w >>> 8) & 0xff;
    buf[o++] = w & 0xff;
  }
}

/** Compare two 4-word addresses. */
export function addrEquals(a: Uint32Array, aOff: number, b: Uint32Array, bOff: number): boolean {
  return (
    a[aOff + 3] === b[bOff + 3] && a[aOff + 2] === b[bOff + 2] && a[aOff + 1] === b[bOff + 1] && a[aOff] === b[bOff]
  );
}

/**
 * Keep the first `prefixLen` bits of the address in `src` and write the result to `dst`
 * (which may be `src`). For IPv4, `prefixLen` counts IPv4 bits (0..32); for IPv6, 0..128.
 * This is IPVS's persistent netmask (ip_vs_core.c ip_vs_sched_persist).
 */
export function maskAddr(family: Family, src: Uint32Array, sOff: number, prefixLen: number, dst: Uint32Array, dOff: number): void {
  const bits = family === 4 ? prefixLen + 96 : prefixLen;
  for (let i = 0; i < 4; i++) {
    const keep = bits - 32 * i;
    const mask = keep >= 32 ? 0xffffffff : keep <= 0 ? 0 : (0xffffffff << (32 - keep)) >>> 0;
    dst[dOff + i] = (src[sOff + i]! & mask) >>> 0;
  }
}

/** Format the address at `words[off..]`. Allocates: not for the hot path. */
export function formatAddr(family: Family, words: Uint32Array, off: number): string {
  if (family === 4) {
    const v = words[off + 3]!;
    return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 4; i++) {
    const w = words[off + i]!;
    g.push(w >>> 16, w & 0xffff);
  }
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** "addr:port", with brackets for IPv6, as ipvsadm prints it. */
export function formatAddrPort(family: Family, words: Uint32Array, off: number, port: number): string {
  const a = formatAddr(family, words, off);
  return family === 6 ? `[${a}]:${port}` : `${a}:${port}`;
}
