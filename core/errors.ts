/**
 * Saru's one error class. Owns the stable error codes that callers match on.
 * Thrown only for configuration and programming errors; data-path outcomes
 * (not our slice, table full, bad checksum, forged sync message) are return
 * values and counters, never exceptions.
 */

/** Stable error codes; documented in docs/errors.md. */
export const ErrorCode = {
  CONFIG: 'SARU_ERR_CONFIG',
  INVALID_ARGUMENT: 'SARU_ERR_INVALID_ARGUMENT',
  SERVICE_EXISTS: 'SARU_ERR_SERVICE_EXISTS',
  NO_SUCH_SERVICE: 'SARU_ERR_NO_SUCH_SERVICE',
  DEST_EXISTS: 'SARU_ERR_DEST_EXISTS',
  NO_SUCH_DEST: 'SARU_ERR_NO_SUCH_DEST',
  UNKNOWN_SCHEDULER: 'SARU_ERR_UNKNOWN_SCHEDULER',
  CAPACITY: 'SARU_ERR_CAPACITY',
  NO_SUCH_INTERFACE: 'SARU_ERR_NO_SUCH_INTERFACE',
  NOT_PERMITTED: 'SARU_ERR_NOT_PERMITTED',
  UNSUPPORTED_PLATFORM: 'SARU_ERR_UNSUPPORTED_PLATFORM',
  IO: 'SARU_ERR_IO',
  CONTROL: 'SARU_ERR_CONTROL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const DEFAULT_MESSAGES: Record<ErrorCode, string> = {
  SARU_ERR_CONFIG: 'invalid configuration',
  SARU_ERR_INVALID_ARGUMENT: 'invalid argument',
  SARU_ERR_SERVICE_EXISTS: 'virtual service already exists',
  SARU_ERR_NO_SUCH_SERVICE: 'no such virtual service',
  SARU_ERR_DEST_EXISTS: 'real server already exists in this virtual service',
  SARU_ERR_NO_SUCH_DEST: 'no such real server',
  SARU_ERR_UNKNOWN_SCHEDULER: 'unknown scheduler',
  SARU_ERR_CAPACITY: 'capacity exceeded',
  SARU_ERR_NO_SUCH_INTERFACE: 'no such network interface',
  SARU_ERR_NOT_PERMITTED: 'operation not permitted: CAP_NET_RAW and CAP_NET_ADMIN (or root) are needed',
  SARU_ERR_UNSUPPORTED_PLATFORM: 'packet I/O needs Linux (AF_PACKET)',
  SARU_ERR_IO: 'system call failed',
  SARU_ERR_CONTROL: 'control socket request failed',
};

/** Where a configuration error was found. */
export interface SourceLocation {
  /** File name as given by the user. */
  file: string;
  /** 1-based line number. */
  line: number;
}

/** The base error: `code` is stable, `message` is for humans. */
export class SaruError extends Error {
  override readonly name = 'SaruError';
  readonly code: ErrorCode;
  readonly location: SourceLocation | undefined;

  constructor(code: ErrorCode, message?: string, location?: SourceLocation) {
    const text = message ?? DEFAULT_MESSAGES[code];
    super(location ? `${location.file}:${location.line}: ${text}` : text);
    this.code = code;
    this.location = location;
  }
}

/** Shorthand for a configuration error at `file:line`. */
export function configError(file: string, line: number, message: string): SaruError {
  return new SaruError(ErrorCode.CONFIG, message, { file, line });
}

/**
 * Rebuild an error that crossed a boundary as (code, message): a control
 * socket response, a worker-thread reply. A code that is not one of ours
 * becomes `fallback`.
 */
export function errorFromCode(code: string | undefined, message: string, fallback: ErrorCode): SaruError {
  const known = code !== undefined && (Object.values(ErrorCode) as string[]).includes(code);
  return new SaruError(known ? (code as ErrorCode) : fallback, message);
}
