/**
 * The public surface of saru/coord/, the coordinator: membership, master
 * election, bucket allocation and the cluster protocol, as pure logic on an
 * injected clock and transport, plus the deterministic simulator that tests
 * it. The daemon wires sockets and timers to it; nothing here does I/O.
 */
export {
  COORD_COUNTERS,
  COORD_DEFAULTS,
  Coordinator,
  MAX_COORD_BUCKETS,
  quorate,
  type CoordCounter,
  type CoordLogger,
  type CoordinatorDeps,
  type CoordinatorInit,
  type CoordinatorStatus,
  type MemberStatus,
  type OwnedSet,
  type Takeover,
  type PersistedState,
} from './coordinator.js';
export { MAX_NODE_ID, MAX_WEIGHT, allocate, countOwners, fromRuns, quotas, toRuns, type AllocMember } from './allocation.js';
export { MIN_KEY_BYTES, MessageKey, REPLAY_WINDOW, ReplayGuard, TAG_BYTES, type ReplayVerdict } from './auth.js';
export {
  EPOCH_ID_SPAN,
  MAGIC,
  MAX_MESSAGE_BYTES,
  MAX_TERM,
  MEMBER_STATE_NAMES,
  MemberState,
  decodeMessage,
  encodeMessage,
  epochMaster,
  epochTerm,
  makeEpoch,
  type AckMsg,
  type AllocationMsg,
  type Body,
  type CodecDropReason,
  type CoordMessage,
  type DecodeResult,
  type Heartbeat,
} from './protocol.js';
export { Prng, TimelineHeap, Simulation, runSimulation, type NetworkParams, type SimOptions, type SimResult, type SimulationInit } from './sim.js';
