/**
 * Renders the files the testbed hands each director: `saru.conf` (cluster
 * settings, `key = value`) and the virtual services in ldirectord.cf syntax.
 * Pure string building; owns no files (the Testbed writes them) and must not
 * know how the daemon parses them beyond the documented formats.
 */
import { ADDRESSES, staticSlice } from './addresses.js';

export type TestbedFwd = 'gate' | 'masq' | 'ipip';

/** Settings of the services file. */
export interface ServicesSpec {
  realServers: number;
  fwd: TestbedFwd;
  scheduler: string;
  /** One weight per real server (0..65535). */
  weights: number[];
  /** Also an IPv6 service on the IPv6 VIP (`virtual6=`). */
  ipv6: boolean;
  /** Also a UDP echo service on port 7 (per family). */
  udp: boolean;
  /** TCP port of the main service. */
  port: number;
}

/** The services file: a TCP service on `port`, optionally IPv6 and UDP echo (port 7). */
export function renderServices(s: ServicesSpec): string {
  if (s.weights.length !== s.realServers) {
    throw new RangeError(`weights: ${s.weights.length} given for ${s.realServers} real servers`);
  }
  for (const w of s.weights) {
    if (!Number.isInteger(w) || w < 0 || w > 65535) throw new RangeError(`weights must be integers 0..65535, got ${w}`);
  }
  if (!/^[a-z]+$/.test(s.scheduler)) throw new RangeError(`scheduler must be a lowercase name, got "${s.scheduler}"`);
  const blocks: string[] = [];
  const block = (v6: boolean, protocol: 'tcp' | 'udp', port: number): void => {
    const lines = [v6 ? `virtual6=[${ADDRESSES.vip6}]:${port}` : `virtual=${ADDRESSES.vip4}:${port}`];
    for (let j = 1; j <= s.realServers; j++) {
      const r = ADDRESSES.real(j);
      const addr = v6 ? `real6=[${r.ip6}]` : `real=${r.ip4}`;
      lines.push(`\t${addr}:${port} ${s.fwd} ${s.weights[j - 1]}`);
    }
    lines.push(`\tscheduler=${s.scheduler}`, `\tprotocol=${protocol}`, '\tchecktype=on');
    blocks.push(lines.join('\n'));
  };
  const families = s.ipv6 ? [false, true] : [false];
  for (const v6 of families) block(v6, 'tcp', s.port);
  if (s.udp) for (const v6 of families) block(v6, 'udp', 7);
  return `# Saru testbed services (ldirectord.cf syntax), generated; edits are lost on the next up\n\n${blocks.join('\n\n')}\n`;
}

/** Settings of one director's saru.conf. */
export interface SaruConfSpec {
  /** 1-based director index = node id. */
  index: number;
  directors: number;
  buckets: number;
  servicesPath: string;
  socketPath: string;
  /** The coordinator's files and timing; null: a static slice (director i gets range i of N). */
  coordinator: { authkeys: string; stateFile: string; keepaliveMs: number; deadtimeMs: number; waitForSync?: boolean } | null;
}

export interface SyncdConfSpec {
  index: number;
  authkeys: string;
  controlSocket: string;
  statusSocket: string;
}

/** saru-syncd.conf for director `index`: multicast on the cluster bridge (eth1), the director's control socket. */
export function renderSyncdConf(c: SyncdConfSpec): string {
  return [
    `# Saru testbed: saru-syncd of director ${c.index}, generated; edits are lost on the next up`,
    `node_id = ${c.index}`,
    'interface = eth1',
    `authkeys = ${c.authkeys}`,
    `control_socket = ${c.controlSocket}`,
    `status_socket = ${c.statusSocket}`,
    'sync_threshold = 3 50',
    '',
  ].join('\n');
}

/** saru.conf for director `index` of `directors`: with the coordinator's keys, or with its static share of the buckets. */
export function renderSaruConf(c: SaruConfSpec): string {
  const [first, last] = staticSlice(c.index, c.directors, c.buckets);
  const slice = c.coordinator
    ? [
        `authkeys = ${c.coordinator.authkeys}`,
        `state_file = ${c.coordinator.stateFile}`,
        `keepalive = ${c.coordinator.keepaliveMs}`,
        `deadtime = ${c.coordinator.deadtimeMs}`,
        ...(c.coordinator.waitForSync ? ['wait_for_sync = yes', 'join_delay = 10'] : []),
      ]
    : [`static_slice = ${first === last ? `${first}` : `${first}-${last}`}`];
  return [
    `# Saru testbed: director ${c.index} of ${c.directors}, generated; edits are lost on the next up`,
    `node_id = ${c.index}`,
    'interface = eth0',
    'cluster_interface = eth1',
    `services = ${c.servicesPath}`,
    `control_socket = ${c.socketPath}`,
    `buckets = ${c.buckets}`,
    'sense = src-port',
    ...slice,
    `gateway = ${ADDRESSES.client4}`,
    `gateway6 = ${ADDRESSES.client6}`,
    '',
  ].join('\n');
}
