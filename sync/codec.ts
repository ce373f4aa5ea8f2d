/**
 * The sync wire format: a SyncMessage (sync/types.ts) to and from one UDP
 * datagram, the protobuf encoding of sync/sync.proto's Message followed by a
 * 32-byte HMAC-SHA256 tag (the layout is documented in the .proto's header).
 * Owns loading the schema, the columnar packing of RecordBatch entries
 * (core/conn/record.ts) into an Entries body and back, the size accounting
 * that tells the sender how many entries fill one datagram, and the
 * validation of everything received, counted per outcome.
 *
 * It does no I/O and keeps no per-peer state: replay windows, sequencing and
 * retransmission belong to sync/node.ts. It never throws on received bytes;
 * it throws SaruError INVALID_ARGUMENT only for programming errors (a bad
 * configuration, a message that does not fit, a record it cannot represent).
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, SaruError, SYNC_RECORD, SYNC_RECORD_FLAG } from '../core/index.js';
import { MessageKey, TAG_BYTES } from '../saru/index.js';
import type { DecodeError, DecodeResult, PeerAck, RecordBatch, SyncBody, SyncMessage } from './types.js';

/** Default largest datagram, bytes: 1500 (Ethernet MTU) - 20 (IPv4 header) - 8 (UDP header). */
export const DEFAULT_MAX_DATAGRAM_BYTES = 1472;
/** Smallest accepted datagram limit, bytes (the IPv4 minimum reassembly size is 576). */
export const MIN_MAX_DATAGRAM_BYTES = 512;
/** Largest accepted datagram limit, bytes: 65535 - 20 (IPv4) - 8 (UDP). */
export const MAX_MAX_DATAGRAM_BYTES = 65507;
/** Highest node id on the wire (saru's node_id range is 1..1023). */
export const MAX_NODE_ID = 1023;
/** Wire unit of the timeout column, ms. */
export const TIMEOUT_UNIT_MS = 100;
/** Largest timeout on the wire, in TIMEOUT_UNIT_MS units: 2^32-1 ms rounded up. */
export const MAX_TIMEOUT_UNITS = Math.ceil(0xffffffff / TIMEOUT_UNIT_MS);
/** Largest protocol state on the wire (4 bits of dest_state). */
export const MAX_WIRE_STATE = 15;
/** Largest forwarding method number (Fwd.DR). */
const MAX_FWD = 3;

const root = protobuf.loadSync(fileURLToPath(new URL('../../sync/sync.proto', import.meta.url)));
const MessageType = root.lookupType('saru.sync.Message');

export interface SyncCodecInit {
  /** Cluster key (loadClusterKey), at least 16 bytes. */
  key: Uint8Array;
  /** Largest datagram sent or accepted, bytes, tag included: 512..65507, default 1472. */
  maxDatagramBytes?: number;
}

/** Datagrams per outcome since the codec was made. */
export interface CodecCounters {
  /** Datagrams produced by encode(). */
  encoded: number;
  /** Datagrams decode() accepted. */
  decoded: number;
  /** Dropped: shorter than the tag plus one byte. */
  truncated: number;
  /** Dropped: longer than maxDatagramBytes. */
  oversized: number;
  /** Dropped: wrong HMAC tag (forged, corrupted, or another cluster's key). */
  auth: number;
  /** Dropped: authentic but not a valid Message (bad protobuf or out-of-range value). */
  malformed: number;
}

// ---------------------------------------------------------------------------
// Wire objects: what protobufjs's encoder takes and its decoder produces
// (camelCase field names). uint64 fields decode as Long objects (the `long`
// package is installed) and encode from numbers.

interface LongBits {
  low: number;
  high: number;
}
type WireU64 = number | LongBits;

interface WireDest {
  protocol?: number;
  vaddr: Uint8Array;
  vport?: number;
  fwmark?: number;
  daddr: Uint8Array;
  dport?: number;
  fwd?: number;
}

interface WireEntries {
  dests?: WireDest[];
  destState?: number[];
  caddr?: Uint8Array;
  cport?: Uint8Array;
  timeout?: number[];
}

interface WirePeerAck {
  nodeId: number;
  incarnation: WireU64;
  contiguous: WireU64;
}

interface WireMessage {
  nodeId: number;
  incarnation: WireU64;
  seq: WireU64;
  epoch: WireU64;
  entries?: { dataSeq: WireU64; entries?: WireEntries | null } | null;
  alive?: { lastDataSeq: WireU64; oldestDataSeq: WireU64; synced: boolean; acks?: WirePeerAck[] } | null;
  nack?: { target: number; targetIncarnation: WireU64; first?: WireU64[]; last?: WireU64[] } | null;
  resyncRequest?: { target: number; session: WireU64 } | null;
  resyncChunk?: { target: number; session: WireU64; index: number; last: boolean; entries?: WireEntries | null } | null;
  resyncAck?: { target: number; session: WireU64; next: number; received?: number[] } | null;
}

// ---------------------------------------------------------------------------
// Size accounting (protobuf encoding rules): a tag of a field number <= 15
// is one byte; a length-delimited field is tag + varint(length) + bytes.

/** Bytes of the varint encoding of a non-negative integer below 2^53. */
function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (let x = v / 0x800000000; x >= 1; x /= 0x80) n++;
  return n;
}

/** Bytes of a length-delimited field holding `len` bytes. */
function fieldLen(len: number): number {
  return 1 + varintSize(len) + len;
}

/** Bytes of an optional scalar field written only when non-zero (Dest's fields). */
function scalarIfSet(v: number): number {
  return v === 0 ? 0 : 1 + varintSize(v);
}

/** Largest varint of a node id (<= 1023) and of a uint64 below 2^53, bytes. */
const NODE_ID_VARINT = 2;
const U64_VARINT = 8;
const U32_VARINT = 5;
/** Message's node_id, incarnation, seq, epoch at their largest. */
const MESSAGE_HEAD_WORST = 1 + NODE_ID_VARINT + 3 * (1 + U64_VARINT);
/**
 * The fields around Entries at their largest: SequencedEntries' data_seq
 * (9), or ResyncChunk's target (3) + session (9) + index (6) + last (2) = 20.
 */
const ENTRIES_BODY_HEAD_WORST = Math.max(1 + U64_VARINT, 1 + NODE_ID_VARINT + (1 + U64_VARINT) + (1 + U32_VARINT) + 2);

const R = SYNC_RECORD;
const EMPTY_BYTES = new Uint8Array(0);
/** The record-level dest fields, compared word by word (most distinguishing first: daddr, vaddr low words). */
const DEST_WORDS = [R.DADDR + 12, R.VADDR + 12, R.FAMILY, R.VPORT, R.FWMARK, R.DADDR, R.DADDR + 4, R.DADDR + 8, R.VADDR, R.VADDR + 4, R.VADDR + 8];

function invalid(msg: string): SaruError {
  return new SaruError(ErrorCode.INVALID_ARGUMENT, msg);
}

function checkU64(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw invalid(`sync message: ${what} must be an integer 0..2^53-1, got ${v}`);
}

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalid(`sync message: ${what} must be an integer 0..2^32-1, got ${v}`);
}

function checkNode(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1 || v > MAX_NODE_ID) throw invalid(`sync message: ${what} must be a node id 1..${MAX_NODE_ID}, got ${v}`);
}

function checkBatch(batch: RecordBatch): void {
  if (!Number.isInteger(batch.count) || batch.count < 0 || batch.bytes.length < batch.count * R.SIZE) {
    throw invalid(`record batch of ${batch.count} records needs ${batch.count * R.SIZE} bytes, has ${batch.bytes.length}`);
  }
}

/** A received uint64 as a number, or -1 when it is 2^53 or more (not representable: malformed). */
function u64(v: WireU64 | null | undefined): number {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : -1;
  if (v === null || v === undefined) return 0;
  const hi = v.high >>> 0;
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + (v.low >>> 0);
}

function isNode(v: number): boolean {
  return v >= 1 && v <= MAX_NODE_ID;
}

/** Wire (binary) encoder and decoder of sync datagrams; see the module comment. */
export class SyncCodec {
  /** Largest datagram sent or accepted, bytes (tag included). */
  readonly maxDatagramBytes: number;
  readonly counters: CodecCounters = { encoded: 0, decoded: 0, truncated: 0, oversized: 0, auth: 0, malformed: 0 };

  private readonly key: MessageKey;
  // Scratch for one encode or fit at a time (both are synchronous).
  /** Byte offset, within the batch, of the first record using each dest of the datagram being built. */
  private destOffs = new Int32Array(16);
  private destCount = 0;
  private caddrScratch: Uint8Array;
  private cportScratch: Uint8Array;
  private readonly stateCol: number[] = [];
  private readonly timeoutCol: number[] = [];

  /**
   * @throws SaruError INVALID_ARGUMENT when maxDatagramBytes is not an
   *   integer in 512..65507 or the key is shorter than 16 bytes.
   */
  constructor(init: SyncCodecInit) {
    const max = init.maxDatagramBytes ?? DEFAULT_MAX_DATAGRAM_BYTES;
    if (!Number.isInteger(max) || max < MIN_MAX_DATAGRAM_BYTES || max > MAX_MAX_DATAGRAM_BYTES) {
      throw invalid(`maxDatagramBytes must be an integer ${MIN_MAX_DATAGRAM_BYTES}..${MAX_MAX_DATAGRAM_BYTES}, got ${max}`);
    }
    this.maxDatagramBytes = max;
    this.key = new MessageKey(init.key);
    this.caddrScratch = new Uint8Array(max);
    this.cportScratch = new Uint8Array(max);
  }

  /**
   * How many records of `batch` starting at record `from` fit in ONE entries
   * or resyncChunk datagram, assuming the largest header values (node ids up
   * to 1023, uint64 fields up to 2^53-1, index up to 2^32-1), so that a later
   * re-encode with a bigger seq still fits. >= 1 when from < batch.count (a
   * single entry always fits: at most 173 bytes against a 512-byte minimum),
   * 0 when from >= batch.count. Runs in O(entries * dests of the datagram).
   * @throws SaruError INVALID_ARGUMENT when the batch is shorter than count * 72 bytes.
   */
  fit(batch: RecordBatch, from: number): number {
    checkBatch(batch);
    const count = batch.count;
    if (!(from >= 0)) from = 0;
    if (from >= count) return 0;
    const b = batch.bytes;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const max = this.maxDatagramBytes;
    this.destCount = 0;
    let dests = 0; // bytes of the dests field entries
    let states = 0; // bytes of dest_state's packed content
    let caddr = 0;
    let timeouts = 0;
    let n = 0;
    for (let i = from; i < count; i++) {
      const o = i * R.SIZE;
      const before = this.destCount;
      const d = this.findDest(dv, o);
      const dSize = this.destCount > before ? fieldLen(destSize(b, dv, o)) : 0;
      const nDests = dests + dSize;
      const nStates = states + varintSize(((d << 5) | (b[o + R.FLAGS]! & SYNC_RECORD_FLAG.TEMPLATE ? 16 : 0) | (b[o + R.STATE]! & 15)) >>> 0);
      const nCaddr = caddr + (b[o + R.FAMILY] === 6 ? 16 : 4);
      const nTimeouts = timeouts + varintSize(timeoutUnits(b, o));
      const entries = nDests + fieldLen(nStates) + fieldLen(nCaddr) + fieldLen(2 * (n + 1)) + fieldLen(nTimeouts);
      const body = ENTRIES_BODY_HEAD_WORST + fieldLen(entries);
      const total = MESSAGE_HEAD_WORST + fieldLen(body) + TAG_BYTES;
      if (total > max && n > 0) break;
      dests = nDests;
      states = nStates;
      caddr = nCaddr;
      timeouts = nTimeouts;
      n++;
    }
    return n;
  }

  /**
   * Encode one message (any body) to datagram bytes: protobuf Message + 32-byte tag.
   * Entries are packed as sync.proto's Entries: the 100 ms timeout rounding
   * is upwards, a record with the remove flag goes out with timeout 0;
   * packets and the synced flag are not sent.
   * @throws SaruError INVALID_ARGUMENT when the result exceeds
   *   maxDatagramBytes (a caller bug: use fit()), a header or body number is
   *   out of its range (node ids 1..1023, uint64 fields 0..2^53-1, uint32
   *   fields 0..2^32-1), or a record has a state above 15 or a forwarding
   *   method above 3.
   */
  encode(msg: SyncMessage): Uint8Array {
    checkNode(msg.nodeId, 'nodeId');
    checkU64(msg.incarnation, 'incarnation');
    checkU64(msg.seq, 'seq');
    checkU64(msg.epoch, 'epoch');
    const wire: Record<string, unknown> = { nodeId: msg.nodeId, incarnation: msg.incarnation, seq: msg.seq, epoch: msg.epoch };
    const body = msg.body;
    switch (body.kind) {
      case 'entries':
        checkU64(body.dataSeq, 'dataSeq');
        wire.entries = { dataSeq: body.dataSeq, entries: this.packEntries(body.entries) };
        break;
      case 'alive':
        checkU64(body.lastDataSeq, 'lastDataSeq');
        checkU64(body.oldestDataSeq, 'oldestDataSeq');
        wire.alive = {
          lastDataSeq: body.lastDataSeq,
          oldestDataSeq: body.oldestDataSeq,
          synced: body.synced,
          acks: body.acks.map((a) => {
            checkNode(a.nodeId, 'ack nodeId');
            checkU64(a.incarnation, 'ack incarnation');
            checkU64(a.contiguous, 'ack contiguous');
            return { nodeId: a.nodeId, incarnation: a.incarnation, contiguous: a.contiguous };
          }),
        };
        break;
      case 'nack': {
        checkNode(body.target, 'target');
        checkU64(body.targetIncarnation, 'targetIncarnation');
        const first: number[] = [];
        const last: number[] = [];
        for (const [f, l] of body.ranges) {
          checkU64(f, 'range first');
          checkU64(l, 'range last');
          if (f > l) throw invalid(`sync message: nack range [${f}, ${l}] is reversed`);
          first.push(f);
          last.push(l);
        }
        wire.nack = { target: body.target, targetIncarnation: body.targetIncarnation, first, last };
        break;
      }
      case 'resyncRequest':
        checkNode(body.target, 'target');
        checkU64(body.session, 'session');
        wire.resyncRequest = { target: body.target, session: body.session };
        break;
      case 'resyncChunk':
        checkNode(body.target, 'target');
        checkU64(body.session, 'session');
        checkU32(body.index, 'index');
        wire.resyncChunk = {
          target: body.target,
          session: body.session,
          index: body.index,
          last: body.last,
          entries: this.packEntries(body.entries),
        };
        break;
      case 'resyncAck':
        checkNode(body.target, 'target');
        checkU64(body.session, 'session');
        checkU32(body.next, 'next');
        for (const r of body.received) checkU32(r, 'received');
        wire.resyncAck = { target: body.target, session: body.session, next: body.next, received: body.received };
        break;
      default:
        throw invalid(`sync message: unknown body kind ${(body as { kind: unknown }).kind}`);
    }
    const proto = MessageType.encode(wire).finish();
    const len = proto.length + TAG_BYTES;
    if (len > this.maxDatagramBytes) {
      throw invalid(`sync message of ${len} bytes exceeds the ${this.maxDatagramBytes}-byte datagram limit (use fit())`);
    }
    const out = new Uint8Array(len);
    out.set(proto, 0);
    out.set(this.key.tag(proto), proto.length);
    this.counters.encoded++;
    return out;
  }

  /**
   * Decode one received datagram. Never throws. Checks in this order:
   * length > maxDatagramBytes -> 'oversized'; length < 33 -> 'truncated';
   * HMAC tag -> 'auth'; protobuf decoding, then semantic validation ->
   * 'malformed' (node ids 1..1023, exactly one known body, uint64 values
   * below 2^53, dest index in range, address lengths 4 or 16, caddr length
   * matching the dests' families, ports <= 65535, protocol <= 255,
   * forwarding method <= 3, equal column lengths, timeout <= 2^32-1 ms, nack
   * ranges first <= last). Several oneof bodies on the wire follow protobuf's
   * rule: the last one wins. Counts each outcome in `counters`.
   * Entries decode into a fresh RecordBatch: timeout = units * 100 ms,
   * remove flag when it is 0, template flag and state as sent, IPv4
   * addresses in mapped form (::ffff:a.b.c.d), packets 0, synced false.
   */
  decode(bytes: Uint8Array): DecodeResult {
    const len = bytes.length;
    if (len > this.maxDatagramBytes) return this.fail('oversized', 'datagram longer than the limit');
    if (len < TAG_BYTES + 1) return this.fail('truncated', 'datagram shorter than the tag plus one byte');
    if (!this.key.verify(bytes)) return this.fail('auth', 'HMAC tag mismatch');
    let m: WireMessage;
    try {
      m = MessageType.decode(bytes.subarray(0, len - TAG_BYTES)) as unknown as WireMessage;
    } catch {
      return this.fail('malformed', 'not a protobuf Message');
    }
    const msg = toMessage(m);
    if (typeof msg === 'string') return this.fail('malformed', msg);
    this.counters.decoded++;
    return { ok: true, msg };
  }

  private fail(error: DecodeError, detail: string): DecodeResult {
    this.counters[error]++;
    return { ok: false, error, detail };
  }

  /**
   * Index of the dest of the record at byte offset `o` in this datagram's
   * dictionary, adding it when new (destCount grows).
   */
  private findDest(dv: DataView, o: number): number {
    const offs = this.destOffs;
    const n = this.destCount;
    for (let k = n - 1; k >= 0; k--) {
      const p = offs[k]!;
      let same = true;
      for (let w = 0; w < DEST_WORDS.length; w++) {
        const f = DEST_WORDS[w]!;
        if (dv.getUint32(o + f, true) !== dv.getUint32(p + f, true)) {
          same = false;
          break;
        }
      }
      if (same) return k;
    }
    if (n === offs.length) {
      const grown = new Int32Array(n * 2);
      grown.set(offs);
      this.destOffs = grown;
    }
    this.destOffs[n] = o;
    this.destCount = n + 1;
    return n;
  }

  /** The Entries wire object of `batch` (columns in the codec's scratch; valid until the next call). */
  private packEntries(batch: RecordBatch): WireEntries {
    checkBatch(batch);
    const n = batch.count;
    if (n === 0) return {};
    const b = batch.bytes;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (this.caddrScratch.length < n * 16) this.caddrScratch = new Uint8Array(n * 16);
    if (this.cportScratch.length < n * 2) this.cportScratch = new Uint8Array(n * 2);
    const caddr = this.caddrScratch;
    const cport = this.cportScratch;
    const states = this.stateCol;
    const timeouts = this.timeoutCol;
    states.length = n;
    timeouts.length = n;
    const dests: WireDest[] = [];
    this.destCount = 0;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const o = i * R.SIZE;
      const before = this.destCount;
      const d = this.findDest(dv, o);
      if (this.destCount > before) dests.push(wireDest(b, dv, o));
      const state = b[o + R.STATE]!;
      if (state > MAX_WIRE_STATE) throw invalid(`record ${i}: state ${state} does not fit the wire's 4 bits`);
      states[i] = ((d << 5) | (b[o + R.FLAGS]! & SYNC_RECORD_FLAG.TEMPLATE ? 16 : 0) | state) >>> 0;
      timeouts[i] = timeoutUnits(b, o);
      cport[2 * i] = b[o + R.CPORT + 1]!;
      cport[2 * i + 1] = b[o + R.CPORT]!;
      if (b[o + R.FAMILY] === 6) {
        for (let k = 0; k < 16; k++) caddr[c + k] = b[o + R.CADDR + k]!;
        c += 16;
      } else {
        caddr[c] = b[o + R.CADDR + 12]!;
        caddr[c + 1] = b[o + R.CADDR + 13]!;
        caddr[c + 2] = b[o + R.CADDR + 14]!;
        caddr[c + 3] = b[o + R.CADDR + 15]!;
        c += 4;
      }
    }
    return { dests, destState: states, caddr: caddr.subarray(0, c), cport: cport.subarray(0, 2 * n), timeout: timeouts };
  }
}

/** Remaining timeout of the record at byte offset `o` in 100 ms units, rounded up; 0 for a remove. */
function timeoutUnits(b: Uint8Array, o: number): number {
  if (b[o + R.FLAGS]! & SYNC_RECORD_FLAG.REMOVE) return 0;
  const ms = (b[o + R.TIMEOUT_MS]! | (b[o + R.TIMEOUT_MS + 1]! << 8) | (b[o + R.TIMEOUT_MS + 2]! << 16) | (b[o + R.TIMEOUT_MS + 3]! << 24)) >>> 0;
  return Math.ceil(ms / TIMEOUT_UNIT_MS);
}

/** The Dest wire object of the record at byte offset `o` (zero fields left out, as proto3 would). */
function wireDest(b: Uint8Array, dv: DataView, o: number): WireDest {
  const fwd = b[o + R.FWD]!;
  if (fwd > MAX_FWD) throw invalid(`record at byte ${o}: forwarding method ${fwd} is not 0..3`);
  const d: WireDest = {
    vaddr: b[o + R.FAMILY] === 6 ? b.subarray(o + R.VADDR, o + R.VADDR + 16) : b.subarray(o + R.VADDR + 12, o + R.VADDR + 16),
    daddr: b[o + R.DFAMILY] === 6 ? b.subarray(o + R.DADDR, o + R.DADDR + 16) : b.subarray(o + R.DADDR + 12, o + R.DADDR + 16),
  };
  const protocol = b[o + R.PROTOCOL]!;
  const vport = dv.getUint16(o + R.VPORT, true);
  const dport = dv.getUint16(o + R.DPORT, true);
  const fwmark = dv.getUint32(o + R.FWMARK, true);
  if (protocol !== 0) d.protocol = protocol;
  if (vport !== 0) d.vport = vport;
  if (fwmark !== 0) d.fwmark = fwmark;
  if (dport !== 0) d.dport = dport;
  if (fwd !== 0) d.fwd = fwd;
  return d;
}

/** Encoded bytes of wireDest() of the record at byte offset `o`. */
function destSize(b: Uint8Array, dv: DataView, o: number): number {
  return (
    scalarIfSet(b[o + R.PROTOCOL]!) +
    fieldLen(b[o + R.FAMILY] === 6 ? 16 : 4) +
    scalarIfSet(dv.getUint16(o + R.VPORT, true)) +
    scalarIfSet(dv.getUint32(o + R.FWMARK, true)) +
    fieldLen(b[o + R.DFAMILY] === 6 ? 16 : 4) +
    scalarIfSet(dv.getUint16(o + R.DPORT, true)) +
    scalarIfSet(b[o + R.FWD]!)
  );
}

// ---------------------------------------------------------------------------
// Decoding and validation. Each returns the value or a string saying why it
// is malformed.

function toMessage(m: WireMessage): SyncMessage | string {
  if (!isNode(m.nodeId)) return 'node_id out of range';
  const incarnation = u64(m.incarnation);
  const seq = u64(m.seq);
  const epoch = u64(m.epoch);
  if (incarnation < 0 || seq < 0 || epoch < 0) return 'header uint64 of 2^53 or more';
  let bodies = 0;
  let body: SyncBody | string = 'no known body';
  if (m.entries != null) {
    bodies++;
    const dataSeq = u64(m.entries.dataSeq);
    const entries = unpackEntries(m.entries.entries);
    if (dataSeq < 0) body = 'data_seq of 2^53 or more';
    else if (typeof entries === 'string') body = entries;
    else body = { kind: 'entries', dataSeq, entries };
  }
  if (m.alive != null) {
    bodies++;
    body = toAlive(m.alive);
  }
  if (m.nack != null) {
    bodies++;
    body = toNack(m.nack);
  }
  if (m.resyncRequest != null) {
    bodies++;
    const r = m.resyncRequest;
    const session = u64(r.session);
    if (!isNode(r.target)) body = 'target out of range';
    else if (session < 0) body = 'session of 2^53 or more';
    else body = { kind: 'resyncRequest', target: r.target, session };
  }
  if (m.resyncChunk != null) {
    bodies++;
    const r = m.resyncChunk;
    const session = u64(r.session);
    const entries = unpackEntries(r.entries);
    if (!isNode(r.target)) body = 'target out of range';
    else if (session < 0) body = 'session of 2^53 or more';
    else if (typeof entries === 'string') body = entries;
    else body = { kind: 'resyncChunk', target: r.target, session, index: r.index, last: r.last === true, entries };
  }
  if (m.resyncAck != null) {
    bodies++;
    const r = m.resyncAck;
    const session = u64(r.session);
    if (!isNode(r.target)) body = 'target out of range';
    else if (session < 0) body = 'session of 2^53 or more';
    else body = { kind: 'resyncAck', target: r.target, session, next: r.next, received: (r.received ?? []).slice() };
  }
  // protobufjs applies protobuf's oneof rule (the last member on the wire
  // wins, the others are cleared), so this only guards against a change there.
  if (bodies > 1) return 'more than one body';
  if (typeof body === 'string') return body;
  return { nodeId: m.nodeId, incarnation, seq, epoch, body };
}

function toAlive(a: NonNullable<WireMessage['alive']>): SyncBody | string {
  const lastDataSeq = u64(a.lastDataSeq);
  const oldestDataSeq = u64(a.oldestDataSeq);
  if (lastDataSeq < 0 || oldestDataSeq < 0) return 'alive uint64 of 2^53 or more';
  const wireAcks = a.acks ?? [];
  const acks: PeerAck[] = new Array<PeerAck>(wireAcks.length);
  for (let i = 0; i < wireAcks.length; i++) {
    const w = wireAcks[i]!;
    const incarnation = u64(w.incarnation);
    const contiguous = u64(w.contiguous);
    if (!isNode(w.nodeId)) return 'ack node_id out of range';
    if (incarnation < 0 || contiguous < 0) return 'ack uint64 of 2^53 or more';
    acks[i] = { nodeId: w.nodeId, incarnation, contiguous };
  }
  return { kind: 'alive', lastDataSeq, oldestDataSeq, synced: a.synced === true, acks };
}

function toNack(n: NonNullable<WireMessage['nack']>): SyncBody | string {
  if (!isNode(n.target)) return 'target out of range';
  const targetIncarnation = u64(n.targetIncarnation);
  if (targetIncarnation < 0) return 'target_incarnation of 2^53 or more';
  const first = n.first ?? [];
  const last = n.last ?? [];
  if (first.length !== last.length) return 'nack first and last lengths differ';
  const ranges = new Array<[number, number]>(first.length);
  for (let i = 0; i < first.length; i++) {
    const f = u64(first[i]);
    const l = u64(last[i]);
    if (f < 0 || l < 0) return 'nack range of 2^53 or more';
    if (f > l) return 'nack range reversed';
    ranges[i] = [f, l];
  }
  return { kind: 'nack', target: n.target, targetIncarnation, ranges };
}

/**
 * Validate one Dest and build the 72-byte record image its entries start
 * from (family, dfamily, protocol, fwd, ports, fwmark, vaddr, daddr).
 */
function destImage(d: WireDest): Uint8Array | string {
  const vaddr = d.vaddr ?? EMPTY_BYTES;
  const daddr = d.daddr ?? EMPTY_BYTES;
  const protocol = d.protocol ?? 0;
  const vport = d.vport ?? 0;
  const dport = d.dport ?? 0;
  const fwmark = d.fwmark ?? 0;
  const fwd = d.fwd ?? 0;
  if (vaddr.length !== 4 && vaddr.length !== 16) return 'dest vaddr not 4 or 16 bytes';
  if (daddr.length !== 4 && daddr.length !== 16) return 'dest daddr not 4 or 16 bytes';
  if (protocol > 255) return 'dest protocol out of range';
  if (vport > 0xffff || dport > 0xffff) return 'dest port out of range';
  if (fwd > MAX_FWD) return 'dest forwarding method out of range';
  const r = new Uint8Array(R.SIZE);
  r[R.FAMILY] = vaddr.length === 16 ? 6 : 4;
  r[R.DFAMILY] = daddr.length === 16 ? 6 : 4;
  r[R.PROTOCOL] = protocol;
  r[R.FWD] = fwd;
  r[R.VPORT] = vport & 0xff;
  r[R.VPORT + 1] = vport >>> 8;
  r[R.DPORT] = dport & 0xff;
  r[R.DPORT + 1] = dport >>> 8;
  r[R.FWMARK] = fwmark & 0xff;
  r[R.FWMARK + 1] = (fwmark >>> 8) & 0xff;
  r[R.FWMARK + 2] = (fwmark >>> 16) & 0xff;
  r[R.FWMARK + 3] = fwmark >>> 24;
  putAddr(r, R.VADDR, vaddr);
  putAddr(r, R.DADDR, daddr);
  return r;
}

/** 16 bytes at `off`: a 16-byte address as is, a 4-byte one as ::ffff:a.b.c.d. */
function putAddr(r: Uint8Array, off: number, a: Uint8Array): void {
  if (a.length === 16) {
    r.set(a, off);
  } else {
    r[off + 10] = 0xff;
    r[off + 11] = 0xff;
    r.set(a, off + 12);
  }
}

/** An Entries body as a fresh RecordBatch, or why it is malformed. */
function unpackEntries(e: WireEntries | null | undefined): RecordBatch | string {
  if (e == null) return { bytes: new Uint8Array(0), count: 0 };
  const wireDests = e.dests ?? [];
  const states = e.destState ?? [];
  const timeouts = e.timeout ?? [];
  const caddr = e.caddr ?? EMPTY_BYTES;
  const cport = e.cport ?? EMPTY_BYTES;
  const n = states.length;
  if (timeouts.length !== n || cport.length !== 2 * n) return 'entries columns differ in length';
  if (caddr.length < 4 * n || caddr.length > 16 * n) return 'caddr length does not match the entries';
  const k = wireDests.length;
  const images = new Array<Uint8Array>(k);
  for (let j = 0; j < k; j++) {
    const img = destImage(wireDests[j]!);
    if (typeof img === 'string') return img;
    images[j] = img;
  }
  const out = new Uint8Array(n * R.SIZE);
  let c = 0;
  for (let i = 0; i < n; i++) {
    const x = states[i]!;
    const d = x >>> 5;
    if (d >= k) return 'dest index out of range';
    const units = timeouts[i]!;
    if (units > MAX_TIMEOUT_UNITS) return 'timeout out of range';
    const img = images[d]!;
    const o = i * R.SIZE;
    out.set(img, o);
    out[o + R.STATE] = x & 15;
    out[o + R.FLAGS] = (x & 16 ? SYNC_RECORD_FLAG.TEMPLATE : 0) | (units === 0 ? SYNC_RECORD_FLAG.REMOVE : 0);
    out[o + R.CPORT] = cport[2 * i + 1]!;
    out[o + R.CPORT + 1] = cport[2 * i]!;
    const ms = Math.min(units * TIMEOUT_UNIT_MS, 0xffffffff);
    out[o + R.TIMEOUT_MS] = ms & 0xff;
    out[o + R.TIMEOUT_MS + 1] = (ms >>> 8) & 0xff;
    out[o + R.TIMEOUT_MS + 2] = (ms >>> 16) & 0xff;
    out[o + R.TIMEOUT_MS + 3] = ms >>> 24;
    if (img[R.FAMILY] === 6) {
      if (c + 16 > caddr.length) return 'caddr shorter than the entries need';
      for (let j = 0; j < 16; j++) out[o + R.CADDR + j] = caddr[c + j]!;
      c += 16;
    } else {
      if (c + 4 > caddr.length) return 'caddr shorter than the entries need';
      out[o + R.CADDR + 10] = 0xff;
      out[o + R.CADDR + 11] = 0xff;
      out[o + R.CADDR + 12] = caddr[c]!;
      out[o + R.CADDR + 13] = caddr[c + 1]!;
      out[o + R.CADDR + 14] = caddr[c + 2]!;
      out[o + R.CADDR + 15] = caddr[c + 3]!;
      c += 4;
    }
  }
  if (c !== caddr.length) return 'caddr longer than the entries need';
  return { bytes: out, count: n };
}

/**
 * Measure: encode `batch` into as many full entries datagrams as needed
 * (fit() then encode(), no copy of the records). Datagram i (from 0) has
 * seq = header.seq + i and dataSeq = i + 1. Returns the datagrams and their
 * total size, bytes (tags included). For the benchmark and tests.
 * @throws SaruError INVALID_ARGUMENT as encode() does.
 */
export function encodeAll(
  codec: SyncCodec,
  header: Omit<SyncMessage, 'body'>,
  batch: RecordBatch,
): { datagrams: Uint8Array[]; bytes: number } {
  const datagrams: Uint8Array[] = [];
  let bytes = 0;
  let from = 0;
  while (from < batch.count) {
    const n = codec.fit(batch, from);
    const entries: RecordBatch = { bytes: batch.bytes.subarray(from * R.SIZE, (from + n) * R.SIZE), count: n };
    const d = codec.encode({
      nodeId: header.nodeId,
      incarnation: header.incarnation,
      seq: header.seq + datagrams.length,
      epoch: header.epoch,
      body: { kind: 'entries', dataSeq: datagrams.length + 1, entries },
    });
    datagrams.push(d);
    bytes += d.length;
    from += n;
  }
  return { datagrams, bytes };
}
