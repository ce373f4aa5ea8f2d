/**
 * saruadm's own text formats (the ipvsadm ones are in core/ipvsadm.ts).
 * Pure formatting of what the control socket returns.
 */
import type { ClusterInfo } from './control.js';

/** Human-readable `--cluster` output. */
export function formatCluster(c: ClusterInfo): string {
  const lines = [
    `Node ${c.nodeId}  state ${c.state}  epoch ${c.epoch}  uptime ${(c.uptimeMs / 1000).toFixed(1)} s`,
    `Data interface ${c.interface}  cluster interface ${c.clusterInterface}  io ${c.ioMode}  socket filter ${c.filterInsns ? `${c.filterInsns} insns` : 'none'}`,
    `Sense ${c.sense}  buckets ${c.buckets}  owned ${c.ownedBuckets}: ${c.slice || '(none)'}`,
    `Connections ${c.connections} of ${c.tableCapacity}`,
  ];
  if (c.unresolved.length > 0) lines.push(`Unresolved real servers (no MAC yet): ${c.unresolved.join(' ')}`);
  const row = (title: string, list: Array<{ name: string; value: number }>): void => {
    if (list.length === 0) return;
    lines.push(`${title}:`);
    for (const { name, value } of list) lines.push(`  ${name.padEnd(24)} ${value}`);
  };
  row('Counters', c.counters);
  row('Port', c.port);
  row('Dropped', c.drops);
  return lines.join('\n') + '\n';
}

