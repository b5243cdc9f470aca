/**
 * `analyze`: read a whole capture through the pipeline and build the report.
 */
import type { Config } from '../../common/config.js';
import { isoTime } from '../../common/address.js';
import { noun, plural } from '../../common/wording.js';
import { REPORT_SCHEMA, type Finding, type Report, type ReportFlow, type WindowSummary } from '../../common/report.js';
import type { PacketSpan } from '../core/packet-span.js';
import { CaptureReader, NEED_DATA, RECORD, linkTypeName, type NextStatus, type ReaderFigures } from '../capture/index.js';
import { Pipeline } from '../pipeline.js';
import { RangeStats } from '../analyzers/lib/range-stats.js';
import { TopFlows } from '../flow/top-flows.js';
import type { WindowOutput } from '../window/window-engine.js';

export interface AnalyzeOptions {
  /** Called now and then with the fraction of the input read (when its size is known). */
  onProgress?: (fraction: number) => void;
  /** Largest single read from the input (tests). */
  maxReadBytes?: number;
  /** Receives each closed window and its findings; when given, the report's windows and findings stay empty. */
  onWindow?: (out: WindowOutput) => void;
  /** Flow-sharded worker threads (shard/resolveWorkers); 1 or absent: one pipeline in this thread. */
  workers?: number;
}

export interface AnalyzeResult {
  report: Report;
  /** Human-readable warnings (cut-short input, internal errors counted). */
  warnings: string[];
}

export async function analyzeCapture(path: string, config: Readonly<Config>, options: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  const reader = await CaptureReader.open(path, { ...config.input, ...(options.maxReadBytes ? { maxReadBytes: options.maxReadBytes } : {}) });
  const windows: WindowSummary[] = [];
  const findings: Finding[] = [];
  let top: TopFlows | undefined;
  let merged: RangeStats | undefined;
  const keep = options.onWindow ?? ((out: WindowOutput): void => { windows.push(out.summary); findings.push(...out.findings); });
  const pipeline = new Pipeline(config, {
    // stats and healthScore are merged from the windows, as the collector merges a sensor's (one code path).
    onWindow: (out) => { merged!.add(out.rangeInputs); keep(out); },
    flowListener: { onFlowEnd: (slot) => top!.onFlowEnd(slot) },
  });
  top = new TopFlows(pipeline.flows, config.report.topFlows, () => pipeline.clock.base, pipeline.names, config.analyzers.services.enabled);
  merged = new RangeStats(pipeline.distributionNames(), pipeline.analyzers.some((a) => a.id === 'health'));
  try {
    while (drain(reader, pipeline) === NEED_DATA) {
      await reader.fill();
      const fraction = reader.progress;
      if (options.onProgress && fraction !== undefined) options.onProgress(fraction);
    }
  } finally {
    await reader.close();
  }
  pipeline.finish();

  const { decodeErrors, undecoded } = pipeline.captureErrors(reader.capLenOverWireLen);
  return assembleReport(path, reader, {
    packets: pipeline.packets,
    bytes: pipeline.bytes,
    span: pipeline.span,
    decodeErrors,
    undecoded,
    flowsEvicted: pipeline.flows.evicted,
    conversationsForgotten: pipeline.flows.forgotten,
    counters: pipeline.counters(),
    flows: top.flowsByBytes(),
    unexpected: pipeline.unexpected,
    lastError: pipeline.lastError,
  }, windows, findings, merged, config);
}

/** What a report adds up over the whole input: one pipeline's, or flow-sharded workers' added up. */
export interface InputTotals {
  packets: number;
  bytes: number;
  span: PacketSpan;
  decodeErrors: Record<string, number>;
  undecoded: Record<string, number>;
  flowsEvicted: number;
  conversationsForgotten: number;
  counters: Record<string, number>;
  flows: ReportFlow[];
  /** Packets the guard caught an internal error on, and the first error. */
  unexpected: number;
  lastError: unknown;
}

/** The report and its warnings from what the input's reader and analysis gave. */
export function assembleReport(path: string, reader: ReaderFigures, totals: InputTotals, windows: WindowSummary[], findings: Finding[], merged: RangeStats, config: Readonly<Config>): AnalyzeResult {
  const warnings: string[] = [];
  if (reader.truncated) {
    warnings.push(`input is cut short: the record at byte offset ${reader.truncatedAt} is incomplete; analyzed the ${plural(reader.packets, 'complete packet')} before it`);
  }
  if (totals.unexpected) {
    warnings.push(`${plural(totals.unexpected, 'packet')} hit an internal error and ${noun(totals.unexpected, 'was', 'were')} skipped (first: ${String(totals.lastError)})`);
  }
  const hasPackets = totals.packets > 0;
  const span = totals.span;
  const report: Report = {
    schema: REPORT_SCHEMA,
    source: {
      path,
      format: reader.format,
      compressed: reader.compressed,
      linkTypes: [...new Set(reader.linkTypes.map(linkTypeName))],
    },
    capture: {
      packets: totals.packets,
      bytes: totals.bytes,
      first: hasPackets ? isoTime(span.firstSec, span.firstNsec) : null,
      last: hasPackets ? isoTime(span.lastSec, span.lastNsec) : null,
      durationSeconds: hasPackets ? round9(span.seconds) : 0,
      truncatedRecords: reader.truncated ? 1 : 0,
      decodeErrors: totals.decodeErrors,
      undecoded: totals.undecoded,
      flowsEvicted: totals.flowsEvicted,
      conversationsForgotten: totals.conversationsForgotten,
    },
    counters: totals.counters,
    flows: totals.flows,
    windows,
    findings,
    stats: merged.stats(),
  };
  const health = merged.healthScore(config);
  if (health) report.healthScore = health;
  return { report, warnings };
}

/**
 * Processes records until the reader needs more input or ends, and returns
 * which. The per-packet loop is a plain function, optimized on its own, not a
 * loop inside the async function that resumes once per chunk.
 */
function drain(reader: CaptureReader, pipeline: Pipeline): NextStatus {
  const rec = reader.record;
  for (;;) {
    const status = reader.next();
    if (status !== RECORD) return status;
    pipeline.process(rec);
  }
}

const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;
