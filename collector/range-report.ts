/**
 * A `pcap-analyzer/report@1` for any time range of a sensor, built from the
 * windows and findings it published: the same shape (and HTML renderer) as
 * `analyze`. Counters are the sums of the windows' own counters, so a replayed
 * file gives the counters `analyze` gives. What windows cannot carry is left
 * out: top flows (kept only by `analyze`) and whole-capture distributions
 * (percentiles do not add up; each window has its own). Drops are in each
 * window's `capture`.
 */
import { isoFromSeconds } from '../common/address.js';
import { REPORT_SCHEMA, type Report, type WindowSummary } from '../common/report.js';
import type { SensorRecord, Store } from './store/types.js';

/** What a range report sums over its windows, one window at a time (the windows themselves are streamed). */
export class RangeTotals {
  windows = 0;
  packets = 0;
  bytes = 0;
  first: string | null = null;
  last: string | null = null;
  readonly counters: Record<string, number> = {};

  add(w: WindowSummary): void {
    this.windows++;
    this.packets += Number.isFinite(w.packets) ? w.packets : 0;
    this.bytes += Number.isFinite(w.bytes) ? w.bytes : 0;
    for (const [k, v] of Object.entries(w.counters ?? {})) if (Number.isFinite(v)) this.counters[k] = (this.counters[k] ?? 0) + v;
    this.first ??= w.start;
    this.last = w.end;
  }
}

/** The report of a range with empty `windows` and `findings`: the caller streams those in. */
export function rangeReport(sensor: string, totals: RangeTotals): Report {
  const { first, last } = totals;
  return {
    schema: REPORT_SCHEMA,
    source: { path: `sensor:${sensor}`, format: 'sensor', compressed: false, linkTypes: [] },
    capture: {
      packets: totals.packets,
      bytes: totals.bytes,
      first,
      last,
      durationSeconds: first && last ? Math.round((Date.parse(last) - Date.parse(first))) / 1000 : 0,
      truncatedRecords: 0,
      decodeErrors: {}, // per window only in the agent's heartbeats
      undecoded: {},
      flowsEvicted: 0,
    },
    counters: { ...totals.counters },
    flows: [],
    windows: [],
    findings: [],
  };
}

/**
 * Every row of a store query ordered by (window start, id), read `chunk` rows
 * at a time: the next page starts at the last start read, skipping the rows
 * already given (several windows may share a start).
 */
export async function* inPages<T>(
  fetch: (from: string, limit: number) => Promise<T[]>,
  key: (row: T) => { start: string; id: string },
  from: string,
  chunk: number,
): AsyncGenerator<T> {
  let cursor = from;
  let last: { start: string; id: string } | undefined;
  let size = chunk;
  for (;;) {
    const rows = await fetch(cursor, size);
    let fresh = 0;
    for (const row of rows) {
      const k = key(row);
      if (last && k.start === last.start && k.id <= last.id) continue;
      last = k;
      fresh++;
      yield row;
    }
    if (rows.length < size || !last) return;
    // A whole page of rows at one start, all seen: read a bigger page at that start.
    size = fresh === 0 ? size * 2 : chunk;
    cursor = last.start;
  }
}

/** A `from`/`to` query value: ISO-8601 or epoch seconds, as epoch milliseconds, or what is wrong with it. */
export function parseTime(value: string, name: string): number | string {
  const ms = /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  return Number.isFinite(ms) ? ms : `${name}: "${value.slice(0, 40)}" is not an ISO-8601 time or epoch seconds`;
}

export const isoFromMs = (ms: number): string => isoFromSeconds(0, ms / 1000);

/**
 * Where a sensor's data ends: the end of its newest window (epoch ms), or
 * undefined before its first window. A replay's windows carry the capture's
 * own times, so "the last hour" of a sensor means the hour before this, not
 * the hour before the wall clock.
 */
export async function sensorDataEnd(store: Store, sensor: SensorRecord): Promise<number | undefined> {
  if (sensor.lastWindowStart === null) return undefined;
  const startMs = Date.parse(sensor.lastWindowStart);
  // lastWindowStart is cut to milliseconds: the window starting within that millisecond.
  const [newest] = await store.windows(sensor.id, sensor.lastWindowStart, isoFromMs(startMs + 1), 1);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index past the end is undefined (no window in range); the type cannot say so
  const endMs = newest ? Date.parse(newest.window.end) : NaN;
  return Number.isFinite(endMs) ? endMs : startMs + 1;
}

/**
 * A sensor's `from`/`to` pair: as parseRange, `to` defaulting to the end of
 * the sensor's data (else now). The query is checked before the sensor is
 * looked up (`sensor` is a lookup: a bad range is 400 whether or not it exists).
 */
export async function parseSensorRange(store: Store, lookup: () => Promise<SensorRecord | null>, from: string | undefined, to: string | undefined): Promise<{ from: string; to: string } | string | null> {
  const checked = parseRange(from, to);
  if (typeof checked === 'string') return checked;
  const sensor = await lookup();
  if (!sensor) return null;
  if (to !== undefined && to !== '') return checked;
  return parseRange(from, to, (await sensorDataEnd(store, sensor)) ?? Date.now());
}

/** A `from`/`to` pair; defaults: the hour before `to`, `to` now. */
export function parseRange(from: string | undefined, to: string | undefined, now = Date.now()): { from: string; to: string } | string {
  const t = to === undefined || to === '' ? now : parseTime(to, 'to');
  if (typeof t === 'string') return t;
  const f = from === undefined || from === '' ? t - 3600_000 : parseTime(from, 'from');
  if (typeof f === 'string') return f;
  if (f > t) return 'from is after to';
  return { from: isoFromMs(f), to: isoFromMs(t) };
}
