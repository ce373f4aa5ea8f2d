/**
 * Test-only: throw-away network namespaces with veth pairs for the native
 * port tests and bench/native-io.ts, and the check of whether they can run
 * here (Linux and root). Owns the namespaces it creates and deletes them in
 * destroy(); never touches the host's own interfaces.
 */
import { execFileSync } from 'node:child_process';

/** Why namespace tests cannot run here, or null when they can. */
export function namespaceSkipReason(): string | null {
  if (process.platform !== 'linux') return `needs Linux (AF_PACKET, network namespaces); this is ${process.platform}`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'needs root (ip netns, CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_ADMIN)';
  return null;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class Netns {
  readonly name: string;
  private alive = true;

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * A new namespace named `${prefix}-${pid}-${n}`, with IPv6 off (no router
   * solicitations or MLD reports on the test links) and lo up.
   */
  static create(prefix: string): Netns {
    const name = `${prefix}-${process.pid}-${Netns.seq++}`;
    ip(['netns', 'add', name]);
    const ns = new Netns(name);
    try {
      ns.exec(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      ns.ip(['link', 'set', 'lo', 'up']);
    } catch (e) {
      ns.destroy();
      throw e;
    }
    return ns;
  }
  private static seq = 0;

  /** `ip -n NAME ...` */
  ip(args: string[]): string {
    return ip(['-n', this.name, ...args]);
  }

  /** Run a command inside the namespace. */
  exec(cmd: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, ...cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A veth pair a <-> b, both up, with optional MTU and MACs. */
  addVeth(a: string, b: string, opts: { mtu?: number; macA?: string; macB?: string } = {}): void {
    this.ip(['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    for (const [dev, mac] of [
      [a, opts.macA],
      [b, opts.macB],
    ] as const) {
      if (mac) this.ip(['link', 'set', dev, 'address', mac]);
      if (opts.mtu) this.ip(['link', 'set', dev, 'mtu', String(opts.mtu)]);
      this.ip(['link', 'set', dev, 'up']);
    }
  }

  /**
   * Wait until every `dev` has operstate UP. The kernel sets it (and
   * IFF_RUNNING, which os.networkInterfaces() needs, and the qdisc that lets a
   * link that has just come up send) from its linkwatch work, up to a second
   * after `ip link set up` returns; this polls for that, at most `timeoutMs`.
   * @throws Error naming the devices and their states on timeout.
   */
  async operUp(devs: string[], timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = devs.map((dev) => (JSON.parse(this.ip(['-j', 'link', 'show', 'dev', dev])) as Array<{ operstate: string }>)[0]!.operstate);
      if (states.every((st) => st === 'UP')) return;
      if (Date.now() > deadline) throw new Error(`${this.name}: ${devs.join(', ')} not up within ${timeoutMs} ms: ${states.join(', ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Delete the namespace (and with it its interfaces); idempotent, never throws. */
  destroy(): void {
    if (!this.alive) return;
    this.alive = false;
    try {
      ip(['netns', 'del', this.name]);
    } catch {
      // already gone
    }
  }
}
