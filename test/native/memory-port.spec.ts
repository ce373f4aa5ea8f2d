/**
 * MemoryPort keeps state like the AF_PACKET port: queued frames come out in
 * batches, only frames to its MAC are delivered, the filter runs first,
 * transmissions are recorded as copies and counted, and close() ends it.
 */
import assert from 'node:assert/strict';
import { ErrorCode, SaruError, TxBatch } from '../../core/index.js';
import { ACCEPT_NONE, Bpf, MemoryPort, SKF_AD_OFF, assemble, jump, stmt } from '../../native/index.js';

const MAC = '02:00:00:00:00:02';

function frame(dst: string, id: number, size = 60): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst.split(':').map((x) => parseInt(x, 16)), 0);
  f.set([2, 0, 0, 0, 0, 1], 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental EtherType
  new DataView(f.buffer).setUint32(14, id);
  return f;
}
const idOf = (p: MemoryPort, i: number) => new DataView(p.rx.buf.buffer).getUint32(p.rx.off[i]! + 14);

function assertSaru(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof SaruError && e.code === code);
}

describe('native: MemoryPort', function () {
  it('takes ifname, mac and mtu from its init', function () {
    const p = new MemoryPort({ ifname: 'eth9', mac: MAC, mtu: 9000, frameSize: 9100 });
    assert.equal(p.ifname, 'eth9');
    assert.deepEqual(Array.from(p.mac), [2, 0, 0, 0, 0, 2]);
    assert.equal(p.mtu, 9000);
    assertSaru(() => new MemoryPort({ mtu: 9000 }), ErrorCode.INVALID_ARGUMENT);
  });

  it('delivers injected copies in batches of at most batchSize, in order', function () {
    const p = new MemoryPort({ mac: MAC, batchSize: 4 });
    const src = frame(MAC, 0);
    for (let i = 0; i < 10; i++) {
      new DataView(src.buffer).setUint32(14, i);
      p.inject(src); // a copy: changing src later must not matter
    }
    assert.equal(p.pending, 10);
    const got: number[][] = [];
    for (let loop = 0; loop < 5; loop++) {
      const n = p.receive(0);
      assert.equal(p.rx.count, n);
      got.push(Array.from({ length: n }, (_, i) => idOf(p, i)));
    }
    assert.deepEqual(got, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [], []]);
    const s = p.stats();
    assert.equal(s.rxFrames, 10);
    assert.equal(s.rxBytes, 600);
  });

  it('delivers only frames to its MAC and counts the rest as skipped', function () {
    const p = new MemoryPort({ mac: MAC });
    p.inject(frame('02:00:00:00:00:99', 1));
    p.inject(frame('ff:ff:ff:ff:ff:ff', 2));
    p.inject(frame('01:00:5e:00:00:01', 3));
    p.inject(frame(MAC, 4));
    assert.equal(p.receive(0), 1);
    assert.equal(idOf(p, 0), 4);
    assert.equal(p.stats().skippedNotHost, 3);
  });

  it('counts frames bigger than frameSize as truncated', function () {
    const p = new MemoryPort({ mac: MAC, mtu: 1500, frameSize: 1518 });
    p.inject(frame(MAC, 1, 1519));
    p.inject(frame(MAC, 2, 1518));
    assert.equal(p.receive(0), 1);
    assert.equal(idOf(p, 0), 2);
    assert.equal(p.stats().truncated, 1);
  });

  it('honours the filter (first) and records the program', function () {
    const p = new MemoryPort({ mac: MAC });
    p.setFilter(ACCEPT_NONE);
    assert.deepEqual(p.filter, ACCEPT_NONE);
    p.inject(frame(MAC, 1));
    p.inject(frame('02:00:00:00:00:99', 2));
    assert.equal(p.receive(0), 0);
    assert.equal(p.filteredOut, 2);
    assert.equal(p.stats().skippedNotHost, 0, 'the filter dropped it before the host check');
    // Only odd ids, via the EtherType extension and a payload byte.
    p.setFilter(
      assemble([
        stmt(Bpf.LD | Bpf.H | Bpf.ABS, SKF_AD_OFF),
        jump(Bpf.JMP | Bpf.JEQ | Bpf.K, 0x88b5, 0, 3),
        stmt(Bpf.LD | Bpf.B | Bpf.ABS, 17),
        jump(Bpf.JMP | Bpf.JSET | Bpf.K, 1, 0, 1),
        stmt(Bpf.RET | Bpf.K, 0xffffffff),
        stmt(Bpf.RET | Bpf.K, 0),
      ]),
    );
    for (let i = 0; i < 6; i++) p.inject(frame(MAC, i));
    assert.equal(p.receive(0), 3);
    assert.deepEqual([0, 1, 2].map((i) => idOf(p, i)), [1, 3, 5]);
    p.setFilter(null);
    assert.equal(p.filter, null);
    p.inject(frame(MAC, 8));
    assert.equal(p.receive(0), 1);
  });

  it('rejects bad programs as the AF_PACKET port does', function () {
    const p = new MemoryPort();
    assertSaru(() => p.setFilter(new Uint8Array(7)), ErrorCode.INVALID_ARGUMENT);
    assertSaru(() => p.setFilter(new Uint8Array(0)), ErrorCode.INVALID_ARGUMENT);
    assertSaru(() => p.setFilter(assemble([stmt(Bpf.LD | Bpf.W | Bpf.LEN)])), ErrorCode.IO);
    // Kernel-valid, but an extension the model does not compute (SKF_AD_RXHASH).
    assertSaru(() => p.setFilter(assemble([stmt(Bpf.LD | Bpf.W | Bpf.ABS, SKF_AD_OFF + 32), stmt(Bpf.RET | Bpf.A)])), ErrorCode.INVALID_ARGUMENT);
    assert.equal(p.filter, null, 'a rejected program leaves the old one');
  });

  it('records copies of transmitted frames and counts them', function () {
    const p = new MemoryPort({ mac: MAC });
    const tx = new TxBatch(4, 256);
    const rxBuf = new Uint8Array(256);
    tx.reset(rxBuf);
    rxBuf.set(frame('02:00:00:00:00:07', 1), 10);
    tx.scratch.set(frame('02:00:00:00:00:07', 2, 100), 0);
    tx.off.set([10, 0, 250]);
    tx.len.set([60, 100, 60]);
    tx.inScratch.set([0, 1, 0]);
    tx.count = 3;
    assert.equal(p.transmit(tx), 2);
    rxBuf.fill(0);
    assert.deepEqual(p.sent.map((f) => [f.length, new DataView(f.buffer).getUint32(14)]), [[60, 1], [100, 2]]);
    assert.equal(p.send(frame('02:00:00:00:00:07', 3)), true);
    assert.equal(p.send(new Uint8Array(1600)), false, 'above MTU + 18');
    p.failNextTx = 1;
    assert.equal(p.send(frame('02:00:00:00:00:07', 4)), false);
    const s = p.stats();
    assert.deepEqual([s.txFrames, s.txBytes, s.txErrors, s.txInvalid], [3, 220, 2, 1]);
    assert.equal(p.sent.length, 3);
    tx.count = 5;
    assertSaru(() => p.transmit(tx), ErrorCode.INVALID_ARGUMENT);
  });

  it('close() is idempotent and every later call throws', function () {
    const p = new MemoryPort();
    p.close();
    p.close();
    for (const call of [() => p.receive(0), () => p.transmit(new TxBatch(1, 1)), () => p.send(new Uint8Array(60)), () => p.setFilter(null), () => p.stats(), () => p.inject(new Uint8Array(60))])
      assertSaru(call, ErrorCode.IO);
  });
});
