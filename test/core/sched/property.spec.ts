/**
 * Property: for random server sets, weights, connection counts, overload
 * flags, removals, sh/mh flags and client addresses, every scheduler only
 * returns a usable server of the service (weight > 0, not overloaded,
 * available), and returns null only when no server is usable, or where the
 * kernel would: sh/mh without fallback and dh when the hashed bucket's
 * server is unusable, ovf when every usable server has activeconns > weight.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SvcFlag } from '../../../core/service.js';
import { SCHEDULER_NAMES } from '../../../core/sched/index.js';
import { flow, makeService, setV4 } from './fixtures.js';

const server = fc.record({
  weight: fc.integer({ min: 0, max: 6 }),
  active: fc.integer({ min: 0, max: 12 }),
  inact: fc.integer({ min: 0, max: 12 }),
  overloaded: fc.boolean(),
  removed: fc.boolean(),
});

const HASH_BUCKET_NULL = new Set(['dh']);
const HASH_FALLBACK = new Set(['sh', 'mh']);

for (const name of SCHEDULER_NAMES) {
  describe(`sched property: ${name}`, () => {
    it('never returns an unusable server; null only when the kernel would', () => {
      fc.assert(
        fc.property(
          fc.array(server, { minLength: 0, maxLength: 8 }),
          fc.constantFrom(0, SvcFlag.SCHED1, SvcFlag.SCHED2, SvcFlag.SCHED1 | SvcFlag.SCHED2),
          fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 65535 })), {
            minLength: 1,
            maxLength: 30,
          }),
          (specs, flags, clients) => {
            const { svc, rs } = makeService(
              name,
              specs.map((s, i) => ({ address: `10.1.${i >> 8}.${i & 255}`, weight: s.weight, active: s.active, inact: s.inact, overloaded: s.overloaded })),
              { flags },
            );
            specs.forEach((s, i) => {
              if (s.removed) svc.removeRealServer(rs[i]!.addr.text, 80);
            });
            const live = svc.realServers;
            const anyUsable = live.some((r) => r.weight > 0 && !r.overloaded);
            const anyOvf = live.some((r) => r.weight > 0 && !r.overloaded && r.activeConns <= r.weight);
            const f = flow('203.0.113.1');
            let t = 0;
            for (const [src, dst, sport] of clients) {
              setV4(f, src, dst);
              f.sport = sport;
              const got = svc.scheduler!.schedule(svc, f, (t += 1000));
              if (got !== null) {
                assert.ok(live.includes(got), 'a server of the service');
                assert.ok(got.weight > 0 && !got.overloaded && got.available, 'usable');
                continue;
              }
              if (name === 'ovf') assert.equal(anyOvf, false, 'ovf: null only when every usable server overflowed');
              else if (HASH_BUCKET_NULL.has(name)) continue;
              else if (HASH_FALLBACK.has(name) && (flags & SvcFlag.SCHED1) === 0) continue;
              else assert.equal(anyUsable, false, 'null only when no server is usable');
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  });
}
