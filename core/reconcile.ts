/**
 * Applying a new set of virtual services to a running ServiceTable as a diff
 * (SIGHUP reload, ldirectord's autoreload): services and real servers that
 * stay keep their identity, statistics and connections; changed settings are
 * edited in place (as `ipvsadm -E` / `-e`); removed real servers retire as in
 * IPVS's trash list (entries bound to them continue until they expire);
 * removed services go, new ones are added. Owns the diff only; the caller
 * supplies the parsed services and logs the result.
 */
import { IpAddress } from './addr.js';
import { createScheduler } from './sched/index.js';
import { SvcFlag, type RealServerInit, type ServiceTable, type VirtualService, type VirtualServiceInit } from './service.js';

/** What a reconcile changed, as service descriptions ("TCP 198.18.0.100:80"). */
export interface ReconcileResult {
  added: string[];
  removed: string[];
  updated: string[];
  unchanged: string[];
}

export interface ServiceInitPair {
  service: VirtualServiceInit;
  realServers: RealServerInit[];
}

function sameKey(svc: VirtualService, init: VirtualServiceInit): boolean {
  if (init.fwmark) return svc.fwmark === init.fwmark && svc.family === (init.family ?? 4);
  if (svc.fwmark || init.address === undefined) return false;
  return svc.protocol === init.protocol && svc.port === init.port && svc.addr!.equals(IpAddress.parse(init.address));
}

/**
 * Make `table` hold exactly the services of `inits`, keeping what stays.
 * Schedulers are created with core/sched's createScheduler.
 * @throws SaruError as ServiceTable.add / VirtualService.addRealServer do
 *   (SARU_ERR_INVALID_ARGUMENT, SARU_ERR_UNKNOWN_SCHEDULER, SARU_ERR_DEST_EXISTS...);
 *   validate the inits first (toServiceInits on a parsed file) to apply all or nothing.
 */
export function reconcileServices(table: ServiceTable, inits: readonly ServiceInitPair[]): ReconcileResult {
  const result: ReconcileResult = { added: [], removed: [], updated: [], unchanged: [] };
  const keep = new Set<VirtualService>();
  for (const { service, realServers } of inits) {
    const svc = table.services.find((s) => sameKey(s, service));
    if (!svc) {
      const created = addService(table, { service, realServers });
      keep.add(created);
      result.added.push(created.describe());
      continue;
    }
    keep.add(svc);
    (updateService(svc, service, realServers) ? result.updated : result.unchanged).push(svc.describe());
  }
  for (const svc of [...table.services]) {
    if (keep.has(svc)) continue;
    result.removed.push(svc.describe());
    table.remove(svc);
  }
  return result;
}

/**
 * Add a new service with its real servers and scheduler to `table` (what a
 * reconcile does for a service it has not seen).
 * @throws SaruError as ServiceTable.add / VirtualService.addRealServer / createScheduler.
 */
export function addService(table: ServiceTable, { service, realServers }: ServiceInitPair): VirtualService {
  const svc = table.add(service);
  for (const r of realServers) svc.addRealServer(r);
  svc.setScheduler(createScheduler(svc.schedulerName));
  return svc;
}

/** Edit one service in place; true when anything changed. */
function updateService(svc: VirtualService, init: VirtualServiceInit, realServers: readonly RealServerInit[]): boolean {
  let changed = false;
  const schedName = init.scheduler ?? 'wlc';
  const schedFlags = (init.schedFlags ?? 0) | (init.onePacket ? SvcFlag.ONEPACKET : 0);
  const oldFlags = svc.flags & ~SvcFlag.PERSISTENT;
  if (schedFlags !== oldFlags) {
    svc.flags = (svc.flags & SvcFlag.PERSISTENT) | schedFlags;
    changed = true;
  }
  const expireNodest = init.expireNodestConn ?? false;
  if (expireNodest !== svc.expireNodestConn) {
    svc.expireNodestConn = expireNodest;
    changed = true;
  }
  const timeoutMs = Math.round((init.persistentTimeoutS ?? 0) * 1000);
  const prefix = init.persistentPrefix ?? (svc.family === 4 ? 32 : 128);
  if (timeoutMs !== svc.persistentTimeoutMs || prefix !== svc.persistentPrefix) {
    svc.setPersistence(init.persistentTimeoutS ?? 0, init.persistentPrefix);
    changed = true;
  }
  let rsChanged = false;
  const wanted = new Set<string>();
  for (const r of realServers) {
    wanted.add(`${IpAddress.parse(r.address).text}|${r.port}`);
    const rs = svc.findRealServer(r.address, r.port);
    if (!rs) {
      svc.addRealServer(r);
      rsChanged = true;
      continue;
    }
    const weight = r.weight ?? 1;
    const fwd = r.fwd ?? rs.fwd;
    const upper = r.upperThreshold ?? 0;
    const lower = r.lowerThreshold ?? 0;
    if (rs.weight !== weight || rs.fwd !== fwd || rs.upperThreshold !== upper || rs.lowerThreshold !== lower) {
      rs.weight = weight;
      rs.fwd = fwd;
      rs.upperThreshold = upper;
      rs.lowerThreshold = lower;
      rsChanged = true;
    }
  }
  for (const rs of [...svc.realServers]) {
    if (!wanted.has(`${rs.addr.text}|${rs.port}`)) {
      svc.removeRealServer(rs.addr.text, rs.port);
      rsChanged = true;
    }
  }
  const fb = init.fallback;
  const cur = svc.fallback;
  const sameFallback =
    fb === undefined ? cur === null : cur !== null && cur.port === fb.port && cur.addr.equals(IpAddress.parse(fb.address)) && cur.weight === (fb.weight ?? 1) && cur.fwd === (fb.fwd ?? cur.fwd);
  if (!sameFallback) {
    svc.setFallback(fb ?? null);
    changed = true;
  }
  if (schedName !== svc.schedulerName || (changed && schedFlags !== oldFlags)) {
    svc.setScheduler(createScheduler(schedName));
    changed = true;
  } else if (rsChanged) {
    svc.changed();
  }
  return changed || rsChanged;
}
