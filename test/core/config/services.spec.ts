import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORPUS_DIR } from '../../helpers/repo.js';
import { detectServicesFormat, loadServicesFile, parseServices, type HttpCheck, type RealServerCheck } from '../../../core/index.js';

function checksOf(text: string): RealServerCheck[][] {
  const f = parseServices(text, 'x.cf');
  assert.equal(f.format, 'ldirectord');
  return f.services[0]!.health!.checks;
}

const VS = 'virtual=198.18.0.100:80\n\treal=198.18.0.101:80 gate 1\n\treal=198.18.0.102:80 gate 2\n';

describe('core/config services file (format detection, ldirectord checks)', () => {
  it('tells ldirectord.cf from keepalived.conf by the first directive', () => {
    assert.equal(detectServicesFormat('# c\n\nchecktimeout=3\n'), 'ldirectord');
    assert.equal(detectServicesFormat('virtual=1.2.3.4:80\n'), 'ldirectord');
    assert.equal(detectServicesFormat('! Configuration File for keepalived\nglobal_defs {\n}\n'), 'keepalived');
    assert.equal(detectServicesFormat('virtual_server 10.0.0.1 80 {\n}\n'), 'keepalived');
    assert.equal(detectServicesFormat('include /etc/keepalived/*.conf\n'), 'keepalived');
    assert.equal(detectServicesFormat('$IF=eth0\n'), 'keepalived');
    assert.equal(detectServicesFormat('@high virtual_server 10.0.0.1 80 {\n}\n'), 'keepalived');
    assert.equal(detectServicesFormat(''), 'ldirectord');
  });

  it('loads either format from a file; an explicit format overrides the detection', () => {
    const dir = mkdtempSync(join(tmpdir(), 'saru-svc-'));
    const ld = join(dir, 'ld.cf');
    writeFileSync(ld, VS);
    assert.equal(loadServicesFile(ld).services.length, 1);
    const ka = join(dir, 'ka.conf');
    writeFileSync(ka, 'virtual_server 198.18.0.100 80 {\n  lb_algo rr\n  lb_kind DR\n  real_server 198.18.0.101 80 {\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n');
    const k = loadServicesFile(ka);
    assert.equal(k.format, 'keepalived');
    assert.equal(k.services[0]!.health!.checks[0]![0]!.spec.kind, 'connect');
    assert.throws(() => loadServicesFile(ka, { format: 'ldirectord' }), { code: 'SARU_ERR_CONFIG' });
    assert.throws(() => loadServicesFile(join(dir, 'missing')), /cannot read services file/);
  });

  it("ldirectord defaults: negotiate http on the real server's port, GET /, checkinterval 10 s, 30 s negotiate timeout, failurecount 1, quiescent no", () => {
    const f = parseServices(VS, 'x.cf');
    const s = f.services[0]!;
    assert.equal(s.line, 1);
    assert.equal(s.health!.quiescent, false);
    const c = s.health!.checks[0]![0]!;
    assert.deepEqual(c, {
      spec: { kind: 'http', tls: false, method: 'GET', port: 80, urls: [{ path: '/' }], timeoutMs: 30_000 },
      intervalMs: 10_000,
      attempts: 1,
      retryDelayMs: 0,
      failureCount: 1,
    });
    assert.equal(f.autoreload, false);
  });

  it('negotiate http/https with request, receive, virtualhost, checkport, httpmethod, per-real request/receive', () => {
    const checks = checksOf(
      'virtual=198.18.0.100:443\n\treal=198.18.0.101:443 gate 1 "alive.html", "I am (up|fine)"\n\treal=198.18.0.102:443 gate 1\n' +
        '\tservice=https\n\tchecktype=negotiate\n\trequest="index.html"\n\treceive="Test Page"\n\tvirtualhost=www.example.org\n\tcheckport=8443\n\thttpmethod=HEAD\n\tnegotiatetimeout=4\n\tquiescent=yes\n',
    );
    const a = checks[0]![0]!.spec as HttpCheck;
    const b = checks[1]![0]!.spec as HttpCheck;
    assert.deepEqual(a, { kind: 'http', tls: true, method: 'HEAD', port: 8443, virtualHost: 'www.example.org', urls: [{ path: '/alive.html', receive: 'I am (up|fine)' }], timeoutMs: 4000 });
    assert.deepEqual(b.urls, [{ path: '/index.html', receive: 'Test Page' }]);
  });

  it('connect (TCP, and UDP for UDP services), ping, external with VIP VPORT RIP RPORT, on, off', () => {
    assert.deepEqual(checksOf(`${VS}\tchecktype=connect\n\tchecktimeout=2\n`)[0]![0]!.spec, { kind: 'connect', protocol: 'tcp', port: 80, timeoutMs: 2000 });
    assert.deepEqual(checksOf('virtual=198.18.0.100:53\n\treal=198.18.0.101:53 gate\n\tprotocol=udp\n\tchecktype=connect\n')[0]![0]!.spec, { kind: 'connect', protocol: 'udp', port: 53, timeoutMs: 5000 });
    assert.deepEqual(checksOf(`${VS}\tchecktype=ping\n\tchecktimeout=1\n`)[0]![0]!.spec, { kind: 'ping', timeoutMs: 1000 });
    assert.deepEqual(checksOf(`${VS}\tchecktype=external\n\tcheckcommand=/usr/local/bin/check-app\n\tchecktimeout=3\n`)[1]![0]!.spec, {
      kind: 'external',
      command: '/usr/local/bin/check-app',
      args: ['198.18.0.100', '80', '198.18.0.102', '80'],
      dynamicWeight: false,
      timeoutMs: 3000,
    });
    assert.deepEqual(checksOf(`${VS}\tchecktype=on\n`)[0]![0]!.spec, { kind: 'on' });
    assert.deepEqual(checksOf(`${VS}\tchecktype=off\n`)[0]![0]!.spec, { kind: 'off' });
  });

  it('globals: checkinterval, failurecount, checkcount, quiescent, autoreload', () => {
    const f = parseServices(`checkinterval=2\nfailurecount=3\ncheckcount=2\nquiescent=yes\nautoreload=yes\n${VS}`, 'x.cf');
    const c = f.services[0]!.health!.checks[0]![0]!;
    assert.equal(c.intervalMs, 2000);
    assert.equal(c.failureCount, 3);
    assert.equal(c.attempts, 2);
    assert.equal(f.services[0]!.health!.quiescent, true);
    assert.equal(f.autoreload, true);
  });

  it('numeric checktype N: connect N rounds, then negotiate', () => {
    const c = checksOf(`${VS}\tchecktype=3\n`)[0]![0]!;
    assert.equal(c.spec.kind, 'http');
    assert.deepEqual(c.alternate, { connectSpec: { kind: 'connect', protocol: 'tcp', port: 80, timeoutMs: 5000 }, connectsPerRound: 3 });
  });

  it('negotiate smtp, simpletcp and none', () => {
    assert.deepEqual(checksOf('virtual=198.18.0.100:25\n\treal=198.18.0.101:25 gate\n\tservice=smtp\n')[0]![0]!.spec, { kind: 'smtp', port: 25, timeoutMs: 30_000 });
    assert.deepEqual(checksOf('virtual=198.18.0.100:7000\n\treal=198.18.0.101:7000 gate\n\tservice=simpletcp\n\trequest="PING\\n"\n\treceive="PONG"\n')[0]![0]!.spec, {
      kind: 'simpletcp',
      port: 7000,
      request: 'PING\n',
      receive: 'PONG',
      timeoutMs: 30_000,
    });
    assert.deepEqual(checksOf('virtual=198.18.0.100:7000\n\treal=198.18.0.101:7000 gate\n\tservice=none\n')[0]![0]!.spec, { kind: 'on' });
  });

  it('a negotiate check of a service we do not speak is a clear error with file and line', () => {
    assert.throws(
      () => parseServices('virtual=198.18.0.100:3306\n\treal=198.18.0.101:3306 gate\n\tservice=mysql\n\tchecktype=negotiate\n', 'db.cf'),
      (e: Error & { code?: string }) => e.code === 'SARU_ERR_CONFIG' && /^db\.cf:1: checktype=negotiate with service=mysql is not supported/.test(e.message),
    );
  });

  it('the corpus ldirectord.cf.sample: negotiate http with receive and virtualhost, checkinterval 1, quiescent no, fallback', () => {
    const f = loadServicesFile(join(CORPUS_DIR, 'ldirectord', 'ldirectord.cf.sample'));
    const s = f.services[0]!;
    assert.equal(s.realServers.length, 3);
    assert.equal(s.health!.quiescent, false);
    assert.deepEqual(s.service.fallback, { address: '127.0.0.1', port: 80, weight: 1, fwd: s.service.fallback!.fwd });
    const c = s.health!.checks[0]![0]!;
    assert.equal(c.intervalMs, 1000);
    assert.deepEqual(c.spec, { kind: 'http', tls: false, method: 'GET', port: 80, virtualHost: 'www.x.y.z', urls: [{ path: '/index.html', receive: 'Test Page' }], timeoutMs: 3000 });
    assert.equal(f.autoreload, true);
  });
});
