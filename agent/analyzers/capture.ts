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
 *
 * Flow-sharded workers each see only their flows' packets, and these figures
 * are about every packet in input order: the coordinator's instance is fed
 * every input packet by the reader (`onInputPacket`, with the input's clock)
 * and keeps the figures of each window (the windows it cuts as the window
 * engine would) until that window is merged; the workers' instances count
 * nothing. Where every worker reads the file itself, worker 1's instance gets
 * `onInputPacket` instead and hands the figures of each window it closes to
 * the coordinator in its window part.
 */
import { isoFromSeconds } from '../../common/address.js';
import type { FrameRecord } from '../capture/frame-record.js';
import type { PacketClock } from '../core/packet-clock.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { round9 } from './window-flows.js';
import { duration, noun, plural } from './lib/format.js';

export function createCaptureAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new CaptureAnalyzer(ctx);
}

/** One window's figures. */
interface Figures {
  /** The window's index (windows.seconds since the epoch); the coordinator's only. */
  index: number;
  gaps: number;
  longestGap: number;
  /** Clock time where the longest gap began. */
  longestGapFrom: number;
  totalGap: number;
  backwards: number;
  largestStepBack: number;
  farAhead: number;
}

/** A worker's window part: the figures of the windows it closed, and the input's time base. */
interface CapturePart {
  base: number;
  figures: Figures[];
}

const noFigures = (index: number): Figures => ({ index, gaps: 0, longestGap: 0, longestGapFrom: 0, totalGap: 0, backwards: 0, largestStepBack: 0, farAhead: 0 });

class CaptureAnalyzer implements Analyzer {
  readonly id = 'capture';
  private get gapSeconds(): number { return this.ctx.config.analyzers.capture.gapSeconds; }
  /** The clock before the current packet, and the previous packet's own time. */
  private prevClock = -Infinity;
  private prevTs = NaN;
  /** The current window's figures. */
  private w = noFigures(NaN);
  /** The coordinator: the windows' figures not merged yet, oldest first (the last is `w`), the input's time base, and where the current window ends. */
  private readonly pending: Figures[] = [];
  private base = NaN;
  private relEnd = NaN;

  constructor(private readonly ctx: AnalyzerContext) {
  }

  onPacket(v: PacketView): void {
    // A worker sees only its flows' packets: the coordinator counts the input's (onInputPacket).
    if (this.ctx.shardRole === 'worker') return;
    const clock = this.ctx.clock;
    this.observe(clock.now, clock.ahead, v.ts);
  }

  onInputPacket(rec: FrameRecord, clock: Readonly<PacketClock>): void {
    const now = clock.now;
    const base = this.base = clock.base;
    // The window engine's cut (WindowEngine.advance and open), on the same clock.
    if (Number.isNaN(this.w.index) || now >= this.relEnd) {
      const seconds = this.ctx.config.windows.seconds;
      const index = Math.floor((base + now) / seconds);
      this.relEnd = index * seconds + seconds - base;
      this.pending.push(this.w = noFigures(index));
    }
    // The decoder's packet time (Decoder.decode).
    this.observe(now, clock.ahead, (rec.tsSec - base) + rec.tsNsec / 1e9);
  }

  private observe(now: number, ahead: boolean, ts: number): void {
    const w = this.w;
    if (ahead) w.farAhead++;
    const step = now - this.prevClock;
    if (step > this.gapSeconds && this.prevClock !== -Infinity) {
      w.gaps++;
      w.totalGap += step;
      if (step > w.longestGap) { w.longestGap = step; w.longestGapFrom = this.prevClock; }
    }
    this.prevClock = now;
    if (ts < this.prevTs) {
      w.backwards++;
      const back = this.prevTs - ts;
      if (back > w.largestStepBack) w.largestStepBack = back;
    }
    this.prevTs = ts;
  }

  closeWindow(): Metrics {
    const w = this.w;
    this.w = noFigures(NaN);
    return this.close(w, this.ctx.clock.base, this.ctx.shardRole !== 'worker');
  }

  /**
   * A worker fed every input packet (after it took the packet): the figures
   * of the windows it has closed, which are all it holds, since the packet
   * that closes a window reaches it before `onInputPacket` opens the next.
   */
  windowPart(): CapturePart | null {
    if (this.pending.length === 0) return null;
    return { base: this.base, figures: this.pending.splice(0) };
  }

  /** The coordinator: the window's figures as the input's packets gave them (here, or in a worker's part). */
  mergeWindow(input: WindowMergeInput): Metrics {
    const index = input.span.index;
    const pending = this.pending;
    for (const part of input.parts as ReadonlyArray<CapturePart | null | undefined>) {
      if (!part) continue;
      this.base = part.base;
      pending.push(...part.figures);
    }
    while (pending.length > 0 && pending[0]!.index < index) pending.shift();
    const w = pending.length > 0 && pending[0]!.index === index ? pending.shift()! : noFigures(index);
    return this.close(w, this.base, true);
  }

  /** A window's metrics, and its findings when `report`. */
  private close(w: Figures, base: number, report: boolean): Metrics {
    if (w.gaps > 0 && report) {
      const from = isoFromSeconds(base, w.longestGapFrom);
      this.ctx.report({
        type: 'capture_gap',
        severity: 'info',
        key: 'window',
        summary: `${plural(w.gaps, 'capture gap')} longer than ${duration(this.gapSeconds)} without packets, the longest ${duration(w.longestGap)} from ${from} (an idle link, or packets not captured).`,
        evidence: { gaps: w.gaps, longestSeconds: round9(w.longestGap), totalSeconds: round9(w.totalGap), longestFrom: from, gapSeconds: this.gapSeconds },
      });
    }
    if (w.backwards > 0 && report) {
      this.ctx.report({
        type: 'timestamps_backwards',
        severity: 'info',
        key: 'window',
        summary: `${plural(w.backwards, 'packet')} stamped earlier than the packet before ${noun(w.backwards, 'it', 'them')} (by up to ${duration(w.largestStepBack)}): merged interfaces or a clock stepped back; time-based figures around ${noun(w.backwards, 'it', 'them')} are less reliable.`,
        evidence: { packets: w.backwards, largestStepBackSeconds: round9(w.largestStepBack) },
      });
    }
    return {
      gaps: w.gaps,
      longestGap: round9(w.longestGap),
      totalGap: round9(w.totalGap),
      backwards: w.backwards,
      largestStepBack: round9(w.largestStepBack),
      farAhead: w.farAhead,
    };
  }
}
