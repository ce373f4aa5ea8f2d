/**
 * The IPVS schedulers, by the names ipvsadm uses. Owns the name -> factory
 * table; each created scheduler holds the state of one virtual service.
 * Every scheduler carries over the Linux kernel's algorithm
 * (net/netfilter/ipvs/ip_vs_<name>.c) so that, for the same real servers,
 * weights, connection counts and client addresses, it chooses what the
 * kernel chooses. The kernel's destination list is newest first (see
 * common.ts); VirtualService.realServers is walked from its end.
 */
import { ErrorCode, SaruError } from '../errors.js';
import type { Scheduler } from '../service.js';
import { DhScheduler } from './dh.js';
import { FoScheduler } from './fo.js';
import { LblcScheduler } from './lblc.js';
import { LblcrScheduler } from './lblcr.js';
import { LcScheduler } from './lc.js';
import { MhScheduler } from './mh.js';
import { NqScheduler } from './nq.js';
import { OvfScheduler } from './ovf.js';
import { RrScheduler } from './rr.js';
import { SedScheduler } from './sed.js';
import { ShScheduler } from './sh.js';
import { WlcScheduler } from './wlc.js';
import { WrrScheduler } from './wrr.js';

export { DhScheduler, FoScheduler, LblcScheduler, LblcrScheduler, LcScheduler, MhScheduler, NqScheduler };
export { OvfScheduler, RrScheduler, SedScheduler, ShScheduler, WlcScheduler, WrrScheduler };
export type { AddrCacheInit } from './addrcache.js';
export type { LblcrInit } from './lblcr.js';

const FACTORIES: Readonly<Record<string, () => Scheduler>> = {
  rr: () => new RrScheduler(),
  wrr: () => new WrrScheduler(),
  lc: () => new LcScheduler(),
  wlc: () => new WlcScheduler(),
  lblc: () => new LblcScheduler(),
  lblcr: () => new LblcrScheduler(),
  dh: () => new DhScheduler(),
  sh: () => new ShScheduler(),
  sed: () => new SedScheduler(),
  nq: () => new NqScheduler(),
  fo: () => new FoScheduler(),
  ovf: () => new OvfScheduler(),
  mh: () => new MhScheduler(),
};

/** Names of every scheduler createScheduler() knows. */
export const SCHEDULER_NAMES: readonly string[] = Object.freeze(Object.keys(FACTORIES));

/**
 * A new scheduler instance (one per virtual service) by its ipvsadm name.
 * @throws SaruError SARU_ERR_UNKNOWN_SCHEDULER naming the valid schedulers.
 */
export function createScheduler(name: string): Scheduler {
  const f = Object.prototype.hasOwnProperty.call(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (f === undefined) {
    throw new SaruError(
      ErrorCode.UNKNOWN_SCHEDULER,
      `unknown scheduler "${name}"; valid schedulers: ${SCHEDULER_NAMES.join(', ')}`,
    );
  }
  return f();
}
