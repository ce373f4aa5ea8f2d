/**
 * Tests of saru-genhash: the built CLI (dist/saru/health/genhash.js) run as
 * a child process against real HTTP and HTTPS servers on 127.0.0.1 (the
 * HTTPS one with the self-signed fixture in test/fixtures/tls), and its
 * output format (hexDump, formatGenhash) in process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { formatGenhash, hexDump, type FetchResponse } from '../../../saru/health/index.js';

const GENHASH = fileURLToPath(new URL('../../../saru/health/genhash.js', import.meta.url));
const TLS_DIR = fileURLToPath(new URL('../../../../test/fixtures/tls/', import.meta.url));

const BODY = '<html><body>saru real server 1</body></html>\n';
const md5 = (b: string | Buffer): string => createHash('md5').update(b).digest('hex');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function genhash(args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GENHASH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Server {
  port: number;
  hosts: Array<string | undefined>;
  close(): Promise<void>;
}

async function serve(tls: boolean): Promise<Server> {
  const hosts: Array<string | undefined> = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    hosts.push(req.headers.host);
    if (req.url === '/page') {
      res.setHeader('X-Saru-Test', 'yes');
      res.end(BODY);
    } else {
      res.statusCode = 404;
      res.end('no\n');
    }
  };
  const server = tls
    ? https.createServer({ key: readFileSync(`${TLS_DIR}key.pem`), cert: readFileSync(`${TLS_DIR}cert.pem`) }, handler)
    : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    hosts,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('saru/health/genhash', () => {
  let web: Server;
  let webs: Server;
  before(async () => {
    web = await serve(false);
    webs = await serve(true);
  });
  after(async () => {
    await Promise.all([web.close(), webs.close()]);
  });

  it('prints MD5SUM = <md5 of the body> and exits 0', async () => {
    const r = await genhash(['-s', '127.0.0.1', '-p', String(web.port), '-u', '/page']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `MD5SUM = ${md5(BODY)}\n\n`);
    assert.equal(r.stderr, '');
    assert.equal(web.hosts.at(-1), `127.0.0.1:${web.port}`);
  });

  it('takes the long options, sends the virtual host, speaks HTTPS to a self-signed server', async () => {
    const r = await genhash(['--use-ssl', '--server', '127.0.0.1', '--port', String(webs.port), '--url', '/page', '--use-virtualhost', 'www.example', '--timeout', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `MD5SUM = ${md5(BODY)}\n\n`);
    assert.equal(webs.hosts.at(-1), 'www.example');
  });

  it('with -v prints the response head and the dumps before the digest', async () => {
    const r = await genhash(['-v', '-s', '127.0.0.1', '-p', String(web.port), '-u', '/page']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /\[ HTTP Header Ascii Buffer \]-+\nHTTP\/1\.1 200 OK\r\n/);
    assert.match(out, /\r\nX-Saru-Test: yes\r\n/);
    assert.match(out, /\[        HTML Buffer        \]-+\n0000  3c 68 74 6d 6c 3e 3c 62 - 6f 64 79 3e 73 61 72 75   <html><body>saru\n/);
    assert.ok(out.indexOf('HTML hash final resulting') < out.indexOf(`MD5SUM = ${md5(BODY)}`));
    assert.match(out, /Global response time for \[\/page\] = \d+ usecs\n$/);
  });

  it('warns on stderr about a status the check would refuse, and still prints the digest', async () => {
    const r = await genhash(['-s', '127.0.0.1', '-p', String(web.port), '-u', '/missing']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `MD5SUM = ${md5('no\n')}\n\n`);
    assert.match(r.stderr, /^saru-genhash: warning: status 404/);
  });

  it('fails with one line on stderr and exit 1 on a closed port', async () => {
    const port = await closedPort();
    const r = await genhash(['-s', '127.0.0.1', '-p', String(port), '-u', '/page']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `saru-genhash: connect refused (127.0.0.1:${port}/page)\n`);
  });

  it('refuses bad arguments with exit 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['-s', 'localhost', '-p', '80', '-u', '/'], /server should be an IP, not localhost/],
      [['-s', '127.0.0.1', '-p', '0', '-u', '/'], /invalid port number '0'/],
      [['-s', '127.0.0.1', '-p', '80', '-u', '/', '-t', 'soon'], /invalid timeout 'soon'/],
      [['-s', '127.0.0.1', '-p', '80'], /required option '-u, --url <path>'/],
    ];
    for (const [args, msg] of cases) {
      const r = await genhash(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  describe('output format', () => {
    it('hexDump: offset, 8 + 8 bytes with " -" between, printable ASCII', () => {
      const buf = Buffer.from('HTTP/1.0 200 OK\r\nab');
      assert.equal(hexDump(buf),
        '0000  48 54 54 50 2f 31 2e 30 - 20 32 30 30 20 4f 4b 0d   HTTP/1.0 200 OK.\n'
        + '0010  0a 61 62                -                           .ab             \n');
      assert.equal(hexDump(Buffer.alloc(0)), '');
    });

    it('formatGenhash: just the MD5SUM line unless verbose', () => {
      const res: FetchResponse = {
        status: 200, statusMessage: 'OK', httpVersion: '1.1', head: 'HTTP/1.1 200 OK\r\n\r\n', body: Buffer.from('x'),
        truncated: false, md5: md5('x'),
      };
      assert.equal(formatGenhash(res, { verbose: false, url: '/' }), `MD5SUM = ${md5('x')}\n\n`);
      const v = formatGenhash(res, { verbose: true, url: '/', responseUs: 1234 });
      const titles = [...v.matchAll(/-{23}\[(.*)\]-{23}\n/g)].map((m) => m[1]!.trim());
      assert.deepEqual(titles, ['HTTP Header Buffer', 'HTTP Header Ascii Buffer', 'HTML Buffer', 'HTML hash resulting', 'HTML hash final resulting']);
      assert.ok(v.endsWith(`MD5SUM = ${md5('x')}\n\nGlobal response time for [/] = 1234 usecs\n`));
    });
  });
});
