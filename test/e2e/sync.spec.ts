/**
 * End-to-end: three directors, each running `saru` and `saru-syncd`, in the
 * namespace testbed. Connections survive the death of the director that
 * carries them: a rate-limited download whose director is killed with
 * SIGKILL (saru and saru-syncd) completes intact; 200 long-lived keep-alive
 * connections live through 10 rounds of killing and restarting a random
 * director; both again with 10% loss on the cluster bridge; and a forged
 * datagram (wrong key) and a replayed one change nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SyncInfo } from '../../saru/control.js';
import { Testbed, patternByte } from '../../saru/testbed/index.js';

const ROOT = process.getuid?.() === 0;
const LONGCONN = fileURLToPath(new URL('../../saru/testbed/longconn.js', import.meta.url));
const SEND = fileURLToPath(new URL('../helpers/sync-send.js', import.meta.url));
const VIP = '198.18.0.100';
const GROUP = '239.192.83.2';
const PORT = 7085;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function counter(list: Array<{ name: string; value: number }>, name: string): number {
  return list.find((c) => c.name === name)?.value ?? 0;
}

function sha256Pattern(size: number): string {
  const chunk = new Uint8Array(size);
  for (let k = 0; k < size; k++) chunk[k] = patternByte(k);
  return createHash('sha256').update(chunk).digest('hex');
}

interface LongconnResult {
  connections: number;
  opened: number;
  requests: number;
  lost: Array<{ conn: number; atMs: number; why: string; requests: number }>;
}

(ROOT ? describe : describe.skip)('e2e: saru-syncd with three directors', function () {
  this.timeout(400_000);
  let tb: Testbed;

  before(async () => {
    tb = new Testbed({ prefix: 'sy', directors: 3, realServers: 2, jsonLogs: true, sync: true });
    await tb.up();
    // A small client receive buffer keeps a rate-limited download flowing through the director
    // (rather than the server filling megabytes of window at once and the client draining them in silence).
    const r = await tb.exec(tb.nsName('client'), 'sysctl', ['-w', 'net.ipv4.tcp_rmem=4096 65536 196608']);
    assert.equal(r.code, 0, r.stderr);
    await tb.waitForAllocation([1, 2, 3], 20_000);
  });

  after(async () => {
    if (process.env.SARU_KEEP_TESTBED === '1') return; // for a post-mortem: npm run testbed -- down --prefix sy
    await tb?.down();
  });

  async function restart(i: number): Promise<void> {
    await tb.startDirector(i);
    await tb.startSyncd(i);
  }

  /** The director whose transmitted frames grow over 1 s: the one forwarding the only flow. */
  async function carrier(): Promise<number> {
    const tx = async (): Promise<number[]> => Promise.all([1, 2, 3].map(async (i) => counter((await tb.cluster(i)).counters, 'txFrames')));
    const a = await tx();
    await sleep(1000);
    const b = await tx();
    const d = b.map((v, k) => v - a[k]!);
    const best = d.indexOf(Math.max(...d));
    assert.ok(d[best]! > 20, `no director forwards the download (tx deltas ${d.join(', ')})`);
    assert.equal(d.filter((v) => v > 20).length, 1, `exactly one director forwards it (tx deltas ${d.join(', ')})`);
    return best + 1;
  }

  async function killCarrierDuringDownload(): Promise<void> {
    await tb.waitForAllocation([1, 2, 3], 20_000);
    const size = 12 * 1024 * 1024;
    let finished = false;
    const download = tb.exec(tb.nsName('client'), 'bash', ['-c', `curl -s --fail --max-time 90 --limit-rate 1M http://${VIP}/bytes/${size} | sha256sum`], { timeoutMs: 120_000 });
    void download.then(() => (finished = true));
    await sleep(1500);
    const c = await carrier();
    tb.killDirector(c);
    assert.equal(finished, false, 'the download was still running when its director was killed');
    const others = [1, 2, 3].filter((i) => i !== c);
    await tb.waitForAllocation(others, 10_000);
    const d = await download;
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout.split(' ')[0], sha256Pattern(size), `the download through director ${c}, killed midway, completed intact`);
    await restart(c);
    await tb.waitForAllocation([1, 2, 3], 20_000);
  }

  async function killRounds(rounds: number, seed: number): Promise<void> {
    await tb.waitForAllocation([1, 2, 3], 20_000);
    const stopFile = `${tb.stateDir}/longconn.stop`;
    rmSync(stopFile, { force: true });
    const run = tb.exec(
      tb.nsName('client'),
      process.execPath,
      [LONGCONN, '--url', `http://${VIP}/`, '--connections', '200', '--duration', '300000', '--interval', '250', '--timeout', '10000', '--stop-file', stopFile],
      { timeoutMs: 320_000 },
    );
    await sleep(3000); // all 200 open and past the sync threshold
    let x = seed;
    const killed: number[] = [];
    for (let r = 0; r < rounds; r++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const victim = 1 + (x % 3);
      killed.push(victim);
      tb.killDirector(victim);
      await tb.waitForAllocation([1, 2, 3].filter((i) => i !== victim), 10_000);
      await sleep(1000); // the survivors carry its connections for a while
      await restart(victim);
      await tb.waitForAllocation([1, 2, 3], 20_000);
      await sleep(1000); // and the rejoined director carries some again
    }
    writeFileSync(stopFile, '');
    const out = await run;
    assert.equal(out.code, 0, out.stderr);
    const res = JSON.parse(out.stdout.trim().split('\n').pop()!) as LongconnResult;
    assert.equal(res.opened, 200, 'all 200 connections opened');
    assert.deepEqual(res.lost, [], `no connection lost over ${rounds} rounds of killing directors ${killed.join(',')}`);
    assert.ok(res.requests > 200 * 10, `the connections stayed busy (${res.requests} requests)`);
  }

  it('kill -9 of saru and saru-syncd on the director carrying a rate-limited download: it completes and its sha256 matches', async () => {
    await killCarrierDuringDownload();
  });

  it('200 long-lived connections survive 10 rounds of killing and restarting a random director', async () => {
    await killRounds(10, 7);
  });

  it('SIGTERM on the director carrying a download: the handover ends as soon as peers hold its connections, and the download completes', async () => {
    await tb.waitForAllocation([1, 2, 3], 20_000);
    const size = 12 * 1024 * 1024;
    const download = tb.exec(tb.nsName('client'), 'bash', ['-c', `curl -s --fail --max-time 90 --limit-rate 1M http://${VIP}/bytes/${size} | sha256sum`], { timeoutMs: 120_000 });
    await sleep(1500);
    const c = await carrier();
    const t0 = Date.now();
    await tb.stopDirector(c, 30_000);
    const stopMs = Date.now() - t0;
    await tb.stopSyncd(c);
    const d = await download;
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout.split(' ')[0], sha256Pattern(size), 'the download through the leaving director completed intact');
    // Without saru-syncd it would drain until the download ended (about 10 s more) or drain_timeout (60 s).
    assert.ok(stopMs < 5000, `the leave took ${stopMs} ms`);
    const log = readFileSync(`${tb.directorDir(c)}/saru.log`, 'utf8');
    assert.match(log, /handed-over buckets released: their connections are synced to every peer/);
    await restart(c);
    await tb.waitForAllocation([1, 2, 3], 20_000);
  });

  describe('with 10% loss on the cluster bridge', () => {
    before(async () => tb.clusterLoss(10));
    after(async () => tb.clusterLoss(0));

    it('the download through a killed director still completes intact', async () => {
      await killCarrierDuringDownload();
    });

    it('200 long-lived connections still survive 10 rounds of kills, and the loss was repaired by NACKs', async () => {
      const before = await Promise.all([1, 2, 3].map((i) => tb.syncStatus(i)));
      await killRounds(10, 11);
      const after = await Promise.all([1, 2, 3].map((i) => tb.syncStatus(i).catch(() => null)));
      const nacks = (s: SyncInfo | null): number => (s ? s.peers.reduce((n, p) => n + counter(p.counters, 'nacksSent'), 0) : 0);
      const sent = after.reduce((n, s, k) => n + Math.max(0, nacks(s) - nacks(before[k]!)), 0);
      assert.ok(sent > 0, 'gaps were detected and NACKed');
    });
  });

  it('a forged datagram (wrong key) and a replayed datagram change nothing', async () => {
    await tb.waitForAllocation([1, 2, 3], 20_000);
    // Capture sync datagrams from director 1 while connections are made.
    const pcap = `${tb.stateDir}/sync.pcap`;
    rmSync(pcap, { force: true });
    const d1 = tb.nsName('director', 1);
    const cap = tb.exec(d1, 'timeout', ['6', 'tcpdump', '-i', 'eth1', '-U', '-w', pcap, `udp and src host ${tb.addresses.director(1).cluster4} and dst port ${PORT}`]);
    await sleep(1000);
    for (let k = 0; k < 30; k++) await tb.exec(tb.nsName('client'), 'curl', ['-s', '-o', '/dev/null', `http://${VIP}/bytes/20000`]);
    await cap;
    assert.ok(existsSync(pcap), 'tcpdump wrote a capture');
    const datagrams = udpPayloads(readFileSync(pcap));
    assert.ok(datagrams.length > 0, 'director 1 sent sync datagrams');
    await sleep(500);

    const snapshot = async () =>
      Promise.all(
        [2, 3].map(async (i) => {
          const c = await tb.cluster(i);
          const s = await tb.syncStatus(i);
          return {
            connections: c.connections,
            inject: ['injectCreated', 'injectUpdated', 'injectRemoved'].map((n) => counter(c.counters, n)),
            replayed: counter(s.counters, 'replayed'),
            auth: counter(s.counters, 'codec.auth'),
          };
        }),
      );
    const before = await snapshot();
    const from = tb.addresses.director(1).cluster4;
    for (const dg of datagrams) {
      const r = await tb.exec(d1, process.execPath, [SEND, '--from', from, '--group', GROUP, '--port', String(PORT), '--hex', Buffer.from(dg).toString('hex')]);
      assert.equal(r.code, 0, r.stderr);
    }
    const f = await tb.exec(d1, process.execPath, [SEND, '--from', from, '--group', GROUP, '--port', String(PORT), '--forge', '1']);
    assert.equal(f.code, 0, f.stderr);
    await sleep(1000);
    const after = await snapshot();
    for (const k of [0, 1]) {
      assert.deepEqual(after[k]!.inject, before[k]!.inject, `director ${k + 2} imported nothing from the replay or the forgery`);
      assert.ok(after[k]!.replayed >= before[k]!.replayed + datagrams.length, `director ${k + 2} counted every replayed datagram`);
      assert.equal(after[k]!.auth, before[k]!.auth + 1, `director ${k + 2} counted the forged datagram as an authentication failure`);
    }
    const list = await tb.adm(2, ['-L', '-n', '-c']);
    // Port 4242 is below the client's ephemeral range (32768-60999): only the forgery could name it.
    assert.doesNotMatch(list, /198\.18\.1\.2:4242\s/, 'the forged connection is not in the table');
  });
});

/** UDP payloads of the IPv4 frames in a classic pcap file (Ethernet link type). */
function udpPayloads(buf: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (buf.length < 24) return out;
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  let off = 24;
  while (off + 16 <= buf.length) {
    const incl = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ihl = (frame[14]! & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = 14 + ihl;
    const len = frame.readUInt16BE(udp + 4);
    out.push(new Uint8Array(frame.subarray(udp + 8, udp + len)));
  }
  return out;
}
