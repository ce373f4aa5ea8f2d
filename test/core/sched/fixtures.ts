/**
 * Test helpers for the scheduler specs: build a virtual service with real
 * servers and a scheduler, and fill a FlowKey from address text.
 * Owns nothing; allocation is fine here.
 */
import { IpAddress } from '../../../core/addr.js';
import { FlowKey } from '../../../core/flow.js';
import { ServiceTable, type RealServer, type VirtualService } from '../../../core/service.js';
import { createScheduler } from '../../../core/sched/index.js';

export interface ServerSpec {
  address: string;
  weight: number;
  port?: number;
  active?: number;
  inact?: number;
  overloaded?: boolean;
}

/** A service on 198.18.0.1:80 (or [2001:db8::1]:80 with v6) with servers added in the given order. */
export function makeService(
  scheduler: string,
  servers: ServerSpec[],
  opts: { flags?: number; v6?: boolean; attachAfter?: boolean } = {},
): { svc: VirtualService; rs: RealServer[] } {
  const svc = new ServiceTable().add({
    protocol: 6,
    address: opts.v6 ? '2001:db8::1' : '198.18.0.1',
    port: 80,
    scheduler,
    schedFlags: opts.flags ?? 0,
  });
  // By default the scheduler is attached first and sees each server added, as
  // with `ipvsadm -A` followed by `ipvsadm -a` per server (add_dest hooks);
  // attachAfter attaches it to the finished list (init_service only).
  if (!opts.attachAfter) svc.setScheduler(createScheduler(scheduler));
  const rs = servers.map((s) => {
    const r = svc.addRealServer({ address: s.address, port: s.port ?? 80, weight: s.weight });
    r.activeConns = s.active ?? 0;
    r.inactConns = s.inact ?? 0;
    r.overloaded = s.overloaded ?? false;
    return r;
  });
  if (opts.attachAfter) svc.setScheduler(createScheduler(scheduler));
  return { svc, rs };
}

/** A TCP flow from `src`:`sport` to `dst`:80. */
export function flow(src: string, sport = 40000, dst = '198.18.0.1'): FlowKey {
  const f = new FlowKey();
  const s = IpAddress.parse(src);
  const d = IpAddress.parse(dst);
  f.family = s.family;
  f.protocol = 6;
  f.saddr.set(s.words);
  f.daddr.set(d.words);
  f.sport = sport;
  f.dport = 80;
  return f;
}

/** Set a flow's source (and optionally destination) IPv4 address from a u32, in place. */
export function setV4(f: FlowKey, src: number, dst?: number): FlowKey {
  f.family = 4;
  f.saddr[0] = 0;
  f.saddr[1] = 0;
  f.saddr[2] = 0xffff;
  f.saddr[3] = src >>> 0;
  if (dst !== undefined) {
    f.daddr[0] = 0;
    f.daddr[1] = 0;
    f.daddr[2] = 0xffff;
    f.daddr[3] = dst >>> 0;
  }
  return f;
}

/**
 * Schedule `n` times, each time with `vary(i)` applied to one flow; count choices by
 * address text. With `load`, each choice adds an active connection to the chosen server.
 */
export function tally(
  svc: VirtualService,
  f: FlowKey,
  n: number,
  vary: (i: number, f: FlowKey) => void,
  opts: { nowMs?: number; load?: boolean } = {},
) {
  const nowMs = opts.nowMs ?? 0;
  const counts = new Map<string, number>();
  let nulls = 0;
  for (let i = 0; i < n; i++) {
    vary(i, f);
    const r = svc.scheduler!.schedule(svc, f, nowMs);
    if (r === null) nulls++;
    else {
      counts.set(r.addr.text, (counts.get(r.addr.text) ?? 0) + 1);
      // Simulated load: the new connection stays active.
      if (opts.load) r.activeConns++;
    }
  }
  return { counts, nulls };
}

/** Deterministic pseudo-random u32 sequence (xorshift32) for client addresses. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
