/**
 * sync/transport.ts: UdpSyncTransport. In this process: settings, interface
 * lookup, counted and rate-limited send failures, unicast mode between two
 * transports on lo (different ports), sendTo, own datagrams ignored, a
 * throwing handler, port conflicts in both modes. Then multicast mode between
 * two network namespaces joined by a veth pair, each transport in a child
 * process started with `ip netns exec` (as test/saru/coord-net.spec.ts does);
 * that part needs root and is skipped with the reason otherwise. Every wait
 * is for an event (a datagram, a line from a child) under an overall
 * timeout; none sleeps.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ErrorCode, ManualClock, SaruError } from '../../core/index.js';
import { DEFAULT_RECV_BUFFER_BYTES, UdpSyncTransport, type UdpSyncTransportInit } from '../../sync/transport.js';
import type { PeerAddress } from '../../sync/types.js';
import { Netns } from '../native/netns.js';

/** A logger that keeps what it is given. */
class RecordingLog {
  readonly entries: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  info(obj: object, msg?: string): void {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg?: string): void {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  debug(obj: object, msg?: string): void {
    this.entries.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  at(level: string): Array<{ obj: Record<string, unknown>; msg: string | undefined }> {
    return this.entries.filter((e) => e.level === level);
  }
}

const isSaru = (code: ErrorCode, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof SaruError, `expected a SaruError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (message) assert.match(e.message, message);
  return true;
};

const WAIT_MS = 10_000;
const GROUP = '239.255.85.1';
const LO = os.networkInterfaces().lo?.find((a) => a.family === 'IPv4');

/** A free UDP port on 127.0.0.1 (bound and released; good enough in a test). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

/** What a transport received, and a wait for a given payload. */
class Inbox {
  readonly got: Array<{ text: string; from: PeerAddress }> = [];
  private wake = (): void => {};
  throwOn: string | null = null;
  readonly onMessage = (bytes: Uint8Array, from: PeerAddress): void => {
    const text = Buffer.from(bytes).toString();
    this.got.push({ text, from: { address: from.address, port: from.port } });
    this.wake();
    if (text === this.throwOn) throw new Error('handler bug');
  };
  texts(): string[] {
    return this.got.map((g) => g.text);
  }
  arrived(text: string): Promise<{ text: string; from: PeerAddress }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" within ${WAIT_MS} ms; got ${JSON.stringify(this.got)}`)), WAIT_MS);
      this.wake = () => {
        const hit = this.got.find((g) => g.text === text);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        }
      };
      this.wake();
    });
  }
}

describe('sync transport: UdpSyncTransport in this process', () => {
  const deps = (log = new RecordingLog()) => ({ log, onMessage: () => {} });
  const base: UdpSyncTransportInit = { ifname: 'eth1', group: GROUP, port: 7085 };

  const badInits: Array<{ description: string; init: Record<string, unknown> }> = [
    { description: 'empty interface name', init: { ifname: '' } },
    { description: 'unicast group', init: { group: '10.0.0.1' } },
    { description: 'class E group', init: { group: '240.0.0.1' } },
    { description: 'IPv6 group', init: { group: 'ff02::1' } },
    { description: 'port 0', init: { port: 0 } },
    { description: 'port 65536', init: { port: 65536 } },
    { description: 'fractional port', init: { port: 7085.5 } },
    { description: 'ttl 0', init: { ttl: 0 } },
    { description: 'ttl 256', init: { ttl: 256 } },
    { description: 'empty peer list', init: { peers: [] } },
    { description: 'peer with a host name', init: { peers: [{ address: 'peer.example', port: 7085 }] } },
    { description: 'peer without a port', init: { peers: [{ address: '10.0.0.2' }] } },
    { description: 'peer with port 0', init: { peers: [{ address: '10.0.0.2', port: 0 }] } },
    { description: 'receive buffer 0', init: { recvBufferBytes: 0 } },
    { description: 'send buffer negative', init: { sendBufferBytes: -1 } },
  ];
  for (const t of badInits) {
    it(`refuses settings: ${t.description}`, () => {
      assert.throws(() => new UdpSyncTransport({ ...base, ...t.init } as UdpSyncTransportInit, deps()), isSaru(ErrorCode.INVALID_ARGUMENT, /^sync transport: /));
    });
  }

  it('accepts the edges and tells its mode; no address before start', () => {
    const m = new UdpSyncTransport({ ifname: 'a', group: '224.0.0.1', port: 1, ttl: 255 }, deps());
    assert.equal(m.mode, 'multicast');
    assert.equal(m.address, '');
    const u = new UdpSyncTransport({ ifname: 'a', group: '239.255.255.255', port: 65535, peers: [{ address: '10.0.0.2', port: 65535 }] }, deps());
    assert.equal(u.mode, 'unicast');
    assert.equal(new UdpSyncTransport({ ...base, peers: null }, deps()).mode, 'multicast');
  });

  it('start() fails with SARU_ERR_NO_SUCH_INTERFACE naming a missing interface or one without IPv4, and may be retried', async () => {
    const v6only: os.NetworkInterfaceInfo = { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 };
    let ifaces: ReturnType<typeof os.networkInterfaces> = { eth1: [v6only] };
    const t = new UdpSyncTransport({ ...base, interfaces: () => ifaces }, deps());
    await assert.rejects(t.start(), isSaru(ErrorCode.NO_SUCH_INTERFACE, /^sync interface eth1 has no IPv4 address: .*ip address add ADDR\/LEN dev eth1/));
    ifaces = { lo: [], eth0: [] };
    await assert.rejects(t.start(), isSaru(ErrorCode.NO_SUCH_INTERFACE, /^sync interface eth1 has no IPv4 address: no interface of that name is up .*\(those that are: eth0, lo\)/));
    await t.stop();
    await assert.rejects(t.start(), isSaru(ErrorCode.INVALID_ARGUMENT, /start\(\) when closed/));
  });

  it('sends before start or after stop do not throw; errors are counted and logged at most once a second', async () => {
    const log = new RecordingLog();
    const clock = new ManualClock(0);
    const t = new UdpSyncTransport({ ...base, peers: [{ address: '10.0.0.2', port: 7085 }, { address: '10.0.0.3', port: 7085 }] }, { ...deps(log), clock });
    for (let i = 0; i < 3; i++) t.broadcast(Uint8Array.of(1, 2, 3));
    t.sendTo(Uint8Array.of(1), { address: '10.0.0.2', port: 7085 });
    assert.equal(t.counters().sendErrors, 7, 'one per peer per broadcast, plus the sendTo');
    assert.equal(log.at('warn').length, 1);
    assert.match(String(log.at('warn')[0]!.obj.err), /not started/);
    clock.advance(999);
    t.sendTo(Uint8Array.of(1), { address: 'not-an-address', port: 7085 });
    assert.equal(log.at('warn').length, 1);
    clock.advance(1);
    t.sendTo(Uint8Array.of(1), { address: '10.0.0.2', port: 0 });
    assert.equal(log.at('warn').length, 2);
    assert.equal(log.at('warn')[1]!.obj.suppressedSinceLast, 7);
    assert.match(String(log.at('warn')[1]!.obj.err), /not an IPv4 address and port/);
    await Promise.all([t.stop(), t.stop()]);
    clock.advance(1000);
    t.broadcast(Uint8Array.of(1));
    assert.match(String(log.at('warn').at(-1)!.obj.err), /stopped/);
    assert.deepEqual(t.counters(), { sent: 0, received: 0, sendErrors: 11, socketErrors: 0, handlerErrors: 0, recvBufferBytes: 0 });
    assert.equal(log.at('info').length, 0, 'never opened, so no open or close logged');
  });

  describe('unicast mode on lo', () => {
    let pa: number;
    let pb: number;
    before(async function () {
      if (!LO) this.skip();
      pa = await freePort();
      do pb = await freePort();
      while (pb === pa);
    });

    it('broadcast reaches every peer but itself, sendTo answers the sender, own datagrams are ignored', async () => {
      const peers = [
        { address: '127.0.0.1', port: pa },
        { address: '127.0.0.1', port: pb },
      ];
      const inA = new Inbox();
      const inB = new Inbox();
      const logA = new RecordingLog();
      const a = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port: pa, peers }, { log: logA, onMessage: inA.onMessage });
      const b = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port: pb, peers, recvBufferBytes: 1 << 20 }, { log: new RecordingLog(), onMessage: inB.onMessage });
      await a.start();
      await b.start();
      try {
        assert.equal(a.address, '127.0.0.1');
        assert.equal(a.mode, 'unicast');
        const open = logA.at('info')[0]!;
        assert.equal(open.msg, 'sync transport open');
        assert.deepEqual(open.obj.peers, [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`]);
        assert.ok(a.counters().recvBufferBytes >= DEFAULT_RECV_BUFFER_BYTES || logA.at('warn').some((w) => /smaller than asked/.test(w.msg ?? '')), 'the buffer got, or a warning about it');
        assert.ok(b.counters().recvBufferBytes > 0);

        a.sendTo(Buffer.from('to-myself'), { address: '127.0.0.1', port: pa });
        a.broadcast(Buffer.from('hello'));
        const hello = await inB.arrived('hello');
        assert.deepEqual(hello.from, { address: '127.0.0.1', port: pa });
        b.sendTo(Buffer.from('answer'), hello.from);
        const answer = await inA.arrived('answer');
        assert.deepEqual(answer.from, { address: '127.0.0.1', port: pb });
        // "to-myself" went into A's own socket before "hello" left it, so before "answer" came back.
        assert.deepEqual(inA.texts(), ['answer']);
        assert.deepEqual(inB.texts(), ['hello']);
        assert.deepEqual(a.counters(), { ...a.counters(), sent: 2, received: 1, sendErrors: 0, handlerErrors: 0 });
        assert.deepEqual(b.counters(), { ...b.counters(), sent: 1, received: 1, sendErrors: 0 });
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
      assert.equal(logA.at('info').at(-1)!.msg, 'sync transport closed');
    });

    it('survives a throwing handler, counting it; sends of more than 65507 bytes are counted, not thrown', async () => {
      const inA = new Inbox();
      inA.throwOn = 'boom';
      const log = new RecordingLog();
      const a = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port: pa, peers: [{ address: '127.0.0.1', port: pb }] }, { log, onMessage: inA.onMessage });
      const b = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port: pb, peers: [{ address: '127.0.0.1', port: pa }] }, { log: new RecordingLog(), onMessage: () => {} });
      await Promise.all([a.start(), b.start()]);
      try {
        b.broadcast(Buffer.from('boom'));
        b.broadcast(Buffer.from('after'));
        await inA.arrived('after');
        assert.deepEqual(inA.texts(), ['boom', 'after']);
        assert.equal(a.counters().handlerErrors, 1);
        assert.equal(a.counters().received, 2);
        const w = log.at('warn').find((e) => e.msg === 'sync message handler threw');
        assert.ok(w);
        assert.match(String(w.obj.err), /handler bug/);
        assert.equal(w.obj.from, `127.0.0.1:${pb}`);
        b.broadcast(new Uint8Array(65508));
        assert.equal(b.counters().sendErrors, 1);
        await assert.rejects(a.start(), isSaru(ErrorCode.INVALID_ARGUMENT, /start\(\) when open/));
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });

    it('a port in use: SARU_ERR_IO naming it, and start() may be retried once it is free', async () => {
      const blocker = dgram.createSocket('udp4');
      await new Promise<void>((r) => blocker.bind(pa, '127.0.0.1', r));
      const t = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port: pa, peers: [{ address: '127.0.0.1', port: pb }] }, deps());
      try {
        await assert.rejects(t.start(), isSaru(ErrorCode.IO, new RegExp(`UDP 127\\.0\\.0\\.1:${pa}\\): UDP port ${pa} is in use \\(EADDRINUSE\\); is another saru-syncd running`)));
      } finally {
        await new Promise<void>((r) => blocker.close(r));
      }
      await t.start();
      assert.equal(t.address, '127.0.0.1');
      await t.stop();
    });
  });

  describe('multicast mode on lo', () => {
    before(function () {
      if (!LO) this.skip();
    });

    it('joins and hears nothing of its own (lo loops multicast back); a second one on the same port fails with SARU_ERR_IO', async () => {
      const port = await freePort();
      const inA = new Inbox();
      const log = new RecordingLog();
      const a = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port }, { log, onMessage: inA.onMessage });
      await a.start();
      const b = new UdpSyncTransport({ ifname: 'lo', group: GROUP, port }, deps());
      try {
        assert.deepEqual(log.at('info')[0]!.obj, { ...log.at('info')[0]!.obj, mode: 'multicast', group: GROUP, ttl: 1, address: '127.0.0.1', port });
        await assert.rejects(b.start(), isSaru(ErrorCode.IO, new RegExp(`UDP 0\\.0\\.0\\.0:${port}\\): UDP port ${port} is in use \\(EADDRINUSE\\)`)));
        // Own multicast first, then a unicast datagram from another socket as the barrier.
        a.broadcast(Buffer.from('own'));
        const other = dgram.createSocket('udp4');
        await new Promise<void>((r) => other.bind(0, '127.0.0.1', r));
        try {
          await new Promise<void>((resolve, reject) => other.send(Buffer.from('barrier'), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
          const barrier = await inA.arrived('barrier');
          assert.deepEqual(barrier.from, { address: '127.0.0.1', port: other.address().port });
        } finally {
          await new Promise<void>((r) => other.close(r));
        }
        assert.deepEqual(inA.texts(), ['barrier']);
        assert.equal(a.counters().sent, 1);
        assert.equal(a.counters().received, 1);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });
  });
});

// ---------------------------------------------------------------------------
// Multicast between network namespaces

const TRANSPORT_JS = fileURLToPath(new URL('../../sync/transport.js', import.meta.url));

/**
 * The child: one UdpSyncTransport (init from SARU_PEER_INIT), speaking JSON
 * lines. stdout: {event:"ready",address} | {event:"error",code,message} |
 * {event:"message",data,from} | {event:"counters",...} | {event:"log",...} |
 * {event:"closed"}. stdin: {cmd:"broadcast",data} | {cmd:"sendTo",data,to} |
 * {cmd:"counters"}; end of input stops it.
 */
const PEER_SOURCE = `
import { createInterface } from 'node:readline';
const { UdpSyncTransport } = await import(process.env.SARU_TRANSPORT_JS);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const logAt = (level) => (obj, msg) => out({ event: 'log', level, msg, ...obj });
const t = new UdpSyncTransport(JSON.parse(process.env.SARU_PEER_INIT), {
  log: { info: logAt('info'), warn: logAt('warn'), debug: logAt('debug') },
  onMessage: (bytes, from) => out({ event: 'message', data: Buffer.from(bytes).toString(), from: { address: from.address, port: from.port } }),
});
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'broadcast') t.broadcast(Buffer.from(m.data));
  else if (m.cmd === 'sendTo') t.sendTo(Buffer.from(m.data), m.to);
  else if (m.cmd === 'counters') out({ event: 'counters', ...t.counters() });
});
rl.on('close', async () => { await t.stop(); out({ event: 'closed' }); });
try {
  await t.start();
  out({ event: 'ready', address: t.address });
} catch (e) {
  out({ event: 'error', code: e.code, message: e.message });
  process.exit(1);
}
`;

interface PeerLine {
  event: string;
  [k: string]: unknown;
}

/** One child transport in a namespace: its JSON lines, and waits for them. */
class Peer {
  readonly lines: PeerLine[] = [];
  private readonly child: ChildProcess;
  private stderr = '';
  private ended: string | null = null;
  private readonly checks = new Set<() => void>();
  readonly exited: Promise<void>;

  constructor(
    readonly label: string,
    ns: Netns,
    init: UdpSyncTransportInit,
  ) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', PEER_SOURCE], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, SARU_TRANSPORT_JS: TRANSPORT_JS, SARU_PEER_INIT: JSON.stringify(init) },
    });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as PeerLine);
      this.wake();
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.ended = `ended (${code ?? signal})`;
        this.wake();
        resolve();
      }),
    );
    this.child.on('error', (e) => {
      this.ended = `could not start: ${e.message}`;
      this.wake();
    });
  }

  private wake(): void {
    for (const c of [...this.checks]) c();
  }

  /** The first line at index >= `from` that matches; rejects after WAIT_MS or when the child ends first. */
  waitFor(what: string, match: (l: PeerLine) => boolean, from = 0): Promise<PeerLine> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        const hit = this.lines.find((l, i) => i >= from && match(l));
        if (hit || this.ended !== null) {
          clearTimeout(timer);
          this.checks.delete(check);
          if (hit) resolve(hit);
          else reject(new Error(`${this.label}: ${this.ended} before ${what}\n${this.describe()}`));
        }
      };
      timer = setTimeout(() => {
        this.checks.delete(check);
        reject(new Error(`${this.label}: no ${what} within ${WAIT_MS} ms\n${this.describe()}`));
      }, WAIT_MS);
      this.checks.add(check);
      check();
    });
  }

  private describe(): string {
    return `lines: ${this.lines.map((l) => JSON.stringify(l)).join('\n  ')}\nstderr: ${this.stderr}`;
  }

  async ready(): Promise<string> {
    const l = await this.waitFor('ready', (x) => x.event === 'ready' || x.event === 'error');
    if (l.event === 'error') throw new Error(`${this.label}: start failed: ${String(l.code)} ${String(l.message)}`);
    return l.address as string;
  }

  private cmd(o: object): void {
    this.child.stdin!.write(`${JSON.stringify(o)}\n`);
  }

  broadcast(text: string): void {
    this.cmd({ cmd: 'broadcast', data: text });
  }

  sendTo(text: string, to: PeerAddress): void {
    this.cmd({ cmd: 'sendTo', data: text, to });
  }

  received(text: string): Promise<PeerLine> {
    return this.waitFor(`"${text}"`, (l) => l.event === 'message' && l.data === text);
  }

  texts(): string[] {
    return this.lines.filter((l) => l.event === 'message').map((l) => l.data as string);
  }

  async counters(): Promise<Record<string, number>> {
    const from = this.lines.length;
    this.cmd({ cmd: 'counters' });
    return (await this.waitFor('counters', (l) => l.event === 'counters', from)) as never;
  }

  async stop(): Promise<void> {
    if (this.ended !== null) return;
    this.child.stdin!.end();
    await this.waitFor('closed', (l) => l.event === 'closed');
    await this.exited;
  }

  kill(): void {
    if (this.ended === null) this.child.kill('SIGKILL');
  }
}

describe('sync transport: multicast between network namespaces', function () {
  this.timeout(60_000);
  const skip = process.platform !== 'linux' ? `needs Linux, this is ${process.platform}` : process.getuid?.() !== 0 ? 'needs root (ip netns, veth pairs)' : null;
  let a: Netns | null = null;
  let b: Netns | null = null;
  const peers: Peer[] = [];
  const peer = (label: string, ns: Netns, init: UdpSyncTransportInit): Peer => {
    const p = new Peer(label, ns, init);
    peers.push(p);
    return p;
  };

  before(async function () {
    if (skip) {
      console.log(`      (skipped: ${skip})`);
      this.skip();
    }
    a = Netns.create('saru-sy');
    b = Netns.create('saru-sy');
    // One link, sy0 at both ends; no multicast route: the transport names the outgoing interface.
    a.ip(['link', 'add', 'sy0', 'type', 'veth', 'peer', 'name', 'sy0', 'netns', b.name]);
    a.ip(['address', 'add', '198.18.85.1/24', 'dev', 'sy0']);
    b.ip(['address', 'add', '198.18.85.2/24', 'dev', 'sy0']);
    a.ip(['link', 'set', 'sy0', 'up']);
    b.ip(['link', 'set', 'sy0', 'up']);
    await a.operUp(['sy0'], WAIT_MS);
    await b.operUp(['sy0'], WAIT_MS);
  });

  afterEach(() => {
    for (const p of peers.splice(0)) p.kill();
  });

  after(() => {
    for (const p of peers.splice(0)) p.kill();
    a?.destroy();
    b?.destroy();
  });

  it('broadcast reaches the other director from our address and port; sendTo answers it; neither hears itself', async () => {
    const init: UdpSyncTransportInit = { ifname: 'sy0', group: GROUP, port: 7085 };
    const pa = peer('A', a!, init);
    const pb = peer('B', b!, init);
    assert.deepEqual(await Promise.all([pa.ready(), pb.ready()]), ['198.18.85.1', '198.18.85.2']);
    pa.broadcast('m1');
    const m1 = await pb.received('m1');
    assert.deepEqual(m1.from, { address: '198.18.85.1', port: 7085 });
    pb.sendTo('u1', m1.from as PeerAddress);
    const u1 = await pa.received('u1');
    assert.deepEqual(u1.from, { address: '198.18.85.2', port: 7085 });
    pb.broadcast('m2');
    await pa.received('m2');
    // Had A's "m1" come back to A, it would have been queued before B's answers.
    assert.deepEqual(pa.texts(), ['u1', 'm2']);
    assert.deepEqual(pb.texts(), ['m1']);
    const ca = await pa.counters();
    assert.deepEqual([ca.sent, ca.received, ca.sendErrors, ca.socketErrors, ca.handlerErrors], [1, 2, 0, 0, 0]);
    assert.ok(ca.recvBufferBytes! > 0);
    const cb = await pb.counters();
    assert.deepEqual([cb.sent, cb.received, cb.sendErrors], [2, 1, 0]);
    await Promise.all([pa.stop(), pb.stop()]);
  });

  it('a second transport on the same port in the same namespace fails with SARU_ERR_IO; another interface name fails with NO_SUCH_INTERFACE', async () => {
    const init: UdpSyncTransportInit = { ifname: 'sy0', group: GROUP, port: 7086 };
    const first = peer('A1', a!, init);
    await first.ready();
    const second = peer('A2', a!, init);
    const e = await second.waitFor('error', (l) => l.event === 'error' || l.event === 'ready');
    assert.equal(e.code, ErrorCode.IO);
    assert.match(String(e.message), /UDP port 7086 is in use \(EADDRINUSE\)/);
    const third = peer('A3', a!, { ...init, ifname: 'eth9' });
    const e3 = await third.waitFor('error', (l) => l.event === 'error' || l.event === 'ready');
    assert.equal(e3.code, ErrorCode.NO_SUCH_INTERFACE);
    assert.match(String(e3.message), /^sync interface eth9 has no IPv4 address/);
    await first.stop();
  });
});
