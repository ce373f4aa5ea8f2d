/**
 * Fuzzing parseFrame (fast-check): random bytes, header-shaped random bytes,
 * and random mutations/truncations of valid frames. The parser must never
 * throw, must return a known Drop, must read only indices in [off, off+len)
 * (proved with a Proxy over the buffer that records every index read), and
 * on OK its offsets must describe a consistent layout inside the frame.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { DROP_REASON_COUNT, Drop, ParsedFrame, parseFrame } from '../../../core/packet/index.js';
import { fixIpv4Checksum } from '../../helpers/packet-builder.js';
import { validFixtures } from './fixtures.js';

interface Recorder {
  view: Uint8Array;
  min: number;
  max: number;
  reads: number;
  other: string[];
}

/** A Proxy over `u8` recording the lowest and highest integer index read (any other integer-like key too). */
function recording(u8: Uint8Array): Recorder {
  const rec: Recorder = { view: u8, min: Infinity, max: -Infinity, reads: 0, other: [] };
  rec.view = new Proxy(u8, {
    get(target, key) {
      if (typeof key === 'string') {
        const n = Number(key);
        if (key !== '' && !Number.isNaN(n)) {
          rec.reads++;
          if (n < rec.min) rec.min = n;
          if (n > rec.max) rec.max = n;
        } else if (key !== 'length') {
          rec.other.push(key);
        }
      }
      return Reflect.get(target, key);
    },
    set() {
      throw new Error('parser wrote to the frame buffer');
    },
  });
  return rec;
}

const out = new ParsedFrame();

/** Parse `frame` placed at `pre` bytes into a buffer with `post` bytes after it, under the recording Proxy. */
function fuzzOne(frame: Uint8Array, pre: number, post: number, fill: number): Drop {
  const buf = new Uint8Array(pre + frame.length + post).fill(fill);
  buf.set(frame, pre);
  const rec = recording(buf);
  const off = pre;
  const len = frame.length;
  const drop = parseFrame(rec.view, off, len, out);
  assert.ok(Number.isInteger(drop) && drop >= 0 && drop < DROP_REASON_COUNT, `drop ${drop}`);
  if (rec.reads > 0) {
    assert.ok(rec.min >= off, `read index ${rec.min} before off ${off}`);
    assert.ok(rec.max < off + len, `read index ${rec.max} at/after end ${off + len}`);
  }
  assert.deepEqual(rec.other, [], 'parser touched non-index properties');
  if (drop === Drop.OK) checkLayout(off, len);
  return drop;
}

/** On success the offsets describe headers that nest inside the frame. */
function checkLayout(off: number, len: number): void {
  const end = off + len;
  const p = out;
  assert.equal(p.frameOff, off);
  assert.ok(p.l3Off >= off + 14 && p.l3Off <= off + 22);
  if (p.etherType === 0x0806) {
    assert.ok(p.l3Off + 28 <= end);
    assert.ok(p.arpOp === 1 || p.arpOp === 2);
    return;
  }
  assert.ok(p.etherType === 0x0800 || p.etherType === 0x86dd);
  assert.equal(p.family, p.etherType === 0x0800 ? 4 : 6);
  assert.ok(p.l3Off + p.ipTotalLen <= end, 'IP packet inside frame');
  assert.equal(p.l4Off, p.l3Off + p.ipHeaderLen);
  assert.equal(p.l4Off + p.l4Len, p.l3Off + p.ipTotalLen);
  assert.ok(p.ipHeaderLen >= (p.family === 4 ? 20 : 40));
  if (!p.firstFragment) {
    assert.ok(p.isFragment);
    assert.equal(p.sport | p.dport | p.tcpFlags | p.icmpType, 0);
    return;
  }
  if (p.protocol === 6) {
    assert.ok(p.tcpHeaderLen >= 20 && p.tcpHeaderLen <= p.l4Len);
  } else if (p.protocol === 17) {
    assert.ok(p.l4Len >= 8);
  } else {
    assert.ok(p.protocol === (p.family === 4 ? 1 : 58));
    assert.ok(p.l4Len >= 8);
    if (p.hasInner) {
      assert.equal(p.innerL3Off, p.l4Off + 8);
      assert.equal(p.innerL4Off, p.innerL3Off + p.innerIpHeaderLen);
      assert.ok(p.innerL4Off + 8 <= p.l4Off + p.l4Len, 'inner transport 8 bytes inside');
    }
  }
}

const ETHERTYPES = [0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8];
const valid = validFixtures().map((f) => f.input);

describe('core/packet/parse fuzz', function () {
  this.timeout(120000);

  it('the Proxy recorder sees reads (self-test)', () => {
    const rec = recording(new Uint8Array(4));
    void rec.view[2];
    void rec.view[3];
    assert.deepEqual([rec.min, rec.max, rec.reads], [2, 3, 2]);
    // And an out-of-range read by a parser would be caught:
    const f = valid[0]!;
    const r2 = recording(f);
    parseFrame(r2.view, 0, f.length, out);
    assert.ok(r2.reads > 20 && r2.min === 12 && r2.max < f.length); // MACs are not read
  });

  it('random bytes at random offsets: no throw, reads inside the frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 160 }), fc.nat(40), fc.nat(40), fc.nat(255), (frame, pre, post, fill) => {
        fuzzOne(frame, pre, post, fill);
      }),
      { numRuns: 5000 },
    );
  });

  it('header-shaped random bytes (EtherType, IP version, IPv4 checksum fixed): no throw, reads inside', () => {
    const seen = new Set<number>();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 14, maxLength: 200 }),
        fc.constantFrom(...ETHERTYPES),
        fc.constantFrom(...ETHERTYPES),
        fc.boolean(),
        fc.nat(8),
        (frame, et, et2, fix, pre) => {
          const f = new Uint8Array(frame);
          f[12] = et >> 8;
          f[13] = et & 0xff;
          let l3 = 14;
          if ((et === 0x8100 || et === 0x88a8) && f.length >= 18) {
            f[16] = et2 >> 8;
            f[17] = et2 & 0xff;
            l3 = 18;
          }
          const t = l3 === 18 ? et2 : et;
          if (t === 0x0800 && f.length > l3) {
            f[l3] = 0x40 | (f[l3]! & 0x0f);
            if (f.length >= l3 + 20 && fix) {
              const ihl = (f[l3]! & 15) * 4;
              const total = f.length - l3;
              f[l3 + 2] = total >> 8;
              f[l3 + 3] = total & 0xff;
              if (ihl >= 20 && l3 + ihl <= f.length) fixIpv4Checksum(f, l3);
            }
          } else if (t === 0x86dd && f.length > l3 + 6) {
            f[l3] = 0x60 | (f[l3]! & 0x0f);
            if (fix && f.length >= l3 + 40) {
              const pl = f.length - l3 - 40;
              f[l3 + 4] = pl >> 8;
              f[l3 + 5] = pl & 0xff;
            }
          }
          seen.add(fuzzOne(f, pre, 3, 0xab));
        },
      ),
      { numRuns: 8000 },
    );
    // The generator reaches deep into the parser, not only the first checks.
    assert.ok(seen.size >= 8, `only ${[...seen].join(',')}`);
  });

  it('mutations and truncations of valid frames: no throw, reads inside, layout consistent on OK', () => {
    const seen = new Set<number>();
    fc.assert(
      fc.property(
        fc.nat(valid.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.boolean(),
        fc.nat(16),
        (which, edits, cutAt, fix, pre) => {
          const src = valid[which]!;
          let f = new Uint8Array(src);
          for (const [pos, v] of edits) f[pos % f.length] = v;
          if (fix && f[12] === 0x08 && f[13] === 0x00 && f.length >= 34 && (f[14]! & 0x0f) >= 5 && 14 + (f[14]! & 15) * 4 <= f.length) {
            fixIpv4Checksum(f, 14);
          }
          if (cutAt !== undefined) f = f.subarray(0, cutAt % (f.length + 1));
          seen.add(fuzzOne(f, pre, 7, 0x00));
        },
      ),
      { numRuns: 8000 },
    );
    assert.ok(seen.has(Drop.OK) && seen.size >= 10, `only ${[...seen].join(',')}`);
  });

  it('every valid fixture under every single-byte corruption of its headers: no throw, reads inside', () => {
    for (const f of valid) {
      const n = Math.min(f.length, 130);
      for (let i = 0; i < n; i++) {
        for (const x of [0x00, 0xff, f[i]! ^ 0x01, f[i]! ^ 0x80]) {
          const c = new Uint8Array(f);
          c[i] = x;
          fuzzOne(c, 1, 1, 0x55);
        }
      }
    }
  });
});
