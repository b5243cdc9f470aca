/**
 * Packet time, made robust. Windows and flow timeouts run on the packets' own
 * timestamps, never on the wall clock, so a replay at any speed gives the same
 * results. Real captures carry bad timestamps, though: a lone packet stamped
 * years ahead (a broken clock, a pcapng interface with a bogus offset) must
 * not close every window and expire every flow. So the clock moves forward
 * freely by up to MAX_UNCONFIRMED_JUMP seconds; a larger jump is taken only
 * when the next packet confirms it. Packets behind the clock are counted.
 */

/** Seconds a single packet may move the clock forward without the next packet confirming it. */
export const MAX_UNCONFIRMED_JUMP = 3600;

export class PacketClock {
  /** Epoch seconds that packet times (`PacketView.ts`, `now`) count from; see Decoder.timeBase. */
  base = NaN;
  /** Current packet time in seconds (-Infinity before the first packet). */
  now = -Infinity;
  /** The last packet was more than MAX_UNCONFIRMED_JUMP ahead and did not move the clock. */
  ahead = false;
  /** The last packet confirmed a jump announced by the packet before it. */
  confirmedJump = false;
  /** Packets stamped earlier than the clock (timestamps going backwards). */
  backwards = 0;
  /** Packets that were far ahead and not confirmed (attributed to the current time). */
  unconfirmedJumps = 0;

  observe(ts: number): void {
    this.confirmedJump = false;
    if (this.now === -Infinity) { this.now = ts; this.ahead = false; return; }
    if (ts < this.now) { this.backwards++; this.ahead = false; return; }
    const far = ts - this.now > MAX_UNCONFIRMED_JUMP;
    if (!far) { this.now = ts; this.ahead = false; return; }
    if (this.ahead) { this.now = ts; this.confirmedJump = true; this.unconfirmedJumps--; this.ahead = false; return; }
    this.ahead = true;
    this.unconfirmedJumps++;
  }

  /**
   * A flow-sharded worker's clock: it takes the input's clock as the reader
   * computed it (over every packet, not only this worker's), so windows close
   * and flows expire where one pipeline over the whole input would.
   */
  follow(now: number, ahead: boolean, confirmedJump: boolean): void {
    this.now = now;
    this.ahead = ahead;
    this.confirmedJump = confirmedJump;
  }
}
