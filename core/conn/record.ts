/**
 * The fixed binary form of a ConnSnapshot (a "sync record"): how connection
 * entries travel between the data-plane thread, the `saru` control socket and
 * `saru-syncd`, in batches of back-to-back records. It is the local form, not
 * the sync wire format (sync/sync.proto packs entries much tighter): fixed
 * offsets so a batch of 100,000 entries is written and read without
 * allocation, and a test (test/core/conn/record.spec.ts) checks the layout.
 * Owns the layout and the two copy functions; no I/O.
 *
 * Layout (little-endian integers; addresses as the 16 bytes of core/addr.ts's
 * four words, each word big-endian, so the bytes are the IPv6 or IPv4-mapped
 * address in network order):
 *
 * | offset | size | field                                         |
 * |-------:|-----:|-----------------------------------------------|
 * |      0 |    1 | family (4 or 6) of client and virtual address |
 * |      1 |    1 | dfamily (4 or 6) of the real server address   |
 * |      2 |    1 | protocol (IPPROTO_*, 0 for fwmark templates)  |
 * |      3 |    1 | forwarding method (Fwd)                       |
 * |      4 |    1 | state (TcpState for TCP, 0 otherwise)         |
 * |      5 |    1 | flags: 1 template, 2 synced, 4 remove         |
 * |      6 |    2 | client port                                   |
 * |      8 |    2 | virtual port                                  |
 * |     10 |    2 | real server port                              |
 * |     12 |    4 | firewall mark                                 |
 * |     16 |    4 | remaining timeout, ms                         |
 * |     20 |    4 | packets                                       |
 * |     24 |   16 | client address                                |
 * |     40 |   16 | virtual address                               |
 * |     56 |   16 | real server address                           |
 */
import { ConnSnapshot } from './snapshot.js';
import type { Fwd, Family } from '../constants.js';

/** Offsets and size of one record, bytes. */
export const SYNC_RECORD = {
  FAMILY: 0,
  DFAMILY: 1,
  PROTOCOL: 2,
  FWD: 3,
  STATE: 4,
  FLAGS: 5,
  CPORT: 6,
  VPORT: 8,
  DPORT: 10,
  FWMARK: 12,
  TIMEOUT_MS: 16,
  PACKETS: 20,
  CADDR: 24,
  VADDR: 40,
  DADDR: 56,
  /** Bytes per record. */
  SIZE: 72,
} as const;

/** Bits of the FLAGS byte. */
export const SYNC_RECORD_FLAG = {
  TEMPLATE: 1,
  SYNCED: 2,
  REMOVE: 4,
} as const;

const R = SYNC_RECORD;

function writeWords(v: DataView, off: number, w: Uint32Array): void {
  v.setUint32(off, w[0]!, false);
  v.setUint32(off + 4, w[1]!, false);
  v.setUint32(off + 8, w[2]!, false);
  v.setUint32(off + 12, w[3]!, false);
}

function readWords(v: DataView, off: number, w: Uint32Array): void {
  w[0] = v.getUint32(off, false);
  w[1] = v.getUint32(off + 4, false);
  w[2] = v.getUint32(off + 8, false);
  w[3] = v.getUint32(off + 12, false);
}

/**
 * Write `s` as record number `i` of the batch behind `view` (byte offset
 * i * SYNC_RECORD.SIZE). The caller sizes the buffer; no allocation.
 * The timeout is clamped to 0..2^32-1 ms.
 */
export function writeSyncRecord(view: DataView, i: number, s: ConnSnapshot): void {
  const o = i * R.SIZE;
  view.setUint8(o + R.FAMILY, s.family);
  view.setUint8(o + R.DFAMILY, s.dfamily);
  view.setUint8(o + R.PROTOCOL, s.protocol);
  view.setUint8(o + R.FWD, s.fwd);
  view.setUint8(o + R.STATE, s.state);
  view.setUint8(
    o + R.FLAGS,
    (s.template ? SYNC_RECORD_FLAG.TEMPLATE : 0) | (s.synced ? SYNC_RECORD_FLAG.SYNCED : 0) | (s.remove ? SYNC_RECORD_FLAG.REMOVE : 0),
  );
  view.setUint16(o + R.CPORT, s.cport, true);
  view.setUint16(o + R.VPORT, s.vport, true);
  view.setUint16(o + R.DPORT, s.dport, true);
  view.setUint32(o + R.FWMARK, s.fwmark >>> 0, true);
  const t = s.timeoutMs > 0 ? Math.min(Math.floor(s.timeoutMs), 0xffffffff) : 0;
  view.setUint32(o + R.TIMEOUT_MS, t, true);
  view.setUint32(o + R.PACKETS, s.packets >>> 0, true);
  writeWords(view, o + R.CADDR, s.caddr);
  writeWords(view, o + R.VADDR, s.vaddr);
  writeWords(view, o + R.DADDR, s.daddr);
}

/**
 * Read record number `i` of the batch behind `view` into `out`. Bytes are
 * taken as they are: a family other than 6 reads as 4, and
 * ConnTable.importSynced() validates the rest (state, service, real server).
 * @throws RangeError when the record lies outside the view (a caller bug:
 *   batches are sized count * SYNC_RECORD.SIZE and checked on receipt).
 */
export function readSyncRecord(view: DataView, i: number, out: ConnSnapshot): void {
  const o = i * R.SIZE;
  out.family = (view.getUint8(o + R.FAMILY) === 6 ? 6 : 4) as Family;
  out.dfamily = (view.getUint8(o + R.DFAMILY) === 6 ? 6 : 4) as Family;
  out.protocol = view.getUint8(o + R.PROTOCOL);
  out.fwd = view.getUint8(o + R.FWD) as Fwd;
  out.state = view.getUint8(o + R.STATE);
  const f = view.getUint8(o + R.FLAGS);
  out.template = (f & SYNC_RECORD_FLAG.TEMPLATE) !== 0;
  out.synced = (f & SYNC_RECORD_FLAG.SYNCED) !== 0;
  out.remove = (f & SYNC_RECORD_FLAG.REMOVE) !== 0;
  out.cport = view.getUint16(o + R.CPORT, true);
  out.vport = view.getUint16(o + R.VPORT, true);
  out.dport = view.getUint16(o + R.DPORT, true);
  out.fwmark = view.getUint32(o + R.FWMARK, true);
  out.timeoutMs = view.getUint32(o + R.TIMEOUT_MS, true);
  out.packets = view.getUint32(o + R.PACKETS, true);
  readWords(view, o + R.CADDR, out.caddr);
  readWords(view, o + R.VADDR, out.vaddr);
  readWords(view, o + R.DADDR, out.daddr);
}

/** A DataView over a batch of records (no copy). */
export function syncRecordView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
