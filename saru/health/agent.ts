/**
 * The director's health agent: runs core/health's HealthMonitor on real
 * timers with the network checkers, logs every change as ldirectord and
 * keepalived do (a real server down or up, a checker's result changing),
 * and hands the effective services to the data plane through one
 * serialised apply queue, so a health change and a reload never race. Owns
 * the monitor and its timers; it does not parse configuration and does not
 * touch the data plane except through `deps.apply`.
 */
import {
  HealthMonitor,
  configuredInits,
  processClock,
  type CheckRunner,
  type Clock,
  type ConfiguredService,
  type HealthEvent,
  type RealServerHealth,
  type ReconcileResult,
  type ServiceInitPair,
  type Timers,
} from '../../core/index.js';
import type { Logger } from '../log.js';

export interface HealthAgentInit {
  /** false: no checks run and every real server is always up (saru.conf health_checks = no). */
  enabled: boolean;
  /** Most tries in flight (saru.conf check_parallel). */
  maxParallel: number;
}

export interface HealthAgentDeps {
  log: Logger;
  run: CheckRunner;
  /** Give the data plane a service set (a diff is applied there); resolves with what changed. */
  apply: (services: ServiceInitPair[]) => Promise<ReconcileResult | undefined>;
  clock?: Clock;
  timers?: Timers;
}

const NODE_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class HealthAgent {
  private readonly monitor: HealthMonitor;
  private readonly log: Logger;
  private services: readonly ConfiguredService[] = [];
  /** An apply queued behind the running one; later requests share it (it reads the state when it runs). */
  private queued: Promise<ReconcileResult | undefined> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly init: HealthAgentInit,
    private readonly deps: HealthAgentDeps,
  ) {
    this.log = deps.log.child({ component: 'health' });
    this.monitor = new HealthMonitor(
      { maxParallel: init.maxParallel },
      { clock: deps.clock ?? processClock, timers: deps.timers ?? NODE_TIMERS, run: deps.run, onChange: (e) => this.changed(e) },
    );
  }

  /**
   * Take a (new) configuration; unchanged checkers keep their state.
   * Returns the services the data plane should run now (not applied: call apply()).
   */
  setServices(services: readonly ConfiguredService[]): ServiceInitPair[] {
    this.services = services;
    if (!this.init.enabled) return configuredInits(services);
    this.monitor.setServices(services);
    return this.monitor.effectiveServices();
  }

  /** The services the data plane should run now. */
  effective(): ServiceInitPair[] {
    return this.init.enabled ? this.monitor.effectiveServices() : configuredInits(this.services);
  }

  start(): void {
    if (this.init.enabled) this.monitor.start();
  }

  stop(): void {
    this.monitor.stop();
  }

  status(): RealServerHealth[] {
    return this.init.enabled ? this.monitor.status() : [];
  }

  get counters(): HealthMonitor['counters'] {
    return this.monitor.counters;
  }

  /**
   * Apply the effective services after every apply already queued, reading
   * the health state when it runs. Concurrent calls share one queued apply.
   */
  apply(): Promise<ReconcileResult | undefined> {
    if (this.queued) return this.queued;
    const p = this.chain.then(() => {
      this.queued = null;
      return this.deps.apply(this.effective());
    });
    this.queued = p;
    this.chain = p.catch(() => {});
    return p;
  }

  private changed(e: HealthEvent): void {
    const where = { service: e.service, realServer: e.realServer, check: e.check, reason: e.reason };
    if (e.server === 'down') {
      this.log.warn(where, 'real server down');
    } else if (e.server === 'up') {
      this.log.info({ ...where, ...(e.weight !== undefined ? { weight: e.weight } : {}) }, 'real server up');
    } else if (e.weight !== undefined) {
      this.log.info({ ...where, weight: e.weight }, 'real server weight changed');
    } else {
      this.log.info({ ...where, up: e.checkUp }, e.checkUp ? 'check passed' : 'check failed');
    }
    if (e.server !== undefined || e.weight !== undefined) {
      this.apply().catch((err: Error) => this.log.error({ err: err.message }, 'applying a health change failed'));
    }
  }
}
