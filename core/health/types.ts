/**
 * Health-check shapes shared by the configuration parsers (ldirectord.cf,
 * keepalived.conf), the pure monitor (core/health/monitor.ts) and the network
 * checkers (saru/health/). Plain data only: no sockets, no timers, no clock.
 *
 * One model covers both tools:
 * - a check **round** makes up to `attempts` tries, `retryDelayMs` apart; the
 *   round succeeds at the first successful try (keepalived's `retry` +
 *   `delay_before_retry`; ldirectord's `checkcount`, tries back to back);
 * - a real server goes down after `failureCount` failed rounds in a row
 *   (ldirectord's `failurecount`; keepalived counts one) and up again after
 *   one successful round;
 * - rounds start every `intervalMs` (ldirectord's `checkinterval`,
 *   keepalived's `delay_loop`), the first one at once.
 * A real server with several checkers (keepalived) is up only while all are up.
 */
import type { ServiceInitPair } from '../reconcile.js';

/** TCP or UDP connect: up when the connection opens (TCP) or no ICMP unreachable comes back (UDP). */
export interface ConnectCheck {
  kind: 'connect';
  protocol: 'tcp' | 'udp';
  /** Port to check; undefined = the real server's port. */
  port?: number;
  /** Address to check; undefined = the real server's address (keepalived `connect_ip`). */
  address?: string;
  /** Local address to bind (keepalived `bindto`). */
  bindTo?: string;
  /** UDP: payload to send (keepalived UDP_CHECK `payload`, hex); default one zero byte. */
  payload?: Uint8Array;
  /** UDP: down unless a reply arrives (keepalived `require_reply`). Default false. */
  requireReply?: boolean;
  /** ms. */
  timeoutMs: number;
}

/** One URL of an HTTP(S) check (keepalived `url { }`; ldirectord has exactly one). */
export interface HttpUrl {
  /** Request path, starting with "/". */
  path: string;
  /** Accepted status codes as inclusive ranges; default [[200, 299]]. */
  statusCodes?: Array<[number, number]>;
  /** Lower-case hex MD5 of the body (keepalived `digest`, genhash's output). */
  digest?: string;
  /** Regular-expression source the body must match (ldirectord `receive`, keepalived `regex`). */
  receive?: string;
  /** Host header for this URL (keepalived per-url `virtualhost`). */
  virtualHost?: string;
}

/**
 * HTTP or HTTPS request (ldirectord `negotiate` with service=http/https,
 * keepalived HTTP_GET / SSL_GET). Certificates are not verified, as in both tools.
 */
export interface HttpCheck {
  kind: 'http';
  tls: boolean;
  method: 'GET' | 'HEAD';
  port?: number;
  address?: string;
  bindTo?: string;
  /** Host header (ldirectord `virtualhost`, keepalived `virtualhost`); default the address. */
  virtualHost?: string;
  /** TLS SNI name (keepalived `sni_server_name`). */
  sniServerName?: string;
  /** All must pass. */
  urls: HttpUrl[];
  /** Whole exchange, ms (ldirectord `negotiatetimeout`, keepalived `connect_timeout`). */
  timeoutMs: number;
}

/** SMTP banner + HELO (keepalived SMTP_CHECK; ldirectord negotiate service=smtp). */
export interface SmtpCheck {
  kind: 'smtp';
  port?: number;
  address?: string;
  bindTo?: string;
  /** HELO name; default the director's host name as the checker sees it. */
  helo?: string;
  timeoutMs: number;
}

/** Send a string, expect a regular expression back (ldirectord negotiate service=simpletcp). */
export interface SimpleTcpCheck {
  kind: 'simpletcp';
  port?: number;
  address?: string;
  request: string;
  /** Regular-expression source. */
  receive: string;
  timeoutMs: number;
}

/** ICMP echo (ldirectord `ping`, keepalived PING_CHECK). */
export interface PingCheck {
  kind: 'ping';
  address?: string;
  timeoutMs: number;
}

/**
 * A command (ldirectord `external` / checkcommand, keepalived MISC_CHECK).
 * Exit 0: up. With `dynamicWeight` (keepalived `misc_dynamic`): exit 1 down,
 * 2..255 up with weight = code - 2; otherwise any non-zero exit is down.
 * Killed (process group) and failed when it outlives `timeoutMs`.
 */
export interface ExternalCheck {
  kind: 'external';
  /** argv[0] as written (a path or a name on PATH). */
  command: string;
  /** Arguments. ldirectord appends VIP VPORT RIP RPORT; the parser puts them here. */
  args: string[];
  dynamicWeight: boolean;
  timeoutMs: number;
  /** Run as this user (keepalived `user`), if given; the checker may refuse when not root. */
  user?: string;
}

/** ldirectord `on` (always up) and `off` (always down): no probe runs. */
export interface StaticCheck {
  kind: 'on' | 'off';
}

export type CheckSpec = ConnectCheck | HttpCheck | SmtpCheck | SimpleTcpCheck | PingCheck | ExternalCheck | StaticCheck;

/** One checker on one real server, with its round and failure policy. */
export interface RealServerCheck {
  spec: CheckSpec;
  /**
   * ldirectord's numeric checktype N: N rounds of `connectSpec` then one of
   * `spec`, repeating. Absent otherwise.
   */
  alternate?: { connectSpec: ConnectCheck; connectsPerRound: number };
  /** ms between the starts of two rounds. */
  intervalMs: number;
  /** Tries per round, >= 1. */
  attempts: number;
  /** ms between tries in a round. */
  retryDelayMs: number;
  /** Failed rounds in a row before the real server is down, >= 1. */
  failureCount: number;
}

/** Health settings of one virtual service. */
export interface ServiceHealth {
  /**
   * What happens to a real server that is down: true = weight 0 (quiescent,
   * ldirectord quiescent=yes, keepalived inhibit_on_failure): its connections
   * continue; false = removed from the service and its connections are
   * dropped (expire_nodest_conn).
   */
  quiescent: boolean;
  /** Per real server override of `quiescent` (keepalived's per-real_server inhibit_on_failure), index-aligned with realServers. */
  quiescentPerServer?: boolean[];
  /** Per real server, index-aligned with ServiceInitPair.realServers; [] = not checked (always up). */
  checks: RealServerCheck[][];
  /** Start every real server down until its first successful round (keepalived `alpha`). Default false: up. */
  startDown?: boolean;
}

/** A virtual service as configured: the service model's inits plus where it came from and how it is checked. */
export interface ConfiguredService extends ServiceInitPair {
  /** null = no health checks (every real server always up). */
  health: ServiceHealth | null;
  /** Source location of the service's definition. */
  file: string;
  line: number;
}

/** What one try of a check found. */
export interface CheckOutcome {
  ok: boolean;
  /** A dynamic weight (MISC_CHECK misc_dynamic), applied while up. */
  weight?: number;
  /** Short human reason, for the log ("connect refused", "status 503", "digest mismatch"). */
  reason: string;
}

/** The real server a check probes. */
export interface CheckTarget {
  /** Real server address (canonical text) and port. */
  address: string;
  port: number;
  family: 4 | 6;
  /** The virtual service (ldirectord's external check gets them as arguments). */
  vip?: string;
  vport?: number;
  protocol: 'tcp' | 'udp';
}

/**
 * Runs one try of a check against a real server. Adapters implement it with
 * sockets and child processes (saru/health/); tests with fakes. Must resolve
 * (never reject) within the spec's timeout, or soon after `signal` aborts.
 */
export type CheckRunner = (spec: Exclude<CheckSpec, StaticCheck>, target: CheckTarget, signal: AbortSignal) => Promise<CheckOutcome>;
