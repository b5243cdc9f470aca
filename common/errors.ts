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

/** Errors the CLI reports as a one-line message with exit code 2. */
export function isUserError(err: unknown): err is InputError | ConfigError | UsageError {
  return err instanceof InputError || err instanceof ConfigError || err instanceof UsageError;
}
