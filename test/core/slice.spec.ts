/**
 * SliceFilter: the bucket function per sense, owned and draining sets, their
 * ranges (what the socket filter admits), and the parse/format of ranges.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SaruError } from '../../core/errors.js';
import { Sense, SliceFilter, SliceState, formatBucketRanges, parseBucketRanges } from '../../core/slice.js';

const Z = new Uint32Array(4);

function words(last: number): Uint32Array {
  return Uint32Array.of(0, 0, 0, last >>> 0);
}

function expand(ranges: Array<[number, number]>): number[] {
  const out: number[] = [];
  for (const [a, b] of ranges) for (let x = a; x <= b; x++) out.push(x);
  return out;
}

describe('core/slice: SliceFilter', () => {
  it('takes the low bits of the sensed field', () => {
    assert.equal(new SliceFilter({ buckets: 1024, sense: Sense.SRC_PORT }).bucket(Z, 40000, Z, 80), 40000 & 1023);
    assert.equal(new SliceFilter({ buckets: 16, sense: Sense.SRC_ADDR }).bucket(words(0xc6120007), 1, Z, 80), 7);
    assert.equal(new SliceFilter({ buckets: 16, sense: Sense.DST_PORT }).bucket(Z, 1, Z, 443), 443 & 15);
    assert.equal(new SliceFilter({ buckets: 4, sense: Sense.DST_ADDR }).bucket(Z, 1, words(0xc6120066), 80), 2);
  });

  it('refuses bucket counts that are not powers of two and buckets out of range', () => {
    assert.throws(() => new SliceFilter({ buckets: 1000 }), SaruError);
    const s = new SliceFilter({ buckets: 8 });
    assert.throws(() => s.setOwned([8]), /out of range/);
    assert.throws(() => s.setDraining([-1]), /out of range/);
  });

  it('owned wins over draining; ranges and counts agree with the sets', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(2, 8, 64, 1024),
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        (n, o, d) => {
          const owned = new Set(o.map((x) => x % n));
          const draining = new Set(d.map((x) => x % n));
          const s = new SliceFilter({ buckets: n, sense: Sense.SRC_PORT });
          s.setOwned(owned, 7);
          s.setDraining(draining);
          assert.equal(s.epoch, 7);
          assert.equal(s.ownedBuckets(), owned.size);
          assert.equal(s.drainingBuckets(), draining.size);
          assert.deepEqual(expand(s.ownedRanges()), [...owned].sort((a, b) => a - b));
          assert.deepEqual(expand(s.drainingRanges()), [...draining].filter((b) => !owned.has(b)).sort((a, b) => a - b));
          assert.deepEqual(expand(s.admittedRanges()), [...new Set([...owned, ...draining])].sort((a, b) => a - b));
          for (let b = 0; b < n; b++) {
            const want = owned.has(b) ? SliceState.OWNED : draining.has(b) ? SliceState.DRAINING : SliceState.NONE;
            assert.equal(s.state(Z, b, Z, 80), want);
            assert.equal(s.accepts(Z, b, Z, 80), owned.has(b));
          }
        },
      ),
    );
  });

  it('parses and formats ranges', () => {
    const where = { file: 'saru.conf', line: 3 };
    assert.deepEqual(parseBucketRanges('0-2,5', 8, where), [0, 1, 2, 5]);
    assert.equal(formatBucketRanges([[0, 2], [5, 5]]), '0-2,5');
    assert.throws(() => parseBucketRanges('3-1', 8, where), /saru.conf:3/);
    assert.throws(() => parseBucketRanges('0-8', 8, where), /0-7/);
  });
});
