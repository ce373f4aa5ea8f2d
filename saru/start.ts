/**
 * `npm start`. The demo cluster of three directors in network namespaces
 * arrives with issue 7; until then this says plainly what exists and shows
 * the engine at work in-process: two directors sharing one VIP, each owning
 * half of the source-port buckets, fed the same synthetic client traffic
 * (every director sees every frame), each forwarding only its own slice.
 * Prints each director's `ipvsadm -L -n` and `--stats` views and counters.
 * Owns nothing the product uses.
 */
import {
  DROP_REASON_NAMES,
  Engine,
  ManualClock,
  ServiceTable,
  Sense,
  SliceFilter,
  TcpFlag,
  createScheduler,
  formatServiceList,
  parseLdirectord,
  parseMac,
  toServiceInits,
  writeTcp4Frame,
  type RxBatch,
} from '../core/index.js';

const STATUS = `Saru — active-active LVS-style director cluster

What exists today (see README.md, "Status"):
  core/   the director engine: packet codecs, virtual services, the 13 IPVS schedulers,
          persistence, connection table with the IPVS TCP state machine and sync events,
          DR/NAT/TUN rewrites, slice filter, counters and rates, ipvsadm formats,
          ldirectord.cf parsing                                   (npm test, npm run bench:core)
  saru    the director daemon on real packets: AF_PACKET rings, a BPF socket filter per
          slice, nftables host-stack rules, saruadm; the coordinator: authenticated heartbeats,
          master election, weighted bucket allocation, takeover in about 0.3 s, graceful
          handover, a partition policy                            (npm run bench:failover)
  testbed directors, real servers and a client in network namespaces (as root):
          npm run testbed -- up    then    ip netns exec saru-c curl -s http://198.18.0.100/
Not yet: saru-syncd (issue 5: established connections of a killed director are lost until
         then), health checks and keepalived.conf (issue 6), and the three-director failover
         demo (issue 7).

In-process engine run: two directors, one VIP, a synthetic trace of TCP connections.
`;

const SERVICES_CF = `# embedded demo services (ldirectord.cf syntax)
checktimeout=3
checkinterval=1
quiescent=yes

virtual=198.18.0.100:80
	real=198.18.1.1:80 gate 1
	real=198.18.1.2:80 gate 2
	real=198.18.1.3:80 gate 3
	scheduler=wlc
	protocol=tcp
	checktype=negotiate
	request="/"
	receive="ok"
`;

const SHARED_MAC = parseMac('02:53:41:52:55:01');
const CLIENT_MAC = parseMac('02:00:00:00:00:c1');
const VIP = 0xc6120064; // 198.18.0.100
const CONNECTIONS = 2000;

function director(clock: ManualClock, owned: (bucket: number) => boolean): Engine {
  const services = new ServiceTable();
  for (const { service, realServers } of toServiceInits(parseLdirectord(SERVICES_CF, 'demo-services.cf'))) {
    const svc = services.add(service);
    realServers.forEach((r, i) => {
      const rs = svc.addRealServer(r);
      rs.mac.set([0x02, 0, 0, 0, 1, i + 1]);
      rs.macKnown = true;
    });
    svc.setScheduler(createScheduler(svc.schedulerName));
  }
  const slice = new SliceFilter({ buckets: 1024, sense: Sense.SRC_PORT });
  slice.setOwned([...Array(1024).keys()].filter(owned), 1);
  return new Engine({ sharedMac: SHARED_MAC, table: { capacity: 65536 } }, { clock, services, slice });
}

function main(): void {
  process.stdout.write(STATUS);
  const clock = new ManualClock(0);
  const directors = { A: director(clock, (b) => b % 2 === 0), B: director(clock, (b) => b % 2 === 1) };
  const frame = new Uint8Array(256);
  const rx: RxBatch = { buf: new Uint8Array(256), off: new Uint32Array([0]), len: new Uint32Array(1), count: 1 };
  const syncEvents = { A: 0, B: 0 };
  const steps: Array<[number, number]> = [
    [TcpFlag.SYN, 0],
    [TcpFlag.ACK, 0],
    [TcpFlag.ACK | TcpFlag.PSH, 120],
    [TcpFlag.ACK, 0],
    [TcpFlag.FIN | TcpFlag.ACK, 0],
  ];
  for (let c = 0; c < CONNECTIONS; c++) {
    const saddr = (0xc612c800 + (c % 200)) >>> 0; // 198.18.200.0/24 clients
    const sport = 32768 + c;
    for (const [flags, payloadLen] of steps) {
      const len = writeTcp4Frame(frame, 0, { dstMac: SHARED_MAC, srcMac: CLIENT_MAC, saddr, daddr: VIP, sport, dport: 80, flags, payloadLen });
      // The shared segment delivers every frame to every director.
      for (const name of ['A', 'B'] as const) {
        rx.buf.set(frame.subarray(0, len));
        rx.len[0] = len;
        directors[name].processBatch(rx);
        syncEvents[name] += directors[name].drainSync(() => {});
      }
    }
    clock.advance(1);
  }
  for (const name of ['A', 'B'] as const) {
    const e = directors[name];
    console.log(`\n=== director ${name}: owns ${e.slice.ownedBuckets()} of ${e.slice.buckets} buckets (sense src-port), epoch ${e.slice.epoch}`);
    console.log(`-- as ipvsadm -L -n:`);
    process.stdout.write(formatServiceList(e.services.services, { tableSize: e.table.capacity }));
    console.log(`-- as ipvsadm -L -n --stats:`);
    process.stdout.write(formatServiceList(e.services.services, { stats: true, tableSize: e.table.capacity }));
    const drops = DROP_REASON_NAMES.map((n, i) => [n, e.drops[i]!] as const).filter(([, v]) => v > 0);
    console.log(
      `frames seen ${e.counters.rxFrames}, forwarded ${e.counters.txFrames}, connections ${e.counters.scheduled}, ` +
        `entries ${e.table.size}, sync events ${syncEvents[name]}; dropped: ${drops.map(([n, v]) => `${n} ${v}`).join(', ') || 'none'}`,
    );
  }
  const total = directors.A.counters.scheduled + directors.B.counters.scheduled;
  console.log(`\n${CONNECTIONS} connections offered, ${total} scheduled across both directors (each exactly once: ${total === CONNECTIONS ? 'yes' : 'NO'}).`);
  process.exitCode = total === CONNECTIONS ? 0 : 1;
}

main();
