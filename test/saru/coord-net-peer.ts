/**
 * Test-only: one ClusterTransport in a child process, for coord-net.spec.ts,
 * which runs it inside a network namespace (`ip netns exec NS node
 * dist/test/saru/coord-net-peer.js '<ClusterTransportInit as JSON>'`).
 * Owns nothing but that transport. Speaks JSON lines:
 *   stdout: {"event":"ready"} once open, {"event":"error",code,message} when
 *           start() fails (then exits 1), {"event":"message",path,data}
 *           (data in base64) for every datagram, {"event":"log",level,msg,...}
 *           for the transport's log, {"event":"counters",...} when asked,
 *           {"event":"closed"} at the end;
 *   stdin:  {"cmd":"send","data":base64}, {"cmd":"counters"}, {"cmd":"close"};
 *           end of input closes too.
 */
import { createInterface } from 'node:readline';
import { SaruError } from '../../core/index.js';
import { ClusterTransport, type ClusterTransportInit } from '../../saru/coord-net.js';

const out = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};
const logAt =
  (level: string) =>
  (obj: object, msg?: string): void =>
    out({ event: 'log', level, msg, ...obj });

const init = JSON.parse(process.argv[2] ?? '{}') as ClusterTransportInit;
const transport = new ClusterTransport(init, {
  log: { info: logAt('info'), warn: logAt('warn'), debug: logAt('debug') },
  onMessage: (bytes, path) => out({ event: 'message', path, data: Buffer.from(bytes).toString('base64') }),
});

let closed = false;
async function close(): Promise<void> {
  if (closed) return;
  closed = true;
  rl.close();
  await transport.close();
  out({ event: 'closed', counters: transport.counters() });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  const m = JSON.parse(line) as { cmd: string; data?: string };
  if (m.cmd === 'send') transport.send(Buffer.from(m.data ?? '', 'base64'));
  else if (m.cmd === 'counters') out({ event: 'counters', ...transport.counters() });
  else if (m.cmd === 'close') void close();
});
rl.on('close', () => void close());

try {
  await transport.start();
  out({ event: 'ready', paths: transport.counters().paths });
} catch (e) {
  out({ event: 'error', code: e instanceof SaruError ? e.code : undefined, message: (e as Error).message });
  process.exit(1);
}
