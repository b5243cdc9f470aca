/**
 * A bounded single-producer single-consumer ring of packet records in a
 * SharedArrayBuffer: how the reader thread hands packets to one analysis
 * worker without a postMessage or an allocation per packet (issue 13). One
 * thread writes (`tryWrite*`, `write*Blocking`, `flush`, `close`), one other
 * thread reads (`read`, `waitForData`); each side attaches its own PacketRing
 * to the same buffer (`create` on one side, `attach(ring.buffer)` on the other).
 *
 * Layout: a control area of 64-byte lines (one line per word that one side
 * writes and the other reads, so the two cores do not fight over a cache line),
 * then the data area. Records are 8-byte aligned and never split: one that does
 * not fit before the end of the data area leaves a wrap marker and starts at 0.
 * The write position never catches up with the read position (equal means
 * empty), so at least 8 bytes always stay free.
 *
 * Batching. The producer publishes its write position every
 * RING_PUBLISH_RECORDS records or RING_PUBLISH_BYTES bytes, when the ring is
 * full, and on `flush()` / `close()`. Rule for callers: call `flush()` before
 * anything that may leave the producer without packets for long (awaiting file
 * I/O, waiting for the next capture batch, a quiet link), or the last records
 * stay invisible to the consumer until then. (Publishing each record while the
 * consumer sleeps would wake it once per record: a futex wake per packet.)
 * The consumer releases space every RING_PUBLISH_RECORDS records or
 * RING_PUBLISH_BYTES bytes, and whenever it finds the ring empty (`read`
 * returning EMPTY or END, `waitForData`), waking a producer blocked in a
 * `write*Blocking` call.
 *
 * Waiting uses Atomics.wait, which Node allows on the main thread too (browsers
 * do not): `analyze` may block its main thread in `writePacketBlocking` while
 * the workers drain their rings.
 */
import { MAX_PCAP_RECORD } from '../capture/capture-reader.js';
import type { FrameRecord } from '../capture/frame-record.js';

/**
 * Record kinds: what `read` returns, and (PACKET, MARK) the kind word at the
 * head of a stored record. Every stored record starts with its kind and its
 * length in bytes, so one more fixed kind (e.g. a flow-table command) needs a
 * value here (3 is kept for it), a writer and a case in `read`.
 */
export const RingRecord = {
  /** The producer closed the ring and every record has been read. */
  END: -1,
  /** Nothing to read now. */
  EMPTY: 0,
  /** A packet: its fields and bytes are in the FrameRecord given to `read`, its seq in `ring.seq`. */
  PACKET: 1,
  /** A mark: a clock step with no packet (`ring.seq`, `ring.now`, `ring.flags`). */
  MARK: 2,
} as const;
export type RingRecord = (typeof RingRecord)[keyof typeof RingRecord];

/** Stored only: the rest of the data area is unused, the next record is at 0. */
const WRAP = 15;

/** Smallest data area: the largest record is under half of it, so a blocking write always fits once the consumer has drained the ring. */
export const RING_MIN_BYTES = 1024 * 1024;
/** Largest data area: positions and the closed bit share one Int32 word. */
export const RING_MAX_BYTES = 1024 * 1024 * 1024;
/**
 * Largest captured length a packet record carries: a classic pcap record's
 * maximum (a capture's snap length). pcapng blocks may be longer (up to
 * input.maxBlockBytes); the caller handles such a packet another way.
 */
export const RING_MAX_CAPTURED_BYTES = MAX_PCAP_RECORD;
/** Bytes before a packet's bytes in its record. */
export const RING_PACKET_HEADER_BYTES = 72;
/** Bytes of a MARK record. */
export const RING_MARK_BYTES = 32;
/** Batch sizes of publishing the write position and releasing the read position. */
export const RING_PUBLISH_RECORDS = 64;
export const RING_PUBLISH_BYTES = 64 * 1024;

/** Bytes of the record that carries `capLen` captured bytes. */
export function packetRecordBytes(capLen: number): number {
  return (RING_PACKET_HEADER_BYTES + capLen + 7) & ~7;
}

// Control area: Int32 word indexes, 16 words (64 bytes) per line.
const LINE_WORDS = 16;
/** Published write position; bit 30 = closed, so a consumer waiting on this word wakes on close and sees both in one load. */
const WRITE = 0;
/** Released read position. */
const READ = 1 * LINE_WORDS;
/** 1 while the consumer sleeps in waitForData: a publish then wakes it (no notify, no syscall, otherwise). */
const CONSUMER_WAITING = 2 * LINE_WORDS;
/** 1 while the producer sleeps for space. */
const PRODUCER_WAITING = 3 * LINE_WORDS;
/**
 * Producer's counters as 64-bit values in two words each, under a sequence
 * word (odd while being written) so the other side never reads half an update.
 */
const COUNTERS = 4 * LINE_WORDS;
const COUNTER_SEQ = COUNTERS;
const WRITTEN_LO = COUNTERS + 1;
const DROPS_LO = COUNTERS + 3;
/** Layout check for attach: a magic word and the data area's size. */
const MAGIC = 5 * LINE_WORDS;
const CAPACITY = MAGIC + 1;
const CONTROL_BYTES = 6 * LINE_WORDS * 4;
const RING_MAGIC = 0x52494e47; // "RING"
const CLOSED_BIT = 1 << 30;
const POSITION_MASK = CLOSED_BIT - 1;

// Packet record (72-byte header, then the bytes): kind, length, then the FrameRecord fields as
// Uint32 words 2..7 and Float64 words 4..8 (byte offsets in comments).
const P_CAP_LEN = 2; // 8
const P_WIRE_LEN = 3; // 12
const P_TS_NSEC = 4; // 16
const P_LINK_TYPE = 5; // 20
const P_INTERFACE = 6; // 24
const P_TS_SEC = 4; // f64 at 32
const P_NUMBER = 5; // f64 at 40
const P_SEQ = 6; // f64 at 48
const P_FILE_OFFSET = 7; // f64 at 56
const P_NOW = 8; // f64 at 64
const P_FLAGS = 7; // u32 at 28
// Mark record: flags at byte 8, now at byte 16, seq at byte 24.
const M_FLAGS = 2;
const M_NOW = 2;
const M_SEQ = 3;

const NO_BYTES = new Uint8Array(0);
/** Byte order of this machine: packet bytes go through Uint32 words of the data area. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class PacketRing {
  /** Bytes of the data area. */
  readonly capacity: number;
  /** The shared memory: give it to the other thread (workerData) to `attach`. */
  readonly buffer: SharedArrayBuffer;
  /**
   * Producer: set before each write; consumer: of the record last read. `seq`
   * is the packet's (or, for a mark, the packet it stands for) index in the
   * input, `now` and `flags` the reader's clock (shard/shard-feed.ts). Fields,
   * not arguments: a double passed to a call that is not inlined is boxed, an
   * allocation per packet.
   */
  seq = 0;
  now = 0;
  flags = 0;

  private readonly control: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly words: Uint32Array;
  private readonly floats: Float64Array;

  // Producer state.
  private writePos = 0;
  private cachedRead = 0;
  private unpublishedRecords = 0;
  private unpublishedBytes = 0;
  private written = 0;
  private drops = 0;
  private closed = false;
  /** The source buffer last copied from, and a DataView of it (made again only when the reader's buffer changes). */
  private source: Uint8Array = NO_BYTES;
  private sourceView: DataView = new DataView(NO_BYTES.buffer);

  // Consumer state.
  private readPos = 0;
  private cachedWrite = 0;
  private unreleasedRecords = 0;
  private releasedPos = 0;

  private constructor(buffer: SharedArrayBuffer, capacity: number) {
    this.buffer = buffer;
    this.capacity = capacity;
    this.control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.bytes = new Uint8Array(buffer, CONTROL_BYTES, capacity);
    this.words = new Uint32Array(buffer, CONTROL_BYTES, capacity / 4);
    this.floats = new Float64Array(buffer, CONTROL_BYTES, capacity / 8);
  }

  /** A new ring whose data area holds `bytes` (rounded down to a multiple of 8). */
  static create(bytes: number): PacketRing {
    if (!Number.isInteger(bytes) || bytes < RING_MIN_BYTES || bytes > RING_MAX_BYTES) {
      throw new RangeError(`packet ring of ${bytes} bytes: the size must be an integer from ${RING_MIN_BYTES} (1 MiB) to ${RING_MAX_BYTES} (1 GiB)`);
    }
    const capacity = bytes & ~7;
    const buffer = new SharedArrayBuffer(CONTROL_BYTES + capacity);
    const control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    control[MAGIC] = RING_MAGIC;
    control[CAPACITY] = capacity;
    return new PacketRing(buffer, capacity);
  }

  /** The other side of a ring made by `create`, from its `buffer`. */
  static attach(buffer: SharedArrayBuffer): PacketRing {
    if (buffer.byteLength < CONTROL_BYTES) throw new TypeError('not a packet ring: buffer too small');
    const control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    const capacity = Atomics.load(control, CAPACITY);
    if (Atomics.load(control, MAGIC) !== RING_MAGIC || CONTROL_BYTES + capacity !== buffer.byteLength) {
      throw new TypeError('not a packet ring: bad layout');
    }
    const ring = new PacketRing(buffer, capacity);
    // Either side may attach after the other has started.
    ring.readPos = ring.releasedPos = Atomics.load(control, READ);
    ring.cachedWrite = Atomics.load(control, WRITE) & POSITION_MASK;
    ring.writePos = ring.cachedWrite;
    ring.cachedRead = ring.readPos;
    ring.written = ring.recordsWritten;
    ring.drops = ring.fullDrops;
    return ring;
  }

  // ---- figures, from either side ----

  /** Bytes between the released read position and the published write position (wrap gaps included). */
  occupiedBytes(): number {
    const w = Atomics.load(this.control, WRITE) & POSITION_MASK;
    const r = Atomics.load(this.control, READ);
    return w >= r ? w - r : this.capacity - r + w;
  }

  /** Records (packets and marks) written, as of the producer's last publish. */
  get recordsWritten(): number { return this.counter(WRITTEN_LO); }

  /**
   * Packets the producer could not write because the ring was full. The
   * producer counts them (`ring.fullDrops++` after a `tryWritePacket` that
   * returned false); the count is visible to the other side at once.
   */
  get fullDrops(): number { return this.counter(DROPS_LO); }
  set fullDrops(value: number) {
    this.drops = value;
    this.publishCounters();
  }

  /** The producer has closed the ring (records may be left to read). */
  get isClosed(): boolean { return (Atomics.load(this.control, WRITE) & CLOSED_BIT) !== 0; }

  // ---- producer ----

  /**
   * Writes a packet with this ring's `seq`, `now` and `flags`, or returns
   * false when the ring is full (nothing written; the caller counts the drop).
   */
  tryWritePacket(rec: FrameRecord): boolean {
    const capLen = rec.capLen;
    if (capLen > RING_MAX_CAPTURED_BYTES) {
      throw new RangeError(`packet ring: a captured length of ${capLen} bytes is more than the ${RING_MAX_CAPTURED_BYTES} a record carries`);
    }
    const size = packetRecordBytes(capLen);
    const at = this.reserve(size);
    if (at < 0) return false;
    const w = at >> 2;
    const f = at >> 3;
    const words = this.words;
    const floats = this.floats;
    words[w] = RingRecord.PACKET;
    words[w + 1] = size;
    words[w + P_CAP_LEN] = capLen;
    words[w + P_WIRE_LEN] = rec.wireLen;
    words[w + P_TS_NSEC] = rec.tsNsec;
    words[w + P_LINK_TYPE] = rec.linkType;
    words[w + P_INTERFACE] = rec.interfaceId;
    words[w + P_FLAGS] = this.flags;
    floats[f + P_TS_SEC] = rec.tsSec;
    floats[f + P_NUMBER] = rec.number;
    floats[f + P_SEQ] = this.seq;
    floats[f + P_FILE_OFFSET] = rec.fileOffset;
    floats[f + P_NOW] = this.now;
    this.copyBytes(rec.data, rec.offset, capLen, at + RING_PACKET_HEADER_BYTES);
    this.commit(at, size);
    return true;
  }

  /** Writes a mark (this ring's `seq`, `now` and `flags`, no packet), or returns false when the ring is full. */
  tryWriteMark(): boolean {
    const at = this.reserve(RING_MARK_BYTES);
    if (at < 0) return false;
    this.words[at >> 2] = RingRecord.MARK;
    this.words[(at >> 2) + 1] = RING_MARK_BYTES;
    this.words[(at >> 2) + M_FLAGS] = this.flags;
    this.words[(at >> 2) + M_FLAGS + 1] = 0;
    this.floats[(at >> 3) + M_NOW] = this.now;
    this.floats[(at >> 3) + M_SEQ] = this.seq;
    this.commit(at, RING_MARK_BYTES);
    return true;
  }

  /**
   * Writes a packet, waiting (Atomics.wait, main thread included) while the
   * ring is full. False only when `timeoutMs` passed first (e.g. the consumer
   * died); a packet of at most RING_MAX_CAPTURED_BYTES always fits once the
   * consumer has drained the ring.
   */
  writePacketBlocking(rec: FrameRecord, timeoutMs = Infinity): boolean {
    if (this.tryWritePacket(rec)) return true;
    return this.waitForSpace(packetRecordBytes(rec.capLen), timeoutMs) && this.tryWritePacket(rec);
  }

  /** `tryWriteMark`, waiting while the ring is full (see writePacketBlocking). */
  writeMarkBlocking(timeoutMs = Infinity): boolean {
    if (this.tryWriteMark()) return true;
    return this.waitForSpace(RING_MARK_BYTES, timeoutMs) && this.tryWriteMark();
  }

  /** Publishes every record written so far (see the batching rule above). */
  flush(): void {
    if (this.unpublishedRecords === 0) return;
    this.publish();
  }

  /** No more records: the consumer reads what is left, then END. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    Atomics.store(this.control, WRITE, this.writePos | CLOSED_BIT);
    Atomics.notify(this.control, WRITE);
  }

  /** Where a record of `size` bytes goes (writing the wrap marker if it wraps), or -1 when the ring is full. */
  private reserve(size: number): number {
    if (this.closed) throw new Error('packet ring: write after close');
    let at = this.place(size, this.cachedRead);
    if (at < 0) {
      this.cachedRead = Atomics.load(this.control, READ);
      at = this.place(size, this.cachedRead);
      if (at < 0) {
        // Full: what is written must be visible, or the consumer would see an empty ring forever.
        this.flush();
        return -1;
      }
    }
    if (at !== this.writePos) {
      this.words[this.writePos >> 2] = WRAP;
      this.unpublishedBytes += this.capacity - this.writePos;
    }
    return at;
  }

  /**
   * Free space is from the write position up to (not reaching) the read
   * position `r`. A stale `r` is behind the real one, so the answer is safe.
   */
  private place(size: number, r: number): number {
    const w = this.writePos;
    if (w >= r) {
      const tail = this.capacity - w;
      // Ending exactly at the end makes the write position 0, which must not equal r.
      if (tail > size || (tail === size && r > 0)) return w;
      return size < r ? 0 : -1;
    }
    return w + size < r ? w : -1;
  }

  private commit(at: number, size: number): void {
    const next = at + size;
    this.writePos = next === this.capacity ? 0 : next;
    this.written++;
    this.unpublishedBytes += size;
    if (++this.unpublishedRecords >= RING_PUBLISH_RECORDS || this.unpublishedBytes >= RING_PUBLISH_BYTES) this.publish();
  }

  private publish(): void {
    Atomics.store(this.control, WRITE, this.writePos);
    this.unpublishedRecords = 0;
    this.unpublishedBytes = 0;
    this.publishCounters();
    if (Atomics.load(this.control, CONSUMER_WAITING) !== 0) Atomics.notify(this.control, WRITE);
  }

  private publishCounters(): void {
    const c = this.control;
    Atomics.add(c, COUNTER_SEQ, 1);
    Atomics.store(c, WRITTEN_LO, this.written % 4294967296);
    Atomics.store(c, WRITTEN_LO + 1, Math.floor(this.written / 4294967296));
    Atomics.store(c, DROPS_LO, this.drops % 4294967296);
    Atomics.store(c, DROPS_LO + 1, Math.floor(this.drops / 4294967296));
    Atomics.add(c, COUNTER_SEQ, 1);
  }

  private counter(lo: number): number {
    const c = this.control;
    for (;;) {
      const seq = Atomics.load(c, COUNTER_SEQ);
      const low = Atomics.load(c, lo) >>> 0;
      const high = Atomics.load(c, lo + 1);
      if ((seq & 1) === 0 && Atomics.load(c, COUNTER_SEQ) === seq) return high * 4294967296 + low;
    }
  }

  /**
   * Waits for room for `size` bytes and, once the ring was full, for a
   * quarter of it (the consumer wakes the producer only then, see release):
   * a producer that resumed at every released batch would trade a wake-up
   * (a futex call on each side) for every 64 records.
   */
  private waitForSpace(size: number, timeoutMs: number): boolean {
    this.flush();
    const deadline = performance.now() + timeoutMs;
    const room = Math.max(size, this.capacity >> 2);
    for (;;) {
      const r = Atomics.load(this.control, READ);
      this.cachedRead = r;
      if (this.place(size, r) >= 0 && this.freeBytes(r) >= room) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.store(this.control, PRODUCER_WAITING, 1);
      // Returns at once if the consumer released space since the load above.
      Atomics.wait(this.control, READ, r, left);
      Atomics.store(this.control, PRODUCER_WAITING, 0);
    }
  }

  /** Bytes free from the write position up to read position `r` (one byte always stays free). */
  private freeBytes(r: number): number {
    return this.capacity - 1 - this.distance(r, this.writePos);
  }

  /**
   * Copies a packet's bytes four at a time through a DataView of the source:
   * `set(subarray())` and Buffer#copy would make a view object per packet
   * (and are no faster here: the time goes to moving the bytes to the
   * consumer's core, measured 0.87 against 0.93 s for 739 MB).
   */
  private copyBytes(src: Uint8Array, from: number, length: number, to: number): void {
    if (src !== this.source) {
      this.source = src;
      this.sourceView = new DataView(src.buffer, src.byteOffset, src.byteLength);
    }
    const view = this.sourceView;
    const words = this.words;
    const end = from + length;
    let s = from;
    let w = to >> 2;
    // A literal byte order: V8 makes slower code for a variable one.
    if (LITTLE_ENDIAN) for (; s + 4 <= end; s += 4) words[w++] = view.getUint32(s, true);
    else for (; s + 4 <= end; s += 4) words[w++] = view.getUint32(s, false);
    const bytes = this.bytes;
    for (let b = w << 2; s < end; s++) bytes[b++] = src[s];
  }

  // ---- consumer ----

  /**
   * Reads the next record. For a PACKET, `into` gets its fields and `into.data`
   * / `into.offset` point into the ring itself (no copy): valid until the next
   * `read` or `waitForData`, which hand the space back to the producer.
   */
  read(into: FrameRecord): RingRecord {
    if (this.unreleasedRecords >= RING_PUBLISH_RECORDS || this.distance(this.releasedPos, this.readPos) >= RING_PUBLISH_BYTES) this.release();
    for (;;) {
      const at = this.readPos;
      if (at === this.cachedWrite) {
        const word = Atomics.load(this.control, WRITE);
        this.cachedWrite = word & POSITION_MASK;
        if (at === this.cachedWrite) {
          this.release();
          return (word & CLOSED_BIT) !== 0 ? RingRecord.END : RingRecord.EMPTY;
        }
      }
      const w = at >> 2;
      const kind = this.words[w];
      if (kind === WRAP) {
        this.readPos = 0;
        continue;
      }
      const size = this.words[w + 1];
      const next = at + size;
      this.readPos = next === this.capacity ? 0 : next;
      this.unreleasedRecords++;
      if (kind === RingRecord.PACKET) {
        const f = at >> 3;
        into.data = this.bytes;
        into.offset = at + RING_PACKET_HEADER_BYTES;
        into.capLen = this.words[w + P_CAP_LEN];
        into.wireLen = this.words[w + P_WIRE_LEN];
        into.tsNsec = this.words[w + P_TS_NSEC];
        into.linkType = this.words[w + P_LINK_TYPE];
        into.interfaceId = this.words[w + P_INTERFACE];
        into.tsSec = this.floats[f + P_TS_SEC];
        into.number = this.floats[f + P_NUMBER];
        into.fileOffset = this.floats[f + P_FILE_OFFSET];
        this.seq = this.floats[f + P_SEQ];
        this.now = this.floats[f + P_NOW];
        this.flags = this.words[w + P_FLAGS];
        return RingRecord.PACKET;
      }
      if (kind === RingRecord.MARK) {
        this.flags = this.words[w + M_FLAGS];
        this.now = this.floats[(at >> 3) + M_NOW];
        this.seq = this.floats[(at >> 3) + M_SEQ];
        return RingRecord.MARK;
      }
      throw new Error(`packet ring: record of unknown kind ${kind} at ${at}`);
    }
  }

  /**
   * Waits (Atomics.wait) up to `timeoutMs` for a record or for close; true if
   * `read` has something (a record or END). Ends the last record's view.
   */
  waitForData(timeoutMs: number): boolean {
    this.release();
    const at = this.readPos;
    if (Atomics.load(this.control, WRITE) !== at) return true;
    Atomics.store(this.control, CONSUMER_WAITING, 1);
    // The word holds the position and the closed bit: a publish or a close both change it.
    Atomics.wait(this.control, WRITE, at, timeoutMs);
    Atomics.store(this.control, CONSUMER_WAITING, 0);
    return Atomics.load(this.control, WRITE) !== at;
  }

  /** Hands every record before the read position back to the producer; wakes a waiting producer once a quarter of the ring is free (waitForSpace). */
  private release(): void {
    this.unreleasedRecords = 0;
    if (this.releasedPos === this.readPos) return;
    this.releasedPos = this.readPos;
    Atomics.store(this.control, READ, this.readPos);
    if (Atomics.load(this.control, PRODUCER_WAITING) !== 0
      && this.distance(this.readPos, Atomics.load(this.control, WRITE) & POSITION_MASK) <= this.capacity - (this.capacity >> 2)) {
      Atomics.notify(this.control, READ);
    }
  }

  private distance(from: number, to: number): number {
    return to >= from ? to - from : this.capacity - from + to;
  }
}
