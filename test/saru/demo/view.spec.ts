/**
 * The demo's view and summary, rendered from a recorded state (fixture.ts):
 * the terminal frame line by line, the in-place redraw's escape sequences,
 * the plain mode's changed lines and events, and the summary line, JSON and
 * exit status. Deterministic: no clock, no terminal.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { initialState } from '../../../saru/demo/state.js';
import { exitStatus, failureReasons, seconds, summaryJson, summaryLine, summaryLines } from '../../../saru/demo/summary.js';
import { LiveView, eventLine, newPlainMemo, plainUpdate, renderFrame, ttyRedraw } from '../../../saru/demo/view.js';
import { recordedState, recordedSummary } from './fixture.js';

const FRAME = [
  'Saru demo: 3 directors (saru + saru-syncd), 3 real servers in network namespaces demo-*; gate, wrr',
  'phase 2/4: d1 killed; the survivors take its slice and its connections   [+11.2 s of 63 s]',
  'master d2, epoch 1838339295965186',
  '',
  'director   state        buckets   conns own/synced   packets/s   sync dgrams/s',
  'd1         down               -                  -           -               -',
  'd2 *       up               512           103 / 97         757              34',
  'd3         up               512           97 / 103         758              34',
  '',
  'clients: 200 long-lived keep-alive connections; short requests 131 opened, 131 completed, 0 lost',
  '',
  'events:',
  '  (1 earlier)',
  '    +3.2 s  master d1 elected (epoch 1838339295964161)',
  '   +10.7 s  kill -9 d1 (saru and saru-syncd): it forwarded 342 buckets and 69 established connections',
  '   +11.0 s  d3: d1 is down (last heard 300 ms before)',
  '   +11.0 s  d3 took 171 buckets of d1: takeover in 317 ms (epoch 1838339295965186)',
];

describe('demo view', () => {
  describe('terminal frame', () => {
    it('renders title, phase, master, one row per director, clients and the latest events', () => {
      assert.deepEqual(renderFrame(recordedState(), { width: 120, maxEvents: 4 }), FRAME);
    });

    it('columns line up with the header: the numbers end where their header ends', () => {
      const [header, , d2] = renderFrame(recordedState(), { width: 120 }).slice(4, 7);
      for (const col of ['buckets', 'conns own/synced', 'packets/s', 'sync dgrams/s']) {
        const end = header!.indexOf(col) + col.length;
        assert.equal(d2![end], d2!.length === end ? undefined : ' ', `a value of "${col}" ends under it`);
        assert.notEqual(d2![end - 1], ' ', `"${col}" has a value ending at column ${end}`);
      }
    });

    it('a down director shows dashes, the master a star', () => {
      const lines = renderFrame(recordedState());
      assert.ok(lines.some((l) => /^d1 {9}down( +-){4}$/.test(l)), lines.join('\n'));
      assert.ok(lines.some((l) => l.startsWith('d2 *')));
    });

    it('cuts lines to the terminal width (a wrapped line would break the redraw)', () => {
      const lines = renderFrame(recordedState(), { width: 40 });
      assert.ok(lines.every((l) => l.length <= 39));
      assert.equal(lines[0], 'Saru demo: 3 directors (saru + saru-sy…');
    });

    it('shows every event when there are few, and none before the first', () => {
      const s = initialState('t', 2, 60_000, 10);
      const lines = renderFrame(s);
      assert.equal(lines[lines.length - 1], 'events:');
      assert.equal(lines[1], 'starting   [+0.0 s of 60 s]');
    });

    it('redraws in place: cursor up over the previous frame, each line cleared, the rest cleared', () => {
      const first = ttyRedraw(0, ['a', 'b']);
      assert.equal(first, '\x1b[2Ka\n\x1b[2Kb\n\x1b[J');
      const second = ttyRedraw(2, ['c']);
      assert.equal(second, '\x1b[2A\r\x1b[2Kc\n\x1b[J');
    });

    it('LiveView on a terminal hides the cursor, redraws, and gives the cursor back on close', () => {
      let out = '';
      const sink = Object.assign(new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }), { columns: 120 });
      const v = new LiveView(sink, true);
      v.update(recordedState());
      v.update(recordedState());
      v.close();
      assert.ok(out.startsWith('\x1b[?25l'));
      assert.ok(out.includes(`\x1b[${FRAME.length}A\r`), 'the second frame starts by moving up over the first');
      assert.ok(out.endsWith('\x1b[?25h'));
    });
  });

  describe('plain mode', () => {
    it('first prints the title, the phase, every event and a snapshot', () => {
      const { lines } = plainUpdate(newPlainMemo(), recordedState(), 10_000);
      assert.deepEqual(lines, [
        'Saru demo: 3 directors (saru + saru-syncd), 3 real servers in network namespaces demo-*; gate, wrr',
        '   +10.7 s  phase 2/4: d1 killed; the survivors take its slice and its connections',
        '    +2.2 s  testbed up: 3 directors (saru + saru-syncd), 3 real servers, VIP 198.18.0.100:80',
        '    +3.2 s  master d1 elected (epoch 1838339295964161)',
        '   +10.7 s  kill -9 d1 (saru and saru-syncd): it forwarded 342 buckets and 69 established connections',
        '   +11.0 s  d3: d1 is down (last heard 300 ms before)',
        '   +11.0 s  d3 took 171 buckets of d1: takeover in 317 ms (epoch 1838339295965186)',
        '   +11.2 s  master d2, epoch 1838339295965186',
        '            director   state        buckets   conns own/synced   packets/s   sync dgrams/s',
        '            d1         down               -                  -           -               -',
        '            d2 *       up               512           103 / 97         757              34',
        '            d3         up               512           97 / 103         758              34',
        '            clients: 200 long-lived keep-alive connections; short requests 131 opened, 131 completed, 0 lost',
      ]);
    });

    it('then prints only what changed: nothing, a director whose state changed, a new event', () => {
      const s = recordedState();
      let { memo } = plainUpdate(newPlainMemo(), s, 10_000);
      s.elapsedMs += 500;
      s.directors[1]!.pps = 900; // rates alone are not a change
      let u = plainUpdate(memo, s, 10_000);
      assert.deepEqual(u.lines, []);
      memo = u.memo;
      s.elapsedMs += 500;
      s.directors[0]!.state = 'resyncing';
      s.events.push({ atMs: 11_900, text: 'd1 restarted' });
      u = plainUpdate(memo, s, 10_000);
      assert.deepEqual(u.lines, [
        eventLine({ atMs: 11_900, text: 'd1 restarted' }),
        '   +12.2 s  d1         resyncing          0              0 / 0           0               0',
      ]);
      memo = u.memo;
      s.elapsedMs = 21_300; // 10 s after the last snapshot: a full one again
      u = plainUpdate(memo, s, 10_000);
      assert.equal(u.lines.length, 6);
      assert.equal(u.lines[0], '   +21.3 s  master d2, epoch 1838339295965186');
    });

    it('LiveView off a terminal writes the plain lines and no escape sequence', () => {
      let out = '';
      const sink = new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) });
      const v = new LiveView(sink, false);
      v.update(recordedState());
      v.close();
      assert.ok(!out.includes('\x1b'));
      assert.ok(out.startsWith('Saru demo: 3 directors'));
    });
  });

  describe('summary', () => {
    it('one line in the issue\'s form', () => {
      assert.equal(summaryLine(recordedSummary()), 'connections: 1200 opened, 1200 completed, 0 lost; takeovers: 2, p99 412 ms; resync: 3 s');
    });

    it('says virtual for simulated times', () => {
      const s = { ...recordedSummary(), mode: 'simulated' as const, virtualTime: true, resyncMs: 761 };
      assert.equal(summaryLine(s), 'connections: 1200 opened, 1200 completed, 0 lost; takeovers: 2, p99 412 ms (virtual); resync: 0.8 s (virtual)');
    });

    it('seconds: one decimal below 10 s, whole seconds above, a dash when not measured', () => {
      assert.deepEqual([seconds(761), seconds(3000), seconds(12_400), seconds(NaN)], ['0.8 s', '3 s', '12 s', '—']);
    });

    it('exit status 0 only when nothing was lost and every phase reached its goal', () => {
      assert.equal(exitStatus(recordedSummary()), 0);
      assert.deepEqual(failureReasons(recordedSummary()), []);
      const lost = { ...recordedSummary(), completed: 1199, lost: 1 };
      assert.equal(exitStatus(lost), 1);
      assert.deepEqual(failureReasons(lost), ['1 connection(s) lost']);
      const phase = recordedSummary();
      phase.phases[2] = { name: '3 restart and rejoin', ok: false, detail: 'no resync finished' };
      assert.equal(exitStatus(phase), 1);
      assert.deepEqual(failureReasons(phase), ['phase 3 restart and rejoin: no resync finished']);
      assert.equal(exitStatus({ ...recordedSummary(), opened: 0, completed: 0 }), 1, 'a run that opened nothing proves nothing');
    });

    it('the block ends with the result, the JSON carries the same figures', () => {
      const lines = summaryLines(recordedSummary());
      assert.equal(lines[0], summaryLine(recordedSummary()));
      assert.equal(lines[lines.length - 1], 'result: OK (nothing lost, every phase reached its goal)');
      const j = summaryJson(recordedSummary());
      assert.equal(j.ok, true);
      assert.equal(j.lost, 0);
      assert.equal(j.takeovers, 2);
      assert.equal(j.takeover_ms_p99, 412);
      assert.equal(j.resync_ms, 3000);
      assert.equal(j.summary, summaryLine(recordedSummary()));
    });
  });
});
