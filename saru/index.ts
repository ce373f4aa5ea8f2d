/**
 * The public surface of saru/ for the other folders (sync/, bench/): the
 * control-socket client and server, the cluster key file loader, the
 * HMAC key and replay window, the configuration file helpers and the logger.
 * Nothing here starts a daemon.
 */
export {
  ControlClient,
  ControlServer,
  FrameReader,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  type ControlHandler,
  type ControlRequest,
  type ControlResponse,
  type Counter,
} from './control.js';
export { loadClusterKey, MAX_KEY_FILE_BYTES, WarnLimiter, closeDgram } from './coord-net.js';
export { MessageKey, ReplayGuard, TAG_BYTES, MIN_KEY_BYTES, type ReplayVerdict } from './coord/auth.js';
export { Prng, TimelineHeap } from './coord/index.js';
export { createLogger, SYSLOG_FACILITIES, type LogInit, type Logger } from './log.js';
