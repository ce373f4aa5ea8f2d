import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SaruError } from '../../../core/index.js';
import {
  MAGIC,
  MAX_MESSAGE_BYTES,
  MIN_KEY_BYTES,
  MessageKey,
  REPLAY_WINDOW,
  ReplayGuard,
  TAG_BYTES,
  allocate,
  decodeMessage,
  encodeMessage,
  makeEpoch,
  type Body,
  type CoordMessage,
} from '../../../saru/coord/index.js';

const key = new MessageKey(new Uint8Array(32).fill(7));
const otherKey = new MessageKey(new Uint8Array(32).fill(8));

const epochArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 43 - 1 }).chain((t) => fc.integer({ min: 0, max: 1023 }).map((m) => makeEpoch(t, m))));
const configsArb = fc.array(
  fc.uniqueArray(fc.integer({ min: 0, max: 1023 }), { maxLength: 20 }).map((xs) => xs.sort((a, b) => a - b)),
  { maxLength: 4 },
);

const heartbeatArb: fc.Arbitrary<Body> = fc.record({
  state: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  weight: fc.integer({ min: 0, max: 0x7fffffff }),
  synced: fc.boolean(),
  seenEpoch: epochArb,
  knownEpoch: epochArb,
  acceptedEpoch: epochArb,
  committedEpoch: epochArb,
  appliedEpoch: epochArb,
  configs: configsArb,
  configsEpoch: epochArb,
}).map((heartbeat) => ({ kind: 'heartbeat' as const, heartbeat }));

const allocationArb: fc.Arbitrary<Body> = fc
  .record({
    buckets: fc.integer({ min: 1, max: 10 }).map((k) => 1 << k),
    ids: fc.uniqueArray(fc.integer({ min: 0, max: 1023 }), { minLength: 1, maxLength: 12 }),
    term: fc.integer({ min: 1, max: 2 ** 43 - 1 }),
    committed: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1000 }),
  })
  .map(({ buckets, ids, term, committed, seed }) => {
    const members = ids.map((id, i) => ({ id, weight: (seed + i) % 4 })).sort((a, b) => a.id - b.id);
    const owners = allocate(buckets, members, null);
    const master = ids[seed % ids.length]!;
    return { kind: 'allocation' as const, allocation: { epoch: makeEpoch(term, master), master, buckets, members, owners, committed } };
  });

const ackArb: fc.Arbitrary<Body> = fc
  .record({ acceptedEpoch: epochArb, appliedEpoch: epochArb, configs: configsArb, configsEpoch: epochArb })
  .map((ack) => ({ kind: 'ack' as const, ack }));
const commitArb: fc.Arbitrary<Body> = epochArb.filter((e) => e > 0).map((epoch) => ({ kind: 'commit' as const, epoch }));

const messageArb: fc.Arbitrary<CoordMessage> = fc.record({
  sender: fc.integer({ min: 0, max: 1023 }),
  incarnation: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  body: fc.oneof(heartbeatArb, allocationArb, ackArb, commitArb),
});

describe('coordinator codec and authentication', () => {
  it('round-trips every message kind', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const bytes = encodeMessage(msg, key);
        const d = decodeMessage(bytes, key);
        assert.ok(d.ok, d.ok ? '' : d.reason);
        assert.deepEqual(d.msg, msg);
      }),
    );
  });

  it('lays the datagram out as magic, envelope, 32-byte tag', () => {
    const bytes = encodeMessage({ sender: 1, incarnation: 1, seq: 1, body: { kind: 'commit', epoch: 1025 } }, key);
    assert.deepEqual([...bytes.subarray(0, 3)], [...MAGIC]);
    assert.equal(TAG_BYTES, 32);
    assert.deepEqual(Buffer.from(bytes.subarray(bytes.length - 32)), key.tag(bytes.subarray(0, bytes.length - 32)));
  });

  it('never throws on random bytes, and never accepts them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const d = decodeMessage(bytes, key);
        assert.equal(d.ok, false);
      }),
    );
    // random bodies behind a valid magic and a valid tag: decoded or "malformed", never a throw
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        const bytes = new Uint8Array(3 + body.length + 32);
        bytes.set(MAGIC);
        bytes.set(body, 3);
        bytes.set(key.tag(bytes.subarray(0, 3 + body.length)), 3 + body.length);
        const d = decodeMessage(bytes, key);
        if (!d.ok) assert.equal(d.reason, 'malformed');
      }),
    );
  });

  it('fails authentication when any bit is flipped', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (msg, at, bit) => {
        const bytes = encodeMessage(msg, key);
        const i = at % bytes.length;
        bytes[i] ^= 1 << bit;
        const d = decodeMessage(bytes, key);
        assert.equal(d.ok, false);
        assert.equal(d.ok ? '' : d.reason, i < MAGIC.length ? 'bad_magic' : 'bad_mac');
      }),
    );
  });

  it('names the reason for truncated, oversized, forged and malformed datagrams', () => {
    const good = encodeMessage({ sender: 2, incarnation: 5, seq: 9, body: { kind: 'commit', epoch: 2050 } }, key);
    const reason = (b: Uint8Array): string => {
      const d = decodeMessage(b, key);
      return d.ok ? 'ok' : d.reason;
    };
    assert.equal(reason(good), 'ok');
    assert.equal(reason(good.subarray(0, 20)), 'truncated');
    assert.equal(reason(good.subarray(0, good.length - 1)), 'bad_mac');
    assert.equal(reason(new Uint8Array(MAX_MESSAGE_BYTES + 1)), 'oversized');
    assert.equal(reason(encodeMessage({ sender: 2, incarnation: 5, seq: 9, body: { kind: 'commit', epoch: 2050 } }, otherKey)), 'bad_mac');
    // authenticated but invalid: an allocation whose runs do not cover the buckets, an epoch not from its master
    const forge = (alloc: Record<string, unknown>): Uint8Array => {
      const m = encodeMessage({ sender: 2, incarnation: 5, seq: 9, body: { kind: 'allocation', allocation: alloc as never } }, key);
      return m;
    };
    const members = [{ id: 1, weight: 1 }];
    assert.equal(reason(forge({ epoch: makeEpoch(3, 1), master: 1, buckets: 8, members, owners: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1]), committed: false })), 'ok');
    assert.equal(reason(forge({ epoch: makeEpoch(3, 2), master: 1, buckets: 8, members, owners: new Int32Array(8).fill(1), committed: false })), 'malformed');
    assert.equal(reason(forge({ epoch: makeEpoch(3, 1), master: 1, buckets: 8, members, owners: new Int32Array(8).fill(5), committed: false })), 'malformed');
  });

  it('fits the worst-case allocation (16384 buckets, 1024 members, every bucket its own run) in one datagram', () => {
    const members = Array.from({ length: 1024 }, (_, id) => ({ id, weight: 0x7fffffff }));
    const owners = new Int32Array(16384).map((_, b) => 1023 - (b % 1024));
    const bytes = encodeMessage(
      { sender: 1023, incarnation: 2 ** 43, seq: 2 ** 40, body: { kind: 'allocation', allocation: { epoch: makeEpoch(2 ** 43 - 1, 1023), master: 1023, buckets: 16384, members, owners, committed: true } } },
      key,
    );
    assert.ok(bytes.length <= MAX_MESSAGE_BYTES, `${bytes.length} bytes`);
    assert.ok(decodeMessage(bytes, key).ok);
  });

  it('refuses keys shorter than 16 bytes', () => {
    assert.throws(() => new MessageKey(new Uint8Array(MIN_KEY_BYTES - 1)), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_INVALID_ARGUMENT');
  });

  describe('replay window', () => {
    it('accepts new sequence numbers, drops duplicates, too-old ones and older incarnations', () => {
      const g = new ReplayGuard();
      assert.equal(g.check(1, 10, 1), 'ok');
      assert.equal(g.check(1, 10, 1), 'duplicate');
      assert.equal(g.check(1, 10, 5), 'ok');
      assert.equal(g.check(1, 10, 3), 'ok'); // reordered within the window
      assert.equal(g.check(1, 10, 3), 'duplicate');
      assert.equal(g.check(1, 10, 100), 'ok');
      assert.equal(g.check(1, 10, 100 - REPLAY_WINDOW), 'too_old');
      assert.equal(g.check(1, 10, 100 - REPLAY_WINDOW + 1), 'ok');
      assert.equal(g.check(1, 9, 1000), 'old_incarnation');
      assert.equal(g.check(1, 11, 1), 'ok'); // a restart starts a new window
      assert.equal(g.check(1, 10, 101), 'old_incarnation');
      assert.equal(g.check(2, 1, 1), 'ok'); // windows are per sender
      assert.equal(g.incarnation(1), 11);
    });

    it('matches a model: new iff unseen and within 64 of the highest', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 400 }), (seqs) => {
          const g = new ReplayGuard();
          const seen = new Set<number>();
          let top = 0;
          for (const s of seqs) {
            const expected = seen.has(s) ? (top - s >= REPLAY_WINDOW ? 'too_old' : 'duplicate') : top - s >= REPLAY_WINDOW ? 'too_old' : 'ok';
            assert.equal(g.check(7, 1, s), expected, `seq ${s} top ${top}`);
            if (expected === 'ok') {
              seen.add(s);
              top = Math.max(top, s);
            }
          }
        }),
      );
    });
  });
});
