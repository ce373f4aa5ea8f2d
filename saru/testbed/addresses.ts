/**
 * The testbed's address plan: every address, network, MAC and namespace-local
 * interface name the testbed uses, defined once. Pure data and arithmetic;
 * owns no state and touches nothing.
 *
 * Everything lies in 198.18.0.0/15 (the benchmarking range) and 2001:2::/48
 * (the IPv6 benchmarking range), so test traffic can never leave the
 * namespaces for a real network.
 */

/** The MAC every director's data interface (eth0) carries. */
export const SHARED_MAC = '02:5a:52:55:00:01';

/** Largest director index: its own address 198.18.0.{10+i} must stay below the VIP (.100). */
export const MAX_DIRECTORS = 89;
/** Largest real-server index: 198.18.0.{100+j} must stay a host address. */
export const MAX_REAL_SERVERS = 154;

/** Addresses of director `i` (1-based). */
export interface DirectorAddresses {
  /** Own address on the data segment, the kernel's primary source (health checks, ARP). */
  own4: string;
  own6: string;
  /** Own address on the client network (same hub, on-link). */
  clientNet4: string;
  clientNet6: string;
  /** Address on the cluster network (eth1). */
  cluster4: string;
  /** Unique MAC of eth1. */
  clusterMac: string;
}

/** Addresses of real server `j` (1-based). */
export interface RealServerAddresses {
  ip4: string;
  ip6: string;
  /** MAC of its eth0 (fixed so captures are readable). */
  mac: string;
}

/** The address plan; `director(i)` and `real(j)` give per-host addresses. */
export interface TestbedAddresses {
  sharedMac: string;
  /** Data segment (directors, real servers). */
  dataNet4: string;
  dataNet6: string;
  /** Client network, on the same hub. */
  clientNet4: string;
  clientNet6: string;
  /** Cluster network (eth1 of the directors). */
  clusterNet4: string;
  vip4: string;
  vip6: string;
  /** Shared director address: NAT real servers' gateway (secondary on every director). */
  dip4: string;
  dip6: string;
  /** The client, which also routes the client network (directors send NAT replies to it). */
  client4: string;
  client6: string;
  clientMac: string;
  director(i: number): DirectorAddresses;
  real(j: number): RealServerAddresses;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export const ADDRESSES: TestbedAddresses = Object.freeze({
  sharedMac: SHARED_MAC,
  dataNet4: '198.18.0.0/24',
  dataNet6: '2001:2::/64',
  clientNet4: '198.18.1.0/24',
  clientNet6: '2001:2:0:1::/64',
  clusterNet4: '198.19.0.0/24',
  vip4: '198.18.0.100',
  vip6: '2001:2::100',
  dip4: '198.18.0.1',
  dip6: '2001:2::1',
  client4: '198.18.1.2',
  client6: '2001:2:0:1::2',
  clientMac: '02:5a:52:55:20:01',
  director(i: number): DirectorAddresses {
    checkIndex('director', i, MAX_DIRECTORS);
    // Decimal digits used as written in IPv6 (director 1 is 2001:2::11), as in IPv4.
    return {
      own4: `198.18.0.${10 + i}`,
      own6: `2001:2::${10 + i}`,
      clientNet4: `198.18.1.${10 + i}`,
      clientNet6: `2001:2:0:1::${10 + i}`,
      cluster4: `198.19.0.${i}`,
      clusterMac: `02:5a:52:55:01:${hex2(i)}`,
    };
  },
  real(j: number): RealServerAddresses {
    checkIndex('real server', j, MAX_REAL_SERVERS);
    return {
      ip4: `198.18.0.${100 + j}`,
      ip6: `2001:2::${100 + j}`,
      mac: `02:5a:52:55:10:${hex2(j)}`,
    };
  },
});

function checkIndex(what: string, i: number, max: number): void {
  if (!Number.isInteger(i) || i < 1 || i > max) throw new RangeError(`${what} index must be 1..${max}, got ${i}`);
}

/**
 * Director `i`'s share of `buckets` split into `n` contiguous near-equal
 * ranges (director i gets range i-1), inclusive, as saru.conf
 * `static_slice` writes it ("FIRST-LAST").
 */
export function staticSlice(i: number, n: number, buckets: number): [number, number] {
  if (!Number.isInteger(n) || n < 1 || n > buckets) throw new RangeError(`cannot split ${buckets} buckets among ${n} directors`);
  if (!Number.isInteger(i) || i < 1 || i > n) throw new RangeError(`director index must be 1..${n}, got ${i}`);
  const first = Math.floor(((i - 1) * buckets) / n);
  const last = Math.floor((i * buckets) / n) - 1;
  return [first, last];
}
