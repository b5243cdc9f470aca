/** How many flow-sharded workers a command runs (pipeline.workers), and why not more. */
import { availableParallelism } from 'node:os';
import type { Config } from '../../common/config.js';
import { ConfigError } from '../../common/errors.js';
import { Pipeline } from '../pipeline.js';

export interface WorkerChoice {
  workers: number;
  /** Why `auto` chose fewer workers than cores less one (for a note on stderr or in the log). */
  note?: string;
}

/** Enabled analyzers that cannot run flow-sharded yet (no `mergeWindow`). */
export function unshardableAnalyzers(config: Readonly<Config>): string[] {
  return new Pipeline(config, { onWindow: () => {} }).analyzers.filter((a) => typeof a.mergeWindow !== 'function').map((a) => a.id);
}

/**
 * `auto`: the machine's cores less one (the reader's), at least 1. A number
 * above 1 while an enabled analyzer cannot merge its windows is refused
 * (ConfigError); `auto` then runs one worker and says why.
 */
export function resolveWorkers(config: Readonly<Config>, cores = availableParallelism()): WorkerChoice {
  const setting = config.pipeline.workers;
  const wanted = setting === 'auto' ? Math.max(1, cores - 1) : Number(setting);
  if (wanted === 1) return { workers: 1 };
  const unshardable = unshardableAnalyzers(config);
  if (unshardable.length === 0) return { workers: wanted };
  const which = `analyzers ${unshardable.join(', ')} cannot merge their windows across workers yet`;
  if (setting !== 'auto') throw new ConfigError('pipeline.workers', `${wanted} workers: ${which}; use 1 worker or disable them (analyzers.<id>.enabled: false)`);
  return { workers: 1, note: `one analysis worker, not ${wanted}: ${which}` };
}
