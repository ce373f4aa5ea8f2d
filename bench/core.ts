/**
 * Core engine microbenchmarks (npm run bench:core [-- --json] [-- --entries N]).
 * Owns nothing the product uses: builds synthetic IPv4/TCP frames, drives the
 * Engine in-process and prints a table; with --json, one JSON object on the
 * last line. Measured here, never asserted in tests.
 *
 * 1. established: parse, slice, lookup, state, DR rewrite for frames of
 *    random existing flows with N entries (default 1,000,000) in the table.
 * 2. new connections: SYNs of new flows, scheduled (wlc, mh) and inserted.
 * 3. memory per entry of the connection table at N entries.
 * 4. a naive Map-keyed implementation of the established path, same frames.
 */
import {
  Drop,
  Engine,
  Fwd,
  ManualClock,
  ParsedFrame,
  Proto,
  ServiceTable,
  SliceFilter,
  createScheduler,
  parseFrame,
  parseMac,
  writeTcp4Frame,
  type RxBatch,
} from '../core/index.js';
import os from 'node:os';

const args = process.argv.slice(2);
const json = args.includes('--json');
const entriesArg = args.indexOf('--entries');
const N = entriesArg >= 0 ? Number(args[entriesArg + 1]) : 1_000_000;
const BATCH = 256;
const FRAME = 64; // slot size; frames are 54 bytes
const SHARED_MAC = '02:53:41:52:55:01';

const CLIENT_MAC = new Uint8Array([0x02, 0, 0, 0, 0, 0x99]);
const VIP_V4 = 0xc6120064; // 198.18.0.100

/** Write an Ethernet/IPv4/TCP frame for flow i at buf[off..]: client 198.18.128.0 + (i >> 4), port by i & 15. */
function writeFrame(buf: Uint8Array, off: number, flow: number, flags: number): number {
  return writeTcp4Frame(buf, off, {
    dstMac: parseMacCached(),
    srcMac: CLIENT_MAC,
    saddr: (0xc6128000 + (flow >>> 4)) >>> 0,
    daddr: VIP_V4,
    sport: 1024 + (flow & 15) * 3000,
    dport: 80,
    flags,
  });
}
let macCache: Uint8Array | null = null;
function parseMacCached(): Uint8Array {
  return (macCache ??= parseMac(SHARED_MAC));
}

/** Frames for the given flow order, packed in FRAME-byte slots. */
function buildFrames(order: Uint32Array, flags: number): RxBatch {
  const buf = new Uint8Array(order.length * FRAME);
  const off = new Uint32Array(order.length);
  const len = new Uint32Array(order.length);
  for (let i = 0; i < order.length; i++) {
    off[i] = i * FRAME;
    len[i] = writeFrame(buf, i * FRAME, order[i]!, flags);
  }
  return { buf, off, len, count: order.length };
}

function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

function makeEngine(scheduler: string, capacity: number): { engine: Engine; clock: ManualClock } {
  const clock = new ManualClock(0);
  const services = new ServiceTable();
  const svc = services.add({ protocol: Proto.TCP, address: '198.18.0.100', port: 80, scheduler });
  for (let i = 1; i <= 8; i++) {
    const rs = svc.addRealServer({ address: `198.18.1.${i}`, port: 80, weight: i, fwd: Fwd.DR });
    rs.mac.set([0x02, 0, 0, 0, 1, i]);
    rs.macKnown = true;
  }
  svc.setScheduler(createScheduler(scheduler));
  const slice = new SliceFilter({ buckets: 1024 });
  slice.ownAll();
  const engine = new Engine(
    { sharedMac: SHARED_MAC, table: { capacity }, batchSize: BATCH },
    { clock, services, slice },
  );
  return { engine, clock };
}

/** Feed `frames` to the engine in batches; returns seconds spent in processBatch. */
function run(engine: Engine, clock: ManualClock, frames: RxBatch, restoreMac: boolean): number {
  const mac = parseMacCached();
  const sub: RxBatch = { buf: frames.buf, off: new Uint32Array(BATCH), len: new Uint32Array(BATCH), count: 0 };
  let ns = 0n;
  for (let i = 0; i < frames.count; i += BATCH) {
    const n = Math.min(BATCH, frames.count - i);
    sub.off.set(frames.off.subarray(i, i + n));
    sub.len.set(frames.len.subarray(i, i + n));
    sub.count = n;
    const t0 = process.hrtime.bigint();
    engine.processBatch(sub);
    engine.drainSync(noop);
    if ((i / BATCH) % 64 === 0) engine.tick();
    ns += process.hrtime.bigint() - t0;
    clock.advance(1);
    if (restoreMac) for (let k = 0; k < n; k++) frames.buf.set(mac, sub.off[k]!);
  }
  return Number(ns) / 1e9;
}
function noop(): void {}

/** The naive baseline: same parser and rewrite, a Map keyed by a string 5-tuple. */
function runMapBaseline(frames: RxBatch, populate: RxBatch, slice: SliceFilter): { seconds: number; forwarded: number } {
  interface Conn { rs: number; state: number; pkts: number }
  const map = new Map<string, Conn>();
  const f = new ParsedFrame();
  const mac = parseMacCached();
  const rsMac = new Uint8Array([0x02, 0, 0, 0, 1, 1]);
  const key = (fr: ParsedFrame): string => `${fr.protocol}|${fr.saddr[3]}|${fr.sport}|${fr.daddr[3]}|${fr.dport}`;
  for (let i = 0; i < populate.count; i++) {
    parseFrame(populate.buf, populate.off[i]!, populate.len[i]!, f);
    map.set(key(f), { rs: i & 7, state: 1, pkts: 0 });
  }
  let forwarded = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < frames.count; i++) {
    const off = frames.off[i]!;
    if (parseFrame(frames.buf, off, frames.len[i]!, f) !== Drop.OK) continue;
    if (!slice.accepts(f.saddr, f.sport, f.daddr, f.dport)) continue;
    const c = map.get(key(f));
    if (c === undefined) continue;
    c.pkts++;
    frames.buf.set(rsMac, off);
    frames.buf.set(mac, off + 6);
    forwarded++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, forwarded };
}

function main(): void {
  const results: Array<{ name: string; value: number; unit: string; target: string }> = [];
  const capacity = N;

  // New connections (schedule + insert), wlc and mh, into an empty table.
  const synOrder = shuffled(N, 1);
  let newConns = 0;
  for (const sched of ['wlc', 'mh']) {
    const { engine, clock } = makeEngine(sched, capacity);
    const syns = buildFrames(synOrder, 0x02);
    const s = run(engine, clock, syns, false);
    const created = engine.counters.scheduled;
    if (created !== N) throw new Error(`${sched}: created ${created} of ${N} (drops: ${[...engine.drops].join(',')})`);
    const rate = created / s;
    if (sched === 'wlc') newConns = rate;
    results.push({ name: `new connections (${sched})`, value: rate, unit: 'conns/s', target: '>= 1,000,000' });
    if (sched === 'mh') {
      // Established flows on the full table.
      const estOrder = shuffled(N, 2);
      const est = buildFrames(estOrder, 0x10);
      run(engine, clock, est, true); // warm-up pass
      const fwd0 = engine.counters.txFrames;
      const secs = run(engine, clock, est, true);
      const fwd = engine.counters.txFrames - fwd0;
      if (fwd !== N) throw new Error(`established: forwarded ${fwd} of ${N}`);
      results.push({ name: `established flows, ${N.toLocaleString('en-US')} entries (DR)`, value: N / secs, unit: 'packets/s', target: '>= 3,000,000' });
      results.push({ name: 'connection table memory', value: engine.table.bytesPerEntry(), unit: 'bytes/entry', target: '<= 64' });
      const base = runMapBaseline(est, syns, engine.slice);
      if (base.forwarded !== N) throw new Error(`map baseline forwarded ${base.forwarded} of ${N}`);
      results.push({ name: 'naive Map-keyed baseline, same path', value: N / base.seconds, unit: 'packets/s', target: '(ratio)' });
    }
  }
  const est = results.find((r) => r.name.startsWith('established'))!.value;
  const map = results.find((r) => r.name.startsWith('naive'))!.value;
  const mem = results.find((r) => r.name.startsWith('connection table'))!.value;

  const fmt = (v: number, unit: string): string => (unit === 'bytes/entry' ? v.toFixed(1) : Math.round(v).toLocaleString('en-US'));
  const rows = results.map((r) => [r.name, fmt(r.value, r.unit), r.unit, r.target]);
  rows.push(['engine / Map baseline', (est / map).toFixed(2) + 'x', 'ratio', '']);
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length), ['benchmark', 'result', 'unit', 'target'][c]!.length));
  const line = (r: string[]): string => `| ${r.map((x, c) => (c === 1 ? x.padStart(widths[c]!) : x.padEnd(widths[c]!))).join(' | ')} |`;
  console.log(`Saru core benchmark: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log(line(['benchmark', 'result', 'unit', 'target']));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  if (json) {
    console.log(
      JSON.stringify({
        established_pps: Math.round(est),
        new_conns_per_s: Math.round(newConns),
        new_conns_per_s_mh: Math.round(results.find((r) => r.name === 'new connections (mh)')!.value),
        bytes_per_entry: mem,
        map_baseline_pps: Math.round(map),
        ratio_vs_map: Number((est / map).toFixed(2)),
        entries: N,
        node: process.version,
        cpu: os.cpus()[0]?.model ?? 'unknown',
        date: new Date().toISOString(),
      }),
    );
  }
}

main();
