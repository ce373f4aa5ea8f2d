/**
 * saru.conf: the director daemon's own settings (`key = value`, `#` comments,
 * as heartbeat's ha.cf and the original Saru's options). Owns parsing,
 * validation and defaults; every error names the file, the line and what was
 * expected. It does not read the services file (core/config does) nor touch
 * the network.
 */
import { readFileSync } from 'node:fs';
import {
  ErrorCode,
  IpAddress,
  SaruError,
  Sense,
  configError,
  intIn,
  IFNAME,
  parseBucketRanges,
  parseKeyValueFile,
  parseSense,
} from '../core/index.js';
import { MAX_COORD_BUCKETS } from './coord/index.js';

/** The parsed saru.conf. Durations in ms, sizes in entries or bytes as named. */
export interface SaruConfig {
  /** File the settings came from (for messages). */
  file: string;
  /** This director's id, 1..1023, unique in the cluster (the low bits of every epoch it issues). */
  nodeId: number;
  /** Data interface: the one with the shared MAC and the VIPs. */
  interface: string;
  /** Cluster interface (heartbeats, allocation, sync); may equal `interface`. */
  clusterInterface: string;
  /** Services file (ldirectord.cf or keepalived.conf syntax), absolute path. */
  services: string;
  /** Format of the services file: 'auto' tells them apart by their first line. */
  servicesFormat: 'auto' | 'ldirectord' | 'keepalived';
  /** keepalived's -i: the instance name for `@NAME` conditional lines; null = none. */
  keepalivedInstance: string | null;
  /** Run the services file's real-server health checks (default true); false: every real server is always up. */
  healthChecks: boolean;
  /** Most health-check tries in flight at once. */
  checkParallel: number;
  /** Control socket path (Unix domain), absolute. */
  controlSocket: string;
  /** Number of buckets, a power of two 2..65536. */
  buckets: number;
  sense: Sense;
  /** A fixed slice without a coordinator (static_slice); null = the coordinator allocates. */
  staticSlice: number[] | null;
  /** Next hop for IPv4 traffic to clients (NAT replies, ICMP errors); null = clients on-link only. */
  gateway: IpAddress | null;
  /** Next hop for IPv6 traffic to clients. */
  gateway6: IpAddress | null;
  /** Connection table capacity in entries (power of two). */
  connTableSize: number;
  /** Mid-connection TCP packets without an entry: drop, or schedule (sh/dh/mh only). */
  midFlow: 'drop' | 'schedule';
  /** Frames per receive/transmit batch. */
  batchSize: number;
  /** Packet I/O mode of the native port; null = the addon's default. */
  ioMode: 'ring' | 'mmsg' | null;
  /** nftables table name for the host-stack rules. */
  nftTable: string;
  /** How often real servers' and gateways' MAC addresses are refreshed, ms. */
  neighbourRefreshMs: number;
  /** Attach the slice's classic BPF filter to the packet socket (default true). */
  socketFilter: boolean;
  /** The coordinator's settings; null when `static_slice` fixes the slice instead. */
  coordinator: CoordinatorConfig | null;
}

/** saru.conf's coordinator keys, parsed. Durations in ms. */
export interface CoordinatorConfig {
  /** Shared cluster key file (mode 0600), absolute path. */
  authkeys: string;
  /** This director's share of the buckets, integer >= 0. */
  weight: number;
  /** IPv4 multicast group of the heartbeats; port and port + 1 carry the cluster and data networks. */
  mcastGroup: string;
  mcastPort: number;
  keepaliveMs: number;
  deadtimeMs: number;
  /** Longest wait for saru-syncd's bulk resync before taking buckets, ms. */
  joinDelayMs: number;
  /** Wait for saru-syncd to report its bulk resync (bounded by join delay) before taking buckets. */
  waitForSync: boolean;
  /** Where the coordinator's epoch state survives restarts, absolute path. */
  stateFile: string;
  /** Longest a graceful leave (SIGTERM) waits for its own connections in handed-over buckets to close, ms. */
  drainTimeoutMs: number;
}

/** Keys saru.conf accepts, with what they expect (for error messages and the README). */
export const SARU_CONF_KEYS = {
  node_id: 'an integer 1-1023',
  interface: 'an interface name',
  cluster_interface: 'an interface name',
  services: 'a path to an ldirectord.cf or keepalived.conf file',
  services_format: 'auto, ldirectord or keepalived',
  keepalived_instance: "a name ([A-Za-z0-9_.-]+) for keepalived.conf's @NAME lines",
  health_checks: 'yes or no',
  check_parallel: 'an integer 1-1024 (checks in flight)',
  control_socket: 'a path for the Unix control socket',
  buckets: 'a power of two from 2 to 65536',
  sense: 'src-port, src-addr, dst-port or dst-addr',
  static_slice: 'FIRST-LAST[,FIRST-LAST...] bucket numbers',
  gateway: 'an IPv4 address',
  gateway6: 'an IPv6 address',
  conn_table_size: 'a power of two from 1024 to 16777216 (entries)',
  mid_flow: 'drop or schedule',
  batch_size: 'an integer 1-1024 (frames)',
  io_mode: 'ring or mmsg',
  nft_table: 'an nftables table name ([A-Za-z0-9_]+)',
  neighbour_refresh: 'milliseconds, 100-600000',
  socket_filter: 'yes or no',
  authkeys: 'a path to the cluster key file (mode 0600, at least 16 bytes)',
  weight: 'an integer 0-65535',
  mcast_group: 'an IPv4 multicast address (224.0.0.0/4)',
  mcast_port: 'a UDP port 1-65534 (the data network uses the next one)',
  keepalive: 'milliseconds, 10-10000',
  deadtime: 'milliseconds, at least twice keepalive, at most 60000',
  join_delay: 'seconds, 0-3600',
  wait_for_sync: 'yes or no',
  state_file: 'a path for the coordinator state file',
  drain_timeout: 'seconds, 0-86400',
} as const;

export const SARU_CONF_DEFAULTS = {
  control_socket: '/run/saru/saru.sock',
  services_format: 'auto',
  health_checks: 'yes',
  check_parallel: 16,
  buckets: 1024,
  sense: 'src-port',
  conn_table_size: 1 << 20,
  mid_flow: 'drop',
  batch_size: 64,
  nft_table: 'saru',
  neighbour_refresh: 5000,
  socket_filter: 'yes',
  weight: 1,
  mcast_group: '239.192.83.1',
  mcast_port: 7083,
  keepalive: 100,
  deadtime: 300,
  join_delay: 30,
  wait_for_sync: 'no',
  state_file: '/var/lib/saru/coordinator.state',
  drain_timeout: 60,
} as const;

function isPow2(n: number): boolean {
  return (n & (n - 1)) === 0;
}

/**
 * Parse saru.conf text. Relative paths (services, control_socket) are taken
 * from the directory of `file`.
 * @throws SaruError SARU_ERR_CONFIG naming file:line for an unknown key, a
 *   repeated key, a malformed line or value, or a missing required key
 *   (node_id, interface, services).
 */
export function parseSaruConf(text: string, file: string): SaruConfig {
  const kv = parseKeyValueFile(text, file, SARU_CONF_KEYS);
  const { seen, bad, get, path } = kv;
  const required = kv.required;
  const nodeId = intIn(required('node_id'), 1, 1023);
  if (nodeId === null) throw bad('node_id');
  const iface = required('interface');
  if (!IFNAME.test(iface)) throw bad('interface');
  const clusterInterface = get('cluster_interface') ?? iface;
  if (!IFNAME.test(clusterInterface)) throw bad('cluster_interface');
  const services = path(required('services'));
  const controlSocket = path(get('control_socket') ?? SARU_CONF_DEFAULTS.control_socket);
  const servicesFormat = get('services_format') ?? SARU_CONF_DEFAULTS.services_format;
  if (servicesFormat !== 'auto' && servicesFormat !== 'ldirectord' && servicesFormat !== 'keepalived') throw bad('services_format');
  const keepalivedInstance = get('keepalived_instance') ?? null;
  if (keepalivedInstance !== null && !/^[A-Za-z0-9_.-]{1,64}$/.test(keepalivedInstance)) throw bad('keepalived_instance');
  const hc = get('health_checks') ?? SARU_CONF_DEFAULTS.health_checks;
  if (hc !== 'yes' && hc !== 'no') throw bad('health_checks');
  const checkParallel = intIn(get('check_parallel') ?? String(SARU_CONF_DEFAULTS.check_parallel), 1, 1024);
  if (checkParallel === null) throw bad('check_parallel');

  const buckets = intIn(get('buckets') ?? String(SARU_CONF_DEFAULTS.buckets), 2, 65536);
  if (buckets === null || !isPow2(buckets)) throw bad('buckets');
  let sense: Sense;
  try {
    sense = parseSense(get('sense') ?? SARU_CONF_DEFAULTS.sense);
  } catch {
    throw bad('sense');
  }
  const ss = seen.get('static_slice');
  const staticSlice = ss ? parseBucketRanges(ss.value, buckets, { file, line: ss.line }) : null;

  const addr = (key: 'gateway' | 'gateway6', family: 4 | 6): IpAddress | null => {
    const v = get(key);
    if (v === undefined) return null;
    try {
      const a = IpAddress.parse(v);
      if (a.family !== family) throw bad(key);
      return a;
    } catch {
      throw bad(key);
    }
  };
  const gateway = addr('gateway', 4);
  const gateway6 = addr('gateway6', 6);

  const connTableSize = intIn(get('conn_table_size') ?? String(SARU_CONF_DEFAULTS.conn_table_size), 1024, 1 << 24);
  if (connTableSize === null || !isPow2(connTableSize)) throw bad('conn_table_size');
  const midFlow = get('mid_flow') ?? SARU_CONF_DEFAULTS.mid_flow;
  if (midFlow !== 'drop' && midFlow !== 'schedule') throw bad('mid_flow');
  const batchSize = intIn(get('batch_size') ?? String(SARU_CONF_DEFAULTS.batch_size), 1, 1024);
  if (batchSize === null) throw bad('batch_size');
  const io = get('io_mode');
  if (io !== undefined && io !== 'ring' && io !== 'mmsg') throw bad('io_mode');
  const nftTable = get('nft_table') ?? SARU_CONF_DEFAULTS.nft_table;
  if (!/^[A-Za-z0-9_]{1,32}$/.test(nftTable)) throw bad('nft_table');
  const neighbourRefreshMs = intIn(get('neighbour_refresh') ?? String(SARU_CONF_DEFAULTS.neighbour_refresh), 100, 600000);
  if (neighbourRefreshMs === null) throw bad('neighbour_refresh');

  const sf = get('socket_filter') ?? SARU_CONF_DEFAULTS.socket_filter;
  if (sf !== 'yes' && sf !== 'no') throw bad('socket_filter');

  const coordinator = parseCoordinator(seen, { file, lastLine: kv.lastLine, bad, get, path, staticSlice: staticSlice !== null, buckets });

  return {
    file,
    nodeId,
    interface: iface,
    clusterInterface,
    services,
    servicesFormat,
    keepalivedInstance,
    healthChecks: hc === 'yes',
    checkParallel,
    controlSocket,
    buckets,
    sense,
    staticSlice,
    gateway,
    gateway6,
    connTableSize,
    midFlow,
    batchSize,
    ioMode: io ?? null,
    nftTable,
    neighbourRefreshMs,
    socketFilter: sf === 'yes',
    coordinator,
  };
}

const COORD_KEYS = ['authkeys', 'weight', 'mcast_group', 'mcast_port', 'keepalive', 'deadtime', 'join_delay', 'wait_for_sync', 'state_file', 'drain_timeout'] as const;

/** The coordinator keys: required authkeys unless static_slice is given, which excludes them all. */
function parseCoordinator(
  seen: ReadonlyMap<string, { value: string; line: number }>,
  c: {
    file: string;
    lastLine: number;
    bad: (key: keyof typeof SARU_CONF_KEYS) => SaruError;
    get: (key: keyof typeof SARU_CONF_KEYS) => string | undefined;
    path: (v: string) => string;
    staticSlice: boolean;
    buckets: number;
  },
): CoordinatorConfig | null {
  const { bad, get } = c;
  if (c.staticSlice) {
    const clash = COORD_KEYS.find((k) => seen.has(k));
    if (clash) throw configError(c.file, seen.get(clash)!.line, `"${clash}" configures the coordinator, which static_slice (line ${seen.get('static_slice')!.line}) turns off; remove one of them`);
    return null;
  }
  const ak = get('authkeys');
  if (ak === undefined) {
    throw configError(c.file, c.lastLine, 'missing "authkeys" (the cluster key file the coordinator authenticates heartbeats with); or give static_slice for a fixed slice without a coordinator');
  }
  if (c.buckets > MAX_COORD_BUCKETS) {
    throw configError(c.file, seen.get('buckets')!.line, `buckets: the coordinator allocates at most ${MAX_COORD_BUCKETS} buckets, got ${c.buckets} (more need static_slice)`);
  }
  const num = (key: 'weight' | 'mcast_port' | 'keepalive' | 'deadtime' | 'join_delay' | 'drain_timeout', lo: number, hi: number): number => {
    const n = intIn(get(key) ?? String(SARU_CONF_DEFAULTS[key]), lo, hi);
    if (n === null) throw bad(key);
    return n;
  };
  const weight = num('weight', 0, 65535);
  const mcastGroup = get('mcast_group') ?? SARU_CONF_DEFAULTS.mcast_group;
  const g = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(mcastGroup);
  if (!g || g.slice(1).some((o) => Number(o) > 255) || Number(g[1]) < 224 || Number(g[1]) > 239) throw bad('mcast_group');
  const mcastPort = num('mcast_port', 1, 65534);
  const keepaliveMs = num('keepalive', 10, 10000);
  const deadtimeMs = num('deadtime', 20, 60000);
  if (deadtimeMs < 2 * keepaliveMs) {
    const line = seen.get('deadtime')?.line ?? seen.get('keepalive')!.line;
    throw configError(c.file, line, `deadtime (${deadtimeMs} ms) must be at least twice keepalive (${keepaliveMs} ms): one lost heartbeat must not kill a peer`);
  }
  const joinDelayMs = num('join_delay', 0, 3600) * 1000;
  const ws = get('wait_for_sync') ?? SARU_CONF_DEFAULTS.wait_for_sync;
  if (ws !== 'yes' && ws !== 'no') throw bad('wait_for_sync');
  return {
    authkeys: c.path(ak),
    weight,
    mcastGroup,
    mcastPort,
    keepaliveMs,
    deadtimeMs,
    joinDelayMs,
    waitForSync: ws === 'yes',
    stateFile: c.path(get('state_file') ?? SARU_CONF_DEFAULTS.state_file),
    drainTimeoutMs: num('drain_timeout', 0, 86400) * 1000,
  };
}

/**
 * Read and parse a saru.conf file.
 * @throws SaruError SARU_ERR_CONFIG when the file cannot be read (with the
 *   reason) or does not parse (file:line).
 */
export function loadSaruConf(file: string): SaruConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SaruError(ErrorCode.CONFIG, `cannot read ${file}: ${(e as Error).message}`);
  }
  return parseSaruConf(text, file);
}
