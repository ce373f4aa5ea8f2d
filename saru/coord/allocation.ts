/**
 * Bucket allocation: which live director owns which bucket. Owns the pure
 * function the master runs on every membership change; it knows nothing of
 * messages, time or epochs, and never reads the network.
 *
 * Rules (docs/coordinator.md, "Allocation"):
 * - Quotas: member i gets floor(B * w_i / W) buckets; the B - sum(floor)
 *   leftover buckets go one each to the members with the largest remainder
 *   (B * w_i mod W), ties to the lowest id. So every member is within one
 *   bucket of its weighted share, and quotas depend only on the member set.
 * - Minimal movement: scanning buckets in ascending order, a bucket stays with
 *   its previous owner while that owner is still a member and below its new
 *   quota. Every other bucket (departed owner, over-quota owner, or no owner)
 *   is freed and the freed buckets, ascending, fill the under-quota members in
 *   ascending id order (so a newcomer gets runs of adjacent buckets, which
 *   keeps the classic-BPF range filter short). The number of moved buckets is
 *   therefore exactly sum(max(0, previous count - quota)) over surviving
 *   members plus the buckets whose previous owner is gone.
 * - Weight 0 means quota 0 (owns nothing). When every weight is 0, nobody
 *   owns anything (-1 everywhere): draining all directors is the operator's
 *   explicit choice.
 */
import { ErrorCode, SaruError } from '../../core/index.js';

/** Highest node id (epochs reserve 10 bits for it, see protocol.ts). */
export const MAX_NODE_ID = 1023;
/** Largest weight accepted (keeps B * w exact in a double). */
export const MAX_WEIGHT = 0x7fffffff;

export interface AllocMember {
  id: number;
  weight: number;
}

/**
 * The quota (number of buckets) of each member, in the order of `members`.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT on a bad bucket count, id or weight, or a duplicate id.
 */
export function quotas(buckets: number, members: readonly AllocMember[]): number[] {
  validate(buckets, members);
  const n = members.length;
  let total = 0;
  for (const m of members) total += m.weight;
  const q = new Array<number>(n).fill(0);
  if (total === 0) return q;
  const rem = new Array<number>(n);
  let given = 0;
  for (let i = 0; i < n; i++) {
    const x = buckets * members[i]!.weight; // exact: < 2^16 * 2^31
    q[i] = Math.floor(x / total);
    rem[i] = x - q[i]! * total;
    given += q[i]!;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => rem[b]! - rem[a]! || members[a]!.id - members[b]!.id,
  );
  for (let k = 0; given < buckets; k++) {
    q[order[k]!]!++;
    given++;
  }
  return q;
}

/**
 * Allocate `buckets` buckets among `members` (owner node id per bucket),
 * moving as few buckets as possible from `previous` (null: no history).
 * Deterministic and independent of the order of `members`.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT on bad arguments (programming errors).
 */
export function allocate(buckets: number, members: readonly AllocMember[], previous: Int32Array | null): Int32Array {
  if (previous !== null && previous.length !== buckets) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `previous allocation has ${previous.length} buckets, expected ${buckets}`);
  }
  const sorted = [...members].sort((a, b) => a.id - b.id);
  const q = quotas(buckets, sorted);
  const out = new Int32Array(buckets).fill(-1);
  // quota left per member id
  const left = new Map<number, number>();
  for (let i = 0; i < sorted.length; i++) left.set(sorted[i]!.id, q[i]!);
  if (previous !== null) {
    for (let b = 0; b < buckets; b++) {
      const p = previous[b]!;
      const l = left.get(p);
      if (l !== undefined && l > 0) {
        out[b] = p;
        left.set(p, l - 1);
      }
    }
  }
  let i = 0;
  for (let b = 0; b < buckets; b++) {
    if (out[b] !== -1) continue;
    while (i < sorted.length && left.get(sorted[i]!.id)! === 0) i++;
    if (i === sorted.length) break; // only when the total weight is 0
    const id = sorted[i]!.id;
    out[b] = id;
    left.set(id, left.get(id)! - 1);
  }
  return out;
}

/** Buckets per owner id (owners absent from the array are absent from the map). */
export function countOwners(owners: Int32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (let b = 0; b < owners.length; b++) {
    const o = owners[b]!;
    if (o >= 0) m.set(o, (m.get(o) ?? 0) + 1);
  }
  return m;
}

/** The owner array as runs [owner, length] covering every bucket in order. */
export function toRuns(owners: Int32Array): { owner: number[]; length: number[] } {
  const owner: number[] = [];
  const length: number[] = [];
  for (let b = 0; b < owners.length; ) {
    const o = owners[b]!;
    let e = b + 1;
    while (e < owners.length && owners[e] === o) e++;
    owner.push(o);
    length.push(e - b);
    b = e;
  }
  return { owner, length };
}

/** Inverse of toRuns; null when the runs do not cover exactly `buckets` buckets. */
export function fromRuns(buckets: number, owner: readonly number[], length: readonly number[]): Int32Array | null {
  if (owner.length !== length.length) return null;
  const out = new Int32Array(buckets);
  let b = 0;
  for (let i = 0; i < owner.length; i++) {
    const n = length[i]!;
    if (!Number.isInteger(n) || n <= 0 || b + n > buckets) return null;
    out.fill(owner[i]!, b, b + n);
    b += n;
  }
  return b === buckets ? out : null;
}

function validate(buckets: number, members: readonly AllocMember[]): void {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 65536) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `buckets must be an integer from 1 to 65536, got ${buckets}`);
  }
  const seen = new Set<number>();
  for (const m of members) {
    if (!Number.isInteger(m.id) || m.id < 0 || m.id > MAX_NODE_ID) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `node id must be an integer from 0 to ${MAX_NODE_ID}, got ${m.id}`);
    }
    if (!Number.isInteger(m.weight) || m.weight < 0 || m.weight > MAX_WEIGHT) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `weight of node ${m.id} must be an integer from 0 to ${MAX_WEIGHT}, got ${m.weight}`);
    }
    if (seen.has(m.id)) throw new SaruError(ErrorCode.INVALID_ARGUMENT, `node id ${m.id} appears twice`);
    seen.add(m.id);
  }
}
