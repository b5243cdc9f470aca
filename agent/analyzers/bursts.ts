/**
 * Traffic bursts: packets per `bucketMs` bucket within the window.
 *
 * The window [start, end) is cut into buckets of `bucketMs` from its start
 * (the last one shorter when `bucketMs` does not divide the window). The
 * average is taken over all buckets of the window, empty ones included:
 * average = packets in the window / number of buckets. A bucket is a burst
 * when it holds at least `factor` times that average, and at least `factor`
 * packets (so in a sparse window, below one packet per bucket on average, a
 * single packet is not a burst). The first and last windows of a capture are
 * judged like any other: their buckets before the first packet or after the
 * last one count as empty.
 *
 * A packet goes to the bucket of its own timestamp, clamped into the window
 * (a packet stamped before the window start, attributed to the window by the
 * window engine, goes to the first bucket); a packet far ahead of the clock
 * that no later packet confirmed goes to the bucket of the clock.
 *
 * Metrics: buckets, the largest number of packets in a bucket, bursts (buckets
 * that are bursts), and the peak rate (that largest bucket in packets per
 * second). A `traffic_burst` finding (info) says when the window had bursts.
 */
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { round3 } from './window-flows.js';
import { plural } from './lib/format.js';

/** Buckets per window at most; with more, buckets are widened (the effective `bucketMs` is in the metrics). */
const MAX_BUCKETS = 1 << 20;

/** A flow-sharded worker's window: its non-empty buckets (index, count), ascending. */
interface BurstsPart {
  buckets: Uint32Array;
  counts: Uint32Array;
}

export function createBurstsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BurstsAnalyzer(ctx);
}

class BurstsAnalyzer implements Analyzer {
  readonly id = 'bursts';
  private readonly seconds: number;
  private readonly bucketMs: number;
  private readonly bucketSeconds: number;
  private get factor(): number { return this.ctx.config.analyzers.bursts.factor; }
  private readonly counts: Uint32Array;
  /** Start of the current window in packet time (NaN until its first packet). */
  private relStart = NaN;
  private packets = 0;
  private part: BurstsPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.bursts;
    this.seconds = ctx.config.windows.seconds;
    const windowMs = this.seconds * 1000;
    this.bucketMs = windowMs / c.bucketMs > MAX_BUCKETS ? Math.ceil(windowMs / MAX_BUCKETS) : c.bucketMs;
    this.bucketSeconds = this.bucketMs / 1000;
    this.counts = new Uint32Array(Math.max(1, Math.ceil(windowMs / this.bucketMs)));
  }

  onPacket(v: PacketView): void {
    const clock = this.ctx.clock;
    // The same computation as the window engine's when it opened this window on the same packet.
    if (Number.isNaN(this.relStart)) this.relStart = Math.floor((clock.base + clock.now) / this.seconds) * this.seconds - clock.base;
    const t = clock.ahead ? clock.now : v.ts;
    const n = this.counts.length;
    let i = Math.floor(((t - this.relStart) * 1000) / this.bucketMs);
    if (!(i >= 0)) i = 0; // also NaN
    else if (i >= n) i = n - 1;
    this.counts[i]++;
    this.packets++;
  }

  closeWindow(span: WindowSpan): Metrics {
    // A worker's buckets are added up by the coordinator, which judges them (a burst is about every flow's packets).
    if (this.ctx.shardRole === 'worker') this.part = this.nonEmpty();
    const metrics = this.judge(span, this.ctx.shardRole !== 'worker');
    this.counts.fill(0);
    this.packets = 0;
    this.relStart = NaN;
    return metrics;
  }

  windowPart(): BurstsPart | null {
    const part = this.part;
    this.part = null;
    return part;
  }

  /** Flow-sharded workers: their buckets added up (every worker cuts the window alike), then judged as one pipeline would. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const counts = this.counts;
    for (const p of input.parts as ReadonlyArray<BurstsPart | null>) {
      if (p === null) continue;
      for (let k = 0; k < p.buckets.length; k++) {
        counts[p.buckets[k]!] += p.counts[k]!;
        this.packets += p.counts[k]!;
      }
    }
    const metrics = this.judge(input.span, true);
    counts.fill(0);
    this.packets = 0;
    return metrics;
  }

  private nonEmpty(): BurstsPart {
    const counts = this.counts;
    let n = 0;
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0) n++;
    const part: BurstsPart = { buckets: new Uint32Array(n), counts: new Uint32Array(n) };
    for (let i = 0, k = 0; i < counts.length; i++) {
      if (counts[i] === 0) continue;
      part.buckets[k] = i;
      part.counts[k++] = counts[i]!;
    }
    return part;
  }

  /** The window's metrics from `counts` and `packets`, and its finding when `report`. */
  private judge(span: WindowSpan, report: boolean): Metrics {
    const counts = this.counts;
    const n = counts.length;
    const packets = this.packets;
    const factor = this.factor;
    // count >= factor * packets / n, compared as count * n >= factor * packets (exact for integers).
    const dense = packets >= n;
    let max = 0;
    let maxAt = -1;
    let bursts = 0;
    let firstBurst = -1;
    for (let i = 0; i < n; i++) {
      const c = counts[i]!;
      if (c === 0) continue;
      if (c > max) { max = c; maxAt = i; }
      if (c >= factor && (!dense || c * n >= factor * packets)) {
        bursts++;
        if (firstBurst < 0) firstBurst = i;
      }
    }
    const average = packets / n;
    const threshold = factor * Math.max(average, 1);
    const peakPps = max / this.bucketSeconds;
    if (bursts > 0 && report) {
      this.ctx.report({
        type: 'traffic_burst',
        severity: 'info',
        key: 'window',
        summary: `${plural(bursts, 'burst')} of traffic: up to ${plural(max, 'packet')} in ${this.bucketMs} ms (${round3(peakPps)} packets/s) against an average of ${round3(average)} per ${this.bucketMs} ms.`,
        evidence: {
          bursts,
          maxBucketPackets: max,
          averagePerBucket: round3(average),
          factor,
          bucketMs: this.bucketMs,
          peakPps: round3(peakPps),
          firstBurstOffsetSeconds: round3(firstBurst * this.bucketSeconds),
          peakOffsetSeconds: round3(maxAt * this.bucketSeconds),
        },
      });
    }
    return {
      bucketMs: this.bucketMs,
      buckets: n,
      packets,
      averagePerBucket: round3(average),
      burstThreshold: round3(threshold),
      maxBucketPackets: max,
      bursts,
      peakPps: round3(peakPps),
      windowSeconds: span.end - span.start,
    };
  }
}
