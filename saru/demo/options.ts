/**
 * `npm start`'s command line: the options of the demo cluster, parsed with
 * commander into plain data (DemoOptions), and where the story will run
 * (namespaces or the simulator, and why). Owns no state and starts nothing.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { SCHEDULER_NAMES } from '../../core/index.js';
import { MAX_DIRECTORS, MAX_REAL_SERVERS } from '../testbed/addresses.js';

export type Forwarding = 'gate' | 'masq' | 'ipip';

/** What the user asked for. Times in seconds as given, plus the derived milliseconds. */
export interface DemoOptions {
  directors: number;
  realServers: number;
  /** Total story length (traffic time), seconds. */
  durationS: number;
  scheduler: string;
  forwarding: Forwarding;
  /** Long-lived keep-alive client connections. */
  connections: number;
  /** Leave the testbed up at the end (namespace mode). */
  keep: boolean;
  /** Run the in-process simulator even as root. */
  sim: boolean;
  /** Print changed lines and events only (no in-place redraw). */
  plain: boolean;
  /** Print the final summary as one JSON line (the last line of stdout). */
  json: boolean;
  /** Seed of the simulator (the same seed replays the same simulated run). */
  seed: number;
}

/** Shortest story: every phase needs a few seconds (connections past the sync threshold, takeover, resync, rejoin). */
export const MIN_DURATION_S = 12;
export const DEFAULT_DURATION_S = 60;

function intIn(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${name} must be an integer ${min}..${max}`);
    return Number(v);
  };
}

/** The commander program (exported so --help's text can be tested). */
export function demoCommand(): Command {
  return new Command('npm start --')
    .description(
      'The Saru demo cluster: directors sharing one VIP forward real HTTP traffic; one is killed, its slice ' +
        'and connections move to the others, it restarts, resyncs and rejoins. Runs in network namespaces as ' +
        'root (the testbed "demo"), otherwise in the in-process simulator (the same engine, coordinator and sync code).',
    )
    .addOption(new Option('--directors <n>', 'directors sharing the VIP').default(3).argParser(intIn('--directors', 2, Math.min(9, MAX_DIRECTORS))))
    .addOption(new Option('--real-servers <n>', 'real servers behind the VIP').default(3).argParser(intIn('--real-servers', 1, Math.min(32, MAX_REAL_SERVERS))))
    .addOption(
      new Option('--duration <seconds>', 'story length (traffic time; building and tearing down the testbed add ~5 s)')
        .default(DEFAULT_DURATION_S)
        .argParser(intIn('--duration', MIN_DURATION_S, 3600)),
    )
    .addOption(new Option('--scheduler <name>', 'scheduler of the virtual service').default('wrr').choices([...SCHEDULER_NAMES]))
    .addOption(new Option('--forwarding <method>', 'gate (direct routing), masq (NAT) or ipip (tunnel)').default('gate').choices(['gate', 'masq', 'ipip']))
    .addOption(new Option('--connections <n>', 'long-lived keep-alive client connections for the whole story').default(200).argParser(intIn('--connections', 1, 5000)))
    .option('--keep', 'leave the testbed up at the end, to explore with saruadm (namespace mode)')
    .option('--sim', 'run the in-process simulator even where namespaces are available')
    .option('--plain', 'no in-place redraw: print changed lines and events only (the default when stdout is not a terminal)')
    .option('--json', 'print the final summary as one JSON line (the last line of stdout)')
    .addOption(new Option('--seed <n>', 'simulator seed (replays a simulated run)').default(7).argParser(intIn('--seed', 0, 2 ** 31)))
    .addHelpText(
      'after',
      '\nExit status: 0 when every phase reached its goal and no connection was lost, 1 otherwise (with the reason),\n' +
        '130 when interrupted. Everything the demo creates is removed on exit (unless --keep), also on Ctrl-C.\n' +
        'Examples:\n' +
        '  npm start\n' +
        '  npm start -- --directors 4 --duration 90 --keep\n' +
        '  npm start -- --sim --plain',
    )
    .showHelpAfterError();
}

/** Parse `argv` (process.argv form). Exits through commander on --help or a bad option. */
export function parseDemoOptions(argv: readonly string[]): DemoOptions {
  const program = demoCommand();
  program.parse([...argv]);
  const o = program.opts<{
    directors: number;
    realServers: number;
    duration: number;
    scheduler: string;
    forwarding: Forwarding;
    connections: number;
    keep?: boolean;
    sim?: boolean;
    plain?: boolean;
    json?: boolean;
    seed: number;
  }>();
  return {
    directors: o.directors,
    realServers: o.realServers,
    durationS: o.duration,
    scheduler: o.scheduler,
    forwarding: o.forwarding,
    connections: o.connections,
    keep: o.keep === true,
    sim: o.sim === true,
    plain: o.plain === true,
    json: o.json === true,
    seed: o.seed,
  };
}

/** Where the story runs. */
export type DemoMode = { kind: 'namespaces' } | { kind: 'simulated'; why: string };

/**
 * Namespaces when root on Linux with `ip`, unless --sim or a forwarding
 * method the testbed's real servers cannot take (ipip: they have no
 * decapsulating tunnel). `env` is injected so tests can ask for any machine.
 */
export function chooseMode(
  opts: Pick<DemoOptions, 'sim' | 'forwarding'>,
  env: { platform: string; uid: number | undefined; hasIp: boolean },
): DemoMode {
  if (opts.sim) return { kind: 'simulated', why: '--sim' };
  if (env.platform !== 'linux') return { kind: 'simulated', why: 'not Linux: no network namespaces' };
  if (env.uid !== 0) return { kind: 'simulated', why: 'not root' };
  if (!env.hasIp) return { kind: 'simulated', why: 'no `ip netns` (iproute2 missing)' };
  if (opts.forwarding === 'ipip') return { kind: 'simulated', why: 'ipip: the testbed\'s real servers cannot decapsulate IP-in-IP' };
  return { kind: 'namespaces' };
}
