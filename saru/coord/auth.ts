/**
 * Authentication of coordinator messages. Owns the HMAC-SHA256 tag (shared
 * cluster key, node:crypto) and the anti-replay windows: per sender, the
 * newest incarnation seen and a 64-entry sliding window on sequence numbers,
 * as IPsec's (RFC 4303 section 3.4.3). It never throws on input from the
 * network: callers get a verdict and count it.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { ErrorCode, SaruError } from '../../core/index.js';

/** Bytes of the HMAC-SHA256 tag appended to every message. */
export const TAG_BYTES = 32;
/** Shortest key accepted, bytes. */
export const MIN_KEY_BYTES = 16;
/** Width of the replay window, in sequence numbers. */
export const REPLAY_WINDOW = 64;

/** A prepared HMAC key. */
export class MessageKey {
  private readonly key: KeyObject;

  /** @throws SaruError SARU_ERR_INVALID_ARGUMENT when the key is shorter than 16 bytes. */
  constructor(raw: Uint8Array) {
    if (!(raw instanceof Uint8Array) || raw.length < MIN_KEY_BYTES) {
      throw new SaruError(ErrorCode.INVALID_ARGUMENT, `cluster key must be at least ${MIN_KEY_BYTES} bytes`);
    }
    this.key = createSecretKey(Buffer.from(raw));
  }

  /** The tag of `data`. */
  tag(data: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(data).digest();
  }

  /** Whether the last 32 bytes of `msg` are the tag of the bytes before them. */
  verify(msg: Uint8Array): boolean {
    if (msg.length < TAG_BYTES) return false;
    const body = msg.subarray(0, msg.length - TAG_BYTES);
    const expected = this.tag(body);
    return timingSafeEqual(expected, msg.subarray(msg.length - TAG_BYTES));
  }
}

/** Outcome of a replay check. */
export type ReplayVerdict = 'ok' | 'duplicate' | 'too_old' | 'old_incarnation';

interface SenderWindow {
  incarnation: number;
  top: number;
  bits: Uint8Array; // bits[seq % 64] = 1 when seq in (top - 64, top] was seen
}

/** Replay windows of every sender. */
export class ReplayGuard {
  private readonly senders = new Map<number, SenderWindow>();

  /**
   * Check (sender, incarnation, seq) and record it when new. A newer
   * incarnation replaces the sender's window; an older one is rejected.
   */
  check(sender: number, incarnation: number, seq: number): ReplayVerdict {
    let w = this.senders.get(sender);
    if (w === undefined || incarnation > w.incarnation) {
      w = { incarnation, top: 0, bits: new Uint8Array(REPLAY_WINDOW) };
      this.senders.set(sender, w);
    } else if (incarnation < w.incarnation) {
      return 'old_incarnation';
    }
    if (seq > w.top) {
      const gap = seq - w.top;
      if (gap >= REPLAY_WINDOW) w.bits.fill(0);
      else for (let s = w.top + 1; s < seq; s++) w.bits[s % REPLAY_WINDOW] = 0;
      w.bits[seq % REPLAY_WINDOW] = 1;
      w.top = seq;
      return 'ok';
    }
    if (w.top - seq >= REPLAY_WINDOW) return 'too_old';
    const i = seq % REPLAY_WINDOW;
    if (w.bits[i] === 1) return 'duplicate';
    w.bits[i] = 1;
    return 'ok';
  }

  /** The newest incarnation seen from `sender` (undefined: never heard). */
  incarnation(sender: number): number | undefined {
    return this.senders.get(sender)?.incarnation;
  }
}
