/**
 * The control socket: a Unix-domain stream carrying length-prefixed protobuf
 * messages (saru/control.proto), the equivalent of IPVS's netlink socket.
 * Owns the codec, the framing (4-byte big-endian length, bounded), the server
 * the daemon runs and the client saruadm uses. It knows nothing of what the
 * requests mean: the daemon passes a handler.
 */
import { chmodSync, existsSync, unlinkSync, mkdirSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, SaruError, errorFromCode } from '../core/index.js';

/** Largest request frame accepted by the daemon, bytes. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Largest response frame accepted by clients, bytes. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

const root = protobuf.loadSync(fileURLToPath(new URL('../../saru/control.proto', import.meta.url)));
const RequestType = root.lookupType('saru.control.Request');
const ResponseType = root.lookupType('saru.control.Response');

export interface Counter {
  name: string;
  value: number;
}

export interface ClusterInfo {
  nodeId: number;
  interface: string;
  clusterInterface: string;
  buckets: number;
  sense: string;
  epoch: number;
  slice: string;
  ownedBuckets: number;
  state: string;
  uptimeMs: number;
  connections: number;
  tableCapacity: number;
  counters: Counter[];
  drops: Counter[];
  port: Counter[];
  ioMode: string;
  filterInsns: number;
  unresolved: string[];
  drainingBuckets: number;
  draining: string;
  drainingConnections: number;
  leaseExpired: boolean;
  /** Absent (null after decoding) with static_slice. */
  coordinator?: CoordinatorInfo | null;
}

/** One director as the coordinator sees it. Ages in ms, -1 = none. */
export interface MemberInfo {
  id: number;
  self: boolean;
  alive: boolean;
  state: string;
  weight: number;
  synced: boolean;
  incarnation: number;
  buckets: number;
  member: boolean;
  acceptedEpoch: number;
  appliedEpoch: number;
  heartbeatAgeMs: number;
  clusterPathAgeMs: number;
  dataPathAgeMs: number;
}

/** The coordinator's view for `saruadm --cluster`. */
export interface CoordinatorInfo {
  master: number;
  isMaster: boolean;
  epoch: number;
  epochMaster: number;
  acceptedEpoch: number;
  appliedEpoch: number;
  quorate: boolean;
  stale: boolean;
  ready: boolean;
  state: string;
  weight: number;
  incarnation: number;
  keepaliveMs: number;
  deadtimeMs: number;
  /** ms the lease has left, -1 = no limit. */
  leaseMs: number;
  members: MemberInfo[];
  counters: Counter[];
}

/** A request: exactly one body field set. */
export interface ControlRequest {
  id?: number;
  listServices?: { stats?: boolean; rate?: boolean; exact?: boolean };
  listConnections?: { limit?: number };
  clusterStatus?: Record<string, never>;
  reload?: Record<string, never>;
  syncReady?: { synced?: boolean };
  syncSubscribe?: { syncThreshold?: number; syncPeriod?: number };
  syncInject?: { records?: Uint8Array; count?: number };
  syncDump?: { cursor?: number; max?: number };
  syncStatus?: Record<string, never>;
  syncAcked?: { records?: number };
  healthStatus?: { json?: boolean };
}

/** Sync records (core/conn/record.ts): pushed sync events or a dump page. */
export interface SyncRecordsMsg {
  records: Uint8Array;
  count: number;
  epoch: number;
  /** Dump: slot to continue from, -1 when done. */
  next: number;
}

export interface InjectResultMsg {
  created: number;
  updated: number;
  removed: number;
  notFound: number;
  rejected: number;
}

export interface SyncPeerInfo {
  nodeId: number;
  address: string;
  incarnation: number;
  alive: boolean;
  lastHeardMs: number;
  counters: Counter[];
}

/** saru-syncd's status (saruadm --sync). */
export interface SyncInfo {
  nodeId: number;
  incarnation: number;
  synced: boolean;
  directorConnected: boolean;
  epoch: number;
  mode: string;
  counters: Counter[];
  peers: SyncPeerInfo[];
}

export interface ControlResponse {
  id?: number;
  errorCode?: string;
  error?: string;
  text?: string;
  cluster?: ClusterInfo;
  records?: SyncRecordsMsg;
  inject?: InjectResultMsg;
  sync?: SyncInfo;
}

const DECODE_OPTS = { longs: Number, defaults: true, arrays: true } as const;

/** Encode a request as one frame (length prefix included). */
export function encodeRequest(req: ControlRequest): Uint8Array {
  return frame(RequestType.encode(RequestType.fromObject(req)).finish());
}

/** Encode a response as one frame (length prefix included). */
export function encodeResponse(res: ControlResponse): Uint8Array {
  return frame(ResponseType.encode(ResponseType.fromObject(res)).finish());
}

/**
 * Decode a request body (without its length prefix).
 * @throws SaruError SARU_ERR_CONTROL when the bytes are not a Request or carry no body.
 */
export function decodeRequest(body: Uint8Array): ControlRequest {
  let obj: ControlRequest & { body?: string };
  try {
    obj = RequestType.toObject(RequestType.decode(body), { ...DECODE_OPTS, oneofs: true }) as ControlRequest & { body?: string };
  } catch (e) {
    throw new SaruError(ErrorCode.CONTROL, `malformed request: ${(e as Error).message}`);
  }
  if (obj.body === undefined) throw new SaruError(ErrorCode.CONTROL, 'request has no body');
  return obj;
}

/**
 * Decode a response body (without its length prefix).
 * @throws SaruError SARU_ERR_CONTROL when the bytes are not a Response.
 */
export function decodeResponse(body: Uint8Array): ControlResponse {
  try {
    return ResponseType.toObject(ResponseType.decode(body), DECODE_OPTS) as ControlResponse;
  } catch (e) {
    throw new SaruError(ErrorCode.CONTROL, `malformed response: ${(e as Error).message}`);
  }
}

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

/**
 * Splits a byte stream into frames. push() returns the complete frame bodies
 * received so far.
 * @throws SaruError SARU_ERR_CONTROL when a frame announces more than `maxBytes`.
 */
export class FrameReader {
  private buf = Buffer.alloc(0);
  constructor(private readonly maxBytes: number) {}

  push(chunk: Uint8Array): Uint8Array[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const out: Uint8Array[] = [];
    while (this.buf.length >= 4) {
      const n = this.buf.readUInt32BE(0);
      if (n > this.maxBytes) throw new SaruError(ErrorCode.CONTROL, `frame of ${n} bytes exceeds the limit of ${this.maxBytes}`);
      if (this.buf.length < 4 + n) break;
      out.push(this.buf.subarray(4, 4 + n));
      this.buf = this.buf.subarray(4 + n);
    }
    return out;
  }
}

/** One client connection, as the handler sees it. */
export interface ControlSession {
  /** Unique per server. */
  readonly id: number;
  readonly closed: boolean;
  /**
   * Send an unsolicited response (id 0). Returns false, and sends nothing,
   * when the connection is closed or more than MAX_PUSH_BACKLOG_BYTES wait
   * unsent (a stalled client must not grow the daemon without bound).
   */
  push(res: ControlResponse): boolean;
  /** Called once when the connection closes. */
  onClose(fn: () => void): void;
}

/** Unsent bytes beyond which ControlSession.push() drops, bytes. */
export const MAX_PUSH_BACKLOG_BYTES = 32 * 1024 * 1024;

export type ControlHandler = (req: ControlRequest, session: ControlSession) => Promise<ControlResponse>;

export interface ControlServerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/**
 * The daemon's side. Listens on a Unix socket (mode 0600: root's tool), one
 * request at a time per connection, answered in order. A malformed or
 * oversized request gets an error response and the connection is closed;
 * nothing a client sends can throw out of the server.
 */
export class ControlServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private sessions = 0;

  constructor(
    private readonly path: string,
    private readonly handler: ControlHandler,
    private readonly log: ControlServerLog,
  ) {}

  /**
   * Start listening. A stale socket file (nobody listening) is replaced.
   * @throws SaruError SARU_ERR_CONTROL when another daemon is listening on the path,
   *   SARU_ERR_IO when the socket cannot be created.
   */
  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    if (existsSync(this.path)) {
      if (await isListening(this.path)) {
        throw new SaruError(ErrorCode.CONTROL, `another daemon is already listening on ${this.path}`);
      }
      unlinkSync(this.path);
    }
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((res, rej) => {
      server.once('error', (e) => rej(new SaruError(ErrorCode.IO, `control socket ${this.path}: ${e.message}`)));
      server.listen(this.path, () => res());
    });
    chmodSync(this.path, 0o600);
    server.on('error', (e) => this.log.warn({ err: e.message }, 'control socket error'));
    this.server = server;
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    const reader = new FrameReader(MAX_REQUEST_BYTES);
    let chain = Promise.resolve();
    const closers: Array<() => void> = [];
    const session: ControlSession = {
      id: ++this.sessions,
      get closed() {
        return s.destroyed;
      },
      push(res: ControlResponse): boolean {
        if (s.destroyed || s.writableLength > MAX_PUSH_BACKLOG_BYTES) return false;
        s.write(encodeResponse({ ...res, id: 0 }));
        return true;
      },
      onClose(fn: () => void): void {
        closers.push(fn);
      },
    };
    s.on('close', () => {
      this.sockets.delete(s);
      for (const fn of closers.splice(0)) {
        try {
          fn();
        } catch (e) {
          this.log.warn({ err: (e as Error).message }, 'control session close handler failed');
        }
      }
    });
    s.on('error', () => s.destroy());
    s.on('data', (chunk) => {
      let bodies: Uint8Array[];
      try {
        bodies = reader.push(chunk);
      } catch (e) {
        this.reject(s, e as Error);
        return;
      }
      for (const body of bodies) {
        chain = chain.then(async () => {
          let res: ControlResponse;
          let id = 0;
          try {
            const req = decodeRequest(body);
            id = req.id ?? 0;
            res = await this.handler(req, session);
          } catch (e) {
            res = errorResponse(e as Error);
          }
          res.id = id;
          if (!s.destroyed) s.write(encodeResponse(res));
        });
      }
    });
  }

  private reject(s: Socket, e: Error): void {
    this.log.warn({ err: e.message }, 'control client sent a bad frame; closing');
    if (!s.destroyed) s.end(encodeResponse(errorResponse(e)));
  }

  /** Close the socket and every client connection, and remove the socket file. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => server.close(() => res()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

function errorResponse(e: Error): ControlResponse {
  const code = e instanceof SaruError ? e.code : ErrorCode.CONTROL;
  return { errorCode: code, error: e.message };
}

function isListening(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}

/**
 * A client connection (saruadm, saru-syncd, tests). Requests are answered in
 * order; each has a timeout.
 */
export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ControlResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly reader = new FrameReader(MAX_RESPONSE_BYTES);
  private closed = false;
  /** Pushed responses (id 0), e.g. sync events after SyncSubscribe. What it throws closes the client. */
  onPush: (res: ControlResponse) => void = () => {};
  /** Called once when the connection ends (daemon gone, bad frame, or close()). */
  onClose: (e: Error) => void = () => {};

  private constructor(private readonly socket: Socket, private readonly path: string) {
    socket.on('data', (chunk) => {
      let bodies: Uint8Array[];
      try {
        bodies = this.reader.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const body of bodies) {
        let res: ControlResponse;
        try {
          res = decodeResponse(body);
        } catch (e) {
          this.fail(e as Error);
          return;
        }
        if (!res.id) {
          try {
            this.onPush(res);
          } catch (e) {
            this.fail(e as Error);
            return;
          }
          continue;
        }
        const p = this.pending.get(res.id);
        if (!p) continue;
        this.pending.delete(res.id ?? 0);
        clearTimeout(p.timer);
        p.resolve(res);
      }
    });
    socket.on('error', (e) => this.fail(new SaruError(ErrorCode.CONTROL, `control socket ${path}: ${e.message}`)));
    socket.on('close', () => this.fail(new SaruError(ErrorCode.CONTROL, `control socket ${path} closed by the daemon`)));
  }

  /**
   * Connect to a daemon's control socket.
   * @throws SaruError SARU_ERR_CONTROL when nothing listens there (saying which path).
   */
  static connect(path: string, timeoutMs = 5000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new SaruError(ErrorCode.CONTROL, `no answer from ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new ControlClient(s, path));
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'is saru running? (no daemon listening)' : e.message;
        reject(new SaruError(ErrorCode.CONTROL, `cannot connect to ${path}: ${why}`));
      });
    });
  }

  /**
   * Send a request and wait for its response.
   * @throws SaruError with the daemon's error code when the daemon reports an
   *   error; SARU_ERR_CONTROL on timeout or a closed connection.
   */
  request(req: ControlRequest, timeoutMs = 10000): Promise<ControlResponse> {
    if (this.closed) return Promise.reject(new SaruError(ErrorCode.CONTROL, `control socket ${this.path} is closed`));
    const id = this.nextId++;
    return new Promise<ControlResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SaruError(ErrorCode.CONTROL, `no response from ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(encodeRequest({ ...req, id }));
    }).then((res) => {
      if (res.errorCode) throw errorFromCode(res.errorCode, res.error || res.errorCode, ErrorCode.CONTROL);
      return res;
    });
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
    this.socket.destroy();
    this.onClose(e);
  }

  /** Whether the connection has ended. */
  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.fail(new SaruError(ErrorCode.CONTROL, 'closed'));
  }
}
