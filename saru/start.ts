/**
 * `npm start`: the demo cluster (issue 7). As root with `ip netns`, a
 * cluster of directors (saru + saru-syncd each) and real servers in network
 * namespaces carries real HTTP traffic from a client namespace through a
 * scripted story (saru/demo/story.ts); otherwise the same story runs in the
 * in-process simulator with the same engine, coordinator and sync code
 * (saru/demo/sim-story.ts), and the first line says so. Shows a live view
 * (in place on a terminal, plain lines otherwise), then the summary; exit
 * status 0 only when nothing was lost and every phase reached its goal.
 * Owns the process's wiring: options, mode, view, signals, exit status.
 * `npm start -- --help` lists the options.
 */
import { findTool, TestbedGuard } from './testbed/index.js';
import { chooseMode, parseDemoOptions } from './demo/options.js';
import { runSimStory } from './demo/sim-story.js';
import { DEMO_PREFIX, runNamespaceStory } from './demo/story.js';
import { exitStatus, summaryJson, summaryLines, type DemoSummary } from './demo/summary.js';
import { LiveView } from './demo/view.js';

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function main(): Promise<number | null> {
  const opts = parseDemoOptions(process.argv);
  const mode = chooseMode(opts, { platform: process.platform, uid: process.getuid?.(), hasIp: findTool('ip') !== undefined });
  const view = new LiveView(process.stdout, process.stdout.isTTY === true && !opts.plain);
  const note = (line: string): void => {
    process.stderr.write(`npm start: ${line}\n`);
  };
  let summary: DemoSummary;
  let keepLines: string[] = [];
  if (mode.kind === 'namespaces') {
    const guard = new TestbedGuard(DEMO_PREFIX, note, { onSignal: () => view.close() });
    try {
      ({ summary, keepLines } = await runNamespaceStory(opts, { now: () => Date.now(), show: (s) => view.update(s), guard }));
    } catch (e) {
      if (guard.interrupted) return null; // the guard tears down and exits (130)
      view.close();
      note(`the demo failed: ${errorText(e)}`);
      return 1;
    }
    if (guard.interrupted) return null;
  } else {
    let interrupted = false;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        if (interrupted) return;
        interrupted = true;
        view.close();
        note(`${sig}: stopping the simulation`);
        process.exit(130);
      });
    }
    try {
      summary = await runSimStory(opts, mode.why, { now: () => Date.now(), show: (s) => view.update(s), interrupted: () => interrupted });
    } catch (e) {
      view.close();
      note(`the simulation failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return 1;
    }
  }
  view.close();
  const out = ['', ...summaryLines(summary), ...(keepLines.length ? ['', ...keepLines] : [])];
  if (opts.json) out.push(JSON.stringify(summaryJson(summary)));
  process.stdout.write(out.join('\n') + '\n');
  return exitStatus(summary);
}

main().then(
  (code) => {
    if (code !== null) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`npm start: ${errorText(e)}\n`);
    process.exitCode = 1;
  },
);
