/**
 * Quantiles in bounded memory: samples are kept exactly up to a cap (so small
 * sets give the exact median, the mean of the two middle values for an even
 * count, as tshark-based references compute it), then folded into a
 * log-bucketed histogram with 0.5 % relative accuracy (DDSketch's idea).
 */
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

export class Quantiles {
  private exact = new Float64Array(256);
  private n = 0;
  private buckets: Map<number, number> | null = null;
  private maxValue = -Infinity;

  /** `allowNegative`: keep negative samples (a Wireshark time delta across timestamps going backwards) instead of dropping them. */
  constructor(private readonly allowNegative = false) {}

  get count(): number { return this.n; }

  add(value: number): void {
    if (Number.isNaN(value) || (value < 0 && !this.allowNegative)) return;
    if (value > this.maxValue) this.maxValue = value;
    if (this.buckets === null) {
      if (this.n < EXACT_CAP) {
        if (this.n === this.exact.length) {
          const bigger = new Float64Array(this.exact.length * 2);
          bigger.set(this.exact);
          this.exact = bigger;
        }
        this.exact[this.n++] = value;
        return;
      }
      this.buckets = new Map();
      for (let i = 0; i < this.n; i++) this.bucketAdd(this.exact[i]!);
      this.exact = new Float64Array(0);
    }
    this.bucketAdd(value);
    this.n++;
  }

  private bucketAdd(value: number): void {
    const magnitude = Math.abs(value);
    const k = magnitude <= MIN_VALUE ? 0 : Math.sign(value) * (Math.ceil(Math.log(magnitude) / LOG_GAMMA) + KEY_OFFSET);
    this.buckets!.set(k, (this.buckets!.get(k) ?? 0) + 1);
  }

  /** The q-quantile (0..1); for q = 0.5 and an even exact count, the mean of the two middle values. */
  quantile(q: number): number | null {
    if (this.n === 0) return null;
    if (this.buckets === null) {
      const sorted = this.exact.slice(0, this.n).sort();
      if (q === 0.5 && this.n % 2 === 0) return (sorted[this.n / 2 - 1]! + sorted[this.n / 2]!) / 2;
      return sorted[Math.min(this.n - 1, Math.max(0, Math.ceil(q * this.n) - 1))]!;
    }
    const rank = Math.max(1, Math.ceil(q * this.n));
    const keys = [...this.buckets.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.buckets.get(k)!;
      if (seen >= rank) return k === 0 ? 0 : (Math.sign(k) * 2 * GAMMA ** (Math.abs(k) - KEY_OFFSET)) / (1 + GAMMA);
    }
    return this.maxValue;
  }

  summary(): QuantileSummary {
    return {
      count: this.n,
      p50: round(this.quantile(0.5)),
      p90: round(this.quantile(0.9)),
      p99: round(this.quantile(0.99)),
      max: this.n ? round(this.maxValue) : null,
    };
  }

  clear(): void {
    this.n = 0;
    this.buckets = null;
    if (this.exact.length > 4096) this.exact = new Float64Array(256);
    this.maxValue = -Infinity;
  }
}

/** Nanosecond rounding keeps JSON stable and free of float noise. */
function round(v: number | null): number | null {
  return v === null ? null : Math.round(v * 1e9) / 1e9;
}
