/**
 * Protocol numbers, address families and forwarding methods, with the names
 * ipvsadm and ldirectord use for them. Owns no state.
 */

/** IP protocol numbers (IANA). */
export const Proto = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ICMPV6: 58,
} as const;
export type Proto = (typeof Proto)[keyof typeof Proto];

/** Address family: 4 or 6. */
export type Family = 4 | 6;

/**
 * Forwarding methods, numbered as IPVS's IP_VS_CONN_F_FWD_MASK values
 * (include/uapi/linux/ip_vs.h): MASQ 0, LOCALNODE 1, TUNNEL 2, DROUTE 3.
 */
export const Fwd = {
  NAT: 0,
  LOCAL: 1,
  TUN: 2,
  DR: 3,
} as const;
export type Fwd = (typeof Fwd)[keyof typeof Fwd];

/** ipvsadm's "Forward" column names, as printed by `ipvsadm -L -n`. */
export const FWD_IPVSADM_NAME: Record<Fwd, string> = {
  [Fwd.NAT]: 'Masq',
  [Fwd.LOCAL]: 'Local',
  [Fwd.TUN]: 'Tunnel',
  [Fwd.DR]: 'Route',
};

/** ldirectord.cf's names for forwarding methods. */
export const FWD_LDIRECTORD_NAME: Record<Fwd, string> = {
  [Fwd.NAT]: 'masq',
  [Fwd.LOCAL]: 'local',
  [Fwd.TUN]: 'ipip',
  [Fwd.DR]: 'gate',
};

/** ipvsadm's protocol column ("TCP", "UDP"), or "FWM" for firewall-mark services. */
export function protoName(proto: number): string {
  switch (proto) {
    case Proto.TCP:
      return 'TCP';
    case Proto.UDP:
      return 'UDP';
    case Proto.ICMP:
      return 'ICMP';
    case Proto.ICMPV6:
      return 'ICMPv6';
    default:
      return `IP${proto}`;
  }
}
