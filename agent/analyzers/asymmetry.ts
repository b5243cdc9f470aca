/**
 * One-way and strongly asymmetric flows, judged on each flow's whole-life
 * counters (the flow table's packets and bytes per direction) for every flow
 * that had packets in the window (the window flow accounting's set,
 * `ctx.windowFlows`; no per-packet work here): at the window's close, or at
 * the flow's end when it ends during the window (its slot may be reused
 * afterwards). Flows still open at the end of input are judged when the last
 * window closes.
 *
 * - one-way: at least `minPackets` packets in one direction and none in the
 *   other (no answer at all: asymmetric routing, a capture that sees one
 *   side, a dead server, or a one-way protocol such as syslog over UDP);
 * - asymmetric: packets both ways, at least `minPackets` in all, and one
 *   direction carrying more than RATIO times the bytes of the other (bulk
 *   transfers look like this: a metric, not a finding).
 *
 * A `one_way_flow` finding is reported per one-way flow; severity warning for
 * TCP, where an answer is always expected, info otherwise. The window engine's
 * per-type cap (report.maxFindingsPerType) keeps the first in its canonical
 * order: where in the input each was reported, then the most packets first
 * (the finding's rank). No cap of its own: one counted in report order could
 * not be merged from flow-sharded workers, whose findings the coordinator
 * caps as one pipeline would (the metrics add up: each flow is in one worker).
 */
import { Transport } from '../decode/constants.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { DIR_NAMES, flowKey, round3 } from './window-flows.js';
import { plural } from './lib/format.js';
import { sumMetrics } from './lib/merge-metrics.js';

/** Bytes one way over bytes the other way above which a flow is strongly asymmetric. */
export const ASYMMETRY_RATIO = 20;

export function createAsymmetryAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new AsymmetryAnalyzer(ctx);
}

const NONE = 0;
const ONE_WAY = 1;
const ASYMMETRIC = 2;

class AsymmetryAnalyzer implements Analyzer {
  readonly id = 'asymmetry';
  private get minPackets(): number { return this.ctx.config.analyzers.asymmetry.minPackets; }
  private w = { flows: 0, checked: 0, oneWayToServer: 0, oneWayToClient: 0, asymmetric: 0 };

  constructor(private readonly ctx: AnalyzerContext) {}

  /** Counts the flow in the window's metrics and returns its class. */
  private judge(slot: number): number {
    const f = this.ctx.flows;
    const w = this.w;
    w.flows++;
    const p0 = f.packets[slot * 2]!;
    const p1 = f.packets[slot * 2 + 1]!;
    if (p0 + p1 < this.minPackets) return NONE;
    w.checked++;
    if (p1 === 0 && p0 >= this.minPackets) { w.oneWayToServer++; return ONE_WAY; }
    if (p0 === 0 && p1 >= this.minPackets) { w.oneWayToClient++; return ONE_WAY; }
    if (p0 === 0 || p1 === 0) return NONE;
    const b0 = f.bytes[slot * 2]!;
    const b1 = f.bytes[slot * 2 + 1]!;
    if (Math.max(b0, b1) > ASYMMETRY_RATIO * Math.min(b0, b1)) { w.asymmetric++; return ASYMMETRIC; }
    return NONE;
  }

  private reportOneWay(slot: number): void {
    const f = this.ctx.flows;
    const p0 = f.packets[slot * 2]!;
    const dir = p0 > 0 ? 0 : 1;
    const packets = f.packets[slot * 2 + dir]!;
    const tcp = f.proto[slot] === Transport.TCP;
    // Lazily: a window with thousands of one-way flows keeps report.maxFindingsPerType of them.
    this.ctx.reportLazily('one_way_flow', () => ({
      type: 'one_way_flow',
      severity: tcp ? 'warning' : 'info',
      key: flowKey(f, slot),
      summary: `${plural(packets, 'packet')} ${dir === 0 ? 'from the client' : 'from the server'} and none in the other direction${tcp ? ' (no answer, asymmetric routing, or half of the traffic not captured)' : ''}.`,
      evidence: {
        direction: DIR_NAMES[dir]!,
        packets,
        bytes: f.bytes[slot * 2 + dir]!,
        durationSeconds: round3(f.lastTs[slot]! - f.firstTs[slot]!),
      },
      flowSlot: slot,
      rank: -packets,
    }));
  }

  onFlowEnd(slot: number): void {
    if (!this.ctx.windowFlows.active.has(slot)) return;
    if (this.judge(slot) === ONE_WAY) this.reportOneWay(slot);
  }

  closeWindow(): Metrics {
    const set = this.ctx.windowFlows.active;
    for (let i = 0; i < set.size; i++) {
      const slot = set.slots[i]!;
      if (this.judge(slot) === ONE_WAY) this.reportOneWay(slot);
    }
    const w = this.w;
    const metrics: Metrics = {
      flows: w.flows,
      checked: w.checked,
      oneWay: w.oneWayToServer + w.oneWayToClient,
      oneWayClientToServer: w.oneWayToServer,
      oneWayServerToClient: w.oneWayToClient,
      asymmetric: w.asymmetric,
    };
    this.w = { flows: 0, checked: 0, oneWayToServer: 0, oneWayToClient: 0, asymmetric: 0 };
    return metrics;
  }

  /** Flow-sharded workers: each flow is judged in one worker, so the counts add up (their findings are merged by the coordinator). */
  mergeWindow(input: WindowMergeInput): Metrics {
    return sumMetrics(input.metrics);
  }
}
