/**
 * A Map with a hard cap and least-recently-used eviction, counted: the
 * look-back state of security detectors (per source, per pair) stays bounded
 * whatever the traffic. `get` refreshes an entry's recency.
 */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  /** Entries dropped because the map was full. */
  evicted = 0;

  constructor(readonly maxKeys: number, private readonly onEvict?: (key: K, value: V) => void) {}

  get size(): number { return this.map.size; }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) { this.map.delete(key); this.map.set(key, v); }
    return v;
  }

  /** Looks up without refreshing recency. */
  peek(key: K): V | undefined { return this.map.get(key); }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.maxKeys) {
      const [oldKey, oldValue] = this.map.entries().next().value as [K, V];
      this.map.delete(oldKey);
      this.evicted++;
      this.onEvict?.(oldKey, oldValue);
    }
  }

  delete(key: K): boolean { return this.map.delete(key); }

  /** Oldest (least recently used) first. */
  entries(): IterableIterator<[K, V]> { return this.map.entries(); }
  values(): IterableIterator<V> { return this.map.values(); }
}

/**
 * Counts in a ring of time buckets covering a look-back period, so rates are
 * over the last `lookback` seconds of packet time, not averaged over a capture.
 */
export class BucketCounter {
  private readonly counts: Float64Array;
  private readonly bucketSeconds: number;
  private currentIndex = -Infinity;

  constructor(lookback: number, buckets = 6) {
    this.counts = new Float64Array(buckets);
    this.bucketSeconds = lookback / buckets;
  }

  add(now: number, n = 1): void {
    this.advance(now);
    this.counts[mod(this.currentIndex, this.counts.length)]! += n;
  }

  /** Total over the look-back ending at `now`. */
  sum(now: number): number {
    this.advance(now);
    let s = 0;
    for (let i = 0; i < this.counts.length; i++) s += this.counts[i]!;
    return s;
  }

  /** Moves to the bucket of `now`, clearing the buckets passed over; earlier times count in the current bucket. */
  private advance(now: number): void {
    const index = Math.floor(now / this.bucketSeconds);
    if (index <= this.currentIndex) return;
    const n = this.counts.length;
    if (index - this.currentIndex >= n) this.counts.fill(0);
    else for (let i = this.currentIndex + 1; i <= index; i++) this.counts[mod(i, n)] = 0;
    this.currentIndex = index;
  }
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;
