/**
 * The health monitor: when each real server's checks run, with how much
 * parallelism, what their results mean (up, down, dynamic weight), and the
 * services the data plane should run given those results. Pure logic over an
 * injected clock, timers and CheckRunner: it opens no socket and starts no
 * process itself (saru/health/ does), and it never touches the data plane
 * (the caller applies effectiveServices() as a diff).
 *
 * Behaviour, from ldirectord's check loop (ld_main / _check_real /
 * service_set) and keepalived's checker threads (check_api.c, update_svr_checker_state):
 * - every checker of every real server runs its first round at once, then one
 *   round every `intervalMs` (from the round's start; an overdue round starts
 *   when the previous one ends);
 * - a round is up to `attempts` tries `retryDelayMs` apart, ending at the
 *   first success (keepalived retry / delay_before_retry, ldirectord
 *   checkcount);
 * - `failureCount` failed rounds in a row take the checker down
 *   (ldirectord failurecount); one successful round brings it back;
 * - a real server is up while every one of its checkers is up; `on` is
 *   always up and `off` always down;
 * - at most `maxParallel` tries run at once (ldirectord's `fork=yes` runs a
 *   process per virtual service; we bound the fan-out instead); the others
 *   wait in arrival order.
 * A failed real server becomes weight 0 (quiescent) or leaves its service
 * (with expireNodestConn, so its connections are dropped); when every real
 * server is out, the engine sends new connections to the service's fallback
 * (core/engine.ts), and the first one back takes them again.
 */
import type { Clock, Timers } from '../clock.js';
import { IpAddress, formatAddrPort } from '../addr.js';
import { Proto } from '../constants.js';
import { SaruError, ErrorCode } from '../errors.js';
import { describeService, type RealServerInit, type VirtualServiceInit } from '../service.js';
import type { ServiceInitPair } from '../reconcile.js';
import type { CheckOutcome, CheckRunner, CheckSpec, CheckTarget, ConfiguredService, RealServerCheck, StaticCheck } from './types.js';

export interface HealthMonitorInit {
  /** Most check tries in flight at once, >= 1 (default 16). */
  maxParallel?: number;
}

export interface HealthMonitorDeps {
  clock: Clock;
  timers: Timers;
  run: CheckRunner;
  /** A checker or a real server changed state (logged by the caller); the effective services changed when `server` is set. */
  onChange?: (event: HealthEvent) => void;
}

/** One change, for the log. Times in the clock's ms. */
export interface HealthEvent {
  /** "TCP 198.18.0.100:80". */
  service: string;
  /** "198.18.0.101:80" / "[2001:2::101]:80". */
  realServer: string;
  /** The checker's kind and index ("http#0"). */
  check: string;
  /** The checker's new state. */
  checkUp: boolean;
  /** The real server's state after this change, when it changed (else undefined). */
  server?: 'up' | 'down';
  /** New dynamic weight, when it changed. */
  weight?: number;
  reason: string;
  at: number;
}

/** A real server's health, for `saruadm` and the status socket. */
export interface RealServerHealth {
  service: string;
  realServer: string;
  up: boolean;
  /** Dynamic weight (MISC_CHECK misc_dynamic) while up, if any. */
  weight?: number;
  /** ms (clock) of the last state change. */
  since: number;
  checks: Array<{ check: string; up: boolean; failures: number; lastReason: string; rounds: number }>;
}

/** Counters over the monitor's life. */
export interface HealthCounters {
  tries: number;
  failedTries: number;
  rounds: number;
  transitions: number;
  /** Tries that had to wait for a parallelism slot. */
  queued: number;
}

type ProbeSpec = Exclude<CheckSpec, StaticCheck>;

interface CheckerState {
  readonly key: string;
  readonly name: string;
  readonly cfg: RealServerCheck;
  readonly target: CheckTarget;
  readonly server: ServerState;
  up: boolean;
  failures: number;
  rounds: number;
  lastReason: string;
  weight: number | undefined;
  /** Tries left in the current round. */
  triesLeft: number;
  roundStart: number;
  timer: unknown;
  running: boolean;
  retired: boolean;
  abort: AbortController | null;
}

interface ServerState {
  readonly service: string;
  readonly realServer: string;
  up: boolean;
  weight: number | undefined;
  since: number;
  checkers: CheckerState[];
}

/** Stable identity of a real server in a service, across reloads. */
function serverKey(service: string, rs: RealServerInit): string {
  return `${service}|${IpAddress.parse(rs.address).text}|${rs.port}`;
}

/** "TCP 198.18.0.100:80": describeService (as VirtualService.describe()) of an init. */
export function describeServiceInit(s: VirtualServiceInit): string {
  const a = s.fwmark || s.address === undefined ? null : IpAddress.parse(s.address);
  return describeService(s.protocol, a?.family ?? s.family ?? 4, a, s.port ?? 0, s.fwmark ?? 0);
}

function describeServer(rs: RealServerInit): string {
  const a = IpAddress.parse(rs.address);
  return formatAddrPort(a.family, a.words, 0, rs.port);
}

/** The services as configured, with every real server up (what runs before any check result, and with no checks). */
export function configuredInits(services: readonly ConfiguredService[]): ServiceInitPair[] {
  return services.map(({ service, realServers }) => ({ service, realServers }));
}

export class HealthMonitor {
  readonly counters: HealthCounters = { tries: 0, failedTries: 0, rounds: 0, transitions: 0, queued: 0 };
  private readonly maxParallel: number;
  private services: readonly ConfiguredService[] = [];
  private readonly servers = new Map<string, ServerState>();
  private readonly checkers = new Map<string, CheckerState>();
  private readonly waiting: CheckerState[] = [];
  private inFlight = 0;
  private started = false;

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT when maxParallel < 1. */
  constructor(
    init: HealthMonitorInit,
    private readonly deps: HealthMonitorDeps,
  ) {
    this.maxParallel = init.maxParallel ?? 16;
    if (!Number.isInteger(this.maxParallel) || this.maxParallel < 1) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `maxParallel must be an integer >= 1, got ${init.maxParallel}`);
    }
  }

  /** Tries running now. */
  get running(): number {
    return this.inFlight;
  }

  /** Begin checking (the first rounds start at once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const c of this.checkers.values()) this.beginRound(c);
  }

  /** Stop every timer and abort every try in flight; state is kept. */
  stop(): void {
    this.started = false;
    for (const c of this.checkers.values()) this.halt(c);
    this.waiting.length = 0;
  }

  /**
   * Take a (new) configuration. Checkers whose service, real server and
   * check settings are unchanged keep their state and schedule; others start
   * fresh (up, unless the service says startDown); dropped ones stop.
   */
  setServices(services: readonly ConfiguredService[]): void {
    this.services = services;
    const seenServers = new Set<string>();
    const seenCheckers = new Set<string>();
    const now = this.deps.clock.now();
    for (const cs of services) {
      const svcName = describeServiceInit(cs.service);
      const health = cs.health;
      cs.realServers.forEach((rs, i) => {
        const checks = health?.checks[i] ?? [];
        if (checks.length === 0) return;
        const sk = serverKey(svcName, rs);
        seenServers.add(sk);
        let server = this.servers.get(sk);
        if (!server) {
          server = { service: svcName, realServer: describeServer(rs), up: !(health?.startDown ?? false), weight: undefined, since: now, checkers: [] };
          this.servers.set(sk, server);
        }
        const list: CheckerState[] = [];
        checks.forEach((cfg, j) => {
          const key = `${sk}|${j}|${JSON.stringify(cfg, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))}`;
          seenCheckers.add(key);
          let c = this.checkers.get(key);
          if (!c) {
            const staticState = cfg.spec.kind === 'on' ? true : cfg.spec.kind === 'off' ? false : undefined;
            c = {
              key,
              name: `${cfg.spec.kind}#${j}`,
              cfg,
              target: targetOf(cs, rs),
              server: server!,
              up: staticState ?? server!.up,
              failures: 0,
              rounds: 0,
              lastReason: staticState === undefined ? 'not checked yet' : `checktype ${cfg.spec.kind}`,
              weight: undefined,
              triesLeft: 0,
              roundStart: now,
              timer: null,
              running: false,
              retired: false,
              abort: null,
            };
            this.checkers.set(key, c);
            if (this.started) this.beginRound(c);
          }
          list.push(c);
        });
        server.checkers = list;
        this.settle(server, now, list[0]!, 'configuration');
      });
    }
    for (const [key, c] of this.checkers) {
      if (seenCheckers.has(key)) continue;
      this.halt(c);
      c.retired = true;
      this.checkers.delete(key);
    }
    for (const key of [...this.servers.keys()]) if (!seenServers.has(key)) this.servers.delete(key);
    this.pump();
  }

  /**
   * The services the data plane should run now: every real server that is
   * down is set to weight 0 (quiescent) or left out (its service then has
   * expireNodestConn); an up server with a dynamic weight gets that weight.
   */
  effectiveServices(): ServiceInitPair[] {
    return this.services.map((cs) => {
      const health = cs.health;
      if (!health || health.checks.every((c) => c.length === 0)) return { service: cs.service, realServers: cs.realServers };
      const svcName = describeServiceInit(cs.service);
      const realServers: RealServerInit[] = [];
      let removesAny = false;
      cs.realServers.forEach((rs, i) => {
        const quiescent = health.quiescentPerServer?.[i] ?? health.quiescent;
        const checks = health.checks[i] ?? [];
        // only a server that health checks can take out makes its service drop connections (`on` never can)
        if (!quiescent && checks.some((c) => c.spec.kind !== 'on')) removesAny = true;
        const st = checks.length > 0 ? this.servers.get(serverKey(svcName, rs)) : undefined;
        if (!st || (st.up && st.weight === undefined)) realServers.push(rs);
        else if (st.up) realServers.push({ ...rs, weight: st.weight });
        else if (quiescent) realServers.push({ ...rs, weight: 0 });
      });
      return { service: removesAny ? { ...cs.service, expireNodestConn: true } : cs.service, realServers };
    });
  }

  /** Every checked real server's health. */
  status(): RealServerHealth[] {
    return [...this.servers.values()].map((s) => ({
      service: s.service,
      realServer: s.realServer,
      up: s.up,
      ...(s.weight !== undefined ? { weight: s.weight } : {}),
      since: s.since,
      checks: s.checkers.map((c) => ({ check: c.name, up: c.up, failures: c.failures, lastReason: c.lastReason, rounds: c.rounds })),
    }));
  }

  // ------------------------------------------------------------------ rounds

  private beginRound(c: CheckerState): void {
    if (!this.started || c.retired) return;
    if (c.cfg.spec.kind === 'on' || c.cfg.spec.kind === 'off') return;
    c.roundStart = this.deps.clock.now();
    c.triesLeft = Math.max(1, c.cfg.attempts);
    this.enqueue(c);
  }

  private enqueue(c: CheckerState): void {
    if (this.inFlight < this.maxParallel) {
      this.runTry(c);
      return;
    }
    this.counters.queued++;
    this.waiting.push(c);
  }

  private runTry(c: CheckerState): void {
    this.inFlight++;
    this.counters.tries++;
    c.running = true;
    c.triesLeft--;
    const abort = new AbortController();
    c.abort = abort;
    const spec = this.specFor(c);
    const done = (o: CheckOutcome): void => {
      if (c.abort !== abort) return; // halted meanwhile: its slot was given back then
      c.abort = null;
      c.running = false;
      this.inFlight--;
      this.tryDone(c, o);
      this.pump();
    };
    let p: Promise<CheckOutcome>;
    try {
      p = this.deps.run(spec, c.target, abort.signal);
    } catch (e) {
      p = Promise.resolve({ ok: false, reason: `checker failed: ${(e as Error).message}` });
    }
    p.then(done, (e: unknown) => done({ ok: false, reason: `checker failed: ${(e as Error)?.message ?? String(e)}` }));
  }

  /** ldirectord's numeric checktype: N connect rounds, then one of the configured check. */
  private specFor(c: CheckerState): ProbeSpec {
    const alt = c.cfg.alternate;
    if (alt && c.rounds % (alt.connectsPerRound + 1) < alt.connectsPerRound) return alt.connectSpec;
    return c.cfg.spec as ProbeSpec;
  }

  private pump(): void {
    while (this.inFlight < this.maxParallel && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      if (!next.retired && this.started) this.runTry(next);
    }
  }

  private tryDone(c: CheckerState, o: CheckOutcome): void {
    const now = this.deps.clock.now();
    if (!o.ok) this.counters.failedTries++;
    if (!o.ok && c.triesLeft > 0) {
      c.timer = this.deps.timers.setTimeout(() => {
        c.timer = null;
        if (this.started && !c.retired) this.enqueue(c);
      }, Math.max(0, c.cfg.retryDelayMs));
      return;
    }
    // the round is over
    c.rounds++;
    this.counters.rounds++;
    c.lastReason = o.reason;
    const wasUp = c.up;
    const oldWeight = c.weight;
    if (o.ok) {
      c.failures = 0;
      c.up = true;
      c.weight = o.weight;
    } else {
      c.failures++;
      if (c.failures >= Math.max(1, c.cfg.failureCount)) c.up = false;
    }
    if (c.up !== wasUp || c.weight !== oldWeight) this.settle(c.server, now, c, o.reason, wasUp !== c.up);
    const next = Math.max(0, c.roundStart + c.cfg.intervalMs - now);
    c.timer = this.deps.timers.setTimeout(() => {
      c.timer = null;
      this.beginRound(c);
    }, next);
  }

  /** Recompute a real server's state from its checkers; report what changed. */
  private settle(s: ServerState, now: number, by: CheckerState, reason: string, checkerFlipped = false): void {
    const up = s.checkers.every((c) => c.up);
    const weight = up ? s.checkers.find((c) => c.weight !== undefined)?.weight : undefined;
    const serverFlipped = up !== s.up;
    const weightChanged = weight !== s.weight;
    if (!serverFlipped && !weightChanged && !checkerFlipped) return;
    s.up = up;
    s.weight = weight;
    if (serverFlipped) {
      s.since = now;
      this.counters.transitions++;
    }
    this.deps.onChange?.({
      service: s.service,
      realServer: s.realServer,
      check: by.name,
      checkUp: by.up,
      ...(serverFlipped ? { server: up ? 'up' : 'down' } : {}),
      ...(weightChanged && weight !== undefined ? { weight } : {}),
      reason,
      at: now,
    } as HealthEvent);
  }

  private halt(c: CheckerState): void {
    if (c.timer !== null) {
      this.deps.timers.clearTimeout(c.timer);
      c.timer = null;
    }
    if (c.abort) {
      c.abort.abort();
      c.abort = null;
      c.running = false;
      this.inFlight--;
    }
    const w = this.waiting.indexOf(c);
    if (w >= 0) this.waiting.splice(w, 1);
  }
}

function targetOf(cs: ConfiguredService, rs: RealServerInit): CheckTarget {
  const a = IpAddress.parse(rs.address);
  return {
    address: a.text,
    port: rs.port,
    family: a.family,
    ...(cs.service.address !== undefined ? { vip: IpAddress.parse(cs.service.address).text, vport: cs.service.port ?? 0 } : {}),
    protocol: cs.service.protocol === Proto.UDP ? 'udp' : 'tcp',
  };
}
