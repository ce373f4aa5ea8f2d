/**
 * saruadm's own text formats (the ipvsadm ones are in core/ipvsadm.ts).
 * Pure formatting of what the control socket returns.
 */
import type { RealServerHealth } from '../core/index.js';
import type { ClusterInfo, CoordinatorInfo, SyncInfo } from './control.js';

function age(ms: number): string {
  return ms < 0 ? '-' : ms < 10_000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(0)}s`;
}

/** Epochs are term * 1024 + master id: shown as "term.master", which reads in order. */
export function formatEpoch(epoch: number): string {
  return epoch === 0 ? '0' : `${Math.floor(epoch / 1024)}.${epoch % 1024}`;
}

function coordinatorLines(k: CoordinatorInfo): string[] {
  const lines = [
    `Coordinator: ${k.state}${k.ready ? '' : ' (waiting for sync or join_delay)'}  master ${k.master < 0 ? 'none' : k.master}${k.isMaster ? ' (this node)' : ''}  epoch ${formatEpoch(k.epoch)}${k.acceptedEpoch !== k.epoch ? `  accepted ${formatEpoch(k.acceptedEpoch)}` : ''}  quorum ${k.quorate ? 'yes' : 'NO'}${k.stale ? '  stale' : ''}  lease ${k.leaseMs < 0 ? 'unlimited' : `${Math.round(k.leaseMs)}ms`}`,
    `  keepalive ${k.keepaliveMs}ms  deadtime ${k.deadtimeMs}ms  weight ${k.weight}`,
    '  Node  State    Alive  Weight  Buckets  Applied           Heartbeat  Cluster  Data',
  ];
  for (const m of k.members) {
    lines.push(
      `  ${String(m.id).padStart(4)}${m.self ? '*' : ' '} ${m.state.padEnd(8)} ${(m.alive ? 'yes' : 'NO').padEnd(6)} ${String(m.weight).padStart(6)}  ${String(m.buckets).padStart(7)}  ${formatEpoch(m.appliedEpoch).padEnd(17)} ${age(m.heartbeatAgeMs).padStart(9)}  ${age(m.clusterPathAgeMs).padStart(7)}  ${age(m.dataPathAgeMs).padStart(4)}`,
    );
  }
  return lines;
}

/** Human-readable `--cluster` output. */
export function formatCluster(c: ClusterInfo): string {
  const lines = [
    `Node ${c.nodeId}  state ${c.state}  epoch ${formatEpoch(c.epoch)}  uptime ${(c.uptimeMs / 1000).toFixed(1)} s`,
    `Data interface ${c.interface}  cluster interface ${c.clusterInterface}  io ${c.ioMode}  socket filter ${c.filterInsns ? `${c.filterInsns} insns` : 'none'}`,
    `Sense ${c.sense}  buckets ${c.buckets}  owned ${c.ownedBuckets}: ${c.slice || '(none)'}`,
  ];
  if (c.drainingBuckets > 0) lines.push(`Draining ${c.drainingBuckets} (own connections left: ${c.drainingConnections}): ${c.draining}`);
  if (c.leaseExpired) lines.push('LEASE EXPIRED: forwarding nothing until the coordinator renews it');
  lines.push(`Connections ${c.connections} of ${c.tableCapacity}`);
  if (c.unresolved.length > 0) lines.push(`Unresolved real servers (no MAC yet): ${c.unresolved.join(' ')}`);
  if (c.coordinator) lines.push(...coordinatorLines(c.coordinator));
  const row = (title: string, list: Array<{ name: string; value: number }>): void => {
    if (list.length === 0) return;
    lines.push(`${title}:`);
    for (const { name, value } of list) lines.push(`  ${name.padEnd(24)} ${value}`);
  };
  row('Counters', c.counters);
  row('Port', c.port);
  row('Dropped', c.drops);
  if (c.coordinator) row('Coordinator counters', c.coordinator.counters.filter((x) => x.value !== 0));
  return lines.join('\n') + '\n';
}

/** Preferred per-peer columns of `--sync` (shown when saru-syncd reports them), with short headings. */
const SYNC_PEER_COLUMNS: Array<[string, string]> = [
  ['datagramsReceived', 'DgramsIn'],
  ['entriesReceived', 'EntriesIn'],
  ['duplicates', 'Dups'],
  ['gaps', 'Gaps'],
  ['nacksSent', 'NacksOut'],
  ['nacksReceived', 'NacksIn'],
  ['retransmitted', 'Retrans'],
  ['resyncsServed', 'Resyncs'],
  ['unacked', 'Unacked'],
];

/** Human-readable `saruadm --sync` output: saru-syncd's totals and one line per peer. */
export function formatSync(s: SyncInfo): string {
  const lines = [
    `Sync: node ${s.nodeId}  incarnation ${s.incarnation}  ${s.synced ? 'synced' : 'NOT SYNCED (resync running or pending)'}  saru ${s.directorConnected ? 'connected' : 'NOT CONNECTED'}  epoch ${formatEpoch(s.epoch)}  ${s.mode}`,
  ];
  const width = Math.max(0, ...s.counters.map((c) => c.name.length));
  for (const c of s.counters) lines.push(`  ${c.name.padEnd(width)}  ${c.value}`);
  const cols = SYNC_PEER_COLUMNS.filter(([name]) => s.peers.some((p) => p.counters.some((c) => c.name === name)));
  lines.push(`  Peer  Address                Alive  Heard   ${cols.map(([, h]) => h.padStart(9)).join(' ')}`);
  for (const p of s.peers) {
    const v = (name: string): string => String(p.counters.find((c) => c.name === name)?.value ?? '-');
    lines.push(
      `  ${String(p.nodeId).padStart(4)}  ${p.address.padEnd(21)}  ${(p.alive ? 'yes' : 'NO').padEnd(5)}  ${age(p.lastHeardMs).padStart(5)}   ${cols.map(([name]) => v(name).padStart(9)).join(' ')}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * `saruadm --health`: one block per checked real server (service, real
 * server, UP/DOWN, for how long, dynamic weight), with each checker's last
 * result and its failed rounds in a row. `now` is the clock `since` was read
 * from (ms). With health checks off, says so.
 */
export function formatHealth(rows: readonly RealServerHealth[], now: number, enabled: boolean): string {
  if (!enabled) return 'Health checks: off (health_checks = no): every real server is up\n';
  if (rows.length === 0) return 'Health checks: none configured (checktype=on, or no checkers)\n';
  const out = [`${'Virtual service'.padEnd(26)} ${'Real server'.padEnd(24)} State  Since     Weight  Checks`];
  for (const r of rows) {
    const checks = r.checks.map((c) => `${c.check} ${c.up ? 'up' : 'DOWN'} (${c.lastReason}${c.failures > 0 ? `, ${c.failures} failed` : ''})`).join('; ');
    out.push(
      `${r.service.padEnd(26)} ${r.realServer.padEnd(24)} ${(r.up ? 'UP' : 'DOWN').padEnd(5)}  ${age(now - r.since).padStart(6)}  ${(r.weight === undefined ? '-' : String(r.weight)).padStart(6)}  ${checks}`,
    );
  }
  return out.join('\n') + '\n';
}
