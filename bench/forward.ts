/**
 * Forwarding benchmark, root only:
 *   npm run bench:forward [-- --json] [-- --runs N] [-- --seconds S] [-- --flows F]
 *     [-- --quick] [-- --filter-gain | --no-filter-gain | --filter-gain-only] [-- --gain-pps N]
 *     [-- --no-pin] [-- --gen-mode ring|mmsg] [-- --io-mode ring|mmsg] [-- --verbose]
 * Method, results and limits: docs/bench-forward.md.
 *
 * Owns the namespace testbed with prefix "sbench" (torn down in a finally,
 * on SIGINT/SIGTERM/SIGHUP too), an nftables sink table on its real server
 * and a few settings inside its namespaces (bridge-nf off in the switch,
 * RPS masks, the director's ip_forward and a route for the kernel
 * baseline). Touches nothing in the root namespace except the CPU affinity
 * of the processes it starts.
 *
 * Part 1, one director (DR, rr, one real server): frames from
 * bench/blast.ts in the client namespace (F flows to VIP:80, one SYN per
 * flow, then ACKs round-robin as fast as sendmmsg takes them), 60-byte
 * (64 on the wire) and 1514-byte (IP 1500) frames. Counted at the real
 * server by an nftables netdev ingress chain that drops and counts frames
 * to the VIP carrying the real server's own MAC: only forwarded frames (the
 * hub also floods the client's frames, with the shared MAC, to the sink).
 * The same traffic is forwarded by the director namespace's kernel (saru
 * stopped, ip_forward on, a /32 route to the VIP via the real server: what
 * DR does, done by the kernel), in the same run, alternating run by run.
 *
 * CPU placement (default; --no-pin turns it off): the generator runs on
 * CPU 0; the daemon (every thread) on CPU 1, and RPS steers the director's
 * eth0 receive processing to CPU 1, so Saru and the kernel each forward on
 * one core of their own, receive work included, and CPU 1's busy time per
 * forwarded frame is each one's cost per packet.
 *
 * Part 2, the socket filter's gain (default unless --quick): three
 * directors with static thirds of the buckets, 60-byte frames, each
 * director's saru.conf with `socket_filter = no` and then `yes`: forwarded
 * pps at full load, and CPU per forwarded frame at a fixed load both
 * configurations carry, with the frames each director's user space received.
 *
 * Prints a table per part, README-ready markdown, and with --json one JSON
 * object on the last line (director_pps_64, kernel_pps_64,
 * director_pps_1500, kernel_pps_1500 and the rest). Measures; asserts
 * nothing about speed.
 */
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { nativeAvailable } from '../native/index.js';
import { ControlClient, type ClusterInfo } from '../saru/control.js';
import { ADDRESSES, Testbed, TestbedGuard, findTool } from '../saru/testbed/index.js';
import { machine, median, sleep, table } from './common.js';

const PREFIX = 'sbench';
const BLAST = fileURLToPath(new URL('./blast.js', import.meta.url));
/** Frame sizes without FCS, and their names (on the wire, with FCS / IP length). */
const SIZES = [
  { bytes: 60, key: '64', label: '64 B (60 + FCS)' },
  { bytes: 1514, key: '1500', label: '1,518 B (IP 1,500)' },
] as const;
const GEN_CPU = 0;
const FWD_CPU = 1;
const SINK_TABLE = 'saru_bench';
const USER_HZ = 100;

// ---- options ---------------------------------------------------------------------

interface Options {
  json: boolean;
  runs: number;
  seconds: number;
  flows: number;
  filterGain: boolean;
  /** Only part 2. */
  filterGainOnly: boolean;
  pin: boolean;
  genMode: 'ring' | 'mmsg';
  ioMode: 'ring' | 'mmsg' | undefined;
  /** Fixed offered rate of the paced filter comparison (default: half of what the first run forwarded without the filter). */
  gainPps: number | undefined;
  verbose: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      runs: { type: 'string' },
      seconds: { type: 'string' },
      flows: { type: 'string', default: '4096' },
      quick: { type: 'boolean', default: false },
      'filter-gain': { type: 'boolean' },
      'no-filter-gain': { type: 'boolean', default: false },
      'filter-gain-only': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      'gen-mode': { type: 'string', default: 'ring' },
      'io-mode': { type: 'string' },
      'gain-pps': { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const quick = values.quick === true;
  const num = (name: string, v: string | undefined, dflt: number, lo: number, hi: number, int: boolean): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < lo || n > hi || (int && !Number.isInteger(n))) throw new Error(`--${name} must be ${int ? 'an integer ' : ''}${lo}..${hi}, got "${v}"`);
    return n;
  };
  const genMode = values['gen-mode'];
  if (genMode !== 'ring' && genMode !== 'mmsg') throw new Error(`--gen-mode must be ring or mmsg, got "${genMode}"`);
  const ioMode = values['io-mode'];
  if (ioMode !== undefined && ioMode !== 'ring' && ioMode !== 'mmsg') throw new Error(`--io-mode must be ring or mmsg, got "${ioMode}"`);
  return {
    json: values.json === true,
    runs: num('runs', values.runs, quick ? 1 : 3, 1, 100, true),
    seconds: num('seconds', values.seconds, quick ? 2 : 3, 0.5, 60, false),
    flows: num('flows', values.flows, 4096, 1, 50000, true),
    filterGain: values['filter-gain'] === true || values['filter-gain-only'] === true || (!quick && values['no-filter-gain'] !== true),
    filterGainOnly: values['filter-gain-only'] === true,
    pin: values['no-pin'] !== true && os.cpus().length >= 2,
    genMode,
    ioMode,
    gainPps: values['gain-pps'] === undefined ? undefined : num('gain-pps', values['gain-pps'], 0, 1000, 10_000_000, true),
    verbose: values.verbose === true,
  };
}

// ---- small helpers -----------------------------------------------------------------

const progress = (line: string): void => {
  process.stderr.write(`bench:forward: ${line}\n`);
};

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

function fmtPct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '—';
}

async function checked(tb: Testbed, ns: string, cmd: string, args: string[], input?: string): Promise<string> {
  const r = await tb.exec(ns, cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`ip netns exec ${ns} ${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Idle time (idle + iowait) of one CPU, ns. Under NO_HZ the kernel measures
 * idle time with the clock, not by sampling ticks, so wall time minus this is
 * the CPU's busy time, softirq work included. (The user/system/softirq fields
 * are tick samples and useless here: a director that wakes when the ring's
 * block timer retires a block and sleeps again, in step with the tick, is
 * seldom seen busy: 4% by the ticks against 64% by the idle clock.)
 */
function cpuIdleNs(cpu: number): number {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return NaN;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return ((f[3]! + f[4]!) * 1e9) / USER_HZ;
}

/** CPU time of every thread of a process (se.sum_exec_runtime: measured, not sampled), ns. */
function processCpuNs(pid: number): number {
  let total = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const m = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8'));
      if (m) total += Number(m[1]) * 1e6;
    }
  } catch {
    return NaN;
  }
  return total;
}

/**
 * CPU time (utime + stime, ns) of every user process outside the testbed's
 * namespaces, except this one: other work on the machine that competes with
 * the measurement. Kernel threads are left out (ksoftirqd may be doing our
 * softirq work).
 */
function foreignCpu(ours: Set<string>): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(f[6]) & 0x00200000) continue; // PF_KTHREAD
      if (ours.has(readlinkSync(`/proc/${pid}/ns/net`))) continue;
      m.set(pid, ((Number(f[11]) + Number(f[12])) * 1e9) / USER_HZ);
    } catch {
      // gone
    }
  }
  return m;
}

/** CPU used by foreign processes between two foreignCpu() snapshots, ns (processes that exited in between are missed). */
function foreignDelta(a: Map<number, number>, b: Map<number, number>): number {
  let ns = 0;
  for (const [pid, t] of b) ns += t - (a.get(pid) ?? 0);
  return ns;
}

/** Identities ("net:[inode]") of the testbed's network namespaces. */
function namespaceIds(tb: Testbed): Set<string> {
  const ids = new Set<string>();
  for (const ns of tb.namespaces()) {
    try {
      ids.add(`net:[${statSync(`/run/netns/${ns}`).ino}]`);
    } catch {
      // gone
    }
  }
  return ids;
}

async function cluster(tb: Testbed, i: number): Promise<ClusterInfo> {
  const c = await ControlClient.connect(tb.socketPath(i));
  try {
    return (await c.request({ clusterStatus: {} })).cluster!;
  } finally {
    c.close();
  }
}

function counter(list: Array<{ name: string; value: number }>, name: string): number {
  return list.find((c) => c.name === name)?.value ?? 0;
}

// ---- testbed preparation -----------------------------------------------------------

/**
 * Turn bridge netfilter off in the switch namespace: with br_netfilter loaded
 * (the default in many hosts) every frame the hub floods would pass the IP
 * hooks once per port. A per-namespace setting (the host's is untouched);
 * nothing to do when the module is not loaded. Returns whether it was on.
 */
async function quietSwitch(tb: Testbed): Promise<boolean> {
  const script =
    'n=0; for f in bridge-nf-call-iptables bridge-nf-call-ip6tables bridge-nf-call-arptables; do ' +
    'p=/proc/sys/net/bridge/$f; if [ -w $p ]; then [ "$(cat $p)" = 1 ] && n=1; echo 0 > $p; fi; done; echo $n';
  return (await checked(tb, tb.nsName('switch'), 'sh', ['-c', script])).trim() === '1';
}

/** The sink on real server 1: count and drop frames to the VIP with its own MAC; drop (uncounted) the flooded ones. */
async function installSink(tb: Testbed): Promise<void> {
  const mac = ADDRESSES.real(1).mac;
  const vip = ADDRESSES.vip4;
  const rules = [
    `table netdev ${SINK_TABLE} {`,
    '  counter forwarded {}',
    '  counter flooded {}',
    '  chain sink {',
    '    type filter hook ingress device "eth0" priority -500; policy accept;',
    `    ether daddr ${mac} ip daddr ${vip} counter name "forwarded" drop`,
    `    ip daddr ${vip} counter name "flooded" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
  await checked(tb, tb.nsName('real', 1), 'nft', ['-f', '-'], rules);
}

async function sinkCount(tb: Testbed): Promise<{ forwarded: number; flooded: number }> {
  const out = await checked(tb, tb.nsName('real', 1), 'nft', ['-j', 'list', 'counters', 'table', 'netdev', SINK_TABLE]);
  const j = JSON.parse(out) as { nftables: Array<{ counter?: { name: string; packets: number } }> };
  const get = (name: string): number => {
    const c = j.nftables.find((x) => x.counter?.name === name)?.counter;
    if (!c) throw new Error(`sink counter "${name}" missing`);
    return c.packets;
  };
  return { forwarded: get('forwarded'), flooded: get('flooded') };
}

/** Steer eth0's receive processing (RPS) of director `i` to the forwarding CPU, or back to the sender's (mask 0). */
async function setRps(tb: Testbed, i: number, on: boolean): Promise<void> {
  const mask = on ? (1 << FWD_CPU).toString(16) : '0';
  await checked(tb, tb.nsName('director', i), 'sh', ['-c', `for q in /sys/class/net/eth0/queues/rx-*/rps_cpus; do echo ${mask} > $q; done`]);
}

/** Pin every thread of director `i`'s daemon to the forwarding CPU. Returns its pid. */
async function directorPid(tb: Testbed, i: number, pin: boolean): Promise<number> {
  const st = await tb.status();
  const d = st.directors.find((x) => x.index === i);
  if (!d?.pid || !d.alive) throw new Error(`director ${i} is not running`);
  if (pin) {
    const r = await tb.exec(tb.nsName('director', i), 'taskset', ['-a', '-p', (1 << FWD_CPU).toString(16), String(d.pid)]);
    if (r.code !== 0) throw new Error(`taskset -a -p for director ${i} (pid ${d.pid}): ${r.stderr.trim()}`);
  }
  return d.pid;
}

/** Write director `i`'s saru.conf: the testbed's, plus our lines. */
function writeConf(tb: Testbed, i: number, extra: string[]): void {
  writeFileSync(join(tb.directorDir(i), 'saru.conf'), `${tb.saruConfText(i)}# bench:forward\n${extra.map((l) => `${l}\n`).join('')}`);
}

/** Start directors, pin them, and wait until each knows the real server's MAC. Returns their pids. */
async function startDirectors(tb: Testbed, which: number[], opt: Options): Promise<number[]> {
  await Promise.all(which.map((i) => tb.startDirector(i)));
  const pids: number[] = [];
  for (const i of which) {
    pids.push(await directorPid(tb, i, opt.pin));
    for (let tries = 0; ; tries++) {
      const c = await cluster(tb, i);
      if (c.unresolved.length === 0) break;
      if (tries > 100) throw new Error(`director ${i} never resolved ${c.unresolved.join(' ')}`);
      await sleep(100);
    }
  }
  return pids;
}

async function stopDirectors(tb: Testbed, which: number[]): Promise<void> {
  await Promise.all(which.map((i) => tb.stopDirector(i)));
}

/** Kernel forwarding in director 1's namespace, DR-like: the VIP routed to the real server. */
async function kernelForwarding(tb: Testbed, on: boolean): Promise<void> {
  const ns = tb.nsName('director', 1);
  const rs = ADDRESSES.real(1).ip4;
  if (on) {
    const addrs = await checked(tb, ns, 'ip', ['-4', '-o', 'addr', 'show']);
    if (addrs.includes(` ${ADDRESSES.vip4}/`)) throw new Error(`${ns} still has the VIP ${ADDRESSES.vip4} after saru stopped: the kernel would deliver, not forward`);
    await checked(tb, ns, 'sh', [
      '-c',
      'set -e; echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects',
    ]);
    await checked(tb, ns, 'ip', ['route', 'replace', `${ADDRESSES.vip4}/32`, 'via', rs, 'dev', 'eth0']);
  } else {
    await checked(tb, ns, 'sh', ['-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward']);
    await checked(tb, ns, 'ip', ['route', 'del', `${ADDRESSES.vip4}/32`]);
  }
}

// ---- the generator ------------------------------------------------------------------

interface BlastResult {
  sent: number;
  errors: number;
  seconds: number;
  offeredPps: number;
  synSent: number;
}

async function blast(tb: Testbed, opt: Options, args: string[], seconds: number): Promise<BlastResult> {
  const base = [BLAST, '--dst-mac', ADDRESSES.sharedMac, '--saddr', ADDRESSES.client4, '--daddr', ADDRESSES.vip4, '--flows', String(opt.flows), '--mode', opt.genMode, ...args];
  const [cmd, argv] = opt.pin ? ['taskset', ['-c', String(GEN_CPU), process.execPath, ...base]] : [process.execPath, base];
  const r = await tb.exec(tb.nsName('client'), cmd, argv as string[], { timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`generator failed (exit ${r.code}): ${r.stderr.trim()}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as BlastResult;
}

/** One SYN per flow, until the running directors hold an entry for every flow (kernel mode: once, to resolve the neighbour). */
async function synPhase(tb: Testbed, opt: Options, directors: number[]): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    await blast(tb, opt, ['--syn-only', '--syn-wait-ms', '100'], 1);
    if (directors.length === 0) return opt.flows;
    let conns = 0;
    for (let t = 0; t < 20; t++) {
      conns = 0;
      for (const i of directors) conns += (await cluster(tb, i)).connections;
      if (conns >= opt.flows) return conns;
      await sleep(100);
    }
    if (attempt >= 2) {
      progress(`warning: the directors hold ${conns} entries for ${opt.flows} flows after 3 rounds of SYNs`);
      return conns;
    }
  }
}

// ---- one measurement ------------------------------------------------------------------

interface DirectorDelta {
  rxFrames: number;
  txFrames: number;
  kernelDrops: number;
  noConnection: number;
  notOurSlice: number;
  filterInsns: number;
}

interface Sample {
  sent: number;
  txErrors: number;
  seconds: number;
  offeredPps: number;
  forwarded: number;
  pps: number;
  /** forwarded / sent */
  delivered: number;
  /** Busy time of the forwarding CPU per forwarded frame (pinned runs only). */
  coreNsPerPkt: number;
  /** Share of the forwarding CPU in use. */
  coreBusy: number;
  /** CPU time of the director processes per forwarded frame (director runs only). */
  procNsPerPkt: number;
  /** CPUs' worth of time other processes on the machine used during the measurement. */
  otherLoad: number;
  directors: DirectorDelta[];
}

/** Other load above which a measurement counts as disturbed: repeated once, and left out of the medians when quiet ones exist. */
const OTHER_LOAD_LIMIT = 0.05;
/** No repeats once the bench has run this long (sustained load elsewhere would only make it longer). */
const REPEAT_BUDGET_MS = 120_000;
const benchStart = Date.now();

async function measureQuiet(tb: Testbed, opt: Options, size: number, directors: number[], pids: number[], pps = 0): Promise<Sample> {
  const x = await measure(tb, opt, size, directors, pids, pps);
  if (x.otherLoad <= OTHER_LOAD_LIMIT) return x;
  if (Date.now() - benchStart > REPEAT_BUDGET_MS) {
    progress(`other processes used ${fmtPct(x.otherLoad)} of a CPU during the measurement (no time left to repeat it)`);
    return x;
  }
  progress(`other processes used ${fmtPct(x.otherLoad)} of a CPU during the measurement; repeating it once`);
  const y = await measure(tb, opt, size, directors, pids, pps);
  return y.otherLoad < x.otherLoad ? y : x;
}

async function measure(tb: Testbed, opt: Options, size: number, directors: number[], pids: number[], pps = 0): Promise<Sample> {
  const before = await Promise.all(directors.map((i) => cluster(tb, i)));
  const sink0 = await sinkCount(tb);
  const ours = namespaceIds(tb);
  const other0 = foreignCpu(ours);
  const proc0 = pids.map(processCpuNs);
  const idle0 = cpuIdleNs(FWD_CPU);
  const t0 = performance.now();
  const b = await blast(tb, opt, ['--no-syn', '--size', String(size), '--seconds', String(opt.seconds), '--pps', String(pps)], opt.seconds);
  await sleep(100); // the last frames leave the director and reach the sink
  const idle1 = cpuIdleNs(FWD_CPU);
  const wall = (performance.now() - t0) * 1e6;
  const proc1 = pids.map(processCpuNs);
  const other1 = foreignCpu(ours);
  const sink1 = await sinkCount(tb);
  const after = await Promise.all(directors.map((i) => cluster(tb, i)));
  const coreNs = Math.max(0, wall - (idle1 - idle0));
  const forwarded = sink1.forwarded - sink0.forwarded;
  const procNs = proc1.reduce((s, x, k) => s + (x - proc0[k]!), 0);
  const deltas = directors.map((_, k) => {
    const a = after[k]!;
    const z = before[k]!;
    const d = (l: 'port' | 'drops', name: string): number => counter(a[l], name) - counter(z[l], name);
    return {
      rxFrames: d('port', 'rxFrames'),
      txFrames: d('port', 'txFrames'),
      kernelDrops: d('port', 'kernelDrops'),
      noConnection: d('drops', 'no_connection'),
      notOurSlice: d('drops', 'not_our_slice'),
      filterInsns: a.filterInsns,
    };
  });
  return {
    sent: b.sent,
    txErrors: b.errors,
    seconds: b.seconds,
    offeredPps: b.offeredPps,
    forwarded,
    pps: forwarded / b.seconds,
    delivered: b.sent > 0 ? forwarded / b.sent : NaN,
    coreNsPerPkt: opt.pin && forwarded > 0 ? coreNs / forwarded : NaN,
    coreBusy: opt.pin ? Math.min(1, coreNs / (b.seconds * 1e9)) : NaN,
    procNsPerPkt: pids.length > 0 && forwarded > 0 ? procNs / forwarded : NaN,
    otherLoad: foreignDelta(other0, other1) / wall,
    directors: deltas,
  };
}

interface Summary {
  pps: number;
  offeredPps: number;
  delivered: number;
  coreNsPerPkt: number;
  coreBusy: number;
  procNsPerPkt: number;
  txErrors: number;
  kernelDrops: number;
  rxFramesPerDirector: number[];
  /** Highest other load among the samples the medians used. */
  otherLoad: number;
  /** Samples the medians used (the undisturbed ones, or all). */
  samplesUsed: number;
  samples: Sample[];
}

/** Medians over the undisturbed samples (all samples when none is). */
function summarise(all: Sample[]): Summary {
  const quiet = all.filter((s) => s.otherLoad <= OTHER_LOAD_LIMIT);
  const samples = quiet.length > 0 ? quiet : all;
  const m = (f: (s: Sample) => number): number => median(samples.map(f));
  const nd = samples[0]?.directors.length ?? 0;
  return {
    pps: m((s) => s.pps),
    offeredPps: m((s) => s.offeredPps),
    delivered: m((s) => s.delivered),
    coreNsPerPkt: m((s) => s.coreNsPerPkt),
    coreBusy: m((s) => s.coreBusy),
    procNsPerPkt: m((s) => s.procNsPerPkt),
    txErrors: samples.reduce((x, s) => x + s.txErrors, 0),
    kernelDrops: samples.reduce((x, s) => x + s.directors.reduce((y, d) => y + d.kernelDrops, 0), 0),
    rxFramesPerDirector: Array.from({ length: nd }, (_, k) => m((s) => s.directors[k]!.rxFrames / s.seconds)),
    otherLoad: Math.max(0, ...samples.map((s) => s.otherLoad)),
    samplesUsed: samples.length,
    samples: all,
  };
}

// ---- tables --------------------------------------------------------------------------


// ---- main ------------------------------------------------------------------------------

const guard = new TestbedGuard(PREFIX, progress);

async function singleDirector(opt: Options): Promise<{ director: Record<string, Summary>; kernel: Record<string, Summary>; brNetfilter: boolean }> {
  const tb = new Testbed({ prefix: PREFIX, directors: 1, realServers: 1, fwd: 'gate', scheduler: 'rr', startDaemons: false, slices: 'static', ...(opt.verbose ? { log: progress } : {}) });
  guard.use(tb);
  progress('testbed: 1 director, 1 real server (the sink), DR');
  await tb.up();
  const brNetfilter = await quietSwitch(tb);
  await installSink(tb);
  if (opt.pin) await setRps(tb, 1, true);
  writeConf(tb, 1, opt.ioMode ? [`io_mode = ${opt.ioMode}`] : []);
  const dir: Record<string, Sample[]> = {};
  const ker: Record<string, Sample[]> = {};
  for (const s of SIZES) {
    dir[s.key] = [];
    ker[s.key] = [];
  }
  for (let r = 0; r < opt.runs; r++) {
    const pids = await startDirectors(tb, [1], opt);
    for (const s of SIZES) {
      await synPhase(tb, opt, [1]);
      const x = await measureQuiet(tb, opt, s.bytes, [1], pids);
      dir[s.key]!.push(x);
      progress(`run ${r + 1}/${opt.runs} saru   ${String(s.bytes).padStart(4)} B: ${fmtInt(x.pps)} pps forwarded of ${fmtInt(x.offeredPps)} offered`);
    }
    await stopDirectors(tb, [1]);
    await kernelForwarding(tb, true);
    for (const s of SIZES) {
      await synPhase(tb, opt, []);
      const x = await measureQuiet(tb, opt, s.bytes, [], []);
      ker[s.key]!.push(x);
      progress(`run ${r + 1}/${opt.runs} kernel ${String(s.bytes).padStart(4)} B: ${fmtInt(x.pps)} pps forwarded of ${fmtInt(x.offeredPps)} offered`);
    }
    await kernelForwarding(tb, false);
  }
  await guard.cleanup();
  const director: Record<string, Summary> = {};
  const kernel: Record<string, Summary> = {};
  for (const s of SIZES) {
    director[s.key] = summarise(dir[s.key]!);
    kernel[s.key] = summarise(ker[s.key]!);
  }
  return { director, kernel, brNetfilter };
}

interface Gain {
  on: Summary;
  off: Summary;
  /** The fixed offered rate of the paced comparison. */
  pacedPps: number;
  pacedOn: Summary;
  pacedOff: Summary;
}

/**
 * Three directors, socket filter off then on, run by run: at full offered
 * load (what gets through) and at a fixed load below what both manage (what
 * each forwarded frame costs). The fixed load is half of what the first run
 * forwarded without the filter, unless --gain-pps sets it.
 */
async function filterGain(opt: Options): Promise<Gain> {
  const tb = new Testbed({ prefix: PREFIX, directors: 3, realServers: 1, fwd: 'gate', scheduler: 'rr', startDaemons: false, ...(opt.verbose ? { log: progress } : {}) });
  guard.use(tb);
  progress('testbed: 3 directors (static thirds), 1 real server (the sink), DR');
  await tb.up();
  await quietSwitch(tb);
  await installSink(tb);
  const all = [1, 2, 3];
  if (opt.pin) for (const i of all) await setRps(tb, i, true);
  const full: Record<'on' | 'off', Sample[]> = { on: [], off: [] };
  const paced: Record<'on' | 'off', Sample[]> = { on: [], off: [] };
  let pacedPps = opt.gainPps;
  for (let r = 0; r < opt.runs; r++) {
    for (const filter of [false, true]) {
      const name = filter ? 'on' : 'off';
      for (const i of all) writeConf(tb, i, [`socket_filter = ${filter ? 'yes' : 'no'}`, ...(opt.ioMode ? [`io_mode = ${opt.ioMode}`] : [])]);
      const pids = await startDirectors(tb, all, opt);
      await synPhase(tb, opt, all);
      const x = await measureQuiet(tb, opt, 60, all, pids);
      pacedPps ??= Math.max(1000, Math.round(x.pps / 2 / 1000) * 1000);
      const y = await measureQuiet(tb, opt, 60, all, pids, pacedPps);
      await stopDirectors(tb, all);
      const insns = x.directors.map((d) => d.filterInsns);
      if (filter ? insns.some((n) => n === 0) : insns.some((n) => n !== 0)) {
        throw new Error(`socket_filter = ${filter ? 'yes' : 'no'} but the directors report filters of ${insns.join(', ')} instructions`);
      }
      full[name].push(x);
      paced[name].push(y);
      progress(
        `run ${r + 1}/${opt.runs} 3 directors, filter ${name.padEnd(3)}: ${fmtInt(x.pps)} pps forwarded of ${fmtInt(x.offeredPps)} offered; ` +
          `at ${fmtInt(y.offeredPps)} offered, ${fmtPct(y.delivered)} delivered, ${fmtInt(y.coreNsPerPkt)} core ns/pkt`,
      );
    }
  }
  await guard.cleanup();
  return { on: summarise(full.on), off: summarise(full.off), pacedPps: pacedPps!, pacedOn: summarise(paced.on), pacedOff: summarise(paced.off) };
}

async function main(): Promise<void> {
  const opt = options();
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    console.error('bench:forward: must run as root on Linux (it builds network namespaces): sudo npm run bench:forward');
    process.exit(2);
  }
  if (!nativeAvailable()) {
    console.error('bench:forward: the native packet addon is not built (npm run build:native)');
    process.exit(2);
  }
  if (opt.pin && !findTool('taskset')) {
    console.error('bench:forward: taskset (util-linux) is needed to pin the generator and the director; or pass --no-pin');
    process.exit(2);
  }
  const started = Date.now();
  const mach = { ...machine(), date: new Date().toISOString().slice(0, 10) };
  try {
    const one = opt.filterGainOnly ? null : await singleDirector(opt);
    const gain = opt.filterGain ? await filterGain(opt) : null;
    if (guard.interrupted) return;

    const note = opt.pin
      ? `generator on CPU ${GEN_CPU}; saru (all threads) and the director's eth0 receive processing (RPS) on CPU ${FWD_CPU}; kernel forwarding on CPU ${FWD_CPU} (RPS)`
      : 'no pinning: generator, director and softirq work wherever the scheduler puts them';
    const out: string[] = [];
    out.push(
      `bench:forward — ${mach.cpu} x ${mach.cores}, Linux ${mach.kernel}, Node ${mach.node}, ${mach.date}`,
      `${opt.flows} flows, ${opt.seconds} s per measurement, median of ${opt.runs} run(s); ${note}; generator rx mode ${opt.genMode}${opt.ioMode ? `, saru io_mode ${opt.ioMode}` : ''}`,
    );
    if (one) {
      out.push('', 'One director (DR) against the kernel forwarding the same traffic between the same namespaces:', '');
      const head1 = [
        'frame',
        'Saru pps',
        'kernel pps',
        'Saru / kernel',
        'core busy (Saru / kernel)',
        'core ns/pkt (Saru / kernel)',
        'per core-second',
        'Saru process ns/pkt',
        'offered pps (Saru / kernel)',
        'Saru delivered',
        'ring drops',
      ];
      const rows1 = SIZES.map((s) => {
        const d = one.director[s.key]!;
        const k = one.kernel[s.key]!;
        return [
          s.label,
          fmtInt(d.pps),
          fmtInt(k.pps),
          (d.pps / k.pps).toFixed(2),
          `${fmtPct(d.coreBusy)} / ${fmtPct(k.coreBusy)}`,
          `${fmtInt(d.coreNsPerPkt)} / ${fmtInt(k.coreNsPerPkt)}`,
          (k.coreNsPerPkt / d.coreNsPerPkt).toFixed(2),
          fmtInt(d.procNsPerPkt),
          `${fmtInt(d.offeredPps)} / ${fmtInt(k.offeredPps)}`,
          fmtPct(d.delivered),
          fmtInt(d.kernelDrops),
        ];
      });
      out.push(table(head1, rows1));
      out.push(
        '',
        'pps: frames counted at the sink per second of sending. core busy: share of the forwarding CPU in use (wall time minus',
        'measured idle time; softirq included). core ns/pkt: that busy time per forwarded frame. per core-second: Saru\'s',
        'frames per CPU-second over the kernel\'s (kernel ns/pkt over Saru ns/pkt), the ratio at equal CPU when one of them',
        'does not fill its core. Saru process ns/pkt: the daemon\'s threads\' CPU time per forwarded frame (it includes the',
        'softirq work that interrupted them). A forwarder below 100% busy did not set the rate: the generator did.',
      );
      if (one.brNetfilter) out.push('(br_netfilter was active in the switch namespace; the bench turned bridge-nf-call-* off there.)');
    }
    if (gain) {
      out.push('', 'Socket filter gain, 3 directors with static thirds, 64-byte frames, at full load and at a fixed load:', '');
      const head2 = [
        'socket filter',
        'offered pps',
        'forwarded pps',
        'delivered',
        'core busy',
        'core ns/pkt',
        'directors\' CPU ns/pkt',
        'frames/s into user space (d1 / d2 / d3)',
        'ring drops',
      ];
      const row = (name: string, s: Summary): string[] => [
        name,
        fmtInt(s.offeredPps),
        fmtInt(s.pps),
        fmtPct(s.delivered),
        fmtPct(s.coreBusy),
        fmtInt(s.coreNsPerPkt),
        fmtInt(s.procNsPerPkt),
        s.rxFramesPerDirector.map(fmtInt).join(' / '),
        fmtInt(s.kernelDrops),
      ];
      out.push(table(head2, [row('on (default)', gain.on), row('off', gain.off), row('on (default)', gain.pacedOn), row('off', gain.pacedOff)]));
      out.push(
        '',
        `full load: ${(gain.on.pps / gain.off.pps).toFixed(2)}x the forwarded pps with the filter; ` +
          `at ${fmtInt(gain.pacedPps)} pps offered: ${(gain.pacedOff.coreNsPerPkt / gain.pacedOn.coreNsPerPkt).toFixed(2)}x less forwarding-core time ` +
          `and ${(gain.pacedOff.procNsPerPkt / gain.pacedOn.procNsPerPkt).toFixed(2)}x less director CPU per forwarded frame.`,
      );
    }
    out.push('', 'README (markdown):');
    if (one) {
      out.push(
        '',
        table(
          ['frame', 'Saru, 1 director', 'kernel forwarding', 'ratio', 'ratio per core-second', 'CPU per packet (Saru / kernel)', 'offered (Saru / kernel)'],
          SIZES.map((s) => {
            const d = one.director[s.key]!;
            const k = one.kernel[s.key]!;
            return [
              s.label,
              `${fmtInt(d.pps)} pps`,
              `${fmtInt(k.pps)} pps`,
              `${((d.pps / k.pps) * 100).toFixed(0)}%`,
              `${((k.coreNsPerPkt / d.coreNsPerPkt) * 100).toFixed(0)}%`,
              `${fmtInt(d.coreNsPerPkt)} / ${fmtInt(k.coreNsPerPkt)} ns`,
              `${fmtInt(d.offeredPps)} / ${fmtInt(k.offeredPps)} pps`,
            ];
          }),
        ),
      );
    }
    if (gain) {
      out.push(
        '',
        table(
          ['3 directors, 64 B', 'forwarded at full load', `CPU per packet at ${fmtInt(gain.pacedPps)} pps: core / directors' threads`, 'frames into each director\'s user space'],
          [
            [
              'socket filter on',
              `${fmtInt(gain.on.pps)} pps`,
              `${fmtInt(gain.pacedOn.coreNsPerPkt)} / ${fmtInt(gain.pacedOn.procNsPerPkt)} ns`,
              `${fmtPct(median(gain.pacedOn.rxFramesPerDirector) / gain.pacedOn.offeredPps)} of the offered`,
            ],
            [
              'socket filter off',
              `${fmtInt(gain.off.pps)} pps`,
              `${fmtInt(gain.pacedOff.coreNsPerPkt)} / ${fmtInt(gain.pacedOff.procNsPerPkt)} ns`,
              `${fmtPct(median(gain.pacedOff.rxFramesPerDirector) / gain.pacedOff.offeredPps)} of the offered`,
            ],
          ],
        ),
      );
    }
    const summaries = [...(one ? [...Object.values(one.director), ...Object.values(one.kernel)] : []), ...(gain ? [gain.on, gain.off, gain.pacedOn, gain.pacedOff] : [])];
    const other = Math.max(...summaries.map((x) => x.otherLoad));
    const used = Math.min(...summaries.map((x) => x.samplesUsed));
    out.push(
      '',
      other > OTHER_LOAD_LIMIT
        ? `Disturbed: other processes on the machine used up to ${fmtPct(other)} of a CPU during measurements the medians had to use; treat these numbers with care.`
        : `Other processes used at most ${fmtPct(other)} of a CPU during the measurements used (medians of at least ${used} undisturbed run(s) of ${opt.runs}).`,
    );
    out.push('', `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
    console.log(out.join('\n'));

    if (opt.json) {
      const result: Record<string, unknown> = {
        bench: 'forward',
        ...mach,
        flows: opt.flows,
        seconds: opt.seconds,
        runs: opt.runs,
        pinned: opt.pin,
        other_load_max: Number(other.toFixed(3)),
        generatorMode: opt.genMode,
        ioMode: opt.ioMode ?? 'default',
      };
      if (one) {
        for (const s of SIZES) {
          const d = one.director[s.key]!;
          const k = one.kernel[s.key]!;
          result[`director_pps_${s.key}`] = Math.round(d.pps);
          result[`kernel_pps_${s.key}`] = Math.round(k.pps);
          result[`ratio_${s.key}`] = Number((d.pps / k.pps).toFixed(3));
          result[`director_offered_pps_${s.key}`] = Math.round(d.offeredPps);
          result[`kernel_offered_pps_${s.key}`] = Math.round(k.offeredPps);
          result[`director_core_ns_per_pkt_${s.key}`] = Math.round(d.coreNsPerPkt);
          result[`kernel_core_ns_per_pkt_${s.key}`] = Math.round(k.coreNsPerPkt);
          result[`director_process_ns_per_pkt_${s.key}`] = Math.round(d.procNsPerPkt);
          result[`ratio_per_core_second_${s.key}`] = Number((k.coreNsPerPkt / d.coreNsPerPkt).toFixed(3));
          result[`director_core_busy_${s.key}`] = Number(d.coreBusy.toFixed(3));
          result[`kernel_core_busy_${s.key}`] = Number(k.coreBusy.toFixed(3));
          result[`director_ring_drops_${s.key}`] = d.kernelDrops;
      }
      result.details = { director: one.director, kernel: one.kernel };
      }
      if (gain) {
        result.filter_gain = {
          pps_filter_on: Math.round(gain.on.pps),
          pps_filter_off: Math.round(gain.off.pps),
          pps_ratio: Number((gain.on.pps / gain.off.pps).toFixed(3)),
          offered_pps_on: Math.round(gain.on.offeredPps),
          offered_pps_off: Math.round(gain.off.offeredPps),
          paced_offered_pps: gain.pacedPps,
          paced_delivered_on: Number(gain.pacedOn.delivered.toFixed(3)),
          paced_delivered_off: Number(gain.pacedOff.delivered.toFixed(3)),
          paced_core_ns_per_pkt_on: Math.round(gain.pacedOn.coreNsPerPkt),
          paced_core_ns_per_pkt_off: Math.round(gain.pacedOff.coreNsPerPkt),
          paced_core_ratio: Number((gain.pacedOff.coreNsPerPkt / gain.pacedOn.coreNsPerPkt).toFixed(3)),
          paced_process_ns_per_pkt_on: Math.round(gain.pacedOn.procNsPerPkt),
          paced_process_ns_per_pkt_off: Math.round(gain.pacedOff.procNsPerPkt),
          paced_process_ratio: Number((gain.pacedOff.procNsPerPkt / gain.pacedOn.procNsPerPkt).toFixed(3)),
          paced_rx_fps_per_director_on: gain.pacedOn.rxFramesPerDirector.map(Math.round),
          paced_rx_fps_per_director_off: gain.pacedOff.rxFramesPerDirector.map(Math.round),
          details: gain,
        };
      }
      console.log(JSON.stringify(result));
    }
  } finally {
    await guard.cleanup();
  }
}

main().catch(async (e: Error) => {
  if (guard.interrupted) return;
  await guard.cleanup();
  // Our own errors say what failed; a stack helps only with a bug (--verbose).
  const verbose = process.argv.includes('--verbose');
  console.error(`bench:forward: ${e instanceof Error ? (verbose ? (e.stack ?? e.message) : e.message) : String(e)}`);
  process.exit(1);
});
