/**
 * End-to-end: the real `saru` daemon in network namespaces (the testbed of
 * DESIGN section 8), real curl and UDP clients, real HTTP and UDP echo
 * servers. Needs root (CI has it); without root the suite says so and skips.
 * Proof comes from what the clients receive and from each director's own
 * counters and connection table, read through saruadm.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { ClusterInfo } from '../../saru/control.js';
import { Testbed, type TestbedInit } from '../../saru/testbed/index.js';
import { curlRequests, tally } from '../helpers/curl.js';

const ROOT = process.getuid?.() === 0;
const ADM = fileURLToPath(new URL('../../saru/adm.js', import.meta.url));
const NATIVE_TEST = fileURLToPath(new URL('./inject.js', import.meta.url));

/** Bring the testbed up and wait until every director knows every real server's MAC. */
async function up(init: TestbedInit): Promise<Testbed> {
  const tb = new Testbed({ directors: 1, realServers: 2, slices: 'static', ...init });
  await tb.up();
  for (let i = 1; i <= tb.directors; i++) {
    for (let tries = 0; ; tries++) {
      const c = await cluster(tb, i);
      if (c.unresolved.length === 0) break;
      assert.ok(tries < 100, `director ${i} never resolved ${c.unresolved.join(' ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return tb;
}

/** n HTTP requests through the VIP, each on its own TCP connection; the response bodies ("r1", "r2"...). */
function requests(tb: Testbed, url: string, n: number, parallel = 8): Promise<string[]> {
  return curlRequests(tb, url, n, { parallel });
}

async function adm(tb: Testbed, i: number, args: string[]): Promise<string> {
  return tb.adm(i, args);
}

async function cluster(tb: Testbed, i: number): Promise<ClusterInfo> {
  return tb.cluster(i);
}

function counter(list: Array<{ name: string; value: number }>, name: string): number {
  return list.find((c) => c.name === name)?.value ?? 0;
}

function inSlice(slice: string, bucket: number): boolean {
  return slice.split(',').some((r) => {
    const [a, b] = r.split('-').map(Number);
    return bucket >= a! && bucket <= (b ?? a!);
  });
}

/** Client ports of the entries in a director's `-L -n -c` listing. */
function clientPorts(conns: string): number[] {
  const out: number[] = [];
  for (const line of conns.split('\n')) {
    const m = /^(?:TCP|UDP)\s+\S+\s+\S+\s+(\S+)\s/.exec(line);
    if (m) out.push(Number(/:(\d+)$/.exec(m[1]!)![1]));
  }
  return out;
}

(ROOT ? describe : describe.skip)('e2e: saru in network namespaces', function () {
  this.timeout(180_000);
  let tb: Testbed | null = null;
  afterEach(async () => {
    if (tb) await tb.down();
    tb = null;
  });

  it('1. one director, DR, wrr 1:2: 1,000 HTTP requests all succeed, split 1:2', async () => {
    tb = await up({ prefix: 'se2e', directors: 1, realServers: 2, fwd: 'gate', scheduler: 'wrr', weights: [1, 2] });
    const bodies = await requests(tb, 'http://198.18.0.100/', 1000);
    const t = tally(bodies);
    assert.equal(bodies.length, 1000, JSON.stringify(t));
    assert.deepEqual(Object.keys(t).sort(), ['r1', 'r2']);
    // wrr gives exactly 1 of every 3 new connections to r1.
    assert.ok(Math.abs(t.r1! - 333) <= 2, `r1 got ${t.r1}`);
    const c = await cluster(tb, 1);
    assert.equal(counter(c.counters, 'scheduled'), 1000);
    const list = await adm(tb, 1, ['-L', '-n']);
    assert.match(list, /TCP {2}198\.18\.0\.100:80 wrr/);
    assert.match(list, /-> 198\.18\.0\.102:80 +Route +2 /);
    const stats = await adm(tb, 1, ['-L', '-n', '--stats', '--exact']);
    assert.match(stats, /-> 198\.18\.0\.101:80 +33[1-5] /);
  });

  it('2. three directors, shared VIP and MAC, static thirds: each forwards only its slice, each connection once', async () => {
    tb = await up({ prefix: 'se2e', directors: 3, realServers: 2, fwd: 'gate', scheduler: 'rr' });
    const n = 600;
    const bodies = await requests(tb, 'http://198.18.0.100/', n);
    assert.equal(bodies.length, n);
    assert.ok(bodies.every((b) => b === 'r1' || b === 'r2'), 'every answer is one whole body');
    let scheduled = 0;
    for (let i = 1; i <= 3; i++) {
      const c = await cluster(tb, i);
      const mine = counter(c.counters, 'scheduled');
      assert.ok(mine > n / 10, `director ${i} scheduled ${mine}`);
      scheduled += mine;
      const ports = clientPorts(await adm(tb, i, ['-L', '-n', '-c']));
      assert.ok(ports.length > 0, `director ${i} lists its connections`);
      for (const p of ports) assert.ok(inSlice(c.slice, p & 1023), `director ${i} (slice ${c.slice}) holds client port ${p}`);
    }
    assert.equal(scheduled, n, 'each connection scheduled by exactly one director');
  });

  it('3. NAT: replies return through the director that owns the connection', async () => {
    tb = await up({ prefix: 'se2e', directors: 2, realServers: 2, fwd: 'masq', scheduler: 'rr' });
    const n = 300;
    const bodies = await requests(tb, 'http://198.18.0.100/', n);
    const t = tally(bodies);
    // Each director runs its own rr over its own connections: within one per director of half.
    assert.ok(t.r1! + t.r2! === n && Math.abs(t.r1! - n / 2) <= 2, JSON.stringify(t));
    let scheduled = 0;
    for (let i = 1; i <= 2; i++) {
      const c = await cluster(tb, i);
      scheduled += counter(c.counters, 'scheduled');
      const stats = await adm(tb, i, ['-L', '-n', '--stats', '--exact']);
      const m = /TCP {2}198\.18\.0\.100:80 +(\d+) +(\d+) +(\d+)/.exec(stats)!;
      const [conns, inPkts, outPkts] = [Number(m[1]), Number(m[2]), Number(m[3])];
      assert.ok(conns > 0 && inPkts > 0, stats);
      assert.ok(outPkts >= conns * 2, `director ${i} carried the replies of its own connections: ${stats}`);
      for (const p of clientPorts(await adm(tb, i, ['-L', '-n', '-c']))) assert.ok(inSlice(c.slice, p & 1023));
    }
    assert.equal(scheduled, n);
  });

  it('4. IPv6, DR', async () => {
    tb = await up({ prefix: 'se2e', directors: 2, realServers: 2, fwd: 'gate', scheduler: 'wrr', ipv6: true });
    const bodies = await requests(tb, 'http://[2001:2::100]/', 200);
    const t = tally(bodies);
    // Two directors, each with its own wrr turn: within one per director of half.
    assert.ok(t.r1! + t.r2! === 200 && Math.abs(t.r1! - 100) <= 2, JSON.stringify(t));
    const list = await adm(tb, 1, ['-L', '-n']);
    assert.match(list, /TCP {2}\[2001:2::100\]:80 wrr/);
  });

  it('5. UDP echo through the VIP', async () => {
    tb = await up({ prefix: 'se2e', directors: 2, realServers: 2, fwd: 'gate', scheduler: 'rr', udp: true });
    const client = fileURLToPath(new URL('../../saru/testbed/udp-client.js', import.meta.url));
    const seen: Record<string, number> = {};
    for (let k = 0; k < 40; k++) {
      const r: { code: number; stdout: string; stderr: string } = await tb.exec(tb.nsName('client'), process.execPath, [client, '--to', '198.18.0.100', '--port', '7', '--payload', `hello${k}`, '--source-port', String(41000 + k)]);
      assert.equal(r.code, 0, r.stderr);
      const m = /^(r\d) hello(\d+)$/.exec(r.stdout.trim());
      assert.ok(m && Number(m[2]) === k, `reply "${r.stdout}"`);
      seen[m[1]!] = (seen[m[1]!] ?? 0) + 1;
      assert.match(r.stderr, /from 198\.18\.0\.100:7/, 'the reply comes from the VIP');
    }
    assert.deepEqual(Object.keys(seen).sort(), ['r1', 'r2']);
  });

  it('6. bad input: random and truncated frames do not crash or stall the daemon; drops are counted', async () => {
    tb = await up({ prefix: 'se2e', directors: 1, realServers: 2, fwd: 'gate', scheduler: 'rr' });
    const before = await cluster(tb, 1);
    const r: { code: number; stdout: string; stderr: string } = await tb.exec(tb.nsName('client'), process.execPath, [NATIVE_TEST, '--ifname', 'eth0', '--dst-mac', tb.addresses.sharedMac, '--count', '20000', '--seed', '7'], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const sent = JSON.parse(r.stdout) as { random: number; truncated: number };
    assert.ok(sent.random > 0 && sent.truncated > 0);
    const bodies = await requests(tb, 'http://198.18.0.100/', 100);
    assert.equal(bodies.length, 100, 'still forwarding after the garbage');
    const after = await cluster(tb, 1);
    const dropped = after.drops.reduce((s, d) => s + d.value, 0) - before.drops.reduce((s, d) => s + d.value, 0);
    assert.ok(dropped > 1000, `drops counted: ${JSON.stringify(after.drops)}`);
    const alive = await tb.status();
    assert.ok(alive.directors[0]!.alive, 'the daemon is still running');
  });

  it('7. SIGHUP reloads services without dropping a download; SIGTERM removes the rules and the VIP', async () => {
    tb = await up({ prefix: 'se2e', directors: 1, realServers: 2, fwd: 'gate', scheduler: 'wrr' });
    const ns = tb.nsName('director', 1);
    const nft = await tb.exec(ns, 'nft', ['list', 'table', 'inet', 'saru']);
    assert.equal(nft.code, 0, 'the host-stack table is in place while saru runs');
    assert.match((await tb.exec(ns, 'ip', ['-o', 'addr', 'show', 'dev', 'eth0'])).stdout, /198\.18\.0\.100\/32/);

    // A 4 MB download at 2 MB/s: about two seconds in flight across the reload.
    const size = 4_000_000;
    const download = tb.exec(tb.nsName('client'), 'bash', ['-c', `curl -s --fail --limit-rate 2M http://198.18.0.100/bytes/${size} | sha256sum`], { timeoutMs: 60_000 });
    for (let tries = 0; (await cluster(tb, 1)).counters.find((c) => c.name === 'scheduled')!.value < 1; tries++) {
      assert.ok(tries < 50, 'the download never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    const servicesPath = `${tb.directorDir(1)}/services.cf`;
    const { readFileSync, writeFileSync } = await import('node:fs');
    const changed = readFileSync(servicesPath, 'utf8').replace(/(real=198\.18\.0\.101:80 gate) 1/, '$1 0').replace(/(real=198\.18\.0\.102:80 gate) 1/, '$1 3');
    assert.notEqual(changed, readFileSync(servicesPath, 'utf8'), 'the services file was edited');
    writeFileSync(servicesPath, changed);
    const pid = (await tb.status()).directors[0]!.pid!;
    process.kill(pid, 'SIGHUP');
    for (let tries = 0; !/-> 198\.18\.0\.102:80 +Route +3 /.test(await adm(tb, 1, ['-L', '-n'])); tries++) {
      assert.ok(tries < 50, 'the reload was not applied');
      await new Promise((r) => setTimeout(r, 50));
    }
    const d = await download;
    assert.equal(d.code, 0, d.stderr);
    const { createHash } = await import('node:crypto');
    const { patternByte } = await import('../../saru/testbed/index.js');
    const h = createHash('sha256');
    const chunk = new Uint8Array(size);
    for (let k = 0; k < size; k++) chunk[k] = patternByte(k);
    h.update(chunk);
    assert.equal(d.stdout.split(' ')[0], h.digest('hex'), 'the download spanning the reload is intact');
    const after = await requests(tb, 'http://198.18.0.100/', 30);
    assert.deepEqual(tally(after), { r2: 30 }, 'weight 0 takes no new connections after the reload');

    await tb.stopDirector(1);
    assert.notEqual((await tb.exec(ns, 'nft', ['list', 'table', 'inet', 'saru'])).code, 0, 'SIGTERM removed the nftables table');
    assert.doesNotMatch((await tb.exec(ns, 'ip', ['-o', 'addr', 'show', 'dev', 'eth0'])).stdout, /198\.18\.0\.100\//, 'SIGTERM removed the VIP');
    assert.match(readFileSync(`${tb.directorDir(1)}/saru.log`, 'utf8'), /director stopped/);
  });
});
