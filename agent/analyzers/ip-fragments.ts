/**
 * IP fragmentation: fragments seen, datagrams reassembled, datagrams never
 * completed (timed out, evicted, or still pending at the end) and overlapping
 * fragments. Reassembly itself happens in the decoder (bounded, like Wireshark's).
 * Every packet is offered (a first fragment has a flow, later ones do not),
 * but only fragments are looked at: the reassembler, and so its anomaly
 * counts, only ever moves on a fragment.
 */
import { Anomaly } from '../decode/anomaly.js';
import { Proto } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

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
    const metrics: Metrics = {
      fragments: this.fragments,
      reassembled: this.reassembled,
      incomplete: this.incomplete + this.pendingAtEnd,
      overlapping: this.overlaps,
    };
    if (metrics['incomplete'] as number > 0 || metrics['overlapping'] as number > 0) {
      this.ctx.report({
        type: 'ip_fragmentation',
        severity: (metrics['overlapping'] as number) > 0 ? 'warning' : 'info',
        key: 'window',
        summary: `${metrics['incomplete']} fragmented datagrams never completed and ${metrics['overlapping']} fragments overlapped (loss, or evasion attempts).`,
        evidence: { fragments: this.fragments, reassembled: this.reassembled, incomplete: metrics['incomplete'] as number, overlapping: metrics['overlapping'] as number },
      });
    }
    this.fragments = this.reassembled = this.incomplete = this.overlaps = this.pendingAtEnd = 0;
    return metrics;
  }
}
