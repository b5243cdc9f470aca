/**
 * Fixed-width integer keys (`width` 32-bit words: a host id, a pair of host
 * ids and a port, ...) mapped to dense ids 0..capacity-1, all preallocated at
 * construction: the owner keeps its per-key values in its own typed arrays
 * indexed by id (columnar), so a key costs a few bytes and no object.
 *
 * Open addressing on a power-of-two index of at least twice the capacity
 * (load <= 1/2: short linear probes), backward-shift deletion (no tombstones,
 * so probes stay short after many removals), a doubly-linked LRU list over
 * the live ids (oldest at the head) and a free list of unused ids chained
 * through the same `next` array. The flow table (agent/flow/flow-table.ts)
 * does the same for 5-tuples.
 *
 * The key is passed without allocation: fill `key` (the reusable input
 * buffer), then call `find` or `findOrInsert`.
 */

const NIL = -1;

export class KeyTable {
  readonly capacity: number;
  readonly width: number;
  /** The key of the next `find` / `findOrInsert` / `keyHash`, filled by the caller. */
  readonly key: Uint32Array;
  /** Live keys. */
  size = 0;
  /** Ids taken back because the table was full (`onEvict` calls). */
  evicted = 0;
  /** Whether the last `findOrInsert` inserted (the owner initialises its columns for the id). */
  inserted = false;

  private readonly keys: Uint32Array;
  private readonly hashes: Int32Array;
  /** LRU links; for a free id, `next` chains the free list. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly live: Uint8Array;
  /** Index position -> id + 1, 0 = empty. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private head = NIL;
  private tail = NIL;
  private freeHead = NIL;

  /**
   * `onEvict(id)` runs when `findOrInsert` takes back the least recently used
   * id of a full table, before the id is reused: its key is still readable
   * (`keyWord`), so the owner can adjust its columns and counters. It must not
   * insert into or remove from this table, nor change `key`.
   */
  constructor(capacity: number, width: number, private readonly onEvict?: (id: number) => void) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 29) throw new RangeError(`KeyTable capacity ${capacity}: expected an integer in 1..2^29`);
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`KeyTable width ${width}: expected a positive integer`);
    this.capacity = capacity;
    this.width = width;
    this.key = new Uint32Array(width);
    this.keys = new Uint32Array(capacity * width);
    this.hashes = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.live = new Uint8Array(capacity);
    let n = 2;
    while (n < capacity * 2) n *= 2;
    this.index = new Int32Array(n);
    this.mask = n - 1;
    this.resetFree();
  }

  /**
   * Upper bound of the bytes one id costs (the index is 2 to 4 positions per
   * id, depending on how far the capacity is from a power of two).
   */
  static bytesPerEntry(width: number): number {
    return width * 4 + 4 /* hash */ + 8 /* LRU links */ + 1 /* live */ + 4 * 4 /* index */;
  }

  /** Bytes allocated by this table. */
  get bytes(): number {
    return this.keys.byteLength + this.hashes.byteLength + this.prev.byteLength + this.next.byteLength + this.live.byteLength + this.index.byteLength;
  }

  /** The hash the table uses for the key in `key` (also a good input for FirstSight). */
  keyHash(): number {
    const k = this.key;
    let h = 0x2f9be6cd;
    for (let i = 0; i < k.length; i++) h = mixWord(h, k[i]!);
    return finish(h, k.length);
  }

  /** The id of the key in `key`, or -1; recency is not changed. */
  find(): number {
    return this.lookup(this.keyHash());
  }

  /**
   * The id of the key in `key`, inserted if absent (then `inserted` is true);
   * made the most recently used either way. When the table is full the least
   * recently used id is evicted first (see the constructor's `onEvict`).
   */
  findOrInsert(): number {
    const h = this.keyHash();
    const found = this.lookup(h);
    if (found >= 0) {
      this.inserted = false;
      this.touch(found);
      return found;
    }
    if (this.size === this.capacity) {
      const victim = this.head;
      this.evicted++;
      if (this.onEvict !== undefined) this.onEvict(victim);
      this.remove(victim);
    }
    const id = this.freeHead;
    this.freeHead = this.next[id]!;
    this.keys.set(this.key, id * this.width);
    this.hashes[id] = h;
    this.live[id] = 1;
    this.append(id);
    const mask = this.mask;
    let i = h & mask;
    while (this.index[i] !== 0) i = (i + 1) & mask;
    this.index[i] = id + 1;
    this.size++;
    this.inserted = true;
    return id;
  }

  /** Makes `id` the most recently used. */
  touch(id: number): void {
    if (this.tail === id) return;
    this.unlink(id);
    this.append(id);
  }

  /** Frees a live id (no `onEvict` call: the owner asked for it). */
  remove(id: number): void {
    if (this.live[id] !== 1) throw new RangeError(`KeyTable.remove(${id}): not a live id`);
    this.removeIndex(id);
    this.unlink(id);
    this.live[id] = 0;
    this.next[id] = this.freeHead;
    this.freeHead = id;
    this.size--;
  }

  /** Frees every id (no `onEvict` calls); ids are then handed out from 0 again. */
  clear(): void {
    this.index.fill(0);
    this.live.fill(0);
    this.head = this.tail = NIL;
    this.size = 0;
    this.resetFree();
  }

  isLive(id: number): boolean { return this.live[id] === 1; }

  /** Word `i` of the key of `id`. */
  keyWord(id: number, i: number): number { return this.keys[id * this.width + i]!; }

  /** The least recently used live id, -1 when empty. */
  oldest(): number { return this.head; }

  /**
   * The next id in LRU order after `id`, -1 at the end. Read it before
   * removing `id` when removing while iterating; `touch` or `findOrInsert`
   * during an iteration move ids to the end, where it visits them again.
   */
  newer(id: number): number { return this.next[id]!; }

  private lookup(h: number): number {
    const mask = this.mask;
    const width = this.width;
    const key = this.key;
    const keys = this.keys;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const entry = this.index[i]!;
      if (entry === 0) return -1;
      const id = entry - 1;
      if (this.hashes[id] !== h) continue;
      const o = id * width;
      let k = 0;
      while (k < width && keys[o + k] === key[k]) k++;
      if (k === width) return id;
    }
  }

  /** Linear-probing deletion with backward shift (no tombstones, so lookups stay short). */
  private removeIndex(id: number): void {
    const mask = this.mask;
    let i = this.hashes[id]! & mask;
    while (this.index[i] !== id + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const entry = this.index[j]!;
      if (entry === 0) break;
      const home = this.hashes[entry - 1]! & mask;
      // Move entry j into the hole at i unless its home position is in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        this.index[i] = entry;
        i = j;
      }
    }
    this.index[i] = 0;
  }

  private append(id: number): void {
    const tail = this.tail;
    this.prev[id] = tail;
    this.next[id] = NIL;
    if (tail === NIL) this.head = id; else this.next[tail] = id;
    this.tail = id;
  }

  private unlink(id: number): void {
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p === NIL) this.head = n; else this.next[p] = n;
    if (n === NIL) this.tail = p; else this.prev[n] = p;
  }

  /** All ids free, handed out in increasing order. */
  private resetFree(): void {
    const n = this.capacity;
    for (let i = 0; i < n - 1; i++) this.next[i] = i + 1;
    this.next[n - 1] = NIL;
    this.freeHead = 0;
  }
}

/** MurmurHash3 (x86, 32-bit) body step: one word into the running hash. */
function mixWord(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 finalisation: every input bit reaches the low bits the index uses. */
function finish(h: number, words: number): number {
  h ^= words;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/**
 * The same hash as `KeyTable.keyHash` over the first `width` words of
 * `words`, for keys held elsewhere (a FirstSight admission before any table
 * holds the key).
 */
export function hashWords(words: ArrayLike<number>, width: number): number {
  let h = 0x2f9be6cd;
  for (let i = 0; i < width; i++) h = mixWord(h, words[i]! >>> 0);
  return finish(h, width);
}
