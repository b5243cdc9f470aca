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
import { REPORT_SCHEMA, type Finding, type Report, type WindowSummary } from '../common/report.js';

export function rangeReport(sensor: string, windows: readonly WindowSummary[], findings: readonly Finding[]): Report {
  const counters: Record<string, number> = {};
  let packets = 0;
  let bytes = 0;
  for (const w of windows) {
    packets += w.packets;
    bytes += w.bytes;
    for (const [k, v] of Object.entries(w.counters ?? {})) counters[k] = (counters[k] ?? 0) + v;
  }
  const first = windows.length ? windows[0]!.start : null;
  const last = windows.length ? windows[windows.length - 1]!.end : null;
  return {
    schema: REPORT_SCHEMA,
    source: { path: `sensor:${sensor}`, format: 'sensor', compressed: false, linkTypes: [] },
    capture: {
      packets,
      bytes,
      first,
      last,
      durationSeconds: first && last ? Math.round((Date.parse(last) - Date.parse(first))) / 1000 : 0,
      truncatedRecords: 0,
      decodeErrors: {}, // per window only in the agent's heartbeats
      undecoded: {},
      flowsEvicted: 0,
    },
    counters,
    flows: [],
    windows: [...windows],
    findings: [...findings],
  };
}

/** A `from`/`to` query value: ISO-8601 or epoch seconds, as epoch milliseconds, or what is wrong with it. */
export function parseTime(value: string, name: string): number | string {
  const ms = /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  return Number.isFinite(ms) ? ms : `${name}: "${value.slice(0, 40)}" is not an ISO-8601 time or epoch seconds`;
}

export const isoFromMs = (ms: number): string => isoFromSeconds(0, ms / 1000);

/** A `from`/`to` pair; defaults: the hour before `to`, `to` now. */
export function parseRange(from: string | undefined, to: string | undefined, now = Date.now()): { from: string; to: string } | string {
  const t = to === undefined || to === '' ? now : parseTime(to, 'to');
  if (typeof t === 'string') return t;
  const f = from === undefined || from === '' ? t - 3600_000 : parseTime(from, 'from');
  if (typeof f === 'string') return f;
  if (f > t) return 'from is after to';
  return { from: isoFromMs(f), to: isoFromMs(t) };
}
