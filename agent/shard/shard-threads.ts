/**
 * The reader's side of flow-sharded worker threads: one PacketRing and one
 * thread (shard-thread.ts) per worker, the ShardFeed that hands each packet
 * to its worker and marks to the others, and the workers' windows passed to
 * a WindowMerger. Used by `analyze --workers N` (a full ring waits: nothing
 * of a file is lost) and by the agent (live capture: a full ring drops the
 * packet and counts it, as the kernel's ring does, so capture never waits on
 * analysis). For `analyze` of a file the workers can instead read the file
 * themselves (readFile): no rings, no reader.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../../common/config.js';
import { fromThreadError } from '../../common/errors.js';
import type { ReaderOptions } from '../capture/capture-reader.js';
import type { FrameRecord } from '../capture/frame-record.js';
import { PacketRing } from '../core/packet-ring.js';
import { PIPELINE_THREAD_LIMITS } from '../core/thread-limits.js';
import { timeBaseOf } from '../decode/decoder.js';
import { ShardFeed, type ShardSink } from './shard-feed.js';
import type { ShardFinal } from './shard-pipeline.js';
import { END_OF_INPUT, FOREIGN_RECORD, type FromShardThread, type ShardFileInput, type ShardThreadData, type ToShardThread } from './shard-protocol.js';
import type { WindowMerger } from './window-merger.js';

/** Bytes of each worker's ring: about 20,000 packets of a typical mix buffered per worker. */
export const RING_BYTES = 16 * 1024 * 1024;

export interface ShardThreadsOptions {
  workers: number;
  /** Live capture: a full ring drops the packet (counted per worker) instead of waiting. */
  dropWhenFull: boolean;
  /** A worker that takes nothing from its full ring for this long has stopped: waiting writes fail (ms). */
  stallMs: number;
  /** Make the workers' tables resident at start (the agent). */
  commitMemory: boolean;
}

/** One worker as the reader sees it (the agent's /metrics). */
export interface ShardWorkerStats {
  /** Packets handed to the worker (delivered to its ring). */
  packets: number;
  /** Packets dropped because its ring was full. */
  ringFullDrops: number;
  /** Bytes waiting in its ring. */
  ringBytes: number;
  ringCapacity: number;
}

export class ShardThreads {
  readonly feed: ShardFeed;
  private readonly rings: PacketRing[] = [];
  private readonly threads: Worker[] = [];
  private readonly finals: Array<ShardFinal | undefined>;
  private finished = 0;
  /** Per worker: reloads sent and not yet taken, in order. */
  private readonly reloads: Array<Array<() => void>> = [];
  private failure: Error | undefined;
  private onProgress: ((fraction: number) => void) | undefined;
  private settle: () => void = () => {};
  private readonly allDone = new Promise<void>((resolve) => { this.settle = resolve; });

  constructor(private config: Readonly<Config>, private readonly merger: WindowMerger, private readonly options: ShardThreadsOptions) {
    const { workers, stallMs, dropWhenFull } = options;
    this.finals = new Array<ShardFinal | undefined>(workers);
    const stalled = (w: number): Error => this.failure ?? new Error(`analysis worker ${w + 1} of ${workers} took no packets for ${stallMs / 1000} s`);
    const sink: ShardSink = dropWhenFull
      ? {
          packet: (w, rec) => {
            const ring = this.handOver(w);
            if (ring.tryWritePacket(rec)) return true;
            ring.fullDrops++;
            return false;
          },
          mark: (w) => this.handOver(w).tryWriteMark(),
          // A copy for the worker's DNS answer table only: with its ring full, that worker misses one answer's names.
          foreign: (w, rec) => {
            const ring = this.handOver(w);
            ring.flags |= FOREIGN_RECORD;
            ring.tryWritePacket(rec);
          },
          input: (rec) => merger.inputPacket(rec, this.feed),
        }
      : {
          packet: (w, rec) => {
            if (!this.handOver(w).writePacketBlocking(rec, stallMs)) throw stalled(w);
            return true;
          },
          mark: (w) => {
            if (!this.handOver(w).writeMarkBlocking(stallMs)) throw stalled(w);
            return true;
          },
          foreign: (w, rec) => {
            const ring = this.handOver(w);
            ring.flags |= FOREIGN_RECORD;
            if (!ring.writePacketBlocking(rec, stallMs)) throw stalled(w);
          },
          input: (rec) => merger.inputPacket(rec, this.feed),
        };
    this.feed = new ShardFeed(workers, config.windows.seconds, sink);
  }

  /** The threads run from the input's first packet (its time base). */
  get started(): boolean { return this.rings.length > 0; }

  /** The next packet of the input. */
  push(rec: FrameRecord): void {
    if (!this.started) this.start(timeBaseOf(rec.tsSec));
    this.feed.push(rec);
  }

  /** Live capture with no traffic: packet time follows the wall clock (epoch seconds less the grace period). */
  advanceTo(epochSeconds: number): void {
    if (!this.started) return;
    this.feed.advanceTo(epochSeconds - this.feed.timeBase);
    this.flush();
  }

  /** Publishes what the rings hold back for a batch (before waiting on input), and reports a worker's failure. */
  flush(): void {
    for (const ring of this.rings) ring.flush();
    if (this.failure) throw this.failure;
  }

  /**
   * New analyzer thresholds (SIGHUP) for every worker and the merger's
   * analyzers; a worker takes them between records (when its ring is empty,
   * or every 65,536 records). Resolves when every worker has.
   */
  reconfigure(config: Readonly<Config>): Promise<void> {
    this.config = config;
    this.merger.reconfigure(config);
    const msg: ToShardThread = { type: 'reload', config: config as Config };
    const taken = this.threads.map((_, w) => new Promise<void>((resolve) => { this.reloads[w]!.push(resolve); }));
    for (const t of this.threads) t.postMessage(msg);
    return Promise.all(taken).then(() => undefined);
  }

  /** A worker failed (its error, or a merge that failed on its window); undefined while all run. */
  get error(): Error | undefined { return this.failure; }

  stats(): ShardWorkerStats[] {
    return this.rings.map((ring, w) => ({
      packets: this.feed.packetsTo[w]!, ringFullDrops: ring.fullDrops, ringBytes: ring.occupiedBytes(), ringCapacity: ring.capacity,
    }));
  }

  /** Packets dropped on full rings, all workers. */
  get ringFullDrops(): number {
    let n = 0;
    for (const ring of this.rings) n += ring.fullDrops;
    return n;
  }

  /**
   * End of input: every worker closes its last windows (merged through the
   * merger) and gives its totals. Waits up to `stallMs` for a worker to take
   * the end mark.
   */
  async finish(): Promise<ShardFinal[]> {
    if (!this.started) this.start(NaN);
    const feed = this.feed;
    feed.flags |= END_OF_INPUT;
    for (let w = 0; w < this.options.workers; w++) {
      const ring = this.handOver(w);
      if (!ring.writeMarkBlocking(this.options.stallMs)) throw this.failure ?? new Error(`analysis worker ${w + 1} took no records for ${this.options.stallMs / 1000} s: its last windows are lost`);
      ring.close();
    }
    await this.allDone;
    if (this.failure) throw this.failure;
    return this.finals as ShardFinal[];
  }

  async terminate(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  private handOver(w: number): PacketRing {
    const ring = this.rings[w]!;
    const feed = this.feed;
    ring.seq = feed.seq;
    ring.now = feed.now;
    ring.flags = feed.flags;
    return ring;
  }

  /**
   * Instead of packets pushed here: every worker reads the capture file at
   * `path` itself (shard-file-reader.ts), no rings. Resolves with each
   * worker's totals at the end of the file; `onProgress` gets worker 1's
   * fraction read.
   */
  async readFile(path: string, reader: ReaderOptions, onProgress?: (fraction: number) => void): Promise<ShardFinal[]> {
    this.onProgress = onProgress;
    const workers = this.options.workers;
    this.spawn(NaN, (w) => ({ path, reader, workers, progress: w === 0 && onProgress !== undefined }));
    await this.allDone;
    if (this.failure) throw this.failure;
    return this.finals as ShardFinal[];
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.settle();
  }

  private start(timeBase: number): void {
    this.feed.timeBase = timeBase;
    this.spawn(timeBase);
  }

  /** The worker threads: each with a ring, or each reading `file(w)`. */
  private spawn(timeBase: number, file?: (w: number) => ShardFileInput): void {
    const { workers, commitMemory } = this.options;
    for (let w = 0; w < workers; w++) {
      const ring = file ? undefined : PacketRing.create(RING_BYTES);
      const data: ShardThreadData = {
        config: this.config as Config, timeBase, commitMemory, worker: w, workers, yieldToCapture: this.options.dropWhenFull, ...(ring ? { ring: ring.buffer } : {}), ...(file ? { file: file(w) } : {}),
      };
      const thread = new Worker(new URL('./shard-thread.js', import.meta.url), { workerData: data, resourceLimits: PIPELINE_THREAD_LIMITS });
      thread.on('message', (msg: FromShardThread) => {
        try {
          if (msg.type === 'window') this.merger.add(w, msg.part);
          else if (msg.type === 'progress') this.onProgress?.(msg.fraction);
          else if (msg.type === 'reloaded') this.reloads[w]!.shift()?.();
          else if (msg.type === 'final') { this.finals[w] = msg.final; if (++this.finished === workers) this.settle(); }
          // The input's own errors (a malformed record) as one pipeline raises them; anything else is a bug, with its stack.
          else this.fail(msg.error.name === 'InputError' ? fromThreadError(msg.error) : new Error(`analysis worker ${w + 1} failed: ${msg.stack ?? msg.error.message}`));
        } catch (err) {
          this.fail(err as Error);
        }
      });
      thread.on('error', (err) => this.fail(err));
      thread.on('exit', (code) => { if (this.finals[w] === undefined) this.fail(new Error(`analysis worker ${w + 1} stopped (exit code ${code}) before its totals`)); });
      if (ring) this.rings.push(ring);
      this.threads.push(thread);
      this.reloads.push([]);
    }
  }
}
