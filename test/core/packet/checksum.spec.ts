/**
 * Checksum primitives (core/packet/checksum.ts): RFC 1071 vectors, a naive
 * reference, tshark's own computation as the oracle, and RFC 1624 incremental
 * updates against full recomputation (fast-check), including the
 * 0x0000/0xffff corner.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { IpAddress } from '../../../core/addr.js';
import { Proto } from '../../../core/constants.js';
import {
  csumFinish, csumFold, csumPartial, csumReplace16, csumReplace32, csumReplaceAddr, get16,
  ipv4HeaderChecksum, ipv4HeaderChecksumOk, pseudoHeaderSum, put16, transportChecksum, transportChecksumOk,
} from '../../../core/packet/index.js';
import { PacketBuilder } from '../../helpers/packet-builder.js';
import { NO_REASSEMBLY, tsharkChecksumsOk, tsharkFields } from '../../helpers/tshark.js';

/** Bit-by-bit reference: RFC 1071 one's-complement sum of 16-bit words, folded after every add. */
function refSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    const w = (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
    s += w;
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return s;
}

const v4addr = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const v6addr = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => {
  g[0] = 0x2001;
  return g.map((x) => x.toString(16)).join(':');
});
const payload = fc.uint8Array({ maxLength: 80 });

/** Random correct frames of every checksummed kind. */
const anyFrame = fc.oneof(
  fc.record({ s: v4addr, d: v4addr, ttl: fc.nat(255), tos: fc.nat(255), id: fc.nat(0xffff), p: payload, sp: fc.nat(0xffff), dp: fc.nat(0xffff) })
    .map((r) => new PacketBuilder().ipv4({ src: r.s, dst: r.d, ttl: r.ttl, tos: r.tos, id: r.id }).tcp({ sport: r.sp, dport: r.dp, flags: 'PA', payload: r.p }).build()),
  fc.record({ s: v4addr, d: v4addr, p: payload, sp: fc.nat(0xffff), dp: fc.nat(0xffff), nop: fc.nat(10) })
    .map((r) => new PacketBuilder().ipv4({ src: r.s, dst: r.d, options: new Uint8Array(r.nop * 4).fill(1) }).udp({ sport: r.sp, dport: r.dp, payload: r.p }).build()),
  fc.record({ s: v6addr, d: v6addr, p: payload, sp: fc.nat(0xffff), dp: fc.nat(0xffff) })
    .map((r) => new PacketBuilder().ipv6({ src: r.s, dst: r.d }).tcp({ sport: r.sp, dport: r.dp, flags: 'A', payload: r.p }).build()),
  fc.record({ s: v6addr, d: v6addr, p: payload, sp: fc.nat(0xffff), dp: fc.nat(0xffff) })
    .map((r) => new PacketBuilder().ipv6({ src: r.s, dst: r.d }).udp({ sport: r.sp, dport: r.dp, payload: r.p }).build()),
  fc.record({ s: v4addr, d: v4addr, p: payload, id: fc.nat(0xffff) })
    .map((r) => new PacketBuilder().ipv4({ src: r.s, dst: r.d }).icmp({ type: 8, id: r.id, seq: 1, payload: r.p }).build()),
  fc.record({ s: v6addr, d: v6addr, p: payload, id: fc.nat(0xffff) })
    .map((r) => new PacketBuilder().ipv6({ src: r.s, dst: r.d }).icmp({ type: 128, id: r.id, seq: 1, payload: r.p }).build()),
);

describe('core/packet/checksum', () => {
  it('csumPartial: the RFC 1071 section 3 example', () => {
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    assert.equal(csumFold(csumPartial(b, 0, 8, 0)), 0xddf2);
    assert.equal(csumFinish(csumPartial(b, 0, 8, 0)), 0x220d);
  });

  it('csumPartial: an odd last byte is padded with zero; a sum may be split at even offsets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(5), (b, cutAt, off) => {
        const buf = new Uint8Array(off + b.length);
        buf.set(b, off);
        const whole = csumFold(csumPartial(buf, off, b.length, 0));
        assert.equal(whole, refSum(buf, off, b.length));
        const c = Math.min(b.length, (cutAt % (b.length + 1)) & ~1);
        assert.equal(csumFold(csumPartial(buf, off + c, b.length - c, csumPartial(buf, off, c, 0))), whole);
      }),
      { numRuns: 2000 },
    );
  });

  it('ipv4HeaderChecksum and transportChecksum equal what tshark computes', function () {
    this.timeout(60000);
    const frames = fc.sample(anyFrame, { numRuns: 300, seed: 1624 });
    // Corrupt every checksum field so tshark reports the value it calculated; ours must ignore the field.
    const bad = frames.map((f) => {
      const c = new Uint8Array(f);
      const ipv4 = get16(c, 12) === 0x0800;
      const l3 = 14;
      const hlen = ipv4 ? (c[l3]! & 15) * 4 : 40;
      const proto = ipv4 ? c[l3 + 9]! : c[l3 + 6]!;
      const l4 = l3 + hlen;
      const field = l4 + (proto === Proto.TCP ? 16 : proto === Proto.UDP ? 6 : 2);
      if (ipv4) put16(c, l3 + 10, get16(c, l3 + 10) ^ 0x8001);
      put16(c, field, get16(c, field) ^ 0x8001);
      return { c, ipv4, l3, hlen, proto, l4, field };
    });
    const rows = tsharkFields(bad.map((b) => b.c), ['ip.checksum_calculated', 'tcp.checksum_calculated', 'udp.checksum_calculated', 'icmp.checksum.status', 'icmpv6.checksum.status'], NO_REASSEMBLY);
    bad.forEach((b, i) => {
      const r = rows[i]!;
      const { c, ipv4, l3, hlen, proto, l4, field } = b;
      if (ipv4) assert.equal(Number(r[0]), ipv4HeaderChecksum(c, l3, hlen), 'ip');
      const fam = ipv4 ? 4 : 6;
      const sa = IpAddress.fromBytes(c.subarray(l3 + (ipv4 ? 12 : 8), l3 + (ipv4 ? 16 : 24))).words;
      const da = IpAddress.fromBytes(c.subarray(l3 + (ipv4 ? 16 : 24), l3 + (ipv4 ? 20 : 40))).words;
      const len = c.length - l4;
      const pseudo = proto === Proto.ICMP ? 0 : pseudoHeaderSum(fam, sa, da, proto, len);
      const ours = transportChecksum(c, l4, len, field, pseudo);
      if (proto === Proto.TCP) assert.equal(Number(r[1]), ours, 'tcp');
      else if (proto === Proto.UDP) assert.equal(Number(r[2]), ours === 0 ? 0xffff : ours, 'udp');
      else assert.equal(r[ipv4 ? 3 : 4], '0', 'icmp: tshark sees the corrupted checksum as bad');
      // And the original frame verifies with our checkers.
      const f = frames[i]!;
      if (ipv4) assert.ok(ipv4HeaderChecksumOk(f, l3, hlen));
      assert.ok(transportChecksumOk(f, l4, len, pseudo));
    });
    assert.ok(tsharkChecksumsOk(frames).every(Boolean), 'tshark: original frames good');
  });

  describe('RFC 1624 incremental update equals full recomputation', () => {
    /** A segment of random 16-bit words with a 16-bit checksum field at word 1 and a nonzero word 0 (as a pseudo-header protocol is). */
    const segment = fc.array(fc.nat(0xffff), { minLength: 4, maxLength: 40 }).map((w) => {
      const b = new Uint8Array(w.length * 2);
      w.forEach((x, i) => put16(b, 2 * i, x));
      if (get16(b, 0) === 0) put16(b, 0, 6);
      put16(b, 2, transportChecksum(b, 0, b.length, 2, 0));
      return b;
    });
    const full = (b: Uint8Array): number => transportChecksum(b, 0, b.length, 2, 0);

    it('csumReplace16 at any word, any value', () => {
      fc.assert(
        fc.property(segment, fc.nat(), fc.nat(0xffff), (b, at, v) => {
          const i = 2 + 2 * (at % (b.length / 2 - 2)) + 2; // any word after the field
          const old = get16(b, i);
          put16(b, i, v);
          assert.equal(csumReplace16(get16(b, 2), old, v), full(b));
        }),
        { numRuns: 5000 },
      );
    });

    it('csumReplace32 at any 16-bit-aligned position', () => {
      fc.assert(
        fc.property(segment.filter((b) => b.length >= 10), fc.nat(), fc.nat(0xffffffff), (b, at, v) => {
          const i = 4 + 2 * (at % ((b.length - 4) / 2 - 1));
          const old = ((get16(b, i) << 16) | get16(b, i + 2)) >>> 0;
          put16(b, i, v >>> 16);
          put16(b, i + 2, v & 0xffff);
          assert.equal(csumReplace32(get16(b, 2), old, v >>> 0), full(b));
        }),
        { numRuns: 5000 },
      );
    });

    it('csumReplaceAddr + csumReplace16: NAT rewrite of a TCP/UDP destination (v4 and v6) equals a rebuilt packet', () => {
      fc.assert(
        fc.property(
          fc.boolean(), fc.boolean(), v4addr, v4addr, v4addr, v6addr, v6addr, v6addr, fc.nat(0xffff), fc.nat(0xffff), payload,
          (six, udp, s4, d4, n4, s6, d6, n6, dport, ndport, p) => {
            const [s, d, n] = six ? [s6, d6, n6] : [s4, d4, n4];
            const fam = six ? 6 : 4;
            const mk = (dst: string, dp: number): Buffer => {
              const b = new PacketBuilder();
              if (six) b.ipv6({ src: s, dst });
              else b.ipv4({ src: s, dst });
              return (udp ? b.udp({ sport: 1234, dport: dp, payload: p }) : b.tcp({ sport: 1234, dport: dp, flags: 'A', payload: p })).buildIp();
            };
            const before = mk(d, dport);
            const after = mk(n, ndport);
            const l4 = six ? 40 : 20;
            const field = l4 + (udp ? 6 : 16);
            let c = csumReplaceAddr(get16(before, field), fam, IpAddress.parse(d).words, 0, IpAddress.parse(n).words, 0);
            c = csumReplace16(c, dport, ndport);
            if (udp && c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
            assert.equal(c, get16(after, field));
            if (!six) {
              const h = csumReplaceAddr(get16(before, 10), 4, IpAddress.parse(d).words, 0, IpAddress.parse(n).words, 0);
              assert.equal(h, get16(after, 10));
            }
          },
        ),
        { numRuns: 3000 },
      );
    });

    it('the 0x0000/0xffff corner: only an all-zero result diverges, and then only in representation', () => {
      // Data whose sum is 0xffff has checksum 0x0000; eqn. 3 keeps +0/-0 straight in that case.
      const b = new Uint8Array(6);
      put16(b, 0, 0xfffe);
      put16(b, 4, 0x0001);
      put16(b, 2, transportChecksum(b, 0, 6, 2, 0));
      assert.equal(get16(b, 2), 0x0000);
      const c1 = csumReplace16(0x0000, 0x0001, 0x0002);
      put16(b, 4, 2);
      assert.equal(c1, transportChecksum(b, 0, 6, 2, 0));
      // A stored 0xffff (UDP's encoding of a computed 0) is the same one's-complement value as 0x0000.
      assert.equal(csumReplace16(0xffff, 0x0001, 0x0002), c1);
      assert.equal(c1, 0xfffe);
      // If every covered word becomes zero, full recomputation gives 0xffff and eqn. 3 gives 0x0000
      // (equal mod 0xffff). Unreachable for TCP/UDP/ICMPv6: the pseudo-header protocol is nonzero,
      // and an IPv4 header's version/IHL byte is nonzero.
      const z = Uint8Array.of(0x00, 0x07, 0, 0);
      put16(z, 2, transportChecksum(z, 0, 4, 2, 0));
      const inc = csumReplace16(get16(z, 2), 0x0007, 0x0000);
      put16(z, 0, 0);
      const fullZero = transportChecksum(z, 0, 4, 2, 0);
      assert.equal(fullZero, 0xffff);
      assert.equal(inc, 0x0000);
      assert.equal(inc % 0xffff, fullZero % 0xffff);
    });

    it('property over arbitrary data (zero word 0 allowed): exact, or equal mod 0xffff when all data is zero', () => {
      fc.assert(
        fc.property(fc.array(fc.nat(0xffff), { minLength: 2, maxLength: 6 }), fc.nat(), fc.nat(0xffff), (w, at, v) => {
          const b = new Uint8Array(2 + 2 * w.length);
          w.forEach((x, i) => put16(b, 2 + 2 * i, x));
          put16(b, 0, transportChecksum(b, 0, b.length, 0, 0));
          const i = 2 + 2 * (at % w.length);
          const inc = csumReplace16(get16(b, 0), get16(b, i), v);
          put16(b, i, v);
          const f = transportChecksum(b, 0, b.length, 0, 0);
          if (csumPartial(b, 2, b.length - 2, 0) === 0) assert.equal(inc % 0xffff, f % 0xffff);
          else assert.equal(inc, f);
        }),
        { numRuns: 5000, examples: [[[0x0007, 0], 0, 0], [[0xffff, 0], 1, 0], [[0, 0], 0, 0xffff]] },
      );
    });
  });
});
