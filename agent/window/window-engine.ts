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
import { describeFlow, withService, type FlowNames, type FlowTable } from '../flow/index.js';
import type { WindowFlowAccounting } from '../flow/flow-accounting.js';
import type { PacketClock } from '../core/packet-clock.js';
import type { PacketView } from '../decode/packet-view.js';

export interface WindowOutput {
  summary: WindowSummary;
  findings: Finding[];
  /** What a report merges from this window besides counters (the agent publishes it in the summary). */
  rangeInputs: RangeInputs;
}

export class WindowEngine {
  private span: WindowSpan = { index: NaN, start: NaN, end: NaN, relStart: NaN, relEnd: NaN };
  private newFlows = 0;
  private closedFlows = 0;
  private outOfOrder = 0;
  private findings: Finding[] = [];
  /** Findings per type in the current window, and those over the cap (counted, not kept). */
  private readonly perType = new Map<string, number>();
  private suppressed: Record<string, number> = {};

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
    if (this.admit(draft.type)) this.keep(draft);
  }

  /**
   * `report` for a draft that is dear to build (addresses and times formatted
   * as text): `draft` is called only when the finding is kept, so the findings
   * over the per-type cap (thousands a window on a scanned network) cost a
   * count, not their strings. `draft()` must be of type `type`.
   */
  reportLazily(type: FindingType, draft: () => FindingDraft): void {
    if (this.admit(type)) this.keep(draft());
  }

  /** Counts a finding of `type` in the window: whether it is kept (under the per-type cap) or only counted as suppressed. */
  private admit(type: FindingType): boolean {
    const seen = this.perType.get(type) ?? 0;
    this.perType.set(type, seen + 1);
    if (seen >= this.maxFindingsPerType) {
      this.suppressed[type] = (this.suppressed[type] ?? 0) + 1;
      return false;
    }
    return true;
  }

  private keep(draft: FindingDraft): void {
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
    if (draft.flowSlot !== undefined && draft.flowSlot >= 0) finding.flow = withService(describeFlow(this.flows, draft.flowSlot), this.flows.proto[draft.flowSlot]!, this.names?.nameOf(draft.flowSlot), this.names?.sourceOf(draft.flowSlot) ?? 0);
    if (draft.host !== undefined) finding.host = draft.host;
    this.findings.push(finding);
  }

  /** End of input: analyzers report what is still open, then the last (partial) window closes. */
  finish(): void {
    if (Number.isNaN(this.span.index)) return;
    for (const a of this.analyzers) a.finish?.(this.span);
    this.close();
  }

  private close(): void {
    const span = this.span;
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
    if (Object.keys(this.suppressed).length) summary.findingsSuppressed = this.suppressed;
    const rangeInputs: RangeInputs = { stats: {}, health: null };
    for (const a of this.analyzers) {
      const part = a.rangeInputs?.();
      if (part?.stats) Object.assign(rangeInputs.stats, part.stats);
      if (part?.health) rangeInputs.health = part.health;
    }
    this.suppressed = {};
    this.perType.clear();
    const findings = this.findings;
    this.findings = [];
    this.accounting.windowClosed();
    this.newFlows = this.closedFlows = this.outOfOrder = 0;
    this.emit({ summary, findings, rangeInputs });
  }
}
