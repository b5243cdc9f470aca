/**
 * TCP receive windows: zero-window periods per flow and side, low windows and
 * window-full segments.
 *
 * A zero-window period of one side starts at its packet flagged
 * tcp.analysis.zero_window and ends at that side's next packet advertising a
 * nonzero window. It is counted in the window where it ends, with its full
 * duration (the state is per flow and side, carried across windows); one the
 * flow ends with (idle timeout, eviction, port reuse) ends at the flow's last
 * packet; one still open at the end of the input is reported by finish().
 * A 'zero_window' finding is made for a period lasting zeroWindowPeriod or
 * longer (critical from ten times that), and for every period still open at
 * the end of the input.
 *
 * Low window: packets advertising a window (after scaling, tcp.window_size)
 * above 0 and below lowWindow, SYN and RST packets excepted (a SYN's window is
 * never scaled). Without a captured handshake the scale is unknown and the raw
 * window counts, as Wireshark shows it. Window full: packets flagged
 * tcp.analysis.window_full, counted for the side whose window they filled.
 */
import { formatAddress, isoFromSeconds } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { EndReason, connectionKey, describeFlow, type EndReasonCode, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { maxOf, sumMetrics } from './lib/merge-metrics.js';
import { TcpAnalysisFlag as F, type TcpPacketResult } from '../flow/tcp-result.js';
import { round6, round9, endpoint, duration } from './lib/format.js';

const LOW_EXCLUDED = TcpFlag.SYN | TcpFlag.RST;
const SIDES = ['client', 'server'] as const;

type EndedBy = 'reopened' | 'flow_end' | 'end_of_input';

export function createTcpWindowAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new TcpWindowAnalyzer(ctx);
}

class TcpWindowAnalyzer implements Analyzer {
  readonly id = 'tcp_window';
  // per direction (slot * 2 + dir): the open zero-window period of that side
  private readonly open: Uint8Array;
  private readonly start: Float64Array;
  private readonly zeroPackets: Uint32Array;

  // per window
  private w = emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity * 2;
    this.open = new Uint8Array(n);
    this.start = new Float64Array(n);
    this.zeroPackets = new Uint32Array(n);
  }

  onFlowStart(slot: number): void {
    this.open[slot * 2] = this.open[slot * 2 + 1] = 0;
  }

  onFlowEnd(slot: number, reason: EndReasonCode): void {
    // End of input comes after the last window closed: finish() already reported open periods.
    if (reason !== EndReason.END_OF_INPUT) {
      const last = this.ctx.flows.lastTs[slot]!;
      for (let d = slot * 2; d < slot * 2 + 2; d++) if (this.open[d]) this.end(d, last, 'flow_end');
    }
    this.open[slot * 2] = this.open[slot * 2 + 1] = 0;
  }

  onTcpSegment(v: PacketView, slot: number, dir: number, res: TcpPacketResult): void {
    const flags = res.flags;
    const d = slot * 2 + dir;
    const w = this.w;
    if (flags & F.ZERO_WINDOW) {
      w.zeroWindowPackets++;
      if (!this.open[d]) {
        this.open[d] = 1;
        this.start[d] = v.ts;
        this.zeroPackets[d] = 0;
        w.started++;
      }
      this.zeroPackets[d]!++;
    } else if (this.open[d] && v.window !== 0) {
      this.end(d, v.ts, 'reopened');
    }
    // A SYN's window is never scaled, and a RST's means nothing: neither counts as low.
    const bytes = res.analyzed ? res.windowBytes : v.window;
    if (bytes > 0 && bytes < this.ctx.config.analyzers.tcp_window.lowWindow && !(v.tcpFlags & LOW_EXCLUDED)) w.lowWindow[dir]!++;
    // Window full: this segment filled the receiver's (the other side's) window.
    if (flags & F.WINDOW_FULL) w.windowFull[dir ^ 1]!++;
  }

  private end(d: number, now: number, endedBy: EndedBy): void {
    this.open[d] = 0;
    // Rounded to the nanosecond, so a period sitting on zeroWindowPeriod is not moved off it by float noise.
    const closedFor = Math.max(0, round9(now - this.start[d]!));
    const w = this.w;
    if (endedBy === 'end_of_input') {
      w.openAtEnd++;
    } else {
      w.periods[d & 1]!++;
      // In whole nanoseconds (closedFor is rounded to them): a sum exact in any order, so flow-sharded workers' sums add up to it.
      w.totalNanoseconds += Math.round(closedFor * 1e9);
    }
    if (closedFor > w.maxSeconds) w.maxSeconds = closedFor;
    const period = this.ctx.config.analyzers.tcp_window.zeroWindowPeriod;
    if (closedFor < period && endedBy !== 'end_of_input') return;
    w.reported++;
    const slot = d >> 1;
    const side = SIDES[d & 1]!;
    const flows: FlowTable = this.ctx.flows;
    const severity: FindingSeverity = closedFor >= 10 * period ? 'critical' : closedFor >= period ? 'warning' : 'info';
    const stillOpen = endedBy === 'end_of_input';
    this.ctx.reportLazily('zero_window', () => {
      const f = describeFlow(flows, slot);
      const advertiser = side === 'client' ? endpoint(f.client, f.clientPort) : endpoint(f.server, f.serverPort);
      return {
        type: 'zero_window',
        severity,
        key: `${connectionKey(flows, slot)}/${side}/${round6(this.start[d]!)}`,
        summary: `${advertiser} (the ${side}) advertised a zero receive window for ${duration(closedFor)}`
          + (stillOpen ? ', still closed at the end of the input.' : endedBy === 'flow_end' ? ' until the flow ended.' : ' before reopening it.'),
        evidence: {
          side,
          advertisedBy: advertiser,
          durationSeconds: round9(closedFor),
          stillOpen,
          endedBy,
          zeroWindowPackets: this.zeroPackets[d]!,
          started: isoFromSeconds(this.ctx.clock.base, this.start[d]!),
          thresholdSeconds: period,
        },
        flowSlot: slot,
        host: formatAddress(flows.version[slot]!, side === 'client' ? flows.clientAddr(slot) : flows.serverAddr(slot)),
      };
    });
  }

  finish(): void {
    const now = this.ctx.clock.now;
    const open = this.open;
    for (let d = 0; d < open.length; d++) if (open[d]) this.end(d, now, 'end_of_input');
  }

  closeWindow(): Metrics {
    const w = this.w;
    const metrics: Metrics = {
      zeroWindowPeriods: w.periods[0]! + w.periods[1]!,
      zeroWindowBySide: { client: w.periods[0]!, server: w.periods[1]! },
      zeroWindowStarted: w.started,
      zeroWindowSeconds: w.totalNanoseconds / 1e9,
      zeroWindowMaxSeconds: round9(w.maxSeconds),
      zeroWindowOpenAtEnd: w.openAtEnd,
      zeroWindowReported: w.reported,
      zeroWindowPackets: w.zeroWindowPackets,
      lowWindowPackets: w.lowWindow[0]! + w.lowWindow[1]!,
      lowWindowBySide: { client: w.lowWindow[0]!, server: w.lowWindow[1]! },
      windowFullPackets: w.windowFull[0]! + w.windowFull[1]!,
      windowFullBySide: { client: w.windowFull[0]!, server: w.windowFull[1]! },
    };
    this.w = emptyWindow();
    return metrics;
  }

  /** Counts add up (a flow and its zero-window periods live in one flow-sharded worker); the longest period is the longest of the workers'. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const metrics = sumMetrics(input.metrics);
    // Each worker's total is whole nanoseconds: added as such, the sum is exact.
    metrics['zeroWindowSeconds'] = input.metrics.reduce((ns, m) => ns + Math.round((m['zeroWindowSeconds'] as number) * 1e9), 0) / 1e9;
    metrics['zeroWindowMaxSeconds'] = maxOf(input.metrics, (m) => m['zeroWindowMaxSeconds']) ?? 0;
    return metrics;
  }
}

interface WindowState {
  /** Ended periods by side (0 client, 1 server). */
  periods: [number, number];
  started: number;
  /** Durations of the ended periods, in nanoseconds. */
  totalNanoseconds: number;
  maxSeconds: number;
  openAtEnd: number;
  reported: number;
  zeroWindowPackets: number;
  lowWindow: [number, number];
  windowFull: [number, number];
}

function emptyWindow(): WindowState {
  return { periods: [0, 0], started: 0, totalNanoseconds: 0, maxSeconds: 0, openAtEnd: 0, reported: 0, zeroWindowPackets: 0, lowWindow: [0, 0], windowFull: [0, 0] };
}

