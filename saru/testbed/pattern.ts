/**
 * The deterministic byte pattern the testbed's real servers send for
 * `GET /bytes/N`: byte k of every response is k mod 251 (a prime, so the
 * period never lines up with segment or buffer sizes and a misplaced or
 * repeated segment shows). Pure; shared by the HTTP server and the tests.
 */

/** Pattern period. */
export const PATTERN_PERIOD = 251;

/** A block of the pattern whose length is a multiple of the period (64256 bytes), sent repeatedly. */
export const PATTERN_BLOCK: Buffer = (() => {
  const b = Buffer.alloc(PATTERN_PERIOD * 256);
  for (let k = 0; k < b.length; k++) b[k] = k % PATTERN_PERIOD;
  return b;
})();

/** Byte `k` of the pattern. */
export function patternByte(k: number): number {
  return k % PATTERN_PERIOD;
}

/**
 * Offset of the first byte of `data` (starting at offset `start` of the
 * stream) that breaks the pattern, or -1 when all match.
 */
export function patternMismatch(data: Uint8Array, start = 0): number {
  for (let k = 0; k < data.length; k++) if (data[k] !== (start + k) % PATTERN_PERIOD) return start + k;
  return -1;
}
