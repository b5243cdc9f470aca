/**
 * Admission on second sight: a key gets state in a detector only when it is
 * seen again within `horizon` seconds, so the many keys seen once (one-flow
 * hosts, a scanner's spoofed sources, one-query DNS names) cost nothing but a
 * slot here. Fixed memory: `capacity` slots of (32-bit key hash, time last
 * seen), one slot per hash position, a colliding key simply overwrites (and is
 * counted in `overwritten`); no probing. dns-tunneling's first-sight table is
 * the model.
 *
 * The slot index of the last `admit` is in `slot`, so an owner that wants the
 * first sight's details (its counts, so the new state starts with them) keeps
 * them in its own arrays of `capacity` entries indexed by slot.
 */
export class FirstSight {
  readonly capacity: number;
  /** Slot used by the last `admit`. */
  slot = -1;
  /** When `admit` returned true: the time of the earlier sight. */
  firstSeen = 0;
  /** Keys admitted (second sights). */
  admitted = 0;
  /** First sights that replaced another key's first sight still within the horizon. */
  overwritten = 0;

  /** Bytes per slot. */
  static readonly bytesPerEntry = 12;

  private readonly hashes: Int32Array;
  /** -Infinity: empty (or taken by an admitted key). */
  private readonly seenAt: Float64Array;

  constructor(capacity: number, readonly horizon: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`FirstSight capacity ${capacity}: expected a positive integer`);
    this.capacity = capacity;
    this.hashes = new Int32Array(capacity);
    this.seenAt = new Float64Array(capacity).fill(-Infinity);
  }

  /**
   * True when `hash` was seen in the horizon before `now` (its slot is then
   * freed: the caller creates the key's state); else records this sight and
   * returns false. A time earlier than the recorded one (timestamps going
   * backwards) counts as within the horizon.
   */
  admit(hash: number, now: number): boolean {
    hash |= 0;
    // Fibonacci scrambling, then the high bits scaled to the capacity (any capacity, no modulo).
    const slot = Math.floor((Math.imul(hash ^ (hash >>> 16), 0x9e3779b1) >>> 0) * this.capacity / 4294967296);
    this.slot = slot;
    const at = this.seenAt[slot]!;
    const live = now - at <= this.horizon;
    if (live && this.hashes[slot] === hash) {
      this.firstSeen = at;
      this.seenAt[slot] = -Infinity;
      this.admitted++;
      return true;
    }
    if (live) this.overwritten++;
    this.hashes[slot] = hash;
    this.seenAt[slot] = now;
    return false;
  }

  /** Forgets every first sight. */
  clear(): void {
    this.seenAt.fill(-Infinity);
  }
}
