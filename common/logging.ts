/**
 * Structured logs (pino, JSON lines on stderr). With `logging.redact`, IPv4,
 * IPv6 and MAC addresses are replaced in every message and field before the
 * line is written, so logs can leave the host without naming its peers.
 * Secrets never reach a logger: callers log key names, not values.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

const IPV4 = /\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b/g;
const MAC = /\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\b/g;
// Two or more groups around "::", or eight full groups: avoids eating times like 10:20:30.
const IPV6 = /(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{0,4}::(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{0,4})(?![\w:])/g;

/** Replaces addresses in a string: MAC first (it looks like part of an IPv6 address). */
export function redactAddresses(text: string): string {
  return text.replace(MAC, '[mac]').replace(IPV4, '[ip]').replace(IPV6, (m) => (m.length >= 3 ? '[ip]' : m));
}

function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactAddresses(value);
  if (depth > 8 || typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) return { type: value.name, message: redactAddresses(value.message), stack: redactAddresses(value.stack ?? '') };
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  /** Where lines go (tests); stderr by default. */
  destination?: DestinationStream;
  /** Bound to every line (e.g. component, sensor). */
  bindings?: Record<string, string>;
}

export function createLogger(logging: Readonly<Config['logging']>, options: LoggerOptions = {}): Logger {
  const redact = logging.redact;
  const logger = pino({
    level: logging.level,
    base: { pid: process.pid, ...options.bindings },
    formatters: redact ? { log: (object) => redactValue(object) as Record<string, unknown> } : {},
    hooks: redact ? {
      logMethod(args, method) {
        method.apply(this, args.map((a) => redactValue(a)) as Parameters<typeof method>);
      },
    } : {},
  }, options.destination ?? pino.destination({ dest: 2, sync: true }));
  return logger;
}
