/**
 * The demo's pure parts besides the view: where it runs (chooseMode), the
 * options and --help, the story's timetable, which director is killed, the
 * own/synced split of a connection listing, and the simulator clients'
 * verdicts (a packet reaching another real server loses the connection; an
 * unforwarded packet is retransmitted, then lost after the client's limit).
 */
import assert from 'node:assert/strict';
import { Prng } from '../../../saru/coord/index.js';
import { chooseMode, demoCommand, parseDemoOptions } from '../../../saru/demo/options.js';
import { parseConnectionList } from '../../../saru/demo/poller.js';
import { SimClients } from '../../../saru/demo/sim-clients.js';
import { chooseVictim, rate, splitConnections, type DirectorRow } from '../../../saru/demo/state.js';
import { phaseTimes } from '../../../saru/demo/story.js';

const linux = { platform: 'linux', uid: 0, hasIp: true };

function row(id: number, connsOwn: number): DirectorRow {
  return { id, state: 'up', master: false, buckets: 1, connsOwn, connsSynced: 0, pps: 0, syncDps: 0 };
}

describe('demo logic', () => {
  it('runs in namespaces as root with ip, else in the simulator, saying why', () => {
    assert.deepEqual(chooseMode({ sim: false, forwarding: 'gate' }, linux), { kind: 'namespaces' });
    assert.deepEqual(chooseMode({ sim: false, forwarding: 'gate' }, { ...linux, uid: 1000 }), { kind: 'simulated', why: 'not root' });
    assert.deepEqual(chooseMode({ sim: true, forwarding: 'gate' }, linux), { kind: 'simulated', why: '--sim' });
    assert.equal(chooseMode({ sim: false, forwarding: 'gate' }, { ...linux, hasIp: false }).kind, 'simulated');
    assert.equal(chooseMode({ sim: false, forwarding: 'gate' }, { ...linux, platform: 'darwin' }).kind, 'simulated');
    assert.match((chooseMode({ sim: false, forwarding: 'ipip' }, linux) as { why: string }).why, /cannot decapsulate/);
  });

  it('parses the options with their defaults, and --help lists them', () => {
    const o = parseDemoOptions(['node', 'start.js']);
    assert.deepEqual(o, { directors: 3, realServers: 3, durationS: 60, scheduler: 'wrr', forwarding: 'gate', connections: 200, keep: false, sim: false, plain: false, json: false, seed: 7 });
    const p = parseDemoOptions(['node', 'start.js', '--directors', '4', '--real-servers', '2', '--duration', '20', '--scheduler', 'mh', '--forwarding', 'masq', '--keep', '--json']);
    assert.equal(p.directors, 4);
    assert.equal(p.realServers, 2);
    assert.equal(p.durationS, 20);
    assert.equal(p.scheduler, 'mh');
    assert.equal(p.forwarding, 'masq');
    assert.equal(p.keep, true);
    assert.equal(p.json, true);
    const help = demoCommand().helpInformation();
    for (const opt of ['--directors', '--real-servers', '--duration', '--scheduler', '--forwarding', '--connections', '--keep', '--sim', '--plain', '--json']) {
      assert.ok(help.includes(opt), `--help lists ${opt}`);
    }
  });

  it('times the phases: kill at a quarter, restart at half, at least 5 s apart', () => {
    assert.deepEqual(phaseTimes(60_000), { killAt: 15_000, restartAt: 30_000, endAt: 60_000 });
    assert.deepEqual(phaseTimes(12_000), { killAt: 5000, restartAt: 10_000, endAt: 12_000 });
  });

  it('kills the director forwarding the most connections; of two, only the higher id', () => {
    assert.equal(chooseVictim([row(1, 60), row(2, 70), row(3, 70)]).id, 2);
    assert.equal(chooseVictim([row(1, 90), row(2, 10)]).id, 2);
  });

  it('splits an ipvsadm connection listing into own and synced established connections by client-port bucket', () => {
    const text = [
      'IPVS connection entries',
      'pro expire state       source             virtual            destination',
      'TCP 14:59  ESTABLISHED 198.18.1.2:40001   198.18.0.100:80    198.18.0.101:80',
      'TCP 14:59  ESTABLISHED 198.18.1.2:40002   198.18.0.100:80    198.18.0.102:80',
      'TCP 00:59  CLOSE_WAIT  198.18.1.2:40003   198.18.0.100:80    198.18.0.101:80',
      'TCP 14:59  ESTABLISHED 198.18.1.2:41025   198.18.0.100:80    198.18.0.103:80',
    ].join('\n');
    const rows = parseConnectionList(text);
    assert.deepEqual(rows, [
      { cport: 40001, established: true },
      { cport: 40002, established: true },
      { cport: 40003, established: false },
      { cport: 41025, established: true },
    ]);
    const owned = new Uint8Array(1024);
    owned[40001 & 1023] = 1; // 41025 & 1023 is the same bucket
    assert.deepEqual(splitConnections(rows, owned), { own: 2, synced: 1 });
  });

  it('rates: per second, 0 across a counter reset', () => {
    assert.equal(rate(100, 600, 500), 1000);
    assert.equal(rate(600, 100, 500), 0);
    assert.equal(rate(1, 2, 0), 0);
  });

  describe('simulator clients', () => {
    const init = { connections: 1, clientAddr: 0xc6120102, clientMac: new Uint8Array(6), vip: 0xc6120064, sharedMac: new Uint8Array(6), shortEveryMs: 1e9 };
    const buf = new Uint8Array(256);

    function sendAll(c: SimClients, now: number): number[] {
      const ports: number[] = [];
      c.send(now, buf, (f) => ports.push((f[34]! << 8) | f[35]!));
      return ports;
    }

    it('a long-lived connection keeps sending while its packets reach the same real server', () => {
      const c = new SimClients(init, new Prng(1));
      c.start(0, 0);
      let now = 0;
      for (let k = 0; k < 10; k++) {
        for (const p of sendAll(c, now)) c.forwarded(p, 2, 1, now);
        now += 400;
      }
      const k = c.counts();
      assert.equal(k.longLost, 0);
      assert.ok(k.longRequests >= 5, `${k.longRequests} requests`);
    });

    it('a packet reaching another real server loses the connection (the server resets it)', () => {
      const c = new SimClients(init, new Prng(1));
      c.start(0, 0);
      const [p] = sendAll(c, 0);
      c.forwarded(p!, 1, 1, 0);
      const [q] = sendAll(c, 5);
      c.forwarded(q!, 3, 2, 5);
      assert.equal(c.counts().longLost, 1);
      assert.match(c.lostConnections()[0]!.why, /reached r3 instead of r1/);
    });

    it('an unforwarded packet is retransmitted (SYN after 1 s), and lost after the client\'s limit', () => {
      const c = new SimClients(init, new Prng(1));
      c.start(0, 0);
      assert.equal(sendAll(c, 0).length, 1);
      assert.equal(sendAll(c, 500).length, 0, 'no retransmission before the RTO');
      assert.equal(sendAll(c, 1000).length, 1, 'the SYN again after 1 s');
      assert.equal(c.retransmitted, 1);
      for (let t = 1000; t <= 10_000; t += 100) sendAll(c, t);
      assert.equal(c.counts().longLost, 1);
      assert.match(c.lostConnections()[0]!.why, /not forwarded within 10000 ms/);
    });
  });
});
