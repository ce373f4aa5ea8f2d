/**
 * The `key = value` file format of saru.conf and saru-syncd.conf (as
 * heartbeat's ha.cf): one setting per line, `#` comments, blank lines
 * ignored. Owns the line syntax and the errors every such file shares:
 * malformed line, unknown key (naming the known ones), repeated key, empty
 * value, missing required key (reported at the file's last line), and a bad
 * value (naming what was expected). What the values mean is the caller's.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { configError, type SaruError } from '../errors.js';

/** The settings of one file, with the helpers a parser validates them with. */
export interface KeyValueFile<K extends string> {
  file: string;
  /** Each key set, with its value (trimmed) and 1-based line. */
  readonly seen: ReadonlyMap<K, { value: string; line: number }>;
  /** The line a missing key is reported at: the file's last line (1 for an empty file). */
  readonly lastLine: number;
  get(key: K): string | undefined;
  /** @throws SaruError SARU_ERR_CONFIG at the last line when the key is missing. */
  required(key: K): string;
  /** The error for a bad value of `key` (which must be set): "file:line: key: expected ..., got "..."" + why. */
  bad(key: K, why?: string): SaruError;
  /** A path value taken relative to the file's directory. */
  path(value: string): string;
}

/**
 * Read `text` (from `file`) against `keys` (key -> what its value should be, for messages).
 * @throws SaruError SARU_ERR_CONFIG naming file:line for a malformed line, an
 *   unknown key, a repeated key or an empty value.
 */
export function parseKeyValueFile<K extends string>(text: string, file: string, keys: Readonly<Record<K, string>>): KeyValueFile<K> {
  const seen = new Map<K, { value: string; line: number }>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw configError(file, i + 1, `expected "key = value", got "${line}"`);
    const key = m[1]!;
    const value = m[2]!.trim();
    if (!Object.prototype.hasOwnProperty.call(keys, key)) {
      throw configError(file, i + 1, `unknown key "${key}"; known keys: ${Object.keys(keys).join(', ')}`);
    }
    const prev = seen.get(key as K);
    if (prev) throw configError(file, i + 1, `"${key}" already set on line ${prev.line}`);
    if (value === '') throw configError(file, i + 1, `"${key}" needs a value: ${keys[key as K]}`);
    seen.set(key as K, { value, line: i + 1 });
  });
  const lastLine = Math.max(1, lines.length - (lines[lines.length - 1] === '' ? 1 : 0));
  const base = dirname(resolve(file));
  return {
    file,
    seen,
    lastLine,
    get: (key) => seen.get(key)?.value,
    required(key) {
      const e = seen.get(key);
      if (!e) throw configError(file, lastLine, `missing required key "${key}" (${keys[key]})`);
      return e.value;
    },
    bad(key, why = '') {
      const e = seen.get(key)!;
      return configError(file, e.line, `${key}: expected ${keys[key]}, got "${e.value}"${why}`);
    },
    path: (v) => (isAbsolute(v) ? v : resolve(base, v)),
  };
}

/** A decimal integer in lo..hi, or null (no sign, no exponent, at most 10 digits). */
export function intIn(v: string, lo: number, hi: number): number | null {
  if (!/^\d{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n >= lo && n <= hi ? n : null;
}

/** A Linux interface name (IFNAMSIZ - 1 characters at most). */
export const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
