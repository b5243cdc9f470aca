/** Keeps the K largest flows by bytes as they end, for the report. */
import { isoFromSeconds } from '../../common/address.js';
import type { ReportFlow } from '../../common/report.js';
import { FLOW_STATE_NAMES, describeFlow, type FlowListener, type FlowTable } from '../flow/index.js';

interface Ranked { bytes: number; first: number; stream: number; flow: ReportFlow }

export class TopFlows implements FlowListener {
  private readonly ranked: Ranked[] = [];

  constructor(private readonly table: FlowTable, private readonly limit: number, private readonly timeBase: () => number) {}

  onFlowEnd(slot: number): void {
    if (this.limit === 0) return;
    const t = this.table;
    const packets = t.packets[slot * 2]! + t.packets[slot * 2 + 1]!;
    if (packets === 0) return; // a flow known only from a header quoted in an ICMP error
    const bytes = t.bytes[slot * 2]! + t.bytes[slot * 2 + 1]!;
    const first = t.firstTs[slot]!;
    const stream = t.streamIndex[slot]!;
    if (this.ranked.length === this.limit && compare(bytes, first, stream, this.ranked[this.limit - 1]!) >= 0) return;
    const flow: ReportFlow = {
      ...describeFlow(t, slot),
      packets,
      bytes,
      first: isoFromSeconds(this.timeBase(), first),
      last: isoFromSeconds(this.timeBase(), t.lastTs[slot]!),
      state: FLOW_STATE_NAMES[t.state[slot]!] ?? 'unknown',
      stream,
    };
    let i = this.ranked.length;
    while (i > 0 && compare(bytes, first, stream, this.ranked[i - 1]!) < 0) i--;
    this.ranked.splice(i, 0, { bytes, first, stream, flow });
    if (this.ranked.length > this.limit) this.ranked.pop();
  }

  flowsByBytes(): ReportFlow[] { return this.ranked.map((r) => r.flow); }
}

/** Larger bytes first; ties by earlier start, then stream index, so output is deterministic. */
function compare(bytes: number, first: number, stream: number, r: Ranked): number {
  return r.bytes - bytes || first - r.first || stream - r.stream;
}
