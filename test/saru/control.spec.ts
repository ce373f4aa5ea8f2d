import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SaruError } from '../../core/index.js';
import {
  ControlClient,
  ControlServer,
  FrameReader,
  MAX_REQUEST_BYTES,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type ControlRequest,
} from '../../saru/control.js';

const quiet = { info() {}, warn() {}, debug() {} };

function body(frame: Uint8Array): Uint8Array {
  return frame.subarray(4);
}

describe('control socket', () => {
  describe('codec', () => {
    it('round-trips every request kind', () => {
      const reqs: ControlRequest[] = [
        { id: 7, listServices: { stats: true, rate: false, exact: true } },
        { id: 8, listConnections: { limit: 100 } },
        { id: 9, clusterStatus: {} },
        { id: 10, reload: {} },
      ];
      for (const r of reqs) {
        const back = decodeRequest(body(encodeRequest(r)));
        assert.equal(back.id, r.id);
        for (const k of ['listServices', 'listConnections', 'clusterStatus', 'reload'] as const) {
          assert.equal(back[k] !== undefined, r[k] !== undefined, k);
        }
      }
      assert.deepEqual(decodeRequest(body(encodeRequest(reqs[0]!))).listServices, { stats: true, rate: false, exact: true });
      assert.equal(decodeRequest(body(encodeRequest(reqs[1]!))).listConnections?.limit, 100);
    });

    it('round-trips a response with cluster state', () => {
      const cluster = {
        nodeId: 3, interface: 'eth0', clusterInterface: 'eth1', buckets: 1024, sense: 'src-port', epoch: 4, slice: '0-341',
        ownedBuckets: 342, state: 'static', uptimeMs: 1234.5, connections: 10, tableCapacity: 1 << 20,
        counters: [{ name: 'rxFrames', value: 2 ** 40 }], drops: [{ name: 'not-our-slice', value: 5 }], port: [], ioMode: 'ring', filterInsns: 27, unresolved: ['198.18.0.101'],
        drainingBuckets: 0, draining: '', drainingConnections: 0, leaseExpired: false, coordinator: null,
      };
      const back = decodeResponse(body(encodeResponse({ id: 5, text: 'x\n', cluster })));
      assert.equal(back.id, 5);
      assert.equal(back.text, 'x\n');
      assert.deepEqual(back.cluster, cluster);
    });

    it('round-trips the coordinator view with epochs beyond 32 bits', () => {
      const epoch = 1_763_700_000_000 * 1024 + 3;
      const member = {
        id: 3, self: true, alive: true, state: 'active', weight: 2, synced: false, incarnation: 1_763_700_000_000, buckets: 683, member: true,
        acceptedEpoch: epoch, appliedEpoch: epoch, heartbeatAgeMs: -1, clusterPathAgeMs: -1, dataPathAgeMs: 12.5,
      };
      const coordinator = {
        master: 3, isMaster: true, epoch, epochMaster: 3, acceptedEpoch: epoch, appliedEpoch: epoch, quorate: true, stale: false, ready: true,
        state: 'active', weight: 2, incarnation: 1_763_700_000_000, keepaliveMs: 100, deadtimeMs: 300, leaseMs: -1, members: [member], counters: [{ name: 'rx', value: 7 }],
      };
      const cluster = {
        nodeId: 3, interface: 'eth0', clusterInterface: 'eth1', buckets: 1024, sense: 'src-port', epoch, slice: '0-682', ownedBuckets: 683, state: 'active',
        uptimeMs: 1, connections: 0, tableCapacity: 1024, counters: [], drops: [], port: [], ioMode: 'ring', filterInsns: 9, unresolved: [],
        drainingBuckets: 2, draining: '700-701', drainingConnections: 5, leaseExpired: false, coordinator,
      };
      assert.deepEqual(decodeResponse(body(encodeResponse({ id: 1, cluster }))).cluster, cluster);
      assert.deepEqual(decodeRequest(body(encodeRequest({ id: 2, syncReady: { synced: true } }))).syncReady, { synced: true });
    });

    it('frames carry a 4-byte big-endian length', () => {
      const f = encodeRequest({ id: 1, reload: {} });
      assert.equal(new DataView(f.buffer, f.byteOffset).getUint32(0, false), f.length - 4);
    });

    it('never throws anything but SaruError on random bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
          for (const decode of [decodeRequest, decodeResponse]) {
            try {
              decode(bytes);
            } catch (e) {
              assert.ok(e instanceof SaruError && e.code === 'SARU_ERR_CONTROL', String(e));
            }
          }
        }),
      );
    });

    it('reassembles frames split anywhere and rejects oversized ones', () => {
      const frames = [encodeRequest({ id: 1, reload: {} }), encodeRequest({ id: 2, listConnections: { limit: 3 } })];
      const all = new Uint8Array(frames[0]!.length + frames[1]!.length);
      all.set(frames[0]!);
      all.set(frames[1]!, frames[0]!.length);
      for (let cut = 0; cut <= all.length; cut++) {
        const r = new FrameReader(1024);
        const got = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
        assert.deepEqual(got.map((b) => decodeRequest(b).id), [1, 2]);
      }
      const r = new FrameReader(16);
      assert.throws(() => r.push(Uint8Array.from([0, 0, 0, 17])), /17 bytes exceeds the limit of 16/);
    });
  });

  describe('server and client', () => {
    let path: string;
    let server: ControlServer;
    const seen: ControlRequest[] = [];

    beforeEach(async () => {
      path = join(mkdtempSync(join(tmpdir(), 'saru-ctl-')), 'saru.sock');
      seen.length = 0;
      server = new ControlServer(
        path,
        async (req) => {
          seen.push(req);
          if (req.reload) throw new SaruError('SARU_ERR_CONFIG', 'services.cf:3: bad');
          return { text: `listing ${req.listServices?.stats ? 'stats' : 'plain'}\n` };
        },
        quiet,
      );
      await server.start();
    });
    afterEach(async () => server.stop());

    it('answers requests in order and carries daemon errors with their code', async () => {
      const c = await ControlClient.connect(path);
      const [a, b] = await Promise.all([c.request({ listServices: { stats: true } }), c.request({ listServices: {} })]);
      assert.equal(a.text, 'listing stats\n');
      assert.equal(b.text, 'listing plain\n');
      await assert.rejects(c.request({ reload: {} }), (e: unknown) => e instanceof SaruError && e.code === 'SARU_ERR_CONFIG' && /services\.cf:3: bad/.test(e.message));
      c.close();
      assert.equal(seen.length, 3);
    });

    it('refuses to start twice on one path, and replaces a stale socket file', async () => {
      const second = new ControlServer(path, async () => ({}), quiet);
      await assert.rejects(second.start(), /already listening/);
      await server.stop();
      // A file left behind by a crashed daemon: a plain file at the path.
      const { writeFileSync } = await import('node:fs');
      writeFileSync(path, '');
      await second.start();
      await second.stop();
      await server.start();
    });

    it('answers garbage with an error and stays up for others', async () => {
      const raw = createConnection(path);
      await new Promise((r) => raw.once('connect', r));
      const reply = new Promise<Buffer>((res) => raw.once('data', res));
      const junk = Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff]);
      raw.write(junk);
      const res = decodeResponse((await reply).subarray(4));
      assert.equal(res.errorCode, 'SARU_ERR_CONTROL');
      const big = Buffer.alloc(4);
      big.writeUInt32BE(MAX_REQUEST_BYTES + 1);
      const closed = new Promise((r) => raw.once('close', r));
      raw.write(big);
      await closed;
      const c = await ControlClient.connect(path);
      assert.equal((await c.request({ listServices: {} })).text, 'listing plain\n');
      c.close();
    });

    it('says when no daemon listens', async () => {
      await assert.rejects(ControlClient.connect(join(tmpdir(), 'no-such-saru.sock')), /is saru running/);
    });
  });
});
