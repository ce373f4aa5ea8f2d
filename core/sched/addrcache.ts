/**
 * The per-destination-address table lblc and lblcr keep (struct
 * ip_vs_lblc_table / ip_vs_lblcr_table): fixed-capacity entries in typed
 * arrays, chained in 2^tabBits buckets by hash_32(address fold, tabBits)
 * with new entries at the head of their chain (hlist_add_head_rcu), and
 * the kernel's garbage collection.
 *
 * Expiry choice: the kernel runs ip_vs_lblc[r]_check_expire from a timer
 * every CHECK_EXPIRE_INTERVAL (60 s). We keep no timers: schedule() calls
 * tick(now), which runs the check for every 60 s interval that has passed
 * since the last one, at that interval's time, exactly as the timer would
 * have (a full expiration check every COUNT_FOR_FULL_EXPIRATION ticks,
 * otherwise removal of entries idle for ENTRY_TIMEOUT while the table holds
 * more than max_size entries). After a long idle period (more than 31
 * missed ticks) it runs one full check at `now` instead of replaying each
 * tick. The first tick is due 60 s after the first schedule() call.
 * The kernel allocates entries without limit; here a full table makes
 * insert() return -1, which the schedulers treat as the kernel treats a
 * failed allocation (the chosen server is still returned, uncached).
 *
 * Owns the entry arrays; allocates nothing after construction.
 */
import { foldAddr, hash32 } from './hash.js';

/** CHECK_EXPIRE_INTERVAL: 60 s. */
export const CHECK_EXPIRE_INTERVAL_MS = 60_000;
/** ENTRY_TIMEOUT: 6 min. */
export const ENTRY_TIMEOUT_MS = 6 * 60_000;
/** DEFAULT_EXPIRATION (sysctl lblc_expiration / lblcr_expiration): 24 h. */
export const DEFAULT_EXPIRATION_MS = 24 * 60 * 60_000;
/** COUNT_FOR_FULL_EXPIRATION. */
export const COUNT_FOR_FULL_EXPIRATION = 30;
/** CONFIG_IP_VS_LBLC_TAB_BITS / CONFIG_IP_VS_LBLCR_TAB_BITS default. */
export const ADDR_TAB_BITS = 10;

export interface AddrCacheInit {
  /** Entries the table can hold; default 4 * max_size (65536). */
  capacity?: number;
  /** The sysctl lblc_expiration / lblcr_expiration in ms; default 24 h. */
  expirationMs?: number;
}

export class AddrCache {
  readonly tabSize = 1 << ADDR_TAB_BITS;
  /** tbl->max_size = IP_VS_LBLC_TAB_SIZE * 16. */
  readonly maxSize = (1 << ADDR_TAB_BITS) * 16;
  readonly capacity: number;
  readonly expirationMs: number;
  /** Live entries (tbl->entries). */
  entries = 0;
  /** Bucket -> first entry index, -1 = empty. */
  private readonly heads: Int32Array;
  /** Entry -> next entry in its chain (or in the free list); -1 = end. */
  private readonly next: Int32Array;
  private readonly bucketOf: Int32Array;
  readonly family: Uint8Array;
  readonly addr: Uint32Array;
  /** Last use time in ms (en->lastuse). */
  readonly lastUse: Float64Array;
  private freeHead: number;
  private rover = 0;
  private counter = 1;
  private nextCheckMs = NaN;
  /** Called with an entry index just before the entry is removed; set once by the owner. */
  onRemove: (idx: number) => void = () => {};

  constructor(init: AddrCacheInit = {}) {
    this.capacity = init.capacity ?? 4 * this.maxSize;
    this.expirationMs = init.expirationMs ?? DEFAULT_EXPIRATION_MS;
    this.heads = new Int32Array(this.tabSize).fill(-1);
    this.next = new Int32Array(this.capacity);
    this.bucketOf = new Int32Array(this.capacity);
    this.family = new Uint8Array(this.capacity);
    this.addr = new Uint32Array(this.capacity * 4);
    this.lastUse = new Float64Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.next[i] = i + 1 < this.capacity ? i + 1 : -1;
    this.freeHead = this.capacity > 0 ? 0 : -1;
  }

  /** ip_vs_lblc_hashkey / ip_vs_lblcr_hashkey: hash_32(addr_fold, 10). */
  bucket(family: 4 | 6, words: Uint32Array, off: number): number {
    return hash32(foldAddr(family, words, off), ADDR_TAB_BITS);
  }

  /** The entry for this address, or -1. */
  find(family: 4 | 6, words: Uint32Array, off: number): number {
    for (let e = this.heads[this.bucket(family, words, off)]!; e >= 0; e = this.next[e]!) {
      const a = e * 4;
      if (
        this.family[e] === family &&
        this.addr[a + 3] === words[off + 3] &&
        this.addr[a + 2] === words[off + 2] &&
        this.addr[a + 1] === words[off + 1] &&
        this.addr[a] === words[off]
      ) {
        return e;
      }
    }
    return -1;
  }

  /** Add an entry at the head of its chain with lastuse = now; -1 when the table is full. */
  insert(family: 4 | 6, words: Uint32Array, off: number, nowMs: number): number {
    const e = this.freeHead;
    if (e < 0) return -1;
    this.freeHead = this.next[e]!;
    const b = this.bucket(family, words, off);
    this.family[e] = family;
    const a = e * 4;
    this.addr[a] = words[off]!;
    this.addr[a + 1] = words[off + 1]!;
    this.addr[a + 2] = words[off + 2]!;
    this.addr[a + 3] = words[off + 3]!;
    this.lastUse[e] = nowMs;
    this.bucketOf[e] = b;
    this.next[e] = this.heads[b]!;
    this.heads[b] = e;
    this.entries++;
    return e;
  }

  /** Unlink and free an entry. */
  remove(e: number): void {
    this.onRemove(e);
    const b = this.bucketOf[e]!;
    let prev = -1;
    for (let x = this.heads[b]!; x >= 0; prev = x, x = this.next[x]!) {
      if (x !== e) continue;
      if (prev < 0) this.heads[b] = this.next[e]!;
      else this.next[prev] = this.next[e]!;
      break;
    }
    this.next[e] = this.freeHead;
    this.freeHead = e;
    this.entries--;
  }

  /** Remove every entry (ip_vs_lblc_flush). */
  flush(): void {
    for (let b = 0; b < this.tabSize; b++) {
      while (this.heads[b]! >= 0) this.remove(this.heads[b]!);
    }
  }

  /** Run the periodic expiry for every 60 s interval that has passed (see the module comment). */
  tick(nowMs: number): void {
    if (Number.isNaN(this.nextCheckMs)) {
      this.nextCheckMs = nowMs + CHECK_EXPIRE_INTERVAL_MS;
      return;
    }
    for (let n = 0; nowMs >= this.nextCheckMs; n++) {
      if (n > COUNT_FOR_FULL_EXPIRATION) {
        this.sweep(nowMs, this.expirationMs, false, 0);
        this.counter = 1;
        this.nextCheckMs = nowMs + CHECK_EXPIRE_INTERVAL_MS;
        return;
      }
      this.checkExpire(this.nextCheckMs);
      this.nextCheckMs += CHECK_EXPIRE_INTERVAL_MS;
    }
  }

  /** ip_vs_lblc_check_expire at time `t`. */
  private checkExpire(t: number): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      this.sweep(t, this.expirationMs, false, 0);
      this.counter = 1;
      return;
    }
    if (this.entries <= this.maxSize) {
      this.counter++;
      return;
    }
    let goal = Math.trunc(((this.entries - this.maxSize) * 4) / 3);
    if (goal > Math.trunc(this.maxSize / 2)) goal = Math.trunc(this.maxSize / 2);
    this.sweep(t, ENTRY_TIMEOUT_MS, true, goal);
  }

  /**
   * Walk the buckets from the one after the rover, removing entries with
   * t >= lastuse + idleMs. With `limited`, stop after the bucket where the
   * goal was reached (the partial check); otherwise visit every bucket
   * (ip_vs_lblc_full_check). The rover ends on the last bucket visited.
   */
  private sweep(t: number, idleMs: number, limited: boolean, goal: number): void {
    let j = this.rover;
    const mask = this.tabSize - 1;
    for (let i = 0; i < this.tabSize; i++) {
      j = (j + 1) & mask;
      for (let e = this.heads[j]!; e >= 0; ) {
        const nx = this.next[e]!;
        if (t >= this.lastUse[e]! + idleMs) {
          this.remove(e);
          goal--;
        }
        e = nx;
      }
      if (limited && goal <= 0) break;
    }
    this.rover = j;
  }
}
