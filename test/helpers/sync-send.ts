/**
 * Test tool, run inside a director namespace: sends one datagram to the sync
 * multicast group from an interface, either bytes given in hex (a replay of
 * a captured datagram) or a forged entries datagram: a well-formed sync
 * message naming a new connection, authenticated with a key that is not the
 * cluster's.
 *   node dist/test/helpers/sync-send.js --from ADDR --group G --port P (--hex HEX | --forge NODE_ID)
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { ConnSnapshot, Fwd, IpAddress, Proto, SYNC_RECORD, syncRecordView, writeSyncRecord } from '../../core/index.js';
import { SyncCodec } from '../../sync/codec.js';

const { values } = parseArgs({
  options: { from: { type: 'string' }, group: { type: 'string' }, port: { type: 'string' }, hex: { type: 'string' }, forge: { type: 'string' } },
});

function forged(nodeId: number): Uint8Array {
  const s = new ConnSnapshot();
  s.protocol = Proto.TCP;
  s.caddr.set(IpAddress.parse('198.18.1.2').words);
  s.vaddr.set(IpAddress.parse('198.18.0.100').words);
  s.daddr.set(IpAddress.parse('198.18.0.101').words);
  s.cport = 4242;
  s.vport = 80;
  s.dport = 80;
  s.fwd = Fwd.DR;
  s.state = 1; // ESTABLISHED
  s.timeoutMs = 900_000;
  const bytes = new Uint8Array(SYNC_RECORD.SIZE);
  writeSyncRecord(syncRecordView(bytes), 0, s);
  const codec = new SyncCodec({ key: randomBytes(32) });
  return codec.encode({ nodeId, incarnation: Date.now() + 10_000_000, seq: 1, epoch: 0, body: { kind: 'entries', dataSeq: 1, entries: { bytes, count: 1 } } });
}

const payload = values.hex !== undefined ? Buffer.from(values.hex, 'hex') : forged(Number(values.forge));
const sock = createSocket('udp4');
sock.bind(0, values.from, () => {
  sock.setMulticastInterface(values.from!);
  sock.send(payload, Number(values.port), values.group, (err) => {
    if (err) {
      process.stderr.write(`send failed: ${err.message}\n`);
      process.exit(1);
    }
    sock.close();
  });
});
