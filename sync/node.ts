/**
 * The reliability engine of saru-syncd: everything between "saru produced
 * these sync records" and "a peer's saru holds them", as a state machine over
 * injected collaborators (SyncCodec for bytes, SyncTransport for datagrams,
 * SyncLocal for the director, SyncTimers for time). It owns sequencing,
 * batching, the retransmission ring, the per-sender receive windows (replay
 * protection, duplicates, gaps, NACKs), liveness (Alive), and the bulk and
 * gap resyncs in both roles. It opens no socket, reads no real clock, and
 * never throws on network input: every drop is counted (status()).
 *
 * Where the behaviour comes from. The kernel's net/netfilter/ipvs/ip_vs_sync.c
 * batches entries into one message per MTU and sends a partly filled one
 * after IPVS_SYNC_FLUSH_TIME (2 s); it has no acknowledgement, retransmission
 * or resync. Saru adds (DESIGN.md section 5): per-sender data sequence
 * numbers, gap detection, NACK with retransmission from a bounded ring,
 * periodic Alive, and a full resync on request. The replay window is IPsec's
 * (RFC 4303 section 3.4.3), `replayWindow` wide, per (sender, incarnation).
 *
 * Decisions that are not in the message shapes (sync/types.ts):
 *
 * 1. Session scope. A ResyncRequest whose `session` is odd asks for the
 *    target's OWN entries only (records its table does not flag as synced):
 *    the gap recovery below. Even sessions ask for the whole table.
 *
 * 2. Unrecoverable gaps (the sender's ring moved on). The receiver learns the
 *    sender's oldest ring dataSeq from its Alive (the sender also answers a
 *    NACK that reaches below its ring with an immediate unicast Alive). The
 *    receiver then marks the missing dataSeqs below it as skipped (NACKs for
 *    them stop at once) and itself asks that sender for a gap resync of its
 *    own entries, retried until it completes. The sender does not push: a
 *    pushed resync could not be retried by the one who needs it. A removal
 *    lost in such a gap is not repaired (a dump holds present entries only);
 *    the stale copy expires at its remaining timeout.
 *
 * 3. Who is covered by a bulk resync. A starting node (or one whose saru
 *    restarted: resync()) learns, for every sender, a provisional base: the
 *    first dataSeq heard minus one (or the Alive's lastDataSeq). It NACKs
 *    only above the base; the dump from the source S must hold the rest.
 *    S's Alive acks say how far S had each sender's stream: the request goes
 *    to S once S's acks reach every base (waiting at most resyncTimeoutMs for
 *    S's next Alive); a base S does not reach is lowered to S's ack and the
 *    difference NACKed (or, if gone from the ring, gap-resynced). Senders
 *    first heard after the request, and every new incarnation, start at
 *    base 0 (all of their stream is NACKable). So an entry sent after a node
 *    started is either received, retransmitted, in the dump, or in a gap
 *    resync, and NACKs stop when data arrives, the sender's ring moves past
 *    it, or the sender is silent for peerTimeoutMs.
 *
 * 4. Ordering. Entries are injected on arrival, out of order too, but an
 *    entry never overwrites a newer version of the same connection: a
 *    datagram arriving below a gap is filtered against the connections of
 *    the datagrams already received above it (same sender), and a resync
 *    chunk is filtered against the connections injected from live data (and
 *    gap resyncs) since the resync began. Connection identity is
 *    syncRecordKey(): protocol, template, client and virtual address and
 *    port.
 *
 * 5. `synced` (and local.ready) reflect the bulk resync only. A gap resync in
 *    progress caps the contiguous dataSeq this node acknowledges for that
 *    sender, so a peer choosing this node as a resync source never counts
 *    the skipped entries as held.
 *
 * 6. Resync flow control. Besides resending from `next` after
 *    resyncTimeoutMs of silence, the responder resends, on every ack, the
 *    chunks below the window's end that the ack lacks and that were sent at
 *    least resyncTimeoutMs / 10 ago; the requester repeats its ack that often
 *    while the session is open. Without this, one lost chunk would stall the
 *    window until both sides' timeouts (equal by default) and the requester
 *    would change source instead. The requester counts any chunk of its
 *    session, even a duplicate, as progress. The request itself is repeated
 *    every resyncTimeoutMs / 5 until the first chunk arrives.
 *
 * 7. The dump must reflect every inject() made before local.dump() was
 *    called (an ack this node sent promises the dump holds those entries).
 *
 * 8. Acknowledged records. Records given to submit() are counted; once every
 *    live peer's Alive acks the data datagram that carried record k, k is
 *    reported to local.acked() (saru ends a graceful handover's drain with
 *    it). A peer that dies stops holding it back.
 */
import { ErrorCode, SaruError, SYNC_RECORD, SYNC_RECORD_FLAG } from '../core/index.js';
import type { SyncCodec } from './codec.js';
import type {
  AliveBody,
  EntriesBody,
  NackBody,
  PeerAck,
  PeerAddress,
  RecordBatch,
  ResyncAckBody,
  ResyncChunkBody,
  ResyncRequestBody,
  SyncBody,
  SyncLocal,
  SyncMessage,
  SyncTimers,
  SyncTransport,
} from './types.js';

const R = SYNC_RECORD;

/** Settings of a SyncNode; every duration in ms, every size in datagrams, chunks or entries as named. */
export interface SyncNodeInit {
  /** This node's id, 1..1023 (its saru node_id). */
  nodeId: number;
  /** Start time in ms, strictly increasing across restarts (the wall clock at start). */
  incarnation: number;
  /** Longest wait of a partly filled entries datagram, ms (default 10; the kernel's IPVS_SYNC_FLUSH_TIME is 2 s). Full datagrams go at once. */
  flushIntervalMs?: number;
  /** Period of Alive messages, ms (default 250). */
  aliveIntervalMs?: number;
  /** A peer silent this long is down: no resync source, no acks, no NACKs to it (default 4 * aliveIntervalMs). */
  peerTimeoutMs?: number;
  /** Data datagrams kept for retransmission (default 4096). */
  ringDatagrams?: number;
  /** Width of the replay window in message seqs (default 4096). */
  replayWindow?: number;
  /** Wait for reordering before NACKing a gap, ms (default 5). */
  nackDelayMs?: number;
  /** Re-NACK a gap still missing after this long, ms (default 50). */
  nackRetryMs?: number;
  /** How long a starting node listens for peers before choosing a resync source, ms (default 3 * aliveIntervalMs). */
  discoveryMs?: number;
  /** Resync chunks in flight per session (default 64). */
  resyncWindow?: number;
  /** Entries per local.dump() page (default 8192). */
  resyncPageEntries?: number;
  /** A resync without progress this long: the responder resends, the requester changes source, ms (default 1000). */
  resyncTimeoutMs?: number;
}

/** The logger a SyncNode writes state changes to (pino's shape). */
export interface SyncLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  debug(o: object, m: string): void;
}

export interface SyncNodeDeps {
  codec: SyncCodec;
  transport: SyncTransport;
  local: SyncLocal;
  timers: SyncTimers;
  log?: SyncLog;
}

/**
 * A peer's counters, since this node started (they survive the peer's
 * restarts). All but restarts also have a total of the same name in
 * status(); its datagramsReceived also counts datagrams dropped before they
 * could be told apart by peer.
 */
export interface SyncPeerCounters {
  datagramsReceived: number;
  entriesReceived: number;
  /** Data datagrams received twice (network duplicates, retransmissions that crossed). */
  duplicates: number;
  /** Entries not injected because a newer version of the same connection was already injected. */
  superseded: number;
  /** Missing data datagrams detected. */
  gaps: number;
  /** Missing datagrams gone from its ring (skipped, covered by a gap resync). */
  unrecoverable: number;
  nacksSent: number;
  nacksReceived: number;
  /** Data datagrams we resent to it on its NACKs. */
  retransmitted: number;
  /** Resync sessions we completed for it. */
  resyncsServed: number;
  /** Times it restarted (a newer incarnation). */
  restarts: number;
}

/** One peer in status(). */
export interface SyncPeerStatus extends SyncPeerCounters {
  nodeId: number;
  /** "address:port" last heard from ('' when only known from another node's acks). */
  address: string;
  incarnation: number;
  alive: boolean;
  /** Ms since its last message (-1: never heard directly). */
  lastHeardMs: number;
  epoch: number;
  /** Its last Alive said it holds the full table. */
  synced: boolean;
  /** Its newest dataSeq known here. */
  lastDataSeq: number;
  /** Every dataSeq of it up to this is held (received, retransmitted, resynced or skipped). */
  contiguous: number;
  /** Its data datagrams we have not (yet) received. */
  missing: number;
  /** Our dataSeq it acknowledged last (its contiguous for our incarnation). */
  acked: number;
  /** Our data datagrams it has not acknowledged: dataSeq - acked. */
  behind: number;
}

/** status(): plain JSON. Totals are top-level numbers (saruadm prints them as counters). */
export interface SyncStatus {
  nodeId: number;
  incarnation: number;
  epoch: number;
  synced: boolean;
  /** Newest data sequence number sent. */
  dataSeq: number;
  /** Oldest dataSeq still in the ring (0: empty). */
  oldestDataSeq: number;
  /** Data datagrams held in the ring. */
  ringDatagrams: number;
  /** Records waiting for a partly filled datagram. */
  pendingEntries: number;
  datagramsSent: number;
  entriesSent: number;
  bytesSent: number;
  /** Datagrams handed to receive(), valid or not. */
  datagramsReceived: number;
  /** Entries injected into the local table (live, retransmitted and resync). */
  entriesReceived: number;
  authFailures: number;
  truncated: number;
  oversized: number;
  malformed: number;
  /** Dropped by the replay window (seen seq, older than the window, or older incarnation). */
  replayed: number;
  /** Our own datagrams (multicast loopback), ignored. */
  ownEchoes: number;
  /** Nack, resync messages for another node, or a NACK for our previous incarnation. */
  unknownTarget: number;
  /** Resync chunks or acks of no current session. */
  staleResync: number;
  /** Bugs caught inside receive() and timers. */
  handlerErrors: number;
  duplicates: number;
  superseded: number;
  gaps: number;
  unrecoverable: number;
  nacksSent: number;
  nacksReceived: number;
  retransmitted: number;
  /** Bulk resyncs begun (start, resync(), each new source). */
  resyncs: number;
  /** Gap resyncs requested. */
  gapResyncs: number;
  /** A bulk resync is in progress. */
  resyncActive: boolean;
  /** Node id the bulk resync is fetching from (0: none). */
  resyncSource: number;
  /** Resync sessions this node is serving now. */
  resyncServing: number;
  resyncsServed: number;
  /** Requests refused: 4 sessions already served. */
  resyncsRefused: number;
  /** Responder sessions abandoned after 10 timeouts or a failed dump. */
  resyncsAbandoned: number;
  resyncChunksSent: number;
  resyncEntriesSent: number;
  /** New resync chunks received (bulk and gap), and the entries injected from them. */
  resyncChunksReceived: number;
  resyncEntriesReceived: number;
  peers: SyncPeerStatus[];
}

// --- constants that are not settings ------------------------------------------------

/** Responder sessions served at once; more requests are refused (counted). */
const MAX_RESPONDER_SESSIONS = 4;
/** Responder timeouts without progress before a session is abandoned. */
const MAX_RESPONDER_TIMEOUTS = 10;
/** The requester acks every this many new chunks... */
const ACK_EVERY_CHUNKS = 16;
/** ...or this long after the first unacknowledged one, ms. */
const ACK_DELAY_MS = 20;
/** Datagrams resent for one NACK (the rest on its re-NACK): bounds a burst into the socket buffer. */
const MAX_RETRANSMIT_PER_NACK = 256;
/** Connections remembered per sender for the ordering filter (decision 4); beyond it the filter is dropped. */
const MAX_ORDER_KEYS = 1 << 18;
/** Chunks accepted ahead of the first missing one (a bound on the requester's memory). */
const MAX_CHUNKS_AHEAD = 1 << 16;
/** Gap-resync attempts toward a silent sender before giving up. */
const MAX_GAP_ATTEMPTS = 10;

// --- record identity ------------------------------------------------------------------

/**
 * The identity of record `i` of `batch` as a string: protocol, template
 * flag, client port, virtual port, client address, virtual address (the
 * fields the kernel looks a connection up by). Used to keep older versions
 * of a connection from overwriting newer ones.
 */
export function syncRecordKey(bytes: Uint8Array, i: number): string {
  const o = i * R.SIZE;
  const k = KEY_SCRATCH;
  k[0] = bytes[o + R.PROTOCOL]!;
  k[1] = bytes[o + R.FLAGS]! & SYNC_RECORD_FLAG.TEMPLATE;
  k[2] = bytes[o + R.CPORT]!;
  k[3] = bytes[o + R.CPORT + 1]!;
  k[4] = bytes[o + R.VPORT]!;
  k[5] = bytes[o + R.VPORT + 1]!;
  // CADDR (24..39) and VADDR (40..55) are adjacent.
  for (let j = 0; j < 32; j++) k[6 + j] = bytes[o + R.CADDR + j]!;
  // One flat string (not a rope): it is hashed by Map lookups.
  return String.fromCharCode.apply(null, k);
}

const KEY_SCRATCH: number[] = new Array<number>(38).fill(0);

function slice(batch: RecordBatch, from: number, n: number): RecordBatch {
  return { bytes: batch.bytes.subarray(from * R.SIZE, (from + n) * R.SIZE), count: n };
}

function copyBatch(batch: RecordBatch): RecordBatch {
  return { bytes: batch.bytes.slice(0, batch.count * R.SIZE), count: batch.count };
}

/** The records of `batch` for which keep(i) holds, in a new batch (or `batch` itself when all are kept). */
function filterBatch(batch: RecordBatch, keep: (i: number) => boolean): RecordBatch {
  let n = 0;
  const idx: number[] = [];
  for (let i = 0; i < batch.count; i++) if (keep(i)) idx.push(i);
  if (idx.length === batch.count) return batch;
  const out = new Uint8Array(idx.length * R.SIZE);
  for (const i of idx) out.set(batch.bytes.subarray(i * R.SIZE, (i + 1) * R.SIZE), n++ * R.SIZE);
  return { bytes: out, count: n };
}

// --- a set of sequence numbers as ranges ------------------------------------------------

/** A set of non-negative integers as sorted, disjoint, non-adjacent inclusive ranges. */
export class SeqSet {
  private lo: number[] = [];
  private hi: number[] = [];

  get ranges(): number {
    return this.lo.length;
  }

  /** Index of the last range with lo <= s, or -1. */
  private find(s: number): number {
    let a = 0;
    let b = this.lo.length - 1;
    let r = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (this.lo[m]! <= s) {
        r = m;
        a = m + 1;
      } else b = m - 1;
    }
    return r;
  }

  has(s: number): boolean {
    const i = this.find(s);
    return i >= 0 && s <= this.hi[i]!;
  }

  /** Add [a, b] (a <= b). */
  addRange(a: number, b: number): void {
    if (a > b) return;
    let i = this.find(a);
    // Start merging at the range that touches a, if any.
    if (i >= 0 && this.hi[i]! >= a - 1) {
      a = Math.min(a, this.lo[i]!);
    } else i++;
    let j = i;
    while (j < this.lo.length && this.lo[j]! <= b + 1) {
      b = Math.max(b, this.hi[j]!);
      j++;
    }
    this.lo.splice(i, j - i, a);
    this.hi.splice(i, j - i, b);
  }

  /** Add s; false when it was already there. */
  add(s: number): boolean {
    if (this.has(s)) return false;
    this.addRange(s, s);
    return true;
  }

  /** Remove [a, b]. */
  removeRange(a: number, b: number): void {
    if (a > b) return;
    const lo: number[] = [];
    const hi: number[] = [];
    for (let k = 0; k < this.lo.length; k++) {
      const l = this.lo[k]!;
      const h = this.hi[k]!;
      if (h < a || l > b) {
        lo.push(l);
        hi.push(h);
        continue;
      }
      if (l < a) {
        lo.push(l);
        hi.push(a - 1);
      }
      if (h > b) {
        lo.push(b + 1);
        hi.push(h);
      }
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** Remove everything <= c. */
  dropThrough(c: number): void {
    let k = 0;
    while (k < this.lo.length && this.hi[k]! <= c) k++;
    if (k > 0) {
      this.lo.splice(0, k);
      this.hi.splice(0, k);
    }
    if (this.lo.length > 0 && this.lo[0]! <= c) this.lo[0] = c + 1;
  }

  /** The largest c' >= c such that every value in (c, c'] is in the set. */
  extend(c: number): number {
    for (let k = 0; k < this.lo.length; k++) {
      if (this.hi[k]! <= c) continue;
      if (this.lo[k]! > c + 1) break;
      c = this.hi[k]!;
    }
    return c;
  }

  /** How many of [a, b] are in the set. */
  countIn(a: number, b: number): number {
    let n = 0;
    for (let k = 0; k < this.lo.length; k++) {
      const l = Math.max(a, this.lo[k]!);
      const h = Math.min(b, this.hi[k]!);
      if (h >= l) n += h - l + 1;
    }
    return n;
  }

  /** The ranges of (from, to] NOT in the set, at most `max` of them. */
  missing(from: number, to: number, max: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let cur = from + 1;
    for (let k = 0; k < this.lo.length && cur <= to && out.length < max; k++) {
      if (this.hi[k]! < cur) continue;
      if (this.lo[k]! > to) break;
      if (this.lo[k]! > cur) out.push([cur, this.lo[k]! - 1]);
      cur = this.hi[k]! + 1;
    }
    if (cur <= to && out.length < max) out.push([cur, to]);
    return out;
  }

  /** First range's low end (undefined: empty). */
  first(): number | undefined {
    return this.lo[0];
  }
  firstHi(): number | undefined {
    return this.hi[0];
  }
  shiftFirst(): void {
    this.lo.shift();
    this.hi.shift();
  }

  clear(): void {
    this.lo = [];
    this.hi = [];
  }
}

// --- state ------------------------------------------------------------------------------

/** A timer this node armed (cleared by stop()). */
interface Armed {
  handle: unknown;
}

interface Peer {
  nodeId: number;
  address: PeerAddress | null;
  incarnation: number;
  /** Clock ms of its last message (-Infinity: never heard directly). */
  lastHeard: number;
  alive: boolean;
  epoch: number;
  // Replay window over message seqs of this incarnation.
  replayTop: number;
  replayBits: Uint8Array;
  // Its data stream (this incarnation).
  /** No data position known yet (no Entries or Alive heard). */
  fresh: boolean;
  /** Every dataSeq <= upTo is held; for a provisional peer only by receipt (not counting provBase). */
  upTo: number;
  /** Received dataSeqs above upTo. */
  above: SeqSet;
  /** Newest dataSeq known to exist. */
  known: number;
  /** Oldest dataSeq in its ring, from its Alive (0: unknown or empty). */
  oldest: number;
  /** The bulk resync is to cover dataSeqs <= provBase (decision 3). */
  provisional: boolean;
  provBase: number;
  /** upTo when the bulk resync began (receipts before it may be lost with the old saru). */
  upToAtBulk: number;
  /** Ordering filter: connection -> highest dataSeq that carried it, for datagrams received above a gap. */
  orderKeys: Map<string, number> | null;
  orderMax: number;
  // NACK scheduling.
  /** (known, clock ms) when a gap up to `known` was first seen; eligible nackDelayMs later. */
  gapQueue: Array<[number, number]>;
  eligibleUpTo: number;
  nackedUpTo: number;
  lastFullNackAt: number;
  nackTimer: Armed | null;
  /** While a gap resync from it runs: the contiguous we acknowledge at most (decision 5). */
  ackCap: number;
  // Its view.
  synced: boolean;
  acks: PeerAck[];
  ackedUs: number;
  /** Its counters, as status() shows them. */
  n: SyncPeerCounters;
}

/** A resync this node asked for: the whole table ('bulk') or one sender's own entries ('gap'). */
interface Requester {
  kind: 'bulk' | 'gap';
  source: Peer;
  session: number;
  requested: boolean;
  startedAt: number;
  /** Every chunk index below `next` has been received. */
  next: number;
  got: Set<number>;
  /** Index of the chunk marked last (-1: not seen yet). */
  lastIndex: number;
  chunks: number;
  entries: number;
  unacked: number;
  firstChunk: boolean;
  ackTimer: Armed | null;
  progressTimer: Armed | null;
  requestTimer: Armed | null;
  /** Repeats the ack while chunks are missing (it is what makes the responder resend). */
  probeTimer: Armed | null;
  /** Connections injected from live data (and gap resyncs) since this resync began (decision 4). */
  touched: Set<string>;
  attempts: number;
  closed: boolean;
}

/** A resync this node serves. */
interface Responder {
  requester: Peer;
  requesterIncarnation: number;
  to: PeerAddress;
  session: number;
  ownOnly: boolean;
  chunks: Map<number, RecordBatch>;
  produced: number;
  sent: number;
  next: number;
  acked: Set<number>;
  /** Clock ms each unacknowledged chunk was last sent. */
  sentAt: Map<number, number>;
  lastIndex: number;
  cursor: number;
  dumping: boolean;
  dumpDone: boolean;
  timeouts: number;
  timer: Armed | null;
  entries: number;
  startedAt: number;
  closed: boolean;
}

type BulkPhase = 'idle' | 'discovery' | 'fetching' | 'done';

function addr(a: PeerAddress | null): string {
  return a === null ? '' : `${a.address}:${a.port}`;
}

/** The reliability engine; see the module comment. */
export class SyncNode {
  private readonly nodeId: number;
  private readonly incarnation: number;
  private readonly flushIntervalMs: number;
  private readonly aliveIntervalMs: number;
  private readonly peerTimeoutMs: number;
  private readonly ringSize: number;
  private readonly replayWindow: number;
  private readonly nackDelayMs: number;
  private readonly nackRetryMs: number;
  private readonly discoveryMs: number;
  private readonly resyncWindow: number;
  private readonly resyncPageEntries: number;
  private readonly resyncTimeoutMs: number;
  private readonly maxAcks: number;
  private readonly maxNackRanges: number;
  private readonly maxAckReceived: number;
  /** A resync chunk unacknowledged this long is resent on the next ack; the requester acks at least this often. */
  private readonly chunkResendMs: number;

  private running = false;
  private epoch = 0;
  private seq = 0;
  private dataSeq = 0;
  /** Records put into data datagrams so far, and (dataSeq, records sent through it) marks not yet acknowledged by every live peer. */
  private recordsSent = 0;
  private recordsAcked = 0;
  private readonly sentMarks: Array<{ ds: number; records: number }> = [];
  private isSynced = false;
  private sessionCounter = 0;

  // Outgoing data.
  private readonly ringSeq: Float64Array;
  private readonly ringBatch: Array<RecordBatch | null>;
  private pending: RecordBatch = { bytes: new Uint8Array(0), count: 0 };
  private flushTimer: Armed | null = null;

  private readonly peers = new Map<number, Peer>();
  private readonly armed = new Set<Armed>();
  private aliveTimer: Armed | null = null;

  // Bulk resync (requester).
  private bulkPhase: BulkPhase = 'idle';
  private bulkStartedAt = 0;
  private bulkTouched: Set<string> | null = null;
  private bulkFailed = -1;
  private bulk: Requester | null = null;
  private discoveryTimer: Armed | null = null;
  // Gap resyncs (requester) by source node id; another one owed after the current.
  private readonly gaps = new Map<number, Requester>();
  private readonly gapAgain = new Set<number>();
  /** Last finished requester session per source: re-ack its stray chunks. */
  private readonly finished = new Map<number, { session: number; total: number }>();
  // Responder sessions by requester node id; last completed session per requester.
  private readonly responders = new Map<number, Responder>();
  private readonly served = new Map<number, number>();

  private readonly c = {
    datagramsSent: 0,
    entriesSent: 0,
    bytesSent: 0,
    datagramsReceived: 0,
    entriesReceived: 0,
    authFailures: 0,
    truncated: 0,
    oversized: 0,
    malformed: 0,
    replayed: 0,
    ownEchoes: 0,
    unknownTarget: 0,
    staleResync: 0,
    handlerErrors: 0,
    duplicates: 0,
    superseded: 0,
    gaps: 0,
    unrecoverable: 0,
    nacksSent: 0,
    nacksReceived: 0,
    retransmitted: 0,
    resyncs: 0,
    gapResyncs: 0,
    resyncsServed: 0,
    resyncsRefused: 0,
    resyncsAbandoned: 0,
    resyncChunksSent: 0,
    resyncEntriesSent: 0,
    resyncChunksReceived: 0,
    resyncEntriesReceived: 0,
  };

  /**
   * @throws SaruError INVALID_ARGUMENT when nodeId is not 1..1023, the
   *   incarnation is not a non-negative integer, or a setting is not a
   *   positive number (sizes: positive integers).
   */
  constructor(
    init: SyncNodeInit,
    private readonly deps: SyncNodeDeps,
  ) {
    if (!Number.isInteger(init.nodeId) || init.nodeId < 1 || init.nodeId > 1023) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync nodeId must be 1..1023, got ${init.nodeId}`);
    }
    if (!Number.isSafeInteger(init.incarnation) || init.incarnation < 0) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync incarnation must be a non-negative integer, got ${init.incarnation}`);
    }
    const pos = (name: string, v: number | undefined, dflt: number, integer = false): number => {
      const x = v ?? dflt;
      if (!(x > 0) || !Number.isFinite(x) || (integer && !Number.isInteger(x))) {
        throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${x}`);
      }
      return x;
    };
    this.nodeId = init.nodeId;
    this.incarnation = init.incarnation;
    this.flushIntervalMs = pos('flushIntervalMs', init.flushIntervalMs, 10);
    this.aliveIntervalMs = pos('aliveIntervalMs', init.aliveIntervalMs, 250);
    this.peerTimeoutMs = pos('peerTimeoutMs', init.peerTimeoutMs, 4 * this.aliveIntervalMs);
    this.ringSize = pos('ringDatagrams', init.ringDatagrams, 4096, true);
    this.replayWindow = pos('replayWindow', init.replayWindow, 4096, true);
    this.nackDelayMs = pos('nackDelayMs', init.nackDelayMs, 5);
    this.nackRetryMs = pos('nackRetryMs', init.nackRetryMs, 50);
    this.discoveryMs = pos('discoveryMs', init.discoveryMs, 3 * this.aliveIntervalMs);
    this.resyncWindow = pos('resyncWindow', init.resyncWindow, 64, true);
    this.resyncPageEntries = pos('resyncPageEntries', init.resyncPageEntries, 8192, true);
    this.resyncTimeoutMs = pos('resyncTimeoutMs', init.resyncTimeoutMs, 1000);
    this.ringSeq = new Float64Array(this.ringSize);
    this.ringBatch = new Array<RecordBatch | null>(this.ringSize).fill(null);
    // Worst-case wire sizes (sync.proto): an ack ~24 bytes, a range ~20, a chunk index 6; ~100 for header and tag.
    const room = Math.max(0, deps.codec.maxDatagramBytes - 100);
    this.maxAcks = Math.max(1, Math.floor(room / 24));
    this.maxNackRanges = Math.max(1, Math.min(64, Math.floor(room / 20)));
    this.maxAckReceived = Math.max(1, Math.min(256, Math.floor(room / 6)));
    this.chunkResendMs = Math.max(2 * ACK_DELAY_MS, this.resyncTimeoutMs / 10);
  }

  // --- lifecycle -------------------------------------------------------------------

  /** Begin: an Alive now and every aliveIntervalMs, discovery, then the bulk resync (local.ready(false) now, ready(true) when done). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.sendAlive(null);
    this.aliveTimer = this.arm(() => this.aliveTick(), this.aliveIntervalMs);
    this.beginBulk(false);
  }

  /** Stop: send what is pending, clear every timer, end every session. The node can not be restarted (make a new one). */
  stop(): void {
    if (!this.running) return;
    this.flush();
    this.running = false;
    for (const a of this.armed) this.deps.timers.clearTimeout(a.handle);
    this.armed.clear();
    this.aliveTimer = null;
    this.flushTimer = null;
    this.discoveryTimer = null;
    for (const p of this.peers.values()) p.nackTimer = null;
    for (const s of this.responders.values()) s.closed = true;
    this.responders.clear();
    if (this.bulk) this.bulk.closed = true;
    for (const g of this.gaps.values()) g.closed = true;
    this.gaps.clear();
  }

  /** Whether the bulk resync finished (or there was nobody to resync from). */
  get synced(): boolean {
    return this.isSynced;
  }

  /** The allocation epoch carried in every message header from now on. */
  setEpoch(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `sync epoch must be a non-negative integer, got ${epoch}`);
    }
    this.epoch = epoch;
  }

  // --- sending data ----------------------------------------------------------------

  /**
   * Local sync events to send: `batch.count` records of 72 bytes. Full
   * datagrams (codec.fit) go at once, each with the next dataSeq, and are
   * kept in the ring; the rest waits at most flushIntervalMs. The records
   * are copied (the caller may reuse the buffer).
   * @throws SaruError INVALID_ARGUMENT when bytes.length < count * 72.
   */
  submit(batch: RecordBatch): void {
    if (!Number.isInteger(batch.count) || batch.count < 0 || batch.bytes.length < batch.count * R.SIZE) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `record batch of ${batch.count} records needs ${batch.count * R.SIZE} bytes`);
    }
    if (batch.count === 0) return;
    // During a resync our own newer versions must not be overwritten by a dump's older copy (decision 4).
    if (this.bulkTouched !== null || this.gaps.size > 0) {
      for (let i = 0; i < batch.count; i++) this.touch(syncRecordKey(batch.bytes, i));
    }
    let work: RecordBatch;
    if (this.pending.count > 0) {
      const bytes = new Uint8Array((this.pending.count + batch.count) * R.SIZE);
      bytes.set(this.pending.bytes.subarray(0, this.pending.count * R.SIZE), 0);
      bytes.set(batch.bytes.subarray(0, batch.count * R.SIZE), this.pending.count * R.SIZE);
      work = { bytes, count: this.pending.count + batch.count };
    } else work = batch;
    let from = 0;
    let sentAny = false;
    for (;;) {
      const n = this.deps.codec.fit(work, from);
      if (n === 0 || from + n >= work.count) break; // the rest may still grow: wait
      this.sendData(copyBatch(slice(work, from, n)));
      from += n;
      sentAny = true;
    }
    this.pending = copyBatch(slice(work, from, work.count - from));
    if (sentAny && this.flushTimer) {
      this.disarm(this.flushTimer); // the records it waited for are gone
      this.flushTimer = null;
    }
    if (this.pending.count > 0 && this.flushTimer === null && this.running) {
      this.flushTimer = this.arm(() => {
        this.flushTimer = null;
        this.flush();
      }, this.flushIntervalMs);
    }
  }

  /** Send every pending record now. */
  private flush(): void {
    if (this.flushTimer) {
      this.disarm(this.flushTimer);
      this.flushTimer = null;
    }
    const work = this.pending;
    this.pending = { bytes: new Uint8Array(0), count: 0 };
    let from = 0;
    while (from < work.count) {
      const n = this.deps.codec.fit(work, from);
      this.sendData(slice(work, from, n));
      from += n;
    }
  }

  private sendData(batch: RecordBatch): void {
    const ds = ++this.dataSeq;
    this.recordsSent += batch.count;
    this.sentMarks.push({ ds, records: this.recordsSent });
    const slot = ds % this.ringSize;
    this.ringSeq[slot] = ds;
    this.ringBatch[slot] = batch;
    this.c.entriesSent += batch.count;
    this.send({ kind: 'entries', dataSeq: ds, entries: batch }, null);
  }

  /**
   * The records every live peer has acknowledged (their Alive acks of our
   * data sequence numbers): tell local.acked(). Saru uses it to end a
   * graceful handover's drain once the new owners hold its connections.
   */
  private advanceAcked(): void {
    let min = this.dataSeq;
    for (const p of this.peers.values()) if (p.alive) min = Math.min(min, p.ackedUs);
    let acked = this.recordsAcked;
    while (this.sentMarks.length > 0 && this.sentMarks[0]!.ds <= min) acked = this.sentMarks.shift()!.records;
    if (acked > this.recordsAcked) {
      this.recordsAcked = acked;
      this.deps.local.acked?.(acked);
    }
  }

  /** Count `by` on peer `p` and in the totals. */
  private count(p: Peer, key: Exclude<keyof SyncPeerCounters, 'datagramsReceived' | 'restarts'>, by = 1): void {
    p.n[key] += by;
    this.c[key] += by;
  }

  private oldestDataSeq(): number {
    return this.dataSeq === 0 ? 0 : Math.max(1, this.dataSeq - this.ringSize + 1);
  }

  private ringGet(ds: number): RecordBatch | null {
    if (ds < 1 || ds > this.dataSeq) return null;
    const slot = ds % this.ringSize;
    return this.ringSeq[slot] === ds ? this.ringBatch[slot]! : null;
  }

  /** Encode with the next message seq and send (to null: broadcast). */
  private send(body: SyncBody, to: PeerAddress | null): void {
    const msg: SyncMessage = { nodeId: this.nodeId, incarnation: this.incarnation, seq: ++this.seq, epoch: this.epoch, body };
    const bytes = this.deps.codec.encode(msg);
    this.c.datagramsSent++;
    this.c.bytesSent += bytes.length;
    if (to === null) this.deps.transport.broadcast(bytes);
    else this.deps.transport.sendTo(bytes, to);
  }

  // --- Alive and liveness ------------------------------------------------------------

  private aliveTick(): void {
    this.aliveTimer = this.arm(() => this.aliveTick(), this.aliveIntervalMs);
    const now = this.now();
    for (const p of this.peers.values()) {
      if (p.alive && now - p.lastHeard > this.peerTimeoutMs) this.peerDown(p);
    }
    this.sendAlive(null);
  }

  private sendAlive(to: PeerAddress | null): void {
    const acks: PeerAck[] = [];
    for (const p of this.peers.values()) {
      if (!p.alive || p.fresh || acks.length >= this.maxAcks) continue;
      acks.push({ nodeId: p.nodeId, incarnation: p.incarnation, contiguous: Math.min(this.eff(p), p.ackCap) });
    }
    const body: AliveBody = {
      kind: 'alive',
      lastDataSeq: this.dataSeq,
      oldestDataSeq: this.oldestDataSeq(),
      synced: this.isSynced,
      acks,
    };
    this.send(body, to);
  }

  private peerDown(p: Peer): void {
    p.alive = false;
    if (p.nackTimer) {
      this.disarm(p.nackTimer);
      p.nackTimer = null;
    }
    this.log('info', { peer: p.nodeId, incarnation: p.incarnation, epoch: this.epoch }, 'sync peer down');
    if (this.bulk && !this.bulk.closed && this.bulk.source === p) this.bulkSourceFailed('source down');
    this.advanceAcked(); // a dead peer no longer holds the acknowledgement back
  }

  // --- receiving ---------------------------------------------------------------------

  /** A datagram from `from`. Never throws: drops are counted, a bug inside is counted as handlerErrors. */
  receive(bytes: Uint8Array, from: PeerAddress): void {
    if (!this.running) return;
    this.c.datagramsReceived++;
    try {
      const r = this.deps.codec.decode(bytes);
      if (!r.ok) {
        if (r.error === 'auth') this.c.authFailures++;
        else this.c[r.error]++;
        return;
      }
      this.dispatch(r.msg, from);
    } catch (e) {
      this.c.handlerErrors++;
      this.log('warn', { err: e instanceof Error ? e.message : String(e) }, 'sync message handler failed');
    }
  }

  private dispatch(msg: SyncMessage, from: PeerAddress): void {
    if (msg.nodeId === this.nodeId) {
      this.c.ownEchoes++;
      return;
    }
    let p = this.peers.get(msg.nodeId);
    if (p === undefined) {
      p = this.newPeer(msg.nodeId, msg.incarnation);
      this.peers.set(p.nodeId, p);
    } else if (msg.incarnation < p.incarnation) {
      this.c.replayed++;
      return;
    } else if (msg.incarnation > p.incarnation) {
      this.peerRestarted(p, msg.incarnation);
    }
    if (!this.replayCheck(p, msg.seq)) {
      this.c.replayed++;
      return;
    }
    p.address = { address: from.address, port: from.port };
    p.lastHeard = this.now();
    p.epoch = msg.epoch;
    p.n.datagramsReceived++;
    if (!p.alive) {
      p.alive = true;
      this.log('info', { peer: p.nodeId, incarnation: p.incarnation, address: addr(p.address), epoch: this.epoch }, 'sync peer up');
    }
    const b = msg.body;
    switch (b.kind) {
      case 'entries':
        this.onEntries(p, b);
        break;
      case 'alive':
        this.onAlive(p, b);
        break;
      case 'nack':
        this.onNack(p, b);
        break;
      case 'resyncRequest':
        this.onResyncRequest(p, b);
        break;
      case 'resyncChunk':
        this.onChunk(p, b);
        break;
      case 'resyncAck':
        this.onResyncAck(p, b);
        break;
    }
  }

  private newPeer(nodeId: number, incarnation: number): Peer {
    return {
      nodeId,
      address: null,
      incarnation,
      lastHeard: -Infinity,
      alive: false,
      epoch: 0,
      replayTop: 0,
      replayBits: new Uint8Array(Math.ceil(this.replayWindow / 8)),
      fresh: true,
      upTo: 0,
      above: new SeqSet(),
      known: 0,
      oldest: 0,
      provisional: false,
      provBase: 0,
      upToAtBulk: 0,
      orderKeys: null,
      orderMax: 0,
      gapQueue: [],
      eligibleUpTo: 0,
      nackedUpTo: 0,
      lastFullNackAt: -Infinity,
      nackTimer: null,
      ackCap: Infinity,
      synced: false,
      acks: [],
      ackedUs: 0,
      n: { datagramsReceived: 0, entriesReceived: 0, duplicates: 0, superseded: 0, gaps: 0, unrecoverable: 0, nacksSent: 0, nacksReceived: 0, retransmitted: 0, resyncsServed: 0, restarts: 0 },
    };
  }

  /** A newer incarnation: it restarted, its dataSeq starts again at 1, all of it is after our start (base 0). */
  private peerRestarted(p: Peer, incarnation: number): void {
    this.log('info', { peer: p.nodeId, from: p.incarnation, to: incarnation, epoch: this.epoch }, 'sync peer restarted');
    p.incarnation = incarnation;
    p.n.restarts++;
    p.replayTop = 0;
    p.replayBits.fill(0);
    p.fresh = false;
    p.upTo = 0;
    p.above.clear();
    p.known = 0;
    p.oldest = 0;
    p.provisional = false;
    p.provBase = 0;
    p.upToAtBulk = 0;
    p.orderKeys = null;
    p.orderMax = 0;
    p.gapQueue = [];
    p.eligibleUpTo = 0;
    p.nackedUpTo = 0;
    p.lastFullNackAt = -Infinity;
    if (p.nackTimer) {
      this.disarm(p.nackTimer);
      p.nackTimer = null;
    }
    p.synced = false;
    p.acks = [];
    p.ackedUs = 0;
    // Sessions with its previous incarnation are gone on its side.
    const r = this.responders.get(p.nodeId);
    if (r) this.closeResponder(r);
    this.served.delete(p.nodeId);
    this.finished.delete(p.nodeId);
    if (this.bulk && !this.bulk.closed && this.bulk.source === p) this.bulkSourceFailed('source restarted');
    const g = this.gaps.get(p.nodeId);
    if (g) {
      // Its table survives a syncd restart when saru did not restart: ask the new incarnation.
      this.closeRequester(g);
      this.gaps.delete(p.nodeId);
      this.startGap(p);
    }
  }

  /** RFC 4303 3.4.3 anti-replay, replayWindow wide. True when seq is new (and records it). */
  private replayCheck(p: Peer, seq: number): boolean {
    const w = this.replayWindow;
    const bits = p.replayBits;
    if (seq > p.replayTop) {
      if (seq - p.replayTop >= w) bits.fill(0);
      else for (let s = p.replayTop + 1; s < seq; s++) bits[(s % w) >> 3] &= ~(1 << (s % w & 7));
      bits[(seq % w) >> 3] |= 1 << (seq % w & 7);
      p.replayTop = seq;
      return true;
    }
    if (p.replayTop - seq >= w || seq < 1) return false;
    const i = seq % w;
    if (bits[i >> 3]! & (1 << (i & 7))) return false;
    bits[i >> 3] |= 1 << (i & 7);
    return true;
  }

  /** Every dataSeq of p up to this is held or covered. */
  private eff(p: Peer): number {
    if (!p.provisional) return p.upTo;
    return p.above.extend(Math.max(p.upTo, p.provBase));
  }

  /** First data position of a sender incarnation (decision 3). */
  private placeFresh(p: Peer, base: number): void {
    p.fresh = false;
    if (this.bulkPhase === 'discovery' || (this.bulkPhase === 'fetching' && this.bulk !== null && !this.bulk.requested)) {
      p.provisional = true;
      p.provBase = base;
      p.upToAtBulk = 0;
      p.known = Math.max(p.known, base);
    } else {
      p.provisional = false;
      p.upTo = 0;
      this.learnKnown(p, base);
    }
  }

  /** dataSeq `k` of p exists: count the new gap and queue its NACK. */
  private learnKnown(p: Peer, k: number): void {
    if (k <= p.known) return;
    const before = p.known;
    p.known = k;
    const c = this.eff(p);
    const lo = Math.max(before, c);
    if (k > lo) {
      const n = k - lo - p.above.countIn(lo + 1, k);
      this.count(p, 'gaps', n);
    }
    if (k > c) p.gapQueue.push([k, this.now()]);
  }

  private advance(p: Peer): void {
    for (;;) {
      const lo = p.above.first();
      if (lo === undefined || lo > p.upTo + 1) break;
      p.upTo = Math.max(p.upTo, p.above.firstHi()!);
      p.above.shiftFirst();
    }
    if (p.orderKeys !== null && p.upTo >= p.orderMax) {
      p.orderKeys = null;
      p.orderMax = 0;
    }
  }

  private onEntries(p: Peer, b: EntriesBody): void {
    const d = b.dataSeq;
    if (d < 1) return;
    if (p.fresh) this.placeFresh(p, d - 1);
    if (d <= p.upTo || p.above.has(d)) {
      this.count(p, 'duplicates');
      return;
    }
    const aboveGap = d > p.upTo + 1;
    p.above.add(d);
    this.learnKnown(p, d);
    let batch = b.entries;
    // Ordering filter: never overwrite a connection a newer datagram of this sender carried.
    const order = p.orderKeys;
    if (order !== null && p.orderMax > d && batch.count > 0) {
      const bytes = batch.bytes;
      const before = batch.count;
      batch = filterBatch(batch, (i) => (order.get(syncRecordKey(bytes, i)) ?? 0) <= d);
      this.count(p, 'superseded', before - batch.count);
    }
    const resyncing = this.bulkTouched !== null || this.gaps.size > 0;
    if (batch.count > 0 && (aboveGap || resyncing)) {
      let map = p.orderKeys;
      if (aboveGap && map === null) map = p.orderKeys = new Map();
      for (let i = 0; i < batch.count; i++) {
        const k = syncRecordKey(batch.bytes, i);
        if (aboveGap && map !== null) {
          if ((map.get(k) ?? 0) < d) map.set(k, d);
        }
        if (resyncing) this.touch(k);
      }
      if (aboveGap) {
        p.orderMax = Math.max(p.orderMax, d);
        if (map !== null && map.size > MAX_ORDER_KEYS) {
          this.log('warn', { peer: p.nodeId, keys: map.size }, 'sync ordering filter full: dropped');
          p.orderKeys = null;
          p.orderMax = 0;
        }
      }
    }
    if (batch.count > 0) {
      this.deps.local.inject(batch);
      this.count(p, 'entriesReceived', batch.count);
    }
    this.advance(p);
    this.scheduleNack(p);
  }

  /** A connection injected from live data (or a gap resync): resync dumps must not overwrite it. */
  private touch(k: string): void {
    this.bulkTouched?.add(k);
    for (const g of this.gaps.values()) g.touched.add(k);
  }

  private onAlive(p: Peer, b: AliveBody): void {
    if (p.fresh) this.placeFresh(p, b.lastDataSeq);
    p.synced = b.synced;
    p.acks = b.acks;
    p.oldest = b.oldestDataSeq;
    p.ackedUs = 0;
    for (const a of b.acks) {
      if (a.nodeId === this.nodeId && a.incarnation === this.incarnation) p.ackedUs = a.contiguous;
    }
    this.learnKnown(p, b.lastDataSeq);
    this.advanceAcked();
    this.checkUnrecoverable(p);
    this.scheduleNack(p);
    if (this.bulk && !this.bulk.closed && this.bulk.source === p && !this.bulk.requested) this.tryBulkRequest();
  }

  /** Missing dataSeqs below the sender's ring are skipped and fetched by a gap resync (decision 2). */
  private checkUnrecoverable(p: Peer): void {
    if (p.oldest <= 1 || p.fresh) return;
    const c = this.eff(p);
    const top = Math.min(p.oldest - 1, p.known);
    if (top <= c) return;
    const n = top - c - p.above.countIn(c + 1, top);
    if (n <= 0) return;
    this.count(p, 'unrecoverable', n);
    p.ackCap = Math.min(p.ackCap, c);
    p.above.addRange(c + 1, top);
    this.advance(p);
    this.log('info', { peer: p.nodeId, from: c + 1, to: top, missing: n, epoch: this.epoch }, 'sync gap beyond the sender ring: gap resync');
    this.startGap(p);
  }

  // --- NACK ---------------------------------------------------------------------------

  private scheduleNack(p: Peer): void {
    if (!this.running || p.nackTimer !== null || !p.alive || p.address === null) return;
    const c = this.eff(p);
    while (p.gapQueue.length > 0 && p.gapQueue[0]![0] <= c) p.gapQueue.shift();
    if (p.known <= c) {
      p.gapQueue.length = 0;
      return;
    }
    let due = Infinity;
    if (p.eligibleUpTo > c) due = p.lastFullNackAt + this.nackRetryMs;
    if (p.gapQueue.length > 0) due = Math.min(due, p.gapQueue[0]![1] + this.nackDelayMs);
    if (due === Infinity) return;
    p.nackTimer = this.arm(() => {
      p.nackTimer = null;
      this.nackTick(p);
    }, Math.max(0, due - this.now()));
  }

  private nackTick(p: Peer): void {
    if (!p.alive || p.address === null) return;
    const now = this.now();
    while (p.gapQueue.length > 0 && p.gapQueue[0]![1] + this.nackDelayMs <= now) {
      p.eligibleUpTo = Math.max(p.eligibleUpTo, p.gapQueue.shift()![0]);
    }
    const c = this.eff(p);
    const to = Math.min(p.known, p.eligibleUpTo);
    if (to > c) {
      const full = p.lastFullNackAt + this.nackRetryMs <= now;
      const from = full ? c : Math.max(c, p.nackedUpTo);
      const ranges = p.above.missing(from, to, this.maxNackRanges);
      if (ranges.length > 0) {
        const body: NackBody = { kind: 'nack', target: p.nodeId, targetIncarnation: p.incarnation, ranges };
        this.send(body, p.address);
        this.count(p, 'nacksSent');
        p.nackedUpTo = Math.max(p.nackedUpTo, ranges[ranges.length - 1]![1]);
        if (full) p.lastFullNackAt = now;
      }
    }
    this.scheduleNack(p);
  }

  /** A peer asks for our data datagrams again: resend what the ring holds (new seq, same dataSeq). */
  private onNack(p: Peer, b: NackBody): void {
    if (b.target !== this.nodeId || b.targetIncarnation !== this.incarnation) {
      this.c.unknownTarget++;
      return;
    }
    this.count(p, 'nacksReceived');
    const oldest = this.oldestDataSeq();
    let budget = MAX_RETRANSMIT_PER_NACK;
    let below = false;
    for (const [f, l] of b.ranges) {
      if (f < oldest || oldest === 0) below = true;
      const hi = Math.min(l, this.dataSeq);
      for (let ds = Math.max(f, oldest, 1); ds <= hi && budget > 0; ds++) {
        const batch = this.ringGet(ds);
        if (batch === null) continue;
        this.send({ kind: 'entries', dataSeq: ds, entries: batch }, p.address);
        budget--;
        this.count(p, 'retransmitted');
      }
    }
    // Tell it at once where the ring starts: it skips the rest and asks for a gap resync.
    if (below) this.sendAlive(p.address);
  }

  // --- bulk resync (requester) -----------------------------------------------------

  /**
   * The local table may be empty or stale (saru restarted): resync it in
   * bulk. local.ready(false) now, local.ready(true) when done. Before
   * start(), does nothing (start() resyncs).
   */
  resync(): void {
    if (!this.running) return;
    this.beginBulk(true);
  }

  /**
   * The local table is gone (saru disconnected): stop any bulk resync into
   * it and stop announcing this node as synced, so no peer chooses it as a
   * resync source, until resync() into the next saru completes.
   */
  localLost(): void {
    if (!this.running) return;
    if (this.bulk) {
      this.closeRequester(this.bulk);
      this.bulk = null;
    }
    this.isSynced = false;
  }

  private beginBulk(midLife: boolean): void {
    if (this.bulk) {
      this.closeRequester(this.bulk);
      this.bulk = null;
    }
    if (this.discoveryTimer) {
      this.disarm(this.discoveryTimer);
      this.discoveryTimer = null;
    }
    this.isSynced = false;
    this.deps.local.ready(false);
    this.bulkStartedAt = this.now();
    this.bulkTouched = new Set();
    this.bulkFailed = -1;
    this.c.resyncs++;
    if (midLife) {
      // What we received before now went to the old saru: the dump must cover it.
      for (const p of this.peers.values()) {
        if (p.fresh) continue;
        if (!p.provisional) {
          p.provisional = true;
          p.provBase = p.upTo;
        }
        p.upToAtBulk = p.upTo;
      }
    }
    this.log('info', { epoch: this.epoch, reason: midLife ? 'resync requested' : 'start' }, 'sync resync started');
    if (midLife && this.candidates().length > 0) {
      this.bulkPhase = 'fetching';
      this.chooseSource();
      return;
    }
    this.bulkPhase = 'discovery';
    this.discoveryTimer = this.arm(() => {
      this.discoveryTimer = null;
      this.chooseSource();
    }, this.discoveryMs);
  }

  /** Live peers whose last Alive said synced, by node id. */
  private candidates(): Peer[] {
    const out: Peer[] = [];
    for (const p of this.peers.values()) if (p.alive && p.synced && p.address !== null) out.push(p);
    return out.sort((a, b) => a.nodeId - b.nodeId);
  }

  private chooseSource(): void {
    let cands = this.candidates();
    if (cands.length > 1 && this.bulkFailed >= 0) cands = cands.filter((p) => p.nodeId !== this.bulkFailed);
    const s = cands[0];
    if (s === undefined) {
      if (this.bulkPhase === 'discovery') {
        this.coldSynced();
        return;
      }
      // Our source failed and no synced peer is left: listen again.
      this.bulkPhase = 'discovery';
      this.discoveryTimer = this.arm(() => {
        this.discoveryTimer = null;
        this.chooseSource();
      }, this.discoveryMs);
      return;
    }
    this.bulkPhase = 'fetching';
    const r = this.newRequester('bulk', s);
    this.bulk = r;
    r.progressTimer = this.arm(() => this.bulkWaitTimeout(r), this.resyncTimeoutMs);
    this.tryBulkRequest();
  }

  /** No synced peer: a cold cluster. Everything provisional becomes NACKable from 1. */
  private coldSynced(): void {
    for (const p of this.peers.values()) {
      if (p.provisional) this.lowerCoverage(p, 0);
      this.finalize(p);
    }
    this.bulkPhase = 'done';
    this.bulkTouched = null;
    this.isSynced = true;
    this.deps.local.ready(true);
    this.log('info', { epoch: this.epoch, ms: this.now() - this.bulkStartedAt, entries: 0 }, 'sync resync finished: no synced peer, nothing to fetch');
    this.startOwedGaps();
  }

  /** Request from the chosen source once its acks cover every provisional base (decision 3). */
  private tryBulkRequest(): void {
    const r = this.bulk;
    if (r === null || r.requested || r.closed) return;
    const s = r.source;
    for (const p of this.peers.values()) {
      // A silent sender can not be NACKed anyway: what the source has of it is the best there is.
      if (p === s || !p.provisional || !p.alive) continue;
      const a = s.acks.find((x) => x.nodeId === p.nodeId && x.incarnation === p.incarnation);
      if ((a?.contiguous ?? 0) < p.provBase) return; // wait for its next Alive
    }
    this.sendBulkRequest(r);
  }

  private bulkWaitTimeout(r: Requester): void {
    r.progressTimer = null;
    if (r.closed) return;
    if (!r.requested) {
      this.sendBulkRequest(r);
      return;
    }
    this.bulkSourceFailed('no progress');
  }

  private sendBulkRequest(r: Requester): void {
    const s = r.source;
    // Lower every base the source does not reach; adopt the senders only it knows.
    for (const p of this.peers.values()) {
      if (p === s || !p.provisional) continue;
      const a = s.acks.find((x) => x.nodeId === p.nodeId && x.incarnation === p.incarnation);
      this.lowerCoverage(p, a?.contiguous ?? 0);
    }
    for (const a of s.acks) {
      if (a.nodeId === this.nodeId) continue;
      let p = this.peers.get(a.nodeId);
      if (p === undefined) {
        p = this.newPeer(a.nodeId, a.incarnation);
        this.peers.set(a.nodeId, p);
      } else if (p.incarnation !== a.incarnation || !p.fresh) continue;
      p.fresh = false;
      p.provisional = true;
      p.provBase = a.contiguous;
      p.upToAtBulk = 0;
      p.known = Math.max(p.known, a.contiguous);
    }
    // A gap resync toward the source would be replaced by this request on its side: redo it after.
    const g = this.gaps.get(s.nodeId);
    if (g) {
      this.closeRequester(g);
      this.gaps.delete(s.nodeId);
      this.gapAgain.add(s.nodeId);
    }
    this.log('info', { source: s.nodeId, session: r.session, epoch: this.epoch }, 'sync resync requesting');
    this.sendRequest(r);
    for (const p of this.peers.values()) {
      this.checkUnrecoverable(p);
      this.scheduleNack(p);
    }
  }

  /**
   * The bulk resync now covers p only up to `a`: what lies above it and was
   * received before the resync began is lost with the old saru (mid-life
   * resync) and is NACKed again; NACK it at once (no reordering to wait for).
   */
  private lowerCoverage(p: Peer, a: number): void {
    const before = this.eff(p);
    if (a >= p.provBase && a >= p.upToAtBulk) return;
    p.provBase = Math.min(p.provBase, a);
    if (p.upToAtBulk > a && p.upTo > a) {
      const oldUpTo = p.upTo;
      p.upTo = a;
      if (oldUpTo > p.upToAtBulk) p.above.addRange(p.upToAtBulk + 1, oldUpTo);
      p.above.removeRange(a + 1, p.upToAtBulk);
      p.upToAtBulk = a;
      p.orderKeys = null;
      p.orderMax = 0;
    }
    const after = this.eff(p);
    if (after < before) {
      p.eligibleUpTo = Math.max(p.eligibleUpTo, before);
      const n = before - after - p.above.countIn(after + 1, before);
      this.count(p, 'gaps', n);
    }
  }

  /** The bulk resync is over: bases become facts. */
  private finalize(p: Peer): void {
    if (!p.provisional) return;
    p.upTo = this.eff(p);
    p.provisional = false;
    p.provBase = 0;
    p.upToAtBulk = 0;
    p.above.dropThrough(p.upTo);
    this.advance(p);
  }

  private bulkSourceFailed(why: string): void {
    const r = this.bulk;
    if (r === null || r.closed) return;
    this.log('warn', { source: r.source.nodeId, session: r.session, why, chunks: r.chunks, epoch: this.epoch }, 'sync resync source failed');
    this.bulkFailed = r.source.nodeId;
    this.closeRequester(r);
    this.bulk = null;
    this.c.resyncs++;
    this.chooseSource();
  }

  private bulkFinished(r: Requester): void {
    this.bulk = null;
    for (const p of this.peers.values()) this.finalize(p);
    this.bulkPhase = 'done';
    this.bulkTouched = null;
    this.isSynced = true;
    this.deps.local.ready(true);
    this.log(
      'info',
      { source: r.source.nodeId, entries: r.entries, chunks: r.chunks, ms: this.now() - this.bulkStartedAt, epoch: this.epoch },
      'sync resync finished',
    );
    this.startOwedGaps();
  }

  // --- gap resync (requester) -------------------------------------------------------

  private startGap(p: Peer): void {
    if (!this.running) return;
    if (this.gaps.has(p.nodeId) || (this.bulk !== null && this.bulk.source === p)) {
      this.gapAgain.add(p.nodeId);
      return;
    }
    const r = this.newRequester('gap', p);
    this.gaps.set(p.nodeId, r);
    this.c.gapResyncs++;
    this.sendRequest(r);
  }

  private startOwedGaps(): void {
    for (const id of [...this.gapAgain]) {
      if (this.gaps.has(id) || (this.bulk !== null && this.bulk.source.nodeId === id)) continue;
      this.gapAgain.delete(id);
      const p = this.peers.get(id);
      if (p) this.startGap(p);
    }
  }

  private gapTimeout(r: Requester): void {
    r.progressTimer = null;
    if (r.closed) return;
    const p = r.source;
    this.closeRequester(r);
    this.gaps.delete(p.nodeId);
    if (r.attempts >= MAX_GAP_ATTEMPTS && !p.alive) {
      this.log('warn', { peer: p.nodeId, epoch: this.epoch }, 'sync gap resync abandoned: sender silent');
      p.ackCap = Infinity;
      return;
    }
    const next = this.newRequester('gap', p);
    next.attempts = r.attempts + 1;
    this.gaps.set(p.nodeId, next);
    this.sendRequest(next);
  }

  private gapFinished(r: Requester): void {
    const p = r.source;
    this.gaps.delete(p.nodeId);
    this.log('info', { peer: p.nodeId, entries: r.entries, ms: this.now() - r.startedAt, epoch: this.epoch }, 'sync gap resync finished');
    if (this.gapAgain.has(p.nodeId)) {
      this.gapAgain.delete(p.nodeId);
      this.startGap(p);
    } else p.ackCap = Infinity;
  }

  // --- requester sessions ---------------------------------------------------------------

  private newRequester(kind: 'bulk' | 'gap', source: Peer): Requester {
    this.sessionCounter++;
    return {
      kind,
      source,
      session: this.sessionCounter * 2 + (kind === 'gap' ? 1 : 0),
      requested: false,
      startedAt: this.now(),
      next: 0,
      got: new Set(),
      lastIndex: -1,
      chunks: 0,
      entries: 0,
      unacked: 0,
      firstChunk: false,
      ackTimer: null,
      progressTimer: null,
      requestTimer: null,
      probeTimer: null,
      touched: new Set(),
      attempts: 0,
      closed: false,
    };
  }

  private sendRequest(r: Requester): void {
    r.requested = true;
    r.startedAt = this.now();
    const body: ResyncRequestBody = { kind: 'resyncRequest', target: r.source.nodeId, session: r.session };
    if (r.source.address !== null) this.send(body, r.source.address);
    // Until the first chunk, resend the same request (a lost request would otherwise cost resyncTimeoutMs).
    const every = this.resyncTimeoutMs / 5;
    const again = (): void => {
      r.requestTimer = null;
      if (r.closed || r.firstChunk) return;
      if (r.source.address !== null) this.send(body, r.source.address);
      r.requestTimer = this.arm(again, every);
    };
    if (r.requestTimer) this.disarm(r.requestTimer);
    r.requestTimer = this.arm(again, every);
    this.resetProgress(r);
  }

  private resetProgress(r: Requester): void {
    if (r.progressTimer) this.disarm(r.progressTimer);
    r.progressTimer = this.arm(() => (r.kind === 'bulk' ? this.bulkWaitTimeout(r) : this.gapTimeout(r)), this.resyncTimeoutMs);
  }

  private closeRequester(r: Requester): void {
    r.closed = true;
    for (const t of [r.ackTimer, r.progressTimer, r.requestTimer, r.probeTimer]) if (t) this.disarm(t);
    r.ackTimer = r.progressTimer = r.requestTimer = r.probeTimer = null;
  }

  private onChunk(p: Peer, b: ResyncChunkBody): void {
    if (b.target !== this.nodeId) {
      this.c.unknownTarget++;
      return;
    }
    let r: Requester | null = null;
    if (this.bulk && !this.bulk.closed && this.bulk.source === p && this.bulk.session === b.session) r = this.bulk;
    const g = this.gaps.get(p.nodeId);
    if (r === null && g && !g.closed && g.session === b.session) r = g;
    if (r === null || !r.requested) {
      const fin = this.finished.get(p.nodeId);
      if (fin && fin.session === b.session && p.address !== null) {
        // Our final ack was lost: tell the responder again that it is done.
        this.send({ kind: 'resyncAck', target: p.nodeId, session: b.session, next: fin.total, received: [] }, p.address);
      } else this.c.staleResync++;
      return;
    }
    r.firstChunk = true;
    // Any chunk of the session shows the source is alive and sending.
    this.resetProgress(r);
    const idx = b.index;
    if (idx < r.next || r.got.has(idx) || idx >= r.next + MAX_CHUNKS_AHEAD) {
      this.scheduleAck(r, true);
      return;
    }
    r.got.add(idx);
    while (r.got.has(r.next)) r.got.delete(r.next++);
    if (b.last) r.lastIndex = idx;
    r.chunks++;
    this.c.resyncChunksReceived++;
    let batch = b.entries;
    if (batch.count > 0) {
      const touched = r.touched;
      const kind = r.kind;
      const bt = this.bulkTouched;
      const bytes = batch.bytes;
      const before = batch.count;
      batch = filterBatch(batch, (i) => {
        const k = syncRecordKey(bytes, i);
        if (kind === 'bulk') return !(bt?.has(k) ?? false);
        if (touched.has(k)) return false;
        bt?.add(k); // the owner's dump beats a third party's (decision 4)
        return true;
      });
      this.count(p, 'superseded', before - batch.count);
      if (batch.count > 0) {
        this.deps.local.inject(batch);
        r.entries += batch.count;
        this.c.entriesReceived += batch.count;
        this.c.resyncEntriesReceived += batch.count;
      }
    }
    if (r.lastIndex >= 0 && r.next > r.lastIndex) {
      this.sendAck(r);
      this.finished.set(p.nodeId, { session: r.session, total: r.next });
      this.closeRequester(r);
      if (r.kind === 'bulk') this.bulkFinished(r);
      else this.gapFinished(r);
      return;
    }
    r.unacked++;
    this.scheduleAck(r, false);
  }

  private scheduleAck(r: Requester, soon: boolean): void {
    if (r.unacked >= ACK_EVERY_CHUNKS) {
      this.sendAck(r);
      return;
    }
    if (r.ackTimer === null) r.ackTimer = this.arm(() => ((r.ackTimer = null), this.sendAck(r)), soon ? 0 : ACK_DELAY_MS);
  }

  private sendAck(r: Requester): void {
    if (r.ackTimer) {
      this.disarm(r.ackTimer);
      r.ackTimer = null;
    }
    r.unacked = 0;
    if (r.closed || r.source.address === null) return;
    const received = [...r.got].sort((a, b) => a - b).slice(0, this.maxAckReceived);
    const body: ResyncAckBody = { kind: 'resyncAck', target: r.source.nodeId, session: r.session, next: r.next, received };
    this.send(body, r.source.address);
    if (r.probeTimer) this.disarm(r.probeTimer);
    r.probeTimer = this.arm(() => {
      r.probeTimer = null;
      this.sendAck(r);
    }, this.chunkResendMs);
  }

  // --- resync responder --------------------------------------------------------------

  private onResyncRequest(p: Peer, b: ResyncRequestBody): void {
    if (b.target !== this.nodeId || p.address === null) {
      this.c.unknownTarget++;
      return;
    }
    const cur = this.responders.get(p.nodeId);
    if (cur && cur.session === b.session) return; // the same request again
    if (this.served.get(p.nodeId) === b.session) return; // already served
    if (cur) this.closeResponder(cur);
    else if (this.responders.size >= MAX_RESPONDER_SESSIONS) {
      this.c.resyncsRefused++;
      this.log('debug', { requester: p.nodeId, session: b.session }, 'sync resync refused: too many sessions');
      return;
    }
    const s: Responder = {
      requester: p,
      requesterIncarnation: p.incarnation,
      to: p.address,
      session: b.session,
      ownOnly: (b.session & 1) === 1,
      chunks: new Map(),
      produced: 0,
      sent: 0,
      next: 0,
      acked: new Set(),
      sentAt: new Map(),
      lastIndex: -1,
      cursor: 0,
      dumping: false,
      dumpDone: false,
      timeouts: 0,
      timer: null,
      entries: 0,
      startedAt: this.now(),
      closed: false,
    };
    this.responders.set(p.nodeId, s);
    this.log('info', { requester: p.nodeId, session: b.session, ownOnly: s.ownOnly, epoch: this.epoch }, 'sync resync serving');
    this.respProgress(s);
    this.pump(s);
  }

  private closeResponder(s: Responder): void {
    s.closed = true;
    if (s.timer) this.disarm(s.timer);
    s.timer = null;
    if (this.responders.get(s.requester.nodeId) === s) this.responders.delete(s.requester.nodeId);
  }

  private respProgress(s: Responder): void {
    if (s.timer) this.disarm(s.timer);
    s.timer = this.arm(() => {
      s.timer = null;
      this.respTimeout(s);
    }, this.resyncTimeoutMs);
  }

  private respTimeout(s: Responder): void {
    if (s.closed) return;
    if (++s.timeouts >= MAX_RESPONDER_TIMEOUTS) {
      this.c.resyncsAbandoned++;
      this.log('warn', { requester: s.requester.nodeId, session: s.session, next: s.next }, 'sync resync abandoned: requester silent');
      this.closeResponder(s);
      return;
    }
    // Resend the unacknowledged ones from `next`.
    const end = Math.min(s.sent, s.next + this.resyncWindow);
    for (let i = s.next; i < end; i++) if (!s.acked.has(i)) this.sendChunk(s, i);
    s.timer = this.arm(() => {
      s.timer = null;
      this.respTimeout(s);
    }, this.resyncTimeoutMs);
    this.pump(s);
  }

  private pump(s: Responder): void {
    if (s.closed || !this.running) return;
    const limit = s.next + this.resyncWindow;
    while (s.sent < s.produced && s.sent < limit) this.sendChunk(s, s.sent++);
    if (!s.dumping && !s.dumpDone && s.sent === s.produced && s.produced - s.next < this.resyncWindow) this.fetchPage(s);
  }

  private fetchPage(s: Responder): void {
    s.dumping = true;
    let page: Promise<{ batch: RecordBatch; next: number }>;
    try {
      page = this.deps.local.dump(s.cursor, this.resyncPageEntries);
    } catch (e) {
      page = Promise.reject(e);
    }
    page.then(
      (pg) => {
        s.dumping = false;
        if (s.closed || !this.running) return;
        try {
          this.onPage(s, pg);
        } catch (e) {
          this.c.handlerErrors++;
          this.log('warn', { err: e instanceof Error ? e.message : String(e) }, 'sync resync page failed');
          this.closeResponder(s);
        }
      },
      (e: unknown) => {
        s.dumping = false;
        if (s.closed) return;
        this.c.resyncsAbandoned++;
        this.log('warn', { requester: s.requester.nodeId, err: e instanceof Error ? e.message : String(e) }, 'sync resync dump failed');
        this.closeResponder(s);
      },
    );
  }

  private onPage(s: Responder, pg: { batch: RecordBatch; next: number }): void {
    let batch = pg.batch;
    if (s.ownOnly && batch.count > 0) {
      const bytes = batch.bytes;
      batch = filterBatch(batch, (i) => (bytes[i * R.SIZE + R.FLAGS]! & SYNC_RECORD_FLAG.SYNCED) === 0);
    }
    const final = pg.next < 0;
    let from = 0;
    while (from < batch.count) {
      const n = this.deps.codec.fit(batch, from);
      s.chunks.set(s.produced++, slice(batch, from, n));
      from += n;
    }
    s.entries += batch.count;
    if (final) {
      if (batch.count === 0) s.chunks.set(s.produced++, { bytes: new Uint8Array(0), count: 0 });
      s.lastIndex = s.produced - 1;
      s.dumpDone = true;
    } else s.cursor = pg.next;
    this.pump(s);
  }

  private sendChunk(s: Responder, i: number): void {
    const entries = s.chunks.get(i);
    if (entries === undefined) return;
    const body: ResyncChunkBody = { kind: 'resyncChunk', target: s.requester.nodeId, session: s.session, index: i, last: i === s.lastIndex, entries };
    this.send(body, s.to);
    s.sentAt.set(i, this.now());
    this.c.resyncChunksSent++;
    this.c.resyncEntriesSent += entries.count;
  }

  private onResyncAck(p: Peer, b: ResyncAckBody): void {
    if (b.target !== this.nodeId) {
      this.c.unknownTarget++;
      return;
    }
    const s = this.responders.get(p.nodeId);
    if (s === undefined || s.session !== b.session) {
      this.c.staleResync++;
      return;
    }
    let progress = false;
    const next = Math.min(b.next, s.produced);
    if (next > s.next) {
      for (let i = s.next; i < next; i++) {
        s.chunks.delete(i);
        s.acked.delete(i);
        s.sentAt.delete(i);
      }
      s.next = next;
      if (s.sent < next) s.sent = next;
      progress = true;
    }
    for (const i of b.received) {
      if (i >= s.next && i < s.sent && !s.acked.has(i)) {
        s.acked.add(i);
        progress = true;
      }
    }
    while (s.acked.has(s.next)) {
      s.acked.delete(s.next);
      s.chunks.delete(s.next);
      s.sentAt.delete(s.next);
      s.next++;
    }
    if (s.lastIndex >= 0 && s.next > s.lastIndex) {
      this.count(p, 'resyncsServed');
      this.served.set(p.nodeId, s.session);
      this.log('info', { requester: p.nodeId, session: s.session, entries: s.entries, chunks: s.produced, ms: this.now() - s.startedAt }, 'sync resync served');
      this.closeResponder(s);
      return;
    }
    if (progress) {
      s.timeouts = 0;
      this.respProgress(s);
    }
    // Selective resend: what the requester still lacks and we sent long enough ago.
    const now = this.now();
    const end = Math.min(s.sent, s.next + this.resyncWindow);
    for (let i = s.next; i < end; i++) {
      if (!s.acked.has(i) && (s.sentAt.get(i) ?? -Infinity) + this.chunkResendMs <= now) this.sendChunk(s, i);
    }
    this.pump(s);
  }

  // --- status ---------------------------------------------------------------------------

  /** Counters and per-peer state as plain JSON (SyncStatus). */
  status(): SyncStatus {
    const now = this.now();
    const peers: SyncPeerStatus[] = [];
    for (const p of [...this.peers.values()].sort((a, b) => a.nodeId - b.nodeId)) {
      const contiguous = this.eff(p);
      const missing = Math.max(0, p.known - contiguous - p.above.countIn(contiguous + 1, p.known));
      peers.push({
        nodeId: p.nodeId,
        address: addr(p.address),
        incarnation: p.incarnation,
        alive: p.alive,
        lastHeardMs: p.lastHeard === -Infinity ? -1 : now - p.lastHeard,
        epoch: p.epoch,
        synced: p.synced,
        lastDataSeq: p.known,
        contiguous,
        missing,
        acked: p.ackedUs,
        behind: Math.max(0, this.dataSeq - p.ackedUs),
        ...p.n,
      });
    }
    let ring = 0;
    for (let ds = this.oldestDataSeq(); ds >= 1 && ds <= this.dataSeq; ds++) if (this.ringGet(ds) !== null) ring++;
    return {
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      epoch: this.epoch,
      synced: this.isSynced,
      dataSeq: this.dataSeq,
      oldestDataSeq: this.oldestDataSeq(),
      ringDatagrams: ring,
      pendingEntries: this.pending.count,
      ...this.c,
      resyncActive: this.bulkPhase === 'discovery' || this.bulkPhase === 'fetching',
      resyncSource: this.bulk !== null && !this.bulk.closed ? this.bulk.source.nodeId : 0,
      resyncServing: this.responders.size,
      peers,
    };
  }

  // --- helpers --------------------------------------------------------------------------

  private now(): number {
    return this.deps.timers.clock.now();
  }

  private arm(fn: () => void, ms: number): Armed {
    const a: Armed = { handle: null };
    a.handle = this.deps.timers.setTimeout(() => {
      this.armed.delete(a);
      if (!this.running) return;
      try {
        fn();
      } catch (e) {
        this.c.handlerErrors++;
        this.log('warn', { err: e instanceof Error ? e.message : String(e) }, 'sync timer handler failed');
      }
    }, Math.max(0, ms));
    this.armed.add(a);
    return a;
  }

  private disarm(a: Armed): void {
    if (!this.armed.delete(a)) return;
    this.deps.timers.clearTimeout(a.handle);
  }

  private log(level: 'info' | 'warn' | 'debug', o: object, m: string): void {
    this.deps.log?.[level]({ nodeId: this.nodeId, ...o }, m);
  }
}
