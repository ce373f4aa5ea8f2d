/**
 * The network side of real-server health checks: one try of each CheckSpec
 * kind (core/health/types.ts) against one real server, with sockets
 * (node:net, node:dgram, node:http, node:https) and child processes
 * (node:child_process). Owns the wire behaviour of the checks, carried over
 * from ldirectord (ClusterLabs resource-agents ldirectord/ldirectord.in:
 * check_connect, check_http, check_smtp, check_simpletcp, check_ping,
 * check_external) and keepalived (TCP_CHECK, UDP_CHECK, HTTP_GET/SSL_GET in
 * check_http.c, SMTP_CHECK, PING_CHECK, MISC_CHECK in check_misc.c), and the
 * one HTTP fetch that saru-genhash shares (fetchUrl).
 *
 * Must not: decide up/down state over time (rounds, retries, failure counts:
 * core/health/monitor.ts), touch the service table, or throw on anything
 * that comes from the network or a child process. Every check resolves,
 * never rejects, within its `timeoutMs` plus a small slack, and promptly
 * when its AbortSignal aborts; when it resolves it has closed its sockets,
 * cleared its timers and killed its children (their whole process group).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type {
  CheckOutcome, CheckRunner, CheckSpec, CheckTarget, ConnectCheck, ExternalCheck, HttpCheck, HttpUrl, PingCheck,
  SimpleTcpCheck, SmtpCheck,
} from '../../core/health/types.js';

/** At most this many body bytes are read per HTTP response (1 MiB); the rest is not read (see fetchUrl). */
export const BODY_LIMIT_BYTES = 1 << 20;
/** At most this many bytes of an SMTP or simpletcp reply are kept (64 KiB). */
export const REPLY_LIMIT_BYTES = 64 << 10;
/** ms a child (ping, external command) may take to exit after SIGKILL before the check resolves anyway. */
export const EXIT_GRACE_MS = 100;
/** ms added to a ping check's timeout before ping is killed: ping's own -W works in whole seconds. */
export const PING_KILL_SLACK_MS = 100;

/** The part of a pino logger the checkers use. */
export interface CheckLog {
  debug(obj: object, msg?: string): void;
}

export interface CheckRunnerInit {
  /** SMTP HELO name when the spec gives none; default os.hostname(). */
  helo?: string;
  /** Debug log of every finished check (kind, address, port, ok, reason). */
  log?: CheckLog;
  /** The ping binary (iputils ping); default "ping" on PATH. For tests and unusual installs. */
  pingCommand?: string;
}

type Probe = Exclude<CheckSpec, { kind: 'on' | 'off' }>;

const up = (reason: string, weight?: number): CheckOutcome => (weight === undefined ? { ok: true, reason } : { ok: true, weight, reason });
const down = (reason: string): CheckOutcome => ({ ok: false, reason });
const ABORTED = 'aborted';

/**
 * Build the CheckRunner the monitor drives: one function per spec kind,
 * dispatched on `spec.kind`. The returned runner resolves (never rejects) with
 * a CheckOutcome within `spec.timeoutMs` plus a small slack (EXIT_GRACE_MS,
 * PING_KILL_SLACK_MS), and promptly after `signal` aborts (reason "aborted").
 * The address and port probed are `spec.address ?? target.address` and
 * `spec.port ?? target.port`.
 */
export function createCheckRunner(init: CheckRunnerInit = {}): CheckRunner {
  const helo = init.helo ?? hostname();
  const pingCommand = init.pingCommand ?? 'ping';
  const log = init.log;
  return async (spec: Probe, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> => {
    let outcome: CheckOutcome;
    try {
      outcome = await runProbe(spec, target, signal, helo, pingCommand);
    } catch (err) {
      // Belt and braces: the probes catch their own errors; a bug must still not reject.
      outcome = down(`internal error: ${errorText(err)}`);
    }
    if (log !== undefined) {
      const where = spec as { address?: string; port?: number };
      log.debug({
        check: spec.kind,
        address: where.address ?? target.address,
        port: where.port ?? target.port,
        ok: outcome.ok,
        reason: outcome.reason,
        ...(outcome.weight !== undefined ? { weight: outcome.weight } : {}),
      }, 'check finished');
    }
    return outcome;
  };
}

function runProbe(spec: Probe, target: CheckTarget, signal: AbortSignal, helo: string, pingCommand: string): Promise<CheckOutcome> {
  switch (spec.kind) {
    case 'connect':
      return spec.protocol === 'udp' ? checkUdp(spec, target, signal) : checkTcp(spec, target, signal);
    case 'http':
      return checkHttp(spec, target, signal);
    case 'smtp':
      return checkSmtp(spec, target, signal, spec.helo ?? helo);
    case 'simpletcp':
      return checkSimpleTcp(spec, target, signal);
    case 'ping':
      return checkPing(spec, target, signal, pingCommand);
    case 'external':
      return checkExternal(spec, signal);
    default:
      // 'on' / 'off' never reach a runner (the monitor settles them); a JavaScript caller might still pass one.
      return Promise.resolve(down(`no probe for check kind ${String((spec as { kind: unknown }).kind)}`));
  }
}

// ---------------------------------------------------------------------------
// The bounded-operation primitive every socket check is built on.

interface Bound<T> {
  /** What the operation is doing; names the timeout ("timeout connecting"). */
  phase: string;
  /** First call wins: clears the timer, drops the abort listener, runs the cleanup, resolves. */
  finish(result: T): void;
}

/**
 * Run `start` under a deadline of `timeoutMs` and `signal`. `start` opens
 * its sockets and returns their cleanup, which runs exactly once when the
 * operation finishes, whichever way. A synchronous throw from `start` (bad
 * port, bad local address) becomes `onError(err)`.
 */
function bounded<T>(
  timeoutMs: number,
  signal: AbortSignal,
  onTimeout: (phase: string) => T,
  onAbort: T,
  onError: (err: unknown) => T,
  start: (b: Bound<T>) => (() => void) | void,
): Promise<T> {
  return new Promise<T>((resolve) => {
    if (signal.aborted) {
      resolve(onAbort);
      return;
    }
    let settled = false;
    let cleanup: (() => void) | undefined;
    let cleaned = false;
    const runCleanup = (): void => {
      if (cleanup === undefined || cleaned) return;
      cleaned = true;
      try {
        cleanup();
      } catch {
        // closing an already-closed socket: nothing left to release
      }
    };
    const b: Bound<T> = {
      phase: 'connecting',
      finish(result: T): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', abort);
        runCleanup();
        resolve(result);
      },
    };
    const abort = (): void => b.finish(onAbort);
    const timer = setTimeout(() => b.finish(onTimeout(b.phase)), clampDelay(timeoutMs));
    signal.addEventListener('abort', abort, { once: true });
    try {
      cleanup = start(b) ?? undefined;
    } catch (err) {
      b.finish(onError(err));
    }
    if (settled) runCleanup();
  });
}

/** setTimeout's range: 0 .. 2^31-1 ms. */
function clampDelay(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), 0x7fffffff) : 0x7fffffff;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** A short reason for a socket error, by errno code. */
export function socketErrorReason(err: unknown): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ECONNREFUSED': return 'connect refused';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'ETIMEDOUT': return 'connect timed out';
    case 'ECONNRESET': return 'connection reset';
    case 'EPIPE': return 'connection closed while sending';
    case 'EADDRNOTAVAIL': return 'local address not available';
    case 'EADDRINUSE': return 'local address in use';
    case 'ENOTFOUND': return 'host name not found';
    default: return errorText(err);
  }
}

interface Endpoint {
  address: string;
  port: number;
  /** 4 or 6 for a literal address, undefined for a host name. */
  family: 4 | 6 | undefined;
}

function endpoint(spec: { address?: string; port?: number }, target: CheckTarget): Endpoint {
  const address = spec.address ?? target.address;
  const v = net.isIP(address);
  return { address, port: spec.port ?? target.port, family: v === 4 || v === 6 ? v : undefined };
}

const downOnError = (err: unknown): CheckOutcome => down(socketErrorReason(err));
const downOnTimeout = (phase: string): CheckOutcome => down(`timeout ${phase}`);

/**
 * Printable, bounded form of a line from the network for a reason string:
 * control characters become "?", at most 200 characters.
 */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return t.length > 200 ? `${t.slice(0, 200)}...` : t;
}

/**
 * Whether `re` matches `s` as Perl (ldirectord) and PCRE2 (keepalived) would
 * for the common patterns: there `$` also matches before a final newline,
 * in JavaScript only at the very end, so a string ending in "\n" is tried
 * without it too.
 */
function matches(re: RegExp, s: string): boolean {
  return re.test(s) || (s.endsWith('\n') && re.test(s.slice(0, s.endsWith('\r\n') ? -2 : -1)));
}

/**
 * Compile a receive pattern (ldirectord `receive`, keepalived `regex`): the
 * source as written, no flags. Returns the reason when it does not compile.
 */
function compileRegex(source: string): RegExp | string {
  try {
    return new RegExp(source);
  } catch (err) {
    return `invalid receive regex /${printable(source)}/: ${err instanceof Error ? err.message : String(err)}`;
  }
}

// ---------------------------------------------------------------------------
// connect (TCP): ldirectord check_connect, keepalived TCP_CHECK.

/** Up once the TCP handshake completes; the connection is then closed at once. */
function checkTcp(spec: ConnectCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const ep = endpoint(spec, target);
  return bounded(spec.timeoutMs, signal, downOnTimeout, down(ABORTED), downOnError, (b) => {
    const sock = net.connect({ host: ep.address, port: ep.port, family: ep.family, localAddress: spec.bindTo });
    sock.on('connect', () => b.finish(up('connected')));
    sock.on('error', (err) => b.finish(downOnError(err)));
    return () => sock.destroy();
  });
}

// ---------------------------------------------------------------------------
// connect (UDP): ldirectord check_connect with protocol=udp, keepalived UDP_CHECK.

/**
 * Send the payload (default one zero byte) on a connected UDP socket. An ICMP
 * port unreachable comes back as ECONNREFUSED on the connected socket: down.
 * A datagram back: up. Silence until `timeoutMs`: up, unless `requireReply`
 * (keepalived `require_reply`), then down.
 */
function checkUdp(spec: ConnectCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const ep = endpoint(spec, target);
  const payload = spec.payload ?? new Uint8Array(1);
  const onTimeout = (phase: string): CheckOutcome => {
    if (phase !== 'waiting for a reply') return down(`timeout ${phase}`);
    return spec.requireReply === true ? down('no reply (timeout)') : up('no ICMP unreachable before the timeout');
  };
  const onError = (err: unknown): CheckOutcome =>
    (err as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED' ? down('port unreachable (ICMP, connect refused)') : downOnError(err);
  return bounded(spec.timeoutMs, signal, onTimeout, down(ABORTED), onError, (b) => {
    const sock = dgram.createSocket({ type: ep.family === 6 ? 'udp6' : 'udp4' });
    sock.on('error', (err) => b.finish(onError(err)));
    sock.on('message', () => b.finish(up('reply received')));
    const go = (): void => {
      sock.connect(ep.port, ep.address, () => {
        b.phase = 'sending';
        sock.send(payload, (err) => {
          if (err) b.finish(onError(err));
          else b.phase = 'waiting for a reply';
        });
      });
    };
    if (spec.bindTo !== undefined) sock.bind({ address: spec.bindTo, port: 0 }, go);
    else go();
    return () => sock.close();
  });
}

// ---------------------------------------------------------------------------
// HTTP(S): ldirectord check_http, keepalived check_http.c; shared with saru-genhash.

export interface FetchInit {
  tls: boolean;
  /** Default GET. */
  method?: 'GET' | 'HEAD';
  /** Server address (literal IPv4/IPv6 or a host name) and port. */
  address: string;
  port: number;
  /** Request path, starting with "/". */
  path: string;
  /** Host header; default hostHeader(address, port, tls). */
  host?: string;
  /** TLS SNI name; none is sent when absent (keepalived sends SNI only when told to). */
  servername?: string;
  /** Local address to bind (keepalived `bindto`). */
  localAddress?: string;
  /** Whole exchange (connect, TLS, request, response, body), ms. */
  timeoutMs: number;
  /** Body bytes read at most; default BODY_LIMIT_BYTES (1 MiB). */
  maxBodyBytes?: number;
}

export interface FetchResponse {
  status: number;
  statusMessage: string;
  /** "1.1", "1.0". */
  httpVersion: string;
  /** The response head as received, reassembled: status line and "Name: value" lines, CRLF-terminated, then CRLF. */
  head: string;
  /** The body (after transfer decoding), at most maxBodyBytes bytes. */
  body: Buffer;
  /** True when the body was longer than maxBodyBytes and the rest was not read. */
  truncated: boolean;
  /** Lower-case hex MD5 of `body` (keepalived `digest`, genhash's MD5SUM). */
  md5: string;
}

export type FetchResult = { ok: true; response: FetchResponse } | { ok: false; reason: string };

/**
 * The Host header keepalived and ldirectord send when no virtual host is
 * configured: the address, bracketed when IPv6, with ":port" unless the port
 * is the scheme's default (80, 443).
 */
export function hostHeader(address: string, port: number, tls: boolean): string {
  const host = net.isIP(address) === 6 ? `[${address}]` : address;
  return port === (tls ? 443 : 80) ? host : `${host}:${port}`;
}

/**
 * One HTTP/1.1 request on a fresh connection (no agent, `Connection: close`),
 * HTTPS without certificate verification (neither ldirectord nor keepalived
 * verifies). Reads the body up to `maxBodyBytes` (default 1 MiB); a longer
 * body is cut there, `truncated` is set and the rest is not read, so the
 * digest and any receive match cover the first 1 MiB only. Resolves (never
 * rejects) within `timeoutMs`: { ok: false, reason: "timeout connecting" |
 * "timeout waiting for the response" | "timeout reading the body" } for a
 * server that accepts and hangs, "connect refused", "aborted" when `signal`
 * aborts, or the socket/TLS error. The status code is not judged here.
 */
export function fetchUrl(init: FetchInit, signal: AbortSignal = new AbortController().signal): Promise<FetchResult> {
  const limit = init.maxBodyBytes ?? BODY_LIMIT_BYTES;
  const fail = (reason: string): FetchResult => ({ ok: false, reason });
  const v = net.isIP(init.address);
  return bounded<FetchResult>(
    init.timeoutMs, signal, (phase) => fail(`timeout ${phase}`), fail(ABORTED), (err) => fail(socketErrorReason(err)),
    (b) => {
      const headers = {
        Host: init.host ?? hostHeader(init.address, init.port, init.tls),
        'User-Agent': 'saru-check',
        Accept: '*/*',
        Connection: 'close',
      };
      const common = {
        host: init.address, port: init.port, family: v === 4 || v === 6 ? v : undefined, localAddress: init.localAddress,
        method: init.method ?? 'GET', path: init.path, headers, agent: false as const,
      };
      const req = init.tls
        ? https.request({ ...common, rejectUnauthorized: false, servername: init.servername ?? '' })
        : http.request(common);
      let res: http.IncomingMessage | undefined;
      req.on('error', (err) => b.finish(fail(socketErrorReason(err))));
      req.on('socket', (sock) => {
        const connected = (): void => {
          b.phase = 'waiting for the response';
        };
        if (init.tls) sock.once('secureConnect', connected);
        else sock.once('connect', connected);
      });
      req.on('response', (r) => {
        res = r;
        b.phase = 'reading the body';
        const chunks: Buffer[] = [];
        let kept = 0;
        const complete = (truncated: boolean): void => {
          const body = Buffer.concat(chunks, kept);
          const head = `HTTP/${r.httpVersion} ${r.statusCode ?? 0} ${r.statusMessage ?? ''}\r\n`
            + pairs(r.rawHeaders).map(([k, val]) => `${k}: ${val}\r\n`).join('') + '\r\n';
          b.finish({
            ok: true,
            response: {
              status: r.statusCode ?? 0, statusMessage: r.statusMessage ?? '', httpVersion: r.httpVersion, head, body, truncated,
              md5: createHash('md5').update(body).digest('hex'),
            },
          });
        };
        r.on('data', (chunk: Buffer) => {
          const room = limit - kept;
          if (chunk.length > room) {
            if (room > 0) chunks.push(chunk.subarray(0, room));
            kept = limit;
            complete(true);
            return;
          }
          chunks.push(chunk);
          kept += chunk.length;
        });
        r.on('end', () => complete(false));
        r.on('error', (err) => b.finish(fail(`response: ${socketErrorReason(err)}`)));
        r.on('aborted', () => b.finish(fail('connection closed before the end of the body')));
      });
      req.end();
      return () => {
        res?.destroy();
        req.destroy();
      };
    },
  );
}

function pairs(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

const DEFAULT_STATUS: Array<[number, number]> = [[200, 299]];

/** Judge one response against one url: status, then receive, then digest (first failure named). */
function judgeUrl(url: HttpUrl, re: RegExp | undefined, r: FetchResponse): string | null {
  const ranges = url.statusCodes ?? DEFAULT_STATUS;
  if (!ranges.some(([lo, hi]) => r.status >= lo && r.status <= hi)) return `status ${r.status} on ${url.path}`;
  if (re !== undefined && !matches(re, r.body.toString('utf8'))) return `receive mismatch on ${url.path}`;
  if (url.digest !== undefined && url.digest.toLowerCase() !== r.md5) return `digest mismatch on ${url.path} (got ${r.md5})`;
  return null;
}

/**
 * Every url in turn on its own connection; all must pass: status in
 * `statusCodes` (default 200..299, keepalived's default), body (as UTF-8)
 * matches `receive` (with Perl's and PCRE's `$`, see matches()), MD5 of the
 * body equals `digest`. Host: url.virtualHost ?? spec.virtualHost
 * ?? the address (hostHeader). The whole check, all urls together, is
 * bounded by `timeoutMs`. An invalid receive regex is down, never a throw.
 */
async function checkHttp(spec: HttpCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const ep = endpoint(spec, target);
  const compiled: Array<RegExp | undefined> = [];
  for (const url of spec.urls) {
    if (url.receive === undefined) {
      compiled.push(undefined);
      continue;
    }
    const re = compileRegex(url.receive);
    if (typeof re === 'string') return down(re);
    compiled.push(re);
  }
  if (spec.urls.length === 0) return down('no url to check');
  const startedAt = performance.now();
  let last: FetchResponse | undefined;
  for (let i = 0; i < spec.urls.length; i++) {
    const url = spec.urls[i]!;
    const left = spec.timeoutMs - (performance.now() - startedAt);
    if (signal.aborted) return down(ABORTED);
    if (left <= 0) return down('timeout');
    const got = await fetchUrl({
      tls: spec.tls, method: spec.method, address: ep.address, port: ep.port, path: url.path,
      host: url.virtualHost ?? spec.virtualHost, servername: spec.sniServerName, localAddress: spec.bindTo, timeoutMs: left,
    }, signal);
    if (!got.ok) return down(spec.urls.length > 1 ? `${got.reason} on ${url.path}` : got.reason);
    const bad = judgeUrl(url, compiled[i], got.response);
    if (bad !== null) return down(bad);
    last = got.response;
  }
  return up(spec.urls.length > 1 ? `${spec.urls.length} urls ok` : `status ${last!.status}`);
}

// ---------------------------------------------------------------------------
// SMTP: keepalived SMTP_CHECK, ldirectord check_smtp (Net::SMTP).

/**
 * Split complete SMTP replies off the front of `buf`. A reply is any number
 * of "NNN-text" lines ended by one "NNN text" line (RFC 5321 4.2.1); a line
 * in neither form also ends a reply (and will fail the code check).
 */
function takeReply(buf: string): { code: string; line: string; rest: string } | null {
  let pos = 0;
  for (;;) {
    const nl = buf.indexOf('\n', pos);
    if (nl < 0) return null;
    const line = buf.slice(pos, nl).replace(/\r$/, '');
    pos = nl + 1;
    if (/^\d{3}-/.test(line)) continue;
    const m = /^(\d{3})(?:[ \t]|$)/.exec(line);
    return { code: m ? m[1]! : '', line, rest: buf.slice(pos) };
  }
}

/**
 * Banner 2xx, then `HELO name` answered 250, then QUIT (its answer is not
 * awaited): up. Any other reply: down with the reply line in the reason.
 */
function checkSmtp(spec: SmtpCheck, target: CheckTarget, signal: AbortSignal, helo: string): Promise<CheckOutcome> {
  const ep = endpoint(spec, target);
  return bounded(spec.timeoutMs, signal, downOnTimeout, down(ABORTED), downOnError, (b) => {
    const sock = net.connect({ host: ep.address, port: ep.port, family: ep.family, localAddress: spec.bindTo });
    sock.setEncoding('latin1');
    let buf = '';
    let state: 'banner' | 'helo' = 'banner';
    sock.on('connect', () => {
      b.phase = 'waiting for the banner';
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (;;) {
        const reply = takeReply(buf);
        if (reply === null) break;
        buf = reply.rest;
        if (state === 'banner') {
          if (!/^2\d\d$/.test(reply.code)) {
            b.finish(down(`banner: ${printable(reply.line)}`));
            return;
          }
          state = 'helo';
          b.phase = 'waiting for the HELO reply';
          sock.write(`HELO ${helo}\r\n`);
        } else {
          if (reply.code !== '250') {
            b.finish(down(`HELO: ${printable(reply.line)}`));
            return;
          }
          sock.end('QUIT\r\n');
          b.finish(up('HELO accepted'));
          return;
        }
      }
      if (buf.length > REPLY_LIMIT_BYTES) b.finish(down(`reply longer than ${REPLY_LIMIT_BYTES} bytes`));
    });
    sock.on('end', () => b.finish(down(`connection closed ${b.phase}`)));
    sock.on('error', (err) => b.finish(downOnError(err)));
    return () => sock.destroy();
  });
}

// ---------------------------------------------------------------------------
// simpletcp: ldirectord check_simpletcp.

/**
 * Connect, send `request` as given and half-close (ldirectord shuts down its
 * write side after sending), then read until a line received, or the text
 * received so far, matches `receive` (up), or the server closes,
 * REPLY_LIMIT_BYTES arrive, or the timeout hits (down). ldirectord drops the leading "/" of `request` and
 * turns "\n" into newlines; the configuration parser is expected to have done
 * that when building the spec.
 */
function checkSimpleTcp(spec: SimpleTcpCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const ep = endpoint(spec, target);
  const re = compileRegex(spec.receive);
  if (typeof re === 'string') return Promise.resolve(down(re));
  return bounded(spec.timeoutMs, signal, downOnTimeout, down(ABORTED), downOnError, (b) => {
    const sock = net.connect({ host: ep.address, port: ep.port, family: ep.family });
    sock.setEncoding('utf8');
    let text = '';
    sock.on('connect', () => {
      b.phase = 'waiting for a match';
      sock.end(spec.request);
    });
    let lineStart = 0;
    sock.on('data', (chunk: string) => {
      text += chunk;
      // Line by line as ldirectord reads (each line with its "\n"), and the whole text for patterns spanning lines.
      for (let nl = text.indexOf('\n', lineStart); nl >= 0; nl = text.indexOf('\n', lineStart)) {
        const line = text.slice(lineStart, nl + 1);
        lineStart = nl + 1;
        if (matches(re, line)) {
          b.finish(up('receive matched'));
          return;
        }
      }
      if (matches(re, text)) b.finish(up('receive matched'));
      else if (text.length > REPLY_LIMIT_BYTES) b.finish(down(`no match in the first ${REPLY_LIMIT_BYTES} bytes`));
    });
    sock.on('end', () => {
      // The last line without a newline, as Perl's readline returns it at EOF.
      if (lineStart < text.length && matches(re, text.slice(lineStart))) b.finish(up('receive matched'));
      else b.finish(down(text.length === 0 ? 'closed without a reply' : 'closed without a match'));
    });
    sock.on('error', (err) => b.finish(downOnError(err)));
    return () => sock.destroy();
  });
}

// ---------------------------------------------------------------------------
// Child processes: ping and external commands.

type ChildEnd =
  | { kind: 'exit'; code: number; stderrTail: string }
  | { kind: 'signal'; signal: string; stderrTail: string }
  | { kind: 'timeout' }
  | { kind: 'aborted' }
  | { kind: 'spawn-error'; code: string; message: string };

interface ChildInit {
  command: string;
  args: string[];
  uid?: number;
  gid?: number;
  /** SIGKILL to the process group after this many ms. */
  killAfterMs: number;
  signal: AbortSignal;
}

const STDERR_TAIL_BYTES = 512;

/**
 * Spawn without a shell, in its own process group (detached), stdin from
 * /dev/null, stdout drained and dropped, the last STDERR_TAIL_BYTES of stderr
 * kept for the reason. At `killAfterMs` or on abort: SIGKILL to the group,
 * then resolve at its exit or after EXIT_GRACE_MS. When it resolves,
 * whatever is left of the group (a backgrounded grandchild) is SIGKILLed too.
 */
function runChild(init: ChildInit): Promise<ChildEnd> {
  return new Promise<ChildEnd>((resolve) => {
    if (init.signal.aborted) {
      resolve({ kind: 'aborted' });
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(init.command, init.args, {
        detached: true, stdio: ['ignore', 'pipe', 'pipe'], uid: init.uid, gid: init.gid, windowsHide: true,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      resolve({ kind: 'spawn-error', code: e.code ?? 'ERR', message: e.message });
      return;
    }
    let settled = false;
    let forced: 'timeout' | 'aborted' | undefined;
    let grace: NodeJS.Timeout | undefined;
    let stderrTail = '';
    child.stdout?.resume();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      stderrTail = (stderrTail + s).slice(-STDERR_TAIL_BYTES);
    });
    // A pipe error after the child is gone is of no interest.
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone
      }
    };
    const force = (why: 'timeout' | 'aborted'): void => {
      if (settled || forced !== undefined) return;
      forced = why;
      killGroup();
      grace = setTimeout(() => done({ kind: why }), EXIT_GRACE_MS);
    };
    const onAbort = (): void => force('aborted');
    const timer = setTimeout(() => force('timeout'), clampDelay(init.killAfterMs));
    init.signal.addEventListener('abort', onAbort, { once: true });
    function done(end: ChildEnd): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      init.signal.removeEventListener('abort', onAbort);
      killGroup();
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve(end);
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) done({ kind: 'spawn-error', code: err.code ?? 'ERR', message: err.message });
    });
    child.on('exit', (code, sig) => {
      if (forced !== undefined) done({ kind: forced });
      else if (code !== null) done({ kind: 'exit', code, stderrTail });
      else done({ kind: 'signal', signal: sig ?? 'unknown signal', stderrTail });
    });
  });
}

function lastLine(s: string): string {
  const lines = s.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.length > 0 ? printable(lines[lines.length - 1]!) : '';
}

/**
 * iputils `ping -n -c 1 -W <s> [-6] address`, `s` = timeoutMs in whole
 * seconds rounded up (at least 1); killed at timeoutMs + PING_KILL_SLACK_MS.
 * Exit 0: up. No ping binary: down "ping not installed".
 */
async function checkPing(spec: PingCheck, target: CheckTarget, signal: AbortSignal, command: string): Promise<CheckOutcome> {
  const address = spec.address ?? target.address;
  const v6 = net.isIP(address) === 6 || (net.isIP(address) === 0 && target.family === 6);
  const seconds = Math.max(1, Math.ceil(spec.timeoutMs / 1000));
  const args = ['-n', '-c', '1', '-W', String(seconds), ...(v6 ? ['-6'] : []), address];
  const end = await runChild({ command, args, killAfterMs: spec.timeoutMs + PING_KILL_SLACK_MS, signal });
  switch (end.kind) {
    case 'exit':
      if (end.code === 0) return up('echo reply');
      return down(end.code === 1 ? 'no echo reply' : `ping exit ${end.code}${end.stderrTail ? `: ${lastLine(end.stderrTail)}` : ''}`);
    case 'signal': return down(`ping killed by ${end.signal}`);
    case 'timeout': return down(`timed out after ${spec.timeoutMs} ms`);
    case 'aborted': return down(ABORTED);
    case 'spawn-error': return down(end.code === 'ENOENT' ? 'ping not installed' : `cannot run ping: ${end.message}`);
  }
}

interface Ids {
  uid: number;
  gid: number;
}

/** uid and gid of `user` (a name or a number) from /etc/passwd, then `id -u`/`id -g` (NSS users). */
async function lookupUser(user: string, signal: AbortSignal, timeoutMs: number): Promise<Ids | string> {
  try {
    const passwd = await readFile('/etc/passwd', 'utf8');
    for (const line of passwd.split('\n')) {
      const f = line.split(':');
      if (f.length >= 4 && (f[0] === user || (/^\d+$/.test(user) && f[2] === user))) {
        const uid = Number(f[2]);
        const gid = Number(f[3]);
        if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
      }
    }
  } catch {
    // no /etc/passwd: ask id(1)
  }
  const ask = async (flag: string): Promise<number | undefined> => {
    const out = await captureStdout('id', [flag, '--', user], signal, timeoutMs);
    return out !== undefined && /^\d+\s*$/.test(out) ? Number(out.trim()) : undefined;
  };
  const uid = await ask('-u');
  const gid = uid === undefined ? undefined : await ask('-g');
  if (uid === undefined || gid === undefined) return `unknown user ${printable(user)}`;
  return { uid, gid };
}

/** stdout of a short command that exits 0, or undefined. Bounded like any check child. */
function captureStdout(command: string, args: string[], signal: AbortSignal, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(undefined);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      resolve(undefined);
      return;
    }
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      if (out.length < 4096) out += s;
    });
    child.stdout?.on('error', () => undefined);
    const finish = (v: string | undefined): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', kill);
      child.stdout?.destroy();
      resolve(v);
    };
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    const timer = setTimeout(kill, clampDelay(timeoutMs));
    signal.addEventListener('abort', kill, { once: true });
    child.on('error', () => finish(undefined));
    child.on('close', (code) => finish(code === 0 ? out : undefined));
  });
}

/**
 * The command with its arguments, no shell, in its own process group;
 * SIGKILLed (the whole group) at `timeoutMs`: down "timed out after N ms".
 * Exit 0: up (no weight: the configured one applies). With `dynamicWeight`
 * (keepalived misc_dynamic, check_misc.c): exit 1 down, 2..255 up with
 * weight = code - 2 (so 0..253; keepalived applies no further cap). Any other
 * non-zero exit: down "exit N". Killed by a signal: down. Cannot spawn
 * (ENOENT, EACCES): down. With `user`: run as that user's uid and gid, which
 * needs root unless it is our own uid; an unknown user is down.
 */
async function checkExternal(spec: ExternalCheck, signal: AbortSignal): Promise<CheckOutcome> {
  const startedAt = performance.now();
  let ids: Ids | undefined;
  if (spec.user !== undefined) {
    const found = await lookupUser(spec.user, signal, spec.timeoutMs);
    if (signal.aborted) return down(ABORTED);
    if (typeof found === 'string') return down(found);
    const me = typeof process.getuid === 'function' ? process.getuid() : -1;
    if (me !== 0 && me !== found.uid) return down(`cannot run as user ${printable(spec.user)}: not root`);
    ids = found;
  }
  const left = spec.timeoutMs - (performance.now() - startedAt);
  if (left <= 0) return down(`timed out after ${spec.timeoutMs} ms`);
  const end = await runChild({ command: spec.command, args: spec.args, uid: ids?.uid, gid: ids?.gid, killAfterMs: left, signal });
  switch (end.kind) {
    case 'exit': {
      const c = end.code;
      if (c === 0) return up('exit 0');
      if (spec.dynamicWeight && c >= 2 && c <= 255) return up(`exit ${c}`, c - 2);
      const tail = lastLine(end.stderrTail);
      return down(`exit ${c}${tail ? `: ${tail}` : ''}`);
    }
    case 'signal': return down(`killed by ${end.signal}`);
    case 'timeout': return down(`timed out after ${spec.timeoutMs} ms`);
    case 'aborted': return down(ABORTED);
    case 'spawn-error': return down(`cannot run ${printable(spec.command)}: ${end.code === 'ENOENT' ? 'ENOENT (not found)' : end.message}`);
  }
}
