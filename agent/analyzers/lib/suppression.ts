/**
 * Notice suppression (Zeek's $identifier + suppress_for) on integer keys:
 * Suppressor's rule without its string keys and Map. A finding for the same
 * key is re-emitted at most once per `seconds` of packet time; the key is
 * `width` words (host ids, a port, a finding kind...) filled into `key`.
 * Bounded: `capacity` keys, the least recently allowed one forgotten first
 * (counted in `evicted`), as Suppressor's `maxKeys`.
 */
import { KeyTable } from './key-table.js';

export class SuppressionTable {
  /** The key of the next `allow`, filled by the caller. */
  readonly key: Uint32Array;
  private readonly table: KeyTable;
  /** Packet time of the last allowed report, per id. */
  private readonly last: Float64Array;

  constructor(readonly seconds: number, capacity: number, width: number) {
    this.table = new KeyTable(capacity, width);
    this.key = this.table.key;
    this.last = new Float64Array(capacity);
  }

  static bytesPerEntry(width: number): number { return KeyTable.bytesPerEntry(width) + 8; }

  get size(): number { return this.table.size; }
  get capacity(): number { return this.table.capacity; }
  /** Keys forgotten because of the cap. */
  get evicted(): number { return this.table.evicted; }

  /**
   * True when a finding for the key in `key` may be reported at `now` (and
   * remembers it). As Suppressor: a suppressed call does not refresh the key's
   * recency, and a time before the last report (timestamps going backwards)
   * is allowed.
   */
  allow(now: number): boolean {
    const table = this.table;
    let id = table.find();
    if (id >= 0) {
      const at = this.last[id]!;
      if (now - at < this.seconds && now >= at) return false;
      table.touch(id);
    } else {
      id = table.findOrInsert();
    }
    this.last[id] = now;
    return true;
  }

  /** Forgets every key. */
  clear(): void { this.table.clear(); }
}
