/**
 * saru/adm-format.ts formatSync: the text of `saruadm --sync` for a
 * SyncInfo as saru-syncd's status socket returns it (sync/daemon.ts info()):
 * the header line, the counters aligned on the longest name, and the peer
 * table whose counter columns appear only when some peer reports them.
 * Table-driven where the cases differ by data only; the expected text is
 * written out in full so a change of format shows as a diff.
 */
import assert from 'node:assert/strict';
import { formatSync } from '../../saru/adm-format.js';
import type { SyncInfo, SyncPeerInfo } from '../../saru/control.js';

function peer(nodeId: number, address: string, over: Partial<SyncPeerInfo> = {}): SyncPeerInfo {
  return { nodeId, address, incarnation: 1_763_700_000_000 + nodeId, alive: true, lastHeardMs: 12.4, counters: [], ...over };
}

/** Two peers as the daemon reports them: node 1 with receive counters, node 3 down with NACK counters only. */
function twoPeers(): SyncInfo {
  return {
    nodeId: 2,
    incarnation: 1_763_700_000_002,
    synced: true,
    directorConnected: true,
    epoch: 5 * 1024 + 1,
    mode: 'unicast',
    counters: [
      { name: 'entriesSent', value: 120 },
      { name: 'saru.connects', value: 1 },
      { name: 'transport.sent', value: 4_294_967_296 },
    ],
    peers: [
      peer(1, '10.0.0.1:7085', {
        counters: [
          { name: 'datagramsReceived', value: 40 },
          { name: 'gaps', value: 2 },
          { name: 'epoch', value: 9 }, // not a table column
        ],
      }),
      peer(3, '10.0.0.3:7085', { alive: false, lastHeardMs: 12_500, counters: [{ name: 'nacksSent', value: 7 }] }),
    ],
  };
}

/** Column [start, end) of `heading` in the table's heading line. */
function span(headingLine: string, heading: string): [number, number] {
  const at = headingLine.indexOf(heading);
  assert.ok(at >= 0, `heading ${heading} in ${JSON.stringify(headingLine)}`);
  return [at, at + heading.length];
}

describe('saruadm --sync format (formatSync)', () => {
  it('prints the header, the counters and the table with two peers', () => {
    assert.equal(
      formatSync(twoPeers()),
      [
        'Sync: node 2  incarnation 1763700000002  synced  saru connected  epoch 5.1  unicast',
        '  entriesSent     120',
        '  saru.connects   1',
        '  transport.sent  4294967296',
        '  Peer  Address                Alive  Heard    DgramsIn      Gaps  NacksOut',
        '     1  10.0.0.1:7085          yes     12ms          40         2         -',
        '     3  10.0.0.3:7085          NO       13s           -         -         7',
        '',
      ].join('\n'),
    );
  });

  const headers: Array<{ description: string; input: Partial<SyncInfo>; expected: string }> = [
    {
      description: 'not synced, saru not connected, no epoch, multicast',
      input: { synced: false, directorConnected: false, epoch: 0, mode: 'multicast' },
      expected: 'Sync: node 2  incarnation 1763700000002  NOT SYNCED (resync running or pending)  saru NOT CONNECTED  epoch 0  multicast',
    },
    {
      description: 'synced but saru away (it restarted)',
      input: { synced: true, directorConnected: false },
      expected: 'Sync: node 2  incarnation 1763700000002  synced  saru NOT CONNECTED  epoch 5.1  unicast',
    },
    {
      description: 'an epoch beyond 32 bits as term.master',
      input: { epoch: 1_763_700_000_000 * 1024 + 3, nodeId: 1023 },
      expected: 'Sync: node 1023  incarnation 1763700000002  synced  saru connected  epoch 1763700000000.3  unicast',
    },
  ];
  for (const { description, input, expected } of headers) {
    it(`header: ${description}`, () => {
      assert.equal(formatSync({ ...twoPeers(), ...input }).split('\n')[0], expected);
    });
  }

  it('aligns the counter values on the longest name', () => {
    const lines = formatSync(twoPeers()).split('\n').slice(1, 4);
    const starts = lines.map((l) => l.search(/\d+$/));
    assert.deepEqual(starts, [18, 18, 18]);
    assert.equal('  transport.sent  '.length, 18);
  });

  it('with no counters and no peers prints the header and the bare table heading', () => {
    const out = formatSync({ ...twoPeers(), counters: [], peers: [] });
    const lines = out.split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.equal(lines[1]!.trimEnd(), '  Peer  Address                Alive  Heard');
  });

  it('shows a counter column only when some peer reports it, in the preferred order', () => {
    const cases: Array<{ description: string; names: string[]; expected: string[] }> = [
      { description: 'none of the preferred counters', names: ['epoch', 'contiguous'], expected: [] },
      { description: 'one', names: ['retransmitted'], expected: ['Retrans'] },
      {
        description: 'all, given in another order',
        names: ['unacked', 'resyncsServed', 'retransmitted', 'nacksReceived', 'nacksSent', 'gaps', 'duplicates', 'entriesReceived', 'datagramsReceived'],
        expected: ['DgramsIn', 'EntriesIn', 'Dups', 'Gaps', 'NacksOut', 'NacksIn', 'Retrans', 'Resyncs', 'Unacked'],
      },
    ];
    for (const { description, names, expected } of cases) {
      const info = { ...twoPeers(), peers: [peer(1, '10.0.0.1:7085', { counters: names.map((name, i) => ({ name, value: i })) })] };
      const heading = formatSync(info).split('\n').find((l) => l.startsWith('  Peer'))!;
      const cols = heading.trim().split(/\s+/).slice(4);
      assert.deepEqual(cols, expected, description);
    }
  });

  it('right-aligns each counter under the end of its heading; a peer without it shows "-"', () => {
    const lines = formatSync(twoPeers()).split('\n');
    const heading = lines[4]!;
    for (const [h, row1, row3] of [['DgramsIn', '40', '-'], ['Gaps', '2', '-'], ['NacksOut', '-', '7']] as const) {
      const [, end] = span(heading, h);
      assert.equal(lines[5]!.slice(end - row1.length, end), row1, `${h} of peer 1`);
      assert.equal(lines[6]!.slice(end - row3.length, end), row3, `${h} of peer 3`);
      assert.equal(lines[5]![end] ?? ' ', ' ');
    }
  });

  it('shows the age since last heard: ms under 10 s, whole seconds above, "-" when never heard', () => {
    const cases: Array<[number, string]> = [[0, '0ms'], [12.4, '12ms'], [9_999, '9999ms'], [10_000, '10s'], [125_400, '125s'], [-1, '-']];
    for (const [ms, shown] of cases) {
      const row = formatSync({ ...twoPeers(), peers: [peer(1, '10.0.0.1:7085', { lastHeardMs: ms })] }).split('\n')[5]!;
      assert.equal(row.trim().split(/\s+/)[3], shown, `${ms} ms`);
    }
  });

  // Regression test (found as a bug in saru/adm-format.ts formatSync, line 79 `p.address.padEnd(15)`, and the heading line): the column is as wide as
  // a dotted quad, but saru-syncd reports ADDRESS:PORT (sync/node.ts status(): "192.168.100.200:7085",
  // up to 21 characters), so a longer address pushes every later column of its row to the right.
  it('keeps the counter columns aligned for an ADDRESS:PORT longer than 15 characters', () => {
    const info = {
      ...twoPeers(),
      peers: [
        peer(1, '10.0.0.1:7085', { counters: [{ name: 'gaps', value: 1 }] }),
        peer(2, '192.168.100.200:65535', { counters: [{ name: 'gaps', value: 2 }] }),
      ],
    };
    const lines = formatSync(info).split('\n');
    const heading = lines.find((l) => l.startsWith('  Peer'))!;
    const [, end] = span(heading, 'Gaps');
    const rows = lines.filter((l) => /^\s+\d+ {2}\d/.test(l));
    assert.equal(rows.length, 2);
    for (const r of rows) assert.equal(r.length, end, `row ${JSON.stringify(r)} ends under "Gaps"`);
  });
});
