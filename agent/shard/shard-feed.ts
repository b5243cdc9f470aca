/**
 * The reader's side of flow sharding: the input's clock over every packet,
 * and which worker gets each packet. A packet goes to the worker of its
 * host pair (decode/shard-hash.ts: both directions, IP fragments and the ICMP
 * errors about a flow land together). Every other worker gets a mark when
 * the clock moved, carrying the packet's index and the clock: a worker's
 * windows close and its flows and connection attempts expire at the same
 * packet as in one pipeline over the whole input, and the findings that come
 * of it carry the same place in the input.
 *
 * A frame that may carry DNS answers also goes, as a foreign record, to every
 * other worker right after its mark (foreign-dns.ts): the answers name flows
 * of other host pairs.
 */
import type { FrameRecord } from '../capture/frame-record.js';
import { PacketClock } from '../core/packet-clock.js';
import { timeBaseOf } from '../decode/decoder.js';
import { shardHash, shardOf } from '../decode/shard-hash.js';
import { mayCarryDnsAnswers } from './foreign-dns.js';
import { CLOCK_AHEAD, CLOCK_CONFIRMED_JUMP } from './shard-pipeline.js';

/**
 * Where the feed sends packets and marks (rings to worker threads, or
 * pipelines in this thread); each reads the feed's `seq`, `now` and `flags`.
 * False: not delivered (live capture, the worker's ring full); a mark not
 * delivered is sent again with the worker's next record.
 */
export interface ShardSink {
  packet(worker: number, rec: FrameRecord): boolean;
  mark(worker: number): boolean;
  /**
   * The packet being fed (another worker's) may carry DNS answers: a copy for
   * `worker`'s answer table only (foreign-dns.ts), after that worker's mark of
   * the packet, before its next record. Its own record kind: no worker counts
   * it as a packet.
   */
  foreign(worker: number, rec: FrameRecord): void;
}

export class ShardFeed {
  readonly clock = new PacketClock();
  /** The input's time base (Decoder.timeBase of one pipeline), from its first packet. */
  timeBase = NaN;
  /** The packet being fed: its index in the input (after it: the packets fed so far), the clock, and the clock's flags. */
  seq = 0;
  now = 0;
  flags = 0;
  /** Packets given to each worker (delivered). */
  readonly packetsTo: Float64Array;
  /** Bytes on the wire of the packets delivered, all workers. */
  bytes = 0;
  /** Foreign records (copies of frames that may carry DNS answers) given to workers in all. */
  foreignRecords = 0;
  /** The clock and its flags as each worker last heard them. */
  private readonly heardNow: Float64Array;
  private readonly heardFlags: Int32Array;

  constructor(readonly workers: number, private readonly sink: ShardSink) {
    this.packetsTo = new Float64Array(workers);
    this.heardNow = new Float64Array(workers).fill(NaN);
    this.heardFlags = new Int32Array(workers);
  }

  /** The worker that gets `rec`. */
  workerOf(rec: FrameRecord): number {
    return shardOf(shardHash(rec.data, rec.offset, rec.capLen, rec.linkType), this.workers);
  }

  push(rec: FrameRecord): void {
    if (Number.isNaN(this.timeBase)) this.timeBase = timeBaseOf(rec.tsSec);
    const clock = this.clock;
    clock.observe((rec.tsSec - this.timeBase) + rec.tsNsec / 1e9);
    const now = this.now = clock.now;
    const flags = this.flags = (clock.ahead ? CLOCK_AHEAD : 0) | (clock.confirmedJump ? CLOCK_CONFIRMED_JUMP : 0);
    const to = this.workerOf(rec);
    // Right after workerOf: reads what its shardHash found.
    const foreign = this.workers > 1 && mayCarryDnsAnswers(rec.data);
    for (let w = 0; w < this.workers; w++) {
      if (w === to) continue;
      this.markIfMoved(w);
      if (foreign) this.sink.foreign(w, rec);
    }
    if (foreign) this.foreignRecords += this.workers - 1;
    if (this.sink.packet(to, rec)) {
      this.heardNow[to] = now;
      this.heardFlags[to] = flags;
      this.packetsTo[to]++;
      this.bytes += rec.wireLen;
    }
    this.seq++;
  }

  /**
   * Live capture with no traffic: the clock follows the wall clock
   * (Pipeline.advanceTo), `now` seconds after the time base; every worker is told.
   */
  advanceTo(now: number): void {
    if (Number.isNaN(this.timeBase) || now <= this.clock.now) return;
    this.clock.now = this.now = now;
    for (let w = 0; w < this.workers; w++) this.markIfMoved(w);
  }

  private markIfMoved(w: number): void {
    if ((this.heardNow[w] !== this.now || this.heardFlags[w] !== this.flags) && this.sink.mark(w)) {
      this.heardNow[w] = this.now;
      this.heardFlags[w] = this.flags;
    }
  }
}
