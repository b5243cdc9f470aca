/**
 * A flow-sharded worker thread: reads its ring (packets and clock marks, in
 * input order) into its ShardPipeline, posts each closed window's part, and
 * at the end-of-input mark its totals. Nothing is posted per packet.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../../common/config.js';
import { FrameRecord } from '../capture/frame-record.js';
import { PacketRing, RingRecord } from '../core/packet-ring.js';
import { ShardPipeline } from './shard-pipeline.js';
import { END_OF_INPUT, FOREIGN_RECORD, type FromShardThread, type ShardThreadData } from './shard-protocol.js';

const data = workerData as ShardThreadData;
const port = parentPort!;
const post = (msg: FromShardThread): void => port.postMessage(msg);

function run(): void {
  const ring = PacketRing.attach(data.ring);
  const shard = new ShardPipeline(data.config as Readonly<Config>, data.timeBase, (part) => post({ type: 'window', part }), data.commitMemory);
  const rec = new FrameRecord();
  for (;;) {
    const kind = ring.read(rec);
    if (kind === RingRecord.PACKET || kind === RingRecord.MARK) {
      shard.seq = ring.seq;
      if (kind === RingRecord.MARK && ring.flags & END_OF_INPUT) {
        post({ type: 'final', final: shard.finish(ring.seq) });
        continue;
      }
      if (kind === RingRecord.PACKET && ring.flags & FOREIGN_RECORD) {
        shard.foreign(rec);
        continue;
      }
      shard.now = ring.now;
      shard.flags = ring.flags;
      if (kind === RingRecord.PACKET) shard.packet(rec);
      else shard.mark();
    } else if (kind === RingRecord.EMPTY) {
      ring.waitForData(1000);
    } else {
      return; // END: the reader closed the ring
    }
  }
}

try {
  run();
} catch (err) {
  post({ type: 'failed', message: err instanceof Error ? err.stack ?? err.message : String(err) });
}
