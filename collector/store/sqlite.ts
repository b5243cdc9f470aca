/**
 * The SQLite store (better-sqlite3): one file, one collector. Calls are
 * synchronous and short; the async methods only fit the Store contract.
 * Structure mirrors postgres.ts; what both do alike lives in shared.ts.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { FindingSeverity } from '../../common/report.js';
import { SCHEMA_MIGRATIONS_TABLE, pendingMigrations } from './migrations.js';
import {
  FINDING_COLUMNS, JOB_COLUMNS, SENSOR_COLUMNS, WINDOW_COLUMNS, captureJob, checkLimit, findingRows, findingsPage, findingsSql,
  jobPatch, jobValues, normalizeTime, sensorRecord, sensorUpdates, severityCounts, storedFinding, storedWindow, windowRows,
  type Dialect, type FindingDbRow, type JobDbRow, type SensorDbRow, type SensorUpdate, type WindowDbRow,
} from './shared.js';
import type { CaptureJob, FindingQuery, IngestBatch, IngestResult, Page, SensorRecord, Store, StoredFinding, StoredWindow } from './types.js';
import type { CheckpointError, CheckpointWorkerData } from './sqlite-checkpoint.js';

export interface SqliteStoreOptions {
  /** Wall clock for last_seen (tests move it). */
  now?: () => Date;
  /** How long a statement waits for another connection's lock (ms). */
  busyTimeoutMs?: number;
  /** How often the background thread checkpoints the write-ahead log (ms); 0: SQLite checkpoints inline, after commits. */
  checkpointIntervalMs?: number;
  /** A background checkpoint failed, or its thread ended: the writer then checkpoints inline. */
  onCheckpointError?: (message: string) => void;
}

/** The writer's own checkpoint threshold (pages) while the background thread runs: only if it falls behind (~64 MB of log). */
const FALLBACK_AUTOCHECKPOINT_PAGES = 16_384;
/** SQLite's default threshold, restored when the background thread is gone. */
const INLINE_AUTOCHECKPOINT_PAGES = 1000;

const DIALECT: Dialect = {
  param: () => '?',
  time: () => '?',
  contains: (haystack, needle) => `instr(${haystack}, ${needle}) > 0`,
};

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** One: SQLite has a single writer, and a write here blocks the event loop anyway. */
  readonly writers = 1;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly statements = new Map<string, Database.Statement>();
  private checkpointer: Worker | undefined;

  constructor(readonly path: string, options: SqliteStoreOptions = {}) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    const busyTimeoutMs = Math.trunc(options.busyTimeoutMs ?? 5000);
    this.db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // Off by default in SQLite; capture_reports relies on ON DELETE CASCADE.
    this.db.pragma('foreign_keys = ON');
    this.now = options.now ?? (() => new Date());
    const intervalMs = options.checkpointIntervalMs ?? 250;
    if (intervalMs > 0 && !this.db.memory) this.startCheckpointer({ path: this.db.name, intervalMs, busyTimeoutMs }, options.onCheckpointError ?? (() => {}));
  }

  private startCheckpointer(data: CheckpointWorkerData, onError: (message: string) => void): void {
    const worker = new Worker(new URL('./sqlite-checkpoint.js', import.meta.url), { workerData: data });
    worker.on('message', (m: CheckpointError) => onError(m.error));
    // Gone (it failed to start or crashed): the writer checkpoints inline again, as SQLite does by default.
    const gone = (err?: Error): void => {
      if (this.checkpointer !== worker) return;
      this.checkpointer = undefined;
      if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${INLINE_AUTOCHECKPOINT_PAGES}`);
      onError(err ? err.message : 'checkpoint thread exited');
    };
    worker.once('error', gone);
    worker.once('exit', () => gone());
    worker.unref(); // after the listeners: it must not keep the process alive
    this.checkpointer = worker;
    this.db.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT_PAGES}`);
  }

  async migrate(): Promise<void> {
    this.db.exec(SCHEMA_MIGRATIONS_TABLE.sqlite);
    for (const m of pendingMigrations('sqlite', this.appliedVersions())) {
      // IMMEDIATE takes the write lock first, so a second process re-checks after the first committed.
      this.db.transaction(() => {
        if (this.appliedVersions().includes(m.version)) return;
        for (const sql of m.statements) this.db.exec(sql);
        this.stmt('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, normalizeTime(this.now().toISOString()));
      }).immediate();
    }
  }

  /** Statements compiled once per text (better-sqlite3 does not cache them). */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  private appliedVersions(): number[] {
    return this.stmt('SELECT version FROM schema_migrations').pluck().all() as number[];
  }

  async ingest(batch: IngestBatch): Promise<IngestResult> {
    const windows = windowRows(batch.windows);
    const findings = findingRows(batch.findings);
    const now = normalizeTime(this.now().toISOString());
    const updates = sensorUpdates(batch, now);
    const insertWindow = this.stmt(
      'INSERT INTO windows (id, sensor, source, start_ts, end_ts, summary) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
    );
    const insertFinding = this.stmt(
      'INSERT INTO findings (id, sensor, source, type, severity, window_start, window_end, finding, ips) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
    );
    const inserted = this.db.transaction(() => {
      let n = 0;
      for (const w of windows) n += insertWindow.run(w.id, w.sensor, w.source, w.startTs, w.endTs, w.summary).changes;
      for (const f of findings) {
        n += insertFinding.run(f.id, f.sensor, f.source, f.type, f.severity, f.windowStart, f.windowEnd, f.finding, f.ips).changes;
      }
      for (const u of updates) this.updateSensor(u, now);
      return n;
    }).immediate();
    return { inserted, duplicates: windows.length + findings.length - inserted };
  }

  private updateSensor(u: SensorUpdate, now: string): void {
    // Wall clock never goes backwards (a collector's clock may step back).
    this.stmt(`INSERT INTO sensors (id, version, source_kind, source_name, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET last_seen = max(sensors.last_seen, excluded.last_seen)`)
      .run(u.id, u.version, u.source.kind, u.source.name, now, now);
    if (u.status) {
      this.stmt(`UPDATE sensors SET version = ?, source_kind = ?, source_name = ?, last_status = ?, last_status_time = ?, last_heartbeat = ?
        WHERE id = ? AND (last_status_time IS NULL OR last_status_time <= ?)`)
        .run(u.version, u.source.kind, u.source.name, JSON.stringify(u.status.message), u.status.time, u.status.heartbeat, u.id, u.status.time);
    }
    if (u.window) {
      this.stmt(`UPDATE sensors SET last_health_score = ?, last_window_start = ?
        WHERE id = ? AND (last_window_start IS NULL OR last_window_start <= ?)`)
        .run(u.window.healthScore, u.window.start, u.id, u.window.start);
    }
  }

  async sensors(): Promise<SensorRecord[]> {
    return (this.stmt(`SELECT ${SENSOR_COLUMNS} FROM sensors ORDER BY id`).all() as SensorDbRow[]).map(sensorRecord);
  }

  async sensor(id: string): Promise<SensorRecord | null> {
    const row = this.stmt(`SELECT ${SENSOR_COLUMNS} FROM sensors WHERE id = ?`).get(id) as SensorDbRow | undefined;
    return row ? sensorRecord(row) : null;
  }

  async windows(sensor: string, from: string, to: string, limit: number): Promise<StoredWindow[]> {
    const rows = this.stmt(`SELECT ${WINDOW_COLUMNS} FROM windows WHERE sensor = ? AND start_ts >= ? AND start_ts < ? ORDER BY start_ts, id LIMIT ?`)
      .all(sensor, normalizeTime(from), normalizeTime(to), checkLimit(limit)) as WindowDbRow[];
    return rows.map(storedWindow);
  }

  async findingsInRange(sensor: string, from: string, to: string, limit: number): Promise<StoredFinding[]> {
    const rows = this.stmt(`SELECT ${FINDING_COLUMNS} FROM findings WHERE sensor = ? AND window_start >= ? AND window_start < ? ORDER BY window_start, id LIMIT ?`)
      .all(sensor, normalizeTime(from), normalizeTime(to), checkLimit(limit)) as FindingDbRow[];
    return rows.map(storedFinding);
  }

  async findings(query: FindingQuery): Promise<Page<StoredFinding>> {
    const { sql, params, limit } = findingsSql(query, DIALECT);
    return findingsPage(this.stmt(sql).all(...params) as FindingDbRow[], limit);
  }

  async findingCounts(from: string): Promise<Record<FindingSeverity, number>> {
    const rows = this.stmt('SELECT severity, count(*) AS n FROM findings WHERE window_start >= ? GROUP BY severity').all(normalizeTime(from));
    return severityCounts(rows as Array<{ severity: string; n: number }>);
  }

  async createJob(job: CaptureJob): Promise<void> {
    this.stmt(`INSERT INTO capture_jobs (${JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...jobValues(job));
  }

  async updateJob(id: string, patch: Partial<Omit<CaptureJob, 'id' | 'createdAt'>>): Promise<void> {
    const set = jobPatch(patch);
    if (!set.length) return;
    this.stmt(`UPDATE capture_jobs SET ${set.map((s) => `${s.column} = ?`).join(', ')} WHERE id = ?`).run(...set.map((s) => s.value), id);
  }

  async job(id: string): Promise<CaptureJob | null> {
    const row = this.stmt(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE id = ?`).get(id) as JobDbRow | undefined;
    return row ? captureJob(row) : null;
  }

  async saveReport(jobId: string, reportJson: string): Promise<void> {
    this.stmt('INSERT INTO capture_reports (job_id, report) VALUES (?, ?) ON CONFLICT (job_id) DO UPDATE SET report = excluded.report').run(jobId, reportJson);
  }

  async report(jobId: string): Promise<string | null> {
    const report = this.stmt('SELECT report FROM capture_reports WHERE job_id = ?').pluck().get(jobId) as string | undefined;
    return report ?? null;
  }

  async deleteJob(id: string): Promise<boolean> {
    return this.stmt('DELETE FROM capture_jobs WHERE id = ?').run(id).changes > 0;
  }

  async expiredJobs(now: string, limit: number): Promise<CaptureJob[]> {
    const rows = this.stmt(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?`)
      .all(normalizeTime(now), checkLimit(limit)) as JobDbRow[];
    return rows.map(captureJob);
  }

  async unfinishedJobs(): Promise<CaptureJob[]> {
    const rows = this.stmt(`SELECT ${JOB_COLUMNS} FROM capture_jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id`).all() as JobDbRow[];
    return rows.map(captureJob);
  }

  async deleteOlderThan(before: string, limit: number): Promise<number> {
    const ms = Date.parse(normalizeTime(before));
    checkLimit(limit);
    // One short statement per table, not one transaction: ingest gets the lock between them.
    const windows = this.stmt('DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE received_ms < ? LIMIT ?)').run(ms, limit).changes;
    const findings = this.stmt('DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE received_ms < ? LIMIT ?)').run(ms, limit).changes;
    return windows + findings;
  }

  async deleteSensorsSeenBefore(before: string, limit: number): Promise<string[]> {
    const rows = this.stmt('DELETE FROM sensors WHERE id IN (SELECT id FROM sensors WHERE last_seen < ? ORDER BY last_seen LIMIT ?) RETURNING id')
      .all(normalizeTime(before), checkLimit(limit)) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async ping(): Promise<boolean> {
    try {
      return this.stmt('SELECT 1').pluck().get() === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    const worker = this.checkpointer;
    if (worker) {
      this.checkpointer = undefined;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    }
    // Last connection out: SQLite checkpoints and removes the log.
    if (this.db.open) this.db.close();
  }
}
