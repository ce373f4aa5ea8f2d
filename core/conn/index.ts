/**
 * Public surface of the connection layer: the connection table, the IPVS
 * state machine, sync snapshots and persistence templates. Other folders
 * import from here only.
 */
export {
  ConnTable,
  type ConnTableInit,
  type ConnTableDeps,
  type ConnCounters,
  type ImportRejects,
} from './table.js';
export {
  TcpState,

  TcpDir,
  TCP_STATE_COUNT,
  TCP_STATE_NAMES,
  DEFAULT_TCP_TIMEOUTS_S,
  DEFAULT_UDP_TIMEOUT_S,
  DEFAULT_ICMP_TIMEOUT_S,
  NEW_ENTRY_TIMEOUT_MS,
  TEMPLATE_REARM_MS,
  MAX_TIMEOUT_MS,
  Timeouts,
  type TimeoutsInit,
  tcpEventIndex,
  tcpNextState,
  tcpStateActive,
  stateName,
  stateCount,
} from './states.js';
export { ConnSnapshot, ImportResult } from './snapshot.js';
export { SYNC_RECORD, SYNC_RECORD_FLAG, readSyncRecord, writeSyncRecord, syncRecordView } from './record.js';
export {
  Persistence,
  PERSIST_NO_DEST,
  PERSIST_FULL,
  templateKey,
  type PersistenceInit,
  type PersistenceDeps,
  type PersistenceCounters,
} from './persist.js';
