/**
 * The director's own kernel and the VIPs. Owns the nftables table that stops
 * the host stack from answering for the VIPs (no RST, no ICMP port
 * unreachable: the user-space data plane serves TCP and UDP), lets exactly
 * one director answer ICMP echo (the owner of the client address's bucket),
 * keeps IPv6 neighbour discovery flowing, and the VIP addresses it adds to the
 * data interface so the kernel answers ARP/ND with the shared MAC. It removes
 * the table and only the addresses it added. It does not decide the slice
 * (the coordinator does) and it does not touch packets.
 *
 * Saru's rules (seed 002, Saru's documentation) did the same with iptables
 * and its `saru` match: TCP/UDP to the VIP accepted by the kernel only in
 * this director's slice (its IPVS then took them), echo-request accepted
 * with `--sense src-addr`, other ICMP accepted, the rest dropped. Our data
 * plane is in user space on a packet socket, so the kernel's INPUT drops all
 * TCP and UDP to the VIPs; other ICMP to a VIP (errors about the data plane's
 * connections) goes to the engine, which sees every frame before the kernel's
 * rules apply, so the kernel drops it too. docs/filter.md has the rationale.
 *
 * All commands go through an injected CommandRunner (`nft`, `ip`), so the
 * logic is tested with a recording fake and, as root, in a namespace.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { ErrorCode, IpAddress, MAX_BUCKETS, SaruError } from '../core/index.js';

/** Default nftables table name (family inet). */
export const DEFAULT_TABLE = 'saru';

export interface HostStackSpec {
  /** Table name (family inet); default the HostStack's, else "saru". */
  table?: string;
  /**
   * The data interface. When given, TCP and UDP to the VIPs are also dropped
   * at its ingress hook, after packet sockets have taken their copy
   * (__netif_receive_skb_core delivers taps before ingress) but before the
   * kernel's IP stack spends time on frames it would drop in `input` anyway.
   * bench:forward measured the gain (docs/bench-forward.md).
   */
  interface?: string;
  /** The VIPs, IPv4 and IPv6 (firewall-mark services contribute none). */
  vips: IpAddress[];
  /** Bucket count: a power of two, 2..65536 (saru.conf `buckets`). */
  buckets: number;
  /**
   * Address buckets whose echo requests this director answers: inclusive
   * ranges, ascending (SliceFilter.ownedRanges()). The bucket of an echo is
   * the low bits of its source address (IPv6: of its last 32 bits), whatever
   * the slice's sense, as Saru's `-m saru --sense src-addr` echo rule.
   */
  echoOwned: Array<[number, number]>;
}

/** Runs a command; never rejects for a non-zero exit (that is `code`). */
export type CommandRunner = (cmd: string, args: string[], stdin?: string) => Promise<{ code: number; stdout: string; stderr: string }>;

/**
 * The real CommandRunner: spawns `cmd` without a shell, feeds `stdin`,
 * collects stdout and stderr. A command that cannot start (not installed)
 * resolves with code 127 and the reason in stderr; one killed by a signal,
 * with code 128 + signal number when known, else -1.
 */
export const execRunner: CommandRunner = (cmd, args, stdin) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      resolve({ code, stdout, stderr });
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      stderr += `${cmd}: ${e.message}`;
      finish(127);
    });
    child.on('close', (code, signal) => finish(code ?? (signal && constants.signals[signal] ? 128 + constants.signals[signal] : -1)));
    child.stdin.on('error', () => undefined); // the command may exit before reading
    child.stdin.end(stdin ?? '');
  });

/** ICMPv6 types of neighbour discovery (RFC 4861) that must reach the kernel even for a VIP. */
const ND_TYPES = 'nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect';

/**
 * Render the whole nftables transaction for `nft -f -`: create the table
 * (a no-op if it exists), delete it, and define it anew, so applying it
 * replaces every rule atomically and leaves exactly one table. Pure.
 *
 * Layout: sets vip4/vip6 (the VIPs) and echo4/echo6 (interval sets of the
 * owned address buckets, written as addresses 0.0.X.Y / ::XY); one input
 * chain at priority filter - 10, so it runs before the distribution's own
 * filter chains; per family: echo-request from an owned bucket accepted,
 * (IPv6: neighbour discovery accepted), everything else to a VIP dropped,
 * with counters. A family without VIPs gets no sets and no rules.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT for a bad table name, bucket
 *   count or range.
 */
export function renderRuleset(spec: HostStackSpec): string {
  const table = spec.table ?? DEFAULT_TABLE;
  checkTableName(table);
  const n = spec.buckets;
  if (!Number.isInteger(n) || n < 2 || n > MAX_BUCKETS || (n & (n - 1)) !== 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `buckets must be a power of two from 2 to ${MAX_BUCKETS}, got ${n}`);
  }
  let prev = -1;
  for (const [a, b] of spec.echoOwned) {
    if (!Number.isInteger(a) || !Number.isInteger(b) || a <= prev || b < a || b >= n) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `echo bucket ranges must ascend within 0..${n - 1}; got [${a}, ${b}]`);
    }
    prev = b;
  }
  const mask = n - 1;
  const v4 = uniqueSorted(spec.vips.filter((v) => v.family === 4));
  const v6 = uniqueSorted(spec.vips.filter((v) => v.family === 6));
  const out: string[] = [
    `# saru host stack: the user-space data plane serves the VIPs; the kernel answers only ARP/ND`,
    `# and ICMP echo from clients whose address bucket (source & ${mask}) this director owns.`,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
  ];
  const set = (name: string, type: string, interval: boolean, elements: string[]): void => {
    out.push(`\tset ${name} {`, `\t\ttype ${type}`);
    if (interval) out.push('\t\tflags interval');
    if (elements.length > 0) out.push(`\t\telements = { ${elements.join(', ')} }`);
    out.push('\t}', '');
  };
  const ranges = (fmt: (v: number) => string): string[] =>
    spec.echoOwned.map(([a, b]) => (a === b ? fmt(a) : `${fmt(a)}-${fmt(b)}`));
  if (v4.length > 0) {
    set('vip4', 'ipv4_addr', false, v4);
    set('echo4', 'ipv4_addr', true, ranges(v4Bucket));
  }
  if (v6.length > 0) {
    set('vip6', 'ipv6_addr', false, v6);
    set('echo6', 'ipv6_addr', true, ranges(v6Bucket));
  }
  if (spec.interface !== undefined && (v4.length > 0 || v6.length > 0)) {
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(spec.interface)) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `interface name "${spec.interface}" is not valid`);
    }
    out.push('\tchain ingress {', `\t\ttype filter hook ingress device "${spec.interface}" priority -500; policy accept;`);
    if (v4.length > 0) out.push('\t\tip daddr @vip4 meta l4proto { tcp, udp } counter drop');
    if (v6.length > 0) out.push('\t\tip6 daddr @vip6 meta l4proto { tcp, udp } counter drop');
    out.push('\t}', '');
  }
  out.push('\tchain input {', '\t\ttype filter hook input priority filter - 10; policy accept;');
  if (v4.length > 0) {
    out.push(
      `\t\tip daddr @vip4 icmp type echo-request ip saddr & ${v4Bucket(mask)} @echo4 counter accept`,
      '\t\tip daddr @vip4 counter drop',
    );
  }
  if (v6.length > 0) {
    out.push(
      `\t\tip6 daddr @vip6 icmpv6 type { ${ND_TYPES} } accept`,
      `\t\tip6 daddr @vip6 icmpv6 type echo-request ip6 saddr & ${v6Bucket(mask)} @echo6 counter accept`,
      '\t\tip6 daddr @vip6 counter drop',
    );
  }
  out.push('\t}', '}', '');
  return out.join('\n');
}

/** Bucket b as the IPv4 address whose low bits are b: 0.0.X.Y. */
function v4Bucket(b: number): string {
  return `0.0.${b >>> 8}.${b & 0xff}`;
}

/** Bucket b as the IPv6 address whose low bits are b: ::XY. */
function v6Bucket(b: number): string {
  return b === 0 ? '::' : `::${b.toString(16)}`;
}

function uniqueSorted(vips: IpAddress[]): string[] {
  const byText = new Map<string, IpAddress>();
  for (const v of vips) byText.set(v.text, v);
  return [...byText.values()].sort(compareAddr).map((v) => v.text);
}

function compareAddr(a: IpAddress, b: IpAddress): number {
  for (let i = 0; i < 4; i++) if (a.words[i] !== b.words[i]) return a.words[i]! < b.words[i]! ? -1 : 1;
  return 0;
}

/** nft identifiers: a letter, then letters, digits, underscores (we keep to 32 characters). */
function checkTableName(name: string): void {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(name)) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `nftables table name must be a letter then up to 31 letters, digits or _; got "${name}"`);
  }
}

export interface HostStackInit {
  /** Table name (family inet); default "saru". A spec's `table` overrides it. */
  table?: string;
  /** The data interface, where the VIPs are configured. */
  interface: string;
  /** Add missing VIPs to the interface (and remove them again); default true. */
  manageAddresses?: boolean;
  /**
   * File listing the VIPs this daemon added (one per line; under /run, so it
   * goes with a reboot, as the addresses do). A daemon killed with SIGKILL
   * leaves its VIPs on the interface; the next one adopts those listed here,
   * so a later stop removes them. Without it, such a VIP would stay after
   * the stop with no rules, and the kernel would answer every segment sent
   * to it with a reset, on every director's shared segment. Default: none.
   */
  addedFile?: string;
}

export interface HostStackLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface HostStackDeps {
  run: CommandRunner;
  log?: HostStackLog;
}

/** One row of `ip -j addr show dev IF`. */
interface IpAddrRow {
  addr_info?: Array<{ family?: string; local?: string }>;
}

const NO_LOG: HostStackLog = { info: () => undefined, warn: () => undefined, debug: () => undefined };

/**
 * Applies and removes the host-stack rules and VIP addresses of one daemon.
 * Calls are serialised: an apply() or remove() starts after the previous one
 * finished. Order: rules before addresses on apply (the kernel never owns a
 * VIP without the rules), addresses before rules on remove.
 */
export class HostStack {
  private readonly init: HostStackInit;
  private readonly run: CommandRunner;
  private readonly log: HostStackLog;
  /** Table currently installed by us, or null. */
  private table: string | null = null;
  /** VIPs we added to the interface (canonical text -> address). */
  private readonly added = new Map<string, IpAddress>();
  private queue: Promise<unknown> = Promise.resolve();

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT for a bad table name. */
  constructor(init: HostStackInit, deps: HostStackDeps) {
    checkTableName(init.table ?? DEFAULT_TABLE);
    this.init = init;
    this.run = deps.run;
    this.log = deps.log ?? NO_LOG;
  }

  /** VIPs this instance added to the interface and will remove (canonical text, sorted). */
  addedAddresses(): string[] {
    return [...this.added.keys()].sort();
  }

  /**
   * Install (or atomically replace) the table for `spec`, then add the VIPs
   * missing from the interface and remove those we added that are no longer
   * VIPs. A table of another name that we installed before is deleted in the
   * same transaction.
   * @throws SaruError SARU_ERR_NOT_PERMITTED (nft/ip said "Operation not
   *   permitted"), SARU_ERR_NO_SUCH_INTERFACE, SARU_ERR_IO (other failure,
   *   with the command's stderr), SARU_ERR_INVALID_ARGUMENT (bad spec).
   */
  apply(spec: HostStackSpec): Promise<void> {
    return this.serial(async () => {
      const table = spec.table ?? this.init.table ?? DEFAULT_TABLE;
      let text = renderRuleset({ interface: this.init.interface, ...spec, table });
      if (this.table !== null && this.table !== table) {
        text = `table inet ${this.table} {}\ndelete table inet ${this.table}\n${text}`;
      }
      await this.check('nft', ['-f', '-'], text);
      this.table = table;
      this.log.info({ table, vips: spec.vips.map((v) => v.text), buckets: spec.buckets, echoRanges: spec.echoOwned.length }, 'host stack rules applied');
      if (this.init.manageAddresses === false) return;
      const present = await this.addresses();
      const wanted = new Map(spec.vips.map((v) => [v.text, v] as const));
      if (!this.adoptedLeftovers) {
        this.adoptedLeftovers = true;
        for (const text of this.readAddedFile()) {
          if (!present.has(text) || this.added.has(text)) continue;
          try {
            this.added.set(text, IpAddress.parse(text));
            this.log.info({ vip: text, interface: this.init.interface }, 'VIP left by a previous saru adopted (it will be removed on stop)');
          } catch {
            // not an address: ignore the line
          }
        }
      }
      for (const [text, vip] of [...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        if (present.has(text)) continue;
        await this.check('ip', addrArgs('add', vip, this.init.interface));
        this.added.set(text, vip);
        this.log.info({ vip: text, interface: this.init.interface }, 'VIP added to the interface');
      }
      for (const [text, vip] of [...this.added]) {
        if (wanted.has(text)) continue;
        await this.deleteAddress(vip);
        this.added.delete(text);
      }
      this.writeAddedFile();
    });
  }

  private adoptedLeftovers = false;

  private readAddedFile(): string[] {
    const f = this.init.addedFile;
    if (f === undefined) return [];
    try {
      return readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    } catch {
      return [];
    }
  }

  private writeAddedFile(): void {
    const f = this.init.addedFile;
    if (f === undefined) return;
    try {
      if (this.added.size === 0) rmSync(f, { force: true });
      else writeFileSync(f, [...this.added.keys()].sort().join('\n') + '\n');
    } catch (e) {
      this.log.warn({ file: f, err: (e as Error).message }, 'cannot record the VIPs added');
    }
  }

  /**
   * Remove the VIPs we added, then our table. Idempotent: an address or a
   * table already gone is not an error.
   * @throws SaruError as apply() for other failures.
   */
  remove(): Promise<void> {
    return this.serial(async () => {
      for (const [text, vip] of [...this.added]) {
        await this.deleteAddress(vip);
        this.added.delete(text);
      }
      this.writeAddedFile();
      const table = this.table ?? this.init.table ?? DEFAULT_TABLE;
      const r = await this.run('nft', ['delete', 'table', 'inet', table]);
      if (r.code !== 0 && !/No such file or directory/i.test(r.stderr)) throw commandError('nft', ['delete', 'table', 'inet', table], r);
      if (r.code !== 0) this.log.debug({ table }, 'host stack table already gone');
      else this.log.info({ table }, 'host stack rules removed');
      this.table = null;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async deleteAddress(vip: IpAddress): Promise<void> {
    const args = addrArgs('del', vip, this.init.interface);
    const r = await this.run('ip', args);
    // Already gone (someone else removed it, or the interface went away).
    if (r.code !== 0 && !/Cannot assign requested address|does not exist|Cannot find device/i.test(r.stderr)) {
      throw commandError('ip', args, r);
    }
    if (r.code !== 0) this.log.warn({ vip: vip.text, stderr: r.stderr.trim() }, 'VIP was already gone from the interface');
    else this.log.info({ vip: vip.text, interface: this.init.interface }, 'VIP removed from the interface');
  }

  /** Addresses on the interface (canonical text). */
  private async addresses(): Promise<Set<string>> {
    const out = await this.check('ip', ['-j', 'addr', 'show', 'dev', this.init.interface]);
    let rows: IpAddrRow[];
    try {
      rows = JSON.parse(out.stdout || '[]') as IpAddrRow[];
    } catch {
      throw new SaruError(ErrorCode.IO, `ip -j addr show dev ${this.init.interface}: output is not JSON: ${out.stdout.slice(0, 200)}`);
    }
    const set = new Set<string>();
    for (const row of rows) {
      for (const a of row.addr_info ?? []) {
        if ((a.family !== 'inet' && a.family !== 'inet6') || a.local === undefined) continue;
        try {
          set.add(IpAddress.parse(a.local).text);
        } catch {
          // Not an address we could configure as a VIP; ignore.
        }
      }
    }
    return set;
  }

  private async check(cmd: string, args: string[], stdin?: string): Promise<{ stdout: string }> {
    this.log.debug({ cmd, args }, 'run');
    const r = await this.run(cmd, args, stdin);
    if (r.code !== 0) throw commandError(cmd, args, r);
    return r;
  }
}

function addrArgs(op: 'add' | 'del', vip: IpAddress, dev: string): string[] {
  if (vip.family === 4) return ['addr', op, `${vip.text}/32`, 'dev', dev];
  // nodad: the VIP is shared by every director; duplicate address detection would fail it.
  return op === 'add' ? ['-6', 'addr', 'add', `${vip.text}/128`, 'dev', dev, 'nodad'] : ['-6', 'addr', 'del', `${vip.text}/128`, 'dev', dev];
}

/** The SaruError for a failed command: NOT_PERMITTED, NO_SUCH_INTERFACE or IO, carrying its stderr. */
function commandError(cmd: string, args: string[], r: { code: number; stderr: string }): SaruError {
  const stderr = r.stderr.trim();
  const text = `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${stderr || '(no output)'}`;
  if (/Operation not permitted/i.test(stderr)) return new SaruError(ErrorCode.NOT_PERMITTED, text);
  if (cmd === 'ip' && /does not exist|Cannot find device/i.test(stderr)) return new SaruError(ErrorCode.NO_SUCH_INTERFACE, text);
  return new SaruError(ErrorCode.IO, text);
}
