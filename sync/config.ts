/**
 * saru-syncd.conf: the sync daemon's own settings, in saru.conf's style
 * (`key = value`, `#` comments). Owns parsing, validation and defaults; every
 * error names the file, the line and what was expected. It does not read the
 * authkeys file (the daemon loads it with loadClusterKey), check node_id
 * against the local saru's (the daemon does, once connected), look up the
 * interface or open anything.
 */
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { ErrorCode, IFNAME, SaruError, configError, intIn, parseKeyValueFile } from '../core/index.js';

/** One unicast peer (the `peers` key). */
export interface SyncPeer {
  /** IPv4 address, dotted quad. */
  address: string;
  /** UDP port, 1..65535 (mcast_port when the entry gave none). */
  port: number;
}

/** The parsed saru-syncd.conf. Durations in ms, sizes as named. */
export interface SyncConfig {
  /** File the settings came from (for messages). */
  file: string;
  /** This director's id, 1..1023: must equal the local saru's node_id (checked by the daemon). */
  nodeId: number;
  /** Cluster interface name; its first IPv4 address is sent from and joined on. */
  interface: string;
  /** IPv4 multicast group (224.0.0.0/4), dotted quad. */
  mcastGroup: string;
  /** UDP port, 1..65535: the group's port, the port this daemon binds, and the default peer port. */
  mcastPort: number;
  /** Multicast TTL, 1..255. */
  mcastTtl: number;
  /** Unicast peers instead of multicast; null = multicast. Never empty, no duplicates. */
  peers: SyncPeer[] | null;
  /** Packets a connection needs before its first sync (IPVS sync_threshold[0]), >= 0. */
  syncThreshold: number;
  /** Sync again every this many packets (IPVS sync_threshold[1]); 0 = only once, at the threshold. */
  syncPeriod: number;
  /** Cluster key file, absolute path (loaded by the daemon with loadClusterKey). */
  authkeys: string;
  /** The local saru's control socket, absolute path. */
  controlSocket: string;
  /** This daemon's status socket (`saruadm --sync`), absolute path. */
  statusSocket: string;
  /** Largest datagram sent, bytes (UDP payload), 512..65507. */
  maxDatagramBytes: number;
  /** Longest time a sync event waits to be batched into a datagram, ms. */
  flushIntervalMs: number;
  /** Interval of the alive messages, ms. */
  aliveIntervalMs: number;
  /** Retransmission ring capacity, in datagrams. */
  ringDatagrams: number;
}

/** Keys saru-syncd.conf accepts, with what they expect (for error messages and the README). */
export const SYNC_CONF_KEYS = {
  node_id: 'an integer 1-1023 (the local saru\'s node_id)',
  interface: 'an interface name (the cluster interface; its first IPv4 address is used)',
  mcast_group: 'an IPv4 multicast address (224.0.0.0/4)',
  mcast_port: 'a UDP port 1-65535',
  mcast_ttl: 'an integer 1-255',
  peers: 'IPv4 unicast addresses, each ADDRESS or ADDRESS:PORT, separated by spaces or commas',
  sync_threshold: 'two integers THRESHOLD PERIOD, both >= 0, THRESHOLD < PERIOD unless PERIOD is 0 (as net.ipv4.vs.sync_threshold)',
  authkeys: 'a path to the cluster key file (mode 0600, at least 16 bytes)',
  control_socket: "a path to the local saru's control socket",
  status_socket: 'a path for this daemon\'s status socket',
  max_datagram_bytes: 'bytes, 512-65507',
  flush_interval: 'milliseconds, 1-1000',
  alive_interval: 'milliseconds, 20-10000',
  ring_size: 'datagrams, 64-1048576',
} as const;

export type SyncConfKey = keyof typeof SYNC_CONF_KEYS;

/** Defaults of the optional keys, as they would be written in the file (peers has none: multicast). */
export const SYNC_CONF_DEFAULTS = {
  mcast_group: '239.192.83.2',
  mcast_port: 7085,
  mcast_ttl: 1,
  sync_threshold: '3 50',
  control_socket: '/run/saru/saru.sock',
  status_socket: '/run/saru/syncd.sock',
  max_datagram_bytes: 1472,
  flush_interval: 10,
  alive_interval: 250,
  ring_size: 4096,
} as const;

/** Largest value of either sync_threshold integer: the sysctl's C int. */
const MAX_SYSCTL_INT = 2 ** 31 - 1;

function firstOctet(a: string): number {
  return Number(a.slice(0, a.indexOf('.')));
}

/** Dotted-quad IPv4 in 224.0.0.0/4. */
function isMulticastV4(a: string): boolean {
  return isIPv4(a) && firstOctet(a) >= 224 && firstOctet(a) <= 239;
}

/**
 * Parse saru-syncd.conf text. Relative paths (authkeys, control_socket,
 * status_socket) are taken from the directory of `file`.
 *
 * `peers`: tokens separated by whitespace and/or commas, each `A.B.C.D` or
 * `A.B.C.D:PORT` (the port defaults to mcast_port). Addresses must be unicast
 * (not 0.0.0.0, 255.255.255.255 or 224.0.0.0/4). The list may name this
 * director itself (the transport skips its own address and port), so every
 * director can carry the same list.
 *
 * `sync_threshold`: validated as the kernel validates net.ipv4.vs.sync_threshold
 * (ip_vs_ctl.c): both values >= 0, and THRESHOLD < PERIOD when PERIOD > 0.
 *
 * @throws SaruError SARU_ERR_CONFIG naming file:line for an unknown key, a
 *   repeated key, an empty value, a malformed line or value (a bad peer
 *   names the token), or a missing required key (node_id, interface,
 *   authkeys; reported at the file's last line).
 */
export function parseSyncConf(text: string, file: string): SyncConfig {
  const kv = parseKeyValueFile(text, file, SYNC_CONF_KEYS);
  const { seen, bad, get, required, path } = kv;
  const num = (key: keyof typeof SYNC_CONF_DEFAULTS & SyncConfKey, lo: number, hi: number): number => {
    const n = intIn(get(key) ?? String(SYNC_CONF_DEFAULTS[key]), lo, hi);
    if (n === null) throw bad(key);
    return n;
  };

  const nodeId = intIn(required('node_id'), 1, 1023);
  if (nodeId === null) throw bad('node_id');
  const iface = required('interface');
  if (!IFNAME.test(iface)) throw bad('interface');
  const authkeys = path(required('authkeys'));

  const mcastGroup = get('mcast_group') ?? SYNC_CONF_DEFAULTS.mcast_group;
  if (!isMulticastV4(mcastGroup)) throw bad('mcast_group');
  const mcastPort = num('mcast_port', 1, 65535);
  const mcastTtl = num('mcast_ttl', 1, 255);

  const peersEntry = seen.get('peers');
  const peers = peersEntry ? parsePeers(peersEntry.value, mcastPort, (token, why) => bad('peers', `: "${token}" ${why}`)) : null;

  const st = get('sync_threshold') ?? SYNC_CONF_DEFAULTS.sync_threshold;
  const parts = st.split(/\s+/);
  if (parts.length !== 2) throw bad('sync_threshold', `: ${parts.length} value${parts.length === 1 ? '' : 's'}, need 2`);
  const syncThreshold = intIn(parts[0]!, 0, MAX_SYSCTL_INT);
  const syncPeriod = intIn(parts[1]!, 0, MAX_SYSCTL_INT);
  if (syncThreshold === null || syncPeriod === null) throw bad('sync_threshold');
  if (syncPeriod > 0 && syncThreshold >= syncPeriod) {
    throw bad('sync_threshold', `: THRESHOLD ${syncThreshold} must be below PERIOD ${syncPeriod} (packets % PERIOD never reaches it), or PERIOD 0 to sync once`);
  }

  const controlSocket = path(get('control_socket') ?? SYNC_CONF_DEFAULTS.control_socket);
  const statusSocket = path(get('status_socket') ?? SYNC_CONF_DEFAULTS.status_socket);
  if (controlSocket === statusSocket) {
    throw configError(file, (seen.get('status_socket') ?? seen.get('control_socket'))!.line, `status_socket and control_socket are both ${statusSocket}; they must differ`);
  }

  return {
    file,
    nodeId,
    interface: iface,
    mcastGroup,
    mcastPort,
    mcastTtl,
    peers,
    syncThreshold,
    syncPeriod,
    authkeys,
    controlSocket,
    statusSocket,
    maxDatagramBytes: num('max_datagram_bytes', 512, 65507),
    flushIntervalMs: num('flush_interval', 1, 1000),
    aliveIntervalMs: num('alive_interval', 20, 10000),
    ringDatagrams: num('ring_size', 64, 1048576),
  };
}

/**
 * The `peers` value: whitespace- and/or comma-separated `ADDRESS[:PORT]`.
 * `fail(token, why)` makes the error for a bad or repeated token.
 */
function parsePeers(value: string, defaultPort: number, fail: (token: string, why: string) => SaruError): SyncPeer[] {
  const tokens = value.split(/[\s,]+/).filter((t) => t !== '');
  if (tokens.length === 0) throw fail(value, 'holds no address');
  const out: SyncPeer[] = [];
  const where = new Map<string, string>();
  for (const token of tokens) {
    const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(token);
    if (!m) throw fail(token, 'is not ADDRESS or ADDRESS:PORT');
    const address = m[1]!;
    if (!isIPv4(address)) throw fail(token, 'is not an IPv4 address (dotted quad; host names are not resolved)');
    if (address === '0.0.0.0' || address === '255.255.255.255' || isMulticastV4(address)) {
      throw fail(token, 'is not a unicast address (use mcast_group for multicast)');
    }
    const port = m[2] === undefined ? defaultPort : Number(m[2]);
    if (port < 1 || port > 65535) throw fail(token, 'has a port outside 1-65535');
    const key = `${address}:${port}`;
    const prev = where.get(key);
    if (prev !== undefined) throw fail(token, `repeats "${prev}"`);
    where.set(key, token);
    out.push({ address, port });
  }
  return out;
}

/**
 * Read and parse a saru-syncd.conf file.
 * @throws SaruError SARU_ERR_CONFIG when the file cannot be read (with the
 *   reason) or does not parse (file:line).
 */
export function loadSyncConf(file: string): SyncConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SaruError(ErrorCode.CONFIG, `cannot read ${file}: ${(e as Error).message}`);
  }
  return parseSyncConf(text, file);
}
