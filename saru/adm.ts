#!/usr/bin/env node
/**
 * `saruadm`: the administration tool, as ipvsadm is to IPVS. Talks to one
 * director's control socket:
 *   saruadm [--socket PATH] -L -n [--stats | --rate] [--exact]
 *   saruadm [--socket PATH] -L -n -c
 *   saruadm [--socket PATH] --cluster [--json]
 *   saruadm [--socket PATH] --reload
 *   saruadm [--socket PATH] --health [--json]       (real-server health checks)
 *   saruadm [--sync_socket PATH] --sync [--json]    (asks saru-syncd)
 * Listings are in ipvsadm's format. Exit status 0 on success, 1 on any error
 * (message on stderr).
 */
import { Command } from 'commander';
import { formatCluster, formatSync } from './adm-format.js';
import { ControlClient } from './control.js';

export const DEFAULT_SOCKET = '/run/saru/saru.sock';
/** saru-syncd's status socket (saru-syncd.conf status_socket). */
export const DEFAULT_SYNC_SOCKET = '/run/saru/syncd.sock';

async function main(): Promise<void> {
  const program = new Command('saruadm')
    .description('Saru director administration (ipvsadm-style listings)')
    .option('-s, --socket <path>', 'control socket of the saru daemon', DEFAULT_SOCKET)
    .option('-L, --list', 'list the virtual services (as ipvsadm -L)')
    .option('-l', 'same as -L')
    .option('-n, --numeric', 'numeric output (the only form; accepted for ipvsadm habits)')
    .option('-c, --connection', 'with -L: list the connection table')
    .option('--stats', 'with -L: counters')
    .option('--rate', 'with -L: rates')
    .option('--exact', 'with --stats/--rate: exact numbers')
    .option('--limit <n>', 'with -c: at most n entries', '0')
    .option('--cluster', "this node's slice, epoch, counters, and the cluster's members, master and buckets")
    .option('--sync', "saru-syncd's counters: datagrams and entries per peer, gaps, NACKs, retransmissions, resyncs, auth failures")
    .option('--sync_socket <path>', 'status socket of saru-syncd', DEFAULT_SYNC_SOCKET)
    .option('--health', "the real servers' health checks: state, since when, each check's last result")
    .option('--json', 'with --cluster, --sync or --health: JSON')
    .option('--reload', 're-read the services file (as SIGHUP)')
    .showHelpAfterError();
  program.parse();
  const o = program.opts<{
    socket: string;
    list?: boolean;
    l?: boolean;
    connection?: boolean;
    stats?: boolean;
    rate?: boolean;
    exact?: boolean;
    limit: string;
    cluster?: boolean;
    json?: boolean;
    reload?: boolean;
    sync?: boolean;
    health?: boolean;
    sync_socket: string;
  }>();
  const list = o.list === true || o.l === true;
  if (!list && !o.cluster && !o.reload && !o.sync && !o.health) {
    program.help({ error: true });
  }
  const limit = Number(o.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`--limit must be a non-negative integer, got "${o.limit}"`);
  if (o.sync) {
    const sc = await ControlClient.connect(o.sync_socket);
    try {
      const s = (await sc.request({ syncStatus: {} })).sync!;
      process.stdout.write(o.json ? JSON.stringify(s) + '\n' : formatSync(s));
    } finally {
      sc.close();
    }
    if (!list && !o.cluster && !o.reload && !o.health) return;
  }
  const client = await ControlClient.connect(o.socket);
  try {
    if (o.reload) process.stdout.write((await client.request({ reload: {} })).text ?? '');
    if (o.health) process.stdout.write((await client.request({ healthStatus: { json: o.json === true } })).text ?? '');
    if (o.cluster) {
      const c = (await client.request({ clusterStatus: {} })).cluster!;
      process.stdout.write(o.json ? JSON.stringify(c) + '\n' : formatCluster(c));
    }
    if (list) {
      const res = o.connection
        ? await client.request({ listConnections: { limit } })
        : await client.request({ listServices: { stats: o.stats === true, rate: o.rate === true, exact: o.exact === true } });
      process.stdout.write(res.text ?? '');
    }
  } finally {
    client.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`saruadm: ${e.message}\n`);
  process.exit(1);
});
