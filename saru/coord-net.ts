/**
 * The coordinator's I/O adapters for the saru daemon: everything
 * saru/coord/coordinator.ts needs from the outside world except the clock.
 * Owns
 * - the cluster key file (`authkeys` in saru.conf): loadClusterKey();
 * - the coordinator state file (PersistedState plus this node's
 *   incarnation), written durably: loadCoordState(), saveCoordState(),
 *   nextIncarnation();
 * - ClusterTransport: the UDP multicast sockets, one per cluster path
 *   (0 = cluster network, 1 = data network), that send every datagram on
 *   every path and hand each received one to the coordinator tagged with the
 *   path it came in on.
 * It must not interpret datagrams (authentication, replay and duplicate
 * handling are the coordinator's), set timers, or throw from a socket event.
 *
 * Why path i uses UDP port `port + i`: on Linux a socket bound to a port
 * receives that port's multicast from every interface on which any socket of
 * the host joined the group (IP_MULTICAST_ALL is on by default), and Node's
 * dgram has neither SO_BINDTODEVICE nor IP_MULTICAST_ALL. Two sockets on the
 * same port would each receive both networks' copies, and the path tag would
 * be a lie. With a port per path the tag follows the port the sender chose,
 * which is the path it sent on. (A peer that listens on the cluster port of
 * the data network, e.g. two networks bridged together, still shows up on
 * the right port: the coordinator only uses the tag for per-path ages.)
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, SaruError, systemClock, type Clock } from '../core/index.js';
import { MAX_NODE_ID, MAX_TERM, MIN_KEY_BYTES, type CoordLogger, type PersistedState } from './coord/index.js';

// ---------------------------------------------------------------------------
// OS error text

/** "no such file or directory (ENOENT)" from a Node system error, else its message. */
function osReason(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    // Node's system errors read "ENOENT: no such file or directory, open '/x'".
    const m = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message);
    if (code !== undefined && m) return `${m[1]} (${code})`;
    if (code !== undefined && !e.message.includes(code)) return `${e.message} (${code})`;
    return e.message;
  }
  return String(e);
}

function errnoCode(e: unknown): string | undefined {
  return e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
}

// ---------------------------------------------------------------------------
// Cluster key

/** Largest key file accepted; a real key is 16..100 bytes. */
export const MAX_KEY_FILE_BYTES = 4096;

/**
 * Read the shared cluster key from `file` (saru.conf's `authkeys`).
 *
 * The file must be a regular file (symlinks to one are followed) whose mode
 * gives group and others no access at all (0600 or 0400). The key is the
 * file's bytes as they are, not decoded, minus trailing CR, LF and space
 * bytes, so both `openssl rand -base64 32 > key` and `head -c 32
 * /dev/urandom > key` make a good one; every node must hold the same file.
 *
 * @returns the key, `MIN_KEY_BYTES` (16) to `MAX_KEY_FILE_BYTES` bytes.
 * @throws SaruError SARU_ERR_CONFIG when the file is missing or unreadable
 *   (naming it and the OS reason), not a regular file, readable or writable
 *   by group or others (with the chmod that fixes it), shorter than 16 bytes
 *   after trimming (with how to make one), or larger than 4096 bytes.
 */
export function loadClusterKey(file: string): Uint8Array {
  const howToMake = `make one with: (umask 077; openssl rand -base64 32 > ${file})`;
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO in its place must fail the regular-file check, not hang the daemon.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const hint = errnoCode(e) === 'ENOENT' ? `; ${howToMake}` : '';
    throw new SaruError(ErrorCode.CONFIG, `authkeys ${file} cannot be read: ${osReason(e)}${hint}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SaruError(ErrorCode.CONFIG, `authkeys ${file} must be a regular file (it is ${fileKind(st)})`);
    const mode = st.mode & 0o7777;
    if ((mode & 0o077) !== 0) {
      const shown = mode.toString(8).padStart(4, '0');
      throw new SaruError(ErrorCode.CONFIG, `authkeys ${file} must be mode 0600 (it is ${shown}): chmod 600 ${file}`);
    }
    if (st.size > MAX_KEY_FILE_BYTES) {
      throw new SaruError(ErrorCode.CONFIG, `authkeys ${file} is ${st.size} bytes; a key is at most ${MAX_KEY_FILE_BYTES} (${howToMake})`);
    }
    const raw = fs.readFileSync(fd);
    let end = raw.length;
    while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d || raw[end - 1] === 0x20)) end--;
    if (end < MIN_KEY_BYTES) {
      throw new SaruError(
        ErrorCode.CONFIG,
        `authkeys ${file} holds ${end} bytes (without trailing newlines and spaces); at least ${MIN_KEY_BYTES} are needed: ${howToMake}`,
      );
    }
    const key = new Uint8Array(raw.subarray(0, end));
    raw.fill(0); // leave one copy of the key in memory, not two
    return key;
  } catch (e) {
    if (e instanceof SaruError) throw e;
    throw new SaruError(ErrorCode.CONFIG, `authkeys ${file} cannot be read: ${osReason(e)}`);
  } finally {
    fs.closeSync(fd);
  }
}

function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

// ---------------------------------------------------------------------------
// State file

/** What the daemon keeps between restarts for the coordinator. */
export interface SavedCoordState {
  /** The incarnation this run uses (integer 1..MAX_TERM); the next run uses a larger one. */
  incarnation: number;
  /** The coordinator's last persist() (null: it has not persisted yet). */
  state: PersistedState | null;
}

/** Version of the state file's JSON: `{ "format": 1, "incarnation": N, "state": {...} | null }`. */
export const COORD_STATE_FORMAT = 1;

/** Larger state files are corrupt (a real one is well under 100 KiB). */
const MAX_STATE_FILE_BYTES = 1 << 20;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], where: string): string | null {
  for (const k of Object.keys(o)) if (!keys.includes(k)) return `${where} has an unknown field "${k}"`;
  for (const k of keys) if (!(k in o)) return `${where} lacks "${k}"`;
  return null;
}

/** The reason `v` is not a SavedCoordState (with the file's `format` when `withFormat`), or null when it is one. */
function stateShapeError(v: unknown, withFormat: boolean): string | null {
  if (!isPlainObject(v)) return 'the top level is not an object';
  const bad = onlyKeys(v, withFormat ? ['format', 'incarnation', 'state'] : ['incarnation', 'state'], 'the top level');
  if (bad) return bad;
  if (withFormat && v.format !== COORD_STATE_FORMAT) return `format is ${JSON.stringify(v.format)}, expected ${COORD_STATE_FORMAT}`;
  if (!isCount(v.incarnation) || v.incarnation < 1 || v.incarnation > MAX_TERM) {
    return `incarnation must be an integer from 1 to ${MAX_TERM}, got ${JSON.stringify(v.incarnation)}`;
  }
  const s = v.state;
  if (s === null) return null;
  if (!isPlainObject(s)) return 'state is neither null nor an object';
  const badState = onlyKeys(s, ['epoch', 'committedEpoch', 'configs'], 'state');
  if (badState) return badState;
  if (!isCount(s.epoch)) return `state.epoch must be a safe integer >= 0, got ${JSON.stringify(s.epoch)}`;
  if (!isCount(s.committedEpoch)) return `state.committedEpoch must be a safe integer >= 0, got ${JSON.stringify(s.committedEpoch)}`;
  if (!Array.isArray(s.configs)) return 'state.configs is not an array';
  for (const [i, ids] of s.configs.entries()) {
    if (!Array.isArray(ids)) return `state.configs[${i}] is not an array`;
    for (const id of ids) {
      if (!isCount(id) || id > MAX_NODE_ID) return `state.configs[${i}] holds ${JSON.stringify(id)}, not a node id 0..${MAX_NODE_ID}`;
    }
  }
  return null;
}

/** A fresh copy holding only the known fields (of a value stateShapeError() accepted). */
function copyState(v: { incarnation: number; state: PersistedState | null }): SavedCoordState {
  const s = v.state;
  return {
    incarnation: v.incarnation,
    state: s === null ? null : { epoch: s.epoch, committedEpoch: s.committedEpoch, configs: s.configs.map((ids) => [...ids]) },
  };
}

/**
 * Read the state file written by saveCoordState().
 *
 * A corrupt file (not JSON, another format, a wrong shape, numbers that are
 * not safe integers in range, node ids outside 0..1023, unknown fields) is
 * logged as a warning and treated as absent. That is safe to start from: the
 * incarnation from the wall clock (nextIncarnation()) still keeps every epoch
 * this node issues newer than any it issued before. What is lost is the
 * floor of the allocations it had accepted; saveCoordState() replaces the
 * file atomically, so only outside damage makes it corrupt.
 *
 * @returns the saved state, or null when the file does not exist or is corrupt.
 * @throws SaruError SARU_ERR_IO when the file exists but cannot be read
 *   (permissions, a directory, an I/O error): an operator must look, and
 *   the next save would fail too.
 */
export function loadCoordState(file: string, log?: Pick<CoordLogger, 'warn'>): SavedCoordState | null {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (st.isFile() && st.size > MAX_STATE_FILE_BYTES) {
      log?.warn({ file, bytes: st.size }, 'coordinator state file is too large to be ours; ignoring it (the incarnation still keeps epochs unique)');
      return null;
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw new SaruError(ErrorCode.IO, `cannot read the coordinator state file ${file}: ${osReason(e)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    log?.warn({ file, reason: `not JSON: ${(e as Error).message}` }, 'coordinator state file is corrupt; ignoring it (the incarnation still keeps epochs unique)');
    return null;
  }
  const reason = stateShapeError(value, true);
  if (reason !== null) {
    log?.warn({ file, reason }, 'coordinator state file is corrupt; ignoring it (the incarnation still keeps epochs unique)');
    return null;
  }
  return copyState(value as unknown as SavedCoordState);
}

/**
 * Save `s` durably before returning: write `${file}.tmp`, fsync it, rename
 * it over `file`, fsync the directory. Creates the directory (mode 0700,
 * and its missing parents) when it does not exist. The file is mode 0644:
 * it holds no secret. Meant for CoordinatorDeps.persist (with the current
 * incarnation) and once at start (with the new incarnation).
 *
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT when `s` is not a valid
 *   SavedCoordState (what loadCoordState() would reject), SARU_ERR_IO when a
 *   system call fails (the message names the file, the step and the OS
 *   reason; the previous file is left as it was unless only the final
 *   directory fsync failed).
 */
export function saveCoordState(file: string, s: SavedCoordState): void {
  const reason = stateShapeError(s, false);
  if (reason !== null) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `coordinator state to save is invalid: ${reason}`);
  const clean = copyState(s);
  const text = `${JSON.stringify({ format: COORD_STATE_FORMAT, incarnation: clean.incarnation, state: clean.state })}\n`;
  const dir = path.dirname(path.resolve(file));
  const tmp = `${file}.tmp`;
  let step = 'creating its directory';
  let fd: number | null = null;
  try {
    const created = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) {
      // New directories are durable once their parents are synced: from the first one's parent down.
      step = 'fsyncing the new directories';
      const chain = [path.dirname(created)];
      for (let d = dir; ; d = path.dirname(d)) {
        chain.push(d);
        if (d === created || d === path.dirname(d)) break;
      }
      for (const d of chain) fsyncDir(d);
    }
    step = `writing ${tmp}`;
    fd = fs.openSync(tmp, 'w', 0o644);
    const bytes = Buffer.from(text, 'utf8');
    for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    step = `fsyncing ${tmp}`;
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    step = `renaming ${tmp}`;
    fs.renameSync(tmp, file);
    step = 'fsyncing its directory';
    fsyncDir(dir);
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing
      }
    }
    if (step !== 'fsyncing its directory') {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // never created, or already renamed
      }
    }
    throw new SaruError(ErrorCode.IO, `cannot save the coordinator state file ${file} (${step}): ${osReason(e)}`);
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * This run's incarnation (CoordinatorInit.incarnation): max(floor(wallMs),
 * saved + 1, 1), so it grows across restarts even when the wall clock went
 * back. Save it (saveCoordState) before the coordinator sends anything.
 *
 * @param saved the incarnation in the state file, or null without one.
 * @param wallMs wall-clock milliseconds since 1970 (Date.now()).
 * @returns an integer from 1 to MAX_TERM (2^43 - 1).
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT when `saved` is not null or a
 *   safe integer >= 0, `wallMs` is not a finite number >= 0, or the result
 *   would reach 2^43 (a wall clock some 250 years ahead, or a saved value
 *   that is).
 */
export function nextIncarnation(saved: number | null, wallMs: number): number {
  if (saved !== null && !isCount(saved)) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `saved incarnation must be a safe integer >= 0, got ${saved}`);
  }
  if (typeof wallMs !== 'number' || !Number.isFinite(wallMs) || wallMs < 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `wall clock must be a finite number of milliseconds >= 0, got ${wallMs}`);
  }
  const n = Math.max(Math.floor(wallMs), saved === null ? 1 : saved + 1, 1);
  if (n > MAX_TERM) {
    throw new SaruError(
      ErrorCode.INVALID_ARGUMENT,
      `incarnation ${n} (wall clock ${wallMs} ms, saved ${saved}) would reach 2^43; the largest is ${MAX_TERM}: check the clock and the state file`,
    );
  }
  return n;
}

// ---------------------------------------------------------------------------
// Cluster transport

export interface ClusterPathInit {
  /** Interface name; its first IPv4 address is the one joined and sent from. */
  ifname: string;
}

export interface ClusterTransportInit {
  /** IPv4 multicast group, 224.0.0.0/4, dotted quad. */
  group: string;
  /** UDP port of path 0, 1..65534; path i uses `port + i`. */
  port: number;
  /**
   * 1 or 2 paths: [cluster network] or [cluster network, data network]. The
   * same interface named twice makes a single path.
   */
  paths: ClusterPathInit[];
  /** Multicast TTL, 1..255 (default 1: the datagrams stay on the link). */
  ttl?: number;
  /** Receive our own datagrams (default false; tests only). */
  loopback?: boolean;
}

export interface ClusterTransportDeps {
  /** info: open/close; warn: errors (at most once a second per kind); debug: unused. */
  log: CoordLogger;
  /**
   * Every received datagram with its path index (0 = cluster, 1 = data).
   * `bytes` is a fresh Buffer the callee may keep. What it throws is caught,
   * counted (handlerErrors) and logged.
   */
  onMessage(bytes: Uint8Array, path: number): void;
  /** os.networkInterfaces by default; injectable for tests. */
  interfaces?: () => ReturnType<typeof os.networkInterfaces>;
  /** Monotonic clock for the log rate limit (default systemClock). */
  clock?: Clock;
}

export interface ClusterPathCounters {
  ifname: string;
  port: number;
  /** The interface's IPv4 address once started, else null. */
  address: string | null;
  /** Datagrams the kernel accepted for sending. */
  sent: number;
  received: number;
  /** Sends that failed (including sends while not open). */
  sendErrors: number;
}

export interface ClusterTransportCounters {
  sent: number;
  received: number;
  sendErrors: number;
  /** 'error' events of the sockets after they were opened. */
  socketErrors: number;
  /** Exceptions thrown by onMessage. */
  handlerErrors: number;
  paths: ClusterPathCounters[];
}

interface PathState {
  index: number;
  ifname: string;
  port: number;
  address: string | null;
  socket: dgram.Socket | null;
  /** Rejects the pending bind when the socket fails or is closed before it completes. */
  pendingBind: ((err: Error) => void) | null;
  /** The send callback, made once per path. */
  onSent: (err: Error | null) => void;
  sent: number;
  received: number;
  sendErrors: number;
}

/** At most one warning per kind per this many milliseconds. */
const LOG_INTERVAL_MS = 1000;

/**
 * At most one warning per kind per `intervalMs` (default 1 s); the next one
 * carries how many were suppressed (`suppressedSinceLast`). For socket errors
 * from the network, which may repeat thousands of times a second.
 */
export class WarnLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly log: { warn(obj: object, msg: string): void },
    private readonly clock: Clock,
    private readonly intervalMs = LOG_INTERVAL_MS,
  ) {}

  warn(kind: string, obj: Record<string, unknown>, msg: string): void {
    const now = this.clock.now();
    const last = this.last.get(kind);
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.log.warn({ ...obj, suppressedSinceLast: last?.suppressed ?? 0 }, msg);
    this.last.set(kind, { at: now, suppressed: 0 });
  }
}

/** Close a dgram socket; resolves when closed (at once if it already was). Never rejects. */
export function closeDgram(sock: dgram.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

function isMulticastV4(group: unknown): group is string {
  if (typeof group !== 'string' || !isIPv4(group)) return false;
  const first = Number(group.split('.')[0]);
  return first >= 224 && first <= 239;
}

/**
 * UDP/IPv4 multicast on one socket per cluster path. Path i is bound to
 * `group:port+i`, joins the group on its interface's IPv4 address and sends
 * from that interface with the given TTL; binding to the group address
 * rather than 0.0.0.0 keeps unicast to the port out. Sockets use
 * SO_REUSEADDR. send() sends each datagram once on every path; received
 * datagrams go to deps.onMessage with the path index. Never throws from a
 * socket event: errors are counted and logged (at most once a second per
 * kind). Once open, a path whose link goes down keeps its socket and group
 * membership: its sends fail (ENETUNREACH, counted) until the link is back,
 * and the other path carries on.
 */
export class ClusterTransport {
  private readonly group: string;
  private readonly ttl: number;
  private readonly loopback: boolean;
  private readonly paths: PathState[];
  private readonly log: CoordLogger;
  private readonly clock: Clock;
  private state: 'new' | 'starting' | 'open' | 'closed' = 'new';
  private closing: Promise<void> | null = null;
  private socketErrors = 0;
  private handlerErrors = 0;
  private readonly warnings: WarnLimiter;

  /**
   * Validates the settings; opens nothing (see start()).
   * @throws SaruError SARU_ERR_INVALID_ARGUMENT for a group outside
   *   224.0.0.0/4, a port outside 1..65534, no paths or more than 2, an empty
   *   interface name, a TTL outside 1..255 or a non-boolean loopback.
   */
  constructor(
    init: ClusterTransportInit,
    private readonly deps: ClusterTransportDeps,
  ) {
    const bad = (msg: string): never => {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `cluster transport: ${msg}`);
    };
    if (!isMulticastV4(init.group)) bad(`group must be an IPv4 multicast address (224.0.0.0 to 239.255.255.255), got ${JSON.stringify(init.group)}`);
    if (!Number.isInteger(init.port) || init.port < 1 || init.port > 65534) bad(`port must be an integer from 1 to 65534 (path 1 uses port + 1), got ${init.port}`);
    if (!Array.isArray(init.paths) || init.paths.length < 1 || init.paths.length > 2) {
      bad(`1 or 2 paths are needed (cluster network, data network), got ${Array.isArray(init.paths) ? init.paths.length : typeof init.paths}`);
    }
    const ttl = init.ttl ?? 1;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) bad(`ttl must be an integer from 1 to 255, got ${ttl}`);
    const loopback = init.loopback ?? false;
    if (typeof loopback !== 'boolean') bad(`loopback must be a boolean, got ${typeof loopback}`);
    const names: string[] = [];
    for (const p of init.paths) {
      const name = (p as Partial<ClusterPathInit> | null)?.ifname;
      if (typeof name !== 'string' || name === '') bad(`each path needs an interface name (ifname), got ${JSON.stringify(p)}`);
      if (!names.includes(name!)) names.push(name!);
    }
    this.group = init.group;
    this.ttl = ttl;
    this.loopback = loopback;
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.warnings = new WarnLimiter(this.log, this.clock);
    this.paths = names.map((ifname, index) => {
      const p: PathState = {
        index,
        ifname,
        port: init.port + index,
        address: null,
        socket: null,
        pendingBind: null,
        onSent: () => {},
        sent: 0,
        received: 0,
        sendErrors: 0,
      };
      p.onSent = (err) => {
        if (err) {
          p.sendErrors++;
          this.warnLimited(`send${p.index}`, { path: p.index, ifname: p.ifname, err: osReason(err) }, 'cluster send failed');
        } else {
          p.sent++;
        }
      };
      return p;
    });
  }

  /** Number of paths after merging repeated interfaces (1 or 2). */
  get pathCount(): number {
    return this.paths.length;
  }

  /**
   * Open every path: look up the interface's IPv4 address, bind, join the
   * group, set the outgoing interface, TTL and loopback. On failure closes
   * whatever it opened; start() may then be called again.
   * @throws SaruError SARU_ERR_NO_SUCH_INTERFACE when an interface does not
   *   exist, is down or without carrier (os.networkInterfaces() omits it
   *   then), or has no IPv4 address; SARU_ERR_IO when the port is in use by a
   *   socket without SO_REUSEADDR, or another system call fails, or close()
   *   was called meanwhile; SARU_ERR_CONFIG when the kernel refuses the group
   *   or the interface for multicast; SARU_ERR_INVALID_ARGUMENT when already
   *   started or closed.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new SaruError(ErrorCode.INVALID_ARGUMENT, `cluster transport: start() when ${this.state}`);
    this.state = 'starting';
    try {
      const all = (this.deps.interfaces ?? os.networkInterfaces)();
      for (const p of this.paths) p.address = ifaceIPv4(all, p.ifname);
      for (const p of this.paths) await this.openPath(p);
    } catch (e) {
      await this.closeSockets();
      if (this.state === 'starting') this.state = 'new';
      if (e instanceof SaruError) throw e;
      throw new SaruError(ErrorCode.IO, `cluster transport: ${osReason(e)}`);
    }
    if ((this.state as string) === 'closed') {
      throw new SaruError(ErrorCode.IO, 'cluster transport: closed while starting');
    }
    this.state = 'open';
    this.log.info(
      { group: this.group, ttl: this.ttl, paths: this.paths.map((p) => ({ path: p.index, ifname: p.ifname, address: p.address, port: p.port })) },
      'cluster transport open',
    );
  }

  private async openPath(p: PathState): Promise<void> {
    const where = `cluster path ${p.index} (${p.ifname}, ${p.address}, UDP port ${p.port})`;
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    p.socket = sock;
    sock.on('message', (msg: Buffer) => this.onDatagram(p, msg));
    sock.on('error', (err: Error) => {
      const pending = p.pendingBind;
      if (pending) {
        p.pendingBind = null;
        pending(err);
        return;
      }
      this.socketErrors++;
      this.warnLimited(`socket${p.index}`, { path: p.index, ifname: p.ifname, err: osReason(err) }, 'cluster socket error');
    });
    try {
      await new Promise<void>((resolve, reject) => {
        p.pendingBind = reject;
        sock.bind({ port: p.port, address: this.group }, () => {
          if (p.pendingBind !== reject) return; // failed or closed meanwhile
          p.pendingBind = null;
          resolve();
        });
      });
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EADDRINUSE') {
        throw new SaruError(
          ErrorCode.IO,
          `${where}: the port is in use by a socket without SO_REUSEADDR (EADDRINUSE); stop that program or choose another cluster port`,
        );
      }
      if (code === 'EADDRNOTAVAIL' || code === 'EINVAL') {
        throw new SaruError(ErrorCode.CONFIG, `${where}: cannot bind to multicast group ${this.group}: ${osReason(e)}`);
      }
      if (e instanceof SaruError) throw e;
      throw new SaruError(ErrorCode.IO, `${where}: bind failed: ${osReason(e)}`);
    }
    if (this.state === 'closed') throw new SaruError(ErrorCode.IO, 'cluster transport: closed while starting');
    const address = p.address!;
    try {
      sock.addMembership(this.group, address);
    } catch (e) {
      throw new SaruError(ErrorCode.CONFIG, `${where}: cannot join multicast group ${this.group}: ${osReason(e)}`);
    }
    try {
      sock.setMulticastInterface(address);
    } catch (e) {
      throw new SaruError(ErrorCode.CONFIG, `${where}: cannot send multicast from ${address}: ${osReason(e)}`);
    }
    try {
      sock.setMulticastTTL(this.ttl);
      sock.setMulticastLoopback(this.loopback);
    } catch (e) {
      throw new SaruError(ErrorCode.IO, `${where}: cannot set multicast TTL or loopback: ${osReason(e)}`);
    }
  }

  private onDatagram(p: PathState, msg: Buffer): void {
    p.received++;
    try {
      this.deps.onMessage(msg, p.index);
    } catch (e) {
      this.handlerErrors++;
      this.warnLimited('handler', { path: p.index, err: e instanceof Error ? e.stack ?? e.message : String(e) }, 'cluster message handler threw');
    }
  }

  /**
   * Send `bytes` (at most 65507) once on every path, to group:port+i. Never
   * throws: failures (not open, EMSGSIZE, no route, ...) are counted per
   * path and logged at most once a second. Node may send after returning, so
   * `bytes` must not be changed afterwards.
   */
  send(bytes: Uint8Array): void {
    for (const p of this.paths) {
      const sock = this.state === 'open' ? p.socket : null;
      if (sock === null) {
        p.onSent(new SaruError(ErrorCode.IO, `cluster transport is ${this.state === 'open' ? 'broken' : this.state}`));
        continue;
      }
      try {
        sock.send(bytes, p.port, this.group, p.onSent);
      } catch (e) {
        p.onSent(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  /** Totals and per-path counts; a fresh object. */
  counters(): ClusterTransportCounters {
    const paths = this.paths.map((p) => ({ ifname: p.ifname, port: p.port, address: p.address, sent: p.sent, received: p.received, sendErrors: p.sendErrors }));
    const sum = (k: 'sent' | 'received' | 'sendErrors'): number => paths.reduce((a, p) => a + p[k], 0);
    return { sent: sum('sent'), received: sum('received'), sendErrors: sum('sendErrors'), socketErrors: this.socketErrors, handlerErrors: this.handlerErrors, paths };
  }

  /** Close every socket (leaving the group). Idempotent; later send()s are counted as errors, start() is refused. */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.closing = this.closeSockets().then(() => {
      if (wasOpen) this.log.info({ counters: this.counters() }, 'cluster transport closed');
    });
    return this.closing;
  }

  private async closeSockets(): Promise<void> {
    await Promise.all(
      this.paths.map(async (p) => {
        const sock = p.socket;
        if (sock === null) return;
        p.socket = null;
        const pending = p.pendingBind;
        if (pending) {
          p.pendingBind = null;
          pending(new SaruError(ErrorCode.IO, 'cluster transport: closed while starting'));
        }
        await closeDgram(sock);
      }),
    );
  }

  private warnLimited(kind: string, obj: Record<string, unknown>, msg: string): void {
    this.warnings.warn(kind, obj, msg);
  }
}

/**
 * The first IPv4 address of `ifname` in `all` (os.networkInterfaces(), which
 * lists only interfaces that are up and running, i.e. have carrier).
 * @throws SaruError SARU_ERR_NO_SUCH_INTERFACE when the interface is missing,
 *   down, without carrier, or has no IPv4 address.
 */
function ifaceIPv4(all: ReturnType<typeof os.networkInterfaces>, ifname: string): string {
  const list = all[ifname];
  if (list === undefined) {
    const have = Object.keys(all).sort().join(', ') || 'none';
    throw new SaruError(
      ErrorCode.NO_SUCH_INTERFACE,
      `cluster path ${ifname} has no IPv4 address: no interface of that name is up (with carrier) and has an address (those that are: ${have})`,
    );
  }
  const v4 = list.find((a) => a.family === 'IPv4');
  if (v4 === undefined) {
    throw new SaruError(
      ErrorCode.NO_SUCH_INTERFACE,
      `cluster path ${ifname} has no IPv4 address: the coordinator's multicast is IPv4; give it one (ip address add ADDR/LEN dev ${ifname}) or name another interface`,
    );
  }
  return v4.address;
}
