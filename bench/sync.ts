/**
 * Connection-sync benchmark:
 *   npm run bench:sync [-- --json] [-- --quick] [-- --window N] [-- --reps N]
 *                      [-- --parts codec,synced,lag,resync] [-- --verbose]
 * Method, results and limits: docs/bench-sync.md.
 *
 * Everything runs in this one process, without root, over 127.0.0.1: it
 * measures saru-syncd's parts (sync/codec.ts, sync/node.ts,
 * sync/transport.ts) against saru's real data plane tables
 * (saru/dataplane.ts with a MemoryPort), never a daemon.
 *
 * Workload: N connection entries (1,000,000; --quick 100,000) as saru
 * raises them: TCP to one VIP:80 with 3 real servers (DR), distinct random
 * clients from a /16 (IPv4) or a /64 (IPv6) with ephemeral ports
 * 32768..60999, ESTABLISHED, 900 s remaining timeout. Seeded: every run
 * syncs the same entries.
 *
 * 1. Codec: encodeAll() of the N records into full 1472-byte datagrams
 *    (fit + protobuf encode + HMAC-SHA256), then decode() of every datagram
 *    (HMAC check + decode to 72-byte records), checked byte for byte against
 *    the input. Wire bytes per entry = every datagram byte (header, dest
 *    dictionary, columns, 32-byte tag) / entries. Median of --reps timed
 *    passes (default 3) after a warm-up pass on 5% of the records.
 * 2. Synced entries/s: SyncNodes A and B with the default settings, each on
 *    its own UdpSyncTransport (unicast peers mode on lo, two ports), each
 *    with a Dataplane (2^21-entry table) as its SyncLocal. The N records go
 *    to A.submit() in batches of 1,024 (saru's SYNC_BATCH_RECORDS),
 *    yielding to the event loop (setImmediate) after each batch and keeping
 *    at most --window entries (default 65,536; 0: none) submitted but not
 *    yet in B's table. After an untimed warm-up of N/20 other entries
 *    (JIT), timed from the first submit until B's table holds all N; the
 *    process's CPU time and its main thread's (/proc/self/task/PID/schedstat:
 *    on-CPU and run-queue wait, which shows a run disturbed by other load)
 *    over the same interval. One JavaScript thread runs both directors:
 *    the sender's and the receiver's work share one core. NACKs,
 *    retransmissions and gaps come from both nodes' status().
 * 3. Sync lag: the same A and B; 200 batches/s of 100 records (20,000
 *    entries/s) for 5 s (--quick 2 s), then single records at 50/s for 5 s
 *    (--quick 2 s). Lag of an entry = the moment B's dataplane.injectRecords
 *    returned with it minus the moment its batch was given to A.submit()
 *    (performance.now(), one clock). It includes the flush interval (10 ms)
 *    for records that wait for a partly filled datagram.
 * 4. Resync: a Dataplane (2^21-entry table) with the N entries imported
 *    directly is A's table; A runs alone until synced; then a fresh B with
 *    an empty table starts (discovery, then a bulk resync from A). Timed
 *    from the ResyncRequest B sends (found by decoding B's outgoing
 *    datagrams until it appears) until local.ready(true) was called and B's
 *    table holds all N. The time from B.start() (discovery included) is
 *    printed too.
 *
 * Not included anywhere: saru's own work before an entry reaches syncd
 * (sync events, its 5 ms batching) and the control-socket hops between
 * saru and saru-syncd on both sides (A.submit() and B's inject() call the
 * data plane directly).
 *
 * Prints a table on stdout (metric, Saru, kernel IPVS sync v1, target,
 * met?), progress on stderr, and with --json one JSON object on the last
 * line (bytes_per_ipv4_entry, bytes_per_ipv6_entry, entries_per_datagram,
 * entries_per_s, lag_ms_p99, resync_1m_s and the rest; resync_1m_s is null
 * in a --quick run, whose linear extrapolation is resync_1m_s_extrapolated).
 * Percentiles are nearest-rank. Exit status 1 when a check failed (the
 * codec's round trip, B not reaching N entries within 120 s), 0 otherwise,
 * whether or not the targets are met. Opens two UDP sockets on 127.0.0.1 at
 * a time (ports chosen by the kernel) and touches nothing else.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import {
  ConnSnapshot,
  Fwd,
  IpAddress,
  ManualClock,
  Proto,
  SYNC_RECORD,
  Sense,
  TcpState,
  processClock,
  syncRecordView,
  writeSyncRecord,
  type ServiceInitPair,
} from '../core/index.js';
import { MemoryPort } from '../native/index.js';
import { Dataplane } from '../saru/dataplane.js';
import { Prng } from '../saru/index.js';
import { SyncCodec, encodeAll, DEFAULT_MAX_DATAGRAM_BYTES } from '../sync/codec.js';
import { SyncNode, type SyncLog, type SyncStatus } from '../sync/node.js';
import { UdpSyncTransport } from '../sync/transport.js';
import type { PeerAddress, RecordBatch, SyncLocal, SyncTimers, SyncTransport } from '../sync/types.js';
import { machine, median, table } from './common.js';

const R = SYNC_RECORD;
/** saru's sync batch (saru/dataplane.ts SYNC_BATCH_RECORDS). */
const SUBMIT_BATCH = 1024;
/** Connection table of each director: 2^21 entries (1,000,000 entries fill it to under half). */
const TABLE_SIZE = 1 << 21;
const TIMEOUT_MS = 900_000;
const VIP4 = '198.18.0.100';
const RIPS4 = ['198.18.0.101', '198.18.0.102', '198.18.0.103'];
/** Clients: 100.64.0.0/16 (the warm-up's: 100.65.0.0/16, so that they add to the table, never update it). */
const CLIENT_NET4 = 0x64400000;
const WARM_NET4 = 0x64410000;
const VIP6 = '2001:db8::100';
const RIPS6 = ['2001:db8::101', '2001:db8::102', '2001:db8::103'];
/** Clients: 2001:db8:c::/64. */
const CLIENT_NET6 = IpAddress.parse('2001:db8:c::').words;
const PORT_LO = 32768;
const PORT_SPAN = 60999 - 32768 + 1;
/** How long B may take to hold every entry before the part fails, ms. */
const DONE_LIMIT_MS = 120_000;

// The issue's targets.
const TARGET_BYTES_V4 = 24;
const TARGET_ENTRIES_PER_S = 1_000_000;
const TARGET_LAG_P99_MS = 50;
const TARGET_RESYNC_1M_S = 3;

// The kernel's sync message v1 (net/netfilter/ipvs/ip_vs_sync.c): struct ip_vs_sync_v4 is 36 bytes,
// ip_vs_sync_v6 72, struct ip_vs_sync_mesg (the header) 8; a message fills at most 1472 bytes on a
// 1500-byte MTU: 40 IPv4 entries (8 + 40 * 36 = 1448) or 20 IPv6 entries (8 + 20 * 72 = 1448).
const K_V4 = 36;
const K_V6 = 72;
const K_HDR = 8;
const K_PER_DGRAM_V4 = Math.floor((DEFAULT_MAX_DATAGRAM_BYTES - K_HDR) / K_V4);
const K_PER_DGRAM_V6 = Math.floor((DEFAULT_MAX_DATAGRAM_BYTES - K_HDR) / K_V6);

// ---- options ---------------------------------------------------------------------

interface Options {
  json: boolean;
  quick: boolean;
  entries: number;
  /** Entries submitted to A but not yet in B's table, at most (0: no window). */
  window: number;
  reps: number;
  lagSeconds: number;
  parts: Set<Part>;
  verbose: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      window: { type: 'string' },
      reps: { type: 'string' },
      parts: { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined, dflt: number, lo: number, hi: number): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer ${lo}..${hi}, got "${v}"`);
    return n;
  };
  const quick = values.quick === true;
  const parts = new Set<Part>();
  for (const p of (values.parts ?? PARTS.join(',')).split(',')) {
    if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--parts takes a comma-separated list of ${PARTS.join(', ')}; got "${p}"`);
    parts.add(p as Part);
  }
  return {
    json: values.json === true,
    quick,
    entries: quick ? 100_000 : 1_000_000,
    window: num('window', values.window, 65_536, 0, 10_000_000),
    reps: num('reps', values.reps, quick ? 1 : 3, 1, 20),
    lagSeconds: quick ? 2 : 5,
    parts,
    verbose: values.verbose === true,
  };
}

// ---- small helpers -----------------------------------------------------------------

const progress = (line: string): void => {
  process.stderr.write(`bench:sync: ${line}\n`);
};

/** Nearest-rank percentile (q in (0, 1]): the ceil(q * n)-th smallest value; NaN for none. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A number for the JSON (null when not measured). */
function jnum(n: number, digits = 0): number | null {
  return Number.isFinite(n) ? Number(n.toFixed(digits)) : null;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * This process's main (JavaScript) thread from /proc/self/task/PID/schedstat:
 * ns on a CPU and ns waiting for one on a run queue (NaN when the kernel lacks
 * schedstat). Both directors run on this thread; GC helper threads and libuv
 * are not in it.
 */
function mainThreadSched(): { cpuNs: number; waitNs: number } {
  try {
    const f = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(/\s+/);
    return { cpuNs: Number(f[0]), waitNs: Number(f[1]) };
  } catch {
    return { cpuNs: NaN, waitNs: NaN };
  }
}

/** CPU use over an interval: the process (all threads, user + system) and its main thread, ms. */
class CpuMeter {
  private readonly proc0 = process.cpuUsage();
  private readonly main0 = mainThreadSched();
  private readonly t0 = performance.now();

  read(): { wallMs: number; processMs: number; mainMs: number; mainWaitMs: number } {
    const p = process.cpuUsage(this.proc0);
    const m = mainThreadSched();
    return {
      wallMs: performance.now() - this.t0,
      processMs: (p.user + p.system) / 1000,
      mainMs: (m.cpuNs - this.main0.cpuNs) / 1e6,
      mainWaitMs: (m.waitNs - this.main0.waitNs) / 1e6,
    };
  }
}

/** A UDP port on 127.0.0.1 free a moment ago (the kernel's choice). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => res());
  });
  const port = s.address().port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

// ---- workload ----------------------------------------------------------------------

/**
 * `n` distinct TCP connection entries as saru raises them (see the module
 * comment), family 4 or 6, from a seeded PRNG.
 */
function workload(n: number, family: 4 | 6, seed: number, clientNet4 = CLIENT_NET4): RecordBatch {
  const rnd = new Prng(seed);
  const bytes = new Uint8Array(n * R.SIZE);
  const view = syncRecordView(bytes);
  const s = new ConnSnapshot();
  const vip = IpAddress.parse(family === 4 ? VIP4 : VIP6).words;
  const rips = (family === 4 ? RIPS4 : RIPS6).map((a) => IpAddress.parse(a).words);
  s.family = family;
  s.dfamily = family;
  s.protocol = Proto.TCP;
  s.vaddr.set(vip);
  s.vport = 80;
  s.dport = 80;
  s.fwd = Fwd.DR;
  s.state = TcpState.ESTABLISHED;
  s.timeoutMs = TIMEOUT_MS;
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (family === 4) {
      let host: number;
      let port: number;
      do {
        host = rnd.u32() & 0xffff;
        port = PORT_LO + (rnd.u32() % PORT_SPAN);
      } while (seen.has(host * PORT_SPAN + port - PORT_LO));
      seen.add(host * PORT_SPAN + port - PORT_LO);
      s.caddr[0] = 0;
      s.caddr[1] = 0;
      s.caddr[2] = 0xffff;
      s.caddr[3] = (clientNet4 | host) >>> 0;
      s.cport = port;
    } else {
      // 64 random host bits: a repeat among 10^6 has a probability of about 3e-8.
      s.caddr[0] = CLIENT_NET6[0]!;
      s.caddr[1] = CLIENT_NET6[1]!;
      s.caddr[2] = rnd.u32();
      s.caddr[3] = rnd.u32();
      s.cport = PORT_LO + (rnd.u32() % PORT_SPAN);
    }
    s.daddr.set(rips[rnd.u32() % 3]!);
    writeSyncRecord(view, i, s);
  }
  return { bytes, count: n };
}

/** Records [from, from + n) of `batch`, no copy. */
function sub(batch: RecordBatch, from: number, n: number): RecordBatch {
  return { bytes: batch.bytes.subarray(from * R.SIZE, (from + n) * R.SIZE), count: n };
}

/** The lag key of record `i`: client IPv4 address and port (distinct within a workload). */
function lagKey(bytes: Uint8Array, i: number): number {
  const o = i * R.SIZE;
  const a = ((bytes[o + R.CADDR + 12]! << 24) | (bytes[o + R.CADDR + 13]! << 16) | (bytes[o + R.CADDR + 14]! << 8) | bytes[o + R.CADDR + 15]!) >>> 0;
  return a * 65536 + (bytes[o + R.CPORT]! | (bytes[o + R.CPORT + 1]! << 8));
}

// ---- part 1: codec -------------------------------------------------------------------

interface CodecResult {
  family: 4 | 6;
  entries: number;
  datagrams: number;
  bytes: number;
  bytesPerEntry: number;
  entriesPerDatagram: number;
  encodePerS: number;
  decodePerS: number;
  /** Timed passes, entries/s. */
  encodeRuns: number[];
  decodeRuns: number[];
  roundTrip: boolean;
}

function codecPart(key: Uint8Array, batch: RecordBatch, family: 4 | 6, reps: number): CodecResult {
  const codec = new SyncCodec({ key });
  const header = { nodeId: 1, incarnation: Date.now(), seq: 1, epoch: 1 };
  // Warm-up on 5% of the records (JIT), not timed.
  const warm = encodeAll(codec, header, sub(batch, 0, Math.max(1, Math.floor(batch.count / 20))));
  for (const d of warm.datagrams) codec.decode(d);
  const encodeRuns: number[] = [];
  const decodeRuns: number[] = [];
  let datagrams: Uint8Array[] = [];
  let bytes = 0;
  let roundTrip = true;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const enc = encodeAll(codec, header, batch);
    const t1 = performance.now();
    encodeRuns.push(batch.count / ((t1 - t0) / 1000));
    datagrams = enc.datagrams;
    bytes = enc.bytes;
    const out: RecordBatch[] = new Array<RecordBatch>(datagrams.length);
    const t2 = performance.now();
    for (let i = 0; i < datagrams.length; i++) {
      const res = codec.decode(datagrams[i]!);
      if (!res.ok || res.msg.body.kind !== 'entries') {
        roundTrip = false;
        break;
      }
      out[i] = res.msg.body.entries;
    }
    const t3 = performance.now();
    decodeRuns.push(batch.count / ((t3 - t2) / 1000));
    // Not timed: the decoded records equal the input byte for byte (timeout 900 s is a whole
    // number of 100 ms units; packets and the synced flag are 0 in the input).
    let at = 0;
    for (const b of out) {
      if (b === undefined) {
        roundTrip = false;
        break;
      }
      if (Buffer.compare(Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.count * R.SIZE), Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset + at * R.SIZE, b.count * R.SIZE)) !== 0) {
        roundTrip = false;
      }
      at += b.count;
    }
    if (at !== batch.count) roundTrip = false;
    progress(
      `codec IPv${family} pass ${r + 1}/${reps}: ${fmt(encodeRuns[r]!)} encoded/s, ${fmt(decodeRuns[r]!)} decoded/s, ${datagrams.length} datagrams, round trip ${roundTrip ? 'ok' : 'FAILED'}`,
    );
  }
  return {
    family,
    entries: batch.count,
    datagrams: datagrams.length,
    bytes,
    bytesPerEntry: bytes / batch.count,
    entriesPerDatagram: batch.count / datagrams.length,
    encodePerS: median(encodeRuns),
    decodePerS: median(decodeRuns),
    encodeRuns,
    decodeRuns,
    roundTrip,
  };
}

// ---- directors -------------------------------------------------------------------------

function services(): ServiceInitPair[] {
  return [
    {
      service: { protocol: Proto.TCP, address: VIP4, port: 80, scheduler: 'wrr' },
      realServers: RIPS4.map((address) => ({ address, port: 80, weight: 1, fwd: Fwd.DR })),
    },
  ];
}

/** A director's data plane as saru runs it, minus the thread and the packet socket. */
function dataplane(): Dataplane {
  const port = new MemoryPort({ ifname: 'mem0', mac: '02:5a:52:55:00:01', mtu: 1500 });
  return new Dataplane(
    {
      buckets: 1024,
      sense: Sense.SRC_PORT,
      owned: [...Array(1024).keys()],
      epoch: 1,
      services: services(),
      connTableSize: TABLE_SIZE,
      midFlow: 'drop',
      batchSize: 64,
      socketFilter: false,
    },
    { port, clock: new ManualClock(1000) },
  );
}

/** The SyncLocal of one director: its Dataplane, with hooks for the measurements. */
class DirectorTable implements SyncLocal {
  readonly dp = dataplane();
  /** Entries injected (every outcome). */
  injected = 0;
  rejected = 0;
  /** performance.now() of the last ready(true), or NaN. */
  readyAt = NaN;
  /** Called after each inject with the batch (the entries are in the table by then). */
  onInject: ((batch: RecordBatch, now: number) => void) | null = null;

  get size(): number {
    return this.dp.engine.table.size;
  }

  inject(batch: RecordBatch): void {
    const r = this.dp.injectRecords(batch.bytes.subarray(0, batch.count * R.SIZE), batch.count);
    this.injected += batch.count;
    this.rejected += r.rejected;
    this.onInject?.(batch, performance.now());
  }

  dump(cursor: number, max: number): Promise<{ batch: RecordBatch; next: number }> {
    const p = this.dp.dumpRecords(cursor, max);
    return Promise.resolve({ batch: { bytes: p.bytes, count: p.count }, next: p.next });
  }

  ready(synced: boolean): void {
    if (synced) this.readyAt = performance.now();
  }
}

const timers: SyncTimers = {
  clock: processClock,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

function logger(verbose: boolean, who: string): SyncLog & { info(o: object, m?: string): void } {
  const line = (level: string, o: object, m?: string): void => progress(`${who} ${level}: ${m ?? ''} ${JSON.stringify(o)}`);
  return {
    info: (o, m) => verbose && line('info', o, m),
    debug: (o, m) => verbose && line('debug', o, m),
    warn: (o, m) => line('warn', o, m),
  };
}

/** One director's syncd: node + UDP transport (unicast peers on lo) + its table. */
interface Director {
  name: string;
  node: SyncNode;
  transport: UdpSyncTransport;
  table: DirectorTable;
  /** The transport the node sends through (a wrapper may watch it). */
  sends: { onSendTo: ((bytes: Uint8Array) => void) | null };
}

async function director(
  name: string,
  nodeId: number,
  key: Uint8Array,
  ownPort: number,
  peerPort: number,
  table: DirectorTable,
  verbose: boolean,
): Promise<Director> {
  const log = logger(verbose, name);
  let node: SyncNode | null = null;
  const transport = new UdpSyncTransport(
    { ifname: 'lo', group: '239.0.0.81', port: ownPort, peers: [{ address: '127.0.0.1', port: peerPort }] },
    { onMessage: (bytes, from) => node?.receive(bytes, from), log },
  );
  const sends: Director['sends'] = { onSendTo: null };
  const watched: SyncTransport = {
    broadcast: (bytes) => transport.broadcast(bytes),
    sendTo: (bytes: Uint8Array, to: PeerAddress) => {
      sends.onSendTo?.(bytes);
      transport.sendTo(bytes, to);
    },
  };
  node = new SyncNode({ nodeId, incarnation: Date.now() + nodeId }, { codec: new SyncCodec({ key }), transport: watched, local: table, timers, log });
  await transport.start();
  return { name, node, transport, table, sends };
}

async function stopDirector(d: Director): Promise<void> {
  d.node.stop();
  await d.transport.stop();
}

/** Wait until `cond()` holds (checked every `everyMs`), at most `limitMs`; true when it held. */
async function until(cond: () => boolean, limitMs: number, everyMs = 5): Promise<boolean> {
  const end = performance.now() + limitMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

/** The reliability counters of both sides that say whether anything was lost on the way. */
function lossCounters(a: SyncStatus, b: SyncStatus): Record<string, number> {
  return {
    datagrams_sent: a.datagramsSent,
    gaps: b.gaps,
    nacks: b.nacksSent,
    retransmitted: a.retransmitted,
    unrecoverable: b.unrecoverable,
    gap_resyncs: b.gapResyncs,
    duplicates: b.duplicates,
    auth_failures: b.authFailures,
  };
}

// ---- part 2: synced entries/s ----------------------------------------------------------

interface ThroughputResult {
  entries: number;
  ms: number;
  perS: number;
  /** CPU over the timed interval (from the first submit until B held every entry). */
  cpu: ReturnType<CpuMeter['read']>;
  /** Entries per second of main-thread CPU time (both directors' work). */
  perMainCpuS: number;
  complete: boolean;
  bTableSize: number;
  /** Entries not in B's table at the end (0 when complete). */
  missing: number;
  loss: Record<string, number>;
  recvBufferBytes: number;
}

/**
 * Submit `batch` to A in SUBMIT_BATCH pieces, yielding after each and
 * keeping at most `window` entries (0: no limit) submitted but not yet in
 * B's table; resolves when B's table has grown by batch.count (or after
 * DONE_LIMIT_MS).
 */
async function pump(a: Director, b: Director, batch: RecordBatch, window: number, report: boolean): Promise<ThroughputResult> {
  const n = batch.count;
  const base = b.table.injected;
  const target = b.table.size + n;
  let doneAt = NaN;
  let cpu: ReturnType<CpuMeter['read']> | null = null;
  const meter = new CpuMeter();
  const t0 = performance.now();
  b.table.onInject = (_batch, now) => {
    if (Number.isNaN(doneAt) && b.table.size >= target) {
      doneAt = now;
      cpu = meter.read();
    }
  };
  let lastReport = t0;
  for (let from = 0; from < n; from += SUBMIT_BATCH) {
    a.node.submit(sub(batch, from, Math.min(SUBMIT_BATCH, n - from)));
    await yieldLoop();
    if (window > 0) {
      while (from + SUBMIT_BATCH - (b.table.injected - base) > window) await yieldLoop();
    }
    const now = performance.now();
    if (report && now - lastReport > 1000) {
      lastReport = now;
      progress(`  ${fmt(from + SUBMIT_BATCH)} submitted, ${fmt(b.table.injected - base)} in B (${fmt(((b.table.injected - base) / (now - t0)) * 1000)}/s)`);
    }
  }
  const complete = await until(() => !Number.isNaN(doneAt), DONE_LIMIT_MS, 1);
  b.table.onInject = null;
  const used = cpu ?? meter.read();
  const ms = (complete ? doneAt : performance.now()) - t0;
  return {
    entries: n,
    ms,
    perS: complete ? n / (ms / 1000) : NaN,
    cpu: used,
    perMainCpuS: complete ? n / (used.mainMs / 1000) : NaN,
    complete,
    bTableSize: b.table.size,
    missing: Math.max(0, target - b.table.size),
    loss: lossCounters(a.node.status(), b.node.status()),
    recvBufferBytes: b.transport.counters().recvBufferBytes,
  };
}

// ---- part 3: lag -----------------------------------------------------------------------

interface LagResult {
  rate: number;
  batchRecords: number;
  seconds: number;
  samples: number;
  expected: number;
  p50: number;
  p99: number;
  max: number;
}

async function lagPart(a: Director, b: Director, batch: RecordBatch, batchRecords: number, batchesPerS: number, seconds: number): Promise<LagResult> {
  const nBatches = Math.min(Math.floor(batchesPerS * seconds), Math.floor(batch.count / batchRecords));
  const stamps = new Map<number, number>();
  const lags: number[] = [];
  b.table.onInject = (got, now) => {
    for (let i = 0; i < got.count; i++) {
      const k = lagKey(got.bytes, i);
      const t = stamps.get(k);
      if (t !== undefined) {
        lags.push(now - t);
        stamps.delete(k);
      }
    }
  };
  const interval = 1000 / batchesPerS;
  const t0 = performance.now();
  let k = 0;
  while (k < nBatches) {
    const due = Math.min(nBatches, Math.floor((performance.now() - t0) / interval) + 1);
    while (k < due) {
      const part = sub(batch, k * batchRecords, batchRecords);
      const now = performance.now();
      for (let i = 0; i < part.count; i++) stamps.set(lagKey(part.bytes, i), now);
      a.node.submit(part);
      k++;
    }
    await sleep(1);
  }
  await until(() => stamps.size === 0, 2000, 1);
  b.table.onInject = null;
  const sorted = lags.sort((x, y) => x - y);
  return {
    rate: batchRecords * batchesPerS,
    batchRecords,
    seconds,
    samples: sorted.length,
    expected: nBatches * batchRecords,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

// ---- part 4: resync --------------------------------------------------------------------

interface ResyncResult {
  entries: number;
  /** From B's ResyncRequest to ready(true) and all entries in B's table, ms. */
  ms: number;
  /** From B.start() (discovery included), ms. */
  fromStartMs: number;
  readyMs: number;
  complete: boolean;
  bTableSize: number;
  chunksSent: number;
  chunksReceived: number;
  /** CPU from the request to the end. */
  cpu: ReturnType<CpuMeter['read']>;
}

async function resyncPart(key: Uint8Array, batch: RecordBatch, verbose: boolean): Promise<ResyncResult> {
  const n = batch.count;
  const aTable = new DirectorTable();
  for (let from = 0; from < n; from += 8192) {
    const part = sub(batch, from, Math.min(8192, n - from));
    aTable.dp.injectRecords(part.bytes, part.count);
  }
  if (aTable.size !== n) throw new Error(`A's table holds ${aTable.size} entries after importing ${n}`);
  const bTable = new DirectorTable();
  const portA = await freePort();
  const portB = await freePort();
  const a = await director('A', 1, key, portA, portB, aTable, verbose);
  let b: Director | null = null;
  try {
    a.node.start();
    if (!(await until(() => a.node.synced, 10_000))) throw new Error('A alone did not declare itself synced within 10 s');
    b = await director('B', 2, key, portB, portA, bTable, verbose);
    const probe = new SyncCodec({ key });
    let requestAt = NaN;
    let meter: CpuMeter | null = null;
    b.sends.onSendTo = (bytes) => {
      const r = probe.decode(bytes);
      if (r.ok && r.msg.body.kind === 'resyncRequest') {
        requestAt = performance.now();
        meter = new CpuMeter();
        b!.sends.onSendTo = null;
      }
    };
    let fullAt = NaN;
    bTable.onInject = (_batch, now) => {
      if (Number.isNaN(fullAt) && bTable.size >= n) fullAt = now;
    };
    const started = performance.now();
    b.node.start();
    const complete = await until(() => !Number.isNaN(bTable.readyAt) && !Number.isNaN(fullAt), DONE_LIMIT_MS, 1);
    const cpu = (meter as CpuMeter | null)?.read() ?? new CpuMeter().read();
    const end = Math.max(bTable.readyAt, fullAt);
    const sa = a.node.status();
    const sb = b.node.status();
    return {
      entries: n,
      ms: complete ? end - requestAt : NaN,
      fromStartMs: complete ? end - started : NaN,
      readyMs: bTable.readyAt - requestAt,
      complete,
      bTableSize: bTable.size,
      chunksSent: sa.resyncChunksSent,
      chunksReceived: sb.resyncChunksReceived,
      cpu,
    };
  } finally {
    if (b) await stopDirector(b);
    await stopDirector(a);
  }
}

// ---- main --------------------------------------------------------------------------------

const PARTS = ['codec', 'synced', 'lag', 'resync'] as const;
type Part = (typeof PARTS)[number];

interface Results {
  c4: CodecResult | null;
  c6: CodecResult | null;
  tp: ThroughputResult | null;
  lagHigh: LagResult | null;
  lagLow: LagResult | null;
  /** Reliability counters of A and B after parts 2 and 3. */
  loss: Record<string, number> | null;
  rs: ResyncResult | null;
}

async function run(opt: Options, key: Uint8Array): Promise<Results> {
  const N = opt.entries;
  const res: Results = { c4: null, c6: null, tp: null, lagHigh: null, lagLow: null, loss: null, rs: null };
  progress('building the workload');
  const v4 = workload(N, 4, 0x5a52);

  if (opt.parts.has('codec')) {
    res.c4 = codecPart(key, v4, 4, opt.reps);
    res.c6 = codecPart(key, workload(N, 6, 0x5a56), 6, opt.reps);
  }

  if (opt.parts.has('synced') || opt.parts.has('lag')) {
    progress('two directors on 127.0.0.1: starting');
    const portA = await freePort();
    const portB = await freePort();
    const a = await director('A', 1, key, portA, portB, new DirectorTable(), opt.verbose);
    const b = await director('B', 2, key, portB, portA, new DirectorTable(), opt.verbose);
    try {
      a.node.start();
      b.node.start();
      if (!(await until(() => a.node.synced && b.node.synced, 10_000))) throw new Error('A and B did not become synced within 10 s');
      // Warm-up (JIT) through the same path, not timed: 5% as many entries, other clients.
      const warm = await pump(a, b, workload(Math.ceil(N / 20), 4, 0x3a3a, WARM_NET4), opt.window, false);
      progress(`  warm-up: ${fmt(warm.entries)} entries at ${fmt(warm.perS)}/s`);
      if (opt.parts.has('synced')) {
        progress(`synced entries/s: ${fmt(N)} entries to A in batches of ${SUBMIT_BATCH}, window ${opt.window || 'none'}`);
        const tp = (res.tp = await pump(a, b, v4, opt.window, true));
        progress(
          `  ${tp.complete ? `${fmt(tp.perS)} entries/s (${fmt(tp.ms)} ms)` : `INCOMPLETE: B holds ${tp.bTableSize}`}; CPU ms: process ${fmt(tp.cpu.processMs)}, main thread ${fmt(tp.cpu.mainMs)} (${fmt(tp.perMainCpuS)} entries per main-thread CPU-s), main thread waiting for a CPU ${fmt(tp.cpu.mainWaitMs)}; ${JSON.stringify(tp.loss)}`,
        );
      }
      if (opt.parts.has('lag')) {
        const lagWork = workload(Math.max(200_000, 100 * 200 * opt.lagSeconds), 4, 0x1a9);
        progress(`lag at 20,000 entries/s (200 batches/s of 100) for ${opt.lagSeconds} s`);
        const hi = (res.lagHigh = await lagPart(a, b, lagWork, 100, 200, opt.lagSeconds));
        progress(`  p50 ${fmt(hi.p50, 2)} ms, p99 ${fmt(hi.p99, 2)} ms, max ${fmt(hi.max, 2)} ms (${hi.samples}/${hi.expected})`);
        progress(`lag at 50 entries/s (single records) for ${opt.lagSeconds} s`);
        const lo = (res.lagLow = await lagPart(a, b, sub(lagWork, 150_000, 50_000), 1, 50, opt.lagSeconds));
        progress(`  p50 ${fmt(lo.p50, 2)} ms, p99 ${fmt(lo.p99, 2)} ms, max ${fmt(lo.max, 2)} ms (${lo.samples}/${lo.expected})`);
      }
    } finally {
      await stopDirector(b);
      await stopDirector(a);
    }
    res.loss = lossCounters(a.node.status(), b.node.status());
  }

  if (opt.parts.has('resync')) {
    progress(`resync of ${fmt(N)} entries: A's table filled, A alone until synced, then a fresh B`);
    const rs = (res.rs = await resyncPart(key, v4, opt.verbose));
    progress(
      `  ${rs.complete ? `${fmt(rs.ms)} ms from the request (${fmt(rs.fromStartMs)} ms from B.start())` : `INCOMPLETE: B holds ${rs.bTableSize}`}, chunks sent ${rs.chunksSent}, received ${rs.chunksReceived}; CPU ms: process ${fmt(rs.cpu.processMs)}, main thread ${fmt(rs.cpu.mainMs)}, main thread waiting ${fmt(rs.cpu.mainWaitMs)}`,
    );
  }
  return res;
}

/** What failed among the checks (empty: none). */
function failures(r: Results): string[] {
  const f: string[] = [];
  if (r.c4 && !r.c4.roundTrip) f.push('IPv4 codec round trip');
  if (r.c6 && !r.c6.roundTrip) f.push('IPv6 codec round trip');
  if (r.tp && !r.tp.complete) f.push(`synced: ${r.tp.missing} entries missing from B's table after ${DONE_LIMIT_MS / 1000} s`);
  for (const l of [r.lagHigh, r.lagLow]) if (l && l.samples !== l.expected) f.push(`lag at ${l.rate}/s: ${l.samples} of ${l.expected} entries arrived`);
  if (r.rs && !r.rs.complete) f.push(`resync: B holds ${r.rs.bTableSize}`);
  return f;
}

async function main(): Promise<number> {
  const opt = options();
  const started = Date.now();
  const date = new Date().toISOString();
  const mach = machine();
  const N = opt.entries;
  progress(`${fmt(N)} entries${opt.quick ? ' (--quick)' : ''}, parts ${[...opt.parts].join(', ')}; ${mach.cpu}, ${mach.cores} cores, node ${mach.node}`);
  const r = await run(opt, randomBytes(32));
  const failed = failures(r);
  const { c4, c6, tp, lagHigh, lagLow, rs } = r;

  const resyncS = rs?.complete ? rs.ms / 1000 : NaN;
  const resync1m = N === 1_000_000 ? resyncS : NaN;
  const resyncExtrapolated = (resyncS * 1_000_000) / N;
  const na = '—';
  const met = (ok: boolean, measured: boolean): string => (measured ? (ok ? 'yes' : 'NO') : na);
  const kernelBytesV4 = (K_HDR + K_PER_DGRAM_V4 * K_V4) / K_PER_DGRAM_V4;
  const kernelBytesV6 = (K_HDR + K_PER_DGRAM_V6 * K_V6) / K_PER_DGRAM_V6;
  const tpOk = tp?.complete === true;
  const rows: string[][] = [
    [
      'Wire bytes per IPv4 entry (all datagram bytes: header, dests, columns, 32-byte HMAC / entries)',
      c4 ? fmt(c4.bytesPerEntry, 2) : na,
      `${K_V4} (${fmt(kernelBytesV4, 1)} with the 8-byte header)`,
      `≤ ${TARGET_BYTES_V4}`,
      met((c4?.bytesPerEntry ?? NaN) <= TARGET_BYTES_V4, c4 !== null),
    ],
    ['Wire bytes per IPv6 entry (same)', c6 ? fmt(c6.bytesPerEntry, 2) : na, `${K_V6} (${fmt(kernelBytesV6, 1)})`, na, na],
    [`IPv4 entries per ${DEFAULT_MAX_DATAGRAM_BYTES}-byte datagram (mean)`, c4 ? fmt(c4.entriesPerDatagram, 1) : na, String(K_PER_DGRAM_V4), na, na],
    [`IPv6 entries per ${DEFAULT_MAX_DATAGRAM_BYTES}-byte datagram (mean)`, c6 ? fmt(c6.entriesPerDatagram, 1) : na, String(K_PER_DGRAM_V6), na, na],
    ['Encode IPv4 entries/s, one thread (fit + protobuf encode + HMAC)', c4 ? fmt(c4.encodePerS) : na, 'in kernel, not measured', na, na],
    ['Decode IPv4 entries/s, one thread (HMAC check + decode to records)', c4 ? fmt(c4.decodePerS) : na, 'in kernel, not measured', na, na],
    ['Encode / decode IPv6 entries/s, one thread', c6 ? `${fmt(c6.encodePerS)} / ${fmt(c6.decodePerS)}` : na, 'in kernel, not measured', na, na],
    [
      "Entries/s synced A → B over UDP on lo into B's table (one JS thread runs A and B)",
      tp ? (tpOk ? fmt(tp.perS) : 'incomplete') : na,
      'not measured (needs root)',
      `≥ ${fmt(TARGET_ENTRIES_PER_S)} per core`,
      met(tpOk && tp!.perS >= TARGET_ENTRIES_PER_S, tp !== null),
    ],
    [
      '  same per CPU-second: main thread / whole process (GC threads, kernel time included)',
      tpOk ? `${fmt(tp!.perMainCpuS)} / ${fmt(tp!.entries / (tp!.cpu.processMs / 1000))}` : na,
      na,
      na,
      na,
    ],
    [
      '  gaps / NACKs / retransmitted / unrecoverable / entries lost',
      tp ? `${tp.loss.gaps} / ${tp.loss.nacks} / ${tp.loss.retransmitted} / ${tp.loss.unrecoverable} / ${tp.missing}` : na,
      'no recovery',
      '0 lost',
      met(tpOk, tp !== null),
    ],
    [
      "Sync lag p50 / p99 / max at 20,000 entries/s (submit → in B's table), ms",
      lagHigh ? `${fmt(lagHigh.p50, 1)} / ${fmt(lagHigh.p99, 1)} / ${fmt(lagHigh.max, 1)}` : na,
      'a partial message waits ≤ 2,000',
      `p99 ≤ ${TARGET_LAG_P99_MS}`,
      met((lagHigh?.p99 ?? NaN) <= TARGET_LAG_P99_MS, lagHigh !== null && lagHigh.samples > 0),
    ],
    [
      'Sync lag p50 / p99 / max at 50 entries/s (the 10 ms flush interval dominates), ms',
      lagLow ? `${fmt(lagLow.p50, 1)} / ${fmt(lagLow.p99, 1)} / ${fmt(lagLow.max, 1)}` : na,
      '≤ 2,000 (IPVS_SYNC_FLUSH_TIME)',
      na,
      na,
    ],
    [
      `Resync of ${fmt(N)} entries (ResyncRequest → ready and all in B's table), s`,
      rs ? (rs.complete ? fmt(resyncS, 2) : 'incomplete') : na,
      'no resync',
      `≤ ${TARGET_RESYNC_1M_S} for 1,000,000`,
      N === 1_000_000 ? met(resyncS <= TARGET_RESYNC_1M_S, rs !== null) : `${na} (${fmt(resyncExtrapolated, 2)} s per 10^6, extrapolated)`,
    ],
    ['  same from B.start() (discovery, 750 ms, included), s', rs?.complete ? fmt(rs.fromStartMs / 1000, 2) : na, na, na, na],
  ];
  const out: string[] = [];
  out.push(`# bench:sync — ${date}`, '');
  out.push(`Machine: ${mach.cpu}, ${mach.cores} cores, Linux ${mach.kernel}, Node ${mach.node}. Entries: ${fmt(N)}${opt.quick ? ' (--quick)' : ''}.`, '');
  out.push(table(['Metric', 'Saru', 'kernel IPVS sync v1', 'Target', 'Met?'], rows), '');
  if (c4 && c6) {
    out.push(
      `Codec: median of ${opt.reps} passes (IPv4 encode ${c4.encodeRuns.map((x) => fmt(x)).join(', ')}/s, decode ${c4.decodeRuns.map((x) => fmt(x)).join(', ')}/s); ${c4.datagrams} IPv4 and ${c6.datagrams} IPv6 datagrams; round trip ${c4.roundTrip && c6.roundTrip ? 'byte-exact' : 'FAILED'}.`,
    );
  }
  if (tp) {
    out.push(
      `Synced: ${fmt(tp.ms)} ms wall; CPU ${fmt(tp.cpu.processMs)} ms for the process, ${fmt(tp.cpu.mainMs)} ms for its main thread (A and B), which also waited ${fmt(tp.cpu.mainWaitMs)} ms for a CPU (other load: a large wait means a disturbed run); window ${opt.window || 'none'} entries; B's SO_RCVBUF ${fmt(tp.recvBufferBytes)} bytes (as the kernel reports it).`,
    );
  }
  if (rs) {
    out.push(
      `Resync: ${rs.chunksSent} chunks sent, ${rs.chunksReceived} received; ready(true) after ${fmt(rs.readyMs)} ms; CPU ${fmt(rs.cpu.processMs)} ms for the process, ${fmt(rs.cpu.mainMs)} ms for its main thread, which waited ${fmt(rs.cpu.mainWaitMs)} ms for a CPU.`,
    );
  }
  out.push('Kernel column: struct sizes and constants of net/netfilter/ipvs/ip_vs_sync.c (message v1), not a run. Percentiles are nearest-rank.');
  if (failed.length > 0) out.push(`FAILED: ${failed.join('; ')}`);
  out.push('', `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
  console.log(out.join('\n'));

  if (opt.json) {
    const result = {
      bench: 'sync',
      date,
      machine: mach,
      entries: N,
      quick: opt.quick,
      parts: [...opt.parts],
      bytes_per_ipv4_entry: jnum(c4?.bytesPerEntry ?? NaN, 3),
      bytes_per_ipv6_entry: jnum(c6?.bytesPerEntry ?? NaN, 3),
      entries_per_datagram: jnum(c4?.entriesPerDatagram ?? NaN, 2),
      entries_per_s: jnum(tp?.perS ?? NaN),
      lag_ms_p99: jnum(lagHigh?.p99 ?? NaN, 3),
      resync_1m_s: jnum(resync1m, 3),
      entries_per_datagram_ipv6: jnum(c6?.entriesPerDatagram ?? NaN, 2),
      encode_entries_per_s: jnum(c4?.encodePerS ?? NaN),
      decode_entries_per_s: jnum(c4?.decodePerS ?? NaN),
      encode_entries_per_s_ipv6: jnum(c6?.encodePerS ?? NaN),
      decode_entries_per_s_ipv6: jnum(c6?.decodePerS ?? NaN),
      codec_round_trip: c4 && c6 ? c4.roundTrip && c6.roundTrip : null,
      synced_ms: jnum(tp?.ms ?? NaN, 1),
      synced_window_entries: opt.window,
      synced_process_cpu_ms: jnum(tp?.cpu.processMs ?? NaN, 1),
      synced_main_thread_cpu_ms: jnum(tp?.cpu.mainMs ?? NaN, 1),
      synced_main_thread_wait_ms: jnum(tp?.cpu.mainWaitMs ?? NaN, 1),
      entries_per_main_thread_cpu_s: jnum(tp?.perMainCpuS ?? NaN),
      entries_per_process_cpu_s: jnum(tp?.complete ? tp.entries / (tp.cpu.processMs / 1000) : NaN),
      nacks: tp?.loss.nacks ?? null,
      retransmitted: tp?.loss.retransmitted ?? null,
      gaps: tp?.loss.gaps ?? null,
      unrecoverable: tp?.loss.unrecoverable ?? null,
      lost: tp?.missing ?? null,
      lag_ms_p50: jnum(lagHigh?.p50 ?? NaN, 3),
      lag_ms_max: jnum(lagHigh?.max ?? NaN, 3),
      lag_rate_entries_per_s: lagHigh?.rate ?? null,
      lag_samples: lagHigh?.samples ?? null,
      lag_low_rate_ms_p50: jnum(lagLow?.p50 ?? NaN, 3),
      lag_low_rate_ms_p99: jnum(lagLow?.p99 ?? NaN, 3),
      lag_low_rate_ms_max: jnum(lagLow?.max ?? NaN, 3),
      lag_low_rate_entries_per_s: lagLow?.rate ?? null,
      reliability_counters: r.loss,
      resync_s: jnum(resyncS, 3),
      resync_entries: rs ? N : null,
      resync_from_start_s: jnum(rs?.complete ? rs.fromStartMs / 1000 : NaN, 3),
      resync_1m_s_extrapolated: N === 1_000_000 ? null : jnum(resyncExtrapolated, 3),
      resync_chunks_sent: rs?.chunksSent ?? null,
      resync_chunks_received: rs?.chunksReceived ?? null,
      resync_process_cpu_ms: jnum(rs?.cpu.processMs ?? NaN, 1),
      resync_main_thread_cpu_ms: jnum(rs?.cpu.mainMs ?? NaN, 1),
      resync_main_thread_wait_ms: jnum(rs?.cpu.mainWaitMs ?? NaN, 1),
      kernel_v1: {
        bytes_per_ipv4_entry: K_V4,
        bytes_per_ipv6_entry: K_V6,
        header_bytes: K_HDR,
        entries_per_datagram: K_PER_DGRAM_V4,
        entries_per_datagram_ipv6: K_PER_DGRAM_V6,
        flush_time_ms: 2000,
      },
      targets_met: {
        bytes_per_ipv4_entry: c4 ? c4.bytesPerEntry <= TARGET_BYTES_V4 : null,
        entries_per_s: tp ? tpOk && tp.perS >= TARGET_ENTRIES_PER_S : null,
        lag_ms_p99: lagHigh ? lagHigh.p99 <= TARGET_LAG_P99_MS : null,
        resync_1m_s: rs && N === 1_000_000 ? resyncS <= TARGET_RESYNC_1M_S : null,
      },
      failed,
    };
    console.log(JSON.stringify(result));
  }
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    progress(`failed: ${errorText(e)}`);
    process.exit(1);
  },
);
