#!/usr/bin/env node
/**
 * `saru-genhash`: keepalived's genhash. Fetches one page over HTTP or HTTPS
 * and prints the MD5 of its body, the value of a keepalived HTTP_GET/SSL_GET
 * `digest`:
 *   saru-genhash -s ADDR -p PORT -u PATH [-S] [-I] [-V HOST] [-v] [-t SECONDS]
 * Prints `MD5SUM = <hex>` and a blank line, as the standalone genhash did;
 * with -v first the response head and hex dumps of head, body and digest in
 * genhash's layout, and the response time. Exit 0; on any failure one line on
 * stderr and exit 1. Owns only the command line and the output format: the
 * fetch is fetchUrl() in ./checkers.js, the same code the http check runs,
 * so the digest printed is the digest the check computes (body after
 * transfer decoding, at most the first 1 MiB).
 *
 * Options follow keepalived's genhash (keepalived/check/check_genhash.c):
 * -s/--server (an IP address), -p/--port, -u/--url, -S/--use-ssl,
 * -I/--use-sni (send the -V name as SNI), -V/--use-virtualhost,
 * -v/--verbose, -t/--timeout (seconds; default 5 as the old genhash's
 * HTTP_CNX_TIMEOUT). Not carried over: -H/--hash (MD5 only, the only one the
 * checkers use), -m/--fwmark, -P/--protocol (Node speaks HTTP/1.1 with
 * `Connection: close`; genhash's HTTP/1.0 and 1.0C choices are not offered).
 */
import { realpathSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { BODY_LIMIT_BYTES, fetchUrl, type FetchResponse } from './checkers.js';

/** Default timeout of the whole exchange, seconds. */
export const GENHASH_DEFAULT_TIMEOUT_S = 5;

const DELIM_BEGIN = '-----------------------[';
const DELIM_END = ']-----------------------\n';
const section = (title: string): string => `${DELIM_BEGIN}${title}${DELIM_END}`;

/**
 * genhash's hex dump: per 16 bytes, a 4-digit hex offset, the bytes in hex
 * with " -" after the eighth, then the printable ASCII (others as ".").
 */
export function hexDump(buf: Uint8Array): string {
  let out = '';
  for (let off = 0; off < buf.length; off += 16) {
    let line = (off & 0xffff).toString(16).padStart(4, '0') + ' ';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      const at = off + i;
      if (at < buf.length) {
        const c = buf[at]!;
        line += ' ' + c.toString(16).padStart(2, '0');
        ascii += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : '.';
      } else {
        line += '   ';
        ascii += ' ';
      }
      if (i === 7) line += ' -';
    }
    out += `${line}   ${ascii}\n`;
  }
  return out;
}

/**
 * What saru-genhash prints on stdout for a response: `MD5SUM = <hex>` and a
 * blank line; with `verbose` preceded by the head and the hex dumps, and
 * followed by the response time (µs) when `responseUs` is given.
 */
export function formatGenhash(res: FetchResponse, opts: { verbose: boolean; url: string; responseUs?: number }): string {
  let out = '';
  if (opts.verbose) {
    const head = Buffer.from(res.head, 'latin1');
    out += section('    HTTP Header Buffer    ') + hexDump(head);
    out += section(' HTTP Header Ascii Buffer ') + res.head + '\n';
    out += section('        HTML Buffer        ') + hexDump(res.body);
    out += '\n' + section('    HTML hash resulting    ') + hexDump(Buffer.from(res.md5, 'hex'));
    out += section(' HTML hash final resulting ');
  }
  out += `MD5SUM = ${res.md5}\n\n`;
  if (opts.verbose && opts.responseUs !== undefined) {
    out += `Global response time for [${opts.url}] = ${Math.round(opts.responseUs)} usecs\n`;
  }
  return out;
}

interface Options {
  server: string;
  port: string;
  url: string;
  useSsl?: boolean;
  useSni?: boolean;
  useVirtualhost?: string;
  verbose?: boolean;
  timeout: string;
}

/** Run saru-genhash with `argv` (without node and script); returns the exit status. */
export async function runGenhash(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const program = new Command('saru-genhash')
    .description('print the MD5 of a web page body, for keepalived HTTP_GET/SSL_GET `digest` (as keepalived genhash)')
    .requiredOption('-s, --server <address>', 'IP address of the real server')
    .requiredOption('-p, --port <port>', 'TCP port')
    .requiredOption('-u, --url <path>', 'path of the page, e.g. /index.html')
    .option('-S, --use-ssl', 'use HTTPS (the certificate is not verified)')
    .option('-I, --use-sni', 'send the virtual host (-V) as TLS SNI')
    .option('-V, --use-virtualhost <host>', 'Host header (default ADDR:PORT)')
    .option('-v, --verbose', 'also print the response head and hex dumps of head, body and digest')
    .option('-t, --timeout <seconds>', 'timeout of the whole exchange, seconds', String(GENHASH_DEFAULT_TIMEOUT_S))
    .configureOutput({ writeOut: (s) => out.write(s), writeErr: (s) => err.write(s) })
    .exitOverride();
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    // commander has printed its message (or the help); --help exits 0.
    const code = (e as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 1;
  }
  const o = program.opts<Options>();
  const fail = (msg: string): number => {
    err.write(`saru-genhash: ${msg}\n`);
    return 1;
  };
  if (net.isIP(o.server) === 0) return fail(`server should be an IP, not ${o.server}`);
  if (!/^\d+$/.test(o.port) || Number(o.port) < 1 || Number(o.port) > 65535) return fail(`invalid port number '${o.port}'`);
  if (!/^\d+(\.\d+)?$/.test(o.timeout) || Number(o.timeout) <= 0) return fail(`invalid timeout '${o.timeout}'`);
  if (o.useSni === true && o.useVirtualhost === undefined) return fail('--use-sni needs --use-virtualhost');
  const port = Number(o.port);
  const startedAt = performance.now();
  const got = await fetchUrl({
    tls: o.useSsl === true,
    address: o.server,
    port,
    path: o.url,
    host: o.useVirtualhost,
    servername: o.useSni === true ? o.useVirtualhost : undefined,
    timeoutMs: Number(o.timeout) * 1000,
  });
  const where = `${net.isIP(o.server) === 6 ? `[${o.server}]` : o.server}:${port}${o.url}`;
  if (!got.ok) return fail(`${got.reason} (${where})`);
  const res = got.response;
  out.write(formatGenhash(res, { verbose: o.verbose === true, url: o.url, responseUs: (performance.now() - startedAt) * 1000 }));
  if (res.truncated) err.write(`saru-genhash: warning: body longer than ${BODY_LIMIT_BYTES} bytes; the digest covers the first ${BODY_LIMIT_BYTES} (as the http check)\n`);
  if (res.status < 200 || res.status > 299) err.write(`saru-genhash: warning: status ${res.status} (the check accepts 200-299 unless status_code says otherwise)\n`);
  return 0;
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  runGenhash(process.argv.slice(2), process.stdout, process.stderr).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`saru-genhash: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
