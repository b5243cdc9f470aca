/**
 * IP fragmentation: fragments seen, datagrams reassembled, datagrams never
 * completed (timed out, evicted, or still pending at the end) and overlapping
 * fragments. Reassembly itself happens in the decoder (bounded, like Wireshark's).
 * Every packet is offered (a first fragment has a flow, later ones do not),
 * but only fragments are looked at: the reassembler, and so its anomaly
 * counts, only moves on a fragment, and at a window's end (datagrams timed
 * out by then: Reassembler.expireAt).
 *
 * Flow-sharded workers: a datagram's fragments are in one worker (its host
 * pair's), and a worker's reassembler drops its datagrams where one pipeline
 * does, so the window's figures add up; the finding is the coordinator's.
 */
import { Anomaly } from '../decode/anomaly.js';
import { Proto } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';

const FRAGMENT = Proto.IP_FRAGMENT | Proto.IPV6_FRAGMENT;

export function createIpFragmentsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new IpFragmentsAnalyzer(ctx);
}

class IpFragmentsAnalyzer implements Analyzer {
  readonly id = 'ip_fragments';
  private fragments = 0;
  private reassembled = 0;
  private incomplete = 0;
  private overlaps = 0;
  /** Decoder anomaly totals already attributed to a window. */
  private seenIncomplete = 0;
  private seenOverlaps = 0;
  /** Reassembler.expiredAtWindowEnd already attributed to a window. */
  private seenExpiredAtEnd = 0;
  private pendingAtEnd = 0;

  constructor(private readonly ctx: AnalyzerContext) {}

  onPacket(v: PacketView): void {
    // Only fragments reach the reassembler: other packets change nothing here.
    if ((v.present & FRAGMENT) === 0) return;
    // Outer fragments only: a fragment header quoted in an ICMP error is not traffic of ours.
    if (v.fragOffset > 0 || v.moreFragments) this.fragments++;
    if (v.reassembled) this.reassembled++;
    this.takeAnomalies();
  }

  /**
   * Timeouts, evictions and overlaps are counted by the decoder, which runs
   * before the packet's window opens: they are taken here, per packet, so they
   * land in the window of the packet that caused them, not in the one before.
   */
  private takeAnomalies(): void {
    const counts = this.ctx.decoder.anomalies.counts;
    const incomplete = counts[Anomaly['ip.reassembly_timeout']]! + counts[Anomaly['ip.reassembly_evicted']]!;
    const overlaps = counts[Anomaly['ip.fragment_overlap']]!;
    if (incomplete !== this.seenIncomplete) { this.incomplete += incomplete - this.seenIncomplete; this.seenIncomplete = incomplete; }
    if (overlaps !== this.seenOverlaps) { this.overlaps += overlaps - this.seenOverlaps; this.seenOverlaps = overlaps; }
  }

  finish(): void {
    this.takeAnomalies();
    this.pendingAtEnd = this.ctx.decoder.reassembler.size;
  }

  closeWindow(): Metrics {
    // Datagrams dropped as this window ended (the pipeline swept them just before): this window's. Only
    // those: the decoder's other counts may already include the packet that closes the window, of the next one.
    const expired = this.ctx.decoder.reassembler.expiredAtWindowEnd;
    if (expired !== this.seenExpiredAtEnd) {
      this.incomplete += expired - this.seenExpiredAtEnd;
      this.seenIncomplete += expired - this.seenExpiredAtEnd;
      this.seenExpiredAtEnd = expired;
    }
    const metrics: Metrics = {
      fragments: this.fragments,
      reassembled: this.reassembled,
      incomplete: this.incomplete + this.pendingAtEnd,
      overlapping: this.overlaps,
    };
    // A flow-sharded worker has some of the window's datagrams: its coordinator reports on all.
    if (this.ctx.shardRole !== 'worker') this.judge(metrics);
    this.fragments = this.reassembled = this.incomplete = this.overlaps = this.pendingAtEnd = 0;
    return metrics;
  }

  /** Each datagram is in one worker: the figures add up. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const sums = sumMetrics(input.metrics);
    const metrics: Metrics = { fragments: sums['fragments'], reassembled: sums['reassembled'], incomplete: sums['incomplete'], overlapping: sums['overlapping'] };
    this.judge(metrics);
    return metrics;
  }

  private judge(metrics: Metrics): void {
    const incomplete = metrics['incomplete'] as number;
    const overlapping = metrics['overlapping'] as number;
    if (incomplete > 0 || overlapping > 0) {
      this.ctx.report({
        type: 'ip_fragmentation',
        severity: overlapping > 0 ? 'warning' : 'info',
        key: 'window',
        summary: `${incomplete} fragmented datagrams never completed and ${overlapping} fragments overlapped (loss, or evasion attempts).`,
        evidence: { fragments: metrics['fragments'] as number, reassembled: metrics['reassembled'] as number, incomplete, overlapping },
      });
    }
  }
}
