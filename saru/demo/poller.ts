/**
 * What the namespace story learns from the running directors, without
 * spawning a process per question: one director's saru and saru-syncd
 * answered over their control sockets (Unix sockets, reachable from the
 * root namespace), reconnecting after a restart; and the parsing of a
 * connection listing into own and synced established connections. Owns its
 * two socket connections.
 */
import { ControlClient, type ClusterInfo, type ControlRequest, type ControlResponse, type SyncInfo } from '../control.js';
import { sliceBuckets } from '../testbed/testbed.js';
import { splitConnections } from './state.js';

/** One poll of a director; null parts did not answer. */
export interface DirectorSample {
  /** When it was taken (the caller's clock, ms). */
  at: number;
  cluster: ClusterInfo | null;
  sync: SyncInfo | null;
  /** Established connections in its own buckets and held for others'. */
  conns: { own: number; synced: number } | null;
}

/** The value of counter `name` (0 when absent). */
export function counter(list: ReadonlyArray<{ name: string; value: number }> | undefined, name: string): number {
  return list?.find((c) => c.name === name)?.value ?? 0;
}

/**
 * Client ports and states of `saruadm -L -n -c` text (ipvsadm's connection
 * listing: pro expire state source virtual destination).
 */
export function parseConnectionList(text: string): Array<{ cport: number; established: boolean }> {
  const out: Array<{ cport: number; established: boolean }> = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[0] !== 'TCP' && f[0] !== 'UDP')) continue;
    const m = /:(\d+)$/.exec(f[3]!);
    if (!m) continue;
    out.push({ cport: Number(m[1]), established: f[2] === 'ESTABLISHED' });
  }
  return out;
}

/** The owned buckets of a --cluster view as a 0/1 mask. */
export function ownedMask(c: ClusterInfo): Uint8Array {
  const m = new Uint8Array(c.buckets);
  for (const b of sliceBuckets(c.slice, c.buckets)) m[b] = 1;
  return m;
}

/** Asks one director's saru and saru-syncd. */
export class DirectorPoller {
  private saru: ControlClient | null = null;
  private syncd: ControlClient | null = null;

  constructor(
    private readonly saruSocket: string,
    private readonly syncSocket: string,
    private readonly timeoutMs = 1500,
  ) {}

  private async client(which: 'saru' | 'syncd'): Promise<ControlClient | null> {
    const cur = which === 'saru' ? this.saru : this.syncd;
    if (cur && !cur.isClosed) return cur;
    try {
      const c = await ControlClient.connect(which === 'saru' ? this.saruSocket : this.syncSocket, this.timeoutMs);
      if (which === 'saru') this.saru = c;
      else this.syncd = c;
      return c;
    } catch {
      return null;
    }
  }

  /** Cluster view, sync status and connection split; parts that do not answer are null. */
  async poll(now: () => number): Promise<DirectorSample> {
    const ask = async <T>(which: 'saru' | 'syncd', req: ControlRequest, pick: (r: ControlResponse) => T | undefined): Promise<T | null> => {
      try {
        const c = await this.client(which);
        return c ? (pick(await c.request(req, this.timeoutMs)) ?? null) : null;
      } catch {
        return null;
      }
    };
    const [cluster, sync] = await Promise.all([ask('saru', { clusterStatus: {} }, (r) => r.cluster), ask('syncd', { syncStatus: {} }, (r) => r.sync)]);
    let conns: DirectorSample['conns'] = null;
    if (cluster) {
      const text = await ask('saru', { listConnections: { limit: 0 } }, (r) => r.text);
      if (text !== null) conns = splitConnections(parseConnectionList(text), ownedMask(cluster));
    }
    return { at: now(), cluster, sync, conns };
  }

  close(): void {
    this.saru?.close();
    this.syncd?.close();
    this.saru = null;
    this.syncd = null;
  }
}
