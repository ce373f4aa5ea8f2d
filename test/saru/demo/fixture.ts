/**
 * A recorded demo state (phase 2 of a three-director run, copied from a
 * namespace run's view and trimmed) and a recorded summary: the fixtures of
 * the view and summary tests.
 */
import type { DemoState } from '../../../saru/demo/state.js';
import type { DemoSummary } from '../../../saru/demo/summary.js';

export function recordedState(): DemoState {
  return {
    title: 'Saru demo: 3 directors (saru + saru-syncd), 3 real servers in network namespaces demo-*; gate, wrr',
    elapsedMs: 11_234,
    durationMs: 63_200,
    phase: 'phase 2/4: d1 killed; the survivors take its slice and its connections',
    phaseAtMs: 10_700,
    master: 2,
    epoch: 1838339295965186,
    directors: [
      { id: 1, state: 'down', master: false, buckets: 0, connsOwn: 0, connsSynced: 0, pps: 0, syncDps: 0 },
      { id: 2, state: 'up', master: true, buckets: 512, connsOwn: 103, connsSynced: 97, pps: 757.4, syncDps: 34.2 },
      { id: 3, state: 'up', master: false, buckets: 512, connsOwn: 97, connsSynced: 103, pps: 758, syncDps: 34 },
    ],
    traffic: { longConnections: 200, shortOpened: 131, shortCompleted: 131, shortLost: 0 },
    events: [
      { atMs: 2200, text: 'testbed up: 3 directors (saru + saru-syncd), 3 real servers, VIP 198.18.0.100:80' },
      { atMs: 3200, text: 'master d1 elected (epoch 1838339295964161)' },
      { atMs: 10_700, text: 'kill -9 d1 (saru and saru-syncd): it forwarded 342 buckets and 69 established connections' },
      { atMs: 11_000, text: 'd3: d1 is down (last heard 300 ms before)' },
      { atMs: 11_010, text: 'd3 took 171 buckets of d1: takeover in 317 ms (epoch 1838339295965186)' },
    ],
  };
}

export function recordedSummary(): DemoSummary {
  return {
    mode: 'namespaces',
    opened: 1200,
    completed: 1200,
    lost: 0,
    long: { opened: 200, lost: 0, requests: 46_000 },
    short: { opened: 1000, completed: 1000, lost: 0 },
    takeoverMs: [317, 412],
    resyncMs: 3000,
    resyncEntries: 900,
    rejoinMs: 3600,
    phases: [
      { name: '1 all forward', ok: true, detail: 'every director forwarded' },
      { name: '2 kill', ok: true, detail: 'd1 killed' },
      { name: '3 restart and rejoin', ok: true, detail: 'resync 3000 ms' },
      { name: '4 settle', ok: true, detail: 'one allocation' },
    ],
    errors: [],
    lostExamples: [],
    durationS: 60,
    wallS: 66.4,
    virtualTime: false,
  };
}
