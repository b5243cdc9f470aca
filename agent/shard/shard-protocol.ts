/** What the reader and its flow-sharded worker threads tell each other (packets go through the ring, not here). */
import type { Config } from '../../common/config.js';
import type { ThreadError } from '../../common/errors.js';
import type { ReaderOptions } from '../capture/capture-reader.js';
import type { ShardFinal, ShardWindow } from './shard-pipeline.js';

/** Ring mark flag (beside the clock flags of shard-pipeline.ts): the input ended after `seq` packets. */
export const END_OF_INPUT = 4;
/** Ring packet flag: a foreign record (shard-feed.ts ShardSink.foreign), not one of the worker's packets. */
export const FOREIGN_RECORD = 8;

/**
 * Live capture: nice levels the workers run below the capture thread. Where
 * the cores are short (tcpreplay and the agent on two), the capture thread
 * then gets the CPU first and drains the kernel's ring; analysis that falls
 * behind fills the workers' rings and is counted there (ring-full drops, per
 * worker), not lost unseen in the kernel.
 */
export const WORKER_NICENESS = 10;

export interface ShardThreadData {
  config: Config;
  /** The worker's PacketRing (PacketRing.attach); none when the worker reads the input file itself. */
  ring?: SharedArrayBuffer;
  /** The input's time base (Decoder.timeBase of one pipeline); with a ring only. */
  timeBase: number;
  /** Make the pipeline's tables resident at start (the agent). */
  commitMemory: boolean;
  /** This worker's index (0-based), and how many there are. */
  worker: number;
  workers: number;
  /** Live capture: run below the capture thread's CPU priority (WORKER_NICENESS). */
  yieldToCapture: boolean;
  /** The worker reads this file itself, every packet of it, and analyzes its share (no ring). */
  file?: ShardFileInput;
}

/** A capture file every worker reads (shard-file-reader.ts). */
export interface ShardFileInput {
  path: string;
  reader: ReaderOptions;
  workers: number;
  /** Post the reader's progress (worker 1). */
  progress: boolean;
}

/** New analyzer thresholds (SIGHUP), taken between records. */
export type ToShardThread = { type: 'reload'; config: Config };

export type FromShardThread =
  | { type: 'window'; part: ShardWindow }
  /** A reload taken (between records). */
  | { type: 'reloaded' }
  /** Reading a file: the fraction read (worker 1). */
  | { type: 'progress'; fraction: number }
  | { type: 'final'; final: ShardFinal }
  | { type: 'failed'; error: ThreadError; stack: string | undefined };
