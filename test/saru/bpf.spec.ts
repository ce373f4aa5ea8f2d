/**
 * The slice filter compiler (saru/bpf.ts): table-driven fixtures run through
 * the classic BPF interpreter (native/bpf.ts BpfProgram), property tests
 * against core's SliceFilter and the real Engine (safety: never drop what the
 * engine forwards; precision: plain client->VIP frames exactly as
 * SliceFilter), exhaustive key sweeps for each key-check strategy, limits and
 * determinism, and (as root, with python3) the same verdicts from the
 * running kernel: programs attached with SO_ATTACH_FILTER to a packet socket
 * on a veth pair in a throw-away network namespace.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  BPF_MAXINSNS,
  FILTER_ACCEPT,
  SKF_AD_OFF,
  buildSliceFilter,
  compileSliceFilter,
  decodeInsns,
  encodeInsns,
  formatProgram,
  type KeyCheck,
  type NatRealServer,
  type SliceFilterSpec,
  type SockFilter,
} from '../../saru/bpf.js';
import { ErrorCode, Fwd, IpAddress, Proto, Sense, SliceFilter } from '../../core/index.js';
import { Drop, ParsedFrame } from '../../core/packet/frame.js';
import { parseFrame } from '../../core/packet/parse.js';
import { ManualClock } from '../../core/clock.js';
import { Engine } from '../../core/engine.js';
import { parseMac } from '../../core/mac.js';
import type { RxBatch } from '../../core/port.js';
import { createScheduler } from '../../core/sched/index.js';
import { ServiceTable } from '../../core/service.js';
import { Bpf, BpfProgram, assemble, checkProgram, type BpfContext } from '../../native/index.js';
import { DEFAULT_DST_MAC, PacketBuilder, arpFrame } from '../helpers/packet-builder.js';

const SENSES = [Sense.SRC_PORT, Sense.SRC_ADDR, Sense.DST_PORT, Sense.DST_ADDR] as const;
const SENSE_TEXT = ['src-port', 'src-addr', 'dst-port', 'dst-addr'];

// 1024 buckets; owned = bit 8 clear: 0-255 and 512-767.
const OWNED: Array<[number, number]> = [
  [0, 255],
  [512, 767],
];
// Keys (low 10 bits) chosen by hand, in and out of OWNED.
const IN = { port: 40000 /* & 1023 = 64 */, v4: '198.51.100.7' /* 7 */, v6: '2001:db8:c::7' /* 7 */ };
const OUT = { port: 40256 /* 320 */, v4: '198.51.101.7' /* 263 */, v6: '2001:db8:c::107' /* 263 */ };
const VIP_IN = { port: 80 /* 80 */, v4: '192.0.2.10' /* 522 */, v6: '2001:db8:f::20a' /* 522 */ };
const VIP_OUT = { port: 336 /* 336 */, v4: '192.0.3.10' /* 778 */, v6: '2001:db8:f::30a' /* 778 */ };
const RS4 = '10.1.1.5'; // 261: its own address bucket is not owned
const RS6 = '2001:db8:1::105'; // 261
const NAT_RS: NatRealServer[] = [
  { family: 4, addr: IpAddress.parse(RS4).words, port: 8080 },
  { family: 6, addr: IpAddress.parse(RS6).words, port: 8080 },
];

function spec(sense: Sense, over: Partial<SliceFilterSpec> = {}): SliceFilterSpec {
  return { buckets: 1024, sense, owned: OWNED, natRealServers: NAT_RS, ...over };
}

/** What a packet socket's filter sees besides the frame: skb->protocol is the frame's EtherType. */
function ctxOf(frame: Uint8Array, pktType = 0): BpfContext {
  return { protocol: frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : 0, pktType, ifindex: 2 };
}

/**
 * A compiled program the kernel accepts (checkProgram), whose non-jump
 * instructions leave jt/jf 0 (the kernel ignores them there; a compiler
 * that sets them has a bug), ready to run.
 */
function loadFilter(prog: Uint8Array | readonly SockFilter[]): BpfProgram {
  const bin = prog instanceof Uint8Array ? prog : encodeInsns(prog);
  assert.equal(checkProgram(bin), null);
  decodeInsns(bin).forEach(({ code, jt, jf }, pc) => {
    if ((code & 0x07) !== Bpf.JMP) assert.ok(jt === 0 && jf === 0, `(${pc}) jt/jf set on a non-jump instruction`);
  });
  return new BpfProgram(bin);
}

/** Whether the loaded program keeps the frame (link layer at offset 0). */
function accepts(prog: BpfProgram, frame: Uint8Array, pktType = 0): boolean {
  return prog.run(frame, 0, frame.length, ctxOf(frame, pktType)) !== 0;
}

type Verdict = 'accept' | 'drop';
function verdict(s: SliceFilterSpec, frame: Uint8Array, pktType = 0): Verdict {
  return accepts(loadFilter(compileSliceFilter(s)), frame, pktType) ? 'accept' : 'drop';
}

interface Flow {
  family: 4 | 6;
  proto: 'tcp' | 'udp';
  src: string;
  dst: string;
  sport: number;
  dport: number;
}
function frame(f: Flow, ip: { options?: Uint8Array; fragOffset?: number; moreFragments?: boolean } = {}): Buffer {
  const b = new PacketBuilder().eth();
  if (f.family === 4) b.ipv4({ src: f.src, dst: f.dst, ...ip });
  else b.ipv6({ src: f.src, dst: f.dst });
  if (f.proto === 'tcp') b.tcp({ sport: f.sport, dport: f.dport, flags: 'S' });
  else b.udp({ sport: f.sport, dport: f.dport, payload: 'x' });
  return b.build();
}

/** A client -> VIP flow whose sensed field is in (`own`) or out of the slice, all other fields in. */
function clientFlow(family: 4 | 6, proto: 'tcp' | 'udp', sense: Sense, own: boolean): Flow {
  const pick = (inV: string, outV: string, mine: boolean): string => (mine ? inV : outV);
  const fam = family === 4 ? 'v4' : 'v6';
  return {
    family,
    proto,
    src: pick(IN[fam], OUT[fam], own || sense !== Sense.SRC_ADDR),
    dst: pick(VIP_IN[fam], VIP_OUT[fam], own || sense !== Sense.DST_ADDR),
    sport: own || sense !== Sense.SRC_PORT ? IN.port : OUT.port,
    dport: own || sense !== Sense.DST_PORT ? VIP_IN.port : VIP_OUT.port,
  };
}

interface Fixture {
  description: string;
  spec: SliceFilterSpec;
  input: Uint8Array;
  pktType?: number;
  expected: Verdict;
}

function fixtures(): Fixture[] {
  const out: Fixture[] = [];
  for (const sense of SENSES) {
    for (const family of [4, 6] as const) {
      for (const proto of ['tcp', 'udp'] as const) {
        for (const own of [true, false]) {
          out.push({
            description: `${SENSE_TEXT[sense]}: ${proto.toUpperCase()}/IPv${family} client -> VIP ${own ? 'in' : 'out of'} the slice`,
            spec: spec(sense),
            input: frame(clientFlow(family, proto, sense, own)),
            expected: own ? 'accept' : 'drop',
          });
        }
      }
    }
  }
  // NAT return traffic: RS:8080 -> client. 8080 & 1023 = 912: not owned, so the
  // frame is ours only by its destination (the client).
  for (const family of [4, 6] as const) {
    const fam = family === 4 ? 'v4' : 'v6';
    const rs = family === 4 ? RS4 : RS6;
    const ret = (dst: string, dport: number): Buffer => frame({ family, proto: 'tcp', src: rs, dst, sport: 8080, dport });
    out.push(
      { description: `src-port: NAT return IPv${family} to a client port in the slice`, spec: spec(Sense.SRC_PORT), input: ret(OUT[fam], IN.port), expected: 'accept' },
      { description: `src-port: NAT return IPv${family} to a client port out of the slice`, spec: spec(Sense.SRC_PORT), input: ret(IN[fam], OUT.port), expected: 'drop' },
      { description: `src-addr: NAT return IPv${family} to a client address in the slice`, spec: spec(Sense.SRC_ADDR), input: ret(IN[fam], OUT.port), expected: 'accept' },
      { description: `src-addr: NAT return IPv${family} to a client address out of the slice`, spec: spec(Sense.SRC_ADDR), input: ret(OUT[fam], IN.port), expected: 'drop' },
      { description: `dst-port: NAT return IPv${family}: the virtual port is not in the frame, accept`, spec: spec(Sense.DST_PORT), input: ret(OUT[fam], OUT.port), expected: 'accept' },
      { description: `dst-addr: NAT return IPv${family}: the virtual address is not in the frame, accept`, spec: spec(Sense.DST_ADDR), input: ret(OUT[fam], OUT.port), expected: 'accept' },
      {
        description: `src-port: IPv${family} from the RS address but another port is a client -> VIP frame (source port out of the slice)`,
        spec: spec(Sense.SRC_PORT),
        input: frame({ family, proto: 'tcp', src: rs, dst: VIP_IN[fam], sport: OUT.port, dport: IN.port }),
        expected: 'drop',
      },
      {
        description: `src-port: NAT real server on port 0 (any port), IPv${family}, client port in the slice`,
        spec: spec(Sense.SRC_PORT, { natRealServers: [{ family, addr: IpAddress.parse(rs).words, port: 0 }] }),
        input: frame({ family, proto: 'udp', src: rs, dst: OUT[fam], sport: OUT.port, dport: IN.port }),
        expected: 'accept',
      },
      {
        description: `src-port: NAT real server on port 0, IPv${family}: a frame from it is also accepted when its source port is ours (it may be a client of a VIP)`,
        spec: spec(Sense.SRC_PORT, { natRealServers: [{ family, addr: IpAddress.parse(rs).words, port: 0 }] }),
        input: frame({ family, proto: 'udp', src: rs, dst: VIP_IN[fam], sport: IN.port, dport: OUT.port }),
        expected: 'accept',
      },
      {
        description: `src-port: NAT real server on port 0, IPv${family}: neither the destination nor the source port ours`,
        spec: spec(Sense.SRC_PORT, { natRealServers: [{ family, addr: IpAddress.parse(rs).words, port: 0 }] }),
        input: frame({ family, proto: 'udp', src: rs, dst: OUT[fam], sport: OUT.port, dport: OUT.port }),
        expected: 'drop',
      },
      {
        description: `src-port: a real server whose own port is in the slice: all its frames may be client -> VIP ones, accept`,
        spec: spec(Sense.SRC_PORT, { natRealServers: [{ family, addr: IpAddress.parse(rs).words, port: 80 }] }),
        input: frame({ family, proto: 'tcp', src: rs, dst: OUT[fam], sport: 80, dport: OUT.port }),
        expected: 'accept',
      },
    );
  }
  const v4 = (o: Partial<Flow> = {}): Flow => ({ ...clientFlow(4, 'tcp', Sense.SRC_PORT, false), ...o });
  const icmp4 = new PacketBuilder().eth().ipv4({ src: OUT.v4, dst: VIP_IN.v4 }).icmp({ type: 8, id: 1, seq: 1 }).build();
  const icmp6 = new PacketBuilder().eth().ipv6({ src: OUT.v6, dst: VIP_IN.v6 }).icmp({ type: 128, id: 1, seq: 1 }).build();
  const inner = new PacketBuilder().ipv4({ src: VIP_IN.v4, dst: OUT.v4 }).tcp({ sport: 80, dport: OUT.port, flags: 'SA' }).buildIp();
  const icmpErr = new PacketBuilder().eth().ipv4({ src: '203.0.113.1', dst: VIP_IN.v4 }).icmp({ type: 3, code: 4, mtu: 1400, inner }).build();
  const sp = spec(Sense.SRC_PORT);
  out.push(
    { description: 'ICMP echo request (IPv4): user space and the host stack decide', spec: sp, input: icmp4, expected: 'accept' },
    { description: 'ICMPv6 echo request: user space decides', spec: sp, input: icmp6, expected: 'accept' },
    { description: 'ICMP error quoting an out-of-slice connection: the engine finds its owner', spec: sp, input: icmpErr, expected: 'accept' },
    { description: 'IPv4 non-first fragment (no ports): accept', spec: sp, input: frame(v4(), { fragOffset: 1480 }), expected: 'accept' },
    { description: 'IPv4 last fragment (offset, no MF): accept', spec: sp, input: frame(v4(), { fragOffset: 8, moreFragments: false }), expected: 'accept' },
    {
      description: 'IPv4 first fragment out of the slice: drop (it has ports; the engine drops fragments anyway)',
      spec: sp,
      input: frame(v4(), { moreFragments: true }),
      expected: 'drop',
    },
    {
      description: 'IPv6 fragment header: accept',
      spec: sp,
      input: new PacketBuilder().eth().ipv6({ src: OUT.v6, dst: VIP_IN.v6, extensions: [{ type: 44, moreFragments: true }] }).udp({ sport: OUT.port, dport: 53 }).build(),
      expected: 'accept',
    },
    {
      description: 'IPv6 destination options before TCP: accept (the filter reads only a transport header right after the fixed header)',
      spec: sp,
      input: new PacketBuilder().eth().ipv6({ src: OUT.v6, dst: VIP_IN.v6, extensions: [{ type: 60 }] }).tcp({ sport: OUT.port, dport: 80, flags: 'S' }).build(),
      expected: 'accept',
    },
    {
      description: 'ARP request to the VIP: accept',
      spec: sp,
      input: arpFrame({ op: 1, senderMac: '02:00:00:00:00:09', senderIp: OUT.v4, targetIp: VIP_IN.v4 }),
      expected: 'accept',
    },
    {
      description: 'VLAN-tagged TCP out of the slice: accept (tag in the frame; user space decides)',
      spec: sp,
      input: new PacketBuilder().eth({ vlan: 7 }).ipv4({ src: OUT.v4, dst: VIP_IN.v4 }).tcp({ sport: OUT.port, dport: 80, flags: 'S' }).build(),
      expected: 'accept',
    },
    {
      description: 'GRE (another IP protocol): accept',
      spec: sp,
      input: new PacketBuilder().eth().ipv4({ src: OUT.v4, dst: VIP_IN.v4 }).raw(47, new Uint8Array(8)).build(),
      expected: 'accept',
    },
    {
      description: 'IPv4 options (IHL 6), TCP in the slice: ports found after the options',
      spec: sp,
      input: frame(v4({ sport: IN.port }), { options: Uint8Array.of(148, 4, 0, 0) }),
      expected: 'accept',
    },
    {
      description: 'IPv4 options (IHL 8), UDP out of the slice: drop',
      spec: sp,
      input: frame({ ...v4(), proto: 'udp' }, { options: Uint8Array.of(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0) }),
      expected: 'drop',
    },
    {
      description: 'IPv4 options, src-addr sense: addresses are at fixed offsets',
      spec: spec(Sense.SRC_ADDR),
      input: frame(clientFlow(4, 'udp', Sense.SRC_ADDR, true), { options: Uint8Array.of(148, 4, 0, 0) }),
      expected: 'accept',
    },
    {
      description: 'TCP truncated before the ports: a load outside the frame drops, as in the kernel',
      spec: sp,
      input: frame(v4({ sport: IN.port })).subarray(0, 14 + 20 + 1),
      expected: 'drop',
    },
    { description: 'shorter than an Ethernet header: drop', spec: sp, input: new Uint8Array(10), expected: 'drop' },
    { description: 'owned empty: TCP dropped', spec: spec(Sense.SRC_PORT, { owned: [] }), input: frame(clientFlow(4, 'tcp', Sense.SRC_PORT, true)), expected: 'drop' },
    { description: 'owned empty: ICMP still accepted', spec: spec(Sense.SRC_PORT, { owned: [] }), input: icmp4, expected: 'accept' },
    {
      description: 'owned empty, dst-addr: NAT return still accepted (the engine decides by the VIP)',
      spec: spec(Sense.DST_ADDR, { owned: [] }),
      input: frame({ family: 4, proto: 'tcp', src: RS4, dst: IN.v4, sport: 8080, dport: IN.port }),
      expected: 'accept',
    },
    {
      description: 'owned all: any TCP accepted',
      spec: spec(Sense.SRC_PORT, { owned: [[0, 1023]] }),
      input: frame(clientFlow(6, 'tcp', Sense.SRC_PORT, false)),
      expected: 'accept',
    },
  );
  for (const [pktType, name] of [[1, 'broadcast'], [2, 'multicast'], [3, 'other host'], [4, 'outgoing']] as const) {
    out.push({
      description: `packet type ${name} (${pktType}): drop even in the slice`,
      spec: sp,
      input: frame(clientFlow(4, 'tcp', Sense.SRC_PORT, true)),
      pktType,
      expected: 'drop',
    });
  }
  out.push({
    description: 'packet type outgoing with everything owned: drop (our own transmissions)',
    spec: spec(Sense.SRC_PORT, { owned: [[0, 1023]] }),
    input: icmp4,
    pktType: 4,
    expected: 'drop',
  });
  return out;
}

// ---------------------------------------------------------------------------
// Property-test helpers
// ---------------------------------------------------------------------------

function sliceOf(buckets: number, sense: Sense, owned: Array<[number, number]>): SliceFilter {
  const s = new SliceFilter({ buckets, sense });
  const list: number[] = [];
  for (const [a, b] of owned) for (let i = a; i <= b; i++) list.push(i);
  s.setOwned(list);
  return s;
}

/** Owned ranges from a bitmap. */
function rangesOf(bits: ArrayLike<boolean>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < bits.length; i++) {
    if (!bits[i]) continue;
    const a = i;
    while (i + 1 < bits.length && bits[i + 1]) i++;
    out.push([a, i]);
  }
  return out;
}

const arbBucketsSmall = fc.integer({ min: 1, max: 10 }).map((n) => 2 ** n);
const arbBucketsAny = fc.integer({ min: 1, max: 16 }).map((n) => 2 ** n);

/** Any owned set for up to 1024 buckets; up to 64 random ranges for larger counts. */
const arbOwned = fc.oneof(
  arbBucketsSmall.chain((buckets) =>
    fc.oneof(
      fc.array(fc.boolean(), { minLength: buckets, maxLength: buckets }),
      // Sparse and dense bitmaps, and long runs.
      fc.array(fc.integer({ min: 0, max: 9 }), { minLength: buckets, maxLength: buckets }).map((a) => a.map((v) => v === 0)),
      fc.array(fc.integer({ min: 0, max: 9 }), { minLength: buckets, maxLength: buckets }).map((a) => a.map((v) => v !== 0)),
    ).map((bits) => ({ buckets, owned: rangesOf(bits) })),
  ),
  arbBucketsAny.chain((buckets) =>
    fc.uniqueArray(fc.integer({ min: 0, max: buckets - 1 }), { maxLength: 128 }).map((cuts) => {
      const s = [...cuts].sort((x, y) => x - y);
      const owned: Array<[number, number]> = [];
      for (let i = 0; i + 1 < s.length; i += 2) owned.push([s[i]!, s[i + 1]! - (s[i + 1]! > s[i]! ? 1 : 0)]);
      return { buckets, owned: rangesOf(bitsFromRanges(buckets, owned)) };
    }),
  ),
);

function bitsFromRanges(buckets: number, owned: Array<[number, number]>): boolean[] {
  const bits = new Array<boolean>(buckets).fill(false);
  for (const [a, b] of owned) for (let i = a; i <= b; i++) bits[i] = true;
  return bits;
}

const arbV6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
const arbAddr = (family: 4 | 6): fc.Arbitrary<string> => (family === 4 ? fc.ipV4() : arbV6);
const arbPort = fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constantFrom(0, 80, 8080, 40000, 65535));

const arbRs = fc.array(
  fc.constantFrom(4 as const, 6 as const).chain((family) =>
    fc.record({ family: fc.constant(family), text: arbAddr(family), port: fc.oneof(fc.constant(0), arbPort) }),
  ),
  { maxLength: 4 },
);

interface FrameCase {
  flow: Flow;
  fromRs: boolean;
  options: boolean;
}
function arbFrameCase(rs: Array<{ family: 4 | 6; text: string; port: number }>): fc.Arbitrary<FrameCase> {
  return fc
    .record({
      family: fc.constantFrom(4 as const, 6 as const),
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      sport: arbPort,
      dport: arbPort,
      rsIndex: rs.length > 0 ? fc.option(fc.nat(rs.length - 1), { freq: 2 }) : fc.constant(null),
      options: fc.boolean(),
      a4: fc.tuple(fc.ipV4(), fc.ipV4()),
      a6: fc.tuple(arbV6, arbV6),
    })
    .map((r) => {
      const chosen = r.rsIndex === null ? undefined : rs[r.rsIndex];
      const family = chosen?.family ?? r.family;
      const [src, dst] = family === 4 ? r.a4 : r.a6;
      const flow: Flow = {
        family,
        proto: r.proto,
        src: chosen?.text ?? src,
        dst,
        sport: chosen !== undefined && chosen.port !== 0 ? chosen.port : r.sport,
        dport: r.dport,
      };
      return { flow, fromRs: chosen !== undefined, options: r.options && family === 4 };
    });
}

function natRs(rs: Array<{ family: 4 | 6; text: string; port: number }>): NatRealServer[] {
  return rs.map((r) => ({ family: r.family, addr: IpAddress.parse(r.text).words, port: r.port }));
}

/**
 * Could an engine with this slice forward the frame? As client -> VIP (some
 * service may match its destination): its source side's bucket. As NAT return
 * traffic from a listed real server: its destination's bucket for the src-*
 * senses; for dst-* the bucket of the connection's virtual side, which may be
 * anything.
 */
function engineMayAccept(slice: SliceFilter, rs: NatRealServer[], f: ParsedFrame): boolean {
  if (slice.accepts(f.saddr, f.sport, f.daddr, f.dport)) return true;
  const fromRs = rs.some(
    (r) =>
      r.family === f.family &&
      r.addr[0] === f.saddr[0] &&
      r.addr[1] === f.saddr[1] &&
      r.addr[2] === f.saddr[2] &&
      r.addr[3] === f.saddr[3] &&
      (r.port === 0 || r.port === f.sport),
  );
  if (!fromRs) return false;
  if (slice.sense === Sense.DST_PORT || slice.sense === Sense.DST_ADDR) return true;
  return slice.accepts(f.daddr, f.dport, f.saddr, 0);
}

function sweepPorts(insns: ReturnType<typeof buildSliceFilter>['insns'], owned: (b: number) => boolean, mask: number): void {
  const f = frame({ family: 4, proto: 'udp', src: IN.v4, dst: VIP_IN.v4, sport: 0, dport: 80 });
  const prog = loadFilter(insns);
  for (let p = 0; p < 65536; p++) {
    f[34] = p >> 8;
    f[35] = p & 0xff;
    const got = accepts(prog, f);
    if (got !== owned(p & mask)) assert.fail(`source port ${p} (bucket ${p & mask}): filter ${got ? 'accepts' : 'drops'}`);
  }
}

// ---------------------------------------------------------------------------

describe('saru/bpf: slice filter compiler', () => {
  describe('fixtures (interpreter)', () => {
    for (const fx of fixtures()) {
      it(fx.description, () => {
        assert.equal(verdict(fx.spec, fx.input, fx.pktType ?? 0), fx.expected);
      });
    }

    it('the hand-picked keys are where the fixtures say (cross-check with SliceFilter)', () => {
      for (const sense of SENSES) {
        const s = sliceOf(1024, sense, OWNED);
        for (const family of [4, 6] as const) {
          for (const own of [true, false]) {
            const fl = clientFlow(family, 'tcp', sense, own);
            const p = new ParsedFrame();
            const fr = frame(fl);
            assert.equal(parseFrame(fr, 0, fr.length, p), Drop.OK);
            assert.equal(s.accepts(p.saddr, p.sport, p.daddr, p.dport), own, `${SENSE_TEXT[sense]} IPv${family} ${own}`);
          }
        }
      }
    });
  });

  describe('the interpreter (native/bpf.ts) refuses what the kernel refuses', () => {
    const R = (k: number): SockFilter => ({ code: 0x06, jt: 0, jf: 0, k });
    const bad = (insns: SockFilter[], re: RegExp): void => assert.throws(() => new BpfProgram(assemble(insns)), re);
    it('unknown opcodes, jumps out of the program, M[] read before written, no final ret, empty or too long', () => {
      bad([{ code: 0xff, jt: 0, jf: 0, k: 0 }, R(0)], /unknown opcode 0xff/);
      bad([{ code: 0x15, jt: 5, jf: 0, k: 0 }, R(0)], /jump out of the program/);
      bad([{ code: 0x60, jt: 0, jf: 0, k: 0 }, R(0)], /scratch slot 0 read before it is written/);
      bad([{ code: 0x28, jt: 0, jf: 0, k: 12 }], /last instruction must be a return/);
      bad([{ code: 0x34, jt: 0, jf: 0, k: 0 }, R(0)], /division by constant 0/);
      bad([], /got 0 bytes/);
      bad(Array.from({ length: 4097 }, () => R(0)), /got 4097/);
    });
    it('an ancillary field the kernel knows but the interpreter does not model is refused, not run', () => {
      const vlanPresent = [{ code: 0x28, jt: 0, jf: 0, k: SKF_AD_OFF + 48 }, R(0)];
      assert.equal(checkProgram(assemble(vlanPresent)), null, 'SKF_AD_VLAN_TAG_PRESENT: the kernel accepts it');
      bad(vlanPresent, /ancillary load SKF_AD_OFF\+48 is not modelled/);
    });
    it('a load past the end of the frame returns 0; ancillary packet type is the parameter', () => {
      const run = (insns: SockFilter[], pktType = 0): number =>
        new BpfProgram(assemble(insns)).run(new Uint8Array(64), 0, 64, { protocol: 0, pktType, ifindex: 2 });
      assert.equal(run([{ code: 0x28, jt: 0, jf: 0, k: 100 }, R(1)]), 0);
      assert.equal(run([{ code: 0x28, jt: 0, jf: 0, k: SKF_AD_OFF + 4 }, { code: 0x16, jt: 0, jf: 0, k: 0 }], 3), 3);
    });
  });

  describe('program shape', () => {
    it('starts with the packet type and EtherType checks and ends with accept/drop (tcpdump -d listing)', () => {
      const text = formatProgram(compileSliceFilter({ buckets: 1024, sense: Sense.SRC_PORT, owned: [[0, 511]], natRealServers: [] }));
      const lines = text.trimEnd().split('\n');
      assert.equal(lines[0], '(000) ldh      [type]');
      assert.equal(lines[1], '(001) jeq      #0x0             jt 2\tjf 19');
      assert.equal(lines[2], '(002) ldh      [12]');
      assert.match(text, /ldxb     4\*\(\[14\]&0xf\)/);
      assert.match(text, /ldh      \[x \+ 14\]/);
      assert.equal(lines.at(-2), '(018) ret      #262144');
      assert.equal(lines.at(-1), '(019) ret      #0');
    });

    it('owned all: four instructions, only the packet type matters', () => {
      const p = buildSliceFilter({ buckets: 16, sense: Sense.SRC_ADDR, owned: [[0, 15]], natRealServers: NAT_RS });
      assert.equal(p.check, 'all');
      assert.equal(p.insns.length, 4);
    });

    it('encodes struct sock_filter: u16 code, u8 jt, u8 jf, u32 k in host order (little-endian here), round trip', () => {
      const insns = [
        { code: 0x28, jt: 0, jf: 0, k: 0xfffff004 },
        { code: 0x15, jt: 2, jf: 19, k: 0x86dd },
        { code: 0x06, jt: 0, jf: 0, k: FILTER_ACCEPT },
      ];
      const bytes = encodeInsns(insns);
      if (endianness() === 'LE') {
        assert.deepEqual([...bytes.subarray(0, 16)], [0x28, 0, 0, 0, 0x04, 0xf0, 0xff, 0xff, 0x15, 0, 2, 19, 0xdd, 0x86, 0, 0]);
      }
      assert.deepEqual(decodeInsns(bytes), insns);
      assert.throws(() => encodeInsns([{ code: 0x06, jt: 256, jf: 0, k: 0 }]), { code: ErrorCode.INVALID_ARGUMENT });
      assert.throws(() => decodeInsns(new Uint8Array(12)), { code: ErrorCode.INVALID_ARGUMENT });
    });

    it('is deterministic: identical specs (and real servers in any order) give identical bytes', () => {
      const rs = [...NAT_RS, { family: 4 as const, addr: IpAddress.parse('10.1.0.9').words, port: 0 }];
      const owned: Array<[number, number]> = [[3, 9], [100, 400], [700, 701]];
      const a = compileSliceFilter({ buckets: 1024, sense: Sense.SRC_PORT, owned, natRealServers: rs });
      const b = compileSliceFilter({ buckets: 1024, sense: Sense.SRC_PORT, owned: owned.map(([x, y]) => [x, y]), natRealServers: [...rs].reverse() });
      assert.deepEqual(Buffer.from(a), Buffer.from(b));
    });

    it('merges adjacent owned ranges and rejects unsorted, overlapping or out-of-range ones', () => {
      const a = compileSliceFilter({ buckets: 64, sense: Sense.SRC_PORT, owned: [[0, 9], [10, 20]], natRealServers: [] });
      const b = compileSliceFilter({ buckets: 64, sense: Sense.SRC_PORT, owned: [[0, 20]], natRealServers: [] });
      assert.deepEqual(Buffer.from(a), Buffer.from(b));
      const bad = (owned: Array<[number, number]>, buckets = 64): void =>
        assert.throws(() => compileSliceFilter({ buckets, sense: Sense.SRC_PORT, owned, natRealServers: [] }), { code: ErrorCode.INVALID_ARGUMENT });
      bad([[5, 9], [0, 2]]);
      bad([[0, 9], [9, 12]]);
      bad([[0, 64]]);
      bad([[3, 2]]);
      bad([[0, 1]], 48);
      bad([[0, 1]], 1);
    });
  });

  describe('limits', () => {
    it('1024 buckets with alternating ownership (512 ranges) fits', () => {
      for (const start of [0, 1]) {
        const owned: Array<[number, number]> = [];
        for (let b = start; b < 1024; b += 2) owned.push([b, b]);
        for (const sense of SENSES) {
          const p = buildSliceFilter({ buckets: 1024, sense, owned, natRealServers: NAT_RS });
          assert.ok(p.insns.length <= BPF_MAXINSNS);
          loadFilter(p.insns);
        }
      }
    });

    it('1024 buckets, 512 irregular ranges (no bit pattern), with NAT real servers on port 0: fits, and exact', () => {
      const owned: Array<[number, number]> = [];
      // Gaps of 1, runs of 1; shuffled by a fixed pattern so that no low or high bit decides.
      let b = 0;
      let i = 0;
      const bits = new Array<boolean>(1024).fill(false);
      while (b < 1024) {
        bits[b] = true;
        b += 2 + ((i * 7) % 3 === 0 && b + 3 < 1024 ? 1 : 0);
        i++;
      }
      for (let j = 0; j < 1024; j += 97) bits[j] = !bits[j];
      owned.push(...rangesOf(bits));
      const rs = [{ family: 4 as const, addr: IpAddress.parse(RS4).words, port: 0 }];
      const p = buildSliceFilter({ buckets: 1024, sense: Sense.SRC_PORT, owned, natRealServers: rs });
      assert.ok(p.insns.length <= BPF_MAXINSNS, `${p.insns.length} instructions`);
      assert.equal(p.anyPortNat, 'check');
      sweepPorts(p.insns, (k) => bits[k] === true, 1023);
    });

    it('65536 buckets, every other bucket (32768 ranges): one bit test', () => {
      const owned: Array<[number, number]> = [];
      for (let b = 1; b < 65536; b += 2) owned.push([b, b]);
      const p = buildSliceFilter({ buckets: 65536, sense: Sense.SRC_PORT, owned, natRealServers: [] });
      assert.equal(p.check, 'bits-lsb');
      assert.ok(p.insns.length < 30, `${p.insns.length} instructions`);
      sweepPorts(p.insns, (k) => (k & 1) === 1, 0xffff);
    });

    it('65536 buckets with a random owned set too fragmented for 4096 instructions: SARU_ERR_CAPACITY saying how many ranges fit', () => {
      let seed = 12345;
      const bits: boolean[] = [];
      for (let i = 0; i < 65536; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        bits.push(((seed >>> 16) & 1) === 1);
      }
      const owned = rangesOf(bits);
      assert.throws(
        () => compileSliceFilter({ buckets: 65536, sense: Sense.SRC_PORT, owned, natRealServers: [] }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, ErrorCode.CAPACITY);
          assert.match(e.message, new RegExp(`${owned.length} owned bucket ranges of 65536`));
          const m = /about (\d+) ranges fit/.exec(e.message);
          assert.ok(m && Number(m[1]) > 1800 && Number(m[1]) < 2100, e.message);
          return true;
        },
      );
      // What the message promises does fit.
      const fit = Number(/about (\d+) ranges fit/.exec(
        (() => {
          try {
            compileSliceFilter({ buckets: 65536, sense: Sense.SRC_PORT, owned, natRealServers: [] });
          } catch (e) {
            return (e as Error).message;
          }
          return '';
        })(),
      )![1]);
      const p = buildSliceFilter({ buckets: 65536, sense: Sense.SRC_PORT, owned: owned.slice(0, fit), natRealServers: [] });
      assert.ok(p.insns.length <= BPF_MAXINSNS);
    });
  });

  describe('key-check strategies, every key', () => {
    const cases: Array<{ name: string; buckets: number; bits: (k: number) => boolean; expect?: KeyCheck }> = [
      { name: 'one range', buckets: 1024, bits: (k) => k >= 100 && k <= 355, expect: 'ranges' },
      { name: 'lower half', buckets: 1024, bits: (k) => k < 512 },
      { name: 'two ranges at both ends', buckets: 4096, bits: (k) => k < 3 || k > 4000 },
      { name: 'k % 3 === 0 over 4096 buckets (1366 ranges, several blocks and long jumps)', buckets: 4096, bits: (k) => k % 3 === 0 },
      { name: 'k % 5 < 2 over 65536 buckets, first 3000 buckets only', buckets: 65536, bits: (k) => k < 3000 && k % 5 < 2 },
      { name: 'bucket % 4 in {1, 2}', buckets: 65536, bits: (k) => (k & 3) === 1 || (k & 3) === 2 },
      { name: 'pseudo-random 600 ranges over 65536', buckets: 65536, bits: (k) => ((Math.imul(k >>> 6, 2654435761) >>> 28) & 1) === 1 && k < 77000 },
    ];
    for (const c of cases) {
      it(`${c.name}: every strategy that fits agrees with the owned set on all 65536 source ports`, () => {
        const bits: boolean[] = [];
        for (let k = 0; k < c.buckets; k++) bits.push(c.bits(k));
        const s: SliceFilterSpec = { buckets: c.buckets, sense: Sense.SRC_PORT, owned: rangesOf(bits), natRealServers: [] };
        const best = buildSliceFilter(s);
        if (c.expect) assert.equal(best.check, c.expect);
        let tried = 0;
        for (const check of ['ranges', 'bits-lsb', 'bits-msb'] as const) {
          let p;
          try {
            p = buildSliceFilter(s, { checks: [check] });
          } catch (e) {
            assert.equal((e as { code?: string }).code, ErrorCode.CAPACITY);
            continue;
          }
          assert.equal(p.check, check);
          assert.ok(p.insns.length >= best.insns.length, 'the chosen program is the shortest');
          sweepPorts(p.insns, (k) => bits[k] === true, c.buckets - 1);
          tried++;
        }
        assert.ok(tried >= 1);
      });
    }
  });

  describe('properties', () => {
    /** Owned set, sense, real servers, and frames (some from the real servers). */
    const arbCase = fc
      .tuple(arbOwned, fc.constantFrom(...SENSES), arbRs)
      .chain(([o, sense, rsList]) =>
        fc.tuple(fc.constant(o), fc.constant(sense), fc.constant(rsList), fc.array(arbFrameCase(rsList), { minLength: 1, maxLength: 40 })),
      );
    /** A case's real servers, its loaded filter, and the SliceFilter it is compiled from. */
    function caseSetup(buckets: number, sense: Sense, owned: Array<[number, number]>, rsList: Array<{ family: 4 | 6; text: string; port: number }>) {
      const rs = natRs(rsList);
      return { rs, prog: loadFilter(compileSliceFilter({ buckets, sense, owned, natRealServers: rs })), slice: sliceOf(buckets, sense, owned) };
    }

    it('(a) safety: a frame the filter drops is never one the engine could accept', () => {
      fc.assert(
        fc.property(arbCase, ([{ buckets, owned }, sense, rsList, cases]) => {
          const { rs, prog, slice } = caseSetup(buckets, sense, owned, rsList);
          const p = new ParsedFrame();
          for (const fcase of cases) {
            const fr = frame(fcase.flow, fcase.options ? { options: Uint8Array.of(148, 4, 0, 0) } : {});
            assert.equal(parseFrame(fr, 0, fr.length, p), Drop.OK);
            const accepted = accepts(prog, fr);
            assert.ok(accepted || !engineMayAccept(slice, rs, p), `dropped ${JSON.stringify(fcase)}`);
          }
        }),
        { numRuns: 400 },
      );
    });

    it('(b) precision: plain TCP/UDP client -> VIP frames are accepted exactly when SliceFilter accepts them', () => {
      fc.assert(
        fc.property(arbCase, ([{ buckets, owned }, sense, rsList, cases]) => {
          const { rs, prog, slice } = caseSetup(buckets, sense, owned, rsList);
          const p = new ParsedFrame();
          for (const fcase of cases) {
            if (fcase.fromRs || fcase.options) continue;
            const fr = frame(fcase.flow);
            parseFrame(fr, 0, fr.length, p);
            // Not from a real server's address (random addresses practically never are).
            if (rs.some((r) => r.family === p.family && r.addr.every((w, i) => w === p.saddr[i]))) continue;
            assert.equal(accepts(prog, fr), slice.accepts(p.saddr, p.sport, p.daddr, p.dport), JSON.stringify(fcase));
          }
        }),
        { numRuns: 400 },
      );
    });

    it('(c) never throws on random bytes, truncations and mutations; a non-HOST packet type is always dropped', () => {
      const bins = [
        compileSliceFilter(spec(Sense.SRC_PORT)),
        compileSliceFilter(spec(Sense.SRC_ADDR, { owned: [] })),
        compileSliceFilter(spec(Sense.DST_ADDR)),
        compileSliceFilter({ ...spec(Sense.SRC_PORT), natRealServers: [{ family: 4, addr: IpAddress.parse(RS4).words, port: 0 }] }),
        compileSliceFilter({ buckets: 4096, sense: Sense.SRC_PORT, owned: rangesOf(Array.from({ length: 4096 }, (_, k) => k % 3 === 0 && k % 7 !== 1)), natRealServers: NAT_RS }),
      ];
      const progs = bins.map((b) => loadFilter(b));
      const valid = fixtures().map((f) => Uint8Array.from(f.input));
      const arbBytes = fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        fc.tuple(fc.constantFrom(...valid), fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 })).map(([v, cut, muts]) => {
          const b = Uint8Array.from(v);
          for (const [i, x] of muts) b[i % b.length] = x;
          return b.subarray(0, cut % (b.length + 1));
        }),
      );
      fc.assert(
        fc.property(arbBytes, fc.nat(progs.length - 1), fc.integer({ min: 0, max: 7 }), (bytes, i, pktType) => {
          const prog = progs[i]!;
          const ret = prog.run(bytes, 0, bytes.length, ctxOf(bytes, pktType));
          if (pktType !== 0) assert.equal(ret, 0);
          assert.ok(ret === 0 || ret === FILTER_ACCEPT);
          assert.ok(prog.steps >= 1 && prog.steps <= bins[i]!.length / 8);
        }),
        { numRuns: 3000 },
      );
    });

    it('(d) against the real engine with NAT services: every frame the engine forwards, the filter accepts', () => {
      const VIP4 = '198.18.0.100';
      const VIP6 = '2001:db8::100';
      fc.assert(
        fc.property(
          arbOwned.filter((o) => o.buckets <= 1024),
          fc.constantFrom(...SENSES),
          fc.constantFrom(4 as const, 6 as const),
          fc.array(
            fc.record({
              kind: fc.constantFrom('conn' as const, 'rs-as-client' as const),
              client: fc.nat(0xffff),
              cport: arbPort,
              rs: fc.nat(2),
            }),
            { minLength: 1, maxLength: 25 },
          ),
          ({ buckets, owned }, sense, family, events) => {
            const services = new ServiceTable();
            const svc = services.add({ protocol: Proto.TCP, address: family === 4 ? VIP4 : VIP6, port: 80, scheduler: 'rr' });
            const rsObjs = [0, 1, 2].map((i) => {
              const r = svc.addRealServer({
                address: family === 4 ? `198.18.1.${i + 1}` : `2001:db8:1::${i + 1}`,
                port: 8080 + i,
                weight: 1,
                fwd: Fwd.NAT,
              });
              r.mac.set([2, 0, 0, 0, 1, i + 1]);
              r.macKnown = true;
              return r;
            });
            svc.setScheduler(createScheduler(svc.schedulerName));
            const slice = sliceOf(buckets, sense, owned);
            const SHARED = DEFAULT_DST_MAC;
            const engine = new Engine(
              { sharedMac: SHARED, localAddr4: '198.18.0.2', localAddr6: '2001:db8::2', table: { capacity: 4096 } },
              { clock: new ManualClock(1_000_000), services, slice },
            );
            engine.neighbours.gateway = parseMac('02:00:00:00:00:fe');
            const prog = loadFilter(
              compileSliceFilter({
                buckets,
                sense,
                owned: slice.ownedRanges(),
                natRealServers: rsObjs.map((r) => ({ family, addr: r.addr.words, port: r.port })),
              }),
            );
            const forwarded = (fr: Uint8Array): boolean => {
              const rx: RxBatch = { buf: Uint8Array.from(fr), off: Uint32Array.of(0), len: Uint32Array.of(fr.length), count: 1 };
              engine.processBatch(rx);
              return engine.tx.count > 0;
            };
            const addr = (n: number): string => (family === 4 ? `203.0.${n >> 8}.${n & 0xff}` : `2001:db8:c::${n.toString(16)}`);
            for (const ev of events) {
              const vip = family === 4 ? VIP4 : VIP6;
              const frames: Uint8Array[] = [];
              if (ev.kind === 'conn') {
                const syn = frame({ family, proto: 'tcp', src: addr(ev.client), dst: vip, sport: ev.cport, dport: 80 });
                frames.push(syn);
              } else {
                const r = rsObjs[ev.rs]!;
                frames.push(frame({ family, proto: 'tcp', src: r.addr.text, dst: vip, sport: r.port, dport: 80 }));
              }
              for (const fr of frames) {
                const acc = accepts(prog, fr);
                const fwd = forwarded(fr);
                assert.ok(acc || !fwd, 'the engine forwarded a frame the filter drops');
                // The engine's reply path: a SYN-ACK from whichever real server took the connection.
                if (ev.kind === 'conn' && fwd) {
                  const out = new ParsedFrame();
                  const txf = engine.tx.frame(0);
                  assert.equal(parseFrame(txf, 0, txf.length, out), Drop.OK);
                  const r = rsObjs.find((x) => x.addr.words[3] === out.daddr[3])!;
                  const reply = frame({ family, proto: 'tcp', src: r.addr.text, dst: addr(ev.client), sport: r.port, dport: ev.cport });
                  const racc = accepts(prog, reply);
                  const rfwd = forwarded(reply);
                  assert.ok(racc || !rfwd, 'the engine forwarded NAT return traffic the filter drops');
                  assert.ok(rfwd, 'the engine forwards the reply of a connection it scheduled');
                }
              }
            }
          },
        ),
        { numRuns: 120 },
      );
    });
  });

  describe('the kernel agrees (root, python3)', function () {
    this.timeout(60_000);
    const NS = `saru-bpf-${process.pid}`;
    let dir = '';
    let skip = '';
    before(function () {
      if (process.getuid?.() !== 0) skip = 'not root';
      else if (spawnSync('python3', ['-c', 'import socket, ctypes'], { stdio: 'ignore' }).status !== 0) skip = 'python3 not available';
      else if (spawnSync('ip', ['netns', 'add', NS], { stdio: 'ignore' }).status !== 0) skip = 'cannot create a network namespace';
      if (skip) {
        console.log(`      (skipped: ${skip})`);
        this.skip();
      }
      const ns = (...args: string[]): void => {
        execFileSync('ip', ['netns', 'exec', NS, ...args], { stdio: 'ignore' });
      };
      ns('ip', 'link', 'add', 'tx0', 'type', 'veth', 'peer', 'name', 'rx0');
      ns('ip', 'link', 'set', 'rx0', 'address', DEFAULT_DST_MAC);
      ns('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1');
      ns('ip', 'link', 'set', 'tx0', 'up');
      ns('ip', 'link', 'set', 'rx0', 'up');
      dir = mkdtempSync(join(tmpdir(), 'saru-bpf-'));
      writeFileSync(join(dir, 'kernel.py'), KERNEL_PY);
    });
    after(() => {
      if (!skip) spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Run frames through the kernel with the program attached; true per frame that the packet socket received. */
    function kernelVerdicts(prog: Uint8Array, frames: Uint8Array[]): boolean[] {
      const input = JSON.stringify({ prog: Buffer.from(prog).toString('hex'), frames: frames.map((f) => Buffer.from(f).toString('hex')) });
      const r = spawnSync('ip', ['netns', 'exec', NS, 'python3', join(dir, 'kernel.py')], { input, encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`kernel.py failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as boolean[];
    }

    it('accepts every program shape and gives the interpreter\'s verdict on each fixture and on random frames', () => {
      const fx = fixtures().filter((f) => (f.pktType ?? 0) === 0 && f.input.length >= 14);
      const bySpec = new Map<string, { spec: SliceFilterSpec; frames: Uint8Array[] }>();
      for (const f of fx) {
        const key = JSON.stringify({ ...f.spec, natRealServers: f.spec.natRealServers.map((r) => [r.family, [...r.addr], r.port]) });
        if (!bySpec.has(key)) bySpec.set(key, { spec: f.spec, frames: [] });
        bySpec.get(key)!.frames.push(f.input);
      }
      // Random frames over two more specs, one with long jumps and a port-0 real server.
      const rsList = [{ family: 4 as const, text: RS4, port: 0 }, { family: 6 as const, text: RS6, port: 8080 }];
      const rnd = fc.sample(arbFrameCase(rsList), { numRuns: 150, seed: 7 }).map((c) => frame(c.flow, c.options ? { options: Uint8Array.of(148, 4, 0, 0) } : {}));
      const thirds: Array<[number, number]> = [];
      for (let b = 0; b < 4096; b += 3) thirds.push([b, b]);
      bySpec.set('random-1', { spec: { buckets: 4096, sense: Sense.SRC_PORT, owned: thirds, natRealServers: natRs(rsList) }, frames: rnd });
      bySpec.set('random-2', { spec: { buckets: 1024, sense: Sense.SRC_ADDR, owned: [[5, 600], [700, 701]], natRealServers: natRs(rsList) }, frames: rnd });
      let compared = 0;
      for (const { spec: s, frames } of bySpec.values()) {
        const prog = compileSliceFilter(s);
        const interp = loadFilter(prog);
        const want = frames.map((f) => accepts(interp, asKernelSees(f), pktTypeOf(f)));
        const got = kernelVerdicts(prog, frames);
        const diff = frames.map((f, i) => (got[i] === want[i] ? '' : `${i}: kernel ${got[i]} interpreter ${want[i]} ${Buffer.from(f).toString('hex')}`)).filter((x) => x);
        assert.deepEqual(diff, [], formatProgram(prog));
        compared += frames.length;
      }
      assert.ok(compared > 300);
    });
  });
});

/** skb->pkt_type of a frame arriving on rx0 (MAC DEFAULT_DST_MAC), as eth_type_trans sets it. */
function pktTypeOf(f: Uint8Array): number {
  if (f.subarray(0, 6).every((b) => b === 0xff)) return 1; // PACKET_BROADCAST
  if ((f[0]! & 1) === 1) return 2; // PACKET_MULTICAST
  return Buffer.from(f.subarray(0, 6)).equals(Buffer.from(DEFAULT_DST_MAC.split(':').map((h) => parseInt(h, 16)))) ? 0 : 3;
}

/**
 * The frame as a packet-socket filter sees it: the receive path moves the
 * outermost 802.1Q/802.1ad tag out of the data into skb->vlan_tci
 * (skb_vlan_untag), so the filter reads the EtherType behind it.
 */
function asKernelSees(f: Uint8Array): Uint8Array {
  const et = f.length >= 18 ? (f[12]! << 8) | f[13]! : 0;
  if (et !== 0x8100 && et !== 0x88a8) return f;
  const out = new Uint8Array(f.length - 4);
  out.set(f.subarray(0, 12), 0);
  out.set(f.subarray(16), 12);
  return out;
}

/**
 * Attach the program to a packet socket on rx0, send each frame on tx0 from
 * another packet socket followed by a sentinel (an ARP frame the program
 * accepts), and report whether the frame arrived before its sentinel. veth
 * delivers in order, so no timing is involved.
 */
const KERNEL_PY = String.raw`
import ctypes, json, socket, sys
SO_ATTACH_FILTER = 26
ETH_P_ALL = 3
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
req = json.load(sys.stdin)
prog = bytes.fromhex(req["prog"])
buf = ctypes.create_string_buffer(prog, len(prog))
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
rx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.string_at(ctypes.addressof(fp), ctypes.sizeof(fp)))
rx.bind(("rx0", ETH_P_ALL))
rx.settimeout(2.0)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind(("tx0", 0))
# Drain anything queued before the filter applied.
rx.setblocking(False)
try:
    while True: rx.recv(65535)
except BlockingIOError:
    pass
rx.setblocking(True)
rx.settimeout(2.0)
def sentinel(i):
    dst = bytes.fromhex("020000000002"); src = bytes.fromhex("0200000000ee")
    arp = bytes.fromhex("0001080006040001") + src + bytes([198, 18, 255, 1]) + bytes(6) + i.to_bytes(4, "big")
    return dst + src + b"\x08\x06" + arp
out = []
for i, h in enumerate(req["frames"]):
    f = bytes.fromhex(h)
    s = sentinel(i)
    tx.send(f if len(f) >= 14 else f + bytes(14 - len(f)))
    tx.send(s)
    seen = False
    while True:
        got = rx.recv(65535)
        if got == s: break
        if got[:len(f)] == f: seen = True
    out.append(seen)
print(json.dumps(out))
`;
