/**
 * The coordinator of flow-sharded workers: merges the workers' parts of each
 * window into the window one pipeline over the whole input would have closed.
 * Every worker closes every window (their clocks follow the reader's), so the
 * parts come in the same window order from each; a window is merged when
 * every worker has given its part.
 *
 * - Volumes add up: packets, bytes, flows (each flow is in one worker),
 *   out-of-order timestamps, suppressed findings.
 * - Findings: all workers' findings in the canonical order (where in the
 *   input each was reported, then rank, then id: window-engine.ts), and the
 *   per-type cap keeps the first. Each worker kept its own first ones, so the
 *   first of their union are the first overall.
 * - Analyzer metrics: each analyzer's `mergeWindow`, in registry order (so
 *   `health` sees the merged metrics before it).
 * - Distributions of the window's RangeInputs: the sketches merged.
 */
import type { Config } from '../../common/config.js';
import type { Finding, QuantileSketch, RangeInputs, WindowSummary } from '../../common/report.js';
import type { Metrics } from '../core/window-types.js';
import type { FrameRecord } from '../capture/frame-record.js';
import { Quantiles } from '../analyzers/lib/quantiles.js';
import { Pipeline } from '../pipeline.js';
import { findingOrder, type OrderedFinding, type WindowOutput } from '../window/window-engine.js';
import { InputHooks, type FeedClock } from './input-hooks.js';
import type { ShardTotals, ShardWindow } from './shard-pipeline.js';

export class WindowMerger {
  /** Analyzer instances whose `mergeWindow` runs here (their own packet state stays empty). */
  private readonly coordinator: Pipeline;
  private readonly queues: ShardWindow[][];
  /** Each worker's totals as of its last window merged (ShardWindow.totals). */
  readonly totals: Array<ShardTotals | undefined>;
  /** The coordinator's analyzers that see every input packet (Analyzer.onInputPacket). */
  private readonly inputHooks: InputHooks;

  /**
   * `lossy`: live capture, where a worker's full ring drops marks with
   * packets, so a worker may skip a window that had none of its packets left
   * (it merges without that worker). Otherwise every worker closes every
   * window, and a worker that did not is a bug (an error).
   */
  constructor(private readonly config: Readonly<Config>, workers: number, private readonly emit: (out: WindowOutput, parts: readonly ShardWindow[]) => void,
    private readonly lossy = false) {
    this.coordinator = new Pipeline(coordinatorConfig(config), { onWindow: () => {}, shardRole: 'coordinator' });
    const unmergeable = this.coordinator.analyzers.filter((a) => typeof a.mergeWindow !== 'function').map((a) => a.id);
    if (unmergeable.length) throw new Error(`cannot merge the windows of analyzers ${unmergeable.join(', ')}`);
    this.queues = Array.from({ length: workers }, () => []);
    this.totals = new Array<ShardTotals | undefined>(workers);
    this.inputHooks = new InputHooks(this.coordinator.analyzers);
  }

  /**
   * Every packet of the input, clocked by the reader's feed (its time base,
   * and the clock and flags after the packet: ShardFeed), before any worker
   * gets it: to the coordinator's analyzers that have `onInputPacket`.
   */
  inputPacket(rec: FrameRecord, feed: FeedClock): void {
    this.inputHooks.packet(rec, feed);
  }

  /** The report's distributions (Pipeline.distributionNames), from the coordinator's analyzers. */
  distributionNames(): string[] {
    return this.coordinator.distributionNames();
  }

  /** New analyzer thresholds (SIGHUP) for the analyzers that merge and judge here (from the next window merged). */
  reconfigure(config: Readonly<Config>): void {
    this.coordinator.reconfigure(coordinatorConfig(config));
  }

  /** Analyzer ids of the key tables granted from the memory budget (as in every worker). */
  tableOwners(): string[] {
    return this.coordinator.tableOwners();
  }

  /** Worker `worker`'s next window; merges and emits every window all workers have given. */
  add(worker: number, part: ShardWindow): void {
    this.queues[worker]!.push(part);
    while (this.queues.every((q) => q.length > 0)) {
      const heads = this.queues.map((q) => q[0]!);
      const index = Math.min(...heads.map((p) => p.span.index));
      if (!this.lossy && heads.some((p) => p.span.index !== index)) {
        throw new Error(`workers closed different windows (${heads.map((p) => p.span.start).join(', ')}): their clocks diverged`);
      }
      const parts: ShardWindow[] = [];
      this.queues.forEach((q, w) => {
        if (q[0]!.span.index !== index) return; // lossy: this worker skipped the window
        this.totals[w] = q[0]!.totals;
        parts.push(q.shift()!);
      });
      this.emit(this.merge(parts), parts);
    }
  }

  /**
   * The report's counters from the workers' totals: the pipeline's own
   * added up, then each analyzer's in registry order, merged by its
   * `mergeCounters` (its keys may depend on what every worker saw) or else
   * added up: the keys in the order one pipeline gives them.
   */
  mergeCounters(finals: readonly ShardTotals[]): Record<string, number> {
    const own = finals.map((f) => {
      const out = { ...f.counters };
      for (const c of f.analyzerCounters) for (const k of Object.keys(c)) delete out[k];
      return out;
    });
    const merged = sumCounts(own);
    this.coordinator.analyzers.forEach((a, i) => {
      const parts = finals.map((f) => f.analyzerCounters[i]!);
      Object.assign(merged, a.mergeCounters ? a.mergeCounters(parts) : sumCounts(parts));
    });
    return merged;
  }

  /** Windows some worker has given and others not yet (0 at the end of the input, when every worker has finished). */
  get waiting(): number {
    return Math.max(...this.queues.map((q) => q.length));
  }

  private merge(parts: readonly ShardWindow[]): WindowOutput {
    const span = parts[0]!.span;
    const engine = this.coordinator.windows;
    engine.mergingWindow(span);
    const max = this.config.report.maxFindingsPerType;
    const fromWorkers = parts.flatMap((p) => p.findings.map((finding, i): OrderedFinding => ({ finding, order: p.findingOrders[i]!, rank: p.findingRanks[i]! })));
    const counted = new Map<string, number>();
    for (const p of parts) for (const [type, n] of Object.entries(p.summary.findingsSuppressed ?? {})) counted.set(type, (counted.get(type) ?? 0) + n);
    let merged = capFindings(fromWorkers, max, new Map(counted));
    const metrics: Record<string, Metrics> = {};
    const analyzers = this.coordinator.analyzers;
    for (let i = 0; i < analyzers.length; i++) {
      const a = analyzers[i]!;
      metrics[a.id] = a.mergeWindow!({
        span,
        metrics: parts.map((p) => p.summary.metrics[a.id] as Metrics),
        parts: parts.map((p) => p.parts[i]),
        earlier: metrics,
        findings: merged.kept.map((o) => o.finding),
      });
      const reported = engine.takeFindings();
      if (reported.length) {
        fromWorkers.push(...reported);
        merged = capFindings(fromWorkers, max, new Map(counted));
      }
    }
    const suppressed: Record<string, number> = {};
    for (const type of [...merged.suppressed.keys()].sort()) suppressed[type] = merged.suppressed.get(type)!;
    const findings = merged.kept.map((o): Finding => o.finding);
    const findingOrders = merged.kept.map((o) => o.order);
    const findingRanks = merged.kept.map((o) => o.rank);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    const health = metrics['health']?.['score'];
    const sum = (f: (s: WindowSummary) => number): number => parts.reduce((n, p) => n + f(p.summary), 0);
    const summary: WindowSummary = {
      start: parts[0]!.summary.start,
      end: parts[0]!.summary.end,
      packets: sum((s) => s.packets),
      bytes: sum((s) => s.bytes),
      flows: { active: sum((s) => s.flows.active), new: sum((s) => s.flows.new), closed: sum((s) => s.flows.closed) },
      outOfOrderTimestamps: sum((s) => s.outOfOrderTimestamps),
      metrics,
      healthScore: typeof health === 'number' ? health : null,
    };
    if (Object.keys(suppressed).length) summary.findingsSuppressed = suppressed;
    const rangeInputs: RangeInputs = { stats: mergeSketches(parts.map((p) => p.rangeInputs.stats)), health: null };
    for (const a of analyzers) {
      const part = a.rangeInputs?.();
      if (part?.health) rangeInputs.health = part.health;
    }
    return { summary, findings, findingOrders, findingRanks, rangeInputs };
  }
}

/**
 * Findings in the canonical order, the first `maxPerType` of each type kept;
 * `suppressed` (counts carried in, by type) gets those dropped here. Each
 * worker kept its own first ones, so the first of their union are the first overall.
 */
function capFindings(all: OrderedFinding[], maxPerType: number, suppressed: Map<string, number>): { kept: OrderedFinding[]; suppressed: Map<string, number> } {
  all.sort(findingOrder);
  const kept: OrderedFinding[] = [];
  const perType = new Map<string, number>();
  for (const o of all) {
    const n = perType.get(o.finding.type) ?? 0;
    perType.set(o.finding.type, n + 1);
    if (n < maxPerType) kept.push(o);
    else suppressed.set(o.finding.type, (suppressed.get(o.finding.type) ?? 0) + 1);
  }
  return { kept, suppressed };
}

/** Each distribution's sketches merged, as one set fed every sample would give it. */
function mergeSketches(stats: ReadonlyArray<Record<string, QuantileSketch>>): Record<string, QuantileSketch> {
  const out: Record<string, QuantileSketch> = {};
  for (const name of Object.keys(stats[0] ?? {})) {
    const set = new Quantiles(true);
    for (const s of stats) set.addSketch(s[name]!);
    out[name] = set.sketch();
  }
  return out;
}

/** Records of counts added up, keys in the order they first appear (worker by worker). */
export function sumCounts(records: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * The coordinator's pipeline sees no packet: its flow table and per-flow
 * state are the smallest a configuration allows (its key tables, which
 * detectors judging here use, keep their size). Findings its analyzers
 * report while merging are taken after each one (takeFindings), never capped
 * there.
 */
function coordinatorConfig(config: Readonly<Config>): Config {
  return { ...config, flows: { ...config.flows, maxFlows: COORDINATOR_FLOWS }, report: { ...config.report, maxFindingsPerType: Infinity } };
}

/** flows.maxFlows' least value. */
const COORDINATOR_FLOWS = 16;
