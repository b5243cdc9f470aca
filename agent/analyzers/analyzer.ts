/**
 * The analyzer interface. One analyzer per file; `registry.ts` lists them.
 * Hooks run on the per-packet path (`onPacket`, flow start/end: synchronous,
 * no allocation, never throw on packet data) or at window close (`closeWindow`:
 * plain data, may allocate). Disabled analyzers are not constructed.
 */
import type { Config } from '../../common/config.js';
import type { Finding, FindingSeverity } from '../../common/report.js';
import type { Decoder } from '../decode/decoder.js';
import type { PacketView } from '../decode/packet-view.js';
import type { EndReasonCode, FlowTable } from '../flow/index.js';
import type { PacketClock } from '../window/packet-clock.js';
import type { QuantileSummary } from '../window/quantiles.js';
import type { Networks } from './lib/networks.js';
import type { TcpPacketResult } from './tcp-result.js';

/** A window of packet time: [start, end) in seconds since the epoch, and the same in packet time (since clock.base). */
export interface WindowSpan {
  index: number;
  start: number;
  end: number;
  relStart: number;
  relEnd: number;
}

/** What an analyzer reports; the window engine adds the window and the stable id. */
export interface FindingDraft {
  type: string;
  severity: FindingSeverity;
  /** What makes this finding itself (with its type and window it gives the id), e.g. a flow or host. */
  key: string;
  summary: string;
  evidence: Record<string, number | string | boolean | null>;
  /** The flow it is about, as a live flow-table slot (resolved to addresses when reported). */
  flowSlot?: number;
  host?: string;
}

export type Metrics = Record<string, unknown>;

export interface AnalyzerContext {
  readonly config: Readonly<Config>;
  readonly flows: FlowTable;
  readonly clock: PacketClock;
  readonly decoder: Decoder;
  /** networks.internal, parsed once (security detectors). */
  readonly networks: Networks;
  /** Per-packet TCP sequence-analysis result, filled by the `tcp` analyzer before the others run. */
  readonly tcp: TcpPacketResult;
  report(finding: FindingDraft): void;
  /** Findings reported so far in the current window. */
  windowFindings(): readonly Finding[];
}

export interface Analyzer {
  /** Config key under `analyzers.`, and the key of its metrics in window summaries. */
  readonly id: string;
  /** Every decoded packet; `slot` is its flow (-1 when none) and `dir` its direction in the flow. */
  onPacket(v: PacketView, slot: number, dir: number): void;
  onFlowStart?(slot: number): void;
  onFlowEnd?(slot: number, reason: EndReasonCode): void;
  /** End of input, before the last window closes: report states still open. */
  finish?(span: WindowSpan): void;
  /** Closes a window: returns its metrics and resets per-window state. `earlier` holds metrics of analyzers that ran before. */
  closeWindow(span: WindowSpan, earlier: Readonly<Record<string, Metrics>>): Metrics;
  /** Whole-capture frame counters for the report, named after Wireshark fields. */
  counters?(): Record<string, number>;
  /** Whole-capture distributions for the report's `stats`. */
  stats?(): Record<string, QuantileSummary>;
  /** Whole-capture summary (e.g. the overall health score). */
  summary?(): Record<string, unknown>;
}

export type AnalyzerFactory = (ctx: AnalyzerContext) => Analyzer;
