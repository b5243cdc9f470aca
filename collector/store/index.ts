/**
 * Opens the collector's store: PostgreSQL when a database URL is configured
 * (several collectors can share it), else a SQLite file. Migrates before
 * returning, so callers always get the current schema.
 */
import { PostgresStore } from './postgres.js';
import { errorText } from './shared.js';
import type { Store } from './types.js';

export type * from './types.js';
export { PostgresStore, type PostgresStoreOptions } from './postgres.js';
export type { SqliteStoreOptions } from './sqlite.js';
export { normalizeTime } from './shared.js';

export interface OpenStoreOptions {
  /** postgres://user:password@host:port/db; empty for SQLite. */
  databaseUrl: string;
  sqlitePath: string;
  /** SQLite: its background checkpoint failed (the writer then checkpoints inline). */
  onCheckpointError?: (message: string) => void;
}

/** The URL without its password (userinfo or `password=` parameter), for logs and errors. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.searchParams.delete('password');
    return u.toString();
  } catch {
    // Not a URL (a libpq keyword string?): still never show a password.
    return url.replace(/(password\s*=\s*)('[^']*'|\S+)/gi, '$1***').replace(/\/\/([^:/@]+):[^@]*@/, '//$1@');
  }
}

/** What to do when the optional better-sqlite3 module is not installed (npm skips it where it can neither download nor compile it). */
export const SQLITE_MISSING_MESSAGE = 'the SQLite store needs the better-sqlite3 module, which is not installed: apt-get install python3 make g++ && npm install better-sqlite3, or use PostgreSQL (collector.databaseUrl)';

/** SqliteStore, imported on first use: better-sqlite3 is an optional dependency (analyze and PostgreSQL need none). */
async function loadSqlite(): Promise<typeof import('./sqlite.js').SqliteStore> {
  try {
    return (await import('./sqlite.js')).SqliteStore;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes('better-sqlite3')) {
      throw new Error(SQLITE_MISSING_MESSAGE, { cause: err });
    }
    throw err;
  }
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const store = new PostgresStore(options.databaseUrl);
    try {
      await store.migrate();
    } catch (err) {
      await store.close().catch(() => {});
      throw new Error(`PostgreSQL at ${redactDatabaseUrl(options.databaseUrl)}: cannot open the database: ${errorText(err)}`, { cause: err });
    }
    return store;
  }
  const store = new (await loadSqlite())(options.sqlitePath, options.onCheckpointError ? { onCheckpointError: options.onCheckpointError } : {});
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}
