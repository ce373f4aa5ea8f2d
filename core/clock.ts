/**
 * The injected clock. Owns the notion of "now" for everything in core/:
 * nothing in core/ reads Date.now() or sets timers itself.
 */

/** A source of monotonic time in milliseconds. */
export interface Clock {
  /** Monotonic milliseconds (any origin; only differences matter). */
  now(): number;
}

/** A clock moved by hand: tests and the simulator drive it. */
export class ManualClock implements Clock {
  private t: number;
  constructor(startMs = 0) {
    this.t = startMs;
  }
  now(): number {
    return this.t;
  }
  /** Move forward by `ms` milliseconds (must be >= 0). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`clock cannot go backwards (advance ${ms})`);
    this.t += ms;
  }
  /** Set the absolute time; must not go backwards. */
  set(ms: number): void {
    if (ms < this.t) throw new RangeError(`clock cannot go backwards (${this.t} -> ${ms})`);
    this.t = ms;
  }
}

/** The real monotonic clock, for adapters only (saru/, sync/, bench/). */
export const systemClock: Clock = {
  now: () => performance.now(),
};

/**
 * CLOCK_MONOTONIC in milliseconds (process.hrtime): unlike performance.now(),
 * whose origin is each thread's start, it reads the same in every thread of
 * the process, so a deadline computed by one thread (the coordinator's lease)
 * can be enforced by another (the data-plane worker). Adapters only.
 */
export const processClock: Clock = {
  now: () => Number(process.hrtime.bigint()) / 1e6,
};

/**
 * Injected one-shot timers (the health monitor's, saru-syncd's): adapters
 * pass Node's setTimeout/clearTimeout, tests and simulators a virtual queue.
 */
export interface Timers {
  /** Call `fn` once after `ms` milliseconds; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
