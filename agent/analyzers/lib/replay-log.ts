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
 * shared byte log (a record keeps its offset in one of its words). Columns
 * grow by doubling and are reused window after window, so after the first
 * busy window the per-packet path allocates nothing; `take` copies what the
 * window used (proportional to its events, not to the capacity) and empties
 * the log.
 */

/** One worker's events of one window (structured-cloneable). */
export interface ReplayLogPart {
  /** Record i's words at [i * width, (i + 1) * width). */
  ints: Int32Array;
  /** Record i's order at 2 i, its time at 2 i + 1. */
  times: Float64Array;
  bytes: Uint8Array;
}

export class ReplayLog {
  /** Records in the log. */
  length = 0;
  /** Bytes used in `bytes`. */
  byteLength = 0;
  ints: Int32Array;
  times: Float64Array;
  bytes: Uint8Array;

  constructor(readonly width: number, initialRecords = 256, initialBytes = 16384) {
    this.ints = new Int32Array(initialRecords * width);
    this.times = new Float64Array(initialRecords * 2);
    this.bytes = new Uint8Array(initialBytes);
  }

  /** Appends a record of input packet `order` at `time`: returns the index in `ints` of its first word (the caller fills `width` words). */
  add(order: number, time: number): number {
    const i = this.length;
    if ((i + 1) * 2 > this.times.length) this.grow();
    this.times[2 * i] = order;
    this.times[2 * i + 1] = time;
    this.length = i + 1;
    return i * this.width;
  }

  /** Reserves `n` bytes: returns their offset in `bytes` (the caller writes them). */
  reserve(n: number): number {
    const at = this.byteLength;
    if (at + n > this.bytes.length) {
      const next = new Uint8Array(Math.max(2 * this.bytes.length, at + n));
      next.set(this.bytes.subarray(0, at));
      this.bytes = next;
    }
    this.byteLength = at + n;
    return at;
  }

  /** The window's records (copies) and an empty log. */
  take(): ReplayLogPart {
    const part: ReplayLogPart = {
      ints: this.ints.slice(0, this.length * this.width),
      times: this.times.slice(0, this.length * 2),
      bytes: this.bytes.slice(0, this.byteLength),
    };
    this.length = 0;
    this.byteLength = 0;
    return part;
  }

  private grow(): void {
    const ints = new Int32Array(this.ints.length * 2);
    ints.set(this.ints);
    this.ints = ints;
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
  }
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
