/**
 * One flow-sharded worker's analysis: a whole pipeline over the packets of
 * its flows, whose clock follows the reader's clock over every packet (so
 * windows close and flows expire where one pipeline over the whole input
 * would). It hands each closed window to the coordinator as a part, and at
 * the end what the report adds up (see window-merger.ts).
 *
 * Used in a worker thread (shard-thread.ts) and, for tests and small inputs,
 * in the reader's own thread.
 */
import type { Config } from '../../common/config.js';
import { RESERVED_MB } from '../../common/memory-budget.js';
import type { Finding, RangeInputs, WindowSummary } from '../../common/report.js';
import type { ReaderFigures } from '../capture/capture-reader.js';
import type { FrameRecord } from '../capture/frame-record.js';
import type { WindowSpan } from '../core/window-types.js';
import { Transport } from '../decode/index.js';
import { Pipeline } from '../pipeline.js';
import { TopFlows, type TopFlowEntry } from '../flow/top-flows.js';
import type { WindowOutput } from '../window/window-engine.js';

/** Clock flags a packet or mark carries (PacketClock.ahead, PacketClock.confirmedJump). */
export const CLOCK_AHEAD = 1;
export const CLOCK_CONFIRMED_JUMP = 2;

/** A worker's part of one window. */
export interface ShardWindow {
  span: WindowSpan;
  summary: WindowSummary;
  findings: Finding[];
  findingOrders: number[];
  findingRanks: number[];
  rangeInputs: RangeInputs;
  /** Each analyzer's `windowPart()`, in registry order (undefined without one). */
  parts: unknown[];
  /** The worker's totals as the window closed (the agent's per-window capture figures). */
  totals: ShardTotals;
  /** Packets of the input read when the window closed: up to the one that closed it, or all at the end. */
  inputPackets: number;
  /** Time of the window's first and last packet in this worker ([sec, nsec]), none without packets. */
  first?: [number, number];
  last?: [number, number];
}

/** A worker's running totals (from its start). */
export interface ShardTotals {
  packets: number;
  bytes: number;
  counters: Record<string, number>;
  /** Each analyzer's `counters()` (registry order; {} without one): the coordinator merges them per analyzer (WindowMerger.mergeCounters). */
  analyzerCounters: Array<Record<string, number>>;
  decodeErrors: Record<string, number>;
  undecoded: Record<string, number>;
  flowsActive: number;
  flowsEvicted: number;
  conversationsForgotten: number;
  unexpected: number;
}

/** A worker's figures at the end of the input. */
export interface ShardFinal extends ShardTotals {
  lastError: string | null;
  topFlows: TopFlowEntry[];
  /** Input index (seq) of the first packet of each stream this worker numbered, per numbering (tcp, udp, other), in local stream order. */
  streamStarts: { tcp: number[]; udp: number[]; other: number[] };
  /** Worker 1 of workers that read the input file themselves: what it read (the report's source and span). */
  input?: { reader: ReaderFigures; span: { firstSec: number; firstNsec: number; lastSec: number; lastNsec: number } };
}

export class ShardPipeline {
  readonly pipeline: Pipeline;
  private readonly top: TopFlows;
  private readonly streamStarts: ShardFinal['streamStarts'] = { tcp: [], udp: [], other: [] };
  /**
   * The record being handed over: its index in the input, the reader's clock
   * and its flags. Fields, not arguments: a double passed to a call that is
   * not inlined is boxed, an allocation per packet.
   */
  seq = 0;
  now = 0;
  flags = 0;
  private finishing = false;

  /** `workers`: how many workers share the input (each holds its share of the tables: workerShare). */
  constructor(config: Readonly<Config>, private readonly workers: number, timeBase: number, onWindow: (w: ShardWindow) => void, commitMemory = false) {
    let top: TopFlows | undefined;
    const starts = this.streamStarts;
    const pipeline = this.pipeline = new Pipeline(workerShare(config, workers), {
      onWindow: (out: WindowOutput) => onWindow(this.part(out)),
      flowListener: {
        onFlowStart: (slot: number) => {
          const flows = pipeline.flows;
          const proto = flows.proto[slot]!;
          const log = proto === Transport.TCP ? starts.tcp : proto === Transport.UDP ? starts.udp : starts.other;
          // A new stream number (a resumed conversation keeps its old one).
          if (flows.streamIndex[slot] === log.length) log.push(this.seq);
        },
        onFlowEnd: (slot: number) => top!.onFlowEnd(slot),
      },
      commitMemory,
      shardRole: 'worker',
    });
    top = this.top = new TopFlows(pipeline.flows, config.report.topFlows, () => pipeline.clock.base, pipeline.names, config.analyzers.services.enabled);
    if (!Number.isNaN(timeBase)) pipeline.setTimeBase(timeBase);
  }

  /** New analyzer thresholds (SIGHUP). */
  reconfigure(config: Readonly<Config>): void {
    this.pipeline.reconfigure(workerShare(config, this.workers));
  }

  /** `rec` is the input's packet `seq`, with the reader's clock `now` and `flags` (set these fields first). */
  packet(rec: FrameRecord): void {
    this.follow();
    this.pipeline.processShard(rec);
  }

  /** The input's clock moved on at packet `seq` of another worker (fields set as for `packet`). */
  mark(): void {
    this.follow();
    this.pipeline.advanceShard();
  }

  private follow(): void {
    const p = this.pipeline;
    p.windows.order = this.seq;
    p.clock.follow(this.now, (this.flags & CLOCK_AHEAD) !== 0, (this.flags & CLOCK_CONFIRMED_JUMP) !== 0);
  }

  /** `rec`, the input's packet `seq` (set that field first), another worker's, may carry DNS answers (foreign-dns.ts). */
  foreign(rec: FrameRecord): void {
    this.pipeline.windows.order = this.seq;
    this.pipeline.processForeign(rec);
  }

  /** End of input after `packets` packets in all, the input's clock in `now` and `flags`: the last windows close (through onWindow), then this worker's totals. */
  finish(packets: number): ShardFinal {
    this.seq = packets;
    this.finishing = true;
    const p = this.pipeline;
    // The input's last clock (marks come only where something is due: this worker may not have heard it).
    p.clock.follow(this.now, (this.flags & CLOCK_AHEAD) !== 0, (this.flags & CLOCK_CONFIRMED_JUMP) !== 0);
    p.finishAt(packets);
    return {
      ...this.totals(),
      lastError: p.unexpected ? String(p.lastError) : null,
      topFlows: this.top.entries(),
      streamStarts: this.streamStarts,
    };
  }

  totals(): ShardTotals {
    const p = this.pipeline;
    const { decodeErrors, undecoded } = p.captureErrors(0);
    return {
      packets: p.packets,
      bytes: p.bytes,
      counters: p.counters(),
      analyzerCounters: p.analyzers.map((a) => a.counters?.() ?? {}),
      decodeErrors,
      undecoded,
      flowsActive: p.flows.active,
      flowsEvicted: p.flows.evicted,
      conversationsForgotten: p.flows.forgotten,
      unexpected: p.unexpected,
    };
  }

  private part(out: WindowOutput): ShardWindow {
    const p = this.pipeline;
    // While onWindow runs, the pipeline's windowSpan is the closing window's.
    const span = p.windowSpan;
    return {
      span: { ...p.windows.current },
      summary: out.summary,
      findings: out.findings,
      findingOrders: out.findingOrders,
      findingRanks: out.findingRanks,
      rangeInputs: out.rangeInputs,
      parts: p.analyzers.map((a) => a.windowPart?.()),
      totals: this.totals(),
      inputPackets: this.finishing ? this.seq : this.seq + 1,
      ...(span.empty ? {} : { first: [span.firstSec, span.firstNsec], last: [span.lastSec, span.lastNsec] }),
    };
  }
}

/**
 * One of `workers` workers' configuration: the flow table (flows.maxFlows,
 * and with it every analyzer's per-flow state) and the detectors' part of
 * memory.budgetMB split `workers` ways, so N workers together hold what one
 * pipeline would and the sensor stays within its memory budget. Host pairs
 * spread over the workers by hash, so each holds about its share of the
 * flows and keys. Talkers keeps analyzers.talkers.maxHosts whole in each
 * worker: its merge is then exact past maxHosts as long as no worker alone
 * passes it (a host talking to several workers' host pairs is in each).
 */
export function workerShare(config: Readonly<Config>, workers: number): Config {
  if (workers <= 1) return config;
  return {
    ...config,
    flows: { ...config.flows, maxFlows: Math.max(MIN_WORKER_FLOWS, Math.ceil(config.flows.maxFlows / workers)) },
    memory: { ...config.memory, budgetMB: RESERVED_MB + Math.max(0, config.memory.budgetMB - RESERVED_MB) / workers },
  };
}

/** flows.maxFlows' least value. */
const MIN_WORKER_FLOWS = 16;
