/**
 * A flow-sharded worker that reads the input file itself (`analyze` of a
 * file): every worker reads every packet (the page cache holds the file
 * once), runs the same ShardFeed as a reader thread would, and takes what the
 * feed gives it: its own packets, its marks and its foreign DNS records. So
 * it sees exactly what a ring would have brought, with no reader thread and
 * no copy. Worker 1 also runs the analyzers' input hooks (onInputPacket) and
 * keeps what the report says of the reading (format, span, cut-short record),
 * which the coordinator would otherwise take from its own reader.
 */
import type { Config } from '../../common/config.js';
import { CaptureReader, NEED_DATA, RECORD, type NextStatus } from '../capture/capture-reader.js';
import { PacketSpan } from '../core/packet-span.js';
import { timeBaseOf } from '../decode/decoder.js';
import { InputHooks } from './input-hooks.js';
import { ShardFeed, type ShardSink } from './shard-feed.js';
import { ShardPipeline, type ShardFinal, type ShardWindow } from './shard-pipeline.js';
import type { ShardFileInput } from './shard-protocol.js';

export interface ShardFileReaderEvents {
  window(part: ShardWindow): void;
  progress(fraction: number): void;
}

/** Progress is posted when the fraction read grew by this much. */
const PROGRESS_STEP = 0.005;

/** Reads `input` through and returns this worker's totals (its windows through `events.window`). */
export async function readOwnShare(config: Readonly<Config>, worker: number, input: ShardFileInput, events: ShardFileReaderEvents): Promise<ShardFinal> {
  const reader = await CaptureReader.open(input.path, input.reader);
  try {
    let shard: ShardPipeline | undefined;
    const own = (): ShardPipeline => {
      const s = shard!;
      s.seq = feed.seq;
      s.now = feed.now;
      s.flags = feed.flags;
      return s;
    };
    // The feed gives this worker's records only.
    const sink: ShardSink = {
      packet: (_, rec) => { own().packet(rec); return true; },
      mark: () => { own().mark(); return true; },
      foreign: (_, rec) => { own().foreign(rec); },
    };
    const feed: ShardFeed = new ShardFeed(input.workers, config.windows.seconds, sink, worker);
    const host = worker === 0;
    let hooks: InputHooks | undefined;
    const span = new PacketSpan();
    const start = (): ShardPipeline => {
      const s = shard = new ShardPipeline(config, input.workers, feed.timeBase, events.window);
      if (host) hooks = new InputHooks(s.pipeline.analyzers);
      return s;
    };
    const drain = (): NextStatus => {
      const rec = reader.record;
      for (;;) {
        const status = reader.next();
        if (status !== RECORD) return status;
        if (shard === undefined) { feed.timeBase = timeBaseOf(rec.tsSec); start(); }
        feed.push(rec);
        if (host) {
          // After the feed: a window this packet closes has closed (capture.ts windowPart).
          hooks!.packet(rec, feed);
          span.note(rec.tsSec, rec.tsNsec);
        }
      }
    };
    let reported = 0;
    while (drain() === NEED_DATA) {
      await reader.fill();
      const fraction = reader.progress;
      if (input.progress && fraction !== undefined && fraction - reported >= PROGRESS_STEP) {
        reported = fraction;
        events.progress(fraction);
      }
    }
    if (shard === undefined) start();
    const final = own().finish(feed.seq);
    if (!host) return final;
    const { firstSec, firstNsec, lastSec, lastNsec } = span;
    return { ...final, input: { reader: reader.figures(), span: { firstSec, firstNsec, lastSec, lastNsec } } };
  } finally {
    await reader.close();
  }
}
