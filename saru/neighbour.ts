/**
 * Real servers' and gateways' MAC addresses, resolved through the director's
 * own kernel (ARP for IPv4, neighbour discovery for IPv6) and kept fresh.
 * The kernel does the protocol: a datagram to the address's discard port
 * makes it resolve the neighbour (and re-probe a stale one), and
 * `ip -j neigh show dev IF` reads the result. Owns the refresh schedule and
 * the change detection; pushes changes to the data plane through a callback.
 * Does not craft ARP or ND packets itself.
 */
import { createSocket } from 'node:dgram';
import { IpAddress } from '../core/index.js';
import type { CommandRunner } from './hoststack.js';

export interface NeighbourInit {
  /** The data interface. */
  interface: string;
  /** Refresh period once everything is resolved, ms. */
  refreshMs: number;
  /** Retry period while some address is unresolved, ms. Default 200. */
  retryMs?: number;
}

export interface NeighbourDeps {
  run: CommandRunner;
  /** Make the kernel resolve (or re-probe) an address; default: a UDP datagram to port 9. */
  probe?: (address: IpAddress) => void;
  /** Receives the full current map (address text -> "aa:bb:..") whenever it changes. */
  onChange: (macs: Map<string, string>) => void;
  log?: { debug(obj: object, msg: string): void; info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** States in which the kernel's lladdr can be used (include/uapi/linux/neighbour.h NUD_VALID). */
const VALID = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

/** One row of `ip -j neigh show`. */
interface IpNeighRow {
  dst?: string;
  lladdr?: string;
  state?: string[];
}

/**
 * Parse `ip -j neigh show` output into address -> (mac, state).
 * Malformed output yields an empty map.
 */
export function parseIpNeigh(json: string): Map<string, { mac: string; state: string }> {
  const out = new Map<string, { mac: string; state: string }>();
  let rows: unknown;
  try {
    rows = JSON.parse(json);
  } catch {
    return out;
  }
  if (!Array.isArray(rows)) return out;
  for (const r of rows as IpNeighRow[]) {
    if (typeof r?.dst !== 'string' || typeof r.lladdr !== 'string') continue;
    const state = Array.isArray(r.state) && typeof r.state[0] === 'string' ? r.state[0] : 'NONE';
    let key: string;
    try {
      key = IpAddress.parse(r.dst).text;
    } catch {
      continue;
    }
    out.set(key, { mac: r.lladdr.toLowerCase(), state });
  }
  return out;
}

function udpProbe(address: IpAddress): void {
  const s = createSocket(address.family === 4 ? 'udp4' : 'udp6');
  s.on('error', () => s.close());
  s.send(Buffer.alloc(0), 9, address.text, () => s.close());
}

export class NeighbourResolver {
  private readonly wanted = new Map<string, IpAddress>();
  private current = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly probe: (a: IpAddress) => void;

  constructor(
    private readonly init: NeighbourInit,
    private readonly deps: NeighbourDeps,
  ) {
    this.probe = deps.probe ?? udpProbe;
  }

  /** Replace the set of addresses to resolve (real servers, fallbacks, gateways). */
  setAddresses(addresses: Iterable<string>): void {
    this.wanted.clear();
    for (const a of addresses) {
      const ip = IpAddress.parse(a);
      this.wanted.set(ip.text, ip);
    }
  }

  /** Addresses still without a usable MAC. */
  unresolved(): string[] {
    return [...this.wanted.keys()].filter((k) => !this.current.has(k));
  }

  /**
   * One refresh: read the kernel's table, report changes, probe what is
   * missing or stale. Returns whether everything wanted is resolved.
   */
  async refresh(): Promise<boolean> {
    const r = await this.deps.run('ip', ['-j', 'neigh', 'show', 'dev', this.init.interface]);
    const table = r.code === 0 ? parseIpNeigh(r.stdout) : new Map<string, { mac: string; state: string }>();
    if (r.code !== 0) this.deps.log?.warn({ stderr: r.stderr.trim() }, 'ip neigh show failed');
    const next = new Map<string, string>();
    for (const [key, ip] of this.wanted) {
      const row = table.get(key);
      const usable = row !== undefined && VALID.has(row.state);
      if (usable) next.set(key, row.mac);
      if (!usable || row.state === 'STALE') this.probe(ip);
    }
    let changed = next.size !== this.current.size;
    for (const [k, v] of next) if (this.current.get(k) !== v) changed = true;
    if (changed) {
      for (const [k, v] of next) if (this.current.get(k) !== v) this.deps.log?.info({ address: k, mac: v }, 'neighbour resolved');
      for (const k of this.current.keys()) if (!next.has(k)) this.deps.log?.warn({ address: k }, 'neighbour lost');
      this.current = next;
      this.deps.onChange(new Map(next));
    }
    return next.size === this.wanted.size;
  }

  /** Refresh now and then periodically (faster while something is unresolved). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async (): Promise<void> => {
      let done = false;
      try {
        done = await this.refresh();
      } catch (e) {
        this.deps.log?.warn({ err: (e as Error).message }, 'neighbour refresh failed');
      }
      if (!this.running) return;
      this.timer = setTimeout(() => void loop(), done ? this.init.refreshMs : (this.init.retryMs ?? 200));
    };
    void loop();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
