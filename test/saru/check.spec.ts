/**
 * `saru --check`: the CLI validates a services file without a network,
 * prints it as `ipvsadm -L -n` (the golden listings of the corpus files),
 * and fails with file, line and reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORPUS_DIR, repoRoot } from '../helpers/repo.js';

const REPO = repoRoot();
const CLI = join(REPO, 'dist', 'saru', 'cli.js');
const CORPUS = CORPUS_DIR;
const GOLDEN = join(REPO, 'test', 'core', 'config', 'golden');

function saru(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('saru --check', function () {
  this.timeout(60_000);
  for (const name of ['sample', 'fwmark', 'virtual_server_group', 'IPv6', 'inhibit']) {
    it(`keepalived.conf.${name}: exit 0, the golden ipvsadm -L -n listing, ignored parts on stderr`, () => {
      const r = saru(['--check', '--services', join(CORPUS, 'keepalived', `keepalived.conf.${name}`)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, readFileSync(join(GOLDEN, `${name}.txt`), 'utf8'));
      assert.match(r.stderr, /: OK \(keepalived\): \d+ virtual services?, /);
    });
  }

  it('every corpus file passes', () => {
    for (const dir of ['keepalived', 'ldirectord']) {
      const files = readdirSync(join(CORPUS, dir));
      assert.ok(files.length > 0, `no files in ${join(CORPUS, dir)}`);
      for (const f of files) {
        const r = saru(['-t', '--services', join(CORPUS, dir, f)]);
        assert.equal(r.code, 0, `${f}: ${r.stderr}`);
      }
    }
  });

  it('reports VRRP and global blocks as ignored', () => {
    const r = saru(['--check', '--services', join(CORPUS, 'keepalived', 'keepalived.conf.sample')]);
    assert.match(r.stderr, /keepalived\.conf\.sample:\d+: ignored: global_defs/);
    assert.match(r.stderr, /keepalived\.conf\.sample:\d+: ignored: vrrp_instance VI_1/);
  });

  it('an error: exit 1 with file, line and reason, nothing on stdout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'saru-check-'));
    const ka = join(dir, 'bad.conf');
    writeFileSync(ka, 'virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  real_server 10.0.0.2 80 {\n    DNS_CHECK {\n    }\n  }\n}\n');
    const r = saru(['--check', '--services', ka]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^saru: ${ka.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: .*DNS_CHECK`));
    const ld = join(dir, 'bad.cf');
    writeFileSync(ld, 'virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 1\n\tscheduler=nosuch\n');
    const l = saru(['-t', '--services', ld]);
    assert.equal(l.code, 1);
    assert.match(l.stderr, /bad\.cf:\d+: .*nosuch/);
    assert.equal(saru(['--check']).code, 1, 'no file given');
  });

  it('--services_format forces a parser', () => {
    const r = saru(['--check', '--services_format', 'ldirectord', '--services', join(CORPUS, 'keepalived', 'keepalived.conf.sample')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /keepalived\.conf\.sample:\d+:/);
  });
});
