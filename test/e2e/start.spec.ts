/**
 * End-to-end: `npm start` (dist/saru/start.js) as a user runs it. As root:
 * a short story in network namespaces ends with exit status 0 and a summary
 * in which every opened connection completed, at least one takeover and the
 * resync are reported, and no demo-* namespace is left; SIGINT in the
 * middle of a run tears everything down and exits non-zero. Without root
 * too: the simulator's story (--sim) reports the same summary.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = process.getuid?.() === 0 && process.platform === 'linux';
const START = fileURLToPath(new URL('../../saru/start.js', import.meta.url));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run start.js with `args`; `onStdout` sees the output so far and may return a signal to send. */
function run(args: string[], limitMs: number, onStdout?: (out: string) => NodeJS.Signals | null): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [START, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start.js ${args.join(' ')} ran longer than ${limitMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, limitMs);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const sig = signalled ? null : (onStdout?.(stdout) ?? null);
      if (sig) {
        signalled = true;
        child.kill(sig);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function demoNamespaces(): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => /^demo-(?:sw|c|d\d+|r\d+)$/.test(n));
  } catch {
    return [];
  }
}

interface SummaryJson {
  mode: string;
  ok: boolean;
  opened: number;
  completed: number;
  lost: number;
  takeovers: number;
  takeover_ms: number[];
  resync_ms: number | null;
  rejoin_ms: number | null;
  reasons: string[];
  summary: string;
}

function lastJson(out: string): SummaryJson {
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as SummaryJson;
}

function assertGoodSummary(r: Run, mode: string): SummaryJson {
  const s = lastJson(r.stdout);
  const context = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.equal(r.code, 0, `exit status 0 (${s.reasons.join('; ')})\n${context}`);
  assert.equal(s.mode, mode);
  assert.equal(s.ok, true);
  assert.ok(s.opened > 0, 'connections were opened');
  assert.equal(s.completed, s.opened, 'every opened connection completed');
  assert.equal(s.lost, 0);
  assert.ok(s.takeovers >= 1, 'at least one takeover');
  assert.ok(s.takeover_ms.every((t) => t > 0 && t < 2000), `takeover times ${s.takeover_ms.join(', ')} ms`);
  assert.ok(typeof s.resync_ms === 'number' && s.resync_ms >= 0, 'the resync is reported');
  assert.ok(typeof s.rejoin_ms === 'number', 'the restarted director rejoined');
  assert.match(r.stdout, new RegExp(`^connections: ${s.opened} opened, ${s.completed} completed, 0 lost; takeovers: \\d+, p99 \\d+ ms.*; resync: [\\d.]+ s`, 'm'));
  return s;
}

describe('e2e: npm start', function () {
  this.timeout(200_000);

  it('--sim: the story in the simulator ends with 0 lost, a takeover and a resync (no root needed)', async () => {
    const r = await run(['--sim', '--duration', '12', '--plain', '--json'], 90_000);
    assert.match(r.stdout.split('\n')[0]!, /^simulated \(--sim\): 3 directors/, 'the first line says it is simulated');
    const s = assertGoodSummary(r, 'simulated');
    assert.match(s.summary, /\(virtual\)/, 'simulated times are marked virtual');
  });

  (ROOT ? describe : describe.skip)('in network namespaces (root)', () => {
    before(function () {
      if (demoNamespaces().length > 0) this.skip(); // someone's demo testbed is up (npm start -- --keep): leave it alone
    });

    it('a short story: exit 0, every opened connection completed, takeovers and resync reported, nothing left behind', async () => {
      const r = await run(['--duration', '20', '--plain', '--json'], 150_000);
      assert.match(r.stdout.split('\n')[0]!, /^Saru demo: 3 directors \(saru \+ saru-syncd\), 3 real servers in network namespaces demo-\*/, `exit ${r.code}; stderr:\n${r.stderr}`);
      assertGoodSummary(r, 'namespaces');
      assert.match(r.stdout, /kill -9 d\d \(saru and saru-syncd\)/);
      assert.match(r.stdout, /d\d took \d+ buckets of d\d: takeover in \d+ ms/);
      assert.match(r.stdout, /d\d resync done in \d+ ms/);
      assert.match(r.stdout, /d\d rejoined: epoch \d+/);
      assert.deepEqual(demoNamespaces(), [], 'no demo-* namespace is left');
      assert.equal(existsSync('/run/demo-testbed'), false, 'the state directory is gone');
    });

    it('SIGINT in the middle of a run tears everything down and exits non-zero', async () => {
      const r = await run(['--duration', '60', '--plain'], 90_000, (out) => (out.includes('clients start') ? 'SIGINT' : null));
      assert.notEqual(r.code, 0, `exit status after SIGINT: ${r.code}\nstderr:\n${r.stderr}`);
      assert.match(r.stderr, /SIGINT: tearing the testbed down/);
      assert.deepEqual(demoNamespaces(), [], 'no demo-* namespace is left');
      assert.equal(existsSync('/run/demo-testbed'), false, 'the state directory is gone');
    });
  });
});
