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
import type { Finding, FindingType } from '../../common/report.js';
import type { FindingDraft, Metrics, WindowParticipant, WindowSpan } from '../core/window-types.js';
import type { Decoder } from '../decode/decoder.js';
import type { FrameRecord } from '../capture/frame-record.js';
import type { PacketView } from '../decode/packet-view.js';
import type { EndReasonCode, FlowTable } from '../flow/index.js';
import type { WindowFlowAccounting } from '../flow/flow-accounting.js';
import type { FlowNames } from '../flow/flow-names.js';
import type { PacketClock } from '../core/packet-clock.js';
import type { Networks } from './lib/networks.js';
import type { DnsMatch } from './lib/dns-match.js';
import type { AttemptEventCode } from '../flow/connection-attempts.js';
import type { TcpSequenceAnalysis } from '../flow/tcp-sequence.js';
import type { TcpPacketResult } from '../flow/tcp-result.js';

export type { FindingDraft, Metrics, WindowSpan } from '../core/window-types.js';

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
  /** Server names proved by payload (TLS server name, HTTP Host, DNS answers), per flow slot. */
  readonly names: FlowNames;
  /** The dns analyzer's dns.time for the current packet (set in its onPacket; analyzers after it in the registry read it). */
  readonly dnsMatch: DnsMatch;
  report(finding: FindingDraft): void;
  /**
   * `report` with the draft built only if the window keeps it (not over
   * report.maxFindingsPerType for `type`; over it, it is only counted in
   * findingsSuppressed, as `report` does). For findings that can come by the
   * thousand per window, whose strings would be built to be thrown away.
   */
  reportLazily(type: FindingType, draft: () => FindingDraft): void;
  /** Findings reported so far in the current window. */
  windowFindings(): readonly Finding[];
  /**
   * Flow-sharded analysis (issue 13): 'worker' in a worker's pipeline, which
   * sees only its host pairs' packets (an analyzer judging state that spans
   * workers leaves those findings to its coordinator instance and gives what
   * they need in `windowPart`), 'coordinator' in the merger's pipeline (sees
   * no packets, only `mergeWindow`), 'single' in one pipeline over the whole input.
   */
  readonly shardRole: ShardRole;
  /**
   * The current packet's index in the whole input (Infinity while a window
   * closes): where something was first seen, comparable across workers.
   */
  readonly packetOrder: number;
}

export type ShardRole = 'single' | 'worker' | 'coordinator';

export interface Analyzer extends WindowParticipant {
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
  // finish and closeWindow: see WindowParticipant.
  /** Whole-capture frame counters for the report, named after Wireshark fields (flow-sharded workers' counters are added up, unless `mergeCounters`). */
  counters?(): Record<string, number>;
  /**
   * A flow-sharded worker: a frame of another worker that may carry DNS answers
   * (shard/foreign-dns.ts), for state that follows every DNS answer of the
   * input (services' answer table). Not a packet of this pipeline: decode it
   * with a decoder of your own and count nothing.
   */
  onForeignDns?(rec: FrameRecord): void;
  /**
   * Flow-sharded analysis: every packet of the input in input order, with
   * `clock`, the input's clock over every packet (not ctx.clock). For figures
   * about the input itself (its silences, its timestamps going backwards) that
   * no worker, seeing only its flows, can give. Called on the coordinator's
   * instance as the reader reads (before any worker gets the packet), or,
   * where every worker reads the input file itself (`analyze` of a file), on
   * worker 1's instance after the worker has taken the packet, whose
   * `windowPart` then carries the figures. Either way the calls run ahead of
   * the window merges: keep figures per window until `mergeWindow` takes
   * them. Count nothing else (the workers count the packet).
   */
  onInputPacket?(rec: FrameRecord, clock: Readonly<PacketClock>): void;
  // Flow-sharded workers (issue 13): each worker runs every analyzer on its
  // flows; a coordinator merges the workers' windows into the window one
  // pipeline would have closed. An analyzer without `mergeWindow` cannot run
  // sharded (`--workers` above 1 is refused while it is enabled).
  /**
   * Worker side, right after `closeWindow`: what a merge needs beyond the
   * window's metrics (samples, per-key figures), structured-cloneable.
   */
  windowPart?(): unknown;
  /** Coordinator side: the window's metrics from every worker's, as one pipeline over all flows would have given them. */
  mergeWindow?(input: WindowMergeInput): Metrics;
  /** Coordinator side: the report's counters of this analyzer from each worker's `counters()` (worker order), when adding them up is not enough. */
  mergeCounters?(parts: ReadonlyArray<Record<string, number>>): Record<string, number>;
}

/** What `mergeWindow` gets: one entry per worker, in worker order. */
export interface WindowMergeInput {
  span: WindowSpan;
  metrics: readonly Metrics[];
  /** Each worker's `windowPart()` (undefined without one). */
  parts: readonly unknown[];
  /** The merged metrics of the analyzers before this one in the registry. */
  earlier: Readonly<Record<string, Metrics>>;
  /** The window's merged findings. */
  findings: readonly Finding[];
}

export type AnalyzerFactory = (ctx: AnalyzerContext) => Analyzer;
