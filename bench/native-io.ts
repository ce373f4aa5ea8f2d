/**
 * Native packet I/O benchmark (npm run bench:native-io [-- --json] [-- --duration S] [-- --runs N]).
 * Owns a throw-away network namespace with one veth pair: the main thread
 * transmits TxBatches of 64 frames on one end as fast as sendmmsg takes
 * them; a worker_thread receives on the other end in each receive mode
 * ('ring': TPACKET_V3 mmap ring; 'mmsg': recvmmsg slots) and reads the
 * EtherType of every frame, as the engine's parser would. Prints a table;
 * with --json, one JSON object on the last line. Measured here, never
 * asserted in tests. Needs root (namespaces, packet sockets).
 *
 * Columns: tx Mpps = frames the kernel took per second of sending; rx Mpps =
 * frames delivered to the receiver per second of sending; delivered = rx/tx;
 * rx ns/frame = receiver thread CPU (se.sum_exec_runtime of the worker
 * thread) per delivered frame; rx CPU = that thread's share of one core;
 * frames/call = mean frames per receive() that returned any.
 * The faster receive mode is the one with the lower rx ns/frame at full
 * delivery (with 2 cores the sender's core also runs the veth softirq, so
 * both modes usually see the whole offered load). Last, one frame at a time:
 * the send-to-receive delay of a lone frame in each mode.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TxBatch } from '../core/index.js';
import { nativeAvailable, openPacketPort } from '../native/index.js';
import { Netns, namespaceSkipReason } from '../test/native/netns.js';

type Mode = 'ring' | 'mmsg';
const MODES: Mode[] = ['ring', 'mmsg'];
const SIZES = [60, 1514];
const BATCH = 64;
const MAC_TX = '02:53:41:52:42:0a';
const MAC_RX = '02:53:41:52:42:0b';

/** CPU time of the calling thread in ns (Linux /proc/thread-self). */
function threadCpuNs(): number {
  try {
    const m = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(readFileSync('/proc/thread-self/sched', 'utf8'));
    if (m && Number(m[1]) > 0) return Number(m[1]) * 1e6;
  } catch {
    // fall back to clock ticks
  }
  const f = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * (1e9 / 100);
}

// Shared control words between the sender (main) and the receiver (worker).
const CTL_STATE = 0; // 0 setup, 1 ready, 2 measuring, 3 stop
const CTL_FRAMES = 1;
const CTL_CPU_US = 2;
const CTL_DROPS = 3;
const CTL_BAD = 4;
const CTL_CALLS = 5;

interface WorkerArgs {
  netns: string;
  ifname: string;
  mode: Mode;
  ctl: SharedArrayBuffer;
}

/** Receiver: counts frames until told to stop and the link has been quiet for 50 ms. */
function receiver(args: WorkerArgs): void {
  const ctl = new Int32Array(args.ctl);
  const port = openPacketPort({ ifname: args.ifname, netns: args.netns, mode: args.mode, batchSize: BATCH });
  Atomics.store(ctl, CTL_STATE, 1);
  while (Atomics.load(ctl, CTL_STATE) === 1) port.receive(5);
  const cpu0 = threadCpuNs();
  let frames = 0;
  let bad = 0;
  let calls = 0;
  const rx = port.rx;
  for (;;) {
    const n = port.receive(50);
    if (n === 0 && Atomics.load(ctl, CTL_STATE) === 3) break;
    for (let i = 0; i < n; i++) {
      const o = rx.off[i]!;
      if (rx.buf[o + 12] !== 0x88 || rx.buf[o + 13] !== 0xb5) bad++;
    }
    frames += n;
    if (n > 0) calls++;
  }
  const cpu = threadCpuNs() - cpu0;
  const st = port.stats();
  port.close();
  Atomics.store(ctl, CTL_FRAMES, frames);
  Atomics.store(ctl, CTL_CPU_US, Math.round(cpu / 1000));
  Atomics.store(ctl, CTL_DROPS, st.kernelDrops);
  Atomics.store(ctl, CTL_BAD, bad);
  Atomics.store(ctl, CTL_CALLS, calls);
}

if (!isMainThread) {
  receiver(workerData as WorkerArgs);
  parentPort!.postMessage('done');
}

export interface Row {
  mode: Mode;
  frameBytes: number;
  txMpps: number;
  rxMpps: number;
  delivered: number;
  rxNsPerFrame: number;
  rxCpu: number;
  /** Mean frames per receive() call that returned any. */
  framesPerCall: number;
  kernelDrops: number;
  txErrors: number;
}

async function runOne(ns: Netns, mode: Mode, size: number, durationMs: number): Promise<Row> {
  const ctl = new Int32Array(new SharedArrayBuffer(8 * 4));
  const worker = new Worker(new URL(import.meta.url), { workerData: { netns: ns.name, ifname: 'vb', mode, ctl: ctl.buffer } });
  const done = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const tx = openPacketPort({ ifname: 'va', netns: ns.name, batchSize: BATCH });
  const batch = new TxBatch(BATCH, BATCH * 1536);
  batch.reset(new Uint8Array(0));
  const dst = MAC_RX.split(':').map((x) => parseInt(x, 16));
  for (let i = 0; i < BATCH; i++) {
    const o = i * 1536;
    batch.scratch.set(dst, o);
    batch.scratch.set(tx.mac, o + 6);
    batch.scratch[o + 12] = 0x88;
    batch.scratch[o + 13] = 0xb5;
    batch.scratch[o + 14] = i;
    batch.off[i] = o;
    batch.len[i] = size;
    batch.inScratch[i] = 1;
  }
  batch.count = BATCH;
  for (let i = 0; i < 2000 && Atomics.load(ctl, CTL_STATE) !== 1; i++) await new Promise((r) => setTimeout(r, 5));
  if (Atomics.load(ctl, CTL_STATE) !== 1) throw new Error('receiver did not start');
  // Warm up for 100 ms before measuring.
  for (let t0 = performance.now(); performance.now() - t0 < 100; ) tx.transmit(batch);
  await new Promise((r) => setTimeout(r, 100)); // the receiver drains the warm-up
  Atomics.store(ctl, CTL_STATE, 2); // ... and starts its clock
  const s0 = tx.stats();
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < durationMs) {
    for (let k = 0; k < 16; k++) tx.transmit(batch);
    t = performance.now();
  }
  const s1 = tx.stats();
  Atomics.store(ctl, CTL_STATE, 3);
  await done;
  await worker.terminate();
  tx.close();
  const secs = (t - t0) / 1000;
  const sent = s1.txFrames - s0.txFrames;
  const frames = Atomics.load(ctl, CTL_FRAMES);
  const cpuNs = Atomics.load(ctl, CTL_CPU_US) * 1000;
  if (Atomics.load(ctl, CTL_BAD) !== 0) throw new Error('receiver saw frames that were not ours');
  return {
    mode,
    frameBytes: size,
    txMpps: sent / secs / 1e6,
    rxMpps: frames / secs / 1e6,
    delivered: sent > 0 ? Math.min(1, frames / sent) : 0,
    rxNsPerFrame: frames > 0 ? cpuNs / frames : NaN,
    rxCpu: cpuNs / 1e9 / secs,
    framesPerCall: frames / Math.max(1, Atomics.load(ctl, CTL_CALLS)),
    kernelDrops: Atomics.load(ctl, CTL_DROPS),
    txErrors: s1.txErrors - s0.txErrors,
  };
}

/**
 * One frame at a time, send then receive in the same thread: the delay a
 * lone frame sees (at low rates a ring block waits for ringTimeoutMs).
 */
function latency(ns: Netns, mode: Mode, samples: number): { p50Us: number; p99Us: number } {
  const a = openPacketPort({ ifname: 'va', netns: ns.name });
  const b = openPacketPort({ ifname: 'vb', netns: ns.name, mode });
  const f = new Uint8Array(60);
  f.set(b.mac, 0);
  f.set(a.mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  const us: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      a.send(f);
      let got = 0;
      for (let k = 0; k < 100 && got === 0; k++) got = b.receive(100);
      if (got > 0) us.push((performance.now() - t0) * 1000);
    }
  } finally {
    a.close();
    b.close();
  }
  us.sort((x, y) => x - y);
  return { p50Us: us[Math.floor(us.length / 2)] ?? NaN, p99Us: us[Math.floor(us.length * 0.99)] ?? NaN };
}

function median(rows: Row[]): Row {
  const sorted = [...rows].sort((a, b) => a.rxNsPerFrame - b.rxNsPerFrame);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const arg = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const durationMs = arg('--duration', 2) * 1000;
  const runs = arg('--runs', 3);
  const skip = namespaceSkipReason();
  if (skip) {
    console.error(`bench:native-io ${skip}`);
    process.exit(2);
  }
  if (!nativeAvailable()) {
    console.error('bench:native-io: the native addon is not built (npm run build:native)');
    process.exit(2);
  }
  const ns = Netns.create('saru-bench');
  try {
    ns.addVeth('va', 'vb', { macA: MAC_TX, macB: MAC_RX, mtu: 1500 });
    const rows: Row[] = [];
    for (const size of SIZES) {
      for (const mode of MODES) {
        const rs: Row[] = [];
        // Alternate modes run by run would be fairer on a noisy machine; runs are back to back per mode here.
        for (let r = 0; r < runs; r++) rs.push(await runOne(ns, mode, size, durationMs));
        rows.push(median(rs));
      }
    }
    const lat = MODES.map((mode) => ({ mode, ...latency(ns, mode, 500) }));
    const small = rows.filter((r) => r.frameBytes === SIZES[0]);
    const full = small.every((r) => r.delivered >= 0.99);
    const best = full
      ? small.reduce((a, b) => (b.rxNsPerFrame < a.rxNsPerFrame ? b : a))
      : small.reduce((a, b) => (b.rxMpps > a.rxMpps ? b : a));
    const head = ['mode', 'frame B', 'tx Mpps', 'rx Mpps', 'delivered', 'rx ns/frame', 'rx CPU', 'frames/call', 'kernel drops', 'tx errors'];
    const lines = rows.map((r) => [
      r.mode,
      String(r.frameBytes),
      r.txMpps.toFixed(3),
      r.rxMpps.toFixed(3),
      `${(r.delivered * 100).toFixed(1)}%`,
      r.rxNsPerFrame.toFixed(0),
      `${(r.rxCpu * 100).toFixed(0)}%`,
      r.framesPerCall.toFixed(1),
      String(r.kernelDrops),
      String(r.txErrors),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const fmt = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(`native-io: veth pair in a namespace, batches of ${BATCH}, ${durationMs / 1000} s x ${runs} runs (median by rx ns/frame)`);
    console.log(`machine: ${os.cpus()[0]?.model ?? '?'} x ${os.cpus().length}, Linux ${os.release()}, Node ${process.version}`);
    console.log(fmt(head));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const l of lines) console.log(fmt(l));
    for (const l of lat) console.log(`one frame at a time, ${l.mode}: send-to-receive p50 ${l.p50Us.toFixed(0)} us, p99 ${l.p99Us.toFixed(0)} us`);
    console.log(`faster receive mode: ${best.mode} (${full ? 'lower receiver CPU per frame at full delivery' : 'more frames delivered'}, ${SIZES[0]}-byte frames)`);
    if (json) {
      console.log(
        JSON.stringify({
          bench: 'native-io',
          cpu: os.cpus()[0]?.model,
          cores: os.cpus().length,
          kernel: os.release(),
          node: process.version,
          batch: BATCH,
          durationMs,
          runs,
          rows,
          latency: lat,
          fasterMode: best.mode,
        }),
      );
    }
  } finally {
    ns.destroy();
  }
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
