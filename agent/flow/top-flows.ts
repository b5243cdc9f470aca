/**
 * Keeps the K largest flows by bytes as they end, for the report. A flow that
 * enters the list keeps its figures as numbers (its addresses as words); the
 * text (addresses, times, state and protocol names) is made only for the
 * flows still listed when the report asks: most flows that enter the list are
 * pushed out of it again by larger ones.
 */
import { isoFromSeconds } from '../../common/address.js';
import type { ReportFlow } from '../../common/report.js';
import { BEHAVIOUR_NAMES, FLOW_STATE_NAMES, flowRef, withService, type FlowListener, type FlowNames, type FlowTable } from './index.js';

interface Ranked {
  bytes: number;
  first: number;
  stream: number;
  packets: number;
  last: number;
  version: number;
  proto: number;
  state: number;
  clientPort: number;
  serverPort: number;
  /** Client then server address words (4 each). */
  addrs: Uint32Array;
  /** The server name proved for the flow (an interned string, not a copy), its source, and the behaviour class. */
  serverName: string | undefined;
  nameSource: number;
  behaviour: number;
}

export class TopFlows implements FlowListener {
  private readonly ranked: Ranked[] = [];

  /**
   * `names`: the flows' proved names and behaviour classes, read at each flow's end; `servicesEnabled`:
   * the services analyzer runs, so the behaviour classes are set.
   */
  constructor(
    private readonly table: FlowTable, private readonly limit: number, private readonly timeBase: () => number,
    private readonly names?: FlowNames, private readonly servicesEnabled = false,
  ) {}

  onFlowEnd(slot: number): void {
    if (this.limit === 0) return;
    const t = this.table;
    const packets = t.packets[slot * 2]! + t.packets[slot * 2 + 1]!;
    if (packets === 0) return; // a flow known only from a header quoted in an ICMP error
    const bytes = t.bytes[slot * 2]! + t.bytes[slot * 2 + 1]!;
    const first = t.firstTs[slot]!;
    const stream = t.streamIndex[slot]!;
    if (this.ranked.length === this.limit && compare(bytes, first, stream, this.ranked[this.limit - 1]!) >= 0) return;
    // The entry pushed out (if the list is full) lends its address buffer.
    const spare = this.ranked.length === this.limit ? this.ranked.pop()! : undefined;
    const addrs = spare?.addrs ?? new Uint32Array(8);
    addrs.set(t.clientAddr(slot), 0);
    addrs.set(t.serverAddr(slot), 4);
    const entry: Ranked = {
      bytes, first, stream, packets,
      last: t.lastTs[slot]!,
      version: t.version[slot]!,
      proto: t.proto[slot]!,
      state: t.state[slot]!,
      clientPort: t.clientPort(slot),
      serverPort: t.serverPort(slot),
      addrs,
      serverName: this.names?.nameOf(slot),
      nameSource: this.names?.sourceOf(slot) ?? 0,
      behaviour: this.names ? this.names.behaviourOf(slot) : -1,
    };
    let i = this.ranked.length;
    while (i > 0 && compare(bytes, first, stream, this.ranked[i - 1]!) < 0) i--;
    this.ranked.splice(i, 0, entry);
  }

  flowsByBytes(): ReportFlow[] {
    return this.entries().map((e) => e.flow);
  }

  /** The listed flows with what ranks them (flow-sharded workers' lists are merged by it). */
  entries(): TopFlowEntry[] {
    const base = this.timeBase();
    return this.ranked.map((r): TopFlowEntry => ({ bytes: r.bytes, first: r.first, stream: r.stream, proto: r.proto, flow: this.report(r, base) }));
  }

  private report(r: Ranked, base: number): ReportFlow {
    const flow: ReportFlow = {
      ...flowRef(r.proto, r.version, r.addrs.subarray(0, 4), r.clientPort, r.addrs.subarray(4, 8), r.serverPort),
      packets: r.packets,
      bytes: r.bytes,
      first: isoFromSeconds(base, r.first),
      last: isoFromSeconds(base, r.last),
      state: FLOW_STATE_NAMES[r.state] ?? 'unknown',
      stream: r.stream,
    };
    withService(flow, r.proto, r.serverName, r.nameSource);
    // Classified by the services analyzer when the flow ended (absent when it is disabled).
    if (r.behaviour >= 0 && this.servicesEnabled) flow.behaviour = BEHAVIOUR_NAMES[r.behaviour] ?? 'unknown';
    return flow;
  }
}

/** A listed flow: its report entry and its rank figures (bytes, first packet time, stream index). */
export interface TopFlowEntry { bytes: number; first: number; stream: number; proto: number; flow: ReportFlow }

/** Merges lists of the same order into the first `limit` (larger bytes first, then earlier start, then stream). */
export function mergeTopFlows(lists: readonly TopFlowEntry[][], limit: number): TopFlowEntry[] {
  return lists.flat().sort((a, b) => b.bytes - a.bytes || a.first - b.first || a.stream - b.stream).slice(0, limit);
}

/** Larger bytes first; ties by earlier start, then stream index, so output is deterministic. */
function compare(bytes: number, first: number, stream: number, r: Ranked): number {
  return r.bytes - bytes || first - r.first || stream - r.stream;
}
