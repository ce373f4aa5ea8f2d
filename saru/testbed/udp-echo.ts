/**
 * The testbed's real-server UDP echo program, run inside a real-server
 * namespace: `node dist/saru/testbed/udp-echo.js --name r1 [--port 7] [--ready FILE]`.
 * Replies "NAME <payload>" to every datagram. It binds one socket per
 * address of the namespace (IPv4 and IPv6, the VIPs on lo included, IPv6
 * link-local excluded) rather than one wildcard socket: Node cannot choose a
 * reply's source address (no IP_PKTINFO), and a DR reply must come from the
 * VIP the client sent to, which a socket bound to the VIP guarantees.
 * Writes FILE (its pid) once bound, exits on SIGTERM. Owns its sockets only.
 */
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { name: { type: 'string' }, port: { type: 'string', default: '7' }, ready: { type: 'string' } },
});
const name = values.name;
const port = Number(values.port);
if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: udp-echo --name NAME [--port 1..65535] [--ready FILE]\n');
  process.exit(2);
}

const addresses: Array<{ address: string; v6: boolean }> = [];
for (const list of Object.values(networkInterfaces())) {
  for (const a of list ?? []) {
    if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:')) continue;
    addresses.push({ address: a.address, v6: a.family === 'IPv6' });
  }
}

const prefix = Buffer.from(`${name} `);
const sockets: Socket[] = [];
let pending = addresses.length;
for (const { address, v6 } of addresses) {
  const s = createSocket({ type: v6 ? 'udp6' : 'udp4' });
  s.on('message', (msg, rinfo) => {
    s.send(Buffer.concat([prefix, msg]), rinfo.port, rinfo.address);
  });
  s.on('error', (e) => {
    process.stderr.write(`${name} udp ${address}: ${e.message}\n`);
    process.exit(1);
  });
  s.bind(port, address, () => {
    if (--pending === 0) {
      process.stdout.write(`${name} udp: echo on port ${port} at ${addresses.map((a) => a.address).join(' ')} pid ${process.pid}\n`);
      if (values.ready) writeFileSync(values.ready, `${process.pid}\n`);
    }
  });
  sockets.push(s);
}
process.on('SIGTERM', () => {
  for (const s of sockets) s.close();
  process.exit(0);
});
