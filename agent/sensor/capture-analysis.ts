/**
 * What the agent's capture thread analyzes its packets with: one pipeline in
 * the capture thread, or (pipeline.workers above 1) flow-sharded worker
 * threads fed through rings, their windows merged (shard/). Either way the
 * capture thread gets each closed window with the totals as it closed.
 */
import type { Config } from '../../common/config.js';
import type { FrameRecord } from '../capture/frame-record.js';
import { PacketSpan } from '../core/packet-span.js';
import { Pipeline } from '../pipeline.js';
import type { ShardTotals } from '../shard/shard-pipeline.js';
import { ShardThreads, type ShardWorkerStats } from '../shard/shard-threads.js';
import { WindowMerger, sumCounts } from '../shard/window-merger.js';
import type { WindowOutput } from '../window/window-engine.js';

/** Running totals of the analysis. */
export interface AnalysisTotals {
  packets: number;
  bytes: number;
  /** Packets the analysis lost: the pipelines' guard (an internal error on a packet), and packets dropped on a worker's full ring. */
  agentDrops: number;
  flowsActive: number;
  flowsEvicted: number;
  conversationsForgotten: number;
  /** Decoder anomalies and internal errors (the readers' caplen count is the caller's). */
  decodeErrors: Record<string, number>;
  undecoded: Record<string, number>;
  /** The report's frame counters (Pipeline.counters). */
  counters: Record<string, number>;
}

/**
 * A closed window, the totals as it closed, the time span of its packets and,
 * sharded, how many packets of the input had been read when it closed
 * (undefined: the capture thread's count now).
 */
export type OnAnalysisWindow = (out: WindowOutput, totals: AnalysisTotals, span: PacketSpan, inputPackets: number | undefined) => void;

export interface CaptureAnalysis {
  process(rec: FrameRecord): void;
  /** No traffic: packet time follows the wall clock (epoch seconds less the grace period). */
  advanceTo(epochSeconds: number): void;
  reconfigure(config: Readonly<Config>): void;
  /** End of input: the last windows close (through onWindow). */
  finish(): Promise<void>;
  /** Totals now (packets and bytes); the rest as of the last closed window when sharded. */
  totals(): AnalysisTotals;
  /** Packet time in epoch seconds. */
  readonly clockEpoch: number;
  /** Analyzer ids of the key tables granted from the memory budget. */
  tableOwners(): string[];
  /** Per worker (empty with one pipeline). */
  workerStats(): ShardWorkerStats[];
  /** A worker failed (sharded): the capture ends with it. */
  readonly error: Error | undefined;
  /** Publishes what is held back for a batch (before waiting for input). */
  flush(): void;
}

/** One pipeline in the capture thread. */
export class SingleAnalysis implements CaptureAnalysis {
  readonly pipeline: Pipeline;
  readonly error = undefined;

  constructor(config: Readonly<Config>, onWindow: OnAnalysisWindow) {
    // While onWindow runs, the pipeline's windowSpan is the closing window's.
    this.pipeline = new Pipeline(config, { onWindow: (out) => onWindow(out, this.totals(), this.pipeline.windowSpan, undefined), commitMemory: true });
  }

  process(rec: FrameRecord): void { this.pipeline.process(rec); }
  advanceTo(epochSeconds: number): void { this.pipeline.advanceTo(epochSeconds); }
  reconfigure(config: Readonly<Config>): void { this.pipeline.reconfigure(config); }
  finish(): Promise<void> { this.pipeline.finish(); return Promise.resolve(); }
  flush(): void {}
  get clockEpoch(): number { return this.pipeline.clock.base + this.pipeline.clock.now; }
  tableOwners(): string[] { return this.pipeline.tableOwners(); }
  workerStats(): ShardWorkerStats[] { return []; }

  totals(): AnalysisTotals {
    const p = this.pipeline;
    const { decodeErrors, undecoded } = p.captureErrors(0);
    return {
      packets: p.packets, bytes: p.bytes, agentDrops: p.unexpected,
      flowsActive: p.flows.active, flowsEvicted: p.flows.evicted, conversationsForgotten: p.flows.forgotten,
      decodeErrors, undecoded, counters: p.counters(),
    };
  }
}

/** Flow-sharded worker threads; this thread reads, hands packets over and merges windows. */
export class ShardedAnalysis implements CaptureAnalysis {
  private readonly merger: WindowMerger;
  private readonly threads: ShardThreads;
  /** Totals as of the last merged window. */
  private closed: AnalysisTotals = {
    packets: 0, bytes: 0, agentDrops: 0, flowsActive: 0, flowsEvicted: 0, conversationsForgotten: 0, decodeErrors: {}, undecoded: {}, counters: {},
  };

  /** A write that failed (replay: a worker stalled); packets after it are not handed over. */
  private failure: Error | undefined;

  constructor(config: Readonly<Config>, workers: number, onWindow: OnAnalysisWindow, options: { dropWhenFull: boolean; stallMs: number }) {
    const span = new PacketSpan();
    this.merger = new WindowMerger(config, workers, (out, parts) => {
      this.closed = this.merged(this.merger.totals.filter((t) => t !== undefined));
      span.reset();
      for (const p of parts) {
        if (p.first) span.note(p.first[0], p.first[1]);
        if (p.last) span.note(p.last[0], p.last[1]);
      }
      onWindow(out, this.closed, span, Math.max(...parts.map((p) => p.inputPackets)));
    }, options.dropWhenFull);
    this.threads = new ShardThreads(config, this.merger, { workers, ...options, commitMemory: true });
  }

  process(rec: FrameRecord): void {
    if (this.failure) return;
    try {
      this.threads.push(rec);
    } catch (err) {
      this.failure = err as Error;
    }
  }

  advanceTo(epochSeconds: number): void { this.threads.advanceTo(epochSeconds); }
  reconfigure(config: Readonly<Config>): void { void this.threads.reconfigure(config); }
  flush(): void { this.threads.flush(); }
  get error(): Error | undefined { return this.failure ?? this.threads.error; }
  get clockEpoch(): number { return this.threads.feed.timeBase + this.threads.feed.clock.now; }
  tableOwners(): string[] { return this.merger.tableOwners(); }
  workerStats(): ShardWorkerStats[] { return this.threads.stats(); }

  async finish(): Promise<void> {
    try {
      await this.threads.finish();
    } finally {
      await this.threads.terminate();
    }
  }

  totals(): AnalysisTotals {
    const feed = this.threads.feed;
    let packets = 0;
    for (let w = 0; w < feed.workers; w++) packets += feed.packetsTo[w]!;
    return { ...this.closed, packets, bytes: feed.bytes, agentDrops: this.closed.agentDrops + this.threads.ringFullDrops };
  }

  private merged(totals: readonly ShardTotals[]): AnalysisTotals {
    const sum = (f: (t: ShardTotals) => number): number => totals.reduce((n, t) => n + f(t), 0);
    return {
      packets: sum((t) => t.packets), bytes: sum((t) => t.bytes), agentDrops: sum((t) => t.unexpected),
      flowsActive: sum((t) => t.flowsActive), flowsEvicted: sum((t) => t.flowsEvicted), conversationsForgotten: sum((t) => t.conversationsForgotten),
      decodeErrors: sumCounts(totals.map((t) => t.decodeErrors)), undecoded: sumCounts(totals.map((t) => t.undecoded)),
      counters: this.merger.mergeCounters(totals),
    };
  }
}
