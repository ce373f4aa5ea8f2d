/**
 * The coordinator's wire messages and their codec. Owns the datagram layout
 * (magic "SC", version 1, one protobuf Envelope from coord.proto, a 32-byte
 * HMAC-SHA256 tag over everything before it), the epoch layout, and the
 * validation of every decoded field. Decoding never throws: a bad datagram
 * yields a drop reason for the caller to count. It keeps no state (replay
 * windows live in auth.ts, used by the coordinator).
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, SaruError } from '../../core/index.js';
import { MAX_NODE_ID, MAX_WEIGHT, fromRuns, toRuns, type AllocMember } from './allocation.js';
import { TAG_BYTES, type MessageKey } from './auth.js';

const root = protobuf.loadSync(fileURLToPath(new URL('../../../saru/coord/coord.proto', import.meta.url)));
const EnvelopeType = root.lookupType('saru.coord.Envelope');

/** First bytes of every datagram: "S", "C", version. */
export const MAGIC = Uint8Array.of(0x53, 0x43, 1);
/** Largest datagram sent or accepted (the UDP/IPv4 payload limit). */
export const MAX_MESSAGE_BYTES = 65507;
/** Shortest possible datagram: magic, an empty envelope, the tag. */
export const MIN_MESSAGE_BYTES = MAGIC.length + TAG_BYTES;
/** Epoch = term * EPOCH_ID_SPAN + master id. */
export const EPOCH_ID_SPAN = MAX_NODE_ID + 1;
/** Largest term: epochs stay below 2^53. */
export const MAX_TERM = Math.floor(Number.MAX_SAFE_INTEGER / EPOCH_ID_SPAN);

/** The term (high part) of an epoch. */
export function epochTerm(epoch: number): number {
  return Math.floor(epoch / EPOCH_ID_SPAN);
}
/** The node that issued an epoch (low 10 bits). */
export function epochMaster(epoch: number): number {
  return epoch % EPOCH_ID_SPAN;
}
/** Build an epoch from a term and the issuing node id. */
export function makeEpoch(term: number, master: number): number {
  return term * EPOCH_ID_SPAN + master;
}

/** A director's state as announced in its heartbeat. */
export const MemberState = { JOINING: 0, ACTIVE: 1, LEAVING: 2 } as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];
export const MEMBER_STATE_NAMES: Record<MemberState, string> = { 0: 'joining', 1: 'active', 2: 'leaving' };

export interface Heartbeat {
  state: MemberState;
  weight: number;
  synced: boolean;
  /** Highest epoch number known, floors included. */
  seenEpoch: number;
  /** Highest epoch known to have been accepted by some node. */
  knownEpoch: number;
  acceptedEpoch: number;
  committedEpoch: number;
  appliedEpoch: number;
  /** Member id lists (each sorted) whose quorum the sender needs. */
  configs: number[][];
  /** Epoch of the newest allocation among them. */
  configsEpoch: number;
}

/** Most configurations a heartbeat may carry. */
export const MAX_CONFIGS = 64;

export interface AllocationMsg {
  epoch: number;
  master: number;
  buckets: number;
  /** Sorted by id. */
  members: AllocMember[];
  /** Owner node id per bucket, -1 for none. */
  owners: Int32Array;
  committed: boolean;
}

export interface AckMsg {
  acceptedEpoch: number;
  appliedEpoch: number;
  /** Member id lists whose quorum the sender needed before accepting. */
  configs: number[][];
  /** Epoch of the newest allocation among them. */
  configsEpoch: number;
}

export type Body =
  | { kind: 'heartbeat'; heartbeat: Heartbeat }
  | { kind: 'allocation'; allocation: AllocationMsg }
  | { kind: 'ack'; ack: AckMsg }
  | { kind: 'commit'; epoch: number };

export interface CoordMessage {
  sender: number;
  incarnation: number;
  seq: number;
  body: Body;
}

/** Why a datagram was dropped by the codec. */
export type CodecDropReason = 'truncated' | 'oversized' | 'bad_magic' | 'bad_mac' | 'malformed';

export type DecodeResult = { ok: true; msg: CoordMessage } | { ok: false; reason: CodecDropReason };

/**
 * Encode and sign a message.
 * @throws SaruError SARU_ERR_CAPACITY when it exceeds MAX_MESSAGE_BYTES
 *   (an allocation of more buckets than the datagram can carry: a configuration error).
 */
export function encodeMessage(msg: CoordMessage, key: MessageKey): Uint8Array {
  const env: Record<string, unknown> = { sender: msg.sender, incarnation: msg.incarnation, seq: msg.seq };
  const b = msg.body;
  switch (b.kind) {
    case 'heartbeat':
      env.heartbeat = { ...b.heartbeat, configs: b.heartbeat.configs.map((ids) => ({ ids })) };
      break;
    case 'allocation': {
      const runs = toRuns(b.allocation.owners);
      env.allocation = {
        epoch: b.allocation.epoch,
        master: b.allocation.master,
        buckets: b.allocation.buckets,
        members: b.allocation.members.map((m) => ({ id: m.id, weight: m.weight })),
        runOwner: runs.owner,
        runLength: runs.length,
        committed: b.allocation.committed,
      };
      break;
    }
    case 'ack':
      env.ack = { ...b.ack, configs: b.ack.configs.map((ids) => ({ ids })) };
      break;
    case 'commit':
      env.commit = { epoch: b.epoch };
      break;
  }
  const pb = EnvelopeType.encode(env).finish();
  const total = MAGIC.length + pb.length + TAG_BYTES;
  if (total > MAX_MESSAGE_BYTES) {
    throw new SaruError(ErrorCode.CAPACITY, `coordinator message of ${total} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  }
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out.set(pb, MAGIC.length);
  out.set(key.tag(out.subarray(0, total - TAG_BYTES)), total - TAG_BYTES);
  return out;
}

/** Authenticate and decode a datagram. Never throws. */
export function decodeMessage(bytes: Uint8Array, key: MessageKey): DecodeResult {
  if (!(bytes instanceof Uint8Array) || bytes.length < MIN_MESSAGE_BYTES) return { ok: false, reason: 'truncated' };
  if (bytes.length > MAX_MESSAGE_BYTES) return { ok: false, reason: 'oversized' };
  if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1] || bytes[2] !== MAGIC[2]) return { ok: false, reason: 'bad_magic' };
  if (!key.verify(bytes)) return { ok: false, reason: 'bad_mac' };
  let env: Record<string, unknown>;
  try {
    env = EnvelopeType.decode(bytes.subarray(MAGIC.length, bytes.length - TAG_BYTES)) as unknown as Record<string, unknown>;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const msg = toMessage(env);
  return msg === null ? { ok: false, reason: 'malformed' } : { ok: true, msg };
}

// --- validation of decoded fields --------------------------------------------

/** A protobufjs uint64 (number or Long) as a safe integer, or -1. */
function u64(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : -1;
  const l = v as { high?: number; low?: number };
  if (typeof l.high !== 'number' || typeof l.low !== 'number') return -1;
  const high = l.high >>> 0;
  if (high >= 0x200000) return -1;
  return high * 0x100000000 + (l.low >>> 0);
}

function u32(v: unknown, max: number): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max ? v : -1;
}

function toMessage(env: Record<string, unknown>): CoordMessage | null {
  const sender = u32(env.sender, MAX_NODE_ID);
  const incarnation = u64(env.incarnation);
  const seq = u64(env.seq);
  if (sender < 0 || incarnation < 1 || seq < 1) return null;
  let body: Body | null = null;
  if (env.heartbeat != null) body = toHeartbeat(env.heartbeat as Record<string, unknown>);
  else if (env.allocation != null) body = toAllocation(env.allocation as Record<string, unknown>);
  else if (env.ack != null) {
    const a = env.ack as Record<string, unknown>;
    const acceptedEpoch = u64(a.acceptedEpoch);
    const appliedEpoch = u64(a.appliedEpoch);
    const configs = toConfigs(a.configs);
    const configsEpoch = u64(a.configsEpoch);
    if (acceptedEpoch >= 0 && appliedEpoch >= 0 && configsEpoch >= 0 && configs !== null) {
      body = { kind: 'ack', ack: { acceptedEpoch, appliedEpoch, configs, configsEpoch } };
    }
  } else if (env.commit != null) {
    const epoch = u64((env.commit as Record<string, unknown>).epoch);
    if (epoch > 0) body = { kind: 'commit', epoch };
  }
  if (body === null) return null;
  return { sender, incarnation, seq, body };
}

function toHeartbeat(h: Record<string, unknown>): Body | null {
  const state = u32(h.state, 2);
  const weight = u32(h.weight, MAX_WEIGHT);
  const seenEpoch = u64(h.seenEpoch);
  const knownEpoch = u64(h.knownEpoch);
  const acceptedEpoch = u64(h.acceptedEpoch);
  const committedEpoch = u64(h.committedEpoch);
  const appliedEpoch = u64(h.appliedEpoch);
  if (Math.min(state, weight, seenEpoch, knownEpoch, acceptedEpoch, committedEpoch, appliedEpoch) < 0) return null;
  const configs = toConfigs(h.configs);
  const configsEpoch = u64(h.configsEpoch);
  if (configs === null || configsEpoch < 0) return null;
  return {
    kind: 'heartbeat',
    heartbeat: {
      state: state as MemberState,
      weight,
      synced: h.synced === true,
      seenEpoch,
      knownEpoch,
      acceptedEpoch,
      committedEpoch,
      appliedEpoch,
      configs,
      configsEpoch,
    },
  };
}

/** Member lists: at most MAX_CONFIGS, each sorted and unique. */
function toConfigs(v: unknown): number[][] | null {
  const raw = (v ?? []) as Array<Record<string, unknown>>;
  if (!Array.isArray(raw) || raw.length > MAX_CONFIGS) return null;
  const out: number[][] = [];
  for (const c of raw) {
    const ids = (c.ids ?? []) as number[];
    if (!Array.isArray(ids) || ids.length > MAX_NODE_ID + 1) return null;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (u32(id, MAX_NODE_ID) < 0 || (i > 0 && id <= ids[i - 1]!)) return null;
    }
    out.push(ids.slice());
  }
  return out;
}

function toAllocation(a: Record<string, unknown>): Body | null {
  const epoch = u64(a.epoch);
  const master = u32(a.master, MAX_NODE_ID);
  const buckets = u32(a.buckets, 65536);
  if (epoch < 1 || master < 0 || buckets < 1 || epochMaster(epoch) !== master) return null;
  const rawMembers = (a.members ?? []) as Array<Record<string, unknown>>;
  if (!Array.isArray(rawMembers) || rawMembers.length > MAX_NODE_ID + 1) return null;
  const members: AllocMember[] = [];
  const ids = new Set<number>();
  for (const m of rawMembers) {
    const id = u32(m.id, MAX_NODE_ID);
    const weight = u32(m.weight, MAX_WEIGHT);
    if (id < 0 || weight < 0 || ids.has(id)) return null;
    ids.add(id);
    members.push({ id, weight });
  }
  members.sort((x, y) => x.id - y.id);
  const runOwner = (a.runOwner ?? []) as number[];
  const runLength = (a.runLength ?? []) as number[];
  if (!Array.isArray(runOwner) || !Array.isArray(runLength) || runOwner.length > buckets) return null;
  for (const o of runOwner) if (o !== -1 && !ids.has(o)) return null;
  const owners = fromRuns(buckets, runOwner, runLength);
  if (owners === null) return null;
  return { kind: 'allocation', allocation: { epoch, master, buckets, members, owners, committed: a.committed === true } };
}
