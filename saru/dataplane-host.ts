/**
 * The control thread's handle on the data-plane worker: starts the worker
 * (saru/dataplane-worker.ts), turns requests into messages and replies into
 * promises, and reports the worker's death. Owns the message protocol between
 * the two threads (plain objects through a MessageChannel). Because the
 * worker lives in the daemon's process, the data plane dies with the
 * coordinator (fate sharing, DESIGN section 1).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ErrorCode, SaruError, errorFromCode, type ReconcileResult, type ServiceInitPair } from '../core/index.js';
import type { DataplaneInit, DataplaneStatus, InjectResult, NeighbourEntry, SliceChange } from './dataplane.js';

export interface WorkerData {
  ifname: string;
  ioMode: 'ring' | 'mmsg' | null;
  init: DataplaneInit;
  port: MessagePort;
}

export type WorkerRequest =
  | { id: number; op: 'list'; stats?: boolean; rate?: boolean; exact?: boolean }
  | { id: number; op: 'conns'; limit: number }
  | { id: number; op: 'status' }
  | { id: number; op: 'services'; services: ServiceInitPair[] }
  | { id: number; op: 'slice'; owned: number[]; epoch: number; change: SliceChange }
  | { id: number; op: 'lease'; until: number }
  | { id: number; op: 'neigh'; entries: NeighbourEntry[]; gateway4?: string; gateway6?: string }
  | { id: number; op: 'subscribe'; on: boolean; threshold?: number; period?: number; newSubscriber?: boolean; generation?: number }
  | { id: number; op: 'acked'; records: number }
  | { id: number; op: 'inject'; bytes: Uint8Array; count: number }
  | { id: number; op: 'dump'; cursor: number; max: number }
  | { id: number; op: 'stop' };

type Op = WorkerRequest['op'];
type Body<O extends Op> = Omit<Extract<WorkerRequest, { op: O }>, 'id' | 'op'>;

export interface ReadyInfo {
  mac: number[];
  mtu: number;
  filterInsns: number;
  filterError: string;
  realServers: string[];
  /** Packet I/O mode the port runs in ("ring", "mmsg", or "memory"). */
  ioMode: string;
}

export interface WorkerReply {
  id: number;
  ok: boolean;
  code?: string;
  message?: string;
  text?: string;
  status?: DataplaneStatus;
  reconcile?: ReconcileResult;
  realServers?: string[];
  ready?: ReadyInfo;
  inject?: InjectResult;
  /** Draining buckets released by an 'acked'. */
  released?: number;
  /** Sync records: a dump page (next = slot to continue from, -1 done) or, with id -2, sync events. */
  records?: { bytes: Uint8Array; count: number; next: number; epoch: number; generation?: number };
}

/** The data-plane worker, seen from the control thread. */
export class DataplaneHost {
  private readonly worker: Worker;
  private readonly ctl: MessagePort;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  private exited = false;
  /** Resolves with the worker's ready info, rejects with its start-up error. */
  readonly ready: Promise<ReadyInfo>;
  /** Called once if the worker dies or fails while running (not on stop()). */
  onFailure: (e: Error) => void = () => {};
  /** Sync events from the data plane while subscribed ('subscribe' op): sync records and their epoch. */
  onSyncRecords: (bytes: Uint8Array, count: number, epoch: number, generation: number) => void = () => {};
  private stopping = false;

  constructor(ifname: string, ioMode: 'ring' | 'mmsg' | null, init: DataplaneInit) {
    const { port1, port2 } = new MessageChannel();
    this.ctl = port1;
    const data: WorkerData = { ifname, ioMode, init, port: port2 };
    this.worker = new Worker(new URL('./dataplane-worker.js', import.meta.url), { workerData: data, transferList: [port2] });
    let readyResolve!: (r: ReadyInfo) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    let started = false;
    port1.on('message', (reply: WorkerReply) => {
      if (reply.id === 0) {
        started = true;
        if (reply.ok) readyResolve(reply.ready!);
        else readyReject(toError(reply));
        return;
      }
      if (reply.id === -2) {
        if (reply.records) this.onSyncRecords(reply.records.bytes, reply.records.count, reply.records.epoch, reply.records.generation ?? 0);
        return;
      }
      if (reply.id === -1) {
        this.onFailure(toError(reply));
        return;
      }
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply);
      else p.reject(toError(reply));
    });
    this.worker.on('error', (e) => {
      if (!started) readyReject(e);
      else if (!this.stopping) this.onFailure(e);
    });
    this.worker.on('exit', (code) => {
      this.exited = true;
      const e = new SaruError(ErrorCode.IO, `data-plane worker exited (code ${code})`);
      if (!started) readyReject(e);
      else if (!this.stopping) this.onFailure(e);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  /**
   * Ask the worker; resolves with its reply.
   * @throws SaruError with the worker's code when it fails the request, or SARU_ERR_IO when it has exited.
   */
  request<O extends Op>(op: O, body: Body<O>): Promise<WorkerReply> {
    if (this.exited) return Promise.reject(new SaruError(ErrorCode.IO, 'data-plane worker is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ctl.postMessage({ ...body, id, op });
    });
  }

  /** Stop forwarding, close the packet socket and end the thread. Idempotent. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.stopping = true;
    const exited = new Promise<void>((res) => this.worker.once('exit', () => res()));
    try {
      await Promise.race([this.request('stop', {}), new Promise((res) => setTimeout(res, 2000))]);
    } catch {
      // exited already
    }
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
    this.ctl.close();
  }
}

function toError(reply: WorkerReply): SaruError {
  return errorFromCode(reply.code, reply.message ?? 'data-plane worker error', ErrorCode.IO);
}
