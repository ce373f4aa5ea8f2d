/**
 * Pieces several IPVS schedulers share: the usability test, the connection
 * overhead of include/net/ip_vs.h, the weighted-least-connection choice
 * (ip_vs_wlc.c, reused by ip_vs_lblc.c and ip_vs_lblcr.c), the packet port
 * sh/mh hash with, and the kernel's destination list order.
 * Owns no state and allocates nothing.
 *
 * List order: the kernel adds a destination with list_add_rcu() at the HEAD
 * of svc->destinations (ip_vs_ctl.c __ip_vs_update_dest), so its list is
 * newest first. VirtualService.realServers is in order of addition, so every
 * scheduler walks it from the end: "first in the list" means the most
 * recently added real server, as in the kernel (and in `ipvsadm -L`).
 */
import type { FlowKey } from '../flow.js';
import type { RealServer, VirtualService } from '../service.js';

/** IP_VS_DEST_F_OVERLOAD clear, weight > 0, still in its service (IP_VS_DEST_F_AVAILABLE). */
export function usable(rs: RealServer): boolean {
  return rs.weight > 0 && !rs.overloaded && rs.available;
}

/** ip_vs_dest_conn_overhead(): (activeconns << 8) + inactconns. */
export function connOverhead(rs: RealServer): number {
  return rs.activeConns * 256 + rs.inactConns;
}

/**
 * The weighted least-connection choice of ip_vs_wlc.c (also
 * __ip_vs_lblc_schedule and __ip_vs_lblcr_schedule): the first usable server
 * in kernel order, then any later non-overloaded one whose
 * overhead/weight is strictly lower (compared by cross-multiplication).
 */
export function leastConnWeighted(svc: VirtualService): RealServer | null {
  const list = svc.realServers;
  let i = list.length - 1;
  let least: RealServer | null = null;
  for (; i >= 0; i--) {
    const rs = list[i]!;
    if (usable(rs)) {
      least = rs;
      break;
    }
  }
  if (least === null) return null;
  let loh = connOverhead(least);
  for (i--; i >= 0; i--) {
    const rs = list[i]!;
    if (rs.overloaded || !rs.available) continue;
    const doh = connOverhead(rs);
    if (loh * rs.weight > doh * least.weight) {
      least = rs;
      loh = doh;
    }
  }
  return least;
}

/** IPPROTO_SCTP: its ports sit where TCP's and UDP's do. */
const PROTO_SCTP = 132;

/**
 * The port sh-port/mh-port hash with (ip_vs_sh_get_port/ip_vs_mh_get_port):
 * the source port for TCP, UDP and SCTP, 0 for anything else.
 */
export function hashPort(flow: FlowKey): number {
  const p = flow.protocol;
  return p === 6 || p === 17 || p === PROTO_SCTP ? flow.sport & 0xffff : 0;
}

/**
 * Copy `svc.realServers` into `out` in kernel list order (newest first).
 * Called from update(), not per packet.
 */
export function kernelOrder(svc: VirtualService, out: RealServer[]): RealServer[] {
  out.length = 0;
  for (let i = svc.realServers.length - 1; i >= 0; i--) out.push(svc.realServers[i]!);
  return out;
}

/** Greatest common divisor of two positive integers (lib/math/gcd.c semantics). */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}
