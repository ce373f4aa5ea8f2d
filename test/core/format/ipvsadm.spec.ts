/**
 * ipvsadm listing formats. Goldens: the real `ipvsadm -L -n` output quoted in
 * seeds 001 and 003 (reproduced from equivalent services, byte for byte where
 * the seed shows real values), and goldens for --stats, --rate, --exact,
 * --thresholds, --persistent-conn, -c and --timeout generated outside this
 * code base from ipvsadm.c's printf formats (C printf semantics) with the
 * counter values of seed 002.
 */
import assert from 'node:assert/strict';
import { Fwd, Proto } from '../../../core/constants.js';
import {
  formatConnectionList,
  formatLargeNum,
  formatService,
  formatServiceList,
  formatTimeout,
  type ConnListRow,
  type NameLookup,
} from '../../../core/ipvsadm.js';
import { ServiceTable, SvcFlag, type VirtualService, type RealServerInit } from '../../../core/service.js';

const lines = (...l: string[]): string => l.join('\n') + '\n';
const trimLines = (s: string): string =>
  s
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .join('\n');

/** A real server with its counters set by hand. */
interface Rs extends RealServerInit {
  active?: number;
  inact?: number;
  persist?: number;
  stats?: [number, number, number, number, number];
  rate?: [number, number, number, number, number];
}

function addReals(svc: VirtualService, reals: Rs[]): void {
  for (const r of reals) {
    const rs = svc.addRealServer(r);
    rs.activeConns = r.active ?? 0;
    rs.inactConns = r.inact ?? 0;
    rs.persistConns = r.persist ?? 0;
    if (r.stats) [rs.stats.conns, rs.stats.inPkts, rs.stats.outPkts, rs.stats.inBytes, rs.stats.outBytes] = r.stats;
    if (r.rate) [rs.stats.cps, rs.stats.inpps, rs.stats.outpps, rs.stats.inbps, rs.stats.outbps] = r.rate;
  }
}

const GOLD_STATS002 = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "TCP  172.17.60.201:80                  114     1716     1153   193740   112940",
  "  -> 192.168.6.4:80                     57      895      586    99098    57098",
  "  -> 192.168.6.5:80                     57      821      567    94642    55842"
);

const GOLD_RATE002 = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
  "  -> RemoteAddress:Port",
  "TCP  172.17.60.201:80                   56      275      275    18739    41283",
  "  -> 192.168.6.4:80                     28      138      137     9395    20649",
  "  -> 192.168.6.5:80                     28      137      137     9344    20634"
);

const GOLD_STATSBIG = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "UDP  192.0.2.53:53                99999999  100000K     999G     123T        5",
  "  -> 10.0.0.53:53                 99999999  100000K     999G     123T        5"
);

const GOLD_STATSEXACT = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "UDP  192.0.2.53:53                99999999 100000000 999999999999 123456789012345        5",
  "  -> 10.0.0.53:53                 99999999 100000000 999999999999 123456789012345        5"
);

const GOLD_MIXED = lines(
  "IP Virtual Server version 1.2.1 (size=1048576)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  192.168.0.10:80 rr",
  "  -> 192.168.0.20:80              Route   1      0          0         ",
  "  -> 10.0.0.1:80                  Route   1      0          0         ",
  "TCP  10.0.0.100:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0",
  "  -> 10.0.0.2:443                 Tunnel  3      7          1         ",
  "UDP  10.0.0.100:53 wlc ops",
  "  -> 10.0.0.3:5353                Masq    0      0          12        ",
  "TCP  [2001:db8::1]:80 mh (mh-port) persistent 60 mask 64",
  "  -> [2001:db8::10]:80            Route   2      1          2         ",
  "FWM  7 wrr (flag-1,flag-3)",
  "  -> 10.0.0.4:0                   Route   1      0          0         ",
  "FWM  9 IPv6 lc"
);

const GOLD_THR = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
  "  -> RemoteAddress:Port",
  "TCP  192.0.2.1:80 wlc",
  "  -> 10.0.0.1:80                  100        75         3          4         "
);

const GOLD_PC = lines(
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
  "  -> RemoteAddress:Port",
  "TCP  192.0.2.1:80 wlc persistent 360",
  "  -> 10.0.0.1:80                  5         17          3          4         "
);

const GOLD_CONN = lines(
  "IPVS connection entries",
  "pro expire state       source             virtual            destination",
  "TCP 14:57  ESTABLISHED 203.0.113.7:51234  192.0.2.1:80       10.0.0.1:80",
  "TCP 00:59  FIN_WAIT    203.0.113.8:40000  192.0.2.1:80       10.0.0.2:80",
  "UDP 05:00  UDP         203.0.113.9:5353   192.0.2.53:53      10.0.0.53:53",
  "TCP 121:00 NONE        203.0.113.0:0      192.0.2.1:80       10.0.0.1:80",
  "TCP 00:05  SYN_RECV    [2001:db8::99]:40001 [2001:db8::1]:443  [2001:db8::10]:443"
);

const GOLD_CONNPE = lines(
  "IPVS connection entries",
  "pro expire state       source             virtual            destination        pe name          pe_data",
  "UDP 02:00  UDP         203.0.113.9:5060   192.0.2.5:5060     10.0.0.5:5060    sip                a84b4c76e66710",
  "TCP 02:00  ESTABLISHED 203.0.113.7:51234  192.0.2.1:80       10.0.0.1:80"
);

describe('ipvsadm formats', () => {
  describe('-L -n: seed 001 (ldirectord in depth)', () => {
    // The seed's output, verbatim, with its placeholders: xx/yy VIPs, aa RIPs.
    // One real-server line lost its address in the seed and is rebuilt below.
    const SEED = [
      'IP Virtual Server version 1.2.1 (size=########)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  xx.xx.xx.xx:80 wrr persistent 7200',
      '  -> aa.aa.aa.01:80               Route   10     12         31',
      '  -> aa.aa.aa.02:80               Route   30     13         28',
      '  -> aa.aa.aa.03:80               Route   20     12         33',
      'TCP  yy.yy.yy.yy:80 wrr persistent 7200',
      '  ->               Route   10     42         76',
      'TCP  xx.xx.xx.xx:443 wrr persistent 7200',
      '  -> aa.aa.aa.01:443              Route   20     76         134',
      '  -> aa.aa.aa.02:443              Route   10     75         128',
      '  -> aa.aa.aa.03:443              Route   30     77         142',
      'TCP  yy.yy.yy.yy:443 wrr persistent 7200',
      '  -> yy.yy.yy.yy:443              Local   1      23         30',
    ].join('\n');
    // Same-length substitutes keep every column where the seed has it.
    const expected = SEED.replace('########', '4096')
      .replace(/xx\.xx\.xx\.xx/g, '10.10.10.10')
      .replace(/yy\.yy\.yy\.yy/g, '10.20.20.20')
      .replace(/aa\.aa\.aa\.0(\d)/g, '192.168.1.$1')
      .replace('  ->               Route   10     42         76', '  -> 192.168.2.1:80               Route   10     42         76');

    function build(): VirtualService[] {
      const t = new ServiceTable();
      const x80 = t.add({ protocol: Proto.TCP, address: '10.10.10.10', port: 80, scheduler: 'wrr', persistentTimeoutS: 7200 });
      // Unsorted, the kernel lists real servers newest first: add them in reverse.
      addReals(x80, [
        { address: '192.168.1.3', port: 80, weight: 20, active: 12, inact: 33 },
        { address: '192.168.1.2', port: 80, weight: 30, active: 13, inact: 28 },
        { address: '192.168.1.1', port: 80, weight: 10, active: 12, inact: 31 },
      ]);
      const y80 = t.add({ protocol: Proto.TCP, address: '10.20.20.20', port: 80, scheduler: 'wrr', persistentTimeoutS: 7200 });
      addReals(y80, [{ address: '192.168.2.1', port: 80, weight: 10, active: 42, inact: 76 }]);
      const x443 = t.add({ protocol: Proto.TCP, address: '10.10.10.10', port: 443, scheduler: 'wrr', persistentTimeoutS: 7200 });
      addReals(x443, [
        { address: '192.168.1.3', port: 443, weight: 30, active: 77, inact: 142 },
        { address: '192.168.1.2', port: 443, weight: 10, active: 75, inact: 128 },
        { address: '192.168.1.1', port: 443, weight: 20, active: 76, inact: 134 },
      ]);
      // All real servers of yy:443 failed (quiescent=no removed them): the fallback serves, as a local server.
      const y443 = t.add({
        protocol: Proto.TCP,
        address: '10.20.20.20',
        port: 443,
        scheduler: 'wrr',
        persistentTimeoutS: 7200,
        fallback: { address: '10.20.20.20', port: 443, fwd: Fwd.LOCAL, weight: 1 },
      });
      y443.fallback!.activeConns = 23;
      y443.fallback!.inactConns = 30;
      return t.services;
    }

    it('reproduces the seed line for line (the seed lost trailing blanks)', () => {
      const out = formatServiceList(build(), { noSort: true });
      assert.equal(trimLines(out), expected + '\n');
    });

    it("keeps printf's trailing padding of the InActConn column", () => {
      const out = formatServiceList(build(), { noSort: true });
      assert.equal(out.split('\n')[4], '  -> 192.168.1.1:80               Route   10     12         31        ');
    });

    it('sorts services by address then port without --nosort (ipvs_cmp_services)', () => {
      const out = formatServiceList(build());
      const svcLines = out.split('\n').filter((l) => /^(TCP|UDP|FWM)/.test(l));
      assert.deepEqual(svcLines, [
        'TCP  10.10.10.10:80 wrr persistent 7200',
        'TCP  10.10.10.10:443 wrr persistent 7200',
        'TCP  10.20.20.20:80 wrr persistent 7200',
        'TCP  10.20.20.20:443 wrr persistent 7200',
      ]);
    });

    it('lists the fallback only while no real server can take connections (fallback: auto)', () => {
      const t = new ServiceTable();
      const svc = t.add({
        protocol: Proto.TCP,
        address: '10.20.20.20',
        port: 80,
        scheduler: 'wrr',
        fallback: { address: '127.0.0.1', port: 80, fwd: Fwd.LOCAL, weight: 1 },
      });
      const rs = svc.addRealServer({ address: '192.168.2.1', port: 80 });
      const fb = '  -> 127.0.0.1:80                 Local   1      0          0         ';
      assert.ok(!formatServiceList(t.services).includes(fb));
      rs.weight = 0;
      assert.ok(formatServiceList(t.services).includes(fb));
      assert.ok(!formatServiceList(t.services, { fallback: 'never' }).includes(fb));
      rs.weight = 1;
      assert.ok(formatServiceList(t.services, { fallback: 'always' }).includes(fb));
    });
  });

  describe('-L (names): seed 003 (LVS-HOWTO, IPVS 0.9.4)', () => {
    const SEED = [
      'IP Virtual Server version 0.9.4 (size=4096)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  lvs.mack.net:squid rr',
      '  -> rs1.mack.net:squid        Route   1      0          0',
      '  -> rs2.mack.net:squid        Route   1      0          0',
      '  -> rs3.mack.net:squid        Route   1      0          0',
      'TCP  lvs.mack.net:telnet rr',
      '  -> rs1.mack.net:telnet       Route   1      0          0',
      '  -> rs2.mack.net:telnet       Route   1      0          0',
    ];
    const hosts = new Map([
      ['192.168.1.110', 'lvs.mack.net'],
      ['192.168.1.1', 'rs1.mack.net'],
      ['192.168.1.2', 'rs2.mack.net'],
      ['192.168.1.3', 'rs3.mack.net'],
    ]);
    const services = new Map([
      [3128, 'squid'],
      [23, 'telnet'],
    ]);
    const names: NameLookup = { host: (a) => hosts.get(a), service: (p) => services.get(p) };

    function build(): VirtualService[] {
      const t = new ServiceTable();
      const squid = t.add({ protocol: Proto.TCP, address: '192.168.1.110', port: 3128, scheduler: 'rr' });
      addReals(squid, ['192.168.1.3', '192.168.1.2', '192.168.1.1'].map((a) => ({ address: a, port: 3128 })));
      const telnet = t.add({ protocol: Proto.TCP, address: '192.168.1.110', port: 23, scheduler: 'rr' });
      addReals(telnet, ['192.168.1.2', '192.168.1.1'].map((a) => ({ address: a, port: 23 })));
      return t.services;
    }

    it('reproduces the header and service lines byte for byte', () => {
      const out = formatServiceList(build(), { noSort: true, names, version: '0.9.4' }).split('\n');
      for (const i of [0, 1, 2, 3, 7]) assert.equal(out[i], SEED[i]);
    });

    it('reproduces the real-server fields (0.9.4 padded the address to 25 columns, ipvsadm 1.2x to 28)', () => {
      const out = formatServiceList(build(), { noSort: true, names, version: '0.9.4' }).split('\n');
      const fields = (l: string): string[] => l.trim().split(/\s+/);
      for (const i of [4, 5, 6, 8, 9]) assert.deepEqual(fields(out[i]!), fields(SEED[i]!));
      assert.equal(out[4], '  -> rs1.mack.net:squid           Route   1      0          0         ');
    });
  });

  describe('--stats / --rate / --exact (seed 002 values)', () => {
    function seed002(): VirtualService[] {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.TCP, address: '172.17.60.201', port: 80, scheduler: 'rr' });
      [svc.stats.conns, svc.stats.inPkts, svc.stats.outPkts, svc.stats.inBytes, svc.stats.outBytes] = [114, 1716, 1153, 193740, 112940];
      [svc.stats.cps, svc.stats.inpps, svc.stats.outpps, svc.stats.inbps, svc.stats.outbps] = [56, 275, 275, 18739, 41283];
      addReals(svc, [
        { address: '192.168.6.5', port: 80, fwd: Fwd.NAT, stats: [57, 821, 567, 94642, 55842], rate: [28, 137, 137, 9344, 20634] },
        { address: '192.168.6.4', port: 80, fwd: Fwd.NAT, stats: [57, 895, 586, 99098, 57098], rate: [28, 138, 137, 9395, 20649] },
      ]);
      return t.services;
    }

    it('--stats', () => assert.equal(formatServiceList(seed002(), { stats: true }), GOLD_STATS002));
    it('--nosort lists real servers newest first, as the seed (.5 before .4, configured .4 then .5)', () => {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.TCP, address: '172.17.60.201', port: 80, scheduler: 'rr' });
      addReals(svc, [
        { address: '192.168.6.4', port: 80, fwd: Fwd.NAT, active: 8, inact: 4 },
        { address: '192.168.6.5', port: 80, fwd: Fwd.NAT, active: 7, inact: 3 },
      ]);
      const out = formatServiceList(t.services, { noSort: true, version: '1.0.9' }).split('\n');
      assert.equal(out[4], '  -> 192.168.6.5:80               Masq    1      7          3         ');
      assert.equal(out[5], '  -> 192.168.6.4:80               Masq    1      8          4         ');
      assert.equal(formatServiceList(t.services).split('\n')[4], '  -> 192.168.6.4:80               Masq    1      8          4         ');
    });
    it('--rate', () => assert.equal(formatServiceList(seed002(), { rate: true }), GOLD_RATE002));

    function big(): VirtualService[] {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.UDP, address: '192.0.2.53', port: 53, scheduler: 'rr' });
      const v: [number, number, number, number, number] = [99999999, 100000000, 999999999999, 123456789012345, 5];
      [svc.stats.conns, svc.stats.inPkts, svc.stats.outPkts, svc.stats.inBytes, svc.stats.outBytes] = v;
      addReals(svc, [{ address: '10.0.0.53', port: 53, stats: v }]);
      return t.services;
    }

    it('--stats scales to K/M/G/T', () => assert.equal(formatServiceList(big(), { stats: true }), GOLD_STATSBIG));
    it('--stats --exact widens instead', () => assert.equal(formatServiceList(big(), { stats: true, exact: true }), GOLD_STATSEXACT));

    it('print_largenum boundaries', () => {
      assert.equal(formatLargeNum(0), '        0');
      assert.equal(formatLargeNum(99999999), ' 99999999');
      assert.equal(formatLargeNum(100000000), '  100000K');
      assert.equal(formatLargeNum(999999999), '  999999K');
      assert.equal(formatLargeNum(1000000000), '    1000M');
      assert.equal(formatLargeNum(99999999999), '   99999M');
      assert.equal(formatLargeNum(100000000000), '     100G');
      assert.equal(formatLargeNum(100000000000000), '     100T');
      assert.equal(formatLargeNum(12345678, true), ' 12345678');
      assert.equal(formatLargeNum(123456789, true), ' 123456789');
    });
  });

  describe('-L -n: flags, IPv6, firewall marks and sorting', () => {
    function mixed(): VirtualService[] {
      const t = new ServiceTable();
      // Added in an order the sort must undo.
      t.add({ protocol: Proto.TCP, fwmark: 9, family: 6, scheduler: 'lc' });
      const v6 = t.add({
        protocol: Proto.TCP,
        address: '2001:db8::1',
        port: 80,
        scheduler: 'mh',
        schedFlags: SvcFlag.SCHED2,
        persistentTimeoutS: 60,
        persistentPrefix: 64,
      });
      addReals(v6, [{ address: '2001:db8::10', port: 80, weight: 2, active: 1, inact: 2 }]);
      const udp = t.add({ protocol: Proto.UDP, address: '10.0.0.100', port: 53, scheduler: 'wlc', onePacket: true });
      addReals(udp, [{ address: '10.0.0.3', port: 5353, fwd: Fwd.NAT, weight: 0, inact: 12 }]);
      const fwm = t.add({ protocol: Proto.TCP, fwmark: 7, scheduler: 'wrr', schedFlags: SvcFlag.SCHED1 | SvcFlag.SCHED3 });
      addReals(fwm, [{ address: '10.0.0.4', port: 0 }]);
      const sh = t.add({
        protocol: Proto.TCP,
        address: '10.0.0.100',
        port: 443,
        scheduler: 'sh',
        schedFlags: SvcFlag.SCHED1 | SvcFlag.SCHED2,
        persistentTimeoutS: 300,
        persistentPrefix: 24,
      });
      addReals(sh, [{ address: '10.0.0.2', port: 443, fwd: Fwd.TUN, weight: 3, active: 7, inact: 1 }]);
      // libipvs compares addresses as a wrapped 32-bit difference: 192.168.x sorts before 10.x.
      const rr = t.add({ protocol: Proto.TCP, address: '192.168.0.10', port: 80, scheduler: 'rr' });
      addReals(rr, [
        { address: '10.0.0.1', port: 80 },
        { address: '192.168.0.20', port: 80 },
      ]);
      return t.services;
    }

    it('matches the golden', () => assert.equal(formatServiceList(mixed(), { tableSize: 1048576 }), GOLD_MIXED));
  });

  describe('--thresholds and --persistent-conn', () => {
    it('--thresholds', () => {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.TCP, address: '192.0.2.1', port: 80 });
      addReals(svc, [{ address: '10.0.0.1', port: 80, upperThreshold: 100, lowerThreshold: 75, active: 3, inact: 4 }]);
      assert.equal(formatServiceList(t.services, { thresholds: true }), GOLD_THR);
    });

    it('--persistent-conn', () => {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.TCP, address: '192.0.2.1', port: 80, persistentTimeoutS: 360 });
      addReals(svc, [{ address: '10.0.0.1', port: 80, weight: 5, persist: 17, active: 3, inact: 4 }]);
      assert.equal(formatServiceList(t.services, { persistentConn: true }), GOLD_PC);
    });

    it('one service (-L -n -t VIP:PORT) has the title but no version line', () => {
      const t = new ServiceTable();
      const svc = t.add({ protocol: Proto.TCP, address: '192.0.2.1', port: 80, persistentTimeoutS: 360 });
      addReals(svc, [{ address: '10.0.0.1', port: 80, weight: 5, persist: 17, active: 3, inact: 4 }]);
      assert.equal(formatService(svc, { persistentConn: true }), GOLD_PC.split('\n').slice(1).join('\n'));
    });
  });

  describe('-L -n -c', () => {
    const rows: ConnListRow[] = [
      { protocol: Proto.TCP, family: 4, caddr: '203.0.113.7', cport: 51234, vaddr: '192.0.2.1', vport: 80, daddr: '10.0.0.1', dport: 80, stateName: 'ESTABLISHED', expiresMs: 897_999 },
      { protocol: Proto.TCP, family: 4, caddr: '203.0.113.8', cport: 40000, vaddr: '192.0.2.1', vport: 80, daddr: '10.0.0.2', dport: 80, stateName: 'FIN_WAIT', expiresMs: 59_000 },
      { protocol: Proto.UDP, family: 4, caddr: '203.0.113.9', cport: 5353, vaddr: '192.0.2.53', vport: 53, daddr: '10.0.0.53', dport: 53, stateName: 'UDP', expiresMs: 300_000 },
      // A persistence template: client port 0, expiry beyond 99 minutes.
      { protocol: Proto.TCP, family: 4, caddr: '203.0.113.0', cport: 0, vaddr: '192.0.2.1', vport: 80, daddr: '10.0.0.1', dport: 80, stateName: 'NONE', expiresMs: 7_260_000 },
      { protocol: Proto.TCP, family: 6, caddr: '2001:db8::99', cport: 40001, vaddr: '2001:db8::1', vport: 443, daddr: '2001:db8::10', dport: 443, stateName: 'SYN_RECV', expiresMs: 5_500 },
    ];

    it('matches the golden', () => assert.equal(formatConnectionList(rows), GOLD_CONN));

    it('--persistent-conn adds the persistence-engine columns', () => {
      const pe: ConnListRow[] = [
        { protocol: Proto.UDP, family: 4, caddr: '203.0.113.9', cport: 5060, vaddr: '192.0.2.5', vport: 5060, daddr: '10.0.0.5', dport: 5060, stateName: 'UDP', expiresMs: 120_000, peName: 'sip', peData: 'a84b4c76e66710' },
        { ...rows[0]!, expiresMs: 120_000 },
      ];
      assert.equal(formatConnectionList(pe, { persistentConn: true }), GOLD_CONNPE);
    });

    it('an empty table prints the two header lines', () => {
      assert.equal(formatConnectionList([]), 'IPVS connection entries\npro expire state       source             virtual            destination\n');
    });
  });

  it('--timeout', () => {
    assert.equal(formatTimeout({ tcpS: 900, tcpFinS: 120, udpS: 300 }), 'Timeout (tcp tcpfin udp): 900 120 300\n');
  });
});
