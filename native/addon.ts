/**
 * Loads the compiled addon (build/Release/saru_packet.node, built by
 * scripts/build-native.sh) and describes its raw interface. Owns loading
 * only: the typed, error-mapped port is packet-port.ts. Never loads off
 * Linux. The load is memoised per thread (each worker_thread loads its own
 * instance; the addon is context-aware).
 */
import { createRequire } from 'node:module';

/** What native/src/packet_socket.cc's Info() returns. */
export interface NativeInfo {
  ifindex: number;
  mac: Uint8Array;
  mtu: number;
  mode: 'ring' | 'mmsg';
  buffer: ArrayBuffer;
  ringBlockSize: number;
  ringBlocks: number;
}

/** The C++ PacketSocket; errors thrown carry `errno` and `syscall` (or are RangeErrors for bad arguments). */
export interface NativeSocket {
  info(): NativeInfo;
  /** Frames delivered into off/len, or -1 when a system call failed (then takeError() throws it). */
  receive(timeoutMs: number): number;
  transmit(
    rxBuf: Uint8Array,
    scratch: Uint8Array,
    off: Uint32Array,
    len: Uint32Array,
    inScratch: Uint8Array,
    count: number,
  ): number;
  send(frame: Uint8Array): boolean;
  setFilter(program: Uint8Array | null): void;
  stats(): Record<string, number>;
  close(): void;
  takeError(): void;
}

export interface NativeSocketOptions {
  mode: 'ring' | 'mmsg';
  batchSize: number;
  frameSize: number;
  ringBlocks: number;
  ringBlockSize: number;
  ringTimeoutMs: number;
  rcvbuf: number;
  sndbuf: number;
  netns?: string;
  filter?: Uint8Array;
}

export interface NativeAddon {
  PacketSocket: new (ifname: string, opts: NativeSocketOptions, off: Uint32Array, len: Uint32Array) => NativeSocket;
  /** struct sock_filter as compiled: size, field offsets, byte order. */
  layout: { sockFilterSize: number; code: number; jt: number; jf: number; k: number; littleEndian: boolean; maxInsns: number };
}

/** Relative to dist/native/addon.js: the package root's build/Release. */
const ADDON_PATH = '../../build/Release/saru_packet.node';

let loaded: { addon: NativeAddon | null; error: string } | undefined;

/** The addon, or null with the reason (not Linux, not built, failed to load). */
export function loadAddon(): { addon: NativeAddon | null; error: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    loaded = { addon: null, error: `packet I/O needs Linux (AF_PACKET); this is ${process.platform}` };
    return loaded;
  }
  try {
    const require = createRequire(import.meta.url);
    loaded = { addon: require(ADDON_PATH) as NativeAddon, error: '' };
  } catch (e) {
    loaded = {
      addon: null,
      error: `the native addon is not built or did not load (${(e as Error).message}); run "npm run build:native"`,
    };
  }
  return loaded;
}
