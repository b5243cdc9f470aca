/**
 * Quantiles in bounded memory: samples are kept exactly up to a cap (so small
 * sets give the exact median, the mean of the two middle values for an even
 * count, as tshark-based references compute it), then folded into a
 * log-bucketed histogram with 0.5 % relative accuracy (DDSketch's idea).
 *
 * Buckets are counted in dense arrays indexed by the bucket exponent over the
 * range where durations and rates live (magnitudes from 1e-9 to about 4e17),
 * one for positive and one for negative values; anything beyond (rare: huge
 * values, Infinity) goes to a Map. A summary selects its ranks among the
 * exact samples in place; `quantile` sorts them once.
 *
 * A window's set travels as a QuantileSketch (common/report.ts): its samples
 * as they are up to SKETCH_EXACT, else its buckets (at most SKETCH_BUCKETS,
 * the lowest folded into the next). `addSketch` merges one as `addAll` merges a
 * set, so a report's distributions are the merge of its windows' sketches,
 * in `analyze` and in the collector alike.
 */
import type { QuantileSketch } from '../../../common/report.js';

export interface QuantileSummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

const EXACT_CAP = 65536;
/** Bucket ratio: a bucket's values are within ±0.5 % of its representative value. */
const GAMMA = 1.01;
const LOG_GAMMA = Math.log(GAMMA);
/** Magnitudes below this (seconds) share the zero bucket. */
const MIN_VALUE = 1e-9;
/** Keeps bucket keys of positive values above 0 and of negative values below 0, so keys sort like values. */
const KEY_OFFSET = 1e6;
/** Bucket exponents counted in the dense arrays: [E_MIN, E_MIN + E_SPAN). Below MIN_VALUE is the zero bucket, so E_MIN covers every magnitude above it. */
const E_MIN = -2100;
const E_SPAN = 6200;
/** A sketch carries its samples as they are up to this many (JSON: at most 24 bytes each, 6.2 KB; 4.9 KB measured). */
export const SKETCH_EXACT = 256;
/** Buckets a sketch carries at most (JSON: at most 17 bytes each, 17.4 KB; 9-10 KB measured): 1 % wide, they span 1.01^1024, a factor of 26,000. */
export const SKETCH_BUCKETS = 1024;
/** Largest |bucket exponent| a sketch may name: |values| up to Number.MAX_VALUE (1.01^71,400) and down to MIN_VALUE. */
export const SKETCH_MAX_EXPONENT = 80_000;

export class Quantiles {
  private exact = new Float64Array(256);
  private n = 0;
  /** The first `n` exact samples are in ascending order. */
  private sorted = true;
  /** Bucket mode (past EXACT_CAP samples): counts by exponent, positive and negative values, and the zero bucket. */
  private buckets = false;
  private positive: Float64Array | null = null;
  private negative: Float64Array | null = null;
  private zeros = 0;
  /** Buckets outside the dense range, by key. */
  private overflow: Map<number, number> | null = null;
  private maxValue = -Infinity;

  /**
   * `allowNegative`: keep negative samples (a Wireshark time delta across timestamps going backwards) instead of dropping them.
   * `exactCap`: samples kept exactly before folding into buckets (at most EXACT_CAP): lower it where many sets live at once (dimensions).
   */
  constructor(private readonly allowNegative = false, private readonly exactCap = EXACT_CAP) {}

  /** Samples kept exactly at most (addAll and addSketch too: past it, the set is in buckets as `add` would have made it). */
  private get cap(): number { return Math.min(this.exactCap, EXACT_CAP); }

  get count(): number { return this.n; }

  /**
   * The two common cases (a positive sample kept exactly, or counted in a
   * dense positive bucket) are written small enough for TurboFan to inline
   * into the per-packet callers (tcp, rtt, dns): a double passed to a call
   * that is not inlined is boxed, a heap number per sample. Everything else,
   * with the same result, in `addSlow`.
   */
  add(value: number): void {
    if (value > MIN_VALUE) {
      if (!this.buckets) {
        // exact.length never exceeds EXACT_CAP (it doubles from 256 up to it).
        if (this.n < this.exact.length) {
          if (value > this.maxValue) this.maxValue = value;
          this.exact[this.n++] = value;
          this.sorted = false;
          return;
        }
      } else if (this.positive !== null) {
        // bucketAdd's dense case: above MIN_VALUE the index is at least 0.
        const i = exponentOf(value) - E_MIN;
        if (i < E_SPAN) {
          if (value > this.maxValue) this.maxValue = value;
          this.positive[i]++;
          this.n++;
          return;
        }
      }
    }
    this.addSlow(value);
  }

  /**
   * Adds every sample `other` holds, as if each had been added here (same
   * `allowNegative` expected): its exact samples one by one, or its bucket
   * counts. Lets a summary of several sets be made at window close rather
   * than adding each sample twice on the packet path.
   */
  addAll(other: Quantiles): void {
    if (other.n === 0) return;
    if (other.maxValue > this.maxValue) this.maxValue = other.maxValue;
    if (!other.buckets && !this.buckets && this.n + other.n <= this.cap) {
      // Both exact, and together still within the cap: a copy.
      this.reserve(this.n + other.n);
      this.exact.set(other.exact.subarray(0, other.n), this.n);
      this.n += other.n;
      this.sorted = false;
      return;
    }
    this.toBuckets();
    this.n += other.n;
    if (!other.buckets) {
      for (let i = 0; i < other.n; i++) this.bucketAdd(other.exact[i]!);
      return;
    }
    if (other.positive !== null) {
      const to = (this.positive ??= new Float64Array(E_SPAN));
      for (let i = 0; i < E_SPAN; i++) to[i]! += other.positive[i]!;
    }
    if (other.negative !== null) {
      const to = (this.negative ??= new Float64Array(E_SPAN));
      for (let i = 0; i < E_SPAN; i++) to[i]! += other.negative[i]!;
    }
    this.zeros += other.zeros;
    if (other.overflow !== null) {
      const overflow = (this.overflow ??= new Map());
      for (const [k, count] of other.overflow) overflow.set(k, (overflow.get(k) ?? 0) + count);
    }
  }

  /**
   * Adds the samples a sketch describes, as `addAll` adds a set: its exact
   * samples copied (or bucketed, past EXACT_CAP together), or its bucket
   * counts. The sketch is trusted to be well formed (validated where it was read).
   */
  addSketch(s: QuantileSketch): void {
    if (s.count === 0) return;
    if (s.max !== null && s.max > this.maxValue) this.maxValue = s.max;
    const exact = s.exact;
    if (exact !== undefined && !this.buckets && this.n + exact.length <= this.cap) {
      this.reserve(this.n + exact.length);
      this.exact.set(exact, this.n);
      this.n += exact.length;
      this.sorted = false;
      return;
    }
    this.toBuckets();
    this.n += s.count;
    if (exact !== undefined) {
      for (const v of exact) this.bucketAdd(v);
      return;
    }
    this.zeros += s.zero ?? 0;
    for (const [e, count] of s.positive ?? []) this.bucketAddAt(1, e, count);
    for (const [e, count] of s.negative ?? []) this.bucketAddAt(-1, e, count);
  }

  /**
   * The set as a sketch: up to SKETCH_EXACT samples as they are (ascending),
   * else its buckets, [exponent, count] for positive and negative values
   * (|value| in (1.01^(e-1), 1.01^e]) and the count of the zero bucket. Over
   * SKETCH_BUCKETS buckets, the lowest (in value order) are folded into the
   * lowest one kept: low quantiles lose accuracy, p50 and above keep ±0.5 %
   * unless the window's values span more than a factor of 26,000.
   *
   * `whole`: every sample the set holds, neither limit applied (its exact
   * samples all, unsorted, or every bucket): a set that `addSketch`es such
   * sketches of several sets has the summary of one set fed all their samples
   * (flow-sharded workers' parts of a window's distribution).
   */
  sketch(whole = false): QuantileSketch {
    const max = this.n ? this.maxValue : null;
    if (whole && !this.buckets) return { count: this.n, max, exact: Array.from(this.exact.subarray(0, this.n)) };
    if (!this.buckets && this.n <= SKETCH_EXACT) {
      const exact = Array.from(this.exact.subarray(0, this.n)).sort((a, b) => a - b);
      return { count: this.n, max, exact };
    }
    let list = this.buckets ? this.bucketList() : this.exactAsBuckets();
    if (!whole && list.length > SKETCH_BUCKETS) {
      const cut = list.length - SKETCH_BUCKETS;
      let folded = 0;
      for (let i = 0; i <= cut; i++) folded += list[i]![1];
      list = [[list[cut]![0], folded], ...list.slice(cut + 1)];
    }
    const out: QuantileSketch = { count: this.n, max };
    const positive: Array<[number, number]> = [];
    const negative: Array<[number, number]> = [];
    for (const [k, count] of list) {
      if (k === 0) out.zero = count;
      else if (k > 0) positive.push([k - KEY_OFFSET, count]);
      else negative.push([-k - KEY_OFFSET, count]);
    }
    if (positive.length) out.positive = positive;
    if (negative.length) out.negative = negative;
    return out;
  }

  /** The exact samples' buckets, as bucketList gives them in bucket mode. */
  private exactAsBuckets(): Array<[number, number]> {
    const counts = new Map<number, number>();
    for (let i = 0; i < this.n; i++) {
      const k = bucketKey(this.exact[i]!);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    return [...counts].sort((a, b) => a[0] - b[0]);
  }

  /** Room for `need` (at most EXACT_CAP) exact samples: the array doubles from 256 up to the cap. */
  private reserve(need: number): void {
    if (need <= this.exact.length) return;
    let size = Math.max(256, this.exact.length);
    while (size < need) size *= 2;
    const bigger = new Float64Array(Math.min(size, EXACT_CAP));
    bigger.set(this.exact.subarray(0, this.n));
    this.exact = bigger;
  }

  /** Past EXACT_CAP samples: the exact ones go into buckets, and so will every later one. */
  private toBuckets(): void {
    if (this.buckets) return;
    this.buckets = true;
    for (let i = 0; i < this.n; i++) this.bucketAdd(this.exact[i]!);
    this.exact = new Float64Array(0);
  }

  private addSlow(value: number): void {
    if (Number.isNaN(value) || (value < 0 && !this.allowNegative)) return;
    if (value > this.maxValue) this.maxValue = value;
    if (!this.buckets) {
      if (this.n < Math.min(this.exactCap, EXACT_CAP)) {
        this.reserve(this.n + 1);
        this.exact[this.n++] = value;
        this.sorted = false;
        return;
      }
      this.toBuckets();
    }
    this.bucketAdd(value);
    this.n++;
  }

  private bucketAdd(value: number): void {
    const magnitude = Math.abs(value);
    if (magnitude <= MIN_VALUE) { this.zeros++; return; }
    this.bucketAddAt(value > 0 ? 1 : -1, exponentOf(magnitude), 1);
  }

  /** Adds `count` to the bucket of exponent `e` for values of `sign` (a sketch's bucket). */
  private bucketAddAt(sign: number, e: number, count: number): void {
    const i = e - E_MIN;
    if (i >= 0 && i < E_SPAN) {
      if (sign > 0) (this.positive ??= new Float64Array(E_SPAN))[i]! += count;
      else (this.negative ??= new Float64Array(E_SPAN))[i]! += count;
      return;
    }
    const k = sign * (e + KEY_OFFSET);
    const overflow = (this.overflow ??= new Map());
    overflow.set(k, (overflow.get(k) ?? 0) + count);
  }

  /** Bucket keys (sign * (exponent + KEY_OFFSET), 0 for the zero bucket) in ascending order, with their counts. */
  private bucketList(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    if (this.overflow) for (const entry of this.overflow) out.push(entry);
    const neg = this.negative;
    if (neg) for (let i = 0; i < E_SPAN; i++) if (neg[i]! > 0) out.push([-(i + E_MIN + KEY_OFFSET), neg[i]!]);
    if (this.zeros > 0) out.push([0, this.zeros]);
    const pos = this.positive;
    if (pos) for (let i = 0; i < E_SPAN; i++) if (pos[i]! > 0) out.push([i + E_MIN + KEY_OFFSET, pos[i]!]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** The q-quantile (0..1); for q = 0.5 and an even exact count, the mean of the two middle values. */
  quantile(q: number): number | null {
    return this.quantileOf(q, this.buckets ? this.bucketList() : null);
  }

  private quantileOf(q: number, buckets: Array<[number, number]> | null): number | null {
    if (this.n === 0) return null;
    if (buckets === null) {
      const sorted = this.exact;
      if (!this.sorted) { sorted.subarray(0, this.n).sort(); this.sorted = true; }
      if (q === 0.5 && this.n % 2 === 0) return (sorted[this.n / 2 - 1]! + sorted[this.n / 2]!) / 2;
      return sorted[rankIndex(q, this.n)]!;
    }
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (const [k, count] of buckets) {
      seen += count;
      if (seen >= rank) return k === 0 ? 0 : (Math.sign(k) * 2 * GAMMA ** (Math.abs(k) - KEY_OFFSET)) / (1 + GAMMA);
    }
    return this.maxValue;
  }

  summary(): QuantileSummary {
    if (!this.buckets && !this.sorted && this.n > 0) return this.selectedSummary();
    const buckets = this.buckets && this.n > 0 ? this.bucketList() : null;
    return {
      count: this.n,
      p50: round(this.quantileOf(0.5, buckets)),
      p90: round(this.quantileOf(0.9, buckets)),
      p99: round(this.quantileOf(0.99, buckets)),
      max: this.n ? round(this.maxValue) : null,
    };
  }

  /**
   * summary() of unsorted exact samples: the three ranks are selected in
   * place (largest first, each within the part below the one before) instead
   * of sorting, which for tens of thousands of samples costs several
   * milliseconds per window. Same values as quantileOf on the sorted samples.
   */
  private selectedSummary(): QuantileSummary {
    const a = this.exact;
    const n = this.n;
    const i99 = rankIndex(0.99, n);
    const i90 = rankIndex(0.9, n);
    select(a, 0, n - 1, i99);
    select(a, 0, i99, i90);
    let p50: number;
    if (n % 2 === 0) {
      // The mean of the two middle values: the upper one selected, the lower one the largest below it.
      const hi = n / 2;
      select(a, 0, i90, hi);
      let lo = a[0]!;
      for (let i = 1; i < hi; i++) if (a[i]! > lo) lo = a[i]!;
      p50 = (lo + a[hi]!) / 2;
    } else {
      const i50 = rankIndex(0.5, n);
      select(a, 0, i90, i50);
      p50 = a[i50]!;
    }
    return { count: n, p50: round(p50), p90: round(a[i90]!), p99: round(a[i99]!), max: round(this.maxValue) };
  }

  clear(): void {
    this.n = 0;
    this.sorted = true;
    this.buckets = false;
    this.positive?.fill(0);
    this.negative?.fill(0);
    this.zeros = 0;
    this.overflow = null;
    // Bucket mode left no exact buffer (length 0); a large one is not kept for a quiet window.
    if (this.exact.length === 0 || this.exact.length > 4096) this.exact = new Float64Array(256);
    this.maxValue = -Infinity;
  }
}

/** The bucket key of a value: 0 for the zero bucket, else sign * (exponent + KEY_OFFSET) (bucketAdd's buckets). */
function bucketKey(value: number): number {
  const magnitude = Math.abs(value);
  if (magnitude <= MIN_VALUE) return 0;
  return Math.sign(value) * (exponentOf(magnitude) + KEY_OFFSET);
}

/** The bucket exponent of a magnitude above MIN_VALUE: its bucket holds (1.01^(e-1), 1.01^e]. */
function exponentOf(magnitude: number): number {
  return Math.ceil(Math.log(magnitude) / LOG_GAMMA);
}

/** Index of the q-quantile in the sorted exact samples (quantileOf's nearest rank). */
function rankIndex(q: number, n: number): number {
  return Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1));
}

/** Partition rounds of `select` before it sorts the rest instead (bad pivots: a quadratic worst case is not an option). */
const SELECT_ROUNDS = 64;

/**
 * Moves the k-th smallest of a[lo..hi] to a[k], with nothing larger before it
 * and nothing smaller after it within lo..hi (Hoare's selection, median-of-three pivots).
 */
function select(a: Float64Array, lo: number, hi: number, k: number): void {
  for (let pass = 0; hi > lo; pass++) {
    if (pass === SELECT_ROUNDS) { a.subarray(lo, hi + 1).sort(); return; }
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    // a[lo..j] <= pivot, a[i..hi] >= pivot, and any between equal to it.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/** Nanosecond rounding keeps JSON stable and free of float noise. */
function round(v: number | null): number | null {
  return v === null ? null : Math.round(v * 1e9) / 1e9;
}
