/**
 * The text rendering of a report, for a terminal: what the capture is, its
 * health score and components, findings grouped by type (the most severe
 * first, a few examples each), latency percentiles, the windows with the worst
 * health, protocol counters and the top flows. Every line fits 80 columns.
 * Colours (ANSI SGR) only when the caller asks for them (`analyze` does on a
 * TTY without NO_COLOR). Strings from the capture (names, summaries) have their
 * control characters replaced, so a crafted DNS name cannot drive the terminal.
 */
import { findingSubject, flowText } from './report-csv.js';
import { HEALTH_SCOPE, securityFindingCounts, sourceLabel, type Finding, type FindingSeverity, type HealthScore, type QuantileStat, type Report, type WindowSummary } from './report.js';
import { duration, noun, plural } from './wording.js';

/** The terminal width every line fits. */
export const TEXT_WIDTH = 80;

/** Examples shown under each finding type. */
const EXAMPLES_PER_TYPE = 3;

/** Windows listed under "Worst windows". */
const WORST_WINDOWS = 5;

export interface TextOptions {
  /** ANSI colours (the caller decides: a TTY, NO_COLOR unset). */
  color?: boolean;
}

const SEVERITY_RANK: Record<FindingSeverity, number> = { critical: 3, warning: 2, info: 1 };
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- `s` comes from stored JSON: an unknown severity has no rank
const severityRank = (s: string): number => SEVERITY_RANK[s as FindingSeverity] ?? 0;

const SGR = { bold: '1', red: '31', yellow: '33', green: '32', cyan: '36', dim: '2' } as const;
type Tone = keyof typeof SGR;

interface Paint { (tone: Tone, text: string): string }

const paintWith = (color: boolean): Paint => (color
  ? (tone, text) => `\x1b[${SGR[tone]}m${text}\x1b[0m`
  : (_tone, text) => text);

const SEVERITY_TONE: Record<string, Tone> = { critical: 'red', warning: 'yellow', info: 'cyan' };
const HEALTH_TONE: Record<string, Tone> = { excellent: 'green', good: 'green', fair: 'yellow', poor: 'red', critical: 'red' };

/** C0 and C1 control characters (ESC included): never written to a terminal from a capture. */
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;
const clean = (s: unknown): string => String(s).replace(CONTROL, '?');

const num = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 3 });

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}

/** Seconds as milliseconds, with enough digits for sub-millisecond values. */
function msText(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '-';
  const ms = seconds * 1000;
  return ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(0);
}

/** `2010-07-04T20:24:10.000000Z` as `2010-07-04 20:24:10`. */
const timeText = (iso: string): string => clean(iso).replace('T', ' ').replace(/(\.\d+)?Z$/, '');

/**
 * Words of `text` on lines of at most `width` columns, each line after
 * `indent` (`next` after the first; a line that fits is kept as it is); a word longer than a line (an IPv6 flow, a long path) is cut.
 */
export function wrap(text: string, indent: string, next = indent, width = TEXT_WIDTH): string[] {
  if (indent.length + text.length <= width) return [indent + text];
  const room = Math.max(10, width - Math.max(indent.length, next.length));
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > room) {
      if (line) { lines.push(line); line = ''; }
      lines.push(word.slice(0, room));
      word = word.slice(room);
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= room) line += ` ${word}`;
    else { lines.push(line); line = word; }
  }
  if (line) lines.push(line);
  return lines.map((l, i) => (i ? next : indent) + l);
}

function healthComponentValue(name: string, value: number | null): string {
  if (value === null || !Number.isFinite(value)) return 'no data';
  if (name === 'retransmissions' || name === 'packet_loss') return `${value.toFixed(2)} %`;
  if (name === 'rtt' || name === 'dns' || name === 'jitter') return `${duration(value)} p90`;
  return num(value);
}

function summaryLines(r: Report): string[] {
  const c = r.capture;
  const lines = wrap(`PCAP Analyzer report for ${clean(sourceLabel(r.source.path))}`, '');
  lines.push(...wrap(`format     ${r.source.format}${r.source.compressed ? ' (gzip)' : ''}, link types ${r.source.linkTypes.map(clean).join(', ') || 'none'}`, '  '));
  lines.push(`  packets    ${num(c.packets)} (${bytesText(c.bytes)})`);
  if (c.first && c.last) {
    lines.push(`  first      ${clean(c.first)}`);
    lines.push(`  last       ${clean(c.last)} (${c.durationSeconds.toFixed(3)} s)`);
  }
  if (r.windows.length) {
    const seconds = (Date.parse(r.windows[0]!.end) - Date.parse(r.windows[0]!.start)) / 1000;
    lines.push(`  windows    ${r.windows.length}${Number.isFinite(seconds) ? ` of ${num(seconds)} s` : ''}`);
  }
  if (c.truncatedRecords) lines.push('  WARNING    the input is cut short: the last record is incomplete');
  const errors = Object.entries(c.decodeErrors);
  if (errors.length) lines.push(...wrap(`malformed  ${errors.map(([k, v]) => `${clean(k)}=${v}`).join(', ')}`, '  '));
  const undecoded = Object.entries(c.undecoded);
  if (undecoded.length) lines.push(...wrap(`undecoded  ${undecoded.map(([k, v]) => `${clean(k)}=${v}`).join(', ')}`, '  '));
  if (c.flowsEvicted) lines.push(`  WARNING    ${num(c.flowsEvicted)} ${noun(c.flowsEvicted, 'flow')} evicted early (flow table full)`);
  if (c.conversationsForgotten) {
    lines.push(...wrap(`WARNING    ${num(c.conversationsForgotten)} ended ${noun(c.conversationsForgotten, 'conversation')} forgotten (flows.endedConversations):`
      + ' stream counts may exceed Wireshark\'s', '  ', '             '));
  }
  return lines;
}

/** The score, the security findings beside it and what the score rates, then its components. */
function healthLines(health: HealthScore | undefined, findings: readonly Finding[], paint: Paint): string[] {
  if (!health) return [];
  const tone = HEALTH_TONE[health.class] ?? 'bold';
  const security = securityFindingCounts(findings);
  const lines = [`${paint('bold', 'Health')}  ${paint(tone, `${health.score} / 100 ${clean(health.class)}`)}`];
  lines.push(`  security findings  ${paint(security.critical ? 'red' : 'green', `${num(security.critical)} critical`)}, `
    + `${paint(security.warning ? 'yellow' : 'green', `${num(security.warning)} warning`)}`);
  lines.push(...wrap(HEALTH_SCOPE, '  ').map((l) => paint('dim', l)));
  lines.push(`  ${'component'.padEnd(16)} ${'value'.padEnd(16)} ${'penalty'.padStart(7)} ${'weight'.padStart(6)}`);
  for (const c of health.components) {
    const name = clean(c.name);
    lines.push(`  ${name.padEnd(16)} ${healthComponentValue(name, c.value).padEnd(16)} ${num(c.penalty).padStart(7)} ${num(c.weight).padStart(6)}`);
  }
  return lines;
}

/** Findings of one type, most severe first, then in time order. */
interface FindingGroup { type: string; findings: Finding[]; worst: number }

function groupFindings(findings: readonly Finding[]): FindingGroup[] {
  const byType = new Map<string, Finding[]>();
  for (const f of findings) {
    const list = byType.get(f.type);
    if (list) list.push(f); else byType.set(f.type, [f]);
  }
  const groups = [...byType].map(([type, list]): FindingGroup => {
    list.sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.window.start.localeCompare(b.window.start));
    return { type, findings: list, worst: severityRank(list[0]!.severity) };
  });
  return groups.sort((a, b) => b.worst - a.worst || b.findings.length - a.findings.length || a.type.localeCompare(b.type));
}

function severityCounts(findings: readonly Finding[], paint: Paint): string {
  return (['critical', 'warning', 'info'] as const)
    .map((s) => [s, findings.filter((f) => f.severity === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => paint(SEVERITY_TONE[s]!, `${n} ${s}`))
    .join(', ');
}

function findingLines(findings: readonly Finding[], paint: Paint): string[] {
  const lines = [`${paint('bold', 'Findings')}  ${findings.length ? `${findings.length} (${severityCounts(findings, paint)})` : 'none'}`];
  for (const g of groupFindings(findings)) {
    lines.push(`  ${paint('bold', clean(g.type))}  ${g.findings.length} (${severityCounts(g.findings, paint)})`);
    for (const f of g.findings.slice(0, EXAMPLES_PER_TYPE)) {
      const severity = paint(SEVERITY_TONE[f.severity] ?? 'bold', clean(f.severity).padEnd(8));
      const head = wrap(`${timeText(f.window.start)}  ${clean(findingSubject(f))}`, ' '.repeat(13));
      lines.push(`    ${severity} ${head[0]!.trim()}`, ...head.slice(1));
      lines.push(...wrap(clean(f.summary), '      '));
    }
    const more = g.findings.length - EXAMPLES_PER_TYPE;
    if (more > 0) lines.push(paint('dim', `    ... ${more} more (all of them: --format json, csv or html)`));
  }
  return lines;
}

/** Wireshark field names of the latency distributions, with what they measure. */
const LATENCY_NAMES: Record<string, string> = { 'tcp.analysis.ack_rtt': 'TCP RTT', 'dns.time': 'DNS response' };

function latencyLines(stats: Record<string, QuantileStat> | undefined): string[] {
  const entries = Object.entries(stats ?? {});
  if (!entries.length) return [];
  const lines = ['Latency (ms)'];
  const cols = ['samples', 'p50', 'p90', 'p99', 'max'];
  lines.push(`  ${''.padEnd(30)}${cols.map((c) => c.padStart(9)).join('')}`);
  for (const [field, q] of entries) {
    const label = `${LATENCY_NAMES[field] ?? ''} ${clean(field)}`.trim().slice(0, 30);
    const values = [num(q.count), msText(q.p50), msText(q.p90), msText(q.p99), msText(q.max)];
    lines.push(`  ${label.padEnd(30)}${values.map((v) => v.padStart(9)).join('')}`);
  }
  return lines;
}

function worstWindowLines(windows: readonly WindowSummary[], findings: readonly Finding[], paint: Paint): string[] {
  const scored = windows.filter((w) => w.healthScore !== null && Number.isFinite(w.healthScore));
  if (!scored.length) return [];
  const findingsPerWindow = new Map<string, number>();
  for (const f of findings) findingsPerWindow.set(f.window.start, (findingsPerWindow.get(f.window.start) ?? 0) + 1);
  const worst = [...scored].sort((a, b) => a.healthScore! - b.healthScore! || a.start.localeCompare(b.start)).slice(0, WORST_WINDOWS);
  const lines = [`${paint('bold', 'Worst windows by health')}  (${worst.length} of ${windows.length})`];
  lines.push(`  ${'start (UTC)'.padEnd(19)} ${'health'.padStart(6)} ${'packets'.padStart(12)} ${'bytes'.padStart(11)} ${'findings'.padStart(9)}`);
  for (const w of worst) {
    lines.push(`  ${timeText(w.start).padEnd(19)} ${String(w.healthScore).padStart(6)} ${num(w.packets).padStart(12)} ${bytesText(w.bytes).padStart(11)} ${num(findingsPerWindow.get(w.start) ?? 0).padStart(9)}`);
  }
  return lines;
}

/** Flows listed under "Top flows" (the JSON, CSV and HTML reports have all of report.flows). */
const TOP_FLOWS = 10;

function counterLines(counters: Record<string, number>): string[] {
  const entries = Object.entries(counters).filter(([, v]) => v > 0);
  if (!entries.length) return [];
  const width = Math.min(TEXT_WIDTH - 16, Math.max(...entries.map(([k]) => k.length)));
  return ['Protocols (frames; zero counters left out)',
    ...entries.map(([k, v]) => `  ${clean(k).slice(0, width).padEnd(width)}  ${num(v).padStart(12)}`)];
}

function flowLines(flows: Report['flows']): string[] {
  if (!flows.length) return [];
  const shown = flows.slice(0, TOP_FLOWS);
  const lines = [`Top ${plural(shown.length, 'flow')} by bytes${flows.length > shown.length ? ` (of ${num(flows.length)} in the JSON, CSV and HTML reports)` : ''}`];
  for (const f of shown) {
    const flow = clean(flowText(f));
    const service = [f.service, f.behaviour].filter((x) => x !== undefined).map((x) => clean(x)).join(' ');
    const detail = `${num(f.packets)} pkts  ${bytesText(f.bytes)}  ${clean(f.state)}${service ? `  ${service}` : ''}`;
    const oneLine = `  ${flow}  ${detail}`;
    if (oneLine.length <= TEXT_WIDTH) lines.push(oneLine);
    else lines.push(...wrap(flow, '  ', '      '), `      ${detail}`);
  }
  return lines;
}

/** A human summary of a report, for an 80-column terminal. */
export function renderText(r: Report, options: TextOptions = {}): string {
  const paint = paintWith(options.color === true);
  const sections = [
    summaryLines(r),
    healthLines(r.healthScore, r.findings, paint),
    findingLines(r.findings, paint),
    latencyLines(r.stats),
    worstWindowLines(r.windows, r.findings, paint),
    counterLines(r.counters),
    flowLines(r.flows),
  ].filter((s) => s.length);
  return `${sections.map((s) => s.join('\n')).join('\n\n')}\n`;
}
