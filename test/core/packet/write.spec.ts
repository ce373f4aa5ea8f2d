/** writeTcp4Frame: the synthetic frames generators use are valid per our parser and per tshark. */
import assert from 'node:assert/strict';
import { Drop, ParsedFrame, TcpFlag } from '../../../core/packet/frame.js';
import { parseFrame } from '../../../core/packet/parse.js';
import { writeTcp4Frame } from '../../../core/packet/write.js';
import { parseMac } from '../../../core/mac.js';
import { tsharkChecksumsOk, tsharkFields } from '../../helpers/tshark.js';

describe('core/packet/write writeTcp4Frame', () => {
  it('writes frames that parse and that tshark decodes with good checksums', () => {
    const frames: Uint8Array[] = [];
    for (const [flags, payloadLen] of [[TcpFlag.SYN, 0], [TcpFlag.ACK | TcpFlag.PSH, 100], [TcpFlag.FIN | TcpFlag.ACK, 1]] as const) {
      const buf = new Uint8Array(200).fill(0xee);
      const n = writeTcp4Frame(buf, 3, {
        dstMac: parseMac('02:00:00:00:00:02'),
        srcMac: parseMac('02:00:00:00:00:01'),
        saddr: 0xc612c801, // 198.18.200.1
        daddr: 0xc6120064, // 198.18.0.100
        sport: 40000,
        dport: 80,
        flags,
        seq: 0x01020304,
        payloadLen,
      });
      assert.equal(n, 54 + payloadLen);
      const f = new ParsedFrame();
      assert.equal(parseFrame(buf, 3, n, f), Drop.OK);
      assert.equal(f.tcpFlags, flags);
      assert.equal(f.l4Len, 20 + payloadLen);
      frames.push(buf.slice(3, 3 + n));
    }
    const rows = tsharkFields(frames, ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.len']);
    assert.deepEqual(rows[1], ['198.18.200.1', '198.18.0.100', '40000', '80', String(0x01020304), '100']);
    assert.deepEqual(tsharkChecksumsOk(frames), [true, true, true]);
  });
});
