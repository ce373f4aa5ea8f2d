/**
 * Test helpers for the connection layer: a deterministic round-robin
 * scheduler (the real ones are in core/sched, written separately), flow
 * builders and a small service setup. Test-only.
 */
import { IpAddress } from '../../../core/addr.js';
import { ManualClock } from '../../../core/clock.js';
import { Fwd, Proto, type Family } from '../../../core/constants.js';
import { FlowKey } from '../../../core/flow.js';
import { ServiceTable, type RealServer, type Scheduler, type VirtualService, type VirtualServiceInit } from '../../../core/service.js';
import { ConnTable, type ConnTableInit } from '../../../core/conn/index.js';

/** Round robin over usable real servers, remembering its position. Counts its calls. */
export class TestRoundRobin implements Scheduler {
  readonly name = 'rr';
  calls = 0;
  private pos = 0;
  update(): void {
    this.pos = 0;
  }
  schedule(svc: VirtualService): RealServer | null {
    this.calls++;
    const list = svc.realServers;
    for (let k = 0; k < list.length; k++) {
      const i = (this.pos + k) % list.length;
      const rs = list[i]!;
      if (rs.isUsable()) {
        this.pos = i + 1;
        return rs;
      }
    }
    return null;
  }
}

/** A flow key client -> VIP (or, for replies, RIP -> CIP) from text addresses. */
export function flow(protocol: number, saddr: string, sport: number, daddr: string, dport: number, fwmark = 0): FlowKey {
  const f = new FlowKey();
  const s = IpAddress.parse(saddr);
  f.family = s.family as Family;
  f.protocol = protocol;
  f.saddr.set(s.words);
  f.sport = sport;
  f.daddr.set(IpAddress.parse(daddr).words);
  f.dport = dport;
  f.fwmark = fwmark;
  return f;
}

export interface Setup {
  clock: ManualClock;
  services: ServiceTable;
  svc: VirtualService;
  rs: RealServer[];
  table: ConnTable;
  sched: TestRoundRobin;
}

/** One service with `n` real servers 10.0.0.1.. (port `rport`), and a table. */
export function setup(
  opts: {
    protocol?: number;
    fwd?: Fwd;
    n?: number;
    rport?: number;
    svc?: Partial<VirtualServiceInit>;
    table?: Partial<ConnTableInit>;
    startMs?: number;
  } = {},
): Setup {
  const clock = new ManualClock(opts.startMs ?? 1_000_000);
  const services = new ServiceTable();
  const svc = services.add({ protocol: opts.protocol ?? Proto.TCP, address: '192.0.2.10', port: 80, ...opts.svc });
  const sched = new TestRoundRobin();
  const rs: RealServer[] = [];
  for (let i = 0; i < (opts.n ?? 2); i++) {
    rs.push(svc.addRealServer({ address: `10.0.0.${i + 1}`, port: opts.rport ?? 8080, fwd: opts.fwd ?? Fwd.NAT }));
  }
  svc.setScheduler(sched);
  const table = new ConnTable({ capacity: 1024, ...opts.table }, { clock, services });
  return { clock, services, svc, rs, table, sched };
}

/** TCP flag strings: "S" SYN, "A" ACK, "F" FIN, "R" RST, "SA", "FA", "" none. */
export function tcp(flags: string): number {
  let v = 0;
  if (flags.includes('F')) v |= 0x01;
  if (flags.includes('S')) v |= 0x02;
  if (flags.includes('R')) v |= 0x04;
  if (flags.includes('A')) v |= 0x10;
  return v;
}
