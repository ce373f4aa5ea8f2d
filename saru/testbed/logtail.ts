/**
 * Reading the daemons' JSON logs while they run: LogTail returns the pino
 * lines appended to a log file since it was made (complete lines only), and
 * takeoverLines()/memberDownLines() pick the coordinator's failover lines out
 * of them. Used by bench:failover and `npm start` to learn when survivors
 * took a dead director's buckets. Owns one read offset per file; never
 * writes.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/** A pino line of a daemon's log (testbed with jsonLogs): msg, time, and the fields logged with it. */
export type LogLine = Record<string, unknown> & { msg?: string };

/** The JSON lines appended to a log file since this reader was made (or since `fromStart`: the whole file). */
export class LogTail {
  private offset: number;
  private partial = '';

  constructor(
    readonly path: string,
    fromStart = false,
  ) {
    this.offset = !fromStart && existsSync(path) ? statSync(path).size : 0;
  }

  /** Lines completed since the last call; non-JSON lines (the testbed's own markers) are skipped. */
  read(): LogLine[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const chunks: Buffer[] = [];
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) {
        // truncated or replaced: start over
        this.offset = 0;
        this.partial = '';
      }
      while (this.offset < size) {
        const buf = Buffer.alloc(Math.min(1 << 20, size - this.offset));
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        chunks.push(buf.subarray(0, n));
        this.offset += n;
      }
    } finally {
      closeSync(fd);
    }
    const text = this.partial + Buffer.concat(chunks).toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const out: LogLine[] = [];
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // a line that is not ours (cannot happen with pino's sync destination)
      }
    }
    return out;
  }
}

/** pino's time field: an ISO string (the daemons' isoTime) or epoch ms; NaN when absent. */
export function lineTime(l: LogLine): number {
  const t = l.time;
  return typeof t === 'number' ? t : typeof t === 'string' ? Date.parse(t) : NaN;
}

/** A survivor's `takeover` lines for buckets of director `from`, logged at or after `since` (epoch ms). */
export function takeoverLines(lines: readonly LogLine[], from: number, since: number): LogLine[] {
  return lines.filter((l) => l.msg === 'takeover' && l.from === from && lineTime(l) >= since);
}

/** A survivor's `member down` lines for director `member`, logged at or after `since` (epoch ms). */
export function memberDownLines(lines: readonly LogLine[], member: number, since: number): LogLine[] {
  return lines.filter((l) => l.msg === 'member down' && l.member === member && lineTime(l) >= since);
}
