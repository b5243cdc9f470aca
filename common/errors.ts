/**
 * Error classes with a stable code and a location, so a CLI can print one line
 * that says what is wrong and where (byte offset, config key) without a stack.
 */

/** The input capture cannot be read (bad magic, impossible length, limit crossed). */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(
    readonly code: string,
    message: string,
    /** Byte offset in the (decompressed) capture where the problem is, when known. */
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(offset === undefined ? message : `${message} (at byte offset ${offset})`, options);
  }
}

/** A configuration value is invalid; `key` is its dotted path, e.g. `flows.maxFlows`. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(`config ${key}: ${message}`, options);
  }
}

/** The command line is wrong. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** An error as a thread posts it: enough to raise the same error in the thread that reads the message. */
export interface ThreadError { name: string; code?: string; message: string }

export function toThreadError(err: unknown): ThreadError {
  const e = err as Error & { code?: unknown };
  return {
    name: err instanceof Error ? e.name : 'Error',
    message: err instanceof Error ? e.message : String(err),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
  };
}

export function fromThreadError(e: ThreadError): Error {
  // The message already carries the byte offset (InputError adds it).
  if (e.name === 'InputError') return new InputError(e.code ?? 'input', e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** Errors the CLI reports as a one-line message with exit code 2. */
export function isUserError(err: unknown): err is InputError | ConfigError | UsageError {
  return err instanceof InputError || err instanceof ConfigError || err instanceof UsageError;
}

/** What a file-system error code means, in words (so no bare ENOENT reaches the terminal). */
const FS_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'a file of that name exists and is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EBUSY: 'the file is busy',
};

/** A file-system error as words: "no such file or directory", never "ENOENT" or node's "ENOENT: ..., open '...'". */
export function fsReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const reason = e.code === undefined ? undefined : FS_REASONS[e.code];
  if (reason !== undefined) return reason;
  const message = err instanceof Error ? err.message : String(err);
  // node's "CODE: text, syscall 'path'": keep the text only.
  return /^[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The closest of `candidates` to `name`, when it is close enough to be a typo. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(name, c);
    if (d < bestDistance) { best = c; bestDistance = d; }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

/** Why a server could not listen, in words. */
export function listenReason(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE': return 'the port is in use (by another program, or another copy of this one)';
    case 'EACCES': return 'permission denied (ports below 1024 need privileges)';
    case 'EADDRNOTAVAIL': return 'no interface of this host has that address';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'the host name does not resolve';
    default: return fsReason(err);
  }
}
