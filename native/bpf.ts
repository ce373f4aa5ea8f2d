/**
 * Classic BPF (cBPF) programs as the kernel takes them for SO_ATTACH_FILTER:
 * the binary layout of `struct sock_filter`, an assembler and disassembler,
 * the kernel's load-time checks, and an interpreter with the kernel's run-time
 * semantics so an in-memory port (MemoryPort) filters exactly as a packet
 * socket would. Owns encoding and evaluation only; which program to attach
 * (the slice filter) is saru/'s policy, and attaching it is the port's job.
 *
 * Kernel sources: Documentation/networking/filter.rst (instruction set),
 * include/uapi/linux/filter.h and bpf_common.h (layout, opcodes),
 * net/core/filter.c bpf_check_classic() / check_load_and_stores() (checks)
 * and bpf_convert_filter() (run-time semantics: out-of-bounds loads and
 * division by X == 0 end the program with 0, shifts are 32-bit).
 */
import os from 'node:os';

/**
 * `struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }`: 8 bytes,
 * in host byte order (the kernel copies it as-is). Checked against the
 * compiled C layout by test/native/bpf.spec.ts.
 */
export const SOCK_FILTER_LAYOUT = {
  size: 8,
  code: 0,
  jt: 2,
  jf: 3,
  k: 4,
  littleEndian: os.endianness() === 'LE',
} as const;

/** BPF_MAXINSNS: the most instructions a program may have. */
export const BPF_MAXINSNS = 4096;
/** BPF_MEMWORDS: scratch memory slots M[0..15]. */
export const BPF_MEMWORDS = 16;

/** Opcode fields (bpf_common.h, filter.h); combine with `|`. */
export const Bpf = {
  // classes
  LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07,
  // ld/ldx sizes
  W: 0x00, H: 0x08, B: 0x10,
  // ld/ldx modes
  IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, LEN: 0x80, MSH: 0xa0,
  // alu/jmp operations
  ADD: 0x00, SUB: 0x10, MUL: 0x20, DIV: 0x30, OR: 0x40, AND: 0x50, LSH: 0x60, RSH: 0x70, NEG: 0x80,
  MOD: 0x90, XOR: 0xa0,
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40,
  // sources
  K: 0x00, X: 0x08,
  // ret source
  A: 0x10,
  // misc
  TAX: 0x00, TXA: 0x80,
} as const;

/** Negative load offsets (filter.h): ancillary data, network header, link-layer header. */
export const SKF_AD_OFF = -0x1000;
export const SKF_AD_PROTOCOL = 0;
export const SKF_AD_PKTTYPE = 4;
export const SKF_AD_IFINDEX = 8;
export const SKF_NET_OFF = -0x100000;
export const SKF_LL_OFF = -0x200000;

/** One instruction. `k` is a u32 (negative offsets are given as their two's complement or as a negative number). */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** `BPF_STMT(code, k)`. */
export function stmt(code: number, k = 0): BpfInsn {
  return { code, jt: 0, jf: 0, k: k >>> 0 };
}

/** `BPF_JUMP(code, k, jt, jf)`: jt/jf are instructions to skip after this one. */
export function jump(code: number, k: number, jt: number, jf: number): BpfInsn {
  return { code, jt, jf, k: k >>> 0 };
}

/** Encode instructions into the N*8-byte program SO_ATTACH_FILTER takes (host byte order). */
export function assemble(insns: readonly BpfInsn[]): Uint8Array {
  const out = new Uint8Array(insns.length * SOCK_FILTER_LAYOUT.size);
  const dv = new DataView(out.buffer);
  const le = SOCK_FILTER_LAYOUT.littleEndian;
  insns.forEach((ins, i) => {
    const o = i * SOCK_FILTER_LAYOUT.size;
    dv.setUint16(o + SOCK_FILTER_LAYOUT.code, ins.code, le);
    dv.setUint8(o + SOCK_FILTER_LAYOUT.jt, ins.jt);
    dv.setUint8(o + SOCK_FILTER_LAYOUT.jf, ins.jf);
    dv.setUint32(o + SOCK_FILTER_LAYOUT.k, ins.k >>> 0, le);
  });
  return out;
}

/** Decode a program (length must be a multiple of 8; trailing bytes are ignored). */
export function disassemble(prog: Uint8Array): BpfInsn[] {
  const dv = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  const le = SOCK_FILTER_LAYOUT.littleEndian;
  const out: BpfInsn[] = [];
  for (let o = 0; o + 8 <= prog.byteLength; o += 8) {
    out.push({
      code: dv.getUint16(o + SOCK_FILTER_LAYOUT.code, le),
      jt: dv.getUint8(o + SOCK_FILTER_LAYOUT.jt),
      jf: dv.getUint8(o + SOCK_FILTER_LAYOUT.jf),
      k: dv.getUint32(o + SOCK_FILTER_LAYOUT.k, le),
    });
  }
  return out;
}

/** Accepts every frame whole. */
export const ACCEPT_ALL: Uint8Array = assemble([stmt(Bpf.RET | Bpf.K, 0xffffffff)]);
/** Accepts nothing. */
export const ACCEPT_NONE: Uint8Array = assemble([stmt(Bpf.RET | Bpf.K, 0)]);

/**
 * The program's length problem, or null: a whole number of 8-byte
 * instructions, 1..4096 of them. This is all the ports check before the
 * system call; the kernel checks the rest.
 */
export function programLengthError(prog: Uint8Array): string | null {
  if (!(prog instanceof Uint8Array)) return 'a filter program must be a Uint8Array';
  if (prog.byteLength === 0 || prog.byteLength % 8 !== 0)
    return `a filter program is N*8 bytes (struct sock_filter), got ${prog.byteLength} bytes`;
  if (prog.byteLength / 8 > BPF_MAXINSNS)
    return `a filter program has at most ${BPF_MAXINSNS} instructions, got ${prog.byteLength / 8}`;
  return null;
}

const LD_OK = new Set([
  Bpf.LD | Bpf.W | Bpf.ABS, Bpf.LD | Bpf.H | Bpf.ABS, Bpf.LD | Bpf.B | Bpf.ABS,
  Bpf.LD | Bpf.W | Bpf.IND, Bpf.LD | Bpf.H | Bpf.IND, Bpf.LD | Bpf.B | Bpf.IND,
  Bpf.LD | Bpf.W | Bpf.IMM, Bpf.LD | Bpf.W | Bpf.LEN, Bpf.LD | Bpf.W | Bpf.MEM,
  Bpf.LDX | Bpf.W | Bpf.IMM, Bpf.LDX | Bpf.W | Bpf.LEN, Bpf.LDX | Bpf.W | Bpf.MEM, Bpf.LDX | Bpf.B | Bpf.MSH,
  Bpf.ST, Bpf.STX, Bpf.RET | Bpf.K, Bpf.RET | Bpf.A, Bpf.MISC | Bpf.TAX, Bpf.MISC | Bpf.TXA, Bpf.JMP | Bpf.JA,
]);
const ALU_OPS = [Bpf.ADD, Bpf.SUB, Bpf.MUL, Bpf.DIV, Bpf.OR, Bpf.AND, Bpf.LSH, Bpf.RSH, Bpf.MOD, Bpf.XOR];
const JMP_OPS = [Bpf.JEQ, Bpf.JGT, Bpf.JGE, Bpf.JSET];
const VALID_CODES = new Set<number>([
  ...LD_OK,
  Bpf.ALU | Bpf.NEG,
  ...ALU_OPS.flatMap((op) => [Bpf.ALU | op | Bpf.K, Bpf.ALU | op | Bpf.X]),
  ...JMP_OPS.flatMap((op) => [Bpf.JMP | op | Bpf.K, Bpf.JMP | op | Bpf.X]),
]);

/** SKF_AD_* extensions the kernel knows (bpf_anc_helper(), include/linux/filter.h): PROTOCOL 0 .. VLAN_TPID 60. */
const KERNEL_ANCILLARY = new Set([0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60]);

function isCondJump(code: number): boolean {
  return (code & 0x07) === Bpf.JMP && (code & 0xf0) !== Bpf.JA;
}

/**
 * What the kernel's bpf_check_classic() would reject, or null when the
 * program is acceptable: unknown opcodes, division or modulo by constant 0,
 * shifts by 32 or more, scratch slots out of range, jumps out of the program,
 * absolute loads at SKF_AD_OFF or above that name no known extension,
 * a last instruction that is not a return, and scratch slots read before
 * they are written on some path (check_load_and_stores()).
 */
export function checkProgram(prog: Uint8Array): string | null {
  const lenErr = programLengthError(prog);
  if (lenErr) return lenErr;
  const insns = disassemble(prog);
  const n = insns.length;
  for (let pc = 0; pc < n; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    if (!VALID_CODES.has(code)) return `instruction ${pc}: unknown opcode 0x${code.toString(16)}`;
    if ((code === (Bpf.ALU | Bpf.DIV | Bpf.K) || code === (Bpf.ALU | Bpf.MOD | Bpf.K)) && k === 0)
      return `instruction ${pc}: division by constant 0`;
    if ((code === (Bpf.ALU | Bpf.LSH | Bpf.K) || code === (Bpf.ALU | Bpf.RSH | Bpf.K)) && k >= 32)
      return `instruction ${pc}: shift by ${k}`;
    const isMem =
      code === (Bpf.LD | Bpf.W | Bpf.MEM) || code === (Bpf.LDX | Bpf.W | Bpf.MEM) || code === Bpf.ST || code === Bpf.STX;
    if (isMem && k >= BPF_MEMWORDS) return `instruction ${pc}: scratch slot ${k} out of range`;
    if (code === (Bpf.JMP | Bpf.JA) && k >= n - pc - 1) return `instruction ${pc}: jump out of the program`;
    // k compared unsigned: every absolute load at SKF_AD_OFF or above must name a known extension.
    const isAbs = code === (Bpf.LD | Bpf.W | Bpf.ABS) || code === (Bpf.LD | Bpf.H | Bpf.ABS) || code === (Bpf.LD | Bpf.B | Bpf.ABS);
    if (isAbs && k >= SKF_AD_OFF >>> 0 && !KERNEL_ANCILLARY.has(k - (SKF_AD_OFF >>> 0)))
      return `instruction ${pc}: unknown ancillary load SKF_AD_OFF+${k - (SKF_AD_OFF >>> 0)}`;
    if (isCondJump(code) && (pc + jt + 1 >= n || pc + jf + 1 >= n))
      return `instruction ${pc}: jump out of the program`;
  }
  const last = insns[n - 1]!.code;
  if (last !== (Bpf.RET | Bpf.K) && last !== (Bpf.RET | Bpf.A)) return 'the last instruction must be a return';
  // check_load_and_stores(): memory must be written before it is read on every path.
  const masks = new Uint32Array(n).fill(0xffff);
  let valid = 0;
  for (let pc = 0; pc < n; pc++) {
    valid &= masks[pc]!;
    const { code, jt, jf, k } = insns[pc]!;
    if (code === Bpf.ST || code === Bpf.STX) valid |= 1 << k;
    else if (code === (Bpf.LD | Bpf.W | Bpf.MEM) || code === (Bpf.LDX | Bpf.W | Bpf.MEM)) {
      if (!(valid & (1 << k))) return `instruction ${pc}: scratch slot ${k} read before it is written`;
    } else if (code === (Bpf.JMP | Bpf.JA)) {
      masks[pc + 1 + k] &= valid;
      valid = 0xffff;
    } else if (isCondJump(code)) {
      masks[pc + 1 + jt] &= valid;
      masks[pc + 1 + jf] &= valid;
      valid = 0xffff;
    }
  }
  return null;
}

/** Packet metadata the ancillary loads read (SKF_AD_*). */
export interface BpfContext {
  /** skb->protocol: the EtherType, host order. */
  protocol: number;
  /** PACKET_HOST 0, PACKET_BROADCAST 1, PACKET_MULTICAST 2, PACKET_OTHERHOST 3. */
  pktType: number;
  ifindex: number;
}

/** Ancillary offsets BpfProgram models (PROTOCOL, PKTTYPE, IFINDEX); a program using others is refused by its constructor and by MemoryPort. */
export function unsupportedAncillary(prog: Uint8Array): string | null {
  const insns = disassemble(prog);
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, k } = insns[pc]!;
    const mode = code & 0xe0;
    if ((code & 0x07) !== Bpf.LD || (mode !== Bpf.ABS && mode !== Bpf.IND)) continue;
    const sk = k | 0;
    if (sk >= 0 || sk < SKF_LL_OFF) continue;
    if (mode === Bpf.ABS && sk >= SKF_AD_OFF) {
      const ad = sk - SKF_AD_OFF;
      if (ad !== SKF_AD_PROTOCOL && ad !== SKF_AD_PKTTYPE && ad !== SKF_AD_IFINDEX)
        return `instruction ${pc}: ancillary load SKF_AD_OFF+${ad} is not modelled`;
    }
  }
  return null;
}

/**
 * Run a program the kernel would accept (see checkProgram) on frame
 * buf[off .. off+len): returns the kernel's verdict, 0 = drop, otherwise the
 * number of bytes to keep (u32). Frames start at the Ethernet header; the
 * network header is taken to follow 14 bytes later (SKF_NET_OFF).
 * Allocates nothing per call except what the decoded program needs once.
 */
export class BpfProgram {
  /** Instructions executed by the latest run(), return included (for cost tests); 0 before the first run. */
  steps = 0;
  private readonly code: Uint16Array;
  private readonly jt: Uint8Array;
  private readonly jf: Uint8Array;
  private readonly k: Uint32Array;
  private readonly mem = new Uint32Array(BPF_MEMWORDS);

  /**
   * @throws Error with checkProgram()'s message when the kernel would refuse
   * the program, or unsupportedAncillary()'s when it reads an ancillary field
   * this interpreter does not model (rather than give a wrong verdict)
   */
  constructor(prog: Uint8Array) {
    const err = checkProgram(prog) ?? unsupportedAncillary(prog);
    if (err) throw new Error(err);
    const insns = disassemble(prog);
    this.code = Uint16Array.from(insns, (i) => i.code);
    this.jt = Uint8Array.from(insns, (i) => i.jt);
    this.jf = Uint8Array.from(insns, (i) => i.jf);
    this.k = Uint32Array.from(insns, (i) => i.k);
  }

  run(buf: Uint8Array, off: number, len: number, ctx: BpfContext): number {
    let a = 0;
    let x = 0;
    let steps = 0;
    const mem = this.mem;
    for (let pc = 0; ; pc++) {
      steps++;
      const code = this.code[pc]!;
      const k = this.k[pc]!;
      switch (code & 0x07) {
        case Bpf.LD:
        case Bpf.LDX: {
          const mode = code & 0xe0;
          const size = code & 0x18;
          let v: number;
          if (mode === Bpf.IMM) v = k;
          else if (mode === Bpf.LEN) v = len;
          else if (mode === Bpf.MEM) v = mem[k]!;
          else if (mode === Bpf.MSH) {
            if (k >= len) return this.end(0, steps);
            v = (buf[off + k]! & 0x0f) << 2;
          } else {
            const at = mode === Bpf.IND ? (x + (k | 0)) | 0 : k | 0;
            const r = this.load(buf, off, len, at, size, mode === Bpf.ABS, ctx);
            if (r < 0) return this.end(0, steps);
            v = r;
          }
          if ((code & 0x07) === Bpf.LD) a = v >>> 0;
          else x = v >>> 0;
          break;
        }
        case Bpf.ST:
          mem[k] = a;
          break;
        case Bpf.STX:
          mem[k] = x;
          break;
        case Bpf.ALU: {
          const src = code & Bpf.X ? x : k;
          switch (code & 0xf0) {
            case Bpf.ADD: a = (a + src) >>> 0; break;
            case Bpf.SUB: a = (a - src) >>> 0; break;
            case Bpf.MUL: a = Math.imul(a, src) >>> 0; break;
            case Bpf.DIV: if (src === 0) return this.end(0, steps); a = Math.floor(a / src) >>> 0; break;
            case Bpf.MOD: if (src === 0) return this.end(0, steps); a = a % src >>> 0; break;
            case Bpf.OR: a = (a | src) >>> 0; break;
            case Bpf.AND: a = (a & src) >>> 0; break;
            case Bpf.XOR: a = (a ^ src) >>> 0; break;
            case Bpf.LSH: a = src >= 32 ? 0 : (a << src) >>> 0; break;
            case Bpf.RSH: a = src >= 32 ? 0 : a >>> src; break;
            case Bpf.NEG: a = -a >>> 0; break;
          }
          break;
        }
        case Bpf.JMP: {
          const op = code & 0xf0;
          if (op === Bpf.JA) {
            pc += k;
            break;
          }
          const src = code & Bpf.X ? x : k;
          const t =
            op === Bpf.JEQ ? a === src : op === Bpf.JGT ? a > src : op === Bpf.JGE ? a >= src : (a & src) !== 0;
          pc += t ? this.jt[pc]! : this.jf[pc]!;
          break;
        }
        case Bpf.RET:
          return this.end((code & Bpf.A ? a : k) >>> 0, steps);
        case Bpf.MISC:
          if ((code & 0xf8) === Bpf.TXA) a = x;
          else x = a;
          break;
      }
    }
  }

  private end(verdict: number, steps: number): number {
    this.steps = steps;
    return verdict;
  }

  /** Big-endian load of 1, 2 or 4 bytes at a (possibly negative, special) offset; -1 when out of bounds. */
  private load(buf: Uint8Array, off: number, len: number, at: number, size: number, abs: boolean, ctx: BpfContext): number {
    let p = at;
    if (at < 0) {
      if (abs && at >= SKF_AD_OFF) {
        const ad = at - SKF_AD_OFF;
        if (ad === SKF_AD_PROTOCOL) return ctx.protocol & 0xffff;
        if (ad === SKF_AD_PKTTYPE) return ctx.pktType;
        if (ad === SKF_AD_IFINDEX) return ctx.ifindex >>> 0;
        return -1;
      }
      if (at >= SKF_NET_OFF) p = at - SKF_NET_OFF + 14;
      else if (at >= SKF_LL_OFF) p = at - SKF_LL_OFF;
      else return -1;
    }
    const n = size === Bpf.W ? 4 : size === Bpf.H ? 2 : 1;
    if (p < 0 || p + n > len) return -1;
    const i = off + p;
    if (n === 1) return buf[i]!;
    if (n === 2) return (buf[i]! << 8) | buf[i + 1]!;
    return ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
  }
}
