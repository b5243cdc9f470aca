/**
 * Versioned schema migrations, one ordered list per backend. Each version is
 * applied once, in its own transaction, and recorded in `schema_migrations`.
 * Never edit a released migration: add a new version (collectors that share a
 * PostgreSQL database may run different releases during an upgrade).
 *
 * Times: SQLite keeps canonical text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, see
 * shared.ts), which compares correctly as text; PostgreSQL uses timestamptz.
 * JSON is stored as text in both (it is only ever read back whole).
 * PostgreSQL text keys use COLLATE "C": byte order, as in SQLite, so keyset
 * pagination by id orders the same on both and needs no locale.
 */

export interface Migration {
  version: number;
  description: string;
  statements: readonly string[];
}

export type Backend = 'sqlite' | 'postgres';

export const SCHEMA_MIGRATIONS_TABLE: Record<Backend, string> = {
  sqlite: 'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
  postgres: 'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
};

/** Key of the PostgreSQL advisory lock that serialises migrating collectors ('pcapmigr'). */
export const MIGRATION_LOCK_KEY = '8098991209931630962';

const SQLITE: readonly Migration[] = [
  {
    version: 1,
    description: 'sensors, windows, findings, capture jobs and reports',
    statements: [
      `CREATE TABLE sensors (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        source_name TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        last_status TEXT,
        -- the stored status's own time and the latest window's start: late
        -- redeliveries must not replace newer values
        last_status_time TEXT,
        last_health_score REAL,
        last_window_start TEXT
      )`,
      `CREATE TABLE windows (
        id TEXT PRIMARY KEY,
        sensor TEXT NOT NULL,
        source TEXT NOT NULL,
        start_ts TEXT NOT NULL,
        end_ts TEXT NOT NULL,
        summary TEXT NOT NULL,
        received_ms INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
      )`,
      'CREATE INDEX windows_sensor_start ON windows (sensor, start_ts)',
      // Retention goes by arrival, not packet time: a replay of an old capture is new data.
      'CREATE INDEX windows_received ON windows (received_ms)',
      `CREATE TABLE findings (
        id TEXT PRIMARY KEY,
        sensor TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        window_start TEXT NOT NULL,
        window_end TEXT NOT NULL,
        finding TEXT NOT NULL,
        ips TEXT NOT NULL DEFAULT '',
        received_ms INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
      )`,
      'CREATE INDEX findings_received ON findings (received_ms)',
      // id last in each: filtered pages come out of the index already in keyset order.
      'CREATE INDEX findings_sensor_start ON findings (sensor, window_start, id)',
      'CREATE INDEX findings_type_start ON findings (type, window_start, id)',
      'CREATE INDEX findings_severity_start ON findings (severity, window_start, id)',
      'CREATE INDEX findings_start_id ON findings (window_start, id)',
      `CREATE TABLE capture_jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        filename TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        progress REAL NOT NULL,
        error TEXT,
        warnings TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        expires_at TEXT NOT NULL
      )`,
      'CREATE INDEX capture_jobs_expires ON capture_jobs (expires_at)',
      `CREATE TABLE capture_reports (
        job_id TEXT PRIMARY KEY REFERENCES capture_jobs (id) ON DELETE CASCADE,
        report TEXT NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    description: 'sensors.last_heartbeat: the stored status\'s own time, no later than its arrival (liveness)',
    statements: [
      'ALTER TABLE sensors ADD COLUMN last_heartbeat TEXT',
      // Rows from before: the status time, bounded by the last arrival of anything from the sensor.
      'UPDATE sensors SET last_heartbeat = min(last_status_time, last_seen) WHERE last_status_time IS NOT NULL',
    ],
  },
];

const POSTGRES: readonly Migration[] = [
  {
    version: 1,
    description: 'sensors, windows, findings, capture jobs and reports',
    statements: [
      `CREATE TABLE sensors (
        id text COLLATE "C" PRIMARY KEY,
        version text NOT NULL,
        source_kind text NOT NULL,
        source_name text NOT NULL,
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        last_status text,
        -- the stored status's own time and the latest window's start: late
        -- redeliveries must not replace newer values
        last_status_time timestamptz,
        last_health_score double precision,
        last_window_start timestamptz
      )`,
      `CREATE TABLE windows (
        id text COLLATE "C" PRIMARY KEY,
        sensor text COLLATE "C" NOT NULL,
        source text NOT NULL,
        start_ts timestamptz NOT NULL,
        end_ts timestamptz NOT NULL,
        summary text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      )`,
      'CREATE INDEX windows_sensor_start ON windows (sensor, start_ts)',
      // Retention goes by arrival, not packet time: a replay of an old capture is new data.
      'CREATE INDEX windows_received ON windows (received_at)',
      `CREATE TABLE findings (
        id text COLLATE "C" PRIMARY KEY,
        sensor text COLLATE "C" NOT NULL,
        source text NOT NULL,
        type text COLLATE "C" NOT NULL,
        severity text COLLATE "C" NOT NULL,
        window_start timestamptz NOT NULL,
        window_end timestamptz NOT NULL,
        finding text NOT NULL,
        ips text NOT NULL DEFAULT '',
        received_at timestamptz NOT NULL DEFAULT now()
      )`,
      'CREATE INDEX findings_received ON findings (received_at)',
      // id last in each: filtered pages come out of the index already in keyset order.
      'CREATE INDEX findings_sensor_start ON findings (sensor, window_start, id)',
      'CREATE INDEX findings_type_start ON findings (type, window_start, id)',
      'CREATE INDEX findings_severity_start ON findings (severity, window_start, id)',
      'CREATE INDEX findings_start_id ON findings (window_start, id)',
      `CREATE TABLE capture_jobs (
        id text COLLATE "C" PRIMARY KEY,
        status text NOT NULL,
        filename text NOT NULL,
        size_bytes bigint NOT NULL,
        progress double precision NOT NULL,
        error text,
        warnings text NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL,
        started_at timestamptz,
        finished_at timestamptz,
        expires_at timestamptz NOT NULL
      )`,
      'CREATE INDEX capture_jobs_expires ON capture_jobs (expires_at)',
      `CREATE TABLE capture_reports (
        job_id text COLLATE "C" PRIMARY KEY REFERENCES capture_jobs (id) ON DELETE CASCADE,
        report text NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    description: 'lz4 compression of the JSON columns where the server has it',
    // A window's JSON is ~25 KB, so each is compressed on its way to TOAST: with the default
    // pglz that was about a third of a batch's write time (a batch of 60 windows and 540
    // findings: 57 -> 39 ms). lz4 needs PostgreSQL 14 built with it; elsewhere nothing changes.
    // New rows only: existing ones keep their compression until rewritten.
    statements: [
      `DO $$ BEGIN
        IF current_setting('server_version_num')::int >= 140000 THEN
          EXECUTE 'ALTER TABLE windows ALTER COLUMN summary SET COMPRESSION lz4';
          EXECUTE 'ALTER TABLE findings ALTER COLUMN finding SET COMPRESSION lz4';
          EXECUTE 'ALTER TABLE capture_reports ALTER COLUMN report SET COMPRESSION lz4';
        END IF;
      EXCEPTION WHEN feature_not_supported THEN NULL;
      END $$`,
    ],
  },
  {
    version: 3,
    description: 'sensors.last_heartbeat: the stored status\'s own time, no later than its arrival (liveness)',
    statements: [
      'ALTER TABLE sensors ADD COLUMN last_heartbeat timestamptz',
      // Rows from before: the status time, bounded by the last arrival of anything from the sensor.
      'UPDATE sensors SET last_heartbeat = LEAST(last_status_time, last_seen) WHERE last_status_time IS NOT NULL',
    ],
  },
];

export const MIGRATIONS: Record<Backend, readonly Migration[]> = { sqlite: SQLITE, postgres: POSTGRES };

/** Migrations not yet in `applied`, in version order. */
export function pendingMigrations(backend: Backend, applied: Iterable<number>): Migration[] {
  const done = new Set(applied);
  return [...MIGRATIONS[backend]].sort((a, b) => a.version - b.version).filter((m) => !done.has(m.version));
}
