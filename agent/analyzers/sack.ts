/**
 * TCP selective acknowledgement (RFC 2018) per window: SYNs and SYN/ACKs
 * offering SACK-permitted, packets carrying SACK blocks, D-SACKs, and the
 * flows that sent SACK blocks.
 *
 * A packet's SACK option is a D-SACK (RFC 2883, section 4, as Linux's
 * tcp_check_dsack tests it) when its first block starts below the packet's
 * cumulative ACK (it reports data already acknowledged, received twice), or
 * when there is a second block and the first lies within it (a duplicate
 * above the cumulative ACK). Sequence numbers compare modulo 2^32.
 *
 * Only the packet's own (outer) TCP header counts, not one quoted in an ICMP
 * error. `sackPermitted` counts every packet with the option, like
 * Wireshark's tcp.options.sack_perm; `sackPackets` like tcp.options.sack.
 */
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';

/** a < b and a >= b modulo 2^32. */
const LT = (a: number, b: number): boolean => ((a - b) | 0) < 0;
const LE = (a: number, b: number): boolean => ((a - b) | 0) <= 0;

/** RFC 2883 D-SACK test on a decoded packet with at least one SACK block. */
export function isDsack(v: PacketView): boolean {
  const s = v.sack;
  if (v.sackCount < 1) return false;
  if (v.tcpFlags & TcpFlag.ACK && LT(s[0]!, v.ack)) return true;
  return v.sackCount > 1 && LE(s[2]!, s[0]!) && LE(s[1]!, s[3]!);
}

export function createSackAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new SackAnalyzer(ctx);
}

class SackAnalyzer implements Analyzer {
  readonly id = 'sack';
  /** Window number in which each flow last sent SACK blocks (-1: not this flow yet). */
  private readonly sackWindow: Float64Array;
  private windowNumber = 0;
  private w = { syns: 0, synSackPermitted: 0, synAcks: 0, synAckSackPermitted: 0, sackPermitted: 0, sackPackets: 0, sackBlocks: 0, dsackPackets: 0, flowsWithSack: 0 };

  constructor(ctx: AnalyzerContext) {
    this.sackWindow = new Float64Array(ctx.flows.capacity).fill(-1);
  }

  onFlowStart(slot: number): void {
    this.sackWindow[slot] = -1;
  }

  onTcpSegment(v: PacketView, slot: number): void {
    const w = this.w;
    const flags = v.tcpFlags;
    if (flags & TcpFlag.SYN) {
      if (flags & TcpFlag.ACK) {
        w.synAcks++;
        if (v.sackPermitted) w.synAckSackPermitted++;
      } else {
        w.syns++;
        if (v.sackPermitted) w.synSackPermitted++;
      }
    }
    if (v.sackPermitted) w.sackPermitted++;
    const n = v.sackCount;
    if (n === 0) return;
    w.sackPackets++;
    w.sackBlocks += n;
    if (isDsack(v)) w.dsackPackets++;
    if (slot >= 0 && this.sackWindow[slot] !== this.windowNumber) {
      this.sackWindow[slot] = this.windowNumber;
      w.flowsWithSack++;
    }
  }

  closeWindow(): Metrics {
    const metrics: Metrics = { ...this.w };
    this.windowNumber++;
    this.w = { syns: 0, synSackPermitted: 0, synAcks: 0, synAckSackPermitted: 0, sackPermitted: 0, sackPackets: 0, sackBlocks: 0, dsackPackets: 0, flowsWithSack: 0 };
    return metrics;
  }

  /** Every figure is a count; a flow lives in one flow-sharded worker, so flowsWithSack adds up too. */
  mergeWindow(input: WindowMergeInput): Metrics {
    return sumMetrics(input.metrics);
  }
}
