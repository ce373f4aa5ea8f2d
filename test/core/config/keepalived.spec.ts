/**
 * keepalived.conf parser: lexing (comments, quotes, braces), conditional
 * lines, parameter substitution, include, every virtual_server / real_server /
 * checker keyword with keepalived's defaults, table-driven errors (file, line,
 * message), every file of the real-world corpus (keepalived's doc/samples),
 * golden `ipvsadm -L -n` listings, a print/parse round trip over random
 * configurations and a never-throws-anything-but-SaruError property.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Fwd, Proto } from '../../../core/constants.js';
import { ErrorCode, SaruError } from '../../../core/errors.js';
import type { ConfiguredService, RealServerCheck } from '../../../core/health/types.js';
import { formatServiceList } from '../../../core/ipvsadm.js';
import { reconcileServices } from '../../../core/reconcile.js';
import { SCHEDULER_NAMES } from '../../../core/sched/index.js';
import { ServiceTable, SvcFlag } from '../../../core/service.js';
import { CORPUS_DIR, repoRoot } from '../../helpers/repo.js';
import {
  keepalivedServices,
  loadKeepalivedFile,
  parseKeepalived,
  splitCommandLine,
  type KeepalivedConfig,
  type KeepalivedOptions,
} from '../../../core/config/index.js';

const ROOT = repoRoot();
const CORPUS = join(CORPUS_DIR, 'keepalived');
const GOLDEN = join(ROOT, 'test', 'core', 'config', 'golden');

function corpusFile(name: string): string {
  assert.ok(
    existsSync(CORPUS),
    `keepalived corpus not found at ${CORPUS} (expected <repo>/../shared/corpus/keepalived); these tests need it`,
  );
  return join(CORPUS, name);
}

/** An in-memory file system for include tests. */
function memFs(files: Record<string, string>, dirs: Record<string, string[]> = {}): KeepalivedOptions {
  return {
    readFile: (p) => {
      if (dirs[p]) throw Object.assign(new Error(`EISDIR: ${p}`), { code: 'EISDIR' });
      const t = files[p];
      if (t === undefined) throw Object.assign(new Error(`ENOENT: no such file ${p}`), { code: 'ENOENT' });
      if (t === '\0EACCES') throw Object.assign(new Error(`EACCES: permission denied ${p}`), { code: 'EACCES' });
      return t;
    },
    listDir: (p) => {
      const d = dirs[p];
      if (!d) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return d;
    },
    env: {},
  };
}

const NO_IO: KeepalivedOptions = memFs({});

function parse(text: string, opts: KeepalivedOptions = NO_IO, file = 'test.conf'): KeepalivedConfig {
  return parseKeepalived(text, file, opts);
}

function services(text: string, opts: KeepalivedOptions = NO_IO): ConfiguredService[] {
  return keepalivedServices(parse(text, opts));
}

function parseError(text: string, opts: KeepalivedOptions = NO_IO, file = 'test.conf'): SaruError {
  try {
    parseKeepalived(text, file, opts);
  } catch (e) {
    assert.ok(e instanceof SaruError, `expected SaruError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.CONFIG);
    return e;
  }
  assert.fail('expected a configuration error');
}

/** A virtual_server block around `body` (one statement per line). */
function vs(body: string, head = '10.0.0.1 80'): string {
  return `virtual_server ${head} {\n${body}\n}\n`;
}

/** A virtual_server with one real_server around `body`. */
function vsRs(rsBody: string, vsBody = '', rsHead = '192.168.1.1 80', vsHead = '10.0.0.1 80'): string {
  return vs(`${vsBody}${vsBody ? '\n' : ''}real_server ${rsHead} {\n${rsBody}\n}`, vsHead);
}

/** The only check of the only real server of the only service. */
function onlyCheck(text: string): RealServerCheck {
  const s = services(text);
  assert.equal(s.length, 1);
  const checks = s[0]!.health!.checks;
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.length, 1);
  return checks[0]![0]!;
}

function listing(cfg: KeepalivedConfig): string {
  const t = new ServiceTable();
  reconcileServices(t, keepalivedServices(cfg));
  return formatServiceList(t.services);
}

describe('keepalived.conf parser', () => {
  describe('lexing', () => {
    it('"!" and "#" comments anywhere, quoted strings, braces attached or alone, blocks opening on the next line', () => {
      const text = [
        '! Configuration File for keepalived',
        'virtual_server 10.0.0.1 80 # trailing comment',
        '{',
        '  lb_algo rr ! another',
        '  real_server 192.168.1.1 80 { weight 3 }',
        '  real_server 192.168.1.2 80',
        '  {',
        '    weight 2 }',
        '  real_server 192.168.1.3 80 {',
        '    HTTP_GET {',
        '      url{ path "/a b#c!d" }',
        '      virtualhost "www.example.com"',
        '    }',
        '  }}',
      ].join('\r\n');
      const s = services(text);
      assert.equal(s.length, 1);
      assert.equal(s[0]!.service.scheduler, 'rr');
      assert.deepEqual(s[0]!.realServers.map((r) => [r.address, r.weight]), [
        ['192.168.1.1', 3],
        ['192.168.1.2', 2],
        ['192.168.1.3', 1],
      ]);
      const http = s[0]!.health!.checks[2]![0]!.spec;
      assert.equal(http.kind, 'http');
      assert.deepEqual(http.kind === 'http' && http.urls, [{ path: '/a b#c!d' }]);
      assert.equal(http.kind === 'http' && http.virtualHost, 'www.example.com');
    });

    it('"\\#" and "\\!" outside quotes are literal characters', () => {
      const c = onlyCheck(vsRs('MISC_CHECK {\n misc_path /bin/check\\#1 a\\!b\n}'));
      assert.deepEqual(c.spec.kind === 'external' && [c.spec.command, ...c.spec.args], ['/bin/check#1', 'a!b']);
    });

    it('keeps the line of every statement, across CR, LF and CRLF line ends', () => {
      const e = parseError('virtual_server 10.0.0.1 80 {\r\n\r  lb_algo rr\n\r\n  weight_x 1\n}\n');
      assert.deepEqual(e.location, { file: 'test.conf', line: 5 });
    });
  });

  describe('errors name file, line and what was expected', () => {
    const cases: { description: string; input: string; line: number; message: RegExp | string }[] = [
      { description: 'unterminated quote', input: 'virtual_server 10.0.0.1 80 {\n  virtualhost "abc\n}\n', line: 2, message: 'unterminated quote: a " without its closing "' },
      { description: 'extra "}"', input: `${vs('lb_algo rr')}}\n`, line: 4, message: 'unexpected "}": no block is open' },
      { description: 'missing "}"', input: 'virtual_server 10.0.0.1 80 {\n  real_server 10.1.1.1 80 {\n    weight 1\n}\n', line: 4, message: /^missing "}": the block of "virtual_server" opened at test.conf:1 is not closed$/ },
      { description: '"{" without a keyword', input: '{\n}\n', line: 1, message: 'unexpected "{": a block must follow a keyword' },
      { description: 'a second "{" for one keyword', input: 'virtual_server 10.0.0.1 80 {\n}\n{\n}\n', line: 3, message: 'unexpected "{": a block must follow a keyword' },
      { description: 'virtual_server without a block', input: 'virtual_server 10.0.0.1 80\n', line: 1, message: '"virtual_server" needs a { ... } block' },
      { description: 'virtual_server without a value', input: 'virtual_server {\n}\n', line: 1, message: /^virtual_server: missing value; expected "virtual_server ADDRESS \[PORT\]/ },
      { description: 'virtual_server with a host name', input: vs('', 'www.example.com 80'), line: 1, message: 'virtual_server: "www.example.com" is a host name; keepalived and Saru need a numeric address' },
      { description: 'virtual_server with a bad address', input: vs('', '10.0.0.300 80'), line: 1, message: 'virtual_server: expected an IPv4 or IPv6 address, got "10.0.0.300"' },
      { description: 'virtual_server with a bad port', input: vs('', '10.0.0.1 65536'), line: 1, message: 'virtual_server port: 65536 is out of range 0..65535' },
      { description: 'virtual_server with a third word', input: vs('', '10.0.0.1 80 tcp'), line: 1, message: /^virtual_server: unexpected "tcp"/ },
      { description: 'virtual_server fwmark without a number', input: vs('', 'fwmark'), line: 1, message: 'expected "virtual_server fwmark NUMBER"' },
      { description: 'fwmark 0', input: vs('persistence_timeout', 'fwmark 0'), line: 1, message: 'virtual_server fwmark: 0 is out of range 1..4294967295' },
      { description: 'no port, not persistent', input: vs('lb_algo rr', '10.0.0.1'), line: 1, message: 'virtual service 10.0.0.1 has no port; a virtual server without a port must be persistent (persistence_timeout)' },
      { description: 'unknown group', input: vs('lb_algo rr', 'group NOPE'), line: 1, message: 'virtual_server group "NOPE": no virtual_server_group of that name' },
      { description: 'unknown top-level keyword', input: 'virtual_sever 10.0.0.1 80 {\n}\n', line: 1, message: /^unknown top-level keyword "virtual_sever"; expected virtual_server, virtual_server_group or one of keepalived's global\/VRRP\/BFD blocks \(global_defs, / },
      { description: 'a virtual_server keyword at top level', input: 'lb_algo rr\n', line: 1, message: '"lb_algo" belongs inside a virtual_server block' },
      { description: 'a checker at top level', input: 'TCP_CHECK {\n}\n', line: 1, message: '"TCP_CHECK" belongs inside a virtual_server block' },
      { description: 'unknown virtual_server keyword', input: vs('lb_algo rr\nlb_algorithm rr'), line: 3, message: /^unknown keyword "lb_algorithm" in virtual_server; expected one of: delay_loop, lb_algo, lvs_sched, lb_kind, lvs_method, / },
      { description: 'checker directly in virtual_server', input: vs('TCP_CHECK {\n}'), line: 2, message: 'TCP_CHECK belongs inside a real_server block' },
      { description: 'missing value', input: vs('delay_loop'), line: 2, message: 'delay_loop: missing value; expected "delay_loop SECONDS"' },
      { description: 'extra value', input: vs('delay_loop 6 7'), line: 2, message: 'delay_loop: unexpected "7"; expected "delay_loop SECONDS"' },
      { description: 'delay_loop 0', input: vs('delay_loop 0'), line: 2, message: 'delay_loop: must be greater than 0 seconds' },
      { description: 'delay_loop not a number', input: vs('delay_loop 6s'), line: 2, message: 'delay_loop: expected seconds (e.g. 3 or 2.5), got "6s"' },
      { description: 'a keyword given a block', input: vs('delay_loop 6 {\n}'), line: 2, message: '"delay_loop" does not take a { } block; expected "delay_loop SECONDS"' },
      { description: 'unknown scheduler', input: vs('lb_algo twos'), line: 2, message: `lb_algo: unknown or unsupported scheduler "twos"; expected one of ${SCHEDULER_NAMES.join(', ')}` },
      { description: 'bad lb_kind', input: vs('lb_kind GATE'), line: 2, message: 'lb_kind: expected NAT, DR or TUN, got "GATE"' },
      { description: 'TUN type gue', input: vs('lvs_method TUN type gue'), line: 2, message: 'lvs_method TUN type gue: tunnel types other than ipip are not supported' },
      { description: 'DR with options', input: vs('lb_kind DR type ipip'), line: 2, message: 'lb_kind: unexpected "type"; expected "lb_kind NAT|DR|TUN"' },
      { description: 'persistence_timeout 0', input: vs('persistence_timeout 0'), line: 2, message: 'persistence_timeout: 0 is out of range 1..4294967295' },
      { description: 'non-contiguous granularity', input: vs('persistence_granularity 255.0.255.0'), line: 2, message: 'persistence_granularity 255.0.255.0 is not a contiguous netmask' },
      { description: 'IPv6 granularity out of range', input: vs('persistence_granularity 129', '2001:db8::1 80'), line: 2, message: 'persistence_granularity (IPv6 prefix length): 129 is out of range 1..128' },
      { description: 'IPv4 netmask on an IPv6 service', input: vs('persistence_granularity 255.255.255.0', '2001:db8::1 80'), line: 2, message: 'persistence_granularity 255.255.255.0 is for IPv4, but the virtual service is IPv6' },
      { description: 'persistence_engine', input: vs('persistence_engine sip'), line: 2, message: 'persistence_engine is not supported (Saru has no persistence engines such as sip)' },
      { description: 'protocol SCTP', input: vs('protocol SCTP'), line: 2, message: 'protocol SCTP is not supported (Saru balances TCP and UDP)' },
      { description: 'protocol ICMP', input: vs('protocol ICMP'), line: 2, message: 'protocol: expected TCP or UDP, got "ICMP"' },
      { description: 'sorry_server without address', input: vs('sorry_server'), line: 2, message: 'sorry_server: missing value; expected "sorry_server ADDRESS [PORT]"' },
      { description: 'IPv6 sorry_server on IPv4', input: vs('sorry_server 2001:db8::9 80'), line: 2, message: 'sorry_server 2001:db8::9 is IPv6 but the virtual service is not (only a TUN sorry server may differ)' },
      { description: 'bad bool', input: vs('alpha maybe'), line: 2, message: 'alpha: expected on|off|true|false|yes|no, got "maybe"' },
      { description: 'ip_family bad', input: vs('ip_family ipv6', 'fwmark 1'), line: 2, message: 'ip_family: expected inet or inet6, got "ipv6"' },
      { description: 'real_server without address', input: vs('real_server {\n}'), line: 2, message: 'real_server: missing value; expected "real_server ADDRESS [PORT] { ... }"' },
      { description: 'real_server without block', input: vs('real_server 10.1.1.1 80'), line: 2, message: '"real_server" needs a { ... } block' },
      { description: 'real_server with a bad port', input: vs('real_server 10.1.1.1 http {\n}'), line: 2, message: 'real_server port: expected an integer 0..65535, got "http"' },
      { description: 'weight 65536', input: vsRs('weight 65536'), line: 3, message: 'weight must be 0..65535, got 65536' },
      { description: 'weight -1', input: vsRs('weight -1'), line: 3, message: 'weight must be 0..65535, got -1' },
      { description: 'weight not a number', input: vsRs('weight heavy'), line: 3, message: 'weight: expected an integer 0..65535, got "heavy"' },
      { description: 'unknown real_server keyword', input: vsRs('weight 1\nwieght 2'), line: 4, message: /^unknown keyword "wieght" in real_server; expected one of: weight, lvs_method, lb_kind, uthreshold, lthreshold, inhibit_on_failure, alpha, retry, delay_before_retry, connect_timeout, delay_loop, virtualhost, notify_up, notify_down, warmup, smtp_alert, snmp_name, HTTP_GET, SSL_GET, TCP_CHECK, SMTP_CHECK, UDP_CHECK, PING_CHECK, MISC_CHECK$/ },
      { description: 'duplicate real_server', input: vs('real_server 10.1.1.1 80 {\n}\nreal_server 10.1.1.1 80 {\n}'), line: 4, message: 'duplicate real_server 10.1.1.1 80 (first defined at test.conf:2)' },
      { description: 'real servers of two families', input: vs('real_server 10.1.1.1 80 {\n}\nreal_server 2001:db8::1 80 {\n}', 'fwmark 1'), line: 4, message: 'real_server 2001:db8::1 is IPv6 but 10.1.1.1 is IPv4; one virtual server\'s real servers must share a family' },
      { description: 'IPv6 real server of an IPv4 service', input: vs('real_server 2001:db8::1 80 {\n}'), line: 1, message: 'virtual service 10.0.0.1 is IPv4 but its real servers are IPv6 (only TUN real servers may differ)' },
      { description: 'DNS_CHECK', input: vsRs('DNS_CHECK {\n}'), line: 3, message: 'DNS_CHECK is not supported (Saru runs HTTP_GET, SSL_GET, TCP_CHECK, SMTP_CHECK, UDP_CHECK, PING_CHECK, MISC_CHECK)' },
      { description: 'BFD_CHECK', input: vsRs('BFD_CHECK {\nname x\n}'), line: 3, message: /^BFD_CHECK is not supported/ },
      { description: 'FILE_CHECK', input: vsRs('FILE_CHECK {\ntrack_file f\n}'), line: 3, message: /^FILE_CHECK is not supported/ },
      { description: 'checker with arguments', input: vsRs('TCP_CHECK now {\n}'), line: 3, message: 'TCP_CHECK: unexpected "now"; expected "TCP_CHECK { ... }"' },
      { description: 'checker without block', input: vsRs('TCP_CHECK'), line: 3, message: '"TCP_CHECK" needs a { ... } block' },
      { description: 'unknown checker keyword', input: vsRs('TCP_CHECK {\nconnect_port 80\nhelo_name x\n}'), line: 5, message: /^unknown keyword "helo_name" in TCP_CHECK; expected one of: connect_ip, connect_port, bindto, bind_if, bind_port, connect_timeout, fwmark, retry, /},
      { description: 'connect_port 0', input: vsRs('TCP_CHECK {\nconnect_port 0\n}'), line: 4, message: 'connect_port port: 0 is out of range 1..65535' },
      { description: 'connect_ip host name', input: vsRs('TCP_CHECK {\nconnect_ip rs1.example.com\n}'), line: 4, message: 'connect_ip: "rs1.example.com" is a host name; keepalived and Saru need a numeric address' },
      { description: 'connect_timeout 0', input: vsRs('TCP_CHECK {\nconnect_timeout 0\n}'), line: 4, message: 'connect_timeout: must be greater than 0 seconds' },
      { description: 'retry negative', input: vsRs('TCP_CHECK {\nretry -1\n}'), line: 4, message: 'retry: expected an integer 0..4294967295, got "-1"' },
      { description: 'port-less real server, TCP_CHECK without connect_port', input: vs('real_server 10.1.1.1 {\nTCP_CHECK {\n}\n}', 'fwmark 1'), line: 3, message: 'TCP_CHECK of real_server 10.1.1.1 (written without a port) needs connect_port' },
      { description: 'HTTP_GET without url', input: vsRs('HTTP_GET {\nconnect_timeout 3\n}'), line: 3, message: 'HTTP_GET needs at least one url { path /... } block' },
      { description: 'url without path', input: vsRs('HTTP_GET {\nurl {\ndigest 640205b7b0fc66c1ea91c463fac6334d\n}\n}'), line: 4, message: 'url needs a path (path /...)' },
      { description: 'url path not absolute', input: vsRs('SSL_GET {\nurl {\npath index.html\n}\n}'), line: 5, message: 'path: expected a request path starting with "/", got "index.html"' },
      { description: 'short digest', input: vsRs('HTTP_GET {\nurl {\npath /\ndigest 640205b7\n}\n}'), line: 6, message: 'digest: expected 32 hex digits (genhash\'s MD5), got "640205b7"' },
      { description: 'status_code out of range', input: vsRs('HTTP_GET {\nurl {\npath /\nstatus_code 200 700\n}\n}'), line: 6, message: 'status_code: expected a code or range within 100-599 (e.g. 200 or 200-299), got "700"' },
      { description: 'status_code reversed range', input: vsRs('HTTP_GET {\nurl {\npath /\nstatus_code 299-200\n}\n}'), line: 6, message: /got "299-200"$/ },
      { description: 'invalid regex', input: vsRs('HTTP_GET {\nurl {\npath /\nregex "a(b"\n}\n}'), line: 6, message: /^regex: invalid regular expression "a\(b"/ },
      { description: 'regex_no_match', input: vsRs('HTTP_GET {\nurl {\npath /\nregex ok\nregex_no_match\n}\n}'), line: 7, message: 'regex_no_match is not supported (Saru\'s HTTP check matches "regex" anywhere in the body)' },
      { description: 'unknown url keyword', input: vsRs('HTTP_GET {\nurl {\npath /\nstatus 200\n}\n}'), line: 6, message: /^unknown keyword "status" in url; expected one of: path, digest, status_code, virtualhost, regex, / },
      { description: 'UDP payload not hex', input: vsRs('UDP_CHECK {\npayload 12 zz\n}'), line: 4, message: 'payload: expected hex digits, got "zz"' },
      { description: 'UDP require_reply with data', input: vsRs('UDP_CHECK {\nrequire_reply 0a0b\n}'), line: 4, message: 'require_reply with reply data to match is not supported (only "require_reply" alone)' },
      { description: 'UDP max_reply_length', input: vsRs('UDP_CHECK {\nmax_reply_length 10\n}'), line: 4, message: 'max_reply_length is not supported (Saru\'s UDP check does not check the reply length)' },
      { description: 'MISC_CHECK without misc_path', input: vsRs('MISC_CHECK {\nmisc_timeout 5\n}'), line: 3, message: 'MISC_CHECK needs misc_path' },
      { description: 'MISC_CHECK with connect_ip', input: vsRs('MISC_CHECK {\nmisc_path /bin/true\nconnect_ip 10.1.1.1\n}'), line: 5, message: /^unknown keyword "connect_ip" in MISC_CHECK; expected one of: retry, / },
      { description: 'misc_path with an open quote', input: vsRs('MISC_CHECK {\nmisc_path "/bin/x \'a b"\n}'), line: 4, message: 'misc_path: unterminated quote or trailing "\\" in the command' },
      { description: 'SMTP host with helo_name', input: vsRs('SMTP_CHECK {\nhost {\nhelo_name x\n}\n}'), line: 5, message: /^unknown keyword "helo_name" in SMTP_CHECK host; expected one of: connect_ip, / },
      { description: 'group without entries', input: 'virtual_server_group G {\n}\n', line: 1, message: 'virtual_server_group "G" has no entries' },
      { description: 'group defined twice', input: 'virtual_server_group G {\n10.0.0.1 80\n}\nvirtual_server_group G {\n10.0.0.2 80\n}\n', line: 4, message: 'duplicate virtual_server_group "G" (first defined at test.conf:1)' },
      { description: 'group range backwards', input: 'virtual_server_group G {\n10.0.0.9-3 80\n}\n', line: 2, message: 'virtual_server_group entry "10.0.0.9-3": the range ends before it starts' },
      { description: 'group range end above 255', input: 'virtual_server_group G {\n10.0.0.1-256 80\n}\n', line: 2, message: 'virtual_server_group entry range end: 256 is out of range 0..255' },
      { description: 'IPv6 group range end not hex', input: 'virtual_server_group G {\nae00::2-9g 80\n}\n', line: 2, message: 'virtual_server_group entry "ae00::2-9g": an IPv6 range ends in the last 16-bit group, in hex (0..ffff)' },
      { description: 'group range too large', input: 'virtual_server_group G {\n10.0.0.0/8 80\n}\n', line: 2, message: 'virtual_server_group entry "10.0.0.0/8" has 16777216 addresses; at most 65536' },
      { description: 'group fwmark family bad', input: 'virtual_server_group G {\nfwmark 1 ipv6\n}\n', line: 2, message: 'fwmark: expected inet or inet6, got "ipv6"' },
      { description: 'group entry with a block', input: 'virtual_server_group G {\n10.0.0.1 80 {\n}\n}\n', line: 2, message: 'a virtual_server_group entry does not take a { } block' },
      { description: 'group entry with a bad port', input: 'virtual_server_group G {\n10.0.0.1 80 81\n}\n', line: 2, message: /^10.0.0.1: unexpected "81"/ },
      { description: 'duplicate service across blocks', input: `${vs('lb_algo rr')}${vs('lb_algo wrr')}`, line: 4, message: 'duplicate virtual service TCP 10.0.0.1 80 (first defined at test.conf:1)' },
      { description: 'duplicate service through a group', input: `virtual_server_group G {\n10.0.0.1 80\n}\n${vs('lb_algo rr')}${vs('lb_algo rr', 'group G')}`, line: 2, message: 'duplicate virtual service TCP 10.0.0.1 80 (first defined at test.conf:4)' },
      { description: 'group member of the wrong family', input: `virtual_server_group G {\n10.0.0.1 80\n2001:db8::1 80\n}\n${vs('real_server 10.1.1.1 80 {\n}', 'group G')}`, line: 3, message: 'virtual service 2001:db8::1 is IPv6 but its real servers are IPv4 (only TUN real servers may differ)' },
      { description: '~SEQ', input: '~SEQ(N, 1, 3) virtual_server 10.0.0.${N} 80 {\n', line: 1, message: '~SEQ(...) sequence/list blocks are not supported; write the lines out' },
      { description: '~LST', input: '~LST(N, 1, 2) x\n', line: 1, message: '~LST(...) sequence/list blocks are not supported; write the lines out' },
      { description: '${_RANDOM}', input: vs('delay_loop ${_RANDOM 1 5}'), line: 2, message: '${_RANDOM 1 5} is not supported (its value would differ on every load); use a fixed value' },
      { description: '${_INSTANCE} without an instance', input: vs('virtualhost ${_INSTANCE}'), line: 2, message: '${_INSTANCE} needs a config id (keepalived -i; opts.instance), and none was given' },
      { description: 'self-referential definition', input: '$A=x $A\nvirtual_server $A\n', line: 2, message: /^parameter substitution does not terminate/ },
      { description: 'multi-line definition used mid-line', input: '$RS= \\\n  weight 1\nvirtual_server 10.0.0.1 80 { $RS }\n', line: 3, message: 'multi-line definition $RS must be the last thing on its line' },
      { description: 'include with two patterns', input: 'include a.conf b.conf\n', line: 1, message: 'expected "include FILE-OR-PATTERN" (exactly one file name or glob pattern)' },
      { description: 'includea', input: 'includea a.conf\n', line: 1, message: '"includea" is not supported; use "include" (a pattern matching nothing is skipped)' },
    ];
    for (const c of cases) {
      it(c.description, () => {
        const e = parseError(c.input, NO_IO, 'test.conf');
        assert.deepEqual(e.location, { file: 'test.conf', line: c.line }, e.message);
        if (typeof c.message === 'string') assert.equal(e.message, `test.conf:${c.line}: ${c.message}`);
        else assert.match(e.message.slice(`test.conf:${c.line}: `.length), c.message, e.message);
      });
    }
  });

  describe('conditional lines (keepalived -i)', () => {
    const text = [
      '@main $PRIO=7',
      '@^main $PRIO=3',
      'virtual_server 10.0.0.1 80 {',
      '  @main lb_algo rr',
      '  @backup lb_algo wrr',
      '  @^main persistence_timeout 60',
      '  @main',
      '  real_server 10.1.1.1 80 {',
      '    weight $PRIO',
      '  }',
      '}',
    ].join('\n');
    const cases: { instance?: string; sched: string; persistent?: number; weight: number }[] = [
      { instance: 'main', sched: 'rr', weight: 7 },
      { instance: 'backup', sched: 'wrr', persistent: 60, weight: 3 },
      { sched: 'wlc', persistent: 60, weight: 3 },
    ];
    for (const c of cases) {
      it(`instance ${c.instance ?? '(none)'}: @ID lines ${c.instance ? `for ${c.instance}` : 'inactive'}, @^ID lines for the others`, () => {
        const s = services(text, { ...NO_IO, ...(c.instance ? { instance: c.instance } : {}) })[0]!;
        assert.equal(s.service.scheduler, c.sched);
        assert.equal(s.service.persistentTimeoutS, c.persistent);
        assert.equal(s.realServers[0]!.weight, c.weight);
      });
    }
  });

  describe('parameter substitution', () => {
    it('$NAME before a blank, ${NAME} anywhere, resolved at use time (keepalived.conf(5) example)', () => {
      const text = [
        '$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}',
        '$ADDRESS_BASE_SUB=0',
        'virtual_server ${ADDRESS_BASE}.100 80 {',
        '  real_server 10.1.1.1 80 {',
        '  }',
        '}',
        '$ADDRESS_BASE_SUB=10',
        '$SCHED = sh',
        'virtual_server ${ADDRESS_BASE}.100 80 {',
        '  lb_algo $SCHED',
        '  real_server 10.1.1.1 80 {',
        '  }',
        '}',
      ].join('\n');
      assert.deepEqual(services(text).map((s) => [s.service.address, s.service.scheduler]), [
        ['10.2.0.100', 'wlc'],
        ['10.2.10.100', 'sh'],
      ]);
    });

    it('an undefined parameter is left as written (and then fails where it is used)', () => {
      const e = parseError(vs('delay_loop $UNDEFINED'));
      assert.equal(e.message, 'test.conf:2: delay_loop: expected seconds (e.g. 3 or 2.5), got "$UNDEFINED"');
    });

    it('a parameter can hold a conditional prefix', () => {
      const text = `$IF_MAIN=@main\n${vs('$IF_MAIN lb_algo rr')}`;
      assert.equal(services(text, { ...NO_IO, instance: 'main' })[0]!.service.scheduler, 'rr');
      assert.equal(services(text)[0]!.service.scheduler, 'wlc');
    });

    it('multi-line definitions expand to several lines, nested, with definitions inside (keepalived.conf(5) example)', () => {
      const text = [
        '$RS= \\',
        '  real_server 192.168.${VS_NUM}.${RS_NUM} 80 { \\',
        '    weight ${RS_NUM} \\',
        '    inhibit_on_failure \\',
        '    MISC_CHECK { \\',
        '      misc_path "/bin/check ${VS_NUM} ${RS_NUM}" \\',
        '    } \\',
        '  }',
        '',
        '$VS= \\',
        '  virtual_server 10.0.${VS_NUM}.4 80 { \\',
        '    quorum 2 \\',
        '    $RS_NUM=1 \\',
        '    $RS \\',
        '    $RS_NUM=2 \\',
        '    $RS \\',
        '  }',
        '',
        '$VS_NUM=0',
        '$VS',
        '$VS_NUM=1',
        '$VS',
      ].join('\n');
      const cfg = parse(text);
      const s = keepalivedServices(cfg);
      assert.deepEqual(
        s.map((x) => [x.service.address, x.realServers.map((r) => `${r.address}/${r.weight}`)]),
        [
          ['10.0.0.4', ['192.168.0.1/1', '192.168.0.2/2']],
          ['10.0.1.4', ['192.168.1.1/1', '192.168.1.2/2']],
        ],
      );
      const misc = s[1]!.health!.checks[1]![0]!.spec;
      assert.deepEqual(misc.kind === 'external' && [misc.command, ...misc.args], ['/bin/check', '1', '2']);
      assert.equal(s[0]!.health!.quiescent, true);
      // Expanded lines report the line that used the definition.
      assert.deepEqual(cfg.ignored.map((i) => [i.line, i.what]), [
        [20, 'quorum 2 in virtual_server 10.0.0.4 80'],
        [22, 'quorum 2 in virtual_server 10.0.1.4 80'],
      ]);
    });

    it('predefined ${_PWD}, ${_INSTANCE}, ${_ENV NAME}, ${_HASH} and ${_BANG}', () => {
      const text = vsRs(
        'MISC_CHECK {\n misc_path "${_PWD}/check ${_INSTANCE} ${_ENV SITE} ${_HASH}${_BANG} ${_ENV UNSET}x"\n}',
      );
      const cfg = parseKeepalived(text, '/etc/keepalived/keepalived.conf', { ...NO_IO, instance: 'lb1', env: { SITE: 'paris' } });
      const spec = keepalivedServices(cfg)[0]!.health!.checks[0]![0]!.spec;
      assert.deepEqual(spec.kind === 'external' && [spec.command, ...spec.args], ['/etc/keepalived/check', 'lb1', 'paris', '#!', 'x']);
    });

    it('a user definition may replace a predefined one', () => {
      const s = services(`$_HASH=wrr\n${vs('lb_algo ${_HASH}')}`);
      assert.equal(s[0]!.service.scheduler, 'wrr');
    });
  });

  describe('include', () => {
    const main = [
      'include conf.d/*.conf',
      'virtual_server 10.0.0.1 80 {',
      '  include /etc/keepalived/rs/{a,b}.inc',
      '}',
    ].join('\n');
    const fs = memFs(
      {
        'keepalived.conf': main,
        'conf.d/10-web.conf': 'virtual_server 10.0.0.2 80 {\n  include ../rs/c?.inc\n}\n',
        'conf.d/20-dns.conf': 'virtual_server 10.0.0.3 53 {\n  protocol UDP\n}\n',
        'conf.d/.hidden.conf': 'this is never read\n',
        'rs/c1.inc': 'real_server 10.1.1.1 80 {\n}\n',
        'rs/cx.inc': 'real_server 10.1.1.2 80 {\n}\n',
        '/etc/keepalived/rs/a.inc': 'real_server 10.2.2.1 80 {\n}\n',
        '/etc/keepalived/rs/b.inc': 'real_server 10.2.2.2 80 {\n}\n',
      },
      { '.': ['keepalived.conf', 'conf.d', 'rs'], 'conf.d': ['20-dns.conf', '10-web.conf', '.hidden.conf', 'sub.conf', 'README'], rs: ['cx.inc', 'c1.inc', 'c10.inc'], 'conf.d/sub.conf': [] },
    );

    it('globs relative to the including file, in sorted order, nested, braces, absolute paths; blocks may span files', () => {
      const cfg = parseKeepalived(main, 'keepalived.conf', fs);
      assert.deepEqual(cfg.files, [
        'keepalived.conf',
        'conf.d/10-web.conf',
        'rs/c1.inc',
        'rs/cx.inc',
        'conf.d/20-dns.conf',
        '/etc/keepalived/rs/a.inc',
        '/etc/keepalived/rs/b.inc',
      ]);
      assert.deepEqual(
        keepalivedServices(cfg).map((s) => [s.service.address, s.service.protocol, s.realServers.map((r) => r.address), s.file, s.line]),
        [
          ['10.0.0.2', Proto.TCP, ['10.1.1.1', '10.1.1.2'], 'conf.d/10-web.conf', 1],
          ['10.0.0.3', Proto.UDP, [], 'conf.d/20-dns.conf', 1],
          ['10.0.0.1', Proto.TCP, ['10.2.2.1', '10.2.2.2'], 'keepalived.conf', 2],
        ],
      );
      assert.deepEqual(cfg.ignored, []);
    });

    it('an error inside an included file names that file and its line', () => {
      const bad = memFs({ 'a.conf': vs('lb_algo foo') }, {});
      const e = parseError('include a.conf\n', bad, 'keepalived.conf');
      assert.equal(e.message, `a.conf:2: lb_algo: unknown or unsupported scheduler "foo"; expected one of ${SCHEDULER_NAMES.join(', ')}`);
    });

    it('a pattern that matches nothing, or a file that cannot be read, is skipped and reported (as keepalived)', () => {
      const io = memFs({ 'locked.conf': '\0EACCES' }, { 'conf.d': [] });
      const cfg = parseKeepalived('include conf.d/*.conf\ninclude missing.conf\ninclude locked.conf\n', 'k.conf', io);
      assert.deepEqual(cfg.ignored, [
        { file: 'k.conf', line: 1, what: 'include conf.d/*.conf (no file matched)' },
        { file: 'k.conf', line: 2, what: 'include missing.conf (no file matched)' },
        { file: 'k.conf', line: 3, what: 'include locked.conf: locked.conf could not be read (EACCES: permission denied locked.conf); skipped' },
        { file: 'k.conf', line: 3, what: 'include locked.conf (no file matched)' },
      ]);
    });

    it('an include loop is an error naming the chain', () => {
      const io = memFs({ 'a.conf': 'include sub/b.conf\n', 'sub/b.conf': '\n\ninclude ../a.conf\n' });
      const e = parseError('include a.conf\n', io, 'main.conf');
      assert.equal(e.message, 'sub/b.conf:3: include loop: a.conf includes sub/b.conf includes a.conf');
    });

    it('include lines are recognised after conditional and parameter processing', () => {
      const io = memFs({ 'high.conf': vs('lb_algo rr') });
      assert.equal(services('$F=high.conf\n@high include $F\n', { ...io, instance: 'high' }).length, 1);
      assert.equal(services('$F=high.conf\n@high include $F\n', io).length, 0);
    });

    it('glob character classes and negation', () => {
      const io = memFs(
        { 'd/a1': vs('', '10.0.0.1 80'), 'd/b1': vs('', '10.0.0.2 80'), 'd/c1': vs('', '10.0.0.3 80') },
        { d: ['a1', 'b1', 'c1'] },
      );
      assert.deepEqual(services('include d/[^b]?\n', io).map((s) => s.service.address), ['10.0.0.1', '10.0.0.3']);
      // "!" starts a comment, in keepalived too: it has to be escaped.
      assert.deepEqual(services('include d/[\\!b]?\n', io).map((s) => s.service.address), ['10.0.0.1', '10.0.0.3']);
      assert.deepEqual(services('include d/[a-b]1\n', io).map((s) => s.service.address), ['10.0.0.1', '10.0.0.2']);
    });
  });

  describe('top level: what is ignored', () => {
    it('global, VRRP, BFD and static blocks are listed as ignored with their line', () => {
      const text = [
        'global_defs {',
        '  router_id LVS_DEVEL',
        '}',
        'net_namespace blue',
        'vrrp_script chk { script "x" }',
        'vrrp_sync_group G1 {',
        '  group {',
        '    VI_1',
        '  }',
        '}',
        'vrrp_instance VI_1 {',
        '  virtual_ipaddress {',
        '    192.168.200.16',
        '  }',
        '}',
        'static_ipaddress {',
        '}',
        'static_routes {',
        '}',
        'static_rules {',
        '}',
        'linkbeat_interfaces {',
        '  eth0',
        '}',
        'track_file tf {',
        '  file "/x"',
        '}',
        'bfd_instance b1 {',
        '}',
        'SSL {',
        '  ca /x',
        '}',
      ].join('\n');
      const cfg = parse(text);
      assert.deepEqual(cfg.virtualServers, []);
      assert.deepEqual(cfg.ignored.map((i) => `${i.line} ${i.what}`), [
        '1 global_defs',
        '4 net_namespace blue',
        '5 vrrp_script chk',
        '6 vrrp_sync_group G1',
        '11 vrrp_instance VI_1',
        '16 static_ipaddress',
        '18 static_routes',
        '20 static_rules',
        '22 linkbeat_interfaces',
        '25 track_file tf',
        '28 bfd_instance b1',
        '30 SSL',
      ]);
    });
  });

  describe('virtual_server', () => {
    it('defaults: NAT, wlc (ipvsadm), TCP, not persistent, delay_loop 60 s', () => {
      const cfg = parse(vsRs('TCP_CHECK {\n}'));
      const v = cfg.virtualServers[0]!;
      assert.equal(v.fwd, Fwd.NAT);
      assert.equal(v.scheduler, 'wlc');
      assert.equal(v.protocol, 'tcp');
      assert.equal(v.persistenceTimeoutS, undefined);
      assert.equal(v.delayLoopMs, 60000);
      const s = keepalivedServices(cfg)[0]!;
      assert.deepEqual(s.service, { protocol: Proto.TCP, scheduler: 'wlc', address: '10.0.0.1', port: 80 });
      assert.deepEqual(s.realServers, [{ address: '192.168.1.1', port: 80, weight: 1, fwd: Fwd.NAT }]);
      assert.deepEqual(s.health, {
        quiescent: false,
        checks: [[{ spec: { kind: 'connect', protocol: 'tcp', timeoutMs: 5000 }, intervalMs: 60000, attempts: 2, retryDelayMs: 1000, failureCount: 1 }]],
      });
      assert.equal(s.file, 'test.conf');
      assert.equal(s.line, 1);
    });

    it('IPv6 addresses are written plain', () => {
      const s = services(vs('real_server 2001:db8::10 8080 {\n}', '2001:db8::1 80'))[0]!;
      assert.deepEqual([s.service.address, s.realServers[0]!.address, s.realServers[0]!.port], ['2001:db8::1', '2001:db8::10', 8080]);
    });

    it('every scheduler of SCHEDULER_NAMES, as lb_algo and lvs_sched', () => {
      for (const name of SCHEDULER_NAMES) {
        for (const kw of ['lb_algo', 'lvs_sched']) {
          assert.equal(services(vs(`${kw} ${name}`))[0]!.service.scheduler, name);
        }
      }
    });

    const fwdCases: [string, Fwd][] = [
      ['lb_kind NAT', Fwd.NAT],
      ['lb_kind DR', Fwd.DR],
      ['lb_kind dr', Fwd.DR],
      ['lvs_method TUN', Fwd.TUN],
      ['lvs_method tun type ipip', Fwd.TUN],
      ['lvs_method Nat', Fwd.NAT],
    ];
    for (const [line, fwd] of fwdCases) {
      it(`${line} -> forwarding ${fwd} for the real servers without their own`, () => {
        const s = services(vs(`${line}\nreal_server 10.1.1.1 80 {\n}\nreal_server 10.1.1.2 80 {\n lvs_method DR\n}`))[0]!;
        assert.deepEqual(s.realServers.map((r) => r.fwd), [fwd, Fwd.DR]);
      });
    }

    const persistenceCases: { body: string; head?: string; timeout?: number; prefix?: number }[] = [
      { body: 'persistence_timeout 50', timeout: 50 },
      { body: 'persistence_timeout', timeout: 360 },
      { body: 'persistence_granularity 255.255.255.0', timeout: 360, prefix: 24 },
      { body: 'persistence_timeout 900\npersistence_granularity 255.255.0.0', timeout: 900, prefix: 16 },
      { body: 'persistence_granularity 255.255.255.255\npersistence_timeout 10', timeout: 10, prefix: 32 },
      { body: 'persistence_granularity 64', head: '2001:db8::1 80', timeout: 360, prefix: 64 },
      { body: 'persistence_granularity 48', head: 'fwmark 7', timeout: 360, prefix: 48 },
    ];
    for (const c of persistenceCases) {
      it(`${c.body.replace('\n', '; ')} -> persistent ${c.timeout} prefix ${c.prefix ?? '-'}`, () => {
        const s = services(vs(c.body, c.head))[0]!;
        assert.equal(s.service.persistentTimeoutS, c.timeout);
        assert.equal(s.service.persistentPrefix, c.prefix);
      });
    }

    it('a granularity with a "." makes a fwmark service IPv4, without one IPv6 (pgr_handler)', () => {
      assert.equal(services(vs('persistence_granularity 255.255.255.0', 'fwmark 7'))[0]!.service.family, 4);
      assert.equal(services(vs('persistence_granularity 48', 'fwmark 7'))[0]!.service.family, 6);
    });

    it('protocol TCP / UDP, case-insensitive', () => {
      assert.equal(services(vs('protocol UDP'))[0]!.service.protocol, Proto.UDP);
      assert.equal(services(vs('protocol udp'))[0]!.service.protocol, Proto.UDP);
      assert.equal(services(vs('protocol TCP'))[0]!.service.protocol, Proto.TCP);
    });

    it('port omitted: port 0, allowed when persistent', () => {
      const s = services(vs('persistence_timeout 600', '10.0.0.1'))[0]!;
      assert.deepEqual([s.service.port, s.service.persistentTimeoutS], [0, 600]);
    });

    it('sorry_server becomes the fallback with the service\'s forwarding, or sorry_server_lvs_method', () => {
      const a = services(vs('lb_kind DR\nsorry_server 192.168.200.200 1358'))[0]!;
      assert.deepEqual(a.service.fallback, { address: '192.168.200.200', port: 1358, weight: 1, fwd: Fwd.DR });
      const b = services(vs('sorry_server 192.168.200.200\nsorry_server_lvs_method TUN'))[0]!;
      assert.deepEqual(b.service.fallback, { address: '192.168.200.200', port: 0, weight: 1, fwd: Fwd.TUN });
      const c = services(vs('sorry_server 127.0.0.1 80'))[0]!;
      assert.equal(c.service.fallback!.fwd, Fwd.LOCAL);
    });

    it('sorry_server_inhibit is accepted and reported as ignored', () => {
      const cfg = parse(vs('sorry_server 10.9.9.9 80\nsorry_server_inhibit'));
      assert.equal(cfg.virtualServers[0]!.sorryServerInhibit, true);
      assert.deepEqual(cfg.ignored, [{ file: 'test.conf', line: 3, what: 'sorry_server_inhibit in virtual_server 10.0.0.1 80' }]);
    });

    it('inhibit_on_failure: the virtual server\'s is the default, a real server\'s overrides; disagreement gives quiescentPerServer', () => {
      const rs = (n: number, extra = ''): string => `real_server 10.1.1.${n} 80 {\n${extra}\nTCP_CHECK {\n}\n}`;
      const all = services(vs(`inhibit_on_failure\n${rs(1)}\n${rs(2)}`))[0]!.health!;
      assert.equal(all.quiescent, true);
      assert.equal(all.quiescentPerServer, undefined);
      const mixed = services(vs(`inhibit_on_failure\n${rs(1)}\n${rs(2, 'inhibit_on_failure off')}\n${rs(3, 'inhibit_on_failure no')}`))[0]!.health!;
      assert.equal(mixed.quiescent, false);
      assert.deepEqual(mixed.quiescentPerServer, [true, false, false]);
      const one = services(vs(`${rs(1, 'inhibit_on_failure')}\n${rs(2, 'inhibit_on_failure yes')}`))[0]!.health!;
      assert.equal(one.quiescent, true);
      const none = services(vs(`${rs(1)}`))[0]!.health!;
      assert.equal(none.quiescent, false);
    });

    it('alpha -> startDown; a different alpha on a real server or checker is reported', () => {
      const cfg = parse(vs('alpha\nreal_server 10.1.1.1 80 {\nalpha off\nTCP_CHECK {\nalpha no\n}\n}'));
      assert.equal(keepalivedServices(cfg)[0]!.health!.startDown, true);
      assert.deepEqual(cfg.ignored.map((i) => [i.line, i.what]), [
        [3, 'alpha off on real_server 10.1.1.1 (Saru applies alpha per virtual server: on)'],
        [5, 'alpha off on TCP_CHECK of real_server 10.1.1.1 (Saru applies alpha per virtual server: on)'],
      ]);
      assert.equal(services(vsRs('TCP_CHECK {\n}'))[0]!.health!.startDown, undefined);
    });

    it('ops sets one-packet scheduling for UDP and fwmark services only', () => {
      assert.equal(services(vs('protocol UDP\nops'))[0]!.service.onePacket, true);
      assert.equal(services(vs('ops', 'fwmark 4'))[0]!.service.onePacket, true);
      assert.equal(services(vs('ops'))[0]!.service.onePacket, undefined);
    });

    it('protocol on a fwmark service is ignored and reported, as keepalived does', () => {
      const cfg = parse(vs('protocol UDP', 'fwmark 4'));
      assert.equal(keepalivedServices(cfg)[0]!.service.protocol, Proto.TCP);
      assert.deepEqual(cfg.ignored, [{ file: 'test.conf', line: 2, what: 'protocol UDP in virtual_server fwmark 4 (a fwmark service takes every protocol)' }]);
    });

    const flagCases: [string, number][] = [
      ['flag-1', SvcFlag.SCHED1],
      ['sh-fallback', SvcFlag.SCHED1],
      ['mh-fallback', SvcFlag.SCHED1],
      ['flag-2', SvcFlag.SCHED2],
      ['sh-port', SvcFlag.SCHED2],
      ['mh-port', SvcFlag.SCHED2],
      ['flag-3', SvcFlag.SCHED3],
      ['sh-fallback\nsh-port', SvcFlag.SCHED1 | SvcFlag.SCHED2],
    ];
    for (const [body, flags] of flagCases) {
      it(`${body.replace('\n', ' + ')} -> scheduler flags ${flags}`, () => {
        assert.equal(services(vs(`lb_algo sh\n${body}`))[0]!.service.schedFlags, flags);
      });
    }

    it('ip_family inet6 makes a fwmark service IPv6; fwmark family follows the real servers otherwise', () => {
      assert.equal(services(vs('ip_family inet6', 'fwmark 3'))[0]!.service.family, 6);
      assert.equal(services(vs('real_server 2001:db8::5 {\n}', 'fwmark 3'))[0]!.service.family, 6);
      assert.equal(services(vs('real_server 10.1.1.5 {\n}', 'fwmark 3'))[0]!.service.family, 4);
      assert.equal(services(vs('', 'fwmark 3'))[0]!.service.family, 4);
    });

    it('keywords keepalived uses for itself are accepted and listed as ignored', () => {
      const body = [
        'alpha',
        'omega',
        'quorum 7',
        'hysteresis 2',
        'quorum_up "/usr/local/sbin/up.sh arg" root',
        'quorum_down /usr/local/sbin/down.sh',
        'ha_suspend',
        'hashed',
        'smtp_alert',
        'snmp_name web',
        'weight 3',
        'warmup 5',
      ].join('\n');
      const cfg = parse(vs(body));
      assert.deepEqual(cfg.ignored.map((i) => `${i.line} ${i.what}`), [
        '3 omega in virtual_server 10.0.0.1 80',
        '4 quorum 7 in virtual_server 10.0.0.1 80',
        '5 hysteresis 2 in virtual_server 10.0.0.1 80',
        '6 quorum_up "/usr/local/sbin/up.sh arg" root in virtual_server 10.0.0.1 80',
        '7 quorum_down /usr/local/sbin/down.sh in virtual_server 10.0.0.1 80',
        '8 ha_suspend in virtual_server 10.0.0.1 80',
        '9 hashed in virtual_server 10.0.0.1 80',
        '10 smtp_alert in virtual_server 10.0.0.1 80',
        '11 snmp_name web in virtual_server 10.0.0.1 80',
        '12 weight 3 in virtual_server 10.0.0.1 80',
        '13 warmup 5 in virtual_server 10.0.0.1 80',
      ]);
    });

    it('virtual server defaults for its checkers: delay_loop, retry, delay_before_retry, connect_timeout, virtualhost', () => {
      const c = onlyCheck(
        vsRs(
          'HTTP_GET {\nurl {\npath /\n}\n}',
          'delay_loop 2.5\nretry 4\ndelay_before_retry 0.5\nconnect_timeout 7\nvirtualhost www.example.com',
        ),
      );
      assert.deepEqual(c, {
        spec: { kind: 'http', tls: false, method: 'GET', urls: [{ path: '/' }], timeoutMs: 7000, virtualHost: 'www.example.com' },
        intervalMs: 2500,
        attempts: 5,
        retryDelayMs: 500,
        failureCount: 1,
      });
    });
  });

  describe('virtual_server group', () => {
    it('expands addresses, IPv4 last-octet ranges, full ranges, CIDR and fwmarks, in order', () => {
      const text = [
        'virtual_server_group G {',
        '  10.0.0.1 8080',
        '  10.0.0.5-7 80',
        '  10.0.0.254-10.0.1.1 443',
        '  10.0.2.8/30',
        '  fwmark 1',
        '  fwmark 2 inet',
        '}',
        vs('persistence_timeout 50\nreal_server 10.1.1.1 80 {\n}', 'group G'),
      ].join('\n');
      const s = services(text);
      assert.deepEqual(
        s.map((x) => (x.service.fwmark ? `fwm ${x.service.fwmark}/${x.service.family}` : `${x.service.address}:${x.service.port}`)),
        [
          '10.0.0.1:8080',
          '10.0.0.5:80', '10.0.0.6:80', '10.0.0.7:80',
          '10.0.0.254:443', '10.0.0.255:443', '10.0.1.0:443', '10.0.1.1:443',
          '10.0.2.8:0', '10.0.2.9:0', '10.0.2.10:0', '10.0.2.11:0',
          'fwm 1/4', 'fwm 2/4',
        ],
      );
      for (const x of s) {
        assert.equal(x.service.persistentTimeoutS, 50);
        assert.deepEqual(x.realServers, [{ address: '10.1.1.1', port: 80, weight: 1, fwd: Fwd.NAT }]);
        assert.equal(x.line, 9);
      }
    });

    it('IPv6 ranges end in a hex group (inet_stor); fwmark inet6', () => {
      const text = 'virtual_server_group G6 {\n ae00::8-b 80\n fwmark 9 inet6\n}\n' + vs('real_server ae00::10 80 {\n}', 'group G6');
      assert.deepEqual(
        services(text).map((x) => (x.service.fwmark ? `fwm ${x.service.fwmark}/${x.service.family}` : x.service.address)),
        ['ae00::8', 'ae00::9', 'ae00::a', 'ae00::b', 'fwm 9/6'],
      );
    });

    it('a group may be defined after the virtual_server that uses it', () => {
      assert.equal(services(`${vs('lb_algo rr', 'group LATE')}virtual_server_group LATE {\n10.0.0.9 80\n}\n`).length, 1);
    });

    it('the errors of a group member name the member\'s line', () => {
      const e = parseError(`virtual_server_group G {\n10.0.0.1 80\n10.0.0.2\n}\n${vs('lb_algo rr', 'group G')}`);
      assert.equal(e.message, 'test.conf:3: virtual service 10.0.0.2 has no port; a virtual server without a port must be persistent (persistence_timeout)');
    });
  });

  describe('real_server', () => {
    it('port omitted -> 0; weight default 1, 0 and 65535 accepted; thresholds; loopback is local', () => {
      const s = services(
        vs(
          [
            'real_server 10.1.1.1 {\n}',
            'real_server 10.1.1.2 {\nweight 0\n}',
            'real_server 10.1.1.3 {\nweight 65535\nuthreshold 100\nlthreshold 50\n}',
            'real_server 127.0.0.1 {\n}',
          ].join('\n'),
          'fwmark 1',
        ),
      )[0]!;
      assert.deepEqual(s.realServers, [
        { address: '10.1.1.1', port: 0, weight: 1, fwd: Fwd.NAT },
        { address: '10.1.1.2', port: 0, weight: 0, fwd: Fwd.NAT },
        { address: '10.1.1.3', port: 0, weight: 65535, fwd: Fwd.NAT, upperThreshold: 100, lowerThreshold: 50 },
        { address: '127.0.0.1', port: 0, weight: 1, fwd: Fwd.LOCAL },
      ]);
      assert.equal(s.health, null, 'no checkers: no health checks');
    });

    it('a TUN real server may be of the other address family (as keepalived)', () => {
      const s = services(vs('real_server 2001:db8::7 80 {\nlvs_method TUN\n}\nreal_server 10.1.1.1 80 {\n}'))[0]!;
      assert.deepEqual(s.realServers.map((r) => [r.address, r.fwd]), [['2001:db8::7', Fwd.TUN], ['10.1.1.1', Fwd.NAT]]);
    });

    it('notify_up, notify_down, warmup, smtp_alert, snmp_name are reported as ignored', () => {
      const cfg = parse(vsRs('notify_up "/bin/up x"\nnotify_down /bin/down\nwarmup 3\nsmtp_alert off\nsnmp_name rs1'));
      assert.deepEqual(cfg.ignored.map((i) => `${i.line} ${i.what}`), [
        '3 notify_up "/bin/up x" in real_server 192.168.1.1 80 of virtual_server 10.0.0.1 80',
        '4 notify_down /bin/down in real_server 192.168.1.1 80 of virtual_server 10.0.0.1 80',
        '5 warmup 3 in real_server 192.168.1.1 80 of virtual_server 10.0.0.1 80',
        '6 smtp_alert off in real_server 192.168.1.1 80 of virtual_server 10.0.0.1 80',
        '7 snmp_name rs1 in real_server 192.168.1.1 80 of virtual_server 10.0.0.1 80',
      ]);
    });

    it('real server defaults for its checkers override the virtual server\'s; a checker\'s override both', () => {
      const s = services(
        vs(
          [
            'delay_loop 10',
            'retry 5',
            'real_server 10.1.1.1 80 {',
            '  delay_loop 3',
            '  retry 2',
            '  delay_before_retry 4',
            '  connect_timeout 9',
            '  virtualhost rs.example.com',
            '  TCP_CHECK {',
            '  }',
            '  HTTP_GET {',
            '    delay_loop 1',
            '    retry 0',
            '    delay_before_retry 0',
            '    connect_timeout 2',
            '    virtualhost chk.example.com',
            '    url {',
            '      path /',
            '      virtualhost url.example.com',
            '    }',
            '  }',
            '}',
          ].join('\n'),
        ),
      )[0]!;
      assert.deepEqual(s.health!.checks[0], [
        { spec: { kind: 'connect', protocol: 'tcp', timeoutMs: 9000 }, intervalMs: 3000, attempts: 3, retryDelayMs: 4000, failureCount: 1 },
        {
          spec: {
            kind: 'http',
            tls: false,
            method: 'GET',
            urls: [{ path: '/', virtualHost: 'url.example.com' }],
            timeoutMs: 2000,
            virtualHost: 'chk.example.com',
          },
          intervalMs: 1000,
          attempts: 1,
          retryDelayMs: 0,
          failureCount: 1,
        },
      ]);
    });
  });

  describe('checkers', () => {
    it('TCP_CHECK: connect_port, connect_ip, bindto, connect_timeout; ignored bind_if/bind_port/fwmark/warmup/log_all_failures', () => {
      const text = vsRs(
        'TCP_CHECK {\nconnect_port 8080\nconnect_ip 10.9.9.9\nbindto 10.0.0.250\nconnect_timeout 1.5\nbind_if eth0\nbind_port 5000\nfwmark 3\nwarmup 2\nlog_all_failures on\n}',
      );
      const cfg = parse(text);
      assert.deepEqual(keepalivedServices(cfg)[0]!.health!.checks[0]![0]!.spec, {
        kind: 'connect',
        protocol: 'tcp',
        port: 8080,
        address: '10.9.9.9',
        bindTo: '10.0.0.250',
        timeoutMs: 1500,
      });
      assert.deepEqual(cfg.ignored.map((i) => i.what.split(' in ')[0]), ['bind_if eth0', 'bind_port 5000', 'fwmark 3', 'warmup 2', 'log_all_failures on']);
    });

    it('HTTP_GET: several urls, digests, status_code forms, regex, keepalived\'s 3 s delay_before_retry', () => {
      const c = onlyCheck(
        vsRs(
          [
            'HTTP_GET {',
            '  url {',
            '    path /',
            '    digest FF20AD2481F97B1754EF3E12ECD3A9CC',
            '  }',
            '  url {',
            '    path /status',
            '    status_code 200-299 400-499 503 505',
            '    regex "^ok( [0-9]+)?$"',
            '  }',
            '  nb_get_retry 2',
            '}',
          ].join('\n'),
        ),
      );
      assert.deepEqual(c, {
        spec: {
          kind: 'http',
          tls: false,
          method: 'GET',
          urls: [
            { path: '/', digest: 'ff20ad2481f97b1754ef3e12ecd3a9cc' },
            { path: '/status', statusCodes: [[200, 299], [400, 499], [503, 503], [505, 505]], receive: '^ok( [0-9]+)?$' },
          ],
          timeoutMs: 5000,
        },
        intervalMs: 60000,
        attempts: 3,
        retryDelayMs: 3000,
        failureCount: 1,
      });
    });

    it('SSL_GET: tls, sni_name / sni_server_name, enable_sni uses the virtualhost; http_protocol etc. ignored', () => {
      const ssl = (body: string): RealServerCheck =>
        onlyCheck(vsRs(`virtualhost rs.example.com\nSSL_GET {\nurl {\npath /\n}\n${body}\n}`, '', '192.168.1.1 443'));
      const a = ssl('sni_name api.example.com').spec;
      assert.deepEqual(a.kind === 'http' && [a.tls, a.sniServerName, a.virtualHost], [true, 'api.example.com', 'rs.example.com']);
      const b = ssl('sni_server_name b.example.com').spec;
      assert.equal(b.kind === 'http' && b.sniServerName, 'b.example.com');
      const c = ssl('enable_sni').spec;
      assert.equal(c.kind === 'http' && c.sniServerName, 'rs.example.com');
      const d = ssl('').spec;
      assert.equal(d.kind === 'http' && d.sniServerName, undefined);
      const cfg = parse(vsRs('SSL_GET {\nurl {\npath /\ntls_compliant\n}\nhttp_protocol 1.1\nfast_recovery\ntls_compliant\n}'));
      assert.deepEqual(cfg.ignored.map((i) => i.what.split(' in ')[0]!.split(' of ')[0]), ['tls_compliant', 'http_protocol 1.1', 'fast_recovery', 'tls_compliant']);
    });

    it('SMTP_CHECK: helo_name (default keepalived\'s), each old host { } block is one check', () => {
      const plain = onlyCheck(vsRs('SMTP_CHECK {\n}', '', '192.168.1.1 25'));
      assert.deepEqual(plain.spec, { kind: 'smtp', helo: 'smtpchecker.keepalived.org', timeoutMs: 5000 });
      const s = services(
        vsRs(
          'SMTP_CHECK {\nhelo_name "foo.bar.com"\nconnect_timeout 10\nhost {\nconnect_ip 10.7.7.1\n}\nhost {\nconnect_ip 10.7.7.2\nconnect_port 587\nbindto 10.0.0.2\nconnect_timeout 2\n}\n}',
          '',
          '192.168.1.1 25',
        ),
      )[0]!;
      assert.deepEqual(s.health!.checks[0]!.map((c) => c.spec), [
        { kind: 'smtp', address: '10.7.7.1', helo: 'foo.bar.com', timeoutMs: 10000 },
        { kind: 'smtp', port: 587, address: '10.7.7.2', bindTo: '10.0.0.2', helo: 'foo.bar.com', timeoutMs: 2000 },
      ]);
    });

    it('UDP_CHECK: payload in keepalived\'s free hex format, require_reply', () => {
      const c = onlyCheck(vsRs('UDP_CHECK {\npayload Ab12f 3 456 546443123\nrequire_reply\nconnect_timeout 4\n}'));
      assert.deepEqual(c.spec, {
        kind: 'connect',
        protocol: 'udp',
        timeoutMs: 4000,
        payload: Uint8Array.from([0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]),
        requireReply: true,
      });
    });

    it('PING_CHECK: connect_ip and timeout only', () => {
      const c = onlyCheck(vsRs('PING_CHECK {\nretry 4\nconnect_ip 10.5.5.5\n}'));
      assert.deepEqual(c, { spec: { kind: 'ping', address: '10.5.5.5', timeoutMs: 5000 }, intervalMs: 60000, attempts: 5, retryDelayMs: 1000, failureCount: 1 });
    });

    it('MISC_CHECK: misc_path split honouring quotes, misc_timeout default = delay_loop, retry default 0, misc_dynamic, user', () => {
      const a = onlyCheck(vsRs('MISC_CHECK {\nmisc_path "/usr/local/bin/script.sh arg1 \'two words\' it\\\'s"\n}', 'delay_loop 6'));
      assert.deepEqual(a, {
        spec: { kind: 'external', command: '/usr/local/bin/script.sh', args: ['arg1', 'two words', "it's"], dynamicWeight: false, timeoutMs: 6000 },
        intervalMs: 6000,
        attempts: 1,
        retryDelayMs: 1000,
        failureCount: 1,
      });
      const cfg = parse(vsRs('MISC_CHECK {\nmisc_path /bin/check a b\nmisc_timeout 3\nmisc_dynamic\nuser nobody nogroup\nretry 2\n}'));
      assert.deepEqual(keepalivedServices(cfg)[0]!.health!.checks[0]![0], {
        spec: { kind: 'external', command: '/bin/check', args: ['a', 'b'], dynamicWeight: true, timeoutMs: 3000, user: 'nobody' },
        intervalMs: 60000,
        attempts: 3,
        retryDelayMs: 1000,
        failureCount: 1,
      });
      assert.match(cfg.ignored[0]!.what, /^group nogroup of user nobody nogroup in MISC_CHECK/);
    });

    it('less common keywords: lb_kind on a real server, regex_stack and misc connect_timeout ignored, user:group', () => {
      assert.equal(services(vsRs('lb_kind TUN'))[0]!.realServers[0]!.fwd, Fwd.TUN);
      const cfg = parse(vsRs('HTTP_GET {\nurl {\npath /\nregex_stack 1000 2000\n}\n}\nMISC_CHECK {\nmisc_path /bin/true\nconnect_timeout 3\nuser nobody:nogroup\n}'));
      assert.deepEqual(cfg.ignored.map((i) => i.what.split(' ')[0]), ['regex_stack', 'connect_timeout', 'group']);
      const misc = keepalivedServices(cfg)[0]!.health!.checks[0]![1]!.spec;
      assert.equal(misc.kind === 'external' && misc.user, 'nobody');
      assert.equal(parseError(vsRs('HTTP_GET {\nhttp_protocol 2.0\nurl {\npath /\n}\n}')).message, 'test.conf:4: http_protocol: expected 1.0, 1.0C or 1.1, got "2.0"');
      assert.equal(parseError(vsRs('HTTP_GET {\nurl {\npath /\nregex_options caseless\n}\n}')).message, 'test.conf:6: regex_options is not supported (Saru\'s HTTP check matches "regex" anywhere in the body)');
      assert.equal(parseError(vsRs('UDP_CHECK {\nmin_reply_length 1\n}')).message, 'test.conf:4: min_reply_length is not supported (Saru\'s UDP check does not check the reply length)');
    });

    it('several checkers on one real server are all kept, in order', () => {
      const s = services(vsRs('TCP_CHECK {\n}\nPING_CHECK {\n}\nMISC_CHECK {\nmisc_path /bin/true\n}'))[0]!;
      assert.deepEqual(s.health!.checks[0]!.map((c) => c.spec.kind), ['connect', 'ping', 'external']);
    });
  });

  describe('splitCommandLine (keepalived alloc_strvec_quoted_escaped)', () => {
    const cases: [string, string[] | null][] = [
      ['/bin/x a  b', ['/bin/x', 'a', 'b']],
      ["/bin/x 'a b' \"c d\"", ['/bin/x', 'a b', 'c d']],
      ['/bin/x \\x41\\101\\t\\cA', ['/bin/x', 'AA\t\x01']],
      ["/bin/x ''", ['/bin/x', '']],
      ['/bin/x "open', null],
      ['/bin/x \\', null],
    ];
    for (const [input, out] of cases) {
      it(JSON.stringify(input), () => assert.deepEqual(splitCommandLine(input), out));
    }
  });
});

describe('keepalived corpus (keepalived doc/samples)', () => {
  const expected: Record<string, { services: number; check?: (cfg: KeepalivedConfig, s: ConfiguredService[]) => void }> = {
    'keepalived.conf.HTTP_GET.port': {
      services: 1,
      check: (_cfg, s) => {
        assert.deepEqual(s[0]!.service, { protocol: Proto.TCP, scheduler: 'rr', address: '192.168.200.100', port: 443, persistentTimeoutS: 50 });
        const c = s[0]!.health!.checks[0]![0]!;
        assert.deepEqual(c.spec, { kind: 'http', tls: true, method: 'GET', port: 444, urls: [{ path: '/', digest: 'ff20ad2481f97b1754ef3e12ecd3a9cc' }], timeoutMs: 3000 });
        assert.deepEqual([c.intervalMs, c.attempts, c.retryDelayMs], [6000, 4, 3000]);
      },
    },
    'keepalived.conf.IPv6': {
      services: 1,
      check: (cfg, s) => {
        assert.equal(s[0]!.service.address, 'ae00::1');
        assert.deepEqual(s[0]!.realServers, [{ address: 'ae00::10', port: 25, weight: 1, fwd: Fwd.NAT }]);
        assert.deepEqual(s[0]!.health!.checks[0]![0]!.spec, { kind: 'smtp', helo: 'foo.bar.com', timeoutMs: 3000 });
        // The unused group is parsed: ae00::2-9 is eight addresses, then ae00::1.
        assert.deepEqual(cfg.groups[0]!.entries.map((e) => (e.kind === 'address' ? e.address : '')), [
          'ae00::2', 'ae00::3', 'ae00::4', 'ae00::5', 'ae00::6', 'ae00::7', 'ae00::8', 'ae00::9', 'ae00::1',
        ]);
      },
    },
    'keepalived.conf.PING_CHECK': {
      services: 1,
      check: (_cfg, s) => {
        assert.equal(s[0]!.service.protocol, Proto.UDP);
        assert.deepEqual(s[0]!.health!.checks[0]![0], { spec: { kind: 'ping', timeoutMs: 5000 }, intervalMs: 6000, attempts: 5, retryDelayMs: 1000, failureCount: 1 });
      },
    },
    'keepalived.conf.SMTP_CHECK': {
      services: 1,
      check: (_cfg, s) => {
        assert.equal(s[0]!.service.persistentTimeoutS, undefined);
        assert.deepEqual(s[0]!.health!.checks.map((c) => c.length), [1, 3, 3]);
        assert.deepEqual(s[0]!.health!.checks[2]![2]!.spec, { kind: 'smtp', port: 587, address: '64.233.167.100', helo: 'foo.bar.com', timeoutMs: 10000 });
        assert.deepEqual([s[0]!.health!.checks[0]![0]!.intervalMs, s[0]!.health!.checks[0]![0]!.attempts, s[0]!.health!.checks[0]![0]!.retryDelayMs], [60000, 3, 5000]);
      },
    },
    'keepalived.conf.SSL_GET': {
      services: 2,
      check: (cfg, s) => {
        assert.deepEqual(s.map((x) => x.service.port), [443, 80]);
        const a = s[0]!.health!.checks[0]![0]!.spec;
        const b = s[1]!.health!.checks[0]![0]!.spec;
        assert.deepEqual(a.kind === 'http' && [a.tls, a.urls.map((u) => u.path)], [true, ['/', '/mrtg/']]);
        assert.deepEqual(b.kind === 'http' && [b.tls, b.urls.map((u) => u.path)], [false, ['/', '/mrtg/']]);
        assert.deepEqual(cfg.ignored.map((i) => i.what), ['global_defs', 'vrrp_instance VI_1']);
      },
    },
    'keepalived.conf.UDP_CHECK': {
      services: 1,
      check: (_cfg, s) => {
        assert.deepEqual(s[0]!.health!.checks[0]![0], { spec: { kind: 'connect', protocol: 'udp', timeoutMs: 3000 }, intervalMs: 6000, attempts: 4, retryDelayMs: 3000, failureCount: 1 });
      },
    },
    'keepalived.conf.conditional_conf': {
      services: 0,
      check: (cfg) => assert.deepEqual(cfg.ignored.map((i) => `${i.line} ${i.what}`), ['6 vrrp_script check_VI_0', '15 vrrp_instance VI_0']),
    },
    'keepalived.conf.fwmark': {
      services: 1,
      check: (cfg, s) => {
        assert.deepEqual(cfg.ignored.map((i) => `${i.line} ${i.what}`), ['3 global_defs', '12 protocol TCP in virtual_server fwmark 1 (a fwmark service takes every protocol)']);
        assert.deepEqual(s[0]!.service, { protocol: Proto.TCP, scheduler: 'rr', fwmark: 1, family: 4, persistentTimeoutS: 900 });
        assert.deepEqual(s[0]!.realServers.map((r) => [r.address, r.port, r.fwd]), [['192.168.201.100', 0, Fwd.NAT], ['192.168.201.101', 0, Fwd.NAT]]);
        assert.deepEqual(s[0]!.health!.checks[1]![0]!.spec, { kind: 'connect', protocol: 'tcp', port: 80, timeoutMs: 3000 });
      },
    },
    'keepalived.conf.inhibit': {
      services: 1,
      check: (_cfg, s) => {
        assert.equal(s[0]!.health!.quiescent, true);
        assert.equal(s[0]!.health!.quiescentPerServer, undefined);
      },
    },
    'keepalived.conf.misc_check': {
      services: 1,
      check: (_cfg, s) => {
        assert.deepEqual(s[0]!.health!.checks[0]![0], {
          spec: { kind: 'external', command: '/usr/local/bin/script.sh', args: [], dynamicWeight: false, timeoutMs: 6000 },
          intervalMs: 6000,
          attempts: 1,
          retryDelayMs: 1000,
          failureCount: 1,
        });
      },
    },
    'keepalived.conf.misc_check_arg': {
      services: 1,
      check: (_cfg, s) => {
        const spec = s[0]!.health!.checks[0]![0]!.spec;
        assert.deepEqual(spec.kind === 'external' && [spec.command, spec.args], ['/usr/local/bin/script.sh', ['arg1', 'arg2']]);
      },
    },
    'keepalived.conf.quorum': {
      services: 1,
      check: (cfg, s) => {
        assert.equal(s[0]!.service.scheduler, 'wrr');
        assert.equal(s[0]!.realServers.length, 10);
        assert.equal(s[0]!.realServers[9]!.address, '10.0.0.10');
        assert.equal(s[0]!.realServers[9]!.port, 8080);
        assert.equal(s[0]!.health!.startDown, true);
        assert.deepEqual(cfg.ignored.map((i) => i.what.split(' ')[0]), ['omega', 'quorum', 'hysteresis', 'quorum_up', 'quorum_down']);
      },
    },
    'keepalived.conf.sample': {
      services: 1,
      check: (_cfg, s) => {
        assert.deepEqual(s[0]!.service.fallback, { address: '192.168.200.200', port: 1358, weight: 1, fwd: Fwd.NAT });
        assert.deepEqual(s[0]!.health!.checks[0]![0]!.spec, {
          kind: 'http',
          tls: false,
          method: 'GET',
          urls: [{ path: '/testurl3/test.jsp', digest: '640205b7b0fc66c1ea91c463fac6334d' }],
          timeoutMs: 3000,
        });
      },
    },
    'keepalived.conf.status_code': {
      services: 1,
      check: (_cfg, s) => {
        const spec = s[0]!.health!.checks[0]![0]!.spec;
        assert.deepEqual(spec.kind === 'http' && spec.urls, [
          { path: '/', statusCodes: [[200, 299], [400, 499], [503, 503], [505, 505]] },
          { path: '/mrtg/', digest: '9b3a0c85a887a256d6939da88aabd8cd', statusCodes: [[200, 200]] },
        ]);
      },
    },
    'keepalived.conf.track_interface': { services: 0 },
    'keepalived.conf.virtual_server_group': {
      services: 13,
      check: (_cfg, s) => {
        assert.deepEqual(s.slice(0, 4).map((x) => `${x.service.address}:${x.service.port}`), ['10.0.0.1:8080', '10.0.0.2:80', '192.168.200.1:1358', '192.168.200.3:80']);
        assert.deepEqual(s.slice(11).map((x) => [x.service.fwmark, x.service.family]), [[1, 4], [2, 4]]);
        for (const x of s) assert.equal(x.realServers.length, 2);
      },
    },
    'keepalived.conf.virtualhost': {
      services: 1,
      check: (_cfg, s) => {
        const spec = s[0]!.health!.checks[0]![0]!.spec;
        assert.deepEqual(spec.kind === 'http' && [spec.tls, spec.virtualHost], [true, 'www.firewall.loc']);
      },
    },
    'keepalived.conf.vrrp': { services: 0, check: (cfg) => assert.equal(cfg.ignored.length, 5) },
    'keepalived.conf.vrrp.localcheck': { services: 0, check: (cfg) => assert.equal(cfg.ignored.filter((i) => i.what.startsWith('vrrp_script')).length, 5) },
    'keepalived.conf.vrrp.lvs_syncd': {
      services: 1,
      check: (_cfg, s) => {
        assert.deepEqual(s[0]!.health!.checks[0]![0], { spec: { kind: 'connect', protocol: 'tcp', timeoutMs: 3000 }, intervalMs: 20000, attempts: 2, retryDelayMs: 1000, failureCount: 1 });
      },
    },
    'keepalived.conf.vrrp.routes': { services: 0 },
    'keepalived.conf.vrrp.rules': { services: 0 },
    'keepalived.conf.vrrp.scripts': { services: 0 },
    'keepalived.conf.vrrp.static_ipaddress': { services: 0 },
    'keepalived.conf.vrrp.sync': { services: 0, check: (cfg) => assert.equal(cfg.ignored.length, 11) },
  };

  it('every file of the corpus is covered by this table', () => {
    const files = readdirSync(corpusFile('')).filter((f) => f.startsWith('keepalived.conf')).sort();
    assert.deepEqual(files, Object.keys(expected).sort());
    // The corpus README: sixteen of them contain virtual_server blocks.
    assert.equal(Object.values(expected).filter((e) => e.services > 0).length, 16);
  });

  for (const [name, exp] of Object.entries(expected)) {
    it(`${name}: ${exp.services} virtual service(s), loads into the service model`, () => {
      const cfg = loadKeepalivedFile(corpusFile(name));
      const s = keepalivedServices(cfg);
      assert.equal(s.length, exp.services);
      for (const x of s) assert.equal(x.file, corpusFile(name));
      const t = new ServiceTable();
      reconcileServices(t, s);
      assert.equal(t.services.length, exp.services);
      exp.check?.(cfg, s);
    });
  }

  it('conditional_conf with -i high / -i low: the matching @ lines are active', () => {
    const high = loadKeepalivedFile(corpusFile('keepalived.conf.conditional_conf'), { instance: 'high' });
    assert.deepEqual(high.ignored.map((i) => `${i.line} ${i.what}`), ['3 net_namespace high', '6 vrrp_script check_VI_0', '15 vrrp_instance VI_0']);
    const low = loadKeepalivedFile(corpusFile('keepalived.conf.conditional_conf'), { instance: 'low' });
    assert.deepEqual(low.ignored.map((i) => `${i.line} ${i.what}`), ['4 net_namespace low', '6 vrrp_script check_VI_0', '15 vrrp_instance VI_0']);
  });

  describe('golden ipvsadm -L -n listings (reviewed against the configs)', () => {
    const golden: [string, string][] = [
      ['keepalived.conf.sample', 'sample.txt'],
      ['keepalived.conf.fwmark', 'fwmark.txt'],
      ['keepalived.conf.virtual_server_group', 'virtual_server_group.txt'],
      ['keepalived.conf.IPv6', 'IPv6.txt'],
      ['keepalived.conf.inhibit', 'inhibit.txt'],
    ];
    for (const [conf, txt] of golden) {
      it(`${conf} -> golden/${txt}`, () => {
        const cfg = loadKeepalivedFile(corpusFile(conf));
        assert.equal(listing(cfg), readFileSync(join(GOLDEN, txt), 'utf8'));
      });
    }
  });
});

// ---- properties ----------------------------------------------------------------------------

interface GenCheck {
  kind: 'tcp' | 'http';
  port?: number;
  path: string;
  status?: [number, number];
}
interface GenReal {
  host: number;
  port: number;
  weight: number;
  fwd?: 'NAT' | 'DR' | 'TUN';
  inhibit: boolean;
  check: GenCheck | null;
}
interface GenVs {
  fwmark: boolean;
  id: number;
  port: number;
  udp: boolean;
  sched: string;
  fwd: 'NAT' | 'DR' | 'TUN';
  persistence?: number;
  delayLoop: number;
  reals: GenReal[];
}
interface Style {
  braceOnNextLine: boolean;
  attach: boolean;
  indent: string;
  comments: boolean;
  aliases: boolean;
  lower: boolean;
}

const FWD_OF = { NAT: Fwd.NAT, DR: Fwd.DR, TUN: Fwd.TUN } as const;

const genCheck: fc.Arbitrary<GenCheck> = fc.record(
  {
    kind: fc.constantFrom('tcp' as const, 'http' as const),
    port: fc.integer({ min: 1, max: 65535 }),
    path: fc.constantFrom('/', '/health', '/a/b.html'),
    status: fc.tuple(fc.integer({ min: 100, max: 300 }), fc.integer({ min: 300, max: 599 })),
  },
  { requiredKeys: ['kind', 'path'] },
);
const genReal: fc.Arbitrary<GenReal> = fc.record(
  {
    host: fc.integer({ min: 1, max: 250 }),
    port: fc.integer({ min: 0, max: 65535 }),
    weight: fc.integer({ min: 0, max: 65535 }),
    fwd: fc.constantFrom('NAT' as const, 'DR' as const, 'TUN' as const),
    inhibit: fc.boolean(),
    check: fc.option(genCheck, { nil: null }),
  },
  { requiredKeys: ['host', 'port', 'weight', 'inhibit', 'check'] },
);
const genVs: fc.Arbitrary<GenVs> = fc.record(
  {
    fwmark: fc.boolean(),
    id: fc.integer({ min: 1, max: 200 }),
    port: fc.integer({ min: 1, max: 65535 }),
    udp: fc.boolean(),
    sched: fc.constantFrom(...SCHEDULER_NAMES),
    fwd: fc.constantFrom('NAT' as const, 'DR' as const, 'TUN' as const),
    persistence: fc.integer({ min: 1, max: 100000 }),
    delayLoop: fc.integer({ min: 1, max: 300 }),
    reals: fc.uniqueArray(genReal, { maxLength: 4, selector: (r) => `${r.host} ${r.port}` }),
  },
  { requiredKeys: ['fwmark', 'id', 'port', 'udp', 'sched', 'fwd', 'delayLoop', 'reals'] },
);
const genStyle: fc.Arbitrary<Style> = fc.record({
  braceOnNextLine: fc.boolean(),
  attach: fc.boolean(),
  indent: fc.constantFrom('', ' ', '\t', '    '),
  comments: fc.boolean(),
  aliases: fc.boolean(),
  lower: fc.boolean(),
});

/** The small printer of the round trip: one configuration, written in one of many styles. */
function printConfig(list: GenVs[], st: Style): string {
  const out: string[] = [];
  const open = (head: string, depth: number): void => {
    const pad = st.indent.repeat(depth);
    if (st.braceOnNextLine) out.push(`${pad}${head}`, `${pad}{`);
    else out.push(`${pad}${head}${st.attach ? '{' : ' {'}${st.comments ? ' # opens' : ''}`);
  };
  const line = (text: string, depth: number): void => {
    out.push(`${st.indent.repeat(depth)}${text}${st.comments ? ' ! note' : ''}`);
  };
  const close = (depth: number): void => {
    out.push(`${st.indent.repeat(depth)}}`);
  };
  if (st.comments) out.push('! generated', '# configuration', '');
  out.push('global_defs {', ' router_id test', '}');
  for (const v of list) {
    open(v.fwmark ? `virtual_server fwmark ${v.id}` : `virtual_server 10.0.0.${v.id} ${v.port}`, 0);
    line(`delay_loop ${v.delayLoop}`, 1);
    line(`${st.aliases ? 'lvs_sched' : 'lb_algo'} ${v.sched}`, 1);
    const kind = st.lower ? v.fwd.toLowerCase() : v.fwd;
    line(`${st.aliases ? 'lvs_method' : 'lb_kind'} ${kind}`, 1);
    if (v.persistence !== undefined) line(`persistence_timeout ${v.persistence}`, 1);
    line(`protocol ${v.udp ? (st.lower ? 'udp' : 'UDP') : 'TCP'}`, 1);
    for (const r of v.reals) {
      open(`real_server 192.168.${Math.floor(r.host / 100)}.${r.host} ${r.port === 0 ? '' : r.port}`.trimEnd(), 1);
      line(`weight ${r.weight}`, 2);
      if (r.fwd) line(`lvs_method ${r.fwd}`, 2);
      if (r.inhibit) line('inhibit_on_failure', 2);
      if (r.check?.kind === 'tcp') {
        open('TCP_CHECK', 2);
        if (r.check.port !== undefined) line(`connect_port ${r.check.port}`, 3);
        close(2);
      } else if (r.check?.kind === 'http') {
        open('HTTP_GET', 2);
        open('url', 3);
        line(`path ${r.check.path}`, 4);
        if (r.check.status) line(`status_code ${r.check.status[0]}-${r.check.status[1]}`, 4);
        close(3);
        if (r.check.port !== undefined) line(`connect_port ${r.check.port}`, 3);
        close(2);
      }
      close(1);
    }
    close(0);
  }
  return `${out.join('\n')}\n`;
}

/** What the parser must produce for a generated configuration (keepalived's defaults applied by hand). */
function expectedServices(list: GenVs[]): Omit<ConfiguredService, 'file' | 'line'>[] {
  return list.map((v) => {
    const reals = v.reals;
    const checked = reals.some((r) => r.check !== null);
    const inhibit = reals.map((r) => r.inhibit);
    const agree = inhibit.every((x) => x === inhibit[0]);
    // keepalived ignores `protocol` on fwmark services; the model gets TCP for them.
    const service: ConfiguredService['service'] = { protocol: v.udp && !v.fwmark ? Proto.UDP : Proto.TCP, scheduler: v.sched };
    if (v.fwmark) {
      service.fwmark = v.id;
      service.family = 4;
    } else {
      service.address = `10.0.0.${v.id}`;
      service.port = v.port;
    }
    if (v.persistence !== undefined) service.persistentTimeoutS = v.persistence;
    const health: ConfiguredService['health'] = checked
      ? {
          quiescent: agree ? inhibit[0]! : false,
          checks: reals.map((r): RealServerCheck[] => {
            if (!r.check) return [];
            const policy = { intervalMs: v.delayLoop * 1000, attempts: 2, failureCount: 1 };
            const port = r.check.port !== undefined ? { port: r.check.port } : {};
            if (r.check.kind === 'tcp') {
              return [{ spec: { kind: 'connect', protocol: 'tcp', ...port, timeoutMs: 5000 }, ...policy, retryDelayMs: 1000 }];
            }
            const url = r.check.status ? { path: r.check.path, statusCodes: [r.check.status] } : { path: r.check.path };
            return [{ spec: { kind: 'http', tls: false, method: 'GET', ...port, urls: [url], timeoutMs: 5000 }, ...policy, retryDelayMs: 3000 }];
          }),
        }
      : null;
    if (health && !agree) health.quiescentPerServer = inhibit;
    return {
      service,
      realServers: reals.map((r) => ({
        address: `192.168.${Math.floor(r.host / 100)}.${r.host}`,
        port: r.port,
        weight: r.weight,
        fwd: FWD_OF[r.fwd ?? v.fwd],
      })),
      health,
    };
  });
}

describe('keepalived.conf round trip and robustness (properties)', () => {
  /** Configurations keepalived and Saru accept: unique services, ports or connect_port where checks need them. */
  const validList = fc
    .uniqueArray(genVs, { maxLength: 5, selector: (v) => (v.fwmark ? `f${v.id}` : `${v.udp ? 'u' : 't'}${v.id} ${v.port}`) })
    .map((list) =>
      list.map((v) => ({
        ...v,
        reals: v.reals.map((r) => (r.port === 0 && r.check && r.check.port === undefined ? { ...r, check: { ...r.check, port: 80 } } : r)),
      })),
    );

  it('printed configurations parse back to the same services, in any style', () => {
    fc.assert(
      fc.property(validList, genStyle, (list, style) => {
        const text = printConfig(list, style);
        const got = services(text).map(({ service, realServers, health }) => ({ service, realServers, health }));
        assert.deepEqual(got, expectedServices(list), text);
        // And the model takes them.
        reconcileServices(new ServiceTable(), services(text));
      }),
      { numRuns: 300 },
    );
  });

  const tokens = fc.constantFrom(
    'virtual_server', 'real_server', 'virtual_server_group', '{', '}', '{ }', '10.0.0.1', '80', '0', 'fwmark', '1', 'group',
    'G', 'HTTP_GET', 'SSL_GET', 'TCP_CHECK', 'SMTP_CHECK', 'UDP_CHECK', 'PING_CHECK', 'MISC_CHECK', 'DNS_CHECK', 'url',
    'path', '/', 'weight', 'lb_kind', 'DR', 'connect_port', 'persistence_timeout', 'persistence_granularity', '255.255.0.0',
    'delay_loop', '2.5', 'misc_path', '"/bin/x \'a"', 'status_code', '200-299', 'digest', 'host', 'payload', 'ab1',
    'ae00::1', '10.0.0.1-5', '10.0.0.0/30', 'sorry_server', 'alpha', 'inhibit_on_failure', 'lb_algo', 'rr', '"', '!', '#',
    '\\', '$X=1', '$X', '${X}', '${_RANDOM}', '${_INSTANCE}', '$Y= \\', '$Y', '@a', '@^a', 'include', '*.conf', 'x/[a', '~SEQ(a,1,2)',
    'global_defs', 'vrrp_instance', 'protocol', 'UDP', 'ops', 'sh-port', 'regex', '"a(b"', '-1', '65536',
  );
  const sep = fc.constantFrom(' ', ' ', '\n', '\t', '\r\n', '');
  /** A valid printed configuration with a few lines deleted, duplicated or given a token. */
  const mutated = fc
    .tuple(
      validList,
      genStyle,
      fc.array(fc.tuple(fc.nat(), fc.constantFrom('delete', 'duplicate', 'append', 'prepend', 'replace'), tokens), { minLength: 1, maxLength: 4 }),
    )
    .map(([list, style, edits]) => {
      const lines = printConfig(list, style).split('\n');
      for (const [at, op, tok] of edits) {
        const i = at % lines.length;
        if (op === 'delete') lines.splice(i, 1);
        else if (op === 'duplicate') lines.splice(i, 0, lines[i]!);
        else if (op === 'append') lines[i] = `${lines[i]} ${tok}`;
        else if (op === 'prepend') lines[i] = `${tok} ${lines[i]}`;
        else lines[i] = tok;
      }
      return lines.join('\n');
    });
  const garbage = fc.oneof(
    fc.array(fc.tuple(tokens, sep), { maxLength: 60 }).map((ts) => ts.map(([t, s]) => t + s).join('')),
    fc.string({ maxLength: 200 }),
    mutated,
  );

  it('never throws anything but a SaruError naming a line; what it accepts, the service model accepts', () => {
    const io: KeepalivedOptions = {
      readFile: (p) => {
        if (p.endsWith('a.conf')) return 'virtual_server 10.9.9.9 80 {\n';
        throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      },
      listDir: () => ['a.conf', 'b.conf'],
      env: {},
    };
    const stats = { accepted: 0, withServices: 0 };
    fc.assert(
      fc.property(garbage, fc.option(fc.constant('a'), { nil: undefined }), (text, instance) => {
        let cfg: KeepalivedConfig;
        try {
          cfg = parseKeepalived(text, 'fuzz.conf', { ...io, ...(instance ? { instance } : {}) });
        } catch (e) {
          assert.ok(e instanceof SaruError, `not a SaruError: ${String(e)} for ${JSON.stringify(text)}`);
          assert.equal(e.code, ErrorCode.CONFIG);
          assert.ok(e.location && e.location.line >= 1, e.message);
          return;
        }
        const t = new ServiceTable();
        reconcileServices(t, keepalivedServices(cfg));
        stats.accepted++;
        if (t.services.length > 0) stats.withServices++;
      }),
      { numRuns: 3000 },
    );
    // The property is not vacuous: a fair share of inputs get through the whole parser.
    assert.ok(stats.withServices >= 40, JSON.stringify(stats));
  });
});
