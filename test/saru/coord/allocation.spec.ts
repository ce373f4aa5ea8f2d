import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SaruError } from '../../../core/index.js';
import { allocate, countOwners, fromRuns, quotas, toRuns, type AllocMember } from '../../../saru/coord/index.js';

/** Members with unique ids in 0..1023 and weights 0..maxWeight (at least one positive). */
function membersArb(min: number, max: number, maxWeight = 10): fc.Arbitrary<AllocMember[]> {
  return fc
    .uniqueArray(fc.integer({ min: 0, max: 1023 }), { minLength: min, maxLength: max })
    .chain((ids) => fc.tuple(fc.constant(ids), fc.array(fc.integer({ min: 0, max: maxWeight }), { minLength: ids.length, maxLength: ids.length })))
    .map(([ids, ws]) => ids.map((id, i) => ({ id, weight: ws[i]! })))
    .filter((ms) => ms.some((m) => m.weight > 0));
}

const bucketsArb = fc.integer({ min: 1, max: 12 }).map((k) => 1 << k);

function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = xs.slice();
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The minimum number of buckets any allocation with these quotas must move from `prev`. */
function minimumMoves(prev: Int32Array, buckets: number, members: AllocMember[]): number {
  const q = quotas(buckets, members);
  const quota = new Map(members.map((m, i) => [m.id, q[i]!]));
  let moves = 0;
  for (const [id, n] of countOwners(prev)) {
    const k = quota.get(id);
    moves += k === undefined ? n : Math.max(0, n - k);
  }
  for (let b = 0; b < prev.length; b++) if (prev[b]! < 0) moves++;
  return moves;
}

function moved(a: Int32Array, b: Int32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('coordinator allocation', () => {
  it('gives every member within one bucket of its weighted share, weight 0 nothing', () => {
    fc.assert(
      fc.property(bucketsArb, membersArb(1, 64), (buckets, members) => {
        const out = allocate(buckets, members, null);
        const total = members.reduce((s, m) => s + m.weight, 0);
        const counts = countOwners(out);
        let sum = 0;
        for (const m of members) {
          const share = (buckets * m.weight) / total;
          const n = counts.get(m.id) ?? 0;
          assert.ok(n === Math.floor(share) || n === Math.ceil(share), `member ${m.id}: ${n} buckets for a share of ${share}`);
          if (m.weight === 0) assert.equal(n, 0);
          sum += n;
        }
        assert.equal(sum, buckets);
        assert.ok(out.every((o) => o >= 0), 'no bucket left without an owner');
      }),
    );
  });

  it('assigns the leftover buckets by largest remainder, then lowest id', () => {
    assert.deepEqual(quotas(1024, [{ id: 3, weight: 1 }, { id: 1, weight: 1 }, { id: 2, weight: 1 }]), [341, 342, 341]);
    // 1024 * 2/7 = 292.57 (remainder 4), 1024 * 1/7 = 146.29 (remainder 2): the weight-2 members get the extras
    assert.deepEqual(
      quotas(1024, [{ id: 1, weight: 1 }, { id: 2, weight: 2 }, { id: 3, weight: 2 }, { id: 4, weight: 2 }]),
      [146, 293, 293, 292],
    );
  });

  it('is deterministic and independent of member order', () => {
    fc.assert(
      fc.property(bucketsArb, membersArb(1, 40), fc.integer(), (buckets, members, seed) => {
        const prev = allocate(buckets, members.slice(0, Math.max(1, members.length >> 1)).map((m) => ({ ...m, weight: m.weight || 1 })), null);
        const a = allocate(buckets, members, prev);
        const b = allocate(buckets, shuffle(members, seed), prev);
        const c = allocate(buckets, members, prev);
        assert.deepEqual(a, b);
        assert.deepEqual(a, c);
      }),
    );
  });

  it('moves the minimum number of buckets on join', () => {
    fc.assert(
      fc.property(bucketsArb, membersArb(2, 64), fc.integer({ min: 1, max: 8 }), (buckets, all, joiners) => {
        const k = Math.max(1, all.length - joiners);
        const before = all.slice(0, k);
        if (!before.some((m) => m.weight > 0)) return;
        const prev = allocate(buckets, before, null);
        const next = allocate(buckets, all, prev);
        assert.equal(moved(prev, next), minimumMoves(prev, buckets, all));
      }),
    );
  });

  it('moves the minimum number of buckets on leave', () => {
    fc.assert(
      fc.property(bucketsArb, membersArb(2, 64), fc.integer({ min: 1, max: 8 }), (buckets, all, leavers) => {
        const after = all.slice(0, Math.max(1, all.length - leavers));
        if (!after.some((m) => m.weight > 0)) return;
        const prev = allocate(buckets, all, null);
        const next = allocate(buckets, after, prev);
        assert.equal(moved(prev, next), minimumMoves(prev, buckets, after));
        // survivors under quota keep every bucket they had
        for (let b = 0; b < buckets; b++) {
          if (after.some((m) => m.id === prev[b]) && next[b] !== prev[b]) {
            const q = quotas(buckets, after)[after.findIndex((m) => m.id === prev[b])]!;
            assert.ok((countOwners(prev).get(prev[b]!) ?? 0) > q, `bucket ${b} moved from an owner not above its quota`);
          }
        }
      }),
    );
  });

  it('moves the minimum from any previous array (weight changes, unknown owners, holes)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }).map((k) => 1 << k),
        membersArb(1, 16),
        fc.array(fc.integer({ min: -1, max: 30 }), { minLength: 256, maxLength: 256 }),
        (buckets, members, raw) => {
          const prev = Int32Array.from(raw.slice(0, buckets));
          const next = allocate(buckets, members, prev);
          assert.equal(moved(prev, next), minimumMoves(prev, buckets, members));
        },
      ),
    );
  });

  it('handles 256 members over 1024 buckets', () => {
    const members = Array.from({ length: 256 }, (_, i) => ({ id: i * 4, weight: 1 + (i % 3) }));
    const out = allocate(1024, members, null);
    const counts = countOwners(out);
    assert.equal(counts.size, 256);
    const total = members.reduce((s, m) => s + m.weight, 0);
    for (const m of members) assert.ok(Math.abs((counts.get(m.id) ?? 0) - (1024 * m.weight) / total) < 1);
    // one of them leaves: only its buckets move
    const after = members.filter((m) => m.id !== 400);
    const next = allocate(1024, after, out);
    assert.equal(moved(out, next), minimumMoves(out, 1024, after));
    assert.equal(moved(out, next), counts.get(400));
  });

  it('gives a newcomer runs of adjacent buckets', () => {
    const prev = allocate(1024, [{ id: 1, weight: 1 }, { id: 2, weight: 1 }], null);
    const next = allocate(1024, [{ id: 1, weight: 1 }, { id: 2, weight: 1 }, { id: 3, weight: 1 }], prev);
    const runs = toRuns(next);
    assert.equal(runs.owner.filter((o) => o === 3).length, 2); // its share comes from the tail of each old owner
  });

  it('leaves every bucket unowned when every weight is 0, and with no members', () => {
    assert.ok(allocate(16, [{ id: 1, weight: 0 }, { id: 2, weight: 0 }], null).every((o) => o === -1));
    assert.ok(allocate(16, [], null).every((o) => o === -1));
  });

  it('round-trips owner arrays through runs', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1, max: 5 }), { minLength: 1, maxLength: 300 }), (raw) => {
        const owners = Int32Array.from(raw);
        const r = toRuns(owners);
        assert.deepEqual(fromRuns(owners.length, r.owner, r.length), owners);
      }),
    );
    assert.equal(fromRuns(8, [1, 2], [4, 3]), null);
    assert.equal(fromRuns(8, [1, 2], [4, 5]), null);
    assert.equal(fromRuns(8, [1], [0]), null);
  });

  it('rejects bad arguments with SARU_ERR_INVALID_ARGUMENT', () => {
    const code = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof SaruError);
        return e.code;
      }
      return 'none';
    };
    assert.equal(code(() => allocate(0, [{ id: 1, weight: 1 }], null)), 'SARU_ERR_INVALID_ARGUMENT');
    assert.equal(code(() => allocate(8, [{ id: 1, weight: 1 }, { id: 1, weight: 2 }], null)), 'SARU_ERR_INVALID_ARGUMENT');
    assert.equal(code(() => allocate(8, [{ id: 1024, weight: 1 }], null)), 'SARU_ERR_INVALID_ARGUMENT');
    assert.equal(code(() => allocate(8, [{ id: 1, weight: -1 }], null)), 'SARU_ERR_INVALID_ARGUMENT');
    assert.equal(code(() => allocate(8, [{ id: 1, weight: 1.5 }], null)), 'SARU_ERR_INVALID_ARGUMENT');
    assert.equal(code(() => allocate(8, [{ id: 1, weight: 1 }], new Int32Array(4))), 'SARU_ERR_INVALID_ARGUMENT');
  });
});
