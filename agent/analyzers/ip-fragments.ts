/**
 * IP fragmentation: fragments seen, datagrams reassembled, datagrams never
 * completed (timed out, evicted, or still pending at the end) and overlapping
 * fragments. Reassembly itself happens in the decoder (bounded, like Wireshark's).
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
  private lastIncomplete = 0;
  private lastOverlaps = 0;
  private pendingAtEnd = 0;

  constructor(private readonly ctx: AnalyzerContext) {}

  onPacket(v: PacketView): void {
    // Outer fragments only: a fragment header quoted in an ICMP error is not traffic of ours.
    if (v.present & FRAGMENT && (v.fragOffset > 0 || v.moreFragments)) this.fragments++;
    if (v.reassembled) this.reassembled++;
  }

  finish(): void {
    this.pendingAtEnd = this.ctx.decoder.reassembler.size;
  }

  closeWindow(): Metrics {
    const counts = this.ctx.decoder.anomalies.counts;
    const incomplete = counts[Anomaly['ip.reassembly_timeout']]! + counts[Anomaly['ip.reassembly_evicted']]!;
    const overlaps = counts[Anomaly['ip.fragment_overlap']]!;
    const metrics: Metrics = {
      fragments: this.fragments,
      reassembled: this.reassembled,
      incomplete: incomplete - this.lastIncomplete + this.pendingAtEnd,
      overlapping: overlaps - this.lastOverlaps,
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
    this.lastIncomplete = incomplete;
    this.lastOverlaps = overlaps;
    this.fragments = this.reassembled = this.pendingAtEnd = 0;
    return metrics;
  }
}
