/**
 * Reference model for tests (the string-keyed suppressor before engine v2): notice suppression (Zeek's $identifier + suppress_for): a finding for the
 * same ongoing behaviour is re-emitted at most once per `seconds` of packet
 * time, with updated evidence. Bounded: the oldest keys go past `maxKeys`.
 */
export class Suppressor {
  private readonly last = new Map<string, number>();
  /** Keys forgotten because of the cap. */
  evicted = 0;

  constructor(private readonly seconds: number, private readonly maxKeys = 100_000) {}

  /** True when a finding for `key` may be reported at `now` (and remembers it). */
  allow(key: string, now: number): boolean {
    const at = this.last.get(key);
    if (at !== undefined && now - at < this.seconds && now >= at) return false;
    this.last.delete(key);
    this.last.set(key, now);
    if (this.last.size > this.maxKeys) {
      this.last.delete(this.last.keys().next().value as string);
      this.evicted++;
    }
    return true;
  }
}
