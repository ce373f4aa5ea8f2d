/**
 * `saru --check`: validate a services file without touching the network,
 * like `keepalived -t` or `nginx -t`. Owns the report only: loading and
 * validation are the daemon's own (loadServicesFile, validatedTable), the
 * listing is core/ipvsadm's `ipvsadm -L -n` format with every real server
 * up (before any health check).
 */
import { formatServiceList, loadServicesFile, type ServicesLoadOptions } from '../core/index.js';
import { validatedTable } from './director.js';

export interface CheckReport {
  /** The `ipvsadm -L -n` listing of the services as configured (stdout). */
  listing: string;
  /** One line per note: the summary, then what was ignored (stderr). */
  notes: string[];
}

/**
 * Load and validate `file`; describe what it configures.
 * @throws SaruError SARU_ERR_CONFIG naming the file, the line and the reason.
 */
export function checkServicesFile(file: string, opts: ServicesLoadOptions = {}): CheckReport {
  const loaded = loadServicesFile(file, opts);
  const table = validatedTable(loaded);
  const servers = loaded.services.reduce((n, s) => n + s.realServers.length, 0);
  const checks = loaded.services.reduce((n, s) => n + (s.health?.checks.reduce((m, c) => m + c.filter((x) => x.spec.kind !== 'on').length, 0) ?? 0), 0);
  const notes = [
    `${file}: OK (${loaded.format}): ${loaded.services.length} virtual service${loaded.services.length === 1 ? '' : 's'}, ${servers} real server${servers === 1 ? '' : 's'}, ${checks} health check${checks === 1 ? '' : 's'}${loaded.autoreload ? ', autoreload' : ''}`,
    ...loaded.ignored.map((i) => `${i.file}:${i.line}: ignored: ${i.what}`),
  ];
  return { listing: formatServiceList(table.services), notes };
}
