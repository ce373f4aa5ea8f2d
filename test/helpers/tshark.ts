/**
 * Test-only bridge to tshark: writes classic pcap files and asks tshark to
 * decode frames, with checksum validation switched on, as an independent
 * oracle for our builders, parsers and rewriters. Synchronous (spawnSync);
 * owns only the temporary files it creates and removes. Throws when tshark is
 * not installed: tests that need it must fail, not skip
 * (scripts/install-system-deps.sh installs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Write a classic pcap (magic a1b2c3d4, v2.4, linktype 1 Ethernet, microsecond timestamps). */
export function writePcap(path: string, frames: Uint8Array[]): void {
  const total = 24 + frames.reduce((a, f) => a + 16 + f.length, 0);
  const b = Buffer.alloc(total);
  b.writeUInt32LE(0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(262144, 16); // snaplen
  b.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  let p = 24;
  frames.forEach((f, i) => {
    b.writeUInt32LE(1_700_000_000 + Math.floor(i / 1_000_000), p);
    b.writeUInt32LE(i % 1_000_000, p + 4);
    b.writeUInt32LE(f.length, p + 8);
    b.writeUInt32LE(f.length, p + 12);
    Buffer.from(f.buffer, f.byteOffset, f.byteLength).copy(b, p + 16);
    p += 16 + f.length;
  });
  writeFileSync(path, b);
}

/**
 * Preferences that make tshark verify checksums (tshark 4.0 names; ICMP and
 * ICMPv6 checksums are always verified and have no preference).
 */
export const TSHARK_CHECKSUM_PREFS = [
  '-o', 'ip.check_checksum:TRUE',
  '-o', 'tcp.check_checksum:TRUE',
  '-o', 'udp.check_checksum:TRUE',
];

/** Decode each fragment on its own (a first fragment's transport header is shown). */
export const NO_REASSEMBLY = ['-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE'];

let tsharkChecked = false;

/** Throw a clear error when tshark is missing. */
export function requireTshark(): void {
  if (tsharkChecked) return;
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      'tshark is not installed or does not run (' +
        (r.error ? r.error.message : `exit ${r.status}`) +
        '); run scripts/install-system-deps.sh as root',
    );
  }
  tsharkChecked = true;
}

/**
 * Decode `frames` with tshark and return, per frame, the values of `fields`
 * (occurrences of a repeated field joined by ','; '' when absent).
 * `extraArgs` are passed to tshark before the fields (e.g. NO_REASSEMBLY).
 */
export function tsharkFields(frames: Uint8Array[], fields: string[], extraArgs: string[] = []): string[][] {
  requireTshark();
  if (frames.length === 0) return [];
  const dir = mkdtempSync(join(tmpdir(), 'saru-tshark-'));
  const file = join(dir, 'frames.pcap');
  try {
    writePcap(file, frames);
    const args = [
      '-n',
      '-r', file,
      '-T', 'fields',
      '-E', 'separator=/t',
      '-E', 'occurrence=a',
      '-E', 'aggregator=,',
      ...TSHARK_CHECKSUM_PREFS,
      ...extraArgs,
      ...fields.flatMap((f) => ['-e', f]),
    ];
    const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (r.error) throw new Error(`tshark failed to run: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`tshark exited ${r.status}: ${r.stderr}`);
    const lines = r.stdout.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (lines.length !== frames.length) {
      throw new Error(`tshark printed ${lines.length} rows for ${frames.length} frames: ${r.stderr}`);
    }
    return lines.map((l) => {
      const cols = l.split('\t');
      while (cols.length < fields.length) cols.push('');
      return cols;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checksum status fields tshark fills (values: 0 bad, 1 good, 2 unverified). */
export const CHECKSUM_STATUS_FIELDS = [
  'ip.checksum.status',
  'tcp.checksum.status',
  'udp.checksum.status',
  'icmp.checksum.status',
  'icmpv6.checksum.status',
];

/** Per frame: the checksum status values tshark reported, by field (all occurrences). */
export function tsharkChecksumStatus(frames: Uint8Array[], extraArgs: string[] = []): Array<Record<string, string[]>> {
  const rows = tsharkFields(frames, CHECKSUM_STATUS_FIELDS, extraArgs);
  return rows.map((cols) => {
    const rec: Record<string, string[]> = {};
    CHECKSUM_STATUS_FIELDS.forEach((f, i) => {
      const v = cols[i] ?? '';
      if (v !== '') rec[f] = v.split(',');
    });
    return rec;
  });
}

/**
 * Per frame: true when tshark verified at least one checksum and every
 * checksum it reports is "good" (1). Unverified (2) and not-present (3, a
 * UDP zero checksum) are not bad, but a frame with no "good" at all is false.
 * In an ICMP/ICMPv6 error the quoted packet's IP header checksum counts, its
 * TCP/UDP checksum does not (the quoted segment is cut, tshark still judges it).
 */
export function tsharkChecksumsOk(frames: Uint8Array[], extraArgs: string[] = []): boolean[] {
  return tsharkChecksumStatus(frames, extraArgs).map((rec) => {
    if (rec['icmp.checksum.status'] || rec['icmpv6.checksum.status']) {
      delete rec['tcp.checksum.status'];
      delete rec['udp.checksum.status'];
    }
    const all = Object.values(rec).flat();
    return all.includes('1') && !all.includes('0');
  });
}
