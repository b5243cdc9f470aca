/**
 * Interarrival jitter of UDP flows, per flow and direction (a "stream"), with
 * RFC 3550's estimator (section 6.4.1, A.8): J += (|D| - J) / 16.
 *
 * RFC 3550 defines D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) from the
 * arrival times R and the sender's RTP timestamps S. A passive sensor has no
 * sender clock for arbitrary UDP (and does not parse RTP), so the sender's
 * spacing S_i - S_{i-1} is taken to be the previous arrival spacing:
 * D = (R_i - R_{i-1}) - (R_{i-1} - R_{i-2}). A perfectly periodic stream has
 * jitter 0 whatever its period; a change of sending rate shows as one step of
 * D that the 1/16 gain then smooths out. The first D of a session needs three
 * packets.
 *
 * A direction silent longer than `sessionGap` starts a new session: the gap is
 * not an interarrival time, so the spacing history and the estimate restart
 * from zero. Packets stamped earlier than the stream's previous packet, and
 * packets far ahead of the clock that no later packet confirmed, are skipped.
 *
 * Per window, a stream is measured when it had at least `minPackets` packets
 * in the window (the window flow accounting's count, `ctx.windowFlows`) and
 * at least one D sample in its session; its jitter is the
 * estimate at the window's close (or at the flow's end, for a flow that ended
 * during the window), like the jitter an RTCP receiver report carries.
 * `high_jitter` findings are reported for streams above `warning` (critical
 * above `critical`), at most MAX_FINDINGS per window: the first candidates in
 * the input (a stream judged at its flow's end, where that was; then those
 * judged at the window's close), the worst first among those judged at one
 * point, then by key. They are reported when the window closes, each at its
 * place in the input (FindingDraft.order), its flow described when judged.
 *
 * Flow-sharded workers (issue 13): a flow is in one worker, so each judges
 * its streams; a worker gives its jitter samples and its first MAX_FINDINGS
 * candidates (the first overall are among the workers' first: the order is
 * total), and its coordinator chooses and reports as one pipeline does.
 */
import type { QuantileSketch } from '../../common/report.js';
import type { PacketView } from '../decode/packet-view.js';
import { describeFlowWithService } from '../flow/index.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { DIR_NAMES, WindowFlowSet, flowKey, round9 } from './window-flows.js';
import { duration } from './lib/format.js';

/** `high_jitter` findings per window, at most. */
const MAX_FINDINGS = 10;
/** RFC 3550's gain. */
const GAIN = 16;

/** A stream over `warning`: a finding if among the window's first MAX_FINDINGS candidates. */
interface Candidate {
  /** Where in the input it was judged: its flow's end (ctx.packetOrder), or Infinity (the window's close). */
  order: number;
  jitter: number;
  draft: FindingDraft;
}

/** Candidates' order: where judged, then the worst first, then by key (a total order, the same in any worker). Infinity - Infinity is NaN, which `||` passes over. */
function before(a: Candidate, b: Candidate): number {
  return a.order - b.order || b.jitter - a.jitter || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0);
}

/** A flow-sharded worker's part of a window. */
interface JitterPart {
  /** The jitter of every stream measured (Quantiles.sketch(true): all of them). */
  streams: QuantileSketch;
  candidates: Candidate[];
}

export function createJitterAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new JitterAnalyzer(ctx);
}

class JitterAnalyzer implements Analyzer {
  readonly id = 'jitter';
  private get sessionGap(): number { return this.ctx.config.analyzers.jitter.sessionGap; }
  private get warning(): number { return this.ctx.config.analyzers.jitter.warning; }
  private get critical(): number { return this.ctx.config.analyzers.jitter.critical; }
  private get minPackets(): number { return this.ctx.config.analyzers.jitter.minPackets; }
  // per direction (slot * 2 + dir)
  /** Arrival time of the previous packet of the session, NaN before the first. */
  private readonly lastTs: Float64Array;
  /** Previous interarrival spacing, NaN until the session has two packets. */
  private readonly lastSpacing: Float64Array;
  private readonly jitter: Float64Array;
  /** 1 once the session has a D sample (the estimate means something). */
  private readonly sampled: Uint8Array;
  /** UDP flows with packets in the current window. */
  private readonly active: WindowFlowSet;
  /** Jitter of streams measured at the end of their flow during the window (at most the flow capacity: more are left out of the quantiles). */
  private readonly ended: Float64Array;
  private endedCount = 0;
  private w = { endedFlows: 0, measuredFlowsEnded: 0, sessionSplits: 0, reordered: 0, high: 0 };
  /** The window's first candidates so far (at most MAX_FINDINGS, in candidate order). */
  private candidates: Candidate[] = [];
  /** A flow-sharded worker: the closed window's part. */
  private closedPart: JitterPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity * 2;
    this.lastTs = new Float64Array(n).fill(NaN);
    this.lastSpacing = new Float64Array(n).fill(NaN);
    this.jitter = new Float64Array(n);
    this.sampled = new Uint8Array(n);
    this.active = new WindowFlowSet(ctx.flows.capacity);
    this.ended = new Float64Array(ctx.flows.capacity);
  }

  onFlowStart(slot: number): void {
    for (let d = slot * 2; d < slot * 2 + 2; d++) {
      this.lastTs[d] = NaN;
      this.lastSpacing[d] = NaN;
      this.jitter[d] = 0;
      this.sampled[d] = 0;
    }
  }

  onUdpDatagram(v: PacketView, slot: number, dir: number): void {
    this.active.add(slot);
    const d = slot * 2 + dir;
    if (this.ctx.clock.ahead) return; // a stamp far ahead that no packet confirmed yet
    const ts = v.ts;
    const last = this.lastTs[d]!;
    if (Number.isNaN(last)) { this.lastTs[d] = ts; return; }
    const spacing = ts - last;
    if (spacing < 0) { this.w.reordered++; return; }
    if (spacing > this.sessionGap) {
      this.lastTs[d] = ts;
      this.lastSpacing[d] = NaN;
      this.jitter[d] = 0;
      this.sampled[d] = 0;
      this.w.sessionSplits++;
      return;
    }
    const previous = this.lastSpacing[d]!;
    this.lastTs[d] = ts;
    this.lastSpacing[d] = spacing;
    if (Number.isNaN(previous)) return;
    const j = this.jitter[d]!;
    this.jitter[d] = j + (Math.abs(spacing - previous) - j) / GAIN;
    this.sampled[d] = 1;
  }

  /** Packets of the stream in the window: the window flow accounting's count (every packet of a UDP flow is a datagram here). */
  private packetsInWindow(d: number): number {
    return this.ctx.windowFlows.packetsIn(d >> 1, d & 1);
  }

  private measured(d: number): boolean {
    return this.packetsInWindow(d) >= this.minPackets && this.sampled[d] === 1;
  }

  /** A UDP flow ends during the window: its streams are judged now, while its slot still describes it. */
  onFlowEnd(slot: number): void {
    if (!this.active.remove(slot)) return;
    const w = this.w;
    w.endedFlows++;
    let any = false;
    for (let dir = 0; dir < 2; dir++) {
      const d = slot * 2 + dir;
      if (!this.measured(d)) continue;
      any = true;
      const j = this.jitter[d]!;
      if (this.endedCount < this.ended.length) this.ended[this.endedCount++] = j;
      if (j > this.warning) {
        w.high++;
        this.consider(slot, dir, j, this.ctx.packetOrder);
      }
    }
    if (any) w.measuredFlowsEnded++;
  }

  /** A stream over `warning`, judged at input position `order`: kept if among the first MAX_FINDINGS candidates so far. */
  private consider(slot: number, dir: number, j: number, order: number): void {
    const list = this.candidates;
    // Judged in input order: one judged later than the last of a full list comes after it (no draft built).
    if (list.length === MAX_FINDINGS && order > list[MAX_FINDINGS - 1]!.order) return;
    const c: Candidate = { order, jitter: j, draft: this.draft(slot, dir, j) };
    let at = list.length;
    while (at > 0 && before(c, list[at - 1]!) < 0) at--;
    if (at === MAX_FINDINGS) return;
    list.splice(at, 0, c);
    if (list.length > MAX_FINDINGS) list.pop();
  }

  private draft(slot: number, dir: number, j: number): FindingDraft {
    const critical = j > this.critical;
    return {
      type: 'high_jitter',
      severity: critical ? 'critical' : 'warning',
      key: `${flowKey(this.ctx.flows, slot)} ${DIR_NAMES[dir]}`,
      summary: `UDP interarrival jitter of ${duration(j)} (${DIR_NAMES[dir]!.replace(/_/g, ' ')}), above the ${critical ? 'critical' : 'warning'} level of ${duration(critical ? this.critical : this.warning)}.`,
      evidence: { jitterSeconds: round9(j), direction: DIR_NAMES[dir]!, packetsInWindow: this.packetsInWindow(slot * 2 + dir), threshold: critical ? this.critical : this.warning },
      // Described now: the slot may be reused before the finding is reported.
      flow: describeFlowWithService(this.ctx.flows, slot, this.ctx.names),
    };
  }

  closeWindow(): Metrics {
    const w = this.w;
    const q = new Quantiles();
    for (let i = 0; i < this.endedCount; i++) q.add(this.ended[i]!);
    let flows = w.measuredFlowsEnded;
    const high: Array<[number, number, number]> = [];
    const set = this.active;
    for (let i = 0; i < set.size; i++) {
      const slot = set.slots[i]!;
      let any = false;
      for (let dir = 0; dir < 2; dir++) {
        const d = slot * 2 + dir;
        if (!this.measured(d)) continue;
        any = true;
        const j = this.jitter[d]!;
        q.add(j);
        if (j > this.warning) high.push([slot, dir, j]);
      }
      if (any) flows++;
    }
    w.high += high.length;
    // The worst first: once a full list's last comes before one, it comes before the rest (equally bad ones go by key).
    high.sort((a, b) => b[2] - a[2]);
    for (const [slot, dir, j] of high) {
      const last = this.candidates.length === MAX_FINDINGS ? this.candidates[MAX_FINDINGS - 1]! : null;
      if (last !== null && (last.order < Infinity || last.jitter > j)) break;
      this.consider(slot, dir, j, Infinity);
    }
    const counts = { udpFlows: set.size + w.endedFlows, flows, sessionSplits: w.sessionSplits, reordered: w.reordered };
    let metrics: Metrics;
    // A flow-sharded worker's candidates are chosen among by its coordinator.
    if (this.ctx.shardRole === 'worker') {
      this.closedPart = { streams: q.sketch(true), candidates: this.candidates };
      metrics = this.metrics(counts, q, w.high, []);
    } else {
      metrics = this.metrics(counts, q, w.high, this.candidates);
    }
    set.clear();
    this.endedCount = 0;
    this.candidates = [];
    this.w = { endedFlows: 0, measuredFlowsEnded: 0, sessionSplits: 0, reordered: 0, high: 0 };
    return metrics;
  }

  windowPart(): JitterPart | null {
    return this.closedPart;
  }

  /** Counts add up; the streams' jitter is all workers' samples; the findings the first MAX_FINDINGS of all workers' candidates. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly JitterPart[];
    const sums = sumMetrics(input.metrics);
    const q = new Quantiles();
    for (const p of parts) q.addSketch(p.streams);
    const chosen = parts.flatMap((p) => p.candidates).sort(before).slice(0, MAX_FINDINGS);
    const counts = { udpFlows: sums['udpFlows'] as number, flows: sums['flows'] as number, sessionSplits: sums['sessionSplits'] as number, reordered: sums['reordered'] as number };
    return this.metrics(counts, q, sums['highJitter'] as number, chosen);
  }

  /** The window's metrics; reports the `chosen` candidates (in candidate order), each at its place in the input. */
  private metrics(counts: { udpFlows: number; flows: number; sessionSplits: number; reordered: number }, q: Quantiles, high: number, chosen: readonly Candidate[]): Metrics {
    for (const c of chosen) this.ctx.report({ ...c.draft, order: c.order });
    const s = q.summary();
    return {
      udpFlows: counts.udpFlows,
      flows: counts.flows,
      streams: s.count,
      p50: s.p50,
      p90: s.p90,
      max: s.max,
      highJitter: high,
      sessionSplits: counts.sessionSplits,
      reordered: counts.reordered,
      findingsSuppressed: high - chosen.length,
    };
  }
}
