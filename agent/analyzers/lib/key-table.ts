/**
 * Fixed-width integer keys (`width` 32-bit words: a host id, a pair of host
 * ids and a port, ...) mapped to dense ids 0..capacity-1, all preallocated at
 * construction: the owner keeps its per-key values in its own typed arrays
 * indexed by id (columnar), so a key costs a few bytes and no object.
 *
 * Open addressing on a power-of-two index of at least twice the capacity
 * (load <= 1/2: short linear probes), backward-shift deletion (no tombstones,
 * so probes stay short after many removals), a doubly-linked LRU list over
 * the live ids (oldest at the head) and a free list of freed ids chained
 * through the same links (ids never used are handed out in increasing order
 * after them). The flow table (agent/flow/flow-table.ts) does the
 * same for 5-tuples.
 *
 * Layout for large tables, where each random access is a cache miss: one
 * row per id holds its hash, key words and both LRU links, so a hit that
 * refreshes recency costs about four misses (index, row, the two LRU
 * neighbours' rows) instead of seven with one array per field.
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

  /**
   * Per id, `stride` words: the hash, the key words, then the LRU links
   * (previous, next; -1 stored as 0xffffffff, read back with `| 0`). For a
   * freed id, next chains the free list.
   */
  private readonly rows: Uint32Array;
  private readonly stride: number;
  /** Offsets of the links in a row. */
  private readonly prevAt: number;
  private readonly nextAt: number;
  private readonly live: Uint8Array;
  /** Index position -> id + 1, 0 = empty. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private head = NIL;
  private tail = NIL;
  /** Ids freed by `remove` or eviction, most recent first, chained through the next link. */
  private freeHead = NIL;
  /**
   * Ids from here up have never been handed out since the last reset: taken
   * in increasing order once the freed ids are used up. The same order as a
   * free list chaining 0, 1, 2, ... at start, without writing it: that loop
   * over the whole capacity was a fixed cost of every run, per table.
   */
  private unused = 0;

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
    this.stride = width + 3;
    this.prevAt = width + 1;
    this.nextAt = width + 2;
    this.rows = new Uint32Array(capacity * this.stride);
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
    return this.rows.byteLength + this.live.byteLength + this.index.byteLength;
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
    let id = this.freeHead;
    if (id !== NIL) this.freeHead = this.rows[id * this.stride + this.nextAt]! | 0;
    else id = this.unused++;
    const o = id * this.stride;
    const rows = this.rows;
    const key = this.key;
    rows[o] = h;
    for (let k = 0; k < key.length; k++) rows[o + 1 + k] = key[k]!;
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

  /** Makes `id` (a live id) the most recently used. */
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
    this.rows[id * this.stride + this.nextAt] = this.freeHead;
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
  keyWord(id: number, i: number): number { return this.rows[id * this.stride + 1 + i]!; }

  /** The least recently used live id, -1 when empty. */
  oldest(): number { return this.head; }

  /**
   * The next id in LRU order after `id`, -1 at the end. Read it before
   * removing `id` when removing while iterating; `touch` or `findOrInsert`
   * during an iteration move ids to the end, where it visits them again.
   */
  newer(id: number): number { return this.rows[id * this.stride + this.nextAt]! | 0; }

  private lookup(h: number): number {
    const mask = this.mask;
    const width = this.width;
    const stride = this.stride;
    const key = this.key;
    const rows = this.rows;
    const hash = h >>> 0;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const entry = this.index[i]!;
      if (entry === 0) return -1;
      const o = (entry - 1) * stride;
      if (rows[o] !== hash) continue;
      let k = 0;
      while (k < width && rows[o + 1 + k] === key[k]) k++;
      if (k === width) return entry - 1;
    }
  }

  /** Linear-probing deletion with backward shift (no tombstones, so lookups stay short). */
  private removeIndex(id: number): void {
    const mask = this.mask;
    const stride = this.stride;
    let i = this.rows[id * stride]! & mask;
    while (this.index[i] !== id + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const entry = this.index[j]!;
      if (entry === 0) break;
      const home = this.rows[(entry - 1) * stride]! & mask;
      // Move entry j into the hole at i unless its home position is in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        this.index[i] = entry;
        i = j;
      }
    }
    this.index[i] = 0;
  }

  private append(id: number): void {
    const rows = this.rows;
    const stride = this.stride;
    const tail = this.tail;
    rows[id * stride + this.prevAt] = tail;
    rows[id * stride + this.nextAt] = NIL;
    if (tail === NIL) this.head = id; else rows[tail * stride + this.nextAt] = id;
    this.tail = id;
  }

  private unlink(id: number): void {
    const rows = this.rows;
    const stride = this.stride;
    const p = rows[id * stride + this.prevAt]! | 0;
    const n = rows[id * stride + this.nextAt]! | 0;
    if (p === NIL) this.head = n; else rows[p * stride + this.nextAt] = n;
    if (n === NIL) this.tail = p; else rows[n * stride + this.prevAt] = p;
  }

  /** All ids free, handed out in increasing order. */
  private resetFree(): void {
    this.freeHead = NIL;
    this.unused = 0;
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
