/**
 * A window's figures per key, for a detector judged at the window's close
 * from what every flow-sharded worker saw (issue 13): fixed-width integer keys
 * (an address and a time bucket, ...) each with a few Float64 values, each
 * value a sum, a minimum (where in the input it was first seen, its first
 * time) or a maximum (its last time). Such figures merge across workers by key
 * whatever the partition: the coordinator's merge of the workers' windows
 * equals one pipeline's window, value for value.
 *
 * Open addressing on an index of at least twice the entries (linear probes),
 * entries dense in insertion order (an id stays valid while the window lasts,
 * so a flow may keep its entry's id). The arrays grow by doubling up to
 * `maxEntries` and are reused window after window: after the first busy
 * window the per-packet path allocates nothing. Past `maxEntries` an insert
 * fails (-1), and the caller counts what it loses.
 */

/** How a value merges: added, the smallest or the largest. */
export const SUM = 0;
export const MIN = 1;
export const MAX = 2;

/** One window's entries (structured-cloneable): entry i's key at [i * width, (i + 1) * width), its values at [i * values, (i + 1) * values). */
export interface WindowCountsPart {
  keys: Uint32Array;
  values: Float64Array;
}

export class WindowCounts {
  /** Entries this window. */
  size = 0;
  /** Whether the last `findOrInsert` inserted (its values start at 0, +Infinity or -Infinity by mode). */
  inserted = false;
  /** The key of the next `findOrInsert`, filled by the caller. */
  readonly key: Uint32Array;
  /** Entry i's key words at [i * width, (i + 1) * width). */
  keys: Uint32Array;
  /** Entry i's values at [i * valueWidth, (i + 1) * valueWidth). */
  values: Float64Array;
  readonly valueWidth: number;
  private readonly init: Float64Array;
  /** Index position -> entry + 1, 0 = empty. */
  private index: Int32Array;
  private mask: number;
  private capacity: number;

  constructor(readonly width: number, private readonly modes: readonly number[], readonly maxEntries: number, initialEntries = 64) {
    this.valueWidth = modes.length;
    this.key = new Uint32Array(width);
    this.init = Float64Array.from(modes, (m) => (m === MIN ? Infinity : m === MAX ? -Infinity : 0));
    this.capacity = Math.max(1, Math.min(initialEntries, maxEntries));
    this.keys = new Uint32Array(this.capacity * width);
    this.values = new Float64Array(this.capacity * this.valueWidth);
    this.index = new Int32Array(indexSize(this.capacity));
    this.mask = this.index.length - 1;
  }

  /** The entry of `key`, inserted if new; -1 when the table is at maxEntries. */
  findOrInsert(): number {
    const width = this.width;
    const key = this.key;
    const keys = this.keys;
    let pos = hashWords(key, width) & this.mask;
    for (;;) {
      const e = this.index[pos]! - 1;
      if (e < 0) break;
      let same = true;
      for (let i = 0; i < width; i++) if (keys[e * width + i] !== key[i]) { same = false; break; }
      if (same) { this.inserted = false; return e; }
      pos = (pos + 1) & this.mask;
    }
    this.inserted = true;
    if (this.size === this.capacity) {
      if (this.size >= this.maxEntries) { this.inserted = false; return -1; }
      this.grow();
      return this.findOrInsert();
    }
    const e = this.size++;
    this.index[pos] = e + 1;
    keys.set(key, e * width);
    this.values.set(this.init, e * this.valueWidth);
    return e;
  }

  /** The window's entries (copies), and an empty table. */
  take(): WindowCountsPart {
    const part = { keys: this.keys.slice(0, this.size * this.width), values: this.values.slice(0, this.size * this.valueWidth) };
    this.clear();
    return part;
  }

  clear(): void {
    if (this.size > 0) this.index.fill(0);
    this.size = 0;
  }

  /** Adds a part's entries, each value merged by its mode (uncapped: maxEntries still applies). Returns the entries that did not fit. */
  absorb(part: WindowCountsPart): number {
    const width = this.width;
    const vw = this.valueWidth;
    const n = part.keys.length / width;
    let lost = 0;
    for (let i = 0; i < n; i++) {
      for (let w = 0; w < width; w++) this.key[w] = part.keys[i * width + w]!;
      const e = this.findOrInsert();
      if (e < 0) { lost++; continue; }
      for (let v = 0; v < vw; v++) {
        const x = part.values[i * vw + v]!;
        const at = e * vw + v;
        const m = this.modes[v];
        if (m === SUM) this.values[at] += x;
        else if (m === MIN ? x < this.values[at]! : x > this.values[at]!) this.values[at] = x;
      }
    }
    return lost;
  }

  private grow(): void {
    const capacity = Math.min(this.maxEntries, this.capacity * 2);
    const keys = new Uint32Array(capacity * this.width);
    keys.set(this.keys);
    this.keys = keys;
    const values = new Float64Array(capacity * this.valueWidth);
    values.set(this.values);
    this.values = values;
    this.capacity = capacity;
    this.index = new Int32Array(indexSize(capacity));
    this.mask = this.index.length - 1;
    const width = this.width;
    for (let e = 0; e < this.size; e++) {
      let pos = hashWords(keys.subarray(e * width, e * width + width), width) & this.mask;
      while (this.index[pos] !== 0) pos = (pos + 1) & this.mask;
      this.index[pos] = e + 1;
    }
  }
}

/** A power of two of at least twice `capacity` (load at most 1/2). */
function indexSize(capacity: number): number {
  let n = 16;
  while (n < capacity * 2) n *= 2;
  return n;
}

/** FNV-1a over the words, then a finalizer (keys are addresses and small bucket numbers: low bits alone would cluster). */
function hashWords(key: ArrayLike<number>, width: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < width; i++) h = Math.imul(h ^ key[i]!, 16777619);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
