/**
 * End-to-end: real-server health checks in the namespace testbed. Two
 * directors (static halves of the source ports) each check three real
 * servers on their own; real HTTP servers are stopped and started under
 * load. Proof comes from the clients (which real server answered, wrk's
 * error counts), from each director's `saruadm -L -n` and from the
 * "real server down/up" lines each director logs (their times bound the
 * detection delay). Needs root (CI has it).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ADDRESSES, LogTail, Testbed, lineTime, type LogLine } from '../../saru/testbed/index.js';
import { curlRequests, tally } from '../helpers/curl.js';

const ROOT = process.getuid?.() === 0;
const VIP = ADDRESSES.vip4;
const RIP = [1, 2, 3, 4].map((j) => ADDRESSES.real(j).ip4);
const CHECK_INTERVAL_S = 1;
const CHECK_TIMEOUT_S = 1;
/** The bound: a failed server is out within checkinterval + checktimeout. */
const DETECT_MS = (CHECK_INTERVAL_S + CHECK_TIMEOUT_S) * 1000;

/** ldirectord.cf: negotiate GET /health expecting "ok", quiescent, r4 as the fallback, autoreload on. */
const LDIRECTORD = `# health e2e (ldirectord.cf)
checkinterval=${CHECK_INTERVAL_S}
checktimeout=${CHECK_TIMEOUT_S}
negotiatetimeout=${CHECK_TIMEOUT_S}
quiescent=yes
autoreload=yes

virtual=${VIP}:80
	real=${RIP[0]}:80 gate 1
	real=${RIP[1]}:80 gate 1
	real=${RIP[2]}:80 gate 1
	fallback=${RIP[3]}:80 gate
	scheduler=rr
	protocol=tcp
	service=http
	checktype=negotiate
	request="/health"
	receive="^ok$"
`;

/** keepalived.conf: TCP_CHECK, no inhibit_on_failure (a failed server is removed), sorry_server r4, VRRP ignored. */
const KEEPALIVED = `! health e2e (keepalived.conf)
global_defs {
  router_id saru_e2e
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  virtual_ipaddress {
    ${VIP}
  }
}
virtual_server ${VIP} 80 {
  delay_loop ${CHECK_INTERVAL_S}
  lb_algo rr
  lb_kind DR
  protocol TCP
  sorry_server ${RIP[3]} 80
  real_server ${RIP[0]} 80 {
    weight 1
    TCP_CHECK {
      connect_timeout ${CHECK_TIMEOUT_S}
      retry 0
    }
  }
  real_server ${RIP[1]} 80 {
    weight 1
    TCP_CHECK {
      connect_timeout ${CHECK_TIMEOUT_S}
      retry 0
    }
  }
  real_server ${RIP[2]} 80 {
    weight 1
    TCP_CHECK {
      connect_timeout ${CHECK_TIMEOUT_S}
      retry 0
    }
  }
}
`;

/** Director i's log lines, each with its time as epoch ms (`at`). */
function logLines(tb: Testbed, i: number): Array<LogLine & { at: number }> {
  return new LogTail(join(tb.directorDir(i), 'saru.log'), true).read().map((l) => ({ ...l, at: lineTime(l) }));
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Wait until every director has logged `msg` for real server `rip` at or
 * after `since` (epoch ms); return each director's line time.
 */
async function waitLogged(tb: Testbed, msg: string, rip: string, since: number, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const times = [1, 2].map((i) => logLines(tb, i).find((l) => l.msg === msg && l.realServer === `${rip}:80` && l.at >= since)?.at);
    if (times.every((t) => t !== undefined)) return times as number[];
    assert.ok(Date.now() < deadline, `"${msg}" for ${rip} not logged by every director within ${timeoutMs} ms: ${JSON.stringify(times)}`);
    await sleep(50);
  }
}

/** n HTTP requests through the VIP, each on its own connection; the bodies ("r1"...). */
function requests(tb: Testbed, n: number): Promise<string[]> {
  return curlRequests(tb, `http://${VIP}/`, n, { maxTimeS: 5 });
}

/** Real servers and weights in director i's `-L -n` listing. */
async function listed(tb: Testbed, i: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await tb.adm(i, ['-L', '-n'])).split('\n')) {
    const m = /^ {2}-> (\S+):80\s+\S+\s+(\d+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** wrk's completed requests and errors (socket errors plus non-2xx answers). */
function wrkResult(stdout: string): { requests: number; errors: number } {
  const req = /(\d+) requests in/.exec(stdout);
  assert.ok(req, `wrk output: ${stdout}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { requests: Number(req[1]), errors };
}

(ROOT ? describe : describe.skip)('e2e: real-server health checks', function () {
  this.timeout(240_000);
  let tb: Testbed;

  before(async () => {
    tb = new Testbed({ prefix: 'hc', directors: 2, realServers: 4, slices: 'static', jsonLogs: true, services: LDIRECTORD });
    await tb.up();
    for (let i = 1; i <= 2; i++) {
      for (let tries = 0; ; tries++) {
        const c = await tb.cluster(i);
        if (c.unresolved.length === 0) break;
        assert.ok(tries < 100, `director ${i} never resolved ${c.unresolved.join(' ')}`);
        await sleep(100);
      }
    }
  });

  after(async () => {
    await tb?.down();
  });

  it('ldirectord negotiate: a stopped HTTP server is quiesced within checkinterval + checktimeout under wrk, gets no new connections, and comes back', async () => {
    const before = tally(await requests(tb, 90));
    assert.deepEqual(Object.keys(before).sort(), ['r1', 'r2', 'r3'], `all three up: ${JSON.stringify(before)}`);

    const wrk = tb.exec(tb.nsName('client'), 'wrk', ['-t1', '-c8', '-d6s', '-H', 'Connection: close', `http://${VIP}/`], { timeoutMs: 30_000 });
    await sleep(1500);
    await tb.stopRealHttp(2);
    const stoppedAt = Date.now();
    const down = await waitLogged(tb, 'real server down', RIP[1]!, stoppedAt - 50);
    for (const t of down) assert.ok(t - stoppedAt <= DETECT_MS, `detected after ${t - stoppedAt} ms (bound ${DETECT_MS} ms)`);
    for (let i = 1; i <= 2; i++) assert.equal((await listed(tb, i)).get(RIP[1]!), 0, `director ${i}: r2 is quiescent (weight 0)`);
    assert.match(await tb.adm(1, ['--health']), new RegExp(`${RIP[1]!.replace(/\./g, '\\.')}:80 +DOWN .*http#0 DOWN \\(connect refused`));
    const w = await wrk;
    assert.equal(w.code, 0, w.stderr);
    const during = wrkResult(w.stdout);
    assert.ok(during.requests > 500, `wrk kept completing requests: ${w.stdout}`);

    // r2 is out: every new connection succeeds, none reaches r2
    const out = tally(await requests(tb, 120));
    assert.deepEqual(Object.keys(out).sort(), ['r1', 'r3'], JSON.stringify(out));
    assert.equal(out.r1! + out.r3!, 120);
    const w2 = wrkResult((await tb.exec(tb.nsName('client'), 'wrk', ['-t1', '-c8', '-d2s', '-H', 'Connection: close', `http://${VIP}/`], { timeoutMs: 30_000 })).stdout);
    assert.equal(w2.errors, 0, 'with r2 out, wrk sees no error');
    assert.ok(w2.requests > 200);

    await tb.startRealHttp(2);
    const startedAt = Date.now();
    const up = await waitLogged(tb, 'real server up', RIP[1]!, startedAt - 50);
    for (const t of up) assert.ok(t - startedAt <= DETECT_MS, `back after ${t - startedAt} ms`);
    for (let i = 1; i <= 2; i++) assert.equal((await listed(tb, i)).get(RIP[1]!), 1, `director ${i}: r2 has its weight back`);
    const back = tally(await requests(tb, 90));
    assert.ok((back.r2 ?? 0) >= 20, `r2 gets new connections again: ${JSON.stringify(back)}`);
  });

  it('all real servers down: the fallback answers; the first real server back replaces it', async () => {
    const since = Date.now();
    await Promise.all([1, 2, 3].map((j) => tb.stopRealHttp(j)));
    for (const rip of RIP.slice(0, 3)) await waitLogged(tb, 'real server down', rip, since - 50);
    assert.deepEqual(tally(await requests(tb, 40)), { r4: 40 }, 'the fallback (sorry) server takes every new connection');

    const back = Date.now();
    await tb.startRealHttp(3);
    await waitLogged(tb, 'real server up', RIP[2]!, back - 50);
    assert.deepEqual(tally(await requests(tb, 40)), { r3: 40 }, 'the first real server back takes them all');
    await Promise.all([1, 2].map((j) => tb.startRealHttp(j)));
    for (const rip of RIP.slice(0, 2)) await waitLogged(tb, 'real server up', rip, back - 50);
  });

  it('autoreload to keepalived.conf without dropping a running download; TCP_CHECK without inhibit_on_failure removes a failed server', async () => {
    // a slow download through the VIP that spans the reload
    const download = tb.exec(tb.nsName('client'), 'curl', ['-s', '--fail', '--limit-rate', '400k', '-o', '/dev/null', '-w', '%{size_download}', `http://${VIP}/bytes/4000000`], { timeoutMs: 60_000 });
    let downloadDone = false;
    void download.then(() => (downloadDone = true));
    await sleep(500);
    const since = Date.now();
    tb.writeServices(KEEPALIVED);
    for (let i = 1; i <= 2; i++) {
      for (;;) {
        const l = logLines(tb, i).find((x) => x.msg === 'services reloaded' && x.at >= since);
        if (l) break;
        assert.ok(Date.now() - since < 5000, `director ${i} did not autoreload`);
        await sleep(100);
      }
      const ignored = logLines(tb, i).filter((x) => x.at >= since && typeof x.msg === 'string' && x.msg.startsWith('ignored: '));
      assert.deepEqual(ignored.map((x) => x.msg).sort(), ['ignored: global_defs', 'ignored: vrrp_instance VI_1'], 'VRRP and global blocks are reported as ignored');
    }
    assert.equal(downloadDone, false, 'the download still runs after both reloads (it spans them)');
    const d = await download;
    assert.equal(d.code, 0, `the download across the reload failed: ${d.stderr}`);
    assert.equal(d.stdout.trim(), '4000000');

    const stopAt = Date.now();
    await tb.stopRealHttp(1);
    await waitLogged(tb, 'real server down', RIP[0]!, stopAt - 50);
    for (let i = 1; i <= 2; i++) {
      const l = await listed(tb, i);
      assert.equal(l.has(RIP[0]!), false, `director ${i}: r1 removed from the service`);
      assert.deepEqual([...l.keys()].sort(), [RIP[1], RIP[2]]);
    }
    const out = tally(await requests(tb, 60));
    assert.deepEqual(Object.keys(out).sort(), ['r2', 'r3']);
    await tb.startRealHttp(1);
    await waitLogged(tb, 'real server up', RIP[0]!, stopAt);
    for (let i = 1; i <= 2; i++) assert.equal((await listed(tb, i)).get(RIP[0]!), 1);
  });
});
