/**
 * Traffic generator of the forwarding benchmark (bench/forward.ts), run
 * inside the testbed's client namespace:
 *
 *   ip netns exec P-c node dist/bench/blast.js --dst-mac 02:5a:52:55:00:01 \
 *     [--ifname eth0] [--saddr 198.18.1.2] [--daddr 198.18.0.100] [--dport 80]
 *     [--flows 4096] [--sport-base 10000] [--size 60|1514] [--seconds 3]
 *     [--mode ring|mmsg] [--batch 64] [--syn-wait-ms 200] [--no-syn | --syn-only]
 *     [--pps N]
 *
 * Prebuilds one TCP/IPv4 frame per flow (the client's address, source ports
 * sport-base .. sport-base+flows-1, so with sense = src-port the flows cover
 * every bucket) with correct IPv4 and TCP checksums, addressed to the shared
 * MAC. First one SYN per flow (so a director creates its entries; at most
 * 32 per millisecond), a pause,
 * then ACK frames round-robin over the flows, in TxBatches pointing straight
 * into the prebuilt buffer, as fast as sendmmsg takes them (or paced to
 * --pps frames per second, batch by batch), for `seconds`.
 * --syn-only stops after the SYNs (the caller checks the connection table
 * and then blasts with --no-syn). The receive mode (--mode) only shapes the
 * unused receive side: both modes transmit with sendmmsg.
 * Frame sizes: 60 bytes (54 + Ethernet padding: a 64-byte frame on the wire
 * with its FCS) or 1514 (IP total length 1500).
 *
 * Owns one packet socket with a drop-all filter (it never receives: the hub
 * floods every forwarded frame back to the client too). Prints one JSON line
 * {sent, errors, seconds, offeredPps, synSent, mode, size, flows} on stdout.
 * Exit status 0, or 1 with the reason on stderr.
 */
import { parseArgs } from 'node:util';
import { TcpFlag, TxBatch, parseMac, writeTcp4Frame } from '../core/index.js';
import { ACCEPT_NONE, openPacketPort } from '../native/index.js';

function ip4(text: string): number {
  const p = text.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: "${text}"`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

function int(name: string, v: string | undefined, lo: number, hi: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer ${lo}..${hi}, got "${v}"`);
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ifname: { type: 'string', default: 'eth0' },
      'dst-mac': { type: 'string' },
      saddr: { type: 'string', default: '198.18.1.2' },
      daddr: { type: 'string', default: '198.18.0.100' },
      dport: { type: 'string', default: '80' },
      flows: { type: 'string', default: '4096' },
      'sport-base': { type: 'string', default: '10000' },
      size: { type: 'string', default: '60' },
      seconds: { type: 'string', default: '3' },
      mode: { type: 'string', default: 'ring' },
      batch: { type: 'string', default: '64' },
      'syn-wait-ms': { type: 'string', default: '200' },
      'no-syn': { type: 'boolean', default: false },
      'syn-only': { type: 'boolean', default: false },
      pps: { type: 'string', default: '0' },
    },
  });
  if (!values['dst-mac']) throw new Error('--dst-mac is required');
  const dstMac = parseMac(values['dst-mac']);
  const saddr = ip4(values.saddr!);
  const daddr = ip4(values.daddr!);
  const dport = int('dport', values.dport, 1, 65535);
  const flows = int('flows', values.flows, 1, 65536);
  const sportBase = int('sport-base', values['sport-base'], 1, 65535);
  if (sportBase + flows - 1 > 65535) throw new Error(`--sport-base ${sportBase} + --flows ${flows} exceeds port 65535`);
  const size = int('size', values.size, 60, 1514);
  const seconds = Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds must be in (0, 600], got "${values.seconds}"`);
  const mode = values.mode;
  if (mode !== 'ring' && mode !== 'mmsg') throw new Error(`--mode must be ring or mmsg, got "${mode}"`);
  const batchSize = int('batch', values.batch, 1, 1024);
  const synWaitMs = int('syn-wait-ms', values['syn-wait-ms'], 0, 60000);
  const pps = int('pps', values.pps, 0, 100_000_000);

  // A small receive side (the generator never receives; drop-all filter).
  const port = openPacketPort({ ifname: values.ifname!, mode, batchSize, filter: ACCEPT_NONE, ringBlocks: 2, ringBlockSize: 1 << 16, frameSize: 2048 });
  try {
    if (size > port.mtu + 14) throw new Error(`--size ${size} exceeds the MTU of ${values.ifname} (${port.mtu} + 14)`);
    const srcMac = port.mac;
    // One slot per flow; the frame is size bytes (IP payload = size - 14; below 54 the rest is Ethernet padding).
    const slot = (size + 63) & ~63;
    const payloadLen = Math.max(0, size - 54);
    const acks = new Uint8Array(slot * flows);
    const syns = new Uint8Array(64 * flows);
    for (let f = 0; f < flows; f++) {
      const common = { dstMac, srcMac, saddr, daddr, sport: sportBase + f, dport, seq: 1000 };
      writeTcp4Frame(syns, f * 64, { ...common, flags: TcpFlag.SYN });
      writeTcp4Frame(acks, f * slot, { ...common, seq: 1001, ack: 1, flags: TcpFlag.ACK, payloadLen });
    }
    const batch = new TxBatch(batchSize, 0);

    // SYNs: every one must go out (retry what the socket refused), paced at
    // 32 per millisecond or less: a director creating entries must not lose
    // them to a full receive ring.
    let synSent = 0;
    if (!values['no-syn']) {
      batch.reset(syns);
      let next = 0;
      for (let stalls = 0; next < flows; ) {
        let k = 0;
        for (; k < Math.min(32, batchSize) && next + k < flows; k++) {
          batch.off[k] = (next + k) * 64;
          batch.len[k] = 60;
          batch.inScratch[k] = 0;
        }
        batch.count = k;
        const n = port.transmit(batch);
        next += n;
        synSent += n;
        if (n < k && ++stalls > 1000) throw new Error(`the socket refused SYNs for 1 s (${synSent} of ${flows} sent)`);
        await sleep(1);
      }
      await sleep(synWaitMs);
    }
    if (values['syn-only']) {
      process.stdout.write(`${JSON.stringify({ sent: 0, errors: 0, seconds: 0, offeredPps: 0, synSent, mode: port.mode, size, flows })}\n`);
      return;
    }

    // ACKs, round-robin over the flows, as fast as the kernel takes them.
    batch.reset(acks);
    for (let k = 0; k < batchSize; k++) {
      batch.len[k] = size;
      batch.inScratch[k] = 0;
    }
    batch.count = batchSize;
    let f = 0;
    const s0 = port.stats();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let t = t0;
    if (pps === 0) {
      while (t < end) {
        for (let rep = 0; rep < 16; rep++) {
          for (let k = 0; k < batchSize; k++) {
            batch.off[k] = f * slot;
            if (++f === flows) f = 0;
          }
          port.transmit(batch);
        }
        t = performance.now();
      }
    } else {
      // Paced: batch n leaves at t0 + n * batchSize / pps (busy-waiting; this core is the generator's anyway).
      const msPerBatch = (batchSize * 1000) / pps;
      for (let n = 0; t < end; n++) {
        const due = t0 + n * msPerBatch;
        while ((t = performance.now()) < due);
        for (let k = 0; k < batchSize; k++) {
          batch.off[k] = f * slot;
          if (++f === flows) f = 0;
        }
        port.transmit(batch);
      }
    }
    const s1 = port.stats();
    const secs = (t - t0) / 1000;
    const sent = s1.txFrames - s0.txFrames;
    process.stdout.write(
      `${JSON.stringify({ sent, errors: s1.txErrors - s0.txErrors, seconds: secs, offeredPps: sent / secs, synSent, mode: port.mode, size, flows })}\n`,
    );
  } finally {
    port.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`blast: ${e.message}\n`);
  process.exit(1);
});
