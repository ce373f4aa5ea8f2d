/**
 * Process plumbing for the testbed: running a command and capturing its
 * output (failures become errors naming the command line and its stderr),
 * starting detached programs with their output in a log file, and finding,
 * signalling and awaiting processes by pid. Owns only the processes it is
 * asked to start or signal; never matches processes by name.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { ErrorCode, SaruError } from '../../core/index.js';

export interface RunResult {
  /** Exit code; 124 (as timeout(1)) when the time limit killed the command, 128+N for signal N. */
  code: number;
  stdout: string;
  stderr: string;
  /** The command was killed because it overran `timeoutMs`. */
  timedOut: boolean;
}

export interface RunOptions {
  /** Written to the command's standard input (which is closed after). */
  input?: string;
  /** Kill the command (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13, SIGABRT: 6, SIGSEGV: 11 };

/** A shell-like rendering of a command line, for messages. */
export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run a command and collect its output. Resolves whatever the exit code; rejects only when it cannot start. */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new SaruError(ErrorCode.IO, `${commandLine(cmd, args)}: cannot run: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: timedOut ? 124 : (code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0)),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    // A command that does not read its input must not fail us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Run a command; a non-zero exit or a timeout is an error naming the command line and its stderr. */
export async function runChecked(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` : `exit code ${r.code}`;
    const detail = (r.stderr.trim() || r.stdout.trim()).slice(-2000);
    throw new SaruError(ErrorCode.IO, `${commandLine(cmd, args)}: ${why}${detail ? `: ${detail}` : ''}`);
  }
  return r;
}

/**
 * Start a program detached from us (own process group, survives our exit),
 * standard output and error appended to `logPath`. Returns its pid.
 */
export function spawnDetached(cmd: string, args: readonly string[], logPath: string): number {
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd] });
    // Errors (ENOENT) arrive asynchronously; the caller's readiness wait reports them.
    child.on('error', () => {});
    child.unref();
    if (child.pid === undefined) throw new SaruError(ErrorCode.IO, `${commandLine(cmd, args)}: cannot start`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Whether `pid` is a live process (a zombie counts as dead). */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Inode of the network namespace `/run/netns/NAME`, or undefined if it does not exist. */
export function netnsInode(name: string): number | undefined {
  try {
    return statSync(`/run/netns/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** Whether live process `pid` runs in network namespace `ns` (checked by namespace inode, not by name). */
export function inNetns(pid: number, ns: string): boolean {
  const ino = netnsInode(ns);
  if (ino === undefined) return false;
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${ino}]`;
  } catch {
    return false;
  }
}

/** The process's command line, arguments joined by spaces ('' if gone). */
export function processCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Read a pid file; undefined when missing or malformed. */
export function readPidFile(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const t = readFileSync(path, 'utf8').trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

/** Poll `pred` every `intervalMs` until it holds or `timeoutMs` passes; resolves whether it held. */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(1, deadline - Date.now()))));
  }
}

/** Send `signal` to `pid`; false when it no longer exists. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM, wait up to `graceMs`, then SIGKILL and wait up to 2 s more.
 * Resolves 'exited' (left on SIGTERM), 'killed' (needed SIGKILL) or 'gone'
 * (was not running).
 */
export async function terminate(pid: number, graceMs: number): Promise<'exited' | 'killed' | 'gone'> {
  if (!isAlive(pid) || !signal(pid, 'SIGTERM')) return 'gone';
  if (await waitFor(() => !isAlive(pid), graceMs)) return 'exited';
  signal(pid, 'SIGKILL');
  if (!(await waitFor(() => !isAlive(pid), 2000))) {
    throw new SaruError(ErrorCode.IO, `process ${pid} (${processCmdline(pid)}) survived SIGKILL for 2 s`);
  }
  return 'killed';
}

/** The last `lines` lines of a file ('' if it does not exist). */
export function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return '';
  }
}
