import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sense, SaruError } from '../../core/index.js';
import { SARU_CONF_KEYS, loadSaruConf, parseSaruConf } from '../../saru/config.js';

const MIN = 'node_id = 2\ninterface = eth0\nservices = services.cf\nauthkeys = authkey\n';
const STATIC = 'node_id = 2\ninterface = eth0\nservices = services.cf\nstatic_slice = 0-1023\n';

function configErr(text: string, line: number, includes: string): void {
  assert.throws(
    () => parseSaruConf(text, '/etc/saru/saru.conf'),
    (e: unknown) => {
      assert.ok(e instanceof SaruError, String(e));
      assert.equal(e.code, 'SARU_ERR_CONFIG');
      assert.equal(e.location?.line, line, e.message);
      assert.ok(e.message.startsWith(`/etc/saru/saru.conf:${line}: `), e.message);
      assert.ok(e.message.includes(includes), `"${e.message}" should mention "${includes}"`);
      return true;
    },
  );
}

describe('saru.conf', () => {
  it('applies the defaults and resolves relative paths from the file', () => {
    const c = parseSaruConf(MIN, '/etc/saru/saru.conf');
    assert.equal(c.nodeId, 2);
    assert.equal(c.interface, 'eth0');
    assert.equal(c.clusterInterface, 'eth0');
    assert.equal(c.services, '/etc/saru/services.cf');
    assert.equal(c.controlSocket, '/run/saru/saru.sock');
    assert.equal(c.buckets, 1024);
    assert.equal(c.sense, Sense.SRC_PORT);
    assert.equal(c.staticSlice, null);
    assert.equal(c.gateway, null);
    assert.equal(c.connTableSize, 1 << 20);
    assert.equal(c.midFlow, 'drop');
    assert.equal(c.batchSize, 64);
    assert.equal(c.ioMode, null);
    assert.equal(c.nftTable, 'saru');
    assert.equal(c.socketFilter, true);
    assert.equal(c.servicesFormat, 'auto');
    assert.equal(c.keepalivedInstance, null);
    assert.equal(c.healthChecks, true);
    assert.equal(c.checkParallel, 16);
    assert.deepEqual(c.coordinator, {
      authkeys: '/etc/saru/authkey',
      weight: 1,
      mcastGroup: '239.192.83.1',
      mcastPort: 7083,
      keepaliveMs: 100,
      deadtimeMs: 300,
      joinDelayMs: 30_000,
      waitForSync: false,
      stateFile: '/var/lib/saru/coordinator.state',
      drainTimeoutMs: 60_000,
    });
  });

  it('reads the coordinator keys', () => {
    const c = parseSaruConf(
      'node_id = 1023\ninterface = eth0\nservices = s\nauthkeys = /etc/saru/authkey\nweight = 3\nmcast_group = 239.1.2.3\nmcast_port = 9000\n' +
        'keepalive = 50\ndeadtime = 150\njoin_delay = 5\nwait_for_sync = yes\nstate_file = state/coord\ndrain_timeout = 0\nbuckets = 16384\n',
      '/etc/saru/saru.conf',
    );
    assert.equal(c.nodeId, 1023);
    assert.deepEqual(c.coordinator, {
      authkeys: '/etc/saru/authkey',
      weight: 3,
      mcastGroup: '239.1.2.3',
      mcastPort: 9000,
      keepaliveMs: 50,
      deadtimeMs: 150,
      joinDelayMs: 5000,
      waitForSync: true,
      stateFile: '/etc/saru/state/coord',
      drainTimeoutMs: 0,
    });
  });

  it('has no coordinator with static_slice', () => {
    const c = parseSaruConf(STATIC + 'buckets = 65536\n', '/etc/saru/saru.conf');
    assert.equal(c.coordinator, null);
    assert.equal(c.staticSlice?.length, 1024);
  });

  it('reads every key, with comments and blank lines', () => {
    const text = `# director 3
node_id = 3   # third
interface = eth0
cluster_interface = eth1

services = /srv/ld.cf
control_socket = run/saru.sock
buckets = 256
sense = dst-addr
static_slice = 0-9, 20-29 ,255
gateway = 198.18.1.2
gateway6 = 2001:2:0:1::2
conn_table_size = 65536
mid_flow = schedule
batch_size = 128
io_mode = mmsg
nft_table = saru_test
neighbour_refresh = 1000
socket_filter = no
services_format = keepalived
keepalived_instance = high
health_checks = no
check_parallel = 4
`;
    const c = parseSaruConf(text, '/etc/saru/saru.conf');
    assert.equal(c.nodeId, 3);
    assert.equal(c.clusterInterface, 'eth1');
    assert.equal(c.services, '/srv/ld.cf');
    assert.equal(c.controlSocket, '/etc/saru/run/saru.sock');
    assert.equal(c.buckets, 256);
    assert.equal(c.sense, Sense.DST_ADDR);
    assert.deepEqual(c.staticSlice, [...Array(10).keys(), ...Array.from({ length: 10 }, (_, i) => 20 + i), 255]);
    assert.equal(c.gateway?.text, '198.18.1.2');
    assert.equal(c.gateway6?.text, '2001:2:0:1::2');
    assert.equal(c.connTableSize, 65536);
    assert.equal(c.midFlow, 'schedule');
    assert.equal(c.batchSize, 128);
    assert.equal(c.ioMode, 'mmsg');
    assert.equal(c.nftTable, 'saru_test');
    assert.equal(c.neighbourRefreshMs, 1000);
    assert.equal(c.socketFilter, false);
    assert.equal(c.servicesFormat, 'keepalived');
    assert.equal(c.keepalivedInstance, 'high');
    assert.equal(c.healthChecks, false);
    assert.equal(c.checkParallel, 4);
  });

  const bad: Array<[string, string, number, string]> = [
    ['unknown key', MIN + 'colour = blue\n', 5, 'unknown key "colour"'],
    ['not key = value', MIN + 'buckets 1024\n', 5, 'expected "key = value"'],
    ['repeated key', MIN + 'node_id = 4\n', 5, 'already set on line 1'],
    ['empty value', MIN + 'sense =\n', 5, 'needs a value'],
    ['node_id range', 'node_id = 0\ninterface = eth0\nservices = s\n', 1, 'node_id: expected an integer 1-1023'],
    ['node_id beyond the epoch bits', 'node_id = 1024\ninterface = eth0\nservices = s\n', 1, 'node_id: expected an integer 1-1023'],
    ['no authkeys and no static_slice', 'node_id = 1\ninterface = eth0\nservices = s\n', 3, 'missing "authkeys"'],
    ['coordinator key with static_slice', STATIC + 'deadtime = 500\n', 5, 'static_slice (line 4) turns off'],
    ['deadtime below twice keepalive', MIN + 'keepalive = 200\ndeadtime = 300\n', 6, 'at least twice keepalive'],
    ['keepalive range', MIN + 'keepalive = 5\n', 5, 'milliseconds, 10-10000'],
    ['mcast_group not multicast', MIN + 'mcast_group = 198.18.0.1\n', 5, 'an IPv4 multicast address'],
    ['mcast_port', MIN + 'mcast_port = 65535\n', 5, 'a UDP port 1-65534'],
    ['weight', MIN + 'weight = -1\n', 5, 'an integer 0-65535'],
    ['wait_for_sync', MIN + 'wait_for_sync = maybe\n', 5, 'yes or no'],
    ['join_delay', MIN + 'join_delay = 1h\n', 5, 'seconds, 0-3600'],
    ['buckets beyond the coordinator', MIN + 'buckets = 32768\n', 5, 'at most 16384 buckets'],
    ['node_id text', 'node_id = one\ninterface = eth0\nservices = s\n', 1, 'got "one"'],
    ['buckets not a power of two', MIN + 'buckets = 1000\n', 5, 'a power of two'],
    ['sense', MIN + 'sense = src-mac\n', 5, 'src-port, src-addr, dst-port or dst-addr'],
    ['static_slice beyond buckets', STATIC.replace('0-1023', '0-64') + 'buckets = 64\n', 4, 'within 0-63'],
    ['static_slice syntax', MIN + 'static_slice = 0..9\n', 5, 'FIRST-LAST'],
    ['gateway family', MIN + 'gateway = 2001:2::1\n', 5, 'an IPv4 address'],
    ['gateway6 garbage', MIN + 'gateway6 = router\n', 5, 'an IPv6 address'],
    ['interface name', MIN.replace('eth0', 'a very long interface name'), 2, 'an interface name'],
    ['mid_flow', MIN + 'mid_flow = maybe\n', 5, 'drop or schedule'],
    ['io_mode', MIN + 'io_mode = xdp\n', 5, 'ring or mmsg'],
    ['conn_table_size', MIN + 'conn_table_size = 1000\n', 5, 'power of two'],
    ['services_format', MIN + 'services_format = nginx\n', 5, 'auto, ldirectord or keepalived'],
    ['keepalived_instance', MIN + 'keepalived_instance = a b\n', 5, "keepalived.conf's @NAME lines"],
    ['health_checks', MIN + 'health_checks = maybe\n', 5, 'yes or no'],
    ['check_parallel', MIN + 'check_parallel = 0\n', 5, 'an integer 1-1024'],
  ];
  for (const [what, text, line, msg] of bad) {
    it(`rejects: ${what}`, () => configErr(text, line, msg));
  }

  it('names a missing required key', () => {
    configErr('node_id = 1\ninterface = eth0\n', 2, 'missing required key "services"');
  });

  it('documents every key it accepts in the README', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const key of Object.keys(SARU_CONF_KEYS)) assert.ok(readme.includes(`\`${key}\``), `README lacks ${key}`);
  });

  it('loads a file, and says why when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'saru-conf-'));
    writeFileSync(join(dir, 'saru.conf'), MIN);
    assert.equal(loadSaruConf(join(dir, 'saru.conf')).services, join(dir, 'services.cf'));
    assert.throws(() => loadSaruConf(join(dir, 'missing.conf')), /cannot read .*missing\.conf/);
  });
});
