/**
 * The data directory (`dataDir`: the agent's spool, the collector's SQLite
 * database and uploads), created at start. A path that cannot be a directory
 * is the operator's to fix, so it is a ConfigError naming the setting, not a
 * bare ENOTDIR from deep inside the spool or the store.
 */
import { mkdirSync } from 'node:fs';
import { ConfigError, fsReason } from './errors.js';

/** Creates `path` (and its parents) as the `dataDir` setting asks, or says which setting to change. */
export function ensureDataDir(path: string, options: { mode?: number } = {}): void {
  try {
    mkdirSync(path, { recursive: true, ...options });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'it or a parent is a file, not a directory' : fsReason(err);
    throw new ConfigError('dataDir', `cannot use ${path} as the data directory: ${why}; point --data-dir (DATA_DIR) at a directory this user may write`, { cause: err });
  }
}
