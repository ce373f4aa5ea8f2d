/**
 * The classic BPF socket filter of a director's slice. Owns the compiler that
 * turns (buckets, sense, owned ranges, NAT real servers) into a program for
 * the AF_PACKET socket, the encoding of `struct sock_filter`, and a
 * `tcpdump -d` style disassembler. Pure: it does not attach the program
 * (native/ does, atomically with SO_ATTACH_FILTER on the open socket) and it
 * does not decide the allocation (the coordinator does).
 *
 * Safety rule: the program never drops a frame the engine on this director
 * would forward (core/engine.ts re-checks the slice on every frame anyway).
 * It drops the TCP/UDP frames it can prove belong to another director's
 * slice, and frames that are not PACKET_HOST. Everything it cannot classify
 * (ARP, VLAN-tagged frames, ICMP, IPv6 extension headers, non-first
 * fragments, other protocols) is accepted for user space to decide.
 *
 * Program layout (docs/filter.md has an annotated listing):
 *   ldh [type]; jeq #PACKET_HOST            non-HOST (outgoing, multicast, other host) -> drop
 *   ldh [12]; jeq #0x800 / #0x86dd          other EtherTypes -> accept
 *   IPv4: ldb [23] TCP/UDP else accept; ldh [20] jset #0x1fff -> accept (non-first fragment);
 *         ldxb 4*([14]&0xf); NAT real server check on ld [26] / ldh [x+14]; key load
 *   IPv6: ldb [20] TCP/UDP else accept; NAT real server check on ld [22..34] / ldh [54]; key load
 *   key check (A = key): binary search over the owned ranges, or a bit-test
 *   decision diagram (whichever is shorter); ret #0x40000 / ret #0.
 *
 * Sources: Documentation/networking/filter.rst (instruction set, ancillary
 * loads, 4096-instruction limit, 8-bit jt/jf), libpcap's bpf_image (listing
 * format), net/core/filter.c bpf_check_classic (what the kernel accepts).
 */
import { ErrorCode, MAX_BUCKETS, SENSE_NAMES, SaruError, Sense } from '../core/index.js';
import {
  BPF_MAXINSNS,
  Bpf,
  SKF_AD_OFF as SKF_AD_OFF_SIGNED,
  SKF_AD_PKTTYPE,
  SKF_AD_PROTOCOL,
  assemble,
  disassemble,
  type BpfInsn,
} from '../native/index.js';

// The instruction set and the `struct sock_filter` layout are defined once, in
// native/bpf.ts (checked there against the C layout); re-exported for callers of this module.
export { BPF_MAXINSNS, Bpf, SKF_AD_PKTTYPE, SKF_AD_PROTOCOL };

/** One instruction, `struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }` (native's BpfInsn). */
export type SockFilter = BpfInsn;

/** Base of the ancillary ("magic offset") loads as the u32 a `k` holds: SKF_AD_OFF = -0x1000. */
export const SKF_AD_OFF = SKF_AD_OFF_SIGNED >>> 0;
/** pkt_type of a frame addressed to this host's MAC (linux/if_packet.h). */
export const PACKET_HOST = 0;
/** Bytes per `struct sock_filter`. */
export const SOCK_FILTER_SIZE = 8;
/** Return value that accepts the whole frame (what libpcap uses for snaplen 262144). */
export const FILTER_ACCEPT = 0x40000;
/** Return value that drops the frame. */
export const FILTER_DROP = 0;

/**
 * Encode instructions as the kernel's `struct sock_filter` array, 8 bytes
 * each in host byte order (native/'s assemble), after checking every field
 * fits its C type.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT when a field is out of its range.
 */
export function encodeInsns(insns: readonly SockFilter[]): Uint8Array {
  insns.forEach((ins, i) => {
    if (!u(ins.code, 0xffff) || !u(ins.jt, 0xff) || !u(ins.jf, 0xff) || !u(ins.k, 0xffffffff)) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `BPF instruction ${i} has a field out of range: ${JSON.stringify(ins)}`);
    }
  });
  return assemble(insns);
}

/**
 * Decode a `struct sock_filter` array (host byte order).
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT when the length is not a multiple of 8.
 */
export function decodeInsns(prog: Uint8Array): SockFilter[] {
  if (prog.length % SOCK_FILTER_SIZE !== 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `a BPF program is a multiple of 8 bytes, got ${prog.length}`);
  }
  return disassemble(prog);
}

function u(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

// ---------------------------------------------------------------------------
// Disassembler (libpcap bpf_image format, as `tcpdump -d` prints)
// ---------------------------------------------------------------------------

const ANCILLARY_NAMES: Record<number, string> = {
  0: 'proto',
  4: 'type',
  8: 'ifidx',
  20: 'rxhash',
  24: 'cpu',
  28: 'vlan_tci',
  32: 'poff',
  36: 'vlan_avail',
  44: 'vlan_tpid',
  48: 'rand',
};

function hex(k: number): string {
  return `#0x${k.toString(16)}`;
}

/** One instruction as text: [mnemonic, operand]; jumps are handled by the caller. */
function image(ins: SockFilter, pc: number): [string, string] {
  const { code, k } = ins;
  const cls = code & 0x07;
  const size = code & 0x18;
  const sz = size === Bpf.W ? '' : size === Bpf.H ? 'h' : size === Bpf.B ? 'b' : '?';
  switch (cls) {
    case Bpf.LD: {
      const mode = code & 0xe0;
      if (mode === Bpf.ABS) {
        if (k >= SKF_AD_OFF) return [`ld${sz}`, `[${ANCILLARY_NAMES[k - SKF_AD_OFF] ?? `ad+${k - SKF_AD_OFF}`}]`];
        return [`ld${sz}`, `[${k}]`];
      }
      if (mode === Bpf.IND) return [`ld${sz}`, `[x + ${k}]`];
      if (mode === Bpf.IMM) return ['ld', hex(k)];
      if (mode === Bpf.MEM) return ['ld', `M[${k}]`];
      if (mode === Bpf.LEN) return ['ld', '#pktlen'];
      break;
    }
    case Bpf.LDX: {
      const mode = code & 0xe0;
      if (mode === Bpf.MSH && size === Bpf.B) return ['ldxb', `4*([${k}]&0xf)`];
      if (mode === Bpf.IMM) return ['ldx', hex(k)];
      if (mode === Bpf.MEM) return ['ldx', `M[${k}]`];
      if (mode === Bpf.LEN) return ['ldx', '#pktlen'];
      break;
    }
    case Bpf.ST:
      return ['st', `M[${k}]`];
    case Bpf.STX:
      return ['stx', `M[${k}]`];
    case Bpf.ALU: {
      const op = code & 0xf0;
      const names: Record<number, string> = {
        [Bpf.ADD]: 'add',
        [Bpf.SUB]: 'sub',
        [Bpf.MUL]: 'mul',
        [Bpf.DIV]: 'div',
        [Bpf.OR]: 'or',
        [Bpf.AND]: 'and',
        [Bpf.LSH]: 'lsh',
        [Bpf.RSH]: 'rsh',
        [Bpf.MOD]: 'mod',
        [Bpf.XOR]: 'xor',
      };
      if (op === Bpf.NEG) return ['neg', ''];
      const name = names[op];
      if (name !== undefined) return [name, (code & Bpf.X) !== 0 ? 'x' : hex(k)];
      break;
    }
    case Bpf.JMP: {
      const op = code & 0xf0;
      if (op === Bpf.JA) return ['ja', `${pc + 1 + k}`];
      const names: Record<number, string> = { [Bpf.JEQ]: 'jeq', [Bpf.JGT]: 'jgt', [Bpf.JGE]: 'jge', [Bpf.JSET]: 'jset' };
      const name = names[op];
      if (name !== undefined) return [name, (code & Bpf.X) !== 0 ? 'x' : hex(k)];
      break;
    }
    case Bpf.RET:
      if ((code & 0x18) === Bpf.A) return ['ret', ''];
      if ((code & 0x18) === Bpf.K) return ['ret', `#${k}`];
      break;
    case Bpf.MISC:
      if ((code & 0xf8) === Bpf.TAX) return ['tax', ''];
      if ((code & 0xf8) === Bpf.TXA) return ['txa', ''];
      break;
  }
  return ['unimp', `0x${code.toString(16)}`];
}

/**
 * The program as `tcpdump -d` prints it (libpcap's bpf_image): one line per
 * instruction, `(NNN) op operand`, conditional jumps with absolute targets
 * `jt T  jf F`. Ancillary loads print as `[type]`, `[proto]`, ...
 * Accepts the encoded bytes (host order) or decoded instructions.
 */
export function formatProgram(prog: Uint8Array | readonly SockFilter[]): string {
  const insns = prog instanceof Uint8Array ? decodeInsns(prog) : prog;
  const lines: string[] = [];
  insns.forEach((ins, pc) => {
    const [op, operand] = image(ins, pc);
    const isCond = (ins.code & 0x07) === Bpf.JMP && (ins.code & 0xf0) !== Bpf.JA;
    const head = `(${String(pc).padStart(3, '0')}) ${op.padEnd(8)} `;
    lines.push(isCond ? `${head}${operand.padEnd(16)} jt ${pc + 1 + ins.jt}\tjf ${pc + 1 + ins.jf}` : `${head}${operand}`.trimEnd());
  });
  return lines.join('\n') + (lines.length > 0 ? '\n' : '');
}

// ---------------------------------------------------------------------------
// Assembler: labels, forward jumps, relaxation of long jumps
// ---------------------------------------------------------------------------

type Label = number;
type Op =
  | { t: 'i'; code: number; k: number }
  | { t: 'j'; code: number; k: number; jt: Label; jf: Label }
  | { t: 'ja'; target: Label };

/**
 * A tiny assembler. Conditional jumps name labels; when a target lies more
 * than 255 instructions ahead, a trampoline follows the jump: a copy of the
 * target's `ret` when the target is one, else `ja` with its 32-bit offset.
 * Sizes only grow while relaxing, so the fixed point is reached. Only forward
 * jumps exist (classic BPF has no others); a backward one is a compiler bug.
 */
class Asm {
  readonly ops: Op[] = [];
  private readonly labelOp: number[] = [];

  label(): Label {
    this.labelOp.push(-1);
    return this.labelOp.length - 1;
  }

  bind(l: Label): void {
    if (this.labelOp[l] !== -1) throw new Error(`BPF assembler: label ${l} bound twice`);
    this.labelOp[l] = this.ops.length;
  }

  insn(code: number, k = 0): void {
    this.ops.push({ t: 'i', code, k: k >>> 0 });
  }

  jmp(code: number, k: number, jt: Label, jf: Label): void {
    if (jt === jf) this.ja(jt);
    else this.ops.push({ t: 'j', code, k: k >>> 0, jt, jf });
  }

  ja(target: Label): void {
    this.ops.push({ t: 'ja', target });
  }

  ret(k: number): void {
    this.insn(Bpf.RET | Bpf.K, k);
  }

  private target(l: Label, from: number): number {
    const i = this.labelOp[l];
    if (i === undefined || i < 0 || i >= this.ops.length) throw new Error(`BPF assembler: label ${l} not bound to an instruction`);
    if (i <= from) throw new Error(`BPF assembler: backward jump from op ${from} to op ${i}`);
    return i;
  }

  /** The `ret` at a label, or undefined. */
  private retAt(opIndex: number): Op | undefined {
    const op = this.ops[opIndex]!;
    return op.t === 'i' && (op.code & 0x07) === Bpf.RET ? op : undefined;
  }

  assemble(): SockFilter[] {
    const ops = this.ops;
    const n = ops.length;
    const tgtT = new Int32Array(n);
    const tgtF = new Int32Array(n);
    const farT = new Uint8Array(n);
    const farF = new Uint8Array(n);
    const size = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op.t === 'j') {
        tgtT[i] = this.target(op.jt, i);
        tgtF[i] = this.target(op.jf, i);
        size[i] = 1;
      } else if (op.t === 'ja') {
        tgtT[i] = this.target(op.target, i);
        // A jump to the very next instruction is no instruction at all.
        size[i] = tgtT[i] === i + 1 ? 0 : 1;
      } else {
        size[i] = 1;
      }
    }
    const pos = new Int32Array(n + 1);
    for (let changed = true; changed; ) {
      changed = false;
      for (let i = 0; i < n; i++) pos[i + 1] = pos[i]! + size[i]!;
      for (let i = 0; i < n; i++) {
        if (ops[i]!.t !== 'j') continue;
        const base = pos[i]! + 1;
        if (!farT[i] && pos[tgtT[i]!]! - base > 255) {
          farT[i] = 1;
          size[i]!++;
          changed = true;
        }
        if (!farF[i] && pos[tgtF[i]!]! - base > 255) {
          farF[i] = 1;
          size[i]!++;
          changed = true;
        }
      }
    }
    const out: SockFilter[] = [];
    const trampoline = (targetOp: number): void => {
      const r = this.retAt(targetOp);
      if (r !== undefined && r.t === 'i') out.push({ code: r.code, jt: 0, jf: 0, k: r.k });
      else out.push({ code: Bpf.JMP | Bpf.JA, jt: 0, jf: 0, k: pos[targetOp]! - (out.length + 1) });
    };
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op.t === 'i') {
        out.push({ code: op.code, jt: 0, jf: 0, k: op.k });
      } else if (op.t === 'ja') {
        if (size[i] === 1) trampoline(tgtT[i]!);
      } else {
        const base = pos[i]! + 1;
        let slot = 0;
        const jt = farT[i] ? slot++ : pos[tgtT[i]!]! - base;
        const jf = farF[i] ? slot++ : pos[tgtF[i]!]! - base;
        out.push({ code: op.code, jt, jf, k: op.k });
        if (farT[i]) trampoline(tgtT[i]!);
        if (farF[i]) trampoline(tgtF[i]!);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// The slice filter
// ---------------------------------------------------------------------------

/** A real server of a NAT (masq) service; frames from it are return traffic. */
export interface NatRealServer {
  family: 4 | 6;
  /** Four words, core/addr.ts layout (IPv4 in word 3). */
  addr: Uint32Array;
  /** Real server port; 0 = any port (port-zero and firewall-mark services, as core/service.ts). */
  port: number;
}

export interface SliceFilterSpec {
  /** Number of buckets: a power of two, 2..65536. */
  buckets: number;
  sense: Sense;
  /** Inclusive bucket ranges, ascending, not overlapping (as SliceFilter.ownedRanges()). */
  owned: Array<[number, number]>;
  /** Real servers of NAT services: frames from them are bucketed by their destination (the client). */
  natRealServers: NatRealServer[];
}

/** How the owned set is tested: nothing to test, a binary search over ranges, or a bit-test diagram. */
export type KeyCheck = 'all' | 'none' | 'ranges' | 'bits-lsb' | 'bits-msb';

export interface SliceFilterProgram {
  insns: SockFilter[];
  /** The key check chosen (the shortest program among those tried). */
  check: KeyCheck;
  /**
   * How NAT real servers with port 0 are handled under src-port: 'check'
   * tests the client key then the source port; 'accept' (only when 'check'
   * would not fit in 4096 instructions) accepts their frames unfiltered.
   */
  anyPortNat: 'check' | 'accept' | 'n/a';
}

/** Ranges per binary-search block: each block ends with its own `ret` pair, so its jumps stay under 256. */
const RANGE_BLOCK = 120;

interface Checker {
  /** Emit code testing A (the unmasked key) against the owned set; ends in jumps to acc/drop. */
  emit(asm: Asm, acc: Label, drop: Label, isLast: boolean): void;
}

/**
 * Compile the slice filter for an AF_PACKET socket (frames from offset 0).
 * Returns `struct sock_filter[]` bytes in host order, ready for SO_ATTACH_FILTER.
 * Identical specs give byte-identical programs.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT for a malformed spec (bucket
 *   count, unsorted or out-of-range owned ranges, bad real server).
 * @throws SaruError SARU_ERR_CAPACITY when no exact program fits in 4096
 *   instructions: more than about 2000 owned ranges that no bit pattern
 *   describes (so only with 4096 buckets or more; any set of 2048 buckets
 *   fits, given a modest list of NAT real servers),
 *   or a very long list of NAT real servers (about 10 instructions per
 *   IPv6 address). The message says how many ranges would fit.
 */
export function compileSliceFilter(spec: SliceFilterSpec): Uint8Array {
  return encodeInsns(buildSliceFilter(spec).insns);
}

/** Options of buildSliceFilter. */
export interface BuildOptions {
  /**
   * Key checks to try (default all three: 'ranges', 'bits-lsb', 'bits-msb');
   * the shortest program wins. For tests and diagnostics.
   */
  checks?: ReadonlyArray<'ranges' | 'bits-lsb' | 'bits-msb'>;
}

/**
 * As compileSliceFilter, but returns the instructions and the choices made
 * (for docs, saruadm and tests). Same errors.
 */
export function buildSliceFilter(spec: SliceFilterSpec, options: BuildOptions = {}): SliceFilterProgram {
  const owned = validate(spec);
  const mask = spec.buckets - 1;
  if (owned.length === 1 && owned[0]![0] === 0 && owned[0]![1] === mask) {
    // Everything sliceable is ours: only the packet type matters.
    const asm = new Asm();
    const acc = asm.label();
    const drop = asm.label();
    asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, SKF_AD_OFF + SKF_AD_PKTTYPE);
    asm.jmp(Bpf.JMP | Bpf.JEQ | Bpf.K, PACKET_HOST, acc, drop);
    asm.bind(acc);
    asm.ret(FILTER_ACCEPT);
    asm.bind(drop);
    asm.ret(FILTER_DROP);
    return { insns: asm.assemble(), check: 'all', anyPortNat: 'n/a' };
  }
  const checkers: Array<[KeyCheck, Checker]> =
    owned.length === 0 ? [['none', { emit: () => undefined }]] : candidateCheckers(owned, spec.buckets, spec.sense, options.checks);
  for (const anyPort of ['check', 'accept'] as const) {
    let best: SliceFilterProgram | undefined;
    let anyPortSeen = false;
    for (const [name, checker] of checkers) {
      const r = generate(spec, owned, checker, name === 'none', anyPort);
      anyPortSeen ||= r.usedAnyPort;
      if (r.insns === null) continue;
      const prog: SliceFilterProgram = { insns: r.insns, check: name, anyPortNat: r.usedAnyPort ? anyPort : 'n/a' };
      // Shortest wins; on a tie the earlier candidate (ranges, then bits-lsb, bits-msb).
      if (best === undefined || prog.insns.length < best.insns.length) best = prog;
    }
    if (best !== undefined) return best;
    if (!anyPortSeen) break; // 'accept' would generate the same programs
  }
  const fit = rangesThatFit(spec);
  const what = `the slice filter for ${owned.length} owned bucket ranges of ${spec.buckets} (sense ${SENSE_NAMES[spec.sense]}) needs more than ${BPF_MAXINSNS} classic BPF instructions`;
  throw new SaruError(
    ErrorCode.CAPACITY,
    fit === 0
      ? `${what}: the checks for ${spec.natRealServers.length} NAT real servers alone do not fit`
      : `${what}; about ${fit} ranges fit with these real servers. Use fewer buckets or a less fragmented allocation.`,
  );
}

/** Validate the spec; returns the owned ranges with adjacent ones merged. */
function validate(spec: SliceFilterSpec): Array<[number, number]> {
  const n = spec.buckets;
  if (!Number.isInteger(n) || n < 2 || n > MAX_BUCKETS || (n & (n - 1)) !== 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `buckets must be a power of two from 2 to ${MAX_BUCKETS}, got ${n}`);
  }
  if (SENSE_NAMES[spec.sense] === undefined) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `unknown sense ${spec.sense}`);
  const out: Array<[number, number]> = [];
  let prev = -1;
  for (const r of spec.owned) {
    const [a, b] = r;
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < a || b >= n) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `owned bucket range [${a}, ${b}] must lie within 0..${n - 1} and ascend`);
    }
    if (a <= prev) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `owned bucket ranges must be sorted and disjoint; [${a}, ${b}] follows ${prev}`);
    }
    const last = out[out.length - 1];
    if (last !== undefined && last[1] + 1 === a) last[1] = b;
    else out.push([a, b]);
    prev = b;
  }
  for (const rs of spec.natRealServers) {
    if ((rs.family !== 4 && rs.family !== 6) || !(rs.addr instanceof Uint32Array) || rs.addr.length < 4 || !u(rs.port, 0xffff)) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `NAT real server must have family 4 or 6, 4 address words and a port 0..65535`);
    }
  }
  return out;
}

function isOwned(owned: Array<[number, number]>, bucket: number): boolean {
  for (const [a, b] of owned) if (bucket >= a && bucket <= b) return true;
  return false;
}

function candidateCheckers(
  owned: Array<[number, number]>,
  buckets: number,
  sense: Sense,
  only: BuildOptions['checks'] = ['ranges', 'bits-lsb', 'bits-msb'],
): Array<[KeyCheck, Checker]> {
  const out: Array<[KeyCheck, Checker]> = [];
  // The key is a 16-bit port for the port senses: with 65536 buckets no AND is needed.
  const keyBits = sense === Sense.SRC_PORT || sense === Sense.DST_PORT ? 16 : 32;
  if (only.includes('ranges')) out.push(['ranges', rangeChecker(owned, buckets - 1, keyBits)]);
  for (const order of ['lsb', 'msb'] as const) {
    const name = order === 'lsb' ? 'bits-lsb' : 'bits-msb';
    if (!only.includes(name)) continue;
    const c = bitChecker(owned, buckets, order);
    if (c !== null) out.push([name, c]);
  }
  return out;
}

/**
 * Binary search over the owned ranges: node `jge #first(mid)` splits the
 * ranges; a leaf checks the last bucket of its range (`jgt #last -> drop`)
 * and, for the lowest range only, its first. Blocks of up to RANGE_BLOCK
 * ranges end in their own `ret` pair, so every jump inside a block is short;
 * jumps between blocks get a `ja`. About 2 instructions per range, and a
 * lookup runs about log2(ranges) + 2 of them.
 */
function rangeChecker(owned: Array<[number, number]>, mask: number, keyBits: number): Checker {
  const JGE = Bpf.JMP | Bpf.JGE | Bpf.K;
  const JGT = Bpf.JMP | Bpf.JGT | Bpf.K;
  const trivial = (i: number, lowerKnown: boolean): boolean =>
    (lowerKnown || owned[i]![0] === 0) && owned[i]![1] === mask;

  function leaf(asm: Asm, i: number, lowerKnown: boolean, acc: Label, drop: Label): void {
    const [a, b] = owned[i]!;
    const needLower = !lowerKnown && a > 0;
    const needUpper = b < mask;
    if (needLower && needUpper) {
      const up = asm.label();
      asm.jmp(JGE, a, up, drop);
      asm.bind(up);
      asm.jmp(JGT, b, drop, acc);
    } else if (needLower) {
      asm.jmp(JGE, a, acc, drop);
    } else {
      asm.jmp(JGT, b, drop, acc);
    }
  }

  /** Ranges lo..hi within one block; `entry` is bound here (it is not trivial). */
  function node(asm: Asm, lo: number, hi: number, lowerKnown: boolean, entry: Label, acc: Label, drop: Label): void {
    asm.bind(entry);
    if (lo === hi) {
      leaf(asm, lo, lowerKnown, acc, drop);
      return;
    }
    const mid = (lo + hi + 1) >> 1;
    const leftTrivial = lo === mid - 1 && trivial(lo, lowerKnown);
    const rightTrivial = mid === hi && trivial(mid, true);
    const left = leftTrivial ? acc : asm.label();
    const right = rightTrivial ? acc : asm.label();
    asm.jmp(JGE, owned[mid]![0], right, left);
    if (!leftTrivial) node(asm, lo, mid - 1, lowerKnown, left, acc, drop);
    if (!rightTrivial) node(asm, mid, hi, true, right, acc, drop);
  }

  function tree(asm: Asm, lo: number, hi: number, lowerKnown: boolean, entry: Label, acc: Label, drop: Label, isLast: boolean): void {
    if (hi - lo + 1 <= RANGE_BLOCK) {
      if (lo === hi && trivial(lo, lowerKnown)) {
        // Only a single range covering every bucket, which buildSliceFilter handles first.
        asm.bind(entry);
        asm.ja(acc);
        return;
      }
      if (isLast) {
        node(asm, lo, hi, lowerKnown, entry, acc, drop);
        return;
      }
      // The block's island: a copy of each outcome's `ret` (or a long `ja` when the
      // outcome is not a `ret`, as in the first of two key checks).
      const a = asm.label();
      const d = asm.label();
      node(asm, lo, hi, lowerKnown, entry, a, d);
      asm.bind(a);
      asm.ja(acc);
      asm.bind(d);
      asm.ja(drop);
      return;
    }
    const mid = (lo + hi + 1) >> 1;
    const left = asm.label();
    const right = asm.label();
    asm.bind(entry);
    asm.jmp(JGE, owned[mid]![0], right, left);
    tree(asm, lo, mid - 1, lowerKnown, left, acc, drop, false);
    tree(asm, mid, hi, true, right, acc, drop, isLast);
  }

  return {
    emit(asm, acc, drop, isLast) {
      if (!(keyBits === 16 && mask === 0xffff)) asm.insn(Bpf.ALU | Bpf.AND | Bpf.K, mask);
      const entry = asm.label();
      tree(asm, 0, owned.length - 1, false, entry, acc, drop, isLast);
    },
  };
}

/**
 * A reduced ordered decision diagram over the key's bits (`jset #bit`), the
 * bits tested from the lowest ('lsb') or the highest ('msb'). Striped sets
 * (every other bucket, bucket % 4 in {0,1}) take a handful of instructions
 * however many ranges they have. Returns null when the diagram alone has
 * more nodes than a program may have instructions.
 */
function bitChecker(owned: Array<[number, number]>, buckets: number, order: 'lsb' | 'msb'): Checker | null {
  const nbits = Math.log2(buckets);
  // f[key] in 0/1; for 'lsb' build the MSB-first diagram of the bit-reversed function.
  const f = new Uint8Array(buckets);
  for (const [a, b] of owned) f.fill(1, a, b + 1);
  let level: Int32Array = new Int32Array(buckets);
  const TERM_DROP = -1;
  const TERM_ACC = -2;
  for (let k = 0; k < buckets; k++) {
    const key = order === 'msb' ? k : reverseBits(k, nbits);
    level[k] = f[key] === 1 ? TERM_ACC : TERM_DROP;
  }
  // nodes[id] = { bit, hi, lo, depth } ; depth: 0 = bottom level.
  const nodes: Array<{ bit: number; hi: number; lo: number; depth: number }> = [];
  for (let d = 0; d < nbits; d++) {
    const unique = new Map<string, number>();
    const next = new Int32Array(level.length >> 1);
    // Variable at depth d: bit d of the index = key bit d ('msb') or key bit nbits-1-d ('lsb').
    const bit = order === 'msb' ? d : nbits - 1 - d;
    for (let k = 0; k < next.length; k++) {
      const lo = level[2 * k]!;
      const hi = level[2 * k + 1]!;
      if (lo === hi) {
        next[k] = lo;
        continue;
      }
      const key = `${lo},${hi}`;
      let id = unique.get(key);
      if (id === undefined) {
        id = nodes.length;
        nodes.push({ bit, hi, lo, depth: d });
        unique.set(key, id);
        if (nodes.length > BPF_MAXINSNS) return null;
      }
      next[k] = id;
    }
    level = next;
  }
  const root = level[0]!;
  return {
    emit(asm, acc, drop) {
      if (root < 0) {
        asm.ja(root === TERM_ACC ? acc : drop);
        return;
      }
      // Emit from the root level down; within a level by id: every edge points forward.
      const ids = nodes.map((_, i) => i).sort((x, y) => nodes[y]!.depth - nodes[x]!.depth || x - y);
      const labels = new Map<number, Label>();
      const lab = (id: number): Label => {
        if (id === TERM_ACC) return acc;
        if (id === TERM_DROP) return drop;
        let l = labels.get(id);
        if (l === undefined) {
          l = asm.label();
          labels.set(id, l);
        }
        return l;
      };
      // Only nodes reachable from the root (the unique tables are per level, so all are, but be exact).
      const reach = new Uint8Array(nodes.length);
      reach[root] = 1;
      for (const id of ids) {
        if (!reach[id]) continue;
        const nd = nodes[id]!;
        if (nd.hi >= 0) reach[nd.hi] = 1;
        if (nd.lo >= 0) reach[nd.lo] = 1;
      }
      for (const id of ids) {
        if (!reach[id]) continue;
        const nd = nodes[id]!;
        asm.bind(lab(id));
        asm.jmp(Bpf.JMP | Bpf.JSET | Bpf.K, 1 << nd.bit, lab(nd.hi), lab(nd.lo));
      }
    },
  };
}

function reverseBits(v: number, n: number): number {
  let r = 0;
  for (let i = 0; i < n; i++) r |= ((v >> i) & 1) << (n - 1 - i);
  return r;
}

/** Where a frame from a NAT real server goes (see generate()). */
type RsTarget = 'accept' | 'drop' | 'nat' | 'dual' | 'normal';

interface RsGroup {
  /** Address words to compare: [v4] or [w0, w1, w2, w3]. */
  words: number[];
  /** Target when the address matches and the port is in `ports` (or any port when `anyPort`). */
  portTarget: Map<number, RsTarget>;
  anyPort: RsTarget | undefined;
  /** Target when the address matches whatever the port (decided before the port test), or undefined. */
  addrTarget: RsTarget | undefined;
}

/**
 * Generate the whole program with one key checker. `insns` is null when the
 * result is longer than BPF_MAXINSNS; `usedAnyPort` tells whether a port-0
 * NAT real server under src-port was met (`anyPortMode` chose what to do with
 * it, see SliceFilterProgram.anyPortNat).
 */
function generate(
  spec: SliceFilterSpec,
  owned: Array<[number, number]>,
  checker: Checker,
  none: boolean,
  anyPortMode: 'check' | 'accept',
): { insns: SockFilter[] | null; usedAnyPort: boolean } {
  const mask = spec.buckets - 1;
  const sense = spec.sense;
  const J = (op: number): number => Bpf.JMP | op | Bpf.K;
  const asm = new Asm();
  const ACCEPT = asm.label();
  const DROP = asm.label();
  const KEY = none ? DROP : asm.label();
  let usedAnyPort = false;

  // Per-family real server groups, sorted by address then port for determinism.
  const groups = (family: 4 | 6): RsGroup[] => {
    const byAddr = new Map<string, { words: number[]; ports: Set<number> }>();
    for (const rs of spec.natRealServers) {
      if (rs.family !== family) continue;
      const words = family === 4 ? [rs.addr[3]! >>> 0] : [0, 1, 2, 3].map((i) => rs.addr[i]! >>> 0);
      const key = words.map((w) => w.toString(16).padStart(8, '0')).join('');
      let g = byAddr.get(key);
      if (g === undefined) {
        g = { words, ports: new Set() };
        byAddr.set(key, g);
      }
      g.ports.add(rs.port);
    }
    const keys = [...byAddr.keys()].sort();
    return keys.map((key) => {
      const g = byAddr.get(key)!;
      const low = g.words[g.words.length - 1]!;
      const out: RsGroup = { words: g.words, portTarget: new Map(), anyPort: undefined, addrTarget: undefined };
      // From (RIP, rport) the frame is NAT return traffic, bucketed by its destination
      // (the client) -- or, if the engine finds a virtual service for its destination,
      // a client->VIP frame bucketed by its source. Accept when either is ours.
      const targetFor = (port: number): RsTarget => {
        if (sense === Sense.DST_PORT || sense === Sense.DST_ADDR) return 'accept';
        if (sense === Sense.SRC_ADDR) return 'nat';
        if (port === 0) {
          usedAnyPort = true;
          return anyPortMode === 'accept' ? 'accept' : 'dual';
        }
        return isOwned(owned, port & mask) ? 'accept' : 'nat';
      };
      if (sense === Sense.SRC_ADDR && isOwned(owned, low & mask)) out.addrTarget = 'accept';
      else if (g.ports.has(0)) out.anyPort = targetFor(0);
      else for (const p of [...g.ports].sort((x, y) => x - y)) out.portTarget.set(p, targetFor(p));
      return out;
    });
  };

  const hasDual = { v: false };
  const natLabels = { 4: asm.label(), 6: asm.label() };
  const dualLabels = { 4: asm.label(), 6: asm.label() };
  const normalLabels = { 4: asm.label(), 6: asm.label() };
  const KEY2 = asm.label();
  const resolve = (family: 4 | 6, t: RsTarget): Label => {
    if (t === 'accept') return ACCEPT;
    if (t === 'drop' || none) return DROP;
    if (t === 'nat') return natLabels[family];
    if (t === 'dual') {
      hasDual.v = true;
      return dualLabels[family];
    }
    return normalLabels[family];
  };

  /** Real server tests for one family; on no match, continue at the normal key load. */
  const emitRsChecks = (family: 4 | 6, gs: RsGroup[]): { nat: boolean; dual: boolean } => {
    const used = { nat: false, dual: false };
    const normal = resolve(family, 'normal');
    const mark = (t: RsTarget): Label => {
      if (!none && t === 'nat') used.nat = true;
      if (!none && t === 'dual') used.dual = true;
      return resolve(family, t);
    };
    // Skip the whole section when every outcome is the normal path's.
    const targets = gs.flatMap((g) => [g.addrTarget, g.anyPort, ...g.portTarget.values()].filter((t) => t !== undefined));
    if (targets.every((t) => resolve(family, t!) === normal)) return used;
    const portOff = family === 4 ? -1 : 54; // -1: IPv4 [x + 14]
    const loadSport = (): void => {
      if (portOff < 0) asm.insn(Bpf.LD | Bpf.H | Bpf.IND, 14);
      else asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, portOff);
    };
    const addrMatched: Label[] = gs.map(() => asm.label());
    if (family === 4) {
      asm.insn(Bpf.LD | Bpf.W | Bpf.ABS, 26);
      gs.forEach((g, i) => {
        const miss = i + 1 < gs.length ? asm.label() : normal;
        const t = g.addrTarget ?? g.anyPort;
        asm.jmp(J(Bpf.JEQ), g.words[0]!, t !== undefined ? mark(t) : addrMatched[i]!, miss);
        if (miss !== normal) asm.bind(miss);
      });
    } else {
      gs.forEach((g, i) => {
        const miss = i + 1 < gs.length ? asm.label() : normal;
        const t = g.addrTarget ?? g.anyPort;
        for (let w = 0; w < 4; w++) {
          asm.insn(Bpf.LD | Bpf.W | Bpf.ABS, 22 + 4 * w);
          const hit = w < 3 ? asm.label() : t !== undefined ? mark(t) : addrMatched[i]!;
          asm.jmp(J(Bpf.JEQ), g.words[w]!, hit, miss);
          if (w < 3) asm.bind(hit);
        }
        if (miss !== normal) asm.bind(miss);
      });
    }
    gs.forEach((g, i) => {
      if (g.addrTarget !== undefined || g.anyPort !== undefined) return;
      asm.bind(addrMatched[i]!);
      loadSport();
      const ports = [...g.portTarget.entries()];
      ports.forEach(([p, t], j) => {
        const miss = j + 1 < ports.length ? asm.label() : normal;
        asm.jmp(J(Bpf.JEQ), p, mark(t), miss);
        if (miss !== normal) asm.bind(miss);
      });
    });
    return used;
  };

  /** Load the key into A for a client->VIP frame (normal) or a NAT return frame (nat). */
  const loadKey = (family: 4 | 6, which: 'normal' | 'nat'): void => {
    const src = which === 'normal';
    if (sense === Sense.SRC_PORT || sense === Sense.DST_PORT) {
      const dst = (sense === Sense.DST_PORT) === src; // nat + src-port -> destination port
      if (family === 4) asm.insn(Bpf.LD | Bpf.H | Bpf.IND, dst ? 16 : 14);
      else asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, dst ? 56 : 54);
    } else {
      const dst = (sense === Sense.DST_ADDR) === src;
      if (family === 4) asm.insn(Bpf.LD | Bpf.W | Bpf.ABS, dst ? 30 : 26);
      else asm.insn(Bpf.LD | Bpf.W | Bpf.ABS, dst ? 50 : 34);
    }
  };

  const familySection = (family: 4 | 6): void => {
    const gs = groups(family);
    const used = emitRsChecks(family, gs);
    if (used.nat) {
      asm.bind(natLabels[family]);
      loadKey(family, 'nat');
      asm.ja(KEY);
    }
    if (used.dual) {
      // Client key first (KEY2); if not ours, the source port (M[0]) through KEY.
      asm.bind(dualLabels[family]);
      if (family === 4) asm.insn(Bpf.LD | Bpf.H | Bpf.IND, 14);
      else asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, 54);
      asm.insn(Bpf.ST, 0);
      if (family === 4) asm.insn(Bpf.LD | Bpf.H | Bpf.IND, 16);
      else asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, 56);
      asm.ja(KEY2);
    }
    asm.bind(normalLabels[family]);
    if (none) {
      asm.ja(DROP);
    } else {
      loadKey(family, 'normal');
      asm.ja(KEY); // no instruction when KEY follows
    }
  };

  const TCP = 6;
  const UDP = 17;
  const ETH = asm.label();
  const V4 = asm.label();
  const T6 = asm.label();
  const V6 = asm.label();
  asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, SKF_AD_OFF + SKF_AD_PKTTYPE);
  asm.jmp(J(Bpf.JEQ), PACKET_HOST, ETH, DROP);
  asm.bind(ETH);
  asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, 12);
  asm.jmp(J(Bpf.JEQ), 0x0800, V4, T6);
  asm.bind(T6);
  asm.jmp(J(Bpf.JEQ), 0x86dd, V6, ACCEPT);

  // IPv4: TCP/UDP, not a non-first fragment.
  {
    const l4 = asm.label();
    const udp = asm.label();
    const frag = asm.label();
    asm.bind(V4);
    asm.insn(Bpf.LD | Bpf.B | Bpf.ABS, 23);
    asm.jmp(J(Bpf.JEQ), TCP, l4, udp);
    asm.bind(udp);
    asm.jmp(J(Bpf.JEQ), UDP, l4, ACCEPT);
    asm.bind(l4);
    asm.insn(Bpf.LD | Bpf.H | Bpf.ABS, 20);
    asm.jmp(J(Bpf.JSET), 0x1fff, ACCEPT, frag);
    asm.bind(frag);
    asm.insn(Bpf.LDX | Bpf.B | Bpf.MSH, 14);
    familySection(4);
  }
  // IPv6: TCP/UDP directly after the fixed header.
  {
    const l4 = asm.label();
    const udp = asm.label();
    asm.bind(V6);
    asm.insn(Bpf.LD | Bpf.B | Bpf.ABS, 20);
    asm.jmp(J(Bpf.JEQ), TCP, l4, udp);
    asm.bind(udp);
    asm.jmp(J(Bpf.JEQ), UDP, l4, ACCEPT);
    asm.bind(l4);
    // The dual path is only known after both sections; the IPv6 normal path jumps to KEY when it exists.
    familySection(6);
  }
  if (hasDual.v) {
    const reload = asm.label();
    asm.bind(KEY2);
    checker.emit(asm, ACCEPT, reload, false);
    asm.bind(reload);
    asm.insn(Bpf.LD | Bpf.MEM, 0);
  }
  if (!none) {
    asm.bind(KEY);
    checker.emit(asm, ACCEPT, DROP, true);
  }
  asm.bind(ACCEPT);
  asm.ret(FILTER_ACCEPT);
  asm.bind(DROP);
  asm.ret(FILTER_DROP);
  const insns = asm.assemble();
  return { insns: insns.length <= BPF_MAXINSNS ? insns : null, usedAnyPort };
}

/** For the capacity message: how many alternating ranges fit with this spec's header and real servers. */
function rangesThatFit(spec: SliceFilterSpec): number {
  let lo = 1;
  let hi = Math.floor(spec.buckets / 2);
  const fits = (r: number): boolean => {
    const owned: Array<[number, number]> = [];
    const stride = Math.floor(spec.buckets / r);
    // Ranges of irregular widths so no bit pattern helps: [i*stride, i*stride + (i % 3 === 0 ? 0 : 1)].
    for (let i = 0; i < r; i++) owned.push([i * stride, i * stride + (stride > 2 && i % 3 !== 0 ? 1 : 0)]);
    return generate(spec, owned, rangeChecker(owned, spec.buckets - 1, 32), false, 'accept').insns !== null;
  };
  if (!fits(lo)) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
