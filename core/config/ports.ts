/**
 * Built-in service-name -> port table for configuration files. Owns the names
 * ldirectord.cf users write in `virtual=`, `real=`, `fallback=` and
 * `checkport=`; replaces ldirectord's getservbyname() (which reads
 * /etc/services) so that parsing is pure and needs no system files.
 * Must not read files or resolve anything over the network.
 *
 * Sources: the IANA names in a Debian /etc/services, plus the names
 * ldirectord itself maps in ld_service_to_port (ClusterLabs
 * resource-agents, ldirectord/ldirectord.in): pop, pops, oracle, pgsql,
 * http_proxy, dns.
 */

/** Name -> port. Lower-case keys. */
export const SERVICE_PORTS: ReadonlyMap<string, number> = new Map<string, number>([
  ['ftp-data', 20],
  ['ftp', 21],
  ['ssh', 22],
  ['telnet', 23],
  ['smtp', 25],
  ['domain', 53],
  ['dns', 53],
  ['tftp', 69],
  ['gopher', 70],
  ['finger', 79],
  ['http', 80],
  ['www', 80],
  ['kerberos', 88],
  ['pop3', 110],
  ['pop', 110],
  ['sunrpc', 111],
  ['ident', 113],
  ['auth', 113],
  ['nntp', 119],
  ['ntp', 123],
  ['imap', 143],
  ['imap2', 143],
  ['snmp', 161],
  ['ldap', 389],
  ['https', 443],
  ['microsoft-ds', 445],
  ['syslog', 514],
  ['submission', 587],
  ['ldaps', 636],
  ['rsync', 873],
  ['imaps', 993],
  ['pop3s', 995],
  ['pops', 995],
  ['ms-sql-s', 1433],
  ['oracle', 1521],
  ['radius', 1812],
  ['radius-acct', 1813],
  ['nfs', 2049],
  ['squid', 3128],
  ['http_proxy', 3128],
  ['mysql', 3306],
  ['sip', 5060],
  ['sips', 5061],
  ['postgresql', 5432],
  ['pgsql', 5432],
  ['http-alt', 8080],
  ['webcache', 8080],
]);

/**
 * The port for `text`: a decimal number 0..65535 or a name from SERVICE_PORTS.
 * Returns undefined when it is neither.
 */
export function resolvePort(text: string): number | undefined {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n <= 65535 ? n : undefined;
  }
  return SERVICE_PORTS.get(text.toLowerCase());
}
