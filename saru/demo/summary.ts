/**
 * The demo's verdict: what a run measured (DemoSummary), the one-line
 * summary (`connections: 1200 opened, 1200 completed, 0 lost; takeovers: 2,
 * p99 412 ms; resync: 3 s`), the detail lines under it, the JSON form and
 * the exit status. Pure: no I/O.
 */
import { percentile } from './state.js';

/** One phase of the story and whether it reached its goal. */
export interface PhaseResult {
  /** "1 all forward", "2 kill", "3 restart and rejoin", "4 settle". */
  name: string;
  ok: boolean;
  /** What happened (the goal met) or why it failed. */
  detail: string;
}

export interface DemoSummary {
  mode: 'namespaces' | 'simulated';
  /** Connections the clients opened (long-lived plus short), completed as intended, and lost (= opened - completed). */
  opened: number;
  completed: number;
  lost: number;
  long: { opened: number; lost: number; requests: number };
  short: { opened: number; completed: number; lost: number };
  /** One takeover per survivor that took buckets of the killed director: ms from its last heartbeat to forwarding. */
  takeoverMs: number[];
  /** The restarted director's bulk resync, ms (NaN: not reported). */
  resyncMs: number;
  /** Entries the resync brought (NaN: not reported). */
  resyncEntries: number;
  /** Restart -> the restarted director forwarding its buckets again, ms (NaN: did not rejoin). */
  rejoinMs: number;
  phases: PhaseResult[];
  /** Why the run failed besides lost connections and phases (e.g. an error). */
  errors: string[];
  /** The first few lost connections: which and why. */
  lostExamples: string[];
  /** Story length, s. */
  durationS: number;
  /** Wall time of the whole run, s. */
  wallS: number;
  /** Takeover and resync times are virtual (simulator). */
  virtualTime: boolean;
}

/** The run passed: nothing lost, every phase reached its goal, no error. */
export function passed(s: DemoSummary): boolean {
  return s.lost === 0 && s.opened > 0 && s.phases.length > 0 && s.phases.every((p) => p.ok) && s.errors.length === 0;
}

/** Why the run failed ([] when it passed). */
export function failureReasons(s: DemoSummary): string[] {
  const out: string[] = [];
  if (s.opened === 0) out.push('no connection was opened');
  if (s.lost > 0) out.push(`${s.lost} connection(s) lost`);
  for (const p of s.phases) if (!p.ok) out.push(`phase ${p.name}: ${p.detail}`);
  out.push(...s.errors);
  return out;
}

/** Exit status: 0 passed, 1 failed. */
export function exitStatus(s: DemoSummary): number {
  return passed(s) ? 0 : 1;
}

/** "412 ms" / "—". */
function ms(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n)} ms` : '—';
}

/** Seconds with one decimal below 10 s, whole seconds above ("0.8 s", "3 s" for 3.0, "12 s"). */
export function seconds(msValue: number): string {
  if (!Number.isFinite(msValue)) return '—';
  const s = msValue / 1000;
  if (s >= 10) return `${Math.round(s)} s`;
  const r = Math.round(s * 10) / 10;
  return `${Number.isInteger(r) ? r.toFixed(0) : r.toFixed(1)} s`;
}

/** The one-line summary. */
export function summaryLine(s: DemoSummary): string {
  const p99 = percentile(s.takeoverMs, 0.99);
  const v = s.virtualTime ? ' (virtual)' : '';
  return (
    `connections: ${s.opened} opened, ${s.completed} completed, ${s.lost} lost; ` +
    `takeovers: ${s.takeoverMs.length}, p99 ${ms(p99)}${v}; resync: ${seconds(s.resyncMs)}${v}`
  );
}

/** The summary block printed at the end: the line, details, phases, result. */
export function summaryLines(s: DemoSummary): string[] {
  const out = [summaryLine(s)];
  out.push(
    `  long-lived keep-alive: ${s.long.opened} opened, ${s.long.lost} lost, ${s.long.requests} requests on them`,
    `  short (one request each): ${s.short.opened} opened, ${s.short.completed} completed, ${s.short.lost} lost`,
    `  takeovers: ${s.takeoverMs.length ? s.takeoverMs.map((t) => ms(t)).join(', ') : 'none'} (last heartbeat of the killed director -> each survivor forwarding its share)`,
    `  resync: ${Number.isFinite(s.resyncEntries) ? `${s.resyncEntries} entries in ${ms(s.resyncMs)}` : '—'}; rejoined ${ms(s.rejoinMs)} after the restart`,
  );
  for (const p of s.phases) out.push(`  phase ${p.name}: ${p.ok ? 'ok' : 'FAILED'}: ${p.detail}`);
  for (const e of s.lostExamples) out.push(`  lost: ${e}`);
  for (const e of s.errors) out.push(`  error: ${e}`);
  const why = failureReasons(s);
  out.push(why.length === 0 ? 'result: OK (nothing lost, every phase reached its goal)' : `result: FAILED: ${why.join('; ')}`);
  return out;
}

/** A number for the JSON (null when not measured). */
function jnum(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n) : null;
}

/** The summary as one JSON object (for --json). */
export function summaryJson(s: DemoSummary): Record<string, unknown> {
  return {
    demo: 'saru',
    mode: s.mode,
    ok: passed(s),
    opened: s.opened,
    completed: s.completed,
    lost: s.lost,
    long: s.long,
    short: s.short,
    takeovers: s.takeoverMs.length,
    takeover_ms: s.takeoverMs.map((t) => Math.round(t)),
    takeover_ms_p99: jnum(percentile(s.takeoverMs, 0.99)),
    resync_ms: jnum(s.resyncMs),
    resync_entries: jnum(s.resyncEntries),
    rejoin_ms: jnum(s.rejoinMs),
    virtual_time: s.virtualTime,
    phases: s.phases,
    errors: s.errors,
    lost_examples: s.lostExamples,
    reasons: failureReasons(s),
    duration_s: s.durationS,
    wall_s: Math.round(s.wallS),
    summary: summaryLine(s),
  };
}
