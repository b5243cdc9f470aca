/**
 * SeriesRing for many keys at once, columnar: `capacity` keys x `series`
 * counters x (`buckets` + 1) ring positions in one Float64Array, the bucket
 * index held at each position in another, the newest bucket per key in a
 * third. Keys are the dense ids of a KeyTable or HostTable; nothing is
 * allocated after construction.
 *
 * Semantics are SeriesRing's, to the bit (the report figures depend on them):
 * `sumBefore(id, series, b)` is the total over the `buckets` whole buckets
 * before boundary `b` (bucket index `b`, time b * bucketSeconds), the
 * look-back [t - lookback, t) when t is a bucket boundary; `buckets + 1`
 * positions so the bucket being filled never overwrites the oldest one still
 * in the look-back; a time older than the bucket its position holds counts in
 * the key's newest bucket (timestamps going backwards).
 *
 * Mergeable (SumStats' merge hook): `mergeFrom` adds another reducer's buckets
 * of one key into a key of this one, for per-core reducers joined later.
 */
export class BucketReducer {
  readonly bucketSeconds: number;
  /** Ring positions per key. */
  private readonly size: number;
  /** [id][position][series] */
  private readonly counts: Float64Array;
  /** [id][position]: bucket index held (-Infinity: none). Float64 so any time stays exact. */
  private readonly index: Float64Array;
  /** [id]: newest bucket holding counts (-Infinity: none). */
  private readonly newest: Float64Array;

  constructor(readonly capacity: number, readonly lookback: number, readonly buckets: number, readonly series: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`BucketReducer capacity ${capacity}: expected a positive integer`);
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`BucketReducer buckets ${buckets}: expected a positive integer`);
    if (!Number.isInteger(series) || series < 1) throw new RangeError(`BucketReducer series ${series}: expected a positive integer`);
    if (!(lookback > 0)) throw new RangeError(`BucketReducer lookback ${lookback}: expected a positive number`);
    this.bucketSeconds = lookback / buckets;
    this.size = buckets + 1;
    this.counts = new Float64Array(capacity * this.size * series);
    this.index = new Float64Array(capacity * this.size).fill(-Infinity);
    this.newest = new Float64Array(capacity).fill(-Infinity);
  }

  /** Bytes one key costs. */
  static bytesPerKey(buckets: number, series: number): number {
    return (buckets + 1) * (series + 1) * 8 + 8;
  }

  /** Bucket index of time `t`. */
  bucketOf(t: number): number { return Math.floor(t / this.bucketSeconds); }

  /** The first bucket boundary at or after `t`. */
  boundaryAt(t: number): number { return Math.ceil(t / this.bucketSeconds); }

  add(id: number, t: number, series: number, n: number): void {
    this.addToBucket(id, Math.floor(t / this.bucketSeconds), series, n);
  }

  /** Total of `series` for key `id` over the buckets [b - buckets, b). */
  sumBefore(id: number, series: number, b: number): number {
    const size = this.size;
    const lo = b - this.buckets;
    const first = id * size;
    const base = first * this.series + series;
    let s = 0;
    for (let pos = 0; pos < size; pos++) {
      const k = this.index[first + pos]!;
      if (k >= lo && k < b) s += this.counts[base + pos * this.series]!;
    }
    return s;
  }

  /** Newest bucket holding counts for `id` (-Infinity when none). */
  newestBucket(id: number): number { return this.newest[id]!; }

  /** Forgets key `id` (its id is free or reused for another key). */
  clear(id: number): void {
    this.index.fill(-Infinity, id * this.size, id * this.size + this.size);
    this.newest[id] = -Infinity;
  }

  /**
   * Adds the buckets of key `otherId` in `other` into key `id`, oldest bucket
   * first. A bucket this key's ring still has room for is added at its own
   * index (its position claimed if it held an older bucket); one older than
   * every bucket the ring can hold beside the newest is dropped: it is outside
   * the look-back of any boundary at or after the newest bucket. So, for each
   * boundary b >= newestBucket(id), the sums equal those of one ring that
   * received both keys' adds in time order.
   */
  mergeFrom(other: BucketReducer, otherId: number, id: number): void {
    if (other.lookback !== this.lookback || other.buckets !== this.buckets || other.series !== this.series) {
      throw new Error(`BucketReducer.mergeFrom: lookback/buckets/series ${other.lookback}/${other.buckets}/${other.series} differ from ${this.lookback}/${this.buckets}/${this.series}`);
    }
    const size = this.size;
    const series = this.series;
    const otherFirst = otherId * size;
    const first = id * size;
    // At most `size` positions: pick them in increasing bucket order without sorting (no allocation).
    let last = -Infinity;
    for (;;) {
      let pos = -1;
      let k = Infinity;
      for (let p = 0; p < size; p++) {
        const kp = other.index[otherFirst + p]!;
        if (kp > last && kp < k) { k = kp; pos = p; }
      }
      if (pos < 0) return;
      last = k;
      const newest = this.newest[id]!;
      if (k <= newest - size) continue;
      const to = mod(k, size);
      if (this.index[first + to] !== k) {
        this.index[first + to] = k;
        this.counts.fill(0, (first + to) * series, (first + to) * series + series);
        if (k > newest) this.newest[id] = k;
      }
      const src = (otherFirst + pos) * series;
      const dst = (first + to) * series;
      for (let s = 0; s < series; s++) this.counts[dst + s] += other.counts[src + s]!;
    }
  }

  /**
   * `add` for a caller that already has the time's bucket (`bucketOf(t)`):
   * one division per packet instead of two.
   */
  addToBucket(id: number, k: number, series: number, n: number): void {
    const size = this.size;
    const first = id * size;
    let pos = mod(k, size);
    if (this.index[first + pos] !== k) {
      const newest = this.newest[id]!;
      if (k > newest) {
        this.index[first + pos] = k;
        const o = (first + pos) * this.series;
        this.counts.fill(0, o, o + this.series);
        this.newest[id] = k;
      } else {
        pos = mod(newest, size);
      }
    }
    this.counts[(first + pos) * this.series + series] += n;
  }
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;
