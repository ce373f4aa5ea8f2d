/**
 * sync/init/ and scripts/install-service.sh: the service files of saru and
 * saru-syncd. Static checks (sh -n, LSB headers, the two SysV scripts' common
 * part identical, systemd units as INI with the keys they need, defaults
 * files readable by both sh and systemd, example configs that parse), the
 * installer into a temporary DESTDIR and back out, and the SysV script
 * driving real processes: a stand-in foreground daemon (both launch paths,
 * syslog and file logging, SIGKILL after the stop timeout, a daemon that
 * dies at once) and finally the real saru-syncd (start, status, reload,
 * stop). Waits are for events (a pid file, a log line) under timeouts; the
 * scripts themselves poll at 0.1 s.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SARU_CONF_DEFAULTS, SARU_CONF_KEYS, parseSaruConf } from '../../saru/config.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const INIT = path.join(REPO, 'sync', 'init');
const INSTALL = path.join(REPO, 'scripts', 'install-service.sh');
const SERVICES = ['saru', 'saru-syncd'] as const;
const COMMON_MARK = '# ---- common part';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion (at most 120 s) with extra environment. */
function run(cmd: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const read = (f: string): string => fs.readFileSync(f, 'utf8');
const modeOf = (f: string): number => fs.statSync(f).mode & 0o777;

/** The LSB header fields of an init script (continuation lines joined). */
function lsbHeader(text: string): Map<string, string> {
  const m = /^### BEGIN INIT INFO\n([\s\S]*?)^### END INIT INFO$/m.exec(text);
  assert.ok(m, 'has an LSB header');
  const fields = new Map<string, string>();
  let last: string | null = null;
  for (const line of m[1]!.split('\n')) {
    if (line === '') continue;
    const f = /^# ([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (f) {
      last = f[1]!;
      fields.set(last, f[2]!.trim());
      continue;
    }
    const cont = /^#(?:\t| {2,})\s*(.*)$/.exec(line);
    assert.ok(cont && last !== null, `LSB header line: ${JSON.stringify(line)}`);
    fields.set(last, `${fields.get(last)} ${cont[1]!.trim()}`);
  }
  return fields;
}

/** A systemd unit file as sections of (key, value) pairs, in order (keys may repeat). */
function parseUnit(text: string): Map<string, Array<[string, string]>> {
  const sections = new Map<string, Array<[string, string]>>();
  let current: Array<[string, string]> | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    assert.ok(!line.endsWith('\\'), `line ${i + 1}: no continuation lines expected`);
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s) {
      assert.ok(!sections.has(s[1]!), `line ${i + 1}: section [${s[1]}] repeated`);
      current = [];
      sections.set(s[1]!, current);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    assert.ok(kv, `line ${i + 1}: expected Key=Value, got ${JSON.stringify(raw)}`);
    assert.ok(current, `line ${i + 1}: a key before any section`);
    current.push([kv[1]!, kv[2]!]);
  });
  return sections;
}

function one(section: Array<[string, string]> | undefined, key: string): string {
  const values = (section ?? []).filter(([k]) => k === key).map(([, v]) => v);
  assert.equal(values.length, 1, `exactly one ${key}=, got ${JSON.stringify(values)}`);
  return values[0]!;
}

describe('service files: static checks', () => {
  for (const s of SERVICES) {
    it(`${s}.init: sh -n (dash) and bash -n accept it; it is executable`, () => {
      const f = path.join(INIT, `${s}.init`);
      for (const shell of ['sh', 'bash']) {
        const r = run(shell, ['-n', f]);
        assert.equal(r.status, 0, `${shell} -n: ${r.stderr}`);
      }
      assert.equal(modeOf(f) & 0o111, 0o111);
      assert.ok(read(f).startsWith('#!/bin/sh\n'));
    });

    it(`${s}.init: LSB header`, () => {
      const h = lsbHeader(read(path.join(INIT, `${s}.init`)));
      assert.equal(h.get('Provides'), s);
      for (const k of ['Required-Start', 'Required-Stop']) {
        assert.deepEqual(h.get(k)!.split(/\s+/).sort(), ['$network', '$remote_fs', '$syslog'], k);
      }
      assert.equal(h.get('Default-Start'), '2 3 4 5');
      assert.equal(h.get('Default-Stop'), '0 1 6');
      assert.ok((h.get('Short-Description') ?? '').length > 10);
      assert.ok((h.get('Description') ?? '').length > 40);
      if (s === 'saru-syncd') assert.equal(h.get('Should-Start'), 'saru');
      else assert.equal(h.get('Should-Start'), undefined, 'saru depends on nothing of ours');
    });
  }

  it('the SysV scripts share their common part byte for byte', () => {
    const tail = (s: string): string => {
      const text = read(path.join(INIT, `${s}.init`));
      const at = text.indexOf(COMMON_MARK);
      assert.ok(at > 0, `${s}.init has the common-part marker`);
      return text.slice(at);
    };
    assert.equal(tail('saru'), tail('saru-syncd'));
  });

  for (const s of SERVICES) {
    it(`${s}.service: INI with the keys it needs`, () => {
      const u = parseUnit(read(path.join(INIT, `${s}.service`)));
      assert.deepEqual([...u.keys()], ['Unit', 'Service', 'Install']);
      const svc = u.get('Service');
      const prefix = s === 'saru' ? 'SARU' : 'SARU_SYNCD';
      assert.equal(one(svc, 'Type'), 'simple');
      assert.equal(one(svc, 'ExecStart'), `/usr/local/sbin/${s} --config \${${prefix}_CONFIG} --log_facility daemon $${prefix}_OPTS`);
      assert.equal(one(svc, 'ExecReload'), '/bin/kill -HUP $MAINPID');
      if (s === 'saru') assert.equal(one(svc, 'ExecStartPre'), '/usr/local/sbin/saru --check --config ${SARU_CONFIG}');
      assert.equal(one(svc, 'EnvironmentFile'), `-/etc/default/${s}`);
      assert.equal(one(svc, 'KillSignal'), 'SIGTERM');
      const env = (svc ?? []).filter(([k]) => k === 'Environment').map(([, v]) => v);
      assert.ok(env.includes(`${prefix}_CONFIG=/etc/saru/${s}.conf`), 'a default config path without the defaults file');
      assert.equal(one(u.get('Install'), 'WantedBy'), 'multi-user.target');
      const unit = u.get('Unit') ?? [];
      assert.ok(one(unit, 'After').split(/\s+/).includes('network-online.target'));
      if (s === 'saru') {
        assert.equal(one(svc, 'TimeoutStopSec'), '90', 'longer than the default drain_timeout (60 s)');
        assert.equal(one(svc, 'Restart'), 'on-failure');
      } else {
        assert.equal(one(svc, 'Restart'), 'always');
        assert.ok(one(unit, 'After').split(/\s+/).includes('saru.service'));
        assert.ok(one(unit, 'Wants').split(/\s+/).includes('saru.service'));
        for (const k of ['Requires', 'BindsTo', 'PartOf', 'Requisite']) {
          assert.ok(!unit.some(([key]) => key === k), `no ${k}=: saru-syncd restarts without touching saru and vice versa`);
        }
      }
    });

    it(`${s}.default: KEY=value lines that sh and systemd both read the same way`, () => {
      const f = path.join(INIT, `${s}.default`);
      const text = read(f);
      const assigned = new Map<string, string>();
      for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const m = /^([A-Z_]+)=(.*)$/.exec(line);
        assert.ok(m, `KEY=value, got ${JSON.stringify(line)}`);
        assert.ok(!/[$`\\]/.test(m[2]!), `no shell expansion in ${line}`);
        assigned.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
      }
      const prefix = s === 'saru' ? 'SARU' : 'SARU_SYNCD';
      assert.equal(assigned.get(`${prefix}_CONFIG`), `/etc/saru/${s}.conf`);
      assert.equal(assigned.get(`${prefix}_OPTS`), '');
      assert.equal(assigned.get(`${prefix}_PIDFILE`), `/run/${s}.pid`);
      assert.equal(assigned.get(`${prefix}_LOG`), 'syslog');
      assert.equal(assigned.get(`${prefix}_STOP_TIMEOUT`), s === 'saru' ? '90' : '30');
      // What sh makes of it is what the lines say.
      const names = [...assigned.keys()];
      const r = run('sh', ['-c', `. "$1"; for v in ${names.join(' ')}; do eval "printf '%s=%s\\n' \\"\\$v\\" \\"\\\${$v}\\""; done`, 'sh', f]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), names.map((n) => `${n}=${assigned.get(n)}`));
      // Every variable the script reads from it is documented there (set or commented out).
      const script = read(path.join(INIT, `${s}.init`));
      for (const v of new Set([...script.matchAll(new RegExp(`\\$\\{(${prefix}_[A-Z_]+):-`, 'g'))].map((x) => x[1]!))) {
        if (v === `${prefix}_DEFAULTS`) continue;
        assert.ok(new RegExp(`^#?${v}=`, 'm').test(text), `${s}.default mentions ${v}`);
      }
    });
  }

  it('saru.conf.example parses, documents every key, and its commented defaults are the defaults', () => {
    const example = read(path.join(INIT, 'saru.conf.example'));
    const plain = parseSaruConf(example, '/etc/saru/saru.conf');
    const uncommented = example
      .split('\n')
      .map((l) => {
        const m = /^#\s*([a-z_0-9]+)\s*=\s*(.*)$/.exec(l);
        return m && m[1]! in SARU_CONF_DEFAULTS ? `${m[1]} = ${m[2]}` : l;
      })
      .join('\n');
    assert.notEqual(uncommented, example);
    assert.deepEqual(parseSaruConf(uncommented, '/etc/saru/saru.conf'), plain);
    const documented = new Set([...example.matchAll(/^#?\s*([a-z_0-9]+)\s*=/gm)].map((m) => m[1]));
    for (const k of Object.keys(SARU_CONF_KEYS)) assert.ok(documented.has(k), `documents ${k}`);
    for (const [k, v] of Object.entries(SARU_CONF_DEFAULTS)) {
      if (k === 'join_delay' || k === 'drain_timeout') continue; // written in seconds, as the file takes them
      assert.match(example, new RegExp(`^# ${k} = ${String(v).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), `${k} shows its default`);
    }
  });
});

// ---------------------------------------------------------------------------

describe('scripts/install-service.sh', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'saru-install-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const WRAPPERS = { saru: 'dist/saru/cli.js', saruadm: 'dist/saru/adm.js', 'saru-syncd': 'dist/sync/cli.js' } as const;
  const everything = (dest: string): Array<[string, number]> => [
    ...Object.keys(WRAPPERS).map((b): [string, number] => [`${dest}/usr/local/sbin/${b}`, 0o755]),
    ...SERVICES.flatMap((s): Array<[string, number]> => [
      [`${dest}/etc/systemd/system/${s}.service`, 0o644],
      [`${dest}/etc/init.d/${s}`, 0o755],
      [`${dest}/etc/default/${s}`, 0o644],
      [`${dest}/etc/saru/${s}.conf.example`, 0o644],
    ]),
  ];
  const files = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(p);
      }
    };
    if (fs.existsSync(dir)) walk(dir);
    return out.sort();
  };

  it('installs every file with its mode, wrappers that run this checkout, and removes them again', () => {
    const dest = path.join(tmp, 'full');
    const r = run('bash', [INSTALL, '--systemd', '--sysv'], { DESTDIR: dest });
    assert.equal(r.status, 0, r.stderr);
    const want = everything(dest);
    assert.deepEqual(files(dest), want.map(([f]) => f).sort());
    for (const [f, mode] of want) {
      assert.equal(modeOf(f).toString(8), mode.toString(8), f);
      assert.match(r.stdout, new RegExp(`installed ${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
    }
    for (const s of SERVICES) {
      assert.equal(read(`${dest}/etc/init.d/${s}`), read(path.join(INIT, `${s}.init`)));
      assert.equal(read(`${dest}/etc/systemd/system/${s}.service`), read(path.join(INIT, `${s}.service`)));
      assert.equal(read(`${dest}/etc/default/${s}`), read(path.join(INIT, `${s}.default`)));
    }
    for (const [bin, js] of Object.entries(WRAPPERS)) {
      const w = read(`${dest}/usr/local/sbin/${bin}`);
      assert.ok(w.startsWith('#!/bin/sh\n'));
      assert.ok(w.includes(`SARU_HOME='${REPO.replace(/\/$/, '')}'`), w);
      assert.ok(w.includes(`exec "\${NODE:-`) && w.includes(`"$SARU_HOME/${js}" "$@"`), w);
      assert.equal(run('sh', ['-n', `${dest}/usr/local/sbin/${bin}`]).status, 0);
    }
    // The wrapper passes its arguments through.
    const help = run(`${dest}/usr/local/sbin/saru`, ['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: saru /);
    assert.match(r.stdout, /systemctl daemon-reload && systemctl enable --now saru saru-syncd/);
    assert.match(r.stdout, /update-rc\.d saru defaults/);

    const u = run('bash', [INSTALL, '--uninstall'], { DESTDIR: dest });
    assert.equal(u.status, 0, u.stderr);
    assert.deepEqual(files(dest), []);
    for (const [f] of want) assert.match(u.stdout, new RegExp(`removed +${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
  });

  it('keeps existing defaults and examples on install, and changed ones on uninstall', () => {
    const dest = path.join(tmp, 'keep');
    fs.mkdirSync(`${dest}/etc/default`, { recursive: true });
    fs.writeFileSync(`${dest}/etc/default/saru-syncd`, 'SARU_SYNCD_OPTS="--debug"\n');
    const r = run('bash', [INSTALL, '--sysv'], { DESTDIR: dest });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kept +.*\/etc\/default\/saru-syncd \(exists\)/);
    assert.equal(read(`${dest}/etc/default/saru-syncd`), 'SARU_SYNCD_OPTS="--debug"\n');
    assert.ok(!fs.existsSync(`${dest}/etc/systemd`), '--sysv alone installs no units');
    fs.writeFileSync(`${dest}/etc/saru/saru-syncd.conf`, 'node_id = 1\n');
    const again = run('bash', [INSTALL, '--sysv'], { DESTDIR: dest });
    assert.equal(again.status, 0);
    assert.match(again.stdout, /kept +.*\/etc\/saru\/saru\.conf\.example \(exists\)/);
    const u = run('bash', [INSTALL, '--uninstall'], { DESTDIR: dest });
    assert.equal(u.status, 0, u.stderr);
    assert.match(u.stdout, /kept +.*\/etc\/default\/saru-syncd \(changed/);
    assert.deepEqual(files(dest), [`${dest}/etc/default/saru-syncd`, `${dest}/etc/saru/saru-syncd.conf`]);
  });

  it('without options: the SysV scripts always, the units only where systemd runs', () => {
    const dest = path.join(tmp, 'auto');
    const r = run('bash', [INSTALL], { DESTDIR: dest });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(`${dest}/etc/init.d/saru-syncd`));
    assert.equal(fs.existsSync(`${dest}/etc/systemd/system/saru-syncd.service`), fs.existsSync('/run/systemd/system'));
  });

  it('refuses to run without a built dist/, telling to run npm install; refuses unknown options', () => {
    const empty = path.join(tmp, 'not-built');
    fs.mkdirSync(empty);
    const dest = path.join(tmp, 'never');
    const r = run('bash', [INSTALL, '--sysv'], { DESTDIR: dest, SARU_HOME: empty });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /has no built daemons .*dist\/saru\/cli\.js/);
    assert.match(r.stderr, /npm install/);
    assert.ok(!fs.existsSync(dest), 'nothing written');
    const bad = run('bash', [INSTALL, '--frobnicate'], { DESTDIR: dest });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown option "--frobnicate"/);
    const help = run('bash', [INSTALL, '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--uninstall/);
  });
});

// ---------------------------------------------------------------------------

/** Is `pid` gone (no such process, or a zombie waiting to be reaped)? */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return true;
  }
}

/** Poll `cond` every 50 ms until true or `ms` pass. */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SysV script driving a daemon', function () {
  this.timeout(120_000);
  const skip = process.platform !== 'linux' ? `needs Linux (/proc), this is ${process.platform}` : null;
  let tmp: string;
  let dest: string;
  const started: number[] = [];

  before(function () {
    if (skip) {
      console.log(`      (skipped: ${skip})`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'saru-sysv-'));
    dest = path.join(tmp, 'root');
    const r = run('bash', [INSTALL, '--sysv'], { DESTDIR: dest });
    assert.equal(r.status, 0, r.stderr);
  });

  after(() => {
    for (const pid of started) {
      if (!gone(pid)) process.kill(pid, 'SIGKILL');
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Write a defaults file for saru-syncd.init; returns how to run the script with it. */
  function sysv(name: string, settings: Record<string, string>, portable: boolean): { script: (action: string) => Run; pidfile: string } {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    const pidfile = path.join(dir, 'run', 'saru-syncd.pid');
    const all = { SARU_SYNCD_PIDFILE: pidfile, SARU_SYNCD_LOG: path.join(dir, 'saru-syncd.log'), SARU_SYNCD_STOP_TIMEOUT: '10', ...settings };
    const defaults = path.join(dir, 'defaults');
    fs.writeFileSync(defaults, Object.entries(all).map(([k, v]) => `${k}=${v}\n`).join(''));
    const env = { SARU_SYNCD_DEFAULTS: defaults, SARU_INIT_PORTABLE: portable ? 'yes' : 'no' };
    return { script: (action) => run(`${dest}/etc/init.d/saru-syncd`, [action], env), pidfile };
  }

  /** A stand-in daemon: runs in the foreground, logs its argv, "reload" on SIGHUP, exits 0.2 s after SIGTERM (or never). */
  function standIn(name: string, opts: { ignoreTerm?: boolean; failAtOnce?: boolean } = {}): string {
    const f = path.join(tmp, name);
    const onTerm = opts.ignoreTerm ? '() => console.log(JSON.stringify({ msg: "ignoring SIGTERM" }))' : '() => { console.log(JSON.stringify({ msg: "stopping" })); setTimeout(() => process.exit(0), 200); }';
    fs.writeFileSync(
      f,
      [
        `#!${process.execPath}`,
        opts.failAtOnce ? 'console.error("stand-in: config.conf:3: bad value"); process.exit(1);' : '',
        'process.on("SIGHUP", () => console.log(JSON.stringify({ msg: "reload" })));',
        `process.on("SIGTERM", ${onTerm});`,
        'console.log(JSON.stringify({ msg: "started", argv: process.argv.slice(2), cwd: process.cwd() }));',
        'setInterval(() => {}, 1 << 30);',
        '',
      ].join('\n'),
    );
    fs.chmodSync(f, 0o755);
    return f;
  }

  const pidIn = (pidfile: string): number => Number(read(pidfile).trim());

  for (const portable of [false, true]) {
    const how = portable ? 'the portable launcher (setsid, pid file)' : 'start-stop-daemon';
    it(`with ${how}: start, status, reload, restart, stop, with the output in a log file`, async function () {
      if (!portable && run('sh', ['-c', 'command -v start-stop-daemon']).status !== 0) this.skip();
      const conf = path.join(tmp, 'standin.conf');
      fs.writeFileSync(conf, '# not read by the stand-in\n');
      const { script, pidfile } = sysv(portable ? 'portable' : 'ssd', { SARU_SYNCD_DAEMON: standIn('standin'), SARU_SYNCD_CONFIG: conf, SARU_SYNCD_OPTS: '"--debug --extra"' }, portable);
      const log = path.join(path.dirname(path.dirname(pidfile)), 'saru-syncd.log');
      assert.equal(script('status').status, 3);
      const s = script('start');
      assert.equal(s.status, 0, s.stdout + s.stderr);
      const pid = pidIn(pidfile);
      started.push(pid);
      assert.match(s.stdout, new RegExp(`started \\(pid ${pid}\\)`));
      const st = script('status');
      assert.equal(st.status, 0);
      assert.match(st.stdout, new RegExp(`running \\(pid ${pid}\\)`));
      await until('started in the log', () => fs.existsSync(log) && read(log).includes('"started"'));
      const first = JSON.parse(read(log).split('\n')[0]!) as { argv: string[]; cwd: string };
      assert.deepEqual(first.argv, ['--config', conf, '--log_facility', 'daemon', '--debug', '--extra']);
      assert.equal(first.cwd, '/');
      assert.equal(script('start').status, 0, 'start when running: 0');
      assert.equal(pidIn(pidfile), pid, 'and nothing new started');

      const r = script('reload');
      assert.equal(r.status, 0);
      await until('reload in the log', () => read(log).includes('"reload"'));
      assert.ok(!gone(pid));
      assert.equal(script('force-reload').status, 0);

      const rs = script('restart');
      assert.equal(rs.status, 0, rs.stdout + rs.stderr);
      const pid2 = pidIn(pidfile);
      started.push(pid2);
      assert.notEqual(pid2, pid);
      assert.ok(gone(pid), 'the first one ended');

      const stop = script('stop');
      assert.equal(stop.status, 0, stop.stdout + stop.stderr);
      assert.ok(gone(pid2));
      assert.ok(!fs.existsSync(pidfile));
      assert.equal(script('status').status, 3);
      assert.equal(script('stop').status, 0, 'stop when stopped: 0');
      assert.equal(script('reload').status, 7, 'reload when stopped: 7 (not running)');
      assert.match(read(log), /"stopping"/);
    });
  }

  it('logs to syslog through logger when SARU_SYNCD_LOG=syslog, leaving no FIFO behind', async function () {
    if (run('sh', ['-c', 'command -v logger']).status !== 0) this.skip();
    const conf = path.join(tmp, 'standin.conf');
    fs.writeFileSync(conf, '# not read by the stand-in\n');
    const { script, pidfile } = sysv('syslog', { SARU_SYNCD_DAEMON: standIn('standin-syslog'), SARU_SYNCD_CONFIG: conf, SARU_SYNCD_LOG: 'syslog' }, true);
    assert.equal(script('start').status, 0);
    const pid = pidIn(pidfile);
    started.push(pid);
    const out = fs.readlinkSync(`/proc/${pid}/fd/1`);
    assert.match(out, /saru-syncd\.pid\.log-fifo \(deleted\)$/, 'stdout is the FIFO, already unlinked');
    assert.deepEqual(fs.readdirSync(path.dirname(pidfile)), ['saru-syncd.pid']);
    const children = run('ps', ['-o', 'args=', '--ppid', String(pid)]).stdout;
    assert.match(children, /logger -t saru-syncd/);
    assert.equal(script('stop').status, 0);
    assert.ok(gone(pid));
  });

  for (const portable of [false, true]) {
    it(`${portable ? 'portable launcher' : 'start-stop-daemon'}: a daemon that ignores SIGTERM gets SIGKILL after the stop timeout`, function () {
      if (!portable && run('sh', ['-c', 'command -v start-stop-daemon']).status !== 0) this.skip();
      const conf = path.join(tmp, 'standin.conf');
      fs.writeFileSync(conf, '#\n');
      const { script, pidfile } = sysv(`stubborn-${portable}`, { SARU_SYNCD_DAEMON: standIn('stubborn', { ignoreTerm: true }), SARU_SYNCD_CONFIG: conf, SARU_SYNCD_STOP_TIMEOUT: '1' }, portable);
      assert.equal(script('start').status, 0);
      const pid = pidIn(pidfile);
      started.push(pid);
      const stop = script('stop');
      assert.equal(stop.status, 0, stop.stdout + stop.stderr);
      assert.ok(gone(pid));
      assert.equal(script('status').status, 3);
    });
  }

  it('reports a daemon that dies at once, and missing daemon or config with LSB codes 5 and 6', () => {
    const conf = path.join(tmp, 'standin.conf');
    fs.writeFileSync(conf, '#\n');
    const { script, pidfile } = sysv('dies', { SARU_SYNCD_DAEMON: standIn('dies-daemon', { failAtOnce: true }), SARU_SYNCD_CONFIG: conf }, true);
    const r = script('start');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /failed to start; its reason is in .*saru-syncd\.log/);
    assert.match(read(path.join(path.dirname(path.dirname(pidfile)), 'saru-syncd.log')), /config\.conf:3: bad value/);
    assert.equal(script('status').status, 3);
    const noDaemon = sysv('no-daemon', { SARU_SYNCD_DAEMON: path.join(tmp, 'nope'), SARU_SYNCD_CONFIG: conf }, true).script('start');
    assert.equal(noDaemon.status, 5);
    assert.match(noDaemon.stderr, /is not installed/);
    const noConf = sysv('no-conf', { SARU_SYNCD_DAEMON: standIn('standin-nc'), SARU_SYNCD_CONFIG: path.join(tmp, 'nope.conf') }, true).script('start');
    assert.equal(noConf.status, 6);
  });

  it('status 1 for a pid file without its process; unknown actions exit 2 with the usage', () => {
    const { script, pidfile } = sysv('stale', { SARU_SYNCD_DAEMON: '/bin/true' }, true);
    fs.mkdirSync(path.dirname(pidfile), { recursive: true });
    fs.writeFileSync(pidfile, '999999999\n');
    const st = script('status');
    assert.equal(st.status, 1);
    assert.match(st.stdout, /dead, but the pid file .* exists/);
    assert.equal(script('stop').status, 0);
    assert.ok(!fs.existsSync(pidfile), 'stop removed the stale pid file');
    const bad = script('frobnicate');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^Usage: .*\{start\|stop\|restart\|force-reload\|reload\|status\}/);
  });

  it('runs the real saru-syncd (dist/sync/cli.js through the installed wrapper): start, status 0, reload, stop, status 3', async () => {
    const port = async (): Promise<number> => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      const p = s.address().port;
      await new Promise<void>((r) => s.close(r));
      return p;
    };
    const [own, peerPort] = [await port(), await port()];
    const dir = path.join(tmp, 'real');
    fs.mkdirSync(dir, { recursive: true });
    const key = path.join(dir, 'authkey');
    fs.writeFileSync(key, 'q0Vw3m8yK2b3sQ9e0pZl1cXr7tUu4iOa5sDf6gHj7kM=\n', { mode: 0o600 });
    fs.chmodSync(key, 0o600);
    const conf = path.join(dir, 'saru-syncd.conf');
    fs.writeFileSync(
      conf,
      [
        'node_id = 7',
        'interface = lo',
        `mcast_port = ${own}`,
        `peers = 127.0.0.1:${peerPort}`,
        'authkeys = authkey',
        `control_socket = ${path.join(dir, 'nobody-listens.sock')}`,
        `status_socket = ${path.join(dir, 'syncd.sock')}`,
        '',
      ].join('\n'),
    );
    const { script, pidfile } = sysv('real', { SARU_SYNCD_DAEMON: `${dest}/usr/local/sbin/saru-syncd`, SARU_SYNCD_CONFIG: conf }, false);
    const log = path.join(path.dirname(path.dirname(pidfile)), 'saru-syncd.log');
    const s = script('start');
    assert.equal(s.status, 0, `${s.stdout}${s.stderr}\nlog:\n${fs.existsSync(log) ? read(log) : '(none)'}`);
    const pid = pidIn(pidfile);
    started.push(pid);
    assert.match(read(`/proc/${pid}/cmdline`).split('\0').join(' '), /dist\/sync\/cli\.js --config \S+saru-syncd\.conf --log_facility daemon/);
    assert.equal(script('status').status, 0);
    // It catches SIGHUP (whose default action would end it): bit 1 of SigCgt.
    await until('a SIGHUP handler', () => (BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)$/m.exec(read(`/proc/${pid}/status`))![1]}`) & 1n) === 1n, 5_000);
    const before = read(log).length;
    assert.equal(script('reload').status, 0);
    // A reload that failed would be logged (or end the process) at once: wait for a log line, at most 1.5 s.
    await until('a log line after SIGHUP', () => read(log).length > before, 1_500).catch(() => {});
    assert.ok(!gone(pid), `still running after reload; log:\n${read(log)}`);
    assert.equal(script('status').status, 0);
    const stop = script('stop');
    assert.equal(stop.status, 0, stop.stdout + stop.stderr);
    assert.ok(gone(pid));
    assert.equal(script('status').status, 3);
    for (const line of read(log).trim().split('\n').filter((l) => l.startsWith('{'))) {
      const o = JSON.parse(line) as { name?: string; facility?: string };
      assert.equal(o.name, 'saru-syncd');
      assert.equal(o.facility, 'daemon');
    }
  });
});
