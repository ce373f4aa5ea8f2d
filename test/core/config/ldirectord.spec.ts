/**
 * ldirectord.cf parser: the real-world corpus sample, the examples of the
 * project's seed documents, table-driven errors (file, line, message),
 * ranges, IPv6, firewall marks, defaults and overrides, and the mapping to
 * the service model.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Fwd, Proto } from '../../../core/constants.js';
import { ErrorCode, SaruError } from '../../../core/errors.js';
import { ServiceTable } from '../../../core/service.js';
import {
  checkPortFor,
  loadLdirectordFile,
  parseLdirectord,
  toServiceInits,
  type LdirectordConfig,
} from '../../../core/config/index.js';
import { CORPUS_DIR } from '../../helpers/repo.js';

const CORPUS = join(CORPUS_DIR, 'ldirectord', 'ldirectord.cf.sample');

/** Load into a ServiceTable as the daemon will; throws if the model rejects anything. */
function install(cfg: LdirectordConfig): ServiceTable {
  const t = new ServiceTable();
  for (const { service, realServers } of toServiceInits(cfg)) {
    const svc = t.add(service);
    for (const r of realServers) svc.addRealServer(r);
  }
  return t;
}

function parseError(text: string, file = 'test.cf'): SaruError {
  try {
    parseLdirectord(text, file);
  } catch (e) {
    assert.ok(e instanceof SaruError, `expected SaruError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a configuration error');
}

describe('ldirectord.cf parser', () => {
  describe('corpus: ldirectord.cf.sample (ClusterLabs resource-agents)', () => {
    it('loads with its globals, virtual service, real servers, fallback and check', () => {
      const cfg = loadLdirectordFile(CORPUS);
      assert.equal(cfg.globals.checkTimeoutS, 3);
      assert.equal(cfg.globals.checkIntervalS, 1);
      assert.equal(cfg.globals.autoreload, true);
      assert.equal(cfg.globals.quiescent, false);
      assert.equal(cfg.virtualServices.length, 1);
      const vs = cfg.virtualServices[0]!;
      assert.equal(vs.address, '192.168.6.240');
      assert.equal(vs.port, 80);
      assert.equal(vs.protocol, 'tcp');
      assert.equal(vs.scheduler, 'rr');
      assert.equal(vs.persistentS, undefined, 'persistent= is commented out');
      assert.deepEqual(
        vs.realServers.map((r) => [r.address, r.port, r.forward, r.weight]),
        [
          ['192.168.6.2', 80, 'gate', 1],
          ['192.168.6.3', 80, 'gate', 1],
          ['192.168.6.6', 80, 'gate', 1],
        ],
      );
      assert.deepEqual([vs.fallback?.address, vs.fallback?.port, vs.fallback?.forward], ['127.0.0.1', 80, 'gate']);
      assert.equal(vs.check.type, 'negotiate');
      assert.equal(vs.check.service, 'http');
      assert.equal(vs.check.checkPort, 80);
      assert.equal(vs.check.request, '/index.html');
      assert.equal(vs.check.receive, 'Test Page');
      assert.equal(vs.check.virtualHost, 'www.x.y.z');
      assert.equal(vs.check.checkTimeoutS, 3);
      assert.equal(vs.check.negotiateTimeoutS, 3, 'negotiatetimeout falls back to checktimeout');
      assert.equal(vs.check.checkIntervalS, 1);
      const t = install(cfg);
      assert.equal(t.services.length, 1);
      assert.equal(t.services[0]!.realServers.length, 3);
      assert.equal(t.services[0]!.fallback!.fwd, Fwd.LOCAL, 'loopback fallback is a local server, as the kernel makes it');
    });
  });

  describe('seed examples', () => {
    // Seed 000 (CentOS 5.3 LVS-DR tutorial). The seed lost the addresses; they
    // are filled in with documentation addresses. Its lines are tab-indented,
    // as the tutorial insists; scheduler lblc as its ipvsadm output shows.
    const SEED_000 = [
      'checktimeout=10',
      'checkinterval=2',
      'autoreload=no',
      'logfile="/var/log/ldirectord.log"',
      'quiescent=yes',
      'virtual=192.0.2.200:80',
      '\treal=192.0.2.121:80 gate',
      '\treal=192.0.2.122:80 gate',
      '\tfallback=127.0.0.1:80 gate',
      '\tservice=http',
      '\trequest="check.txt"',
      '\treceive="webserverisworking"',
      '\tscheduler=lblc',
      '\tprotocol=tcp',
      '\tchecktype=negotiate',
      '',
    ].join('\n');

    it('000: tab-indented DR service with an HTTP negotiate check', () => {
      const cfg = parseLdirectord(SEED_000, 'ldirectord.cf');
      assert.equal(cfg.globals.quiescent, true);
      assert.equal(cfg.globals.logfile, '/var/log/ldirectord.log');
      const vs = cfg.virtualServices[0]!;
      assert.equal(vs.scheduler, 'lblc');
      assert.deepEqual(vs.realServers.map((r) => r.address), ['192.0.2.121', '192.0.2.122']);
      assert.equal(vs.check.request, '/check.txt');
      assert.equal(vs.check.receive, 'webserverisworking');
      assert.equal(vs.check.checkTimeoutS, 10);
      assert.equal(vs.quiescent, true);
      install(cfg);
    });

    // Seed 001 (ldirectord in depth). Placeholders xx/yy (VIPs) and aa (RIPs)
    // replaced by addresses; the stripped RIPs of the yy block filled in. The
    // global section is described but not shown in the seed; reconstructed
    // from its text (checktimeout, checkinterval, autoreload, quiescent=no,
    // fork, callback).
    const SEED_001_GLOBALS = [
      'checktimeout=5',
      'checkinterval=8',
      'autoreload=yes',
      'callback="/etc/ha.d/syncldirectord"',
      'quiescent=no',
      'fork=yes',
      '',
    ].join('\n');
    const block = (vip: string, port: number, rips: string[], weights: number[], persistent: number, service: string): string =>
      [
        `virtual = ${vip}:${port}`,
        `    fallback = ${vip}:${port} gate`,
        ...rips.map((r, i) => `    real = ${r}:${port} gate ${weights[i]}`),
        '    scheduler = wrr',
        `    persistent = ${persistent}`,
        '    protocol = tcp',
        `    service = ${service}`,
        '    request = "/areyouthere.php"',
        '    receive = "OK web[0-9]+"',
        '    checktype = negotiate',
        '',
      ].join('\n');
    const AA = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
    const BB = ['198.51.100.1', '198.51.100.2', '198.51.100.3'];
    const SEED_001 =
      SEED_001_GLOBALS +
      block('203.0.113.10', 80, AA, [10, 20, 30], 7200, 'http') +
      '\n' +
      block('203.0.113.10', 443, AA, [10, 20, 30], 7200, 'https') +
      '\n' +
      block('203.0.113.20', 80, BB, [10, 10, 10], 30, 'http') +
      '\n' +
      block('203.0.113.20', 443, BB, [10, 10, 10], 30, 'https');

    it('001: four persistent wrr services with fallbacks, spaces around "="', () => {
      const cfg = parseLdirectord(SEED_001, 'ldirectord.cf');
      assert.equal(cfg.globals.fork, true);
      assert.equal(cfg.globals.callback, '/etc/ha.d/syncldirectord');
      assert.equal(cfg.virtualServices.length, 4);
      const [a, b, c, d] = cfg.virtualServices;
      assert.deepEqual(a!.realServers.map((r) => r.weight), [10, 20, 30]);
      assert.equal(a!.persistentS, 7200);
      assert.equal(b!.check.service, 'https');
      assert.equal(c!.persistentS, 30);
      assert.equal(d!.fallback!.address, '203.0.113.20');
      assert.equal(d!.fallback!.port, 443);
      assert.equal(a!.check.receive, 'OK web[0-9]+');
      assert.equal(a!.check.checkIntervalS, 8);
      const t = install(cfg);
      assert.equal(t.services.length, 4);
      assert.equal(t.services[0]!.persistentTimeoutMs, 7200_000);
    });

    // Seed 002 (Horms' LVS tutorial). The PDF extraction lost the
    // indentation; restored here (as written, ldirectord itself rejects it).
    const SEED_002 = [
      '# Global Directives',
      'checktimeout=10',
      'checkinterval=2',
      'autoreload=no',
      'logfile="local0"',
      'quiescent=yes',
      '# Virtual Server for HTTP',
      'virtual=172.17.60.201:80',
      '\tfallback=127.0.0.1:80',
      '\treal=192.168.6.4:80 masq',
      '\treal=192.168.6.5:80 masq',
      '\tservice=http',
      '\trequest="index.html"',
      '\treceive="Test Page"',
      '\tscheduler=rr',
      '\tprotocol=tcp',
      '\tchecktype=negotiate',
    ].join('\n');

    it('002: NAT service with a local fallback', () => {
      const cfg = parseLdirectord(SEED_002, 'ldirectord.cf');
      assert.equal(cfg.globals.logfile, 'local0');
      const vs = cfg.virtualServices[0]!;
      assert.deepEqual(vs.realServers.map((r) => [r.address, r.fwd]), [
        ['192.168.6.4', Fwd.NAT],
        ['192.168.6.5', Fwd.NAT],
      ]);
      assert.equal(vs.fallback!.forward, 'gate', 'fallback forwarding defaults to gate');
      const inits = toServiceInits(cfg);
      assert.equal(inits[0]!.service.fallback!.fwd, Fwd.LOCAL);
      install(cfg);
    });

    it('002 as extracted (no indentation) is rejected at the first real= line, as ldirectord does', () => {
      const flat = SEED_002.replace(/\t/g, '');
      const e = parseError(flat, 'ldirectord.cf');
      assert.equal(e.location?.line, 10);
      assert.match(e.message, /^ldirectord\.cf:10: real= belongs to a virtual service/);
    });
  });

  describe('errors name file, line and what was expected', () => {
    const V = 'virtual=192.0.2.1:80\n';
    const cases: { description: string; input: string; line: number; message: string }[] = [
      {
        description: 'truncated real address',
        input: `${V}\treal=1.2.3\n`,
        line: 2,
        message: 'expected "real=ADDRESS[->ADDRESS][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST", "RECEIVE"]", got "real=1.2.3"',
      },
      {
        description: 'host name instead of an address',
        input: `${V}\treal=web1.example.com:80 gate\n`,
        line: 2,
        message: '"web1.example.com": hostnames are not resolved by the parser; use an address',
      },
      {
        description: 'host name as VIP',
        input: 'virtual=www.example.com:80\n',
        line: 1,
        message: '"www.example.com": hostnames are not resolved by the parser; use an address',
      },
      {
        description: 'unknown forwarding method',
        input: `${V}\treal=192.0.2.10:80 nat\n`,
        line: 2,
        message: 'expected "real=ADDRESS[->ADDRESS][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST", "RECEIVE"]", got "real=192.0.2.10:80 nat"',
      },
      {
        description: 'trailing garbage after weight',
        input: `${V}\treal=192.0.2.10:80 gate 5 extra\n`,
        line: 2,
        message: 'expected "real=ADDRESS[->ADDRESS][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST", "RECEIVE"]", got "real=192.0.2.10:80 gate 5 extra"',
      },
      { description: 'weight too large', input: `${V}\treal=192.0.2.10:80 gate 70000\n`, line: 2, message: 'weight must be 0..65535, got 70000' },
      { description: 'unknown global directive', input: 'checktimeout=3\nfoo=bar\n', line: 2, message: 'unknown directive "foo"' },
      {
        description: 'unknown directive inside a virtual',
        input: `${V}    real=192.0.2.10:80 gate\n    colour=blue\n`,
        line: 3,
        message: 'unknown directive "colour" in a virtual service',
      },
      {
        description: 'virtual directive at global level',
        input: 'real=192.0.2.10:80 gate\n',
        line: 1,
        message: 'real= belongs to a virtual service: indent it under a virtual= line (four spaces or a tab)',
      },
      {
        description: 'global directive inside a virtual',
        input: `${V}\tautoreload=yes\n`,
        line: 2,
        message: 'autoreload= is a global directive; it cannot appear inside a virtual service',
      },
      {
        description: 'indented line after a blank line',
        input: `${V}\treal=192.0.2.10:80 gate\n\n\tscheduler=rr\n`,
        line: 4,
        message:
          'indented line outside a virtual service: "scheduler=rr" (a virtual service\'s directives follow its virtual= line, indented; a blank line ends the block)',
      },
      {
        description: 'non-contiguous netmask',
        input: `${V}\tpersistent=300\n\tnetmask=255.0.255.0\n`,
        line: 3,
        message: 'netmask 255.0.255.0 is not contiguous (ones must be followed only by zeros)',
      },
      {
        description: 'prefix length as IPv4 netmask',
        input: `${V}\tnetmask=24\n`,
        line: 2,
        message: 'expected "netmask=W.X.Y.Z (dotted quad)", got "netmask=24"',
      },
      {
        description: 'IPv6 netmask out of range',
        input: 'virtual6=[2001:db8::1]:80\n\tnetmask=129\n',
        line: 2,
        message: 'expected "netmask=PREFIXLEN (1..128) for an IPv6 service", got "netmask=129"',
      },
      {
        description: 'IPv6 VIP in virtual=',
        input: 'virtual=[2001:db8::1]:80\n',
        line: 1,
        message: 'cannot specify an IPv6 address here; use "virtual6=" instead',
      },
      {
        description: 'real6 in an IPv4 service',
        input: `${V}\treal6=[2001:db8::10]:80 gate\n`,
        line: 2,
        message: 'cannot specify "real6" here; use "real" instead',
      },
      {
        description: 'IPv6 range',
        input: 'virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::10]->[2001:db8::20]:80 gate\n',
        line: 2,
        message: 'address ranges are not supported for IPv6 real servers',
      },
      {
        description: 'reversed range',
        input: `${V}\treal=192.0.2.20->192.0.2.10:80 gate\n`,
        line: 2,
        message: 'invalid range 192.0.2.20->192.0.2.10: the first address must not be greater than the last',
      },
      { description: 'VIP without port', input: 'virtual=192.0.2.1\n', line: 1, message: 'expected "virtual=ADDRESS:PORT or virtual=FWMARK", got "virtual=192.0.2.1"' },
      { description: 'unknown service name as port', input: 'virtual=192.0.2.1:gopherx\n', line: 1, message: 'unknown service name "gopherx" (use a port number)' },
      {
        description: 'protocol=fwm on an address service',
        input: `${V}\tprotocol=fwm\n`,
        line: 2,
        message: 'protocol=fwm needs a firewall mark: virtual=NUMBER',
      },
      {
        description: 'protocol=tcp on a firewall mark',
        input: 'virtual=42\n\tprotocol=tcp\n',
        line: 2,
        message: 'protocol must be fwm for a firewall-mark virtual service, got "tcp"',
      },
      {
        description: 'bad checktype',
        input: `${V}\tchecktype=bogus\n`,
        line: 2,
        message: 'expected "checktype=connect|negotiate|ping|on|off|external|external-perl|NUMBER", got "checktype=bogus"',
      },
      { description: 'bad quiescent', input: 'quiescent=maybe\n', line: 1, message: 'expected "quiescent=yes|no", got "quiescent=maybe"' },
      { description: 'zero checktimeout', input: 'checktimeout=0\n', line: 1, message: 'expected "checktimeout=POSITIVE-INTEGER", got "checktimeout=0"' },
      { description: 'bad persistent', input: `${V}\tpersistent=soon\n`, line: 2, message: 'expected "persistent=SECONDS (1..2678400)", got "persistent=soon"' },
      { description: 'checkport out of range', input: `${V}\tcheckport=70000\n`, line: 2, message: 'expected "checkport=1..65535", got "checkport=70000"' },
      {
        description: 'deprecated timeout',
        input: 'timeout=3\n',
        line: 1,
        message: 'the timeout directive is deprecated; use checktimeout and negotiatetimeout',
      },
      {
        description: 'duplicate virtual service',
        input: `${V}\treal=192.0.2.10:80 gate\n${V}`,
        line: 3,
        message: 'duplicate virtual server (first defined at line 1)',
      },
      {
        description: 'duplicate real server',
        input: `${V}\treal=192.0.2.10:80 gate\n\treal=192.0.2.10:80 gate 5\n`,
        line: 3,
        message: 'duplicate real server 192.0.2.10:80 (first defined at line 2)',
      },
      {
        description: 'bad fallback method',
        input: `${V}\tfallback=127.0.0.1:80 local\n`,
        line: 2,
        message: 'expected "fallback=ADDRESS[:PORT] [gate|masq|ipip]", got "fallback=127.0.0.1:80 local"',
      },
      {
        description: 'service not known to ldirectord',
        input: `${V}\tservice=gopher\n`,
        line: 2,
        message:
          'expected "service=dns|ftp|http|https|http_proxy|imap|imaps|ldap|nntp|mysql|none|oracle|pop|pops|radius|pgsql|sip|smtp|submission|simpletcp", got "service=gopher"',
      },
      {
        description: 'non-persistent port-zero service',
        input: 'virtual=192.0.2.1:0\n\treal=10.0.0.1 gate\n',
        line: 1,
        message: 'a virtual service on port 0 (all ports) must be persistent: add persistent=SECONDS',
      },
      {
        description: 'bare virtual',
        input: 'virtual\n',
        line: 1,
        message: 'expected "virtual=ADDRESS:PORT or virtual=FWMARK", got "virtual"',
      },
      {
        description: 'scheduler with capitals',
        input: `${V}\tscheduler=WRR\n`,
        line: 2,
        message: 'expected "scheduler=NAME (lowercase letters)", got "scheduler=WRR"',
      },
    ];
    for (const c of cases) {
      it(c.description, () => {
        const e = parseError(c.input, 'services.cf');
        assert.equal(e.code, ErrorCode.CONFIG);
        assert.deepEqual(e.location, { file: 'services.cf', line: c.line });
        assert.equal(e.message, `services.cf:${c.line}: ${c.message}`);
      });
    }
  });

  describe('real servers', () => {
    it('expands an IPv4 range, with port, method and weight on each', () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:8080\n\treal=10.0.0.254->10.0.1.1:8080 masq 5\n', 'r.cf');
      const rs = cfg.virtualServices[0]!.realServers;
      assert.deepEqual(rs.map((r) => r.address), ['10.0.0.254', '10.0.0.255', '10.0.1.0', '10.0.1.1']);
      assert.ok(rs.every((r) => r.port === 8080 && r.forward === 'masq' && r.weight === 5 && r.line === 2));
      install(cfg);
    });

    it('defaults: weight 1, port 0, and gate when the method is omitted', () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:80\n\treal=10.0.0.1\n\treal=10.0.0.2 ipip\n', 'r.cf');
      const rs = cfg.virtualServices[0]!.realServers;
      assert.deepEqual(rs.map((r) => [r.port, r.portGiven, r.forward, r.weight]), [
        [0, false, 'gate', 1],
        [0, false, 'ipip', 1],
      ]);
    });

    it('per-real request/receive pair; service names as ports', () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:http\n\treal=10.0.0.1:www gate 3 "health", "OK"\n', 'r.cf');
      const vs = cfg.virtualServices[0]!;
      assert.equal(vs.port, 80);
      assert.deepEqual([vs.realServers[0]!.port, vs.realServers[0]!.request, vs.realServers[0]!.receive], [80, '/health', 'OK']);
    });

    it('maps to the model: DR/TUN take the virtual port, NAT keeps its own, loopback is local', () => {
      const cfg = parseLdirectord(
        'virtual=192.0.2.1:80\n\treal=10.0.0.1:8080 gate\n\treal=10.0.0.2:8080 masq\n\treal=10.0.0.3 masq\n\treal=127.0.0.1:8080 masq\n',
        'r.cf',
      );
      const [init] = toServiceInits(cfg);
      assert.deepEqual(init!.realServers.map((r) => [r.address, r.port, r.fwd]), [
        ['10.0.0.1', 80, Fwd.DR],
        ['10.0.0.2', 8080, Fwd.NAT],
        ['10.0.0.3', 80, Fwd.NAT],
        ['127.0.0.1', 8080, Fwd.LOCAL],
      ]);
    });
  });

  describe('IPv6 and firewall marks', () => {
    it('virtual6/real6/fallback6 with a prefix-length netmask', () => {
      const text = [
        'fallback6=[::1]:80',
        'virtual6=[2001:db8::1]:80',
        '    real6=[2001:db8::10]:80 gate',
        '    real6=[2001:db8::11] masq 2',
        '    persistent=600',
        '    netmask=64',
        '',
      ].join('\n');
      const cfg = parseLdirectord(text, 'v6.cf');
      const vs = cfg.virtualServices[0]!;
      assert.equal(vs.family, 6);
      assert.equal(vs.address, '2001:db8::1');
      assert.deepEqual(vs.realServers.map((r) => [r.address, r.port, r.forward, r.weight]), [
        ['2001:db8::10', 80, 'gate', 1],
        ['2001:db8::11', 0, 'masq', 2],
      ]);
      assert.deepEqual([vs.fallback?.address, vs.fallback?.port], ['::1', 80], 'global fallback6, with the virtual port');
      assert.equal(vs.persistentPrefix, 64);
      const t = install(cfg);
      assert.equal(t.services[0]!.persistentPrefix, 64);
      assert.equal(t.services[0]!.fallback!.fwd, Fwd.LOCAL);
    });

    it('an IPv4 global fallback does not apply to IPv6 services', () => {
      const cfg = parseLdirectord('fallback=127.0.0.1\nvirtual6=[2001:db8::1]:80\n\treal6=[2001:db8::10]:80 gate\n', 'v6.cf');
      assert.equal(cfg.virtualServices[0]!.fallback, undefined);
    });

    it('firewall-mark services: protocol fwm, port-less reals, service none', () => {
      const text = 'virtual=100\n\treal=10.0.0.1 gate\n\treal=10.0.0.2 gate 2\n\tprotocol=fwm\n\tscheduler=wlc\n\tpersistent=900\n\tnetmask=255.255.255.0\n';
      const cfg = parseLdirectord(text, 'fwm.cf');
      const vs = cfg.virtualServices[0]!;
      assert.deepEqual([vs.protocol, vs.fwmark, vs.port, vs.check.service, vs.persistentPrefix], ['fwm', 100, 0, 'none', 24]);
      const [init] = toServiceInits(cfg);
      assert.deepEqual(init!.service, {
        protocol: Proto.TCP,
        scheduler: 'wlc',
        fwmark: 100,
        family: 4,
        persistentTimeoutS: 900,
        persistentPrefix: 24,
      });
      assert.deepEqual(init!.realServers.map((r) => r.port), [0, 0], 'fwmark real servers keep port 0');
      assert.equal(checkPortFor(vs, vs.realServers[0]!), undefined);
      const t = install(cfg);
      assert.equal(t.findByMark(100)!.realServers.length, 2);
    });

    it('virtual6 with a firewall mark is an IPv6 mark service', () => {
      const cfg = parseLdirectord('virtual6=7\n\treal6=[2001:db8::10] gate\n', 'fwm.cf');
      const [init] = toServiceInits(cfg);
      assert.deepEqual([init!.service.fwmark, init!.service.family], [7, 6]);
      install(cfg);
    });
  });

  describe('defaults and overrides', () => {
    it("uses ldirectord's defaults when nothing is set", () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate\n', 'd.cf');
      const g = cfg.globals;
      assert.deepEqual(
        [g.checkIntervalS, g.checkCount, g.failureCount, g.autoreload, g.fork, g.quiescent, g.cleanStop, g.logfile],
        [10, 1, 1, false, false, false, true, '/var/log/ldirectord.log'],
      );
      const vs = cfg.virtualServices[0]!;
      assert.deepEqual([vs.scheduler, vs.protocol, vs.check.type, vs.check.service, vs.check.request, vs.check.receive], [
        'wrr',
        'tcp',
        'negotiate',
        'http',
        '/',
        '',
      ]);
      assert.deepEqual([vs.check.checkTimeoutS, vs.check.negotiateTimeoutS, vs.check.checkIntervalS, vs.check.failureCount], [5, 30, 10, 1]);
      assert.equal(checkPortFor(vs, vs.realServers[0]!), 80);
    });

    it('port 53 defaults to udp and the dns check; ftp gets an anonymous login', () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:53\n\treal=10.0.0.1:53 gate\nvirtual=192.0.2.1:21\n\treal=10.0.0.1:21 gate\n', 'd.cf');
      const [dns, ftp] = cfg.virtualServices;
      assert.deepEqual([dns!.protocol, dns!.check.service], ['udp', 'dns']);
      assert.deepEqual([ftp!.protocol, ftp!.check.service, ftp!.check.login], ['tcp', 'ftp', 'anonymous']);
      assert.equal(toServiceInits(cfg)[0]!.service.protocol, Proto.UDP);
    });

    it('per-virtual values override globals; timeouts default to each other', () => {
      const text = [
        'checktimeout=3',
        'negotiatetimeout=20',
        'checkinterval=4',
        'failurecount=2',
        'quiescent=yes',
        'fallback=127.0.0.1:8080 masq',
        'virtual=192.0.2.1:80',
        '\treal=10.0.0.1:80 gate',
        'virtual=192.0.2.2:80',
        '\treal=10.0.0.1:80 gate',
        '\tchecktimeout=7',
        '\tcheckinterval=9',
        '\tfailurecount=5',
        '\tquiescent=no',
        '\tfallback=10.9.9.9 gate',
        '\tchecktype=3',
        '\tcheckport=8081',
        'virtual=192.0.2.3:80',
        '\treal=10.0.0.1:80 gate',
        '\tnegotiatetimeout=11',
        '',
      ].join('\n');
      const [a, b, c] = parseLdirectord(text, 'o.cf').virtualServices;
      assert.deepEqual([a!.check.checkTimeoutS, a!.check.negotiateTimeoutS, a!.check.checkIntervalS, a!.check.failureCount, a!.quiescent], [
        3, 20, 4, 2, true,
      ]);
      assert.deepEqual([a!.fallback?.address, a!.fallback?.port, a!.fallback?.forward], ['127.0.0.1', 8080, 'masq']);
      assert.deepEqual([b!.check.checkTimeoutS, b!.check.negotiateTimeoutS, b!.check.checkIntervalS, b!.check.failureCount, b!.quiescent], [
        7, 7, 9, 5, false,
      ]);
      assert.deepEqual([b!.fallback?.address, b!.fallback?.port], ['10.9.9.9', 80], 'per-virtual fallback, virtual port');
      assert.deepEqual([b!.check.type, b!.check.connectsPerNegotiate, checkPortFor(b!, b!.realServers[0]!)], ['combined', 3, 8081]);
      assert.deepEqual([c!.check.checkTimeoutS, c!.check.negotiateTimeoutS], [11, 11], 'virtual negotiatetimeout beats global checktimeout');
    });

    it('legacy connecttimeout feeds negotiatetimeout', () => {
      const cfg = parseLdirectord('connecttimeout=12\nvirtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate\n', 'l.cf');
      assert.equal(cfg.virtualServices[0]!.check.negotiateTimeoutS, 12);
      assert.equal(cfg.virtualServices[0]!.check.checkTimeoutS, 5);
    });
  });

  describe('lexical rules', () => {
    it('comments, quotes, CRLF, comment lines inside a block, blank line ending a block', () => {
      const text = [
        '# header',
        'checktimeout = 4   # trailing comment',
        'virtual=192.0.2.1:80',
        '    # a comment inside the block',
        '    real=10.0.0.1:80 gate # first',
        '\treceive="a#b"',
        '    request = "/x y"',
        '',
        'quiescent=yes',
      ].join('\r\n');
      const cfg = parseLdirectord(text, 'lex.cf');
      const vs = cfg.virtualServices[0]!;
      assert.equal(cfg.globals.checkTimeoutS, 4);
      assert.equal(cfg.globals.quiescent, true);
      assert.equal(vs.check.receive, 'a#b');
      assert.equal(vs.check.request, '/x y');
      assert.equal(vs.realServers.length, 1);
    });

    it('persistent netmask converts to a prefix length and reaches the model', () => {
      const cfg = parseLdirectord('virtual=192.0.2.1:443\n\treal=10.0.0.1:443 gate\n\tpersistent=7200\n\tnetmask=255.255.240.0\n', 'p.cf');
      const t = install(cfg);
      assert.equal(t.services[0]!.persistentPrefix, 20);
      assert.equal(t.services[0]!.persistentTimeoutMs, 7_200_000);
    });

    it('ops=yes sets one-packet scheduling on UDP services only', () => {
      const cfg = parseLdirectord(
        'virtual=192.0.2.1:53\n\treal=10.0.0.1:53 gate\n\tops=yes\nvirtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate\n\tops=yes\n',
        'o.cf',
      );
      const inits = toServiceInits(cfg);
      assert.equal(inits[0]!.service.onePacket, true);
      assert.equal(inits[1]!.service.onePacket, undefined);
    });
  });
});

describe('ldirectord.cf parser on arbitrary input', () => {
  const directive = fc.constantFrom(
    'virtual=192.0.2.1:80', 'virtual6=[2001:db8::1]:80', 'virtual=5', '\treal=10.0.0.1:80 gate 2', '    real=10.0.0.1->10.0.0.3 masq',
    '\treal6=[2001:db8::2]:80 ipip', '\tscheduler=rr', '\tpersistent=300', '\tnetmask=255.255.255.0', '\tprotocol=udp',
    'checktimeout=3', 'quiescent=yes', 'fallback=127.0.0.1:80', '', '# c', '\tfallback=10.0.0.9', 'virtual', '\treal=',
  );
  const line = fc.oneof(directive, fc.string({ maxLength: 30 }));
  it('either parses into something the model accepts, or throws a SaruError naming a line of the input', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (ls) => {
        const text = ls.join('\n');
        let cfg: LdirectordConfig;
        try {
          cfg = parseLdirectord(text, 'fuzz.cf');
        } catch (e) {
          assert.ok(e instanceof SaruError, String(e));
          assert.equal(e.code, ErrorCode.CONFIG);
          assert.equal(e.location?.file, 'fuzz.cf');
          assert.ok(e.location!.line >= 1 && e.location!.line <= Math.max(1, text.split(/\r\n|\n|\r/).length), e.message);
          return;
        }
        // Whatever the parser accepts, the service model accepts.
        install(cfg);
      }),
      { numRuns: 2000, seed: 42 },
    );
  });
});

// Keep the corpus path assertion visible when the shared tree is missing.
describe('ldirectord corpus location', () => {
  it('resolves <repo>/../shared/corpus', () => {
    assert.ok(existsSync(CORPUS), `missing ${CORPUS}`);
    assert.ok(readFileSync(CORPUS, 'utf8').includes('virtual='));
  });
});
