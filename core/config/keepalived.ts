/**
 * keepalived.conf parser, LVS part. Owns the translation of keepalived's
 * configuration language (lexing, `include`, conditional lines, parameter
 * substitution, the `virtual_server` / `virtual_server_group` blocks and their
 * checkers) into plain data (KeepalivedConfig) and from there into the shapes
 * the rest of Saru consumes: ConfiguredService (core/health/types.ts) = the
 * service model's inits (core/service.ts) + health checks. VRRP, BFD and
 * global settings are accepted and reported as ignored, never acted on.
 * Must not resolve host names, touch the network or read anything but the
 * configuration files: parseKeepalived() reads only through the injected
 * readFile/listDir (for `include`), loadKeepalivedFile() reads the main file.
 *
 * Behaviour follows keepalived 2.x (acassen/keepalived: lib/parser.c
 * read_line/decomment/check_include/read_conf_file/replace_param/
 * check_definition, keepalived/check/check_parser.c, check_http.c,
 * check_misc.c, check_smtp.c, lib/utils.c inet_stor, and the
 * keepalived.conf(5) manual). Facts carried over:
 *
 * - Lexing: `!` and `#` start a comment anywhere outside double quotes (`\!`
 *   and `\#` outside quotes are the literal characters); words are separated
 *   by blanks; a double-quoted string is one word without its quotes; `{` and
 *   `}` outside quotes are words of their own and end the current statement
 *   (keepalived splits the line there), so `url{` and `weight 1 }` work; a
 *   block may open on the line after its keyword. A statement is one line.
 * - Conditional lines (keepalived -i): `@ID rest` keeps `rest` only when ID is
 *   the config id; `@^ID rest` only when it is not. Without an id (no
 *   opts.instance) `@ID` lines are dropped and `@^ID` lines kept, as the brief
 *   for Saru says (keepalived itself defaults the id to the host name).
 * - Parameters: `$NAME=VALUE` (only blanks before `$`) defines; `$NAME`
 *   followed by a blank, `,`, `)` or the end of line, or `${NAME}` anywhere, is
 *   replaced, recursively, at use time; an undefined name is left as it is.
 *   Multi-line definitions (a value ending in `\`, continued on the next lines)
 *   are supported when referenced at the end of a line, as keepalived requires.
 *   Predefined: `${_PWD}` (directory of the current file, as named),
 *   `${_INSTANCE}` (opts.instance; an error when none), `${_ENV NAME}`
 *   (opts.env, default process.env), `${_HASH}` (#), `${_BANG}` (!).
 *   Not supported, each a configuration error naming the construct:
 *   `${_RANDOM}` (non-deterministic), `~SEQ(...)` / `~SEQx(...)` / `~LST(...)`
 *   sequence and list blocks, and the include variants includer/includem/
 *   includew/includeb/includea.
 * - `include PATTERN` (a line of exactly two words, recognised after
 *   conditional and parameter processing, as keepalived 2.0-2.2 did): glob
 *   with `*`, `?`, `[...]` in any path component and csh braces `{a,b}`
 *   (glibc GLOB_BRACE); relative to the directory of the including file;
 *   matches in glob's sorted order; directories skipped. The included text is
 *   spliced in at that point, so a block may span files. A pattern that matches
 *   nothing, or a matched file that cannot be read, is skipped as keepalived
 *   does ("No config files matched", "open problem - skipping") and reported in
 *   `ignored`. keepalived has no include-loop detection (it recurses until it
 *   runs out of file descriptors); an include loop here is a configuration
 *   error naming the chain, and nesting is limited to MAX_INCLUDE_DEPTH.
 * - Defaults (keepalived.conf(5), check_api.c, check_http.c, check_misc.c):
 *   delay_loop 60 s; lb_kind NAT; connect_timeout 5 s; retry 1 (MISC_CHECK 0);
 *   delay_before_retry 3 s for HTTP_GET/SSL_GET, 1 s otherwise; misc_timeout
 *   the virtual server's delay_loop; persistence_timeout without a value 360 s
 *   (IPVS_SVC_PERSISTENT_TIMEOUT), also implied by persistence_granularity;
 *   real server weight 1; url status_code 200-299; SMTP helo_name
 *   "smtpchecker.keepalived.org". A value on a checker overrides the real
 *   server's, which overrides the virtual server's.
 * - virtual_server_group entries: `IP [PORT]`, `IP-LAST [PORT]` (last octet
 *   decimal for IPv4, last 16-bit group hex for IPv6, as inet_stor),
 *   `IP-IP [PORT]`, `IP/PREFIX [PORT]`, `fwmark N [inet|inet6]`.
 *
 * Where Saru is stricter than keepalived (which logs and carries on): unknown
 * keywords inside virtual_server, real_server, checkers and url blocks,
 * missing or malformed values, unbalanced braces, bad addresses, ports and
 * numbers, weights outside 0..65535, checkers Saru does not run (DNS_CHECK,
 * BFD_CHECK, FILE_CHECK), protocol SCTP, persistence_engine, and checker
 * options that would change what a check means but that the check model cannot
 * express (regex_no_match, regex offsets/options, UDP reply matching) are
 * configuration errors. Options that only tune keepalived itself (quorum,
 * hysteresis, notify scripts, smtp_alert, warmup, ...) are accepted and listed
 * in `ignored`. Top-level keywords outside keepalived's known set are errors.
 *
 * Errors are SaruError SARU_ERR_CONFIG naming file, 1-based line and what was
 * expected (configError in core/errors.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { posix as path } from 'node:path';
import { IpAddress } from '../addr.js';
import { Fwd, Proto, type Family } from '../constants.js';
import { configError, ErrorCode, SaruError } from '../errors.js';
import type {
  CheckSpec,
  ConfiguredService,
  ConnectCheck,
  HttpUrl,
  RealServerCheck,
  ServiceHealth,
} from '../health/types.js';
import { SCHEDULER_NAMES } from '../sched/index.js';
import { SvcFlag, type RealServerInit, type VirtualServiceInit } from '../service.js';

// ---- public shapes ---------------------------------------------------------------

/** Injected I/O and the config id. */
export interface KeepalivedOptions {
  /**
   * Config id (keepalived `-i` / `--config-id`) for `@ID` / `@^ID` lines and
   * `${_INSTANCE}`. Undefined: `@ID` lines are inactive, `@^ID` lines active.
   */
  instance?: string;
  /** Read a whole file as UTF-8 text (for `include`). Default node:fs readFileSync. Throws on error. */
  readFile?: (path: string) => string;
  /** Names in a directory (for glob patterns in `include`). Default node:fs readdirSync. Throws on error. */
  listDir?: (path: string) => string[];
  /** Environment for `${_ENV NAME}`. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Something accepted but not acted on, for the daemon's log ("ignored: vrrp_instance VI_1 at file:12"). */
export interface KaIgnored {
  file: string;
  /** 1-based. */
  line: number;
  /** The keyword and its arguments, with the enclosing block for nested ones. */
  what: string;
}

/** One virtual service endpoint of a virtual_server (a group expands to several). */
export type KaEndpoint =
  | { kind: 'address'; address: string; family: Family; port: number; file: string; line: number }
  | { kind: 'fwmark'; fwmark: number; family: Family; file: string; line: number };

/** One entry of a virtual_server_group after range expansion. */
export type KaGroupEntry =
  | { kind: 'address'; address: string; family: Family; port: number; file: string; line: number }
  | { kind: 'fwmark'; fwmark: number; family?: Family; file: string; line: number };

/** A `virtual_server_group NAME { ... }` block. */
export interface KaVirtualServerGroup {
  name: string;
  file: string;
  line: number;
  entries: KaGroupEntry[];
}

/** A real or sorry server. */
export interface KaServer {
  /** Canonical address text. */
  address: string;
  family: Family;
  /** As written; 0 when omitted. */
  port: number;
  /** Forwarding method (its own lvs_method, else the virtual server's lb_kind). */
  fwd: Fwd;
  file: string;
  line: number;
}

/** A `real_server` block with its checkers resolved to the check model. */
export interface KaRealServer extends KaServer {
  /** 0..65535, default 1. */
  weight: number;
  /** Its own inhibit_on_failure, else the virtual server's. */
  inhibitOnFailure: boolean;
  /** uthreshold / lthreshold. */
  upperThreshold?: number;
  lowerThreshold?: number;
  /** One entry per checker (an SMTP_CHECK with host blocks gives one per host). */
  checks: RealServerCheck[];
}

/** A `virtual_server` block, defaults applied. */
export interface KaVirtualServer {
  file: string;
  line: number;
  /** How it was written: `virtual_server IP [PORT]`, `... fwmark N`, `... group NAME`. */
  form: 'address' | 'fwmark' | 'group';
  /** For form 'group'. */
  group?: string;
  /** The services it stands for, in order (one unless a group). */
  endpoints: KaEndpoint[];
  /** Address family of its real servers (or of its first endpoint when it has none). */
  family: Family;
  protocol: 'tcp' | 'udp';
  /** lb_algo / lvs_sched; default wlc (keepalived's IPVS_DEF_SCHED). */
  scheduler: string;
  /** SvcFlag.SCHED1/2/3 (flag-N, sh-/mh-fallback, sh-/mh-port). */
  schedFlags: number;
  /** `ops`. */
  onePacket: boolean;
  /** lb_kind / lvs_method, default NAT. */
  fwd: Fwd;
  /** Seconds; undefined = not persistent. */
  persistenceTimeoutS?: number;
  /** persistence_granularity as a prefix length. */
  persistencePrefix?: number;
  /** ms. */
  delayLoopMs: number;
  /** `alpha`: real servers start down. */
  alpha: boolean;
  /** The virtual server's inhibit_on_failure (the real servers' default). */
  inhibitOnFailure: boolean;
  virtualHost?: string;
  sorryServer?: KaServer;
  sorryServerInhibit: boolean;
  realServers: KaRealServer[];
}

export interface KeepalivedConfig {
  /** The main file, as named. */
  file: string;
  /** Every file read, main file first, in reading order. */
  files: string[];
  groups: KaVirtualServerGroup[];
  virtualServers: KaVirtualServer[];
  /** Blocks and keywords accepted but not acted on, and includes that matched nothing. */
  ignored: KaIgnored[];
}

// ---- constants ---------------------------------------------------------------

/** keepalived's defaults, in seconds unless said otherwise. */
export const KA_DEFAULT_DELAY_LOOP_S = 60;
export const KA_DEFAULT_CONNECT_TIMEOUT_S = 5;
export const KA_DEFAULT_RETRY = 1;
export const KA_DEFAULT_MISC_RETRY = 0;
export const KA_DEFAULT_DELAY_BEFORE_RETRY_S = 1;
export const KA_DEFAULT_HTTP_DELAY_BEFORE_RETRY_S = 3;
/** IPVS_SVC_PERSISTENT_TIMEOUT: persistence_timeout without a value. */
export const KA_DEFAULT_PERSISTENCE_TIMEOUT_S = 360;
/** SMTP_DEFAULT_HELO (check_smtp.h). */
export const KA_SMTP_DEFAULT_HELO = 'smtpchecker.keepalived.org';

/** Deepest include nesting accepted. */
export const MAX_INCLUDE_DEPTH = 32;
/** Deepest { } nesting accepted. */
const MAX_BLOCK_DEPTH = 64;
/** Most addresses one virtual_server_group entry may expand to. */
const MAX_GROUP_RANGE = 65536;
/** Guard against parameter definitions that never stop expanding. */
const MAX_SUBSTITUTIONS_PER_LINE = 10000;
const MAX_EXPANSION_DEPTH = 64;
/** Largest timer value accepted (keepalived's TIMER_MAXIMUM is about 2^63 us; a day is plenty). */
const MAX_TIMER_S = 86400 * 365;
const MAX_U32 = 0xffffffff;
const HTTP_STATUS_MIN = 100;
const HTTP_STATUS_MAX = 599;

/** Top-level keywords of keepalived other than the LVS ones: accepted and ignored. */
const TOP_IGNORED = new Set([
  'global_defs', 'linkbeat_interfaces', 'interface_up_down_delays', 'track_group', 'static_track_group',
  'static_ipaddress', 'static_routes', 'static_rules', 'track_file', 'vrrp_track_file', 'vrrp_track_process',
  'bfd_instance', 'vrrp_script', 'vrrp_sync_group', 'garp_group', 'vrrp_instance', 'SSL', 'net_namespace',
  'net_namespace_ipvs', 'namespace_with_ipsets', 'instance', 'use_pid_dir', 'linkbeat_use_polling',
  'child_wait_time',
]);

const CHECKERS = ['HTTP_GET', 'SSL_GET', 'TCP_CHECK', 'SMTP_CHECK', 'UDP_CHECK', 'PING_CHECK', 'MISC_CHECK'] as const;
type CheckerType = (typeof CHECKERS)[number];
const UNSUPPORTED_CHECKERS = new Set(['DNS_CHECK', 'BFD_CHECK', 'FILE_CHECK']);

const VS_KEYWORDS = [
  'delay_loop', 'lb_algo', 'lvs_sched', 'lb_kind', 'lvs_method', 'persistence_timeout', 'persistence_granularity',
  'protocol', 'sorry_server', 'sorry_server_inhibit', 'sorry_server_lvs_method', 'inhibit_on_failure', 'alpha',
  'virtualhost', 'retry', 'delay_before_retry', 'connect_timeout', 'warmup', 'ops', 'flag-1', 'flag-2', 'flag-3',
  'sh-port', 'sh-fallback', 'mh-port', 'mh-fallback', 'ip_family', 'omega', 'quorum', 'hysteresis', 'quorum_up',
  'quorum_down', 'ha_suspend', 'hashed', 'smtp_alert', 'snmp_name', 'weight', 'real_server',
];
/** Accepted inside virtual_server and listed in `ignored`. */
const VS_IGNORED = new Set([
  'omega', 'quorum', 'hysteresis', 'quorum_up', 'quorum_down', 'ha_suspend', 'hashed', 'smtp_alert', 'snmp_name',
  'weight', 'warmup', 'sorry_server_inhibit',
]);
const RS_KEYWORDS = [
  'weight', 'lvs_method', 'lb_kind', 'uthreshold', 'lthreshold', 'inhibit_on_failure', 'alpha', 'retry',
  'delay_before_retry', 'connect_timeout', 'delay_loop', 'virtualhost', 'notify_up', 'notify_down', 'warmup',
  'smtp_alert', 'snmp_name', ...CHECKERS,
];
const RS_IGNORED = new Set(['notify_up', 'notify_down', 'warmup', 'smtp_alert', 'snmp_name']);
const CONN_KEYWORDS = ['connect_ip', 'connect_port', 'bindto', 'bind_if', 'bind_port', 'connect_timeout', 'fwmark'];
const COMMON_KEYWORDS = ['retry', 'delay_before_retry', 'delay_loop', 'alpha', 'warmup', 'log_all_failures'];
const CHECKER_IGNORED = new Set(['bind_if', 'bind_port', 'fwmark', 'warmup', 'log_all_failures']);
const HTTP_KEYWORDS = [
  ...CONN_KEYWORDS, ...COMMON_KEYWORDS, 'nb_get_retry', 'virtualhost', 'http_protocol', 'enable_sni', 'sni_name',
  'sni_server_name', 'fast_recovery', 'tls_compliant', 'url',
];
const URL_KEYWORDS = [
  'path', 'digest', 'status_code', 'virtualhost', 'regex', 'regex_no_match', 'regex_options', 'regex_stack',
  'regex_min_offset', 'regex_max_offset', 'tls_compliant',
];
const SMTP_KEYWORDS = [...CONN_KEYWORDS, ...COMMON_KEYWORDS, 'helo_name', 'host'];
const UDP_KEYWORDS = [...CONN_KEYWORDS, ...COMMON_KEYWORDS, 'payload', 'require_reply', 'min_reply_length', 'max_reply_length'];
const MISC_KEYWORDS = [...COMMON_KEYWORDS, 'connect_timeout', 'misc_path', 'misc_timeout', 'misc_dynamic', 'user'];
const PLAIN_KEYWORDS = [...CONN_KEYWORDS, ...COMMON_KEYWORDS];

// ---- lexing and preprocessing ----------------------------------------------------

interface Loc {
  file: string;
  line: number;
}

interface Tok extends Loc {
  kind: 'word' | 'open' | 'close' | 'eol';
  text: string;
  quoted: boolean;
}

/** A parameter definition: one line, or several (multi-line definition). */
interface Def {
  lines: string[];
  multiline: boolean;
}

interface Io {
  readFile: (path: string) => string;
  listDir: (path: string) => string[];
}

/**
 * keepalived's decomment(): strip leading blanks, the comment, trailing
 * blanks; `cont` when the line ends in an unescaped `\` (a multi-line
 * definition continues), which is removed from `text`.
 */
function decomment(raw: string, at: Loc): { text: string; cont: boolean } {
  let out = '';
  let quote = false;
  let cont = false;
  let i = 0;
  while (i < raw.length && (raw[i] === ' ' || raw[i] === '\t')) i++;
  for (; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '"') {
      quote = !quote;
      out += c;
      continue;
    }
    if (c === '\\') {
      if (i + 1 < raw.length) {
        const n = raw[i + 1]!;
        out += !quote && (n === '#' || n === '!') ? n : c + n;
        i++;
        continue;
      }
      cont = true;
      break;
    }
    if (!quote && (c === '!' || c === '#')) break;
    out += c;
  }
  if (quote) throw configError(at.file, at.line, 'unterminated quote: a " without its closing "');
  return { text: out.replace(/[ \t\r\f\v]+$/, ''), cont };
}

function isBlank(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\f' || c === '\v' || c === '\r' || c === '\n';
}

/** Split one logical line into words and braces (keepalived's alloc_strvec plus its brace splitting). */
function tokenize(s: string, at: Loc): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (isBlank(c)) {
      i++;
    } else if (c === '{' || c === '}') {
      out.push({ kind: c === '{' ? 'open' : 'close', text: c, quoted: false, file: at.file, line: at.line });
      i++;
    } else if (c === '"') {
      const j = s.indexOf('"', i + 1);
      if (j < 0) throw configError(at.file, at.line, 'unterminated quote: a " without its closing "');
      out.push({ kind: 'word', text: s.slice(i + 1, j), quoted: true, file: at.file, line: at.line });
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && !isBlank(s[j]!) && s[j] !== '{' && s[j] !== '}' && s[j] !== '"') j++;
      out.push({ kind: 'word', text: s.slice(i, j), quoted: false, file: at.file, line: at.line });
      i = j;
    }
  }
  return out;
}

/** Words of a line with braces not special (keepalived's alloc_strvec as check_include() uses it). */
function splitWords(s: string, at: Loc): string[] {
  const out: string[] = [];
  for (const t of tokenize(s.replace(/[{}]/g, (c) => (c === '{' ? '\u0001' : '\u0002')), at)) {
    out.push(t.text.replace(/[\u0001\u0002]/g, (c) => (c === '\u0001' ? '{' : '}')));
  }
  return out;
}

function hasMagic(s: string): boolean {
  return /[*?[]/.test(s);
}

/** csh brace expansion as glibc's GLOB_BRACE: "a{b,c{d,e}}f" -> abf, acdf, acef. */
function braceExpand(s: string, budget = { n: 0 }): string[] {
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '{') continue;
    let depth = 0;
    const commas: number[] = [];
    let close = -1;
    for (let j = i; j < s.length; j++) {
      if (s[j] === '{') depth++;
      else if (s[j] === '}') {
        depth--;
        if (depth === 0) {
          close = j;
          break;
        }
      } else if (s[j] === ',' && depth === 1) commas.push(j);
    }
    if (close < 0) return [s];
    if (commas.length === 0) continue;
    const pre = s.slice(0, i);
    const post = s.slice(close + 1);
    const cuts = [i, ...commas, close];
    const out: string[] = [];
    for (let k = 0; k + 1 < cuts.length; k++) {
      for (const e of braceExpand(pre + s.slice(cuts[k]! + 1, cuts[k + 1]) + post, budget)) {
        if (++budget.n > 1000) return out;
        out.push(e);
      }
    }
    return out;
  }
  return [s];
}

/** One glob path component as an anchored RegExp (`*`, `?`, `[...]`, `[!...]`, `\x`). */
function componentRegExp(p: string): RegExp {
  let re = '^';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '\\' && i + 1 < p.length) re += escapeRe(p[++i]!);
    else if (c === '[') {
      let j = i + 1;
      if (p[j] === '!' || p[j] === '^') j++;
      if (p[j] === ']') j++;
      while (j < p.length && p[j] !== ']') j++;
      if (j >= p.length) {
        re += '\\[';
        continue;
      }
      let body = p.slice(i + 1, j);
      const neg = body.startsWith('!') || body.startsWith('^');
      if (neg) body = body.slice(1);
      re += `[${neg ? '^' : ''}${body.replace(/[\\\]^]/g, (m) => `\\${m}`)}]`;
      i = j;
    } else re += escapeRe(c);
  }
  try {
    return new RegExp(`${re}$`, 's');
  } catch {
    // A class glob accepts but RegExp does not (e.g. "[z-a]"): glob matches nothing with it either.
    return /(?!)/;
  }
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/-]/.test(c) ? `\\${c}` : c;
}

/** The Node.js error code (ENOENT, EISDIR, ...) of a thrown value, if any. */
function errCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Reads the main file and its includes, applies conditional lines and
 * parameter substitution, and produces the token stream (words, braces, end
 * of line) with each token's file and line.
 */
class Preprocessor {
  readonly tokens: Tok[] = [];
  readonly files: string[] = [];
  private readonly defs = new Map<string, Def>();
  private readonly stack: string[] = [];

  constructor(
    private readonly io: Io,
    private readonly instance: string | undefined,
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly ignored: KaIgnored[],
  ) {}

  file(text: string, file: string, from?: Loc): void {
    const key = path.normalize(file);
    const seen = this.stack.indexOf(key);
    if (seen >= 0 && from) {
      throw configError(from.file, from.line, `include loop: ${[...this.stack.slice(seen), key].join(' includes ')}`);
    }
    if (this.stack.length >= MAX_INCLUDE_DEPTH && from) {
      throw configError(from.file, from.line, `includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
    }
    this.stack.push(key);
    this.files.push(file);
    const lines = text.split(/\r\n|\n|\r/);
    let acc: Def | null = null;
    for (let i = 0; i < lines.length; i++) {
      const at = { file, line: i + 1 };
      const d = decomment(lines[i]!, at);
      if (acc) {
        // A multi-line definition collects decommented lines up to the first not ending in "\".
        if (d.text !== '') acc.lines.push(d.text);
        if (!d.cont) {
          if (acc.lines.length === 0) {
            acc.multiline = false;
            acc.lines.push('');
          }
          acc = null;
        }
        continue;
      }
      if (d.text === '' && !d.cont) continue;
      acc = this.logical(d.cont ? `${d.text}\\` : d.text, at, 0);
    }
    if (acc && acc.lines.length === 0) {
      acc.multiline = false;
      acc.lines.push('');
    }
    this.stack.pop();
  }

  /**
   * One logical line: conditional, definition, substitution (rechecked as
   * keepalived's read_line), then include or tokens. Returns the definition
   * when the line starts a multi-line one.
   */
  private logical(text: string, at: Loc, depth: number): Def | null {
    if (depth > MAX_EXPANSION_DEPTH) {
      throw configError(at.file, at.line, `multi-line parameter expansions nested more than ${MAX_EXPANSION_DEPTH} deep`);
    }
    let s = text;
    let pending: string[] = [];
    for (let round = 0; ; round++) {
      if (round > 100) throw configError(at.file, at.line, 'parameter substitution does not settle (a definition refers to itself?)');
      if (s.startsWith('@')) {
        const neg = s[1] === '^';
        const off = neg ? 2 : 1;
        const m = /[ \t]/.exec(s.slice(off));
        if (!m) return null;
        const id = s.slice(off, off + m.index);
        const match = this.instance !== undefined && id === this.instance;
        if (match === neg) return null;
        s = s.slice(off + m.index).replace(/^[ \t]+/, '');
        if (s === '') return null;
      }
      const dm = /^\$([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$/s.exec(s);
      if (dm) {
        let value = dm[2]!;
        if (value.endsWith('\\')) {
          value = value.slice(0, -1).replace(/[ \t]+$/, '');
          const def: Def = { lines: value === '' ? [] : [value], multiline: true };
          this.defs.set(dm[1]!, def);
          return def;
        }
        this.defs.set(dm[1]!, { lines: [value], multiline: false });
        return null;
      }
      if (/^~(SEQx?|LST)\b/.test(s)) {
        throw configError(at.file, at.line, `${/^~\w+/.exec(s)![0]}(...) sequence/list blocks are not supported; write the lines out`);
      }
      if (!s.includes('$')) break;
      const sub = this.substitute(s, at);
      if (!sub.changed) break;
      s = sub.text;
      pending = [...sub.pending, ...pending];
      if (!(s.startsWith('@') || s.includes('$') || s.startsWith('~'))) break;
    }
    this.emit(s, at);
    for (const p of pending) this.logical(p, at, depth + 1);
    return null;
  }

  /** keepalived's replace_param(): expand `$NAME` / `${NAME}` references, rescanning what was inserted. */
  private substitute(line: string, at: Loc): { text: string; changed: boolean; pending: string[] } {
    let s = line;
    let pos = 0;
    let count = 0;
    let pending: string[] = [];
    for (;;) {
      const i = s.indexOf('$', pos);
      if (i < 0 || i + 1 >= s.length) break;
      const ref = this.reference(s, i, at);
      if (!ref) {
        pos = i + 1;
        continue;
      }
      if (++count > MAX_SUBSTITUTIONS_PER_LINE) {
        throw configError(at.file, at.line, 'parameter substitution does not terminate (a definition refers to itself?)');
      }
      if (ref.def.multiline) {
        if (ref.end !== s.length) {
          throw configError(at.file, at.line, `multi-line definition ${s.slice(i, ref.end)} must be the last thing on its line`);
        }
        s = s.slice(0, i) + (ref.def.lines[0] ?? '');
        pending = [...ref.def.lines.slice(1), ...pending];
      } else {
        s = s.slice(0, i) + (ref.def.lines[0] ?? '') + s.slice(ref.end);
      }
      pos = i;
    }
    return { text: s, changed: count > 0, pending };
  }

  /** The definition referenced at s[i] ('$'), or null when it is not a reference to a known name. */
  private reference(s: string, i: number, at: Loc): { def: Def; end: number } | null {
    const braces = s[i + 1] === '{';
    const start = i + (braces ? 2 : 1);
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(start));
    if (!m) return null;
    const name = m[0];
    let end = start + name.length;
    let param: string | undefined;
    if (braces) {
      const close = s.indexOf('}', end);
      if (close < 0) return null;
      const rest = s.slice(end, close);
      if (rest !== '') {
        if (!/^[ \t]/.test(rest)) return null;
        param = rest.trim();
      }
      end = close + 1;
    } else if (end < s.length && !/[ \t,)]/.test(s[end]!)) {
      return null;
    }
    const user = this.defs.get(name);
    if (user) return param === undefined ? { def: user, end } : null;
    const value = this.predefined(name, param, s.slice(i, end), at);
    return value === undefined ? null : { def: { lines: [value], multiline: false }, end };
  }

  private predefined(name: string, param: string | undefined, ref: string, at: Loc): string | undefined {
    switch (name) {
      case '_PWD':
        return param === undefined ? path.dirname(at.file) : undefined;
      case '_INSTANCE':
        if (param !== undefined) return undefined;
        if (this.instance === undefined) {
          throw configError(at.file, at.line, `${ref} needs a config id (keepalived -i; opts.instance), and none was given`);
        }
        return this.instance;
      case '_HASH':
        return param === undefined ? '#' : undefined;
      case '_BANG':
        return param === undefined ? '!' : undefined;
      case '_ENV':
        if (param === undefined || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(param)) {
          throw configError(at.file, at.line, `${ref}: expected \${_ENV NAME}`);
        }
        return this.env[param] ?? '';
      case '_RANDOM':
        throw configError(at.file, at.line, `${ref} is not supported (its value would differ on every load); use a fixed value`);
      default:
        return undefined;
    }
  }

  private emit(s: string, at: Loc): void {
    // check_include() looks at the whole line before braces are split off, so "{a,b}" stays in the pattern.
    const m = /^(include[rmwba]?)(?:[ \t]|$)/.exec(s);
    if (m) {
      if (m[1] !== 'include') {
        throw configError(at.file, at.line, `"${m[1]}" is not supported; use "include" (a pattern matching nothing is skipped)`);
      }
      const words = splitWords(s, at);
      if (words.length !== 2) {
        throw configError(at.file, at.line, 'expected "include FILE-OR-PATTERN" (exactly one file name or glob pattern)');
      }
      this.include(words[1]!, at);
      return;
    }
    const toks = tokenize(s, at);
    if (toks.length === 0) return;
    for (const t of toks) this.tokens.push(t);
    this.tokens.push({ kind: 'eol', text: '', quoted: false, file: at.file, line: at.line });
  }

  private include(pattern: string, at: Loc): void {
    let read = 0;
    for (const p of this.glob(pattern, path.dirname(at.file))) {
      let text: string;
      try {
        text = this.io.readFile(p);
        if (typeof text !== 'string') throw new Error('readFile did not return text');
      } catch (e) {
        const code = errCode(e);
        if (code === 'EISDIR' || code === 'ENOENT' || code === 'ENOTDIR') continue;
        this.ignored.push({ file: at.file, line: at.line, what: `include ${pattern}: ${p} could not be read (${errText(e)}); skipped` });
        continue;
      }
      read++;
      this.file(text, p, at);
    }
    if (read === 0) this.ignored.push({ file: at.file, line: at.line, what: `include ${pattern} (no file matched)` });
  }

  /** glob(3) with GLOB_BRACE over the injected listDir; sorted per component. */
  private glob(pattern: string, base: string): string[] {
    const out: string[] = [];
    for (const alt of braceExpand(pattern)) {
      if (alt === '') continue;
      const full = alt.startsWith('/') ? path.normalize(alt) : path.join(base, alt);
      if (!hasMagic(full)) {
        out.push(full);
        continue;
      }
      const abs = full.startsWith('/');
      let cur = [abs ? '/' : ''];
      for (const part of full.split('/').filter((p) => p !== '')) {
        const next: string[] = [];
        if (!hasMagic(part)) {
          for (const c of cur) next.push(c === '' ? part : path.join(c, part));
        } else {
          const re = componentRegExp(part);
          for (const c of cur) {
            let names: unknown;
            try {
              names = this.io.listDir(c === '' ? '.' : c);
            } catch {
              continue;
            }
            if (!Array.isArray(names)) continue;
            const sorted = names.filter((n): n is string => typeof n === 'string').sort();
            for (const n of sorted) {
              if (n === '.' || n === '..') continue;
              if (n.startsWith('.') && !part.startsWith('.')) continue;
              if (re.test(n)) next.push(c === '' ? n : path.join(c, n));
            }
          }
        }
        cur = next;
        if (cur.length === 0) break;
      }
      out.push(...cur);
    }
    return out;
  }
}

// ---- statement tree ----------------------------------------------------------------

interface Word extends Loc {
  text: string;
  quoted: boolean;
}

/** One statement: keyword, arguments on its line, and its { } block if any. */
interface Stmt extends Loc {
  key: string;
  args: Word[];
  block: Stmt[] | null;
}

/** Group the token stream into statements and blocks; braces must balance. */
function buildTree(tokens: readonly Tok[], mainFile: string): Stmt[] {
  const root: Stmt[] = [];
  const stack: { list: Stmt[]; owner: Stmt | null }[] = [{ list: root, owner: null }];
  let cur: Word[] = [];
  let pending: Stmt | null = null;
  const finish = (): Stmt | null => {
    if (cur.length === 0) return null;
    const [k, ...args] = cur;
    const st: Stmt = { key: k!.text, args, block: null, file: k!.file, line: k!.line };
    stack[stack.length - 1]!.list.push(st);
    cur = [];
    return st;
  };
  for (const t of tokens) {
    switch (t.kind) {
      case 'word':
        if (cur.length === 0) pending = null;
        cur.push({ text: t.text, quoted: t.quoted, file: t.file, line: t.line });
        break;
      case 'eol': {
        const st = finish();
        if (st) pending = st;
        break;
      }
      case 'open': {
        const owner = finish() ?? pending;
        pending = null;
        if (!owner || owner.block) throw configError(t.file, t.line, 'unexpected "{": a block must follow a keyword');
        if (stack.length > MAX_BLOCK_DEPTH) throw configError(t.file, t.line, `blocks nested more than ${MAX_BLOCK_DEPTH} deep`);
        owner.block = [];
        stack.push({ list: owner.block, owner });
        break;
      }
      case 'close': {
        finish();
        pending = null;
        if (stack.length === 1) throw configError(t.file, t.line, 'unexpected "}": no block is open');
        stack.pop();
        break;
      }
    }
  }
  finish();
  if (stack.length > 1) {
    const open = stack[stack.length - 1]!.owner!;
    const last = tokens[tokens.length - 1];
    throw configError(
      last?.file ?? mainFile,
      last?.line ?? 1,
      `missing "}": the block of "${open.key}" opened at ${open.file}:${open.line} is not closed`,
    );
  }
  return root;
}

// ---- semantic parsing --------------------------------------------------------------

interface ConnOpts {
  address?: string;
  port?: number;
  bindTo?: string;
  timeoutMs?: number;
}

/** A checker as written, before defaults. */
interface RawCheck extends Loc {
  type: CheckerType;
  conn: ConnOpts;
  retry?: number;
  delayBeforeRetryMs?: number;
  delayLoopMs?: number;
  alpha?: boolean;
  // HTTP_GET / SSL_GET
  urls: HttpUrl[];
  virtualHost?: string;
  enableSni?: boolean;
  sniName?: string;
  // SMTP_CHECK
  helo?: string;
  hosts: (ConnOpts & Loc)[];
  // UDP_CHECK
  payload?: Uint8Array;
  requireReply?: boolean;
  // MISC_CHECK
  misc?: { command: string; args: string[] };
  miscTimeoutMs?: number;
  miscDynamic: boolean;
  user?: string;
}

interface RawReal extends Loc {
  addr: IpAddress;
  port: number;
  weight: number;
  fwd?: Fwd;
  inhibit?: boolean;
  alpha?: boolean;
  upper?: number;
  lower?: number;
  retry?: number;
  delayBeforeRetryMs?: number;
  delayLoopMs?: number;
  connectTimeoutMs?: number;
  virtualHost?: string;
  checks: RawCheck[];
}

interface RawVirtual extends Loc {
  form: 'address' | 'fwmark' | 'group';
  addr?: IpAddress;
  port?: number;
  fwmark?: number;
  group?: Word;
  desc: string;
  protocol: 'tcp' | 'udp';
  /** The `protocol` statement, if any. */
  protocolStmt?: Stmt;
  scheduler: string;
  schedFlags: number;
  onePacket: boolean;
  fwd: Fwd;
  persistenceS?: number;
  granularity?: { prefix: number; family: Family; word: Word };
  ipFamily?: Family;
  delayLoopMs?: number;
  retry?: number;
  delayBeforeRetryMs?: number;
  connectTimeoutMs?: number;
  alpha: boolean;
  inhibit: boolean;
  virtualHost?: string;
  sorry?: { addr: IpAddress; port: number; at: Loc };
  sorryFwd?: Fwd;
  sorryInhibit: boolean;
  reals: RawReal[];
}

function describe(st: Stmt): string {
  const s = [st.key, ...st.args.map((a) => (a.quoted ? `"${a.text}"` : a.text))].join(' ');
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}

function isLoopback(a: IpAddress): boolean {
  return a.family === 4 ? a.text.startsWith('127.') : a.text === '::1';
}

function addrToBig(a: IpAddress): bigint {
  if (a.family === 4) return BigInt(a.words[3]!);
  let v = 0n;
  for (let i = 0; i < 4; i++) v = (v << 32n) | BigInt(a.words[i]!);
  return v;
}

function bigToAddr(v: bigint, family: Family): IpAddress {
  const w = new Uint32Array(4);
  if (family === 4) w[3] = Number(v & 0xffffffffn);
  else for (let i = 3; i >= 0; i--, v >>= 32n) w[i] = Number(v & 0xffffffffn);
  return IpAddress.fromWords(family, w);
}

/**
 * Split a command line as keepalived's alloc_strvec_quoted_escaped(): blanks
 * separate words; '...' and "..." group (the quotes are removed); backslash
 * escapes \a \b \E \f \n \r \t \v \NNN (octal) \xHH \cC and \C (C itself).
 * Returns null on an unterminated quote.
 */
export function splitCommandLine(s: string): string[] | null {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      inWord = true;
      if (i + 1 >= s.length) return null;
      const n = s[++i]!;
      if (n === 'x' && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) {
        let h = '';
        while (h.length < 2 && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) h += s[++i];
        cur += String.fromCharCode(parseInt(h, 16));
      } else if (n === 'c' && i + 1 < s.length) {
        cur += String.fromCharCode(s.charCodeAt(++i) & 0x1f);
      } else if (n >= '0' && n <= '7') {
        let o = n;
        while (o.length < 3 && /[0-7]/.test(s[i + 1] ?? '')) o += s[++i];
        cur += String.fromCharCode(parseInt(o, 8) & 0xff);
      } else {
        const map: Record<string, string> = { a: '\x07', b: '\b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
        cur += map[n] ?? n;
      }
      continue;
    }
    if (q) {
      if (c === q) q = null;
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      q = c;
      inWord = true;
      continue;
    }
    if (isBlank(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (q) return null;
  if (inWord) out.push(cur);
  return out;
}

class Parser {
  readonly ignored: KaIgnored[];
  private readonly groups = new Map<string, KaVirtualServerGroup>();
  private readonly raws: RawVirtual[] = [];

  constructor(ignored: KaIgnored[]) {
    this.ignored = ignored;
  }

  // ---- helpers ---------------------------------------------------------------------

  err(at: Loc, msg: string): never {
    throw configError(at.file, at.line, msg);
  }

  ignore(st: Stmt, within?: string): void {
    this.ignored.push({ file: st.file, line: st.line, what: within ? `${describe(st)} in ${within}` : describe(st) });
  }

  noBlock(st: Stmt): void {
    if (st.block) this.err(st, `"${st.key}" does not take a { } block`);
  }

  needBlock(st: Stmt): Stmt[] {
    if (!st.block) this.err(st, `"${st.key}" needs a { ... } block`);
    return st.block;
  }

  /** Check the argument count; `usage` is the expected form. */
  args(st: Stmt, min: number, max: number, usage: string): Word[] {
    this.noBlockUnless(st, usage);
    if (st.args.length < min) this.err(st, `${st.key}: missing value; expected "${usage}"`);
    if (st.args.length > max) this.err(st.args[max]!, `${st.key}: unexpected "${st.args[max]!.text}"; expected "${usage}"`);
    return st.args;
  }

  private noBlockUnless(st: Stmt, usage: string): void {
    if (st.block && !usage.includes('{')) this.err(st, `"${st.key}" does not take a { } block; expected "${usage}"`);
  }

  unknown(st: Stmt, where: string, expected: readonly string[]): never {
    if (UNSUPPORTED_CHECKERS.has(st.key)) this.err(st, `${st.key} is not supported (Saru runs ${CHECKERS.join(', ')})`);
    this.err(st, `unknown keyword "${st.key}" in ${where}; expected one of: ${expected.join(', ')}`);
  }

  uint(w: Word, what: string, min: number, max: number): number {
    if (!/^\d+$/.test(w.text)) this.err(w, `${what}: expected an integer ${min}..${max}, got "${w.text}"`);
    const n = Number(w.text);
    if (n < min || n > max) this.err(w, `${what}: ${w.text} is out of range ${min}..${max}`);
    return n;
  }

  /** A keepalived <TIMER>: seconds with an optional fraction, returned in ms (at least 1 when non-zero). */
  timerMs(w: Word, what: string, allowZero: boolean): number {
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(w.text)) this.err(w, `${what}: expected seconds (e.g. 3 or 2.5), got "${w.text}"`);
    const s = Number(w.text);
    if (s > MAX_TIMER_S) this.err(w, `${what}: ${w.text} seconds is too long (at most ${MAX_TIMER_S})`);
    if (s === 0 && !allowZero) this.err(w, `${what}: must be greater than 0 seconds`);
    const ms = Math.round(s * 1000);
    return s > 0 && ms === 0 ? 1 : ms;
  }

  /** keepalived <BOOL>; a missing value is true. */
  optBool(st: Stmt): boolean {
    const a = this.args(st, 0, 1, `${st.key} [on|off|true|false|yes|no]`);
    if (a.length === 0) return true;
    const v = a[0]!.text;
    if (v === 'on' || v === 'true' || v === 'yes') return true;
    if (v === 'off' || v === 'false' || v === 'no') return false;
    this.err(a[0]!, `${st.key}: expected on|off|true|false|yes|no, got "${v}"`);
  }

  addr(w: Word, what: string): IpAddress {
    let a: IpAddress | undefined;
    if (!w.text.startsWith('[')) {
      try {
        a = IpAddress.parse(w.text);
      } catch {
        a = undefined;
      }
    }
    if (a) return a;
    if (/^[A-Za-z0-9.-]+$/.test(w.text) && /[A-Za-z]/.test(w.text)) {
      this.err(w, `${what}: "${w.text}" is a host name; keepalived and Saru need a numeric address`);
    }
    this.err(w, `${what}: expected an IPv4 or IPv6 address, got "${w.text}"`);
  }

  port(w: Word, what: string, min = 0): number {
    return this.uint(w, `${what} port`, min, 65535);
  }

  /** lb_kind / lvs_method: NAT | DR | TUN [type ipip], case-insensitive. */
  fwd(st: Stmt): Fwd {
    const a = this.args(st, 1, 3, `${st.key} NAT|DR|TUN`);
    const v = a[0]!.text.toUpperCase();
    const f = v === 'NAT' ? Fwd.NAT : v === 'DR' ? Fwd.DR : v === 'TUN' ? Fwd.TUN : undefined;
    if (f === undefined) this.err(a[0]!, `${st.key}: expected NAT, DR or TUN, got "${a[0]!.text}"`);
    if (a.length > 1) {
      const rest = a.slice(1).map((w) => w.text).join(' ');
      if (f !== Fwd.TUN) this.err(a[1]!, `${st.key}: unexpected "${a[1]!.text}"; expected "${st.key} NAT|DR|TUN"`);
      if (rest !== 'type ipip') this.err(a[1]!, `${st.key} TUN ${rest}: tunnel types other than ipip are not supported`);
    }
    return f;
  }

  // ---- top level -------------------------------------------------------------------

  parse(tree: Stmt[]): void {
    for (const st of tree) {
      if (st.key === 'virtual_server') this.virtualServer(st);
      else if (st.key === 'virtual_server_group') this.group(st);
      else if (TOP_IGNORED.has(st.key)) this.ignore(st);
      else if (CHECKERS.includes(st.key as CheckerType) || VS_KEYWORDS.includes(st.key)) {
        this.err(st, `"${st.key}" belongs inside a virtual_server block`);
      } else if (UNSUPPORTED_CHECKERS.has(st.key)) {
        this.err(st, `${st.key} is not supported (Saru runs ${CHECKERS.join(', ')})`);
      } else {
        this.err(
          st,
          `unknown top-level keyword "${st.key}"; expected virtual_server, virtual_server_group or one of keepalived's ` +
            `global/VRRP/BFD blocks (${[...TOP_IGNORED].join(', ')})`,
        );
      }
    }
  }

  finish(): { groups: KaVirtualServerGroup[]; virtualServers: KaVirtualServer[] } {
    const out: KaVirtualServer[] = [];
    const seen = new Map<string, Loc>();
    for (const raw of this.raws) {
      const vs = this.finishVirtual(raw);
      for (const ep of vs.endpoints) {
        const key = ep.kind === 'fwmark' ? `fwmark ${ep.fwmark} IPv${ep.family}` : `${vs.protocol} ${ep.address} ${ep.port}`;
        const prev = seen.get(key);
        if (prev) {
          this.err(ep, `duplicate virtual service ${vs.protocol.toUpperCase()} ${ep.kind === 'fwmark' ? `fwmark ${ep.fwmark}` : `${ep.address} ${ep.port}`} (first defined at ${prev.file}:${prev.line})`);
        }
        seen.set(key, { file: ep.file, line: ep.line });
      }
      out.push(vs);
    }
    return { groups: [...this.groups.values()], virtualServers: out };
  }

  // ---- virtual_server_group ----------------------------------------------------------

  group(st: Stmt): void {
    const a = this.args(st, 1, 1, 'virtual_server_group NAME { ... }');
    const block = this.needBlock(st);
    const name = a[0]!.text;
    const prev = this.groups.get(name);
    if (prev) this.err(st, `duplicate virtual_server_group "${name}" (first defined at ${prev.file}:${prev.line})`);
    const g: KaVirtualServerGroup = { name, file: st.file, line: st.line, entries: [] };
    for (const e of block) {
      if (e.block) this.err(e, `a virtual_server_group entry does not take a { } block`);
      if (e.key === 'fwmark') {
        const ea = this.args(e, 1, 2, 'fwmark NUMBER [inet|inet6]');
        const fwmark = this.uint(ea[0]!, 'fwmark', 1, MAX_U32);
        const entry: KaGroupEntry = { kind: 'fwmark', fwmark, file: e.file, line: e.line };
        if (ea[1]) {
          if (ea[1].text !== 'inet' && ea[1].text !== 'inet6') this.err(ea[1], `fwmark: expected inet or inet6, got "${ea[1].text}"`);
          entry.family = ea[1].text === 'inet' ? 4 : 6;
        }
        g.entries.push(entry);
        continue;
      }
      const ea = this.args(e, 0, 1, 'ADDRESS[-LAST|-ADDRESS|/PREFIX] [PORT]');
      const port = ea[0] ? this.port(ea[0], 'virtual_server_group entry') : 0;
      for (const addr of this.range({ text: e.key, quoted: false, file: e.file, line: e.line })) {
        g.entries.push({ kind: 'address', address: addr.text, family: addr.family, port, file: e.file, line: e.line });
      }
    }
    if (g.entries.length === 0) this.err(st, `virtual_server_group "${name}" has no entries`);
    this.groups.set(name, g);
  }

  /** An address, `A-LAST`, `A-B` or `A/PREFIX` (inet_stor and keepalived.conf(5)). */
  range(w: Word): IpAddress[] {
    const what = 'virtual_server_group entry';
    const slash = w.text.indexOf('/');
    const dash = w.text.indexOf('-');
    let lo: IpAddress;
    let hiV: bigint;
    if (slash >= 0) {
      lo = this.addr({ ...w, text: w.text.slice(0, slash) }, what);
      const bits = lo.family === 4 ? 32 : 128;
      const prefix = this.uint({ ...w, text: w.text.slice(slash + 1) }, `${what} prefix`, 0, bits);
      const host = (1n << BigInt(bits - prefix)) - 1n;
      const net = addrToBig(lo) & ~host & ((1n << BigInt(bits)) - 1n);
      lo = bigToAddr(net, lo.family);
      hiV = net | host;
    } else if (dash >= 0) {
      lo = this.addr({ ...w, text: w.text.slice(0, dash) }, what);
      const endText = w.text.slice(dash + 1);
      if (/[.:]/.test(endText)) {
        const hi = this.addr({ ...w, text: endText }, what);
        if (hi.family !== lo.family) this.err(w, `${what} "${w.text}": both ends of a range must be the same address family`);
        hiV = addrToBig(hi);
      } else if (lo.family === 4) {
        const last = this.uint({ ...w, text: endText }, `${what} range end`, 0, 255);
        hiV = (addrToBig(lo) & ~0xffn) | BigInt(last);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(endText)) {
          this.err(w, `${what} "${w.text}": an IPv6 range ends in the last 16-bit group, in hex (0..ffff)`);
        }
        hiV = (addrToBig(lo) & ~0xffffn) | BigInt(parseInt(endText, 16));
      }
    } else {
      return [this.addr(w, what)];
    }
    const loV = addrToBig(lo);
    if (hiV < loV) this.err(w, `${what} "${w.text}": the range ends before it starts`);
    if (hiV - loV + 1n > BigInt(MAX_GROUP_RANGE)) {
      this.err(w, `${what} "${w.text}" has ${hiV - loV + 1n} addresses; at most ${MAX_GROUP_RANGE}`);
    }
    const out: IpAddress[] = [];
    for (let v = loV; v <= hiV; v++) out.push(bigToAddr(v, lo.family));
    return out;
  }

  // ---- virtual_server ------------------------------------------------------------------

  virtualServer(st: Stmt): void {
    const usage = 'virtual_server ADDRESS [PORT] | virtual_server fwmark NUMBER | virtual_server group NAME';
    if (st.args.length === 0) this.err(st, `virtual_server: missing value; expected "${usage}"`);
    const block = this.needBlock(st);
    const raw: RawVirtual = {
      file: st.file,
      line: st.line,
      form: 'address',
      desc: describe(st),
      protocol: 'tcp',
      scheduler: 'wlc',
      schedFlags: 0,
      onePacket: false,
      fwd: Fwd.NAT,
      alpha: false,
      inhibit: false,
      sorryInhibit: false,
      reals: [],
    };
    const a = st.args;
    if (a[0]!.text === 'fwmark' && !a[0]!.quoted) {
      if (a.length !== 2) this.err(st, `expected "virtual_server fwmark NUMBER"`);
      raw.form = 'fwmark';
      raw.fwmark = this.uint(a[1]!, 'virtual_server fwmark', 1, MAX_U32);
    } else if (a[0]!.text === 'group' && !a[0]!.quoted) {
      if (a.length !== 2) this.err(st, `expected "virtual_server group NAME"`);
      raw.form = 'group';
      raw.group = a[1]!;
    } else {
      if (a.length > 2) this.err(a[2]!, `virtual_server: unexpected "${a[2]!.text}"; expected "${usage}"`);
      raw.addr = this.addr(a[0]!, 'virtual_server');
      raw.port = a[1] ? this.port(a[1], 'virtual_server') : 0;
    }
    const within = raw.desc;
    for (const s of block) {
      if (VS_IGNORED.has(s.key)) {
        this.noBlock(s);
        if (s.key === 'sorry_server_inhibit') raw.sorryInhibit = true;
        this.ignore(s, within);
        continue;
      }
      switch (s.key) {
        case 'delay_loop':
          raw.delayLoopMs = this.timerMs(this.args(s, 1, 1, 'delay_loop SECONDS')[0]!, 'delay_loop', false);
          break;
        case 'lb_algo':
        case 'lvs_sched': {
          const w = this.args(s, 1, 1, `${s.key} ${SCHEDULER_NAMES.join('|')}`)[0]!;
          if (!SCHEDULER_NAMES.includes(w.text)) {
            this.err(w, `${s.key}: unknown or unsupported scheduler "${w.text}"; expected one of ${SCHEDULER_NAMES.join(', ')}`);
          }
          raw.scheduler = w.text;
          break;
        }
        case 'lb_kind':
        case 'lvs_method':
          raw.fwd = this.fwd(s);
          break;
        case 'persistence_timeout': {
          const pa = this.args(s, 0, 1, 'persistence_timeout [SECONDS]');
          raw.persistenceS = pa[0] ? this.uint(pa[0], 'persistence_timeout', 1, MAX_U32) : KA_DEFAULT_PERSISTENCE_TIMEOUT_S;
          break;
        }
        case 'persistence_granularity': {
          const w = this.args(s, 1, 1, 'persistence_granularity NETMASK|PREFIXLEN')[0]!;
          raw.granularity = this.granularity(w);
          break;
        }
        case 'persistence_engine':
          this.err(s, 'persistence_engine is not supported (Saru has no persistence engines such as sip)');
          break;
        case 'protocol': {
          const w = this.args(s, 1, 1, 'protocol TCP|UDP')[0]!;
          const v = w.text.toUpperCase();
          if (v === 'SCTP') this.err(w, 'protocol SCTP is not supported (Saru balances TCP and UDP)');
          if (v !== 'TCP' && v !== 'UDP') this.err(w, `protocol: expected TCP or UDP, got "${w.text}"`);
          raw.protocol = v === 'TCP' ? 'tcp' : 'udp';
          raw.protocolStmt = s;
          break;
        }
        case 'sorry_server': {
          const sa = this.args(s, 1, 2, 'sorry_server ADDRESS [PORT]');
          raw.sorry = {
            addr: this.addr(sa[0]!, 'sorry_server'),
            port: sa[1] ? this.port(sa[1], 'sorry_server') : 0,
            at: { file: s.file, line: s.line },
          };
          break;
        }
        case 'sorry_server_lvs_method':
          raw.sorryFwd = this.fwd(s);
          break;
        case 'inhibit_on_failure':
          raw.inhibit = this.optBool(s);
          break;
        case 'alpha':
          raw.alpha = this.optBool(s);
          break;
        case 'virtualhost':
          raw.virtualHost = this.args(s, 1, 1, 'virtualhost NAME')[0]!.text;
          break;
        case 'retry':
          raw.retry = this.uint(this.args(s, 1, 1, 'retry COUNT')[0]!, 'retry', 0, MAX_U32);
          break;
        case 'delay_before_retry':
          raw.delayBeforeRetryMs = this.timerMs(this.args(s, 1, 1, 'delay_before_retry SECONDS')[0]!, 'delay_before_retry', true);
          break;
        case 'connect_timeout':
          raw.connectTimeoutMs = this.timerMs(this.args(s, 1, 1, 'connect_timeout SECONDS')[0]!, 'connect_timeout', false);
          break;
        case 'ops':
          this.args(s, 0, 0, 'ops');
          raw.onePacket = true;
          break;
        case 'flag-1':
        case 'sh-fallback':
        case 'mh-fallback':
          this.args(s, 0, 0, s.key);
          raw.schedFlags |= SvcFlag.SCHED1;
          break;
        case 'flag-2':
        case 'sh-port':
        case 'mh-port':
          this.args(s, 0, 0, s.key);
          raw.schedFlags |= SvcFlag.SCHED2;
          break;
        case 'flag-3':
          this.args(s, 0, 0, s.key);
          raw.schedFlags |= SvcFlag.SCHED3;
          break;
        case 'ip_family': {
          const w = this.args(s, 1, 1, 'ip_family inet|inet6')[0]!;
          if (w.text !== 'inet' && w.text !== 'inet6') this.err(w, `ip_family: expected inet or inet6, got "${w.text}"`);
          raw.ipFamily = w.text === 'inet' ? 4 : 6;
          break;
        }
        case 'real_server':
          raw.reals.push(this.realServer(s, within));
          break;
        default:
          if (CHECKERS.includes(s.key as CheckerType)) this.err(s, `${s.key} belongs inside a real_server block`);
          this.unknown(s, 'virtual_server', VS_KEYWORDS);
      }
    }
    this.raws.push(raw);
  }

  /** persistence_granularity: IPv4 dotted netmask (contiguous) or IPv6 prefix length 1..128 (pgr_handler). */
  granularity(w: Word): { prefix: number; family: Family; word: Word } {
    if (w.text.includes('.')) {
      const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(w.text);
      if (!m || m.slice(1).some((p) => Number(p) > 255)) {
        this.err(w, `persistence_granularity: expected a netmask such as 255.255.255.0, got "${w.text}"`);
      }
      const v = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
      const inv = ~v >>> 0;
      if ((inv & (inv + 1)) !== 0) this.err(w, `persistence_granularity ${w.text} is not a contiguous netmask`);
      let prefix = 0;
      for (let b = 31; b >= 0 && ((v >>> b) & 1) === 1; b--) prefix++;
      return { prefix, family: 4, word: w };
    }
    return { prefix: this.uint(w, 'persistence_granularity (IPv6 prefix length)', 1, 128), family: 6, word: w };
  }

  // ---- real_server ---------------------------------------------------------------------

  realServer(st: Stmt, vsDesc: string): RawReal {
    const usage = 'real_server ADDRESS [PORT] { ... }';
    if (st.args.length === 0) this.err(st, `real_server: missing value; expected "${usage}"`);
    if (st.args.length > 2) this.err(st.args[2]!, `real_server: unexpected "${st.args[2]!.text}"; expected "${usage}"`);
    const block = this.needBlock(st);
    const rs: RawReal = {
      file: st.file,
      line: st.line,
      addr: this.addr(st.args[0]!, 'real_server'),
      port: st.args[1] ? this.port(st.args[1], 'real_server') : 0,
      weight: 1,
      checks: [],
    };
    const within = `${describe(st)} of ${vsDesc}`;
    for (const s of block) {
      if (RS_IGNORED.has(s.key)) {
        this.noBlock(s);
        this.ignore(s, within);
        continue;
      }
      if (CHECKERS.includes(s.key as CheckerType)) {
        rs.checks.push(this.checker(s, s.key as CheckerType, within));
        continue;
      }
      switch (s.key) {
        case 'weight':
          rs.weight = this.weight(this.args(s, 1, 1, 'weight 0..65535')[0]!);
          break;
        case 'lvs_method':
        case 'lb_kind':
          rs.fwd = this.fwd(s);
          break;
        case 'uthreshold':
          rs.upper = this.uint(this.args(s, 1, 1, 'uthreshold CONNECTIONS')[0]!, 'uthreshold', 0, MAX_U32);
          break;
        case 'lthreshold':
          rs.lower = this.uint(this.args(s, 1, 1, 'lthreshold CONNECTIONS')[0]!, 'lthreshold', 0, MAX_U32);
          break;
        case 'inhibit_on_failure':
          rs.inhibit = this.optBool(s);
          break;
        case 'alpha':
          rs.alpha = this.optBool(s);
          break;
        case 'retry':
          rs.retry = this.uint(this.args(s, 1, 1, 'retry COUNT')[0]!, 'retry', 0, MAX_U32);
          break;
        case 'delay_before_retry':
          rs.delayBeforeRetryMs = this.timerMs(this.args(s, 1, 1, 'delay_before_retry SECONDS')[0]!, 'delay_before_retry', true);
          break;
        case 'connect_timeout':
          rs.connectTimeoutMs = this.timerMs(this.args(s, 1, 1, 'connect_timeout SECONDS')[0]!, 'connect_timeout', false);
          break;
        case 'delay_loop':
          rs.delayLoopMs = this.timerMs(this.args(s, 1, 1, 'delay_loop SECONDS')[0]!, 'delay_loop', false);
          break;
        case 'virtualhost':
          rs.virtualHost = this.args(s, 1, 1, 'virtualhost NAME')[0]!.text;
          break;
        default:
          this.unknown(s, 'real_server', RS_KEYWORDS);
      }
    }
    return rs;
  }

  weight(w: Word): number {
    if (!/^-?\d+$/.test(w.text)) this.err(w, `weight: expected an integer 0..65535, got "${w.text}"`);
    const n = Number(w.text);
    if (n < 0 || n > 65535) this.err(w, `weight must be 0..65535, got ${w.text}`);
    return n;
  }

  // ---- checkers ------------------------------------------------------------------------------

  checker(st: Stmt, type: CheckerType, within: string): RawCheck {
    if (st.args.length > 0) this.err(st.args[0]!, `${type}: unexpected "${st.args[0]!.text}"; expected "${type} { ... }"`);
    const block = this.needBlock(st);
    const c: RawCheck = { type, file: st.file, line: st.line, conn: {}, urls: [], hosts: [], miscDynamic: false };
    const ctx = `${type} of ${within}`;
    const expected =
      type === 'HTTP_GET' || type === 'SSL_GET'
        ? HTTP_KEYWORDS
        : type === 'SMTP_CHECK'
          ? SMTP_KEYWORDS
          : type === 'UDP_CHECK'
            ? UDP_KEYWORDS
            : type === 'MISC_CHECK'
              ? MISC_KEYWORDS
              : PLAIN_KEYWORDS;
    for (const s of block) {
      if (type !== 'MISC_CHECK' && this.connKeyword(s, c.conn, ctx)) continue;
      if (this.commonKeyword(s, c, ctx)) continue;
      if (!expected.includes(s.key)) this.unknown(s, type, expected);
      switch (type) {
        case 'HTTP_GET':
        case 'SSL_GET':
          this.httpKeyword(s, c, ctx);
          break;
        case 'SMTP_CHECK':
          if (s.key === 'helo_name') c.helo = this.args(s, 1, 1, 'helo_name NAME')[0]!.text;
          else this.smtpHost(s, c, ctx);
          break;
        case 'UDP_CHECK':
          this.udpKeyword(s, c);
          break;
        case 'MISC_CHECK':
          this.miscKeyword(s, c, ctx);
          break;
        default:
          this.unknown(s, type, expected);
      }
    }
    if ((type === 'HTTP_GET' || type === 'SSL_GET') && c.urls.length === 0) {
      this.err(st, `${type} needs at least one url { path /... } block`);
    }
    if (type === 'MISC_CHECK' && !c.misc) this.err(st, 'MISC_CHECK needs misc_path');
    return c;
  }

  /** Connection options shared by the checkers (install_checker_common_keywords). */
  connKeyword(s: Stmt, conn: ConnOpts, ctx: string): boolean {
    switch (s.key) {
      case 'connect_ip':
        conn.address = this.addr(this.args(s, 1, 1, 'connect_ip ADDRESS')[0]!, 'connect_ip').text;
        return true;
      case 'connect_port':
        conn.port = this.port(this.args(s, 1, 1, 'connect_port PORT')[0]!, 'connect_port', 1);
        return true;
      case 'bindto':
        conn.bindTo = this.addr(this.args(s, 1, 1, 'bindto ADDRESS')[0]!, 'bindto').text;
        return true;
      case 'connect_timeout':
        conn.timeoutMs = this.timerMs(this.args(s, 1, 1, 'connect_timeout SECONDS')[0]!, 'connect_timeout', false);
        return true;
      case 'bind_if':
      case 'bind_port':
      case 'fwmark':
        this.args(s, 1, 1, `${s.key} VALUE`);
        this.ignore(s, ctx);
        return true;
      default:
        return false;
    }
  }

  commonKeyword(s: Stmt, c: RawCheck, ctx: string): boolean {
    switch (s.key) {
      case 'retry':
        c.retry = this.uint(this.args(s, 1, 1, 'retry COUNT')[0]!, 'retry', 0, MAX_U32);
        return true;
      case 'delay_before_retry':
        c.delayBeforeRetryMs = this.timerMs(this.args(s, 1, 1, 'delay_before_retry SECONDS')[0]!, 'delay_before_retry', true);
        return true;
      case 'delay_loop':
        c.delayLoopMs = this.timerMs(this.args(s, 1, 1, 'delay_loop SECONDS')[0]!, 'delay_loop', false);
        return true;
      case 'alpha':
        c.alpha = this.optBool(s);
        return true;
      case 'warmup':
      case 'log_all_failures':
        this.noBlock(s);
        this.ignore(s, ctx);
        return true;
      default:
        return false;
    }
  }

  httpKeyword(s: Stmt, c: RawCheck, ctx: string): void {
    switch (s.key) {
      case 'nb_get_retry':
        c.retry = this.uint(this.args(s, 1, 1, 'nb_get_retry COUNT')[0]!, 'nb_get_retry', 0, MAX_U32);
        break;
      case 'virtualhost':
        c.virtualHost = this.args(s, 1, 1, 'virtualhost NAME')[0]!.text;
        break;
      case 'enable_sni':
        c.enableSni = this.optBool(s);
        break;
      case 'sni_name':
      case 'sni_server_name':
        c.sniName = this.args(s, 1, 1, `${s.key} NAME`)[0]!.text;
        break;
      case 'http_protocol': {
        const w = this.args(s, 1, 1, 'http_protocol 1.0|1.0C|1.1')[0]!;
        if (!['1.0', '1.0C', '1.0c', '1.1'].includes(w.text)) this.err(w, `http_protocol: expected 1.0, 1.0C or 1.1, got "${w.text}"`);
        this.ignore(s, ctx);
        break;
      }
      case 'fast_recovery':
      case 'tls_compliant':
        this.optBool(s);
        this.ignore(s, ctx);
        break;
      case 'url':
        c.urls.push(this.url(s, ctx));
        break;
    }
  }

  url(st: Stmt, ctx: string): HttpUrl {
    this.args(st, 0, 0, 'url { ... }');
    const block = this.needBlock(st);
    let pathText: string | undefined;
    const u: Partial<HttpUrl> = {};
    for (const s of block) {
      switch (s.key) {
        case 'path': {
          const w = this.args(s, 1, 1, 'path /PATH')[0]!;
          if (!w.text.startsWith('/')) this.err(w, `path: expected a request path starting with "/", got "${w.text}"`);
          pathText = w.text;
          break;
        }
        case 'digest': {
          const w = this.args(s, 1, 1, 'digest MD5-HEX')[0]!;
          if (u.digest !== undefined) this.err(s, 'digest given twice in one url block');
          if (!/^[0-9a-fA-F]{32}$/.test(w.text)) this.err(w, `digest: expected 32 hex digits (genhash's MD5), got "${w.text}"`);
          u.digest = w.text.toLowerCase();
          break;
        }
        case 'status_code': {
          const a = this.args(s, 1, Number.MAX_SAFE_INTEGER, 'status_code CODE|LOW-HIGH ...');
          const ranges = u.statusCodes ?? [];
          for (const w of a) {
            const m = /^(\d+)(?:-(\d+))?$/.exec(w.text);
            const lo = m ? Number(m[1]) : NaN;
            const hi = m ? Number(m[2] ?? m[1]) : NaN;
            if (!m || lo < HTTP_STATUS_MIN || hi > HTTP_STATUS_MAX || lo > hi) {
              this.err(w, `status_code: expected a code or range within ${HTTP_STATUS_MIN}-${HTTP_STATUS_MAX} (e.g. 200 or 200-299), got "${w.text}"`);
            }
            ranges.push([lo, hi]);
          }
          u.statusCodes = ranges;
          break;
        }
        case 'virtualhost':
          u.virtualHost = this.args(s, 1, 1, 'virtualhost NAME')[0]!.text;
          break;
        case 'regex': {
          const w = this.args(s, 1, 1, 'regex "PATTERN"')[0]!;
          try {
            new RegExp(w.text);
          } catch (e) {
            this.err(w, `regex: invalid regular expression "${w.text}" (${errText(e)})`);
          }
          u.receive = w.text;
          break;
        }
        case 'regex_no_match':
        case 'regex_options':
        case 'regex_min_offset':
        case 'regex_max_offset':
          this.err(s, `${s.key} is not supported (Saru's HTTP check matches "regex" anywhere in the body)`);
          break;
        case 'regex_stack':
        case 'tls_compliant':
          this.noBlock(s);
          this.ignore(s, `url of ${ctx}`);
          break;
        default:
          this.unknown(s, 'url', URL_KEYWORDS);
      }
    }
    if (pathText === undefined) this.err(st, 'url needs a path (path /...)');
    return { path: pathText, ...u };
  }

  smtpHost(st: Stmt, c: RawCheck, ctx: string): void {
    this.args(st, 0, 0, 'host { ... }');
    const block = this.needBlock(st);
    const h: ConnOpts & Loc = { file: st.file, line: st.line };
    for (const s of block) {
      if (!this.connKeyword(s, h, `host of ${ctx}`)) this.unknown(s, 'SMTP_CHECK host', CONN_KEYWORDS);
    }
    c.hosts.push(h);
  }

  udpKeyword(s: Stmt, c: RawCheck): void {
    switch (s.key) {
      case 'payload':
        c.payload = this.hex(this.args(s, 1, Number.MAX_SAFE_INTEGER, 'payload HEX...'));
        break;
      case 'require_reply':
        if (s.args.length > 0) this.err(s.args[0]!, 'require_reply with reply data to match is not supported (only "require_reply" alone)');
        this.args(s, 0, 0, 'require_reply');
        c.requireReply = true;
        break;
      default:
        this.err(s, `${s.key} is not supported (Saru's UDP check does not check the reply length)`);
    }
  }

  /** UDP_CHECK HEX_STR: per word, pairs of hex digits from the left, a lone last digit a byte of its own. */
  hex(words: Word[]): Uint8Array {
    const bytes: number[] = [];
    for (const w of words) {
      if (!/^[0-9a-fA-F]+$/.test(w.text)) this.err(w, `payload: expected hex digits, got "${w.text}"`);
      for (let i = 0; i < w.text.length; i += 2) bytes.push(parseInt(w.text.slice(i, i + 2), 16));
    }
    return Uint8Array.from(bytes);
  }

  miscKeyword(s: Stmt, c: RawCheck, ctx: string): void {
    switch (s.key) {
      case 'misc_path': {
        const a = this.args(s, 1, Number.MAX_SAFE_INTEGER, 'misc_path "COMMAND [ARGS...]"');
        const argv = splitCommandLine(a.map((w) => w.text).join(' '));
        if (argv === null) this.err(s, 'misc_path: unterminated quote or trailing "\\" in the command');
        if (argv.length === 0 || argv[0] === '') this.err(s, 'misc_path: empty command');
        c.misc = { command: argv[0]!, args: argv.slice(1) };
        break;
      }
      case 'misc_timeout':
        c.miscTimeoutMs = this.uint(this.args(s, 1, 1, 'misc_timeout SECONDS')[0]!, 'misc_timeout', 0, MAX_TIMER_S) * 1000;
        break;
      case 'misc_dynamic':
        this.args(s, 0, 0, 'misc_dynamic');
        c.miscDynamic = true;
        break;
      case 'user': {
        const a = this.args(s, 1, 2, 'user USERNAME [[:]GROUPNAME]');
        let user = a[0]!.text;
        let group = a[1]?.text;
        const colon = user.indexOf(':');
        if (colon >= 0) {
          group = user.slice(colon + 1) || group;
          user = user.slice(0, colon);
        }
        if (user === '') this.err(a[0]!, 'user: empty user name');
        c.user = user;
        if (group !== undefined) this.ignored.push({ file: s.file, line: s.line, what: `group ${group.replace(/^:/, '')} of ${describe(s)} in ${ctx} (the script runs with the user's groups)` });
        break;
      }
      case 'connect_timeout':
        this.args(s, 1, 1, 'connect_timeout SECONDS');
        this.ignore(s, `${ctx} (misc_timeout bounds the script)`);
        break;
    }
  }

  // ---- resolution --------------------------------------------------------------------

  finishVirtual(raw: RawVirtual): KaVirtualServer {
    // Real servers: family, forwarding, duplicates.
    const nonTun = raw.reals.filter((r) => (r.fwd ?? raw.fwd) !== Fwd.TUN);
    const rsFamily: Family | undefined = nonTun[0]?.addr.family;
    for (const r of nonTun) {
      if (r.addr.family !== rsFamily) {
        this.err(r, `real_server ${r.addr.text} is IPv${r.addr.family} but ${nonTun[0]!.addr.text} is IPv${rsFamily}; one virtual server's real servers must share a family`);
      }
    }
    // Endpoints.
    const endpoints: KaEndpoint[] = [];
    const persistent = raw.persistenceS !== undefined || raw.granularity !== undefined;
    const sorryFwd = raw.sorryFwd ?? raw.fwd;
    const markFamily = (explicit?: Family): Family =>
      explicit ?? raw.ipFamily ?? raw.granularity?.family ?? rsFamily ?? (raw.sorry && sorryFwd !== Fwd.TUN ? raw.sorry.addr.family : undefined) ?? 4;
    if (raw.form === 'address') {
      endpoints.push({ kind: 'address', address: raw.addr!.text, family: raw.addr!.family, port: raw.port!, file: raw.file, line: raw.line });
    } else if (raw.form === 'fwmark') {
      endpoints.push({ kind: 'fwmark', fwmark: raw.fwmark!, family: markFamily(), file: raw.file, line: raw.line });
    } else {
      const g = this.groups.get(raw.group!.text);
      if (!g) this.err(raw.group!, `virtual_server group "${raw.group!.text}": no virtual_server_group of that name`);
      for (const e of g.entries) {
        endpoints.push(e.kind === 'fwmark' ? { ...e, family: markFamily(e.family) } : { ...e });
      }
    }
    for (const ep of endpoints) {
      const at: Loc = raw.form === 'group' ? ep : raw;
      if (rsFamily !== undefined && ep.family !== rsFamily) {
        this.err(at, `virtual service ${ep.kind === 'fwmark' ? `fwmark ${ep.fwmark}` : ep.address} is IPv${ep.family} but its real servers are IPv${rsFamily} (only TUN real servers may differ)`);
      }
      if (raw.granularity && raw.granularity.family !== ep.family) {
        this.err(raw.granularity.word, `persistence_granularity ${raw.granularity.word.text} is for IPv${raw.granularity.family}, but the virtual service is IPv${ep.family}`);
      }
      if (raw.ipFamily !== undefined && ep.kind === 'address' && ep.family !== raw.ipFamily) {
        this.err(raw, `ip_family inet${raw.ipFamily === 6 ? '6' : ''} contradicts the IPv${ep.family} address ${ep.address}`);
      }
      if (ep.kind === 'address' && ep.port === 0 && !persistent) {
        this.err(at, `virtual service ${ep.address} has no port; a virtual server without a port must be persistent (persistence_timeout)`);
      }
    }
    if (raw.form === 'fwmark' && raw.protocolStmt) {
      // keepalived: "protocol specified for fwmark - protocol will be ignored".
      this.ignore(raw.protocolStmt, `${raw.desc} (a fwmark service takes every protocol)`);
    }
    const family: Family = rsFamily ?? endpoints[0]?.family ?? 4;
    // Sorry server.
    let sorryServer: KaServer | undefined;
    if (raw.sorry) {
      const s = raw.sorry;
      if (sorryFwd !== Fwd.TUN && endpoints.some((ep) => ep.family !== s.addr.family)) {
        this.err(s.at, `sorry_server ${s.addr.text} is IPv${s.addr.family} but the virtual service is not (only a TUN sorry server may differ)`);
      }
      sorryServer = { address: s.addr.text, family: s.addr.family, port: s.port, fwd: sorryFwd, file: s.at.file, line: s.at.line };
    }
    const delayLoopMs = raw.delayLoopMs ?? KA_DEFAULT_DELAY_LOOP_S * 1000;
    const seen = new Map<string, Loc>();
    const realServers: KaRealServer[] = [];
    for (const r of raw.reals) {
      const key = `${r.addr.text} ${r.port}`;
      const prev = seen.get(key);
      if (prev) this.err(r, `duplicate real_server ${r.addr.text} ${r.port} (first defined at ${prev.file}:${prev.line})`);
      seen.set(key, r);
      if (r.alpha !== undefined && r.alpha !== raw.alpha) {
        this.ignored.push({ file: r.file, line: r.line, what: `alpha ${r.alpha ? 'on' : 'off'} on real_server ${r.addr.text} (Saru applies alpha per virtual server: ${raw.alpha ? 'on' : 'off'})` });
      }
      const rs: KaRealServer = {
        address: r.addr.text,
        family: r.addr.family,
        port: r.port,
        fwd: r.fwd ?? raw.fwd,
        file: r.file,
        line: r.line,
        weight: r.weight,
        inhibitOnFailure: r.inhibit ?? raw.inhibit,
        checks: r.checks.flatMap((c) => this.resolveCheck(raw, r, c, delayLoopMs)),
      };
      if (r.upper !== undefined) rs.upperThreshold = r.upper;
      if (r.lower !== undefined) rs.lowerThreshold = r.lower;
      realServers.push(rs);
    }
    const vs: KaVirtualServer = {
      file: raw.file,
      line: raw.line,
      form: raw.form,
      endpoints,
      family,
      protocol: raw.protocol,
      scheduler: raw.scheduler,
      schedFlags: raw.schedFlags,
      onePacket: raw.onePacket,
      fwd: raw.fwd,
      delayLoopMs,
      alpha: raw.alpha,
      inhibitOnFailure: raw.inhibit,
      sorryServerInhibit: raw.sorryInhibit,
      realServers,
    };
    if (raw.group) vs.group = raw.group.text;
    if (persistent) vs.persistenceTimeoutS = raw.persistenceS ?? KA_DEFAULT_PERSISTENCE_TIMEOUT_S;
    if (raw.granularity) vs.persistencePrefix = raw.granularity.prefix;
    if (raw.virtualHost !== undefined) vs.virtualHost = raw.virtualHost;
    if (sorryServer) vs.sorryServer = sorryServer;
    return vs;
  }

  /** Apply checker > real server > virtual server > keepalived defaults; one RealServerCheck per probe. */
  resolveCheck(vs: RawVirtual, rs: RawReal, c: RawCheck, vsDelayLoopMs: number): RealServerCheck[] {
    if (c.alpha !== undefined && c.alpha !== vs.alpha) {
      this.ignored.push({ file: c.file, line: c.line, what: `alpha ${c.alpha ? 'on' : 'off'} on ${c.type} of real_server ${rs.addr.text} (Saru applies alpha per virtual server: ${vs.alpha ? 'on' : 'off'})` });
    }
    const http = c.type === 'HTTP_GET' || c.type === 'SSL_GET';
    const retry = c.retry ?? rs.retry ?? vs.retry ?? (c.type === 'MISC_CHECK' ? KA_DEFAULT_MISC_RETRY : KA_DEFAULT_RETRY);
    const policy = {
      intervalMs: c.delayLoopMs ?? rs.delayLoopMs ?? vsDelayLoopMs,
      attempts: retry + 1,
      retryDelayMs:
        c.delayBeforeRetryMs ??
        rs.delayBeforeRetryMs ??
        vs.delayBeforeRetryMs ??
        (http ? KA_DEFAULT_HTTP_DELAY_BEFORE_RETRY_S : KA_DEFAULT_DELAY_BEFORE_RETRY_S) * 1000,
      failureCount: 1,
    };
    const timeoutMs = (conn: ConnOpts): number =>
      conn.timeoutMs ?? c.conn.timeoutMs ?? rs.connectTimeoutMs ?? vs.connectTimeoutMs ?? KA_DEFAULT_CONNECT_TIMEOUT_S * 1000;
    const needPort = (conn: ConnOpts, at: Loc): void => {
      if (conn.port === undefined && c.conn.port === undefined && rs.port === 0) {
        this.err(at, `${c.type} of real_server ${rs.addr.text} (written without a port) needs connect_port`);
      }
    };
    const target = (conn: ConnOpts): { port?: number; address?: string; bindTo?: string } => {
      const t: { port?: number; address?: string; bindTo?: string } = {};
      const port = conn.port ?? c.conn.port;
      const address = conn.address ?? c.conn.address;
      const bindTo = conn.bindTo ?? c.conn.bindTo;
      if (port !== undefined) t.port = port;
      if (address !== undefined) t.address = address;
      if (bindTo !== undefined) t.bindTo = bindTo;
      return t;
    };
    const specs: CheckSpec[] = [];
    switch (c.type) {
      case 'TCP_CHECK':
        needPort(c.conn, c);
        specs.push({ kind: 'connect', protocol: 'tcp', ...target(c.conn), timeoutMs: timeoutMs(c.conn) });
        break;
      case 'UDP_CHECK': {
        needPort(c.conn, c);
        const spec: ConnectCheck = { kind: 'connect', protocol: 'udp', ...target(c.conn), timeoutMs: timeoutMs(c.conn) };
        if (c.payload) spec.payload = c.payload;
        if (c.requireReply) spec.requireReply = true;
        specs.push(spec);
        break;
      }
      case 'HTTP_GET':
      case 'SSL_GET': {
        needPort(c.conn, c);
        const vhost = c.virtualHost ?? rs.virtualHost ?? vs.virtualHost;
        const spec: CheckSpec = {
          kind: 'http',
          tls: c.type === 'SSL_GET',
          method: 'GET',
          ...target(c.conn),
          urls: c.urls.map((u) => ({ ...u })),
          timeoutMs: timeoutMs(c.conn),
        };
        if (vhost !== undefined) spec.virtualHost = vhost;
        if (c.type === 'SSL_GET') {
          const sni = c.sniName ?? (c.enableSni ? vhost : undefined);
          if (sni !== undefined) spec.sniServerName = sni;
        }
        specs.push(spec);
        break;
      }
      case 'SMTP_CHECK': {
        const hosts = c.hosts.length > 0 ? c.hosts : [{ ...c.conn, file: c.file, line: c.line }];
        for (const h of hosts) {
          needPort(h, h);
          specs.push({ kind: 'smtp', ...target(h), helo: c.helo ?? KA_SMTP_DEFAULT_HELO, timeoutMs: timeoutMs(h) });
        }
        break;
      }
      case 'PING_CHECK': {
        const spec: CheckSpec = { kind: 'ping', timeoutMs: timeoutMs(c.conn) };
        if (c.conn.address !== undefined) spec.address = c.conn.address;
        specs.push(spec);
        break;
      }
      case 'MISC_CHECK': {
        const spec: CheckSpec = {
          kind: 'external',
          command: c.misc!.command,
          args: c.misc!.args.slice(),
          dynamicWeight: c.miscDynamic,
          // check_misc.c: misc_timeout 0 or unset means the virtual server's delay_loop.
          timeoutMs: c.miscTimeoutMs || vsDelayLoopMs,
        };
        if (c.user !== undefined) spec.user = c.user;
        specs.push(spec);
        break;
      }
    }
    return specs.map((spec) => ({ spec, ...policy }));
  }
}

// ---- entry points ------------------------------------------------------------------------

const defaultIo: Io = {
  readFile: (p) => readFileSync(p, 'utf8'),
  listDir: (p) => readdirSync(p),
};

/**
 * Parse keepalived.conf text. Pure apart from `include`, which reads through
 * opts.readFile / opts.listDir (node:fs by default).
 * @param file the file's name: used in errors and as the base of relative includes.
 * @returns the virtual servers and groups, every file read, and what was ignored.
 * @throws SaruError SARU_ERR_CONFIG "file:line: ..." on any error (in whichever file it is).
 */
export function parseKeepalived(text: string, file: string, opts: KeepalivedOptions = {}): KeepalivedConfig {
  const ignored: KaIgnored[] = [];
  const io: Io = { readFile: opts.readFile ?? defaultIo.readFile, listDir: opts.listDir ?? defaultIo.listDir };
  const pre = new Preprocessor(io, opts.instance, opts.env ?? process.env, ignored);
  pre.file(text, file);
  const tree = buildTree(pre.tokens, file);
  const parser = new Parser(ignored);
  parser.parse(tree);
  const { groups, virtualServers } = parser.finish();
  return { file, files: pre.files, groups, virtualServers, ignored };
}

/**
 * Read and parse a keepalived.conf file (and its includes).
 * @throws SaruError SARU_ERR_CONFIG when the file cannot be read or does not parse.
 */
export function loadKeepalivedFile(file: string, opts: KeepalivedOptions = {}): KeepalivedConfig {
  let text: string;
  try {
    text = (opts.readFile ?? defaultIo.readFile)(file);
  } catch (e) {
    throw new SaruError(ErrorCode.CONFIG, `cannot read keepalived configuration ${file}: ${errText(e)}`);
  }
  return parseKeepalived(text, file, opts);
}

function realInit(s: KaServer, weight: number): RealServerInit {
  const addr = IpAddress.parse(s.address);
  return { address: s.address, port: s.port, weight, fwd: isLoopback(addr) ? Fwd.LOCAL : s.fwd };
}

/**
 * The virtual services of a parsed configuration, in file order (a group
 * expands in its entries' order), as the service model's inits plus health:
 * - firewall-mark endpoints get protocol TCP: keepalived ignores `protocol`
 *   for them, the model needs one, and a mark service's entries take the
 *   packet's protocol;
 * - real server ports are as written (0 when omitted), as keepalived hands
 *   them to IPVS; a loopback address is installed as a local server (the
 *   kernel's LOCALNODE for local addresses), as the ldirectord mapping does;
 * - the sorry_server becomes `service.fallback` (weight 1, its
 *   sorry_server_lvs_method, else the virtual server's lb_kind);
 * - `ops` sets onePacket on UDP and firewall-mark services (IPVS applies it
 *   to UDP packets only);
 * - health is null when no real server has a checker (keepalived keeps such
 *   servers up); otherwise `quiescent` is inhibit_on_failure when all real
 *   servers agree, else false with `quiescentPerServer` giving each one's;
 *   `startDown` is the virtual server's `alpha`.
 */
export function keepalivedServices(cfg: KeepalivedConfig): ConfiguredService[] {
  const out: ConfiguredService[] = [];
  for (const vs of cfg.virtualServers) {
    for (const ep of vs.endpoints) {
      const protocol = vs.protocol === 'udp' && ep.kind === 'address' ? Proto.UDP : Proto.TCP;
      const service: VirtualServiceInit = { protocol, scheduler: vs.scheduler };
      if (ep.kind === 'fwmark') {
        service.fwmark = ep.fwmark;
        service.family = ep.family;
      } else {
        service.address = ep.address;
        service.port = ep.port;
      }
      if (vs.schedFlags !== 0) service.schedFlags = vs.schedFlags;
      if (vs.persistenceTimeoutS !== undefined) {
        service.persistentTimeoutS = vs.persistenceTimeoutS;
        if (vs.persistencePrefix !== undefined) service.persistentPrefix = vs.persistencePrefix;
      }
      if (vs.onePacket && (protocol === Proto.UDP || ep.kind === 'fwmark')) service.onePacket = true;
      if (vs.sorryServer) service.fallback = realInit(vs.sorryServer, 1);
      const realServers = vs.realServers.map((r) => {
        const init = realInit(r, r.weight);
        if (r.upperThreshold !== undefined) init.upperThreshold = r.upperThreshold;
        if (r.lowerThreshold !== undefined) init.lowerThreshold = r.lowerThreshold;
        return init;
      });
      let health: ServiceHealth | null = null;
      if (vs.realServers.some((r) => r.checks.length > 0)) {
        const q = vs.realServers.map((r) => r.inhibitOnFailure);
        const agree = q.every((v) => v === q[0]);
        health = {
          quiescent: agree ? q[0]! : false,
          checks: vs.realServers.map((r) => r.checks.map((c) => ({ ...c }))),
        };
        if (!agree) health.quiescentPerServer = q;
        if (vs.alpha) health.startDown = true;
      }
      out.push({ service, realServers, health, file: vs.file, line: vs.line });
    }
  }
  return out;
}
