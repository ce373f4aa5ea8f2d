/**
 * ipvsadm's listing formats, as pure functions over the service model, so
 * that scripts parsing `ipvsadm -L -n` (ldirectord's ld_read_ipvsadm,
 * monitoring checks, keepalived tooling) parse ours unchanged. Owns text
 * layout only: no I/O, no name resolution (a NameLookup may be injected for
 * the non-numeric form), no mutation of the model.
 *
 * Formats carried over from ipvsadm.c (Distrotech/ipvsadm at a8cef33b; the
 * " pe NAME" flag and the --persistent-conn columns of `-c` from the ipvsadm
 * 1.26-derived copy in alibaba/LVS tools/ipvsadm/ipvsadm.c; the sort
 * comparators from libipvs/libipvs.c):
 * - list_all: "IP Virtual Server version %d.%d.%d (size=%d)", then print_title
 *   and print_service_entry per service, services and destinations sorted by
 *   ipvs_cmp_services / ipvs_cmp_dests (libipvs) unless --nosort;
 * - print_title: "Prot LocalAddress:Port Scheduler Flags" /
 *   "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
 *   or "%-33s %8s %8s %8s %8s %8s" for --stats / --rate, "%-33s %-10s ..." for
 *   --thresholds, "%-33s %-9s %-11s %-10s %-10s" for --persistent-conn;
 * - print_service_entry: "%s  %s" (proto, addr:port; IPv4 names cut at 33
 *   chars) or "FWM  %d[ IPv6]", then "%s %s" + " persistent %u" + " mask %s"
 *   (IPv4 mask != 255.255.255.255) / " mask %i" (IPv6 prefix != 128);
 *   destinations "  -> %-28s %-7s %-6d %-10u %-10u" (IPv4 names cut at 28);
 * - print_largenum: "%9llu" below 10^8, then "%8lluK" / M / G / T; with
 *   --exact "%*llu" at width max(9, digits + 1);
 * - print_conn / list_conn: "IPVS connection entries",
 *   "pro expire %-11s %-18s %-18s %s", rows "%-3s %-6s %-11s %-18s %-18s %s"
 *   with expire as "%02d:%02d" (minutes:seconds);
 * - list_timeout: "Timeout (tcp tcpfin udp): %d %d %d".
 * The scheduler-flag annotation " (sh-fallback,sh-port)" / " (flag-1,...)" and
 * " ops" outside the persistent block follow ipvsadm 1.28+ as we know it; the
 * stored ipvsadm sources predate scheduler flags, so that part is unverified.
 */
import type { IpAddress } from './addr.js';
import { FWD_IPVSADM_NAME, Proto, type Family } from './constants.js';
import { SvcFlag, type RealServer, type VirtualService } from './service.js';

/** Name look-ups for the non-numeric form (ipvsadm without -n). Return undefined to print the number. */
export interface NameLookup {
  /** Host name for an address (gethostbyaddr). */
  host?(address: string, family: Family): string | undefined;
  /** Service name for a port (getservbyport). */
  service?(port: number, protocol: number): string | undefined;
}

export interface ServiceListOptions {
  /** --stats: Conns InPkts OutPkts InBytes OutBytes. */
  stats?: boolean;
  /** --rate: CPS InPPS OutPPS InBPS OutBPS. */
  rate?: boolean;
  /** --thresholds: Uthreshold Lthreshold ActiveConn InActConn. */
  thresholds?: boolean;
  /** --persistent-conn: Weight PersistConn ActiveConn InActConn. */
  persistentConn?: boolean;
  /** --exact: no K/M/G/T scaling in --stats / --rate. */
  exact?: boolean;
  /**
   * --nosort: services in table (insertion) order, real servers newest first
   * as the kernel keeps them. (The kernel lists services in hash-bucket order,
   * which is not modelled.)
   */
  noSort?: boolean;
  /** Connection table size for the header; default 4096. */
  tableSize?: number;
  /** IPVS version for the header; default "1.2.1". */
  version?: string;
  /** Without it the output is numeric (-n). */
  names?: NameLookup;
  /**
   * Whether a service's fallback server is listed as a destination:
   * 'auto' (default) when no real server can take new connections, i.e. when
   * the engine would use it, as ldirectord inserts it into IPVS only then;
   * 'always'; 'never'.
   */
  fallback?: 'auto' | 'always' | 'never';
}

export interface ConnListOptions {
  /** --persistent-conn: add the persistence-engine columns. */
  persistentConn?: boolean;
  names?: NameLookup;
}

/** One row of `ipvsadm -L -n -c`, as read from the connection table. */
export interface ConnListRow {
  /** IP protocol number. */
  protocol: number;
  family: Family;
  /** Client address text. */
  caddr: string;
  cport: number;
  /** Virtual address text. */
  vaddr: string;
  vport: number;
  /** Destination (real server) address text. */
  daddr: string;
  dport: number;
  /** State name as the kernel prints it ("ESTABLISHED", "FIN_WAIT", "UDP", "NONE", ...). */
  stateName: string;
  /** Milliseconds until the entry expires. */
  expiresMs: number;
  /** Persistence engine name and data (e.g. "sip" and a Call-ID), for --persistent-conn. */
  peName?: string;
  peData?: string;
}

/** Connection timeouts for `ipvsadm -L --timeout`. */
export interface TimeoutValues {
  tcpS: number;
  tcpFinS: number;
  udpS: number;
}

const padEnd = (s: string, w: number): string => (s.length >= w ? s : s + ' '.repeat(w - s.length));
const padStart = (s: string, w: number): string => (s.length >= w ? s : ' '.repeat(w - s.length) + s);

/**
 * ipvsadm's print_largenum: one counter in a 9-character column.
 * Values are non-negative integers below 2^53.
 */
export function formatLargeNum(n: number, exact = false): string {
  const i = Math.max(0, Math.floor(n));
  const s = String(i);
  if (exact) return padStart(s, s.length <= 8 ? 9 : s.length + 1);
  if (i < 1e8) return padStart(s, 9);
  if (i < 1e9) return padStart(String(Math.floor(i / 1e3)), 8) + 'K';
  if (i < 1e11) return padStart(String(Math.floor(i / 1e6)), 8) + 'M';
  if (i < 1e14) return padStart(String(Math.floor(i / 1e9)), 8) + 'G';
  return padStart(String(Math.floor(i / 1e12)), 8) + 'T';
}

/** addrport_to_anyname: "a.b.c.d:port" or "[v6]:port", names if a lookup is given. */
function addrPort(address: string, family: Family, port: number, protocol: number, names?: NameLookup): string {
  const host = names?.host?.(address, family) ?? address;
  const p = names?.service?.(port, protocol) ?? String(port);
  return family === 4 ? `${host}:${p}` : `[${host}]:${p}`;
}

/** Dotted-quad of a prefix length (inet_ntoa of the netmask). */
function maskText(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 0xff}.${(m >>> 8) & 0xff}.${m & 0xff}`;
}

/** The scheduler flags as ipvsadm names them for this scheduler. */
function schedFlagNames(svc: VirtualService): string[] {
  const f = svc.flags;
  const out: string[] = [];
  const sched = svc.schedulerName;
  if (sched === 'sh' || sched === 'mh') {
    if (f & SvcFlag.SCHED1) out.push(`${sched}-fallback`);
    if (f & SvcFlag.SCHED2) out.push(`${sched}-port`);
  } else {
    if (f & SvcFlag.SCHED1) out.push('flag-1');
    if (f & SvcFlag.SCHED2) out.push('flag-2');
  }
  if (f & SvcFlag.SCHED3) out.push('flag-3');
  return out;
}

/** C's `int r = (unsigned)a - (unsigned)b`: the 32-bit wrapped difference, as libipvs compares. */
const diff32 = (a: number, b: number): number => (a - b) | 0;

const AF_INET = 2;
const AF_INET6 = 10;

/** libipvs ipvs_cmp_services, including its 32-bit wrap-around. */
function cmpServices(a: VirtualService, b: VirtualService): number {
  let r = diff32(a.fwmark, b.fwmark);
  if (r !== 0) return r;
  r = (a.family === 6 ? AF_INET6 : AF_INET) - (b.family === 6 ? AF_INET6 : AF_INET);
  if (r !== 0) return r;
  r = a.protocol - b.protocol;
  if (r !== 0) return r;
  r = cmpAddrWords(a.family, a.addr, b.addr);
  if (r !== 0) return r;
  return a.port - b.port;
}

function cmpAddrWords(family: Family, a: IpAddress | null, b: IpAddress | null): number {
  const wa = a?.words;
  const wb = b?.words;
  if (family === 6) {
    let r = 0;
    for (let i = 0; r === 0 && i < 4; i++) r = diff32(wa?.[i] ?? 0, wb?.[i] ?? 0);
    return r;
  }
  return diff32(wa?.[3] ?? 0, wb?.[3] ?? 0);
}

/** libipvs ipvs_cmp_dests. */
function cmpDests(a: RealServer, b: RealServer): number {
  const r = cmpAddrWords(a.addr.family, a.addr, b.addr);
  return r !== 0 ? r : a.port - b.port;
}

function titleLines(opts: ServiceListOptions): string {
  const p = 'Prot LocalAddress:Port';
  if (opts.stats) {
    return `${padEnd(p, 33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => padStart(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  }
  if (opts.rate) {
    return `${padEnd(p, 33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => padStart(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  }
  if (opts.thresholds) {
    return `${padEnd(p, 33)} ${['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((h) => padEnd(h, 10)).join(' ')}\n  -> RemoteAddress:Port\n`;
  }
  if (opts.persistentConn) {
    return `${padEnd(p, 33)} ${padEnd('Weight', 9)} ${padEnd('PersistConn', 11)} ${padEnd('ActiveConn', 10)} ${padEnd('InActConn', 10)}\n  -> RemoteAddress:Port\n`;
  }
  return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

/**
 * The destinations ipvsadm would list for `svc`. Unsorted (--nosort), they
 * come in the kernel's svc->destinations order, newest first (list_add_rcu at
 * the head in ip_vs_ctl.c): `realServers` from its end, the fallback (added
 * last by ldirectord) first.
 */
function destinations(svc: VirtualService, opts: ServiceListOptions): RealServer[] {
  const list = svc.realServers.slice().reverse();
  const mode = opts.fallback ?? 'auto';
  if (svc.fallback && (mode === 'always' || (mode === 'auto' && !list.some((r) => r.isUsable())))) {
    list.unshift(svc.fallback);
  }
  if (!opts.noSort) list.sort(cmpDests);
  return list;
}

function serviceName(svc: VirtualService, names?: NameLookup): string {
  if (svc.fwmark) return svc.family === 6 ? `FWM  ${svc.fwmark} IPv6` : `FWM  ${svc.fwmark}`;
  const a = svc.addr!;
  const name = `${svc.protocol === Proto.TCP ? 'TCP' : 'UDP'}  ${addrPort(a.text, a.family, svc.port, svc.protocol, names)}`;
  return svc.family === 6 ? name : name.slice(0, 33);
}

function serviceEntry(svc: VirtualService, opts: ServiceListOptions): string {
  const exact = !!opts.exact;
  const name = serviceName(svc, opts.names);
  const st = svc.stats;
  let out: string;
  if (opts.stats) {
    out = padEnd(name, 33) + [st.conns, st.inPkts, st.outPkts, st.inBytes, st.outBytes].map((n) => formatLargeNum(n, exact)).join('');
  } else if (opts.rate) {
    out = padEnd(name, 33) + [st.cps, st.inpps, st.outpps, st.inbps, st.outbps].map((n) => formatLargeNum(n, exact)).join('');
  } else {
    out = `${name} ${svc.schedulerName}`;
    const flags = schedFlagNames(svc);
    if (flags.length > 0) out += ` (${flags.join(',')})`;
    if (svc.persistent) {
      out += ` persistent ${Math.round(svc.persistentTimeoutMs / 1000)}`;
      if (svc.family === 4 && svc.persistentPrefix !== 32) out += ` mask ${maskText(svc.persistentPrefix)}`;
      if (svc.family === 6 && svc.persistentPrefix !== 128) out += ` mask ${svc.persistentPrefix}`;
    }
    if (svc.flags & SvcFlag.ONEPACKET) out += ' ops';
  }
  out += '\n';

  for (const rs of destinations(svc, opts)) {
    let d = addrPort(rs.addr.text, rs.addr.family, rs.port, svc.protocol, opts.names);
    if (svc.family !== 6) d = d.slice(0, 28);
    const s = rs.stats;
    if (opts.stats) {
      out += `  -> ${padEnd(d, 28)}${[s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes].map((n) => formatLargeNum(n, exact)).join('')}\n`;
    } else if (opts.rate) {
      // "  -> %-28s %8u %8u %8u" then print_largenum for the byte rates.
      out += `  -> ${padEnd(d, 28)} ${padStart(String(s.cps), 8)} ${padStart(String(s.inpps), 8)} ${padStart(String(s.outpps), 8)}`;
      out += `${formatLargeNum(s.inbps, exact)}${formatLargeNum(s.outbps, exact)}\n`;
    } else if (opts.thresholds) {
      out += `  -> ${padEnd(d, 28)} ${[rs.upperThreshold, rs.lowerThreshold, rs.activeConns, rs.inactConns].map((n) => padEnd(String(n), 10)).join(' ')}\n`;
    } else if (opts.persistentConn) {
      out += `  -> ${padEnd(d, 28)} ${padEnd(String(rs.weight), 9)} ${padEnd(String(rs.persistConns), 11)} ${padEnd(String(rs.activeConns), 10)} ${padEnd(String(rs.inactConns), 10)}\n`;
    } else {
      out += `  -> ${padEnd(d, 28)} ${padEnd(FWD_IPVSADM_NAME[rs.fwd], 7)} ${padEnd(String(rs.weight), 6)} ${padEnd(String(rs.activeConns), 10)} ${padEnd(String(rs.inactConns), 10)}\n`;
    }
  }
  return out;
}

/**
 * `ipvsadm -L -n` and its --stats, --rate, --thresholds, --persistent-conn,
 * --exact and --nosort variants, for all services (list_all).
 */
export function formatServiceList(services: readonly VirtualService[], opts: ServiceListOptions = {}): string {
  const list = services.slice();
  if (!opts.noSort) list.sort(cmpServices);
  let out = `IP Virtual Server version ${opts.version ?? '1.2.1'} (size=${opts.tableSize ?? 4096})\n`;
  out += titleLines(opts);
  for (const svc of list) out += serviceEntry(svc, opts);
  return out;
}

/** `ipvsadm -L -n -t|-u|-f SERVICE`: one service, with the title but no version line (list_service). */
export function formatService(svc: VirtualService, opts: ServiceListOptions = {}): string {
  return titleLines(opts) + serviceEntry(svc, opts);
}

/** The kernel's ip_vs_proto_name, which /proc/net/ip_vs_conn prints and ipvsadm echoes. */
function connProtoName(p: number): string {
  switch (p) {
    case 0:
      return 'IP';
    case Proto.TCP:
      return 'TCP';
    case Proto.UDP:
      return 'UDP';
    case 132:
      return 'SCTP';
    case Proto.ICMP:
      return 'ICMP';
    case Proto.ICMPV6:
      return 'ICMPv6';
    default:
      return `IP_${p}`;
  }
}

/** "mm:ss" as print_conn: whole seconds left, minutes not capped. */
function expireText(ms: number): string {
  const secs = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number): string => (n < 10 ? `0${n}` : String(n));
  return `${two(Math.floor(secs / 60))}:${two(secs % 60)}`;
}

/**
 * `ipvsadm -L -n -c` (list_conn / print_conn). With persistentConn, the
 * header gains "pe name" and "pe_data", and rows that have a persistence
 * engine print it; the widths are ipvsadm's own, which size the destination
 * column 16 in rows but 18 in the header.
 */
export function formatConnectionList(rows: readonly ConnListRow[], opts: ConnListOptions = {}): string {
  let out = 'IPVS connection entries\n';
  out += opts.persistentConn
    ? `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} ${padEnd('destination', 18)} ${padEnd('pe name', 16)} pe_data\n`
    : `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} destination\n`;
  for (const r of rows) {
    const c = addrPort(r.caddr, r.family, r.cport, r.protocol, opts.names);
    const v = addrPort(r.vaddr, r.family, r.vport, r.protocol, opts.names);
    const d = addrPort(r.daddr, r.family, r.dport, r.protocol, opts.names);
    const head = `${padEnd(connProtoName(r.protocol), 3)} ${padEnd(expireText(r.expiresMs), 6)} ${padEnd(r.stateName, 11)} ${padEnd(c, 18)} ${padEnd(v, 18)} `;
    if (opts.persistentConn && r.peName !== undefined) {
      out += `${head}${padEnd(d, 16)} ${padEnd(r.peName, 18)} ${r.peData ?? ''}\n`;
    } else {
      out += `${head}${d}\n`;
    }
  }
  return out;
}

/** `ipvsadm -L --timeout`. */
export function formatTimeout(t: TimeoutValues): string {
  return `Timeout (tcp tcpfin udp): ${t.tcpS} ${t.tcpFinS} ${t.udpS}\n`;
}
