/**
 * Wireshark's TCP expert analysis as window metrics, frame counters and the
 * `tcp_retransmissions` finding. The sequence analysis itself (packet-tcp.c's
 * definitions) runs in the flow stage (flow/tcp-sequence.ts); this analyzer
 * counts what it found on each TCP segment, and tcp.analysis.ack_rtt.
 */
import type { QuantileSketch, ReportDistribution } from '../../common/report.js';
import type { PacketView } from '../decode/packet-view.js';
import { Quantiles } from './lib/quantiles.js';
import { ANY_RETRANSMISSION, TcpAnalysisFlag as F, type TcpPacketResult } from '../flow/tcp-result.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { duration, plural, round2, round6 } from './lib/format.js';

/** Report counter names (Wireshark fields) and the analysis bits each counts. */
const FLAG_COUNTERS: ReadonlyArray<readonly [string, number]> = [
  ['tcp.analysis.retransmission', ANY_RETRANSMISSION],
  ['tcp.analysis.fast_retransmission', F.FAST_RETRANSMISSION],
  ['tcp.analysis.spurious_retransmission', F.SPURIOUS_RETRANSMISSION],
  ['tcp.analysis.out_of_order', F.OUT_OF_ORDER],
  ['tcp.analysis.duplicate_ack', F.DUPLICATE_ACK],
  ['tcp.analysis.lost_segment', F.LOST_PACKET],
  ['tcp.analysis.ack_lost_segment', F.ACK_LOST_PACKET],
  ['tcp.analysis.keep_alive', F.KEEP_ALIVE],
  ['tcp.analysis.keep_alive_ack', F.KEEP_ALIVE_ACK],
  ['tcp.analysis.window_update', F.WINDOW_UPDATE],
  ['tcp.analysis.zero_window', F.ZERO_WINDOW],
  ['tcp.analysis.zero_window_probe', F.ZERO_WINDOW_PROBE],
  ['tcp.analysis.window_full', F.WINDOW_FULL],
];

const ACK_RTT: ReportDistribution = 'tcp.analysis.ack_rtt';

export function createTcpAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new TcpAnalyzer(ctx);
}

class TcpAnalyzer implements Analyzer {
  readonly id = 'tcp';
  private readonly frameCounts = new Float64Array(FLAG_COUNTERS.length);
  private readonly flagBits = Int32Array.from(FLAG_COUNTERS, ([, bit]) => bit);
  /** tcp.analysis.ack_rtt of the window as Wireshark shows it: negative when timestamps go backwards. */
  private readonly ackRtt = new Quantiles(true);
  /** The last closed window's ack_rtt: the report's distribution is the merge of the windows' (RangeStats). */
  private closedAckRtt: QuantileSketch = this.ackRtt.sketch();
  // per window
  private w = { segments: 0, bytes: 0, retransmissions: 0, fast: 0, spurious: 0, outOfOrder: 0, duplicateAcks: 0, lost: 0, ackedUnseen: 0, zeroWindow: 0, windowFull: 0, keepAlive: 0 };

  constructor(private readonly ctx: AnalyzerContext) {}

  onTcpSegment(_v: PacketView, _slot: number, _dir: number, res: TcpPacketResult): void {
    if (res.hasAckRtt) this.ackRtt.add(res.ackRtt);
    this.count(res.flags, res.seglen);
  }

  private count(flags: number, seglen: number): void {
    if (flags) {
      const bits = this.flagBits;
      for (let i = 0; i < bits.length; i++) if (flags & bits[i]!) this.frameCounts[i]++;
    }
    const w = this.w;
    if (seglen > 0) { w.segments++; w.bytes += seglen; }
    if (!flags) return;
    if (flags & ANY_RETRANSMISSION) w.retransmissions++;
    if (flags & F.FAST_RETRANSMISSION) w.fast++;
    if (flags & F.SPURIOUS_RETRANSMISSION) w.spurious++;
    if (flags & F.OUT_OF_ORDER) w.outOfOrder++;
    if (flags & F.DUPLICATE_ACK) w.duplicateAcks++;
    if (flags & F.LOST_PACKET) w.lost++;
    if (flags & F.ACK_LOST_PACKET) w.ackedUnseen++;
    if (flags & F.ZERO_WINDOW) w.zeroWindow++;
    if (flags & F.WINDOW_FULL) w.windowFull++;
    if (flags & F.KEEP_ALIVE) w.keepAlive++;
  }

  closeWindow(span: WindowSpan): Metrics {
    const w = this.w;
    const rate = w.segments ? w.retransmissions / w.segments : 0;
    const metrics: Metrics = {
      dataSegments: w.segments,
      payloadBytes: w.bytes,
      retransmissions: w.retransmissions,
      fastRetransmissions: w.fast,
      spuriousRetransmissions: w.spurious,
      retransmissionRate: round6(rate),
      outOfOrder: w.outOfOrder,
      duplicateAcks: w.duplicateAcks,
      lostSegments: w.lost,
      ackedUnseen: w.ackedUnseen,
      zeroWindows: w.zeroWindow,
      windowFull: w.windowFull,
      keepAlives: w.keepAlive,
    };
    // A flow-sharded worker sees part of the window's segments: its coordinator judges the sum.
    if (this.ctx.shardRole !== 'worker') this.judge(metrics, span);
    this.w = { segments: 0, bytes: 0, retransmissions: 0, fast: 0, spurious: 0, outOfOrder: 0, duplicateAcks: 0, lost: 0, ackedUnseen: 0, zeroWindow: 0, windowFull: 0, keepAlive: 0 };
    this.closedAckRtt = this.ackRtt.sketch();
    this.ackRtt.clear();
    return metrics;
  }

  /** Every figure is a count but the rate, recomputed from the added-up counts. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const metrics = sumMetrics(input.metrics);
    const segments = metrics['dataSegments'] as number;
    metrics['retransmissionRate'] = round6(segments ? (metrics['retransmissions'] as number) / segments : 0);
    this.judge(metrics, input.span);
    return metrics;
  }

  /** The window's tcp_retransmissions finding, if its retransmissions call for one. */
  private judge(m: Metrics, span: WindowSpan): void {
    const retransmissions = m['retransmissions'] as number;
    const segments = m['dataSegments'] as number;
    const rate = segments ? retransmissions / segments : 0;
    const t = this.ctx.config.analyzers.tcp;
    const severity = retransmissions >= t.retransmissionCount[2]! || (rate >= t.retransmissionRate[2]! / 100 && retransmissions >= t.retransmissionCount[0]!) ? 'critical'
      : retransmissions >= t.retransmissionCount[1]! || (rate >= t.retransmissionRate[1]! / 100 && retransmissions >= t.retransmissionCount[0]!) ? 'warning'
        : retransmissions >= t.retransmissionCount[0]! || (rate >= t.retransmissionRate[0]! / 100 && retransmissions > 0 && segments >= 100) ? 'info' : null;
    if (!severity) return;
    this.ctx.report({
      type: 'tcp_retransmissions',
      severity,
      key: 'window',
      summary: `${plural(retransmissions, 'TCP retransmission')} in ${duration(span.end - span.start)} (${(rate * 100).toFixed(1)} % of ${plural(segments, 'data segment')}).`,
      evidence: {
        retransmissions,
        fastRetransmissions: m['fastRetransmissions'] as number,
        spuriousRetransmissions: m['spuriousRetransmissions'] as number,
        dataSegments: segments,
        ratePercent: round2(rate * 100),
        lostSegments: m['lostSegments'] as number,
        duplicateAcks: m['duplicateAcks'] as number,
      },
    });
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    FLAG_COUNTERS.forEach(([name], i) => { out[name] = this.frameCounts[i]!; });
    const untracked = this.ctx.tcpSequence.poolExhausted;
    if (untracked) out['tcp.analysis.untracked_segments'] = untracked;
    return out;
  }

  rangeInputs(): { stats: Record<string, QuantileSketch> } {
    return { stats: { [ACK_RTT]: this.closedAckRtt } };
  }
}

