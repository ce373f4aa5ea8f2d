/**
 * The testbed's long-lived connection client, run in the client namespace:
 *   node dist/saru/testbed/longconn.js --url http://VIP/ --connections 200 --duration MS
 *     [--interval MS] [--timeout MS] [--stop-file FILE] [--stalled-ms MS]
 * Opens N TCP connections to the VIP and keeps each one busy with HTTP/1.1
 * keep-alive requests (GET /bytes/256, one every `interval` ms with jitter)
 * until `duration` passes or FILE appears. A connection that is reset,
 * closed, or gets no complete answer within `timeout` ms is LOST: it is not
 * reopened. With --stalled-ms, a connection still waiting at the end for an
 * answer asked more than MS ago is lost too (a stall the end cut short of
 * the timeout). Prints one JSON object: connections, requests, lost (with
 * when and why), and exits 0 (the caller judges). Owns its sockets only.
 */
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '200' },
    duration: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '200' },
    timeout: { type: 'string', default: '8000' },
    'stop-file': { type: 'string' },
    'stalled-ms': { type: 'string' },
  },
});
const url = new URL(values.url ?? '');
const n = Number(values.connections);
const durationMs = Number(values.duration);
const intervalMs = Number(values.interval);
const timeoutMs = Number(values.timeout);
const stalledMs = values['stalled-ms'] === undefined ? Infinity : Number(values['stalled-ms']);
const BODY = 256;

interface Lost {
  conn: number;
  atMs: number;
  why: string;
  requests: number;
}

const start = Date.now();
const lost: Lost[] = [];
let requests = 0;
let opened = 0;
let done = false;
const live = new Set<Socket>();
/** When each live connection's outstanding request was sent (absent: none outstanding). */
const asked = new Map<Socket, { id: number; at: number; count: number }>();

function open(id: number): void {
  const s = connect({ host: url.hostname, port: Number(url.port || 80) });
  s.setNoDelay(true);
  live.add(s);
  let buf = Buffer.alloc(0);
  let count = 0;
  let deadline: NodeJS.Timeout | null = null;
  let next: NodeJS.Timeout | null = null;
  const fail = (why: string): void => {
    if (done || !live.has(s)) return;
    live.delete(s);
    if (deadline) clearTimeout(deadline);
    if (next) clearTimeout(next);
    lost.push({ conn: id, atMs: Date.now() - start, why, requests: count });
    s.destroy();
  };
  const ask = (): void => {
    if (done) return;
    asked.set(s, { id, at: Date.now(), count });
    s.write(`GET /bytes/${BODY} HTTP/1.1\r\nHost: ${url.hostname}\r\n\r\n`);
    deadline = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
  };
  s.on('connect', () => {
    opened++;
    ask();
  });
  s.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const head = buf.indexOf('\r\n\r\n');
    if (head < 0) return;
    const m = /content-length:\s*(\d+)/i.exec(buf.subarray(0, head).toString('latin1'));
    if (!m || !buf.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 200')) {
      fail(`bad answer: ${JSON.stringify(buf.subarray(0, Math.min(head, 60)).toString('latin1'))}`);
      return;
    }
    const total = head + 4 + Number(m[1]);
    if (buf.length < total) return;
    buf = buf.subarray(total);
    if (deadline) clearTimeout(deadline);
    deadline = null;
    asked.delete(s);
    count++;
    requests++;
    next = setTimeout(ask, intervalMs / 2 + Math.random() * intervalMs);
  });
  s.on('error', (e) => fail(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  s.on('close', () => fail('closed by the peer'));
}

// Open gradually (20 per 50 ms) so the SYN burst does not look like a flood.
for (let i = 0; i < n; i++) setTimeout(() => open(i), Math.floor(i / 20) * 50);

const finish = (): void => {
  const now = Date.now();
  for (const [s, a] of asked) {
    if (live.has(s) && now - a.at > stalledMs) lost.push({ conn: a.id, atMs: now - start, why: `no answer for ${now - a.at} ms when the client stopped`, requests: a.count });
  }
  done = true;
  for (const s of live) s.destroy();
  process.stdout.write(JSON.stringify({ connections: n, opened, requests, lost, elapsedMs: Date.now() - start }) + '\n');
  process.exit(0);
};
const timer = setInterval(() => {
  if (Date.now() - start >= durationMs || (values['stop-file'] && existsSync(values['stop-file']))) {
    clearInterval(timer);
    finish();
  }
}, 50);
