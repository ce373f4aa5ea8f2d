/**
 * ldirectord.cf parser. Owns the translation of ldirectord's configuration
 * language into plain data (LdirectordConfig) and from there into the
 * service model's VirtualServiceInit / RealServerInit (core/service.ts).
 * Must not resolve host names, read /etc/services or touch the network:
 * parseLdirectord() is pure; only loadLdirectordFile() reads a file.
 *
 * Behaviour follows ldirectord's read_config(), parse_fallback(),
 * add_real_server(), add_real_server_range(), ld_setup() and
 * ld_port_to_service() in ClusterLabs resource-agents
 * ldirectord/ldirectord.in (read at commit 3446b99b), and its POD manual:
 *
 * - Global directives start in column 0. `virtual=` / `virtual6=` starts a
 *   virtual service; the lines after it that are indented by at least four
 *   spaces or a tab (a tab counts as four spaces) belong to it. Comment lines
 *   (`#` after optional blanks) inside the block are skipped; any other line,
 *   a blank one included, ends the block.
 * - `#` starts a comment. ldirectord strips it even inside quotes; we strip it
 *   only outside double quotes, so `receive="a#b"` keeps its `#`.
 * - Defaults are those of set_defaults() and the per-virtual initialisation in
 *   read_config(): checkinterval 10, checkcount 1, failurecount 1, checktimeout
 *   5 and negotiatetimeout 30 (each the other's fallback, as ld_setup()),
 *   quiescent **no** (the code's default; the manual still says yes),
 *   scheduler wrr, checktype negotiate, protocol tcp (udp when the virtual port
 *   is 53), service derived from the virtual port, request "/".
 * - `real=ADDR[->ADDR2][:PORT] gate|masq|ipip [WEIGHT] ["request", "receive"]`;
 *   the weight defaults to 1 and the port to 0. IPv4 ranges expand to one real
 *   server per address; IPv6 ranges are rejected, as ldirectord does.
 *   ldirectord requires the forwarding method; we default a missing one to
 *   gate (ipvsadm's -g default), which accepts a superset of its input.
 * - `fallback=ADDR[:PORT] [gate|masq|ipip]`, in a virtual or global; the port
 *   defaults to the virtual's. `fallback6=` for IPv6 services.
 * - `connecttimeout` is accepted as older ldirectord releases did (a fallback
 *   for negotiatetimeout); current ldirectord rejects it as deprecated.
 * - Unknown directives are errors, as in ldirectord.
 *
 * Errors are SaruError SARU_ERR_CONFIG naming file, 1-based line and what was
 * expected (configError in core/errors.ts).
 */
import { readFileSync } from 'node:fs';
import { IpAddress } from '../addr.js';
import { Fwd, Proto, type Family } from '../constants.js';
import { configError } from '../errors.js';
import type { RealServerInit, VirtualServiceInit } from '../service.js';
import { resolvePort } from './ports.js';

/** ldirectord's forwarding-method names. */
export type LdForward = 'gate' | 'masq' | 'ipip';

/** ldirectord's check types; `combined` is a numeric checktype (N connects, then one negotiate). */
export type LdCheckType = 'connect' | 'negotiate' | 'ping' | 'off' | 'on' | 'external' | 'external-perl' | 'combined';

/** The `service=` values ldirectord accepts. */
export const LD_SERVICES = [
  'dns', 'ftp', 'http', 'https', 'http_proxy', 'imap', 'imaps', 'ldap', 'nntp', 'mysql', 'none',
  'oracle', 'pop', 'pops', 'radius', 'pgsql', 'sip', 'smtp', 'submission', 'simpletcp',
] as const;
export type LdService = (typeof LD_SERVICES)[number];

/** A real or fallback server as written (after range expansion). */
export interface LdServer {
  /** Canonical address text (no brackets). */
  address: string;
  family: Family;
  /** Port as written; 0 when omitted (ldirectord's default for real servers). */
  port: number;
  /** Whether the port was written explicitly. */
  portGiven: boolean;
  forward: LdForward;
  fwd: Fwd;
  weight: number;
  /** Line the server was defined on. */
  line: number;
}

/** A real server, with its optional per-server request/receive pair. */
export interface LdRealServer extends LdServer {
  request?: string;
  receive?: string;
}

/** Health-check settings of one virtual service, per-virtual values over globals over defaults. */
export interface LdCheck {
  type: LdCheckType;
  /** For `combined` (numeric checktype N): connect checks between negotiate checks. */
  connectsPerNegotiate: number;
  service: LdService;
  /** `checkport=`; undefined = the real server's port (ld_checkport). */
  checkPort?: number;
  /** Request path, always starting with "/" as ldirectord normalises it (default "/"). */
  request: string;
  /** Regular expression the answer must contain (default ""). */
  receive: string;
  httpMethod: 'GET' | 'HEAD';
  virtualHost?: string;
  login: string;
  passwd: string;
  database: string;
  secret: string;
  checkCommand: string;
  /** Seconds, effective (ld_setup's resolution order). */
  checkTimeoutS: number;
  /** Seconds, effective. */
  negotiateTimeoutS: number;
  /** Seconds between checks. */
  checkIntervalS: number;
  checkCount: number;
  failureCount: number;
}

/** One `virtual=` / `virtual6=` block. */
export interface LdVirtualService {
  /** Line of the `virtual=` directive. */
  line: number;
  protocol: 'tcp' | 'udp' | 'fwm';
  family: Family;
  /** VIP (canonical text) for address services. */
  address?: string;
  /** Virtual port; 0 for firewall-mark services. */
  port: number;
  /** Firewall mark for `protocol: 'fwm'`. */
  fwmark?: number;
  scheduler: string;
  /** `persistent=` seconds; undefined = not persistent. */
  persistentS?: number;
  /** `netmask=` as written. */
  netmask?: string;
  /** `netmask=` as a prefix length. */
  persistentPrefix?: number;
  /** `ops=yes` (one-packet scheduling). */
  ops: boolean;
  realServers: LdRealServer[];
  /** Effective fallback: the virtual's own, else the global fallback/fallback6 of its family. */
  fallback?: LdServer;
  fallbackCommand?: string;
  quiescent: boolean;
  cleanStop: boolean;
  emailAlert?: string;
  emailAlertFreq: number;
  emailAlertStatus: string[];
  smtp?: string;
  monitorFile?: string;
  check: LdCheck;
}

/** Global settings, with ldirectord's defaults. */
export interface LdGlobals {
  /** Global checktimeout (seconds) if set. */
  checkTimeoutS?: number;
  /** Global negotiatetimeout (seconds) if set. */
  negotiateTimeoutS?: number;
  /** Global connecttimeout (seconds, legacy) if set. */
  connectTimeoutS?: number;
  checkIntervalS: number;
  checkCount: number;
  failureCount: number;
  autoreload: boolean;
  callback?: string;
  fallback?: LdServer;
  fallback6?: LdServer;
  fallbackCommand?: string;
  logfile: string;
  execute: string[];
  fork: boolean;
  supervised: boolean;
  quiescent: boolean;
  readdQuiescent: boolean;
  cleanStop: boolean;
  emailAlert?: string;
  emailAlertFreq: number;
  emailAlertStatus: string[];
  emailAlertFrom?: string;
  smtp?: string;
  maintenanceDir?: string;
}

export interface LdirectordConfig {
  file: string;
  globals: LdGlobals;
  virtualServices: LdVirtualService[];
}

/** ldirectord's default check timeouts (DEFAULT_CHECKTIMEOUT, DEFAULT_NEGOTIATETIMEOUT). */
export const LD_DEFAULT_CHECKTIMEOUT_S = 5;
export const LD_DEFAULT_NEGOTIATETIMEOUT_S = 30;
/** ipvsadm's MAX_TIMEOUT for -p: 31 days. */
const MAX_PERSISTENT_S = 86400 * 31;
/** Largest IPv4 range one `real=a->b` line may expand to. */
const MAX_RANGE = 65536;

const FORWARD: Record<LdForward, Fwd> = { gate: Fwd.DR, masq: Fwd.NAT, ipip: Fwd.TUN };

const REAL_SYNTAX = 'real=ADDRESS[->ADDRESS][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST", "RECEIVE"]';
const REAL6_SYNTAX = 'real6=[ADDRESS][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST", "RECEIVE"]';
const VIRTUAL_SYNTAX = 'virtual=ADDRESS:PORT or virtual=FWMARK';
const VIRTUAL6_SYNTAX = 'virtual6=[ADDRESS]:PORT or virtual6=FWMARK';
const FALLBACK_SYNTAX = 'fallback=ADDRESS[:PORT] [gate|masq|ipip]';
const FALLBACK6_SYNTAX = 'fallback6=[ADDRESS][:PORT] [gate|masq|ipip]';

/** ld_port_to_service: the check service implied by a virtual port. */
function portToService(port: number): LdService {
  switch (port) {
    case 21: return 'ftp';
    case 25: return 'smtp';
    case 53: return 'dns';
    case 80: return 'http';
    case 110: return 'pop';
    case 119: return 'nntp';
    case 143: return 'imap';
    case 389: return 'ldap';
    case 443: return 'https';
    case 587: return 'submission';
    case 993: return 'imaps';
    case 995: return 'pops';
    case 1521: return 'oracle';
    case 1812: return 'radius';
    case 3128: return 'http_proxy';
    case 3306: return 'mysql';
    case 5060: return 'sip';
    case 5432: return 'pgsql';
    default: return 'none';
  }
}

const GLOBAL_DIRECTIVES = new Set([
  'checktimeout', 'negotiatetimeout', 'connecttimeout', 'checkinterval', 'checkcount', 'failurecount',
  'fallback', 'fallback6', 'fallbackcommand', 'autoreload', 'callback', 'logfile', 'execute', 'fork',
  'supervised', 'quiescent', 'readdquiescent', 'emailalert', 'emailalertfreq', 'emailalertstatus',
  'emailalertfrom', 'cleanstop', 'smtp', 'maintenancedir',
]);

const VIRTUAL_DIRECTIVES = new Set([
  'real', 'real6', 'request', 'receive', 'checktype', 'checkcommand', 'checktimeout', 'connecttimeout',
  'negotiatetimeout', 'checkcount', 'failurecount', 'checkinterval', 'checkport', 'login', 'passwd',
  'database', 'secret', 'load', 'scheduler', 'persistent', 'netmask', 'protocol', 'ops', 'service',
  'httpmethod', 'virtualhost', 'fallback', 'fallback6', 'fallbackcommand', 'quiescent', 'emailalert',
  'emailalertfreq', 'emailalertstatus', 'monitorfile', 'cleanstop', 'smtp',
]);

/** Remove a `#` comment that is outside double quotes. */
function stripComment(s: string): string {
  let inQuote = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') inQuote = !inQuote;
    else if (c === '#' && !inQuote) return s.slice(0, i);
  }
  return s;
}

/** Strip one pair of enclosing double quotes. */
function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** Per-virtual values that fall back to the globals. */
interface VirtualRaw {
  checkTimeoutS?: number;
  negotiateTimeoutS?: number;
  connectTimeoutS?: number;
  checkIntervalS?: number;
  checkCount?: number;
  failureCount?: number;
  quiescent?: boolean;
  cleanStop?: boolean;
  emailAlert?: string;
  emailAlertFreq?: number;
  emailAlertStatus?: string[];
  smtp?: string;
  fallbackCommand?: string;
  fallback?: { text: string; line: number };
  protocolSet?: 'tcp' | 'udp' | 'fwm';
  service?: LdService;
  login?: string;
  passwd?: string;
  reals: { text: string; line: number; v6: boolean }[];
}

class Parser {
  private readonly file: string;
  private readonly globals: LdGlobals = {
    checkIntervalS: 10,
    checkCount: 1,
    failureCount: 1,
    autoreload: false,
    logfile: '/var/log/ldirectord.log',
    execute: [],
    fork: false,
    supervised: false,
    quiescent: false,
    readdQuiescent: false,
    cleanStop: true,
    emailAlertFreq: 0,
    emailAlertStatus: ['all'],
  };
  /** Global fallbacks as written, resolved per virtual (the port defaults to the virtual's). */
  private globalFallback?: { text: string; line: number };
  private globalFallback6?: { text: string; line: number };
  private readonly pending: { vs: LdVirtualService; raw: VirtualRaw }[] = [];

  constructor(file: string) {
    this.file = file;
  }

  err(line: number, msg: string): never {
    throw configError(this.file, line, msg);
  }

  expected(line: number, what: string, got: string): never {
    this.err(line, `expected "${what}", got "${got.trim()}"`);
  }

  parse(text: string): LdirectordConfig {
    const lines = text.split(/\r\n|\n|\r/);
    let i = 0;
    while (i < lines.length) {
      const lineNo = i + 1;
      const raw = lines[i]!;
      if (/^\s*#/.test(raw) || /^\s*$/.test(stripComment(raw))) {
        i++;
        continue;
      }
      const body = stripComment(raw).replace(/\s+$/, '');
      if (/^\s/.test(body)) {
        this.err(
          lineNo,
          `indented line outside a virtual service: "${body.trim()}" (a virtual service's directives follow its virtual= line, indented; a blank line ends the block)`,
        );
      }
      const vm = /^virtual(6)?\s*=\s*(.*)$/.exec(body);
      if (vm) {
        const raw: VirtualRaw = { reals: [] };
        const vs = this.parseVirtualLine(lineNo, vm[1] === '6', vm[2]!.trim(), body);
        i++;
        // The indented block.
        while (i < lines.length) {
          const l = lines[i]!;
          if (/^\s*#/.test(l)) {
            i++;
            continue;
          }
          const b = stripComment(l).replace(/\t/g, '    ').replace(/\s+$/, '');
          const m = /^ {4,}(\S.*)$/.exec(b);
          if (!m) break;
          this.parseVirtualDirective(i + 1, m[1]!, vs, raw);
          i++;
        }
        this.pending.push({ vs, raw });
        continue;
      }
      this.parseGlobalDirective(lineNo, body);
      i++;
    }
    const vss: LdVirtualService[] = [];
    const seen = new Map<string, number>();
    for (const { vs, raw } of this.pending) {
      this.finishVirtual(vs, raw);
      const id = vs.protocol === 'fwm' ? `fwm ${vs.fwmark} IPv${vs.family}` : `${vs.protocol} ${vs.address} ${vs.port}`;
      const prev = seen.get(id);
      if (prev !== undefined) this.err(vs.line, `duplicate virtual server (first defined at line ${prev})`);
      seen.set(id, vs.line);
      vss.push(vs);
    }
    return { file: this.file, globals: this.globals, virtualServices: vss };
  }

  // ---- helpers ------------------------------------------------------------

  /** A directive "name = value" (spaces allowed around "="). */
  splitDirective(line: number, text: string): { name: string; value: string } {
    const m = /^([A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(.*))?$/.exec(text);
    if (!m) this.expected(line, 'DIRECTIVE=VALUE', text);
    return { name: m[1]!.toLowerCase(), value: (m[2] ?? '').trim() };
  }

  posInt(line: number, name: string, v: string): number {
    if (!/^\d+$/.test(v) || Number(v) <= 0) this.expected(line, `${name}=POSITIVE-INTEGER`, `${name}=${v}`);
    return Number(v);
  }

  nonNegInt(line: number, name: string, v: string): number {
    if (!/^\d+$/.test(v)) this.expected(line, `${name}=INTEGER`, `${name}=${v}`);
    return Number(v);
  }

  yesNo(line: number, name: string, v: string): boolean {
    if (v !== 'yes' && v !== 'no') this.expected(line, `${name}=yes|no`, `${name}=${v}`);
    return v === 'yes';
  }

  nonEmpty(line: number, name: string, v: string): string {
    const u = unquote(v);
    if (u === '') this.expected(line, `${name}="VALUE"`, `${name}=${v}`);
    return u;
  }

  emailStatus(line: number, v: string): string[] {
    const parts = v.split(/\s*,\s*/).filter((p) => p !== '');
    const ok = ['all', 'none', 'starting', 'running', 'stopping', 'reloading'];
    for (const p of parts) {
      if (!ok.includes(p)) this.expected(line, 'emailalertstatus=all|none|starting|running|stopping|reloading[,...]', `emailalertstatus=${v}`);
    }
    if (parts.length === 0) this.expected(line, 'emailalertstatus=all|none|starting|running|stopping|reloading[,...]', `emailalertstatus=${v}`);
    if (parts.includes('none') && parts.length > 1) this.err(line, 'emailalertstatus: "none" cannot be combined with other states');
    return parts;
  }

  /**
   * Parse a host that must be a numeric address of `family`. Host names are
   * an error: the parser does not resolve names.
   */
  address(line: number, host: string, family: Family, syntax: string, got: string): IpAddress {
    let a: IpAddress | undefined;
    try {
      a = IpAddress.parse(host);
    } catch {
      a = undefined;
    }
    if (a) {
      if (a.family !== family) {
        this.err(
          line,
          family === 4
            ? `${host} is an IPv6 address; use the "6" form of the directive (virtual6=, real6=, fallback6=)`
            : `${host} is an IPv4 address; an IPv6 service needs IPv6 addresses`,
        );
      }
      return a;
    }
    if (/^[A-Za-z0-9.-]+$/.test(host) && /[A-Za-z]/.test(host)) {
      this.err(line, `"${host}": hostnames are not resolved by the parser; use an address`);
    }
    this.expected(line, syntax, got);
  }

  port(line: number, text: string): number {
    const p = resolvePort(text);
    if (p === undefined) {
      if (/^\d+$/.test(text)) this.err(line, `port ${text} out of range 0..65535`);
      this.err(line, `unknown service name "${text}" (use a port number)`);
    }
    return p;
  }

  /**
   * Split "HOST[:PORT]" (IPv4 or name) or "[V6][:PORT]" (IPv6). Returns null on
   * a shape mismatch.
   */
  splitHostPort(s: string, v6: boolean): { host: string; port?: string } | null {
    if (v6) {
      const m = /^\[([^\]]+)\](?::([A-Za-z0-9_-]+))?$/.exec(s);
      return m ? { host: m[1]!, port: m[2] } : null;
    }
    const m = /^([^:\s[\]]+)(?::([A-Za-z0-9_-]+))?$/.exec(s);
    return m ? { host: m[1]!, port: m[2] } : null;
  }

  // ---- global section ---------------------------------------------------------

  parseGlobalDirective(line: number, text: string): void {
    const { name, value } = this.splitDirective(line, text);
    const g = this.globals;
    if (!GLOBAL_DIRECTIVES.has(name)) {
      if (name === 'virtual' || name === 'virtual6') this.expected(line, name === 'virtual' ? VIRTUAL_SYNTAX : VIRTUAL6_SYNTAX, text);
      if (name === 'timeout') this.err(line, 'the timeout directive is deprecated; use checktimeout and negotiatetimeout');
      if (VIRTUAL_DIRECTIVES.has(name)) {
        this.err(line, `${name}= belongs to a virtual service: indent it under a virtual= line (four spaces or a tab)`);
      }
      this.err(line, `unknown directive "${name}"`);
    }
    switch (name) {
      case 'checktimeout':
        g.checkTimeoutS = this.posInt(line, name, value);
        break;
      case 'negotiatetimeout':
        g.negotiateTimeoutS = this.posInt(line, name, value);
        break;
      case 'connecttimeout':
        g.connectTimeoutS = this.posInt(line, name, value);
        break;
      case 'checkinterval':
        g.checkIntervalS = this.posInt(line, name, value);
        break;
      case 'checkcount':
        g.checkCount = this.posInt(line, name, value);
        break;
      case 'failurecount':
        g.failureCount = this.posInt(line, name, value);
        break;
      case 'fallback':
        // Validated now; the port defaults to each virtual's when it is used.
        this.globalFallback = { text: value, line };
        g.fallback = this.parseServer(line, value, false, 'fallback', undefined);
        break;
      case 'fallback6':
        this.globalFallback6 = { text: value, line };
        g.fallback6 = this.parseServer(line, value, true, 'fallback6', undefined);
        break;
      case 'fallbackcommand':
        g.fallbackCommand = this.nonEmpty(line, name, value);
        break;
      case 'autoreload':
        g.autoreload = this.yesNo(line, name, value);
        break;
      case 'callback':
        g.callback = this.nonEmpty(line, name, value);
        break;
      case 'logfile':
        g.logfile = this.nonEmpty(line, name, value);
        break;
      case 'execute':
        g.execute.push(this.nonEmpty(line, name, value));
        break;
      case 'fork':
        g.fork = this.yesNo(line, name, value);
        break;
      case 'supervised':
        g.supervised = value === '' ? true : this.yesNo(line, name, value);
        break;
      case 'quiescent':
        g.quiescent = this.yesNo(line, name, value);
        break;
      case 'readdquiescent':
        g.readdQuiescent = this.yesNo(line, name, value);
        break;
      case 'emailalert':
        g.emailAlert = this.nonEmpty(line, name, value);
        break;
      case 'emailalertfreq':
        g.emailAlertFreq = this.nonNegInt(line, name, value);
        break;
      case 'emailalertstatus':
        g.emailAlertStatus = this.emailStatus(line, value);
        break;
      case 'emailalertfrom':
        g.emailAlertFrom = this.nonEmpty(line, name, value);
        break;
      case 'cleanstop':
        g.cleanStop = this.yesNo(line, name, value);
        break;
      case 'smtp':
        g.smtp = this.smtpHost(line, value);
        break;
      case 'maintenancedir':
        g.maintenanceDir = this.nonEmpty(line, name, value);
        break;
    }
  }

  smtpHost(line: number, v: string): string {
    const u = unquote(v);
    if (!/^[0-9A-Za-z._+-]+$/.test(u)) this.expected(line, 'smtp=ADDRESS', `smtp=${v}`);
    return u;
  }

  // ---- virtual section ----------------------------------------------------------

  parseVirtualLine(line: number, v6: boolean, value: string, text: string): LdVirtualService {
    const syntax = v6 ? VIRTUAL6_SYNTAX : VIRTUAL_SYNTAX;
    const family: Family = v6 ? 6 : 4;
    const base = {
      line,
      family,
      scheduler: 'wrr',
      ops: false,
      realServers: [],
      quiescent: false,
      cleanStop: true,
      emailAlertFreq: 0,
      emailAlertStatus: ['all'],
    };
    if (/^\d+$/.test(value)) {
      const mark = Number(value);
      if (mark < 1 || mark > 0xffffffff) this.err(line, `firewall mark must be 1..4294967295, got ${value}`);
      return { ...base, protocol: 'fwm', port: 0, fwmark: mark, check: this.defaultCheck('none') };
    }
    if (!v6 && value.startsWith('[')) this.err(line, 'cannot specify an IPv6 address here; use "virtual6=" instead');
    const hp = this.splitHostPort(value, v6);
    if (!hp || hp.port === undefined) this.expected(line, syntax, text);
    const addr = this.address(line, hp.host, family, syntax, text);
    const port = this.port(line, hp.port);
    return {
      ...base,
      protocol: port === 53 ? 'udp' : 'tcp',
      address: addr.text,
      port,
      check: this.defaultCheck(portToService(port)),
    };
  }

  defaultCheck(service: LdService): LdCheck {
    return {
      type: 'negotiate',
      connectsPerNegotiate: 0,
      service,
      request: '/',
      receive: '',
      httpMethod: 'GET',
      login: '',
      passwd: '',
      database: '',
      secret: '',
      checkCommand: '/bin/true',
      checkTimeoutS: LD_DEFAULT_CHECKTIMEOUT_S,
      negotiateTimeoutS: LD_DEFAULT_NEGOTIATETIMEOUT_S,
      checkIntervalS: 10,
      checkCount: 1,
      failureCount: 1,
    };
  }

  parseVirtualDirective(line: number, text: string, vs: LdVirtualService, raw: VirtualRaw): void {
    if (/^virtual6?\s*=/.test(text)) {
      this.err(line, 'virtual= must start in column 0 (indented lines belong to the virtual service above)');
    }
    const { name, value } = this.splitDirective(line, text);
    const c = vs.check;
    if (!VIRTUAL_DIRECTIVES.has(name)) {
      if (name === 'timeout') this.err(line, 'the timeout directive is deprecated; use checktimeout and negotiatetimeout');
      if (GLOBAL_DIRECTIVES.has(name)) this.err(line, `${name}= is a global directive; it cannot appear inside a virtual service`);
      this.err(line, `unknown directive "${name}" in a virtual service`);
    }
    switch (name) {
      case 'real':
      case 'real6': {
        const v6 = name === 'real6';
        if (v6 !== (vs.family === 6)) {
          this.err(line, `cannot specify "${name}" here; use "${vs.family === 6 ? 'real6' : 'real'}" instead`);
        }
        raw.reals.push({ text: value, line, v6 });
        break;
      }
      case 'request': {
        const r = this.nonEmpty(line, name, value);
        c.request = r.startsWith('/') ? r : `/${r}`;
        break;
      }
      case 'receive':
        c.receive = this.nonEmpty(line, name, value);
        break;
      case 'checktype':
        if (/^\d+$/.test(value)) {
          c.type = 'combined';
          c.connectsPerNegotiate = Number(value);
        } else if (['connect', 'negotiate', 'ping', 'off', 'on', 'external', 'external-perl'].includes(value)) {
          c.type = value as LdCheckType;
        } else {
          this.expected(line, 'checktype=connect|negotiate|ping|on|off|external|external-perl|NUMBER', text);
        }
        break;
      case 'checkcommand':
        c.checkCommand = this.nonEmpty(line, name, value);
        break;
      case 'checktimeout':
        raw.checkTimeoutS = this.posInt(line, name, value);
        break;
      case 'negotiatetimeout':
        raw.negotiateTimeoutS = this.posInt(line, name, value);
        break;
      case 'connecttimeout':
        raw.connectTimeoutS = this.posInt(line, name, value);
        break;
      case 'checkcount':
        raw.checkCount = this.posInt(line, name, value);
        break;
      case 'failurecount':
        raw.failureCount = this.posInt(line, name, value);
        break;
      case 'checkinterval':
        raw.checkIntervalS = this.posInt(line, name, value);
        break;
      case 'checkport': {
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
          this.expected(line, 'checkport=1..65535', text);
        }
        c.checkPort = Number(value);
        break;
      }
      case 'login':
        raw.login = this.nonEmpty(line, name, value);
        break;
      case 'passwd':
        raw.passwd = this.nonEmpty(line, name, value);
        break;
      case 'database':
        c.database = this.nonEmpty(line, name, value);
        break;
      case 'secret':
        c.secret = this.nonEmpty(line, name, value);
        break;
      case 'load':
        // Obsolete load-testing string; accepted and ignored as ldirectord does.
        this.nonEmpty(line, name, value);
        break;
      case 'scheduler':
        if (!/^[a-z]+$/.test(value)) this.expected(line, 'scheduler=NAME (lowercase letters)', text);
        vs.scheduler = value;
        break;
      case 'persistent': {
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_PERSISTENT_S) {
          this.expected(line, `persistent=SECONDS (1..${MAX_PERSISTENT_S})`, text);
        }
        vs.persistentS = Number(value);
        break;
      }
      case 'netmask':
        vs.netmask = value;
        vs.persistentPrefix = this.netmask(line, value, vs.family, text);
        break;
      case 'protocol':
        if (vs.protocol === 'fwm' || raw.protocolSet === 'fwm') {
          if (value !== 'fwm') this.err(line, `protocol must be fwm for a firewall-mark virtual service, got "${value}"`);
        } else if (value === 'tcp' || value === 'udp') {
          vs.protocol = value;
        } else if (value === 'fwm') {
          this.err(line, 'protocol=fwm needs a firewall mark: virtual=NUMBER');
        } else {
          this.expected(line, 'protocol=tcp|udp|fwm', text);
        }
        raw.protocolSet = value as 'tcp' | 'udp' | 'fwm';
        break;
      case 'ops':
        vs.ops = this.yesNo(line, name, value);
        break;
      case 'service':
        if (!(LD_SERVICES as readonly string[]).includes(value)) this.expected(line, `service=${LD_SERVICES.join('|')}`, text);
        raw.service = value as LdService;
        break;
      case 'httpmethod': {
        const u = value.toUpperCase();
        if (u !== 'GET' && u !== 'HEAD') this.expected(line, 'httpmethod=GET|HEAD', text);
        c.httpMethod = u;
        break;
      }
      case 'virtualhost':
        c.virtualHost = this.nonEmpty(line, name, value);
        break;
      case 'fallback':
      case 'fallback6': {
        const v6 = name === 'fallback6';
        if (v6 !== (vs.family === 6)) {
          this.err(line, `cannot specify "${name}" here; use "${vs.family === 6 ? 'fallback6' : 'fallback'}" instead`);
        }
        raw.fallback = { text: value, line };
        break;
      }
      case 'fallbackcommand':
        raw.fallbackCommand = this.nonEmpty(line, name, value);
        break;
      case 'quiescent':
        raw.quiescent = this.yesNo(line, name, value);
        break;
      case 'emailalert':
        raw.emailAlert = this.nonEmpty(line, name, value);
        break;
      case 'emailalertfreq':
        raw.emailAlertFreq = this.nonNegInt(line, name, value);
        break;
      case 'emailalertstatus':
        raw.emailAlertStatus = this.emailStatus(line, value);
        break;
      case 'monitorfile':
        vs.monitorFile = this.nonEmpty(line, name, value);
        break;
      case 'cleanstop':
        raw.cleanStop = this.yesNo(line, name, value);
        break;
      case 'smtp':
        raw.smtp = this.smtpHost(line, value);
        break;
    }
  }

  /** IPv4 dotted-quad netmask (contiguous) or IPv6 prefix length 1..128 -> prefix length. */
  netmask(line: number, value: string, family: Family, text: string): number {
    if (family === 6) {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 128) {
        this.expected(line, 'netmask=PREFIXLEN (1..128) for an IPv6 service', text);
      }
      return Number(value);
    }
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(value);
    if (!m || m.slice(1).some((p) => Number(p) > 255)) this.expected(line, 'netmask=W.X.Y.Z (dotted quad)', text);
    const v = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
    const inv = ~v >>> 0;
    // Contiguous iff the inverted mask is 2^k - 1.
    if ((inv & (inv + 1)) !== 0) this.err(line, `netmask ${value} is not contiguous (ones must be followed only by zeros)`);
    let prefix = 0;
    for (let b = 31; b >= 0 && ((v >>> b) & 1) === 1; b--) prefix++;
    return prefix;
  }

  /**
   * Parse "HOST[:PORT] [gate|masq|ipip]" (fallback). `defaultPort` is the
   * virtual's port; undefined for a global fallback (port 0 until used).
   */
  parseServer(line: number, value: string, v6: boolean, name: string, defaultPort: number | undefined): LdServer {
    const syntax = v6 ? FALLBACK6_SYNTAX : FALLBACK_SYNTAX;
    const got = `${name}=${value}`;
    const parts = value.split(/\s+/).filter((p) => p !== '');
    if (parts.length < 1 || parts.length > 2) this.expected(line, syntax, got);
    if (!v6 && parts[0]!.startsWith('[')) this.err(line, 'cannot specify an IPv6 address here; use "fallback6=" instead');
    const hp = this.splitHostPort(parts[0]!, v6);
    if (!hp) this.expected(line, syntax, got);
    const family: Family = v6 ? 6 : 4;
    const addr = this.address(line, hp.host, family, syntax, got);
    const portGiven = hp.port !== undefined;
    const port = portGiven ? this.port(line, hp.port!) : (defaultPort ?? 0);
    const fwdName = parts[1] ?? 'gate';
    if (fwdName !== 'gate' && fwdName !== 'masq' && fwdName !== 'ipip') {
      this.expected(line, syntax, got);
    }
    return {
      address: addr.text,
      family,
      port,
      portGiven,
      forward: fwdName,
      fwd: FORWARD[fwdName],
      weight: 1,
      line,
    };
  }

  /** Parse one `real=` line into one or more real servers (ranges expand). */
  parseReal(line: number, value: string, v6: boolean): LdRealServer[] {
    const syntax = v6 ? REAL6_SYNTAX : REAL_SYNTAX;
    const got = `${v6 ? 'real6' : 'real'}=${value}`;
    const sp = /^(\S+)(.*)$/.exec(value);
    if (!sp) this.expected(line, syntax, got);
    const addrTok = sp[1]!;
    let rest = sp[2]!;

    // ADDR[->ADDR2][:PORT]
    let first: string;
    let last: string | undefined;
    let portText: string | undefined;
    if (v6) {
      const m = /^\[([^\]]+)\](?:->\[([^\]]+)\])?(?::([A-Za-z0-9_-]+))?$/.exec(addrTok);
      if (!m) this.expected(line, syntax, got);
      first = m[1]!;
      last = m[2];
      portText = m[3];
    } else {
      if (addrTok.startsWith('[')) this.err(line, 'cannot specify an IPv6 address here; use "real6=" instead');
      const m = /^([^:\s>-][^:\s>]*?)(?:->([^:\s]+))?(?::([A-Za-z0-9_-]+))?$/.exec(addrTok);
      if (!m) this.expected(line, syntax, got);
      first = m[1]!;
      last = m[2];
      portText = m[3];
    }
    const family: Family = v6 ? 6 : 4;
    const a1 = this.address(line, first, family, syntax, got);
    const port = portText === undefined ? 0 : this.port(line, portText);

    // gate|masq|ipip
    let forward: LdForward = 'gate';
    const fm = /^\s+([A-Za-z]+)(.*)$/.exec(rest);
    if (fm) {
      if (fm[1] !== 'gate' && fm[1] !== 'masq' && fm[1] !== 'ipip') this.expected(line, syntax, got);
      forward = fm[1] as LdForward;
      rest = fm[2]!;
    }
    // WEIGHT
    let weight = 1;
    const wm = /^\s+(\d+)(.*)$/.exec(rest);
    if (wm) {
      weight = Number(wm[1]);
      if (weight > 65535) this.err(line, `weight must be 0..65535, got ${wm[1]}`);
      rest = wm[2]!;
    }
    // "request", "receive"
    let request: string | undefined;
    let receive: string | undefined;
    const rm = /^\s+"([^"]*)"\s*[,\s]\s*"([^"]*)"(.*)$/.exec(rest);
    if (rm) {
      request = rm[1]!.startsWith('/') ? rm[1]! : `/${rm[1]!}`;
      receive = rm[2]!;
      rest = rm[3]!;
    }
    if (/\S/.test(rest)) this.expected(line, syntax, got);

    const make = (address: string): LdRealServer => {
      const r: LdRealServer = {
        address,
        family,
        port,
        portGiven: portText !== undefined,
        forward,
        fwd: FORWARD[forward],
        weight,
        line,
      };
      if (request !== undefined) {
        r.request = request;
        r.receive = receive;
      }
      return r;
    };

    if (last === undefined) return [make(a1.text)];
    if (v6) this.err(line, 'address ranges are not supported for IPv6 real servers');
    const a2 = this.address(line, last, family, syntax, got);
    const lo = a1.words[3]!;
    const hi = a2.words[3]!;
    if (lo > hi) this.err(line, `invalid range ${a1.text}->${a2.text}: the first address must not be greater than the last`);
    if (hi - lo + 1 > MAX_RANGE) this.err(line, `range ${a1.text}->${a2.text} has ${hi - lo + 1} addresses; at most ${MAX_RANGE}`);
    const out: LdRealServer[] = [];
    for (let v = lo; v <= hi; v++) {
      out.push(make(`${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`));
    }
    return out;
  }

  /** Apply globals, resolve reals and fallback, compute effective check values (ld_setup). */
  finishVirtual(vs: LdVirtualService, raw: VirtualRaw): void {
    const g = this.globals;
    if (vs.protocol !== 'fwm' && vs.port === 0 && vs.persistentS === undefined) {
      // ipvsadm: "Zero port specified for non-persistent service".
      this.err(vs.line, 'a virtual service on port 0 (all ports) must be persistent: add persistent=SECONDS');
    }
    const seen = new Map<string, number>();
    for (const r of raw.reals) {
      for (const rs of this.parseReal(r.line, r.text, r.v6)) {
        const key = `${rs.address} ${rs.port}`;
        const prev = seen.get(key);
        if (prev !== undefined) {
          this.err(r.line, `duplicate real server ${rs.family === 6 ? `[${rs.address}]` : rs.address}:${rs.port} (first defined at line ${prev})`);
        }
        seen.set(key, r.line);
        vs.realServers.push(rs);
      }
    }
    const fb = raw.fallback ?? (vs.family === 6 ? this.globalFallback6 : this.globalFallback);
    if (fb) {
      const v6 = vs.family === 6;
      vs.fallback = this.parseServer(fb.line, fb.text, v6, v6 ? 'fallback6' : 'fallback', vs.port);
    }
    vs.fallbackCommand = raw.fallbackCommand ?? g.fallbackCommand;
    vs.quiescent = raw.quiescent ?? g.quiescent;
    vs.cleanStop = raw.cleanStop ?? g.cleanStop;
    vs.emailAlert = raw.emailAlert ?? g.emailAlert;
    vs.emailAlertFreq = raw.emailAlertFreq ?? g.emailAlertFreq;
    vs.emailAlertStatus = raw.emailAlertStatus ?? g.emailAlertStatus;
    vs.smtp = raw.smtp ?? g.smtp;
    if (vs.fallbackCommand === undefined) delete vs.fallbackCommand;
    if (vs.emailAlert === undefined) delete vs.emailAlert;
    if (vs.smtp === undefined) delete vs.smtp;

    const c = vs.check;
    if (raw.service !== undefined) c.service = raw.service;
    c.login = raw.login ?? (c.service === 'ftp' ? 'anonymous' : '');
    c.passwd = raw.passwd ?? '';
    // ld_setup: checktimeout and negotiatetimeout are each other's defaults.
    c.checkTimeoutS =
      raw.checkTimeoutS ?? raw.negotiateTimeoutS ?? g.checkTimeoutS ?? g.negotiateTimeoutS ?? LD_DEFAULT_CHECKTIMEOUT_S;
    c.negotiateTimeoutS =
      raw.negotiateTimeoutS ??
      raw.connectTimeoutS ??
      raw.checkTimeoutS ??
      g.negotiateTimeoutS ??
      g.connectTimeoutS ??
      g.checkTimeoutS ??
      LD_DEFAULT_NEGOTIATETIMEOUT_S;
    c.checkIntervalS = raw.checkIntervalS ?? g.checkIntervalS;
    c.checkCount = raw.checkCount ?? g.checkCount;
    c.failureCount = raw.failureCount ?? g.failureCount;
  }
}

/**
 * Parse ldirectord.cf text. Pure: no file, name or network look-ups.
 * @param file the name used in error messages.
 * @throws SaruError SARU_ERR_CONFIG "file:line: ..." on any error.
 */
export function parseLdirectord(text: string, file: string): LdirectordConfig {
  return new Parser(file).parse(text);
}

/** Read and parse an ldirectord.cf file (the only I/O in this module). */
export function loadLdirectordFile(path: string): LdirectordConfig {
  return parseLdirectord(readFileSync(path, 'utf8'), path);
}

/**
 * The port to health-check a real server on, as ldirectord's ld_checkport():
 * `checkport=`, else the real server's port if non-zero, else the port of the
 * check service (http 80, ...), else undefined.
 */
export function checkPortFor(vs: LdVirtualService, rs: LdServer): number | undefined {
  if (vs.check.checkPort !== undefined) return vs.check.checkPort;
  if (rs.port > 0) return rs.port;
  return vs.check.service === 'none' ? undefined : resolvePort(vs.check.service);
}

function isLoopback(address: string, family: Family): boolean {
  return family === 4 ? address.startsWith('127.') : address === '::1';
}

/**
 * Map one configured server to a RealServerInit as ldirectord -> ipvsadm ->
 * kernel would install it:
 * - for address (non-fwmark) services, DR and TUN real servers take the
 *   virtual port (ipvsadm forces dest port = service port for -g/-i), and a
 *   NAT server written without a port takes the virtual port too;
 * - a loopback address is installed as a local server (the kernel's
 *   IP_VS_CONN_F_LOCALNODE for local addresses; the parser knows only
 *   loopback to be local).
 */
function toRealInit(vs: LdVirtualService, s: LdServer): RealServerInit {
  let port = s.port;
  if (vs.protocol !== 'fwm' && (s.fwd !== Fwd.NAT || port === 0)) port = vs.port;
  return {
    address: s.address,
    port,
    weight: s.weight,
    fwd: isLoopback(s.address, s.family) ? Fwd.LOCAL : s.fwd,
  };
}

/**
 * Map a parsed configuration to the service model (core/service.ts), one
 * entry per virtual service, in file order. Firewall-mark services are given
 * protocol TCP: the model requires TCP or UDP, and a mark service's entries
 * take the packet's protocol.
 */
export function toServiceInits(cfg: LdirectordConfig): Array<{ service: VirtualServiceInit; realServers: RealServerInit[] }> {
  return cfg.virtualServices.map((vs) => {
    const service: VirtualServiceInit = {
      protocol: vs.protocol === 'udp' ? Proto.UDP : Proto.TCP,
      scheduler: vs.scheduler,
    };
    if (vs.protocol === 'fwm') {
      service.fwmark = vs.fwmark;
      service.family = vs.family;
    } else {
      service.address = vs.address;
      service.port = vs.port;
    }
    if (vs.persistentS !== undefined) {
      service.persistentTimeoutS = vs.persistentS;
      if (vs.persistentPrefix !== undefined) service.persistentPrefix = vs.persistentPrefix;
    }
    if (vs.ops && vs.protocol === 'udp') service.onePacket = true;
    if (vs.fallback) service.fallback = toRealInit(vs, vs.fallback);
    return { service, realServers: vs.realServers.map((r) => toRealInit(vs, r)) };
  });
}
