/**
 * The demo's state as the view shows it: plain data that both story drivers
 * (namespaces: story.ts; simulator: sim-story.ts) fill and the pure renderer
 * (view.ts) reads, plus the few calculations both drivers share (rates from
 * counters, the own/synced split of a connection table, percentiles). Owns
 * no I/O and no clock: times are passed in.
 */

/** A director's state in the view. */
export type DirectorState = 'up' | 'down' | 'joining' | 'resyncing' | 'starting';

export interface DirectorRow {
  /** 1-based director index (the node id). */
  id: number;
  state: DirectorState;
  /** This director is the elected master. */
  master: boolean;
  /** Buckets it forwards now. */
  buckets: number;
  /** Established connections in its own buckets (it forwards them). */
  connsOwn: number;
  /** Established connections held for other directors' buckets (synced from peers). */
  connsSynced: number;
  /** Frames it forwarded per second over the last interval. */
  pps: number;
  /** Sync datagrams per second (sent + received) over the last interval. */
  syncDps: number;
}

export interface DemoEvent {
  /** Milliseconds since the story started (virtual ms in the simulator). */
  atMs: number;
  text: string;
}

/** Client traffic as counted so far. */
export interface TrafficState {
  /** Long-lived keep-alive connections asked for. */
  longConnections: number;
  /** Short connections (one request each) started, finished complete, failed. */
  shortOpened: number;
  shortCompleted: number;
  shortLost: number;
}

export interface DemoState {
  /** First line: what runs and where ("simulated (not root): ..." in the simulator). */
  title: string;
  /** Story time, ms (virtual in the simulator). */
  elapsedMs: number;
  durationMs: number;
  /** What the story is doing ("phase 2/4: d2 killed; ..."), and since when (story ms). */
  phase: string;
  phaseAtMs: number;
  /** Elected master (0: none known) and its allocation epoch (0: none). */
  master: number;
  epoch: number;
  directors: DirectorRow[];
  traffic: TrafficState;
  /** Every event so far, oldest first. */
  events: DemoEvent[];
}

/** A new DemoState with `n` directors all starting. */
export function initialState(title: string, n: number, durationMs: number, longConnections: number): DemoState {
  return {
    title,
    elapsedMs: 0,
    durationMs,
    phase: 'starting',
    phaseAtMs: 0,
    master: 0,
    epoch: 0,
    directors: Array.from({ length: n }, (_, i) => ({ id: i + 1, state: 'starting', master: false, buckets: 0, connsOwn: 0, connsSynced: 0, pps: 0, syncDps: 0 })),
    traffic: { longConnections, shortOpened: 0, shortCompleted: 0, shortLost: 0 },
    events: [],
  };
}

/** Per-second rate of a counter between two samples (0 when the counter went back: a restart). */
export function rate(before: number, after: number, ms: number): number {
  if (!(ms > 0) || after < before) return 0;
  return ((after - before) * 1000) / ms;
}

/**
 * Split established connections into own (client-side bucket owned by this
 * director) and synced (held for another director's bucket). Buckets come
 * from the client port (sense src-port): `port & (buckets - 1)`.
 */
export function splitConnections(rows: Iterable<{ cport: number; established: boolean }>, owned: Uint8Array): { own: number; synced: number } {
  const mask = owned.length - 1;
  let own = 0;
  let synced = 0;
  for (const r of rows) {
    if (!r.established) continue;
    if (owned[r.cport & mask] === 1) own++;
    else synced++;
  }
  return { own, synced };
}

/** Nearest-rank percentile (q in (0, 1]): the ceil(q * n)-th smallest; NaN for none. */
export function percentile(xs: readonly number[], q: number): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.max(0, Math.ceil(q * v.length) - 1)]!;
}

/**
 * The director the story kills: the one forwarding the most established
 * connections (lowest id on a tie). With two directors only the higher id
 * qualifies: the partition policy gives the quorum of a 1|1 split to the
 * lowest id, so killing it would stop the survivor too.
 */
export function chooseVictim(rows: readonly DirectorRow[]): DirectorRow {
  const candidates = rows.length === 2 ? rows.filter((r) => r.id === 2) : rows;
  return [...candidates].sort((a, b) => b.connsOwn - a.connsOwn || a.id - b.id)[0]!;
}
