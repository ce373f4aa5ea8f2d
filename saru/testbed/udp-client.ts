/**
 * A one-shot UDP client for tests and manual checks inside a namespace:
 * `node dist/saru/testbed/udp-client.js --to ADDR [--port 7] [--payload TEXT] [--timeout MS] [--source-port N]`.
 * Sends one datagram, prints the first reply (and its source as
 * "from ADDR:PORT" on stderr), exits 0; exits 1 when no reply comes within
 * the timeout (default 2000 ms). Owns its one socket.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    to: { type: 'string' },
    port: { type: 'string', default: '7' },
    payload: { type: 'string', default: 'ping' },
    timeout: { type: 'string', default: '2000' },
    'source-port': { type: 'string' },
  },
});
const to = values.to;
const port = Number(values.port);
const timeoutMs = Number(values.timeout);
const sourcePort = values['source-port'] === undefined ? 0 : Number(values['source-port']);
if (!to || !Number.isInteger(port) || port < 1 || port > 65535 || !(timeoutMs > 0) || !Number.isInteger(sourcePort)) {
  process.stderr.write('usage: udp-client --to ADDR [--port N] [--payload TEXT] [--timeout MS] [--source-port N]\n');
  process.exit(2);
}
const s = createSocket({ type: isIPv6(to) ? 'udp6' : 'udp4' });
const timer = setTimeout(() => {
  process.stderr.write(`no reply from ${to}:${port} within ${timeoutMs} ms\n`);
  process.exit(1);
}, timeoutMs);
s.on('message', (msg, rinfo) => {
  clearTimeout(timer);
  process.stdout.write(msg);
  process.stderr.write(`from ${rinfo.family === 'IPv6' ? `[${rinfo.address}]` : rinfo.address}:${rinfo.port}\n`);
  s.close();
});
s.on('error', (e) => {
  process.stderr.write(`udp-client: ${e.message}\n`);
  process.exit(1);
});
s.bind(sourcePort, () => s.send(values.payload!, port, to));
