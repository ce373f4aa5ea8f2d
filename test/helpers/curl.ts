/**
 * HTTP through the testbed's VIP for the end-to-end tests: n requests from
 * the client namespace with curl, each on its own TCP connection, and a tally
 * of the bodies (the testbed's real servers answer their name, "r1"...).
 */
import assert from 'node:assert/strict';
import type { Testbed } from '../../saru/testbed/index.js';

/** n requests to `url` (Connection: close), `parallel` at a time; the response bodies. Fails the test if any request fails. */
export async function curlRequests(tb: Testbed, url: string, n: number, opts: { parallel?: number; maxTimeS?: number } = {}): Promise<string[]> {
  const config = `header = "Connection: close"\n` + `url = "${url}"\noutput = "-"\n`.repeat(n);
  const args = ['-s', '-g', '--fail', '--max-time', String(opts.maxTimeS ?? 10), '-Z', '--parallel-max', String(opts.parallel ?? 8), '-K', '-'];
  const r = await tb.exec(tb.nsName('client'), 'curl', args, { input: config, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `curl failed (${r.code}): ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

/** How many times each body came back. */
export function tally(bodies: readonly string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const b of bodies) t[b] = (t[b] ?? 0) + 1;
  return t;
}
