/**
 * Unit tests of the reliability engine (sync/node.ts), one rule at a time:
 * batching and flush, sequence numbers, replay window, incarnations, NACK
 * timing and retransmission, Alive contents, the resync state machine in
 * both roles, and the SeqSet it keeps its windows in. One SyncNode under
 * test talks to peers that are only encoded messages (the real codec), on
 * the simulator's event queue and fake table (sync/sim.ts). No real time.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ManualClock, SYNC_RECORD, SYNC_RECORD_FLAG, syncRecordView } from '../../core/index.js';
import { SyncCodec } from '../../sync/codec.js';
import { SeqSet, SyncNode, syncRecordKey, type SyncNodeInit } from '../../sync/node.js';
import { EventQueue, FakeLocal, SIM_KEY, SimTimers, canonicalHex, writeWorkloadRecord } from '../../sync/sim.js';
import type { PeerAddress, RecordBatch, SyncBody, SyncMessage } from '../../sync/types.js';

const R = SYNC_RECORD;
const ME = 1;
const MY_INC = 5000;

function addrOf(id: number): PeerAddress {
  return { address: `10.0.0.${id}`, port: 8848 };
}

/** `n` workload records of `owner` (connections from+0 .. from+n-1) at `version`. */
function records(owner: number, n: number, from = 0, version = 1): RecordBatch {
  const bytes = new Uint8Array(n * R.SIZE);
  const v = syncRecordView(bytes);
  for (let i = 0; i < n; i++) writeWorkloadRecord(v, i, owner, 1, from + i, version, false);
  return { bytes, count: n };
}

interface Sent {
  to: PeerAddress | null;
  msg: SyncMessage;
  bytes: Uint8Array;
}

/** One SyncNode with a recording transport; peers are hand-made datagrams. */
class Harness {
  readonly clock = new ManualClock(0);
  readonly queue = new EventQueue();
  readonly timers = new SimTimers(this.clock, this.queue);
  readonly codec = new SyncCodec({ key: SIM_KEY });
  readonly sent: Sent[] = [];
  readonly local: FakeLocal;
  readonly node: SyncNode;
  readonly injected: RecordBatch[] = [];
  private seqs = new Map<string, number>();
  private drain = false;

  constructor(init: Partial<SyncNodeInit> = {}) {
    this.local = new FakeLocal(this.clock, this.queue, 1, () => (this.drain = true));
    const local = this.local;
    const injected = this.injected;
    this.node = new SyncNode(
      { nodeId: ME, incarnation: MY_INC, ...init },
      {
        codec: this.codec,
        transport: {
          broadcast: (bytes) => this.record(null, bytes),
          sendTo: (bytes, to) => this.record(to, bytes),
        },
        local: {
          inject: (b) => {
            injected.push(b);
            local.inject(b);
          },
          dump: (c, m) => local.dump(c, m),
          ready: (s) => local.ready(s),
        },
        timers: this.timers,
      },
    );
  }

  private record(to: PeerAddress | null, bytes: Uint8Array): void {
    const r = this.codec.decode(bytes);
    if (!r.ok) throw new Error(`the node sent an undecodable datagram: ${r.detail}`);
    this.sent.push({ to, msg: r.msg, bytes });
  }

  /** Run the event queue for `ms` of simulated time (letting dump promises settle). */
  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    for (;;) {
      const ev = this.queue.peek();
      if (ev === undefined || ev.at > end) break;
      this.queue.pop();
      if (ev.cancelled) continue;
      if (ev.at > this.clock.now()) this.clock.set(ev.at);
      ev.fn();
      if (this.drain) {
        this.drain = false;
        await new Promise<void>((r) => setImmediate(r));
      }
    }
    this.clock.set(end);
  }

  /** A datagram from peer `id` (incarnation `inc`), with its next message seq unless given. */
  from(id: number, inc: number, body: SyncBody, seq?: number, epoch = 0): Uint8Array {
    const k = `${id}/${inc}`;
    const s = seq ?? (this.seqs.get(k) ?? 0) + 1;
    this.seqs.set(k, Math.max(s, this.seqs.get(k) ?? 0));
    return this.codec.encode({ nodeId: id, incarnation: inc, seq: s, epoch, body });
  }

  deliver(id: number, inc: number, body: SyncBody, seq?: number): void {
    this.node.receive(this.from(id, inc, body, seq), addrOf(id));
  }

  alive(id: number, inc: number, lastDataSeq: number, synced: boolean, oldest = lastDataSeq > 0 ? 1 : 0, acks: Array<{ nodeId: number; incarnation: number; contiguous: number }> = []): void {
    this.deliver(id, inc, { kind: 'alive', lastDataSeq, oldestDataSeq: oldest, synced, acks });
  }

  entries(id: number, inc: number, dataSeq: number, batch: RecordBatch = records(id, 1, dataSeq)): void {
    this.deliver(id, inc, { kind: 'entries', dataSeq, entries: batch });
  }

  /** Messages of one kind sent since index `since`. */
  kind<K extends SyncBody['kind']>(k: K, since = 0): Array<Sent & { body: Extract<SyncBody, { kind: K }> }> {
    return this.sent
      .slice(since)
      .filter((s) => s.msg.body.kind === k)
      .map((s) => ({ ...s, body: s.msg.body as Extract<SyncBody, { kind: K }> }));
  }

  /** Start and pass discovery with nobody around: a synced node of a cold cluster. */
  async startCold(): Promise<void> {
    this.node.start();
    await this.run(this.discovery);
    assert.equal(this.node.synced, true);
  }

  get discovery(): number {
    return 750;
  }
}

describe('sync node', () => {
  describe('sending', () => {
    it('cuts N records into ceil(N / fit) datagrams: full ones at once, the rest after flushIntervalMs', async () => {
      const h = new Harness({ flushIntervalMs: 10 });
      await h.startCold();
      const fit = h.codec.fit(records(ME, 1000), 0);
      assert.ok(fit > 10 && fit < 1000, `fit ${fit}`);
      const n = 2 * fit + 7;
      const before = h.sent.length;
      h.node.submit(records(ME, n));
      assert.equal(h.kind('entries', before).length, 2, 'two full datagrams at once');
      await h.run(9);
      assert.equal(h.kind('entries', before).length, 2, 'the partial one waits');
      await h.run(1);
      const out = h.kind('entries', before);
      assert.equal(out.length, Math.ceil(n / fit));
      assert.deepEqual(out.map((s) => s.body.entries.count), [fit, fit, 7]);
      assert.deepEqual(out.map((s) => s.body.dataSeq), [1, 2, 3]);
      assert.ok(out.every((s) => s.to === null), 'data is broadcast');
      // The records arrive as sent (the codec's round trip is exact for these).
      const got = out.flatMap((s) => Array.from({ length: s.body.entries.count }, (_, i) => canonicalHex(s.body.entries.bytes, i)));
      const want = Array.from({ length: n }, (_, i) => canonicalHex(records(ME, n).bytes, i));
      assert.deepEqual(got, want);
      assert.equal(h.node.status().entriesSent, n);
    });

    it('a partial datagram waits flushIntervalMs from its first record, not longer, and takes later records along', async () => {
      const h = new Harness({ flushIntervalMs: 10 });
      await h.startCold();
      const before = h.sent.length;
      h.node.submit(records(ME, 1, 0));
      await h.run(6);
      h.node.submit(records(ME, 1, 1));
      await h.run(3);
      assert.equal(h.kind('entries', before).length, 0);
      await h.run(1);
      const out = h.kind('entries', before);
      assert.equal(out.length, 1);
      assert.equal(out[0]!.body.entries.count, 2);
      assert.equal(h.node.status().pendingEntries, 0);
    });

    it('numbers messages 1, 2, 3... over every kind, and data datagrams separately', async () => {
      const h = new Harness({ flushIntervalMs: 10 });
      await h.startCold();
      h.node.submit(records(ME, 1));
      await h.run(10);
      h.node.submit(records(ME, 1, 5));
      await h.run(260);
      const seqs = h.sent.map((s) => s.msg.seq);
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      assert.deepEqual(h.kind('entries').map((s) => s.body.dataSeq), [1, 2]);
      assert.ok(h.sent.every((s) => s.msg.nodeId === ME && s.msg.incarnation === MY_INC));
    });

    it('carries the epoch set by setEpoch() in every header', async () => {
      const h = new Harness();
      await h.startCold();
      h.node.setEpoch(42);
      const before = h.sent.length;
      await h.run(250);
      assert.ok(h.sent.length > before);
      assert.ok(h.sent.slice(before).every((s) => s.msg.epoch === 42));
      assert.throws(() => h.node.setEpoch(-1), { code: 'SARU_ERR_INVALID_ARGUMENT' });
    });

    it('retransmits on NACK with the same dataSeq and a new message seq, to the NACKer only', async () => {
      const h = new Harness({ flushIntervalMs: 10 });
      await h.startCold();
      h.node.submit(records(ME, 3));
      await h.run(10);
      const orig = h.kind('entries')[0]!;
      const before = h.sent.length;
      h.deliver(2, 900, { kind: 'nack', target: ME, targetIncarnation: MY_INC, ranges: [[1, 1]] });
      const re = h.kind('entries', before);
      assert.equal(re.length, 1);
      assert.equal(re[0]!.body.dataSeq, 1);
      assert.ok(re[0]!.msg.seq > orig.msg.seq);
      assert.deepEqual(re[0]!.to, addrOf(2));
      assert.deepEqual(re[0]!.body.entries.bytes, orig.body.entries.bytes);
      const st = h.node.status();
      assert.equal(st.retransmitted, 1);
      assert.equal(st.peers.find((p) => p.nodeId === 2)!.nacksReceived, 1);
      // A NACK for our previous incarnation, or for another node, is not ours.
      h.deliver(2, 900, { kind: 'nack', target: ME, targetIncarnation: MY_INC - 1, ranges: [[1, 1]] });
      h.deliver(2, 900, { kind: 'nack', target: 3, targetIncarnation: MY_INC, ranges: [[1, 1]] });
      assert.equal(h.node.status().retransmitted, 1);
      assert.equal(h.node.status().unknownTarget, 2);
    });

    it('answers a NACK below its ring with what the ring holds and a unicast Alive', async () => {
      const h = new Harness({ flushIntervalMs: 1, ringDatagrams: 4 });
      await h.startCold();
      for (let i = 0; i < 6; i++) {
        h.node.submit(records(ME, 1, i));
        await h.run(1);
      }
      const before = h.sent.length;
      h.deliver(2, 900, { kind: 'nack', target: ME, targetIncarnation: MY_INC, ranges: [[1, 4]] });
      assert.deepEqual(h.kind('entries', before).map((s) => s.body.dataSeq), [3, 4]);
      const alive = h.kind('alive', before);
      assert.equal(alive.length, 1);
      assert.deepEqual(alive[0]!.to, addrOf(2));
      assert.equal(alive[0]!.body.oldestDataSeq, 3);
      assert.equal(alive[0]!.body.lastDataSeq, 6);
    });

    it('sends Alive every aliveIntervalMs with lastDataSeq, oldestDataSeq, synced and acks', async () => {
      const h = new Harness({ flushIntervalMs: 1, ringDatagrams: 2, aliveIntervalMs: 100 });
      h.node.start();
      const first = h.kind('alive');
      assert.equal(first.length, 1, 'an Alive at start');
      assert.deepEqual(first[0]!.body, { kind: 'alive', lastDataSeq: 0, oldestDataSeq: 0, synced: false, acks: [] });
      await h.run(300); // discovery (3 * alive): nobody, synced
      assert.equal(h.node.synced, true);
      for (let i = 0; i < 3; i++) {
        h.node.submit(records(ME, 1, i));
        await h.run(1);
      }
      h.entries(2, 900, 1);
      h.entries(2, 900, 2);
      h.entries(2, 900, 4);
      const before = h.sent.length;
      await h.run(100);
      const a = h.kind('alive', before);
      assert.equal(a.length, 1);
      assert.equal(a[0]!.to, null);
      assert.deepEqual(a[0]!.body, {
        kind: 'alive',
        lastDataSeq: 3,
        oldestDataSeq: 2,
        synced: true,
        acks: [{ nodeId: 2, incarnation: 900, contiguous: 2 }],
      });
      assert.equal(h.kind('alive').length, 5, 'one at start, then every 100 ms');
    });
  });

  describe('receiving', () => {
    it('injects new data, ignores its own echoes and counts network duplicates as replays', async () => {
      const h = new Harness();
      await h.startCold();
      const b = h.from(2, 900, { kind: 'entries', dataSeq: 1, entries: records(2, 3) });
      h.node.receive(b, addrOf(2));
      h.node.receive(b, addrOf(2));
      const own = h.codec.encode({ nodeId: ME, incarnation: MY_INC, seq: 999, epoch: 0, body: { kind: 'entries', dataSeq: 1, entries: records(ME, 1) } });
      h.node.receive(own, addrOf(ME));
      assert.equal(h.injected.length, 1);
      assert.equal(h.injected[0]!.count, 3);
      assert.equal(h.local.size, 3);
      const st = h.node.status();
      assert.equal(st.replayed, 1);
      assert.equal(st.ownEchoes, 1);
      assert.equal(st.entriesReceived, 3);
      const p = st.peers.find((x) => x.nodeId === 2)!;
      assert.equal(p.contiguous, 1);
      assert.equal(p.address, '10.0.0.2:8848');
    });

    it('rejects seqs already seen and seqs older than the replay window', async () => {
      const h = new Harness({ replayWindow: 64 });
      await h.startCold();
      h.deliver(2, 900, { kind: 'entries', dataSeq: 1, entries: records(2, 1) }, 100);
      h.deliver(2, 900, { kind: 'entries', dataSeq: 2, entries: records(2, 1, 1) }, 40); // within the window, new
      h.deliver(2, 900, { kind: 'entries', dataSeq: 3, entries: records(2, 1, 2) }, 36); // 100 - 36 = 64: outside
      h.deliver(2, 900, { kind: 'entries', dataSeq: 4, entries: records(2, 1, 3) }, 40); // seen
      assert.equal(h.node.status().replayed, 2);
      assert.equal(h.local.size, 2);
    });

    it('a newer incarnation resets the sender (dataSeq from 1 again); the older one is then replayed', async () => {
      const h = new Harness();
      await h.startCold();
      for (let d = 1; d <= 3; d++) h.entries(2, 900, d);
      h.entries(2, 901, 1, records(2, 1, 100));
      assert.equal(h.local.size, 4, 'dataSeq 1 of the new incarnation is new data');
      let p = h.node.status().peers.find((x) => x.nodeId === 2)!;
      assert.equal(p.incarnation, 901);
      assert.equal(p.restarts, 1);
      assert.equal(p.contiguous, 1);
      h.entries(2, 900, 4, records(2, 1, 200));
      assert.equal(h.node.status().replayed, 1);
      assert.equal(h.local.size, 4);
      p = h.node.status().peers.find((x) => x.nodeId === 2)!;
      assert.equal(p.incarnation, 901);
    });

    it('NACKs a gap after nackDelayMs, not before; re-NACKs every nackRetryMs; stops when it is filled', async () => {
      const h = new Harness({ nackDelayMs: 5, nackRetryMs: 50 });
      await h.startCold();
      h.entries(2, 900, 1);
      h.entries(2, 900, 4);
      const t0 = h.sent.length;
      await h.run(4);
      assert.equal(h.kind('nack', t0).length, 0, 'no NACK before nackDelayMs');
      await h.run(1);
      let n = h.kind('nack', t0);
      assert.equal(n.length, 1);
      assert.deepEqual(n[0]!.body, { kind: 'nack', target: 2, targetIncarnation: 900, ranges: [[2, 3]] });
      assert.deepEqual(n[0]!.to, addrOf(2));
      await h.run(49);
      assert.equal(h.kind('nack', t0).length, 1);
      await h.run(1);
      n = h.kind('nack', t0);
      assert.equal(n.length, 2, 're-NACK after nackRetryMs');
      h.entries(2, 900, 2);
      await h.run(50);
      n = h.kind('nack', t0);
      assert.equal(n.length, 3);
      assert.deepEqual(n[2]!.body.ranges, [[3, 3]]);
      h.entries(2, 900, 3);
      await h.run(500);
      assert.equal(h.kind('nack', t0).length, 3, 'no NACK once filled');
      const p = h.node.status().peers.find((x) => x.nodeId === 2)!;
      assert.equal(p.gaps, 2);
      assert.equal(p.nacksSent, 3);
      assert.equal(p.contiguous, 4);
    });

    it('a reordered datagram that arrives within nackDelayMs is not NACKed', async () => {
      const h = new Harness({ nackDelayMs: 5 });
      await h.startCold();
      h.entries(2, 900, 1);
      h.entries(2, 900, 3);
      await h.run(3);
      h.entries(2, 900, 2);
      await h.run(100);
      assert.equal(h.kind('nack').length, 0);
    });

    it('detects tail loss from Alive.lastDataSeq and NACKs it', async () => {
      const h = new Harness({ nackDelayMs: 5 });
      await h.startCold();
      h.entries(2, 900, 1);
      h.alive(2, 900, 3, true);
      await h.run(5);
      const n = h.kind('nack');
      assert.equal(n.length, 1);
      assert.deepEqual(n[0]!.body.ranges, [[2, 3]]);
    });

    it('stops NACKing a silent sender (peerTimeoutMs)', async () => {
      const h = new Harness({ nackRetryMs: 50, aliveIntervalMs: 100 });
      await h.startCold();
      h.entries(2, 900, 1);
      h.entries(2, 900, 3);
      await h.run(2000);
      const n = h.kind('nack').length;
      assert.ok(n >= 5 && n <= 9, `${n} NACKs`);
      assert.equal(h.node.status().peers[0]!.alive, false);
    });

    it('never lets an older datagram overwrite a newer version of the same connection', async () => {
      const h = new Harness();
      await h.startCold();
      h.entries(2, 900, 1);
      h.entries(2, 900, 3, records(2, 2, 10, 3)); // connections 10, 11 at version 3
      h.entries(2, 900, 2, records(2, 3, 9, 2)); // 9, 10, 11 at version 2: 10 and 11 are older
      assert.equal(canonicalHex(records(2, 1, 10, 3).bytes, 0), h.local.snapshot().get(syncRecordKey(records(2, 1, 10, 3).bytes, 0)));
      assert.equal(canonicalHex(records(2, 1, 9, 2).bytes, 0), h.local.snapshot().get(syncRecordKey(records(2, 1, 9, 2).bytes, 0)));
      assert.equal(h.node.status().superseded, 2);
    });

    it('skips a gap below the sender ring and asks it for its own entries (odd session)', async () => {
      const h = new Harness({ nackDelayMs: 5 });
      await h.startCold();
      h.entries(2, 900, 1);
      h.alive(2, 900, 50, true, 40);
      const req = h.kind('resyncRequest');
      assert.equal(req.length, 1);
      assert.equal(req[0]!.body.target, 2);
      assert.equal(req[0]!.body.session % 2, 1, 'own entries only');
      assert.deepEqual(req[0]!.to, addrOf(2));
      await h.run(5);
      const n = h.kind('nack');
      assert.equal(n.length, 1);
      assert.deepEqual(n[0]!.body.ranges, [[40, 50]], 'only what the ring still holds');
      const st = h.node.status();
      assert.equal(st.unrecoverable, 38);
      assert.equal(st.gapResyncs, 1);
      // While the gap resync runs, the ack for node 2 stays below the skipped range.
      const before = h.sent.length;
      await h.run(250);
      const a = h.kind('alive', before).at(-1)!;
      assert.deepEqual(a.body.acks, [{ nodeId: 2, incarnation: 900, contiguous: 1 }]);
      // The chunk arrives: injected, acked, finished; acks are true again.
      const s = req[0]!.body.session;
      h.deliver(2, 900, { kind: 'resyncChunk', target: ME, session: s, index: 0, last: true, entries: records(2, 5, 100) });
      const ack = h.kind('resyncAck', before).at(-1)!;
      assert.deepEqual(ack.body, { kind: 'resyncAck', target: 2, session: s, next: 1, received: [] });
      assert.equal(h.local.size, 6);
      for (let d = 40; d <= 50; d++) h.entries(2, 900, d);
      const b2 = h.sent.length;
      await h.run(250);
      assert.deepEqual(h.kind('alive', b2).at(-1)!.body.acks, [{ nodeId: 2, incarnation: 900, contiguous: 50 }]);
    });

    it('never throws on garbage; a failing inject is counted as a handler error', async () => {
      const h = new Harness();
      await h.startCold();
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
          h.node.receive(bytes, addrOf(9));
        }),
        { numRuns: 200 },
      );
      const st = h.node.status();
      assert.equal(st.authFailures + st.truncated + st.oversized, 200);
      const bad = new SyncNode(
        { nodeId: ME, incarnation: 1 },
        {
          codec: h.codec,
          transport: { broadcast: () => {}, sendTo: () => {} },
          local: {
            inject: () => {
              throw new Error('boom');
            },
            dump: () => Promise.reject(new Error('no')),
            ready: () => {},
          },
          timers: new SimTimers(h.clock, h.queue),
        },
      );
      bad.start();
      assert.doesNotThrow(() => bad.receive(h.from(3, 1, { kind: 'entries', dataSeq: 1, entries: records(3, 1) }), addrOf(3)));
      assert.equal(bad.status().handlerErrors, 1);
      bad.stop();
    });
  });

  describe('bulk resync (requester)', () => {
    it('with no synced peer after discoveryMs: synced, ready(true), nothing fetched', async () => {
      const h = new Harness({ discoveryMs: 300 });
      h.node.start();
      assert.deepEqual(h.local.readyCalls.map((r) => r.synced), [false]);
      h.alive(2, 900, 0, false); // a peer that is starting too
      await h.run(299);
      assert.equal(h.node.synced, false);
      assert.equal(h.node.status().resyncActive, true);
      await h.run(1);
      assert.equal(h.node.synced, true);
      assert.deepEqual(h.local.readyCalls, [
        { at: 0, synced: false },
        { at: 300, synced: true },
      ]);
      assert.equal(h.kind('resyncRequest').length, 0);
    });

    it('asks the lowest synced live peer, injects chunks in any order, acks, and is ready when all arrived', async () => {
      const h = new Harness({ discoveryMs: 300 });
      h.node.start();
      h.alive(3, 700, 10, true);
      h.alive(2, 900, 5, true);
      h.alive(4, 800, 0, false);
      await h.run(300);
      let req = h.kind('resyncRequest');
      assert.equal(req.length, 0, 'waits until the source acks what we saw of node 3');
      h.alive(2, 900, 5, true, 1, [{ nodeId: 3, incarnation: 700, contiguous: 10 }]);
      req = h.kind('resyncRequest');
      assert.equal(req.length, 1);
      assert.equal(req[0]!.body.target, 2);
      assert.equal(req[0]!.body.session % 2, 0, 'whole table');
      const s = req[0]!.body.session;
      const chunk = (index: number, last: boolean): void =>
        h.deliver(2, 900, { kind: 'resyncChunk', target: ME, session: s, index, last, entries: records(3, 2, index * 2) });
      chunk(1, false);
      chunk(0, false);
      chunk(0, false); // duplicate
      chunk(3, true);
      assert.equal(h.node.synced, false);
      await h.run(20);
      const acks = h.kind('resyncAck');
      assert.deepEqual(acks.at(-1)!.body, { kind: 'resyncAck', target: 2, session: s, next: 2, received: [3] });
      chunk(2, false);
      assert.equal(h.node.synced, true);
      assert.equal(h.local.size, 8);
      assert.deepEqual(h.local.readyCalls.map((r) => r.synced), [false, true]);
      assert.deepEqual(h.kind('resyncAck').at(-1)!.body, { kind: 'resyncAck', target: 2, session: s, next: 4, received: [] });
      // A stray chunk of the finished session is answered with the final ack again.
      const before = h.sent.length;
      chunk(3, true);
      assert.equal(h.kind('resyncAck', before).length, 1);
    });

    it('a dump never overwrites a connection received live during the resync', async () => {
      const h = new Harness({ discoveryMs: 300 });
      h.node.start();
      h.alive(2, 900, 0, true);
      await h.run(300);
      const s = h.kind('resyncRequest')[0]!.body.session;
      h.entries(2, 900, 1, records(2, 1, 7, 5)); // connection 7 at version 5, live
      h.deliver(2, 900, { kind: 'resyncChunk', target: ME, session: s, index: 0, last: true, entries: records(2, 2, 7, 4) }); // 7 and 8 at version 4
      const snap = h.local.snapshot();
      assert.equal(snap.get(syncRecordKey(records(2, 1, 7).bytes, 0)), canonicalHex(records(2, 1, 7, 5).bytes, 0));
      assert.equal(snap.get(syncRecordKey(records(2, 1, 8).bytes, 0)), canonicalHex(records(2, 1, 8, 4).bytes, 0));
    });

    it('a base the source does not reach is lowered after resyncTimeoutMs and the difference NACKed', async () => {
      const h = new Harness({ discoveryMs: 300, resyncTimeoutMs: 1000, aliveIntervalMs: 100, peerTimeoutMs: 5000 });
      h.node.start();
      h.alive(3, 700, 10, true); // node 3 has sent 10 datagrams before we came: base 10
      h.alive(2, 900, 0, true, 0, [{ nodeId: 3, incarnation: 700, contiguous: 6 }]);
      await h.run(300);
      assert.equal(h.kind('resyncRequest').length, 0, 'waits for the source to catch up');
      assert.equal(h.kind('nack').length, 0, 'nothing below the base is NACKed');
      await h.run(999);
      h.alive(3, 700, 10, true);
      assert.equal(h.kind('resyncRequest').length, 0);
      await h.run(1);
      assert.equal(h.kind('resyncRequest').length, 1, 'asks anyway after resyncTimeoutMs');
      await h.run(1);
      const n = h.kind('nack');
      assert.equal(n.length, 1);
      assert.deepEqual(n[0]!.body.ranges, [[7, 10]], 'what the dump will not hold comes from node 3 itself');
    });

    it('changes source after resyncTimeoutMs without progress (a new session)', async () => {
      const h = new Harness({ discoveryMs: 300, resyncTimeoutMs: 1000, aliveIntervalMs: 100, peerTimeoutMs: 5000 });
      h.node.start();
      h.alive(2, 900, 0, true);
      h.alive(3, 900, 0, true);
      await h.run(300);
      const first = h.kind('resyncRequest');
      assert.equal(first.length, 1);
      assert.equal(first[0]!.body.target, 2);
      h.alive(2, 900, 0, true);
      h.alive(3, 900, 0, true);
      await h.run(999);
      assert.ok(h.kind('resyncRequest').every((r) => r.body.target === 2), 'the request is repeated until a chunk comes');
      await h.run(1);
      const last = h.kind('resyncRequest').at(-1)!;
      assert.equal(last.body.target, 3);
      assert.notEqual(last.body.session, first[0]!.body.session);
      assert.equal(h.node.status().resyncs, 2);
    });

    it('resync() while running: ready(false) now and a new bulk resync from a synced peer', async () => {
      const h = new Harness({ discoveryMs: 300 });
      await h.startCold();
      h.alive(2, 900, 0, true);
      h.node.resync();
      assert.deepEqual(h.local.readyCalls.map((r) => r.synced), [false, true, false]);
      const req = h.kind('resyncRequest');
      assert.equal(req.length, 1, 'peers known: no discovery wait');
      h.deliver(2, 900, { kind: 'resyncChunk', target: ME, session: req[0]!.body.session, index: 0, last: true, entries: records(2, 0) });
      assert.deepEqual(h.local.readyCalls.map((r) => r.synced), [false, true, false, true]);
    });
  });

  describe('resync (responder)', () => {
    /** A node holding `own` connections of its own and `synced` received ones. */
    async function holding(own: number, synced: number, init: Partial<SyncNodeInit> = {}): Promise<Harness> {
      const h = new Harness({ resyncWindow: 4, resyncPageEntries: 50, ...init });
      await h.startCold();
      h.local.applyOwn(records(ME, own));
      const s = records(7, synced);
      h.local.inject(s);
      return h;
    }

    it('pages the table, keeps resyncWindow chunks in flight, slides on acks and marks the last', async () => {
      const h = await holding(300, 0);
      h.deliver(2, 900, { kind: 'resyncRequest', target: ME, session: 10 });
      await h.run(5);
      let ch = h.kind('resyncChunk');
      assert.equal(ch.length, 4, 'a window of chunks');
      assert.ok(ch.every((c) => c.body.target === 2 && c.body.session === 10 && c.to !== null));
      assert.deepEqual(ch.map((c) => c.body.index), [0, 1, 2, 3]);
      const all = new Map<number, RecordBatch>();
      let last = -1;
      for (let round = 0; round < 100 && last < 0; round++) {
        for (const c of h.kind('resyncChunk')) {
          all.set(c.body.index, c.body.entries);
          if (c.body.last) last = c.body.index;
        }
        const next = Math.max(...all.keys()) + 1;
        h.deliver(2, 900, { kind: 'resyncAck', target: ME, session: 10, next, received: [] });
        await h.run(5);
      }
      assert.ok(last >= 0);
      h.deliver(2, 900, { kind: 'resyncAck', target: ME, session: 10, next: last + 1, received: [] });
      for (const c of h.kind('resyncChunk')) all.set(c.body.index, c.body.entries);
      let total = 0;
      for (let i = 0; i <= last; i++) total += all.get(i)!.count;
      assert.equal(total, 300);
      ch = h.kind('resyncChunk');
      assert.equal(ch.filter((c) => c.body.last).length, 1);
      const st = h.node.status();
      assert.equal(st.resyncsServed, 1);
      assert.equal(st.resyncServing, 0);
      assert.equal(st.peers.find((p) => p.nodeId === 2)!.resyncsServed, 1);
    });

    it('an odd session gets only its own entries; an empty table gets one empty last chunk', async () => {
      const h = await holding(3, 20);
      h.deliver(2, 900, { kind: 'resyncRequest', target: ME, session: 11 });
      await h.run(10);
      const ch = h.kind('resyncChunk');
      assert.equal(ch.length, 1);
      assert.equal(ch[0]!.body.entries.count, 3);
      assert.ok(ch[0]!.body.last);
      const e = await holding(0, 0);
      e.deliver(2, 900, { kind: 'resyncRequest', target: ME, session: 12 });
      await e.run(10);
      const c2 = e.kind('resyncChunk');
      assert.equal(c2.length, 1);
      assert.equal(c2[0]!.body.entries.count, 0);
      assert.ok(c2[0]!.body.last);
    });

    it('resends from `next` after resyncTimeoutMs, skipping chunks acked above it; gives up after 10 timeouts', async () => {
      const h = await holding(300, 0, { resyncTimeoutMs: 100 });
      h.deliver(2, 900, { kind: 'resyncRequest', target: ME, session: 10 });
      await h.run(5);
      h.deliver(2, 900, { kind: 'resyncAck', target: ME, session: 10, next: 1, received: [2] });
      await h.run(1);
      const before = h.sent.length;
      await h.run(100);
      const again = h.kind('resyncChunk', before).map((c) => c.body.index);
      assert.deepEqual(again.slice(0, 2), [1, 3]);
      await h.run(1000);
      const st = h.node.status();
      assert.equal(st.resyncsAbandoned, 1);
      assert.equal(st.resyncServing, 0);
    });

    it('serves at most 4 sessions; a new request from the same requester replaces its session', async () => {
      const h = await holding(100, 0);
      for (const id of [2, 3, 4, 5, 6]) h.deliver(id, 900, { kind: 'resyncRequest', target: ME, session: 2 });
      let st = h.node.status();
      assert.equal(st.resyncServing, 4);
      assert.equal(st.resyncsRefused, 1);
      h.deliver(2, 900, { kind: 'resyncRequest', target: ME, session: 4 });
      await h.run(5);
      st = h.node.status();
      assert.equal(st.resyncServing, 4);
      assert.ok(h.kind('resyncChunk').some((c) => c.body.target === 2 && c.body.session === 4));
      // A request for another node is not ours.
      h.deliver(7, 900, { kind: 'resyncRequest', target: 3, session: 2 });
      assert.equal(h.node.status().unknownTarget, 1);
    });
  });

  describe('lifecycle', () => {
    it('stop() clears every timer it set', async () => {
      const h = new Harness();
      h.node.start();
      h.alive(2, 900, 0, true);
      h.entries(2, 900, 3);
      h.node.submit(records(ME, 1));
      await h.run(400);
      h.deliver(3, 900, { kind: 'resyncRequest', target: ME, session: 2 });
      assert.ok(h.timers.pending > 0);
      h.node.stop();
      assert.equal(h.timers.pending, 0);
      const before = h.sent.length;
      await h.run(5000);
      assert.equal(h.sent.length, before);
    });

    it('rejects bad settings and batches', () => {
      const h = new Harness();
      assert.throws(() => new SyncNode({ nodeId: 0, incarnation: 1 }, { codec: h.codec, transport: { broadcast() {}, sendTo() {} }, local: h.local, timers: h.timers }), {
        code: 'SARU_ERR_INVALID_ARGUMENT',
      });
      assert.throws(() => new SyncNode({ nodeId: 1, incarnation: 1, ringDatagrams: 0 }, { codec: h.codec, transport: { broadcast() {}, sendTo() {} }, local: h.local, timers: h.timers }), {
        code: 'SARU_ERR_INVALID_ARGUMENT',
      });
      assert.throws(() => h.node.submit({ bytes: new Uint8Array(10), count: 1 }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
    });
  });

  describe('syncRecordKey', () => {
    it('identifies a connection by protocol, template, client and virtual address and port only', () => {
      const a = records(2, 1, 5, 1);
      const b = records(2, 1, 5, 9); // another version: state, timeout, real server differ
      assert.equal(syncRecordKey(a.bytes, 0), syncRecordKey(b.bytes, 0));
      assert.notEqual(syncRecordKey(a.bytes, 0), syncRecordKey(records(2, 1, 6).bytes, 0));
      const t = a.bytes.slice();
      t[R.FLAGS] = t[R.FLAGS]! | SYNC_RECORD_FLAG.TEMPLATE;
      assert.notEqual(syncRecordKey(t, 0), syncRecordKey(a.bytes, 0));
      t[R.FLAGS] = SYNC_RECORD_FLAG.SYNCED;
      assert.equal(syncRecordKey(t, 0), syncRecordKey(a.bytes, 0));
    });
  });

  describe('SeqSet', () => {
    it('behaves as a set of integers (against a model)', () => {
      const op = fc.oneof(
        fc.record({ k: fc.constant('add' as const), a: fc.integer({ min: 0, max: 60 }) }),
        fc.record({ k: fc.constant('addRange' as const), a: fc.integer({ min: 0, max: 60 }), n: fc.integer({ min: 0, max: 10 }) }),
        fc.record({ k: fc.constant('removeRange' as const), a: fc.integer({ min: 0, max: 60 }), n: fc.integer({ min: 0, max: 10 }) }),
        fc.record({ k: fc.constant('dropThrough' as const), a: fc.integer({ min: 0, max: 60 }) }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 70 }), (ops, x, y) => {
          const s = new SeqSet();
          const m = new Set<number>();
          for (const o of ops) {
            if (o.k === 'add') {
              assert.equal(s.add(o.a), !m.has(o.a));
              m.add(o.a);
            } else if (o.k === 'addRange') {
              s.addRange(o.a, o.a + o.n);
              for (let i = o.a; i <= o.a + o.n; i++) m.add(i);
            } else if (o.k === 'removeRange') {
              s.removeRange(o.a, o.a + o.n);
              for (let i = o.a; i <= o.a + o.n; i++) m.delete(i);
            } else {
              s.dropThrough(o.a);
              for (const i of [...m]) if (i <= o.a) m.delete(i);
            }
          }
          for (let i = 0; i <= 80; i++) assert.equal(s.has(i), m.has(i), `has(${i})`);
          let c = x;
          while (m.has(c + 1)) c++;
          assert.equal(s.extend(x), c);
          const [lo, hi] = x <= y ? [x, y] : [y, x];
          let count = 0;
          for (let i = lo; i <= hi; i++) if (m.has(i)) count++;
          assert.equal(s.countIn(lo, hi), count);
          const miss: number[] = [];
          for (const [a, b] of s.missing(lo, hi, 1000)) for (let i = a; i <= b; i++) miss.push(i);
          const want: number[] = [];
          for (let i = lo + 1; i <= hi; i++) if (!m.has(i)) want.push(i);
          assert.deepEqual(miss, want);
        }),
      );
    });
  });
});
