/**
 * The collector's storage contract. Two implementations: SQLite (better-sqlite3,
 * one collector) and PostgreSQL (pg, several collectors sharing one database).
 * Writes are idempotent on message ids, so a redelivered message is a no-op.
 * Times are ISO-8601 strings in UTC on this boundary.
 */
import type { Finding, FindingSeverity, WindowSummary } from '../../common/report.js';
import type { FindingMessage, SourceInfo, StatusMessage, WindowMessage } from '../../common/wire.js';

/** One committed batch of what the JetStream consumer fetched. */
export interface IngestBatch {
  windows: WindowMessage[];
  findings: FindingMessage[];
  statuses: StatusMessage[];
  /**
   * Sensors' times later than this (ISO, the collector's now + allowed clock skew) count as
   * this when choosing a sensor's latest status and window, so a message dated far ahead
   * cannot stay "latest" for ever. Absent: no bound.
   */
  latest?: string;
}

export interface IngestResult {
  /** Rows newly written (windows + findings; statuses update the sensor). */
  inserted: number;
  /** Messages whose id was already stored. */
  duplicates: number;
}

export interface SensorRecord {
  id: string;
  version: string;
  source: SourceInfo;
  firstSeen: string;
  /** Time the collector last received anything from the sensor (its own wall clock; retention goes by it). */
  lastSeen: string;
  /**
   * The stored (latest) status's own time, clamped to when it arrived: a sensor's clock ahead of
   * the collector's cannot date a heartbeat later than its arrival. Null before the first status.
   */
  lastHeartbeat: string | null;
  /** The last status message, as sent. */
  lastStatus: StatusMessage | null;
  /** Health score of the sensor's latest window (null when unknown). */
  lastHealthScore: number | null;
  /** Start of the sensor's newest window (packet time, millisecond precision; null before its first window). */
  lastWindowStart: string | null;
}

export interface StoredWindow {
  sensor: string;
  id: string;
  source: SourceInfo;
  window: WindowSummary;
}

export interface StoredFinding {
  sensor: string;
  id: string;
  source: SourceInfo;
  finding: Finding;
}

export interface FindingQuery {
  sensor?: string;
  type?: string;
  severity?: FindingSeverity;
  /** Findings whose flow, host or evidence names this address. */
  ip?: string;
  /** Window start at or after `from`, before `to`. */
  from?: string;
  to?: string;
  /** 1..1000. */
  limit: number;
  /** Opaque cursor from the previous page (keyset pagination: newest first). */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** Null on the last page. */
  nextCursor: string | null;
}

export type CaptureJobStatus = 'queued' | 'running' | 'done' | 'failed';

export interface CaptureJob {
  id: string;
  status: CaptureJobStatus;
  /** Name the client gave (Content-Disposition / X-Filename), sanitized; may be empty. */
  filename: string;
  sizeBytes: number;
  /** 0..100. */
  progress: number;
  /** Why it failed (the reader's one-line reason), when failed. */
  error: string | null;
  /** What the reader noticed in a capture it still analyzed (cut short, for one), as `analyze` prints them. */
  warnings: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** The job and its report are removed after this. */
  expiresAt: string;
}

export interface Store {
  /** Which backend, for /api/health and logs. */
  readonly kind: 'sqlite' | 'postgres';
  /** Ingest batches that may be written at once (their rows and sensor updates must commute). */
  readonly writers: number;
  /** Applies pending schema migrations (versioned, each once); safe to run from several collectors at once. */
  migrate(): Promise<void>;
  /** Writes a batch in one transaction; ids already stored are skipped. */
  ingest(batch: IngestBatch): Promise<IngestResult>;
  sensors(): Promise<SensorRecord[]>;
  sensor(id: string): Promise<SensorRecord | null>;
  /** Windows of a sensor with start in [from, to), oldest first, at most `limit`. */
  windows(sensor: string, from: string, to: string, limit: number): Promise<StoredWindow[]>;
  /** Findings of a sensor with window start in [from, to), oldest first, at most `limit`. */
  findingsInRange(sensor: string, from: string, to: string, limit: number): Promise<StoredFinding[]>;
  findings(query: FindingQuery): Promise<Page<StoredFinding>>;
  /** Counts of findings by severity since `from` (dashboard). */
  findingCounts(from: string): Promise<Record<FindingSeverity, number>>;

  createJob(job: CaptureJob): Promise<void>;
  updateJob(id: string, patch: Partial<Omit<CaptureJob, 'id' | 'createdAt'>>): Promise<void>;
  job(id: string): Promise<CaptureJob | null>;
  /** Stores the finished report (JSON text of pcap-analyzer/report@1). */
  saveReport(jobId: string, reportJson: string): Promise<void>;
  report(jobId: string): Promise<string | null>;
  /** Removes a job and its report; false when there was none. */
  deleteJob(id: string): Promise<boolean>;
  /** Jobs expired at `now`, at most `limit` (oldest first). */
  expiredJobs(now: string, limit: number): Promise<CaptureJob[]>;
  /** Jobs left queued or running by a collector that stopped (to fail or resume at start). */
  unfinishedJobs(): Promise<CaptureJob[]>;

  /** Deletes at most `limit` windows and `limit` findings received (stored) before `before`; returns rows deleted. */
  deleteOlderThan(before: string, limit: number): Promise<number>;
  /** Deletes at most `limit` sensors last seen before `before` (retention); returns their ids. */
  deleteSensorsSeenBefore(before: string, limit: number): Promise<string[]>;
  /** A cheap round trip to the database. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
