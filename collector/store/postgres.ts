/**
 * The PostgreSQL store (pg.Pool): several collectors may share the database.
 * Connection errors reject the method (the caller retries); ping() answers
 * false instead. Structure mirrors sqlite.ts; what both do alike lives in shared.ts.
 */
import pg from 'pg';
import type { FindingSeverity } from '../../common/report.js';
import { MIGRATION_LOCK_KEY, SCHEMA_MIGRATIONS_TABLE, pendingMigrations } from './migrations.js';
import {
  FINDING_COLUMNS, JOB_COLUMNS, SENSOR_COLUMNS, WINDOW_COLUMNS, captureJob, checkLimit, findingRows, findingsPage, findingsSql,
  jobPatch, jobValues, normalizeTime, sensorRecord, sensorUpdates, severityCounts, storedFinding, storedWindow, windowRows,
  type Dialect, type FindingDbRow, type JobDbRow, type SensorDbRow, type SensorUpdate, type WindowDbRow,
} from './shared.js';
import type { CaptureJob, FindingQuery, IngestBatch, IngestResult, Page, SensorRecord, Store, StoredFinding, StoredWindow } from './types.js';

export interface PostgresStoreOptions {
  /** Wall clock for last_seen (tests move it). */
  now?: () => Date;
  /** Pool size. */
  maxConnections?: number;
  /** How long getting a connection may take before the method rejects (ms). */
  connectTimeoutMs?: number;
}

const DIALECT: Dialect = {
  param: (n) => `$${n}`,
  // Explicit: in row comparisons the parameter's type is not inferred from the column.
  time: (n) => `$${n}::timestamptz`,
  contains: (haystack, needle) => `strpos(${haystack}, ${needle}) > 0`,
};

type Queryable = Pick<pg.PoolClient, 'query'>;

/** Rows per INSERT: well under PostgreSQL's 65535 parameters per statement. */
const INSERT_CHUNK = 1000;

/**
 * Multi-row INSERT ... ON CONFLICT DO NOTHING; returns rows inserted. Plain
 * parameters, not unnest() over arrays: node-postgres escapes array literals
 * in JavaScript, which made a batch of 1000 windows (10 MB) ~5x slower.
 * Parameters take their types from the target columns (ISO text -> timestamptz).
 */
async function insertRows(c: Queryable, table: string, columns: readonly string[], rows: ReadonlyArray<readonly string[]>): Promise<number> {
  let inserted = 0;
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK);
    const values = chunk.map((_, r) => `(${columns.map((_, k) => `$${r * columns.length + k + 1}`).join(', ')})`);
    const result = await c.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')} ON CONFLICT (id) DO NOTHING`, chunk.flat());
    inserted += result.rowCount ?? 0;
  }
  return inserted;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /**
   * Two: one batch's rows go in while the other's COMMIT waits for its WAL flush.
   * Safe because rows and sensor rows are locked in id order (no deadlock) and
   * every sensor update keeps the newer value whatever the commit order.
   */
  readonly writers = 2;
  private readonly pool: pg.Pool;
  private readonly now: () => Date;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    this.pool = new pg.Pool({
      connectionString,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'pcap-analyzer-collector',
    });
    // An idle connection dropped by the server must not crash the process; the next checkout connects anew.
    this.pool.on('error', () => {});
    this.now = options.now ?? (() => new Date());
  }

  /** Runs `fn` in one transaction on one pooled connection. */
  private async transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A failed ROLLBACK means the connection itself is gone: drop it from the pool.
      await client.query('ROLLBACK').catch((e: unknown) => { broken = e instanceof Error ? e : new Error(String(e)); });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  private async rows<R>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query(sql, params)).rows as R[];
  }

  async migrate(): Promise<void> {
    // The advisory lock serialises collectors starting together (CREATE TABLE IF NOT EXISTS alone races).
    const lock = (c: Queryable): Promise<unknown> => c.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    const applied = async (c: Queryable): Promise<number[]> =>
      (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version);
    const pending = await this.transaction(async (c) => {
      await lock(c);
      await c.query(SCHEMA_MIGRATIONS_TABLE.postgres);
      return pendingMigrations('postgres', await applied(c));
    });
    for (const m of pending) {
      await this.transaction(async (c) => {
        await lock(c);
        if ((await applied(c)).includes(m.version)) return;
        for (const sql of m.statements) await c.query(sql);
        await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2::timestamptz)', [m.version, normalizeTime(this.now().toISOString())]);
      });
    }
  }

  async ingest(batch: IngestBatch): Promise<IngestResult> {
    const windows = windowRows(batch.windows);
    const findings = findingRows(batch.findings);
    const now = normalizeTime(this.now().toISOString());
    const updates = sensorUpdates(batch, now);
    const inserted = await this.transaction(async (c) => {
      let n = 0;
      n += await insertRows(c, 'windows', ['id', 'sensor', 'source', 'start_ts', 'end_ts', 'summary'],
        windows.map((w) => [w.id, w.sensor, w.source, w.startTs, w.endTs, w.summary]));
      n += await insertRows(c, 'findings', ['id', 'sensor', 'source', 'type', 'severity', 'window_start', 'window_end', 'finding', 'ips'],
        findings.map((f) => [f.id, f.sensor, f.source, f.type, f.severity, f.windowStart, f.windowEnd, f.finding, f.ips]));
      for (const u of updates) await this.updateSensor(c, u, now);
      return n;
    });
    return { inserted, duplicates: windows.length + findings.length - inserted };
  }

  private async updateSensor(c: Queryable, u: SensorUpdate, now: string): Promise<void> {
    // Wall clock never goes backwards (collectors' clocks differ and may step back).
    await c.query(`INSERT INTO sensors (id, version, source_kind, source_name, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5::timestamptz, $5::timestamptz)
      ON CONFLICT (id) DO UPDATE SET last_seen = GREATEST(sensors.last_seen, EXCLUDED.last_seen)`,
    [u.id, u.version, u.source.kind, u.source.name, now]);
    if (u.status) {
      await c.query(`UPDATE sensors SET version = $1, source_kind = $2, source_name = $3, last_status = $4, last_status_time = $5::timestamptz,
        last_heartbeat = $7::timestamptz
        WHERE id = $6 AND (last_status_time IS NULL OR last_status_time <= $5::timestamptz)`,
      [u.version, u.source.kind, u.source.name, JSON.stringify(u.status.message), u.status.time, u.id, u.status.heartbeat]);
    }
    if (u.window) {
      await c.query(`UPDATE sensors SET last_health_score = $1, last_window_start = $2::timestamptz
        WHERE id = $3 AND (last_window_start IS NULL OR last_window_start <= $2::timestamptz)`,
      [u.window.healthScore, u.window.start, u.id]);
    }
  }

  async sensors(): Promise<SensorRecord[]> {
    return (await this.rows<SensorDbRow>(`SELECT ${SENSOR_COLUMNS} FROM sensors ORDER BY id`)).map(sensorRecord);
  }

  async sensor(id: string): Promise<SensorRecord | null> {
    const [row] = await this.rows<SensorDbRow>(`SELECT ${SENSOR_COLUMNS} FROM sensors WHERE id = $1`, [id]);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    return row ? sensorRecord(row) : null;
  }

  async windows(sensor: string, from: string, to: string, limit: number): Promise<StoredWindow[]> {
    const rows = await this.rows<WindowDbRow>(`SELECT ${WINDOW_COLUMNS} FROM windows WHERE sensor = $1 AND start_ts >= $2 AND start_ts < $3 ORDER BY start_ts, id LIMIT $4`,
      [sensor, normalizeTime(from), normalizeTime(to), checkLimit(limit)]);
    return rows.map(storedWindow);
  }

  async findingsInRange(sensor: string, from: string, to: string, limit: number): Promise<StoredFinding[]> {
    const rows = await this.rows<FindingDbRow>(`SELECT ${FINDING_COLUMNS} FROM findings WHERE sensor = $1 AND window_start >= $2 AND window_start < $3 ORDER BY window_start, id LIMIT $4`,
      [sensor, normalizeTime(from), normalizeTime(to), checkLimit(limit)]);
    return rows.map(storedFinding);
  }

  async findings(query: FindingQuery): Promise<Page<StoredFinding>> {
    const { sql, params, limit } = findingsSql(query, DIALECT);
    return findingsPage(await this.rows<FindingDbRow>(sql, params), limit);
  }

  async findingCounts(from: string): Promise<Record<FindingSeverity, number>> {
    // count(*) is bigint: text in node-postgres, converted by severityCounts.
    const rows = await this.rows<{ severity: string; n: string }>('SELECT severity, count(*) AS n FROM findings WHERE window_start >= $1 GROUP BY severity', [normalizeTime(from)]);
    return severityCounts(rows);
  }

  async createJob(job: CaptureJob): Promise<void> {
    await this.pool.query(`INSERT INTO capture_jobs (${JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, jobValues(job));
  }

  async updateJob(id: string, patch: Partial<Omit<CaptureJob, 'id' | 'createdAt'>>): Promise<void> {
    const set = jobPatch(patch);
    if (!set.length) return;
    await this.pool.query(`UPDATE capture_jobs SET ${set.map((s, i) => `${s.column} = $${i + 1}`).join(', ')} WHERE id = $${set.length + 1}`,
      [...set.map((s) => s.value), id]);
  }

  async job(id: string): Promise<CaptureJob | null> {
    const [row] = await this.rows<JobDbRow>(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE id = $1`, [id]);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    return row ? captureJob(row) : null;
  }

  async saveReport(jobId: string, reportJson: string): Promise<void> {
    await this.pool.query('INSERT INTO capture_reports (job_id, report) VALUES ($1, $2) ON CONFLICT (job_id) DO UPDATE SET report = EXCLUDED.report', [jobId, reportJson]);
  }

  async report(jobId: string): Promise<string | null> {
    const [row] = await this.rows<{ report: string }>('SELECT report FROM capture_reports WHERE job_id = $1', [jobId]);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    return row ? row.report : null;
  }

  async deleteJob(id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM capture_jobs WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async expiredJobs(now: string, limit: number): Promise<CaptureJob[]> {
    const rows = await this.rows<JobDbRow>(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2`,
      [normalizeTime(now), checkLimit(limit)]);
    return rows.map(captureJob);
  }

  async unfinishedJobs(): Promise<CaptureJob[]> {
    const rows = await this.rows<JobDbRow>(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id`);
    return rows.map(captureJob);
  }

  async deleteOlderThan(before: string, limit: number): Promise<number> {
    const params = [normalizeTime(before), checkLimit(limit)];
    // One short statement per table. SKIP LOCKED: collectors pruning at once take different rows instead of waiting.
    const windows = await this.pool.query('DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)', params);
    const findings = await this.pool.query('DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)', params);
    return (windows.rowCount ?? 0) + (findings.rowCount ?? 0);
  }

  async deleteSensorsSeenBefore(before: string, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      'DELETE FROM sensors WHERE id IN (SELECT id FROM sensors WHERE last_seen < $1 ORDER BY last_seen LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id',
      [normalizeTime(before), checkLimit(limit)]);
    return rows.map((r) => r.id);
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}
