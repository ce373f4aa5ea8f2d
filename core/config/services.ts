/**
 * The services file, in either format our users bring: ldirectord.cf or
 * keepalived.conf. Owns format detection and the mapping of ldirectord's
 * check settings to the health-check model (core/health/types.ts); the
 * parsers themselves live in ldirectord.ts and keepalived.ts. Reads files
 * only through those parsers' loaders; touches no network.
 */
import { readFileSync } from 'node:fs';
import { configError, ErrorCode, SaruError } from '../errors.js';
import type { CheckSpec, ConfiguredService, ConnectCheck, RealServerCheck, ServiceHealth } from '../health/types.js';
import { checkPortFor, parseLdirectord, toServiceInits, type LdirectordConfig, type LdRealServer, type LdVirtualService } from './ldirectord.js';
import { keepalivedServices, parseKeepalived } from './keepalived.js';

export type ServicesFormat = 'ldirectord' | 'keepalived';

/** A loaded services file. */
export interface ServicesFile {
  file: string;
  format: ServicesFormat;
  services: ConfiguredService[];
  /** Constructs accepted but not acted on (keepalived's VRRP and global blocks...), for the log. */
  ignored: Array<{ file: string; line: number; what: string }>;
  /** ldirectord's `autoreload=yes`: re-read the file when it changes. */
  autoreload: boolean;
}

export interface ServicesLoadOptions {
  /** Default 'auto': detectServicesFormat(). */
  format?: ServicesFormat | 'auto';
  /** keepalived's `-i INSTANCE` for `@INSTANCE` conditional lines. */
  instance?: string;
}

/**
 * Tell the formats apart by the first line that is not blank or a comment:
 * `name=value` is ldirectord.cf (every ldirectord directive has that shape);
 * anything else (`virtual_server ... {`, `global_defs {`, `include ...`,
 * `@name ...`, `$NAME=...`) is keepalived.conf. An empty file is ldirectord.cf
 * (no services either way).
 */
export function detectServicesFormat(text: string): ServicesFormat {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    return /^[A-Za-z][A-Za-z0-9_]*\s*=/.test(line) ? 'ldirectord' : 'keepalived';
  }
  return 'ldirectord';
}

/**
 * Parse a services file's text.
 * @throws SaruError SARU_ERR_CONFIG naming file, line and what was expected
 *   (either parser's), or a check this project does not run (an ldirectord
 *   `negotiate` check of a service other than http, https, smtp, submission,
 *   simpletcp and none).
 */
export function parseServices(text: string, file: string, opts: ServicesLoadOptions = {}): ServicesFile {
  const format = !opts.format || opts.format === 'auto' ? detectServicesFormat(text) : opts.format;
  if (format === 'keepalived') {
    const cfg = parseKeepalived(text, file, opts.instance !== undefined ? { instance: opts.instance } : {});
    return { file, format, services: keepalivedServices(cfg), ignored: cfg.ignored, autoreload: false };
  }
  const cfg = parseLdirectord(text, file);
  return { file, format, services: ldirectordServices(cfg), ignored: [], autoreload: cfg.globals.autoreload };
}

/**
 * Read and parse a services file.
 * @throws SaruError SARU_ERR_CONFIG (unreadable file, or as parseServices).
 */
export function loadServicesFile(file: string, opts: ServicesLoadOptions = {}): ServicesFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SaruError(ErrorCode.CONFIG, `cannot read services file ${file}: ${(e as Error).message}`);
  }
  return parseServices(text, file, opts);
}

/**
 * ldirectord's virtual services with their health checks, as ldirectord runs
 * them (ld_main's check dispatch, check_connect, check_http, check_smtp,
 * check_simpletcp, check_ping, check_external, check_none):
 * - `connect`: a TCP connect, or for UDP services a UDP probe, within
 *   checktimeout, to checkport or the real server's port;
 * - `negotiate`: by `service=`: http/https (request, receive as a regular
 *   expression, virtualhost, httpmethod; a 2xx answer) and smtp/submission
 *   (banner and HELO) and simpletcp (send request, expect receive) within
 *   negotiatetimeout; `none` is always up (check_none);
 * - `ping`: one ICMP echo within checktimeout;
 * - `external` / `external-perl`: checkcommand VIP VPORT RIP RPORT, up on
 *   exit 0, killed after checktimeout;
 * - numeric checktype N: N connect rounds, then one negotiate round;
 * - `on` / `off`: always up / down.
 * Rounds start every checkinterval; checkcount tries per round; failurecount
 * failed rounds in a row take a real server down; quiescent chooses weight 0
 * or removal.
 * @throws SaruError SARU_ERR_CONFIG for a negotiate check of a service we do not speak.
 */
export function ldirectordServices(cfg: LdirectordConfig): ConfiguredService[] {
  const inits = toServiceInits(cfg);
  return cfg.virtualServices.map((vs, i) => ({
    ...inits[i]!,
    health: ldHealth(cfg.file, vs),
    file: cfg.file,
    line: vs.line,
  }));
}

const LD_NEGOTIATE = new Set(['http', 'https', 'smtp', 'submission', 'simpletcp', 'none']);

function ldHealth(file: string, vs: LdVirtualService): ServiceHealth {
  const c = vs.check;
  if (c.type === 'negotiate' || c.type === 'combined') {
    if (!LD_NEGOTIATE.has(c.service)) {
      throw configError(
        file,
        vs.line,
        `checktype=negotiate with service=${c.service} is not supported (saru negotiates http, https, smtp, submission, simpletcp and none); use checktype=connect or external`,
      );
    }
  }
  const round = { intervalMs: c.checkIntervalS * 1000, attempts: Math.max(1, c.checkCount), retryDelayMs: 0, failureCount: Math.max(1, c.failureCount) };
  const checks = vs.realServers.map((rs): RealServerCheck[] => {
    const connect = ldConnect(vs, rs);
    let spec: CheckSpec;
    switch (c.type) {
      case 'on':
      case 'off':
        spec = { kind: c.type };
        break;
      case 'connect':
        spec = connect;
        break;
      case 'ping':
        spec = { kind: 'ping', timeoutMs: c.checkTimeoutS * 1000 };
        break;
      case 'external':
      case 'external-perl':
        spec = {
          kind: 'external',
          command: c.checkCommand,
          args: [vs.protocol === 'fwm' ? String(vs.fwmark) : vs.address!, String(vs.port), rs.address, String(rs.port)],
          dynamicWeight: false,
          timeoutMs: c.checkTimeoutS * 1000,
        };
        break;
      case 'negotiate':
      case 'combined':
        spec = ldNegotiate(vs, rs);
        break;
    }
    const check: RealServerCheck = { spec, ...round };
    if (c.type === 'combined' && spec.kind !== 'on') check.alternate = { connectSpec: connect, connectsPerRound: c.connectsPerNegotiate };
    return [check];
  });
  return { quiescent: vs.quiescent, checks };
}

function ldConnect(vs: LdVirtualService, rs: LdRealServer): ConnectCheck {
  const port = checkPortFor(vs, rs);
  return {
    kind: 'connect',
    protocol: vs.protocol === 'udp' ? 'udp' : 'tcp',
    ...(port !== undefined ? { port } : {}),
    timeoutMs: vs.check.checkTimeoutS * 1000,
  };
}

function ldNegotiate(vs: LdVirtualService, rs: LdRealServer): CheckSpec {
  const c = vs.check;
  const port = checkPortFor(vs, rs);
  const at = port !== undefined ? { port } : {};
  const timeoutMs = c.negotiateTimeoutS * 1000;
  const request = rs.request ?? c.request;
  const receive = rs.receive ?? c.receive;
  switch (c.service) {
    case 'http':
    case 'https': {
      const path = request.startsWith('/') ? request : `/${request}`;
      return {
        kind: 'http',
        tls: c.service === 'https',
        method: c.httpMethod,
        ...at,
        ...(c.virtualHost !== undefined ? { virtualHost: c.virtualHost } : {}),
        urls: [{ path, ...(receive !== '' ? { receive } : {}) }],
        timeoutMs,
      };
    }
    case 'smtp':
    case 'submission':
      return { kind: 'smtp', ...at, timeoutMs };
    case 'simpletcp':
      // check_simpletcp: the request without the "/" read_config put in front, "\n" as a newline
      return { kind: 'simpletcp', ...at, request: request.slice(1).replace(/\\n/g, '\n'), receive, timeoutMs };
    default:
      return { kind: 'on' }; // service=none: check_none
  }
}
