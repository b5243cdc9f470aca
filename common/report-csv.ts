/**
 * The CSV rendering of a report: three tables in one text, each after a
 * `# flows` / `# windows` / `# findings` line and separated by a blank line.
 * Fields are quoted as RFC 4180 says (comma, quote, CR or LF: quoted, quotes
 * doubled); lines end with LF. Strings that a spreadsheet would take for a
 * formula (leading = + - @, tab or CR) get a leading single quote: captures
 * carry attacker-chosen names (DNS, hosts) that end up in these cells.
 */
import type { Finding, FlowRef, Report, ReportFlow, WindowSummary } from './report.js';

/** Columns of `report.flows`, in the report's order; keys a later schema adds follow, in order of appearance. */
const FLOW_COLUMNS: ReadonlyArray<keyof ReportFlow> = [
  'proto', 'client', 'clientPort', 'server', 'serverPort', 'packets', 'bytes', 'first', 'last', 'state', 'stream',
  // Added by issue 16 (names): after the original columns, so their positions stay.
  'service', 'serverName', 'serverNameSource', 'behaviour',
];

const WINDOW_COLUMNS = [
  'start', 'end', 'packets', 'bytes', 'flows.active', 'flows.new', 'flows.closed', 'healthScore', 'outOfOrderTimestamps',
] as const;

const FINDING_COLUMNS = ['id', 'type', 'severity', 'window.start', 'window.end', 'flow/host', 'summary', 'evidence'] as const;

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field: null/undefined empty, numbers and booleans as they are, objects as JSON, strings neutralized and quoted as needed. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  let s = typeof value === 'string' ? value : JSON.stringify(value);
  if (FORMULA_START.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csvRow = (fields: readonly unknown[]): string => fields.map(csvField).join(',');

/** `tcp 10.0.0.1:1234 -> 10.0.0.2:80`; ports only for TCP and UDP. */
export function flowText(f: FlowRef): string {
  const ep = (addr: string, port: number): string => (String(addr).includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
  return f.proto === 'tcp' || f.proto === 'udp'
    ? `${f.proto} ${ep(f.client, f.clientPort)} -> ${ep(f.server, f.serverPort)}`
    : `${f.proto} ${f.client} -> ${f.server}`;
}

/** The flow of a finding, its host, or both. */
export function findingSubject(f: Finding): string {
  const flow = f.flow ? flowText(f.flow) : '';
  if (flow && f.host) return `${flow} (${f.host})`;
  return flow || (f.host ?? '');
}

function flowsTable(flows: readonly ReportFlow[]): string[] {
  const columns: string[] = [...FLOW_COLUMNS];
  const known = new Set(columns);
  for (const f of flows) for (const k of Object.keys(f)) if (!known.has(k)) { known.add(k); columns.push(k); }
  const rows = flows.map((f) => csvRow(columns.map((c) => (f as unknown as Record<string, unknown>)[c])));
  return [csvRow(columns), ...rows];
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The `<analyzer>.<metric>` columns: every top-level metric that is a number
 * (or null, as a percentile without samples is) in some window. Nested maps
 * (per code, per flow) and lists are left to the JSON report: their keys are
 * data, not columns.
 */
export function windowMetricColumns(windows: readonly WindowSummary[]): string[] {
  const columns = new Set<string>();
  for (const w of windows) {
    if (!isPlainObject(w.metrics)) continue;
    for (const [analyzer, metrics] of Object.entries(w.metrics)) {
      if (!isPlainObject(metrics)) continue;
      for (const [name, value] of Object.entries(metrics)) {
        if (typeof value === 'number' || value === null) columns.add(`${analyzer}.${name}`);
      }
    }
  }
  return [...columns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function metricValue(w: WindowSummary, column: string): unknown {
  const dot = column.indexOf('.');
  const m = isPlainObject(w.metrics) ? w.metrics[column.slice(0, dot)] : undefined;
  const v = isPlainObject(m) ? m[column.slice(dot + 1)] : undefined;
  return typeof v === 'number' ? v : null;
}

function windowsTable(windows: readonly WindowSummary[]): string[] {
  const metricColumns = windowMetricColumns(windows);
  const rows = windows.map((w) => csvRow([
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    w.start, w.end, w.packets, w.bytes, w.flows?.active, w.flows?.new, w.flows?.closed, w.healthScore, w.outOfOrderTimestamps,
    ...metricColumns.map((c) => metricValue(w, c)),
  ]));
  return [csvRow([...WINDOW_COLUMNS, ...metricColumns]), ...rows];
}

function findingsTable(findings: readonly Finding[]): string[] {
  const rows = findings.map((f) => csvRow([
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    f.id, f.type, f.severity, f.window?.start, f.window?.end, findingSubject(f), f.summary, JSON.stringify(f.evidence ?? {}),
  ]));
  return [csvRow(FINDING_COLUMNS), ...rows];
}

/** The report's flows, windows and findings as three CSV tables in one text. */
export function renderCsv(report: Report): string {
  const parts = [
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    ['# flows', ...flowsTable(report.flows ?? [])],
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    ['# windows', ...windowsTable(report.windows ?? [])],
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a report or message read back from JSON (an upload, the store, an older version) can lack it
    ['# findings', ...findingsTable(report.findings ?? [])],
  ];
  return `${parts.map((lines) => lines.join('\n')).join('\n\n')}\n`;
}
