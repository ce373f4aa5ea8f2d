/**
 * The public surface of native/: batched AF_PACKET frame I/O on Linux (a
 * TPACKET_V3 mmap rx ring or recvmmsg slots, sendmmsg tx), atomic classic BPF
 * socket filters, and a recording in-memory port with the same contract for
 * tests. Contains no policy: what to filter and what to send is saru/'s and
 * core/'s business. Other folders import native/ only through this file.
 */
export type { PacketPort, PacketPortInit, PortStats } from './types.js';
export { DEFAULT_MODE, NativePacketPort, nativeAvailable, openPacketPort } from './packet-port.js';
export { MemoryPort, PacketType, type MemoryPortInit } from './memory-port.js';
export {
  ACCEPT_ALL,
  ACCEPT_NONE,
  BPF_MAXINSNS,
  Bpf,
  BpfProgram,
  SKF_AD_IFINDEX,
  SKF_AD_OFF,
  SKF_AD_PKTTYPE,
  SKF_AD_PROTOCOL,
  SKF_LL_OFF,
  SKF_NET_OFF,
  SOCK_FILTER_LAYOUT,
  assemble,
  checkProgram,
  disassemble,
  jump,
  programLengthError,
  stmt,
  type BpfContext,
  type BpfInsn,
} from './bpf.js';
