/**
 * A flow-sharded worker thread: reads its ring (packets and clock marks, in
 * input order) into its ShardPipeline, or reads the input file itself
 * (shard-file-reader.ts), posts each closed window's part, and at the end of
 * the input its totals. Nothing is posted per packet. The
 * loop never returns to the event loop while records flow, so a reload
 * (SIGHUP) is taken from the port between records.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { buildConfig, type Config } from '../../common/config.js';
import { toThreadError } from '../../common/errors.js';
import { FrameRecord } from '../capture/frame-record.js';
import { PacketRing, RingRecord } from '../core/packet-ring.js';
import { lowerThreadPriority } from '../core/thread-limits.js';
import { readOwnShare } from './shard-file-reader.js';
import { ShardPipeline } from './shard-pipeline.js';
import { END_OF_INPUT, FOREIGN_RECORD, WORKER_NICENESS, type FromShardThread, type ShardThreadData, type ToShardThread } from './shard-protocol.js';

const data = workerData as ShardThreadData;
const port = parentPort!;
const post = (msg: FromShardThread): void => port.postMessage(msg);

/** Records between looks at the port for a reload while records flow. */
const MESSAGES_EVERY = 65_536;

/**
 * Test hook (PCAP_ANALYZER_TEST_STALL_WORKER="worker:ms", worker 0-based or
 * "*" for every one): that worker stops taking records for `ms` after its
 * first packet, as a worker stuck on a bug would, so its ring fills (tests of
 * ring-full drops and /readyz).
 */
function stallHook(): number {
  const hook = /^(\d+|\*):(\d+)$/.exec(process.env['PCAP_ANALYZER_TEST_STALL_WORKER'] ?? '');
  return hook && (hook[1] === '*' || Number(hook[1]) === data.worker) ? Number(hook[2]) : 0;
}

function takeMessages(shard: ShardPipeline): void {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const msg = m.message as ToShardThread;
    shard.reconfigure(buildConfig(msg.config));
    post({ type: 'reloaded' });
  }
}

function run(ringBuffer: SharedArrayBuffer): void {
  const ring = PacketRing.attach(ringBuffer);
  const shard = new ShardPipeline(data.config as Readonly<Config>, data.workers, data.timeBase, (part) => post({ type: 'window', part }), data.commitMemory);
  const rec = new FrameRecord();
  let stallMs = stallHook();
  let sinceMessages = 0;
  for (;;) {
    const kind = ring.read(rec);
    if (kind === RingRecord.PACKET || kind === RingRecord.MARK) {
      if (++sinceMessages === MESSAGES_EVERY) { sinceMessages = 0; takeMessages(shard); }
      shard.seq = ring.seq;
      if (kind === RingRecord.MARK && ring.flags & END_OF_INPUT) {
        shard.now = ring.now;
        shard.flags = ring.flags & ~END_OF_INPUT;
        post({ type: 'final', final: shard.finish(ring.seq) });
        continue;
      }
      if (kind === RingRecord.PACKET && ring.flags & FOREIGN_RECORD) {
        shard.foreign(rec);
        continue;
      }
      shard.now = ring.now;
      shard.flags = ring.flags;
      if (kind === RingRecord.PACKET) {
        shard.packet(rec);
        if (stallMs) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, stallMs); stallMs = 0; }
      } else {
        shard.mark();
      }
    } else if (kind === RingRecord.EMPTY) {
      takeMessages(shard);
      ring.waitForData(200);
    } else {
      return; // END: the reader closed the ring
    }
  }
}

if (data.yieldToCapture) lowerThreadPriority(WORKER_NICENESS);

const fail = (err: unknown): void => post({ type: 'failed', error: toThreadError(err), stack: err instanceof Error ? err.stack : undefined });

if (data.file) {
  readOwnShare(data.config as Readonly<Config>, data.worker, data.file, {
    window: (part) => post({ type: 'window', part }),
    progress: (fraction) => post({ type: 'progress', fraction }),
  }).then((final) => post({ type: 'final', final }), fail);
} else {
  try {
    run(data.ring!);
  } catch (err) {
    fail(err);
  }
}
