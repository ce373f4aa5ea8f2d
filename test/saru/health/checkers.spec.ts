/**
 * Tests of saru/health/checkers.ts against real servers on loopback with
 * ephemeral ports (HTTP, HTTPS with the self-signed fixture in
 * test/fixtures/tls, UDP echo, a fake SMTP server, a simpletcp responder),
 * real child processes (true, false, sh, sleep) and the real iputils ping.
 * Timeouts are short (300 ms) so the hang cases are quick; timing
 * assertions only bound from above (timeout + slack). No sleeps racing: the
 * leak checks wait, with a deadline, for the process's active resources to
 * return to where they were.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { CheckOutcome, CheckSpec, CheckTarget, ExternalCheck, HttpCheck, HttpUrl } from '../../../core/health/types.js';
import {
  BODY_LIMIT_BYTES, EXIT_GRACE_MS, PING_KILL_SLACK_MS, createCheckRunner, fetchUrl, hostHeader, type CheckLog,
} from '../../../saru/health/index.js';

// ---------------------------------------------------------------------------
// Servers
/** test/fixtures/tls, from dist/test/saru/health/. */
const TLS_DIR = fileURLToPath(new URL('../../../../test/fixtures/tls/', import.meta.url));

interface Closable {
  port: number;
  close(): Promise<void>;
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  const add = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  server.on('connection', add);
  server.on('secureConnection', add);
  return sockets;
}

async function listenOn(server: net.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

interface SeenRequest {
  method: string;
  url: string;
  host: string | undefined;
  /** TLS SNI the client sent; false when none; undefined on plain HTTP. */
  servername: string | false | undefined;
}

const OK_BODY = 'hello from a real server\n';
/** 2 MiB, for the body cap. */
const BIG_BODY = Buffer.alloc(2 << 20, 0x61);

interface HttpServer extends Closable {
  seen: SeenRequest[];
  /** Called on every request to /hang once it arrived (for abort tests). */
  onHang?: () => void;
}

/**
 * Routes: /ok 200 OK_BODY; /503 503; /big 200 BIG_BODY; /hang never
 * answers; anything else 404.
 */
async function httpServer(opts: { tls?: boolean; host?: string } = {}): Promise<HttpServer> {
  const seen: SeenRequest[] = [];
  const hung: http.ServerResponse[] = [];
  const result: Partial<HttpServer> = { seen };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const sock = req.socket as TLSSocket;
    seen.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host, servername: opts.tls ? sock.servername || false : undefined });
    switch (req.url) {
      case '/ok':
        res.end(OK_BODY);
        break;
      case '/503':
        res.statusCode = 503;
        res.end('unavailable\n');
        break;
      case '/big':
        res.end(BIG_BODY);
        break;
      case '/hang':
        hung.push(res);
        result.onHang?.();
        break;
      default:
        res.statusCode = 404;
        res.end('not found\n');
    }
  };
  const server = opts.tls
    ? https.createServer({ key: readFileSync(`${TLS_DIR}key.pem`), cert: readFileSync(`${TLS_DIR}cert.pem`) }, handler)
    : http.createServer(handler);
  const sockets = track(server);
  const port = await listenOn(server, opts.host ?? '127.0.0.1');
  const close = closer(server, sockets);
  return Object.assign(result, { port, close }) as HttpServer;
}

/** A TCP port that was just free (bound, then closed): connecting to it is refused. */
async function closedTcpPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer();
  const port = await listenOn(s, host);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A UDP port that was just free: datagrams to it draw an ICMP port unreachable. */
async function closedUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface UdpServer extends Closable {
  received: Buffer[];
}

/** UDP on 127.0.0.1: `echo` sends every datagram back, otherwise it stays silent. */
async function udpServer(echo: boolean): Promise<UdpServer> {
  const received: Buffer[] = [];
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => {
    received.push(msg);
    if (echo) s.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return { port: s.address().port, received, close: () => new Promise<void>((resolve) => s.close(() => resolve())) };
}

interface LineServer extends Closable {
  /** Lines (SMTP) or whole requests (simpletcp) received. */
  received: string[];
}

/**
 * A fake SMTP server: sends `banner` (or closes at once when null), answers
 * HELO with `heloReply` and QUIT with 221.
 */
async function smtpServer(banner: string | null, heloReply = '250 fake.example\r\n'): Promise<LineServer> {
  const received: string[] = [];
  const server = net.createServer((sock) => {
    if (banner === null) {
      sock.end();
      return;
    }
    sock.setEncoding('latin1');
    sock.write(banner);
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        received.push(line);
        if (/^HELO /i.test(line)) sock.write(heloReply);
        else if (/^QUIT/i.test(line)) sock.end('221 bye\r\n');
      }
    });
  });
  const sockets = track(server);
  const port = await listenOn(server, '127.0.0.1');
  return { port, received, close: closer(server, sockets) };
}

/**
 * A simpletcp responder: reads the request until the client half-closes,
 * then writes `reply` and closes; with `reply` null it never answers.
 */
async function simpleTcpServer(reply: string | null): Promise<LineServer> {
  const received: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.setEncoding('utf8');
    let req = '';
    sock.on('data', (d: string) => {
      req += d;
    });
    sock.on('end', () => {
      received.push(req);
      if (reply !== null) sock.end(reply);
    });
  });
  const sockets = track(server);
  const port = await listenOn(server, '127.0.0.1');
  return { port, received, close: closer(server, sockets) };
}

// ---------------------------------------------------------------------------
// Helpers

type Probe = Exclude<CheckSpec, { kind: 'on' | 'off' }>;

const T = 300; // ms: the timeout of the hang cases
const SLACK = 250; // ms: what a check may take beyond its timeout (timers, scheduling on a shared machine)

const run = createCheckRunner({ helo: 'director.test' });
const never = (): AbortSignal => new AbortController().signal;

function target(port: number, address = '127.0.0.1'): CheckTarget {
  return { address, port, family: net.isIP(address) === 6 ? 6 : 4, protocol: 'tcp' };
}

async function timed(p: Promise<CheckOutcome>): Promise<{ o: CheckOutcome; ms: number }> {
  const t0 = performance.now();
  const o = await p;
  return { o, ms: performance.now() - t0 };
}

function httpSpec(urls: HttpUrl[], more: Partial<HttpCheck> = {}): HttpCheck {
  return { kind: 'http', tls: false, method: 'GET', urls, timeoutMs: T, ...more };
}

function ext(command: string, args: string[], more: Partial<ExternalCheck> = {}): ExternalCheck {
  return { kind: 'external', command, args, dynamicWeight: false, timeoutMs: 2000, ...more };
}

const md5 = (b: string | Buffer): string => createHash('md5').update(b).digest('hex');

/** Active handles and requests by type (sockets, servers, timers, child processes, pipes). */
function resources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function extra(now: Map<string, number>, base: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [k, n] of now) if (n > (base.get(k) ?? 0)) out.push(`${k} +${n - (base.get(k) ?? 0)}`);
  return out;
}

/**
 * The resources open now. Awaits a turn first: mocha arms its own test
 * timeout timer only when the test function returns its promise.
 */
async function baseline(): Promise<Map<string, number>> {
  await new Promise((r) => setImmediate(r));
  return resources();
}

/**
 * Wait (at most 2 s, polling every 10 ms) until nothing is open beyond
 * `base`; fail naming what is left. Closing a socket or reaping a child
 * completes one loop turn after the check resolved, hence the wait.
 */
async function settled(base: Map<string, number>, what: string): Promise<void> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const left = extra(resources(), base);
    if (left.length === 0) return;
    if (performance.now() > deadline) assert.fail(`${what}: still open after 2 s: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Whether a pid is a live process (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  const deadline = performance.now() + 1000;
  while (alive(pid)) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

function uidOf(user: string): number | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return Number(f[2]);
  }
  return undefined;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

// ---------------------------------------------------------------------------

describe('saru/health/checkers', () => {
  describe('connect tcp', () => {
    let web: HttpServer;
    before(async () => {
      web = await httpServer();
    });
    after(() => web.close());

    it('is up when the connection opens', async () => {
      assert.deepEqual(await run({ kind: 'connect', protocol: 'tcp', timeoutMs: T }, target(web.port), never()), { ok: true, reason: 'connected' });
    });

    it('uses spec.port and spec.address over the target', async () => {
      const o = await run({ kind: 'connect', protocol: 'tcp', port: web.port, address: '127.0.0.1', timeoutMs: T }, target(1, '127.0.0.9'), never());
      assert.equal(o.ok, true, o.reason);
    });

    it('binds to bindTo', async () => {
      const seen: string[] = [];
      const s = net.createServer((c) => {
        seen.push(c.remoteAddress ?? '');
        c.destroy();
      });
      await new Promise<void>((r) => s.listen(0, '0.0.0.0', () => r()));
      try {
        const port = (s.address() as net.AddressInfo).port;
        const o = await run({ kind: 'connect', protocol: 'tcp', bindTo: '127.0.0.7', timeoutMs: T }, target(port), never());
        assert.equal(o.ok, true, o.reason);
        const deadline = performance.now() + 1000;
        while (seen.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        assert.deepEqual(seen, ['127.0.0.7']);
      } finally {
        await new Promise<void>((r) => s.close(() => r()));
      }
    });

    it('is down "connect refused" on a closed port', async () => {
      const { o, ms } = await timed(run({ kind: 'connect', protocol: 'tcp', timeoutMs: 2000 }, target(await closedTcpPort()), never()));
      assert.deepEqual(o, { ok: false, reason: 'connect refused' });
      assert.ok(ms < 1000, `took ${ms} ms`);
    });

    it('is down, not a throw, for a local address it cannot bind or a bad port', async () => {
      const o1 = await run({ kind: 'connect', protocol: 'tcp', bindTo: '203.0.113.1', timeoutMs: T }, target(web.port), never());
      assert.equal(o1.ok, false);
      assert.match(o1.reason, /local address|EADDRNOTAVAIL/);
      const o2 = await run({ kind: 'connect', protocol: 'tcp', port: 70000, timeoutMs: T }, target(web.port), never());
      assert.equal(o2.ok, false);
      assert.match(o2.reason, /port/i);
    });

    it('works over IPv6 (::1)', async () => {
      const web6 = await httpServer({ host: '::1' });
      try {
        const o = await run({ kind: 'connect', protocol: 'tcp', timeoutMs: T }, target(web6.port, '::1'), never());
        assert.equal(o.ok, true, o.reason);
      } finally {
        await web6.close();
      }
    });
  });

  describe('connect udp', () => {
    it('is up when a reply comes back, and sends one zero byte by default', async () => {
      const echo = await udpServer(true);
      try {
        const { o, ms } = await timed(run({ kind: 'connect', protocol: 'udp', timeoutMs: 2000 }, target(echo.port), never()));
        assert.deepEqual(o, { ok: true, reason: 'reply received' });
        assert.ok(ms < 1000, `a reply ends the check at once; took ${ms} ms`);
        assert.deepEqual(echo.received, [Buffer.from([0])]);
      } finally {
        await echo.close();
      }
    });

    it('sends the payload and, with requireReply, is up on the reply', async () => {
      const echo = await udpServer(true);
      try {
        const o = await run({ kind: 'connect', protocol: 'udp', payload: Buffer.from('ping?'), requireReply: true, timeoutMs: T }, target(echo.port), never());
        assert.equal(o.ok, true, o.reason);
        assert.deepEqual(echo.received, [Buffer.from('ping?')]);
      } finally {
        await echo.close();
      }
    });

    it('is up on silence until the timeout, down on silence with requireReply', async () => {
      const quiet = await udpServer(false);
      try {
        const a = await timed(run({ kind: 'connect', protocol: 'udp', timeoutMs: T }, target(quiet.port), never()));
        assert.equal(a.o.ok, true, a.o.reason);
        assert.ok(a.ms >= T - 5 && a.ms < T + SLACK, `took ${a.ms} ms`);
        const b = await timed(run({ kind: 'connect', protocol: 'udp', requireReply: true, timeoutMs: T }, target(quiet.port), never()));
        assert.deepEqual(b.o, { ok: false, reason: 'no reply (timeout)' });
        assert.ok(b.ms < T + SLACK, `took ${b.ms} ms`);
      } finally {
        await quiet.close();
      }
    });

    it('is down on a closed port: the ICMP port unreachable shows as ECONNREFUSED', async () => {
      const { o, ms } = await timed(run({ kind: 'connect', protocol: 'udp', timeoutMs: 2000 }, target(await closedUdpPort()), never()));
      assert.equal(o.ok, false);
      assert.match(o.reason, /unreachable.*refused/);
      assert.ok(ms < 1000, `the ICMP error ends the check at once; took ${ms} ms`);
    });
  });

  describe('http', () => {
    let web: HttpServer;
    before(async () => {
      web = await httpServer();
    });
    after(() => web.close());
    beforeEach(() => {
      web.seen.length = 0;
    });

    it('is up when status, receive and digest all match; Host is ADDR:PORT', async () => {
      const o = await run(httpSpec([{ path: '/ok', receive: 'from a (real|fake) server', digest: md5(OK_BODY) }]), target(web.port), never());
      assert.deepEqual(o, { ok: true, reason: 'status 200' });
      assert.deepEqual(web.seen, [{ method: 'GET', url: '/ok', host: `127.0.0.1:${web.port}`, servername: undefined }]);
    });

    it('accepts an upper-case digest', async () => {
      const o = await run(httpSpec([{ path: '/ok', digest: md5(OK_BODY).toUpperCase() }]), target(web.port), never());
      assert.equal(o.ok, true, o.reason);
    });

    it('is down on a receive mismatch', async () => {
      assert.deepEqual(await run(httpSpec([{ path: '/ok', receive: '^goodbye' }]), target(web.port), never()), { ok: false, reason: 'receive mismatch on /ok' });
    });

    it('is down on a digest mismatch, naming the digest it got', async () => {
      const o = await run(httpSpec([{ path: '/ok', digest: md5('something else') }]), target(web.port), never());
      assert.deepEqual(o, { ok: false, reason: `digest mismatch on /ok (got ${md5(OK_BODY)})` });
    });

    it('is down, not a throw, on an invalid receive regex, without connecting', async () => {
      const o = await run(httpSpec([{ path: '/ok', receive: '(unclosed' }]), target(web.port), never());
      assert.equal(o.ok, false);
      assert.match(o.reason, /^invalid receive regex/);
      assert.deepEqual(web.seen, []);
    });

    it('is down on a status outside statusCodes (default 200-299), up when statusCodes allows it', async () => {
      assert.deepEqual(await run(httpSpec([{ path: '/503' }]), target(web.port), never()), { ok: false, reason: 'status 503 on /503' });
      assert.deepEqual(await run(httpSpec([{ path: '/nothing' }]), target(web.port), never()), { ok: false, reason: 'status 404 on /nothing' });
      const o = await run(httpSpec([{ path: '/503', statusCodes: [[200, 200], [500, 503]] }]), target(web.port), never());
      assert.deepEqual(o, { ok: true, reason: 'status 503' });
    });

    it('checks every url; one failure is down', async () => {
      const good = await run(httpSpec([{ path: '/ok' }, { path: '/503', statusCodes: [[503, 503]] }]), target(web.port), never());
      assert.deepEqual(good, { ok: true, reason: '2 urls ok' });
      const bad = await run(httpSpec([{ path: '/ok' }, { path: '/503' }]), target(web.port), never());
      assert.deepEqual(bad, { ok: false, reason: 'status 503 on /503' });
      assert.deepEqual(web.seen.map((s) => s.url), ['/ok', '/503', '/ok', '/503']);
    });

    it('sends url.virtualHost, else spec.virtualHost, as Host; HEAD when asked', async () => {
      await run(httpSpec([{ path: '/ok', virtualHost: 'url.example' }, { path: '/ok' }], { virtualHost: 'spec.example', method: 'HEAD' }), target(web.port), never());
      assert.deepEqual(web.seen.map((s) => [s.method, s.host]), [['HEAD', 'url.example'], ['HEAD', 'spec.example']]);
    });

    it('is down "timeout" within the timeout when the server accepts and hangs', async () => {
      const { o, ms } = await timed(run(httpSpec([{ path: '/hang' }]), target(web.port), never()));
      assert.deepEqual(o, { ok: false, reason: 'timeout waiting for the response' });
      assert.ok(ms >= T - 5 && ms < T + SLACK, `took ${ms} ms`);
    });

    it('bounds all the urls together by one timeout', async () => {
      const { o, ms } = await timed(run(httpSpec([{ path: '/ok' }, { path: '/hang' }]), target(web.port), never()));
      assert.equal(o.ok, false);
      assert.match(o.reason, /^timeout .* on \/hang$/);
      assert.ok(ms < T + SLACK, `took ${ms} ms`);
    });

    it('is down "connect refused" on a closed port', async () => {
      assert.deepEqual(await run(httpSpec([{ path: '/ok' }]), target(await closedTcpPort()), never()), { ok: false, reason: 'connect refused' });
    });

    it('brackets an IPv6 address in Host', async () => {
      const web6 = await httpServer({ host: '::1' });
      try {
        const o = await run(httpSpec([{ path: '/ok' }]), target(web6.port, '::1'), never());
        assert.equal(o.ok, true, o.reason);
        assert.equal(web6.seen[0]?.host, `[::1]:${web6.port}`);
      } finally {
        await web6.close();
      }
    });
  });

  describe('https', () => {
    let web: HttpServer;
    before(async () => {
      web = await httpServer({ tls: true });
    });
    after(() => web.close());
    beforeEach(() => {
      web.seen.length = 0;
    });

    it('is up against a self-signed certificate, digest and all, without SNI by default', async () => {
      const o = await run(httpSpec([{ path: '/ok', digest: md5(OK_BODY) }], { tls: true }), target(web.port), never());
      assert.deepEqual(o, { ok: true, reason: 'status 200' });
      assert.deepEqual(web.seen, [{ method: 'GET', url: '/ok', host: `127.0.0.1:${web.port}`, servername: false }]);
    });

    it('sends sniServerName as SNI', async () => {
      const o = await run(httpSpec([{ path: '/ok' }], { tls: true, sniServerName: 'sni.example', virtualHost: 'vh.example' }), target(web.port), never());
      assert.equal(o.ok, true, o.reason);
      assert.deepEqual(web.seen.map((s) => [s.servername, s.host]), [['sni.example', 'vh.example']]);
    });

    it('is down when the server does not speak TLS', async () => {
      const plain = await httpServer();
      try {
        const o = await run(httpSpec([{ path: '/ok' }], { tls: true }), target(plain.port), never());
        assert.equal(o.ok, false);
      } finally {
        await plain.close();
      }
    });
  });

  describe('fetchUrl', () => {
    let web: HttpServer;
    before(async () => {
      web = await httpServer();
    });
    after(() => web.close());

    it('returns status, head, body and its MD5', async () => {
      const r = await fetchUrl({ tls: false, address: '127.0.0.1', port: web.port, path: '/ok', timeoutMs: 1000 });
      assert.ok(r.ok);
      assert.equal(r.response.status, 200);
      assert.equal(r.response.body.toString(), OK_BODY);
      assert.equal(r.response.md5, md5(OK_BODY));
      assert.equal(r.response.truncated, false);
      assert.match(r.response.head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(r.response.head, /\r\nContent-Length: 25\r\n/i);
      assert.ok(r.response.head.endsWith('\r\n\r\n'));
    });

    it(`reads at most ${BODY_LIMIT_BYTES} body bytes and says so`, async () => {
      const r = await fetchUrl({ tls: false, address: '127.0.0.1', port: web.port, path: '/big', timeoutMs: 2000 });
      assert.ok(r.ok);
      assert.equal(r.response.truncated, true);
      assert.equal(r.response.body.length, BODY_LIMIT_BYTES);
      assert.equal(r.response.md5, md5(BIG_BODY.subarray(0, BODY_LIMIT_BYTES)));
      const small = await fetchUrl({ tls: false, address: '127.0.0.1', port: web.port, path: '/ok', timeoutMs: 1000, maxBodyBytes: 5 });
      assert.ok(small.ok);
      assert.equal(small.response.body.toString(), OK_BODY.slice(0, 5));
    });

    it('hostHeader: brackets IPv6, leaves out the default port', () => {
      assert.equal(hostHeader('10.0.0.1', 80, false), '10.0.0.1');
      assert.equal(hostHeader('10.0.0.1', 443, false), '10.0.0.1:443');
      assert.equal(hostHeader('10.0.0.1', 443, true), '10.0.0.1');
      assert.equal(hostHeader('2001:db8::1', 8080, false), '[2001:db8::1]:8080');
      assert.equal(hostHeader('2001:db8::1', 80, false), '[2001:db8::1]');
    });
  });

  describe('smtp', () => {
    it('is up on a 220 banner and a 250 HELO reply, sending the runner\'s HELO name', async () => {
      const s = await smtpServer('220 fake.example ESMTP\r\n');
      try {
        assert.deepEqual(await run({ kind: 'smtp', timeoutMs: 1000 }, target(s.port), never()), { ok: true, reason: 'HELO accepted' });
        assert.equal(s.received[0], 'HELO director.test');
      } finally {
        await s.close();
      }
    });

    it('takes spec.helo over the runner\'s and reads a multi-line banner', async () => {
      const s = await smtpServer('220-fake.example ESMTP\r\n220-more text\r\n220 ready\r\n');
      try {
        const o = await run({ kind: 'smtp', helo: 'lb1.example', timeoutMs: 1000 }, target(s.port), never());
        assert.equal(o.ok, true, o.reason);
        assert.equal(s.received[0], 'HELO lb1.example');
      } finally {
        await s.close();
      }
    });

    it('is down on a bad banner, with the reply line in the reason', async () => {
      const s = await smtpServer('554 5.3.2 go away\r\n');
      try {
        assert.deepEqual(await run({ kind: 'smtp', timeoutMs: 1000 }, target(s.port), never()), { ok: false, reason: 'banner: 554 5.3.2 go away' });
        assert.deepEqual(s.received, []);
      } finally {
        await s.close();
      }
    });

    it('is down when HELO is refused, or the server closes first, or says nothing', async () => {
      const refuse = await smtpServer('220 ok\r\n', '501 5.5.4 bad HELO\r\n');
      const closes = await smtpServer(null);
      const mute = await smtpServer('');
      try {
        assert.deepEqual(await run({ kind: 'smtp', timeoutMs: 1000 }, target(refuse.port), never()), { ok: false, reason: 'HELO: 501 5.5.4 bad HELO' });
        assert.deepEqual(await run({ kind: 'smtp', timeoutMs: 1000 }, target(closes.port), never()), { ok: false, reason: 'connection closed waiting for the banner' });
        const { o, ms } = await timed(run({ kind: 'smtp', timeoutMs: T }, target(mute.port), never()));
        assert.deepEqual(o, { ok: false, reason: 'timeout waiting for the banner' });
        assert.ok(ms < T + SLACK, `took ${ms} ms`);
      } finally {
        await Promise.all([refuse.close(), closes.close(), mute.close()]);
      }
    });
  });

  describe('simpletcp', () => {
    it('sends the request and is up when the reply matches', async () => {
      const s = await simpleTcpServer('status: READY\n');
      try {
        const o = await run({ kind: 'simpletcp', request: 'STATUS\n', receive: 'READY$', timeoutMs: 1000 }, target(s.port), never());
        assert.deepEqual(o, { ok: true, reason: 'receive matched' });
        assert.deepEqual(s.received, ['STATUS\n']);
      } finally {
        await s.close();
      }
    });

    it('matches line by line with Perl\'s `$`, and across lines', async () => {
      const s = await simpleTcpServer('one\r\nREADY\r\nthree');
      try {
        for (const receive of ['^READY$', 'one\\s+READY', '^three$']) {
          const o = await run({ kind: 'simpletcp', request: 'x', receive, timeoutMs: 1000 }, target(s.port), never());
          assert.deepEqual(o, { ok: true, reason: 'receive matched' }, receive);
        }
      } finally {
        await s.close();
      }
    });

    it('is down when the server closes without a match, or on an invalid regex', async () => {
      const s = await simpleTcpServer('status: BROKEN\n');
      try {
        assert.deepEqual(await run({ kind: 'simpletcp', request: 'STATUS\n', receive: 'READY', timeoutMs: 1000 }, target(s.port), never()),
          { ok: false, reason: 'closed without a match' });
        const bad = await run({ kind: 'simpletcp', request: 'x', receive: '[', timeoutMs: 1000 }, target(s.port), never());
        assert.equal(bad.ok, false);
        assert.match(bad.reason, /^invalid receive regex/);
      } finally {
        await s.close();
      }
    });

    it('is down "timeout" when nothing comes back', async () => {
      const s = await simpleTcpServer(null);
      try {
        const { o, ms } = await timed(run({ kind: 'simpletcp', request: 'STATUS\n', receive: 'READY', timeoutMs: T }, target(s.port), never()));
        assert.deepEqual(o, { ok: false, reason: 'timeout waiting for a match' });
        assert.ok(ms < T + SLACK, `took ${ms} ms`);
      } finally {
        await s.close();
      }
    });
  });

  describe('ping', () => {
    const hint = '(is iputils-ping installed? run scripts/install-system-deps.sh as root)';

    it('is up for 127.0.0.1 and ::1', async () => {
      const v4 = await run({ kind: 'ping', timeoutMs: 1000 }, target(0), never());
      assert.deepEqual(v4, { ok: true, reason: 'echo reply' }, `ping 127.0.0.1: ${v4.reason} ${hint}`);
      const v6 = await run({ kind: 'ping', timeoutMs: 1000 }, target(0, '::1'), never());
      assert.deepEqual(v6, { ok: true, reason: 'echo reply' }, `ping -6 ::1: ${v6.reason} ${hint}`);
    });

    it('is down within its timeout for an address nobody answers (TEST-NET-2)', async () => {
      const { o, ms } = await timed(run({ kind: 'ping', address: '198.51.100.1', timeoutMs: 1000 }, target(0), never()));
      assert.equal(o.ok, false);
      assert.notEqual(o.reason, 'ping not installed', hint);
      assert.ok(ms < 1000 + PING_KILL_SLACK_MS + EXIT_GRACE_MS + SLACK, `took ${ms} ms`);
    });

    it('runs `ping -n -c 1 -W <seconds rounded up> [-6] ADDR`, killed at timeoutMs + slack', async () => {
      // A stand-in ping that records its arguments and then never answers.
      const dir = mkdtempSync(join(tmpdir(), 'saru-ping-'));
      try {
        const fake = join(dir, 'ping');
        writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$*" >> "${dir}/args"\ncase "$*" in *-6*) exit 0;; esac\nexec sleep 30\n`, { mode: 0o755 });
        const slow = createCheckRunner({ pingCommand: fake });
        const { o, ms } = await timed(slow({ kind: 'ping', timeoutMs: T }, target(0, '10.9.8.7'), never()));
        assert.deepEqual(o, { ok: false, reason: `timed out after ${T} ms` });
        assert.ok(ms >= T + PING_KILL_SLACK_MS - 5 && ms < T + PING_KILL_SLACK_MS + EXIT_GRACE_MS + SLACK, `took ${ms} ms`);
        assert.deepEqual(await slow({ kind: 'ping', address: '2001:db8::7', timeoutMs: 1001 }, target(0), never()), { ok: true, reason: 'echo reply' });
        assert.deepEqual(readFileSync(join(dir, 'args'), 'utf8').trim().split('\n'), ['-n -c 1 -W 1 10.9.8.7', '-n -c 1 -W 2 -6 2001:db8::7']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('is down "ping not installed" when the binary is missing', async () => {
      const noPing = createCheckRunner({ pingCommand: '/nonexistent/ping' });
      assert.deepEqual(await noPing({ kind: 'ping', timeoutMs: 1000 }, target(0), never()), { ok: false, reason: 'ping not installed' });
    });
  });

  describe('external', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'saru-checkers-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('is up on exit 0 and down on exit 1, with the last stderr line', async () => {
      assert.deepEqual(await run(ext('true', []), target(0), never()), { ok: true, reason: 'exit 0' });
      assert.deepEqual(await run(ext('false', []), target(0), never()), { ok: false, reason: 'exit 1' });
      assert.deepEqual(await run(ext('sh', ['-c', 'echo noise; echo first >&2; echo "backend down" >&2; exit 3']), target(0), never()),
        { ok: false, reason: 'exit 3: backend down' });
    });

    it('passes the arguments without a shell', async () => {
      const o = await run(ext('sh', ['-c', 'test "$1" = "a b;c" && test "$2" = \'$HOME\'', 'sh', 'a b;c', '$HOME']), target(0), never());
      assert.equal(o.ok, true, o.reason);
    });

    it('maps dynamic weights as misc_dynamic: 2..255 up with weight - 2, 1 down, 0 up without weight', async () => {
      const dyn = (code: number): Promise<CheckOutcome> => run(ext('sh', ['-c', `exit ${code}`], { dynamicWeight: true }), target(0), never());
      assert.deepEqual(await dyn(7), { ok: true, weight: 5, reason: 'exit 7' });
      assert.deepEqual(await dyn(2), { ok: true, weight: 0, reason: 'exit 2' });
      assert.deepEqual(await dyn(255), { ok: true, weight: 253, reason: 'exit 255' });
      assert.deepEqual(await dyn(1), { ok: false, reason: 'exit 1' });
      assert.deepEqual(await dyn(0), { ok: true, reason: 'exit 0' });
      assert.deepEqual(await run(ext('sh', ['-c', 'exit 7']), target(0), never()), { ok: false, reason: 'exit 7' });
    });

    it('is down when the command dies of a signal or cannot be spawned', async () => {
      assert.deepEqual(await run(ext('sh', ['-c', 'kill -TERM $$']), target(0), never()), { ok: false, reason: 'killed by SIGTERM' });
      const o = await run(ext('/nonexistent/check-script', []), target(0), never());
      assert.equal(o.ok, false);
      assert.match(o.reason, /ENOENT/);
    });

    it('kills the whole process group at the timeout: down, and the children are gone', async () => {
      const pids = join(dir, 'pids');
      // sh starts a background sleep (a grandchild of ours) and waits on it.
      const spec = ext('sh', ['-c', 'sleep 30 & echo $$ $! > "$0"; wait', pids], { timeoutMs: T });
      const { o, ms } = await timed(run(spec, target(0), never()));
      assert.deepEqual(o, { ok: false, reason: `timed out after ${T} ms` });
      assert.ok(ms < T + EXIT_GRACE_MS + SLACK, `took ${ms} ms`);
      const [sh, sleep] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
      assert.ok(await gone(sh!), `sh ${sh} still running`);
      assert.ok(await gone(sleep!), `sleep ${sleep} (grandchild) still running`);
    });

    it('kills what the command left running in its group after it exited', async () => {
      const pids = join(dir, 'bg');
      const o = await run(ext('sh', ['-c', 'sleep 30 & echo $! > "$0"', pids]), target(0), never());
      assert.equal(o.ok, true, o.reason);
      const bg = Number(readFileSync(pids, 'utf8').trim());
      assert.ok(await gone(bg), `background sleep ${bg} still running`);
    });

    it('runs as `user` when root, refuses when not; an unknown user is down', async () => {
      const nobody = uidOf('nobody');
      assert.ok(nobody !== undefined, 'this test needs a "nobody" entry in /etc/passwd');
      const o = await run(ext('sh', ['-c', 'test "$(id -u)" = "$1"', 'sh', String(nobody)], { user: 'nobody' }), target(0), never());
      if (isRoot) assert.deepEqual(o, { ok: true, reason: 'exit 0' });
      else assert.deepEqual(o, { ok: false, reason: 'cannot run as user nobody: not root' });
      const unknown = await run(ext('true', [], { user: 'no-such-user-saru' }), target(0), never());
      assert.deepEqual(unknown, { ok: false, reason: 'unknown user no-such-user-saru' });
    });
  });

  describe('abort signal', () => {
    it('resolves "aborted" at once, opening nothing, when already aborted', async () => {
      const ac = new AbortController();
      ac.abort();
      const base = await baseline();
      const specs: Probe[] = [
        { kind: 'connect', protocol: 'tcp', timeoutMs: T },
        { kind: 'connect', protocol: 'udp', timeoutMs: T },
        httpSpec([{ path: '/' }]),
        { kind: 'smtp', timeoutMs: T },
        { kind: 'simpletcp', request: 'x', receive: 'y', timeoutMs: T },
        { kind: 'ping', timeoutMs: T },
        ext('true', []),
      ];
      for (const spec of specs) assert.deepEqual(await run(spec, target(9), ac.signal), { ok: false, reason: 'aborted' }, spec.kind);
      assert.deepEqual(extra(resources(), base), []);
    });

    it('ends a hanging HTTP check promptly and closes its connection', async () => {
      const web = await httpServer();
      try {
        const base = await baseline();
        const ac = new AbortController();
        let abortedAt = 0;
        web.onHang = () => {
          abortedAt = performance.now();
          ac.abort();
        };
        const o = await run(httpSpec([{ path: '/hang' }], { timeoutMs: 5000 }), target(web.port), ac.signal);
        const after = performance.now() - abortedAt;
        assert.deepEqual(o, { ok: false, reason: 'aborted' });
        assert.ok(abortedAt > 0 && after < SLACK, `resolved ${after} ms after the abort`);
        await settled(base, 'aborted http check');
      } finally {
        await web.close();
      }
    });

    it('ends a running command promptly and kills it', async () => {
      const base = await baseline();
      const ac = new AbortController();
      const p = run(ext('sleep', ['30'], { timeoutMs: 5000 }), target(0), ac.signal);
      // The child is spawned synchronously when the check starts; abort it a turn later.
      await new Promise((r) => setImmediate(r));
      const t0 = performance.now();
      ac.abort();
      const o = await p;
      assert.deepEqual(o, { ok: false, reason: 'aborted' });
      assert.ok(performance.now() - t0 < EXIT_GRACE_MS + SLACK, 'slow to resolve after the abort');
      await settled(base, 'aborted external check');
    });

    it('ends silent UDP, mute SMTP and ping checks promptly', async () => {
      const quiet = await udpServer(false);
      const mute = await smtpServer('');
      const dir = mkdtempSync(join(tmpdir(), 'saru-ping-'));
      const fake = join(dir, 'ping');
      writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
      const slowPing = createCheckRunner({ pingCommand: fake });
      try {
        const base = await baseline();
        const ac = new AbortController();
        const ps = [
          run({ kind: 'connect', protocol: 'udp', timeoutMs: 5000 }, target(quiet.port), ac.signal),
          run({ kind: 'smtp', timeoutMs: 5000 }, target(mute.port), ac.signal),
          slowPing({ kind: 'ping', timeoutMs: 5000 }, target(0), ac.signal),
        ];
        await new Promise((r) => setTimeout(r, 20)); // let them get going; the abort may land in any phase
        const t0 = performance.now();
        ac.abort();
        const os = await Promise.all(ps);
        assert.ok(performance.now() - t0 < EXIT_GRACE_MS + SLACK, 'slow to resolve after the abort');
        for (const o of os) assert.equal(o.ok, false);
        assert.deepEqual(os.map((o) => o.reason).filter((r) => r !== 'aborted'), [], 'a check finished by itself before the abort');
        await settled(base, 'aborted udp/smtp/ping checks');
      } finally {
        await Promise.all([quiet.close(), mute.close()]);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('resources', () => {
    it('leaves no socket, timer or child process behind, whatever the outcome', async () => {
      const web = await httpServer();
      const webs = await httpServer({ tls: true });
      const echo = await udpServer(true);
      const quiet = await udpServer(false);
      const smtp = await smtpServer('220 ok\r\n');
      const badSmtp = await smtpServer('421 busy\r\n');
      const stcp = await simpleTcpServer('READY\n');
      const refused = await closedTcpPort();
      const refusedUdp = await closedUdpPort();
      try {
        const base = await baseline();
        const cases: Array<[Probe, number, boolean]> = [
          [{ kind: 'connect', protocol: 'tcp', timeoutMs: T }, web.port, true],
          [{ kind: 'connect', protocol: 'tcp', timeoutMs: T }, refused, false],
          [{ kind: 'connect', protocol: 'udp', timeoutMs: T }, echo.port, true],
          [{ kind: 'connect', protocol: 'udp', timeoutMs: T }, quiet.port, true],
          [{ kind: 'connect', protocol: 'udp', timeoutMs: T }, refusedUdp, false],
          [httpSpec([{ path: '/ok', digest: md5(OK_BODY) }]), web.port, true],
          [httpSpec([{ path: '/503' }]), web.port, false],
          [httpSpec([{ path: '/big', receive: '^a' }]), web.port, true],
          [httpSpec([{ path: '/hang' }]), web.port, false],
          [httpSpec([{ path: '/ok' }]), refused, false],
          [httpSpec([{ path: '/ok' }], { tls: true }), webs.port, true],
          [httpSpec([{ path: '/hang' }], { tls: true }), webs.port, false],
          [{ kind: 'smtp', timeoutMs: T }, smtp.port, true],
          [{ kind: 'smtp', timeoutMs: T }, badSmtp.port, false],
          [{ kind: 'simpletcp', request: 'x\n', receive: 'READY', timeoutMs: T }, stcp.port, true],
          [{ kind: 'ping', timeoutMs: 1000 }, 0, true],
          [{ kind: 'ping', address: '198.51.100.1', timeoutMs: T }, 0, false],
          [ext('true', []), 0, true],
          [ext('sh', ['-c', 'echo out; echo err >&2; exit 4']), 0, false],
          [ext('sleep', ['30'], { timeoutMs: T }), 0, false],
          [ext('/nonexistent/x', []), 0, false],
        ];
        for (const [spec, port, ok] of cases) {
          const o = await run(spec, target(port), never());
          assert.equal(o.ok, ok, `${spec.kind} on ${port}: ${o.reason}`);
        }
        await settled(base, 'after every kind of check');
      } finally {
        await Promise.all([web.close(), webs.close(), echo.close(), quiet.close(), smtp.close(), badSmtp.close(), stcp.close()]);
      }
    });
  });

  describe('logging', () => {
    it('logs every finished check at debug level', async () => {
      const lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
      const log: CheckLog = { debug: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) };
      const logged = createCheckRunner({ log });
      await logged(ext('sh', ['-c', 'exit 9'], { dynamicWeight: true }), target(8080, '10.1.2.3'), never());
      assert.deepEqual(lines, [{ obj: { check: 'external', address: '10.1.2.3', port: 8080, ok: true, reason: 'exit 9', weight: 7 }, msg: 'check finished' }]);
    });
  });
});
