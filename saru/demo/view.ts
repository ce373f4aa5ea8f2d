/**
 * The demo's live terminal view. Rendering is pure: renderFrame() turns a
 * DemoState into the lines of one screen (title, phase, master and epoch,
 * one row per director, client traffic, the latest events); ttyRedraw()
 * turns a frame into the bytes that redraw it in place (ANSI cursor moves);
 * plainUpdate() gives the lines a non-terminal should print: events and
 * changed director lines as they happen, and a full snapshot every few
 * seconds. LiveView is the thin impure part that writes them to a stream.
 * Owns no clock: the state carries its times.
 */
import type { DemoState, DirectorRow } from './state.js';

export interface FrameOptions {
  /** Terminal width: lines are cut to width - 1 (a wrapped line would break the redraw). Default 120. */
  width?: number;
  /** Latest events shown (default 10). */
  maxEvents?: number;
}

/** "+12.3 s" for ms since the start. */
export function stamp(ms: number): string {
  return `+${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

function num(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n)) : '-';
}

const HEADER = ['director', 'state', 'buckets', 'conns own/synced', 'packets/s', 'sync dgrams/s'] as const;
const WIDTHS = [9, 10, 8, 17, 10, 14] as const;

function cells(r: DirectorRow): string[] {
  const down = r.state === 'down';
  return [
    `d${r.id}${r.master ? ' *' : ''}`,
    r.state,
    down ? '-' : num(r.buckets),
    down ? '-' : `${num(r.connsOwn)} / ${num(r.connsSynced)}`,
    down ? '-' : num(r.pps),
    down ? '-' : num(r.syncDps),
  ];
}

/** One table line: the first two columns left-aligned, the numbers right-aligned. */
function tableLine(cols: readonly string[]): string {
  return cols.map((c, i) => (i < 2 ? c.padEnd(WIDTHS[i]!) : c.padStart(WIDTHS[i]!))).join('  ').trimEnd();
}

/** A director's row as the table shows it. */
export function directorLine(r: DirectorRow): string {
  return tableLine(cells(r));
}

/** The table header. */
export function headerLine(): string {
  return tableLine(HEADER);
}

/** "  +12.3 s  text". */
export function eventLine(e: { atMs: number; text: string }): string {
  return `  ${stamp(e.atMs).padStart(8)}  ${e.text}`;
}

function trafficLine(s: DemoState): string {
  const t = s.traffic;
  return (
    `clients: ${t.longConnections} long-lived keep-alive connections; ` +
    `short requests ${t.shortOpened} opened, ${t.shortCompleted} completed, ${t.shortLost} lost`
  );
}

function masterLine(s: DemoState): string {
  return `master ${s.master > 0 ? `d${s.master}` : '-'}, epoch ${s.epoch > 0 ? s.epoch : '-'}`;
}

/** At most width - 1 characters: a line that fills the last column may wrap on some terminals. */
function cut(line: string, width: number): string {
  return line.length >= width ? line.slice(0, Math.max(1, width - 2)) + '…' : line;
}

/** The lines of one screen of the view. */
export function renderFrame(s: DemoState, opts: FrameOptions = {}): string[] {
  const width = opts.width ?? 120;
  const maxEvents = opts.maxEvents ?? 10;
  const clock = `${stamp(s.elapsedMs)} of ${Math.round(s.durationMs / 1000)} s`;
  const lines = [
    s.title,
    `${s.phase}   [${clock}]`,
    masterLine(s),
    '',
    headerLine(),
    ...s.directors.map(directorLine),
    '',
    trafficLine(s),
    '',
    'events:',
    ...s.events.slice(-maxEvents).map(eventLine),
  ];
  if (s.events.length > maxEvents) lines.splice(lines.length - maxEvents, 0, `  (${s.events.length - maxEvents} earlier)`);
  return lines.map((l) => cut(l, width));
}

const ESC = '\x1b[';

/**
 * The bytes that replace a frame of `previousLines` lines (0: none drawn yet)
 * with `lines`: cursor up to the frame's first line, each line cleared and
 * rewritten, anything below cleared.
 */
export function ttyRedraw(previousLines: number, lines: readonly string[]): string {
  let out = previousLines > 0 ? `${ESC}${previousLines}A\r` : '';
  for (const l of lines) out += `${ESC}2K${l}\n`;
  return out + `${ESC}J`;
}

/** What plainUpdate() remembers between calls. */
export interface PlainMemo {
  /** Events printed so far. */
  events: number;
  phase: string;
  /** Per director: the signature (state, buckets, master) last printed. */
  rows: Map<number, string>;
  /** Story time of the last full snapshot (-Infinity: none yet). */
  snapshotAt: number;
  titled: boolean;
}

export function newPlainMemo(): PlainMemo {
  return { events: 0, phase: '', rows: new Map(), snapshotAt: -Infinity, titled: false };
}

function signature(r: DirectorRow): string {
  return `${r.state} ${r.buckets} ${r.master}`;
}

/**
 * The lines a plain (non-terminal) view prints for `s`: the title once, a
 * phase change, new events, a director line whose state, buckets or
 * mastership changed, and every `everyMs` of story time a full snapshot
 * (table and traffic). Returns the lines and the memo for the next call.
 */
export function plainUpdate(memo: PlainMemo, s: DemoState, everyMs = 10_000): { lines: string[]; memo: PlainMemo } {
  const lines: string[] = [];
  const next: PlainMemo = { events: memo.events, phase: memo.phase, rows: new Map(memo.rows), snapshotAt: memo.snapshotAt, titled: memo.titled };
  if (!next.titled) {
    lines.push(s.title);
    next.titled = true;
  }
  const t = stamp(s.elapsedMs).padStart(8);
  if (s.phase !== next.phase) {
    lines.push(`  ${stamp(s.phaseAtMs).padStart(8)}  ${s.phase}`);
    next.phase = s.phase;
  }
  for (const e of s.events.slice(next.events)) lines.push(eventLine(e));
  next.events = s.events.length;
  if (s.elapsedMs - next.snapshotAt >= everyMs) {
    next.snapshotAt = s.elapsedMs;
    lines.push(`  ${t}  ${masterLine(s)}`, `  ${' '.repeat(8)}  ${headerLine()}`);
    for (const r of s.directors) {
      lines.push(`  ${' '.repeat(8)}  ${directorLine(r)}`);
      next.rows.set(r.id, signature(r));
    }
    lines.push(`  ${' '.repeat(8)}  ${trafficLine(s)}`);
    return { lines, memo: next };
  }
  for (const r of s.directors) {
    const sig = signature(r);
    if (next.rows.get(r.id) === sig) continue;
    next.rows.set(r.id, sig);
    lines.push(`  ${t}  ${directorLine(r)}`);
  }
  return { lines, memo: next };
}

/** Writes the view to a stream: in place on a terminal (`tty`), else plain lines. */
export class LiveView {
  private drawn = 0;
  private memo = newPlainMemo();
  private cursorHidden = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number; rows?: number },
    private readonly tty: boolean,
    private readonly plainEveryMs = 10_000,
  ) {}

  /** Show `s` (a redraw, or the plain lines it adds). */
  update(s: DemoState): void {
    if (this.tty) {
      if (!this.cursorHidden) {
        this.out.write(`${ESC}?25l`);
        this.cursorHidden = true;
      }
      // the frame must fit the screen: the cursor cannot move up past its top
      const maxEvents = Math.max(2, Math.min(12, (this.out.rows ?? 40) - 14 - s.directors.length));
      const lines = renderFrame(s, { width: this.out.columns ?? 120, maxEvents });
      this.out.write(ttyRedraw(this.drawn, lines));
      this.drawn = lines.length;
      return;
    }
    const u = plainUpdate(this.memo, s, this.plainEveryMs);
    this.memo = u.memo;
    if (u.lines.length > 0) this.out.write(u.lines.join('\n') + '\n');
  }

  /** Leave the last frame on screen and give the cursor back (also safe on Ctrl-C). */
  close(): void {
    if (this.cursorHidden) {
      this.out.write(`${ESC}?25h`);
      this.cursorHidden = false;
    }
  }
}
