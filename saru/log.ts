/**
 * Logging for the daemons (saru, saru-syncd): one pino root logger per
 * process, children per component. Owns the `--debug` / `--log_facility`
 * semantics of the original saru and ip_vs_user_sync_simple:
 *   --log_facility -         human-readable lines on the terminal (stderr)
 *   --log_facility FACILITY  one JSON object per line on stdout, carrying the
 *                            syslog facility and severity, for journald,
 *                            rsyslog's mmjsonparse or any log shipper
 *   --debug                  debug level instead of info
 * Log state changes, never per-packet events.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { ErrorCode, SaruError } from '../core/index.js';

export type { Logger } from 'pino';

/** syslog(3) facilities, as the original daemons' --log_facility accepted. */
export const SYSLOG_FACILITIES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;

/** pino level -> syslog severity (RFC 5424). */
const SEVERITY: Record<string, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3, fatal: 2 };

export interface LogInit {
  /** Program name (the `name` field; "saru", "saru-syncd"). */
  name: string;
  /** Debug level. */
  debug?: boolean;
  /** "-" for the terminal, else a syslog facility name; default "daemon". */
  facility?: string;
  /** Where JSON lines go (default stdout); for tests. */
  destination?: NodeJS.WritableStream;
}

/**
 * Create the process's root logger.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT for an unknown facility (naming the valid ones).
 */
export function createLogger(init: LogInit): Logger {
  const level = init.debug ? 'debug' : 'info';
  const facility = init.facility ?? 'daemon';
  if (facility === '-') {
    const stream = pretty({ colorize: process.stderr.isTTY === true, destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    return pino({ name: init.name, level }, stream);
  }
  if (!(SYSLOG_FACILITIES as readonly string[]).includes(facility)) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `log facility must be "-" or one of ${SYSLOG_FACILITIES.join(', ')}; got "${facility}"`);
  }
  return pino(
    {
      name: init.name,
      level,
      base: { pid: process.pid, facility },
      formatters: { level: (label) => ({ level: label, severity: SEVERITY[label] ?? 6 }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    init.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
