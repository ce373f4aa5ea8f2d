/**
 * Public surface of saru/health: the network checkers behind the monitor's
 * CheckRunner (core/health/types.ts) and the saru-genhash output helpers.
 * Re-exports only; no state.
 */
export {
  BODY_LIMIT_BYTES, EXIT_GRACE_MS, PING_KILL_SLACK_MS, REPLY_LIMIT_BYTES,
  createCheckRunner, fetchUrl, hostHeader, socketErrorReason,
} from './checkers.js';
export type { CheckLog, CheckRunnerInit, FetchInit, FetchResponse, FetchResult } from './checkers.js';
export { GENHASH_DEFAULT_TIMEOUT_S, formatGenhash, hexDump, runGenhash } from './genhash.js';
