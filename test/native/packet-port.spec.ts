/**
 * AF_PACKET port against real veth pairs in a throw-away network namespace
 * (both receive modes): delivery byte for byte, batching, PACKET_HOST only,
 * no loopback of our own frames, atomic filter replacement, truncation,
 * errors, close, a port opened inside a worker_thread, and the in-memory
 * classic BPF interpreter checked against the kernel on the same programs
 * and frames. Needs root; skipped with the reason otherwise. Waits are
 * receive(timeout) loops bounded by a count, never sleeps.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { ErrorCode, SaruError, TxBatch, formatMac } from '../../core/index.js';
import {
  ACCEPT_ALL,
  ACCEPT_NONE,
  Bpf,
  MemoryPort,
  SKF_AD_OFF,
  SKF_AD_PKTTYPE,
  SKF_AD_PROTOCOL,
  SKF_NET_OFF,
  assemble,
  checkProgram,
  jump,
  nativeAvailable,
  openPacketPort,
  stmt,
  type NativePacketPort,
  type PacketPort,
} from '../../native/index.js';
import { PacketBuilder, arpFrame } from '../helpers/packet-builder.js';
import { Netns, namespaceSkipReason } from './netns.js';

const MAC_A = '02:53:41:52:55:0a';
const MAC_B = '02:53:41:52:55:0b';
const OTHER_MAC = '02:53:41:52:55:99';
const ID_OFF = 42; // UDP payload in an untagged IPv4 frame without options

/** An Ethernet/IPv4/UDP frame of `size` bytes (>= 60) whose payload starts with the u32 `id`. */
function udpFrame(dst: string, src: string, id: number, o: { size?: number; dport?: number; proto?: 'udp' | 'tcp' } = {}): Uint8Array {
  const size = o.size ?? 60;
  const payload = new Uint8Array(size - ID_OFF - (o.proto === 'tcp' ? 12 : 0));
  new DataView(payload.buffer).setUint32(0, id);
  for (let i = 4; i < payload.length; i++) payload[i] = (id * 7 + i) & 0xff;
  const b = new PacketBuilder().eth({ src, dst }).ipv4({ src: '198.18.0.1', dst: '198.18.0.2', id: id & 0xffff });
  const f = o.proto === 'tcp'
    ? b.tcp({ sport: 40000, dport: o.dport ?? 7777, flags: 'A', payload }).build()
    : b.udp({ sport: 40000, dport: o.dport ?? 7777, payload }).build();
  return new Uint8Array(f);
}

function idAt(buf: Uint8Array, off: number): number {
  return ((buf[off + ID_OFF]! << 24) | (buf[off + ID_OFF + 1]! << 16) | (buf[off + ID_OFF + 2]! << 8) | buf[off + ID_OFF + 3]!) >>> 0;
}

/** Copies of the frames received until `done` says so or `maxLoops` receive(timeoutMs) calls passed. */
function receiveUntil(port: PacketPort, done: (frames: Uint8Array[]) => boolean, maxLoops = 100, timeoutMs = 20): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let loop = 0; loop < maxLoops && !done(out); loop++) {
    const n = port.receive(timeoutMs);
    for (let i = 0; i < n; i++) out.push(port.rx.buf.slice(port.rx.off[i]!, port.rx.off[i]! + port.rx.len[i]!));
  }
  return out;
}
const ids = (frames: Uint8Array[]): number[] => frames.map((f) => idAt(f, 0));
const hasId = (id: number) => (frames: Uint8Array[]) => frames.some((f) => f.length >= ID_OFF + 4 && idAt(f, 0) === id);

/** Every frame still queued, for a mode where the queue is complete once a witness saw a later frame. */
function drain(port: PacketPort, mode: 'ring' | 'mmsg'): Uint8Array[] {
  // mmsg: the socket queue is complete; ring: an accepted frame waits at most ringTimeoutMs (1 ms) for its block.
  const timeout = mode === 'ring' ? 50 : 0;
  const out: Uint8Array[] = [];
  for (let loop = 0; loop < 1000; loop++) {
    const n = port.receive(timeout);
    if (n === 0) break;
    for (let i = 0; i < n; i++) out.push(port.rx.buf.slice(port.rx.off[i]!, port.rx.off[i]! + port.rx.len[i]!));
  }
  return out;
}

function sendAll(port: PacketPort, frames: Uint8Array[]): void {
  for (const f of frames) assert.equal(port.send(f), true, 'send() refused a frame');
}

/** Accepts IPv4 UDP (unfragmented) to destination port `dport` whole; drops the rest. */
function udpPortProgram(dport: number): Uint8Array {
  return assemble([
    stmt(Bpf.LD | Bpf.H | Bpf.ABS, 12),
    jump(Bpf.JMP | Bpf.JEQ | Bpf.K, 0x0800, 0, 8),
    stmt(Bpf.LD | Bpf.B | Bpf.ABS, 23),
    jump(Bpf.JMP | Bpf.JEQ | Bpf.K, 17, 0, 6),
    stmt(Bpf.LD | Bpf.H | Bpf.ABS, 20),
    jump(Bpf.JMP | Bpf.JSET | Bpf.K, 0x1fff, 4, 0),
    stmt(Bpf.LDX | Bpf.B | Bpf.MSH, 14),
    stmt(Bpf.LD | Bpf.H | Bpf.IND, 16),
    jump(Bpf.JMP | Bpf.JEQ | Bpf.K, dport, 0, 1),
    stmt(Bpf.RET | Bpf.K, 0xffffffff),
    stmt(Bpf.RET | Bpf.K, 0),
  ]);
}

function assertSaru(fn: () => unknown, code: string, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SaruError, `expected SaruError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const skip = namespaceSkipReason();

describe('native: AF_PACKET port on veth in a network namespace', function () {
  if (skip) {
    it(`skipped: ${skip}`, function () {
      this.skip();
    });
    return;
  }
  this.timeout(60000);

  let ns: Netns;
  before(function () {
    assert.ok(nativeAvailable(), 'the native addon must be built (npm run build:native)');
    ns = Netns.create('saru-nat');
    ns.addVeth('va', 'vb', { macA: MAC_A, macB: MAC_B, mtu: 1500 });
  });
  after(function () {
    ns?.destroy();
  });

  it('reports the interface MAC and MTU', function () {
    const p = openPacketPort({ ifname: 'vb', netns: ns.name });
    try {
      assert.equal(formatMac(p.mac), MAC_B);
      assert.equal(p.mtu, 1500);
      assert.equal(p.ifname, 'vb');
    } finally {
      p.close();
    }
  });

  for (const mode of ['ring', 'mmsg'] as const) {
    describe(`mode ${mode}`, function () {
      let a: NativePacketPort;
      let b: NativePacketPort;
      before(function () {
        a = openPacketPort({ ifname: 'va', netns: ns.name, mode });
        b = openPacketPort({ ifname: 'vb', netns: ns.name, mode });
        assert.equal(b.mode, mode);
      });
      after(function () {
        a?.close();
        b?.close();
      });
      afterEach(function () {
        b.setFilter(null);
        drain(b, mode);
        drain(a, mode);
      });

      it('delivers a TxBatch of 64 frames (scratch and in place) byte for byte', function () {
        const tx = new TxBatch(64, 64 * 1600);
        const rxBuf = new Uint8Array(64 * 1600);
        tx.reset(rxBuf);
        const sent: Uint8Array[] = [];
        let bytes = 0;
        for (let i = 0; i < 64; i++) {
          const f = udpFrame(MAC_B, MAC_A, 1000 + i, { size: 60 + ((i * 97) % 1455) });
          const inScratch = i % 2;
          const off = i * 1600 + (i % 3);
          (inScratch ? tx.scratch : rxBuf).set(f, off);
          tx.off[i] = off;
          tx.len[i] = f.length;
          tx.inScratch[i] = inScratch;
          sent.push(f);
          bytes += f.length;
        }
        tx.count = 64;
        const before = { a: a.stats(), b: b.stats() };
        assert.equal(a.transmit(tx), 64);
        const got = receiveUntil(b, (fs) => fs.length >= 64);
        assert.deepEqual(ids(got), sent.map((_, i) => 1000 + i));
        got.forEach((f, i) => assert.deepEqual(f, sent[i], `frame ${i} differs`));
        const sa = a.stats();
        const sb = b.stats();
        assert.equal(sa.txFrames - before.a.txFrames, 64);
        assert.equal(sa.txBytes - before.a.txBytes, bytes);
        assert.equal(sb.rxFrames - before.b.rxFrames, 64);
        assert.equal(sb.rxBytes - before.b.rxBytes, bytes);
        assert.equal(sa.txErrors, 0);
      });

      it('sends straight from the receive buffer (zero-copy forward back)', function () {
        sendAll(a, [udpFrame(MAC_B, MAC_A, 1)]);
        const got = receiveUntil(b, hasId(1));
        assert.equal(got.length, 1);
        // Rewrite in place in rx.buf and send back with a TxBatch pointing into it.
        const off = b.rx.off[0]!;
        const len = b.rx.len[0]!;
        assert.equal(b.rx.count, 1);
        b.rx.buf.set(b.mac, off + 6);
        b.rx.buf.set(a.mac, off);
        const tx = new TxBatch(4, 0);
        tx.reset(b.rx.buf);
        tx.off[0] = off;
        tx.len[0] = len;
        tx.count = 1;
        assert.equal(b.transmit(tx), 1);
        const back = receiveUntil(a, hasId(1));
        assert.deepEqual(ids(back), [1]);
      });

      it('delivers at most batchSize (64) frames per receive()', function () {
        const frames = Array.from({ length: 200 }, (_, i) => udpFrame(MAC_B, MAC_A, 2000 + i));
        sendAll(a, frames);
        const sizes: number[] = [];
        const got: Uint8Array[] = [];
        for (let loop = 0; loop < 200 && got.length < 200; loop++) {
          const n = b.receive(20);
          if (n > 0) sizes.push(n);
          for (let i = 0; i < n; i++) got.push(b.rx.buf.slice(b.rx.off[i]!, b.rx.off[i]! + b.rx.len[i]!));
        }
        assert.deepEqual(ids(got), frames.map((_, i) => 2000 + i));
        assert.ok(Math.max(...sizes) === 64, `batch sizes ${sizes}`);
      });

      it('delivers only frames addressed to this host and counts the others', function () {
        const before = b.stats().skippedNotHost;
        sendAll(a, [
          udpFrame(OTHER_MAC, MAC_A, 1),
          udpFrame('ff:ff:ff:ff:ff:ff', MAC_A, 2),
          udpFrame('01:00:5e:00:00:01', MAC_A, 3),
          udpFrame(MAC_B, MAC_A, 4),
        ]);
        const got = receiveUntil(b, hasId(4));
        assert.deepEqual(ids(got), [4]);
        assert.equal(b.stats().skippedNotHost - before, 3);
      });

      it('never receives its own transmissions', function () {
        sendAll(a, Array.from({ length: 10 }, (_, i) => udpFrame(MAC_B, MAC_A, 100 + i)));
        sendAll(b, [udpFrame(MAC_A, MAC_B, 999)]);
        assert.deepEqual(ids(receiveUntil(a, hasId(999))), [999]);
        assert.deepEqual(ids(receiveUntil(b, (fs) => fs.length >= 10)), Array.from({ length: 10 }, (_, i) => 100 + i));
      });

      it('setFilter: accept-nothing stops delivery, a replacement restores it', function () {
        const witness = openPacketPort({ ifname: 'vb', netns: ns.name, mode: 'mmsg' });
        try {
          b.setFilter(ACCEPT_NONE);
          sendAll(a, [1, 2, 3, 4, 5].map((id) => udpFrame(MAC_B, MAC_A, id)));
          sendAll(a, [udpFrame(MAC_B, MAC_A, 50)]);
          assert.ok(hasId(50)(receiveUntil(witness, hasId(50))), 'the witness socket saw the marker');
          assert.deepEqual(drain(b, mode), []);
          b.setFilter(ACCEPT_ALL);
          sendAll(a, [6, 7, 8].map((id) => udpFrame(MAC_B, MAC_A, id)));
          // The marker may reach b just after the replacement: ignore it.
          assert.deepEqual(ids(receiveUntil(b, hasId(8))).filter((id) => id !== 50), [6, 7, 8]);
        } finally {
          witness.close();
        }
      });

      it('setFilter: a UDP-port program delivers only that port', function () {
        b.setFilter(udpPortProgram(7777));
        const frames: Uint8Array[] = [];
        for (let i = 0; i < 20; i++) frames.push(udpFrame(MAC_B, MAC_A, i, { dport: i % 2 ? 8888 : 7777, size: 60 + i }));
        frames.push(udpFrame(MAC_B, MAC_A, 100, { dport: 7777, proto: 'tcp' }));
        frames.push(new Uint8Array(arpFrame({ op: 1, senderMac: MAC_A, senderIp: '198.18.0.1', targetIp: '198.18.0.2', dst: MAC_B })));
        frames.push(udpFrame(MAC_B, MAC_A, 200, { dport: 7777 }));
        sendAll(a, frames);
        const got = receiveUntil(b, hasId(200));
        assert.deepEqual(ids(got), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 200]);
        assert.deepEqual(drain(b, mode), []);
      });

      it('counts frames cut by the filter as truncated and never delivers them in part', function () {
        const before = b.stats().truncated;
        b.setFilter(assemble([stmt(Bpf.RET | Bpf.K, 100)]));
        sendAll(a, [udpFrame(MAC_B, MAC_A, 1, { size: 200 }), udpFrame(MAC_B, MAC_A, 2, { size: 100 }), udpFrame(MAC_B, MAC_A, 3, { size: 80 })]);
        assert.deepEqual(ids(receiveUntil(b, hasId(3))), [2, 3]);
        assert.equal(b.stats().truncated - before, 1);
      });

      it('rejects bad programs with SaruError and keeps the old filter', function () {
        b.setFilter(udpPortProgram(7777));
        assertSaru(() => b.setFilter(new Uint8Array(7)), ErrorCode.INVALID_ARGUMENT, /N\*8 bytes/);
        assertSaru(() => b.setFilter(new Uint8Array(0)), ErrorCode.INVALID_ARGUMENT);
        assertSaru(() => b.setFilter(new Uint8Array(4097 * 8)), ErrorCode.INVALID_ARGUMENT, /4096/);
        // No return at the end: the kernel says EINVAL.
        assertSaru(() => b.setFilter(assemble([stmt(Bpf.LD | Bpf.W | Bpf.ABS, 0)])), ErrorCode.IO, /rejected the classic BPF program.*errno 22/);
        assertSaru(() => b.setFilter(assemble([jump(Bpf.JMP | Bpf.JEQ | Bpf.K, 0, 5, 0), stmt(Bpf.RET | Bpf.K, 0)])), ErrorCode.IO);
        sendAll(a, [udpFrame(MAC_B, MAC_A, 1, { dport: 8888 }), udpFrame(MAC_B, MAC_A, 2, { dport: 7777 })]);
        assert.deepEqual(ids(receiveUntil(b, hasId(2))), [2]);
      });

      it('counts malformed TxBatch entries as txInvalid and sends the rest', function () {
        const tx = new TxBatch(4, 256);
        tx.reset(new Uint8Array(100));
        const f = udpFrame(MAC_B, MAC_A, 77);
        tx.scratch.set(f, 0);
        tx.off[0] = 0; tx.len[0] = f.length; tx.inScratch[0] = 1;
        tx.off[1] = 90; tx.len[1] = 60; tx.inScratch[1] = 0; // past the end of rxBuf
        tx.off[2] = 0; tx.len[2] = 10; tx.inScratch[2] = 1; // shorter than an Ethernet header
        tx.count = 3;
        const before = a.stats().txInvalid;
        assert.equal(a.transmit(tx), 1);
        assert.equal(a.stats().txInvalid - before, 2);
        assert.deepEqual(ids(receiveUntil(b, hasId(77))), [77]);
        tx.count = 5;
        assertSaru(() => a.transmit(tx), ErrorCode.INVALID_ARGUMENT, /capacity/);
      });

      it('counts a frame above the MTU as a txError', function () {
        const before = a.stats().txErrors;
        const big = new Uint8Array(1600);
        big.set(udpFrame(MAC_B, MAC_A, 5), 0);
        assert.equal(a.send(big), false);
        assert.equal(a.stats().txErrors - before, 1);
      });

      it('close() is idempotent, detaches rx.buf, and every later call throws', function () {
        const p = openPacketPort({ ifname: 'vb', netns: ns.name, mode });
        const view = p.rx.buf;
        assert.ok(view.length > 0);
        p.close();
        p.close();
        assert.equal(view.length, 0, 'the receive memory is no longer reachable from JavaScript');
        const tx = new TxBatch(1, 64);
        for (const call of [
          () => p.receive(0),
          () => p.transmit(tx),
          () => p.send(new Uint8Array(60)),
          () => p.setFilter(null),
          () => p.stats(),
        ])
          assertSaru(call, ErrorCode.IO, /closed/);
      });
    });
  }

  it('opening an unknown interface throws NO_SUCH_INTERFACE', function () {
    assertSaru(() => openPacketPort({ ifname: 'nope0', netns: ns.name }), ErrorCode.NO_SUCH_INTERFACE, /no such interface "nope0"/);
    assertSaru(() => openPacketPort({ ifname: 'nope0' }), ErrorCode.NO_SUCH_INTERFACE, /"nope0"/);
    assertSaru(() => openPacketPort({ ifname: 'va', netns: 'saru-no-such-ns' }), ErrorCode.NO_SUCH_INTERFACE, /namespace/);
  });

  it('without CAP_NET_RAW, open throws NOT_PERMITTED naming the capability', function () {
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
    if (!setpriv) this.skip(); // util-linux setpriv drops the capabilities of a child
    const index = new URL('../../native/index.js', import.meta.url).href;
    const script = `import { openPacketPort } from '${index}';
      try { openPacketPort({ ifname: 'va', netns: '${ns.name}' }); console.log('opened'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    // Keep CAP_SYS_ADMIN for setns: the failure must come from socket(AF_PACKET).
    const out = execFileSync(setpriv!, ['--inh-caps=-all', '--bounding-set=-all,+sys_admin', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const r = JSON.parse(out.trim()) as { code: string; message: string };
    assert.equal(r.code, ErrorCode.NOT_PERMITTED);
    assert.match(r.message, /CAP_NET_RAW/);
  });

  it('rejects bad settings with INVALID_ARGUMENT', function () {
    assertSaru(() => openPacketPort({ ifname: 'vb', netns: ns.name, frameSize: 1500 }), ErrorCode.INVALID_ARGUMENT, /MTU 1500/);
    assertSaru(() => openPacketPort({ ifname: 'vb', netns: ns.name, batchSize: 0 }), ErrorCode.INVALID_ARGUMENT);
    assertSaru(() => openPacketPort({ ifname: 'x'.repeat(16) }), ErrorCode.INVALID_ARGUMENT);
    assertSaru(() => openPacketPort({ ifname: 'vb', netns: ns.name, mode: 'nope' as never }), ErrorCode.INVALID_ARGUMENT);
    assertSaru(() => openPacketPort({ ifname: 'vb', netns: ns.name, filter: new Uint8Array(9) }), ErrorCode.INVALID_ARGUMENT);
    const p = openPacketPort({ ifname: 'vb', netns: ns.name });
    try {
      assertSaru(() => p.receive(-1), ErrorCode.INVALID_ARGUMENT);
      assertSaru(() => p.receive(Number.NaN), ErrorCode.INVALID_ARGUMENT);
    } finally {
      p.close();
    }
  });

  it('opens with a first filter so no other frame is ever seen', function () {
    const a = openPacketPort({ ifname: 'va', netns: ns.name });
    const b = openPacketPort({ ifname: 'vb', netns: ns.name, mode: 'mmsg', filter: udpPortProgram(7777) });
    try {
      sendAll(a, [udpFrame(MAC_B, MAC_A, 1, { dport: 9 }), udpFrame(MAC_B, MAC_A, 2)]);
      assert.deepEqual(ids(receiveUntil(b, hasId(2))), [2]);
    } finally {
      a.close();
      b.close();
    }
  });

  for (const mode of ['ring', 'mmsg'] as const) {
    it(`loads and receives inside a worker_thread (${mode})`, async function () {
      const worker = new Worker(new URL('./port-worker.js', import.meta.url), {
        workerData: { ifname: 'vb', netns: ns.name, mode, expect: 5, maxLoops: 250 },
      });
      const a = openPacketPort({ ifname: 'va', netns: ns.name });
      try {
        const result = await new Promise<{ ids: number[] }>((resolve, reject) => {
          worker.on('error', reject);
          worker.on('message', (m: { type: string; ids: number[] }) => {
            if (m.type === 'ready') sendAll(a, [1, 2, 3, 4, 5].map((id) => udpFrame(MAC_B, MAC_A, id)));
            else resolve(m);
          });
        });
        assert.deepEqual(result.ids, [1, 2, 3, 4, 5]);
      } finally {
        a.close();
        await worker.terminate();
      }
    });
  }

  describe('classic BPF: the kernel and MemoryPort agree', function () {
    let a: NativePacketPort;
    let b: NativePacketPort;
    before(function () {
      a = openPacketPort({ ifname: 'va', netns: ns.name });
      b = openPacketPort({ ifname: 'vb', netns: ns.name, mode: 'mmsg' });
    });
    after(function () {
      a?.close();
      b?.close();
    });
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 24; i++) {
      frames.push(udpFrame(MAC_B, MAC_A, i, { size: 60 + i * 41, dport: i % 3 ? 7777 : 8888, proto: i % 4 === 3 ? 'tcp' : 'udp' }));
    }
    frames.push(udpFrame('ff:ff:ff:ff:ff:ff', MAC_A, 100));
    frames.push(new Uint8Array(arpFrame({ op: 1, senderMac: MAC_A, senderIp: '198.18.0.1', targetIp: '198.18.0.2', dst: MAC_B })));
    const L = Bpf;
    const programs: { description: string; prog: Uint8Array }[] = [
      { description: 'UDP to port 7777', prog: udpPortProgram(7777) },
      { description: 'protocol byte via SKF_NET_OFF', prog: assemble([stmt(L.LD | L.B | L.ABS, SKF_NET_OFF + 9), jump(L.JMP | L.JEQ | L.K, 6, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'IPv4 snapped to 100 bytes', prog: assemble([stmt(L.LD | L.H | L.ABS, 12), jump(L.JMP | L.JEQ | L.K, 0x800, 0, 1), stmt(L.RET | L.K, 100), stmt(L.RET | L.K, -1)]) },
      { description: 'indirect load past the end drops', prog: assemble([stmt(L.LDX | L.W | L.IMM, 2000), stmt(L.LD | L.B | L.IND, 0), stmt(L.RET | L.K, -1)]) },
      { description: 'word load at the end of short frames', prog: assemble([stmt(L.LD | L.W | L.ABS, 200), stmt(L.RET | L.K, -1)]) },
      { description: 'division by X = 0 ends with 0', prog: assemble([stmt(L.LDX | L.W | L.IMM, 0), stmt(L.LD | L.W | L.IMM, 5), stmt(L.ALU | L.DIV | L.X), stmt(L.RET | L.K, -1)]) },
      { description: 'scratch memory and TXA', prog: assemble([stmt(L.LD | L.W | L.ABS, ID_OFF), stmt(L.ST, 3), stmt(L.LDX | L.W | L.MEM, 3), stmt(L.MISC | L.TXA), stmt(L.ALU | L.AND | L.K, 3), jump(L.JMP | L.JEQ | L.K, 1, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'SKF_AD_PROTOCOL = ARP', prog: assemble([stmt(L.LD | L.H | L.ABS, SKF_AD_OFF + SKF_AD_PROTOCOL), jump(L.JMP | L.JEQ | L.K, 0x0806, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'SKF_AD_PKTTYPE = host', prog: assemble([stmt(L.LD | L.W | L.ABS, SKF_AD_OFF + SKF_AD_PKTTYPE), jump(L.JMP | L.JEQ | L.K, 0, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'length above 300', prog: assemble([stmt(L.LD | L.W | L.LEN), jump(L.JMP | L.JGT | L.K, 300, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'ALU chain (mul, add, mod)', prog: assemble([stmt(L.LD | L.W | L.ABS, ID_OFF), stmt(L.ALU | L.MUL | L.K, 3), stmt(L.ALU | L.ADD | L.K, 7), stmt(L.ALU | L.MOD | L.K, 5), jump(L.JMP | L.JGE | L.K, 2, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'shifts, xor, neg, jset', prog: assemble([stmt(L.LD | L.W | L.ABS, ID_OFF), stmt(L.ALU | L.LSH | L.K, 28), stmt(L.ALU | L.RSH | L.K, 26), stmt(L.ALU | L.XOR | L.K, 0x10), stmt(L.ALU | L.NEG), jump(L.JMP | L.JSET | L.K, 0x8, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
      { description: 'RET A with a snap below the length', prog: assemble([stmt(L.LD | L.W | L.LEN), stmt(L.ALU | L.SUB | L.K, 10), stmt(L.RET | L.A)]) },
      { description: 'compare with X (jgt x)', prog: assemble([stmt(L.LDX | L.W | L.LEN), stmt(L.LD | L.W | L.IMM, 500), jump(L.JMP | L.JGT | L.X, 0, 0, 1), stmt(L.RET | L.K, -1), stmt(L.RET | L.K, 0)]) },
    ];
    const hex = (f: Uint8Array) => Buffer.from(f).toString('hex');
    // The marker (the only 61-byte frame) passes whole whatever the program:
    // once b has it, b has seen every frame sent before it.
    const MARKER_LEN = 61;
    const marker = udpFrame(MAC_B, MAC_A, 0xfeed, { size: MARKER_LEN });
    const withMarker = (prog: Uint8Array) =>
      new Uint8Array([
        ...assemble([stmt(Bpf.LD | Bpf.W | Bpf.LEN), jump(Bpf.JMP | Bpf.JEQ | Bpf.K, MARKER_LEN, 0, 1), stmt(Bpf.RET | Bpf.K, -1)]),
        ...prog,
      ]);

    for (const { description, prog } of programs) {
      it(description, function () {
        b.setFilter(withMarker(prog));
        const mem = new MemoryPort({ mac: MAC_B, ifname: 'vb', batchSize: 64 });
        mem.setFilter(withMarker(prog));
        const before = b.stats();
        sendAll(a, [...frames, marker]);
        const kernel = receiveUntil(b, hasId(0xfeed)).map(hex);
        assert.equal(kernel[kernel.length - 1], hex(marker));
        for (const f of [...frames, marker]) mem.inject(f);
        const model = drain(mem, 'mmsg').map(hex);
        assert.deepEqual(kernel, model);
        const after = b.stats();
        const ms = mem.stats();
        assert.equal(after.truncated - before.truncated, ms.truncated, 'truncated');
        assert.equal(after.skippedNotHost - before.skippedNotHost, ms.skippedNotHost, 'skippedNotHost');
      });
    }

    it('checkProgram() accepts exactly what the kernel accepts (random programs)', function () {
      const codes = [
        0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, 0x01, 0x61, 0x81, 0xb1, 0x02, 0x03, 0x04, 0x0c, 0x14,
        0x24, 0x34, 0x3c, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94, 0xa4, 0x05, 0x15, 0x1d, 0x25, 0x35, 0x45, 0x06, 0x0e,
        0x16, 0x07, 0x87, 0x8c, 0x41, 0x22,
      ];
      const insn = fc.record({
        code: fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 0xffff })),
        jt: fc.integer({ min: 0, max: 6 }),
        jf: fc.integer({ min: 0, max: 6 }),
        k: fc.oneof(
          fc.integer({ min: 0, max: 40 }),
          fc.integer({ min: 0xfffff000, max: 0xfffff044 }),
          fc.constantFrom(0, 16, 31, 32, 0xffffffff, 0xffeffff0, 0xfff00009),
        ),
      });
      const prog = fc.oneof(
        fc.array(insn, { minLength: 1, maxLength: 8 }),
        fc.tuple(fc.array(insn, { minLength: 0, maxLength: 7 }), fc.constantFrom(0x06, 0x16)).map(([body, ret]) => [
          ...body,
          { code: ret, jt: 0, jf: 0, k: 0xffff },
        ]),
      );
      fc.assert(
        fc.property(prog, (insns) => {
          const p = assemble(insns);
          const model = checkProgram(p);
          let kernelOk = true;
          try {
            b.setFilter(p);
          } catch (e) {
            assert.ok(e instanceof SaruError && e.code === ErrorCode.IO, String(e));
            kernelOk = false;
          }
          assert.equal(kernelOk, model === null, `kernel ${kernelOk ? 'accepted' : 'rejected'}, model says ${model ?? 'ok'}`);
        }),
        { numRuns: 400 },
      );
      b.setFilter(null);
    });
  });
});
