/**
 * Virtual services and real servers: the model IPVS keeps in struct
 * ip_vs_service and struct ip_vs_dest (include/net/ip_vs.h, ip_vs_ctl.c).
 * Owns service lookup by (protocol, VIP, port) or firewall mark, the real
 * server registry (a dense u32 id per real server, which is what the
 * connection table stores), connection counts per real server and the
 * overload flag driven by upper/lower thresholds. Schedulers live in
 * core/sched/ and are attached from outside.
 */
import { IpAddress, addrEquals, formatAddrPort } from './addr.js';
import { Fwd, Proto, type Family } from './constants.js';
import { ErrorCode, SaruError } from './errors.js';
import type { FlowKey } from './flow.js';
import { Stats } from './stats.js';

/**
 * A scheduling algorithm bound to one virtual service, as IPVS's
 * struct ip_vs_scheduler (include/net/ip_vs.h).
 */
export interface Scheduler {
  /** Name as ipvsadm prints it ("rr", "wlc", "mh", ...). */
  readonly name: string;
  /**
   * Rebuild internal state after the service's real servers, their weights
   * or the service's flags changed (the kernel's init_service/add_dest/
   * del_dest/upd_dest hooks). Cheap to call; not on the per-packet path.
   */
  update(svc: VirtualService): void;
  /**
   * Choose a real server for a new connection described by `flow`
   * (addresses and ports of the first packet, client to VIP).
   * Returns null when no real server can take it ("no destination available").
   * `nowMs` is the injected clock's time, used by lblc/lblcr expiry.
   * Must not allocate.
   */
  schedule(svc: VirtualService, flow: FlowKey, nowMs: number): RealServer | null;
}

/** Service flags, as IP_VS_SVC_F_* in include/uapi/linux/ip_vs.h. */
export const SvcFlag = {
  PERSISTENT: 0x0001,
  ONEPACKET: 0x0004,
  /** flag-1: sh-fallback / mh-fallback. */
  SCHED1: 0x0008,
  /** flag-2: sh-port / mh-port. */
  SCHED2: 0x0010,
  /** flag-3. */
  SCHED3: 0x0020,
} as const;

/** Settings of one real server (ipvsadm -a/-e options). */
export interface RealServerInit {
  /** RIP, IPv4 or IPv6 text. */
  address: string;
  /** Real server port; 0 means "same as the packet's destination port" (port-0 and fwmark services). */
  port: number;
  /** Weight, >= 0; 0 is quiescent (no new connections, existing ones continue). Default 1. */
  weight?: number;
  /** Forwarding method; default DR ("gate"), as ipvsadm's default -g. */
  fwd?: Fwd;
  /** Upper connection threshold (ipvsadm -x); 0 = none. */
  upperThreshold?: number;
  /** Lower connection threshold (ipvsadm -y); 0 = derived from the upper (3/4 of it). */
  lowerThreshold?: number;
}

/** One real server of one virtual service (IPVS's struct ip_vs_dest). */
export class RealServer {
  /** Dense id in the RealServerRegistry; what connection entries store. */
  readonly id: number;
  readonly service: VirtualService;
  readonly addr: IpAddress;
  readonly port: number;
  fwd: Fwd;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  /**
   * TCP connections in an active state (ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK:
   * tcp_state_active in ip_vs_proto_tcp.c). ipvsadm's "ActiveConn".
   */
  activeConns = 0;
  /**
   * Every other entry: TCP in other states, and all UDP and ICMP entries, which
   * IPVS never counts as active. ipvsadm's "InActConn".
   */
  inactConns = 0;
  /** Persistence templates pointing here. */
  persistConns = 0;
  /** IP_VS_DEST_F_OVERLOAD: set when active+inactive reached the upper threshold. */
  overloaded = false;
  /** IP_VS_DEST_F_AVAILABLE: false once removed from its service (kept while entries refer to it). */
  available = true;
  /** Next-hop MAC address (6 bytes) for DR/NAT/TUN; valid when `macKnown`. Set by the neighbour resolver. */
  readonly mac = new Uint8Array(6);
  macKnown = false;
  readonly stats = new Stats();
  /** Scratch slot for schedulers (e.g. the last-chosen marker); owned by the service's scheduler. */
  schedData = 0;

  /** @internal created by VirtualService.addRealServer */
  constructor(id: number, service: VirtualService, init: RealServerInit) {
    this.id = id;
    this.service = service;
    this.addr = IpAddress.parse(init.address);
    if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65535) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `real server port out of range: ${init.port}`);
    }
    this.port = init.port;
    this.fwd = init.fwd ?? Fwd.DR;
    this.weight = checkWeight(init.weight ?? 1);
    this.upperThreshold = checkThreshold(init.upperThreshold ?? 0, 'upper');
    this.lowerThreshold = checkThreshold(init.lowerThreshold ?? 0, 'lower');
  }

  /** Connections counted against the thresholds: active + inactive (ip_vs_dest_totalconns). */
  totalConns(): number {
    return this.activeConns + this.inactConns;
  }

  /**
   * Whether a scheduler may pick it for a new connection: weight > 0, not
   * overloaded, still in its service. (Schedulers test these fields directly.)
   */
  isUsable(): boolean {
    return this.weight > 0 && !this.overloaded && this.available;
  }

  /**
   * Count a new entry bound here: IPVS's ip_vs_bind_dest (ip_vs_conn.c).
   * `template` entries count in persistConns; others in active or inactive.
   */
  bind(template: boolean, inactive: boolean): void {
    if (template) this.persistConns++;
    else if (inactive) this.inactConns++;
    else this.activeConns++;
    if (this.upperThreshold !== 0 && this.totalConns() >= this.upperThreshold) this.overloaded = true;
  }

  /**
   * Count an entry released from here: IPVS's ip_vs_unbind_dest (ip_vs_conn.c).
   * The overload flag clears below the lower threshold, or below 3/4 of the
   * upper threshold when no lower one is set.
   */
  unbind(template: boolean, inactive: boolean): void {
    if (template) this.persistConns--;
    else if (inactive) this.inactConns--;
    else this.activeConns--;
    const total = this.totalConns();
    if (this.lowerThreshold !== 0) {
      if (total < this.lowerThreshold) this.overloaded = false;
    } else if (this.upperThreshold !== 0) {
      if (total * 4 < this.upperThreshold * 3) this.overloaded = false;
    } else {
      this.overloaded = false;
    }
    if (!this.available && total + this.persistConns === 0) this.service.registry.release(this);
  }

  /** An entry moved between active and inactive (ip_vs_set_state's counter update). */
  moveActive(toInactive: boolean): void {
    if (toInactive) {
      this.activeConns--;
      this.inactConns++;
    } else {
      this.inactConns--;
      this.activeConns++;
    }
  }

  /** Apply new settings (ipvsadm -e). Port, address and service cannot change. */
  edit(init: Partial<Pick<RealServerInit, 'weight' | 'fwd' | 'upperThreshold' | 'lowerThreshold'>>): void {
    if (init.weight !== undefined) this.weight = checkWeight(init.weight);
    if (init.fwd !== undefined) this.fwd = init.fwd;
    if (init.upperThreshold !== undefined) this.upperThreshold = checkThreshold(init.upperThreshold, 'upper');
    if (init.lowerThreshold !== undefined) this.lowerThreshold = checkThreshold(init.lowerThreshold, 'lower');
    if (this.upperThreshold === 0 || this.totalConns() < this.upperThreshold) this.overloaded = false;
    if (this.upperThreshold !== 0 && this.totalConns() >= this.upperThreshold) this.overloaded = true;
  }
}

function checkWeight(w: number): number {
  if (!Number.isInteger(w) || w < 0 || w > 65535) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `weight must be an integer 0..65535, got ${w}`);
  }
  return w;
}

function checkThreshold(t: number, which: string): number {
  if (!Number.isInteger(t) || t < 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `${which} threshold must be an integer >= 0, got ${t}`);
  }
  return t;
}

/**
 * The dense registry of real servers: id -> RealServer, so that connection
 * entries can store a u32. Ids of removed real servers are reused once no
 * entry refers to them any more (IPVS keeps such dests on a trash list).
 */
export class RealServerRegistry {
  private readonly byId: (RealServer | undefined)[] = [];
  private readonly free: number[] = [];

  /** @internal */
  allocate(service: VirtualService, init: RealServerInit): RealServer {
    const id = this.free.length > 0 ? this.free.pop()! : this.byId.length;
    const rs = new RealServer(id, service, init);
    this.byId[id] = rs;
    return rs;
  }

  /** The real server with this id, or undefined. Hot path: an array read. */
  get(id: number): RealServer | undefined {
    return this.byId[id];
  }

  /** @internal called when an unavailable real server has no entries left. */
  release(rs: RealServer): void {
    if (this.byId[rs.id] === rs) {
      this.byId[rs.id] = undefined;
      this.free.push(rs.id);
    }
  }

  /** Number of ids in use. */
  size(): number {
    return this.byId.length - this.free.length;
  }
}

/** Settings of one virtual service (ipvsadm -A/-E options). */
export interface VirtualServiceInit {
  /** Proto.TCP or Proto.UDP. For firewall-mark services, the protocol of its entries is the packet's. */
  protocol: number;
  /** VIP text; required unless `fwmark` is given. */
  address?: string;
  /** Virtual port; 0 = all ports (IPVS port-zero service, persistent only). Required unless `fwmark`. */
  port?: number;
  /** Firewall mark (ipvsadm -f), > 0. */
  fwmark?: number;
  /** Family of a firewall-mark service; derived from the address otherwise. Default 4. */
  family?: Family;
  /** Scheduler name; default "wlc" as ipvsadm. */
  scheduler?: string;
  /** SvcFlag.SCHED1/2/3 bits (ipvsadm -b flag-1,flag-2 or sh-fallback, sh-port, mh-fallback, mh-port). */
  schedFlags?: number;
  /** Persistent timeout in seconds (ipvsadm -p); 0 or absent = not persistent. */
  persistentTimeoutS?: number;
  /** Persistent netmask as a prefix length (ipvsadm -M); default 32 for IPv4, 128 for IPv6. */
  persistentPrefix?: number;
  /** Fallback (sorry) server, used when the scheduler finds no real server. */
  fallback?: RealServerInit;
  /** One-packet scheduling for UDP (ipvsadm -o). */
  onePacket?: boolean;
  /**
   * Drop the connections of a real server once it is removed from this
   * service: the next packet of such a connection expires its entry and is
   * dropped (a TCP SYN is scheduled afresh). IPVS's sysctl
   * expire_nodest_conn, per service; on for health-checked services whose
   * failed real servers are removed (ldirectord quiescent=no, keepalived
   * without inhibit_on_failure). Default false: they continue until they
   * expire, as IPVS's trash list.
   */
  expireNodestConn?: boolean;
}

/** One virtual service (IPVS's struct ip_vs_service). */
export class VirtualService {
  readonly registry: RealServerRegistry;
  readonly protocol: number;
  readonly family: Family;
  /** VIP, or null for a firewall-mark service. */
  readonly addr: IpAddress | null;
  readonly port: number;
  readonly fwmark: number;
  schedulerName: string;
  scheduler: Scheduler | null = null;
  /** SvcFlag bits, PERSISTENT included when persistent. */
  flags: number;
  /** Persistent timeout in ms (0 = not persistent). */
  persistentTimeoutMs: number;
  /** Persistent netmask prefix length. */
  persistentPrefix: number;
  /** VirtualServiceInit.expireNodestConn. */
  expireNodestConn: boolean;
  /**
   * Real servers in the order they were added. The kernel's svc->destinations
   * list is newest first (list_add_rcu at the head, ip_vs_ctl.c), so schedulers
   * and `ipvsadm -L` listings walk this array from its end.
   */
  readonly realServers: RealServer[] = [];
  /** The fallback (sorry) server, or null. Not in `realServers`. */
  fallback: RealServer | null = null;
  readonly stats = new Stats();
  /** Index in its ServiceTable, set by the table. */
  index = -1;

  constructor(registry: RealServerRegistry, init: VirtualServiceInit) {
    this.registry = registry;
    if (init.protocol !== Proto.TCP && init.protocol !== Proto.UDP) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `virtual service protocol must be TCP or UDP, got ${init.protocol}`);
    }
    this.protocol = init.protocol;
    if (init.fwmark !== undefined && init.fwmark !== 0) {
      if (!Number.isInteger(init.fwmark) || init.fwmark < 1 || init.fwmark > 0xffffffff) {
        throw new SaruError(ErrorCode.INVALID_ARGUMENT, `firewall mark must be 1..4294967295, got ${init.fwmark}`);
      }
      this.fwmark = init.fwmark;
      this.addr = null;
      this.port = 0;
      this.family = init.family ?? 4;
    } else {
      if (init.address === undefined || init.port === undefined) {
        throw new SaruError(ErrorCode.INVALID_ARGUMENT, 'virtual service needs an address and a port, or a firewall mark');
      }
      if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65535) {
        throw new SaruError(ErrorCode.INVALID_ARGUMENT, `virtual port out of range: ${init.port}`);
      }
      this.fwmark = 0;
      this.addr = IpAddress.parse(init.address);
      this.port = init.port;
      this.family = this.addr.family;
    }
    this.schedulerName = init.scheduler ?? 'wlc';
    this.flags = init.schedFlags ?? 0;
    if (init.onePacket) this.flags |= SvcFlag.ONEPACKET;
    this.expireNodestConn = init.expireNodestConn ?? false;
    this.persistentTimeoutMs = 0;
    this.persistentPrefix = this.family === 4 ? 32 : 128;
    this.setPersistence(init.persistentTimeoutS ?? 0, init.persistentPrefix);
    if (this.port === 0 && this.fwmark === 0 && this.persistentTimeoutMs === 0) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, 'a port-zero virtual service must be persistent (as IPVS requires)');
    }
    if (init.fallback) this.setFallback(init.fallback);
  }

  /** Set persistence: timeout in seconds (0 = off) and netmask prefix length. */
  setPersistence(timeoutS: number, prefix?: number): void {
    if (!(timeoutS >= 0) || !Number.isFinite(timeoutS)) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `persistent timeout must be >= 0 seconds, got ${timeoutS}`);
    }
    const max = this.family === 4 ? 32 : 128;
    const p = prefix ?? max;
    if (!Number.isInteger(p) || p < 0 || p > max) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `persistent netmask prefix must be 0..${max}, got ${p}`);
    }
    this.persistentTimeoutMs = Math.round(timeoutS * 1000);
    this.persistentPrefix = p;
    if (timeoutS > 0) this.flags |= SvcFlag.PERSISTENT;
    else this.flags &= ~SvcFlag.PERSISTENT;
  }

  get persistent(): boolean {
    return (this.flags & SvcFlag.PERSISTENT) !== 0;
  }

  /** Attach a scheduler (from core/sched) and let it build its state. */
  setScheduler(s: Scheduler): void {
    this.scheduler = s;
    this.schedulerName = s.name;
    s.update(this);
  }

  /** Tell the scheduler that real servers or weights changed. */
  changed(): void {
    this.scheduler?.update(this);
  }

  /**
   * Add a real server.
   * @throws SaruError SARU_ERR_DEST_EXISTS when the same address and port is already there.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT on a family mismatch for NAT/DR (TUN may cross families).
   */
  addRealServer(init: RealServerInit): RealServer {
    if (this.findRealServer(init.address, init.port)) {
      throw new SaruError(ErrorCode.DEST_EXISTS, `real server ${init.address}:${init.port} already in this virtual service`);
    }
    const rs = this.registry.allocate(this, init);
    if (rs.addr.family !== this.family && rs.fwd !== Fwd.TUN) {
      this.registry.release(rs);
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `real server ${rs.addr.text} is not IPv${this.family} like its virtual service`);
    }
    this.realServers.push(rs);
    this.changed();
    return rs;
  }

  /** Find a real server by address text and port. */
  findRealServer(address: string, port: number): RealServer | undefined {
    const a = IpAddress.parse(address);
    return this.realServers.find((r) => r.port === port && r.addr.equals(a));
  }

  /**
   * Remove a real server. Entries already bound to it keep it (unavailable)
   * until they expire, as IPVS's trash list.
   * @throws SaruError SARU_ERR_NO_SUCH_DEST
   */
  removeRealServer(address: string, port: number): void {
    const rs = this.findRealServer(address, port);
    if (!rs) throw new SaruError(ErrorCode.NO_SUCH_DEST, `no real server ${address}:${port} in this virtual service`);
    this.realServers.splice(this.realServers.indexOf(rs), 1);
    this.retire(rs);
    this.changed();
  }

  /** Set or clear (null) the fallback server. */
  setFallback(init: RealServerInit | null): void {
    if (this.fallback) this.retire(this.fallback);
    this.fallback = init ? this.registry.allocate(this, init) : null;
  }

  /** Remove every real server and the fallback (service deletion). */
  clear(): void {
    for (const rs of this.realServers) this.retire(rs);
    this.realServers.length = 0;
    this.setFallback(null);
    this.changed();
  }

  private retire(rs: RealServer): void {
    rs.available = false;
    if (rs.totalConns() + rs.persistConns === 0) this.registry.release(rs);
  }

  /** "TCP  192.0.2.1:80" style identity, for logs and errors. */
  describe(): string {
    return describeService(this.protocol, this.family, this.addr, this.port, this.fwmark);
  }
}

/**
 * A virtual service's identity as logs, errors and `saruadm --health` show
 * it: "TCP 192.0.2.1:80", "UDP [2001:db8::1]:53", "FWM 7 IPv4" (`fwmark` > 0,
 * or no address).
 */
export function describeService(protocol: number, family: Family, addr: IpAddress | null, port: number, fwmark: number): string {
  if (fwmark || addr === null) return `FWM ${fwmark} IPv${family}`;
  return `${protocol === Proto.TCP ? 'TCP' : 'UDP'} ${formatAddrPort(addr.family, addr.words, 0, port)}`;
}

const LOOKUP_SIZE = 1024; // open-addressing slots; services are few

/**
 * All virtual services of a director, with the per-packet lookup IPVS does in
 * ip_vs_service_find (ip_vs_ctl.c): (protocol, VIP, port) first, then firewall
 * mark, then the port-zero service of that VIP.
 */
export class ServiceTable {
  readonly registry = new RealServerRegistry();
  readonly services: VirtualService[] = [];
  /** Slot -> service index + 1 (0 = empty), keyed by (protocol, VIP, port). */
  private readonly slots = new Int32Array(LOOKUP_SIZE);
  /** Firewall-mark services keyed by markKey(family, mark), as the kernel's (af, fwmark) hash. */
  private readonly byMark = new Map<number, VirtualService>();

  /**
   * Create and add a virtual service.
   * @throws SaruError SARU_ERR_SERVICE_EXISTS, SARU_ERR_CAPACITY, SARU_ERR_INVALID_ARGUMENT
   */
  add(init: VirtualServiceInit): VirtualService {
    const svc = new VirtualService(this.registry, init);
    if (svc.fwmark) {
      if (this.byMark.has(markKey(svc.family, svc.fwmark))) throw new SaruError(ErrorCode.SERVICE_EXISTS, `${svc.describe()} already exists`);
    } else if (this.find(svc.protocol, svc.addr!.words, svc.port) !== null) {
      throw new SaruError(ErrorCode.SERVICE_EXISTS, `${svc.describe()} already exists`);
    }
    if (this.services.length >= LOOKUP_SIZE / 2) {
      throw new SaruError(ErrorCode.CAPACITY, `at most ${LOOKUP_SIZE / 2} virtual services`);
    }
    svc.index = this.services.length;
    this.services.push(svc);
    this.rebuild();
    return svc;
  }

  /**
   * Remove a virtual service (its real servers stay referenced by live entries).
   * @throws SaruError SARU_ERR_NO_SUCH_SERVICE
   */
  remove(svc: VirtualService): void {
    const i = this.services.indexOf(svc);
    if (i < 0) throw new SaruError(ErrorCode.NO_SUCH_SERVICE, `${svc.describe()} is not in this table`);
    this.services.splice(i, 1);
    this.services.forEach((s, j) => (s.index = j));
    svc.clear();
    this.rebuild();
  }

  /** Exact lookup by (protocol, VIP words, port); null when absent. No allocation. */
  find(protocol: number, vip: Uint32Array, port: number, vipOff = 0): VirtualService | null {
    let h = hashSvc(protocol, vip, vipOff, port);
    for (let n = 0; n < LOOKUP_SIZE; n++) {
      const v = this.slots[h]!;
      if (v === 0) return null;
      const s = this.services[v - 1]!;
      if (s.port === port && s.protocol === protocol && addrEquals(s.addr!.words, 0, vip, vipOff)) return s;
      h = (h + 1) & (LOOKUP_SIZE - 1);
    }
    return null;
  }

  /** Lookup by family and firewall mark. */
  findByMark(mark: number, family: Family = 4): VirtualService | null {
    return this.byMark.get(markKey(family, mark)) ?? null;
  }

  /**
   * The per-packet lookup (ip_vs_service_find): firewall mark first when the
   * packet has one, then (protocol, VIP, port), then the VIP's port-zero service.
   */
  lookup(flow: FlowKey): VirtualService | null {
    if (flow.fwmark !== 0) {
      const m = this.byMark.get(markKey(flow.family, flow.fwmark));
      if (m !== undefined) return m;
    }
    const s = this.find(flow.protocol, flow.daddr, flow.dport);
    if (s !== null) return s;
    return flow.dport !== 0 ? this.find(flow.protocol, flow.daddr, 0) : null;
  }

  private rebuild(): void {
    this.slots.fill(0);
    this.byMark.clear();
    for (const s of this.services) {
      if (s.fwmark) {
        this.byMark.set(markKey(s.family, s.fwmark), s);
        continue;
      }
      let h = hashSvc(s.protocol, s.addr!.words, 0, s.port);
      while (this.slots[h] !== 0) h = (h + 1) & (LOOKUP_SIZE - 1);
      this.slots[h] = s.index + 1;
    }
  }
}

function markKey(family: Family, mark: number): number {
  return mark * 2 + (family === 6 ? 1 : 0);
}

function hashSvc(protocol: number, a: Uint32Array, off: number, port: number): number {
  let h = Math.imul(protocol ^ port, 0x9e3779b1);
  h = Math.imul(h ^ a[off + 3]!, 0x85ebca6b);
  h = Math.imul(h ^ a[off + 2]! ^ a[off + 1]! ^ a[off]!, 0xc2b2ae35);
  return (h ^ (h >>> 15)) & (LOOKUP_SIZE - 1);
}
