/**
 * sync/config.ts: saru-syncd.conf parsing. Defaults, every key's accepted
 * edges and rejected values (each error naming file:line and what was
 * expected), missing required keys, the peers forms, and sync_threshold
 * validated as the kernel validates net.ipv4.vs.sync_threshold.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ErrorCode, SaruError } from '../../core/index.js';
import { SYNC_CONF_DEFAULTS, SYNC_CONF_KEYS, loadSyncConf, parseSyncConf, type SyncConfKey } from '../../sync/config.js';

const FILE = '/etc/saru/saru-syncd.conf';
const MIN = 'node_id = 2\ninterface = eth1\nauthkeys = authkey\n';

/** parseSyncConf(text) must throw SARU_ERR_CONFIG at `line` with a message containing every `includes`. */
function configErr(text: string, line: number, ...includes: string[]): void {
  assert.throws(
    () => parseSyncConf(text, FILE),
    (e: unknown) => {
      assert.ok(e instanceof SaruError, String(e));
      assert.equal(e.code, ErrorCode.CONFIG);
      assert.deepEqual(e.location, { file: FILE, line }, e.message);
      assert.ok(e.message.startsWith(`${FILE}:${line}: `), e.message);
      for (const s of includes) assert.ok(e.message.includes(s), `"${e.message}" should mention "${s}"`);
      return true;
    },
  );
}

describe('saru-syncd.conf', () => {
  it('applies the defaults and resolves relative paths from the file', () => {
    const c = parseSyncConf(MIN, FILE);
    assert.deepEqual(c, {
      file: FILE,
      nodeId: 2,
      interface: 'eth1',
      mcastGroup: '239.192.83.2',
      mcastPort: 7085,
      mcastTtl: 1,
      peers: null,
      syncThreshold: 3,
      syncPeriod: 50,
      authkeys: '/etc/saru/authkey',
      controlSocket: '/run/saru/saru.sock',
      statusSocket: '/run/saru/syncd.sock',
      maxDatagramBytes: 1472,
      flushIntervalMs: 10,
      aliveIntervalMs: 250,
      ringDatagrams: 4096,
    });
  });

  it('SYNC_CONF_DEFAULTS are what an empty setting gives, and every default parses', () => {
    const text = Object.entries(SYNC_CONF_DEFAULTS).map(([k, v]) => `${k} = ${v}`).join('\n');
    assert.deepEqual(parseSyncConf(`${MIN}${text}\n`, FILE), parseSyncConf(MIN, FILE));
    for (const k of Object.keys(SYNC_CONF_DEFAULTS)) assert.ok(k in SYNC_CONF_KEYS, k);
  });

  it('reads every key', () => {
    const c = parseSyncConf(
      [
        'node_id = 1023   # the last one',
        'interface = bond0.12',
        'authkeys = /etc/saru/authkey',
        'mcast_group = 224.0.0.200',
        'mcast_port = 65535',
        'mcast_ttl = 255',
        'sync_threshold = 0 1',
        'control_socket = run/saru.sock',
        'status_socket = /tmp/syncd.sock',
        'max_datagram_bytes = 65507',
        'flush_interval = 1000',
        'alive_interval = 20',
        'ring_size = 1048576',
        '',
      ].join('\r\n'),
      FILE,
    );
    assert.equal(c.nodeId, 1023);
    assert.equal(c.interface, 'bond0.12');
    assert.equal(c.mcastGroup, '224.0.0.200');
    assert.equal(c.mcastPort, 65535);
    assert.equal(c.mcastTtl, 255);
    assert.equal(c.syncThreshold, 0);
    assert.equal(c.syncPeriod, 1);
    assert.equal(c.controlSocket, '/etc/saru/run/saru.sock');
    assert.equal(c.statusSocket, '/tmp/syncd.sock');
    assert.equal(c.maxDatagramBytes, 65507);
    assert.equal(c.flushIntervalMs, 1000);
    assert.equal(c.aliveIntervalMs, 20);
    assert.equal(c.ringDatagrams, 1048576);
  });

  it('ignores comments and blank lines; # starts a comment at the line start or after a space', () => {
    const c = parseSyncConf(`# saru-syncd\n\n   \n${MIN}mcast_ttl = 2 # a comment\n  # indented comment\n`, FILE);
    assert.equal(c.mcastTtl, 2);
    configErr(`${MIN}mcast_ttl = 2#3\n`, 4, 'mcast_ttl: expected an integer 1-255, got "2#3"');
  });

  describe('errors name the file, the line and what was expected', () => {
    const cases: Array<{ description: string; input: string; line: number; includes: string[] }> = [
      { description: 'not key = value', input: `${MIN}mcast_ttl 2\n`, line: 4, includes: ['expected "key = value", got "mcast_ttl 2"'] },
      { description: 'unknown key', input: `node_id = 1\nsync_period = 50\n`, line: 2, includes: ['unknown key "sync_period"'] },
      { description: 'repeated key', input: `${MIN}mcast_port = 7000\nmcast_port = 7001\n`, line: 5, includes: ['"mcast_port" already set on line 4'] },
      { description: 'empty value', input: `${MIN}peers =\n`, line: 4, includes: ['"peers" needs a value', SYNC_CONF_KEYS.peers] },
    ];
    const badValues: Array<[SyncConfKey, string[]]> = [
      ['node_id', ['0', '1024', '-1', '1.5', 'one', '0x10', '99999999999']],
      ['interface', ['eth 0', 'a-very-long-interface-name', 'eth0/1']],
      ['mcast_group', ['10.0.0.1', '240.0.0.1', '223.255.255.255', 'ff02::1', '239.1.1', '239.1.1.256', 'group']],
      ['mcast_port', ['0', '65536', '-1', '7085.0', 'http']],
      ['mcast_ttl', ['0', '256', 'one']],
      ['max_datagram_bytes', ['511', '65508', '1472b']],
      ['flush_interval', ['0', '1001']],
      ['alive_interval', ['19', '10001']],
      ['ring_size', ['63', '1048577', '4k']],
    ];
    for (const [key, values] of badValues) {
      for (const v of values) {
        const body = key === 'node_id' || key === 'interface' ? MIN.replace(new RegExp(`^${key} = .*$`, 'm'), `${key} = ${v}`) : `${MIN}# a comment\n${key} = ${v}\n`;
        const line = body.split('\n').findIndex((l) => l.startsWith(`${key} =`)) + 1;
        cases.push({ description: `${key} = ${v}`, input: body, line, includes: [`${key}: expected ${SYNC_CONF_KEYS[key]}, got "${v}"`] });
      }
    }
    for (const t of cases) {
      it(t.description, () => configErr(t.input, t.line, ...t.includes));
    }

    it('the control and status sockets must differ', () => {
      configErr(`${MIN}control_socket = /run/x.sock\nstatus_socket = /run/x.sock\n`, 5, 'status_socket and control_socket are both /run/x.sock');
      configErr(`${MIN}status_socket = /run/saru/saru.sock\n`, 4, 'must differ');
    });
  });

  describe('missing required keys are reported at the last line', () => {
    for (const key of ['node_id', 'interface', 'authkeys'] as const) {
      it(key, () => {
        const text = `${MIN.replace(new RegExp(`^${key} = .*\\n`, 'm'), '')}# end\n`;
        configErr(text, 3, `missing required key "${key}" (${SYNC_CONF_KEYS[key]})`);
      });
    }
    it('an empty file: line 1', () => configErr('', 1, 'missing required key "node_id"'));
  });

  describe('peers', () => {
    it('takes addresses with and without ports, separated by spaces, tabs and commas; the port defaults to mcast_port', () => {
      const c = parseSyncConf(`${MIN}mcast_port = 7100\npeers = 198.18.0.1, 198.18.0.2:7200 ,198.18.0.3\t198.18.0.1:7101,,198.18.0.2\n`, FILE);
      assert.deepEqual(c.peers, [
        { address: '198.18.0.1', port: 7100 },
        { address: '198.18.0.2', port: 7200 },
        { address: '198.18.0.3', port: 7100 },
        { address: '198.18.0.1', port: 7101 },
        { address: '198.18.0.2', port: 7100 },
      ]);
    });

    it('the port default follows mcast_port wherever it is set', () => {
      const c = parseSyncConf(`${MIN}peers = 10.0.0.1\nmcast_port = 9000\n`, FILE);
      assert.deepEqual(c.peers, [{ address: '10.0.0.1', port: 9000 }]);
    });

    it('one peer, and edge ports', () => {
      assert.deepEqual(parseSyncConf(`${MIN}peers = 10.0.0.1:1 10.0.0.1:65535\n`, FILE).peers, [
        { address: '10.0.0.1', port: 1 },
        { address: '10.0.0.1', port: 65535 },
      ]);
    });

    const bad: Array<[string, string, string]> = [
      ['10.0.0.1 10.0.0.1', '10.0.0.1', 'repeats "10.0.0.1"'],
      ['10.0.0.1 10.0.0.1:7085', '10.0.0.1:7085', 'repeats "10.0.0.1"'],
      ['10.0.0.1:8000,10.0.0.2,10.0.0.1:8000', '10.0.0.1:8000', 'repeats "10.0.0.1:8000"'],
      ['10.0.0.1 host.example', 'host.example', 'is not an IPv4 address'],
      ['10.0.0.256', '10.0.0.256', 'is not an IPv4 address'],
      ['fe80::1', 'fe80::1', 'is not ADDRESS or ADDRESS:PORT'],
      ['10.0.0.1:0', '10.0.0.1:0', 'has a port outside 1-65535'],
      ['10.0.0.1:65536', '10.0.0.1:65536', 'has a port outside 1-65535'],
      ['10.0.0.1:', '10.0.0.1:', 'is not ADDRESS or ADDRESS:PORT'],
      ['10.0.0.1:http', '10.0.0.1:http', 'is not ADDRESS or ADDRESS:PORT'],
      ['10.0.0.1:123456', '10.0.0.1:123456', 'is not ADDRESS or ADDRESS:PORT'],
      ['239.192.83.2', '239.192.83.2', 'is not a unicast address'],
      ['0.0.0.0', '0.0.0.0', 'is not a unicast address'],
      ['255.255.255.255:9', '255.255.255.255:9', 'is not a unicast address'],
      [',', ',', 'holds no address'],
    ];
    for (const [value, token, why] of bad) {
      it(`refuses "${value}", naming "${token}"`, () => configErr(`${MIN}peers = ${value}\n`, 4, 'peers: expected', `"${token}" ${why}`));
    }
  });

  describe('sync_threshold (net.ipv4.vs.sync_threshold)', () => {
    const good: Array<[string, number, number]> = [
      ['3 50', 3, 50],
      ['0 50', 0, 50],
      ['49 50', 49, 50],
      ['0 1', 0, 1],
      ['3 0', 3, 0],
      ['0 0', 0, 0],
      ['1000 0', 1000, 0],
      ['2147483646   2147483647', 2147483646, 2147483647],
      ['5\t10', 5, 10],
    ];
    for (const [v, t, p] of good) {
      it(`accepts "${v}"`, () => {
        const c = parseSyncConf(`${MIN}sync_threshold = ${v}\n`, FILE);
        assert.deepEqual([c.syncThreshold, c.syncPeriod], [t, p]);
      });
    }
    const bad: Array<[string, string]> = [
      ['50 50', 'THRESHOLD 50 must be below PERIOD 50'],
      ['51 50', 'THRESHOLD 51 must be below PERIOD 50'],
      ['1 1', 'must be below PERIOD 1'],
      ['3', '1 value, need 2'],
      ['3 50 1', '3 values, need 2'],
      ['3,50', '1 value, need 2'],
      ['-1 50', 'got "-1 50"'],
      ['3 -50', 'got "3 -50"'],
      ['3 2147483648', 'got "3 2147483648"'],
      ['three fifty', 'got "three fifty"'],
      ['3.5 50', 'got "3.5 50"'],
    ];
    for (const [v, why] of bad) {
      it(`refuses "${v}"`, () => configErr(`${MIN}sync_threshold = ${v}\n`, 4, `sync_threshold: expected ${SYNC_CONF_KEYS.sync_threshold}`, why));
    }

    it('property: accepted exactly when the kernel would accept it (both >= 0, threshold < period unless period is 0)', () => {
      fc.assert(
        fc.property(fc.integer({ min: -5, max: 200 }), fc.integer({ min: -5, max: 200 }), (t, p) => {
          const kernelOk = t >= 0 && p >= 0 && !(t >= p && p !== 0);
          let ok = true;
          try {
            const c = parseSyncConf(`${MIN}sync_threshold = ${t} ${p}\n`, FILE);
            assert.deepEqual([c.syncThreshold, c.syncPeriod], [t, p]);
          } catch (e) {
            assert.ok(e instanceof SaruError && e.code === ErrorCode.CONFIG, String(e));
            ok = false;
          }
          assert.equal(ok, kernelOk, `${t} ${p}`);
        }),
      );
    });
  });

  it('property: any text either parses or throws SARU_ERR_CONFIG with a location', () => {
    const line = fc.oneof(
      fc.string(),
      fc.tuple(fc.constantFrom(...Object.keys(SYNC_CONF_KEYS)), fc.string()).map(([k, v]) => `${k} = ${v}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        try {
          parseSyncConf(lines.join('\n'), FILE);
        } catch (e) {
          assert.ok(e instanceof SaruError && e.code === ErrorCode.CONFIG && e.location !== undefined, String(e));
        }
      }),
      { numRuns: 300 },
    );
  });

  describe('loadSyncConf', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saru-syncconf-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reads a file, resolving relative paths from its directory', () => {
      const f = path.join(dir, 'saru-syncd.conf');
      fs.writeFileSync(f, `${MIN}status_socket = syncd.sock\n`);
      const c = loadSyncConf(f);
      assert.equal(c.file, f);
      assert.equal(c.authkeys, path.join(dir, 'authkey'));
      assert.equal(c.statusSocket, path.join(dir, 'syncd.sock'));
    });

    it('names a file it cannot read', () => {
      const f = path.join(dir, 'missing.conf');
      assert.throws(
        () => loadSyncConf(f),
        (e: unknown) => e instanceof SaruError && e.code === ErrorCode.CONFIG && e.message.startsWith(`cannot read ${f}: `) && /ENOENT/.test(e.message),
      );
    });

    it('reports errors with the given file name', () => {
      const f = path.join(dir, 'bad.conf');
      fs.writeFileSync(f, `${MIN}mcast_ttl = 0\n`);
      assert.throws(() => loadSyncConf(f), (e: unknown) => e instanceof SaruError && e.message.startsWith(`${f}:4: mcast_ttl: expected`));
    });

    it('the example config in sync/init parses (every key commented out but the required ones)', () => {
      const example = fs.readFileSync(new URL('../../../sync/init/saru-syncd.conf.example', import.meta.url), 'utf8');
      // Uncomment every "# key = value" line: the defaults it documents must parse and equal the built-in ones.
      const uncommented = example
        .split('\n')
        .map((l) => {
          const m = /^#\s*([a-z_]+)\s*=\s*(.*)$/.exec(l);
          return m && m[1] !== 'peers' && m[1]! in SYNC_CONF_KEYS ? `${m[1]} = ${m[2]}` : l;
        })
        .join('\n');
      const plain = parseSyncConf(example, '/etc/saru/saru-syncd.conf');
      const all = parseSyncConf(uncommented, '/etc/saru/saru-syncd.conf');
      assert.deepEqual(all, plain);
      const documented = new Set([...example.matchAll(/^#?\s*([a-z_]+)\s*=/gm)].map((m) => m[1]));
      for (const k of Object.keys(SYNC_CONF_KEYS)) assert.ok(documented.has(k), `the example documents ${k}`);
    });
  });
});
