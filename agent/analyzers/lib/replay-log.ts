/**
 * A flow-sharded worker's log of an analyzer's per-packet events, for a
 * coordinator that replays every worker's events in input order into one
 * state (issue 13). For detectors whose state is order-dependent across
 * workers (rings of recent names, first samples, first-sight admission, LRU
 * tables): adding up per-key figures cannot give what one pipeline over the
 * whole input gives, replaying the same events in the same order does.
 *
 * Records are fixed-width: `width` Int32 words, the packet's index in the
 * whole input (its order) and a time (Float64), and optionally bytes in a
 * shared byte log (the log keeps a record's offset there in its word
 * `offsetWord`). Columns grow by doubling and are reused, so after the first
 * busy windows the per-packet path allocates nothing.
 *
 * Bounded per window: at most `maxRecords` records and `maxBytes` bytes,
 * which the owner sizes from its detector's part of memory.budgetMB (a
 * worker allocates none of the detector's tables: the coordinator keeps
 * them). A full log drops its oldest half (counted in `dropped`, the part's
 * `dropped`), so it holds at least the window's `maxRecords / 2` most recent
 * records: the detectors' tables are least-recently-used, and what one
 * pipeline still holds at a window's close comes from its latest events.
 * Replayed without the dropped records, the coordinator's state can differ
 * from one pipeline's (the analyzers name it in their metrics).
 *
 * Shared, not copied: the columns are SharedArrayBuffer views, and `take`
 * hands them over as they are (a structured clone of a shared buffer shares
 * it), so a window's records exist once, not in the worker, its message and
 * the coordinator each. The coordinator marks a part replayed
 * (`endReplay`); the worker then writes a later window into those buffers.
 * A part never marked (a window a live merge skipped) is forgotten after
 * MAX_HANDED_OVER windows and collected when the coordinator drops it.
 */

/** One worker's events of one window (structured-cloneable; the arrays share the worker's buffers). */
export interface ReplayLogPart {
  /** Record i's words at [i * width, (i + 1) * width). */
  ints: Int32Array;
  /** Record i's order at 2 i, its time at 2 i + 1. */
  times: Float64Array;
  bytes: Uint8Array;
  /** Records of the window the worker's full log dropped (its oldest). */
  dropped: number;
  /** Word 0 is set to 1 once the coordinator has replayed the part (`endReplay`); null for a part with no records. */
  replayed: Int32Array | null;
}

/**
 * The share of a detector's part of memory.budgetMB one window's log may
 * take: the window being written and the one the coordinator replays take
 * together about what the detector's tables take in one pipeline.
 */
export const LOG_SHARE = 0.45;

/** Windows handed over and not yet marked replayed that a log waits for before it forgets the oldest. */
const MAX_HANDED_OVER = 4;

/** One set of buffers: a window's columns and its replayed flag. */
interface LogBuffers {
  ints: Int32Array;
  times: Float64Array;
  bytes: Uint8Array;
  replayed: Int32Array;
}

const EMPTY_INTS = new Int32Array(0);
const EMPTY_TIMES = new Float64Array(0);
const EMPTY_BYTES = new Uint8Array(0);

export interface ReplayLogOptions {
  /** Int32 words per record. */
  width: number;
  /** Records per window at most (at least 2). */
  maxRecords: number;
  /** Bytes per window at most (0: a log without bytes); at least the bytes of the largest record (a larger one still fits, past the bound). */
  maxBytes?: number;
  /** With bytes: the word of each record in which the log keeps the offset of its bytes. */
  offsetWord?: number;
  initialRecords?: number;
  initialBytes?: number;
}

export class ReplayLog {
  readonly width: number;
  readonly maxRecords: number;
  readonly maxBytes: number;
  /** Records in the log. */
  length = 0;
  /** Bytes used in `bytes`. */
  byteLength = 0;
  /** Records of the current window dropped so far. */
  dropped = 0;
  /** Offset in `bytes` of the bytes reserved by the last `add`. */
  byteOffset = 0;
  ints: Int32Array;
  times: Float64Array;
  bytes: Uint8Array;
  private replayed: Int32Array;
  private readonly offsetWord: number;
  /** Buffers of windows handed over, oldest first, until the coordinator has replayed them. */
  private readonly handedOver: LogBuffers[] = [];

  constructor(options: ReplayLogOptions) {
    this.width = options.width;
    this.maxRecords = Math.max(2, Math.floor(options.maxRecords));
    this.maxBytes = Math.floor(options.maxBytes ?? 0);
    this.offsetWord = options.offsetWord ?? -1;
    if (this.maxBytes > 0 && (this.offsetWord < 0 || this.offsetWord >= this.width)) throw new RangeError('ReplayLog: a log with bytes needs an offsetWord');
    const records = Math.min(this.maxRecords, options.initialRecords ?? 256);
    const set = newBuffers(records * this.width, records * 2, Math.min(this.maxBytes, options.initialBytes ?? 16384));
    this.ints = set.ints;
    this.times = set.times;
    this.bytes = set.bytes;
    this.replayed = set.replayed;
  }

  /**
   * Appends a record of input packet `order` at `time`, with `byteCount`
   * bytes (at most maxBytes) reserved at `byteOffset`: returns the index in
   * `ints` of its first word (the caller fills `width` words, but the offset
   * word, and the bytes). A full log first drops its oldest half.
   */
  add(order: number, time: number, byteCount = 0): number {
    if (this.length === this.maxRecords) this.dropOldest();
    while (this.byteLength + byteCount > this.maxBytes && this.length > 0) this.dropOldest();
    if (this.length === this.times.length >> 1) this.growRecords();
    if (this.byteLength + byteCount > this.bytes.length) this.growBytes(this.byteLength + byteCount);
    const i = this.length;
    this.times[2 * i] = order;
    this.times[2 * i + 1] = time;
    this.length = i + 1;
    const r = i * this.width;
    if (this.offsetWord >= 0) {
      this.ints[r + this.offsetWord] = this.byteOffset = this.byteLength;
      this.byteLength += byteCount;
    }
    return r;
  }

  /**
   * The window's records (views of the log's buffers, which the log leaves
   * to the coordinator until it marks them replayed) and an empty log.
   */
  take(): ReplayLogPart {
    const dropped = this.dropped;
    this.dropped = 0;
    if (this.length === 0) return { ints: EMPTY_INTS, times: EMPTY_TIMES, bytes: EMPTY_BYTES, dropped, replayed: null };
    const part: ReplayLogPart = {
      ints: this.ints.subarray(0, this.length * this.width),
      times: this.times.subarray(0, this.length * 2),
      bytes: this.bytes.subarray(0, this.byteLength),
      dropped,
      replayed: this.replayed,
    };
    const given: LogBuffers = { ints: this.ints, times: this.times, bytes: this.bytes, replayed: this.replayed };
    const handed = this.handedOver;
    const next = handed.findIndex((b) => Atomics.load(b.replayed, 0) === 1);
    let set: LogBuffers;
    if (next >= 0) {
      set = handed.splice(next, 1)[0]!;
      Atomics.store(set.replayed, 0, 0);
    } else {
      // The coordinator has not replayed an earlier window yet: buffers as large as these, so this window grows none.
      set = newBuffers(this.ints.length, this.times.length, this.bytes.length);
    }
    handed.push(given);
    // Never marked (a window a live merge skipped): left to the collector once the coordinator drops it too.
    if (handed.length > MAX_HANDED_OVER) handed.shift();
    this.ints = set.ints;
    this.times = set.times;
    this.bytes = set.bytes;
    this.replayed = set.replayed;
    this.length = 0;
    this.byteLength = 0;
    return part;
  }

  /** Drops the oldest half of the records (and their bytes). */
  private dropOldest(): void {
    const n = this.length;
    const drop = Math.max(1, n >> 1);
    const w = this.width;
    const ints = this.ints;
    if (this.offsetWord >= 0) {
      const from = drop < n ? ints[drop * w + this.offsetWord]! : this.byteLength;
      this.bytes.copyWithin(0, from, this.byteLength);
      this.byteLength -= from;
      for (let i = drop; i < n; i++) ints[i * w + this.offsetWord]! -= from;
    }
    ints.copyWithin(0, drop * w, n * w);
    this.times.copyWithin(0, 2 * drop, 2 * n);
    this.length = n - drop;
    this.dropped += drop;
  }

  private growRecords(): void {
    const records = Math.min(this.maxRecords, 2 * (this.times.length >> 1));
    const ints = sharedInts(records * this.width);
    ints.set(this.ints.subarray(0, this.length * this.width));
    this.ints = ints;
    const times = new Float64Array(new SharedArrayBuffer(records * 2 * 8));
    times.set(this.times.subarray(0, this.length * 2));
    this.times = times;
  }

  /** `needed` above maxBytes only for a record larger than the bound (the caller's bound is too small): it still fits. */
  private growBytes(needed: number): void {
    const bytes = new Uint8Array(new SharedArrayBuffer(Math.max(needed, Math.min(this.maxBytes, 2 * this.bytes.length))));
    bytes.set(this.bytes.subarray(0, this.byteLength));
    this.bytes = bytes;
  }
}

function sharedInts(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * 4));
}

function newBuffers(ints: number, times: number, bytes: number): LogBuffers {
  return {
    ints: sharedInts(ints),
    times: new Float64Array(new SharedArrayBuffer(times * 8)),
    bytes: new Uint8Array(new SharedArrayBuffer(bytes)),
    replayed: sharedInts(1),
  };
}

/**
 * The coordinator, its window replayed and judged: marks every part replayed
 * (its worker may write a later window into its buffers) and returns the
 * window's `metrics` with `notReplayed`, the records the workers' full logs
 * dropped, when there were any (one pipeline has no such figure).
 */
export function endReplay(parts: readonly ReplayLogPart[], metrics: Record<string, unknown>): Record<string, unknown> {
  let dropped = 0;
  for (const p of parts) {
    if (p.replayed !== null) Atomics.store(p.replayed, 0, 1);
    dropped += p.dropped;
  }
  if (dropped > 0) metrics['notReplayed'] = dropped;
  return metrics;
}

/**
 * Visits the records of every worker's part in input order (ascending
 * order; a tie, which one record per packet never gives, goes to `tie`'s
 * lesser record, else to the lower worker): `visit(worker, record)`. `tie`
 * (worker a, record a, worker b, record b) is for logs with several records
 * at one packet from different workers (attempts settled by a deadline the
 * packet passed): negative when record a comes first.
 */
export function replayInOrder(parts: readonly ReplayLogPart[], visit: (worker: number, record: number) => void,
  tie?: (wa: number, ra: number, wb: number, rb: number) => number): void {
  const next = new Int32Array(parts.length);
  for (;;) {
    let best = -1;
    let bestOrder = Infinity;
    for (let w = 0; w < parts.length; w++) {
      const i = next[w]!;
      if (2 * i >= parts[w]!.times.length) continue;
      const order = parts[w]!.times[2 * i]!;
      if (best < 0 || order < bestOrder || (order === bestOrder && tie !== undefined && tie(w, i, best, next[best]!) < 0)) { best = w; bestOrder = order; }
    }
    if (best < 0) return;
    visit(best, next[best]!);
    next[best]!++;
  }
}
