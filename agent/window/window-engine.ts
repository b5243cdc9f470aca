/**
 * Tumbling windows of packet time, aligned to multiples of `windows.seconds`
 * since the epoch so that live capture and any replay speed cut the same
 * windows. A packet at or past the current window's end closes it (empty
 * windows in a gap are not emitted); a packet stamped earlier than its window
 * is counted (`outOfOrderTimestamps`) and attributed to the current window.
 * Each closed window yields a summary and the findings reported during it.
 */
import { createHash } from 'node:crypto';
import { isoFromSeconds } from '../../common/address.js';
import type { Finding, FindingType, RangeInputs, WindowSummary } from '../../common/report.js';
import type { FindingDraft, Metrics, WindowParticipant, WindowSpan } from '../core/window-types.js';
import { describeFlowWithService, type FlowNames, type FlowTable } from '../flow/index.js';
import type { WindowFlowAccounting } from '../flow/flow-accounting.js';
import type { PacketClock } from '../core/packet-clock.js';
import type { PacketView } from '../decode/packet-view.js';

export interface WindowOutput {
  summary: WindowSummary;
  findings: Finding[];
  /** Each finding's `order` (WindowEngine.order when reported): what a merge of flow-sharded workers' windows sorts by. */
  findingOrders: number[];
  /** Each finding's rank (FindingDraft.rank, 0 when none). */
  findingRanks: number[];
  /** What a report merges from this window besides counters (the agent publishes it in the summary). */
  rangeInputs: RangeInputs;
}

/** A finding and where in the input it was reported (WindowEngine.order). */
export interface OrderedFinding { finding: Finding; order: number; rank: number }

/** (order, rank, id): a window's canonical finding order. Infinity - Infinity is NaN, which `||` passes over. */
export function findingOrder(a: OrderedFinding, b: OrderedFinding): number {
  return a.order - b.order || a.rank - b.rank || (a.finding.id < b.finding.id ? -1 : a.finding.id > b.finding.id ? 1 : 0);
}

export class WindowEngine {
  private span: WindowSpan = { index: NaN, start: NaN, end: NaN, relStart: NaN, relEnd: NaN };
  private newFlows = 0;
  private closedFlows = 0;
  private outOfOrder = 0;
  private findings: Finding[] = [];
  /** `order` and rank of each kept finding (parallel to `findings`). */
  private orders: number[] = [];
  private ranks: number[] = [];
  /** Indexes in `findings` of the kept findings of each type in the current window. */
  private readonly keptOfType = new Map<string, number[]>();
  /** Findings over the per-type cap (counted, not kept). */
  private suppressed: Record<string, number> = {};
  /**
   * Where in the input a finding is reported: the index of the packet being
   * processed (the pipeline sets it), Infinity while a window closes. A
   * window's findings are listed by (order, id), and the per-type cap keeps
   * the first ones in that order: a canonical order that flow-sharded workers,
   * each keeping its own first findings, merge into the same list.
   */
  order = 0;

  constructor(
    private readonly seconds: number,
    private readonly analyzers: readonly WindowParticipant[],
    private readonly flows: FlowTable,
    private readonly clock: PacketClock,
    /** The window's packets, bytes and flows (shared with the analyzers). */
    private readonly accounting: WindowFlowAccounting,
    private readonly emit: (out: WindowOutput) => void,
    /** At most this many findings of one type per window; the rest are counted in `findingsSuppressed`. */
    private readonly maxFindingsPerType = Infinity,
    /** Flows' proved server names, for findings about a flow (none: only port service names). */
    private readonly names?: FlowNames,
  ) {}

  /** Findings reported so far in the current window. */
  get pendingFindings(): readonly Finding[] { return this.findings; }

  /** The window packets are being attributed to now. */
  get current(): WindowSpan { return this.span; }

  /** Called for every packet once the clock has observed it, before the analyzers see it. */
  advance(): void {
    const now = this.clock.now;
    if (Number.isNaN(this.span.index)) { this.open(now); return; }
    if (now >= this.span.relEnd) { this.close(); this.open(now); }
  }

  private open(now: number): void {
    const base = this.clock.base;
    const index = Math.floor((base + now) / this.seconds);
    const start = index * this.seconds;
    this.span = { index, start, end: start + this.seconds, relStart: start - base, relEnd: start + this.seconds - base };
  }

  /**
   * A frame of the current window (after the flow table counted it): true when
   * it is its flow's first in the window. Takes the view, not its time: a
   * double passed to a call that is not inlined is boxed, an allocation per packet.
   */
  onPacket(v: PacketView, slot: number): boolean {
    if (v.ts < this.span.relStart) this.outOfOrder++;
    return this.accounting.packet(v.wireLen, slot);
  }

  onFlowStart(slot: number): void {
    this.newFlows++;
    this.accounting.flowStarted(slot);
  }

  onFlowEnd(): void { this.closedFlows++; }

  /** After the analyzers' onFlowEnd hooks: the slot leaves the window's flow accounting. */
  flowEnded(slot: number): void { this.accounting.flowEnded(slot); }

  /** Turns an analyzer's draft into a finding of the current window, with a stable id. */
  report(draft: FindingDraft): void {
    this.offer(draft.type, draft, undefined, draft.order ?? this.order);
  }

  /**
   * `report` for a draft that is dear to build (addresses and times formatted
   * as text): `draft` is called only when the finding may be kept, so the
   * findings over the per-type cap (thousands a window on a scanned network)
   * cost a count, not their strings. `draft()` must be of type `type`.
   */
  reportLazily(type: FindingType, draft: () => FindingDraft): void {
    this.offer(type, undefined, draft, this.order);
  }

  /**
   * Keeps the first `maxFindingsPerType` findings of a type in (order, id)
   * order and counts the rest as suppressed. Findings come in non-decreasing
   * `order`, so one over the cap is built only when it ties in order with the
   * last kept one (its id then decides).
   */
  private offer(type: FindingType, draft: FindingDraft | undefined, make: (() => FindingDraft) | undefined, order: number): void {
    let kept = this.keptOfType.get(type);
    if (kept === undefined) this.keptOfType.set(type, kept = []);
    if (kept.length < this.maxFindingsPerType) {
      const d = draft ?? make!();
      kept.push(this.findings.length);
      this.orders.push(order);
      this.ranks.push(d.rank ?? 0);
      this.findings.push(this.finding(d));
      return;
    }
    this.suppressed[type] = (this.suppressed[type] ?? 0) + 1;
    let worst = -1;
    for (const i of kept) {
      if (this.orders[i] === order && (worst < 0 || this.after(i, worst))) worst = i;
    }
    if (worst < 0) return;
    const d = draft ?? make!();
    const f = this.finding(d);
    const rank = d.rank ?? 0;
    if (rank < this.ranks[worst]! || (rank === this.ranks[worst] && f.id < this.findings[worst]!.id)) {
      this.findings[worst] = f;
      this.ranks[worst] = rank;
    }
  }

  /** Kept finding `i` comes after kept finding `j` of the same order. */
  private after(i: number, j: number): boolean {
    return this.ranks[i]! > this.ranks[j]! || (this.ranks[i] === this.ranks[j] && this.findings[i]!.id > this.findings[j]!.id);
  }

  private finding(draft: FindingDraft): Finding {
    const span = this.span;
    const id = createHash('sha256').update(`${draft.type}\u0000${span.start}\u0000${draft.key}`).digest('hex').slice(0, 16);
    const finding: Finding = {
      id,
      type: draft.type,
      severity: draft.severity,
      window: { start: isoFromSeconds(span.start), end: isoFromSeconds(span.end) },
      summary: draft.summary,
      evidence: draft.evidence,
    };
    if (draft.flow !== undefined) finding.flow = draft.flow;
    else if (draft.flowSlot !== undefined && draft.flowSlot >= 0) finding.flow = describeFlowWithService(this.flows, draft.flowSlot, this.names);
    if (draft.host !== undefined) finding.host = draft.host;
    return finding;
  }

  /**
   * The coordinator of flow-sharded workers (shard/window-merger.ts): analyzers
   * judging merged state report findings of window `span` while it merges
   * (order Infinity: at the window's close); `takeFindings` hands them over.
   */
  mergingWindow(span: WindowSpan): void {
    this.span = span;
    this.order = Infinity;
  }

  /** The findings reported since the last call (or window close), uncapped, each with its order and rank. */
  takeFindings(): OrderedFinding[] {
    const out = this.findings.map((finding, i): OrderedFinding => ({ finding, order: this.orders[i]!, rank: this.ranks[i]! }));
    this.findings = [];
    this.orders = [];
    this.ranks = [];
    this.keptOfType.clear();
    this.suppressed = {};
    return out;
  }

  /** End of input: analyzers report what is still open, then the last (partial) window closes. */
  finish(): void {
    if (Number.isNaN(this.span.index)) return;
    for (const a of this.analyzers) a.finish?.(this.span);
    this.close();
  }

  private close(): void {
    const span = this.span;
    const order = this.order;
    this.order = Infinity;
    const metrics: Record<string, Metrics> = {};
    for (const a of this.analyzers) metrics[a.id] = a.closeWindow(span, metrics);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    const health = metrics['health']?.['score'];
    const summary: WindowSummary = {
      start: isoFromSeconds(span.start),
      end: isoFromSeconds(span.end),
      packets: this.accounting.packets,
      bytes: this.accounting.bytes,
      flows: { active: this.accounting.flowCount, new: this.newFlows, closed: this.closedFlows },
      outOfOrderTimestamps: this.outOfOrder,
      metrics,
      healthScore: typeof health === 'number' ? health : null,
    };
    const suppressedTypes = Object.keys(this.suppressed).sort();
    // Keys in name order: the order merged workers' windows give them in.
    if (suppressedTypes.length) summary.findingsSuppressed = Object.fromEntries(suppressedTypes.map((t) => [t, this.suppressed[t]!]));
    const rangeInputs: RangeInputs = { stats: {}, health: null };
    for (const a of this.analyzers) {
      const part = a.rangeInputs?.();
      if (part?.stats) Object.assign(rangeInputs.stats, part.stats);
      if (part?.health) rangeInputs.health = part.health;
    }
    const sorted = this.sortedFindings();
    const findings = sorted.map((o) => o.finding);
    const findingOrders = sorted.map((o) => o.order);
    const findingRanks = sorted.map((o) => o.rank);
    this.suppressed = {};
    this.keptOfType.clear();
    this.findings = [];
    this.orders = [];
    this.ranks = [];
    this.accounting.windowClosed();
    this.newFlows = this.closedFlows = this.outOfOrder = 0;
    this.order = order;
    this.emit({ summary, findings, findingOrders, findingRanks, rangeInputs });
  }

  /** The window's findings in their canonical order (findingOrder). */
  private sortedFindings(): OrderedFinding[] {
    const out = this.findings.map((finding, i): OrderedFinding => ({ finding, order: this.orders[i]!, rank: this.ranks[i]! }));
    return out.sort(findingOrder);
  }
}
