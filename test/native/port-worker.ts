/**
 * Test-only worker_thread body (test/native/packet-port.spec.ts): loads the
 * addon inside a worker (it must be context-aware), opens a port in the
 * given namespace, reports 'ready', then receives until it has `expect`
 * frames or `maxLoops` receive(20) calls have passed, and reports the first
 * payload word (frame offset 42) of each frame and the port's counters.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openPacketPort } from '../../native/index.js';

const { ifname, netns, mode, expect, maxLoops } = workerData as {
  ifname: string;
  netns: string;
  mode: 'ring' | 'mmsg';
  expect: number;
  maxLoops: number;
};
const port = openPacketPort({ ifname, netns, mode });
parentPort!.postMessage({ type: 'ready', mac: Array.from(port.mac) });
const ids: number[] = [];
for (let loop = 0; loop < maxLoops && ids.length < expect; loop++) {
  const n = port.receive(20);
  for (let i = 0; i < n; i++) {
    const o = port.rx.off[i]! + 42;
    const b = port.rx.buf;
    ids.push(((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0);
  }
}
const stats = port.stats();
port.close();
parentPort!.postMessage({ type: 'done', ids, stats });
