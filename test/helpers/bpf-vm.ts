/**
 * Test-only interpreter of classic BPF socket filters, to run the programs
 * saru/bpf.ts compiles against frames built with PacketBuilder. Owns two
 * things: checkProgram, which refuses what the kernel's bpf_check_classic
 * refuses (net/core/filter.c: length 1..4096, known opcodes, jumps inside the
 * program, scratch cells 0..15 stored before they are loaded on every path,
 * constant division by zero, shifts >= 32, a `ret` last), and runBpf, which
 * executes with the kernel's semantics: big-endian packet loads; a load
 * outside the frame ends the program with 0 (drop); division by X = 0 returns
 * 0; ancillary loads (SKF_AD_OFF + n) give the packet type or protocol passed
 * in. Unknown opcodes and ancillary fields throw, loudly. Not for the data path.
 */
import {
  BPF_MAXINSNS,
  Bpf,
  SKF_AD_OFF,
  SKF_AD_PKTTYPE,
  SKF_AD_PROTOCOL,
  decodeInsns,
  type SockFilter,
} from '../../saru/bpf.js';

export interface BpfRunOptions {
  /** skb->pkt_type for SKF_AD_PKTTYPE: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing. Default 0. */
  pktType?: number;
  /** skb->protocol for SKF_AD_PROTOCOL (EtherType); default the frame's bytes 12..13. */
  protocol?: number;
}

export class BpfVmError extends Error {
  override readonly name = 'BpfVmError';
}

/** Scratch memory cells M[0..15] (BPF_MEMWORDS, linux/filter.h). */
const BPF_MEMWORDS = 16;

const LD_SIZES: Record<number, number> = { [Bpf.W]: 4, [Bpf.H]: 2, [Bpf.B]: 1 };

/** Whether `code` is an instruction this interpreter (and the kernel) knows. */
function known(code: number): boolean {
  const cls = code & 0x07;
  const size = code & 0x18;
  const mode = code & 0xe0;
  switch (cls) {
    case Bpf.LD:
      if (mode === Bpf.ABS || mode === Bpf.IND) return size in LD_SIZES && size !== 0x18;
      return (mode === Bpf.IMM || mode === Bpf.MEM || mode === Bpf.LEN) && size === Bpf.W;
    case Bpf.LDX:
      if (mode === Bpf.MSH) return size === Bpf.B;
      return (mode === Bpf.IMM || mode === Bpf.MEM || mode === Bpf.LEN) && size === Bpf.W;
    case Bpf.ST:
    case Bpf.STX:
      return code === cls;
    case Bpf.ALU: {
      const op = code & 0xf0;
      if ((code & 0x07) !== Bpf.ALU || (code & ~0xff) !== 0) return false;
      if (op === Bpf.NEG) return (code & 0x08) === 0;
      return op <= Bpf.XOR;
    }
    case Bpf.JMP: {
      const op = code & 0xf0;
      if (op === Bpf.JA) return code === (Bpf.JMP | Bpf.JA);
      return op === Bpf.JEQ || op === Bpf.JGT || op === Bpf.JGE || op === Bpf.JSET;
    }
    case Bpf.RET:
      return code === (Bpf.RET | Bpf.K) || code === (Bpf.RET | Bpf.A);
    case Bpf.MISC:
      return code === (Bpf.MISC | Bpf.TAX) || code === (Bpf.MISC | Bpf.TXA);
  }
  return false;
}

/**
 * Refuse a program the kernel would refuse (SO_ATTACH_FILTER -> EINVAL).
 * @throws BpfVmError naming the instruction and the reason.
 */
export function checkProgram(insns: readonly SockFilter[]): void {
  const n = insns.length;
  if (n === 0 || n > BPF_MAXINSNS) throw new BpfVmError(`program length ${n} not in 1..${BPF_MAXINSNS}`);
  for (let pc = 0; pc < n; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    if (!known(code)) throw new BpfVmError(`(${pc}) unknown opcode 0x${code.toString(16)}`);
    const cls = code & 0x07;
    const mode = code & 0xe0;
    if (((cls === Bpf.LD || cls === Bpf.LDX) && mode === Bpf.MEM) || cls === Bpf.ST || cls === Bpf.STX) {
      if (k >= BPF_MEMWORDS) throw new BpfVmError(`(${pc}) scratch cell M[${k}] out of range`);
    }
    if (cls === Bpf.LD && mode === Bpf.ABS && k >= SKF_AD_OFF && k - SKF_AD_OFF !== SKF_AD_PKTTYPE && k - SKF_AD_OFF !== SKF_AD_PROTOCOL) {
      throw new BpfVmError(`(${pc}) ancillary load SKF_AD_OFF+${k - SKF_AD_OFF} not supported by this interpreter`);
    }
    if (cls === Bpf.ALU && (code & Bpf.X) === 0) {
      const op = code & 0xf0;
      if ((op === Bpf.DIV || op === Bpf.MOD) && k === 0) throw new BpfVmError(`(${pc}) division by constant 0`);
      if ((op === Bpf.LSH || op === Bpf.RSH) && k >= 32) throw new BpfVmError(`(${pc}) shift by ${k}`);
    }
    if (cls === Bpf.JMP) {
      if ((code & 0xf0) === Bpf.JA) {
        if (k >= n - pc - 1) throw new BpfVmError(`(${pc}) ja ${k} leaves the program`);
      } else if (pc + 1 + jt >= n || pc + 1 + jf >= n) {
        throw new BpfVmError(`(${pc}) jump jt ${jt} jf ${jf} leaves the program`);
      }
    } else if (jt !== 0 || jf !== 0) {
      // The kernel ignores them; a compiler that sets them has a bug.
      throw new BpfVmError(`(${pc}) jt/jf set on a non-jump instruction`);
    }
  }
  const last = insns[n - 1]!.code;
  if (last !== (Bpf.RET | Bpf.K) && last !== (Bpf.RET | Bpf.A)) throw new BpfVmError('last instruction is not a ret');
  // check_load_and_stores: one bit per cell, valid on every path into each instruction.
  const masks = new Uint16Array(n).fill(0xffff);
  let valid = 0;
  for (let pc = 0; pc < n; pc++) {
    valid &= masks[pc]!;
    const { code, jt, jf, k } = insns[pc]!;
    const cls = code & 0x07;
    if (cls === Bpf.ST || cls === Bpf.STX) valid |= 1 << k;
    else if ((cls === Bpf.LD || cls === Bpf.LDX) && (code & 0xe0) === Bpf.MEM) {
      if ((valid & (1 << k)) === 0) throw new BpfVmError(`(${pc}) M[${k}] may be loaded before it is stored`);
    } else if (cls === Bpf.JMP) {
      if ((code & 0xf0) === Bpf.JA) masks[pc + 1 + k]! &= valid;
      else {
        masks[pc + 1 + jt]! &= valid;
        masks[pc + 1 + jf]! &= valid;
      }
      valid = 0xffff;
    }
  }
}

/**
 * Run a program over one frame (link layer at offset 0). Returns the u32
 * the program returns: 0 drops, anything else accepts that many bytes.
 * Checks the program first (checkProgram).
 * @throws BpfVmError for a program the kernel would refuse.
 */
export function runBpf(prog: readonly SockFilter[] | Uint8Array, pkt: Uint8Array, opts: BpfRunOptions = {}): number {
  const insns = prog instanceof Uint8Array ? decodeInsns(prog) : prog;
  checkProgram(insns);
  return execute(insns, pkt, opts).ret;
}

/** As runBpf, also returning how many instructions ran (for cost tests). The program must be checked already. */
export function execute(insns: readonly SockFilter[], pkt: Uint8Array, opts: BpfRunOptions = {}): { ret: number; steps: number } {
  const len = pkt.length;
  const mem = new Uint32Array(BPF_MEMWORDS);
  let a = 0;
  let x = 0;
  let steps = 0;
  const load = (off: number, size: number): number | undefined => {
    if (off < 0 || off + size > len) return undefined;
    if (size === 1) return pkt[off]!;
    if (size === 2) return (pkt[off]! << 8) | pkt[off + 1]!;
    return ((pkt[off]! << 24) | (pkt[off + 1]! << 16) | (pkt[off + 2]! << 8) | pkt[off + 3]!) >>> 0;
  };
  for (let pc = 0; pc < insns.length; pc++) {
    steps++;
    const { code, jt, jf, k } = insns[pc]!;
    const cls = code & 0x07;
    switch (cls) {
      case Bpf.LD: {
        const mode = code & 0xe0;
        if (mode === Bpf.ABS || mode === Bpf.IND) {
          const size = LD_SIZES[code & 0x18]!;
          if (mode === Bpf.ABS && k >= SKF_AD_OFF) {
            const f = k - SKF_AD_OFF;
            if (f === SKF_AD_PKTTYPE) a = opts.pktType ?? 0;
            else if (f === SKF_AD_PROTOCOL) a = opts.protocol ?? (len >= 14 ? (pkt[12]! << 8) | pkt[13]! : 0);
            else throw new BpfVmError(`(${pc}) ancillary SKF_AD_OFF+${f}`);
            break;
          }
          const off = mode === Bpf.ABS ? k : (x + k) >>> 0;
          const v = load(off, size);
          if (v === undefined) return { ret: 0, steps };
          a = v;
        } else if (mode === Bpf.IMM) a = k;
        else if (mode === Bpf.MEM) a = mem[k]!;
        else if (mode === Bpf.LEN) a = len;
        else throw new BpfVmError(`(${pc}) unknown ld mode 0x${code.toString(16)}`);
        break;
      }
      case Bpf.LDX: {
        const mode = code & 0xe0;
        if (mode === Bpf.MSH) {
          const v = load(k, 1);
          if (v === undefined) return { ret: 0, steps };
          x = (v & 0xf) << 2;
        } else if (mode === Bpf.IMM) x = k;
        else if (mode === Bpf.MEM) x = mem[k]!;
        else if (mode === Bpf.LEN) x = len;
        else throw new BpfVmError(`(${pc}) unknown ldx mode 0x${code.toString(16)}`);
        break;
      }
      case Bpf.ST:
        mem[k] = a;
        break;
      case Bpf.STX:
        mem[k] = x;
        break;
      case Bpf.ALU: {
        const op = code & 0xf0;
        const s = (code & Bpf.X) !== 0 ? x : k;
        switch (op) {
          case Bpf.ADD: a = (a + s) >>> 0; break;
          case Bpf.SUB: a = (a - s) >>> 0; break;
          case Bpf.MUL: a = Math.imul(a, s) >>> 0; break;
          case Bpf.DIV: if (s === 0) return { ret: 0, steps }; a = Math.floor(a / s) >>> 0; break;
          case Bpf.MOD: if (s === 0) return { ret: 0, steps }; a = a % s; break;
          case Bpf.OR: a = (a | s) >>> 0; break;
          case Bpf.AND: a = (a & s) >>> 0; break;
          case Bpf.XOR: a = (a ^ s) >>> 0; break;
          case Bpf.LSH: a = s >= 32 ? 0 : (a << s) >>> 0; break;
          case Bpf.RSH: a = s >= 32 ? 0 : a >>> s; break;
          case Bpf.NEG: a = (-a) >>> 0; break;
          default: throw new BpfVmError(`(${pc}) unknown alu op 0x${code.toString(16)}`);
        }
        break;
      }
      case Bpf.JMP: {
        const op = code & 0xf0;
        if (op === Bpf.JA) {
          pc += k;
          break;
        }
        const s = (code & Bpf.X) !== 0 ? x : k;
        let c: boolean;
        if (op === Bpf.JEQ) c = a === s;
        else if (op === Bpf.JGT) c = a > s;
        else if (op === Bpf.JGE) c = a >= s;
        else if (op === Bpf.JSET) c = (a & s) !== 0;
        else throw new BpfVmError(`(${pc}) unknown jump 0x${code.toString(16)}`);
        pc += c ? jt : jf;
        break;
      }
      case Bpf.RET:
        return { ret: ((code & 0x18) === Bpf.A ? a : k) >>> 0, steps };
      case Bpf.MISC:
        if (code === (Bpf.MISC | Bpf.TAX)) x = a;
        else if (code === (Bpf.MISC | Bpf.TXA)) a = x;
        else throw new BpfVmError(`(${pc}) unknown misc 0x${code.toString(16)}`);
        break;
      default:
        throw new BpfVmError(`(${pc}) unknown class 0x${code.toString(16)}`);
    }
  }
  throw new BpfVmError('ran off the end of the program');
}
