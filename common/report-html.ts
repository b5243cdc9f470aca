/**
 * The HTML rendering of a report: one self-contained file (inline CSS, a small
 * inline script that draws the per-window charts on canvases, the chart data
 * as an inert JSON block), with nothing fetched, so it works opened from disk
 * and printed. Every string of the report is HTML-escaped: captures carry
 * names an attacker chose (DNS names, paths). A Content-Security-Policy that
 * allows only this file's own script and style (by hash) backs that up.
 *
 * Analyzers come and go: a chart, table or section whose metrics no window
 * has is left out, never an error. Each chart canvas has `data-chart="<id>"`
 * and gets `data-drawn="true"` once drawn.
 */
import { createHash } from 'node:crypto';
import { findingSubject, flowText } from './report-csv.js';
import { HEALTH_SCOPE, securityFindingCounts, sourceLabel, type Finding, type FindingSeverity, type HealthScore, type Report, type ReportFlow, type WindowSummary } from './report.js';
import { duration, noun } from './wording.js';

// ---------------------------------------------------------------- helpers

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}
const e = escapeHtml;

/** JSON for a `<script type="application/json">` block: nothing in it can close the element or start markup. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

const num = (n: unknown): string => (finite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: 3 }) : '—');

function bytesText(n: unknown): string {
  if (!finite(n)) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}

/** Seconds in the unit that shows them best (µs, ms, s). */
const durationCell = (seconds: unknown): string => (finite(seconds) ? duration(seconds) : '—');

function durationText(seconds: unknown): string {
  if (!finite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(3)} s`;
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const parts = d ? [`${d} d`, `${h} h`, `${m} min`] : h ? [`${h} h`, `${m} min`, `${s} s`] : [`${m} min`, `${s} s`];
  return `${parts.join(' ')} (${num(Math.round(seconds * 1000) / 1000)} s)`;
}

/** `2003-08-24T21:46:00.000000Z` as `2003-08-24 21:46:00` (fractions kept only when not zero). */
function timeText(iso: unknown): string {
  if (typeof iso !== 'string') return '—';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso);
  if (!m) return iso;
  const frac = m[3] && /[1-9]/.test(m[3]) ? m[3].replace(/0+$/, '') : '';
  return `${m[1]} ${m[2]}${frac}`;
}

function rangeText(start: unknown, end: unknown): string {
  const a = timeText(start);
  const b = timeText(end);
  return a.slice(0, 10) === b.slice(0, 10) && a.length > 11 ? `${a} – ${b.slice(11)}` : `${a} – ${b}`;
}

/** `topHosts` as `Top hosts`, `packetsAToB` as `Packets A to B`. */
function humanize(key: string): string {
  const words = key.replace(/_/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z])([A-Z][a-z])/g, '$1 $2').split(/\s+/).filter(Boolean);
  const text = words.map((w) => (w.length === 1 ? w.toUpperCase() : w.toLowerCase())).join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const isoMs = (iso: unknown): number => (typeof iso === 'string' ? Date.parse(iso) : NaN);

const SEVERITY_RANK: Record<FindingSeverity, number> = { critical: 3, warning: 2, info: 1 };
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const severityRank = (s: unknown): number => SEVERITY_RANK[s as FindingSeverity] ?? 0;
const severityClass = (s: unknown): string => (severityRank(s) ? `sev-${s as string}` : 'sev-unknown');

function metricsOf(w: WindowSummary, analyzer: string): Record<string, unknown> | undefined {
  const m = isObject(w.metrics) ? w.metrics[analyzer] : undefined;
  return isObject(m) ? m : undefined;
}

// ---------------------------------------------------------------- chart data

type Unit = 'percent' | 'ms' | 'bps' | 'score';

interface ChartSeries { name: string; values: Array<number | null> }

interface ChartSpec {
  id: string;
  title: string;
  unit: Unit;
  kind: 'line' | 'bar';
  series: ChartSeries[];
  /** Fixed y maximum (the health score's 100). */
  yMax?: number;
  note?: string;
}

interface ChartData {
  /** Window starts and ends, milliseconds since the epoch. */
  starts: number[];
  ends: number[];
  charts: ChartSpec[];
}

const QUANTILES = ['p50', 'p90', 'p99'] as const;

/**
 * The p50/p90/p99 of an analyzer's window metrics, in seconds: top-level
 * `p50`.. keys (the convention), `p50Ms`.. in milliseconds, or the first
 * nested object that has them.
 */
export function windowQuantiles(m: Record<string, unknown> | undefined): Partial<Record<(typeof QUANTILES)[number], number | null>> | undefined {
  if (!m) return undefined;
  const direct = (o: Record<string, unknown>): Partial<Record<(typeof QUANTILES)[number], number | null>> | undefined => {
    const out: Partial<Record<(typeof QUANTILES)[number], number | null>> = {};
    let found = false;
    for (const q of QUANTILES) {
      const s = o[q];
      const ms = o[`${q}Ms`] ?? o[`${q}_ms`];
      if (finite(s) || s === null) { out[q] = s as number | null; found = true; } else if (finite(ms)) { out[q] = ms / 1000; found = true; }
    }
    return found ? out : undefined;
  };
  const top = direct(m);
  if (top) return top;
  const nested = Object.keys(m).filter((k) => isObject(m[k]));
  nested.sort((a, b) => Number(!/rtt|time|latency|delay/i.test(a)) - Number(!/rtt|time|latency|delay/i.test(b)));
  for (const k of nested) {
    const q = direct(m[k] as Record<string, unknown>);
    if (q) return q;
  }
  return undefined;
}

/** Per-window latency charts: analyzer id, chart id, title. */
const LATENCY_CHARTS: ReadonlyArray<readonly [string, string, string]> = [
  ['rtt', 'rtt', 'TCP round-trip time'],
  ['dns', 'dns-latency', 'DNS response time'],
  ['handshake', 'handshake-time', 'TCP handshake time'],
  ['jitter', 'jitter', 'UDP jitter'],
];

const hasData = (s: ChartSeries[]): boolean => s.some((x) => x.values.some((v) => v !== null));

function buildCharts(windows: readonly WindowSummary[]): ChartData {
  const charts: ChartSpec[] = [];
  const health = windows.map((w) => (finite(w.healthScore) ? w.healthScore : null));
  if (health.some((v) => v !== null)) {
    charts.push({ id: 'health-score', title: 'Health score', unit: 'score', kind: 'line', yMax: 100, series: [{ name: 'score', values: health }] });
  }

  const retrans = windows.map((w) => {
    const r = metricsOf(w, 'tcp')?.['retransmissionRate'];
    return finite(r) ? r * 100 : null;
  });
  if (retrans.some((v) => v !== null)) {
    charts.push({ id: 'retransmission-rate', title: 'TCP retransmission rate', unit: 'percent', kind: 'bar', series: [{ name: 'retransmitted data segments', values: retrans }] });
  }

  for (const [analyzer, id, title] of LATENCY_CHARTS) {
    const per = windows.map((w) => windowQuantiles(metricsOf(w, analyzer)));
    const present = QUANTILES.filter((q) => per.some((p) => p !== undefined && q in p));
    const series = present.map((q) => ({ name: q, values: per.map((p) => (p && finite(p[q]) ? p[q]! * 1000 : null)) }));
    if (hasData(series)) charts.push({ id, title, unit: 'ms', kind: 'line', series });
  }

  if (windows.length) {
    let fromAnalyzer = false;
    const bps = windows.map((w) => {
      const t = metricsOf(w, 'throughput')?.['bitsPerSecond'];
      if (finite(t)) { fromAnalyzer = true; return t; }
      const seconds = (isoMs(w.end) - isoMs(w.start)) / 1000;
      return finite(w.bytes) && seconds > 0 ? (w.bytes * 8) / seconds : null;
    });
    charts.push({
      id: 'throughput', title: 'Throughput', unit: 'bps', kind: 'bar', series: [{ name: 'bits per second', values: bps }],
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- assigned inside a callback; the narrowed type does not see it
      note: fromAnalyzer ? 'throughput analyzer' : 'window bytes × 8 / window length',
    });
  }
  return { starts: windows.map((w) => isoMs(w.start)), ends: windows.map((w) => isoMs(w.end)), charts };
}

// ---------------------------------------------------------------- talkers

interface AggregateTable { title: string; columns: string[]; numeric: boolean[]; rows: Array<Array<string | number>> }

const IDENTITY_NUMBER = /port|^id$|stream|index|proto|vlan/i;
const NOT_SUMMABLE = /rate|percent|pct|share|ratio|persecond|bps|avg|mean|(^|\.)p\d+$/i;
const TAKE_MAX = /max|peak/i;
/** Text fields that describe a row without identifying it (a host's server name may be known in some windows only): the last one seen is shown. */
const ANNOTATION = /^serverName$/;

/** Rows of one talkers metric: a list of objects, a map of numbers, or a map of objects. */
function tabularItems(v: unknown): Array<Record<string, unknown>> | undefined {
  if (Array.isArray(v)) {
    const rows = v.filter(isObject);
    return rows.length ? rows : undefined;
  }
  if (isObject(v)) {
    const entries = Object.entries(v);
    if (!entries.length) return undefined;
    if (entries.every(([, x]) => finite(x))) return entries.map(([k, x]) => ({ key: k, value: x }));
    if (entries.every(([, x]) => isObject(x))) return entries.map(([k, x]) => ({ key: k, ...(x as Record<string, unknown>) }));
  }
  return undefined;
}

/**
 * `metrics.talkers` of every window, added up: per list (hosts, pairs, ...),
 * rows with the same identifying fields merged, counts summed (maxima kept,
 * rates dropped), with the number of windows each appears in.
 */
export function aggregateTalkers(windows: readonly WindowSummary[], limit = 20): AggregateTable[] {
  return aggregateLists(windows, 'talkers', undefined, limit);
}

/**
 * The lists and maps of one analyzer's window metrics (those under `paths`, e.g.
 * `vlan` or `dimensions.vlan`... relative to the analyzer, or every one), added up as aggregateTalkers does.
 */
function aggregateLists(windows: readonly WindowSummary[], analyzer: string, paths: readonly string[] | undefined, limit = 20): AggregateTable[] {
  interface Group { ids: string[]; sums: Map<string, 'sum' | 'max'>; rows: Map<string, { ids: Record<string, string>; nums: Record<string, number>; windows: number }> }
  const groups = new Map<string, Group>();
  for (const w of windows) {
    const metrics = metricsOf(w, analyzer);
    if (!metrics) continue;
    const lists = paths ? paths.map((p) => [p, metrics[p]] as const) : Object.entries(metrics);
    for (const [key, value] of lists) {
      const items = tabularItems(value);
      if (!items) continue;
      let g = groups.get(key);
      if (!g) { g = { ids: [], sums: new Map(), rows: new Map() }; groups.set(key, g); }
      for (const item of items) {
        const ids: Record<string, string> = {};
        const nums: Record<string, number> = {};
        for (const [field, x] of Object.entries(item)) {
          if (typeof x === 'string' || (finite(x) && IDENTITY_NUMBER.test(field))) {
            ids[field] = String(x);
            if (!g.ids.includes(field)) g.ids.push(field);
          } else if (finite(x) && !NOT_SUMMABLE.test(field)) {
            nums[field] = x;
            if (!g.sums.has(field)) g.sums.set(field, TAKE_MAX.test(field) ? 'max' : 'sum');
          }
        }
        const identity = JSON.stringify(Object.keys(ids).filter((k) => !ANNOTATION.test(k)).sort().map((k) => [k, ids[k]]));
        const row = g.rows.get(identity);
        if (!row) { g.rows.set(identity, { ids, nums: { ...nums }, windows: 1 }); continue; }
        row.windows++;
        for (const k of Object.keys(ids)) if (ANNOTATION.test(k)) row.ids[k] = ids[k]!;
        for (const [field, x] of Object.entries(nums)) {
          const prev = row.nums[field];
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
          row.nums[field] = prev === undefined ? x : g.sums.get(field) === 'max' ? Math.max(prev, x) : prev + x;
        }
      }
    }
  }
  const tables: AggregateTable[] = [];
  for (const [key, g] of groups) {
    if (!g.ids.length) continue;
    const sums = [...g.sums.keys()];
    const sortBy = sums.includes('bytes') ? 'bytes' : sums[0];
    const rows = [...g.rows.values()];
    if (sortBy) rows.sort((a, b) => (b.nums[sortBy] ?? 0) - (a.nums[sortBy] ?? 0));
    tables.push({
      title: key,
      columns: [...g.ids, ...sums, 'windows'],
      numeric: [...g.ids.map(() => false), ...sums.map(() => true), true],
      rows: rows.slice(0, limit).map((r) => [...g.ids.map((c) => r.ids[c] ?? ''), ...sums.map((c) => r.nums[c] ?? 0), r.windows]),
    });
  }
  return tables;
}

// ---------------------------------------------------------------- sections

/** A header cell; `sort` makes it sort its column (by the cells' data-v) on click; numbers right-aligned unless `left`. */
function th(label: string, sort?: 'num' | 'text', left = false): string {
  const cls = sort === 'num' && !left ? ' class="num"' : '';
  return sort ? `<th data-sort="${sort}" tabindex="0"${cls}>${e(label)}</th>` : `<th>${e(label)}</th>`;
}

function summarySection(r: Report): string {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const c = r.capture ?? ({} as Report['capture']);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const s = r.source ?? ({} as Report['source']);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const windows = r.windows ?? [];
  const windowSeconds = windows.length ? (isoMs(windows[0]!.end) - isoMs(windows[0]!.start)) / 1000 : NaN;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const bySeverity = (sev: FindingSeverity): number => (r.findings ?? []).filter((f) => f.severity === sev).length;
  const rows: Array<[string, string]> = [
    ['Source', `<code>${e(sourceLabel(s.path))}</code>`],
    s.format === 'sensor'
      // A range of a sensor's windows: no file; the link types are those its windows name (none from agents before they did).
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
      ? ['Format', `windows a sensor published; link types ${e((s.linkTypes ?? []).join(', ') || 'not reported')}`]
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
      : ['Format', `${e(s.format)}${s.compressed ? ' (gzip)' : ''}; link types ${e((s.linkTypes ?? []).join(', ') || 'none')}`],
    ['Packets', e(num(c.packets))],
    ['Bytes', `${e(bytesText(c.bytes))} <span class="muted">(${e(num(c.bytes))} B on the wire)</span>`],
    ['Time range (UTC)', c.first ? `${e(timeText(c.first))} – ${e(timeText(c.last))}` : '<span class="muted">no packets</span>'],
    ['Duration', e(durationText(c.durationSeconds))],
    ['Windows', windows.length ? `${windows.length}${finite(windowSeconds) ? ` of ${e(num(windowSeconds))} s` : ''}` : '0'],
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    ['Flows', `${e(num(r.counters?.['tcp.streams']))} TCP ${noun(Number(r.counters?.['tcp.streams']), 'stream')}, ${e(num(r.counters?.['udp.streams']))} UDP ${noun(Number(r.counters?.['udp.streams']), 'stream')}`],
    ['Findings', `<span class="sev sev-critical">${bySeverity('critical')} critical</span> <span class="sev sev-warning">${bySeverity('warning')} warning</span> <span class="sev sev-info">${bySeverity('info')} info</span>`],
  ];
  const warnings: string[] = [];
  if (c.truncatedRecords) warnings.push('The input is cut short: the last record is incomplete; the packets before it were analyzed.');
  const errors = Object.entries(isObject(c.decodeErrors) ? c.decodeErrors : {});
  if (errors.length) warnings.push(`Malformed packets or records: ${errors.map(([k, v]) => `<code>${e(k)}</code> ${e(num(v))}`).join(', ')}.`);
  const undecoded = Object.entries(isObject(c.undecoded) ? c.undecoded : {});
  if (undecoded.length) warnings.push(`Frames of link types not decoded: ${undecoded.map(([k, v]) => `<code>${e(k)}</code> ${e(num(v))}`).join(', ')}.`);
  if (finite(c.flowsEvicted) && c.flowsEvicted > 0) {
    warnings.push(`${e(num(c.flowsEvicted))} ${noun(c.flowsEvicted, 'flow was', 'flows were')} ended early because the flow table was full.`);
  }
  if (finite(c.conversationsForgotten) && c.conversationsForgotten > 0) {
    warnings.push(`${e(num(c.conversationsForgotten))} ended ${noun(c.conversationsForgotten, 'conversation was', 'conversations were')} forgotten`
      + ' (flows.endedConversations): tcp.stream / udp.stream counts may exceed Wireshark\'s.');
  }
  const ooo = windows.reduce((a, w) => a + (finite(w.outOfOrderTimestamps) ? w.outOfOrderTimestamps : 0), 0);
  if (ooo) warnings.push(`${e(num(ooo))} ${noun(ooo, 'packet was', 'packets were')} stamped earlier than the window ${noun(ooo, 'it was', 'they were')} counted in.`);
  for (const [part, why] of Object.entries(isObject(r.missing) ? r.missing : {})) warnings.push(`Not computed: <code>${e(part)}</code>: ${e(String(why))}.`);
  return `<section id="summary"><h2>Summary</h2>
<dl class="summary">${rows.map(([k, v]) => `<dt>${e(k)}</dt><dd>${v}</dd>`).join('')}</dl>
${warnings.length ? `<div class="warnings" role="alert"><strong>Warnings</strong><ul>${warnings.map((w) => `<li>${w}</li>`).join('')}</ul></div>` : ''}
</section>`;
}

function healthComponentValue(name: string, value: unknown): string {
  if (!finite(value)) return '<span class="muted">no data</span>';
  if (name === 'retransmissions' || name === 'packet_loss') return `${e(value.toFixed(2))} %`;
  if (name === 'rtt' || name === 'dns' || name === 'jitter') return `${e(durationCell(value))} <span class="muted">p90</span>`;
  return e(num(value));
}

const healthClassName = (cls: unknown): string => (typeof cls === 'string' && /^[a-z]+$/.test(cls) ? `hc-${cls}` : 'hc-unknown');

/** The security findings above info beside the score, and what the score rates. */
function healthScope(findings: readonly Finding[]): string {
  const security = securityFindingCounts(findings);
  return `<div class="scope" id="health-scope"><p class="security-counts"><strong>Security findings</strong>`
    + ` <span class="sev sev-critical" data-security="critical">${e(num(security.critical))} critical</span>`
    + ` <span class="sev sev-warning" data-security="warning">${e(num(security.warning))} warning</span>`
    + ` <a href="#findings">see Findings</a></p><p class="muted">${e(HEALTH_SCOPE)}</p></div>`;
}

function healthSection(health: HealthScore | undefined, chart: string, findings: readonly Finding[]): string {
  if (!health && !chart) return '';
  let overall = '';
  if (health && isObject(health)) {
    const components = Array.isArray(health.components) ? health.components : [];
    overall = `<div class="health">
<div class="score ${healthClassName(health.class)}"><span class="value">${e(num(health.score))}</span><span class="of">/ 100</span><span class="class">${e(health.class)}</span></div>
${healthScope(findings)}
<table class="components"><thead><tr><th>Component</th><th>Value</th><th class="num">Penalty</th><th class="num">Weight</th><th>Share of weight lost</th></tr></thead><tbody>
${components.map((c) => `<tr><td>${e(c.name)}</td><td>${healthComponentValue(String(c.name), c.value)}</td><td class="num">${e(num(c.penalty))}</td><td class="num">${e(num(c.weight))}</td><td><meter min="0" max="${e(finite(c.weight) ? c.weight : 0)}" value="${e(finite(c.penalty) ? c.penalty : 0)}"></meter></td></tr>`).join('\n')}
</tbody></table></div>`;
  }
  return `<section id="health"><h2>Health</h2>${overall}${chart}</section>`;
}

const UNIT_LABEL: Record<Unit, string> = { percent: '%', ms: 'ms', bps: 'bit/s', score: '0–100' };

function chartFigure(c: ChartSpec, index: number): string {
  const legend = c.series.map((s, i) => `<span class="key"><i class="swatch s${i % 4}"></i>${e(s.name)}</span>`).join(' ');
  return `<figure class="chart">
<figcaption>${e(c.title)} <span class="muted">(${e(UNIT_LABEL[c.unit])} per window${c.note ? `; ${e(c.note)}` : ''})</span></figcaption>
<div class="plot"><canvas data-chart="${e(c.id)}" data-index="${index}" role="img" aria-label="${e(c.title)} per window"></canvas></div>
<div class="legend">${legend}</div>
</figure>`;
}

function findingsSection(findings: readonly Finding[]): string {
  const LIMIT = 5000;
  const sorted = [...findings].sort((a, b) => severityRank(b.severity) - severityRank(a.severity)
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    || String(a.window?.start).localeCompare(String(b.window?.start)) || String(a.type).localeCompare(String(b.type)));
  const shown = sorted.slice(0, LIMIT);
  const groups = (['critical', 'warning', 'info'] as const).map((s) => [s, findings.filter((f) => f.severity === s).length] as const);
  const evidence = (ev: unknown): string => (isObject(ev) && Object.keys(ev).length
    ? `<div class="evidence">${Object.entries(ev).map(([k, v]) => `<span>${e(k)}=${e(typeof v === 'string' ? v : JSON.stringify(v))}</span>`).join(' ')}</div>` : '');
  const subject = (f: Finding): string => {
    const lines: string[] = [];
    if (f.flow) {
      const text = flowText(f.flow);
      const arrow = text.indexOf(' -> ');
      lines.push(e(text.slice(0, arrow)), `&rarr; ${e(text.slice(arrow + 4))}`);
    }
    if (f.host) lines.push(f.flow ? `<span class="muted">${e(f.host)}</span>` : e(f.host));
    return lines.map((l) => `<div>${l}</div>`).join('');
  };
  const body = shown.map((f) => `<tr class="row-${severityClass(f.severity)}">
<td data-v="${severityRank(f.severity)}"><span class="sev ${severityClass(f.severity)}">${e(f.severity)}</span></td>
<td data-v="${e(f.type)}">${e(f.type)}</td>
<td data-v="${/* eslint-disable-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it */ e(f.window?.start)}" class="nowrap">${e(rangeText(f.window?.start, f.window?.end))}</td>
<td data-v="${e(findingSubject(f))}" class="addr subject">${subject(f)}</td>
<td data-v="${e(f.summary)}">${e(f.summary)}${evidence(f.evidence)}</td></tr>`).join('\n');
  return `<section id="findings"><h2>Findings <span class="muted">(${findings.length})</span></h2>
${findings.length ? `<p class="counts">${groups.map(([s, n]) => `<span class="sev ${severityClass(s)}">${n} ${s}</span>`).join(' ')} <span class="muted">Click a column header to sort.</span></p>
<table class="sortable findings"><thead><tr>${th('Severity', 'num', true)}${th('Type', 'text')}${th('Window (UTC)', 'text')}${th('Flow / host', 'text')}${th('Summary', 'text')}</tr></thead>
<tbody>
${body}
</tbody></table>${sorted.length > LIMIT ? `<p class="muted">${sorted.length - LIMIT} more ${noun(sorted.length - LIMIT, 'finding is', 'findings are')} in the JSON and CSV reports.</p>` : ''}` : '<p class="muted">No findings.</p>'}
</section>`;
}

function flowsSection(flows: readonly ReportFlow[]): string {
  if (!flows.length) return '';
  const rows = flows.map((f) => {
    const seconds = (isoMs(f.last) - isoMs(f.first)) / 1000;
    const text = flowText(f);
    const arrow = text.indexOf(' -> ');
    const client = text.slice(text.indexOf(' ') + 1, arrow);
    const server = text.slice(arrow + 4);
    return `<tr><td data-v="${e(f.proto)}">${e(f.proto)}</td><td class="addr" data-v="${e(client)}">${e(client)}</td><td class="addr" data-v="${e(server)}">${e(server)}</td>
<td class="num" data-v="${e(f.packets)}">${e(num(f.packets))}</td><td class="num" data-v="${e(f.bytes)}">${e(bytesText(f.bytes))}</td>
<td class="nowrap" data-v="${e(f.first)}">${e(timeText(f.first))}</td><td class="num" data-v="${finite(seconds) ? seconds : 0}">${e(finite(seconds) ? seconds.toFixed(3) : '—')}</td>
<td data-v="${e(f.state)}">${e(f.state)}</td><td class="num" data-v="${e(f.stream)}">${e(num(f.stream))}</td>
<td data-v="${e(f.service ?? '')}"${f.serverName !== undefined ? ` title="${e(`${f.serverName} (${f.serverNameSource ?? ''})`)}"` : ''}>${e(f.service ?? '—')}</td><td data-v="${e(f.behaviour ?? '')}">${e(f.behaviour ?? '—')}</td></tr>`;
  }).join('\n');
  return `<section id="flows"><h2>Top flows by bytes <span class="muted">(${flows.length})</span></h2>
<table class="sortable"><thead><tr>${th('Proto', 'text')}${th('Client', 'text')}${th('Server', 'text')}${th('Packets', 'num')}${th('Bytes', 'num')}${th('First (UTC)', 'text')}${th('Duration s', 'num')}${th('State', 'text')}${th('Stream', 'num')}${th('Service', 'text')}${th('Behaviour', 'text')}</tr></thead>
<tbody>
${rows}
</tbody></table></section>`;
}

/** One added-up table: a heading, then its rows (numbers right-aligned, bytes in units), sortable. */
function aggregateTableHtml(t: AggregateTable, heading: string, label: (column: string) => string): string {
  return `<h3>${e(heading)}</h3>
<table class="sortable talkers"><thead><tr>${t.columns.map((c, i) => th(label(c), t.numeric[i] ? 'num' : 'text')).join('')}</tr></thead><tbody>
${t.rows.map((row) => `<tr>${row.map((v, i) => (t.numeric[i]
    ? `<td class="num" data-v="${e(v)}">${e(/bytes/i.test(t.columns[i]!) ? bytesText(v) : num(v))}</td>`
    : `<td class="addr" data-v="${e(v)}">${e(v)}</td>`)).join('')}</tr>`).join('\n')}
</tbody></table>`;
}

function talkersSection(windows: readonly WindowSummary[]): string {
  const tables = aggregateTalkers(windows);
  if (!tables.length) return '';
  const html = tables.map((t) => aggregateTableHtml(t, humanize(t.title), humanize)).join('\n');
  return `<section id="talkers"><h2>Top talkers</h2>
<p class="muted">Added up over the windows in which each appears in that window's top list.</p>
${html}</section>`;
}

/** Where the names tables come from: analyzer, metric, title (Wireshark field where there is one). */
const NAME_TABLES: ReadonlyArray<readonly [string, string, string]> = [
  ['tls', 'serverNames', 'TLS server names (tls.handshake.extensions_server_name)'],
  ['tls', 'ja4', 'TLS client fingerprints (JA4)'],
  ['http', 'hosts', 'HTTP hosts (http.host)'],
  ['http', 'statusCodes', 'HTTP status codes (http.response.code)'],
  ['services', 'byService', 'Services (server name proved by TLS, HTTP or DNS, else the port\'s IANA name)'],
  ['dimensions', 'vlan', 'Per VLAN (outer vlan.id)'],
  ['dimensions', 'interface', 'Per capture interface (frame.interface_id)'],
];

function namesSection(windows: readonly WindowSummary[]): string {
  // A map of counts gives key/value columns: the key is the value named, the value its count.
  const label = (c: string): string => (c === 'key' ? 'value' : c === 'value' ? 'count' : humanize(c));
  const html = NAME_TABLES.flatMap(([analyzer, metric, title]) => aggregateLists(windows, analyzer, [metric]).map((t) => aggregateTableHtml(t, title, label)));
  if (!html.length) return '';
  return `<section id="names"><h2>Names, services and VLANs</h2>
<p class="muted">Added up over the windows; each window lists its top entries only.</p>
${html.join('\n')}</section>`;
}

function statsSection(stats: Report['stats']): string {
  const entries = Object.entries(isObject(stats) ? stats : {});
  if (!entries.length) return '';
  return `<section id="stats"><h2>Distributions over the whole capture</h2>
<table><thead><tr><th>Wireshark field</th><th class="num">Samples</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">max</th></tr></thead><tbody>
${/* eslint-disable-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off) */ entries.map(([k, q]) => `<tr><td><code>${e(k)}</code></td><td class="num">${e(num(q?.count))}</td><td class="num">${e(durationCell(q?.p50))}</td><td class="num">${e(durationCell(q?.p90))}</td><td class="num">${e(durationCell(q?.p99))}</td><td class="num">${e(durationCell(q?.max))}</td></tr>`).join('\n')}
</tbody></table></section>`;
}

function countersSection(counters: Report['counters']): string {
  const entries = Object.entries(isObject(counters) ? counters : {});
  if (!entries.length) return '';
  const columns = entries.length > 12 ? 3 : 1;
  const per = Math.ceil(entries.length / columns);
  const tables: string[] = [];
  for (let i = 0; i < entries.length; i += per) {
    tables.push(`<table class="counters"><thead><tr><th>Field</th><th class="num">Frames</th></tr></thead><tbody>
${entries.slice(i, i + per).map(([k, v]) => `<tr${v === 0 ? ' class="zero"' : ''}><td><code>${e(k)}</code></td><td class="num">${e(num(v))}</td></tr>`).join('\n')}
</tbody></table>`);
  }
  return `<section id="counters"><h2>Counters <span class="muted">(frames, by Wireshark display-filter field; zeros dimmed)</span></h2>
<div class="counter-columns">${tables.join('\n')}</div></section>`;
}

// ---------------------------------------------------------------- style and script

const STYLE = `
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1d2126;--muted:#5d6874;--line:#d9dee4;--panel:#f5f7f9;--grid:#e6e9ed;
--s0:#2f6fde;--s1:#d9822b;--s2:#c23b3b;--s3:#2b9a66;--info:#2f6fde;--warning:#b37400;--critical:#c62828;--ok:#2b8a57;--fair:#b37400}
@media (prefers-color-scheme: dark){:root{--bg:#16191d;--fg:#e3e6ea;--muted:#99a3ad;--line:#343a42;--panel:#1e2227;--grid:#2b3037;
--s0:#6ea0ff;--s1:#f0a14f;--s2:#ff6b6b;--s3:#4cc38a;--info:#6ea0ff;--warning:#e0a92e;--critical:#ff6b6b;--ok:#4cc38a;--fair:#e0a92e}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
header h1{font-size:22px;margin:8px 0 2px}header p{margin:0}
nav{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);padding:6px 0;margin-bottom:8px}
nav a{color:var(--muted);text-decoration:none;margin-right:14px;font-size:13px}nav a:hover{color:var(--fg)}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}h3{font-size:15px;margin:16px 0 6px}
code,.addr,.evidence{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.addr{word-break:break-all}.nowrap{white-space:nowrap}
.muted{color:var(--muted);font-weight:normal}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}dl.summary dt{color:var(--muted)}dl.summary dd{margin:0;word-break:break-all}
.warnings{margin-top:12px;border:1px solid var(--warning);border-left-width:4px;background:var(--panel);padding:8px 12px;border-radius:4px}
.warnings ul{margin:4px 0 0;padding-left:20px}
.sev{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;border:1px solid currentColor}
.sev-critical{color:var(--critical)}.sev-warning{color:var(--warning)}.sev-info{color:var(--info)}.sev-unknown{color:var(--muted)}
tr.row-sev-critical td:first-child{box-shadow:inset 3px 0 var(--critical)}tr.row-sev-warning td:first-child{box-shadow:inset 3px 0 var(--warning)}tr.row-sev-info td:first-child{box-shadow:inset 3px 0 var(--info)}
td.subject{min-width:200px;word-break:normal;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:baseline}
th{vertical-align:bottom}th.num{text-align:right}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);background:var(--panel)}
th[data-sort]{cursor:pointer;user-select:none}th[data-sort]:hover{color:var(--fg)}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.num{text-align:right;font-variant-numeric:tabular-nums}
.evidence{color:var(--muted);margin-top:2px;font-size:11.5px}.evidence span{margin-right:10px;white-space:nowrap}
.counter-columns{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}table.counters{width:auto;min-width:300px;flex:1}tr.zero td{color:var(--muted)}
.health{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.score{min-width:150px;padding:12px 16px;border-radius:8px;background:var(--panel);border:1px solid var(--line);border-left:6px solid var(--muted);text-align:center}
.score .value{font-size:40px;font-weight:700;display:block;line-height:1.1}.score .of{color:var(--muted)}.score .class{display:block;font-weight:600;text-transform:uppercase;letter-spacing:.05em;margin-top:4px}
.hc-excellent,.hc-good{border-left-color:var(--ok)}.hc-excellent .class,.hc-good .class{color:var(--ok)}
.hc-fair{border-left-color:var(--fair)}.hc-fair .class{color:var(--fair)}
.hc-poor,.hc-critical{border-left-color:var(--critical)}.hc-poor .class,.hc-critical .class{color:var(--critical)}
table.components{width:auto;flex:1}meter{width:120px}
.health .scope{flex:1 1 260px;max-width:420px}.health .scope p{margin:0 0 6px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
figure.chart{margin:12px 0 0;padding:10px 12px;border:1px solid var(--line);border-radius:6px;background:var(--panel);break-inside:avoid}
figure.chart figcaption{font-weight:600;margin-bottom:6px}
.plot{position:relative}canvas{display:block;width:100%;height:220px}
.legend{font-size:12px;color:var(--muted);margin-top:4px}.legend .key{margin-right:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.s0{background:var(--s0)}.s1{background:var(--s1)}.s2{background:var(--s2)}.s3{background:var(--s3)}
.tip{position:absolute;pointer-events:none;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:4px;padding:4px 8px;font-size:12px;white-space:nowrap;box-shadow:0 2px 6px rgba(0,0,0,.2);display:none;z-index:1}
footer{margin-top:32px;color:var(--muted);font-size:12px}
@media print{:root{color-scheme:light;--bg:#fff;--fg:#000;--muted:#555;--line:#bbb;--panel:#fff;--grid:#ddd;--s0:#1f5fcf;--s1:#c8761f;--s2:#b02a2a;--s3:#21804f;--info:#1f5fcf;--warning:#9a6400;--critical:#b02a2a;--ok:#21804f;--fair:#9a6400}
nav,.tip{display:none}main{max-width:none;padding:0}section{break-inside:auto}tr,figure{break-inside:avoid}h2{break-after:avoid}.charts{grid-template-columns:1fr 1fr}}
`;

/** Draws the charts from the JSON block, sorts tables on header clicks. Plain ES5-ish JavaScript, no template literals. */
const SCRIPT = String.raw`
(function () {
  'use strict';
  var node = document.getElementById('report-data');
  var data = JSON.parse((node && node.textContent) || '{"starts":[],"ends":[],"charts":[]}');
  var canvases = Array.prototype.slice.call(document.querySelectorAll('canvas[data-chart]'));

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888'; }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function timeLabel(ms, long) {
    var d = new Date(ms);
    var t = pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes()) + ':' + pad2(d.getUTCSeconds());
    return long ? d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' + t : t;
  }
  function fixed(x) { var a = Math.abs(x); return a === 0 ? '0' : a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(2); }
  function fmt(unit, x) {
    if (x === null || x === undefined || !isFinite(x)) return '-';
    if (unit === 'percent') return fixed(x) + ' %';
    if (unit === 'ms') return fixed(x) + ' ms';
    if (unit === 'score') return x.toFixed(x % 1 ? 1 : 0);
    if (unit === 'bps') {
      var units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
      var u = 0;
      while (Math.abs(x) >= 1000 && u < units.length - 1) { x /= 1000; u++; }
      return fixed(x) + ' ' + units[u];
    }
    return fixed(x);
  }
  function niceMax(x) {
    if (!(x > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(x) / Math.LN10));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= x) return steps[i] * p;
    return 10 * p;
  }

  function draw(canvas) {
    var spec = data.charts[Number(canvas.getAttribute('data-index'))];
    if (!spec) throw new Error('no data for chart ' + canvas.getAttribute('data-chart'));
    var rect = canvas.getBoundingClientRect();
    var w = Math.max(200, Math.round(rect.width || 600));
    var h = Math.max(120, Math.round(rect.height || 220));
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2d context');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var starts = data.starts, ends = data.ends, n = starts.length;
    var left = 70, right = 12, top = 10, bottom = 26;
    var pw = w - left - right, ph = h - top - bottom;
    // One slot per window, in order: sparse captures (hours or years between bursts) stay readable.
    var sw = pw / Math.max(1, n);
    function XI(i) { return left + i * sw; }
    function XC(i) { return left + (i + 0.5) * sw; }
    function adjacent(i) { return i > 0 && starts[i] <= ends[i - 1]; }
    var maxV = 0;
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > maxV) maxV = v; }); });
    var yMax = spec.yMax || niceMax(maxV);
    function Y(v) { return top + ph - Math.max(0, Math.min(v, yMax)) / yMax * ph; }

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = cssVar('--grid');
    ctx.fillStyle = cssVar('--muted');
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var g = 0; g <= 4; g++) {
      var gv = yMax * g / 4, gy = Math.round(Y(gv)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, gy); ctx.lineTo(left + pw, gy); ctx.stroke();
      ctx.fillText(fmt(spec.unit, gv), left - 6, gy);
    }
    // Skipped time between windows: dashed separators (not when there are too many to see).
    var gaps = [];
    for (var q = 1; q < n; q++) if (!adjacent(q)) gaps.push(q);
    if (gaps.length && gaps.length <= 80 && sw >= 3) {
      ctx.save();
      ctx.setLineDash([3, 3]);
      ctx.strokeStyle = cssVar('--muted');
      ctx.globalAlpha = 0.6;
      gaps.forEach(function (i) { var gx = Math.round(XI(i)) + 0.5; ctx.beginPath(); ctx.moveTo(gx, top); ctx.lineTo(gx, top + ph); ctx.stroke(); });
      ctx.restore();
    }
    // Time labels under window slots, skipping those that would overlap.
    ctx.textBaseline = 'top';
    ctx.fillStyle = cssVar('--muted');
    var step = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / 120))));
    var lastRight = -Infinity, lastDay = '';
    for (var k = 0; k < n; k += step) {
      var day = timeLabel(starts[k], true).slice(0, 10);
      var label = timeLabel(starts[k], day !== lastDay);
      var lw = ctx.measureText(label).width;
      var lx = Math.min(Math.max(XC(k) - lw / 2, left), left + pw - lw);
      if (lx < lastRight + 12) continue;
      ctx.textAlign = 'left';
      ctx.fillText(label, lx, top + ph + 6);
      lastRight = lx + lw;
      lastDay = day;
    }
    ctx.strokeStyle = cssVar('--line');
    ctx.beginPath(); ctx.moveTo(left + 0.5, top); ctx.lineTo(left + 0.5, top + ph + 0.5); ctx.lineTo(left + pw, top + ph + 0.5); ctx.stroke();

    spec.series.forEach(function (s, si) {
      var color = cssVar('--s' + (si % 4));
      ctx.fillStyle = color;
      ctx.strokeStyle = color;
      var i;
      if (spec.kind === 'bar') {
        var gap = sw > 6 ? Math.max(1, sw * 0.12) : 0;
        for (i = 0; i < n; i++) {
          var v = s.values[i];
          if (v === null) continue;
          var y = Y(v);
          ctx.fillRect(XI(i) + gap, y, Math.max(1, sw - 2 * gap), Math.max(v > 0 ? 1 : 0, top + ph - y));
        }
        return;
      }
      ctx.lineWidth = 1.75;
      ctx.beginPath();
      for (i = 0; i < n; i++) {
        var vi = s.values[i];
        if (vi === null) continue;
        if (adjacent(i) && s.values[i - 1] !== null) ctx.lineTo(XC(i), Y(vi)); else ctx.moveTo(XC(i), Y(vi));
      }
      ctx.stroke();
      for (i = 0; i < n; i++) {
        var vd = s.values[i];
        if (vd === null) continue;
        var alone = !(adjacent(i) && s.values[i - 1] !== null) && !(i + 1 < n && adjacent(i + 1) && s.values[i + 1] !== null);
        if (n > 120 && !alone) continue;
        if (spec.unit === 'score') ctx.fillStyle = cssVar(vd >= 75 ? '--ok' : vd >= 65 ? '--fair' : '--critical');
        ctx.beginPath(); ctx.arc(XC(i), Y(vd), n > 120 ? 1.5 : 2.75, 0, Math.PI * 2); ctx.fill();
      }
    });
    canvas._chart = { spec: spec, left: left, sw: sw, n: n };
    canvas.setAttribute('data-drawn', 'true');
  }

  function drawAll() {
    canvases.forEach(function (c) {
      try { draw(c); } catch (err) { c.setAttribute('data-error', String(err && err.message || err)); console.error('chart ' + c.getAttribute('data-chart') + ': ' + (err && err.message || err)); }
    });
  }

  function attachTip(canvas) {
    var tip = document.createElement('div');
    tip.className = 'tip';
    canvas.parentNode.appendChild(tip);
    canvas.addEventListener('mousemove', function (ev) {
      var c = canvas._chart;
      if (!c) return;
      var rect = canvas.getBoundingClientRect();
      var x = ev.clientX - rect.left;
      var i = Math.floor((x - c.left) / c.sw);
      if (i < 0 || i >= c.n) { tip.style.display = 'none'; return; }
      tip.textContent = '';
      var head = document.createElement('div');
      head.textContent = timeLabel(data.starts[i], true) + ' - ' + timeLabel(data.ends[i], false) + ' UTC';
      tip.appendChild(head);
      c.spec.series.forEach(function (s) {
        var line = document.createElement('div');
        line.textContent = s.name + ': ' + fmt(c.spec.unit, s.values[i]);
        tip.appendChild(line);
      });
      tip.style.display = 'block';
      var tx = x + 12;
      if (tx + tip.offsetWidth > rect.width) tx = x - tip.offsetWidth - 12;
      tip.style.left = Math.max(0, tx) + 'px';
      tip.style.top = Math.max(0, ev.clientY - rect.top - 10) + 'px';
    });
    canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  }

  function sortable(table) {
    var heads = Array.prototype.slice.call(table.querySelectorAll('thead th'));
    heads.forEach(function (th, col) {
      var kind = th.getAttribute('data-sort');
      if (!kind) return;
      function sort() {
        var desc = th.getAttribute('aria-sort') !== 'descending';
        heads.forEach(function (o) { o.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var va = a.cells[col] ? a.cells[col].getAttribute('data-v') || '' : '';
          var vb = b.cells[col] ? b.cells[col].getAttribute('data-v') || '' : '';
          var r = kind === 'num' ? (Number(va) || 0) - (Number(vb) || 0) : va < vb ? -1 : va > vb ? 1 : 0;
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sort(); } });
    });
  }

  drawAll();
  canvases.forEach(attachTip);
  Array.prototype.slice.call(document.querySelectorAll('table.sortable')).forEach(sortable);
  var timer = 0;
  window.addEventListener('resize', function () { clearTimeout(timer); timer = setTimeout(drawAll, 100); });
  window.addEventListener('beforeprint', drawAll);
  window.addEventListener('afterprint', drawAll);
  if (window.matchMedia) {
    var dark = window.matchMedia('(prefers-color-scheme: dark)');
    if (dark.addEventListener) dark.addEventListener('change', drawAll);
  }
})();
`;

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64');
const CSP = `default-src 'none'; script-src 'sha256-${sha256(SCRIPT)}'; style-src 'sha256-${sha256(STYLE)}'; img-src data:; base-uri 'none'; form-action 'none'`;

// ---------------------------------------------------------------- page

/** The whole report as one self-contained HTML page. */
export function renderHtml(report: Report): string {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const windows = report.windows ?? [];
  const data = buildCharts(windows);
  const figures = data.charts.map((c, i) => [c, chartFigure(c, i)] as const);
  const healthChart = figures.filter(([c]) => c.id === 'health-score').map(([, html]) => html).join('');
  const otherCharts = figures.filter(([c]) => c.id !== 'health-score').map(([, html]) => html).join('\n');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const path = sourceLabel(String(report.source?.path ?? ''));
  const name = path.split(/[\\/]/).pop() || path;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
  const health = healthSection(report.healthScore, healthChart, report.findings ?? []);
  const sections = [
    summarySection(report),
    health,
    otherCharts ? `<section id="charts"><h2>Per-window charts</h2><p class="muted">One slot per window, in time order (UTC); a dashed line marks time skipped because no packet fell in it. Hover for values.</p><div class="charts">\n${otherCharts}\n</div></section>` : '',
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    findingsSection(report.findings ?? []),
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    flowsSection(report.flows ?? []),
    talkersSection(windows),
    namesSection(windows),
    statsSection(report.stats),
    countersSection(report.counters),
  ];
  const nav: Array<[string, string]> = [['summary', 'Summary'], ['health', 'Health'], ['charts', 'Charts'], ['findings', 'Findings'],
    ['flows', 'Flows'], ['talkers', 'Talkers'], ['names', 'Names'], ['stats', 'Distributions'], ['counters', 'Counters']];
  const present = nav.filter(([id]) => sections.some((s) => s.startsWith(`<section id="${id}"`)));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pcap-analyzer">
<title>PCAP Analyzer report: ${e(name)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header><h1>PCAP Analyzer report</h1><p class="muted"><code>${e(path)}</code></p></header>
<nav>${present.map(([id, label]) => `<a href="#${id}">${label}</a>`).join('')}</nav>
${sections.filter(Boolean).join('\n')}
<footer>Generated by pcap-analyzer from a <code>${e(report.schema)}</code> report. Times are UTC (packet time).</footer>
</main>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
