/**
 * What the testbed benchmarks share: the guard that tears the namespace
 * testbed down on exit and on SIGINT/SIGTERM/SIGHUP, and small helpers for
 * statistics and tables. Owns no testbed itself.
 */
import os from 'node:os';
import type { Testbed } from '../saru/testbed/index.js';

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

/**
 * The testbed a benchmark is using, and its teardown: cleanup() brings it
 * down once (later calls wait for the same teardown); a signal tears it down
 * (twice, to catch namespaces an up() in progress created after the first
 * pass) and exits with 130.
 */
export class TestbedGuard {
  private tb: Testbed | null = null;
  private teardown: Promise<void> | null = null;
  /** A signal arrived: stop starting new work. */
  interrupted = false;

  constructor(
    private readonly prefix: string,
    private readonly progress: (line: string) => void,
  ) {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        if (this.interrupted) return;
        this.interrupted = true;
        progress(`${sig}: tearing the testbed down`);
        void (async () => {
          await this.cleanup();
          await sleep(300);
          await this.tb?.down().catch(() => {});
          process.exit(130);
        })();
      });
    }
  }

  /** The testbed from now on (replacing a torn-down one). */
  use(tb: Testbed): Testbed {
    this.tb = tb;
    this.teardown = null;
    return tb;
  }

  /** Bring the current testbed down (once). */
  cleanup(): Promise<void> {
    if (!this.teardown) {
      const tb = this.tb;
      this.teardown = tb
        ? tb.down().catch((e: Error) => this.progress(`teardown failed: ${e.message}; run: npm run testbed -- down --prefix ${this.prefix}`))
        : Promise.resolve();
    }
    return this.teardown;
  }
}

/** The machine a benchmark ran on, for its table and JSON. */
export function machine(): { cpu: string; cores: number; kernel: string; node: string } {
  return { cpu: os.cpus()[0]?.model ?? '?', cores: os.cpus().length, kernel: os.release(), node: process.version };
}
