/** The earliest and latest capture timestamp (seconds, nanoseconds) of a set of packets. */
export class PacketSpan {
  firstSec = Infinity;
  firstNsec = 0;
  lastSec = -Infinity;
  lastNsec = 0;

  get empty(): boolean { return this.firstSec === Infinity; }

  /** From the first to the last packet, in seconds (0 when empty). */
  get seconds(): number {
    return this.empty ? 0 : this.lastSec - this.firstSec + (this.lastNsec - this.firstNsec) / 1e9;
  }

  note(sec: number, nsec: number): void {
    if (sec < this.firstSec || (sec === this.firstSec && nsec < this.firstNsec)) { this.firstSec = sec; this.firstNsec = nsec; }
    if (sec > this.lastSec || (sec === this.lastSec && nsec > this.lastNsec)) { this.lastSec = sec; this.lastNsec = nsec; }
  }

  /** Widens this span to cover `other`'s. */
  add(other: PacketSpan): void {
    if (other.empty) return;
    this.note(other.firstSec, other.firstNsec);
    this.note(other.lastSec, other.lastNsec);
  }

  reset(): void {
    this.firstSec = Infinity;
    this.lastSec = -Infinity;
    this.firstNsec = this.lastNsec = 0;
  }
}
