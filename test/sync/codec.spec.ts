/**
 * The sync wire format (sync/codec.ts, sync/sync.proto): round trips of
 * entries and of every body kind, fit() against the datagram limit with the
 * largest headers, fuzzing (random bytes, truncations, bit flips, authentic
 * garbage), the drop outcomes and their counters, and the bytes per entry.
 */
import { strict as assert } from 'node:assert';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { ConnSnapshot, ErrorCode, Fwd, Proto, SaruError, SYNC_RECORD, readSyncRecord, syncRecordView, writeSyncRecord } from '../../core/index.js';
import { MessageKey, TAG_BYTES } from '../../saru/index.js';
import {
  DEFAULT_MAX_DATAGRAM_BYTES,
  MAX_NODE_ID,
  SyncCodec,
  encodeAll,
} from '../../sync/codec.js';
import type { DecodeResult, RecordBatch, SyncBody, SyncMessage } from '../../sync/types.js';

const KEY = new Uint8Array(32).map((_, i) => i * 7 + 1);
const OTHER_KEY = new Uint8Array(32).map((_, i) => i * 5 + 3);
const MAX_U64 = Number.MAX_SAFE_INTEGER;
const WireMessage = protobuf
  .loadSync(fileURLToPath(new URL('../../../sync/sync.proto', import.meta.url)))
  .lookupType('saru.sync.Message');

// ---------------------------------------------------------------------------
// Record builders

/** IPv4-mapped words of a 32-bit IPv4 address. */
function v4(a: number): number[] {
  return [0, 0, 0xffff, a >>> 0];
}

const VADDR4 = [0xc000020a, 0xc000020b].map(v4); // 192.0.2.10, .11
const VADDR6 = [
  [0x20010db8, 0, 0, 0x10],
  [0x20010db8, 0, 0, 0x11],
];
const DADDR4 = [0x0a000002, 0x0a000003, 0x0a000004].map(v4); // 10.0.0.2..4
const DADDR6 = [
  [0x20010db8, 1, 0, 2],
  [0x20010db8, 1, 0, 3],
];

interface RecordSpec {
  family: 4 | 6;
  dfamily: 4 | 6;
  protocol: number;
  state: number;
  template: boolean;
  fwd: number;
  fwmark: number;
  cport: number;
  vport: number;
  dport: number;
  caddr: number[];
  vaddr: number;
  daddr: number;
  timeoutMs: number;
  remove: boolean;
  packets: number;
  synced: boolean;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const recordArb: fc.Arbitrary<RecordSpec> = fc
  .record({
    family: fc.constantFrom<4 | 6>(4, 6),
    dfamily: fc.constantFrom<4 | 6>(4, 4, 6),
    protocol: fc.constantFrom(Proto.TCP, Proto.TCP, Proto.UDP, 0),
    state: fc.integer({ min: 0, max: 10 }),
    template: fc.boolean(),
    fwd: fc.constantFrom(Fwd.NAT, Fwd.LOCAL, Fwd.TUN, Fwd.DR),
    fwmark: fc.oneof(fc.constant(0), u32),
    cport: fc.integer({ min: 0, max: 65535 }),
    vport: fc.constantFrom(0, 80, 443, 65535),
    dport: fc.constantFrom(0, 80, 8080, 65535),
    caddr: fc.tuple(u32, u32, u32, u32),
    vaddr: fc.integer({ min: 0, max: 1 }),
    daddr: fc.integer({ min: 0, max: 2 }),
    timeoutMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 86_400_000 }), fc.constant(900_000)),
    remove: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
    packets: u32,
    synced: fc.boolean(),
  })
  .map((r) => ({
    ...r,
    state: r.protocol === Proto.TCP ? r.state : 0,
    caddr: r.family === 4 ? v4(r.caddr[0]) : [...r.caddr],
  }));

function snapshotOf(r: RecordSpec): ConnSnapshot {
  const s = new ConnSnapshot();
  s.family = r.family;
  s.dfamily = r.dfamily;
  s.protocol = r.protocol;
  s.state = r.state;
  s.template = r.template;
  s.fwd = r.fwd as Fwd;
  s.fwmark = r.fwmark;
  s.cport = r.cport;
  s.vport = r.vport;
  s.dport = r.dport;
  s.caddr.set(r.caddr);
  s.vaddr.set(r.family === 4 ? VADDR4[r.vaddr]! : VADDR6[r.vaddr]!);
  s.daddr.set(r.dfamily === 4 ? DADDR4[r.daddr]! : DADDR6[r.daddr % 2]!);
  s.timeoutMs = r.timeoutMs;
  s.remove = r.remove;
  s.packets = r.packets;
  s.synced = r.synced;
  return s;
}

function batchOf(snaps: ConnSnapshot[]): RecordBatch {
  const bytes = new Uint8Array(snaps.length * SYNC_RECORD.SIZE);
  const view = syncRecordView(bytes);
  snaps.forEach((s, i) => writeSyncRecord(view, i, s));
  return { bytes, count: snaps.length };
}

/** What a record looks like after the wire: 100 ms rounding up, remove = timeout 0, no packets, not synced. */
function expectedAfterWire(s: ConnSnapshot): ConnSnapshot {
  const e = new ConnSnapshot();
  e.copyFrom(s);
  const units = s.remove ? 0 : Math.ceil(s.timeoutMs / 100);
  e.timeoutMs = units * 100;
  e.remove = units === 0;
  e.packets = 0;
  e.synced = false;
  return e;
}

function plain(s: ConnSnapshot): Record<string, unknown> {
  return { ...s, caddr: [...s.caddr], vaddr: [...s.vaddr], daddr: [...s.daddr] };
}

function records(batch: RecordBatch): Array<Record<string, unknown>> {
  assert.equal(batch.bytes.length, batch.count * SYNC_RECORD.SIZE);
  const view = syncRecordView(batch.bytes);
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < batch.count; i++) {
    const s = new ConnSnapshot();
    readSyncRecord(view, i, s);
    out.push(plain(s));
  }
  return out;
}

function header(seq = 1): Omit<SyncMessage, 'body'> {
  return { nodeId: 3, incarnation: 1_700_000_000_000, seq, epoch: 42 };
}

function ok(r: DecodeResult): SyncMessage {
  if (!r.ok) assert.fail(`decode failed: ${r.error} (${r.detail})`);
  return r.msg;
}

/** A typical director's traffic: one VIP:80, 3 real servers, ephemeral client ports, 900 s timeouts. */
function typicalBatch(count: number, family: 4 | 6, seed = 1): RecordBatch {
  let x = seed;
  const rnd = (): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x;
  };
  const snaps: ConnSnapshot[] = [];
  for (let i = 0; i < count; i++) {
    const s = new ConnSnapshot();
    s.family = family;
    s.dfamily = family;
    s.protocol = Proto.TCP;
    s.state = 1; // ESTABLISHED
    s.fwd = Fwd.DR;
    s.cport = 32768 + (rnd() % (60999 - 32768 + 1));
    s.vport = 80;
    s.dport = 80;
    s.timeoutMs = 900_000;
    if (family === 4) {
      s.caddr.set(v4(rnd()));
      s.vaddr.set(VADDR4[0]!);
      s.daddr.set(v4(0x0a000002 + (rnd() % 3)));
    } else {
      s.caddr.set([0x20010db8, rnd(), rnd(), rnd()]);
      s.vaddr.set(VADDR6[0]!);
      s.daddr.set([0x20010db8, 1, 0, 2 + (rnd() % 3)]);
    }
    snaps.push(s);
  }
  return batchOf(snaps);
}

/** Sign arbitrary protobuf bytes as a sender with KEY would. */
function sign(proto: Uint8Array): Uint8Array {
  const out = new Uint8Array(proto.length + TAG_BYTES);
  out.set(proto);
  out.set(new MessageKey(KEY).tag(proto), proto.length);
  return out;
}

/** Encode a raw wire object (protobufjs field names) and sign it: a forged but authentic datagram. */
function signedWire(obj: Record<string, unknown>): Uint8Array {
  return sign(WireMessage.encode(WireMessage.fromObject(obj)).finish());
}

/** Every value of a decoded message is within the ranges the codec promises. */
function assertInRange(msg: SyncMessage): void {
  const safe = (v: number): void => assert.ok(Number.isSafeInteger(v) && v >= 0, `unsafe ${v}`);
  const node = (v: number): void => assert.ok(v >= 1 && v <= MAX_NODE_ID, `node ${v}`);
  node(msg.nodeId);
  safe(msg.incarnation);
  safe(msg.seq);
  safe(msg.epoch);
  const b = msg.body;
  const entries = (batch: RecordBatch): void => {
    for (const r of records(batch)) {
      assert.ok((r.state as number) <= 15);
      assert.ok((r.fwd as number) <= 3);
      assert.ok((r.cport as number) <= 65535 && (r.vport as number) <= 65535 && (r.dport as number) <= 65535);
      assert.equal(r.packets, 0);
      assert.equal(r.synced, false);
    }
  };
  switch (b.kind) {
    case 'entries':
      safe(b.dataSeq);
      entries(b.entries);
      break;
    case 'alive':
      safe(b.lastDataSeq);
      safe(b.oldestDataSeq);
      for (const a of b.acks) {
        node(a.nodeId);
        safe(a.incarnation);
        safe(a.contiguous);
      }
      break;
    case 'nack':
      node(b.target);
      safe(b.targetIncarnation);
      for (const [f, l] of b.ranges) {
        safe(f);
        safe(l);
        assert.ok(f <= l);
      }
      break;
    case 'resyncRequest':
      node(b.target);
      safe(b.session);
      break;
    case 'resyncChunk':
      node(b.target);
      safe(b.session);
      entries(b.entries);
      break;
    case 'resyncAck':
      node(b.target);
      safe(b.session);
      break;
  }
}

function isInvalidArgument(e: unknown): boolean {
  return e instanceof SaruError && e.code === ErrorCode.INVALID_ARGUMENT;
}

// ---------------------------------------------------------------------------

describe('sync/codec SyncCodec', () => {
  describe('construction', () => {
    it('defaults to 1472-byte datagrams', () => {
      assert.equal(new SyncCodec({ key: KEY }).maxDatagramBytes, DEFAULT_MAX_DATAGRAM_BYTES);
      assert.equal(DEFAULT_MAX_DATAGRAM_BYTES, 1472);
    });

    const bad = [
      { description: 'datagram limit below 512', init: { key: KEY, maxDatagramBytes: 511 } },
      { description: 'datagram limit above 65507', init: { key: KEY, maxDatagramBytes: 65508 } },
      { description: 'fractional datagram limit', init: { key: KEY, maxDatagramBytes: 1000.5 } },
      { description: 'key shorter than 16 bytes', init: { key: new Uint8Array(15) } },
    ];
    for (const { description, init } of bad) {
      it(`throws INVALID_ARGUMENT: ${description}`, () => {
        assert.throws(() => new SyncCodec(init), isInvalidArgument);
      });
    }

    it('accepts the limits 512 and 65507', () => {
      assert.equal(new SyncCodec({ key: KEY, maxDatagramBytes: 512 }).maxDatagramBytes, 512);
      assert.equal(new SyncCodec({ key: KEY, maxDatagramBytes: 65507 }).maxDatagramBytes, 65507);
    });
  });

  describe('entries round trip', () => {
    it('property: fit + encode + decode reproduce every record (100 ms rounding up, remove = timeout 0)', () => {
      fc.assert(
        fc.property(
          fc.array(recordArb, { minLength: 0, maxLength: 300 }),
          fc.constantFrom(512, 1472, 9000),
          (specs, max) => {
            const snaps = specs.map(snapshotOf);
            const codec = new SyncCodec({ key: KEY, maxDatagramBytes: max });
            const { datagrams, bytes } = encodeAll(codec, header(), batchOf(snaps));
            assert.equal(bytes, datagrams.reduce((a, d) => a + d.length, 0));
            const got: Array<Record<string, unknown>> = [];
            datagrams.forEach((d, i) => {
              assert.ok(d.length <= max);
              const msg = ok(codec.decode(d));
              assert.equal(msg.seq, 1 + i);
              assert.equal(msg.body.kind, 'entries');
              if (msg.body.kind === 'entries') {
                assert.equal(msg.body.dataSeq, i + 1);
                assert.ok(msg.body.entries.count >= 1);
                got.push(...records(msg.body.entries));
              }
            });
            assert.deepEqual(got, snaps.map((s) => plain(expectedAfterWire(s))));
            assert.equal(codec.counters.decoded, datagrams.length);
            assert.equal(codec.counters.encoded, datagrams.length);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('writes IPv4 addresses back in mapped form even when the sender had other upper bytes', () => {
      const s = snapshotOf({
        family: 4, dfamily: 4, protocol: Proto.TCP, state: 1, template: false, fwd: Fwd.DR, fwmark: 0,
        cport: 40000, vport: 80, dport: 80, caddr: [1, 2, 3, 0xc6336407], vaddr: 0, daddr: 0,
        timeoutMs: 60_001, remove: false, packets: 9, synced: true,
      });
      s.vaddr[0] = 0xdead; // junk above the IPv4 word is not sent
      const codec = new SyncCodec({ key: KEY });
      const msg = ok(codec.decode(codec.encode({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: batchOf([s]) } })));
      assert.equal(msg.body.kind, 'entries');
      if (msg.body.kind !== 'entries') return;
      const [r] = records(msg.body.entries);
      assert.deepEqual(r!.caddr, v4(0xc6336407));
      assert.deepEqual(r!.vaddr, VADDR4[0]);
      assert.equal(r!.timeoutMs, 60_100);
      assert.equal(r!.remove, false);
    });

    it('keeps the template flag and state together', () => {
      const s = new ConnSnapshot();
      s.protocol = Proto.TCP;
      s.template = true;
      s.state = 10;
      s.timeoutMs = 1;
      s.vaddr.set(VADDR4[0]!);
      s.daddr.set(DADDR4[0]!);
      const codec = new SyncCodec({ key: KEY });
      const msg = ok(codec.decode(codec.encode({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: batchOf([s]) } })));
      if (msg.body.kind !== 'entries') return assert.fail('kind');
      const [r] = records(msg.body.entries);
      assert.equal(r!.template, true);
      assert.equal(r!.state, 10);
      assert.equal(r!.timeoutMs, 100);
    });
  });

  describe('every body kind round trips', () => {
    const snaps = [0, 1, 2].map((i) =>
      snapshotOf({
        family: i === 2 ? 6 : 4, dfamily: 4, protocol: Proto.UDP, state: 0, template: false, fwd: Fwd.NAT, fwmark: 7,
        cport: 1000 + i, vport: 53, dport: 5353, caddr: i === 2 ? [0x20010db8, 0, 0, 9] : v4(0x0a0a0a00 + i), vaddr: 1, daddr: 2,
        timeoutMs: 300_000, remove: false, packets: 0, synced: false,
      }),
    );
    const entries = batchOf(snaps);
    const cases: Array<{ description: string; body: SyncBody }> = [
      { description: 'entries', body: { kind: 'entries', dataSeq: 77, entries } },
      { description: 'entries, none', body: { kind: 'entries', dataSeq: 78, entries: { bytes: new Uint8Array(0), count: 0 } } },
      {
        description: 'alive',
        body: {
          kind: 'alive', lastDataSeq: 900, oldestDataSeq: 400, synced: true,
          acks: [{ nodeId: 1, incarnation: 5, contiguous: 10 }, { nodeId: 1023, incarnation: MAX_U64, contiguous: 0 }],
        },
      },
      { description: 'alive, no acks, nothing sent', body: { kind: 'alive', lastDataSeq: 0, oldestDataSeq: 0, synced: false, acks: [] } },
      { description: 'nack', body: { kind: 'nack', target: 9, targetIncarnation: 123456789012, ranges: [[3, 3], [5, 9], [MAX_U64, MAX_U64]] } },
      { description: 'resyncRequest', body: { kind: 'resyncRequest', target: 2, session: 31 } },
      { description: 'resyncChunk', body: { kind: 'resyncChunk', target: 2, session: 31, index: 4, last: false, entries } },
      {
        description: 'resyncChunk, last and empty',
        body: { kind: 'resyncChunk', target: 2, session: 31, index: 0xffffffff, last: true, entries: { bytes: new Uint8Array(0), count: 0 } },
      },
      { description: 'resyncAck', body: { kind: 'resyncAck', target: 2, session: 31, next: 5, received: [7, 9] } },
    ];
    for (const { description, body } of cases) {
      it(description, () => {
        const codec = new SyncCodec({ key: KEY });
        const sent: SyncMessage = { nodeId: 1023, incarnation: MAX_U64, seq: MAX_U64, epoch: MAX_U64, body };
        const got = ok(codec.decode(codec.encode(sent)));
        if ((body.kind === 'entries' || body.kind === 'resyncChunk') && got.body.kind === body.kind) {
          assert.deepEqual(records(got.body.entries), records(body.entries).map((r) => ({ ...r, packets: 0, synced: false })));
          assert.deepEqual({ ...got, body: { ...got.body, entries: null } }, { ...sent, body: { ...body, entries: null } });
        } else {
          assert.deepEqual(got, sent);
        }
      });
    }
  });

  describe('fit()', () => {
    const worstChunk = (entries: RecordBatch): SyncMessage => ({
      nodeId: MAX_NODE_ID, incarnation: MAX_U64, seq: MAX_U64, epoch: MAX_U64,
      body: { kind: 'resyncChunk', target: MAX_NODE_ID, session: MAX_U64, index: 0xffffffff, last: true, entries },
    });
    const worstEntries = (entries: RecordBatch): SyncMessage => ({
      nodeId: MAX_NODE_ID, incarnation: MAX_U64, seq: MAX_U64, epoch: MAX_U64,
      body: { kind: 'entries', dataSeq: MAX_U64, entries },
    });
    const slice = (b: RecordBatch, from: number, n: number): RecordBatch => ({
      bytes: b.bytes.subarray(from * SYNC_RECORD.SIZE, (from + n) * SYNC_RECORD.SIZE),
      count: n,
    });

    it('property: never over the limit with the largest headers, and one more entry would be', () => {
      fc.assert(
        fc.property(
          fc.array(recordArb, { minLength: 1, maxLength: 400 }),
          fc.integer({ min: 512, max: 9000 }),
          (specs, max) => {
            const batch = batchOf(specs.map(snapshotOf));
            const codec = new SyncCodec({ key: KEY, maxDatagramBytes: max });
            let from = 0;
            while (from < batch.count) {
              const n = codec.fit(batch, from);
              assert.ok(n >= 1 && from + n <= batch.count);
              const part = slice(batch, from, n);
              assert.ok(codec.encode(worstChunk(part)).length <= max);
              assert.ok(codec.encode(worstEntries(part)).length <= max);
              if (from + n < batch.count) {
                assert.throws(() => codec.encode(worstChunk(slice(batch, from, n + 1))), isInvalidArgument);
              }
              from += n;
            }
            assert.equal(codec.fit(batch, batch.count), 0);
          },
        ),
        { numRuns: 100 },
      );
    });

    it('a single worst-case entry fits the smallest datagram', () => {
      const s = new ConnSnapshot();
      s.family = 6;
      s.dfamily = 6;
      s.protocol = 255;
      s.fwd = Fwd.DR;
      s.state = 15;
      s.template = true;
      s.cport = s.vport = s.dport = 65535;
      s.fwmark = 0xffffffff;
      s.timeoutMs = 0xffffffff;
      s.caddr.fill(0xffffffff);
      s.vaddr.fill(0xffffffff);
      s.daddr.fill(0xffffffff);
      const batch = batchOf([s, s]);
      const codec = new SyncCodec({ key: KEY, maxDatagramBytes: 512 });
      assert.equal(codec.fit(batch, 1), 1);
      const msg = ok(codec.decode(codec.encode(worstChunk(slice(batch, 1, 1)))));
      if (msg.body.kind !== 'resyncChunk') return assert.fail('kind');
      assert.equal(records(msg.body.entries)[0]!.timeoutMs, 0xffffffff, 'clamped to the record field');
    });

    it('returns 0 past the end', () => {
      const codec = new SyncCodec({ key: KEY });
      assert.equal(codec.fit(typicalBatch(3, 4), 3), 0);
      assert.equal(codec.fit({ bytes: new Uint8Array(0), count: 0 }, 0), 0);
    });
  });

  describe('encode() errors (caller bugs)', () => {
    const codec = new SyncCodec({ key: KEY, maxDatagramBytes: 512 });
    const cases: Array<{ description: string; msg: () => SyncMessage }> = [
      { description: 'more entries than fit', msg: () => ({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: typicalBatch(200, 4) } }) },
      { description: 'node id 0', msg: () => ({ ...header(), nodeId: 0, body: { kind: 'resyncRequest', target: 1, session: 1 } }) },
      { description: 'node id 1024', msg: () => ({ ...header(), nodeId: 1024, body: { kind: 'resyncRequest', target: 1, session: 1 } }) },
      { description: 'seq 2^53', msg: () => ({ ...header(), seq: 2 ** 53, body: { kind: 'resyncRequest', target: 1, session: 1 } }) },
      { description: 'negative epoch', msg: () => ({ ...header(), epoch: -1, body: { kind: 'resyncRequest', target: 1, session: 1 } }) },
      { description: 'reversed nack range', msg: () => ({ ...header(), body: { kind: 'nack', target: 1, targetIncarnation: 1, ranges: [[5, 4]] } }) },
      {
        description: 'state 16',
        msg: () => {
          const b = typicalBatch(1, 4);
          b.bytes[SYNC_RECORD.STATE] = 16;
          return { ...header(), body: { kind: 'entries', dataSeq: 1, entries: b } };
        },
      },
      {
        description: 'forwarding method 4',
        msg: () => {
          const b = typicalBatch(1, 4);
          b.bytes[SYNC_RECORD.FWD] = 4;
          return { ...header(), body: { kind: 'entries', dataSeq: 1, entries: b } };
        },
      },
      { description: 'batch shorter than count * 72', msg: () => ({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: { bytes: new Uint8Array(72), count: 2 } } }) },
    ];
    for (const { description, msg } of cases) {
      it(`throws INVALID_ARGUMENT: ${description}`, () => {
        assert.throws(() => codec.encode(msg()), isInvalidArgument);
      });
    }
    it('counts nothing for a refused encode', () => {
      assert.equal(codec.counters.encoded, 0);
    });
  });

  describe('decode() drops', () => {
    const valid = (codec: SyncCodec): Uint8Array =>
      codec.encode({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: typicalBatch(20, 4) } });

    it('wrong key -> auth', () => {
      const sender = new SyncCodec({ key: OTHER_KEY });
      const codec = new SyncCodec({ key: KEY });
      const r = codec.decode(valid(sender));
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.error, 'auth');
      assert.equal(codec.counters.auth, 1);
    });

    it('over the limit -> oversized, before the tag is checked', () => {
      const big = new SyncCodec({ key: KEY, maxDatagramBytes: 9000 });
      const small = new SyncCodec({ key: KEY, maxDatagramBytes: 512 });
      const d = big.encode({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: typicalBatch(100, 4) } });
      assert.ok(d.length > 512);
      const r = small.decode(d);
      assert.equal(!r.ok && r.error, 'oversized');
      assert.equal(!r.ok && small.decode(new Uint8Array(513)).ok === false && small.counters.oversized, 2);
    });

    it('33 bytes is the shortest datagram; shorter -> truncated', () => {
      const codec = new SyncCodec({ key: KEY });
      assert.equal((codec.decode(new Uint8Array(32)) as { error?: string }).error, 'truncated');
      assert.equal((codec.decode(new Uint8Array(0)) as { error?: string }).error, 'truncated');
      assert.equal((codec.decode(new Uint8Array(33)) as { error?: string }).error, 'auth');
      assert.equal(codec.counters.truncated, 2);
    });

    it('authentic protobuf that is not a Message -> malformed', () => {
      const codec = new SyncCodec({ key: KEY });
      for (const garbage of [[0xff], [0x0a, 0x05, 0x01], [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80], [0x2a, 0x7f]]) {
        const r = codec.decode(sign(new Uint8Array(garbage)));
        assert.equal(!r.ok && r.error, 'malformed', `bytes ${garbage}`);
      }
      assert.equal(codec.counters.malformed, 4);
    });

    // Authentic, decodable protobuf with values out of range: each is 'malformed'.
    const dest = { protocol: 6, vaddr: new Uint8Array([192, 0, 2, 10]), vport: 80, daddr: new Uint8Array([10, 0, 0, 2]), dport: 80, fwd: 3 };
    const goodEntries = { dests: [dest], destState: [1], caddr: new Uint8Array([1, 2, 3, 4]), cport: new Uint8Array([0x9c, 0x40]), timeout: [9000] };
    const hdr = { nodeId: 3, incarnation: 1, seq: 1, epoch: 1 };
    const withEntries = (e: Record<string, unknown>): Record<string, unknown> => ({ ...hdr, entries: { dataSeq: 1, entries: { ...goodEntries, ...e } } });
    const fixtures: Array<{ description: string; input: Record<string, unknown> }> = [
      { description: 'node_id 0', input: { ...hdr, nodeId: 0, resyncRequest: { target: 1, session: 1 } } },
      { description: 'node_id 1024', input: { ...hdr, nodeId: 1024, resyncRequest: { target: 1, session: 1 } } },
      { description: 'no body', input: { ...hdr } },
      { description: 'seq 2^60', input: { ...hdr, seq: 2 ** 60, resyncRequest: { target: 1, session: 1 } } },
      { description: 'session 2^53', input: { ...hdr, resyncRequest: { target: 1, session: 2 ** 53 } } },
      { description: 'target 0', input: { ...hdr, resyncRequest: { target: 0, session: 1 } } },
      { description: 'dest index out of range', input: withEntries({ destState: [1 << 5] }) },
      { description: 'no dests', input: withEntries({ dests: [] }) },
      { description: 'vaddr of 5 bytes', input: withEntries({ dests: [{ ...dest, vaddr: new Uint8Array(5) }] }) },
      { description: 'daddr missing', input: withEntries({ dests: [{ ...dest, daddr: new Uint8Array(0) }] }) },
      { description: 'vport 65536', input: withEntries({ dests: [{ ...dest, vport: 65536 }] }) },
      { description: 'dport 70000', input: withEntries({ dests: [{ ...dest, dport: 70000 }] }) },
      { description: 'protocol 256', input: withEntries({ dests: [{ ...dest, protocol: 256 }] }) },
      { description: 'fwd 4', input: withEntries({ dests: [{ ...dest, fwd: 4 }] }) },
      { description: 'caddr too short', input: withEntries({ caddr: new Uint8Array(3) }) },
      { description: 'caddr too long', input: withEntries({ caddr: new Uint8Array(8) }) },
      { description: 'caddr IPv6-sized for an IPv4 dest', input: withEntries({ caddr: new Uint8Array(16) }) },
      { description: 'cport odd length', input: withEntries({ cport: new Uint8Array(3) }) },
      { description: 'timeout column short', input: withEntries({ timeout: [] }) },
      { description: 'timeout over 2^32-1 ms', input: withEntries({ timeout: [42949674] }) },
      { description: 'data_seq 2^53', input: { ...hdr, entries: { dataSeq: 2 ** 53, entries: goodEntries } } },
      { description: 'nack columns differ', input: { ...hdr, nack: { target: 1, targetIncarnation: 1, first: [1, 2], last: [3] } } },
      { description: 'nack range reversed', input: { ...hdr, nack: { target: 1, targetIncarnation: 1, first: [4], last: [3] } } },
      { description: 'ack node_id 0', input: { ...hdr, alive: { lastDataSeq: 1, oldestDataSeq: 1, synced: true, acks: [{ nodeId: 0, incarnation: 1, contiguous: 1 }] } } },
      { description: 'resync chunk target 1024', input: { ...hdr, resyncChunk: { target: 1024, session: 1, index: 0, last: true } } },
    ];
    for (const { description, input } of fixtures) {
      it(`malformed: ${description}`, () => {
        const codec = new SyncCodec({ key: KEY });
        const r = codec.decode(signedWire(input));
        assert.equal(r.ok, false);
        assert.equal(!r.ok && r.error, 'malformed', !r.ok ? r.detail : 'decoded');
        assert.equal(codec.counters.malformed, 1);
      });
    }

    it('two bodies on the wire: the last one wins (protobuf oneof semantics)', () => {
      const codec = new SyncCodec({ key: KEY });
      const msg = ok(codec.decode(signedWire({ ...hdr, resyncRequest: { target: 1, session: 1 }, resyncAck: { target: 2, session: 3, next: 4 } })));
      assert.deepEqual(msg.body, { kind: 'resyncAck', target: 2, session: 3, next: 4, received: [] });
    });

    it('the fixtures differ from a valid message only in the named value', () => {
      const codec = new SyncCodec({ key: KEY });
      const msg = ok(codec.decode(signedWire(withEntries({}))));
      if (msg.body.kind !== 'entries') return assert.fail('kind');
      const [r] = records(msg.body.entries);
      assert.equal(r!.cport, 40000);
      assert.deepEqual(r!.caddr, v4(0x01020304));
      assert.equal(r!.timeoutMs, 900_000);
      assert.equal(r!.state, 1);
      assert.ok(ok(codec.decode(signedWire({ ...hdr, resyncChunk: { target: 1023, session: 1, index: 0, last: true } }))));
    });
  });

  describe('fuzz: decode() never throws', () => {
    const codec = new SyncCodec({ key: KEY });
    const samples: Uint8Array[] = [
      codec.encode({ ...header(), body: { kind: 'entries', dataSeq: 1, entries: typicalBatch(30, 4) } }),
      codec.encode({ ...header(), body: { kind: 'resyncChunk', target: 2, session: 3, index: 4, last: false, entries: typicalBatch(10, 6) } }),
      codec.encode({ ...header(), body: { kind: 'alive', lastDataSeq: 5, oldestDataSeq: 1, synced: true, acks: [{ nodeId: 4, incarnation: 9, contiguous: 5 }] } }),
      codec.encode({ ...header(), body: { kind: 'nack', target: 4, targetIncarnation: 9, ranges: [[1, 2], [4, 4]] } }),
      codec.encode({ ...header(), body: { kind: 'resyncAck', target: 4, session: 9, next: 2, received: [4, 5] } }),
    ];
    const sampleArb = fc.constantFrom(...samples);

    it('random bytes: truncated, oversized or auth', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: 1600 }), (bytes) => {
          const r = codec.decode(bytes);
          assert.equal(r.ok, false);
          assert.ok(!r.ok && ['truncated', 'oversized', 'auth'].includes(r.error));
        }),
        { numRuns: 300 },
      );
    });

    it('truncations of a valid datagram: truncated or auth', () => {
      fc.assert(
        fc.property(sampleArb, fc.nat(), (d, cut) => {
          const r = codec.decode(d.subarray(0, cut % d.length));
          assert.ok(!r.ok && (r.error === 'truncated' || r.error === 'auth'));
        }),
      );
    });

    it('one flipped bit anywhere -> auth', () => {
      fc.assert(
        fc.property(sampleArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (d, at, bit) => {
          const x = d.slice();
          x[at % x.length]! ^= 1 << bit;
          const r = codec.decode(x);
          assert.ok(!r.ok && r.error === 'auth');
        }),
      );
    });

    it('authentic random bytes: malformed or in range', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), (bytes) => {
          const r = codec.decode(sign(bytes));
          if (r.ok) assertInRange(r.msg);
          else assert.equal(r.error, 'malformed');
        }),
        { numRuns: 500 },
      );
    });

    it('authentic mutations of valid messages (byte changes, cuts, splices): malformed or in range', () => {
      fc.assert(
        fc.property(
          sampleArb,
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
          fc.nat(),
          fc.uint8Array({ maxLength: 40 }),
          (d, edits, cut, splice) => {
            const proto = d.slice(0, d.length - TAG_BYTES);
            for (const [at, v] of edits) proto[at % proto.length] = v;
            const c = cut % (proto.length + 1);
            const mutated = new Uint8Array([...proto.subarray(0, c), ...splice, ...proto.subarray(c)]);
            if (mutated.length === 0) return;
            const r = codec.decode(sign(mutated));
            if (r.ok) assertInRange(r.msg);
            else assert.equal(r.error, 'malformed');
          },
        ),
        { numRuns: 1000 },
      );
    });
  });

  describe('size', () => {
    /** Bytes per entry over the full datagrams (all but the last) of `count` typical entries. */
    function measure(family: 4 | 6, max = DEFAULT_MAX_DATAGRAM_BYTES): { perEntry: number; perDatagram: number } {
      const codec = new SyncCodec({ key: KEY, maxDatagramBytes: max });
      const batch = typicalBatch(20_000, family, 7);
      const { datagrams } = encodeAll(codec, header(), batch);
      const full = datagrams.slice(0, -1);
      let bytes = 0;
      let entries = 0;
      for (const d of full) {
        const msg = ok(codec.decode(d));
        if (msg.body.kind !== 'entries') assert.fail('kind');
        bytes += d.length;
        entries += msg.body.entries.count;
      }
      return { perEntry: bytes / entries, perDatagram: entries / full.length };
    }

    it('IPv4 TCP: <= 24 bytes per entry in full datagrams', () => {
      const { perEntry, perDatagram } = measure(4);
      console.log(`      IPv4: ${perEntry.toFixed(2)} bytes/entry, ${perDatagram.toFixed(1)} entries per 1472-byte datagram`);
      assert.ok(perEntry <= 24, `${perEntry}`);
    });

    it('IPv6 TCP: <= 48 bytes per entry in full datagrams', () => {
      const { perEntry, perDatagram } = measure(6);
      console.log(`      IPv6: ${perEntry.toFixed(2)} bytes/entry, ${perDatagram.toFixed(1)} entries per 1472-byte datagram`);
      assert.ok(perEntry <= 48, `${perEntry}`);
    });
  });
});
