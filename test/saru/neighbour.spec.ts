import assert from 'node:assert/strict';
import { IpAddress } from '../../core/index.js';
import { NeighbourResolver, parseIpNeigh } from '../../saru/neighbour.js';

/** A fake kernel neighbour table: rows as `ip -j neigh show` prints them. */
class FakeKernel {
  rows: Array<{ dst: string; lladdr?: string; state: string[] }> = [];
  calls: string[][] = [];
  fail = false;
  run = async (cmd: string, args: string[]) => {
    this.calls.push([cmd, ...args]);
    if (this.fail) return { code: 1, stdout: '', stderr: 'Cannot find device "eth9"' };
    return { code: 0, stdout: JSON.stringify(this.rows), stderr: '' };
  };
}

describe('neighbour resolver', () => {
  it('parses ip -j neigh output and ignores junk', () => {
    const m = parseIpNeigh(
      JSON.stringify([
        { dst: '198.18.0.101', dev: 'eth0', lladdr: '02:00:00:00:01:01', state: ['REACHABLE'] },
        { dst: '2001:2:0:0::101', lladdr: '02:00:00:00:01:02', state: ['STALE'] },
        { dst: '198.18.0.9', state: ['FAILED'] },
        { dst: 'nonsense', lladdr: '02:00:00:00:01:03', state: ['REACHABLE'] },
        7,
      ]),
    );
    assert.deepEqual([...m.keys()], ['198.18.0.101', '2001:2::101']);
    assert.equal(m.get('2001:2::101')!.state, 'STALE');
    assert.equal(parseIpNeigh('not json').size, 0);
    assert.equal(parseIpNeigh('{"a":1}').size, 0);
  });

  it('probes what is missing or stale, reports changes once, and notices a new MAC', async () => {
    const k = new FakeKernel();
    const probed: string[] = [];
    const changes: Array<Map<string, string>> = [];
    const r = new NeighbourResolver(
      { interface: 'eth0', refreshMs: 5000 },
      { run: k.run, probe: (a: IpAddress) => probed.push(a.text), onChange: (m) => changes.push(m) },
    );
    r.setAddresses(['198.18.0.101', '198.18.0.102', '2001:2::101']);
    assert.equal(await r.refresh(), false);
    assert.deepEqual(probed.sort(), ['198.18.0.101', '198.18.0.102', '2001:2::101']);
    assert.equal(changes.length, 0);
    assert.deepEqual(k.calls[0], ['ip', '-j', 'neigh', 'show', 'dev', 'eth0']);

    k.rows = [
      { dst: '198.18.0.101', lladdr: '02:00:00:00:01:01', state: ['REACHABLE'] },
      { dst: '198.18.0.102', lladdr: '02:00:00:00:01:02', state: ['STALE'] },
      { dst: '2001:2::101', state: ['INCOMPLETE'] },
    ];
    probed.length = 0;
    assert.equal(await r.refresh(), false);
    assert.deepEqual(probed.sort(), ['198.18.0.102', '2001:2::101'], 'stale re-probed, incomplete retried');
    assert.equal(changes.length, 1);
    assert.deepEqual([...changes[0]!], [['198.18.0.101', '02:00:00:00:01:01'], ['198.18.0.102', '02:00:00:00:01:02']]);
    assert.deepEqual(r.unresolved(), ['2001:2::101']);

    k.rows[2] = { dst: '2001:2::101', lladdr: '02:00:00:00:01:0A', state: ['REACHABLE'] };
    assert.equal(await r.refresh(), true);
    assert.equal(changes.length, 2);
    assert.equal(changes[1]!.get('2001:2::101'), '02:00:00:00:01:0a');

    assert.equal(await r.refresh(), true);
    assert.equal(changes.length, 2, 'no change, no report');

    k.rows[0] = { dst: '198.18.0.101', lladdr: '02:00:00:00:09:09', state: ['REACHABLE'] };
    await r.refresh();
    assert.equal(changes.length, 3);
    assert.equal(changes[2]!.get('198.18.0.101'), '02:00:00:00:09:09');
  });

  it('treats a failing ip command as an empty table', async () => {
    const k = new FakeKernel();
    k.fail = true;
    const warned: string[] = [];
    const r = new NeighbourResolver(
      { interface: 'eth9', refreshMs: 5000 },
      { run: k.run, probe: () => {}, onChange: () => assert.fail('no change expected'), log: { debug() {}, info() {}, warn: (_o, m) => warned.push(m) } },
    );
    r.setAddresses(['198.18.0.101']);
    assert.equal(await r.refresh(), false);
    assert.deepEqual(warned, ['ip neigh show failed']);
  });
});
