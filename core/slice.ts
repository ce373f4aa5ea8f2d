/**
 * The slice filter: which director handles which connection. Owns the bucket
 * function for Saru's four senses (src-port, src-addr, dst-port, dst-addr, as
 * Saru's `--sense`) and the set of buckets this director owns in the current
 * allocation epoch. It does not decide the allocation (saru/ does).
 *
 * Bucket = the low log2(buckets) bits of the sensed field: the client port,
 * the client address (IPv4, or the last 32 bits of IPv6), the virtual port or
 * the virtual address. Saru divided "blocks of source or destination ports or
 * addresses" (seed 002); low bits instead of high bits because clients'
 * ephemeral ports (Linux: 32768-60999) and addresses in one network cover
 * only part of the high-bit range, and low bits spread them over all buckets.
 * A bit field is what a classic BPF socket filter can compute (one load, one
 * AND), so the kernel can drop other directors' slices before user space.
 * Every director computes the same function: it depends only on the packet.
 *
 * A bucket can also be *draining* on a director: it was owned and has moved
 * to another director in a graceful handover (join, leave, weight change).
 * The old owner keeps forwarding the connections it created there until they
 * are synced or closed, while the new owner takes every new connection
 * (DESIGN section 4, "Handoff"); the engine enforces that split.
 *
 * "Client side": for client->VIP traffic the client is the source; for NAT
 * return traffic (real server -> client) it is the destination, so both
 * directions of a connection fall in the same bucket. The dst-* senses use
 * the virtual address and port of the connection.
 */
import { ErrorCode, SaruError, configError } from './errors.js';

/** Saru's senses, as `--sense` / saru.conf `sense`. */
export const Sense = {
  SRC_PORT: 0,
  SRC_ADDR: 1,
  DST_PORT: 2,
  DST_ADDR: 3,
} as const;
export type Sense = (typeof Sense)[keyof typeof Sense];

export const SENSE_NAMES: Record<Sense, string> = {
  [Sense.SRC_PORT]: 'src-port',
  [Sense.SRC_ADDR]: 'src-addr',
  [Sense.DST_PORT]: 'dst-port',
  [Sense.DST_ADDR]: 'dst-addr',
};

/**
 * Parse a sense name ("src-port", "src-addr", "dst-port", "dst-addr").
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT naming the valid values.
 */
export function parseSense(name: string): Sense {
  for (const [k, v] of Object.entries(SENSE_NAMES)) if (v === name) return Number(k) as Sense;
  throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sense must be one of src-port, src-addr, dst-port, dst-addr; got "${name}"`);
}

/** Largest bucket count: 65536 (every port its own bucket). */
export const MAX_BUCKETS = 65536;

export interface SliceInit {
  /** Number of buckets: a power of two, 2..65536. Default 1024. */
  buckets?: number;
  /** Default src-port. */
  sense?: Sense;
}

/** Bucket function plus the owned-bucket set of one director. */
export class SliceFilter {
  readonly buckets: number;
  readonly mask: number;
  readonly sense: Sense;
  /** owned[b] === 1 when this director owns bucket b. */
  readonly owned: Uint8Array;
  /** draining[b] === 1 when bucket b has moved away but this director still finishes its own connections in it. */
  readonly draining: Uint8Array;
  /** Allocation epoch the owned set belongs to (set by the coordinator). */
  epoch = 0;
  private ownedCount = 0;
  private drainingCount = 0;

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT when buckets is not a power of two in 2..65536. */
  constructor(init: SliceInit = {}) {
    const n = init.buckets ?? 1024;
    if (!Number.isInteger(n) || n < 2 || n > MAX_BUCKETS || (n & (n - 1)) !== 0) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `buckets must be a power of two from 2 to ${MAX_BUCKETS}, got ${n}`);
    }
    this.buckets = n;
    this.mask = n - 1;
    this.sense = init.sense ?? Sense.SRC_PORT;
    this.owned = new Uint8Array(n);
    this.draining = new Uint8Array(n);
  }

  /**
   * The bucket of a connection from its client side and virtual side.
   * `caddr`/`vaddr` are 4-word addresses (core/addr.ts); only word 3 is used.
   */
  bucket(caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number): number {
    switch (this.sense) {
      case Sense.SRC_PORT:
        return cport & this.mask;
      case Sense.SRC_ADDR:
        return caddr[3]! & this.mask;
      case Sense.DST_PORT:
        return vport & this.mask;
      default:
        return vaddr[3]! & this.mask;
    }
  }

  /** Whether this director owns the bucket of the connection. */
  accepts(caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number): boolean {
    return this.owned[this.bucket(caddr, cport, vaddr, vport)] === 1;
  }

  /**
   * The bucket's standing here: SliceState.OWNED (all its connections),
   * SliceState.DRAINING (only connections this director created) or
   * SliceState.NONE (another director's).
   */
  state(caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number): SliceState {
    const b = this.bucket(caddr, cport, vaddr, vport);
    if (this.owned[b] === 1) return SliceState.OWNED;
    return this.draining[b] === 1 ? SliceState.DRAINING : SliceState.NONE;
  }

  /** Replace the owned set (all at once) and record its epoch. */
  setOwned(buckets: Iterable<number>, epoch = this.epoch): void {
    this.ownedCount = this.fill(this.owned, buckets);
    this.epoch = epoch;
  }

  /** Set `mask` to exactly `buckets` (all or nothing); returns how many distinct buckets. */
  private fill(mask: Uint8Array, buckets: Iterable<number>): number {
    const next = new Uint8Array(this.buckets);
    let count = 0;
    for (const b of buckets) {
      if (!Number.isInteger(b) || b < 0 || b >= this.buckets) {
        throw new SaruError(ErrorCode.INVALID_ARGUMENT, `bucket ${b} out of range 0..${this.buckets - 1}`);
      }
      if (next[b] === 0) count++;
      next[b] = 1;
    }
    mask.set(next);
    return count;
  }

  /**
   * Replace the draining set (buckets handed over whose own connections this
   * director still serves). A bucket both owned and draining counts as owned.
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT on a bucket out of range.
   */
  setDraining(buckets: Iterable<number>): void {
    this.drainingCount = this.fill(this.draining, buckets);
  }

  /** Number of draining buckets. */
  drainingBuckets(): number {
    return this.drainingCount;
  }

  /** The draining set (owned buckets excluded) as sorted inclusive ranges. */
  drainingRanges(): Array<[number, number]> {
    return ranges(this.buckets, (b) => this.draining[b] === 1 && this.owned[b] !== 1);
  }

  /** Buckets whose packets this director must see (owned or draining), as sorted inclusive ranges: what the socket filter admits. */
  admittedRanges(): Array<[number, number]> {
    return ranges(this.buckets, (b) => this.owned[b] === 1 || this.draining[b] === 1);
  }

  /** Own every bucket (a single director). */
  ownAll(epoch = this.epoch): void {
    this.owned.fill(1);
    this.ownedCount = this.buckets;
    this.epoch = epoch;
  }

  /** Number of buckets owned. */
  ownedBuckets(): number {
    return this.ownedCount;
  }

  /** The owned set as sorted inclusive ranges [[first, last], ...]. */
  ownedRanges(): Array<[number, number]> {
    return ranges(this.buckets, (b) => this.owned[b] === 1);
  }
}

/** Where a bucket stands on this director (SliceFilter.state). */
export const SliceState = {
  NONE: 0,
  OWNED: 1,
  DRAINING: 2,
} as const;
export type SliceState = (typeof SliceState)[keyof typeof SliceState];

function ranges(n: number, isIn: (b: number) => boolean): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let b = 0; b < n; b++) {
    if (!isIn(b)) continue;
    const first = b;
    while (b + 1 < n && isIn(b + 1)) b++;
    out.push([first, b]);
  }
  return out;
}

/**
 * Parse "FIRST-LAST[,FIRST-LAST...]" (single numbers allowed) into bucket
 * numbers, as saru.conf `static_slice`. `where` names file and line for errors.
 * @throws SaruError SARU_ERR_CONFIG on a malformed range or a bucket >= `buckets`.
 */
export function parseBucketRanges(text: string, buckets: number, where: { file: string; line: number }): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw configError(where.file, where.line, `expected FIRST-LAST[,FIRST-LAST...], got "${text}"`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (first > last || last >= buckets) {
      throw configError(where.file, where.line, `bucket range ${first}-${last} must lie within 0-${buckets - 1} and ascend`);
    }
    for (let b = first; b <= last; b++) out.push(b);
  }
  return out;
}

/** Format inclusive ranges as "0-511,768-1023". */
export function formatBucketRanges(ranges: Array<[number, number]>): string {
  return ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
}
