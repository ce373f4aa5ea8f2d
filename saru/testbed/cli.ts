/**
 * `npm run testbed -- up|down|status`: the command-line face of the
 * namespace testbed (saru/testbed/testbed.ts). Owns argument parsing and what
 * is printed; everything else is the Testbed's.
 */
import { Command, InvalidArgumentError } from 'commander';
import { relative } from 'node:path';
import { ADDRESSES, MAX_DIRECTORS, MAX_REAL_SERVERS, Testbed, readTestbedSettings, type TestbedInit } from './index.js';

function intIn(min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`expected an integer ${min}..${max}`);
    return Number(v);
  };
}

function weightList(v: string): number[] {
  const parts = v.split(',');
  if (parts.some((p) => !/^\d+$/.test(p.trim()) || Number(p) > 65535)) throw new InvalidArgumentError('expected comma-separated weights 0..65535, e.g. 1,2');
  return parts.map((p) => Number(p));
}

function summary(tb: Testbed): string {
  const a = ADDRESSES;
  const adm = relative(process.cwd(), `${tb.repoRoot}/dist/saru/adm.js`) || 'dist/saru/adm.js';
  const lines = [
    `Testbed "${tb.prefix}" is up (state in ${tb.stateDir}).`,
    '',
    `  ${tb.nsName('switch')}   hub0 (data segment, floods like a hub), clu0 (cluster network)`,
    `  ${tb.nsName('client')}    eth0 ${a.client4}/24 ${a.client6}/64; static neighbour VIP -> ${a.sharedMac}`,
  ];
  for (let i = 1; i <= tb.directors; i++) {
    const d = a.director(i);
    lines.push(
      `  ${tb.nsName('director', i)}   eth0 ${a.sharedMac} ${d.own4} (+DIP ${a.dip4}, ${d.clientNet4}) ${d.own6}; eth1 ${d.cluster4}; ` +
        (tb.startDaemons ? `saru: ${tb.directorDir(i)}/saru.log` : `saru not started (config in ${tb.directorDir(i)})`),
    );
  }
  for (let j = 1; j <= tb.realServers; j++) {
    const r = a.real(j);
    lines.push(`  ${tb.nsName('real', j)}   eth0 ${r.ip4} ${r.ip6}; VIPs on lo; http :80 and udp echo :7; route ${tb.rsRoute}`);
  }
  lines.push(
    '',
    `VIP ${a.vip4} / ${a.vip6}; services (${tb.directorDir(1)}/services.cf):`,
    ...tb
      .servicesText()
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => `  ${l.replace(/\t/g, '    ')}`),
    '',
    'Try:',
    `  ip netns exec ${tb.nsName('client')} curl -s http://${a.vip4}/`,
    `  ip netns exec ${tb.nsName('client')} curl -s http://${a.real(1).ip4}/bytes/1000000 | wc -c`,
    `  ip netns exec ${tb.nsName('director', 1)} node ${adm} --socket ${tb.socketPath(1)} -L -n`,
    `  ip netns exec ${tb.nsName('client')} node ${relative(process.cwd(), `${tb.repoRoot}/dist/saru/testbed/udp-client.js`)} --to ${a.vip4} --payload hello`,
    `  npm run testbed -- status${tb.prefix === 'saru' ? '' : ` --prefix ${tb.prefix}`}`,
    `  npm run testbed -- down${tb.prefix === 'saru' ? '' : ` --prefix ${tb.prefix}`}`,
  );
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('npm run testbed --')
    .description('Saru network-namespace testbed: directors sharing one VIP and MAC on a hub, real servers, a client')
    .showHelpAfterError();

  program
    .command('up')
    .description('build the testbed (tears down an existing one with the same prefix first) and start its programs')
    .option('--prefix <prefix>', 'namespace prefix', 'saru')
    .option('--directors <n>', `directors (1..${MAX_DIRECTORS})`, intIn(1, MAX_DIRECTORS), 3)
    .option('--real-servers <m>', `real servers (1..${MAX_REAL_SERVERS})`, intIn(1, MAX_REAL_SERVERS), 2)
    .option('--fwd <method>', 'forwarding method: gate (DR), masq (NAT), ipip (TUN)', 'gate')
    .option('--rs-route <route>', 'real servers reply: direct (to the client) or director (via the DIP); default director for masq, else direct')
    .option('--scheduler <name>', 'scheduler', 'wrr')
    .option('--weights <list>', 'weights per real server, e.g. 1,2', weightList)
    .option('--ipv6', 'also an IPv6 virtual service', false)
    .option('--udp', 'also a UDP echo virtual service on port 7', false)
    .option('--no-daemons', 'build the topology and real servers only; do not start saru')
    .option('--static', 'static slices (director i of N owns range i) instead of the coordinator', false)
    .option('--sync', 'also run saru-syncd on every director (wait_for_sync = yes)', false)
    .option('--state-dir <dir>', 'state directory (default /run/PREFIX-testbed)')
    .action(async (o: Record<string, unknown>) => {
      const init: TestbedInit = {
        prefix: o.prefix as string,
        directors: o.directors as number,
        realServers: o.realServers as number,
        fwd: o.fwd as TestbedInit['fwd'],
        scheduler: o.scheduler as string,
        ipv6: o.ipv6 as boolean,
        udp: o.udp as boolean,
        startDaemons: o.daemons as boolean,
        slices: o.static ? 'static' : 'coordinator',
        sync: o.sync === true,
        log: (l) => process.stderr.write(`${l}\n`),
      };
      if (o.rsRoute !== undefined) init.rsRoute = o.rsRoute as TestbedInit['rsRoute'];
      if (o.weights !== undefined) init.weights = o.weights as number[];
      if (o.stateDir !== undefined) init.stateDir = o.stateDir as string;
      const tb = new Testbed(init);
      try {
        await tb.up();
      } catch (e) {
        const down = `npm run testbed -- down${tb.prefix === 'saru' ? '' : ` --prefix ${tb.prefix}`}`;
        throw new Error(`${(e as Error).message}\n(what was built is left for inspection; remove it with: ${down})`);
      }
      process.stdout.write(`${summary(tb)}\n`);
    });

  program
    .command('down')
    .description('stop every process the testbed started, delete its namespaces and state directory')
    .option('--prefix <prefix>', 'namespace prefix', 'saru')
    .option('--state-dir <dir>', 'state directory (default /run/PREFIX-testbed)')
    .action(async (o: { prefix: string; stateDir?: string }) => {
      const tb = new Testbed({ prefix: o.prefix, stateDir: o.stateDir, log: (l) => process.stderr.write(`${l}\n`) });
      await tb.down();
      process.stdout.write(`testbed "${tb.prefix}" is down\n`);
    });

  program
    .command('status')
    .description('namespaces, processes and director control sockets')
    .option('--prefix <prefix>', 'namespace prefix', 'saru')
    .option('--state-dir <dir>', 'state directory (default /run/PREFIX-testbed)')
    .option('--json', 'print JSON', false)
    .action(async (o: { prefix: string; stateDir?: string; json: boolean }) => {
      const tb = new Testbed({ prefix: o.prefix, stateDir: o.stateDir });
      const st = await tb.status();
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ...st, settings: readTestbedSettings(tb.stateDir) ?? null }, null, 2)}\n`);
        return;
      }
      if (st.namespaces.length === 0) {
        process.stdout.write(`testbed "${tb.prefix}": down (no namespaces)\n`);
        return;
      }
      const settings = readTestbedSettings(tb.stateDir);
      const lines = [`testbed "${tb.prefix}": ${st.namespaces.length} namespaces (${st.namespaces.join(' ')})`];
      if (settings) lines.push(`  settings: ${JSON.stringify(settings)}`);
      for (const p of st.processes) {
        lines.push(`  ${p.namespace.padEnd(16)} ${p.program.padEnd(5)} pid ${String(p.pid).padEnd(8)} ${p.alive ? 'running' : 'dead   '} log ${p.log}`);
      }
      for (const d of st.directors) {
        lines.push(`  director ${d.index}: ${d.alive ? `saru running (pid ${d.pid})` : 'saru not running'}, control socket ${d.socket ? 'present' : 'absent'} (${d.socketPath})`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  await program.parseAsync(argv);
}

main(process.argv).catch((e: unknown) => {
  process.stderr.write(`testbed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
