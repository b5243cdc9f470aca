/**
 * Opens the collector's store: PostgreSQL when a database URL is configured
 * (several collectors can share it), else a SQLite file. Migrates before
 * returning, so callers always get the current schema.
 */
import { ConfigError, InputError } from '../../common/errors.js';
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

/**
 * What to do about a PostgreSQL connection that failed for a reason outside this program (the
 * server, the network, the URL, the role's rights), or undefined for anything else (a bug).
 */
export function postgresProblem(err: unknown): { why: string; remedy: string } | undefined {
  if (err instanceof AggregateError) return err.errors.map(postgresProblem).find((r) => r !== undefined);
  const code = (err as { code?: unknown }).code;
  const message = errorText(err);
  const noAnswer = 'check the host, the port and any firewall between';
  switch (code) {
    case 'ECONNREFUSED': return { why: 'connection refused', remedy: 'start PostgreSQL, or fix the host and port in the URL' };
    case 'ENOTFOUND': case 'EAI_AGAIN': return { why: 'the host name does not resolve', remedy: 'fix the host in the URL' };
    case 'ETIMEDOUT': case 'EHOSTUNREACH': case 'ENETUNREACH': return { why: 'no answer from the server', remedy: noAnswer };
    case 'ECONNRESET': return { why: 'the server closed the connection', remedy: noAnswer };
    case '28000': case '28P01': return { why: message, remedy: 'fix the user or password in the URL, or create the role (CREATE ROLE ... LOGIN)' };
    case '3D000': return { why: message, remedy: 'create the database (createdb NAME) or fix its name in the URL' };
    case '42501': return { why: message, remedy: 'grant the role CREATE on the database (or its public schema), or connect as the database owner' };
    case '57P03': case '53300': return { why: message, remedy: 'the server is starting, stopping or full: try again shortly' };
  }
  if (/timeout|terminated unexpectedly/i.test(message)) return { why: message, remedy: noAnswer };
  if (/\bSSL\b/.test(message)) return { why: message, remedy: 'set sslmode in the URL to what the server supports' };
  return undefined;
}

/** SQLite error codes from opening the file that mean the file or its directory, not this program. */
const SQLITE_ENVIRONMENT = new Set(['SQLITE_CANTOPEN', 'SQLITE_READONLY', 'SQLITE_PERM', 'SQLITE_NOTADB', 'SQLITE_FULL', 'SQLITE_CORRUPT']);

/** SqliteStore, imported on first use: better-sqlite3 is an optional dependency (analyze and PostgreSQL need none). */
async function loadSqlite(): Promise<typeof import('./sqlite.js').SqliteStore> {
  try {
    return (await import('./sqlite.js')).SqliteStore;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes('better-sqlite3')) {
      throw new InputError('SQLITE_MISSING', SQLITE_MISSING_MESSAGE, undefined, { cause: err });
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
      const where = `PostgreSQL at ${redactDatabaseUrl(options.databaseUrl)}: cannot open the database`;
      const problem = postgresProblem(err);
      if (problem !== undefined) throw new ConfigError('collector.databaseUrl', `${where}: ${problem.why}; ${problem.remedy} (--database-url, DATABASE_URL)`, { cause: err });
      throw new Error(`${where}: ${errorText(err)}`, { cause: err });
    }
    return store;
  }
  const Sqlite = await loadSqlite();
  const sqliteProblem = (err: unknown): unknown => {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' || !SQLITE_ENVIRONMENT.has(code)) return err;
    return new ConfigError('dataDir', `SQLite database ${options.sqlitePath}: ${errorText(err)}; ` +
      'point --data-dir (DATA_DIR) at a directory this user may write, or move the damaged file away', { cause: err });
  };
  let store: InstanceType<typeof Sqlite>;
  try {
    store = new Sqlite(options.sqlitePath, options.onCheckpointError ? { onCheckpointError: options.onCheckpointError } : {});
  } catch (err) {
    throw sqliteProblem(err);
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw sqliteProblem(err);
  }
  return store;
}
