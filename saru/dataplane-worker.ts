/**
 * The data-plane worker thread's entry point: opens the packet port, builds
 * the Dataplane and runs its loop, taking control requests between batches
 * from a MessagePort (receiveMessageOnPort, so the loop never yields to an
 * event loop and the control thread never waits behind a burst for more than
 * one batch or POLL_MS). Owns nothing else; the protocol is in
 * saru/dataplane-host.ts.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { SaruError, processClock, systemClock } from '../core/index.js';
import { openPacketPort, type PacketPort } from '../native/index.js';
import { Dataplane } from './dataplane.js';
import type { WorkerData, WorkerReply, WorkerRequest } from './dataplane-host.js';

/** Longest wait in receive() when idle, ms: the control latency bound. */
const POLL_MS = 10;

function errorReply(id: number, e: unknown): WorkerReply {
  const err = e as Error;
  return { id, ok: false, code: e instanceof SaruError ? e.code : 'SARU_ERR_IO', message: err.message };
}

/** Sync records go to the control thread as unsolicited replies (id -2), their buffer transferred, not copied. */
function sinkTo(ctl: MessagePort, generation: number) {
  return (bytes: Uint8Array, count: number, epoch: number): void => {
    const reply: WorkerReply = { id: -2, ok: true, records: { bytes, count, next: -1, epoch, generation } };
    ctl.postMessage(reply, [bytes.buffer as ArrayBuffer]);
  };
}

function handle(dp: Dataplane, req: WorkerRequest, ctl: MessagePort): WorkerReply | null {
  switch (req.op) {
    case 'list':
      return { id: req.id, ok: true, text: dp.listServices(req) };
    case 'conns':
      return { id: req.id, ok: true, text: dp.listConnections(req.limit) };
    case 'status':
      return { id: req.id, ok: true, status: dp.status() };
    case 'services':
      return { id: req.id, ok: true, reconcile: dp.setServices(req.services), realServers: dp.realServerAddresses() };
    case 'slice':
      dp.setSlice(req.owned, req.epoch, req.change);
      return { id: req.id, ok: true };
    case 'lease':
      dp.setLease(req.until);
      return { id: req.id, ok: true };
    case 'neigh':
      dp.setNeighbours(req.entries, req.gateway4, req.gateway6);
      return { id: req.id, ok: true };
    case 'subscribe':
      dp.setSyncSink(req.on ? sinkTo(ctl, req.generation ?? 0) : null, req.threshold, req.period, req.newSubscriber ?? true);
      return { id: req.id, ok: true };
    case 'acked':
      return { id: req.id, ok: true, released: dp.syncAcked(req.records) };
    case 'inject':
      return { id: req.id, ok: true, inject: dp.injectRecords(req.bytes, req.count) };
    case 'dump': {
      const d = dp.dumpRecords(req.cursor, req.max);
      return { id: req.id, ok: true, records: { bytes: d.bytes, count: d.count, next: d.next, epoch: dp.slice.epoch } };
    }
    case 'stop':
      return null;
  }
}

function main(): void {
  const data = workerData as WorkerData;
  const ctl: MessagePort = data.port;
  let port: PacketPort;
  let dp: Dataplane;
  try {
    const init: Parameters<typeof openPacketPort>[0] = { ifname: data.ifname, batchSize: data.init.batchSize };
    if (data.ioMode) init.mode = data.ioMode;
    port = openPacketPort(init);
    dp = new Dataplane(data.init, { port, clock: systemClock, leaseClock: processClock });
  } catch (e) {
    ctl.postMessage(errorReply(0, e));
    ctl.close();
    return;
  }
  ctl.postMessage({ id: 0, ok: true, ready: { mac: Array.from(port.mac), mtu: port.mtu, filterInsns: dp.filterInsns, filterError: dp.filterError, realServers: dp.realServerAddresses(), ioMode: 'mode' in port ? String(port.mode) : 'unknown' } } satisfies WorkerReply);
  let stopId = -1;
  let lastPoll = 0;
  while (stopId < 0) {
    let n = 0;
    try {
      n = dp.runOnce(POLL_MS);
    } catch (e) {
      // A bug, not input: the data path never throws on packets. Stop forwarding (fate sharing) and say why.
      ctl.postMessage({ id: -1, ok: false, code: 'SARU_ERR_IO', message: `data plane failed: ${(e as Error).stack ?? e}` } satisfies WorkerReply);
      break;
    }
    const now = systemClock.now();
    if (n > 0 && now - lastPoll < 1) continue;
    lastPoll = now;
    for (let msg = receiveMessageOnPort(ctl); msg !== undefined; msg = receiveMessageOnPort(ctl)) {
      const req = msg.message as WorkerRequest;
      let reply: WorkerReply | null;
      try {
        reply = handle(dp, req, ctl);
      } catch (e) {
        reply = errorReply(req.id, e);
      }
      if (reply === null) {
        stopId = req.id;
        break;
      }
      ctl.postMessage(reply);
    }
  }
  port.close();
  if (stopId >= 0) ctl.postMessage({ id: stopId, ok: true } satisfies WorkerReply);
  ctl.close();
}

main();
