/**
 * The shapes saru-syncd's parts agree on: the decoded sync message (what
 * sync/sync.proto carries), batches of entries in core's fixed record form,
 * and the narrow interfaces the reliability engine (sync/node.ts) is given
 * (transport, the local director, clock). Types only; no behaviour.
 */
import type { Clock, Timers } from '../core/index.js';

/**
 * A batch of connection entries as back-to-back SYNC_RECORD records
 * (core/conn/record.ts, 72 bytes each): `bytes.length === count * 72`.
 */
export interface RecordBatch {
  bytes: Uint8Array;
  count: number;
}

/** Highest data sequence number received without a gap from one sender. */
export interface PeerAck {
  nodeId: number;
  incarnation: number;
  /** Every data datagram with dataSeq <= this has been received. */
  contiguous: number;
}

/** Sequenced connection entries, multicast (or sent to every unicast peer). */
export interface EntriesBody {
  kind: 'entries';
  /** Per-sender data sequence number, 1, 2, 3... per incarnation. Retransmissions keep it. */
  dataSeq: number;
  entries: RecordBatch;
}

/** Periodic liveness with the sender's newest data sequence number (tail-loss detection) and its acks. */
export interface AliveBody {
  kind: 'alive';
  /** Newest dataSeq this sender has sent (0: none yet). */
  lastDataSeq: number;
  /** Oldest dataSeq still in the sender's retransmission ring (0: ring empty). */
  oldestDataSeq: number;
  /** The sender holds the full table (finished its resync, or had nobody to resync from). */
  synced: boolean;
  acks: PeerAck[];
}

/** Missing data datagrams of `target`, as inclusive ranges, asked of `target`. */
export interface NackBody {
  kind: 'nack';
  target: number;
  targetIncarnation: number;
  ranges: Array<[number, number]>;
}

/** Ask `target` for its whole table. `session` is chosen by the requester (unique per requester incarnation). */
export interface ResyncRequestBody {
  kind: 'resyncRequest';
  target: number;
  session: number;
}

/** One chunk of a resync dump, sent to the requester `target`. `last` marks the final chunk (may carry 0 entries). */
export interface ResyncChunkBody {
  kind: 'resyncChunk';
  target: number;
  session: number;
  index: number;
  last: boolean;
  entries: RecordBatch;
}

/** Flow control of a resync: every chunk below `next` received, plus these above it. */
export interface ResyncAckBody {
  kind: 'resyncAck';
  target: number;
  session: number;
  next: number;
  received: number[];
}

export type SyncBody = EntriesBody | AliveBody | NackBody | ResyncRequestBody | ResyncChunkBody | ResyncAckBody;

/** One decoded, authenticated sync datagram. */
export interface SyncMessage {
  /** Sender's node id, 1..1023 (its saru node_id). */
  nodeId: number;
  /** Sender's incarnation: start time in ms, strictly increasing across restarts. */
  incarnation: number;
  /** Per-sender message counter over every message (replay protection), 1, 2, 3... */
  seq: number;
  /** Allocation epoch the sender's director forwards under (0: none known). */
  epoch: number;
  body: SyncBody;
}

/** Why a datagram was dropped by the codec (counted, never thrown). */
export type DecodeError = 'truncated' | 'oversized' | 'auth' | 'malformed';

export type DecodeResult = { ok: true; msg: SyncMessage } | { ok: false; error: DecodeError; detail: string };

/** Where a datagram came from or goes to. */
export interface PeerAddress {
  address: string;
  port: number;
}

/** Datagrams in and out. The adapter is sync/transport.ts (UDP multicast or unicast peers). */
export interface SyncTransport {
  /** Send to every peer (the multicast group, or each configured unicast peer). */
  broadcast(bytes: Uint8Array): void;
  /** Send to one peer. */
  sendTo(bytes: Uint8Array, to: PeerAddress): void;
}

/** The local director (`saru` through its control socket), as the sync node sees it. */
export interface SyncLocal {
  /** Entries received from peers: put them into the local table as synced entries. */
  inject(batch: RecordBatch): void;
  /**
   * One page of the local table for a resync dump: up to `max` entries from
   * table position `cursor`. Resolves with the next cursor (-1: done).
   */
  dump(cursor: number, max: number): Promise<{ batch: RecordBatch; next: number }>;
  /** The bulk resync finished (true) or is needed again (false): saru's SyncReady. */
  ready(synced: boolean): void;
  /**
   * Every live peer has acknowledged the first `records` records ever given
   * to submit() (a running count since the node was built). Called when the
   * count grows; optional.
   */
  acked?(records: number): void;
}

/** Injected time: the monotonic clock (ms) and timers. */
export interface SyncTimers extends Timers {
  clock: Clock;
}
