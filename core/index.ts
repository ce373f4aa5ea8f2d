/**
 * The public surface of core/, the director engine: what saru/, sync/ and
 * bench/ may import. Everything here is pure logic over buffers, driven by an
 * injected clock; nothing opens a socket or reads the wall clock.
 */
export { IpAddress, addrEquals, formatAddr, formatAddrPort, maskAddr, readAddr, writeAddr } from './addr.js';
export { ManualClock, processClock, systemClock, type Clock, type Timers } from './clock.js';
export { Fwd, FWD_IPVSADM_NAME, FWD_LDIRECTORD_NAME, Proto, protoName, type Family } from './constants.js';
export { ErrorCode, SaruError, configError, errorFromCode, type SourceLocation } from './errors.js';
export { FlowKey } from './flow.js';
export { formatMac, parseMac } from './mac.js';
export { NeighbourTable } from './neigh.js';
export { TxBatch, type RxBatch } from './port.js';
export {
  RealServer,
  RealServerRegistry,
  ServiceTable,
  SvcFlag,
  VirtualService,
  describeService,
  type RealServerInit,
  type Scheduler,
  type VirtualServiceInit,
} from './service.js';
export { Stats } from './stats.js';
export { RateEstimator, ESTIMATOR_PERIOD_MS } from './estimator.js';
export {
  MAX_BUCKETS,
  Sense,
  SENSE_NAMES,
  SliceFilter,
  SliceState,
  formatBucketRanges,
  parseBucketRanges,
  parseSense,
  type SliceInit,
} from './slice.js';
export { Engine, EngineCounters, type EngineDeps, type EngineInit, type FwmarkRule, type MidFlowPolicy } from './engine.js';
export * from './packet/index.js';
export * from './conn/index.js';
export { createScheduler, SCHEDULER_NAMES } from './sched/index.js';
export * from './config/index.js';
export {
  formatConnectionList,
  formatLargeNum,
  formatService,
  formatServiceList,
  formatTimeout,
  type ConnListOptions,
  type ConnListRow,
  type ServiceListOptions,
} from './ipvsadm.js';
export { addService, reconcileServices, type ReconcileResult, type ServiceInitPair } from './reconcile.js';
export * from './health/index.js';
