/**
 * Round-trip times from ACKs: the `tcp` analyzer's tcp.analysis.ack_rtt
 * samples that Karn's rule allows (`ctx.tcp.karnRtt`: no sample from a
 * segment sent more than once). Per window: count, p50/p90/p99/max overall
 * and per side. The side is the one that acknowledged: client -> server data
 * ACKed by the server is the server side (the path from the capture point to
 * the server and back), the reverse is the client side.
 *
 * Per flow, the window's sample count, sum, max and the number of samples over
 * the warning and critical thresholds are kept in typed arrays. That is enough
 * to tell exactly whether the flow's p90 (the quantile definition of
 * lib/quantiles.ts: the ceil(0.9 n)-th smallest sample) is over a threshold
 * without keeping the samples: it is when more than n - ceil(0.9 n) samples
 * are over it. A flow gets a 'high_rtt' finding when
 *   p90 > critical                    -> critical
 *   p90 > warning, or max > critical  -> warning
 *   max > warning                     -> info
 * (strictly over: an RTT equal to a threshold is not over it), at most
 * MAX_FLOW_FINDINGS per window. A flow that ends during the window is judged
 * when it ends (its slot is then reused), the others when the window closes;
 * the findings are the first MAX_FLOW_FINDINGS candidates in the input (a
 * flow's end, then the window's close), then the worst (severity, max RTT),
 * then by key (a total order: flow-sharded workers each give their own first
 * ones, and the coordinator chooses among them the same findings). They are
 * reported when the window closes, each at its place in the input, the worst
 * first (so the window engine's report.maxFindingsPerType keeps the worst).
 *
 * The window's sample sum is kept in whole nanoseconds plus the rest in whole
 * attoseconds: integers, whose sum is the same in any order (the workers'
 * sums add up to one pipeline's).
 */
import type { FindingSeverity, QuantileSketch } from '../../common/report.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, EndReason, connectionKey, describeFlow, describeFlowWithService, type EndReasonCode, type FlowTable } from '../flow/index.js';
import type { TcpPacketResult } from '../flow/tcp-result.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput } from './analyzer.js';
import { round9, endpoint, duration, plural } from './lib/format.js';

/** high_rtt findings per window at most. */
const MAX_FLOW_FINDINGS = 10;
const SEVERITY_RANK: Record<FindingSeverity, number> = { info: 1, warning: 2, critical: 3 };

/** A flow that may get a high_rtt finding. */
interface Candidate {
  /** Where in the input it was judged: its flow's end, or Infinity (the window's close). */
  order: number;
  severity: number;
  /** Its max RTT, as measured. */
  max: number;
  draft: FindingDraft;
}

/** A flow-sharded worker's part of a window. */
interface RttPart {
  serverSide: QuantileSketch;
  clientSide: QuantileSketch;
  sampleNanoseconds: number;
  sampleAttoseconds: number;
  /** Its first MAX_FLOW_FINDINGS candidates (the first overall are among the workers' first). */
  candidates: Candidate[];
}

/** a before b: candidates' order (see the header; `||` passes over Infinity - Infinity, NaN). */
function before(a: Candidate, b: Candidate): number {
  return a.order - b.order || b.severity - a.severity || b.max - a.max || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0);
}

export function createRttAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new RttAnalyzer(ctx);
}

class RttAnalyzer implements Analyzer {
  readonly id = 'rtt';
  // per flow, current window
  private readonly count: Uint32Array;
  private readonly sum: Float64Array;
  private readonly max: Float64Array;
  private readonly overWarning: Uint32Array;
  private readonly overCritical: Uint32Array;
  /** Slots with samples in this window (each listed once, `listed` marks them). */
  private readonly touched: Int32Array;
  private readonly listed: Uint8Array;
  private nTouched = 0;

  // per window
  /** Both sides' samples, gathered at window close. */
  private readonly all = new Quantiles();
  private readonly serverSide = new Quantiles();
  private readonly clientSide = new Quantiles();
  /** The samples' sum: whole nanoseconds, and the rest in whole attoseconds. */
  private sampleNanoseconds = 0;
  private sampleAttoseconds = 0;
  /** The first MAX_FLOW_FINDINGS candidates so far, in `before` order. */
  private chosen: Candidate[] = [];
  private flowsJudged = 0;
  private high = { info: 0, warning: 0, critical: 0 };
  /** A flow-sharded worker: the closed window's part. */
  private closedPart: RttPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity;
    this.count = new Uint32Array(n);
    this.sum = new Float64Array(n);
    this.max = new Float64Array(n);
    this.overWarning = new Uint32Array(n);
    this.overCritical = new Uint32Array(n);
    this.touched = new Int32Array(n);
    this.listed = new Uint8Array(n);
  }

  onFlowStart(slot: number): void {
    this.resetFlow(slot);
  }

  onFlowEnd(slot: number, reason: EndReasonCode): void {
    // A flow ending mid-window is judged now, while its slot still names it (end of input comes after the last window).
    if (reason !== EndReason.END_OF_INPUT && this.count[slot]! > 0) {
      const severity = this.judge(slot);
      if (severity !== null) this.consider(slot, severity, this.ctx.packetOrder);
    }
    this.resetFlow(slot);
  }

  private resetFlow(slot: number): void {
    this.count[slot] = 0;
    this.sum[slot] = 0;
    this.max[slot] = 0;
    this.overWarning[slot] = 0;
    this.overCritical[slot] = 0;
  }

  onTcpSegment(_v: PacketView, slot: number, dir: number, tcp: TcpPacketResult): void {
    const rtt = tcp.karnRtt;
    if (!(rtt > 0)) return;
    const ns = Math.round(rtt * 1e9);
    this.sampleNanoseconds += ns;
    this.sampleAttoseconds += Math.round((rtt - ns / 1e9) * 1e18);
    // This packet is the ACK: from the server, it acknowledged the client's data.
    (dir === Dir.SERVER_TO_CLIENT ? this.serverSide : this.clientSide).add(rtt);
    if (!this.listed[slot]) {
      this.listed[slot] = 1;
      this.touched[this.nTouched++] = slot;
    }
    const cfg = this.ctx.config.analyzers.rtt;
    // Compared at nanosecond resolution: an RTT sitting on a threshold is not pushed over it by float noise.
    const r9 = round9(rtt);
    this.count[slot]!++;
    this.sum[slot]! += rtt;
    if (rtt > this.max[slot]!) this.max[slot] = rtt;
    if (r9 > cfg.warning) this.overWarning[slot]!++;
    if (r9 > cfg.critical) this.overCritical[slot]!++;
  }

  /** Severity of a flow's RTT in this window (null: fine). Counts the flow in the window's metrics. */
  private judge(slot: number): FindingSeverity | null {
    const n = this.count[slot]!;
    const cfg = this.ctx.config.analyzers.rtt;
    // p90 is the ceil(0.9 n)-th smallest sample: over T when fewer than ceil(0.9 n) samples are <= T.
    const allowedOver = n - Math.ceil(0.9 * n);
    const max = round9(this.max[slot]!);
    const severity: FindingSeverity | null = this.overCritical[slot]! > allowedOver ? 'critical'
      : this.overWarning[slot]! > allowedOver || max > cfg.critical ? 'warning'
        : max > cfg.warning ? 'info' : null;
    this.flowsJudged++;
    if (severity !== null) this.high[severity]++;
    return severity;
  }

  /**
   * A flow judged high at `order`: kept among the window's first candidates
   * if it is one of them. Its finding is drafted now, while the slot names the
   * flow, and only when it can be kept (a tie but for the key needs the key).
   * False when it comes after every kept one of a full list.
   */
  private consider(slot: number, severity: FindingSeverity, order: number): boolean {
    const chosen = this.chosen;
    const rank = SEVERITY_RANK[severity];
    const max = this.max[slot]!;
    if (chosen.length === MAX_FLOW_FINDINGS) {
      const last = chosen[MAX_FLOW_FINDINGS - 1]!;
      if ((order - last.order || last.severity - rank || last.max - max) > 0) return false;
    }
    const c: Candidate = { order, severity: rank, max, draft: this.draft(slot, severity, order) };
    let i = chosen.length;
    while (i > 0 && before(c, chosen[i - 1]!) < 0) i--;
    chosen.splice(i, 0, c);
    if (chosen.length > MAX_FLOW_FINDINGS) chosen.pop();
    return true;
  }

  private draft(slot: number, severity: FindingSeverity, order: number): FindingDraft {
    const cfg = this.ctx.config.analyzers.rtt;
    const flows: FlowTable = this.ctx.flows;
    const f = describeFlow(flows, slot);
    const n = this.count[slot]!;
    const allowedOver = n - Math.ceil(0.9 * n);
    const mean = this.sum[slot]! / n;
    const max = this.max[slot]!;
    const p90OverWarning = this.overWarning[slot]! > allowedOver;
    const p90OverCritical = this.overCritical[slot]! > allowedOver;
    return {
      type: 'high_rtt',
      severity,
      key: connectionKey(flows, slot),
      summary: `TCP round-trip times to ${endpoint(f.server, f.serverPort)} are high: max ${duration(max)}, mean ${duration(mean)} over ${plural(n, 'ACK')}`
        + (p90OverCritical ? `, 90th percentile over ${duration(cfg.critical)}.` : p90OverWarning ? `, 90th percentile over ${duration(cfg.warning)}.` : '.'),
      evidence: {
        samples: n,
        meanSeconds: round9(mean),
        maxSeconds: round9(max),
        samplesOverWarning: this.overWarning[slot]!,
        samplesOverCritical: this.overCritical[slot]!,
        p90OverWarning,
        p90OverCritical,
        warningThreshold: cfg.warning,
        criticalThreshold: cfg.critical,
      },
      flow: describeFlowWithService(flows, slot, this.ctx.names),
      host: f.server,
      // The worst first: by severity, then max RTT.
      rank: -SEVERITY_RANK[severity] * 1e6 - max,
      order,
    };
  }

  closeWindow(): Metrics {
    const candidates: Array<{ slot: number; severity: FindingSeverity }> = [];
    for (let i = 0; i < this.nTouched; i++) {
      const slot = this.touched[i]!;
      this.listed[slot] = 0;
      if (this.count[slot] === 0) continue;
      const severity = this.judge(slot);
      if (severity !== null) candidates.push({ slot, severity });
    }
    // The worst first: once one comes after a full list, so do the rest.
    candidates.sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || this.max[b.slot]! - this.max[a.slot]!);
    for (const c of candidates) if (!this.consider(c.slot, c.severity, Infinity)) break;
    for (let i = 0; i < this.nTouched; i++) this.resetFlow(this.touched[i]!);
    const chosen = this.chosen;
    // A flow-sharded worker's candidates are chosen among by its coordinator.
    if (this.ctx.shardRole === 'worker') {
      this.closedPart = {
        serverSide: this.serverSide.sketch(true),
        clientSide: this.clientSide.sketch(true),
        sampleNanoseconds: this.sampleNanoseconds,
        sampleAttoseconds: this.sampleAttoseconds,
        candidates: chosen,
      };
    } else {
      for (const c of chosen) this.ctx.report(c.draft);
    }
    const metrics = this.metrics(this.serverSide, this.clientSide, this.sampleNanoseconds, this.sampleAttoseconds, this.flowsJudged, this.high, chosen.length);
    this.serverSide.clear();
    this.clientSide.clear();
    this.sampleNanoseconds = 0;
    this.sampleAttoseconds = 0;
    this.nTouched = 0;
    this.chosen = [];
    this.flowsJudged = 0;
    this.high = { info: 0, warning: 0, critical: 0 };
    return metrics;
  }

  windowPart(): RttPart | null {
    return this.closedPart;
  }

  /** The workers' samples together, their counts added up, and the first candidates among theirs reported. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly RttPart[];
    const serverSide = new Quantiles();
    const clientSide = new Quantiles();
    let nanoseconds = 0;
    let attoseconds = 0;
    for (const p of parts) {
      serverSide.addSketch(p.serverSide);
      clientSide.addSketch(p.clientSide);
      nanoseconds += p.sampleNanoseconds;
      attoseconds += p.sampleAttoseconds;
    }
    const chosen = parts.flatMap((p) => p.candidates).sort(before).slice(0, MAX_FLOW_FINDINGS);
    for (const c of chosen) this.ctx.report(c.draft);
    const high = { info: 0, warning: 0, critical: 0 };
    let flows = 0;
    for (const m of input.metrics) {
      flows += m['flows'] as number;
      const h = m['highRttFlows'] as typeof high;
      high.info += h.info;
      high.warning += h.warning;
      high.critical += h.critical;
    }
    return this.metrics(serverSide, clientSide, nanoseconds, attoseconds, flows, high, chosen.length);
  }

  private metrics(serverSide: Quantiles, clientSide: Quantiles, nanoseconds: number, attoseconds: number, flows: number, high: Record<FindingSeverity, number>, reported: number): Metrics {
    // Every sample is on one side: the overall figures are those of both sets together.
    this.all.addAll(serverSide);
    this.all.addAll(clientSide);
    const all = this.all.summary();
    this.all.clear();
    return {
      ...all,
      mean: all.count ? round9((nanoseconds / 1e9 + attoseconds / 1e18) / all.count) : null,
      serverSide: serverSide.summary(),
      clientSide: clientSide.summary(),
      flows,
      highRttFlows: { ...high },
      reportedFlows: reported,
    };
  }
}
