/**
 * Hash functions the IPVS schedulers use, carried over from the kernel with
 * the same constants so that the same inputs give the same buckets:
 * hash_32() (include/linux/hash.h), the 64-bit kernel's hsiphash()
 * (lib/siphash.c: SipHash-1-3 truncated to 32 bits) and the address folding
 * of ip_vs_sh_hashkey/ip_vs_dh_hashkey/ip_vs_mh_hashkey.
 * Owns no state: every function works on its arguments and on scratch
 * buffers the caller allocated once. Nothing here allocates.
 */

/** GOLDEN_RATIO_32 of include/linux/hash.h. */
export const GOLDEN_RATIO_32 = 0x61c88647;

/**
 * The kernel's hash_32(val, bits): the top `bits` bits of val * GOLDEN_RATIO_32 (mod 2^32).
 * `bits` is 1..32.
 */
export function hash32(val: number, bits: number): number {
  return (Math.imul(val, GOLDEN_RATIO_32) >>> 0) >>> (32 - bits);
}

/**
 * The `addr_fold` the IPVS hashing schedulers compute: the IPv4 address, or the
 * XOR of the four 32-bit words of an IPv6 address, in host order (ntohl).
 * XOR commutes with the byte swap, so folding our host-order words gives
 * ntohl() of the kernel's folded network-order value.
 * `words[off..off+3]` follow core/addr.ts (IPv4 in word 3).
 */
export function foldAddr(family: 4 | 6, words: Uint32Array, off: number): number {
  if (family === 4) return words[off + 3]!;
  return (words[off]! ^ words[off + 1]! ^ words[off + 2]! ^ words[off + 3]!) >>> 0;
}

/**
 * A SipHash key: two 64-bit words as four u32 halves
 * [k0 low, k0 high, k1 low, k1 high] (the kernel's key[0], key[1]).
 */
export function sipKey(k0hi: number, k0lo: number, k1hi: number, k1lo: number): Uint32Array {
  return Uint32Array.of(k0lo >>> 0, k0hi >>> 0, k1lo >>> 0, k1hi >>> 0);
}

/** Scratch state for the SipHash functions: v0..v3 as [lo, hi] pairs. One per user, allocated once. */
export function sipState(): Uint32Array {
  return new Uint32Array(8);
}

// State layout: v0 = st[0] lo, st[1] hi; v1 = st[2], st[3]; v2 = st[4], st[5]; v3 = st[6], st[7].

/** One SipRound on 64-bit words held as u32 halves (lib/siphash.c SIPROUND). */
function sipRound(st: Uint32Array): void {
  let v0l = st[0]!, v0h = st[1]!, v1l = st[2]!, v1h = st[3]!;
  let v2l = st[4]!, v2h = st[5]!, v3l = st[6]!, v3h = st[7]!;
  let l: number, h: number;
  // v0 += v1; v1 = rol(v1, 13); v1 ^= v0; v0 = rol(v0, 32)
  l = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (l < v0l ? 1 : 0)) >>> 0;
  v0l = l;
  h = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  l = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  v1l = (l ^ v0l) >>> 0;
  v1h = (h ^ v0h) >>> 0;
  l = v0l;
  v0l = v0h;
  v0h = l;
  // v2 += v3; v3 = rol(v3, 16); v3 ^= v2
  l = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (l < v2l ? 1 : 0)) >>> 0;
  v2l = l;
  h = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  l = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  v3l = (l ^ v2l) >>> 0;
  v3h = (h ^ v2h) >>> 0;
  // v0 += v3; v3 = rol(v3, 21); v3 ^= v0
  l = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (l < v0l ? 1 : 0)) >>> 0;
  v0l = l;
  h = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  l = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  v3l = (l ^ v0l) >>> 0;
  v3h = (h ^ v0h) >>> 0;
  // v2 += v1; v1 = rol(v1, 17); v1 ^= v2; v2 = rol(v2, 32)
  l = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (l < v2l ? 1 : 0)) >>> 0;
  v2l = l;
  h = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  l = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  v1l = (l ^ v2l) >>> 0;
  v1h = (h ^ v2h) >>> 0;
  l = v2l;
  v2l = v2h;
  v2h = l;
  st[0] = v0l; st[1] = v0h; st[2] = v1l; st[3] = v1h;
  st[4] = v2l; st[5] = v2h; st[6] = v3l; st[7] = v3h;
}

/** The SipHash initialisation ("somepseudorandomlygeneratedbytes" XOR key). */
function sipInit(st: Uint32Array, key: Uint32Array): void {
  st[0] = (0x70736575 ^ key[0]!) >>> 0;
  st[1] = (0x736f6d65 ^ key[1]!) >>> 0;
  st[2] = (0x6e646f6d ^ key[2]!) >>> 0;
  st[3] = (0x646f7261 ^ key[3]!) >>> 0;
  st[4] = (0x6e657261 ^ key[0]!) >>> 0;
  st[5] = (0x6c796765 ^ key[1]!) >>> 0;
  st[6] = (0x79746573 ^ key[2]!) >>> 0;
  st[7] = (0x74656462 ^ key[3]!) >>> 0;
}

/** Absorb one 64-bit message word (lo, hi) with `c` compression rounds. */
function sipCompress(st: Uint32Array, ml: number, mh: number, c: number): void {
  st[6] = st[6]! ^ ml;
  st[7] = st[7]! ^ mh;
  for (let i = 0; i < c; i++) sipRound(st);
  st[0] = st[0]! ^ ml;
  st[1] = st[1]! ^ mh;
}

/** Finalisation with `d` rounds; leaves v0^v1^v2^v3 in st[0] (lo) and st[1] (hi). */
function sipFinish(st: Uint32Array, d: number): void {
  st[4] = st[4]! ^ 0xff;
  for (let i = 0; i < d; i++) sipRound(st);
  st[0] = st[0]! ^ st[2]! ^ st[4]! ^ st[6]!;
  st[1] = st[1]! ^ st[3]! ^ st[5]! ^ st[7]!;
}

/**
 * SipHash-c-d of `len` bytes of `data` (from offset 0) under `key`: the
 * general form, used to check the implementation against the published
 * test vectors (SipHash-2-4 as siphash(), SipHash-1-3 as the 64-bit kernel's
 * hsiphash()). The 64-bit result is left in st[0] (low half) and st[1] (high half);
 * the low half is returned. Does not allocate.
 */
export function siphashBytes(
  data: Uint8Array,
  len: number,
  key: Uint32Array,
  cRounds: number,
  dRounds: number,
  st: Uint32Array,
): number {
  sipInit(st, key);
  const whole = len - (len & 7);
  let o = 0;
  for (; o < whole; o += 8) {
    const ml = (data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24)) >>> 0;
    const mh = (data[o + 4]! | (data[o + 5]! << 8) | (data[o + 6]! << 16) | (data[o + 7]! << 24)) >>> 0;
    sipCompress(st, ml, mh, cRounds);
  }
  // Last block: remaining bytes, little endian, with len << 56 in the top byte.
  let bl = 0;
  let bh = (len & 0xff) << 24;
  const left = len & 7;
  for (let i = 0; i < left; i++) {
    const byte = data[o + i]!;
    if (i < 4) bl |= byte << (8 * i);
    else bh |= byte << (8 * (i - 4));
  }
  sipCompress(st, bl >>> 0, bh >>> 0, cRounds);
  sipFinish(st, dRounds);
  return st[0]!;
}

/**
 * The kernel's hsiphash() of one u32 on a 64-bit kernel (hsiphash_1u32,
 * equal to hsiphash(&v, 4, key) on little-endian machines): SipHash-1-3 of
 * the 4 little-endian bytes of `v`, truncated to its low 32 bits.
 * This is what ip_vs_mh.c hashes. Does not allocate.
 */
export function hsiphash32(v: number, key: Uint32Array, st: Uint32Array): number {
  sipInit(st, key);
  // No whole 8-byte block; the final block is b = (4 << 56) | v.
  sipCompress(st, v >>> 0, 0x04000000, 1);
  sipFinish(st, 3);
  return st[0]!;
}
