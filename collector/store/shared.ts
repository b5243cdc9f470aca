/**
 * What the SQLite and PostgreSQL stores do identically: time normalisation,
 * row mapping in both directions, the address list behind the `ip` filter,
 * keyset cursors, the findings query and the per-sensor updates of a batch.
 * The backends only differ in SQL dialect and in how they talk to the database.
 */
import { isIP } from 'node:net';
import type { Finding, FindingSeverity, WindowSummary } from '../../common/report.js';
import type { FindingMessage, SourceInfo, StatusMessage, WindowMessage } from '../../common/wire.js';
import type { CaptureJob, CaptureJobStatus, FindingQuery, IngestBatch, SensorRecord, StoredFinding, StoredWindow } from './types.js';

export const SEVERITIES: readonly FindingSeverity[] = ['info', 'warning', 'critical'];
export const MAX_PAGE = 1000;

// ---------------------------------------------------------------- times

/**
 * The bounds of stored times: four-digit years keep the canonical text sortable
 * in SQLite and inside PostgreSQL's timestamptz range. Captures carry garbage
 * timestamps (years past 9999, before 1); those sort at the ends instead of
 * failing a batch. The message JSON keeps the original text.
 */
export const MIN_TIME = '0001-01-01T00:00:00.000000Z';
export const MAX_TIME = '9999-12-31T23:59:59.999999Z';
const MIN_MS = Date.parse(MIN_TIME);
const MAX_MS = Date.parse('9999-12-31T23:59:59Z');

const ISO = /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2})?)?$/;

/**
 * ISO-8601 text of any precision and offset -> `YYYY-MM-DDTHH:MM:SS.ffffffZ`
 * (UTC, microseconds: the precision of window summaries), the one form stored
 * and compared. A missing offset means UTC (the contract's times are UTC).
 * Throws RangeError for text that is not an ISO time.
 */
export function normalizeTime(text: string): string {
  if (isCanonicalTime(text)) return text;
  const m = ISO.exec(text.trim());
  if (!m) throw new RangeError(`invalid time ${JSON.stringify(text)}: expected ISO-8601`);
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const hour = Number(m[4] ?? 0);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const minute = Number(m[5] ?? 0);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const second = Number(m[6] ?? 0);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const micros = Number((m[7] ?? '').slice(0, 6).padEnd(6, '0'));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new RangeError(`invalid time ${JSON.stringify(text)}: field out of range`);
  }
  // Date cannot hold the years of garbage timestamps: clamp before building one.
  if (year > 10000) return MAX_TIME;
  if (year < 0) return MIN_TIME;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // not Date.UTC: it maps years 0..99 to 1900..1999
  if (date.getUTCDate() !== day) throw new RangeError(`invalid time ${JSON.stringify(text)}: no such day`);
  date.setUTCHours(hour, minute, second, 0);
  let ms = date.getTime();
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (m[9]) ms -= (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11] ?? 0)) * 60_000;
  if (ms < MIN_MS) return MIN_TIME;
  if (ms > MAX_MS) return MAX_TIME;
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
}

const CANONICAL = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number written by `digits` ASCII digits of `text` from `at` (checked to be digits by the caller). */
function decimal(text: string, at: number, digits: number): number {
  let v = 0;
  for (let i = at; i < at + digits; i++) v = v * 10 + text.charCodeAt(i) - 48;
  return v;
}

/**
 * Already the stored form, a valid instant (what agents send): normalizeTime's
 * fast path, checked field by field instead of through a Date (a third of its
 * cost per message at ingest).
 */
function isCanonicalTime(text: string): boolean {
  if (text.length !== 27 || !CANONICAL.test(text)) return false;
  const year = decimal(text, 0, 4);
  const month = decimal(text, 5, 2);
  const day = decimal(text, 8, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0) && decimal(text, 11, 2) <= 23 && decimal(text, 14, 2) <= 59 && decimal(text, 17, 2) <= 59;
}

/**
 * For times inside messages: a batch must not fail (and be redelivered forever)
 * over one unparseable time, so it sorts first; the JSON keeps the text.
 */
export function ingestTime(text: unknown): string {
  if (typeof text !== 'string') return MIN_TIME;
  try {
    return normalizeTime(text);
  } catch {
    return MIN_TIME;
  }
}

/**
 * A stored wall-clock time (collector clock, job times) as `Date.toISOString()`
 * text: SQLite gives back the canonical text, PostgreSQL a Date. Millisecond
 * precision, so times written from `toISOString()` round-trip unchanged.
 */
export function wallTime(value: string | Date): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

export function wallTimeOrNull(value: string | Date | null): string | null {
  return value === null ? null : wallTime(value);
}

/** `limit` as a whole number in 1..max, else RangeError (the API validates; this catches bugs). */
export function checkLimit(limit: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new RangeError(`limit must be a whole number in 1..${max}, got ${limit}`);
  return limit;
}

// ---------------------------------------------------------------- addresses

/** An address in one text form (lower case, IPv6 compressed), or null when `text` is not one. */
export function canonicalIp(text: string): string | null {
  const kind = isIP(text);
  if (kind === 4) return text;
  if (kind !== 6) return null;
  // URL's host parser gives RFC 5952 text; zone ids (fe80::1%eth0) are not hosts.
  try {
    return new URL(`http://[${text}]`).hostname.slice(1, -1);
  } catch {
    return text.toLowerCase();
  }
}

/** Address in an `addr`, `addr:port` or `[addr]:port` token. */
function tokenIp(token: string): string | null {
  const direct = canonicalIp(token);
  if (direct) return direct;
  const m = /^\[([^\]]+)\]:\d+$/.exec(token) ?? /^([\d.]+):\d+$/.exec(token);
  return m ? canonicalIp(m[1]!) : null;
}

/**
 * The addresses a finding names, space-separated, for the `ip` filter: its
 * flow's ends, its host, and evidence strings that are addresses. Evidence
 * also carries endpoints (`firstClient: "10.0.0.1:36050"`) and comma lists
 * (`sampleHosts`), so each token of a string counts.
 */
export function findingIps(f: Finding): string {
  const found = new Set<string>();
  const add = (text: string | undefined): void => {
    if (!text) return;
    for (const token of text.split(/[\s,;]+/)) {
      const ip = tokenIp(token);
      if (ip) found.add(ip);
    }
  };
  add(f.flow?.client);
  add(f.flow?.server);
  add(f.host);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  for (const value of Object.values(f.evidence ?? {})) if (typeof value === 'string') add(value);
  return [...found].join(' ');
}

/** The needle to search for in `' ' || ips || ' '`: whole addresses only (10.0.0.1 never matches 10.0.0.10). */
export function ipNeedle(ip: string): string {
  return ` ${canonicalIp(ip.trim()) ?? ip.trim()} `;
}

// ---------------------------------------------------------------- cursors

export interface Cursor { windowStart: string; id: string }

/** Opaque to clients: base64url of the last row's (window start, id). */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.windowStart, c.id])).toString('base64url');
}

export function decodeCursor(text: string): Cursor {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new RangeError('invalid cursor');
  }
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'string' || typeof value[1] !== 'string') throw new RangeError('invalid cursor');
  try {
    return { windowStart: normalizeTime(value[0]), id: value[1] };
  } catch {
    throw new RangeError('invalid cursor'); // callers recognise bad cursors by this message
  }
}

// ---------------------------------------------------------------- rows written

export interface WindowRow { id: string; sensor: string; source: string; startTs: string; endTs: string; summary: string }
export interface FindingRow {
  id: string; sensor: string; source: string; type: string; severity: string;
  windowStart: string; windowEnd: string; finding: string; ips: string;
}

const byId = <T extends { id: string }>(a: T, b: T): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Rows in id order: concurrent writers then take row locks in one order (no PostgreSQL deadlocks). */
export function windowRows(messages: readonly WindowMessage[]): WindowRow[] {
  return messages.map((m) => ({
    id: m.id,
    sensor: m.sensor,
    source: JSON.stringify(m.source),
    startTs: ingestTime(m.window.start),
    endTs: ingestTime(m.window.end),
    summary: JSON.stringify(m.window),
  })).sort(byId);
}

export function findingRows(messages: readonly FindingMessage[]): FindingRow[] {
  return messages.map((m) => ({
    id: m.id,
    sensor: m.sensor,
    source: JSON.stringify(m.source),
    type: m.finding.type,
    severity: m.finding.severity,
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    windowStart: ingestTime(m.finding.window?.start),
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    windowEnd: ingestTime(m.finding.window?.end),
    finding: JSON.stringify(m.finding),
    ips: findingIps(m.finding),
  })).sort(byId);
}

/** What one batch changes in one sensor's row. */
export interface SensorUpdate {
  id: string;
  /** For a new row: the newest status's, else the first message's. */
  version: string;
  source: SourceInfo;
  /**
   * The batch's newest status (by its `time`), applied only if not older than the stored one;
   * `heartbeat`: its time, no later than `now` (when it arrived).
   */
  status: { message: StatusMessage; time: string; heartbeat: string } | null;
  /** The batch's latest window (by start), applied only if not older than the stored one. */
  window: { start: string; healthScore: number | null } | null;
}

/**
 * One update per sensor, in id order (lock order, as for rows). Collapsing a
 * batch first keeps the statement count per sensor, not per message.
 */
export function sensorUpdates(batch: IngestBatch, now: string): SensorUpdate[] {
  const bySensor = new Map<string, SensorUpdate>();
  const entry = (id: string, source: SourceInfo): SensorUpdate => {
    let u = bySensor.get(id);
    if (!u) bySensor.set(id, (u = { id, version: '', source, status: null, window: null }));
    return u;
  };
  const latest = batch.latest === undefined ? MAX_TIME : ingestTime(batch.latest);
  const bounded = (time: string): string => (time > latest ? latest : time);
  for (const m of batch.statuses) {
    const u = entry(m.sensor, m.source);
    const time = bounded(ingestTime(m.time));
    if (!u.status || time >= u.status.time) {
      const sent = ingestTime(m.time);
      u.status = { message: m, time, heartbeat: sent > now ? now : sent };
      u.version = m.version;
      u.source = m.source;
    }
  }
  for (const m of batch.windows) {
    const u = entry(m.sensor, m.source);
    const start = bounded(ingestTime(m.window.start));
    if (!u.window || start >= u.window.start) u.window = { start, healthScore: m.window.healthScore ?? null };
  }
  // A finding also shows the sensor exists (its window may be in another batch).
  for (const m of batch.findings) entry(m.sensor, m.source);
  return [...bySensor.values()].sort(byId);
}

// ---------------------------------------------------------------- rows read

export interface WindowDbRow { id: string; sensor: string; source: string; summary: string }
export interface FindingDbRow { id: string; sensor: string; source: string; finding: string }
export interface SensorDbRow {
  id: string; version: string; source_kind: string; source_name: string;
  first_seen: string | Date; last_seen: string | Date; last_status: string | null; last_health_score: number | null;
  last_window_start: string | Date | null; last_heartbeat: string | Date | null;
}
export interface JobDbRow {
  id: string; status: string; filename: string; size_bytes: number | string; progress: number; error: string | null; warnings: string;
  created_at: string | Date; started_at: string | Date | null; finished_at: string | Date | null; expires_at: string | Date;
}

export const WINDOW_COLUMNS = 'id, sensor, source, summary';
export const FINDING_COLUMNS = 'id, sensor, source, finding';
export const SENSOR_COLUMNS = 'id, version, source_kind, source_name, first_seen, last_seen, last_status, last_health_score, last_window_start, last_heartbeat';
export const JOB_COLUMNS = 'id, status, filename, size_bytes, progress, error, warnings, created_at, started_at, finished_at, expires_at';

export function storedWindow(r: WindowDbRow): StoredWindow {
  return { sensor: r.sensor, id: r.id, source: JSON.parse(r.source) as SourceInfo, window: JSON.parse(r.summary) as WindowSummary };
}

export function storedFinding(r: FindingDbRow): StoredFinding {
  return { sensor: r.sensor, id: r.id, source: JSON.parse(r.source) as SourceInfo, finding: JSON.parse(r.finding) as Finding };
}

export function sensorRecord(r: SensorDbRow): SensorRecord {
  return {
    id: r.id,
    version: r.version,
    source: { kind: r.source_kind as SourceInfo['kind'], name: r.source_name },
    firstSeen: wallTime(r.first_seen),
    lastSeen: wallTime(r.last_seen),
    lastHeartbeat: wallTimeOrNull(r.last_heartbeat),
    lastStatus: r.last_status === null ? null : (JSON.parse(r.last_status) as StatusMessage),
    lastHealthScore: r.last_health_score,
    lastWindowStart: wallTimeOrNull(r.last_window_start),
  };
}

export function captureJob(r: JobDbRow): CaptureJob {
  return {
    id: r.id,
    status: r.status as CaptureJobStatus,
    filename: r.filename,
    sizeBytes: Number(r.size_bytes), // PostgreSQL bigint arrives as text
    progress: r.progress,
    error: r.error,
    warnings: JSON.parse(r.warnings) as string[],
    createdAt: wallTime(r.created_at),
    startedAt: wallTimeOrNull(r.started_at),
    finishedAt: wallTimeOrNull(r.finished_at),
    expiresAt: wallTime(r.expires_at),
  };
}

// ---------------------------------------------------------------- jobs written

type JobValue = string | number | null;

/** A job's column values in JOB_COLUMNS order, times normalised. */
export function jobValues(job: CaptureJob): JobValue[] {
  return [
    job.id, job.status, job.filename, job.sizeBytes, job.progress, job.error, JSON.stringify(job.warnings),
    normalizeTime(job.createdAt), job.startedAt === null ? null : normalizeTime(job.startedAt),
    job.finishedAt === null ? null : normalizeTime(job.finishedAt), normalizeTime(job.expiresAt),
  ];
}

const PATCH_COLUMNS = {
  status: 'status', filename: 'filename', sizeBytes: 'size_bytes', progress: 'progress', error: 'error', warnings: 'warnings',
  startedAt: 'started_at', finishedAt: 'finished_at', expiresAt: 'expires_at',
} as const;
const PATCH_TIMES = new Set(['startedAt', 'finishedAt', 'expiresAt']);

/** The columns a patch sets (keys present with undefined are left alone). */
export function jobPatch(patch: Partial<Omit<CaptureJob, 'id' | 'createdAt'>>): Array<{ column: string; value: JobValue }> {
  const out: Array<{ column: string; value: JobValue }> = [];
  for (const [key, column] of Object.entries(PATCH_COLUMNS)) {
    const raw = (patch as Record<string, JobValue | string[] | undefined>)[key];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? JSON.stringify(raw) : raw;
    out.push({ column, value: PATCH_TIMES.has(key) && typeof value === 'string' ? normalizeTime(value) : value });
  }
  return out;
}

// ---------------------------------------------------------------- queries

/** The dialect bits the shared query builder needs. */
export interface Dialect {
  /** Placeholder for the parameter numbered n (1-based). */
  param(n: number): string;
  /** A parameter holding a normalised time. */
  time(n: number): string;
  /** SQL true when `needle` occurs in `haystack`. */
  contains(haystack: string, needle: string): string;
}

/** The findings page query: newest first by (window_start, id), one row extra to tell whether a next page exists. */
export function findingsSql(q: FindingQuery, d: Dialect): { sql: string; params: Array<string | number>; limit: number } {
  const limit = checkLimit(q.limit, MAX_PAGE);
  const params: Array<string | number> = [];
  const add = (value: string | number): number => params.push(value);
  const where: string[] = [];
  if (q.sensor !== undefined) where.push(`sensor = ${d.param(add(q.sensor))}`);
  if (q.type !== undefined) where.push(`type = ${d.param(add(q.type))}`);
  if (q.severity !== undefined) where.push(`severity = ${d.param(add(q.severity))}`);
  if (q.ip !== undefined) where.push(d.contains(`(' ' || ips || ' ')`, d.param(add(ipNeedle(q.ip)))));
  if (q.from !== undefined) where.push(`window_start >= ${d.time(add(normalizeTime(q.from)))}`);
  if (q.to !== undefined) where.push(`window_start < ${d.time(add(normalizeTime(q.to)))}`);
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor);
    // Row-value comparison: both engines use the (…, window_start, id) indexes for it.
    where.push(`(window_start, id) < (${d.time(add(c.windowStart))}, ${d.param(add(c.id))})`);
  }
  const sql = `SELECT ${FINDING_COLUMNS} FROM findings${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`
    + ` ORDER BY window_start DESC, id DESC LIMIT ${d.param(add(limit + 1))}`;
  return { sql, params, limit };
}

/** Cuts the extra row off and makes the cursor from the last row kept. */
export function findingsPage(rows: FindingDbRow[], limit: number): { items: StoredFinding[]; nextCursor: string | null } {
  const items = rows.slice(0, limit).map(storedFinding);
  const last = items[items.length - 1];
  // The cursor's window start is the stored one: the same normalisation of the finding's own text.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const nextCursor = rows.length > limit && last ? encodeCursor({ windowStart: ingestTime(last.finding.window?.start), id: last.id }) : null;
  return { items, nextCursor };
}

export function severityCounts(rows: Array<{ severity: string; n: number | string }>): Record<FindingSeverity, number> {
  const counts: Record<FindingSeverity, number> = { info: 0, warning: 0, critical: 0 };
  for (const r of rows) if ((SEVERITIES as readonly string[]).includes(r.severity)) counts[r.severity as FindingSeverity] = Number(r.n);
  return counts;
}

/** An error's text for messages: Node 20's AggregateError (dual-stack connect) has an empty message. */
export function errorText(err: unknown): string {
  if (err instanceof AggregateError && !err.message) return err.errors.map(errorText).join('; ') || 'connection failed';
  if (err instanceof Error) return err.message || ((err as NodeJS.ErrnoException).code ?? err.name);
  return String(err);
}
