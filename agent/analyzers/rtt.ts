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
 * MAX_FLOW_FINDINGS per window: the worst by severity, then max RTT, reported
 * in that order (so the window engine's report.maxFindingsPerType keeps the
 * worst). A flow that ends during the window is judged, and reported if the
 * bound allows, when it ends (its slot is then reused).
 */
import type { FindingSeverity } from '../../common/report.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, EndReason, connectionKey, describeFlow, type EndReasonCode, type FlowTable } from '../flow/index.js';
import type { TcpPacketResult } from '../flow/tcp-result.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
import { round9, endpoint, duration, plural } from './lib/format.js';

/** high_rtt findings per window at most. */
const MAX_FLOW_FINDINGS = 10;
const SEVERITY_RANK: Record<FindingSeverity, number> = { info: 1, warning: 2, critical: 3 };

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
  private sampleSum = 0;
  private reported = 0;
  private flowsJudged = 0;
  private high = { info: 0, warning: 0, critical: 0 };

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
      if (severity !== null) {
        if (this.reported < MAX_FLOW_FINDINGS) this.report(slot, severity);
      }
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
    this.sampleSum += rtt;
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

  private report(slot: number, severity: FindingSeverity): void {
    const cfg = this.ctx.config.analyzers.rtt;
    const flows: FlowTable = this.ctx.flows;
    const f = describeFlow(flows, slot);
    const n = this.count[slot]!;
    const allowedOver = n - Math.ceil(0.9 * n);
    const mean = this.sum[slot]! / n;
    const max = this.max[slot]!;
    const p90OverWarning = this.overWarning[slot]! > allowedOver;
    const p90OverCritical = this.overCritical[slot]! > allowedOver;
    this.reported++;
    this.ctx.report({
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
      flowSlot: slot,
      host: f.server,
      // The worst first: by severity, then max RTT.
      rank: -SEVERITY_RANK[severity] * 1e6 - max,
    });
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
    candidates.sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || this.max[b.slot]! - this.max[a.slot]!);
    for (const c of candidates) {
      if (this.reported >= MAX_FLOW_FINDINGS) break;
      this.report(c.slot, c.severity);
    }
    for (let i = 0; i < this.nTouched; i++) this.resetFlow(this.touched[i]!);
    // Every sample is on one side: the overall figures are those of both sets together.
    this.all.addAll(this.serverSide);
    this.all.addAll(this.clientSide);
    const all = this.all.summary();
    const metrics: Metrics = {
      ...all,
      mean: all.count ? round9(this.sampleSum / all.count) : null,
      serverSide: this.serverSide.summary(),
      clientSide: this.clientSide.summary(),
      flows: this.flowsJudged,
      highRttFlows: { ...this.high },
      reportedFlows: this.reported,
    };
    this.all.clear();
    this.serverSide.clear();
    this.clientSide.clear();
    this.sampleSum = 0;
    this.nTouched = 0;
    this.reported = 0;
    this.flowsJudged = 0;
    this.high = { info: 0, warning: 0, critical: 0 };
    return metrics;
  }
}

