/**
 * Failover benchmark:
 *   npm run bench:failover [-- --json] [-- --quick] [-- --kills N] [-- --sim-budget S] [-- --verbose]
 * Method, results and limits: docs/bench-failover.md.
 *
 * Part 1, root only: the namespace testbed with prefix "bf" (3 directors
 * with the coordinator, 2 real servers, DR), torn down in a finally and on
 * SIGINT/SIGTERM/SIGHUP. K times (24; --quick 6): SIGKILL a director
 * (round-robin), read the survivors' `takeover` log lines (each survivor's
 * time from the dead director's last heartbeat to its data plane forwarding
 * the buckets it took; the round's takeover time is the largest, because the
 * dead director's buckets are all served only once the slowest survivor
 * forwards), while a timestamping HTTP probe in the client namespace
 * measures what clients see; then restart the director and wait until all
 * three share one allocation again.
 *
 * Part 2, no root needed: the wall time of allocate() for 16, 64 and 256
 * members (1,024 and 16,384 buckets), fresh and after one member left; and
 * the coordinator's failover in the deterministic simulator (saru/coord/sim),
 * in virtual time: crash a node, step until every bucket has exactly one
 * live owner again.
 *
 * Prints a table on stdout, progress on stderr, and with --json one JSON
 * object on the last line (takeover_ms_p50, takeover_ms_p99, kills,
 * lost_after_takeover and the rest). Percentiles are nearest-rank.
 * Exit status: 2 when the testbed cannot run (not root: part 2 still runs
 * and prints), 1 when a round failed (a takeover line missing, the
 * survivors not settling), 0 otherwise, whether or not the target
 * (p99 <= 500 ms) is met. Touches nothing outside the testbed's namespaces
 * and state directory.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ClusterInfo } from '../saru/control.js';
import { Prng, Simulation, allocate, type AllocMember } from '../saru/coord/index.js';
import { LogTail, Testbed, TestbedGuard, lineTime, memberDownLines, sliceBuckets, takeoverLines as takeoverLogLines, type LogLine, type ProbeOutcome } from '../saru/testbed/index.js';
import { machine, median, sleep, table } from './common.js';

const PREFIX = 'bf';
const DIRECTORS = [1, 2, 3];
const PROBE = fileURLToPath(new URL('../saru/testbed/probe.js', import.meta.url));
const VIP_URL = 'http://198.18.0.100/';
const PARALLEL = 8;
/** Probe traffic before the kill, and after it (long enough for a SYN retransmitted at 1 s and 3 s). */
const PRE_KILL_MS = 1000;
const POST_KILL_MS = 3500;
/** The probe's per-request limit (3 s: a request survives one lost SYN, as the e2e tests assume). */
const PROBE_TIMEOUT_MS = 3000;
/** How long the survivors have to log their takeovers before the round fails. */
const TAKEOVER_WAIT_MS = 5000;
/** A request counts as lost after the takeover when it started this long after kill + takeover time. */
const AFTER_TAKEOVER_SLACK_MS = 10;
const TARGET_P99_MS = 500;
const MEMBER_COUNTS = [16, 64, 256] as const;
const ALLOC_BUCKETS = [1024, 16384] as const;
const SIM_BUCKETS = 1024;

// ---- options ---------------------------------------------------------------------

interface Options {
  json: boolean;
  quick: boolean;
  kills: number;
  /** Wall-clock budget of the simulation per member count, ms. */
  simBudgetMs: number;
  verbose: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      kills: { type: 'string' },
      'sim-budget': { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const quick = values.quick === true;
  const num = (name: string, v: string | undefined, dflt: number, lo: number, hi: number): number => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer ${lo}..${hi}, got "${v}"`);
    return n;
  };
  return {
    json: values.json === true,
    quick,
    kills: num('kills', values.kills, quick ? 6 : 24, 1, 1000),
    simBudgetMs: num('sim-budget', values['sim-budget'], 60, 1, 3600) * 1000,
    verbose: values.verbose === true,
  };
}

// ---- small helpers -----------------------------------------------------------------

const progress = (line: string): void => {
  process.stderr.write(`bench:failover: ${line}\n`);
};

/** Nearest-rank percentile (q in (0, 1]): the ceil(q * n)-th smallest value; NaN for none. */
function percentile(xs: readonly number[], q: number): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.max(0, Math.ceil(q * v.length) - 1)]!;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '—';
}

/** A number for the JSON (null when not measured). */
function jnum(n: number, digits = 0): number | null {
  return Number.isFinite(n) ? Number(n.toFixed(digits)) : null;
}


function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---- part 1: kills in the testbed ----------------------------------------------------------

/** Buckets listed in a slice text ("0-341,700-710"), as a 0/1 mask. */
function sliceMask(slice: string, buckets: number): Uint8Array {
  const m = new Uint8Array(buckets);
  for (const x of sliceBuckets(slice, buckets)) m[x] = 1;
  return m;
}

interface SurvivorTakeover {
  director: number;
  /** Largest takeoverMs this survivor logged for the victim (it may take buckets in more than one epoch). */
  takeoverMs: number;
  buckets: number;
  epoch: number;
  /** When it logged it (wall clock), ms after the kill. */
  loggedAfterKillMs: number;
  /** Its "member down" lastHeardMs for the victim (NaN: not logged). */
  declaredDeadMs: number;
}

interface Round {
  round: number;
  victim: number;
  victimWasMaster: boolean;
  victimBuckets: number;
  killAt: number;
  /** Max over survivors of takeoverMs (NaN when the round failed). */
  takeoverMs: number;
  /** Kill -> the last survivor's takeover line (wall clock). */
  killToForwardMs: number;
  /** Last heartbeat -> declared dead, the slowest survivor. */
  declaredDeadMs: number;
  survivors: SurvivorTakeover[];
  /** Kill -> end of the first successful request started after the kill in the victim's buckets (NaN: none). */
  outageMs: number;
  requests: number;
  failed: number;
  /** Failed requests that started after kill + takeover + slack. */
  lostAfterTakeover: number;
  /** Failed requests that started before that (in flight at the kill, or in the takeover window). */
  lostInWindow: number;
  /** Of those, the ones started before the kill. */
  lostInFlight: number;
  /** Those by error text. */
  windowErrors: Record<string, number>;
  /** The first few of them: [start ms after the kill, duration ms, client port (0: never connected), in the victim's buckets]. */
  windowFailures: Array<[number, number, number, boolean]>;
  /** The lost-after-takeover requests, for the report: [ms after the kill, client port, error]. */
  lateFailures: Array<[number, number, string]>;
  error?: string;
}

async function runProbe(tb: Testbed, ms: number): Promise<ProbeOutcome[]> {
  const r = await tb.exec(
    tb.nsName('client'),
    process.execPath,
    [PROBE, '--url', VIP_URL, '--parallel', String(PARALLEL), '--duration', String(ms), '--timeout', String(PROBE_TIMEOUT_MS)],
    { timeoutMs: ms + PROBE_TIMEOUT_MS + 20_000 },
  );
  if (r.code !== 0) throw new Error(`probe exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ProbeOutcome);
}

/** One kill: the directors are all up and settled when it starts; the victim is dead when it ends. */
async function killRound(tb: Testbed, round: number, victim: number, before: Map<number, ClusterInfo>): Promise<Round> {
  const bv = before.get(victim)!;
  const mask = sliceMask(bv.slice, tb.buckets);
  const survivors = DIRECTORS.filter((i) => i !== victim);
  const r: Round = {
    round,
    victim,
    victimWasMaster: bv.coordinator?.isMaster === true,
    victimBuckets: bv.ownedBuckets,
    killAt: 0,
    takeoverMs: NaN,
    killToForwardMs: NaN,
    declaredDeadMs: NaN,
    survivors: [],
    outageMs: NaN,
    requests: 0,
    failed: 0,
    lostAfterTakeover: 0,
    lostInWindow: 0,
    lostInFlight: 0,
    windowErrors: {},
    windowFailures: [],
    lateFailures: [],
  };
  const tails = new Map(survivors.map((i) => [i, new LogTail(join(tb.directorDir(i), 'saru.log'))]));
  const seen = new Map<number, LogLine[]>(survivors.map((i) => [i, []]));
  const collect = (): void => {
    for (const i of survivors) seen.get(i)!.push(...tails.get(i)!.read());
  };
  const takeoverLines = (i: number): LogLine[] => takeoverLogLines(seen.get(i)!, victim, r.killAt);

  const probing = runProbe(tb, PRE_KILL_MS + POST_KILL_MS);
  probing.catch(() => {}); // handled where it is awaited; not an unhandled rejection meanwhile (SIGINT kills the probe)
  await sleep(PRE_KILL_MS);
  r.killAt = Date.now();
  tb.killDirector(victim);

  // Wait for the takeover lines by reading the logs (cheap), not by polling the
  // control sockets: each saruadm call is a node process competing for the CPU.
  const errors: string[] = [];
  while (Date.now() - r.killAt < TAKEOVER_WAIT_MS) {
    collect();
    if (survivors.every((i) => takeoverLines(i).length > 0)) break;
    await sleep(20);
  }
  let after: Map<number, ClusterInfo> | undefined;
  try {
    after = await tb.waitForAllocation(survivors, 10_000);
  } catch (e) {
    errors.push(`the survivors did not settle: ${errorText(e)}`);
  }
  collect();
  // Every survivor that now owns some of the victim's buckets must have logged its takeover.
  const expected = after
    ? survivors.filter((i) => {
        const m = sliceMask(after!.get(i)!.slice, tb.buckets);
        return m.some((x, b) => x === 1 && mask[b] === 1);
      })
    : survivors;
  for (const i of expected) {
    const lines = takeoverLines(i);
    if (lines.length === 0) {
      errors.push(`director ${i} logged no takeover from ${victim} within ${TAKEOVER_WAIT_MS} ms of the kill`);
      continue;
    }
    const ms = lines.map((l) => (typeof l.takeoverMs === 'number' ? l.takeoverMs : NaN));
    if (ms.some((x) => !Number.isFinite(x))) {
      errors.push(`director ${i} logged a takeover from ${victim} without a duration: ${JSON.stringify(lines)}`);
      continue;
    }
    const down = memberDownLines(seen.get(i)!, victim, r.killAt);
    const last = lines.reduce((a, b) => (lineTime(b) > lineTime(a) ? b : a));
    r.survivors.push({
      director: i,
      takeoverMs: Math.max(...ms),
      buckets: lines.reduce((s, l) => s + (typeof l.buckets === 'number' ? l.buckets : 0), 0),
      epoch: typeof last.epoch === 'number' ? last.epoch : NaN,
      loggedAfterKillMs: lineTime(last) - r.killAt,
      declaredDeadMs: down.length > 0 && typeof down[0]!.lastHeardMs === 'number' ? Math.round(down[0]!.lastHeardMs) : NaN,
    });
  }
  if (errors.length === 0) {
    r.takeoverMs = Math.max(...r.survivors.map((s) => s.takeoverMs));
    r.killToForwardMs = Math.max(...r.survivors.map((s) => s.loggedAfterKillMs));
    const dd = r.survivors.map((s) => s.declaredDeadMs).filter(Number.isFinite);
    if (dd.length > 0) r.declaredDeadMs = Math.max(...dd);
    const taken = r.survivors.reduce((s, x) => s + x.buckets, 0);
    if (taken !== r.victimBuckets) errors.push(`the survivors' takeover lines count ${taken} buckets, the victim owned ${r.victimBuckets}`);
  }

  let outcomes: ProbeOutcome[] = [];
  try {
    outcomes = await probing;
  } catch (e) {
    errors.push(`probe: ${errorText(e)}`);
  }
  r.requests = outcomes.length;
  const bucketMask = tb.buckets - 1;
  for (const o of outcomes) {
    if (o.ok) {
      if (o.t0 >= r.killAt && o.sport > 0 && mask[o.sport & bucketMask] === 1) {
        const d = o.t1 - r.killAt;
        if (!(d >= r.outageMs)) r.outageMs = d;
      }
      continue;
    }
    r.failed++;
    if (!Number.isFinite(r.takeoverMs)) continue; // unclassified: the round failed anyway
    if (o.t0 > r.killAt + r.takeoverMs + AFTER_TAKEOVER_SLACK_MS) {
      r.lostAfterTakeover++;
      r.lateFailures.push([o.t0 - r.killAt, o.sport, o.err || `HTTP ${o.status}`]);
    } else {
      r.lostInWindow++;
      if (o.t0 < r.killAt) r.lostInFlight++;
      if (r.windowFailures.length < 10) r.windowFailures.push([o.t0 - r.killAt, o.t1 - o.t0, o.sport, o.sport > 0 && mask[o.sport & bucketMask] === 1]);
      const why = o.err || `HTTP ${o.status}`;
      r.windowErrors[why] = (r.windowErrors[why] ?? 0) + 1;
    }
  }
  if (errors.length > 0) r.error = errors.join('; ');
  return r;
}

interface TestbedResult {
  rounds: Round[];
  keepaliveMs: number;
  deadtimeMs: number;
  wallMs: number;
  /** Why the rounds stopped early (the testbed broke). */
  aborted?: string;
}

const guard = new TestbedGuard(PREFIX, progress);

async function kills(opt: Options): Promise<TestbedResult> {
  const t0 = Date.now();
  const tb = new Testbed({ prefix: PREFIX, directors: DIRECTORS.length, realServers: 2, jsonLogs: true, ...(opt.verbose ? { log: progress } : {}) });
  guard.use(tb);
  progress(`testbed "${PREFIX}": ${DIRECTORS.length} directors with the coordinator, 2 real servers, DR`);
  const rounds: Round[] = [];
  let aborted: string | undefined;
  try {
    await tb.up();
  } catch (e) {
    await guard.cleanup();
    throw e;
  }
  try {
    await tb.waitForAllocation(DIRECTORS, 30_000);
    for (let k = 0; k < opt.kills && !guard.interrupted; k++) {
      const victim = DIRECTORS[k % DIRECTORS.length]!;
      const before = await tb.waitForAllocation(DIRECTORS, 30_000);
      const r = await killRound(tb, k + 1, victim, before);
      rounds.push(r);
      progress(
        `kill ${k + 1}/${opt.kills}: director ${victim}${r.victimWasMaster ? ' (master)' : ''}, ${r.victimBuckets} buckets: ` +
          (r.error
            ? `FAILED: ${r.error}`
            : `takeover ${fmt(r.takeoverMs)} ms (${r.survivors.map((s) => `d${s.director} ${s.takeoverMs} ms/${s.buckets} b`).join(', ')}), ` +
              `kill->forwarding ${fmt(r.killToForwardMs)} ms, client outage ${fmt(r.outageMs)} ms, ` +
              `${r.requests} requests, ${r.lostInWindow} lost in the window, ${r.lostAfterTakeover} after`),
      );
      await tb.startDirector(victim);
    }
    if (!guard.interrupted) await tb.waitForAllocation(DIRECTORS, 30_000);
  } catch (e) {
    aborted = `after ${rounds.length} kill(s): ${errorText(e)}`;
    progress(`ABORTED ${aborted}`);
  } finally {
    await guard.cleanup();
  }
  return { rounds, keepaliveMs: tb.keepaliveMs, deadtimeMs: tb.deadtimeMs, wallMs: Date.now() - t0, ...(aborted ? { aborted } : {}) };
}

// ---- part 2a: allocate() -------------------------------------------------------------------

interface AllocTiming {
  members: number;
  buckets: number;
  freshUs: number;
  removedUs: number;
  /** Buckets that changed owner when the member left (= the departed member's share, by design). */
  moved: number;
  calls: number;
}

/** Median µs of one allocate() call, each call timed alone, for `budgetMs` after a warm-up. */
function timeAllocate(buckets: number, members: AllocMember[], previous: Int32Array | null, budgetMs: number): { us: number; calls: number } {
  for (let i = 0; i < 20; i++) allocate(buckets, members, previous);
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while (samples.length < 50 || (performance.now() < end && samples.length < 100_000)) {
    const t = process.hrtime.bigint();
    allocate(buckets, members, previous);
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return { us: median(samples), calls: samples.length };
}

function allocBench(opt: Options): AllocTiming[] {
  const budget = opt.quick ? 100 : 400;
  const out: AllocTiming[] = [];
  for (const n of MEMBER_COUNTS) {
    for (const buckets of ALLOC_BUCKETS) {
      const members: AllocMember[] = Array.from({ length: n }, (_, i) => ({ id: i + 1, weight: 1 }));
      const fresh = allocate(buckets, members, null);
      const gone = Math.ceil(n / 2);
      const rest = members.filter((m) => m.id !== gone);
      const next = allocate(buckets, rest, fresh);
      let moved = 0;
      for (let b = 0; b < buckets; b++) if (next[b] !== fresh[b]) moved++;
      const f = timeAllocate(buckets, members, null, budget);
      const r = timeAllocate(buckets, rest, fresh, budget);
      out.push({ members: n, buckets, freshUs: f.us, removedUs: r.us, moved, calls: Math.min(f.calls, r.calls) });
      progress(`allocate(): ${n} members, ${buckets} buckets: fresh ${fmt(f.us, 1)} µs, member removed ${fmt(r.us, 1)} µs (${moved} buckets moved)`);
    }
  }
  return out;
}

// ---- part 2b: the simulator ----------------------------------------------------------------

interface SimCrash {
  victim: number;
  master: boolean;
  /** Virtual ms from the crash to every bucket owned by exactly one live node. */
  virtualMs: number;
  /** The longest any survivor had not heard from the victim at the crash (so virtualMs + this: last heard -> converged, as the testbed's takeover time). */
  heardAgeMs: number;
  wallMs: number;
}

interface SimRun {
  members: number;
  crashesPlanned: number;
  crashes: SimCrash[];
  bootVirtualMs: number;
  bootWallMs: number;
  wallMs: number;
  violations: string[];
  /** Why it stopped early or did not run (empty: it ran as planned). */
  note: string;
}

/**
 * Step until the cluster has converged; the virtual ms it took, or NaN when
 * `limitMs` of virtual time or the wall deadline passed first.
 */
function converge(sim: Simulation, limitMs: number, wallDeadline: number): number {
  const start = sim.now();
  while (sim.unconverged() !== null) {
    if (sim.now() - start > limitMs || performance.now() > wallDeadline) return NaN;
    sim.step();
  }
  return sim.now() - start;
}

function simBench(members: number, crashes: number, budgetMs: number, seed: number): SimRun {
  const t0 = performance.now();
  const deadline = t0 + budgetMs;
  const run: SimRun = { members, crashesPlanned: crashes, crashes: [], bootVirtualMs: NaN, bootWallMs: NaN, wallMs: NaN, violations: [], note: '' };
  const ids = Array.from({ length: members }, (_, i) => i + 1);
  // Every node ready at once (no staggered sync): one allocation at bootstrap
  // instead of one per join, which keeps 256 members within the budget; what
  // is measured (a crash after convergence) does not depend on it.
  const sim = new Simulation({ seed, ids, buckets: SIM_BUCKETS, keepaliveMs: 100, deadtimeMs: 300, syncDelayMs: [0, 0] });
  const phase = new Prng(seed ^ 0x6b6b);
  const limit = 30_000;
  run.bootVirtualMs = converge(sim, limit, deadline);
  run.bootWallMs = performance.now() - t0;
  if (!Number.isFinite(run.bootVirtualMs)) {
    run.note = performance.now() > deadline ? `bootstrap did not converge within ${budgetMs / 1000} s of wall time (virtual ${sim.now()} ms)` : `bootstrap did not converge in ${limit} virtual ms: ${sim.unconverged()}`;
  }
  for (let k = 0; k < crashes && run.note === ''; k++) {
    // Crash at different points of the heartbeat cycle.
    sim.run(phase.int(0, Math.floor(sim.keepaliveMs / sim.stepMs) - 1) * sim.stepMs);
    const master = sim.node(1)?.status().master ?? -1;
    const others = ids.filter((id) => id !== master);
    const victim = k % 2 === 0 && master > 0 ? master : others[others.length - 1 - (k >> 1) % others.length]!;
    let age = 0;
    for (const id of ids) {
      if (id === victim || !sim.isUp(id)) continue;
      const a = sim.node(id)!.status().members.find((m) => m.id === victim)?.lastHeartbeatAgeMs;
      if (typeof a === 'number' && a > age) age = a;
    }
    const w = performance.now();
    sim.crash(victim);
    const v = converge(sim, limit, deadline);
    if (!Number.isFinite(v)) {
      run.note = performance.now() > deadline ? `stopped after ${run.crashes.length} of ${crashes} crashes: ${budgetMs / 1000} s wall budget spent` : `no convergence ${limit} virtual ms after crashing ${victim}: ${sim.unconverged()}`;
      break;
    }
    run.crashes.push({ victim, master: victim === master, virtualMs: v, heardAgeMs: age, wallMs: Math.round(performance.now() - w) });
    if (k === crashes - 1) break;
    sim.restart(victim);
    if (!Number.isFinite(converge(sim, limit, deadline))) {
      run.note = performance.now() > deadline ? `stopped after ${run.crashes.length} of ${crashes} crashes: ${budgetMs / 1000} s wall budget spent` : `no convergence after restarting ${victim}: ${sim.unconverged()}`;
    }
  }
  run.violations = sim.violations.slice();
  run.wallMs = performance.now() - t0;
  return run;
}

function simulations(opt: Options): SimRun[] {
  const out: SimRun[] = [];
  for (const n of MEMBER_COUNTS) {
    if (opt.quick && n > 64) {
      out.push({ members: n, crashesPlanned: 0, crashes: [], bootVirtualMs: NaN, bootWallMs: NaN, wallMs: 0, violations: [], note: 'not run with --quick (about a minute of wall time)' });
      progress(`simulation: ${n} members: not run with --quick`);
      continue;
    }
    const crashes = n >= 256 ? 4 : opt.quick ? 4 : 10;
    progress(`simulation: ${n} members, ${crashes} crashes (wall budget ${opt.simBudgetMs / 1000} s)...`);
    const r = simBench(n, crashes, opt.simBudgetMs, 0x5a12 + n);
    out.push(r);
    progress(
      `simulation: ${n} members: bootstrap ${fmt(r.bootVirtualMs)} virtual ms in ${fmt(r.bootWallMs / 1000, 1)} s; ` +
        `crash -> converged ${r.crashes.map((c) => `${c.virtualMs}${c.master ? 'm' : ''}`).join(' ')} virtual ms (m: the master crashed); ${fmt(r.wallMs / 1000, 1)} s wall` +
        (r.note ? `; ${r.note}` : '') +
        (r.violations.length ? `; ${r.violations.length} invariant violations` : ''),
    );
  }
  return out;
}

// ---- main ------------------------------------------------------------------------------

const REFERENCE =
  'Reference detection times: heartbeat deadtime 10 s (keepalive 2 s, the ha.cf of the ldirectord and Saru setups), ' +
  'VRRP master-down 3 x advert 1 s + skew ~ 3.6 s, corosync token 1 s (+ consensus 1.2 s)';

async function main(): Promise<void> {
  const opt = options();
  const started = Date.now();
  const mach = machine();
  const date = new Date().toISOString().slice(0, 10);
  let cannot = '';
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    cannot = 'the testbed part must run as root on Linux (it builds network namespaces): sudo npm run bench:failover';
    console.error(`bench:failover: ${cannot}; running the allocation and simulation parts only`);
  }

  let tbr: TestbedResult | null = null;
  if (cannot === '') {
    try {
      tbr = await kills(opt);
    } catch (e) {
      if (guard.interrupted) return;
      cannot = `the testbed failed: ${errorText(e)}`;
      console.error(`bench:failover: ${cannot}`);
    }
  }
  if (guard.interrupted) return;
  const alloc = allocBench(opt);
  const sims = simulations(opt);

  // ---- the report ----
  const out: string[] = [];
  out.push(`bench:failover  ${date}  ${mach.cpu} x ${mach.cores}, Linux ${mach.kernel}  node ${mach.node}`);
  out.push('');
  const good = tbr ? tbr.rounds.filter((r) => r.error === undefined) : [];
  const failedRounds = tbr ? tbr.rounds.filter((r) => r.error !== undefined) : [];
  const take = good.map((r) => r.takeoverMs);
  const outage = good.map((r) => r.outageMs).filter(Number.isFinite);
  const sum = (f: (r: Round) => number): number => good.reduce((s, r) => s + f(r), 0);
  const windowErrors: Record<string, number> = {};
  for (const r of good) for (const [k, v] of Object.entries(r.windowErrors)) windowErrors[k] = (windowErrors[k] ?? 0) + v;
  const windowText = Object.entries(windowErrors)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} "${k}"`)
    .join(', ');
  const p50 = percentile(take, 0.5);
  const p99 = percentile(take, 0.99);
  const max = percentile(take, 1);
  if (tbr) {
    const ktf = good.map((r) => r.killToForwardMs);
    const dead = good.map((r) => r.declaredDeadMs);
    const masters = good.filter((r) => r.victimWasMaster).map((r) => r.takeoverMs);
    const others = good.filter((r) => !r.victimWasMaster).map((r) => r.takeoverMs);
    out.push(
      `Takeover (testbed, ${DIRECTORS.length} directors, keepalive ${tbr.keepaliveMs} ms, deadtime ${tbr.deadtimeMs} ms), ${tbr.rounds.length} kills` +
        (failedRounds.length ? ` (${failedRounds.length} FAILED)` : '') +
        `, ${PARALLEL} parallel HTTP clients (a new connection per request)`,
      `  takeover ms      p50 ${fmt(p50).padStart(4)}  p99 ${fmt(p99).padStart(4)}  max ${fmt(max).padStart(4)}   (last heartbeat of the dead director -> survivors forwarding its buckets, slowest survivor)`,
      `  kill->forwarding p50 ${fmt(percentile(ktf, 0.5)).padStart(4)}  p99 ${fmt(percentile(ktf, 0.99)).padStart(4)}  max ${fmt(percentile(ktf, 1)).padStart(4)}   (SIGKILL -> the slowest survivor's takeover log line, wall clock)`,
      `  declared dead    p50 ${fmt(percentile(dead, 0.5)).padStart(4)}  p99 ${fmt(percentile(dead, 0.99)).padStart(4)}  max ${fmt(percentile(dead, 1)).padStart(4)}   (last heartbeat -> "member down", slowest survivor)`,
      `  by victim        master killed p50 ${fmt(percentile(masters, 0.5))} (${masters.length} kills), other killed p50 ${fmt(percentile(others, 0.5))} (${others.length} kills)`,
      `  client outage    p50 ${fmt(percentile(outage, 0.5)).padStart(4)}  p99 ${fmt(percentile(outage, 0.99)).padStart(4)}  max ${fmt(percentile(outage, 1)).padStart(4)}   (kill -> first success in the dead director's buckets; ${outage.length} of ${good.length} rounds had one)`,
      `  requests ${sum((r) => r.requests)}, failed ${sum((r) => r.failed)}: lost after takeover: ${sum((r) => r.lostAfterTakeover)}   in flight at the kill or in the window: ${sum((r) => r.lostInWindow)}` +
        (windowText ? ` (${sum((r) => r.lostInFlight)} started before the kill; ${windowText})` : ''),
      `  target p99 <= ${TARGET_P99_MS} ms: ${Number.isFinite(p99) && p99 <= TARGET_P99_MS ? 'met' : 'NOT met'}`,
    );
    const slow = good.filter((r) => r.takeoverMs > TARGET_P99_MS);
    for (const r of slow) {
      out.push(`  over ${TARGET_P99_MS} ms: kill ${r.round}, director ${r.victim}${r.victimWasMaster ? ' (master)' : ''}: ${r.survivors.map((s) => `d${s.director} takeover ${s.takeoverMs} ms, declared dead after ${fmt(s.declaredDeadMs)} ms, epoch ${s.epoch}`).join('; ')}`);
    }
    for (const r of good.filter((x) => x.lostAfterTakeover > 0)) {
      out.push(`  lost after takeover in kill ${r.round}: ${r.lateFailures.slice(0, 5).map(([t, p, e]) => `+${t} ms port ${p} (${e})`).join(', ')}`);
    }
    for (const r of failedRounds) out.push(`  FAILED kill ${r.round} (director ${r.victim}): ${r.error}`);
    if (tbr.aborted) out.push(`  ABORTED ${tbr.aborted}`);
    out.push(`  (testbed part: ${fmt(tbr.wallMs / 1000)} s)`);
  } else {
    out.push(`Takeover (testbed): NOT RUN: ${cannot}`);
  }

  out.push('', 'Allocation: median µs per allocate() call (ids 1..N, weight 1; "member removed": member ceil(N/2) gone, previous = the fresh allocation)', '');
  out.push(
    table(
      ['members', ...ALLOC_BUCKETS.flatMap((b) => [`${b} buckets fresh µs`, `member removed µs`, 'moved'])],
      MEMBER_COUNTS.map((n) => [
        String(n),
        ...ALLOC_BUCKETS.flatMap((b) => {
          const a = alloc.find((x) => x.members === n && x.buckets === b)!;
          return [fmt(a.freshUs, 1), fmt(a.removedUs, 1), String(a.moved)];
        }),
      ]),
    ),
  );

  out.push(
    '',
    `Simulated failover (saru/coord/sim: ${SIM_BUCKETS} buckets, keepalive 100 ms, deadtime 300 ms, network delay 0-2 ms, 5 ms steps): virtual ms from a crash to every bucket owned by exactly one live node`,
    '',
  );
  out.push(
    table(
      ['members', 'crashes', 'crash -> converged p50', 'max', 'last heard -> converged p50 / max', 'master crashed p50', 'other crashed p50', 'bootstrap (virtual ms / wall s)', 'wall s per failover', 'note'],
      sims.map((s) => {
        const v = s.crashes.map((c) => c.virtualMs);
        const h = s.crashes.map((c) => c.virtualMs + c.heardAgeMs);
        return [
          String(s.members),
          `${s.crashes.length}/${s.crashesPlanned}`,
          fmt(percentile(v, 0.5)),
          fmt(percentile(v, 1)),
          `${fmt(percentile(h, 0.5))} / ${fmt(percentile(h, 1))}`,
          fmt(percentile(s.crashes.filter((c) => c.master).map((c) => c.virtualMs), 0.5)),
          fmt(percentile(s.crashes.filter((c) => !c.master).map((c) => c.virtualMs), 0.5)),
          `${fmt(s.bootVirtualMs)} / ${fmt(s.bootWallMs / 1000, 1)}`,
          fmt(median(s.crashes.map((c) => c.wallMs)) / 1000, 2),
          [s.note, s.violations.length ? `${s.violations.length} invariant violations: ${s.violations[0]}` : ''].filter((x) => x).join('; ') || '-',
        ];
      }),
    ),
  );
  out.push('', REFERENCE, `Percentiles are nearest-rank (the ceil(q*n)-th smallest: with ${good.length || 'n'} kills the p99 is the ${good.length && good.length < 100 ? 'largest' : 'ceil(0.99 n)-th'}).`);
  out.push('', `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
  console.log(out.join('\n'));

  if (opt.json) {
    const allocJson: Record<string, Record<string, number | null>> = {};
    for (const n of MEMBER_COUNTS) {
      const a = alloc.find((x) => x.members === n && x.buckets === 1024)!;
      const b = alloc.find((x) => x.members === n && x.buckets === 16384)!;
      allocJson[String(n)] = {
        fresh: jnum(a.freshUs, 2),
        member_removed: jnum(a.removedUs, 2),
        fresh_16384: jnum(b.freshUs, 2),
        member_removed_16384: jnum(b.removedUs, 2),
      };
    }
    const simJson: Record<string, number | null> = {};
    const simHeard: Record<string, number | null> = {};
    for (const s of sims) {
      simJson[String(s.members)] = jnum(percentile(s.crashes.map((c) => c.virtualMs), 0.5));
      simHeard[String(s.members)] = jnum(percentile(s.crashes.map((c) => c.virtualMs + c.heardAgeMs), 0.5));
    }
    const result = {
      bench: 'failover',
      date,
      machine: mach,
      percentiles: 'nearest-rank',
      testbed: tbr ? (tbr.aborted ? `aborted ${tbr.aborted}` : 'ran') : `not run: ${cannot}`,
      keepalive_ms: tbr?.keepaliveMs ?? null,
      deadtime_ms: tbr?.deadtimeMs ?? null,
      kills: good.length,
      kills_failed: failedRounds.length,
      takeover_ms_p50: jnum(p50),
      takeover_ms_p99: jnum(p99),
      takeover_ms_max: jnum(max),
      target_p99_ms: TARGET_P99_MS,
      target_met: Number.isFinite(p99) && p99 <= TARGET_P99_MS,
      kill_to_forwarding_ms_p50: jnum(percentile(good.map((r) => r.killToForwardMs), 0.5)),
      kill_to_forwarding_ms_p99: jnum(percentile(good.map((r) => r.killToForwardMs), 0.99)),
      declared_dead_ms_p50: jnum(percentile(good.map((r) => r.declaredDeadMs), 0.5)),
      client_outage_ms_p50: jnum(percentile(outage, 0.5)),
      client_outage_ms_p99: jnum(percentile(outage, 0.99)),
      client_outage_ms_max: jnum(percentile(outage, 1)),
      requests: sum((r) => r.requests),
      requests_failed: sum((r) => r.failed),
      lost_after_takeover: tbr ? sum((r) => r.lostAfterTakeover) : null,
      lost_in_window: tbr ? sum((r) => r.lostInWindow) : null,
      lost_in_window_started_before_kill: tbr ? sum((r) => r.lostInFlight) : null,
      lost_in_window_errors: windowErrors,
      alloc_us: allocJson,
      sim_failover_ms: simJson,
      sim_last_heard_to_converged_ms: simHeard,
      sim: sims.map((s) => ({
        members: s.members,
        crashes: s.crashes,
        crashes_planned: s.crashesPlanned,
        boot_virtual_ms: jnum(s.bootVirtualMs),
        boot_wall_ms: jnum(s.bootWallMs),
        wall_ms: jnum(s.wallMs),
        violations: s.violations.length,
        note: s.note,
      })),
      rounds: (tbr?.rounds ?? []).map((r) => ({
        round: r.round,
        victim: r.victim,
        victim_was_master: r.victimWasMaster,
        victim_buckets: r.victimBuckets,
        takeover_ms: jnum(r.takeoverMs),
        kill_to_forwarding_ms: jnum(r.killToForwardMs),
        declared_dead_ms: jnum(r.declaredDeadMs),
        client_outage_ms: jnum(r.outageMs),
        survivors: r.survivors,
        requests: r.requests,
        failed: r.failed,
        lost_after_takeover: r.lostAfterTakeover,
        lost_in_window: r.lostInWindow,
        lost_in_window_started_before_kill: r.lostInFlight,
        lost_in_window_errors: r.windowErrors,
        lost_in_window_requests: r.windowFailures,
        ...(r.error ? { error: r.error } : {}),
      })),
      wall_s: Math.round((Date.now() - started) / 1000),
    };
    console.log(JSON.stringify(result));
  }
  if (cannot !== '') process.exitCode = 2;
  else if (failedRounds.length > 0 || tbr?.aborted !== undefined) process.exitCode = 1;
}

main().catch(async (e: unknown) => {
  if (guard.interrupted) return;
  await guard.cleanup();
  const verbose = process.argv.includes('--verbose');
  console.error(`bench:failover: ${e instanceof Error ? (verbose ? (e.stack ?? e.message) : e.message) : String(e)}`);
  process.exit(1);
});
