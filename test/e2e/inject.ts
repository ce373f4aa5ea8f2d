/**
 * Bad-input generator for the end-to-end tests, run inside the client
 * namespace: `node inject.js --ifname eth0 --dst-mac MAC --count N --seed S`.
 * Sends N frames to the shared MAC through a packet socket: half random bytes
 * (random EtherType and length), half well-formed TCP/IPv4 frames to the VIP
 * cut short at a random length or with a corrupted header field. Prints
 * {"random": n, "truncated": n, "corrupt": n} on stdout. Deterministic for a seed.
 */
import { parseArgs } from 'node:util';
import { parseMac, writeTcp4Frame, TcpFlag } from '../../core/index.js';
import { openPacketPort } from '../../native/index.js';

const { values } = parseArgs({ options: { ifname: { type: 'string' }, 'dst-mac': { type: 'string' }, count: { type: 'string' }, seed: { type: 'string', default: '1' } } });
const dst = parseMac(values['dst-mac']!);
const count = Number(values.count);
let state = Number(values.seed) >>> 0 || 1;
function rnd(n: number): number {
  // xorshift32
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state % n;
}

const port = openPacketPort({ ifname: values.ifname! });
const src = port.mac;
const full = new Uint8Array(128);
const counts = { random: 0, truncated: 0, corrupt: 0 };
for (let i = 0; i < count; i++) {
  let frame: Uint8Array;
  const kind = i % 4;
  if (kind < 2) {
    frame = new Uint8Array(14 + rnd(200));
    for (let k = 14; k < frame.length; k++) frame[k] = rnd(256);
    frame.set(dst, 0);
    frame.set(src, 6);
    // Half the random frames claim to be IPv4 so they reach the IP parser.
    if (kind === 1) frame.set([0x08, 0x00], 12);
    counts.random++;
  } else {
    const len = writeTcp4Frame(full, 0, { dstMac: dst, srcMac: src, saddr: 0xc6120102, daddr: 0xc6120064, sport: 1024 + rnd(60000), dport: 80, flags: TcpFlag.ACK, payloadLen: 20 });
    if (kind === 2) {
      frame = full.slice(0, 14 + rnd(len - 14));
      counts.truncated++;
    } else {
      frame = full.slice(0, len);
      // Corrupt the IPv4 version/IHL, total length, or the TCP data offset.
      const which = rnd(3);
      if (which === 0) frame[14] = 0x40 | rnd(5);
      else if (which === 1) frame[17] = 0xff;
      else frame[14 + 20 + 12] = 0x10;
      counts.corrupt++;
    }
  }
  while (!port.send(frame)) {
    // The socket buffer is full: let the queue drain.
    port.receive(1);
  }
}
port.close();
process.stdout.write(JSON.stringify(counts) + '\n');
