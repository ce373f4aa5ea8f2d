/**
 * The network-namespace testbed: builds N directors, M real servers, a client
 * and a switch namespace (hub bridge for the shared-MAC data segment, plain
 * bridge for the cluster network), starts the real-server programs and,
 * optionally, the `saru` daemons, and tears it all down again.
 *
 * Owns: the namespaces named PREFIX-sw, PREFIX-c, PREFIX-d{i}, PREFIX-r{j}
 * (exactly those names, so testbeds with other prefixes never collide), the
 * processes it starts (pid files under the state directory) and the state
 * directory itself (marked by testbed.json). Must not configure anything in
 * the root namespace, touch namespaces or processes it does not own, or kill
 * by process name.
 *
 * up() on a prefix that already exists tears the old testbed down first and
 * builds afresh: a rebuilt testbed is in a known state, a reused one might
 * carry a previous test's neighbour entries, addresses or processes.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SaruError, parseBucketRanges } from '../../core/index.js';
import { ADDRESSES, MAX_DIRECTORS, MAX_REAL_SERVERS, type TestbedAddresses } from './addresses.js';
import { randomBytes } from 'node:crypto';
import { SARU_CONF_DEFAULTS } from '../config.js';
import type { ClusterInfo, SyncInfo } from '../control.js';
import { renderSaruConf, renderServices, renderSyncdConf, type TestbedFwd } from './config.js';
import {
  inNetns,
  isAlive,
  processCmdline,
  readPidFile,
  runChecked,
  runCommand,
  signal,
  spawnDetached,
  tail,
  terminate,
  waitFor,
  type RunResult,
} from './proc.js';

export interface TestbedInit {
  /** Namespace and state-directory prefix (default "saru"): lowercase letters, digits, inner dashes. */
  prefix?: string;
  /** Number of directors, 1..89 (default 3). */
  directors?: number;
  /** Number of real servers, 1..154 (default 2). */
  realServers?: number;
  /** Real servers' return path: 'direct' (DR/TUN, on-link to the client) or 'director' (NAT: default via the DIP). Default: 'director' for masq, else 'direct'. */
  rsRoute?: 'direct' | 'director';
  /** Forwarding method in the services file (default 'gate'). */
  fwd?: TestbedFwd;
  /** Scheduler in the services file (default 'wrr'). */
  scheduler?: string;
  /** One weight per real server (default all 1). */
  weights?: number[];
  /** Also an IPv6 virtual service (the IPv6 addresses are always configured). */
  ipv6?: boolean;
  /** Also a UDP echo virtual service on port 7 (the echo servers always run). */
  udp?: boolean;
  /** Start the `saru` daemons in up() (default true). */
  startDaemons?: boolean;
  /** State directory (default /run/PREFIX-testbed). */
  stateDir?: string;
  /** Repository root holding dist/ (default: found from this module's location). */
  repoRoot?: string;
  /** The daemon's entry point (default REPO/dist/saru/cli.js). */
  daemonScript?: string;
  /** Buckets in saru.conf (default 1024). */
  buckets?: number;
  /** 'coordinator' (default): the directors elect a master and allocate the buckets; 'static': director i of N owns range i (static_slice). */
  slices?: 'coordinator' | 'static';
  /** Coordinator keepalive and deadtime, ms (default saru.conf's 100 and 300). */
  keepaliveMs?: number;
  deadtimeMs?: number;
  /** Daemon logs as JSON lines (for programs reading them) instead of readable text (default false). */
  jsonLogs?: boolean;
  /** Run saru-syncd beside every saru (coordinator slices only), with wait_for_sync (default false). */
  sync?: boolean;
  /** Progress lines (default: silent). */
  log?: (line: string) => void;
  /**
   * The services file's text (ldirectord.cf or keepalived.conf), instead of
   * the one generated from realServers/fwd/scheduler/weights/ipv6/udp.
   */
  services?: string;
}

export type NamespaceRole = 'client' | 'switch' | 'director' | 'real';

export interface TestbedProcess {
  /** Host directory name: "d1", "r2". */
  host: string;
  /** Program: "saru", "http", "udp". */
  program: string;
  namespace: string;
  pid: number;
  alive: boolean;
  log: string;
}

export interface DirectorStatus {
  index: number;
  namespace: string;
  pid?: number;
  alive: boolean;
  socketPath: string;
  socket: boolean;
}

export interface TestbedStatus {
  prefix: string;
  stateDir: string;
  /** This testbed's namespaces that exist, sorted. */
  namespaces: string[];
  /** Every process with a pid file. */
  processes: TestbedProcess[];
  /** One entry per director namespace that exists. */
  directors: DirectorStatus[];
}

/** Programs the testbed needs on the machine. */
export const REQUIRED_TOOLS = ['ip', 'ethtool', 'curl', 'wrk', 'nft'] as const;

/** How long a started program may take to become ready (real servers: ready file; directors: control socket). */
const READY_TIMEOUT_MS = 10_000;

/** nftables table (bridge family, switch namespace) of clusterLoss(). */
const LOSS_TABLE = 'saru_loss';
/** How long a SIGTERMed process may take to exit before SIGKILL. */
const STOP_GRACE_MS = 5_000;
const MARKER = 'testbed.json';
/** nftables table (bridge family, in the switch) that isolate() fills. */
const PARTITION_TABLE = 'saru_partition';

const PREFIX_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/** Locate `tool` on PATH and the sbin directories; undefined when missing. */
export function findTool(tool: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function defaultRepoRoot(): string {
  // This module is REPO/dist/saru/testbed/testbed.js.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

function invalid(msg: string): SaruError {
  return new SaruError(ErrorCode.INVALID_ARGUMENT, msg);
}

export class Testbed {
  readonly prefix: string;
  readonly directors: number;
  readonly realServers: number;
  readonly rsRoute: 'direct' | 'director';
  readonly fwd: TestbedFwd;
  readonly scheduler: string;
  readonly weights: number[];
  readonly ipv6: boolean;
  readonly udp: boolean;
  private servicesOverride: string | undefined;
  readonly startDaemons: boolean;
  readonly stateDir: string;
  readonly repoRoot: string;
  readonly daemonScript: string;
  readonly buckets: number;
  readonly slices: 'coordinator' | 'static';
  readonly keepaliveMs: number;
  readonly deadtimeMs: number;
  readonly jsonLogs: boolean;
  readonly sync: boolean;
  readonly addresses: TestbedAddresses = ADDRESSES;
  private readonly log: (line: string) => void;
  private readonly programDir: string;

  constructor(init: TestbedInit = {}) {
    this.prefix = init.prefix ?? 'saru';
    if (!PREFIX_RE.test(this.prefix) || this.prefix.length > 32) {
      throw invalid(`prefix must be lowercase letters and digits with inner dashes, at most 32 characters, got "${this.prefix}"`);
    }
    this.directors = init.directors ?? 3;
    if (!Number.isInteger(this.directors) || this.directors < 1 || this.directors > MAX_DIRECTORS) {
      throw invalid(`directors must be 1..${MAX_DIRECTORS}, got ${init.directors}`);
    }
    this.realServers = init.realServers ?? 2;
    if (!Number.isInteger(this.realServers) || this.realServers < 1 || this.realServers > MAX_REAL_SERVERS) {
      throw invalid(`realServers must be 1..${MAX_REAL_SERVERS}, got ${init.realServers}`);
    }
    this.fwd = init.fwd ?? 'gate';
    if (!['gate', 'masq', 'ipip'].includes(this.fwd)) throw invalid(`fwd must be gate, masq or ipip, got "${this.fwd}"`);
    this.rsRoute = init.rsRoute ?? (this.fwd === 'masq' ? 'director' : 'direct');
    if (this.rsRoute !== 'direct' && this.rsRoute !== 'director') throw invalid(`rsRoute must be direct or director, got "${this.rsRoute}"`);
    this.scheduler = init.scheduler ?? 'wrr';
    this.weights = init.weights ?? new Array<number>(this.realServers).fill(1);
    this.ipv6 = init.ipv6 ?? false;
    this.udp = init.udp ?? false;
    this.servicesOverride = init.services;
    this.startDaemons = init.startDaemons ?? true;
    this.buckets = init.buckets ?? 1024;
    this.slices = init.slices ?? 'coordinator';
    this.keepaliveMs = init.keepaliveMs ?? SARU_CONF_DEFAULTS.keepalive;
    this.deadtimeMs = init.deadtimeMs ?? SARU_CONF_DEFAULTS.deadtime;
    this.jsonLogs = init.jsonLogs === true;
    this.sync = init.sync === true;
    if (this.sync && this.slices !== 'coordinator') throw invalid('sync needs the coordinator (slices: "coordinator")');
    if (!Number.isInteger(this.buckets) || this.buckets < this.directors || this.buckets > 65536) {
      throw invalid(`buckets must be ${this.directors}..65536, got ${init.buckets}`);
    }
    this.stateDir = resolve(init.stateDir ?? `/run/${this.prefix}-testbed`);
    this.repoRoot = resolve(init.repoRoot ?? defaultRepoRoot());
    this.daemonScript = resolve(init.daemonScript ?? join(this.repoRoot, 'dist', 'saru', 'cli.js'));
    this.log = init.log ?? (() => {});
    this.programDir = join(this.repoRoot, 'dist', 'saru', 'testbed');
    // Validate the services settings now rather than half-way through up().
    this.servicesText();
  }

  // ---- names and paths ---------------------------------------------------------

  /** Namespace name of a role; `i` is the 1-based director or real-server index. */
  nsName(role: NamespaceRole, i?: number): string {
    switch (role) {
      case 'switch':
        return `${this.prefix}-sw`;
      case 'client':
        return `${this.prefix}-c`;
      case 'director':
        return `${this.prefix}-d${this.index('director', i, this.directors)}`;
      case 'real':
        return `${this.prefix}-r${this.index('real server', i, this.realServers)}`;
      default:
        throw invalid(`unknown namespace role "${String(role)}"`);
    }
  }

  /** State directory of director `i`: saru.conf, services.cf, saru.log, saru.pid, saru.sock. */
  directorDir(i: number): string {
    return join(this.stateDir, `d${this.index('director', i, this.directors)}`);
  }

  /** State directory of real server `j`: http.log/pid, udp.log/pid. */
  realDir(j: number): string {
    return join(this.stateDir, `r${this.index('real server', j, this.realServers)}`);
  }

  /** Control socket path of director `i`. */
  socketPath(i: number): string {
    return join(this.directorDir(i), 'saru.sock');
  }

  /** The services file every director reads (the same text in each director's directory). */
  servicesText(): string {
    if (this.servicesOverride !== undefined) return this.servicesOverride;
    return renderServices({
      realServers: this.realServers,
      fwd: this.fwd,
      scheduler: this.scheduler,
      weights: this.weights,
      ipv6: this.ipv6,
      udp: this.udp,
      port: 80,
    });
  }

  /** saru.conf text of director `i`. */
  saruConfText(i: number): string {
    const dir = this.directorDir(i);
    return renderSaruConf({
      index: i,
      directors: this.directors,
      buckets: this.buckets,
      servicesPath: join(dir, 'services.cf'),
      socketPath: join(dir, 'saru.sock'),
      coordinator:
        this.slices === 'static'
          ? null
          : { authkeys: this.authkeysPath, stateFile: join(dir, 'coordinator.state'), keepaliveMs: this.keepaliveMs, deadtimeMs: this.deadtimeMs, waitForSync: this.sync },
    });
  }

  /** saru-syncd.conf text of director `i`. */
  syncdConfText(i: number): string {
    const dir = this.directorDir(i);
    return renderSyncdConf({ index: i, authkeys: this.authkeysPath, controlSocket: join(dir, 'saru.sock'), statusSocket: this.syncSocketPath(i) });
  }

  /** saru-syncd's status socket of director `i`. */
  syncSocketPath(i: number): string {
    return join(this.directorDir(i), 'syncd.sock');
  }

  /** The cluster key every director of this testbed shares (mode 0600). */
  get authkeysPath(): string {
    return join(this.stateDir, 'authkey');
  }

  private index(what: string, i: number | undefined, max: number): number {
    if (i === undefined || !Number.isInteger(i) || i < 1 || i > max) throw invalid(`${what} index must be 1..${max}, got ${i}`);
    return i;
  }

  /** Matches exactly this testbed's namespace names. */
  private nsPattern(): RegExp {
    return new RegExp(`^${this.prefix.replace(/-/g, '\\-')}-(?:sw|c|d[1-9][0-9]*|r[1-9][0-9]*)$`);
  }

  // ---- commands ----------------------------------------------------------------

  /** Run `cmd args` inside namespace `ns`; resolves with its exit code and output (never throws on a non-zero exit). */
  exec(ns: string, cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return runCommand('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** `ip ARGS`; throws naming the command line and its stderr. */
  private ip(...args: string[]): Promise<RunResult> {
    return runChecked('ip', args);
  }

  /** Write sysctls (dotted keys) inside `ns` through /proc/sys, without needing procps. */
  private async sysctl(ns: string, values: Record<string, string | number>): Promise<void> {
    const script = ['set -e', ...Object.entries(values).map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`)].join('\n');
    await runChecked('ip', ['netns', 'exec', ns, 'sh', '-c', script]);
  }

  // ---- environment -------------------------------------------------------------

  /** Throws a clear error when not root, a tool is missing or the testbed programs are not built. */
  checkEnvironment(): void {
    if (process.platform !== 'linux') throw new SaruError(ErrorCode.UNSUPPORTED_PLATFORM, 'the testbed needs Linux network namespaces');
    if (process.getuid?.() !== 0) {
      throw new SaruError(ErrorCode.NOT_PERMITTED, 'the testbed creates network namespaces and must run as root (sudo npm run testbed -- ...)');
    }
    let missing = REQUIRED_TOOLS.filter((t) => findTool(t) === undefined);
    if (missing.length > 0) {
      // Install the Debian packages the testbed needs with the project's own script, as CI does.
      const script = join(this.repoRoot, 'scripts', 'install-system-deps.sh');
      this.log(`missing tools: ${missing.join(', ')}; running ${script}`);
      const r = spawnSync('bash', [script], { encoding: 'utf8' });
      missing = REQUIRED_TOOLS.filter((t) => findTool(t) === undefined);
      if (missing.length > 0) {
        throw new SaruError(ErrorCode.IO, `missing tools: ${missing.join(', ')}; ${script} did not install them: ${(r.stderr || r.stdout || '').trim().slice(-500)}`);
      }
    }
    for (const p of ['http-server.js', 'udp-echo.js']) {
      if (!existsSync(join(this.programDir, p))) {
        throw new SaruError(ErrorCode.IO, `${join(this.programDir, p)} is missing; build first (npm run build)`);
      }
    }
  }

  // ---- up ----------------------------------------------------------------------

  /** Build the testbed (tearing down any previous one with this prefix first). */
  async up(): Promise<void> {
    this.checkEnvironment();
    await this.down();
    const t0 = Date.now();
    mkdirSync(this.stateDir, { recursive: true, mode: 0o755 });
    writeFileSync(
      join(this.stateDir, MARKER),
      `${JSON.stringify(
        {
          prefix: this.prefix,
          directors: this.directors,
          realServers: this.realServers,
          rsRoute: this.rsRoute,
          fwd: this.fwd,
          scheduler: this.scheduler,
          weights: this.weights,
          ipv6: this.ipv6,
          udp: this.udp,
          buckets: this.buckets,
          slices: this.slices,
        },
        null,
        2,
      )}\n`,
    );

    this.log(`${this.prefix}: switch namespace with hub0 (data, floods) and clu0 (cluster)`);
    await this.buildSwitch();
    const hosts: Array<Promise<void>> = [this.buildClient()];
    for (let i = 1; i <= this.directors; i++) hosts.push(this.buildDirector(i));
    for (let j = 1; j <= this.realServers; j++) hosts.push(this.buildReal(j));
    await settleAll(hosts);
    this.log(`${this.prefix}: client, ${this.directors} director(s), ${this.realServers} real server(s) wired (${Date.now() - t0} ms)`);

    const starts: Array<Promise<void>> = [];
    for (let j = 1; j <= this.realServers; j++) {
      starts.push(this.startProgram(this.nsName('real', j), this.realDir(j), 'http', join(this.programDir, 'http-server.js'), ['--name', `r${j}`]));
      starts.push(this.startProgram(this.nsName('real', j), this.realDir(j), 'udp', join(this.programDir, 'udp-echo.js'), ['--name', `r${j}`]));
    }
    await settleAll(starts);
    this.log(`${this.prefix}: real servers answer HTTP on port 80 and UDP echo on port 7`);

    const services = this.servicesText();
    if (this.slices === 'coordinator') writeFileSync(this.authkeysPath, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    for (let i = 1; i <= this.directors; i++) {
      const dir = this.directorDir(i);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'services.cf'), services);
      writeFileSync(join(dir, 'saru.conf'), this.saruConfText(i));
      if (this.sync) writeFileSync(join(dir, 'saru-syncd.conf'), this.syncdConfText(i));
    }
    if (this.startDaemons) {
      await settleAll(Array.from({ length: this.directors }, (_, k) => this.startDirector(k + 1)));
      if (this.sync) await settleAll(Array.from({ length: this.directors }, (_, k) => this.startSyncd(k + 1)));
      this.log(`${this.prefix}: ${this.directors} saru daemon(s)${this.sync ? ' and saru-syncd(s)' : ''} running`);
    }
    this.log(`${this.prefix}: up in ${Date.now() - t0} ms`);
  }

  private async addNamespace(ns: string, sysctls: Record<string, string | number>): Promise<void> {
    await this.ip('netns', 'add', ns);
    // Defaults first: interfaces created or moved in later inherit them (no DAD: shared and duplicate addresses are intended).
    await this.sysctl(ns, {
      'net.ipv6.conf.all.accept_dad': 0,
      'net.ipv6.conf.default.accept_dad': 0,
      'net.ipv6.conf.all.accept_ra': 0,
      'net.ipv6.conf.default.accept_ra': 0,
      ...sysctls,
    });
    await this.ip('-n', ns, 'link', 'set', 'lo', 'up');
  }

  private async buildSwitch(): Promise<void> {
    const sw = this.nsName('switch');
    // The switch takes no part in IP: no IPv6 on its ports (no MLD/RS noise on the segments).
    await this.addNamespace(sw, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
    // hub0: ageing 0 (and no learning on its ports) makes the bridge flood every frame to every port, like a hub.
    await this.ip('-n', sw, 'link', 'add', 'hub0', 'type', 'bridge', 'ageing_time', '0', 'stp_state', '0', 'mcast_snooping', '0');
    await this.ip('-n', sw, 'link', 'add', 'clu0', 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0');
    await this.ip('-n', sw, 'link', 'set', 'hub0', 'up');
    await this.ip('-n', sw, 'link', 'set', 'clu0', 'up');
  }

  /** A veth from bridge `bridge` in the switch (port `port`) to `ifname` in `ns`, with `mac`. */
  private async attach(ns: string, ifname: string, mac: string, bridge: 'hub0' | 'clu0', port: string): Promise<void> {
    const sw = this.nsName('switch');
    await this.ip('-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns);
    await this.ip('-n', ns, 'link', 'set', ifname, 'address', mac);
    await this.ip('-n', sw, 'link', 'set', port, 'master', bridge);
    if (bridge === 'hub0') await this.ip('-n', sw, 'link', 'set', port, 'type', 'bridge_slave', 'learning', 'off');
    await this.ip('-n', sw, 'link', 'set', port, 'up');
  }

  private async buildClient(): Promise<void> {
    const a = this.addresses;
    const ns = this.nsName('client');
    await this.addNamespace(ns, {});
    await this.attach(ns, 'eth0', a.clientMac, 'hub0', 'c-h');
    await this.ip('-n', ns, 'addr', 'add', `${a.client4}/24`, 'dev', 'eth0');
    await this.ip('-n', ns, '-6', 'addr', 'add', `${a.client6}/64`, 'dev', 'eth0', 'nodad');
    await this.ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await this.exec(ns, 'ethtool', ['-K', 'eth0', 'tx', 'off']).then((r) => this.checked(ns, 'ethtool -K eth0 tx off', r));
    await this.ip('-n', ns, 'route', 'add', a.dataNet4, 'dev', 'eth0');
    await this.ip('-n', ns, '-6', 'route', 'add', a.dataNet6, 'dev', 'eth0');
    await this.ip('-n', ns, 'neigh', 'replace', a.vip4, 'lladdr', a.sharedMac, 'dev', 'eth0', 'nud', 'permanent');
    await this.ip('-n', ns, '-6', 'neigh', 'replace', a.vip6, 'lladdr', a.sharedMac, 'dev', 'eth0', 'nud', 'permanent');
  }

  private async buildDirector(i: number): Promise<void> {
    const a = this.addresses;
    const d = a.director(i);
    const ns = this.nsName('director', i);
    await this.addNamespace(ns, { 'net.ipv4.ip_forward': 0, 'net.ipv6.conf.all.forwarding': 0 });
    await this.attach(ns, 'eth0', a.sharedMac, 'hub0', `d${i}-h`);
    await this.attach(ns, 'eth1', d.clusterMac, 'clu0', `d${i}-c`);
    await this.sysctl(ns, { 'net.ipv6.conf.eth0.accept_dad': 0, 'net.ipv6.conf.eth1.accept_dad': 0 });
    // Own address first: the kernel's primary (source of health checks and ARP); the DIP is a secondary.
    await this.ip('-n', ns, 'addr', 'add', `${d.own4}/24`, 'dev', 'eth0');
    await this.ip('-n', ns, 'addr', 'add', `${a.dip4}/24`, 'dev', 'eth0');
    await this.ip('-n', ns, 'addr', 'add', `${d.clientNet4}/24`, 'dev', 'eth0');
    await this.ip('-n', ns, '-6', 'addr', 'add', `${d.own6}/64`, 'dev', 'eth0', 'nodad');
    // Deprecated (preferred_lft 0): still ours and answered, never picked as a source address.
    await this.ip('-n', ns, '-6', 'addr', 'add', `${a.dip6}/64`, 'dev', 'eth0', 'nodad', 'preferred_lft', '0');
    await this.ip('-n', ns, '-6', 'addr', 'add', `${d.clientNet6}/64`, 'dev', 'eth0', 'nodad');
    await this.ip('-n', ns, 'addr', 'add', `${d.cluster4}/24`, 'dev', 'eth1');
    await this.ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await this.ip('-n', ns, 'link', 'set', 'eth1', 'up');
    await this.ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth1');
  }

  private async buildReal(j: number): Promise<void> {
    const a = this.addresses;
    const r = a.real(j);
    const ns = this.nsName('real', j);
    await this.addNamespace(ns, {
      'net.ipv4.conf.all.arp_ignore': 1,
      'net.ipv4.conf.all.arp_announce': 2,
    });
    await this.attach(ns, 'eth0', r.mac, 'hub0', `r${j}-h`);
    await this.sysctl(ns, { 'net.ipv4.conf.eth0.arp_ignore': 1, 'net.ipv4.conf.eth0.arp_announce': 2, 'net.ipv6.conf.eth0.accept_dad': 0 });
    await this.ip('-n', ns, 'addr', 'add', `${r.ip4}/24`, 'dev', 'eth0');
    await this.ip('-n', ns, '-6', 'addr', 'add', `${r.ip6}/64`, 'dev', 'eth0', 'nodad');
    await this.ip('-n', ns, 'addr', 'add', `${a.vip4}/32`, 'dev', 'lo');
    await this.ip('-n', ns, '-6', 'addr', 'add', `${a.vip6}/128`, 'dev', 'lo', 'nodad');
    await this.ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await this.exec(ns, 'ethtool', ['-K', 'eth0', 'tx', 'off']).then((res) => this.checked(ns, 'ethtool -K eth0 tx off', res));
    if (this.rsRoute === 'direct') {
      await this.ip('-n', ns, 'route', 'add', a.clientNet4, 'dev', 'eth0');
      await this.ip('-n', ns, '-6', 'route', 'add', a.clientNet6, 'dev', 'eth0');
    } else {
      await this.ip('-n', ns, 'route', 'add', 'default', 'via', a.dip4, 'dev', 'eth0');
      await this.ip('-n', ns, '-6', 'route', 'add', 'default', 'via', a.dip6, 'dev', 'eth0');
    }
  }

  private checked(ns: string, what: string, r: RunResult): void {
    if (r.code !== 0) throw new SaruError(ErrorCode.IO, `ip netns exec ${ns} ${what}: exit code ${r.code}: ${r.stderr.trim()}`);
  }

  // ---- processes -----------------------------------------------------------------

  /**
   * Start `node script args` detached in `ns`, output to DIR/NAME.log, pid in
   * DIR/NAME.pid, and wait (bounded) until it writes DIR/NAME.ready.
   */
  private async startProgram(ns: string, dir: string, name: string, script: string, args: string[]): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const ready = join(dir, `${name}.ready`);
    const logPath = join(dir, `${name}.log`);
    rmSync(ready, { force: true });
    const pid = spawnDetached('ip', ['netns', 'exec', ns, process.execPath, script, ...args, '--ready', ready], logPath);
    writeFileSync(join(dir, `${name}.pid`), `${pid}\n`);
    const ok = await waitFor(() => existsSync(ready) || !isAlive(pid), READY_TIMEOUT_MS);
    if (!ok || !existsSync(ready)) {
      const why = ok ? 'exited' : `was not ready within ${READY_TIMEOUT_MS} ms`;
      throw new SaruError(ErrorCode.IO, `${ns}: ${name} (${script}) ${why}; log ${logPath}:\n${tail(logPath)}`);
    }
  }

  /** Pid of director `i`'s daemon from its pid file, if that process is alive and in the director's namespace. */
  private directorPid(i: number): number | undefined {
    return this.programPid(i, 'saru');
  }

  /** Pid of director `i`'s `program` ("saru", "syncd") from its pid file, if alive in the director's namespace. */
  private programPid(i: number, program: 'saru' | 'syncd'): number | undefined {
    const pid = readPidFile(join(this.directorDir(i), `${program}.pid`));
    return pid !== undefined && isAlive(pid) && inNetns(pid, this.nsName('director', i)) ? pid : undefined;
  }

  /**
   * Start director `i`'s saru-syncd (testbed with `sync`) and wait (10 s)
   * until its status socket appears.
   */
  async startSyncd(i: number): Promise<void> {
    const ns = this.nsName('director', i);
    const dir = this.directorDir(i);
    const conf = join(dir, 'saru-syncd.conf');
    if (!this.sync || !existsSync(conf)) throw new SaruError(ErrorCode.IO, `${ns}: the testbed runs without saru-syncd (sync: true at up())`);
    const running = this.programPid(i, 'syncd');
    if (running !== undefined) throw new SaruError(ErrorCode.IO, `${ns}: saru-syncd is already running (pid ${running})`);
    const script = join(this.repoRoot, 'dist', 'sync', 'cli.js');
    const sock = this.syncSocketPath(i);
    const stale = socketId(sock);
    const logPath = join(dir, 'syncd.log');
    writeFileSync(logPath, `--- testbed: starting saru-syncd ${i} at ${new Date().toISOString()}\n`, { flag: 'a' });
    const pid = spawnDetached('ip', ['netns', 'exec', ns, process.execPath, script, '--config', conf, '--log_facility', this.jsonLogs ? 'daemon' : '-'], logPath);
    writeFileSync(join(dir, 'syncd.pid'), `${pid}\n`);
    const fresh = (): boolean => {
      const id = socketId(sock);
      return id !== undefined && id !== stale;
    };
    const ok = await waitFor(() => fresh() || !isAlive(pid), READY_TIMEOUT_MS);
    if (!ok || !fresh()) {
      throw new SaruError(ErrorCode.IO, `${ns}: saru-syncd (pid ${pid}) did not create ${sock}; log ${logPath} ends:\n${tail(logPath)}`);
    }
  }

  /** SIGKILL director `i`'s saru-syncd; does not wait. No-op when not running. */
  killSyncd(i: number): void {
    const pid = this.programPid(i, 'syncd');
    if (pid !== undefined) signal(pid, 'SIGKILL');
  }

  /** SIGTERM director `i`'s saru-syncd and wait for it (5 s). No-op when not running. */
  async stopSyncd(i: number): Promise<void> {
    const pid = this.programPid(i, 'syncd');
    if (pid === undefined) return;
    if ((await terminate(pid, STOP_GRACE_MS)) === 'killed') throw new SaruError(ErrorCode.IO, `saru-syncd of director ${i} ignored SIGTERM and was killed`);
  }

  /** Director `i`'s `saruadm --sync --json` (saru-syncd's counters). @throws SaruError SARU_ERR_IO as adm(). */
  async syncStatus(i: number): Promise<SyncInfo> {
    return JSON.parse(await this.adm(i, ['--sync', '--json', '--sync_socket', this.syncSocketPath(i)])) as SyncInfo;
  }

  /**
   * Start director `i`'s `saru` daemon and wait (10 s) until its control
   * socket appears (a new one, if a stale file was left by a killed daemon).
   */
  async startDirector(i: number): Promise<void> {
    const ns = this.nsName('director', i);
    const dir = this.directorDir(i);
    const conf = join(dir, 'saru.conf');
    if (!existsSync(conf) || !existsSync(`/run/netns/${ns}`)) {
      throw new SaruError(ErrorCode.IO, `${ns}: the testbed is not up (no ${conf} or namespace); run up() first`);
    }
    const running = this.directorPid(i);
    if (running !== undefined) throw new SaruError(ErrorCode.IO, `${ns}: saru is already running (pid ${running})`);
    if (!existsSync(this.daemonScript)) {
      throw new SaruError(ErrorCode.IO, `${this.daemonScript} is missing; build the daemon first (npm run build)`);
    }
    const sock = this.socketPath(i);
    const stale = socketId(sock);
    const logPath = join(dir, 'saru.log');
    writeFileSync(logPath, `--- testbed: starting director ${i} at ${new Date().toISOString()}\n`, { flag: 'a' });
    const pid = spawnDetached(
      'ip',
      ['netns', 'exec', ns, process.execPath, this.daemonScript, '--config', conf, '--log_facility', this.jsonLogs ? 'daemon' : '-'],
      logPath,
    );
    writeFileSync(join(dir, 'saru.pid'), `${pid}\n`);
    const fresh = (): boolean => {
      const id = socketId(sock);
      return id !== undefined && id !== stale;
    };
    const ok = await waitFor(() => fresh() || !isAlive(pid), READY_TIMEOUT_MS);
    if (!ok || !fresh()) {
      const why = ok ? 'exited before creating its control socket' : `did not create its control socket within ${READY_TIMEOUT_MS} ms (still running)`;
      throw new SaruError(ErrorCode.IO, `${ns}: saru (pid ${pid}) ${why}: ${sock}; log ${logPath} ends:\n${tail(logPath)}`);
    }
  }

  /**
   * SIGTERM director `i`'s daemon and wait (`graceMs`, default 5 s) for it to
   * exit; a daemon that needs SIGKILL is an error. A director with the
   * coordinator first hands its buckets over and finishes its own connections
   * in them (up to drain_timeout), so give it that long. No-op when not running.
   */
  async stopDirector(i: number, graceMs = STOP_GRACE_MS): Promise<void> {
    const ns = this.nsName('director', i);
    const pid = this.directorPid(i);
    if (pid === undefined) return;
    const how = await terminate(pid, graceMs);
    if (how === 'killed') {
      throw new SaruError(ErrorCode.IO, `${ns}: saru (pid ${pid}) did not exit within ${graceMs} ms of SIGTERM and was killed`);
    }
  }

  /**
   * Cut director `i` off from the other directors with netfilter drops in the
   * switch: all of its traffic on the cluster bridge (`cluster`), and the
   * coordinator's heartbeats on the data hub (`data`; client traffic still
   * flows). heal() removes every cut.
   */
  async isolate(i: number, networks: { cluster: boolean; data: boolean }): Promise<void> {
    this.index('director', i, this.directors);
    const rules: string[] = [];
    if (networks.cluster) rules.push(`iifname "d${i}-c" drop`, `oifname "d${i}-c" drop`);
    if (networks.data) {
      const port = SARU_CONF_DEFAULTS.mcast_port + 1;
      rules.push(`iifname "d${i}-h" udp dport ${port} drop`, `oifname "d${i}-h" udp dport ${port} drop`);
    }
    const ruleset = [
      `table bridge ${PARTITION_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      ...rules.map((r) => `    ${r}`),
      '  }',
      '}',
      '',
    ].join('\n');
    await this.heal();
    const r = await this.exec(this.nsName('switch'), 'nft', ['-f', '-'], { input: ruleset });
    this.checked(this.nsName('switch'), 'nft -f (partition)', r);
  }

  /**
   * Drop `percent` % of the frames crossing the cluster bridge, each copy
   * independently (nftables numgen random, netfilter's statistic match); 0
   * removes the loss.
   */
  async clusterLoss(percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw invalid(`loss must be 0..100 %, got ${percent}`);
    const sw = this.nsName('switch');
    await this.exec(sw, 'nft', ['delete', 'table', 'bridge', LOSS_TABLE]);
    if (percent === 0) return;
    const ports = Array.from({ length: this.directors }, (_, k) => `"d${k + 1}-c"`).join(', ');
    const ruleset = [
      `table bridge ${LOSS_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      `    iifname { ${ports} } numgen random mod 100 < ${percent} counter drop`,
      '  }',
      '}',
      '',
    ].join('\n');
    this.checked(sw, 'nft -f (loss)', await this.exec(sw, 'nft', ['-f', '-'], { input: ruleset }));
  }

  /** Remove the cuts isolate() made. */
  async heal(): Promise<void> {
    await this.exec(this.nsName('switch'), 'nft', ['delete', 'table', 'bridge', PARTITION_TABLE]);
  }

  /**
   * `saruadm ARGS` against director `i`'s control socket, in its namespace.
   * @throws SaruError SARU_ERR_IO when saruadm fails (with its stderr).
   */
  async adm(i: number, args: string[]): Promise<string> {
    const ns = this.nsName('director', i);
    const r = await this.exec(ns, process.execPath, [join(this.repoRoot, 'dist', 'saru', 'adm.js'), '--socket', this.socketPath(i), ...args]);
    if (r.code !== 0) throw new SaruError(ErrorCode.IO, `${ns}: saruadm ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Director `i`'s `saruadm --cluster --json`. @throws SaruError SARU_ERR_IO as adm(). */
  async cluster(i: number): Promise<ClusterInfo> {
    return JSON.parse(await this.adm(i, ['--cluster', '--json'])) as ClusterInfo;
  }

  /**
   * Wait until the directors `live` agree on one committed allocation that
   * gives every bucket to exactly one of them, each has applied it and sees
   * all of them alive, and directors not in `live` that still run own
   * nothing. Polls every 100 ms.
   * @returns the directors' --cluster views, by index.
   * @throws SaruError SARU_ERR_IO after `timeoutMs`, with the last views.
   */
  async waitForAllocation(live: number[], timeoutMs = 10_000): Promise<Map<number, ClusterInfo>> {
    const start = Date.now();
    let why = '';
    for (;;) {
      const views = new Map<number, ClusterInfo>();
      for (let i = 1; i <= this.directors; i++) {
        if (this.directorPid(i) === undefined) continue;
        try {
          views.set(i, await this.cluster(i));
        } catch {
          // not answering yet (starting): allocationProblem() names it
        }
      }
      const problem = allocationProblem(live, views, this.buckets);
      if (problem === null) return views;
      why = problem;
      if (Date.now() - start > timeoutMs) {
        throw new SaruError(ErrorCode.IO, `directors ${live.join(',')} did not settle on one allocation within ${timeoutMs} ms: ${why}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL director `i`'s daemon (a crash), and its saru-syncd with `sync`; does not wait. No-op when not running. */
  /**
   * Replace every director's services file with `text` (as an operator
   * editing ldirectord.cf would); the daemons see it on SIGHUP, `saruadm
   * --reload` or autoreload.
   */
  writeServices(text: string): void {
    this.servicesOverride = text;
    for (let i = 1; i <= this.directors; i++) writeFileSync(join(this.directorDir(i), 'services.cf'), text);
  }

  /** Stop real server `j`'s HTTP server (SIGTERM, wait): its port is closed from then on. */
  async stopRealHttp(j: number): Promise<void> {
    const pid = readPidFile(join(this.realDir(j), 'http.pid'));
    if (pid !== undefined && isAlive(pid) && inNetns(pid, this.nsName('real', j))) await terminate(pid, STOP_GRACE_MS);
  }

  /** Start real server `j`'s HTTP server again and wait until it listens. */
  async startRealHttp(j: number): Promise<void> {
    await this.startProgram(this.nsName('real', j), this.realDir(j), 'http', join(this.programDir, 'http-server.js'), ['--name', `r${j}`]);
  }

  killDirector(i: number): void {
    const pid = this.directorPid(i);
    if (pid !== undefined) signal(pid, 'SIGKILL');
    if (this.sync) this.killSyncd(i);
  }

  // ---- status and down -------------------------------------------------------------

  /** This testbed's namespaces that exist, sorted. */
  namespaces(): string[] {
    let names: string[];
    try {
      names = readdirSync('/run/netns');
    } catch {
      return [];
    }
    const re = this.nsPattern();
    return names.filter((n) => re.test(n)).sort();
  }

  /** Every pid file under the state directory, with its host, program and namespace. */
  private pidFiles(): Array<{ host: string; program: string; namespace: string; pidFile: string; log: string }> {
    const out: Array<{ host: string; program: string; namespace: string; pidFile: string; log: string }> = [];
    if (!existsSync(join(this.stateDir, MARKER))) return out;
    for (const host of readdirSync(this.stateDir).sort()) {
      if (!/^[dr][1-9][0-9]*$/.test(host)) continue;
      const dir = join(this.stateDir, host);
      for (const f of readdirSync(dir).sort()) {
        const m = /^([a-z]+)\.pid$/.exec(f);
        if (!m) continue;
        out.push({ host, program: m[1]!, namespace: `${this.prefix}-${host}`, pidFile: join(dir, f), log: join(dir, `${m[1]}.log`) });
      }
    }
    return out;
  }

  /** Whether `pid` from a pid file is still the process we started (in its namespace, or running one of our scripts). */
  private ours(pid: number, namespace: string): boolean {
    if (!isAlive(pid)) return false;
    if (existsSync(`/run/netns/${namespace}`)) return inNetns(pid, namespace);
    const cmd = processCmdline(pid);
    return cmd.includes(this.programDir) || cmd.includes(this.daemonScript);
  }

  async status(): Promise<TestbedStatus> {
    const namespaces = this.namespaces();
    const processes: TestbedProcess[] = [];
    for (const p of this.pidFiles()) {
      const pid = readPidFile(p.pidFile);
      if (pid === undefined) continue;
      processes.push({ host: p.host, program: p.program, namespace: p.namespace, pid, alive: this.ours(pid, p.namespace), log: p.log });
    }
    const directors: DirectorStatus[] = [];
    for (const ns of namespaces) {
      const m = new RegExp(`^${this.prefix.replace(/-/g, '\\-')}-d([1-9][0-9]*)$`).exec(ns);
      if (!m) continue;
      const index = Number(m[1]);
      const dir = join(this.stateDir, `d${index}`);
      const proc = processes.find((p) => p.host === `d${index}` && p.program === 'saru');
      const socketPath = join(dir, 'saru.sock');
      const st: DirectorStatus = { index, namespace: ns, alive: proc?.alive ?? false, socketPath, socket: socketId(socketPath) !== undefined };
      if (proc) st.pid = proc.pid;
      directors.push(st);
    }
    directors.sort((x, y) => x.index - y.index);
    return { prefix: this.prefix, stateDir: this.stateDir, namespaces, processes, directors };
  }

  /**
   * Stop every process the testbed started (SIGTERM, then SIGKILL), kill any
   * other process left inside its namespaces, delete the namespaces and the
   * state directory. Succeeds when nothing exists.
   */
  async down(): Promise<void> {
    const stops: Array<Promise<unknown>> = [];
    for (const p of this.pidFiles()) {
      const pid = readPidFile(p.pidFile);
      if (pid !== undefined && this.ours(pid, p.namespace)) stops.push(terminate(pid, STOP_GRACE_MS));
    }
    await Promise.all(stops);
    const namespaces = this.namespaces();
    if (namespaces.length > 0) {
      this.log(`${this.prefix}: deleting ${namespaces.join(' ')}`);
      // Anything else still inside our namespaces (a test's tcpdump, a daemon started by hand): by pid, in our namespaces only.
      const leftovers: number[] = [];
      for (const ns of namespaces) {
        const r = await runCommand('ip', ['netns', 'pids', ns]);
        for (const t of r.stdout.split(/\s+/)) if (/^\d+$/.test(t) && inNetns(Number(t), ns)) leftovers.push(Number(t));
      }
      for (const pid of leftovers) signal(pid, 'SIGKILL');
      if (!(await waitFor(() => leftovers.every((pid) => !isAlive(pid)), 5000))) {
        const alive = leftovers.filter(isAlive).map((pid) => `${pid} (${processCmdline(pid)})`);
        throw new SaruError(ErrorCode.IO, `${this.prefix}: processes survived SIGKILL: ${alive.join(', ')}`);
      }
      // The switch last: deleting it removes the veth peers of every other namespace.
      const ordered = [...namespaces.filter((n) => n !== this.nsName('switch')), ...namespaces.filter((n) => n === this.nsName('switch'))];
      for (const ns of ordered) await this.ip('netns', 'del', ns);
    }
    if (existsSync(this.stateDir)) {
      if (existsSync(join(this.stateDir, MARKER))) {
        rmSync(this.stateDir, { recursive: true, force: true });
      } else {
        this.log(`${this.prefix}: leaving ${this.stateDir}: not a testbed state directory (no ${MARKER})`);
      }
    }
  }
}

/** Await every promise; if any failed, throw one error carrying every failure's message. */
async function settleAll(ps: Array<Promise<void>>): Promise<void> {
  const failed = (await Promise.allSettled(ps)).filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length === 0) return;
  if (failed.length === 1) throw failed[0]!.reason;
  throw new SaruError(ErrorCode.IO, failed.map((f) => (f.reason instanceof Error ? f.reason.message : String(f.reason))).join('\n'));
}

/** Identity (device:inode:mtime) of a Unix socket file, or undefined when there is none. */
function socketId(path: string): string | undefined {
  try {
    const st = statSync(path);
    return st.isSocket() ? `${st.dev}:${st.ino}:${st.mtimeMs}` : undefined;
  } catch {
    return undefined;
  }
}

/** Read the settings a testbed was built with from its state directory (for `status` from another process). */
export function readTestbedSettings(stateDir: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, MARKER), 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Why `views` is not one settled allocation among `live` (null: it is). */
export function allocationProblem(live: number[], views: Map<number, ClusterInfo>, buckets: number): string | null {
  const owner = new Int32Array(buckets).fill(-1);
  let epoch = -1;
  for (const i of live) {
    const v = views.get(i);
    const k = v?.coordinator;
    if (!v || !k) return `director ${i}: no coordinator view`;
    if (!k.quorate || k.stale || k.epoch === 0) return `director ${i}: quorate ${k.quorate}, stale ${k.stale}, epoch ${k.epoch}`;
    if (epoch >= 0 && k.epoch !== epoch) return `directors on epochs ${epoch} and ${k.epoch}`;
    epoch = k.epoch;
    if (v.epoch !== k.epoch) return `director ${i}: data plane on epoch ${v.epoch}, coordinator on ${k.epoch}`;
    const alive = k.members.filter((m) => m.alive && m.state === 'active').map((m) => m.id).sort((a, b) => a - b);
    if (alive.join(',') !== [...live].sort((a, b) => a - b).join(',')) return `director ${i} sees active members ${alive.join(',')}`;
    for (const m of k.members) if (m.member && m.appliedEpoch !== epoch) return `director ${i}: member ${m.id} applied ${m.appliedEpoch}, not ${epoch}`;
    for (const x of sliceBuckets(v.slice, buckets)) {
      if (owner[x] !== -1) return `bucket ${x} owned by ${owner[x]} and ${i}`;
      owner[x] = i;
    }
  }
  for (const [i, v] of views) if (!live.includes(i) && v.ownedBuckets > 0) return `director ${i} (not live) still owns ${v.ownedBuckets} buckets`;
  const free = owner.indexOf(-1);
  return free >= 0 ? `bucket ${free} has no owner` : null;
}

/** The bucket numbers of a `--cluster` slice text ("0-341,700"; "" = none). */
export function sliceBuckets(slice: string, buckets: number): number[] {
  return slice === '' ? [] : parseBucketRanges(slice, buckets, { file: 'saruadm --cluster', line: 1 });
}

/** One request of saru/testbed/probe.ts (a JSON line): wall-clock ms, client port, outcome. */
export interface ProbeOutcome {
  t0: number;
  t1: number;
  sport: number;
  ok: boolean;
  status: number;
  err: string;
  bytes: number;
}
