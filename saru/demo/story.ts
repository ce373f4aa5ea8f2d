/**
 * The demo story in network namespaces (root): the testbed "demo" with
 * saru-syncd beside every saru, real HTTP clients in the client namespace
 * (long-lived keep-alive connections for the whole story and a stream of
 * short one-request connections), and four phases: 1 every director
 * forwards its slice; 2 a director carrying connections is killed with
 * SIGKILL (saru and saru-syncd) and the survivors take its slice and its
 * connections; 3 it restarts (saru-syncd, then saru), resyncs and rejoins;
 * 4 the cluster settles. It polls the directors over their control sockets
 * twice a second for the view, reads the daemons' JSON logs for the events
 * (member down, takeover in N ms, resync done), and returns the summary.
 *
 * Owns the testbed (torn down at the end unless --keep; the guard tears it
 * down on signals), the client processes it spawns inside the client
 * namespace, and the control-socket connections of its pollers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClusterInfo } from '../control.js';
import {
  ADDRESSES,
  LogTail,
  Testbed,
  allocationProblem,
  lineTime,
  sliceBuckets,
  type LogLine,
  type ProbeOutcome,
  type TestbedGuard,
} from '../testbed/index.js';
import type { DemoOptions } from './options.js';
import { DirectorPoller, counter, type DirectorSample } from './poller.js';
import { chooseVictim, initialState, rate, type DemoState, type DirectorRow } from './state.js';
import type { DemoSummary, PhaseResult } from './summary.js';

/** The testbed prefix of the demo: namespaces demo-sw, demo-c, demo-d1..., demo-r1... */
export const DEMO_PREFIX = 'demo';

const LONGCONN = fileURLToPath(new URL('../testbed/longconn.js', import.meta.url));
const PROBE = fileURLToPath(new URL('../testbed/probe.js', import.meta.url));
const VIP_URL = `http://${ADDRESSES.vip4}/`;
/** Poll and redraw period, ms. */
const POLL_MS = 500;
/** Bounds of the phases' goals, ms. */
const SETTLE_MS = 20_000;
const TAKEOVER_MS = 10_000;
const REJOIN_MS = 30_000;
/** Short-request stream: loops, pause between requests (about 16 new connections per second), per-request limit. */
const SHORT_PARALLEL = 2;
const SHORT_PAUSE_MS = 100;
const SHORT_TIMEOUT_MS = 3000;
/** How long the short requests hold before the kill (they take a few ms each). */
const HOLD_BEFORE_KILL_MS = 150;
/** Long-lived connections: one request every ~250 ms each; no answer within 10 s = lost. */
const LONG_INTERVAL_MS = 250;
const LONG_TIMEOUT_MS = 10_000;
/** At the end, a long-lived connection waiting longer than this for an answer counts as lost (a stall the end cut short). */
const LONG_STALLED_MS = 2000;

export interface StoryDeps {
  /** Wall clock, ms. */
  now(): number;
  /** Show the state (the live view). */
  show(s: DemoState): void;
  /** Tears the testbed down on signals. */
  guard: TestbedGuard;
}

/** What the long-lived client prints at its end (saru/testbed/longconn.ts). */
interface LongconnResult {
  connections: number;
  opened: number;
  requests: number;
  lost: Array<{ conn: number; atMs: number; why: string; requests: number }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Start times of the story's phases, ms after the traffic starts, for a story of `durationMs`. */
export function phaseTimes(durationMs: number): { killAt: number; restartAt: number; endAt: number } {
  const killAt = Math.max(5000, Math.round(durationMs * 0.25));
  const restartAt = Math.max(killAt + 5000, Math.round(durationMs * 0.5));
  return { killAt, restartAt, endAt: Math.max(restartAt + 2000, durationMs) };
}

/** The lines printed after a --keep run: how to explore and how to remove the testbed. */
export function keepInstructions(tb: Testbed, cwd: string): string[] {
  const adm = relative(cwd, join(tb.repoRoot, 'dist', 'saru', 'adm.js')) || 'dist/saru/adm.js';
  const d1 = tb.nsName('director', 1);
  return [
    `The testbed "${tb.prefix}" is still up (--keep). Explore it:`,
    `  ip netns exec ${d1} node ${adm} --socket ${tb.socketPath(1)} -L -n --stats`,
    `  ip netns exec ${d1} node ${adm} --socket ${tb.socketPath(1)} -L -n -c`,
    `  ip netns exec ${d1} node ${adm} --socket ${tb.socketPath(1)} --cluster`,
    `  ip netns exec ${d1} node ${adm} --sync --sync_socket ${tb.syncSocketPath(1)}`,
    `  ip netns exec ${tb.nsName('client')} curl -s ${VIP_URL}`,
    `  npm run testbed -- status --prefix ${tb.prefix}`,
    `Logs: ${tb.stateDir}/d*/saru.log and syncd.log. Remove it with:`,
    `  npm run testbed -- down --prefix ${tb.prefix}`,
  ];
}

class Story {
  readonly state: DemoState;
  private readonly tb: Testbed;
  private readonly pollers: DirectorPoller[];
  private readonly saruLogs: LogTail[] = [];
  private readonly syncdLogs: LogTail[] = [];
  /** Every saru log line read so far, per director (index 0 = d1). */
  private readonly saruLines: LogLine[][];
  /** Latest answers, by director index. */
  private readonly views = new Map<number, ClusterInfo>();
  private readonly last = new Map<number, DirectorSample>();
  private readonly killed = new Set<number>();
  private readonly t0: number;
  private children: ChildProcess[] = [];
  private shortOutcomes: ProbeOutcome[] = [];
  private longResult: LongconnResult | null = null;
  private lastMaster = 0;
  // the failover under way
  private victim = 0;
  private killAt = 0;
  private restartAt = 0;
  private readonly takeovers = new Map<number, number>();
  private resync: { ms: number; entries: number; source: number } | null = null;
  private resyncNoPeer = false;
  private rejoinMs = NaN;
  private readonly stopFile: string;
  private readonly holdFile: string;

  constructor(
    private readonly opts: DemoOptions,
    private readonly deps: StoryDeps,
  ) {
    this.t0 = deps.now();
    this.tb = new Testbed({
      prefix: DEMO_PREFIX,
      directors: opts.directors,
      realServers: opts.realServers,
      fwd: opts.forwarding,
      scheduler: opts.scheduler,
      sync: true,
      jsonLogs: true,
    });
    this.stopFile = join(this.tb.stateDir, 'longconn.stop');
    this.holdFile = join(this.tb.stateDir, 'probe.hold');
    const title =
      `Saru demo: ${opts.directors} directors (saru + saru-syncd), ${opts.realServers} real servers in network namespaces ${DEMO_PREFIX}-*; ` +
      `${opts.forwarding}, ${opts.scheduler}`;
    this.state = initialState(title, opts.directors, opts.durationS * 1000, opts.connections);
    this.pollers = Array.from({ length: opts.directors }, (_, k) => new DirectorPoller(this.tb.socketPath(k + 1), this.tb.syncSocketPath(k + 1)));
    this.saruLines = Array.from({ length: opts.directors }, () => []);
  }

  private elapsed(): number {
    return this.deps.now() - this.t0;
  }

  private event(text: string, atWallMs = this.deps.now()): void {
    const atMs = Math.max(0, atWallMs - this.t0);
    const ev = this.state.events;
    // keep the list in time order (log lines can arrive after a later poll's event)
    let k = ev.length;
    while (k > 0 && ev[k - 1]!.atMs > atMs) k--;
    ev.splice(k, 0, { atMs, text });
  }

  private phase(text: string): void {
    this.state.phase = text;
    this.state.phaseAtMs = this.elapsed();
    this.show();
  }

  private show(): void {
    this.state.elapsedMs = this.elapsed();
    this.deps.show(this.state);
  }

  private get ids(): number[] {
    return Array.from({ length: this.opts.directors }, (_, k) => k + 1);
  }

  private live(): number[] {
    return this.ids.filter((i) => !this.killed.has(i));
  }

  // ---- polling ------------------------------------------------------------------------

  /** Poll every director, read the logs, update the state and the view. */
  private async tick(): Promise<void> {
    const samples = await Promise.all(this.ids.map((i) => (this.killed.has(i) ? Promise.resolve(null) : this.pollers[i - 1]!.poll(() => this.deps.now()))));
    this.views.clear();
    for (const i of this.ids) {
      const s = samples[i - 1] ?? null;
      const row = this.state.directors[i - 1]!;
      if (s === null) {
        Object.assign(row, { state: 'down', master: false, buckets: 0, connsOwn: 0, connsSynced: 0, pps: 0, syncDps: 0 } satisfies Partial<DirectorRow>);
        this.last.delete(i);
        continue;
      }
      if (s.cluster) this.views.set(i, s.cluster);
      this.updateRow(row, s, this.last.get(i));
      if (s.cluster) this.last.set(i, s);
    }
    // master and epoch: the newest committed epoch among the answers
    let best: ClusterInfo | null = null;
    for (const v of this.views.values()) if (v.coordinator && (!best || v.coordinator.epoch > best.coordinator!.epoch)) best = v;
    const master = best?.coordinator?.master ?? 0;
    this.state.master = master > 0 ? master : 0;
    this.state.epoch = best?.coordinator?.epoch ?? 0;
    for (const r of this.state.directors) r.master = r.state !== 'down' && r.id === this.state.master;
    if (master > 0 && master !== this.lastMaster) {
      if (this.lastMaster === 0) this.event(`master d${master} elected (epoch ${this.state.epoch})`);
      else this.event(`master is now d${master} (epoch ${this.state.epoch})`);
      this.lastMaster = master;
    }
    this.readLogs();
    this.show();
  }

  private updateRow(row: DirectorRow, s: DirectorSample, prev: DirectorSample | undefined): void {
    const c = s.cluster;
    if (!c) {
      row.state = 'starting';
      row.buckets = 0;
      row.pps = 0;
      row.syncDps = 0;
      return;
    }
    const k = c.coordinator;
    const resyncing = s.sync !== null && (counter(s.sync.counters, 'resyncActive') === 1 || !s.sync.synced);
    row.state = resyncing ? 'resyncing' : k && (k.state === 'joining' || !k.ready) ? 'joining' : c.ownedBuckets > 0 ? 'up' : 'joining';
    row.buckets = c.ownedBuckets;
    if (s.conns) {
      row.connsOwn = s.conns.own;
      row.connsSynced = s.conns.synced;
    }
    if (prev?.cluster) {
      const ms = s.at - prev.at;
      row.pps = rate(counter(prev.cluster.counters, 'txFrames'), counter(c.counters, 'txFrames'), ms);
      const dg = (x: DirectorSample | undefined): number => (x?.sync ? counter(x.sync.counters, 'datagramsSent') + counter(x.sync.counters, 'datagramsReceived') : NaN);
      const a = dg(prev);
      const b = dg(s);
      row.syncDps = Number.isFinite(a) && Number.isFinite(b) ? rate(a, b, ms) : 0;
    }
  }

  private readLogs(): void {
    for (const i of this.ids) {
      for (const l of this.saruLogs[i - 1]?.read() ?? []) {
        this.saruLines[i - 1]!.push(l);
        const t = lineTime(l);
        if (l.msg === 'member down' && typeof l.member === 'number' && this.killed.has(l.member)) {
          this.event(`d${i}: d${l.member} is down (last heard ${Math.round(Number(l.lastHeardMs))} ms before)`, t);
        } else if (l.msg === 'takeover' && typeof l.from === 'number') {
          const ms = typeof l.takeoverMs === 'number' ? l.takeoverMs : NaN;
          this.event(`d${i} took ${String(l.buckets)} buckets of d${l.from}: takeover in ${Number.isFinite(ms) ? `${ms} ms` : '?'} (epoch ${String(l.epoch)})`, t);
          if (l.from === this.victim && t >= this.killAt && Number.isFinite(ms)) this.takeovers.set(i, Math.max(this.takeovers.get(i) ?? 0, ms));
        } else if (l.msg === 'synced: ready to take buckets' && i === this.victim && this.restartAt > 0 && t >= this.restartAt) {
          this.event(`d${i}: table synced, ready to take buckets`, t);
        }
      }
      for (const l of this.syncdLogs[i - 1]?.read() ?? []) {
        if (i !== this.victim || this.restartAt === 0 || lineTime(l) < this.restartAt) continue;
        if (l.msg === 'sync resync finished') {
          this.resync = { ms: Number(l.ms), entries: Number(l.entries), source: Number(l.source) };
          this.event(`d${i} resync done in ${Math.round(this.resync.ms)} ms (${this.resync.entries} entries from d${this.resync.source})`, lineTime(l));
        } else if (typeof l.msg === 'string' && l.msg.startsWith('sync resync finished: no synced peer')) {
          this.resyncNoPeer = true;
          this.event(`d${i} resync found no synced peer`, lineTime(l));
        }
      }
    }
  }

  /** Tick every POLL_MS until `ms` (story time since t0) or until `done()` holds; true when done() held. */
  private async runUntil(ms: number, done?: () => boolean): Promise<boolean> {
    while (!this.deps.guard.interrupted) {
      const t = this.deps.now();
      await this.tick();
      if (done?.()) return true;
      if (this.elapsed() >= ms) return false;
      await sleep(Math.min(POLL_MS - (this.deps.now() - t), ms - this.elapsed()));
    }
    return false;
  }

  private settled(live: number[]): string | null {
    return allocationProblem(live, this.views, this.tb.buckets);
  }

  // ---- traffic ------------------------------------------------------------------------

  private spawnClient(script: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.tb.nsName('client'), process.execPath, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  private startTraffic(shortMs: number): { long: Promise<LongconnResult | null>; short: Promise<void> } {
    rmSync(this.stopFile, { force: true });
    const longChild = this.spawnClient(LONGCONN, [
      '--url', VIP_URL,
      '--connections', String(this.opts.connections),
      '--duration', String(shortMs + 120_000),
      '--interval', String(LONG_INTERVAL_MS),
      '--timeout', String(LONG_TIMEOUT_MS),
      '--stop-file', this.stopFile,
      '--stalled-ms', String(LONG_STALLED_MS),
    ]);
    let out = '';
    longChild.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const long = new Promise<LongconnResult | null>((resolve) => {
      longChild.on('close', () => {
        const last = out.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(last) as LongconnResult);
        } catch {
          resolve(null);
        }
      });
    });
    const shortChild = this.spawnClient(PROBE, [
      '--url', VIP_URL,
      '--parallel', String(SHORT_PARALLEL),
      '--duration', String(shortMs),
      '--timeout', String(SHORT_TIMEOUT_MS),
      '--pause', String(SHORT_PAUSE_MS),
      '--hold-file', this.holdFile,
    ]);
    const rl = createInterface({ input: shortChild.stdout! });
    rl.on('line', (line) => {
      if (!line.startsWith('{')) return;
      let o: ProbeOutcome;
      try {
        o = JSON.parse(line) as ProbeOutcome;
      } catch {
        return;
      }
      this.shortOutcomes.push(o);
      const t = this.state.traffic;
      t.shortOpened++;
      if (o.ok) t.shortCompleted++;
      else t.shortLost++;
    });
    const short = new Promise<void>((resolve) => shortChild.on('close', () => resolve()));
    return { long, short };
  }

  // ---- the story ---------------------------------------------------------------------

  async run(): Promise<DemoSummary> {
    const phases: PhaseResult[] = [];
    const errors: string[] = [];
    const opts = this.opts;
    const tb = this.deps.guard.use(this.tb);
    this.phase(`building the testbed: namespaces ${DEMO_PREFIX}-sw, -c, -d1..d${opts.directors}, -r1..r${opts.realServers}`);
    await tb.up();
    if (this.deps.guard.interrupted) throw new Error('interrupted');
    for (const i of this.ids) {
      this.saruLogs.push(new LogTail(join(tb.directorDir(i), 'saru.log'), true));
      this.syncdLogs.push(new LogTail(join(tb.directorDir(i), 'syncd.log'), true));
    }
    this.event(`testbed up: ${opts.directors} directors (saru + saru-syncd), ${opts.realServers} real servers, VIP ${ADDRESSES.vip4}:80`);

    // Phase 1: all directors forward.
    this.phase('phase 1/4: waiting for the directors to share the buckets');
    const allIds = this.ids;
    const settledAll = await this.runUntil(this.elapsed() + SETTLE_MS, () => this.settled(allIds) === null);
    if (!settledAll) {
      phases.push({ name: '1 all forward', ok: false, detail: `no settled allocation within ${SETTLE_MS / 1000} s: ${this.settled(allIds)}` });
      return this.finish(phases, errors, null);
    }
    this.event(`allocation epoch ${this.state.epoch}: ${allIds.map((i) => `d${i} ${this.views.get(i)!.ownedBuckets}`).join(', ')} buckets`);
    const trafficStart = this.elapsed();
    const times = phaseTimes(opts.durationS * 1000);
    this.state.durationMs = trafficStart + times.endAt;
    const traffic = this.startTraffic(times.endAt);
    this.event(`clients start: ${opts.connections} long-lived keep-alive connections and short requests (${SHORT_PARALLEL} loops, one connection per request)`);
    const txAtStart = new Map(allIds.map((i) => [i, counter(this.views.get(i)?.counters, 'txFrames')]));
    this.phase('phase 1/4: every director forwards its slice');
    await this.runUntil(trafficStart + times.killAt);
    const forwarded = allIds.map((i) => counter(this.views.get(i)?.counters, 'txFrames') - (txAtStart.get(i) ?? 0));
    const idle = allIds.filter((_, k) => !(forwarded[k]! > 0));
    phases.push(
      idle.length === 0 && this.settled(allIds) === null
        ? { name: '1 all forward', ok: true, detail: `every director forwarded (${allIds.map((i, k) => `d${i} ${forwarded[k]} frames`).join(', ')})` }
        : { name: '1 all forward', ok: false, detail: idle.length ? `d${idle.join(', d')} forwarded nothing` : `allocation not settled: ${this.settled(allIds)}` },
    );
    if (this.deps.guard.interrupted) throw new Error('interrupted');

    // Phase 2: kill the director carrying the most connections.
    const rows = this.state.directors;
    const victim = chooseVictim(rows);
    const before = this.views.get(victim.id);
    const victimSlice = new Uint8Array(tb.buckets);
    if (before) for (const b of sliceBuckets(before.slice, tb.buckets)) victimSlice[b] = 1;
    this.victim = victim.id;
    // A connection younger than the sync latency (its first packets through
    // the victim, its entry not yet at a peer: about 10 ms) cannot outlive
    // its director, with IPVS sync or ours. The short requests hold for a
    // moment so none is that young at the kill; the long-lived ones carry on.
    writeFileSync(this.holdFile, '');
    this.event(`short requests hold ${HOLD_BEFORE_KILL_MS} ms (none younger than the sync latency at the kill); long-lived connections carry on`);
    await sleep(HOLD_BEFORE_KILL_MS);
    this.killAt = this.deps.now();
    this.killed.add(victim.id);
    this.pollers[victim.id - 1]!.close();
    tb.killDirector(victim.id);
    rmSync(this.holdFile, { force: true });
    this.event(`kill -9 d${victim.id} (saru and saru-syncd): it forwarded ${victim.buckets} buckets and ${victim.connsOwn} established connections`);
    this.phase(`phase 2/4: d${victim.id} killed; the survivors take its slice and its connections`);
    const survivors = this.live();
    const tookOver = await this.runUntil(this.elapsed() + TAKEOVER_MS, () => this.settled(survivors) === null && this.expectedTakers(survivors, victimSlice).every((i) => this.takeovers.has(i)));
    if (tookOver) {
      this.event(`the survivors forward d${victim.id}'s buckets (epoch ${this.state.epoch}); its connections continue through them`);
      phases.push({ name: '2 kill', ok: true, detail: `d${victim.id} killed; ${[...this.takeovers].map(([i, ms]) => `d${i} took over in ${ms} ms`).join(', ')}` });
    } else {
      const missing = this.expectedTakers(survivors, victimSlice).filter((i) => !this.takeovers.has(i));
      const why = this.settled(survivors) ?? `no takeover logged by d${missing.join(', d')}`;
      phases.push({ name: '2 kill', ok: false, detail: `within ${TAKEOVER_MS / 1000} s of killing d${victim.id}: ${why}` });
    }
    await this.runUntil(trafficStart + times.restartAt);
    if (this.deps.guard.interrupted) throw new Error('interrupted');

    // Phase 3: restart (saru-syncd, then saru), resync, rejoin.
    this.restartAt = this.deps.now();
    this.phase(`phase 3/4: d${victim.id} restarting: saru-syncd, then saru`);
    try {
      await tb.startSyncd(victim.id);
      await tb.startDirector(victim.id);
      this.killed.delete(victim.id);
      this.event(`d${victim.id} restarted (saru-syncd, then saru): its table is empty; it resyncs from a peer before taking buckets`);
      this.phase(`phase 3/4: d${victim.id} restarted: resync, then rejoin`);
      const rejoined = await this.runUntil(
        this.elapsed() + REJOIN_MS,
        () => this.resync !== null && this.settled(allIds) === null && (this.views.get(victim.id)?.ownedBuckets ?? 0) > 0,
      );
      if (rejoined) {
        this.rejoinMs = this.deps.now() - this.restartAt;
        this.event(`d${victim.id} rejoined: epoch ${this.state.epoch}, ${this.views.get(victim.id)!.ownedBuckets} buckets (${Math.round(this.rejoinMs)} ms after the restart)`);
        phases.push({
          name: '3 restart and rejoin',
          ok: !this.resyncNoPeer,
          detail: this.resyncNoPeer
            ? 'the restarted saru-syncd found no synced peer to resync from'
            : `resync ${Math.round(this.resync!.ms)} ms (${this.resync!.entries} entries), rejoined ${Math.round(this.rejoinMs)} ms after the restart`,
        });
      } else {
        const why = this.resync === null ? 'no resync finished' : (this.settled(allIds) ?? `d${victim.id} owns no buckets`);
        phases.push({ name: '3 restart and rejoin', ok: false, detail: `within ${REJOIN_MS / 1000} s of the restart: ${why}` });
      }
    } catch (e) {
      phases.push({ name: '3 restart and rejoin', ok: false, detail: `restart failed: ${errorText(e)}` });
    }
    if (this.deps.guard.interrupted) throw new Error('interrupted');

    // Phase 4: settle until the end of the story, then stop the clients.
    this.phase('phase 4/4: all directors forward again; traffic continues');
    await this.runUntil(trafficStart + times.endAt);
    const final = this.settled(allIds);
    phases.push(final === null ? { name: '4 settle', ok: true, detail: `one allocation (epoch ${this.state.epoch}) over all ${allIds.length} directors at the end` } : { name: '4 settle', ok: false, detail: `at the end: ${final}` });
    this.phase('stopping the clients');
    writeFileSync(this.stopFile, '');
    const [long] = await Promise.all([traffic.long, traffic.short]);
    this.longResult = long;
    if (long === null) errors.push('the long-lived client printed no result');
    return this.finish(phases, errors, long);
  }

  /** Survivors that now own some of the victim's buckets: each must log its takeover. */
  private expectedTakers(survivors: number[], victimSlice: Uint8Array): number[] {
    return survivors.filter((i) => {
      const v = this.views.get(i);
      return v !== undefined && sliceBuckets(v.slice, this.tb.buckets).some((b) => victimSlice[b] === 1);
    });
  }

  private finish(phases: PhaseResult[], errors: string[], long: LongconnResult | null): DemoSummary {
    const n = this.opts.connections;
    const longLost = long ? long.lost.length + Math.max(0, long.connections - long.opened) : 0;
    const longOpened = long ? n : 0;
    const so = this.shortOutcomes;
    const shortCompleted = so.filter((o) => o.ok).length;
    const lostExamples: string[] = [];
    for (const l of long?.lost.slice(0, 5) ?? []) lostExamples.push(`long-lived connection ${l.conn}, at +${(l.atMs / 1000).toFixed(1)} s of the client: ${l.why}`);
    for (const o of so.filter((x) => !x.ok).slice(0, 5)) {
      lostExamples.push(`short connection started at +${((o.t0 - this.t0) / 1000).toFixed(1)} s (client port ${o.sport || 'none'}): ${o.err || `HTTP ${o.status}`}`);
    }
    const opened = longOpened + so.length;
    const completed = longOpened - longLost + shortCompleted;
    return {
      mode: 'namespaces',
      opened,
      completed,
      lost: opened - completed,
      long: { opened: longOpened, lost: longLost, requests: long?.requests ?? 0 },
      short: { opened: so.length, completed: shortCompleted, lost: so.length - shortCompleted },
      takeoverMs: [...this.takeovers.values()],
      resyncMs: this.resync?.ms ?? NaN,
      resyncEntries: this.resync?.entries ?? NaN,
      rejoinMs: this.rejoinMs,
      phases,
      errors,
      lostExamples,
      durationS: this.opts.durationS,
      wallS: this.elapsed() / 1000,
      virtualTime: false,
    };
  }

  /** Stop the clients, close the pollers, and take the testbed down unless `keep`. */
  async close(keep: boolean): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    for (const p of this.pollers) p.close();
    if (keep) {
      this.deps.guard.release();
      return;
    }
    this.phase('tearing the testbed down');
    await this.deps.guard.cleanup();
  }

  get testbed(): Testbed {
    return this.tb;
  }
}

/**
 * Run the story in namespaces. Always closes what it started: the testbed
 * goes down at the end (or stays with `opts.keep`, whose instructions are
 * returned in `keepLines`).
 */
export async function runNamespaceStory(opts: DemoOptions, deps: StoryDeps): Promise<{ summary: DemoSummary; keepLines: string[] }> {
  const story = new Story(opts, deps);
  let summary: DemoSummary | null = null;
  try {
    summary = await story.run();
  } finally {
    await story.close(opts.keep && summary !== null);
  }
  return { summary, keepLines: opts.keep ? keepInstructions(story.testbed, process.cwd()) : [] };
}
