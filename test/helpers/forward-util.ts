/**
 * Test-only helpers for the forwarding rewrites (core/forward.ts): parse a
 * frame or fail, mirror a packet (swap source and destination address and
 * port, which leaves every checksum valid), and check every checksum of a
 * frame with a full recomputation. Allocates freely; never on the data path.
 */
import assert from 'node:assert/strict';
import { Drop, ParsedFrame, parseFrame } from '../../core/packet/index.js';
import {
  get16,
  ipv4HeaderChecksum,
  pseudoHeaderSum,
  put16,
  transportChecksum,
} from '../../core/packet/checksum.js';
import { Proto } from '../../core/constants.js';

/** Parse `frame` into a fresh ParsedFrame and assert Drop.OK. */
export function mustParse(frame: Uint8Array, off = 0, len = frame.length - off): ParsedFrame {
  const f = new ParsedFrame();
  const r = parseFrame(frame, off, len, f);
  assert.equal(r, Drop.OK, `parseFrame returned drop reason ${r}`);
  return f;
}

/**
 * Parse a frame whose L3 header is all we need (an IP-in-IP frame, protocol
 * 4 or 41, which the parser rejects as UNSUPPORTED_PROTOCOL after filling the
 * IP fields); assert OK or that.
 */
export function parseL3(frame: Uint8Array, off = 0, len = frame.length - off): ParsedFrame {
  const f = new ParsedFrame();
  const r = parseFrame(frame, off, len, f);
  assert.ok(r === Drop.OK || r === Drop.UNSUPPORTED_PROTOCOL, `parseFrame returned drop reason ${r}`);
  return f;
}

/** Swap `len` bytes at a and b. */
function swap(buf: Uint8Array, a: number, b: number, len: number): void {
  for (let i = 0; i < len; i++) {
    const t = buf[a + i]!;
    buf[a + i] = buf[b + i]!;
    buf[b + i] = t;
  }
}

/**
 * Turn a packet into its reply in place: swap the IP addresses and the
 * TCP/UDP ports. One's-complement sums are commutative, so every checksum
 * stays valid without being touched.
 */
export function mirror(buf: Uint8Array, f: ParsedFrame): void {
  if (f.family === 4) swap(buf, f.l3Off + 12, f.l3Off + 16, 4);
  else swap(buf, f.l3Off + 8, f.l3Off + 24, 16);
  if (f.protocol === Proto.TCP || f.protocol === Proto.UDP) swap(buf, f.l4Off, f.l4Off + 2, 2);
}

/** The value a full recomputation gives for the transport checksum of `f` (UDP 0 mapped to 0xffff). */
export function fullTransportChecksum(buf: Uint8Array, f: ParsedFrame): number {
  const fieldOff = f.protocol === Proto.TCP ? 16 : f.protocol === Proto.UDP ? 6 : 2;
  const pseudo =
    f.protocol === Proto.ICMP ? 0 : pseudoHeaderSum(f.family, f.saddr, f.daddr, f.protocol, f.l4Len);
  const c = transportChecksum(buf, f.l4Off, f.l4Len, f.l4Off + fieldOff, pseudo);
  return f.protocol === Proto.UDP && c === 0 ? 0xffff : c;
}

/** The stored transport checksum of `f`. */
export function storedTransportChecksum(buf: Uint8Array, f: ParsedFrame): number {
  const fieldOff = f.protocol === Proto.TCP ? 16 : f.protocol === Proto.UDP ? 6 : 2;
  return get16(buf, f.l4Off + fieldOff);
}

/**
 * Assert every checksum in the (re-parsed) frame equals a full recomputation:
 * IPv4 header, transport (UDP zero allowed over IPv4 when `udpZero`), and for
 * ICMP errors the embedded IPv4 header.
 */
export function assertChecksumsFull(buf: Uint8Array, f: ParsedFrame, udpZero = false): void {
  if (f.family === 4) {
    assert.equal(get16(buf, f.l3Off + 10), ipv4HeaderChecksum(buf, f.l3Off, f.ipHeaderLen), 'IPv4 header checksum');
  }
  const stored = storedTransportChecksum(buf, f);
  if (f.protocol === Proto.UDP && udpZero) assert.equal(stored, 0, 'UDP zero checksum kept');
  else assert.equal(stored, fullTransportChecksum(buf, f), `transport (${f.protocol}) checksum`);
  if (f.hasInner && f.innerFamily === 4) {
    assert.equal(
      get16(buf, f.innerL3Off + 10),
      ipv4HeaderChecksum(buf, f.innerL3Off, f.innerIpHeaderLen),
      'embedded IPv4 header checksum',
    );
  }
}

/** A copy of `frame` with both MAC addresses zeroed, for comparisons that ignore L2. */
export function withoutMacs(frame: Uint8Array, frameOff = 0): Buffer {
  const b = Buffer.from(frame);
  b.fill(0, frameOff, frameOff + 12);
  return b;
}

/** Overwrite a 16-bit field (test mutations). */
export { put16 };
