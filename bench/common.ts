/**
 * What the benchmarks share: small helpers for statistics, tables and the
 * machine description. (The testbed guard lives in saru/testbed/guard.ts.)
 * Owns no state.
 */
import os from 'node:os';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Median of the finite values (mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** A Markdown table with padded columns. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]): string => `| ${cols.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The machine a benchmark ran on, for its table and JSON. */
export function machine(): { cpu: string; cores: number; kernel: string; node: string } {
  return { cpu: os.cpus()[0]?.model ?? '?', cores: os.cpus().length, kernel: os.release(), node: process.version };
}
