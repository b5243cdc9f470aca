/**
 * Reference model for tests (the detectors' ring before engine v2): several counts kept together in a ring of time buckets (BucketCounter's
 * idea, for a few series at once and exact at bucket boundaries), for the
 * look-back of the security detectors. `sumBefore(series, b)` is the total
 * over the `buckets` whole buckets before boundary `b` (bucket index `b`,
 * time b * bucketSeconds): the look-back [t - lookback, t) when t is a
 * bucket boundary. Window ends are boundaries whenever the bucket length
 * divides the window length (times count from a whole multiple of 10^6 s).
 *
 * Fixed size: `buckets + 1` positions, so the bucket being filled never
 * overwrites the oldest one still in the look-back. A time older than every
 * bucket held counts in the newest one (timestamps going backwards). Plain
 * arrays, not typed ones: detectors make many small rings, and small typed
 * arrays each get an off-heap backing store whose churn shows in the RSS.
 */
export class SeriesRing {
  readonly bucketSeconds: number;
  private readonly size: number;
  private readonly counts: number[];
  /** Bucket index held at each position (-Infinity: none). */
  private readonly index: number[];
  private newest = -Infinity;

  constructor(readonly lookback: number, readonly buckets: number, private readonly series: number) {
    this.bucketSeconds = lookback / buckets;
    this.size = buckets + 1;
    this.counts = new Array<number>(this.size * series).fill(0);
    this.index = new Array<number>(this.size).fill(-Infinity);
  }

  /** Bucket index of time `t`. */
  bucketOf(t: number): number { return Math.floor(t / this.bucketSeconds); }

  /** The first bucket boundary at or after `t`. */
  boundaryAt(t: number): number { return Math.ceil(t / this.bucketSeconds); }

  add(t: number, series: number, n: number): void {
    let k = Math.floor(t / this.bucketSeconds);
    let pos = mod(k, this.size);
    if (this.index[pos] !== k) {
      if (k > this.newest) {
        this.index[pos] = k;
        this.counts.fill(0, pos * this.series, pos * this.series + this.series);
        this.newest = k;
      } else {
        k = this.newest;
        pos = mod(k, this.size);
      }
    }
    this.counts[pos * this.series + series] += n;
  }

  /** Total of `series` over the buckets [b - buckets, b). */
  sumBefore(series: number, b: number): number {
    const lo = b - this.buckets;
    let s = 0;
    for (let pos = 0; pos < this.size; pos++) {
      const k = this.index[pos]!;
      if (k >= lo && k < b) s += this.counts[pos * this.series + series]!;
    }
    return s;
  }

  /** Newest bucket holding counts (-Infinity when none). */
  get newestBucket(): number { return this.newest; }
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;
