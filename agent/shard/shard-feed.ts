/**
 * The reader's side of flow sharding: the input's clock over every packet,
 * and which worker gets each packet. A packet goes to the worker of its
 * host pair (decode/shard-hash.ts: both directions, IP fragments and the ICMP
 * errors about a flow land together). Another worker gets a mark, carrying
 * the packet's index and the clock, at the packets where one pipeline would
 * have done something of that worker's on the clock alone: closed a window,
 * swept its flow table (Pipeline.advanceClocks, FlowTable.advance: once per
 * second of packet time), settled a connection attempt (due
 * ATTEMPT_TIMEOUT after a SYN the worker got), or seen the clock's flags
 * change. So its windows close and its flows and attempts expire at the same
 * packet as in one pipeline over the whole input, and the findings that come
 * of it carry the same place in the input; a mark anywhere else would change
 * nothing but the worker's clock, which its next record sets anyway.
 *
 * A frame that may carry DNS answers also goes, as a foreign record, to every
 * other worker right after its mark (foreign-dns.ts): the answers name flows
 * of other host pairs.
 */
import type { FrameRecord } from '../capture/frame-record.js';
import { PacketClock } from '../core/packet-clock.js';
import { timeBaseOf } from '../decode/decoder.js';
import { shardHash, shardOf, shardTransport } from '../decode/shard-hash.js';
import { ATTEMPT_TIMEOUT } from '../flow/connection-attempts.js';
import { IpProto } from '../decode/index.js';
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
  /** Every packet of the input, before any worker gets it (the coordinator's Analyzer.onInputPacket hooks). */
  input?(rec: FrameRecord): void;
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
  /** Marks given to workers in all. */
  marks = 0;
  /** The clock and its flags as each worker last heard them. */
  private readonly heardNow: Float64Array;
  private readonly heardFlags: Int32Array;
  /** When each worker's flow table last swept (FlowTable.advance: when the clock is a second past it). */
  private readonly lastSweep: Float64Array;
  /** Each worker's connection attempts' deadlines (ATTEMPT_TIMEOUT after each SYN it got), oldest first. */
  private readonly dues: DueQueue[];
  /** The end of the current window (WindowEngine.open, relative to the time base); NaN before the first packet. */
  private windowEnd = NaN;

  /**
   * `only`: the feed of one worker that reads the input itself
   * (shard-file-reader.ts): the sink gets that worker's records only, and no
   * other worker's bookkeeping is kept.
   */
  constructor(readonly workers: number, private readonly windowSeconds: number, private readonly sink: ShardSink, private readonly only = -1) {
    this.packetsTo = new Float64Array(workers);
    this.heardNow = new Float64Array(workers).fill(NaN);
    this.heardFlags = new Int32Array(workers);
    this.lastSweep = new Float64Array(workers).fill(-Infinity);
    this.dues = Array.from({ length: workers }, () => new DueQueue());
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
    this.flags = (clock.ahead ? CLOCK_AHEAD : 0) | (clock.confirmedJump ? CLOCK_CONFIRMED_JUMP : 0);
    this.sink.input?.(rec);
    const to = this.workerOf(rec);
    const only = this.only;
    const fed = only < 0 || to === only;
    // Right after workerOf: these read what its shardHash found.
    const foreign = this.workers > 1 && !(only >= 0 && to === only) && mayCarryDnsAnswers(rec.data);
    if (fed && mayStartAttempt(rec.data)) this.dues[to]!.push(now + ATTEMPT_TIMEOUT);
    // WindowEngine.advance: the window closes at the first packet at or past its end, and the next opens at that packet's time.
    let windowCloses = false;
    if (!(now < this.windowEnd)) {
      windowCloses = true;
      const start = Math.floor((this.timeBase + now) / this.windowSeconds) * this.windowSeconds;
      this.windowEnd = start + this.windowSeconds - this.timeBase;
    }
    const last = only < 0 ? this.workers : only + 1;
    for (let w = only < 0 ? 0 : only; w < last; w++) {
      if (w === to) continue;
      if (windowCloses || this.due(w)) this.markTo(w);
      // A DNS answer's names are kept with the clock at the answer (a TTL): the clock first.
      if (foreign) {
        if (this.heardNow[w] !== now) this.markTo(w);
        this.sink.foreign(w, rec);
        this.foreignRecords++;
      }
    }
    if (fed && this.sink.packet(to, rec)) {
      this.heard(to);
      this.packetsTo[to]++;
      this.bytes += rec.wireLen;
    }
    this.seq++;
  }

  /** Something of worker `w`'s is due at the current clock, or it has not heard the clock's flags. */
  private due(w: number): boolean {
    // A worker that never heard the clock has swept at -Infinity: due.
    return this.heardFlags[w] !== this.flags || this.now - this.lastSweep[w]! >= 1 || this.dues[w]!.dueBy(this.now);
  }

  private markTo(w: number): void {
    if (this.sink.mark(w)) {
      this.marks++;
      this.heard(w);
    }
  }

  /** Worker `w` got a record at the current clock: what its pipeline did there (Pipeline.advanceClocks). */
  private heard(w: number): void {
    const now = this.now;
    this.heardNow[w] = now;
    this.heardFlags[w] = this.flags;
    if (now - this.lastSweep[w]! >= 1) this.lastSweep[w] = now;
    this.dues[w]!.popDueBy(now);
  }

  /**
   * Live capture with no traffic: the clock follows the wall clock
   * (Pipeline.advanceTo), `now` seconds after the time base; every worker is told.
   */
  advanceTo(now: number): void {
    if (Number.isNaN(this.timeBase) || now <= this.clock.now) return;
    this.clock.now = this.now = now;
    const last = this.only < 0 ? this.workers : this.only + 1;
    for (let w = this.only < 0 ? 0 : this.only; w < last; w++) this.markIfMoved(w);
  }

  private markIfMoved(w: number): void {
    if (this.heardNow[w] !== this.now || this.heardFlags[w] !== this.flags) this.markTo(w);
  }
}

/**
 * A packet that may start a connection attempt (ConnectionAttempts.segment: a
 * flow's first packet, a SYN without ACK or RST), or an IP fragment of TCP
 * (whose reassembled datagram may be one). More is harmless: a mark where
 * nothing is due changes nothing.
 */
function mayStartAttempt(d: Uint8Array): boolean {
  const t = shardTransport;
  if (t.proto !== IpProto.TCP) return false;
  if (t.fragment) return true;
  if (t.end - t.offset < 14) return false;
  return (d[t.offset + 13]! & 0x16) === 0x02; // SYN, not ACK, not RST
}

/** Deadlines in the order they were pushed (never decreasing: the clock only moves forward). */
class DueQueue {
  private items = new Float64Array(64);
  private head = 0;
  private count = 0;

  push(due: number): void {
    if (this.count === this.items.length) {
      const grown = new Float64Array(this.items.length * 2);
      for (let i = 0; i < this.count; i++) grown[i] = this.items[(this.head + i) % this.items.length]!;
      this.items = grown;
      this.head = 0;
    }
    this.items[(this.head + this.count) % this.items.length] = due;
    this.count++;
  }

  dueBy(now: number): boolean {
    return this.count > 0 && this.items[this.head]! <= now;
  }

  popDueBy(now: number): void {
    while (this.count > 0 && this.items[this.head]! <= now) {
      this.head = (this.head + 1) % this.items.length;
      this.count--;
    }
  }
}
