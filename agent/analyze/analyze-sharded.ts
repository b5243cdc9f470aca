/**
 * `analyze --workers N`: the input's packets spread over N flow-sharded
 * workers (each a whole pipeline over its flows), their windows merged by a
 * coordinator into the report one pipeline would give (window-merger.ts).
 * The workers run in worker threads that each read an uncompressed capture
 * file themselves (shard-file-reader.ts), or that are fed through
 * shared-memory rings by this thread (stdin, gzip: read once), or,
 * `inProcess`, in this thread (tests: the same merge without threads).
 */
import type { Config } from '../../common/config.js';
import type { Finding, ReportFlow, WindowSummary } from '../../common/report.js';
import { statSync } from 'node:fs';
import { CaptureReader, NEED_DATA, RECORD, type FrameRecord, type NextStatus, type ReaderFigures, type ReaderOptions } from '../capture/index.js';
import { timeBaseOf } from '../decode/decoder.js';
import { PacketSpan } from '../core/packet-span.js';
import { RangeStats } from '../analyzers/lib/range-stats.js';
import { assembleReport, type AnalyzeOptions, type AnalyzeResult, type InputTotals } from './analyze.js';
import { mergeTopFlows, type TopFlowEntry } from '../flow/top-flows.js';
import type { WindowOutput } from '../window/window-engine.js';
import { ShardFeed, type ShardSink } from '../shard/shard-feed.js';
import { ShardPipeline, type ShardFinal } from '../shard/shard-pipeline.js';
import { WindowMerger, sumCounts } from '../shard/window-merger.js';
import { ShardThreads } from '../shard/shard-threads.js';

export interface ShardedOptions extends AnalyzeOptions {
  workers: number;
  /** Run the workers' pipelines in this thread (no rings, no threads). */
  inProcess?: boolean;
  /** Feed the worker threads through rings from this thread even where they could read the file themselves (tests). */
  ringFed?: boolean;
}

export async function analyzeCaptureSharded(path: string, config: Readonly<Config>, options: ShardedOptions): Promise<AnalyzeResult> {
  const windows: WindowSummary[] = [];
  const findings: Finding[] = [];
  const keep = options.onWindow ?? ((out: WindowOutput): void => { windows.push(out.summary); findings.push(...out.findings); });
  let merged: RangeStats | undefined;
  const merger = new WindowMerger(config, options.workers, (out) => { merged!.add(out.rangeInputs); keep(out); });
  merged = new RangeStats(merger.distributionNames(), config.analyzers.health.enabled);
  const readerOptions: ReaderOptions = { ...config.input, ...(options.maxReadBytes ? { maxReadBytes: options.maxReadBytes } : {}) };
  // Opened after the merger, which refuses analyzers that cannot merge: nothing is left open then. Opened here also when
  // the workers read the file themselves: an input that cannot be opened fails before any thread starts.
  const reader = await CaptureReader.open(path, readerOptions);
  const span = new PacketSpan();
  let figures: ReaderFigures = reader;
  let finals: ShardFinal[];
  try {
    if (options.inProcess) {
      finals = await runInProcess(reader, config, options.workers, merger, span, options.onProgress);
    } else if (!options.ringFed && !reader.compressed && isRegularFile(path)) {
      // Each worker reads the file (the page cache holds it once): no reader thread, no copy into rings.
      const threads = new ShardThreads(config, merger, { workers: options.workers, dropWhenFull: false, stallMs: STALL_MS, commitMemory: false });
      try {
        finals = await threads.readFile(path, readerOptions, options.onProgress);
      } finally {
        await threads.terminate();
      }
      const read = finals[0]!.input!;
      figures = read.reader;
      if (read.reader.packets > 0) {
        span.note(read.span.firstSec, read.span.firstNsec);
        span.note(read.span.lastSec, read.span.lastNsec);
      }
    } else {
      finals = await runThreaded(reader, config, options.workers, merger, span, options.onProgress);
    }
  } finally {
    await reader.close();
  }
  if (merger.waiting) throw new Error(`${merger.waiting} windows were not given by every worker`);
  const { decodeErrors, undecoded } = mergeCaptureErrors(finals, figures.capLenOverWireLen);
  const totals: InputTotals = {
    packets: sumOf(finals, (f) => f.packets),
    bytes: sumOf(finals, (f) => f.bytes),
    span,
    decodeErrors,
    undecoded,
    flowsEvicted: sumOf(finals, (f) => f.flowsEvicted),
    conversationsForgotten: sumOf(finals, (f) => f.conversationsForgotten),
    counters: merger.mergeCounters(finals),
    flows: topFlows(finals, config.report.topFlows),
    unexpected: sumOf(finals, (f) => f.unexpected),
    lastError: finals.find((f) => f.lastError !== null)?.lastError,
  };
  return assembleReport(path, figures, totals, windows, findings, merged, config);
}

/** Reads the whole input into pipelines in this thread; returns each worker's totals. */
async function runInProcess(reader: CaptureReader, config: Readonly<Config>, workers: number, merger: WindowMerger, span: PacketSpan,
  onProgress: ((fraction: number) => void) | undefined): Promise<ShardFinal[]> {
  const shards: ShardPipeline[] = [];
  const handOver = (w: number): ShardPipeline => {
    const shard = shards[w]!;
    shard.seq = feed.seq;
    shard.now = feed.now;
    shard.flags = feed.flags;
    return shard;
  };
  const sink: ShardSink = {
    packet(w, rec) { handOver(w).packet(rec); return true; },
    mark(w) { handOver(w).mark(); return true; },
    foreign(w, rec) { handOver(w).foreign(rec); },
    input(rec) { merger.inputPacket(rec, feed); },
  };
  const feed: ShardFeed = new ShardFeed(workers, config.windows.seconds, sink);
  const start = (): void => {
    for (let w = 0; w < workers; w++) shards.push(new ShardPipeline(config, workers, feed.timeBase, (part) => merger.add(w, part)));
  };
  await readInput(reader, (rec) => {
    if (shards.length === 0) { feed.timeBase = timeBaseOf(rec.tsSec); start(); }
    feed.push(rec);
  }, span, () => {}, onProgress);
  if (shards.length === 0) start();
  return shards.map((_, w) => handOver(w).finish(feed.seq));
}

/**
 * Feeds every record of the input to `push`; `beforeFill` runs each time the
 * reader needs more input (it may throw to stop).
 */
async function readInput(reader: CaptureReader, push: (rec: FrameRecord) => void, span: PacketSpan,
  beforeFill: () => void, onProgress: ((fraction: number) => void) | undefined): Promise<void> {
  const drain = (): NextStatus => {
    const rec = reader.record;
    for (;;) {
      const status = reader.next();
      if (status !== RECORD) return status;
      push(rec);
      span.note(rec.tsSec, rec.tsNsec);
    }
  };
  while (drain() === NEED_DATA) {
    beforeFill();
    await reader.fill();
    const fraction = reader.progress;
    if (onProgress && fraction !== undefined) onProgress(fraction);
  }
}

/** A worker that takes nothing from its full ring for this long has stopped: the analysis fails rather than waits forever. */
const STALL_MS = 60_000;

/** Reads the whole input into worker threads through their rings; returns each worker's totals. */
async function runThreaded(reader: CaptureReader, config: Readonly<Config>, workers: number, merger: WindowMerger, span: PacketSpan,
  onProgress: ((fraction: number) => void) | undefined): Promise<ShardFinal[]> {
  const threads = new ShardThreads(config, merger, { workers, dropWhenFull: false, stallMs: STALL_MS, commitMemory: false });
  try {
    // Workers must not wait on records held back for a batch while the input is read.
    await readInput(reader, (rec) => threads.push(rec), span, () => threads.flush(), onProgress);
    return await threads.finish();
  } finally {
    await threads.terminate();
  }
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Decode errors added up over the workers (names in the order one pipeline gives them: see Pipeline.captureErrors), and the reader's. */
function mergeCaptureErrors(finals: readonly ShardFinal[], capLenOverWireLen: number): { decodeErrors: Record<string, number>; undecoded: Record<string, number> } {
  const decodeErrors = sumCounts(finals.map((f) => f.decodeErrors));
  if (capLenOverWireLen) decodeErrors['frame.caplen_gt_len'] = capLenOverWireLen;
  return { decodeErrors, undecoded: sumCounts(finals.map((f) => f.undecoded)) };
}

const sumOf = <T>(items: readonly T[], f: (item: T) => number): number => items.reduce((n, item) => n + f(item), 0);

/**
 * The report's top flows from the workers' lists, with their stream numbers
 * made the input's: a worker numbered its own streams, and the input's number
 * of a stream is how many streams of its kind started (in any worker) before
 * it did.
 */
function topFlows(finals: readonly ShardFinal[], limit: number): ReportFlow[] {
  const lists = finals.map((f) => f.topFlows.map((e): TopFlowEntry => {
    const log = e.flow.proto === 'tcp' ? 'tcp' : e.flow.proto === 'udp' ? 'udp' : 'other';
    const startedAt = f.streamStarts[log][e.stream]!;
    const stream = sumOf(finals, (g) => lowerBound(g.streamStarts[log], startedAt));
    return { ...e, stream, flow: { ...e.flow, stream } };
  }));
  return mergeTopFlows(lists, limit).map((e) => e.flow);
}

/** Entries of ascending `xs` below `x`. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}
