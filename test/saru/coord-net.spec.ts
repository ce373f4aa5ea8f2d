/**
 * saru/coord-net.ts: the cluster key file, the coordinator state file
 * (durable save, strict load, incarnations) and ClusterTransport, first in
 * this process (settings, interface lookup, rate-limited errors, real
 * sockets on lo, a port in use) and then between two network namespaces
 * joined by two veth pairs, with each peer a child process
 * (coord-net-peer.ts) started by `ip netns exec`. The namespace tests need
 * root and are skipped with the reason otherwise. Every wait is for an event
 * (a line from a peer, a datagram) under an overall timeout; none sleeps.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ErrorCode, ManualClock, SaruError } from '../../core/index.js';
import { MAX_TERM, type PersistedState } from '../../saru/coord/index.js';
import {
  ClusterTransport,
  loadClusterKey,
  loadCoordState,
  nextIncarnation,
  saveCoordState,
  type ClusterTransportInit,
  type SavedCoordState,
} from '../../saru/coord-net.js';
import { Netns } from '../native/netns.js';

/** A logger that keeps what it is given. */
class RecordingLog {
  readonly entries: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  info(obj: object, msg?: string): void {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg?: string): void {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  debug(obj: object, msg?: string): void {
    this.entries.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  at(level: string): Array<{ obj: Record<string, unknown>; msg: string | undefined }> {
    return this.entries.filter((e) => e.level === level);
  }
}

const isSaru = (code: ErrorCode, message?: RegExp | string) => (e: unknown): boolean => {
  assert.ok(e instanceof SaruError, `expected a SaruError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (typeof message === 'string') assert.equal(e.message, message);
  else if (message) assert.match(e.message, message);
  return true;
};

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'saru-coord-net-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('coord-net: loadClusterKey', () => {
  let n = 0;
  /** A new file in the temp dir with `content` and `mode` (set with chmod, so the umask does not matter). */
  function keyFile(content: string | Uint8Array, mode = 0o600): string {
    const f = path.join(tmp, `key-${n++}`);
    fs.writeFileSync(f, content);
    fs.chmodSync(f, mode);
    return f;
  }

  it('returns the bytes of a mode 0600 file as they are', () => {
    const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    raw[31] = 0x41; // not a trailing space or newline
    const key = loadClusterKey(keyFile(raw));
    assert.deepEqual(key, raw);
    assert.equal(Object.getPrototypeOf(key), Uint8Array.prototype);
  });

  it('trims trailing LF, CRLF and spaces (openssl rand -base64 32 > key), nothing else', () => {
    const b64 = 'q0Vw3m8yK2b3sQ9e0pZl1cXr7tUu4iOa5sDf6gHj7kM=';
    for (const tail of ['\n', '\r\n', '  \n', ' ', '']) {
      assert.equal(Buffer.from(loadClusterKey(keyFile(`${b64}${tail}`))).toString(), b64, JSON.stringify(tail));
    }
    assert.equal(Buffer.from(loadClusterKey(keyFile(`\n ${b64}\n`))).toString(), `\n ${b64}`, 'leading bytes are kept');
  });

  it('accepts mode 0400 and exactly 16 bytes', () => {
    assert.equal(loadClusterKey(keyFile('0123456789abcdef\n', 0o400)).length, 16);
  });

  it('refuses a key readable by others, with the chmod that fixes it', () => {
    const f = keyFile('0123456789abcdef0123456789abcdef\n', 0o644);
    assert.throws(() => loadClusterKey(f), isSaru(ErrorCode.CONFIG, `authkeys ${f} must be mode 0600 (it is 0644): chmod 600 ${f}`));
    const g = keyFile('0123456789abcdef0123456789abcdef\n', 0o620);
    assert.throws(() => loadClusterKey(g), isSaru(ErrorCode.CONFIG, /must be mode 0600 \(it is 0620\)/));
  });

  it('refuses a key shorter than 16 bytes after trimming, saying how to make one', () => {
    const f = keyFile('0123456789abcde\n\n');
    assert.throws(() => loadClusterKey(f), isSaru(ErrorCode.CONFIG, /holds 15 bytes .*at least 16 .*openssl rand -base64 32/));
    assert.throws(() => loadClusterKey(keyFile(' \r\n')), isSaru(ErrorCode.CONFIG, /holds 0 bytes/));
  });

  it('names a missing file and the OS reason', () => {
    const f = path.join(tmp, 'no-such-key');
    assert.throws(() => loadClusterKey(f), isSaru(ErrorCode.CONFIG, new RegExp(`^authkeys ${f} cannot be read: no such file or directory \\(ENOENT\\)`)));
  });

  it('refuses a directory and a FIFO (without blocking on it)', () => {
    const d = path.join(tmp, 'key-dir');
    fs.mkdirSync(d, { mode: 0o700 });
    assert.throws(() => loadClusterKey(d), isSaru(ErrorCode.CONFIG, /must be a regular file \(it is a directory\)/));
    const fifo = path.join(tmp, 'key-fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    assert.throws(() => loadClusterKey(fifo), isSaru(ErrorCode.CONFIG, /must be a regular file \(it is a FIFO\)/));
  });

  it('refuses a file too large to be a key', () => {
    assert.throws(() => loadClusterKey(keyFile(new Uint8Array(5000).fill(65))), isSaru(ErrorCode.CONFIG, /5000 bytes; a key is at most 4096/));
  });
});

describe('coord-net: state file', () => {
  let n = 0;
  const stateFile = (): string => path.join(tmp, `state-${n++}`, 'coord.json');
  const SAMPLE: SavedCoordState = { incarnation: 1_700_000_000_123, state: { epoch: 5 * 1024 + 3, committedEpoch: 4 * 1024 + 1, configs: [[1, 3], [1, 2, 3], []] } };

  it('is null when the file does not exist', () => {
    const log = new RecordingLog();
    assert.equal(loadCoordState(path.join(tmp, 'none.json'), log), null);
    assert.equal(log.entries.length, 0);
  });

  it('round-trips, with and without coordinator state, and overwrites', () => {
    const f = stateFile();
    saveCoordState(f, SAMPLE);
    assert.deepEqual(loadCoordState(f), SAMPLE);
    saveCoordState(f, { incarnation: 7, state: null });
    assert.deepEqual(loadCoordState(f), { incarnation: 7, state: null });
    assert.deepEqual(fs.readdirSync(path.dirname(f)), ['coord.json'], 'no .tmp file remains');
  });

  it('creates missing directories with mode 0700', () => {
    const top = path.join(tmp, `nested-${n++}`);
    const f = path.join(top, 'a', 'b', 'coord.json');
    saveCoordState(f, SAMPLE);
    for (const d of [top, path.join(top, 'a'), path.join(top, 'a', 'b')]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, d);
    assert.deepEqual(loadCoordState(f), SAMPLE);
  });

  it('writes the documented JSON', () => {
    const f = stateFile();
    saveCoordState(f, { incarnation: 9, state: { epoch: 2048, committedEpoch: 0, configs: [[0]] } });
    assert.deepEqual(JSON.parse(fs.readFileSync(f, 'utf8')), { format: 1, incarnation: 9, state: { epoch: 2048, committedEpoch: 0, configs: [[0]] } });
  });

  it('ignores a file that is not JSON, with a warning', () => {
    const f = stateFile();
    saveCoordState(f, SAMPLE);
    fs.writeFileSync(f, '{"format":1,"incarnation":12,"sta');
    const log = new RecordingLog();
    assert.equal(loadCoordState(f, log), null);
    assert.equal(log.at('warn').length, 1);
    assert.equal(log.at('warn')[0]!.obj.file, f);
    assert.match(String(log.at('warn')[0]!.obj.reason), /^not JSON/);
  });

  const good = { format: 1, incarnation: 12, state: { epoch: 3, committedEpoch: 2, configs: [[1, 2]] } };
  const withState = (s: Record<string, unknown>) => ({ ...good, state: { ...good.state, ...s } });
  const wrongShapes: Array<{ description: string; input: unknown; reason: RegExp }> = [
    { description: 'top level null', input: null, reason: /not an object/ },
    { description: 'top level array', input: [good], reason: /not an object/ },
    { description: 'another format', input: { ...good, format: 2 }, reason: /format is 2/ },
    { description: 'no format', input: { incarnation: 12, state: null }, reason: /lacks "format"/ },
    { description: 'unknown field', input: { ...good, extra: 1 }, reason: /unknown field "extra"/ },
    { description: 'incarnation 0', input: { ...good, incarnation: 0 }, reason: /incarnation/ },
    { description: 'incarnation a string', input: { ...good, incarnation: '12' }, reason: /incarnation/ },
    { description: 'incarnation fractional', input: { ...good, incarnation: 1.5 }, reason: /incarnation/ },
    { description: 'incarnation 2^43', input: { ...good, incarnation: 2 ** 43 }, reason: /incarnation/ },
    { description: 'state an array', input: { ...good, state: [] }, reason: /state is neither/ },
    { description: 'state lacks configs', input: { ...good, state: { epoch: 3, committedEpoch: 2 } }, reason: /lacks "configs"/ },
    { description: 'epoch negative', input: withState({ epoch: -1 }), reason: /state\.epoch/ },
    { description: 'epoch unsafe', input: withState({ epoch: 2 ** 53 }), reason: /state\.epoch/ },
    { description: 'epoch huge float', input: withState({ epoch: 1e300 }), reason: /state\.epoch/ },
    { description: 'committedEpoch a string', input: withState({ committedEpoch: '2' }), reason: /state\.committedEpoch/ },
    { description: 'configs an object', input: withState({ configs: {} }), reason: /configs is not an array/ },
    { description: 'configs of numbers', input: withState({ configs: [1] }), reason: /configs\[0\] is not an array/ },
    { description: 'node id 1024', input: withState({ configs: [[1], [1024]] }), reason: /configs\[1\] holds 1024/ },
    { description: 'node id -1', input: withState({ configs: [[-1]] }), reason: /holds -1/ },
    { description: 'node id fractional', input: withState({ configs: [[1.5]] }), reason: /holds 1\.5/ },
    { description: 'node id a string', input: withState({ configs: [['1']] }), reason: /holds "1"/ },
  ];
  for (const t of wrongShapes) {
    it(`ignores a file with a wrong shape, with a warning: ${t.description}`, () => {
      const f = stateFile();
      fs.mkdirSync(path.dirname(f));
      fs.writeFileSync(f, JSON.stringify(t.input));
      const log = new RecordingLog();
      assert.equal(loadCoordState(f, log), null);
      assert.equal(log.at('warn').length, 1);
      assert.match(String(log.at('warn')[0]!.obj.reason), t.reason);
    });
  }

  it('the good shape of the table above loads', () => {
    const f = stateFile();
    fs.mkdirSync(path.dirname(f));
    fs.writeFileSync(f, JSON.stringify(good));
    assert.deepEqual(loadCoordState(f), { incarnation: 12, state: good.state });
  });

  it('throws SARU_ERR_IO when the file exists but cannot be read', () => {
    const d = path.join(tmp, `statedir-${n++}`);
    fs.mkdirSync(d);
    assert.throws(() => loadCoordState(d), isSaru(ErrorCode.IO, new RegExp(`cannot read the coordinator state file ${d}: .*EISDIR`)));
  });

  it('refuses to save what it would not load, leaving the old file', () => {
    const f = stateFile();
    saveCoordState(f, SAMPLE);
    const bad = { incarnation: 3, state: { epoch: -1, committedEpoch: 0, configs: [] } } as SavedCoordState;
    assert.throws(() => saveCoordState(f, bad), isSaru(ErrorCode.INVALID_ARGUMENT, /state\.epoch/));
    assert.throws(() => saveCoordState(f, { incarnation: 0, state: null }), isSaru(ErrorCode.INVALID_ARGUMENT, /incarnation/));
    assert.deepEqual(loadCoordState(f), SAMPLE);
  });

  it('saves only the known fields', () => {
    const f = stateFile();
    const extra = { incarnation: 4, state: { epoch: 1, committedEpoch: 1, configs: [[2]] }, note: 'x' } as SavedCoordState;
    // An extra field on the object passed in is a programming error too.
    assert.throws(() => saveCoordState(f, extra), isSaru(ErrorCode.INVALID_ARGUMENT, /unknown field "note"/));
  });

  it('throws SARU_ERR_IO naming the file when it cannot save', () => {
    const blocker = path.join(tmp, `plainfile-${n++}`);
    fs.writeFileSync(blocker, '');
    const f = path.join(blocker, 'coord.json');
    assert.throws(() => saveCoordState(f, SAMPLE), isSaru(ErrorCode.IO, new RegExp(`cannot save the coordinator state file ${f} \\(creating its directory\\): .*(ENOTDIR|EEXIST)`)));
    const d = path.join(tmp, `dir-in-the-way-${n++}`);
    fs.mkdirSync(path.join(d, 'coord.json'), { recursive: true });
    assert.throws(() => saveCoordState(path.join(d, 'coord.json'), SAMPLE), isSaru(ErrorCode.IO, /\(renaming .*coord\.json\.tmp\): .*EISDIR/));
    assert.deepEqual(fs.readdirSync(d), ['coord.json'], 'the .tmp file was removed');
  });

  it('property: any valid state round-trips', () => {
    const f = stateFile();
    const persisted: fc.Arbitrary<PersistedState> = fc.record({
      epoch: fc.maxSafeNat(),
      committedEpoch: fc.maxSafeNat(),
      configs: fc.array(fc.array(fc.integer({ min: 0, max: 1023 }), { maxLength: 8 }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_TERM }), fc.option(persisted, { nil: null }), (incarnation, state) => {
        saveCoordState(f, { incarnation, state });
        assert.deepEqual(loadCoordState(f), { incarnation, state });
      }),
      { numRuns: 50 },
    );
  });

  it('property: loading any content never throws, and what loads saves again', () => {
    const f = stateFile();
    fs.mkdirSync(path.dirname(f));
    const content = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ format: fc.constant(1), incarnation: fc.jsonValue(), state: fc.jsonValue() }).map((v) => JSON.stringify(v)),
      fc
        .record({ epoch: fc.jsonValue(), committedEpoch: fc.jsonValue(), configs: fc.jsonValue() }, { requiredKeys: [] })
        .map((state) => JSON.stringify({ format: 1, incarnation: 5, state })),
    );
    fc.assert(
      fc.property(content, (text) => {
        fs.writeFileSync(f, text);
        const got = loadCoordState(f, new RecordingLog());
        if (got !== null) saveCoordState(`${f}.again`, got);
      }),
      { numRuns: 300 },
    );
  });
});

describe('coord-net: nextIncarnation', () => {
  it('is the wall clock in whole milliseconds, or one more than the saved one if that is larger', () => {
    assert.equal(nextIncarnation(null, 1_700_000_000_123.9), 1_700_000_000_123);
    assert.equal(nextIncarnation(1_600_000_000_000, 1_700_000_000_123), 1_700_000_000_123);
    assert.equal(nextIncarnation(1_700_000_000_500, 1_700_000_000_123), 1_700_000_000_501, 'clock went back');
    assert.equal(nextIncarnation(1_700_000_000_123, 1_700_000_000_123), 1_700_000_000_124, 'same millisecond');
    assert.equal(nextIncarnation(null, 0), 1, 'at least 1');
    assert.equal(nextIncarnation(0, 0), 1);
  });

  it('stays below 2^43 (MAX_TERM)', () => {
    assert.equal(MAX_TERM, 2 ** 43 - 1);
    assert.equal(nextIncarnation(MAX_TERM - 1, 0), MAX_TERM);
    assert.equal(nextIncarnation(null, MAX_TERM + 0.5), MAX_TERM);
    assert.throws(() => nextIncarnation(MAX_TERM, 0), isSaru(ErrorCode.INVALID_ARGUMENT, /would reach 2\^43/));
    assert.throws(() => nextIncarnation(null, 2 ** 43), isSaru(ErrorCode.INVALID_ARGUMENT, /would reach 2\^43/));
  });

  it('refuses bad inputs', () => {
    for (const [saved, wall] of [[-1, 0], [1.5, 0], [2 ** 53, 0], [null, -1], [null, Number.NaN], [null, Infinity]] as Array<[number | null, number]>) {
      assert.throws(() => nextIncarnation(saved, wall), isSaru(ErrorCode.INVALID_ARGUMENT), `${saved}, ${wall}`);
    }
  });

  it('property: above the saved one, at least the wall clock, and the smallest such', () => {
    fc.assert(
      fc.property(fc.option(fc.integer({ min: 0, max: 2 ** 42 }), { nil: null }), fc.double({ min: 0, max: 2 ** 42, noNaN: true }), (saved, wall) => {
        const n = nextIncarnation(saved, wall);
        assert.ok(Number.isSafeInteger(n) && n >= 1 && n <= MAX_TERM);
        assert.ok(n >= Math.floor(wall));
        if (saved !== null) assert.ok(n > saved);
        assert.ok(n === 1 || n === Math.floor(wall) || n === (saved ?? 0) + 1);
      }),
    );
  });
});

// ---------------------------------------------------------------------------

const LO = os.networkInterfaces().lo?.find((a) => a.family === 'IPv4');

/** A free UDP port (bound and released; good enough in a test). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '0.0.0.0', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

/** Bind a socket without SO_REUSEADDR to 0.0.0.0:port; resolves to it, or to the error code. */
function bindPlain(port: number): Promise<dgram.Socket | string> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.close();
      resolve(e.code ?? e.message);
    });
    s.bind(port, '0.0.0.0', () => resolve(s));
  });
}

describe('coord-net: ClusterTransport in this process', () => {
  const GROUP = '239.255.83.1';
  const deps = (log = new RecordingLog()) => ({ log, onMessage: () => {} });

  const badInits: Array<{ description: string; init: Record<string, unknown> }> = [
    { description: 'unicast group', init: { group: '10.0.0.1' } },
    { description: 'class E group', init: { group: '240.0.0.1' } },
    { description: 'group not an address', init: { group: 'cluster' } },
    { description: 'IPv6 group', init: { group: 'ff02::1' } },
    { description: 'group with five parts', init: { group: '239.1.1.1.1' } },
    { description: 'port 0', init: { port: 0 } },
    { description: 'port 65535 (path 1 would need 65536)', init: { port: 65535 } },
    { description: 'fractional port', init: { port: 7000.5 } },
    { description: 'no paths', init: { paths: [] } },
    { description: 'three paths', init: { paths: [{ ifname: 'a' }, { ifname: 'b' }, { ifname: 'c' }] } },
    { description: 'empty interface name', init: { paths: [{ ifname: '' }] } },
    { description: 'path without ifname', init: { paths: [{}] } },
    { description: 'ttl 0', init: { ttl: 0 } },
    { description: 'ttl 256', init: { ttl: 256 } },
    { description: 'loopback not a boolean', init: { loopback: 'yes' } },
  ];
  for (const t of badInits) {
    it(`refuses settings: ${t.description}`, () => {
      const init = { group: GROUP, port: 7000, paths: [{ ifname: 'eth0' }], ...t.init } as ClusterTransportInit;
      assert.throws(() => new ClusterTransport(init, deps()), isSaru(ErrorCode.INVALID_ARGUMENT, /^cluster transport: /));
    });
  }

  it('accepts the edges: 224.0.0.1, 239.255.255.255, ports 1 and 65534, ttl 255', () => {
    for (const init of [
      { group: '224.0.0.1', port: 1, paths: [{ ifname: 'a' }] },
      { group: '239.255.255.255', port: 65534, paths: [{ ifname: 'a' }, { ifname: 'b' }], ttl: 255 },
    ]) {
      assert.doesNotThrow(() => new ClusterTransport(init, deps()));
    }
  });

  it('makes one path of an interface named twice; path i uses port + i', () => {
    const one = new ClusterTransport({ group: GROUP, port: 7000, paths: [{ ifname: 'eth1' }, { ifname: 'eth1' }] }, deps());
    assert.equal(one.pathCount, 1);
    assert.deepEqual(one.counters().paths.map((p) => [p.ifname, p.port]), [['eth1', 7000]]);
    const two = new ClusterTransport({ group: GROUP, port: 7000, paths: [{ ifname: 'eth1' }, { ifname: 'eth2' }] }, deps());
    assert.equal(two.pathCount, 2);
    assert.deepEqual(two.counters().paths.map((p) => [p.ifname, p.port]), [['eth1', 7000], ['eth2', 7001]]);
  });

  it('start() fails with SARU_ERR_NO_SUCH_INTERFACE for a missing interface or one without IPv4, and may be retried', async () => {
    const v6only: os.NetworkInterfaceInfo = { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 };
    let ifaces: ReturnType<typeof os.networkInterfaces> = { eth0: [v6only] };
    const t = new ClusterTransport({ group: GROUP, port: 7000, paths: [{ ifname: 'eth0' }] }, { ...deps(), interfaces: () => ifaces });
    await assert.rejects(t.start(), isSaru(ErrorCode.NO_SUCH_INTERFACE, /^cluster path eth0 has no IPv4 address: .*ip address add ADDR\/LEN dev eth0/));
    ifaces = { lo: [] };
    await assert.rejects(t.start(), isSaru(ErrorCode.NO_SUCH_INTERFACE, /^cluster path eth0 has no IPv4 address: no interface of that name is up .*\(those that are: lo\)/));
    await t.close();
    await assert.rejects(t.start(), isSaru(ErrorCode.INVALID_ARGUMENT, /start\(\) when closed/));
  });

  it('send() before start or after close does not throw; errors are counted and logged at most once a second', async () => {
    const log = new RecordingLog();
    const clock = new ManualClock(0);
    const t = new ClusterTransport({ group: GROUP, port: 7000, paths: [{ ifname: 'a' }, { ifname: 'b' }] }, { ...deps(log), clock });
    for (let i = 0; i < 5; i++) t.send(Uint8Array.of(1, 2, 3));
    assert.equal(t.counters().sendErrors, 10);
    assert.deepEqual(t.counters().paths.map((p) => p.sendErrors), [5, 5]);
    assert.equal(log.at('warn').length, 2, 'one warning per path');
    clock.advance(999);
    t.send(Uint8Array.of(1));
    assert.equal(log.at('warn').length, 2);
    clock.advance(1);
    t.send(Uint8Array.of(1));
    assert.equal(log.at('warn').length, 4);
    assert.equal(log.at('warn')[2]!.obj.suppressedSinceLast, 5);
    await t.close();
    await t.close();
    t.send(Uint8Array.of(1));
    assert.equal(t.counters().sendErrors, 16);
    assert.equal(t.counters().sent, 0);
  });

  it('real sockets on lo: delivers with the path index, survives a throwing handler, closes idempotently', async function () {
    if (!LO) this.skip();
    const log = new RecordingLog();
    const got: Array<{ text: string; path: number }> = [];
    let wake = (): void => {};
    const t = new ClusterTransport(
      { group: GROUP, port: await freePort(), paths: [{ ifname: 'lo' }] },
      {
        log,
        onMessage: (bytes, p) => {
          const text = Buffer.from(bytes).toString();
          got.push({ text, path: p });
          wake();
          if (text === 'boom') throw new Error('handler bug');
        },
      },
    );
    await t.start();
    try {
      assert.equal(log.at('info')[0]!.msg, 'cluster transport open');
      const arrived = (text: string) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out waiting for ${text}; got ${JSON.stringify(got)}`)), 10_000);
          wake = () => {
            if (got.some((g) => g.text === text)) {
              clearTimeout(timer);
              resolve();
            }
          };
          wake();
        });
      // lo hands multicast sent through it back to the host whatever the loopback setting.
      t.send(Buffer.from('boom'));
      t.send(Buffer.from('after'));
      await arrived('after');
      assert.deepEqual(got, [{ text: 'boom', path: 0 }, { text: 'after', path: 0 }]);
      const c = t.counters();
      assert.equal(c.handlerErrors, 1);
      assert.equal(c.received, 2);
      assert.equal(c.sent, 2);
      assert.equal(c.paths[0]!.address, LO.address);
      const warns = log.at('warn');
      assert.equal(warns.length, 1);
      assert.equal(warns[0]!.msg, 'cluster message handler threw');
      assert.match(String(warns[0]!.obj.err), /handler bug/);
      await assert.rejects(t.start(), isSaru(ErrorCode.INVALID_ARGUMENT, /start\(\) when open/));
    } finally {
      await Promise.all([t.close(), t.close()]);
    }
    assert.equal(log.at('info').at(-1)!.msg, 'cluster transport closed');
  });

  it('a port in use by a socket without SO_REUSEADDR: SARU_ERR_IO, and the path already opened is closed again', async function () {
    if (!LO) this.skip();
    const loOnly = { fake0: [LO], fake1: [LO] };
    // Path 1's port is held by `blocker`; path 0's port must be free so we can see it freed again.
    let blocker: dgram.Socket | null = null;
    let port = 0;
    for (let attempt = 0; attempt < 20 && blocker === null; attempt++) {
      const b = await bindPlain(0);
      assert.ok(typeof b !== 'string', String(b));
      const p = b.address().port - 1;
      const probe = await bindPlain(p);
      if (typeof probe === 'string') {
        await new Promise<void>((r) => b.close(r));
        continue;
      }
      await new Promise<void>((r) => probe.close(r));
      blocker = b;
      port = p;
    }
    assert.ok(blocker, 'found a free pair of ports');
    try {
      const t = new ClusterTransport({ group: GROUP, port, paths: [{ ifname: 'fake0' }, { ifname: 'fake1' }] }, { ...deps(), interfaces: () => loOnly });
      await assert.rejects(t.start(), isSaru(ErrorCode.IO, new RegExp(`^cluster path 1 \\(fake1, 127\\.0\\.0\\.1, UDP port ${port + 1}\\): the port is in use .*EADDRINUSE`)));
      const again = await bindPlain(port);
      assert.ok(typeof again !== 'string', `path 0's port ${port} is still bound: ${String(again)}`);
      await new Promise<void>((r) => again.close(r));
      await t.close();
    } finally {
      await new Promise<void>((r) => blocker!.close(r));
    }
  });
});

// ---------------------------------------------------------------------------

const PEER_JS = fileURLToPath(new URL('./coord-net-peer.js', import.meta.url));
const WAIT_MS = 10_000;

interface PeerLine {
  event: string;
  [k: string]: unknown;
}

/** One coord-net-peer.js in a namespace: its JSON lines, and waits for them. */
class Peer {
  readonly lines: PeerLine[] = [];
  private readonly child: ChildProcess;
  private stderr = '';
  private ended: string | null = null;
  /** Resolves when the process has ended and its output has been read. */
  readonly exited: Promise<void>;
  private readonly checks = new Set<() => void>();

  constructor(
    readonly label: string,
    ns: Netns,
    init: ClusterTransportInit,
  ) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--enable-source-maps', PEER_JS, JSON.stringify(init)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as PeerLine);
      this.wake();
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdin!.on('error', () => {}); // the peer may be gone; its 'close' reports that
    // 'close' comes after stdout ended, so every line has been seen.
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.ended = `ended (${code ?? signal})`;
        this.wake();
        resolve();
      }),
    );
    this.child.on('error', (e) => {
      this.ended = `could not start: ${e.message}`;
      this.wake();
    });
  }

  private wake(): void {
    for (const c of [...this.checks]) c();
  }

  /** The first line at index >= `from` that matches; rejects after WAIT_MS or when the peer ends first. */
  waitFor(what: string, match: (l: PeerLine) => boolean, from = 0): Promise<PeerLine> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearTimeout(timer);
        this.checks.delete(check);
      };
      const check = (): void => {
        const hit = this.lines.find((l, i) => i >= from && match(l));
        if (hit) {
          finish();
          resolve(hit);
        } else if (this.ended !== null) {
          finish();
          reject(new Error(`${this.label}: ${this.ended} before ${what}\n${this.describe()}`));
        }
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.label}: no ${what} within ${WAIT_MS} ms\n${this.describe()}`));
      }, WAIT_MS);
      this.checks.add(check);
      check();
    });
  }

  private describe(): string {
    return `lines: ${this.lines.map((l) => JSON.stringify(l)).join('\n  ')}\nstderr: ${this.stderr}`;
  }

  ready(): Promise<PeerLine> {
    return this.waitFor('ready', (l) => l.event === 'ready' || l.event === 'error').then((l) => {
      if (l.event === 'error') throw new Error(`${this.label}: start failed: ${String(l.code)} ${String(l.message)}`);
      return l;
    });
  }

  send(text: string): void {
    this.child.stdin!.write(`${JSON.stringify({ cmd: 'send', data: Buffer.from(text).toString('base64') })}\n`);
  }

  /** Paths on which `text` has arrived so far, in arrival order. */
  arrivals(text: string): number[] {
    const data = Buffer.from(text).toString('base64');
    return this.lines.filter((l) => l.event === 'message' && l.data === data).map((l) => l.path as number);
  }

  /** Wait until `text` has arrived on path `p`. */
  received(text: string, p: number): Promise<PeerLine> {
    const data = Buffer.from(text).toString('base64');
    return this.waitFor(`"${text}" on path ${p}`, (l) => l.event === 'message' && l.data === data && l.path === p);
  }

  async counters(): Promise<{ sent: number; received: number; sendErrors: number; paths: Array<{ address: string; port: number; sent: number; received: number; sendErrors: number }> }> {
    const from = this.lines.length;
    this.child.stdin!.write(`${JSON.stringify({ cmd: 'counters' })}\n`);
    return (await this.waitFor('counters', (l) => l.event === 'counters', from)) as never;
  }

  /** Close the transport and wait for the process to end. */
  async stop(): Promise<void> {
    if (this.ended !== null) return;
    this.child.stdin!.end();
    await this.waitFor('closed', (l) => l.event === 'closed');
    await this.exited;
  }

  kill(): void {
    if (this.ended === null) this.child.kill('SIGKILL');
  }
}

describe('coord-net: ClusterTransport between network namespaces', function () {
  this.timeout(60_000);
  const skip = process.platform !== 'linux' ? `needs Linux, this is ${process.platform}` : process.getuid?.() !== 0 ? 'needs root (ip netns, veth pairs)' : null;
  const GROUP = '239.255.77.1';
  let a: Netns | null = null;
  let b: Netns | null = null;
  const peers: Peer[] = [];
  const peer = (label: string, ns: Netns, init: ClusterTransportInit): Peer => {
    const p = new Peer(label, ns, init);
    peers.push(p);
    return p;
  };

  before(async function () {
    if (skip) {
      console.log(`      (skipped: ${skip})`);
      this.skip();
    }
    a = Netns.create('saru-cn');
    b = Netns.create('saru-cn');
    // Two links between a and b, each end with the same name in its namespace:
    // cn0 the cluster network, dn0 the data network. No multicast route: the
    // transport names the outgoing interface itself.
    for (const [dev, net] of [['cn0', '10.77.0'], ['dn0', '10.78.0']] as const) {
      a.ip(['link', 'add', dev, 'type', 'veth', 'peer', 'name', dev, 'netns', b.name]);
      a.ip(['address', 'add', `${net}.1/24`, 'dev', dev]);
      b.ip(['address', 'add', `${net}.2/24`, 'dev', dev]);
      a.ip(['link', 'set', dev, 'up']);
      b.ip(['link', 'set', dev, 'up']);
    }
    // An interface that is up but has no address.
    a.addVeth('noip0', 'noip1');
    await a.operUp(['cn0', 'dn0', 'noip0', 'noip1'], WAIT_MS);
    await b.operUp(['cn0', 'dn0'], WAIT_MS);
  });

  afterEach(async () => {
    for (const p of peers.splice(0)) p.kill();
  });

  after(() => {
    for (const p of peers.splice(0)) p.kill();
    a?.destroy();
    b?.destroy();
  });

  it('one path: A\'s datagram reaches B tagged 0, B\'s reaches A, and A does not hear its own', async () => {
    const init = { group: GROUP, port: 7100, paths: [{ ifname: 'cn0' }] };
    const pa = peer('A', a!, init);
    const pb = peer('B', b!, init);
    const [ra, rb] = await Promise.all([pa.ready(), pb.ready()]);
    assert.deepEqual((ra.paths as Array<{ address: string; port: number }>).map((p) => [p.address, p.port]), [['10.77.0.1', 7100]]);
    assert.deepEqual((rb.paths as Array<{ address: string; port: number }>).map((p) => [p.address, p.port]), [['10.77.0.2', 7100]]);
    pa.send('from-a');
    await pb.received('from-a', 0);
    pb.send('from-b');
    await pa.received('from-b', 0);
    // Had A's own datagram come back, it would have been queued on the same socket before B's answer.
    assert.deepEqual(pa.arrivals('from-a'), []);
    assert.deepEqual(pb.arrivals('from-a'), [0]);
    const ca = await pa.counters();
    assert.equal(ca.sent, 1);
    assert.equal(ca.received, 1);
    assert.equal(ca.sendErrors, 0);
    await Promise.all([pa.stop(), pb.stop()]);
  });

  it('two paths: each copy arrives once, tagged with the path it took; none come back', async () => {
    const init = { group: GROUP, port: 7200, paths: [{ ifname: 'cn0' }, { ifname: 'dn0' }] };
    const pa = peer('A', a!, init);
    const pb = peer('B', b!, init);
    const [ra] = await Promise.all([pa.ready(), pb.ready()]);
    assert.deepEqual((ra.paths as Array<{ address: string; port: number }>).map((p) => [p.address, p.port]), [['10.77.0.1', 7200], ['10.78.0.1', 7201]]);
    pa.send('x');
    await Promise.all([pb.received('x', 0), pb.received('x', 1)]);
    // Barrier: anything else from the first send would be queued before "y" on either socket.
    pa.send('y');
    await Promise.all([pb.received('y', 0), pb.received('y', 1)]);
    assert.deepEqual([...pb.arrivals('x')].sort(), [0, 1]);
    assert.deepEqual([...pb.arrivals('y')].sort(), [0, 1]);
    pb.send('z');
    await Promise.all([pa.received('z', 0), pa.received('z', 1)]);
    assert.deepEqual(pa.arrivals('x'), []);
    assert.deepEqual(pa.arrivals('y'), []);
    const ca = await pa.counters();
    assert.deepEqual(ca.paths.map((p) => [p.sent, p.received, p.sendErrors]), [[2, 1, 0], [2, 1, 0]]);
    const cb = await pb.counters();
    assert.deepEqual(cb.paths.map((p) => [p.sent, p.received, p.sendErrors]), [[1, 2, 0], [1, 2, 0]]);
    await Promise.all([pa.stop(), pb.stop()]);
  });

  it('a path whose link goes down: its sends are counted as errors, the other path carries on, and it recovers', async () => {
    const init = { group: GROUP, port: 7300, paths: [{ ifname: 'cn0' }, { ifname: 'dn0' }] };
    const pa = peer('A', a!, init);
    const pb = peer('B', b!, init);
    await Promise.all([pa.ready(), pb.ready()]);
    a!.ip(['link', 'set', 'dn0', 'down']);
    try {
      pa.send('while-down');
      await pb.received('while-down', 0);
      const ca = await pa.counters();
      assert.deepEqual(ca.paths.map((p) => [p.sent, p.sendErrors]), [[1, 0], [0, 1]]);
      await pa.waitFor('a send warning', (l) => l.event === 'log' && l.level === 'warn' && l.msg === 'cluster send failed' && l.path === 1);
    } finally {
      a!.ip(['link', 'set', 'dn0', 'up']);
    }
    await a!.operUp(['dn0'], WAIT_MS);
    await b!.operUp(['dn0'], WAIT_MS);
    pa.send('after-up');
    await Promise.all([pb.received('after-up', 0), pb.received('after-up', 1)]);
    assert.deepEqual(pb.arrivals('while-down'), [0]);
    await Promise.all([pa.stop(), pb.stop()]);
  });

  it('loopback: true hears its own datagrams (the control for "none come back")', async () => {
    const pa = peer('A', a!, { group: GROUP, port: 7400, paths: [{ ifname: 'cn0' }], loopback: true });
    await pa.ready();
    pa.send('self');
    await pa.received('self', 0);
    await pa.stop();
  });

  it('start() refuses an interface that is up without an address, and one that is down', async () => {
    const p1 = peer('A', a!, { group: GROUP, port: 7500, paths: [{ ifname: 'cn0' }, { ifname: 'noip0' }] });
    const e1 = await p1.waitFor('error', (l) => l.event === 'error' || l.event === 'ready');
    assert.equal(e1.code, ErrorCode.NO_SUCH_INTERFACE);
    assert.match(String(e1.message), /^cluster path noip0 has no IPv4 address: /);
    b!.ip(['link', 'set', 'dn0', 'down']);
    try {
      const p2 = peer('B', b!, { group: GROUP, port: 7500, paths: [{ ifname: 'cn0' }, { ifname: 'dn0' }] });
      const e2 = await p2.waitFor('error', (l) => l.event === 'error' || l.event === 'ready');
      assert.equal(e2.code, ErrorCode.NO_SUCH_INTERFACE);
      assert.match(String(e2.message), /^cluster path dn0 has no IPv4 address: no interface of that name is up/);
    } finally {
      b!.ip(['link', 'set', 'dn0', 'up']);
    }
    await a!.operUp(['dn0'], WAIT_MS);
    await b!.operUp(['dn0'], WAIT_MS);
  });
});
