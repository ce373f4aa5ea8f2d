/**
 * Host-stack rules (saru/hoststack.ts): golden rendering of the nftables
 * transaction; HostStack against a stateful recording fake of `nft` and `ip`
 * (order of commands, addresses added and removed, atomic replace, error
 * mapping, idempotent remove); execRunner; and, as root, the real thing in
 * throw-away network namespaces: the table and addresses as the kernel shows
 * them, then packets (ICMP echo answered only from owned address buckets,
 * TCP and UDP to the VIP met with silence instead of RST / port unreachable).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, IpAddress } from '../../core/index.js';
import { HostStack, execRunner, renderRuleset, type CommandRunner, type HostStackLog } from '../../saru/hoststack.js';

const ip = (t: string): IpAddress => IpAddress.parse(t);

const GOLDEN_BOTH = `# saru host stack: the user-space data plane serves the VIPs; the kernel answers only ARP/ND
# and ICMP echo from clients whose address bucket (source & 1023) this director owns.
table inet saru {}
delete table inet saru
table inet saru {
\tset vip4 {
\t\ttype ipv4_addr
\t\telements = { 192.0.2.9, 192.0.2.10 }
\t}

\tset echo4 {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 0.0.0.0-0.0.1.255, 0.0.3.0, 0.0.3.232-0.0.3.255 }
\t}

\tset vip6 {
\t\ttype ipv6_addr
\t\telements = { 2001:db8::10 }
\t}

\tset echo6 {
\t\ttype ipv6_addr
\t\tflags interval
\t\telements = { ::-::1ff, ::300, ::3e8-::3ff }
\t}

\tchain input {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\tip daddr @vip4 icmp type echo-request ip saddr & 0.0.3.255 @echo4 counter accept
\t\tip daddr @vip4 counter drop
\t\tip6 daddr @vip6 icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
\t\tip6 daddr @vip6 icmpv6 type echo-request ip6 saddr & ::3ff @echo6 counter accept
\t\tip6 daddr @vip6 counter drop
\t}
}
`;

const GOLDEN_V4_EMPTY = `# saru host stack: the user-space data plane serves the VIPs; the kernel answers only ARP/ND
# and ICMP echo from clients whose address bucket (source & 15) this director owns.
table inet lb7 {}
delete table inet lb7
table inet lb7 {
\tset vip4 {
\t\ttype ipv4_addr
\t\telements = { 198.18.0.100 }
\t}

\tset echo4 {
\t\ttype ipv4_addr
\t\tflags interval
\t}

\tchain input {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\tip daddr @vip4 icmp type echo-request ip saddr & 0.0.0.15 @echo4 counter accept
\t\tip daddr @vip4 counter drop
\t}
}
`;

describe('saru/hoststack', () => {
  describe('renderRuleset (golden)', () => {
    it('IPv4 and IPv6 VIPs (duplicates and order do not matter), several echo ranges', () => {
      const text = renderRuleset({
        vips: [ip('192.0.2.10'), ip('2001:db8::10'), ip('192.0.2.9'), ip('192.0.2.10')],
        buckets: 1024,
        echoOwned: [[0, 511], [768, 768], [1000, 1023]],
      });
      assert.equal(text, GOLDEN_BOTH);
    });

    it('with the data interface: TCP and UDP to the VIPs also dropped at its ingress hook', () => {
      const text = renderRuleset({ interface: 'eth0', vips: [ip('192.0.2.10'), ip('2001:db8::10')], buckets: 1024, echoOwned: [[0, 511]] });
      const ingress = text.slice(text.indexOf('\tchain ingress {'), text.indexOf('\tchain input {'));
      assert.equal(
        ingress,
        '\tchain ingress {\n' +
          '\t\ttype filter hook ingress device "eth0" priority -500; policy accept;\n' +
          '\t\tip daddr @vip4 meta l4proto { tcp, udp } counter drop\n' +
          '\t\tip6 daddr @vip6 meta l4proto { tcp, udp } counter drop\n' +
          '\t}\n\n',
      );
      assert.equal(text.replace(ingress, ''), renderRuleset({ vips: [ip('192.0.2.10'), ip('2001:db8::10')], buckets: 1024, echoOwned: [[0, 511]] }));
      assert.throws(() => renderRuleset({ interface: 'eth0; flush ruleset', vips: [ip('192.0.2.10')], buckets: 2, echoOwned: [] }), /not valid/);
    });

    it('IPv4 only, empty owned set, another table name: no elements, no IPv6 sets or rules', () => {
      assert.equal(renderRuleset({ table: 'lb7', vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] }), GOLDEN_V4_EMPTY);
    });

    it('all owned: one range over every bucket; 65536 buckets mask 16 bits', () => {
      const all = renderRuleset({ vips: [ip('2001:db8::1'), ip('198.18.0.1')], buckets: 65536, echoOwned: [[0, 65535]] });
      assert.match(all, /elements = \{ 0\.0\.0\.0-0\.0\.255\.255 \}/);
      assert.match(all, /elements = \{ ::-::ffff \}/);
      assert.match(all, /ip saddr & 0\.0\.255\.255 @echo4/);
      assert.match(all, /ip6 saddr & ::ffff @echo6/);
    });

    it('no VIPs at all: an empty chain (the table still replaces the old one)', () => {
      const text = renderRuleset({ vips: [], buckets: 2, echoOwned: [[1, 1]] });
      assert.ok(!text.includes('set '));
      assert.match(text, /chain input \{\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\}/);
    });

    it('rejects bad table names, bucket counts and ranges', () => {
      const bad = (spec: Parameters<typeof renderRuleset>[0]): void =>
        assert.throws(() => renderRuleset(spec), { code: ErrorCode.INVALID_ARGUMENT });
      bad({ table: 'saru; flush ruleset', vips: [], buckets: 16, echoOwned: [] });
      bad({ table: '1abc', vips: [], buckets: 16, echoOwned: [] });
      bad({ vips: [], buckets: 24, echoOwned: [] });
      bad({ vips: [], buckets: 16, echoOwned: [[0, 16]] });
      bad({ vips: [], buckets: 16, echoOwned: [[4, 5], [2, 3]] });
      bad({ vips: [], buckets: 16, echoOwned: [[0, 3], [3, 5]] });
    });
  });

  describe('HostStack with a recording fake of nft and ip', () => {
    it('applies rules before adding the missing VIPs; leaves a VIP that was already there', async () => {
      const sys = new FakeSystem({ eth1: ['198.18.0.1', '198.18.0.100'] });
      const hs = new HostStack({ interface: 'eth1' }, { run: sys.run });
      const spec = { vips: [ip('198.18.0.100'), ip('198.18.0.101'), ip('2001:db8::100')], buckets: 1024, echoOwned: [[0, 511]] as Array<[number, number]> };
      await hs.apply(spec);
      assert.deepEqual(sys.commands(), [
        'nft -f -',
        'ip -j addr show dev eth1',
        'ip addr add 198.18.0.101/32 dev eth1',
        'ip -6 addr add 2001:db8::100/128 dev eth1 nodad',
      ]);
      assert.equal(sys.calls[0]!.stdin, renderRuleset({ interface: 'eth1', ...spec }));
      assert.deepEqual([...sys.tables.keys()], ['saru']);
      assert.deepEqual(sys.addrs.get('eth1'), new Set(['198.18.0.1', '198.18.0.100', '198.18.0.101', '2001:db8::100']));
      assert.deepEqual(hs.addedAddresses(), ['198.18.0.101', '2001:db8::100']);
    });

    it('re-apply replaces the table in one transaction and removes only VIPs it added that are gone', async () => {
      const sys = new FakeSystem({ eth1: ['198.18.0.100'] });
      const hs = new HostStack({ interface: 'eth1' }, { run: sys.run });
      await hs.apply({ vips: [ip('198.18.0.100'), ip('198.18.0.101')], buckets: 16, echoOwned: [[0, 7]] });
      sys.calls.length = 0;
      await hs.apply({ vips: [ip('198.18.0.102')], buckets: 16, echoOwned: [[8, 15]] });
      assert.deepEqual(sys.commands(), ['nft -f -', 'ip -j addr show dev eth1', 'ip addr add 198.18.0.102/32 dev eth1', 'ip addr del 198.18.0.101/32 dev eth1']);
      assert.equal(sys.tables.size, 1);
      assert.match(sys.tables.get('saru')!, /0\.0\.0\.8-0\.0\.0\.15/);
      // 198.18.0.100 was there before us: it stays although it is no longer a VIP.
      assert.deepEqual(sys.addrs.get('eth1'), new Set(['198.18.0.100', '198.18.0.102']));
    });

    it('adopts the VIPs a killed predecessor listed in its added file, and removes them on stop', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'saru-hs-'));
      try {
        const file = join(dir, 'saru.vips');
        const first = new FakeSystem({ eth1: ['198.18.0.1'] });
        const a = new HostStack({ interface: 'eth1', addedFile: file }, { run: first.run });
        await a.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] });
        assert.equal(readFileSync(file, 'utf8'), '198.18.0.100\n');
        // a is killed (no remove()): the VIP stays on the interface; the next daemon adopts it
        const sys = new FakeSystem({ eth1: ['198.18.0.1', '198.18.0.100', '198.18.0.200'] });
        writeFileSync(file, '198.18.0.100\n198.18.0.99\n');
        const b = new HostStack({ interface: 'eth1', addedFile: file }, { run: sys.run });
        await b.apply({ vips: [ip('198.18.0.100'), ip('198.18.0.200')], buckets: 16, echoOwned: [] });
        assert.deepEqual(b.addedAddresses(), ['198.18.0.100'], 'listed and present: adopted; present but not listed (.200): not ours');
        await b.remove();
        assert.deepEqual(sys.addrs.get('eth1'), new Set(['198.18.0.1', '198.18.0.200']));
        assert.equal(existsSync(file), false, 'nothing added any more: the file is gone');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a changed table name deletes the old table in the same transaction', async () => {
      const sys = new FakeSystem({ eth1: [] });
      const hs = new HostStack({ interface: 'eth1', table: 'one' }, { run: sys.run });
      await hs.apply({ vips: [], buckets: 16, echoOwned: [] });
      await hs.apply({ table: 'two', vips: [], buckets: 16, echoOwned: [] });
      assert.deepEqual([...sys.tables.keys()], ['two']);
      const last = sys.calls.filter((c) => c.cmd === 'nft').at(-1)!;
      assert.match(last.stdin!, /^table inet one \{\}\ndelete table inet one\n/);
    });

    it('remove() deletes the addresses it added, then the table; a second remove() is a no-op', async () => {
      const sys = new FakeSystem({ eth1: ['198.18.0.100'] });
      const log = new RecordingLog();
      const hs = new HostStack({ interface: 'eth1', table: 'saru_t' }, { run: sys.run, log });
      await hs.apply({ vips: [ip('198.18.0.100'), ip('2001:db8::7')], buckets: 16, echoOwned: [] });
      sys.calls.length = 0;
      await hs.remove();
      assert.deepEqual(sys.commands(), ['ip -6 addr del 2001:db8::7/128 dev eth1', 'nft delete table inet saru_t']);
      assert.equal(sys.tables.size, 0);
      assert.deepEqual(sys.addrs.get('eth1'), new Set(['198.18.0.100']));
      await hs.remove();
      assert.equal(sys.calls.at(-1)!.result.code, 1, 'the table was already gone');
      assert.ok(log.lines.some((l) => l.msg === 'host stack rules removed'));
      assert.ok(log.lines.some((l) => l.msg === 'host stack table already gone'));
    });

    it('remove() tolerates a VIP someone else already deleted', async () => {
      const sys = new FakeSystem({ eth1: [] });
      const hs = new HostStack({ interface: 'eth1' }, { run: sys.run });
      await hs.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] });
      sys.addrs.get('eth1')!.clear();
      await hs.remove();
      assert.deepEqual(hs.addedAddresses(), []);
      assert.equal(sys.tables.size, 0);
    });

    it('manageAddresses false: rules only', async () => {
      const sys = new FakeSystem({ eth1: [] });
      const hs = new HostStack({ interface: 'eth1', manageAddresses: false }, { run: sys.run });
      await hs.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] });
      await hs.remove();
      assert.deepEqual(sys.commands(), ['nft -f -', 'nft delete table inet saru']);
    });

    it('maps failures: "Operation not permitted" -> NOT_PERMITTED, unknown interface -> NO_SUCH_INTERFACE, else IO, with stderr', async () => {
      const denied = new FakeSystem({ eth1: [] });
      denied.fail = (cmd) => (cmd === 'nft' ? { code: 1, stderr: 'Error: Could not process rule: Operation not permitted\n' } : undefined);
      const hs1 = new HostStack({ interface: 'eth1' }, { run: denied.run });
      await assert.rejects(hs1.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] }), (e: Error & { code?: string }) => {
        assert.equal(e.code, ErrorCode.NOT_PERMITTED);
        assert.match(e.message, /nft -f - failed \(exit 1\): Error: Could not process rule: Operation not permitted/);
        return true;
      });
      assert.deepEqual(denied.commands(), ['nft -f -'], 'no address is added without the rules');
      assert.deepEqual(denied.addrs.get('eth1'), new Set());

      const noDev = new FakeSystem({});
      const hs2 = new HostStack({ interface: 'eth9' }, { run: noDev.run });
      await assert.rejects(hs2.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] }), { code: ErrorCode.NO_SUCH_INTERFACE });

      const broken = new FakeSystem({ eth1: [] });
      broken.fail = (cmd, args) => (cmd === 'ip' && args[1] === 'add' ? { code: 2, stderr: 'RTNETLINK answers: Invalid argument\n' } : undefined);
      const hs3 = new HostStack({ interface: 'eth1' }, { run: broken.run });
      await assert.rejects(hs3.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] }), (e: Error & { code?: string }) => {
        assert.equal(e.code, ErrorCode.IO);
        assert.match(e.message, /ip addr add 198\.18\.0\.100\/32 dev eth1 failed \(exit 2\): RTNETLINK answers: Invalid argument/);
        return true;
      });

      broken.fail = (cmd) => (cmd === 'nft' ? { code: 1, stderr: 'Error: Could not process rule: Device or resource busy\n' } : undefined);
      await assert.rejects(hs3.remove(), { code: ErrorCode.IO });

      const garbage = new FakeSystem({ eth1: [] });
      garbage.fail = (cmd, args) => (cmd === 'ip' && args[0] === '-j' ? { code: 0, stderr: '', stdout: 'not json' } : undefined);
      await assert.rejects(new HostStack({ interface: 'eth1' }, { run: garbage.run }).apply({ vips: [ip('198.18.0.1')], buckets: 16, echoOwned: [] }), {
        code: ErrorCode.IO,
      });
    });

    it('serialises calls: a remove() issued during apply() runs after it', async () => {
      const sys = new FakeSystem({ eth1: [] });
      const hs = new HostStack({ interface: 'eth1' }, { run: sys.run });
      const a = hs.apply({ vips: [ip('198.18.0.100')], buckets: 16, echoOwned: [] });
      const r = hs.remove();
      await Promise.all([a, r]);
      assert.deepEqual(sys.commands(), [
        'nft -f -',
        'ip -j addr show dev eth1',
        'ip addr add 198.18.0.100/32 dev eth1',
        'ip addr del 198.18.0.100/32 dev eth1',
        'nft delete table inet saru',
      ]);
    });

    it('a failed apply() does not block the next call', async () => {
      const sys = new FakeSystem({ eth1: [] });
      let failures = 1;
      sys.fail = (cmd) => (cmd === 'nft' && failures-- > 0 ? { code: 1, stderr: 'Error: syntax error\n' } : undefined);
      const hs = new HostStack({ interface: 'eth1' }, { run: sys.run });
      await assert.rejects(hs.apply({ vips: [], buckets: 16, echoOwned: [] }), { code: ErrorCode.IO });
      await hs.apply({ vips: [], buckets: 16, echoOwned: [] });
      assert.deepEqual([...sys.tables.keys()], ['saru']);
    });
  });

  describe('execRunner', () => {
    it('feeds stdin and returns exit code, stdout and stderr', async () => {
      const r = await execRunner('sh', ['-c', 'cat; echo oops >&2; exit 3'], 'hello\n');
      assert.deepEqual(r, { code: 3, stdout: 'hello\n', stderr: 'oops\n' });
    });

    it('a command that cannot start resolves with code 127', async () => {
      const r = await execRunner('/nonexistent/saru-no-such-command', []);
      assert.equal(r.code, 127);
      assert.match(r.stderr, /ENOENT/);
    });
  });

  describe('in network namespaces (root)', function () {
    this.timeout(60_000);
    const D = `saru-hs-d-${process.pid}`;
    const C = `saru-hs-c-${process.pid}`;
    const VIP4 = '198.18.0.100';
    const VIP6 = '2001:db8:5::100';
    let skip = '';
    let dir = '';
    const sh = (...args: string[]): void => {
      const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    };
    const inNs = (ns: string): CommandRunner => (cmd, args, stdin) => execRunner('ip', ['netns', 'exec', ns, cmd, ...args], stdin);
    const nsOut = (ns: string, ...args: string[]): string => {
      const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    before(function () {
      if (process.getuid?.() !== 0) skip = 'not root';
      else if (spawnSync('nft', ['--version'], { stdio: 'ignore' }).status !== 0) skip = 'nft not installed';
      else if (spawnSync('ip', ['netns', 'add', D], { stdio: 'ignore' }).status !== 0) skip = 'cannot create a network namespace';
      if (skip) {
        console.log(`      (skipped: ${skip})`);
        this.skip();
      }
      sh('ip', 'netns', 'add', C);
      sh('ip', 'link', 'add', 'd0', 'netns', D, 'type', 'veth', 'peer', 'name', 'c0', 'netns', C);
      sh('ip', 'netns', 'exec', D, 'ip', 'addr', 'add', '198.18.0.1/16', 'dev', 'd0');
      sh('ip', 'netns', 'exec', D, 'ip', 'addr', 'add', '2001:db8:5::1/64', 'dev', 'd0', 'nodad');
      // Client addresses in address bucket 2 (owned below) and 514 (not owned), of 1024.
      sh('ip', 'netns', 'exec', C, 'ip', 'addr', 'add', '198.18.0.2/16', 'dev', 'c0');
      sh('ip', 'netns', 'exec', C, 'ip', 'addr', 'add', '198.18.2.2/16', 'dev', 'c0');
      sh('ip', 'netns', 'exec', C, 'ip', 'addr', 'add', '2001:db8:5::2/64', 'dev', 'c0', 'nodad');
      sh('ip', 'netns', 'exec', C, 'ip', 'addr', 'add', '2001:db8:5::202/64', 'dev', 'c0', 'nodad');
      for (const [ns, dev] of [[D, 'd0'], [C, 'c0'], [D, 'lo'], [C, 'lo']] as const) sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', dev, 'up');
      dir = mkdtempSync(join(tmpdir(), 'saru-hs-'));
      writeFileSync(join(dir, 'probe.py'), PROBE_PY);
    });

    after(() => {
      if (skip) return;
      spawnSync('ip', ['netns', 'del', D], { stdio: 'ignore' });
      spawnSync('ip', ['netns', 'del', C], { stdio: 'ignore' });
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const hasPython = (): boolean => spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;

    type Probe = { kind: 'ping' | 'tcp' | 'udp'; src: string; dst: string; port?: number };
    /**
     * Run probes from the client namespace, concurrently. A probe waits 1 s;
     * one whose expected outcome is an answer is tried up to 3 times, so a
     * slow first exchange on a loaded machine does not fail the test, while a
     * probe expected to meet silence is tried once (the nft counters then
     * show that the rule, not luck, dropped it).
     */
    function probe(list: Probe[], expected: string[]): string[] {
      const withTries = list.map((p, i) => ({ ...p, tries: expected[i] === 'timeout' ? 1 : 3 }));
      const r = spawnSync('ip', ['netns', 'exec', C, 'python3', join(dir, 'probe.py')], { input: JSON.stringify(withTries), encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`probe.py: ${r.stderr}`);
      return JSON.parse(r.stdout) as string[];
    }

    /** Packets counted by the rule of the chain matching `re`. */
    function counter(re: RegExp): number {
      const line = nsOut(D, 'nft', 'list', 'table', 'inet', 'saru').split('\n').find((l) => re.test(l));
      const m = /counter packets (\d+)/.exec(line ?? '');
      if (!m) throw new Error(`no counter for ${re}`);
      return Number(m[1]);
    }

    it('installs one table with the rules and the VIPs, replaces it atomically, and removes exactly what it added', async () => {
      const hs = new HostStack({ interface: 'd0' }, { run: inNs(D) });
      await hs.apply({ vips: [ip(VIP4), ip(VIP6)], buckets: 1024, echoOwned: [[0, 511]] });
      const listed = nsOut(D, 'nft', 'list', 'table', 'inet', 'saru');
      assert.match(listed, /ip daddr @vip4 icmp type echo-request ip saddr & 0\.0\.3\.255 == @echo4 counter packets \d+ bytes \d+ accept/);
      assert.match(listed, /ip6 daddr @vip6 counter packets \d+ bytes \d+ drop/);
      assert.match(listed, /elements = \{ 0\.0\.0\.0\/23 \}/);
      const addrs = nsOut(D, 'ip', 'addr', 'show', 'dev', 'd0');
      assert.match(addrs, /inet 198\.18\.0\.100\/32/);
      assert.match(addrs, /inet6 2001:db8:5::100\/128/);

      await hs.apply({ vips: [ip(VIP4), ip(VIP6)], buckets: 1024, echoOwned: [[512, 1023]] });
      const tables = nsOut(D, 'nft', 'list', 'tables').trim().split('\n');
      assert.deepEqual(tables, ['table inet saru']);
      assert.match(nsOut(D, 'nft', 'list', 'table', 'inet', 'saru'), /elements = \{ 0\.0\.2\.0\/23 \}/);

      await hs.remove();
      assert.equal(nsOut(D, 'nft', 'list', 'tables').trim(), '');
      const after = nsOut(D, 'ip', 'addr', 'show', 'dev', 'd0');
      assert.doesNotMatch(after, /198\.18\.0\.100|2001:db8:5::100/);
      assert.match(after, /198\.18\.0\.1\/16/, 'the interface keeps its own address');
      await hs.remove(); // idempotent against the real nft
    });

    it('packets: echo answered only from owned address buckets; TCP and UDP to the VIP get no RST, no port unreachable', async function () {
      if (!hasPython()) {
        console.log('      (skipped: python3 not available for the probes)');
        this.skip();
      }
      // Warm-up: both sides learn each other's MACs (ARP, ND) through the director's own
      // addresses, so no probe below waits on a first neighbour resolution.
      const warm = ['198.18.0.2', '198.18.2.2', '2001:db8:5::2', '2001:db8:5::202'].map((src) => ({
        kind: 'ping' as const,
        src,
        dst: src.includes(':') ? '2001:db8:5::1' : '198.18.0.1',
      }));
      assert.deepEqual(probe(warm, ['reply', 'reply', 'reply', 'reply']), ['reply', 'reply', 'reply', 'reply']);
      // Control: with the VIP but without the rules, the kernel refuses TCP and UDP and answers every ping.
      sh('ip', 'netns', 'exec', D, 'ip', 'addr', 'add', `${VIP4}/32`, 'dev', 'd0');
      const controlWant = ['refused', 'refused', 'reply'];
      const control = probe(
        [
          { kind: 'tcp', src: '198.18.0.2', dst: VIP4, port: 80 },
          { kind: 'udp', src: '198.18.0.2', dst: VIP4, port: 9999 },
          { kind: 'ping', src: '198.18.2.2', dst: VIP4 },
        ],
        controlWant,
      );
      assert.deepEqual(control, controlWant);
      sh('ip', 'netns', 'exec', D, 'ip', 'addr', 'del', `${VIP4}/32`, 'dev', 'd0');

      const hs = new HostStack({ interface: 'd0' }, { run: inNs(D) });
      try {
        await hs.apply({ vips: [ip(VIP4), ip(VIP6)], buckets: 1024, echoOwned: [[0, 511]] });
        const probes = [
          { kind: 'ping' as const, src: '198.18.0.2', dst: VIP4 }, // bucket 2: ours
          { kind: 'ping' as const, src: '198.18.2.2', dst: VIP4 }, // bucket 514: another director's
          { kind: 'ping' as const, src: '2001:db8:5::2', dst: VIP6 },
          { kind: 'ping' as const, src: '2001:db8:5::202', dst: VIP6 },
          { kind: 'tcp' as const, src: '198.18.0.2', dst: VIP4, port: 80 },
          { kind: 'tcp' as const, src: '2001:db8:5::2', dst: VIP6, port: 80 },
          { kind: 'udp' as const, src: '198.18.0.2', dst: VIP4, port: 9999 },
          { kind: 'ping' as const, src: '198.18.0.2', dst: '198.18.0.1' }, // the director's own address is untouched
        ];
        const want = ['reply', 'timeout', 'reply', 'timeout', 'timeout', 'timeout', 'timeout', 'reply'];
        assert.deepEqual(probe(probes, want), want);
        // Dropped by our rules: ping from bucket 514, TCP SYN(s), the UDP datagram; IPv6 ping and SYN(s).
        // TCP and UDP are dropped at the interface's ingress hook, the unowned ping in input.
        assert.ok(counter(/ip daddr @vip4 counter/) + counter(/ip daddr @vip4 meta l4proto/) >= 3, 'IPv4 drop counter');
        assert.ok(counter(/ip6 daddr @vip6 counter/) + counter(/ip6 daddr @vip6 meta l4proto/) >= 2, 'IPv6 drop counter');
        assert.ok(counter(/@echo4 counter/) >= 1 && counter(/@echo6 counter/) >= 1, 'echo accept counters');
        // Another slice: the answers swap.
        await hs.apply({ vips: [ip(VIP4), ip(VIP6)], buckets: 1024, echoOwned: [[512, 1023]] });
        const swapped = ['timeout', 'reply', 'timeout', 'reply'];
        assert.deepEqual(probe(probes.slice(0, 4), swapped), swapped);
      } finally {
        await hs.remove();
      }
    });
  });
});

// ---------------------------------------------------------------------------

interface Call {
  cmd: string;
  args: string[];
  stdin: string | undefined;
  result: { code: number; stdout: string; stderr: string };
}

/**
 * A fake of the two commands HostStack runs, keeping state: nftables tables
 * (name -> definition text) and the addresses per interface. It answers as
 * the real tools do (exit codes and messages), records every call, and can
 * be told to fail a command (`fail`).
 */
class FakeSystem {
  readonly calls: Call[] = [];
  readonly tables = new Map<string, string>();
  readonly addrs = new Map<string, Set<string>>();
  fail: ((cmd: string, args: string[]) => { code: number; stderr: string; stdout?: string } | undefined) | undefined;

  constructor(addrs: Record<string, string[]>) {
    for (const [dev, list] of Object.entries(addrs)) this.addrs.set(dev, new Set(list));
  }

  commands(): string[] {
    return this.calls.map((c) => [c.cmd, ...c.args].join(' '));
  }

  readonly run: CommandRunner = async (cmd, args, stdin) => {
    await Promise.resolve();
    const injected = this.fail?.(cmd, args);
    const result = injected ? { code: injected.code, stdout: injected.stdout ?? '', stderr: injected.stderr } : this.exec(cmd, args, stdin);
    this.calls.push({ cmd, args: [...args], stdin, result });
    return result;
  };

  private exec(cmd: string, args: string[], stdin: string | undefined): Call['result'] {
    const ok = (stdout = ''): Call['result'] => ({ code: 0, stdout, stderr: '' });
    const err = (code: number, stderr: string): Call['result'] => ({ code, stdout: '', stderr });
    const a = args.join(' ');
    if (cmd === 'nft') {
      if (a === '-f -') return this.nftScript(stdin ?? '');
      const m = /^delete table inet (\w+)$/.exec(a);
      if (m) {
        if (!this.tables.delete(m[1]!)) return err(1, `Error: Could not process rule: No such file or directory\ndelete table inet ${m[1]}\n`);
        return ok();
      }
      return err(1, `Error: syntax error (fake nft does not know "${a}")\n`);
    }
    if (cmd === 'ip') {
      let m = /^-j addr show dev (\S+)$/.exec(a);
      if (m) {
        const set = this.addrs.get(m[1]!);
        if (!set) return err(1, `Device "${m[1]}" does not exist.\n`);
        const info = [...set].map((x) => ({ family: x.includes(':') ? 'inet6' : 'inet', local: x, prefixlen: x.includes(':') ? 128 : 32 }));
        return ok(JSON.stringify([{ ifindex: 2, ifname: m[1], addr_info: info }]));
      }
      m = /^(?:-6 )?addr (add|del) ([^/]+)\/(32|128) dev (\S+)( nodad)?$/.exec(a);
      if (m) {
        const set = this.addrs.get(m[4]!);
        if (!set) return err(1, `Cannot find device "${m[4]}"\n`);
        const addr = IpAddress.parse(m[2]!).text;
        if (m[1] === 'add') {
          if (set.has(addr)) return err(2, 'RTNETLINK answers: File exists\n');
          set.add(addr);
        } else if (!set.delete(addr)) return err(2, 'RTNETLINK answers: Cannot assign requested address\n');
        return ok();
      }
    }
    return err(1, `fake: unknown command ${cmd} ${a}\n`);
  }

  /** `nft -f -`: one transaction of `table inet X {}`, `delete table inet X` and `table inet X { ... }`. */
  private nftScript(text: string): Call['result'] {
    const next = new Map(this.tables);
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      let m = /^table inet (\w+) \{\}$/.exec(line);
      if (m) {
        if (!next.has(m[1]!)) next.set(m[1]!, '');
        continue;
      }
      m = /^delete table inet (\w+)$/.exec(line);
      if (m) {
        if (!next.delete(m[1]!)) return { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
        continue;
      }
      m = /^table inet (\w+) \{$/.exec(line);
      if (m) {
        const body: string[] = [];
        let depth = 1;
        while (++i < lines.length) {
          const l = lines[i]!;
          depth += (l.match(/\{/g) ?? []).length - (l.match(/\}/g) ?? []).length;
          if (depth === 0) break;
          body.push(l);
        }
        if (depth !== 0) return { code: 1, stdout: '', stderr: 'Error: syntax error, unexpected end of file\n' };
        next.set(m[1]!, body.join('\n'));
        continue;
      }
      return { code: 1, stdout: '', stderr: `Error: syntax error near "${line}"\n` };
    }
    this.tables.clear();
    for (const [k, v] of next) this.tables.set(k, v);
    return { code: 0, stdout: '', stderr: '' };
  }
}

class RecordingLog implements HostStackLog {
  readonly lines: Array<{ level: string; obj: object; msg: string }> = [];
  info(obj: object, msg: string): void {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg: string): void {
    this.lines.push({ level: 'warn', obj, msg });
  }
  debug(obj: object, msg: string): void {
    this.lines.push({ level: 'debug', obj, msg });
  }
}

/**
 * Probes run concurrently from the client namespace, each bounded by
 * `tries` x 1 s: ping (raw ICMP/ICMPv6 echo from a given source, one request
 * a second) -> reply | timeout;
 * tcp (connect) -> connected | refused | timeout; udp (send to a closed
 * port, wait for the ICMP port unreachable) -> refused | reply | timeout.
 */
const PROBE_PY = String.raw`
import json, os, socket, struct, sys, threading, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def fam(a): return socket.AF_INET6 if ":" in a else socket.AF_INET
def ping(p, ident):
    v6 = ":" in p["dst"]
    s = socket.socket(fam(p["dst"]), socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    s.bind((p["src"], 0))
    t = 128 if v6 else 8
    for seq in range(1, p.get("tries", 1) + 1):
        msg = struct.pack("!BBHHH", t, 0, 0, ident, seq) + b"saru"
        if not v6: msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
        s.sendto(msg, (p["dst"], 0))
        deadline = time.time() + 1.0
        while True:
            left = deadline - time.time()
            if left <= 0: break
            s.settimeout(left)
            try: data = s.recv(2048)
            except socket.timeout: break
            if not v6: data = data[(data[0] & 15) * 4:]
            if len(data) >= 8 and data[0] == (129 if v6 else 0) and struct.unpack("!H", data[4:6])[0] == ident: return "reply"
    return "timeout"
def tcp(p):
    s = socket.socket(fam(p["dst"]), socket.SOCK_STREAM)
    s.settimeout(1.0 * p.get("tries", 1))
    s.bind((p["src"], 0))
    try:
        s.connect((p["dst"], p["port"]))
        return "connected"
    except ConnectionRefusedError: return "refused"
    except (socket.timeout, TimeoutError): return "timeout"
def udp(p):
    s = socket.socket(fam(p["dst"]), socket.SOCK_DGRAM)
    s.settimeout(1.0 * p.get("tries", 1))
    s.bind((p["src"], 0))
    s.connect((p["dst"], p["port"]))
    s.send(b"saru")
    try:
        s.recv(2048)
        return "reply"
    except ConnectionRefusedError: return "refused"
    except (socket.timeout, TimeoutError): return "timeout"
probes = json.load(sys.stdin)
out = [None] * len(probes)
def run(i, p):
    try:
        out[i] = ping(p, (os.getpid() + i * 7919) & 0xffff) if p["kind"] == "ping" else tcp(p) if p["kind"] == "tcp" else udp(p)
    except Exception as e:
        out[i] = "error: %s" % e
ts = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(probes)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out))
`;
