/**
 * Classic BPF encoding, load-time checks and interpreter (native/bpf.ts):
 * the struct sock_filter layout against the compiled addon, table-driven
 * checks and verdicts, and properties (round trip; the interpreter never
 * throws). The interpreter is compared with the kernel itself in
 * packet-port.spec.ts.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ACCEPT_ALL,
  ACCEPT_NONE,
  Bpf,
  BpfProgram,
  SKF_AD_OFF,
  SKF_AD_PROTOCOL,
  SKF_LL_OFF,
  SKF_NET_OFF,
  SOCK_FILTER_LAYOUT,
  assemble,
  checkProgram,
  disassemble,
  jump,
  nativeAvailable,
  stmt,
  type BpfInsn,
} from '../../native/index.js';
import { loadAddon } from '../../native/addon.js';
import { unsupportedAncillary } from '../../native/bpf.js';
import { PacketBuilder } from '../helpers/packet-builder.js';

const L = Bpf;
const HOST = { protocol: 0x0800, pktType: 0, ifindex: 3 };

function udp(dport: number, size = 60): Uint8Array {
  return new Uint8Array(
    new PacketBuilder()
      .eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
      .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
      .udp({ sport: 1234, dport, payload: new Uint8Array(size - 42) })
      .build(),
  );
}

describe('native/bpf: struct sock_filter layout', function () {
  it('matches the compiled C struct (size, offsets, byte order)', function () {
    if (process.platform !== 'linux') this.skip();
    assert.ok(nativeAvailable(), 'the native addon must be built on Linux (npm run build:native)');
    const { layout } = loadAddon().addon!;
    assert.deepEqual(
      { size: layout.sockFilterSize, code: layout.code, jt: layout.jt, jf: layout.jf, k: layout.k, littleEndian: layout.littleEndian },
      { ...SOCK_FILTER_LAYOUT },
    );
    assert.equal(layout.maxInsns, 4096);
  });

  it('encodes { code, jt, jf, k } in host byte order', function () {
    const p = assemble([jump(L.JMP | L.JEQ | L.K, 0x0800, 1, 2)]);
    const le = SOCK_FILTER_LAYOUT.littleEndian;
    assert.deepEqual(Array.from(p), le ? [0x15, 0x00, 1, 2, 0x00, 0x08, 0, 0] : [0x00, 0x15, 1, 2, 0, 0, 0x08, 0x00]);
    assert.deepEqual(Array.from(ACCEPT_NONE), [0x06, 0, 0, 0, 0, 0, 0, 0].map((b, i) => (le ? b : [0, 6, 0, 0, 0, 0, 0, 0][i]!)));
    assert.deepEqual(disassemble(ACCEPT_ALL), [{ code: 0x06, jt: 0, jf: 0, k: 0xffffffff }]);
  });

  it('assemble and disassemble round-trip', function () {
    const insn = fc.record({
      code: fc.integer({ min: 0, max: 0xffff }),
      jt: fc.integer({ min: 0, max: 255 }),
      jf: fc.integer({ min: 0, max: 255 }),
      k: fc.integer({ min: 0, max: 0xffffffff }),
    });
    fc.assert(fc.property(fc.array(insn, { maxLength: 50 }), (insns) => assert.deepEqual(disassemble(assemble(insns)), insns)));
  });
});

describe('native/bpf: checkProgram (the kernel\'s load-time checks)', function () {
  const ret = stmt(L.RET | L.K, 0xffff);
  const table: { description: string; input: BpfInsn[] | Uint8Array; expected: RegExp | null }[] = [
    { description: 'accept all', input: ACCEPT_ALL, expected: null },
    { description: 'empty program', input: new Uint8Array(0), expected: /N\*8 bytes/ },
    { description: 'length not a multiple of 8', input: new Uint8Array(12), expected: /N\*8 bytes/ },
    { description: '4097 instructions', input: assemble(Array.from({ length: 4097 }, () => ret)), expected: /at most 4096/ },
    { description: '4096 instructions', input: assemble(Array.from({ length: 4096 }, () => ret)), expected: null },
    { description: 'no return at the end', input: [stmt(L.LD | L.W | L.LEN)], expected: /last instruction/ },
    { description: 'RET X is not classic', input: [stmt(L.RET | L.X)], expected: /unknown opcode/ },
    { description: 'unknown opcode', input: [stmt(0xff), ret], expected: /unknown opcode 0xff/ },
    { description: 'division by constant 0', input: [stmt(L.ALU | L.DIV | L.K, 0), ret], expected: /division/ },
    { description: 'modulo by constant 0', input: [stmt(L.ALU | L.MOD | L.K, 0), ret], expected: /division/ },
    { description: 'shift by 32', input: [stmt(L.ALU | L.LSH | L.K, 32), ret], expected: /shift/ },
    { description: 'shift by 31', input: [stmt(L.ALU | L.RSH | L.K, 31), ret], expected: null },
    { description: 'scratch slot 16', input: [stmt(L.ST, 16), ret], expected: /slot 16/ },
    { description: 'read before write', input: [stmt(L.LD | L.W | L.MEM, 2), ret], expected: /read before/ },
    { description: 'write then read', input: [stmt(L.ST, 2), stmt(L.LD | L.W | L.MEM, 2), ret], expected: null },
    {
      description: 'written on one path only',
      input: [jump(L.JMP | L.JEQ | L.K, 1, 0, 1), stmt(L.ST, 2), stmt(L.LD | L.W | L.MEM, 2), ret],
      expected: /read before/,
    },
    { description: 'conditional jump past the end', input: [jump(L.JMP | L.JEQ | L.K, 1, 1, 0), ret], expected: /jump out/ },
    { description: 'JA past the end', input: [stmt(L.JMP | L.JA, 1), ret], expected: /jump out/ },
    { description: 'known extension', input: [stmt(L.LD | L.H | L.ABS, SKF_AD_OFF + SKF_AD_PROTOCOL), ret], expected: null },
    { description: 'unknown extension', input: [stmt(L.LD | L.W | L.ABS, SKF_AD_OFF + 2), ret], expected: /ancillary/ },
    { description: 'network-header offset', input: [stmt(L.LD | L.B | L.ABS, SKF_NET_OFF + 9), ret], expected: null },
  ];
  for (const { description, input, expected } of table) {
    it(description, function () {
      const err = checkProgram(input instanceof Uint8Array ? input : assemble(input));
      if (expected === null) assert.equal(err, null);
      else assert.match(err ?? '', expected);
    });
  }
});

describe('native/bpf: BpfProgram verdicts', function () {
  const table: { description: string; prog: BpfInsn[]; frame: Uint8Array; expected: number }[] = [
    { description: 'accept all keeps everything', prog: [stmt(L.RET | L.K, 0xffffffff)], frame: udp(1), expected: 0xffffffff },
    {
      description: 'UDP port match',
      prog: [stmt(L.LDX | L.B | L.MSH, 14), stmt(L.LD | L.H | L.IND, 16), jump(L.JMP | L.JEQ | L.K, 53, 0, 1), stmt(L.RET | L.K, 1), stmt(L.RET | L.K, 0)],
      frame: udp(53),
      expected: 1,
    },
    {
      description: 'UDP port mismatch',
      prog: [stmt(L.LDX | L.B | L.MSH, 14), stmt(L.LD | L.H | L.IND, 16), jump(L.JMP | L.JEQ | L.K, 53, 0, 1), stmt(L.RET | L.K, 1), stmt(L.RET | L.K, 0)],
      frame: udp(54),
      expected: 0,
    },
    { description: 'out-of-bounds load ends with 0', prog: [stmt(L.LD | L.W | L.ABS, 58), stmt(L.RET | L.K, 9)], frame: udp(1), expected: 0 },
    { description: 'last whole word in bounds', prog: [stmt(L.LD | L.W | L.ABS, 56), stmt(L.RET | L.K, 9)], frame: udp(1), expected: 9 },
    { description: 'RET A returns the accumulator', prog: [stmt(L.LD | L.W | L.LEN), stmt(L.RET | L.A)], frame: udp(1, 77), expected: 77 },
    { description: 'SKF_AD_PROTOCOL', prog: [stmt(L.LD | L.H | L.ABS, SKF_AD_OFF + SKF_AD_PROTOCOL), stmt(L.RET | L.A)], frame: udp(1), expected: 0x0800 },
    { description: 'SKF_LL_OFF reads the Ethernet header', prog: [stmt(L.LD | L.H | L.ABS, SKF_LL_OFF + 12), stmt(L.RET | L.A)], frame: udp(1), expected: 0x0800 },
    { description: 'SKF_NET_OFF reads the IP header', prog: [stmt(L.LD | L.B | L.ABS, SKF_NET_OFF + 9), stmt(L.RET | L.A)], frame: udp(1), expected: 17 },
    {
      description: 'division by X = 0 ends with 0',
      prog: [stmt(L.LD | L.W | L.IMM, 8), stmt(L.ALU | L.DIV | L.X), stmt(L.RET | L.K, 5)],
      frame: udp(1),
      expected: 0,
    },
    {
      description: '32-bit wrap-around',
      prog: [stmt(L.LD | L.W | L.IMM, 0xffffffff), stmt(L.ALU | L.ADD | L.K, 2), stmt(L.RET | L.A)],
      frame: udp(1),
      expected: 1,
    },
  ];
  for (const { description, prog, frame, expected } of table) {
    it(description, function () {
      assert.equal(new BpfProgram(assemble(prog)).run(frame, 0, frame.length, HOST), expected);
    });
  }

  it('runs on a frame inside a larger buffer without reading outside it', function () {
    const f = udp(53);
    const buf = new Uint8Array(200).fill(0xee);
    buf.set(f, 100);
    const p = new BpfProgram(assemble([stmt(L.LD | L.B | L.ABS, 60), stmt(L.RET | L.K, 1)]));
    assert.equal(p.run(buf, 100, f.length, HOST), 0, 'byte 60 of a 60-byte frame is out of bounds');
  });

  it('refuses programs the kernel would refuse', function () {
    assert.throws(() => new BpfProgram(assemble([stmt(L.LD | L.W | L.LEN)])), /last instruction/);
  });

  it('refuses ancillary loads the kernel knows but it does not model, rather than run them', function () {
    const p = assemble([stmt(L.LD | L.W | L.ABS, SKF_AD_OFF + 44 /* SKF_AD_VLAN_TAG */), stmt(L.RET | L.A)]);
    assert.equal(checkProgram(p), null);
    assert.throws(() => new BpfProgram(p), /SKF_AD_OFF\+44 is not modelled/);
  });

  it('counts the instructions the latest run executed, return included', function () {
    const p = new BpfProgram(
      assemble([
        stmt(L.LD | L.H | L.ABS, 12),
        jump(L.JMP | L.JEQ | L.K, 0x0800, 0, 2),
        stmt(L.LD | L.B | L.ABS, 23),
        stmt(L.RET | L.A),
        stmt(L.RET | L.K, 0),
      ]),
    );
    assert.equal(p.steps, 0);
    assert.equal(p.run(udp(1), 0, 60, HOST), 17);
    assert.equal(p.steps, 4, 'ldh, jeq, ldb, ret');
    const arp = udp(1);
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert.equal(p.run(arp, 0, 60, HOST), 0);
    assert.equal(p.steps, 3, 'ldh, jeq jumps over two, ret');
    assert.equal(p.run(udp(1), 0, 12, HOST), 0);
    assert.equal(p.steps, 1, 'an out-of-bounds load ends the program');
  });

  it('never throws and always ends, on any accepted program and frame', function () {
    const codes = [0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x01, 0x81, 0xb1, 0x02, 0x04, 0x0c, 0x14, 0x24, 0x34, 0x3c, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94, 0x9c, 0xa4, 0x05, 0x15, 0x1d, 0x25, 0x35, 0x45, 0x06, 0x16, 0x07, 0x87];
    const insn = fc.record({
      code: fc.constantFrom(...codes),
      jt: fc.integer({ min: 0, max: 4 }),
      jf: fc.integer({ min: 0, max: 4 }),
      k: fc.oneof(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 0xffffffff })),
    });
    const prog = fc.array(insn, { maxLength: 12 }).map((body) => assemble([...body, stmt(L.RET | L.A)]));
    fc.assert(
      fc.property(prog, fc.uint8Array({ maxLength: 120 }), (p, frame) => {
        fc.pre(checkProgram(p) === null && unsupportedAncillary(p) === null);
        const bp = new BpfProgram(p);
        const v = bp.run(frame, 0, frame.length, HOST);
        assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
        assert.ok(bp.steps >= 1 && bp.steps <= p.length / 8, 'each instruction runs at most once');
      }),
      { numRuns: 500 },
    );
  });
});
