/**
 * The IPVS connection state machine: TCP states, the three TCP transition
 * tables (INPUT and OUTPUT for NAT, where the director sees both directions;
 * INPUT_ONLY for DR and TUN, where it sees only client -> server), which
 * states count as active connections, per-state timeouts and the names
 * `ipvsadm -L -c` prints.
 *
 * Owns constants and pure functions only: no table, no clock, no counters.
 * Carried over (not copied) from the Linux kernel:
 *  - net/netfilter/ipvs/ip_vs_proto_tcp.c: tcp_states[] (the normal table,
 *    not tcp_states_dos used with secure_tcp), tcp_state_idx(), tcp_timeouts[],
 *    tcp_state_name_table[], tcp_state_active_table[] (the kernel since 4.x
 *    counts SYN_SENT, SYN_RECV and SYNACK as active, not only ESTABLISHED).
 *  - net/netfilter/ipvs/ip_vs_proto_udp.c: udp_timeouts[] (5 min), state "UDP".
 *  - net/netfilter/ipvs/ip_vs_proto_icmp.c (2.6 era): 60 s, state "ICMP".
 */
import { TcpFlag } from '../packet/frame.js';
import { Proto } from '../constants.js';
import { ErrorCode, SaruError } from '../errors.js';

/** IP_VS_TCP_S_* (include/net/ip_vs.h). */
export const TcpState = {
  NONE: 0,
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT: 4,
  TIME_WAIT: 5,
  CLOSE: 6,
  CLOSE_WAIT: 7,
  LAST_ACK: 8,
  LISTEN: 9,
  SYNACK: 10,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];
/** IP_VS_TCP_S_LAST. */
export const TCP_STATE_COUNT = 11;

/** Names as ipvsadm -L -c prints them, indexed by TcpState. */
export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'SYNACK',
];

export { TcpFlag };

/** Which transition table applies: tcp_state_off[] in ip_vs_proto_tcp.c. */
export const TcpDir = {
  /** Client -> server, NAT (the director also sees replies). */
  INPUT: 0,
  /** Server -> client reply through the director (NAT only). */
  OUTPUT: 1,
  /** Client -> server when replies bypass the director (DR, TUN: IP_VS_CONN_F_NOOUTPUT). */
  INPUT_ONLY: 2,
} as const;
export type TcpDir = (typeof TcpDir)[keyof typeof TcpDir];

/**
 * Event index of a TCP segment, as tcp_state_idx(): RST wins over SYN, SYN
 * over FIN, FIN over ACK; a segment with none of them is -1 (the kernel then
 * moves the entry to CLOSE).
 */
export function tcpEventIndex(flags: number): number {
  if (flags & TcpFlag.RST) return 3;
  if (flags & TcpFlag.SYN) return 0;
  if (flags & TcpFlag.FIN) return 1;
  if (flags & TcpFlag.ACK) return 2;
  return -1;
}

// Short names so the tables below read like the kernel's.
const NO = 0, ES = 1, SS = 2, SR = 3, FW = 4, TW = 5, CL = 6, CW = 7, LA = 8, LI = 9, SA = 10;

/**
 * tcp_states[] from ip_vs_proto_tcp.c: [direction][event][current] -> next.
 * Columns: NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE,
 * CLOSE_WAIT, LAST_ACK, LISTEN, SYNACK. Rows: syn, fin, ack, rst.
 */
// prettier-ignore
const TABLE: readonly (readonly number[])[] = [
  // INPUT
  /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
  /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
  /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
  /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
  // OUTPUT
  /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
  /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
  /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
  /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
  // INPUT_ONLY
  /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
  /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
  /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
  /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/** The same table flattened: index ((dir * 4 + event) * 11 + state). */
const NEXT = new Uint8Array(3 * 4 * TCP_STATE_COUNT);
for (let row = 0; row < TABLE.length; row++) {
  for (let s = 0; s < TCP_STATE_COUNT; s++) NEXT[row * TCP_STATE_COUNT + s] = TABLE[row]![s]!;
}

/**
 * Next TCP state for a segment with `flags` seen in direction `dir` while in
 * `state` (set_tcp_state). A segment without SYN/FIN/ACK/RST gives CLOSE,
 * as the kernel's `new_state = IP_VS_TCP_S_CLOSE` default.
 */
export function tcpNextState(dir: TcpDir, flags: number, state: number): number {
  const ev = tcpEventIndex(flags);
  if (ev < 0 || state >= TCP_STATE_COUNT) return TcpState.CLOSE;
  return NEXT[(dir * 4 + ev) * TCP_STATE_COUNT + state]!;
}

/** tcp_state_active_table[]: which states count in the real server's ActiveConn. */
const ACTIVE = new Uint8Array([0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]);

/** Whether a TCP entry in `state` counts as active (ActiveConn) rather than inactive. */
export function tcpStateActive(state: number): boolean {
  return state < TCP_STATE_COUNT && ACTIVE[state] === 1;
}

/** Default TCP timeouts in seconds, tcp_timeouts[] of ip_vs_proto_tcp.c, indexed by TcpState. */
export const DEFAULT_TCP_TIMEOUTS_S: readonly number[] = [
  2, // NONE
  15 * 60, // ESTABLISHED
  2 * 60, // SYN_SENT
  60, // SYN_RECV
  2 * 60, // FIN_WAIT
  2 * 60, // TIME_WAIT
  10, // CLOSE
  60, // CLOSE_WAIT
  30, // LAST_ACK
  2 * 60, // LISTEN
  120, // SYNACK
];
/** udp_timeouts[IP_VS_UDP_S_NORMAL] (ip_vs_proto_udp.c). */
export const DEFAULT_UDP_TIMEOUT_S = 5 * 60;
/** icmp_timeouts[] of the 2.6 ip_vs_proto_icmp.c. */
export const DEFAULT_ICMP_TIMEOUT_S = 60;
/** ip_vs_conn_new() arms a fresh entry with 3 s before its first state transition. */
export const NEW_ENTRY_TIMEOUT_MS = 3000;
/** ip_vs_conn_expire(): a template still controlling connections is re-armed with 60 s. */
export const TEMPLATE_REARM_MS = 60_000;
/**
 * Longest timeout the table accepts: expiry times are u32 milliseconds
 * compared wrap-safely (as jiffies with time_after), so differences must stay
 * below 2^31 ms (about 24.8 days); we keep a margin: 0x70000000 ms, about
 * 21.7 days. Longer timeouts are refused at init and clamped elsewhere.
 */
export const MAX_TIMEOUT_MS = 0x70000000;

/**
 * Timeout overrides in seconds, as `ipvsadm --set tcp tcpfin udp` and the
 * per-state sysctl-like table. Anything not given keeps the kernel default.
 */
export interface TimeoutsInit {
  /** ESTABLISHED (ipvsadm --set first value). */
  tcp?: number;
  /** FIN_WAIT (ipvsadm --set second value). */
  tcpfin?: number;
  /** UDP (ipvsadm --set third value). */
  udp?: number;
  /** ICMP entries. */
  icmp?: number;
  /** Any TCP state by name, e.g. { TIME_WAIT: 60 }. Applied after tcp/tcpfin. */
  tcpStates?: Partial<Record<string, number>>;
}

/** Resolved timeouts in milliseconds. */
export class Timeouts {
  /** Per TcpState. */
  readonly tcpMs = new Uint32Array(TCP_STATE_COUNT);
  udpMs = DEFAULT_UDP_TIMEOUT_S * 1000;
  icmpMs = DEFAULT_ICMP_TIMEOUT_S * 1000;

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT on a negative, non-finite, too long or unknown entry. */
  constructor(init: TimeoutsInit = {}) {
    for (let s = 0; s < TCP_STATE_COUNT; s++) this.tcpMs[s] = DEFAULT_TCP_TIMEOUTS_S[s]! * 1000;
    if (init.tcp !== undefined) this.tcpMs[TcpState.ESTABLISHED] = toMs(init.tcp, 'tcp');
    if (init.tcpfin !== undefined) this.tcpMs[TcpState.FIN_WAIT] = toMs(init.tcpfin, 'tcpfin');
    if (init.udp !== undefined) this.udpMs = toMs(init.udp, 'udp');
    if (init.icmp !== undefined) this.icmpMs = toMs(init.icmp, 'icmp');
    for (const [name, v] of Object.entries(init.tcpStates ?? {})) {
      const s = TCP_STATE_NAMES.indexOf(name);
      if (s < 0) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `unknown TCP state "${name}"`);
      if (v !== undefined) this.tcpMs[s] = toMs(v, name);
    }
  }

  /** Timeout of a non-template entry of `protocol` in `state`. */
  forState(protocol: number, state: number): number {
    if (protocol === Proto.TCP) return state < TCP_STATE_COUNT ? this.tcpMs[state]! : this.tcpMs[TcpState.CLOSE]!;
    if (protocol === Proto.ICMP || protocol === Proto.ICMPV6) return this.icmpMs;
    return this.udpMs;
  }
}

function toMs(s: number, what: string): number {
  if (!Number.isFinite(s) || s < 0) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `timeout ${what} must be >= 0 seconds, got ${s}`);
  }
  const ms = Math.round(s * 1000);
  if (ms > MAX_TIMEOUT_MS) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `timeout ${what} too long (max ${Math.floor(MAX_TIMEOUT_MS / 1000)} s)`);
  }
  return ms;
}

/**
 * The state column of `ipvsadm -L -c` (ip_vs_state_name): TCP state names,
 * "UDP" for UDP, "ICMP" for ICMP, "NONE" for persistence templates (state 0),
 * "ERR!" for anything out of range.
 */
export function stateName(protocol: number, state: number, template: boolean): string {
  if (template) return state === 0 ? 'NONE' : 'ERR!';
  if (protocol === Proto.TCP) return state < TCP_STATE_COUNT ? TCP_STATE_NAMES[state]! : 'ERR!';
  if (protocol === Proto.UDP) return state === 0 ? 'UDP' : 'ERR!';
  if (protocol === Proto.ICMP || protocol === Proto.ICMPV6) return state === 0 ? 'ICMP' : 'ERR!';
  return 'ERR!';
}

/** Number of valid states for a protocol (1 for single-state protocols). */
export function stateCount(protocol: number): number {
  return protocol === Proto.TCP ? TCP_STATE_COUNT : 1;
}
