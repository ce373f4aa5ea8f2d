/**
 * A timestamping HTTP client for failover tests and bench:failover, run in
 * the client namespace:
 *   node dist/saru/testbed/probe.js --url URL [--parallel 8] [--duration MS]
 *     [--timeout MS] [--pause MS] [--hold-file FILE]
 * Each of `parallel` loops sends GET requests, each on a new TCP connection
 * (Connection: close), one after the other, for `duration` ms (or until
 * SIGTERM/SIGINT). While FILE exists, no loop starts a new request (requests
 * in flight finish). Prints one JSON line per request on stdout:
 *   {"t0": start ms, "t1": end ms, "sport": client port, "ok": bool,
 *    "status": HTTP status, "err": error text, "bytes": body length}
 * Times are wall-clock milliseconds (Date.now), so they compare with the
 * caller's own timestamps. A request fails when it gets no complete 2xx
 * answer within `timeout` ms (default 3000: one lost SYN costs the client
 * 1 s, as Linux's initial RTO). Owns nothing but its sockets.
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import type { ProbeOutcome } from './testbed.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    parallel: { type: 'string', default: '8' },
    duration: { type: 'string', default: '10000' },
    timeout: { type: 'string', default: '3000' },
    pause: { type: 'string', default: '0' },
    'hold-file': { type: 'string' },
  },
});
const url = values.url;
const parallel = Number(values.parallel);
const durationMs = Number(values.duration);
const timeoutMs = Number(values.timeout);
const pauseMs = Number(values.pause);
const holdFile = values['hold-file'];
if (!url || !Number.isInteger(parallel) || parallel < 1 || !(durationMs > 0) || !(timeoutMs > 0) || !(pauseMs >= 0)) {
  process.stderr.write('usage: probe --url URL [--parallel N] [--duration MS] [--timeout MS] [--pause MS]\n');
  process.exit(2);
}

function once(): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const o: ProbeOutcome = { t0: Date.now(), t1: 0, sport: 0, ok: false, status: 0, err: '', bytes: 0 };
    let done = false;
    const finish = (err: string): void => {
      if (done) return;
      done = true;
      o.t1 = Date.now();
      o.err = err;
      o.ok = err === '' && o.status >= 200 && o.status < 300;
      clearTimeout(timer);
      req.destroy();
      resolve(o);
    };
    const req = request(url!, { agent: false, headers: { Connection: 'close' } }, (res) => {
      o.status = res.statusCode ?? 0;
      res.on('data', (d: Buffer) => (o.bytes += d.length));
      res.on('end', () => finish(''));
      res.on('error', (e) => finish(e.message));
    });
    req.on('socket', (s) => s.on('connect', () => (o.sport = s.localPort ?? 0)));
    req.on('error', (e) => finish(e.message));
    const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms`), timeoutMs);
    req.end();
  });
}

let stop = false;
process.on('SIGTERM', () => (stop = true));
process.on('SIGINT', () => (stop = true));
const end = Date.now() + durationMs;

async function loop(): Promise<void> {
  while (!stop && Date.now() < end) {
    if (holdFile !== undefined && existsSync(holdFile)) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    const o = await once();
    process.stdout.write(`${JSON.stringify(o)}\n`);
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}

await Promise.all(Array.from({ length: parallel }, () => loop()));
