/**
 * Property test: random sequences of create / lookup / packet / advance
 * clock / expire / remove / import against a Map-based model. After every
 * step the live keys, their real servers, states and remaining timeouts, and
 * the real servers' active/inactive counters must agree.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { IpAddress } from '../../../core/addr.js';
import { ManualClock } from '../../../core/clock.js';
import { Fwd, Proto } from '../../../core/constants.js';
import { ServiceTable, type RealServer, type VirtualService } from '../../../core/service.js';
import {
  ConnSnapshot,
  ConnTable,
  ImportResult,
  TcpDir,
  TcpState,
  Timeouts,
  tcpNextState,
  tcpStateActive,
  NEW_ENTRY_TIMEOUT_MS,
} from '../../../core/conn/index.js';
import { flow } from './helpers.js';

const CAPACITY = 8; // a power of two, so the table does not round it up
const CLIENTS = ['198.51.100.1', '2001:db8::1'];
const FLAGS = [0x02, 0x10, 0x11, 0x04, 0x12, 0x00, 0x14];

interface Entry {
  rs: RealServer;
  state: number;
  expiry: number;
  noOutput: boolean;
}

type Op =
  | { op: 'create'; c: number; port: number; s: number; r: number }
  | { op: 'lookup'; c: number; port: number; s: number }
  | { op: 'packet'; c: number; port: number; s: number; out: boolean; f: number }
  | { op: 'advance'; ms: number }
  | { op: 'expire' }
  | { op: 'remove'; c: number; port: number; s: number }
  | { op: 'import'; c: number; port: number; s: number; r: number; state: number; timeoutMs: number; remove: boolean };

const key = fc.record({ c: fc.nat(CLIENTS.length - 1), port: fc.integer({ min: 1000, max: 1002 }), s: fc.nat(3) });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: key.chain((k) => fc.record({ r: fc.nat(1) }).map((x) => ({ op: 'create' as const, ...k, ...x }))) },
  { weight: 2, arbitrary: key.map((k) => ({ op: 'lookup' as const, ...k })) },
  {
    weight: 5,
    arbitrary: key.chain((k) =>
      fc.record({ out: fc.boolean(), f: fc.constantFrom(...FLAGS) }).map((x) => ({ op: 'packet' as const, ...k, ...x })),
    ),
  },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constantFrom(1, 2_000, 3_000, 10_000, 60_000), fc.integer({ min: 0, max: 400_000 })).map((ms) => ({ op: 'advance' as const, ms })) },
  { weight: 2, arbitrary: fc.constant({ op: 'expire' as const }) },
  { weight: 1, arbitrary: key.map((k) => ({ op: 'remove' as const, ...k })) },
  {
    weight: 2,
    arbitrary: key.chain((k) =>
      fc
        .record({ r: fc.nat(2), state: fc.nat(11), timeoutMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1_000_000 })), remove: fc.boolean() })
        .map((x) => ({ op: 'import' as const, ...k, ...x })),
    ),
  },
);

describe('conn/model: table vs Map model (fast-check)', () => {
  it('same live keys, real servers, states, timeouts and counters', function () {
    this.timeout(60_000);
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 150, size: 'max' }), (ops) => {
        const clock = new ManualClock(5_000_000);
        const services = new ServiceTable();
        // Services: 0 TCP/80 NAT v4, 1 UDP/53 DR v4, 2 TCP/80 DR v6, 3 UDP/53 NAT v6.
        const svcs: VirtualService[] = [
          services.add({ protocol: Proto.TCP, address: '192.0.2.10', port: 80 }),
          services.add({ protocol: Proto.UDP, address: '192.0.2.10', port: 53 }),
          services.add({ protocol: Proto.TCP, address: '2001:db8::10', port: 80 }),
          services.add({ protocol: Proto.UDP, address: '2001:db8::10', port: 53 }),
        ];
        const fwds = [Fwd.NAT, Fwd.DR, Fwd.DR, Fwd.NAT];
        const rss = svcs.map((svc, i) => {
          const base = svc.family === 4 ? '10.0.0.' : '2001:db8:1::';
          return [1, 2].map((h) => svc.addRealServer({ address: `${base}${h}`, port: 0, fwd: fwds[i]! }));
        });
        const table = new ConnTable({ capacity: CAPACITY, wheelTickMs: 64, wheelSlots: 256 }, { clock, services });
        const timeouts = new Timeouts();
        const model = new Map<string, Entry>();
        let now = clock.now();

        // A key exists in the model only for a client of the service's family.
        const famOk = (c: number, s: number): boolean => IpAddress.parse(CLIENTS[c]!).family === svcs[s]!.family;
        const mkFlow = (c: number, port: number, s: number) => {
          const svc = svcs[s]!;
          return flow(svc.protocol, CLIENTS[c]!, port, svc.addr!.text, svc.port);
        };
        const timeoutOf = (s: number, state: number) => timeouts.forState(svcs[s]!.protocol, state);

        const check = (): void => {
          assert.equal(table.size, model.size);
          let n = 0;
          table.forEach(() => n++);
          assert.equal(n, model.size);
          const counts = new Map<RealServer, [number, number]>();
          for (const [k, e] of model) {
            const [c, port, s] = k.split('|').map(Number) as [number, number, number];
            const idx = table.lookupIn(mkFlow(c, port, s));
            assert.ok(idx >= 0, `model has ${k}`);
            assert.equal(table.realServerId(idx), e.rs.id);
            assert.equal(table.state(idx), e.state);
            assert.equal(table.remainingMs(idx), Math.max(0, e.expiry - now));
            const active = svcs[s]!.protocol === Proto.TCP && tcpStateActive(e.state);
            const cnt = counts.get(e.rs) ?? [0, 0];
            cnt[active ? 0 : 1]++;
            counts.set(e.rs, cnt);
          }
          for (const list of rss) {
            for (const r of list) {
              const [a, i] = counts.get(r) ?? [0, 0];
              assert.deepEqual([r.activeConns, r.inactConns], [a, i], `counters of ${r.addr.text}`);
            }
          }
        };

        const snap = new ConnSnapshot();
        for (const o of ops) {
          if (o.op === 'advance') {
            clock.advance(o.ms);
            now += o.ms;
          } else if (o.op === 'expire') {
            let due = 0;
            for (const [k, e] of model) if (e.expiry <= now) (model.delete(k), due++);
            assert.equal(table.expire(), due);
          } else if (!famOk(o.c, o.s)) {
            continue;
          } else {
            const k = `${o.c}|${o.port}|${o.s}`;
            const f = mkFlow(o.c, o.port, o.s);
            const idx = table.lookupIn(f);
            const e = model.get(k);
            assert.equal(idx >= 0, e !== undefined);
            if (o.op === 'create') {
              if (e) continue;
              const rs = rss[o.s]![o.r]!;
              const got = table.create(f, rs);
              if (model.size >= CAPACITY) {
                assert.equal(got, -1);
              } else {
                assert.ok(got >= 0);
                model.set(k, { rs, state: TcpState.NONE, expiry: now + NEW_ENTRY_TIMEOUT_MS, noOutput: rs.fwd !== Fwd.NAT });
              }
            } else if (o.op === 'lookup') {
              if (e && svcs[o.s]!.protocol === Proto.TCP && e.rs.fwd === Fwd.NAT) {
                const reply = flow(Proto.TCP, e.rs.addr.text, svcs[o.s]!.port, CLIENTS[o.c]!, o.port);
                assert.equal(table.lookupOut(reply), idx);
              }
            } else if (o.op === 'packet') {
              if (!e) continue;
              table.packet(idx, o.out, o.f);
              if (svcs[o.s]!.protocol === Proto.TCP) {
                let dir: TcpDir = o.out ? TcpDir.OUTPUT : TcpDir.INPUT;
                if (e.noOutput) {
                  if (o.out) e.noOutput = false;
                  else dir = TcpDir.INPUT_ONLY;
                }
                e.state = tcpNextState(dir, o.f, e.state);
              }
              e.expiry = now + timeoutOf(o.s, e.state);
            } else if (o.op === 'remove') {
              if (!e) continue;
              assert.equal(table.remove(idx), true);
              model.delete(k);
            } else {
              // import: r == 2 names an unknown real server.
              const proto = svcs[o.s]!.protocol;
              const state = proto === Proto.TCP ? o.state : 0;
              snap.reset();
              snap.family = svcs[o.s]!.family;
              snap.dfamily = snap.family;
              snap.protocol = proto;
              snap.caddr.set(f.saddr);
              snap.vaddr.set(f.daddr);
              snap.cport = o.port;
              snap.vport = svcs[o.s]!.port;
              snap.dport = svcs[o.s]!.port;
              snap.daddr.set(o.r < 2 ? rss[o.s]![o.r]!.addr.words : IpAddress.parse(snap.family === 4 ? '10.9.9.9' : '2001:db8:9::9').words);
              snap.fwd = fwds[o.s]!;
              snap.state = state >= 11 ? 11 : state;
              snap.timeoutMs = o.timeoutMs;
              snap.remove = o.remove;
              const res = table.importSynced(snap);
              if (snap.state >= 11) {
                assert.equal(res, ImportResult.REJECT_BAD_STATE);
              } else if (o.remove || o.timeoutMs === 0) {
                assert.equal(res, e ? ImportResult.REMOVED : ImportResult.NOT_FOUND);
                model.delete(k);
              } else if (o.r === 2) {
                assert.equal(res, ImportResult.REJECT_NO_DEST);
              } else if (e) {
                assert.equal(res, ImportResult.UPDATED);
                const rs = rss[o.s]![o.r]!;
                // Rebinding takes the new server's NOOUTPUT; otherwise the entry keeps its own.
                if (rs !== e.rs) e.noOutput = rs.fwd !== Fwd.NAT;
                e.rs = rs;
                e.state = snap.state;
                e.expiry = now + o.timeoutMs;
              } else if (model.size >= CAPACITY) {
                assert.equal(res, ImportResult.REJECT_FULL);
              } else {
                assert.equal(res, ImportResult.CREATED);
                const rs = rss[o.s]![o.r]!;
                model.set(k, { rs, state: snap.state, expiry: now + o.timeoutMs, noOutput: rs.fwd !== Fwd.NAT });
              }
            }
          }
          check();
        }
      }),
      { numRuns: 300 },
    );
  });
});
