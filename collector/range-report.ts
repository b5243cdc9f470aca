/**
 * A `pcap-analyzer/report@1` for any time range of a sensor, built from the
 * windows and findings it published: the same shape (and HTML renderer) as
 * `analyze`, and for a replayed file the same figures. Counters are the sums
 * of the windows' own counters over every counter `analyze` lists (zeros
 * included); `capture` merges the windows' packet times and counts; `stats`
 * and `healthScore` merge the windows' sketches and health inputs as
 * `analyze` merges them (RangeStats). What windows cannot carry is left out:
 * top flows (kept only by `analyze`). Windows from agents that did not send
 * these inputs are named in `missing`, with the figures they leave out.
 */
import { isoFromSeconds, isoTime } from '../common/address.js';
import type { Config } from '../common/config.js';
import { REPORT_COUNTERS, REPORT_DISTRIBUTIONS, REPORT_SCHEMA, type Report, type WindowSummary } from '../common/report.js';
import { PacketSpan, RangeStats } from '../agent/index.js';
import type { SensorRecord, Store } from './store/types.js';

const finite = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

function addCounts(to: Record<string, number>, from: Record<string, number> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) if (Number.isFinite(v)) to[k] = (to[k] ?? 0) + v;
}

/** What a range report sums over its windows, one window at a time (the windows themselves are streamed). */
export class RangeTotals {
  windows = 0;
  packets = 0;
  bytes = 0;
  /** First window start and last window end: the range's bounds when packet times are unknown. */
  firstStart: string | null = null;
  lastEnd: string | null = null;
  /** The windows' packet times. */
  readonly packetSpan = new PacketSpan();
  readonly counters: Record<string, number> = Object.fromEntries(REPORT_COUNTERS.map((k) => [k, 0]));
  readonly decodeErrors: Record<string, number> = {};
  readonly undecoded: Record<string, number> = {};
  flowsEvicted = 0;
  conversationsForgotten = 0;
  truncatedRecords = 0;
  readonly linkTypes = new Set<string>();
  /** Windows whose capture lacks packet times and counts (agents before range reports merged them). */
  windowsWithoutCapture = 0;
  readonly merged = new RangeStats(REPORT_DISTRIBUTIONS, true);

  add(w: WindowSummary): void {
    this.windows++;
    this.packets += finite(w.packets);
    this.bytes += finite(w.bytes);
    addCounts(this.counters, w.counters);
    this.firstStart ??= w.start;
    this.lastEnd = w.end;
    this.merged.add(w.rangeInputs);
    const c = w.capture;
    if (c?.decodeErrors === undefined) { this.windowsWithoutCapture++; return; }
    if (c.first && c.last) {
      this.packetSpan.note(c.first[0], c.first[1]);
      this.packetSpan.note(c.last[0], c.last[1]);
    }
    addCounts(this.decodeErrors, c.decodeErrors);
    addCounts(this.undecoded, c.undecoded);
    this.flowsEvicted += finite(c.flowsEvicted);
    this.conversationsForgotten += finite(c.conversationsForgotten);
    this.truncatedRecords += finite(c.truncatedRecords);
    for (const t of c.linkTypes ?? []) this.linkTypes.add(t);
  }
}

const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;

/** The report of a range with empty `windows` and `findings`: the caller streams those in. `config`: the health score's bands. */
export function rangeReport(sensor: string, totals: RangeTotals, config: Readonly<Pick<Config, 'analyzers'>>): Report {
  const span = totals.packetSpan;
  const exact = totals.windowsWithoutCapture === 0;
  const fromPackets = exact && !span.empty;
  const first = fromPackets ? isoTime(span.firstSec, span.firstNsec) : totals.firstStart;
  const last = fromPackets ? isoTime(span.lastSec, span.lastNsec) : totals.lastEnd;
  const durationSeconds = fromPackets ? round9(span.seconds)
    : first && last ? Math.round(Date.parse(last) - Date.parse(first)) / 1000 : 0;
  const report: Report = {
    schema: REPORT_SCHEMA,
    source: { path: `sensor:${sensor}`, format: 'sensor', compressed: false, linkTypes: [...totals.linkTypes] },
    capture: {
      packets: totals.packets,
      bytes: totals.bytes,
      first: totals.packets > 0 ? first : null,
      last: totals.packets > 0 ? last : null,
      durationSeconds: totals.packets > 0 ? durationSeconds : 0,
      truncatedRecords: totals.truncatedRecords,
      decodeErrors: { ...totals.decodeErrors },
      undecoded: { ...totals.undecoded },
      flowsEvicted: totals.flowsEvicted,
      conversationsForgotten: totals.conversationsForgotten,
    },
    counters: { ...totals.counters },
    flows: [],
    windows: [],
    findings: [],
  };
  const missing: Record<string, string> = {};
  const m = totals.merged;
  if (m.complete) {
    report.stats = m.stats();
    const health = m.healthScore(config);
    if (health) report.healthScore = health;
  } else {
    const why = `${m.windowsWithout} of the ${m.windows} windows came from an agent that did not send their distributions and health inputs`;
    missing['stats'] = why;
    missing['healthScore'] = why;
  }
  if (!exact) {
    missing['capture'] = `${totals.windowsWithoutCapture} of the ${totals.windows} windows came from an agent that did not send their packet times and decode counts:`
      + ' first and last are window bounds, and decodeErrors, undecoded, flowsEvicted, conversationsForgotten and truncatedRecords leave those windows out';
  }
  if (Object.keys(missing).length) report.missing = missing;
  return report;
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
