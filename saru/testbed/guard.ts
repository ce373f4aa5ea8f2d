/**
 * The guard of a program that builds a namespace testbed (the benchmarks,
 * `npm start`): cleanup() tears the testbed down once, and SIGINT, SIGTERM
 * and SIGHUP tear it down too (twice, to catch namespaces an up() in
 * progress created after the first pass) before the process exits. Owns
 * only its signal handlers; the testbed is the caller's.
 */
import type { Testbed } from './testbed.js';

export interface TestbedGuardOptions {
  /** Exit status after a signal's teardown (default 130, as a shell reports SIGINT). */
  exitCode?: number;
  /** Called at once when the first signal arrives, before the teardown (e.g. restore the terminal). */
  onSignal?: (signal: NodeJS.Signals) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class TestbedGuard {
  private tb: Testbed | null = null;
  private teardown: Promise<void> | null = null;
  /** A signal arrived: stop starting new work. */
  interrupted = false;

  /**
   * @param prefix the testbed's prefix, for the manual teardown command printed when the teardown fails
   * @param progress where progress lines go (one line per call, no newline)
   */
  constructor(
    private readonly prefix: string,
    private readonly progress: (line: string) => void,
    opts: TestbedGuardOptions = {},
  ) {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        if (this.interrupted) return;
        this.interrupted = true;
        opts.onSignal?.(sig);
        progress(`${sig}: tearing the testbed down`);
        void (async () => {
          await this.cleanup();
          await sleep(300);
          await this.tb?.down().catch(() => {});
          process.exit(opts.exitCode ?? 130);
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

  /** Forget the testbed without tearing it down (it is kept on purpose); signals then leave it too. */
  release(): void {
    this.tb = null;
    this.teardown = Promise.resolve();
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
