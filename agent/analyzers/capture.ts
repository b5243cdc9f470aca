/**
 * The capture's own health: gaps and timestamps going backwards.
 *
 * - A capture gap is a silence longer than `gapSeconds` (strictly) between a
 *   packet and the latest time seen before it: the packet clock's forward
 *   step. Measured on the clock rather than on the previous packet alone, a
 *   packet stamped backwards does not turn the next one into a gap, and a
 *   lone packet far ahead (not confirmed, see PacketClock) makes none; a
 *   confirmed jump does. The gap is counted in the window of the packet that
 *   ends it. Per window: count, longest, total seconds.
 * - Timestamps going backwards: a packet stamped earlier than the packet just
 *   before it in the file (Wireshark: frame.time_delta < 0). Per window:
 *   count and largest step back in seconds.
 *
 * Findings `capture_gap` and `timestamps_backwards`, at most one of each per
 * window, both info: they describe the capture, not the network.
 */
import { isoFromSeconds } from '../../common/address.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
import { round9 } from './window-flows.js';
import { duration, noun, plural } from './lib/format.js';

export function createCaptureAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new CaptureAnalyzer(ctx);
}

class CaptureAnalyzer implements Analyzer {
  readonly id = 'capture';
  private get gapSeconds(): number { return this.ctx.config.analyzers.capture.gapSeconds; }
  /** The clock before the current packet, and the previous packet's own time. */
  private prevClock = -Infinity;
  private prevTs = NaN;
  // per window
  private gaps = 0;
  private longestGap = 0;
  /** Clock time where the longest gap began. */
  private longestGapFrom = 0;
  private totalGap = 0;
  private backwards = 0;
  private largestStepBack = 0;
  private farAhead = 0;

  constructor(private readonly ctx: AnalyzerContext) {
  }

  onPacket(v: PacketView): void {
    const clock = this.ctx.clock;
    const now = clock.now;
    if (clock.ahead) this.farAhead++;
    const step = now - this.prevClock;
    if (step > this.gapSeconds && this.prevClock !== -Infinity) {
      this.gaps++;
      this.totalGap += step;
      if (step > this.longestGap) { this.longestGap = step; this.longestGapFrom = this.prevClock; }
    }
    this.prevClock = now;
    const ts = v.ts;
    if (ts < this.prevTs) {
      this.backwards++;
      const back = this.prevTs - ts;
      if (back > this.largestStepBack) this.largestStepBack = back;
    }
    this.prevTs = ts;
  }

  closeWindow(): Metrics {
    if (this.gaps > 0) {
      const from = isoFromSeconds(this.ctx.clock.base, this.longestGapFrom);
      this.ctx.report({
        type: 'capture_gap',
        severity: 'info',
        key: 'window',
        summary: `${plural(this.gaps, 'capture gap')} longer than ${duration(this.gapSeconds)} without packets, the longest ${duration(this.longestGap)} from ${from} (an idle link, or packets not captured).`,
        evidence: { gaps: this.gaps, longestSeconds: round9(this.longestGap), totalSeconds: round9(this.totalGap), longestFrom: from, gapSeconds: this.gapSeconds },
      });
    }
    if (this.backwards > 0) {
      this.ctx.report({
        type: 'timestamps_backwards',
        severity: 'info',
        key: 'window',
        summary: `${plural(this.backwards, 'packet')} stamped earlier than the packet before ${noun(this.backwards, 'it', 'them')} (by up to ${duration(this.largestStepBack)}): merged interfaces or a clock stepped back; time-based figures around ${noun(this.backwards, 'it', 'them')} are less reliable.`,
        evidence: { packets: this.backwards, largestStepBackSeconds: round9(this.largestStepBack) },
      });
    }
    const metrics: Metrics = {
      gaps: this.gaps,
      longestGap: round9(this.longestGap),
      totalGap: round9(this.totalGap),
      backwards: this.backwards,
      largestStepBack: round9(this.largestStepBack),
      farAhead: this.farAhead,
    };
    this.gaps = this.backwards = this.farAhead = 0;
    this.longestGap = this.longestGapFrom = this.totalGap = this.largestStepBack = 0;
    return metrics;
  }
}
