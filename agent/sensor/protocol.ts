/**
 * Messages between the agent's main thread (publishing, HTTP, signals) and
 * its capture thread (capture or replay, decode, flows, analyzers, windows).
 * The capture thread never waits on the network: it posts closed windows and
 * counters; the main thread decides what to do with them.
 */
import type { Config } from '../../common/config.js';
import type { CaptureDrops, Finding, WindowSummary } from '../../common/report.js';
import type { SourceInfo } from '../../common/wire.js';
import type { ShardWorkerStats } from '../shard/shard-threads.js';

export interface CaptureWorkerData {
  config: Config;
  source: SourceInfo;
  /** Flow-sharded analysis workers (pipeline.workers resolved); 1: one pipeline in the capture thread. */
  workers: number;
}

/** Counters since the start, sent now and then and with every window. */
export interface CaptureCounters {
  packets: number;
  bytes: number;
  /** Live: pcap_stats ps_recv; replay: packets read. */
  received: number;
  drops: CaptureDrops;
  decodeErrors: Record<string, number>;
  flowsActive: number;
  flowsEvicted: number;
  /** Ended conversations overwritten in flows.endedConversations before they resumed (a resumption then gets a new stream number). */
  conversationsForgotten: number;
  windows: number;
  /** Seconds between the end of the last closed window and its closing (wall clock live, packet clock in replay). */
  windowLagSeconds: number;
  /** Each analysis worker (pipeline.workers above 1). */
  workers?: ShardWorkerStats[];
}

export type FromCapture =
  /** `tables`: the analyzers that keep key tables (granted from memory.budgetMB), whose evictions /metrics counts. */
  | { type: 'ready'; linkType: number; tables: string[] }
  | { type: 'window'; summary: WindowSummary; findings: Finding[]; counters: CaptureCounters }
  | { type: 'counters'; counters: CaptureCounters }
  /**
   * Cannot start (bad interface, BPF, privileges, unreadable replay): a user error, exit 2. While running:
   * a replayed file that cannot be read (`input`, exit 2) or a capture that failed (exit 1).
   */
  | { type: 'fatal'; message: string; input?: boolean }
  /** Input ended (replay without --loop) or a stop was asked: the last window has been posted. */
  | { type: 'done'; counters: CaptureCounters; warnings: string[] };

export type ToCapture =
  | { type: 'stop' }
  | { type: 'reload'; config: Config };
