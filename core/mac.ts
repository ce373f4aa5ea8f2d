/**
 * MAC addresses: parsing and formatting of "aa:bb:cc:dd:ee:ff". No state;
 * allocates, so not for the per-packet path.
 */
import { ErrorCode, SaruError } from './errors.js';

/**
 * Parse "aa:bb:cc:dd:ee:ff" (or with "-" separators, one or two hex digits per byte) into 6 bytes.
 * @throws SaruError SARU_ERR_INVALID_ARGUMENT
 */
export function parseMac(text: string): Uint8Array {
  const p = text.trim().split(/[:-]/);
  if (p.length !== 6 || p.some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) {
    throw new SaruError(ErrorCode.INVALID_ARGUMENT, `not a MAC address: "${text}"`);
  }
  return Uint8Array.from(p.map((x) => parseInt(x, 16)));
}

/** Format the 6 bytes at mac[off..] as "aa:bb:cc:dd:ee:ff". */
export function formatMac(mac: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(mac[off + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}
