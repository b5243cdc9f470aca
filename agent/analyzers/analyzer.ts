/**
 * The analyzer interface. One analyzer per file; `registry.ts` lists them.
 *
 * An analyzer subscribes to an event by having its hook (`onTcpSegment`,
 * `onDnsMessage`, ...): when the pipeline is built it makes one dispatch list
 * per event from the hooks the enabled analyzers have, so a packet reaches
 * only the analyzers that consume its kind. Event hooks run on the per-packet
 * path (synchronous, no allocation, never throw on packet data); window hooks
 * (`closeWindow`, `finish`) may allocate. Disabled analyzers are not constructed.
 */
import type { Config } from '../../common/config.js';
import type { MemoryBudget } from '../../common/memory-budget.js';
import type { Finding, FindingSeverity } from '../../common/report.js';
import type { Decoder } from '../decode/decoder.js';
import type { PacketView } from '../decode/packet-view.js';
import type { EndReasonCode, FlowTable } from '../flow/index.js';
import type { WindowFlowAccounting } from '../window/flow-accounting.js';
import type { PacketClock } from '../window/packet-clock.js';
import type { QuantileSummary } from '../window/quantiles.js';
import type { Networks } from './lib/networks.js';
import type { AttemptEventCode } from '../flow/connection-attempts.js';
import type { TcpSequenceAnalysis } from '../flow/tcp-sequence.js';
import type { TcpPacketResult } from '../flow/tcp-result.js';

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
  /** memory.budgetMB: detectors size their key tables from it at construction (`memory.keys(...)`). */
  readonly memory: MemoryBudget;
  /** networks.internal, parsed once (security detectors). */
  readonly networks: Networks;
  /** Wireshark's TCP sequence analysis (flow stage): its per-segment result comes with `onTcpSegment`. */
  readonly tcpSequence: TcpSequenceAnalysis;
  /**
   * The current window's flows and their packets and bytes per direction (from
   * the flow table's counters): read at `closeWindow`, and in `onFlowEnd` for a
   * flow still in `windowFlows.active`.
   */
  readonly windowFlows: WindowFlowAccounting;
  report(finding: FindingDraft): void;
  /** Findings reported so far in the current window. */
  windowFindings(): readonly Finding[];
}

export interface Analyzer {
  /** Config key under `analyzers.`, and the key of its metrics in window summaries. */
  readonly id: string;
  // Events (see the README's architecture section for the list). `slot` is the
  // packet's flow (-1 when none) and `dir` its direction in the flow (flow/Dir).
  /** Every decoded packet, IP or not. */
  onPacket?(v: PacketView, slot: number, dir: number): void;
  /** A decoded packet without a flow: not IP, or IP without a transport header (a non-first fragment, a truncated header). */
  onFlowlessPacket?(v: PacketView): void;
  /** A flow's first packet in the current window (it joins `ctx.windowFlows.active`). */
  onWindowFlow?(v: PacketView, slot: number, dir: number): void;
  /** A TCP segment of a flow, with Wireshark's sequence analysis of it. */
  onTcpSegment?(v: PacketView, slot: number, dir: number, tcp: TcpPacketResult): void;
  /** A UDP datagram of a flow. */
  onUdpDatagram?(v: PacketView, slot: number, dir: number): void;
  /** An ICMP or ICMPv6 message of a flow. */
  onIcmpMessage?(v: PacketView, slot: number, dir: number): void;
  /** A packet carrying a DNS message Wireshark dissects (over UDP, or over TCP unless the segment repeats payload). */
  onDnsMessage?(v: PacketView, slot: number, dir: number): void;
  onFlowStart?(slot: number): void;
  onFlowEnd?(slot: number, reason: EndReasonCode): void;
  /** A TCP connection attempt's progress or outcome (flow/connection-attempts.ts), at packet time `at`. */
  onConnectionAttempt?(slot: number, event: AttemptEventCode, at: number): void;
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
