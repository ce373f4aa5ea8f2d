/**
 * The testbed's real-server HTTP program, run inside a real-server namespace:
 * `node dist/saru/testbed/http-server.js --name r1 [--port 80] [--ready FILE]`.
 * Listens on [::]:PORT (dual stack) and answers
 *   GET /         -> "NAME\n"
 *   GET /bytes/N  -> N bytes of the deterministic pattern (pattern.ts),
 *                    Content-Length set, streamed with back-pressure
 *   GET /health   -> "ok"
 * with an `X-Real-Server: NAME` header on every answer. Writes FILE (its pid)
 * once listening, exits on SIGTERM. Owns its listening socket only; logs one
 * line at start and errors, never per request.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { PATTERN_BLOCK } from './pattern.js';

const { values } = parseArgs({
  options: { name: { type: 'string' }, port: { type: 'string', default: '80' }, ready: { type: 'string' } },
});
const name = values.name;
const port = Number(values.port);
if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: http-server --name NAME [--port 1..65535] [--ready FILE]\n');
  process.exit(2);
}

/** Largest /bytes/N served (1 TiB): bounded so Content-Length stays exact. */
const MAX_BYTES = 2 ** 40;

function sendPattern(res: ServerResponse, n: number): void {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(n), 'X-Real-Server': name! });
  if (res.req.method === 'HEAD') {
    res.end();
    return;
  }
  let sent = 0;
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  const pump = (): void => {
    // Every write but the last is a whole block, so each block starts at a multiple of the period.
    while (!closed && sent < n) {
      const len = Math.min(PATTERN_BLOCK.length, n - sent);
      sent += len;
      if (!res.write(len === PATTERN_BLOCK.length ? PATTERN_BLOCK : PATTERN_BLOCK.subarray(0, len))) {
        res.once('drain', pump);
        return;
      }
    }
    if (!closed) res.end();
  };
  pump();
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0]!;
  const text = (status: number, body: string): void => {
    res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': String(Buffer.byteLength(body)), 'X-Real-Server': name! });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed\n');
  if (path === '/') return text(200, `${name}\n`);
  if (path === '/health') return text(200, 'ok');
  const m = /^\/bytes\/(\d{1,13})$/.exec(path);
  if (m && Number(m[1]) <= MAX_BYTES) return sendPattern(res, Number(m[1]));
  return text(404, 'not found\n');
});
server.on('error', (e) => {
  process.stderr.write(`${name} http: ${e.message}\n`);
  process.exit(1);
});
server.listen({ host: '::', port, ipv6Only: false }, () => {
  process.stdout.write(`${name} http: listening on [::]:${port} pid ${process.pid}\n`);
  if (values.ready) writeFileSync(values.ready, `${process.pid}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
