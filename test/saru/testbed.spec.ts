/**
 * The namespace testbed (saru/testbed): the files it hands each director
 * (checked with core's own ldirectord parser), and, as root, the topology it
 * builds: real servers reachable from every director over the hub, the hub
 * flooding frames for the shared MAC to every director, the client reaching
 * the directors' own addresses, director start/stop/kill against a stand-in
 * daemon, idempotent up(), down() leaving nothing, and two prefixes side by
 * side. Needs root for the namespace part (CI has it); skips it with a
 * message otherwise. Waits are bounded polls, never fixed sleeps.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLdirectord, toServiceInits } from '../../core/index.js';
import { parseSaruConf } from '../../saru/config.js';
import {
  ADDRESSES,
  PATTERN_BLOCK,
  PATTERN_PERIOD,
  Testbed,
  patternMismatch,
  renderSaruConf,
  renderServices,
  staticSlice,
  type TestbedStatus,
} from '../../saru/testbed/index.js';
import { isAlive, runCommand, runChecked, waitFor } from '../../saru/testbed/proc.js';

const REPO = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const UDP_CLIENT = join(REPO, 'dist', 'saru', 'testbed', 'udp-client.js');

describe('testbed: files for the directors', () => {
  it('static slices split the buckets into contiguous near-equal ranges covering each bucket once', () => {
    for (const buckets of [2, 1024, 4096]) {
      for (let n = 1; n <= Math.min(buckets, 12); n++) {
        let next = 0;
        for (let i = 1; i <= n; i++) {
          const [first, last] = staticSlice(i, n, buckets);
          assert.equal(first, next, `n=${n} i=${i}`);
          const size = last - first + 1;
          assert.ok(size === Math.floor(buckets / n) || size === Math.ceil(buckets / n), `n=${n} i=${i} size ${size}`);
          next = last + 1;
        }
        assert.equal(next, buckets);
      }
    }
    assert.throws(() => staticSlice(4, 3, 1024), RangeError);
  });

  it('saru.conf names the node, interfaces, paths, its slice and the gateways', () => {
    const text = renderSaruConf({ index: 2, directors: 3, buckets: 1024, servicesPath: '/s/d2/services.cf', socketPath: '/s/d2/saru.sock', coordinator: null });
    const kv = new Map(
      text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => {
          const m = /^(\w+) = (.+)$/.exec(l);
          assert.ok(m, `malformed line "${l}"`);
          return [m[1]!, m[2]!] as const;
        }),
    );
    assert.deepEqual(Object.fromEntries(kv), {
      node_id: '2',
      interface: 'eth0',
      cluster_interface: 'eth1',
      services: '/s/d2/services.cf',
      control_socket: '/s/d2/saru.sock',
      buckets: '1024',
      sense: 'src-port',
      static_slice: '341-681',
      gateway: '198.18.1.2',
      gateway6: '2001:2:0:1::2',
    });
  });

  it('saru.conf with the coordinator names the key, state file and timing instead of a slice, and parses', () => {
    const text = renderSaruConf({
      index: 1, directors: 3, buckets: 1024, servicesPath: '/s/d1/services.cf', socketPath: '/s/d1/saru.sock',
      coordinator: { authkeys: '/s/authkey', stateFile: '/s/d1/coordinator.state', keepaliveMs: 50, deadtimeMs: 200 },
    });
    assert.doesNotMatch(text, /static_slice/);
    const c = parseSaruConf(text, '/s/d1/saru.conf');
    assert.deepEqual(
      { ...c.coordinator },
      { authkeys: '/s/authkey', weight: 1, mcastGroup: '239.192.83.1', mcastPort: 7083, keepaliveMs: 50, deadtimeMs: 200, joinDelayMs: 30_000, waitForSync: false, stateFile: '/s/d1/coordinator.state', drainTimeoutMs: 60_000 },
    );
  });

  const cases: Array<{ description: string; spec: Parameters<typeof renderServices>[0]; services: Array<[string, number, number]> }> = [
    {
      description: 'DR wrr, two real servers',
      spec: { realServers: 2, fwd: 'gate', scheduler: 'wrr', weights: [1, 2], ipv6: false, udp: false, port: 80 },
      services: [['198.18.0.100', 80, 6]],
    },
    {
      description: 'NAT, IPv6 and UDP echo',
      spec: { realServers: 3, fwd: 'masq', scheduler: 'rr', weights: [1, 1, 0], ipv6: true, udp: true, port: 80 },
      services: [
        ['198.18.0.100', 80, 6],
        ['2001:2::100', 80, 6],
        ['198.18.0.100', 7, 17],
        ['2001:2::100', 7, 17],
      ],
    },
    {
      description: 'TUN, one real server, UDP',
      spec: { realServers: 1, fwd: 'ipip', scheduler: 'sh', weights: [5], ipv6: false, udp: true, port: 8080 },
      services: [
        ['198.18.0.100', 8080, 6],
        ['198.18.0.100', 7, 17],
      ],
    },
  ];
  for (const c of cases) {
    it(`services file parses with core's ldirectord parser: ${c.description}`, () => {
      const cfg = parseLdirectord(renderServices(c.spec), 'services.cf');
      const inits = toServiceInits(cfg);
      assert.deepEqual(
        inits.map((s) => [s.service.address, s.service.port, s.service.protocol]),
        c.services,
      );
      for (const [k, vs] of cfg.virtualServices.entries()) {
        assert.equal(vs.scheduler, c.spec.scheduler);
        assert.equal(vs.check.type, 'on');
        const v6 = vs.family === 6;
        assert.deepEqual(
          vs.realServers.map((r) => [r.address, r.forward, r.weight]),
          c.spec.weights.map((w, j) => [v6 ? ADDRESSES.real(j + 1).ip6 : ADDRESSES.real(j + 1).ip4, c.spec.fwd, w]),
        );
        assert.equal(inits[k]!.realServers.length, c.spec.realServers);
      }
    });
  }

  it('rejects weights that do not match the real servers', () => {
    assert.throws(() => renderServices({ realServers: 2, fwd: 'gate', scheduler: 'wrr', weights: [1], ipv6: false, udp: false, port: 80 }), /weights/);
    assert.throws(() => new Testbed({ realServers: 2, weights: [1, 2, 3] }), /weights/);
    assert.throws(() => new Testbed({ prefix: 'Bad_Prefix' }), /prefix/);
    assert.throws(() => new Testbed({ directors: 90 }), /directors/);
  });

  it('the byte pattern is periodic and its block is whole periods', () => {
    assert.equal(PATTERN_BLOCK.length % PATTERN_PERIOD, 0);
    assert.equal(patternMismatch(PATTERN_BLOCK), -1);
    assert.equal(patternMismatch(PATTERN_BLOCK.subarray(5, 600), 5), -1);
    const bad = Buffer.from(PATTERN_BLOCK.subarray(0, 300));
    bad[260] = 0;
    assert.equal(patternMismatch(bad), 260);
  });

  it('names namespaces by prefix and role', () => {
    const tb = new Testbed({ prefix: 'x-y', directors: 2, realServers: 3 });
    assert.deepEqual(
      [tb.nsName('switch'), tb.nsName('client'), tb.nsName('director', 2), tb.nsName('real', 3)],
      ['x-y-sw', 'x-y-c', 'x-y-d2', 'x-y-r3'],
    );
    assert.equal(tb.directorDir(1), '/run/x-y-testbed/d1');
    assert.throws(() => tb.nsName('director', 3), /1\.\.2/);
  });
});

/** A stand-in for the saru daemon: checks its arguments, reports where it runs, listens on the control socket. */
const FAKE_DAEMON = `
import { createServer } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
const args = process.argv.slice(2);
const conf = args[args.indexOf('--config') + 1];
const sock = /^control_socket = (.*)$/m.exec(readFileSync(conf, 'utf8'))[1];
console.log('fake saru args', args.join(' '));
console.log('fake saru eth0', networkInterfaces().eth0?.[0]?.mac);
if (process.env.FAKE_SARU_MODE === 'fail') { console.log('fake saru: boom'); process.exit(1); }
rmSync(sock, { force: true });
const server = createServer().listen(sock);
process.on('SIGTERM', () => {
  if (process.env.FAKE_SARU_MODE === 'stubborn') return;
  server.close(() => process.exit(0));
});
`;

describe('testbed: namespaces (root)', function () {
  this.timeout(60_000);
  const prefix = 'sarut';
  const tb = new Testbed({ prefix, directors: 2, realServers: 2, startDaemons: false });
  const other = new Testbed({ prefix: `${prefix}-b`, directors: 1, realServers: 1, startDaemons: false });
  let tmp = '';

  before(async function () {
    if (process.getuid?.() !== 0) {
      process.stderr.write('    (skipping the namespace testbed tests: they need root)\n');
      this.skip();
    }
    tmp = mkdtempSync(join(tmpdir(), 'saru-testbed-'));
    writeFileSync(join(tmp, 'fake-saru.mjs'), FAKE_DAEMON);
    await tb.up();
  });

  after(async () => {
    if (process.getuid?.() !== 0) return;
    delete process.env.FAKE_SARU_MODE;
    await tb.down();
    await other.down();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const sh = async (ns: string, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> => {
    const r = await tb.exec(ns, cmd, args, { timeoutMs });
    assert.equal(r.code, 0, `${ns}: ${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  it('builds the namespaces and runs the real-server programs', async () => {
    const st = await tb.status();
    assert.deepEqual(st.namespaces, ['sarut-c', 'sarut-d1', 'sarut-d2', 'sarut-r1', 'sarut-r2', 'sarut-sw']);
    assert.deepEqual(
      st.processes.map((p) => [p.host, p.program, p.namespace, p.alive]),
      [
        ['r1', 'http', 'sarut-r1', true],
        ['r1', 'udp', 'sarut-r1', true],
        ['r2', 'http', 'sarut-r2', true],
        ['r2', 'udp', 'sarut-r2', true],
      ],
    );
    assert.deepEqual(
      st.directors.map((d) => [d.index, d.alive, d.socket]),
      [
        [1, false, false],
        [2, false, false],
      ],
    );
    for (let i = 1; i <= 2; i++) {
      const conf = readFileSync(join(tb.directorDir(i), 'saru.conf'), 'utf8');
      assert.match(conf, new RegExp(`^node_id = ${i}$`, 'm'));
      assert.match(readFileSync(join(tb.directorDir(i), 'services.cf'), 'utf8'), /^virtual=198\.18\.0\.100:80$/m);
    }
  });

  it('configures directors: shared MAC, own address primary, DIP secondary, no forwarding, no VIP', async () => {
    for (let i = 1; i <= 2; i++) {
      const ns = tb.nsName('director', i);
      const d = ADDRESSES.director(i);
      const [link] = JSON.parse(await sh(ns, 'ip', ['-j', 'addr', 'show', 'dev', 'eth0'])) as Array<{
        address: string;
        addr_info: Array<{ family: string; local: string; prefixlen: number; secondary?: boolean }>;
      }>;
      assert.equal(link!.address, ADDRESSES.sharedMac);
      const v4 = link!.addr_info.filter((a) => a.family === 'inet');
      assert.equal(v4[0]!.local, d.own4, 'the own address comes first');
      assert.deepEqual(
        v4.map((a) => [a.local, a.prefixlen, a.secondary === true]).sort(),
        [
          [d.own4, 24, false],
          [ADDRESSES.dip4, 24, true],
          [d.clientNet4, 24, false],
        ].sort(),
      );
      const v6 = link!.addr_info.filter((a) => a.family === 'inet6').map((a) => a.local);
      for (const a of [d.own6, ADDRESSES.dip6, d.clientNet6]) assert.ok(v6.includes(a), `${ns}: ${a} missing from ${v6.join(' ')}`);
      assert.ok(!v6.includes(ADDRESSES.vip6) && !v4.some((a) => a.local === ADDRESSES.vip4), `${ns}: the testbed must not add the VIP`);
      assert.equal((await sh(ns, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).trim(), '0');
      assert.equal((await sh(ns, 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).trim(), '0');
      assert.match(await sh(ns, 'ip', ['-4', 'addr', 'show', 'dev', 'eth1']), new RegExp(`inet ${d.cluster4.replace(/\./g, '\\.')}/24`));
      // The kernel's source towards the real servers is the director's own address.
      assert.match(await sh(ns, 'ip', ['route', 'get', ADDRESSES.real(1).ip4]), new RegExp(`src ${d.own4.replace(/\./g, '\\.')}\\b`));
      assert.match(await sh(ns, 'ip', ['-6', 'route', 'get', ADDRESSES.real(1).ip6]), new RegExp(`src ${d.own6}\\b`));
    }
  });

  it('configures real servers and the client: VIPs on lo, ARP sysctls, TX checksum offload off, static VIP neighbour', async () => {
    for (let j = 1; j <= 2; j++) {
      const ns = tb.nsName('real', j);
      const lo = await sh(ns, 'ip', ['addr', 'show', 'dev', 'lo']);
      assert.match(lo, /inet 198\.18\.0\.100\/32/);
      assert.match(lo, /inet6 2001:2::100\/128/);
      for (const k of ['all', 'eth0']) {
        assert.equal((await sh(ns, 'cat', [`/proc/sys/net/ipv4/conf/${k}/arp_ignore`])).trim(), '1');
        assert.equal((await sh(ns, 'cat', [`/proc/sys/net/ipv4/conf/${k}/arp_announce`])).trim(), '2');
      }
      assert.match(await sh(ns, 'ethtool', ['-k', 'eth0']), /^tx-checksumming: off/m);
      assert.match(await sh(ns, 'ip', ['route']), /^198\.18\.1\.0\/24 dev eth0/m);
    }
    const c = tb.nsName('client');
    assert.match(await sh(c, 'ethtool', ['-k', 'eth0']), /^tx-checksumming: off/m);
    assert.match(await sh(c, 'ip', ['neigh', 'show', ADDRESSES.vip4]), /lladdr 02:5a:52:55:00:01 PERMANENT/);
    assert.match(await sh(c, 'ip', ['-6', 'neigh', 'show', ADDRESSES.vip6]), /lladdr 02:5a:52:55:00:01 PERMANENT/);
  });

  it('every director reaches every real server over the hub (HTTP, IPv4 and IPv6)', async () => {
    for (let i = 1; i <= 2; i++) {
      for (let j = 1; j <= 2; j++) {
        const r = ADDRESSES.real(j);
        const ns = tb.nsName('director', i);
        assert.equal(await sh(ns, 'curl', ['-sS', '-m', '5', `http://${r.ip4}/`]), `r${j}\n`);
        assert.equal(await sh(ns, 'curl', ['-sS', '-m', '5', `http://[${r.ip6}]/`]), `r${j}\n`);
        assert.equal(await sh(ns, 'curl', ['-sS', '-m', '5', `http://${r.ip4}/health`]), 'ok');
      }
    }
  });

  it('real servers stream /bytes/N with the pattern and its Content-Length', async () => {
    const n = 3_000_017;
    const expected = Buffer.alloc(n);
    for (let k = 0; k < n; k++) expected[k] = k % PATTERN_PERIOD;
    const sha = createHash('sha256').update(expected).digest('hex');
    const out = await sh(tb.nsName('client'), 'bash', ['-c', `set -o pipefail; curl -sS -m 20 http://${ADDRESSES.real(2).ip4}/bytes/${n} | sha256sum`]);
    assert.equal(out.split(/\s+/)[0], sha);
    const head = await tb.exec(tb.nsName('client'), 'curl', ['-sS', '-m', '5', '-o', '/dev/null', '-D', '-', `http://[${ADDRESSES.real(1).ip6}]/bytes/${n}`]);
    assert.match(head.stdout, new RegExp(`^content-length: ${n}\\r$`, 'mi'));
    assert.match(head.stdout, /^x-real-server: r1\r$/im);
  });

  it('the UDP echo servers answer from the address the datagram was sent to', async () => {
    for (let j = 1; j <= 2; j++) {
      const r = ADDRESSES.real(j);
      for (const [to, from] of [
        [r.ip4, `${r.ip4}:7`],
        [r.ip6, `[${r.ip6}]:7`],
      ] as const) {
        const res = await tb.exec(tb.nsName('director', 1), process.execPath, [UDP_CLIENT, '--to', to, '--payload', 'hello'], { timeoutMs: 10_000 });
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stdout, `r${j} hello`);
        assert.equal(res.stderr.trim(), `from ${from}`);
      }
      // Sent to the VIP (here from inside the real server): the reply's source is the VIP, as DR needs.
      const vip = await tb.exec(tb.nsName('real', j), process.execPath, [UDP_CLIENT, '--to', ADDRESSES.vip4, '--payload', 'x']);
      assert.equal(vip.stdout, `r${j} x`);
      assert.equal(vip.stderr.trim(), `from ${ADDRESSES.vip4}:7`);
    }
  });

  it('the client reaches the directors own addresses (client network and data segment)', async () => {
    const ns = tb.nsName('director', 2);
    const d = ADDRESSES.director(2);
    const targets = [d.clientNet4, d.own4, `[${d.clientNet6}]`, `[${d.own6}]`];
    // A one-shot TCP server in the director's namespace (answers a bare line, hence curl --http0.9); it exits after serving every target once.
    const server = tb.exec(
      ns,
      process.execPath,
      [
        '-e',
        `let n=0;const s=require('net').createServer(c=>{c.end('d2\\n');if(++n===${targets.length})s.close()}).listen(9000,'::');setTimeout(()=>process.exit(3),15000).unref()`,
      ],
      { timeoutMs: 20_000 },
    );
    for (const t of targets) {
      let last = '';
      const ok = await waitFor(async () => {
        const r = await tb.exec(tb.nsName('client'), 'curl', ['-sS', '--http0.9', '-m', '3', `http://${t}:9000/`], { timeoutMs: 5000 });
        last = `exit ${r.code} ${r.stdout}${r.stderr}`;
        return r.code === 0 && r.stdout === 'd2\n';
      }, 10_000, 50);
      assert.ok(ok, `client -> ${t}:9000: ${last}`);
    }
    const r = await server;
    assert.equal(r.code, 0, `server in ${ns}: exit ${r.code} ${r.stderr}`);
  });

  it('the hub floods a frame for the shared MAC to every director', async () => {
    const rx = async (ns: string): Promise<number> => {
      const r = await runChecked('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', 'eth0']);
      return (JSON.parse(r.stdout) as Array<{ stats64: { rx: { bytes: number } } }>)[0]!.stats64.rx.bytes;
    };
    const directors = [tb.nsName('director', 1), tb.nsName('director', 2)];
    const before = await Promise.all(directors.map(rx));
    // 20 datagrams of 1000 bytes to the VIP: the client's static neighbour entry sends them to the shared MAC.
    await sh(tb.nsName('client'), process.execPath, [
      '-e',
      `const s=require('dgram').createSocket('udp4');const b=Buffer.alloc(1000,120);let n=0;const go=()=>s.send(b,9,'${ADDRESSES.vip4}',()=>{if(++n<20)go();else s.close()});go()`,
    ]);
    let after: number[] = [];
    const ok = await waitFor(async () => {
      after = await Promise.all(directors.map(rx));
      return after.every((a, k) => a - before[k]! >= 20 * 1000);
    }, 3000);
    assert.ok(ok, `rx bytes before ${before.join(',')} after ${after.join(',')}: each director must see all 20 kB`);
  });

  it('starts, stops and kills directors (stand-in daemon): control socket, pid, log, namespace', async () => {
    const ctl = new Testbed({ prefix, directors: 2, realServers: 2, startDaemons: false, daemonScript: join(tmp, 'fake-saru.mjs') });
    await ctl.startDirector(1);
    let st: TestbedStatus = await ctl.status();
    assert.deepEqual(
      st.directors.map((d) => [d.index, d.alive, d.socket]),
      [
        [1, true, true],
        [2, false, false],
      ],
    );
    const log = readFileSync(join(ctl.directorDir(1), 'saru.log'), 'utf8');
    assert.match(log, new RegExp(`fake saru args --config ${join(ctl.directorDir(1), 'saru.conf')} --log_facility -`));
    assert.match(log, /fake saru eth0 02:5a:52:55:00:01/, 'the daemon runs inside the director namespace');
    await assert.rejects(ctl.startDirector(1), /already running/);

    const pid1 = st.directors[0]!.pid!;
    ctl.killDirector(1);
    assert.ok(await waitFor(() => !isAlive(pid1), 3000), 'SIGKILL');
    st = await ctl.status();
    assert.deepEqual([st.directors[0]!.alive, st.directors[0]!.socket], [false, true], 'a killed daemon leaves its socket file');
    // Restart over the stale socket: startDirector waits for a new one.
    await ctl.startDirector(1);
    st = await ctl.status();
    assert.ok(st.directors[0]!.alive && st.directors[0]!.pid !== pid1);
    await ctl.stopDirector(1);
    st = await ctl.status();
    assert.deepEqual([st.directors[0]!.alive, st.directors[0]!.socket], [false, false]);
    await ctl.stopDirector(1); // not running: no-op

    process.env.FAKE_SARU_MODE = 'fail';
    try {
      await assert.rejects(ctl.startDirector(2), (e: Error) => /exited before creating its control socket/.test(e.message) && /fake saru: boom/.test(e.message));
    } finally {
      delete process.env.FAKE_SARU_MODE;
    }
  });

  it('a director that ignores SIGTERM is killed and reported by stopDirector', async function () {
    this.timeout(30_000);
    const ctl = new Testbed({ prefix, directors: 2, realServers: 2, startDaemons: false, daemonScript: join(tmp, 'fake-saru.mjs') });
    process.env.FAKE_SARU_MODE = 'stubborn';
    try {
      await ctl.startDirector(2);
    } finally {
      delete process.env.FAKE_SARU_MODE;
    }
    const pid = (await ctl.status()).directors[1]!.pid!;
    await assert.rejects(ctl.stopDirector(2), /did not exit within 5000 ms of SIGTERM/);
    assert.ok(!isAlive(pid));
  });

  it('exec reports exit codes and time limits; failing commands name the command line and stderr', async () => {
    const r = await tb.exec(tb.nsName('client'), 'sh', ['-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    const t = await tb.exec(tb.nsName('client'), 'sleep', ['5'], { timeoutMs: 200 });
    assert.deepEqual([t.code, t.timedOut], [124, true]);
    await assert.rejects(runChecked('ip', ['-n', 'sarut-nonexistent', 'link', 'show']), (e: Error) =>
      e.message.startsWith('ip -n sarut-nonexistent link show: exit code') && /sarut-nonexistent/.test(e.message.slice(40)),
    );
  });

  it('a second prefix builds beside the first and neither down() touches the other', async () => {
    await other.up();
    assert.deepEqual(other.namespaces(), ['sarut-b-c', 'sarut-b-d1', 'sarut-b-r1', 'sarut-b-sw']);
    assert.deepEqual(tb.namespaces(), ['sarut-c', 'sarut-d1', 'sarut-d2', 'sarut-r1', 'sarut-r2', 'sarut-sw']);
    assert.equal(await sh(other.nsName('director', 1), 'curl', ['-sS', '-m', '5', `http://${ADDRESSES.real(1).ip4}/`]), 'r1\n');
    assert.equal(await sh(tb.nsName('director', 1), 'curl', ['-sS', '-m', '5', `http://${ADDRESSES.real(2).ip4}/`]), 'r2\n');
    await other.down();
    assert.deepEqual(other.namespaces(), []);
    assert.equal(tb.namespaces().length, 6);
    assert.equal(await sh(tb.nsName('director', 2), 'curl', ['-sS', '-m', '5', `http://${ADDRESSES.real(1).ip4}/`]), 'r1\n');
  });

  it('up() again rebuilds from scratch: old processes gone, new ones serving', async () => {
    const old = (await tb.status()).processes.map((p) => p.pid);
    await tb.up();
    const st = await tb.status();
    assert.equal(st.processes.length, 4);
    for (const pid of old) assert.ok(!isAlive(pid), `old process ${pid} still alive`);
    for (const p of st.processes) assert.ok(p.alive && !old.includes(p.pid));
    assert.equal(await sh(tb.nsName('director', 2), 'curl', ['-sS', '-m', '5', `http://[${ADDRESSES.real(2).ip6}]/`]), 'r2\n');
  });

  it('down() removes every namespace, process and the state directory, and is idempotent', async () => {
    // A stray process inside a testbed namespace (as a test's tcpdump would be) goes too.
    const stray = tb.exec(tb.nsName('client'), 'sleep', ['30'], { timeoutMs: 40_000 });
    assert.ok(await waitFor(async () => (await runCommand('ip', ['netns', 'pids', tb.nsName('client')])).stdout.trim() !== '', 3000));
    const pids = (await tb.status()).processes.map((p) => p.pid);
    await tb.down();
    assert.notEqual((await stray).code, 0);
    for (const pid of pids) assert.ok(!isAlive(pid), `process ${pid} survived down()`);
    assert.deepEqual(tb.namespaces(), []);
    const list = await runChecked('ip', ['netns', 'list']);
    assert.ok(!/^sarut-/m.test(list.stdout), list.stdout);
    assert.ok(!existsSync(tb.stateDir));
    await tb.down();
    assert.deepEqual((await tb.status()).namespaces, []);
  });
});
