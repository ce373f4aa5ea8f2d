/** Sync records (core/conn/record.ts): the layout tiles 72 bytes, known bytes, and a round trip property. */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { Fwd, IpAddress, Proto } from '../../../core/index.js';
import { ConnSnapshot, SYNC_RECORD, readSyncRecord, syncRecordView, writeSyncRecord } from '../../../core/conn/index.js';

const WIDTHS: Record<string, number> = {
  FAMILY: 1, DFAMILY: 1, PROTOCOL: 1, FWD: 1, STATE: 1, FLAGS: 1, CPORT: 2, VPORT: 2, DPORT: 2,
  FWMARK: 4, TIMEOUT_MS: 4, PACKETS: 4, CADDR: 16, VADDR: 16, DADDR: 16,
};

describe('core/conn/record SYNC_RECORD', () => {
  it('fields tile the record exactly, aligned to their width (addresses to 8)', () => {
    const used = new Array<string | undefined>(SYNC_RECORD.SIZE);
    for (const [name, off] of Object.entries(SYNC_RECORD)) {
      if (name === 'SIZE') continue;
      const w = WIDTHS[name];
      assert.ok(w !== undefined, `${name} has no width in the test`);
      assert.equal(off % Math.min(w, 8), 0, `${name} misaligned`);
      for (let b = off; b < off + w; b++) {
        assert.equal(used[b], undefined, `${name} overlaps ${used[b]}`);
        used[b] = name;
      }
    }
    assert.equal(used.filter((u) => u !== undefined).length, SYNC_RECORD.SIZE);
  });

  it('writes known bytes: ports little-endian, addresses in network order', () => {
    const s = new ConnSnapshot();
    s.protocol = Proto.TCP;
    s.caddr.set(IpAddress.parse('198.51.100.7').words);
    s.vaddr.set(IpAddress.parse('192.0.2.10').words);
    s.daddr.set(IpAddress.parse('10.0.0.2').words);
    s.cport = 0x1234;
    s.vport = 80;
    s.dport = 8080;
    s.fwd = Fwd.NAT;
    s.state = 1;
    s.timeoutMs = 900000;
    s.template = true;
    const buf = new Uint8Array(SYNC_RECORD.SIZE * 2);
    writeSyncRecord(syncRecordView(buf), 1, s);
    const r = buf.subarray(SYNC_RECORD.SIZE);
    assert.deepEqual([...r.subarray(0, 8)], [4, 4, 6, Fwd.NAT, 1, 1, 0x34, 0x12]);
    assert.deepEqual([...r.subarray(SYNC_RECORD.CADDR + 10, SYNC_RECORD.CADDR + 16)], [0xff, 0xff, 198, 51, 100, 7]);
    assert.deepEqual([...r.subarray(SYNC_RECORD.TIMEOUT_MS, SYNC_RECORD.TIMEOUT_MS + 4)], [0xa0, 0xbb, 0x0d, 0x00]);
    assert.deepEqual([...buf.subarray(0, SYNC_RECORD.SIZE)], new Array(SYNC_RECORD.SIZE).fill(0), 'record 0 untouched');
  });

  it('round trip: every field survives write then read', () => {
    const words = fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 });
    fc.assert(
      fc.property(
        fc.record({
          family: fc.constantFrom(4, 6),
          dfamily: fc.constantFrom(4, 6),
          protocol: fc.integer({ min: 0, max: 255 }),
          fwd: fc.constantFrom(Fwd.DR, Fwd.NAT, Fwd.TUN),
          state: fc.integer({ min: 0, max: 255 }),
          template: fc.boolean(),
          synced: fc.boolean(),
          remove: fc.boolean(),
          cport: fc.integer({ min: 0, max: 65535 }),
          vport: fc.integer({ min: 0, max: 65535 }),
          dport: fc.integer({ min: 0, max: 65535 }),
          fwmark: fc.integer({ min: 0, max: 0xffffffff }),
          timeoutMs: fc.integer({ min: 0, max: 0xffffffff }),
          packets: fc.integer({ min: 0, max: 0xffffffff }),
          caddr: words,
          vaddr: words,
          daddr: words,
        }),
        fc.integer({ min: 0, max: 3 }),
        (f, i) => {
          const s = new ConnSnapshot();
          const { caddr, vaddr, daddr, ...scalars } = f;
          Object.assign(s, scalars);
          s.caddr.set(caddr);
          s.vaddr.set(vaddr);
          s.daddr.set(daddr);
          const buf = new Uint8Array(SYNC_RECORD.SIZE * 4);
          const view = syncRecordView(buf);
          writeSyncRecord(view, i, s);
          const back = new ConnSnapshot();
          readSyncRecord(view, i, back);
          assert.deepEqual({ ...back }, { ...s });
        },
      ),
    );
  });
});
