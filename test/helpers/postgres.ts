/**
 * Throwaway PostgreSQL databases for tests, on the server named by
 * PCAP_ANALYZER_TEST_PG_ADMIN (a URL of a role that may CREATE DATABASE;
 * default: the local server as `postgres`). Tests skip with the reason
 * postgresAvailable() gives when there is no such server.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { redactDatabaseUrl } from '../../collector/store/index.js';
import { errorText } from '../../collector/store/shared.js';

export const PG_ADMIN_URL = process.env['PCAP_ANALYZER_TEST_PG_ADMIN'] || 'postgres://postgres@127.0.0.1:5432/postgres';

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => {}); // a server going away between queries surfaces as the query's rejection
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

let availability: Promise<string | false> | undefined;

/** False when tests can create databases, else why not (for `{ skip }`). */
export function postgresAvailable(): Promise<string | false> {
  availability ??= withAdmin(async (client) => {
    const { rows } = await client.query<{ ok: boolean }>('SELECT rolcreatedb OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user');
    return rows[0]?.ok ? false : `PostgreSQL role at ${redactDatabaseUrl(PG_ADMIN_URL)} may not create databases`;
  }).catch((err: unknown) => `PostgreSQL not available at ${redactDatabaseUrl(PG_ADMIN_URL)} (set PCAP_ANALYZER_TEST_PG_ADMIN): ${errorText(err)}`);
  return availability;
}

export interface TestDatabase {
  /** URL of the new, empty database (same role as the admin URL). */
  url: string;
  /** Drops it, closing whatever connections are still open. */
  drop(): Promise<void>;
}

/** A fresh, uniquely named database: tests in parallel processes never share one. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `pa_test_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withAdmin(async (client) => { await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`); }),
  };
}
