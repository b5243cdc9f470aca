/**
 * A report's `stats` and `healthScore` merged from its windows' RangeInputs,
 * one window at a time: `analyze` builds its report with it from the windows
 * it closes, the collector from the windows a sensor published, so both give
 * the same figures for the same packets.
 *
 * Distributions: the windows' sketches merged (quantiles.ts): exact while
 * every window sent its samples (at most 256 each) and together they are at
 * most 65,536, else log buckets with ±0.5 % relative error. Health: rates from
 * the summed counts, each percentile as the sample-weighted mean of the
 * windows' p90s.
 */
import type { Config } from '../../../common/config.js';
import type { HealthScore, QuantileStat, RangeInputs } from '../../../common/report.js';
import { scoreHealth } from './health-score.js';
import { Quantiles, SKETCH_BUCKETS, SKETCH_EXACT, SKETCH_MAX_EXPONENT } from './quantiles.js';

const pct = (part: number, whole: number): number | null => (whole ? (part / whole) * 100 : null);

export class RangeStats {
  private readonly sets = new Map<string, Quantiles>();
  /** Windows merged, and those without inputs (published by an agent before sketches existed). */
  windows = 0;
  windowsWithout = 0;
  private healthWindows = 0;
  private segments = 0;
  private retransmissions = 0;
  private lost = 0;
  private dnsQueries = 0;
  private dnsFailures = 0;
  private anomalies = 0;
  private readonly weighted = { rtt: [0, 0], dns: [0, 0], jitter: [0, 0] };

  /**
   * `distributions`: the names `stats` lists even without samples; `health`: a
   * score is given without windows too (an empty capture scores 100), as the
   * health analyzer is on.
   */
  constructor(distributions: readonly string[], private readonly health: boolean) {
    for (const name of distributions) this.sets.set(name, new Quantiles(true));
  }

  add(inputs: RangeInputs | undefined): void {
    this.windows++;
    if (inputs === undefined) { this.windowsWithout++; return; }
    for (const [name, sketch] of Object.entries(inputs.stats)) {
      let set = this.sets.get(name);
      if (!set) this.sets.set(name, set = new Quantiles(true));
      set.addSketch(sketch);
    }
    const h = inputs.health;
    if (!h) return;
    this.healthWindows++;
    this.segments += h.dataSegments;
    this.retransmissions += h.retransmissions;
    this.lost += h.lostSegments;
    this.dnsQueries += h.dnsQueries;
    this.dnsFailures += h.dnsFailures;
    this.anomalies += h.anomalies;
    addWeighted(this.weighted.rtt, h.rttP90);
    addWeighted(this.weighted.dns, h.dnsP90);
    addWeighted(this.weighted.jitter, h.jitterP90);
  }

  /** Every window had its inputs: `stats` and `healthScore` are whole. */
  get complete(): boolean { return this.windowsWithout === 0; }

  stats(): Record<string, QuantileStat> {
    const out: Record<string, QuantileStat> = {};
    for (const [name, set] of this.sets) out[name] = set.summary();
    return out;
  }

  /** The whole range's score; undefined when its windows had no health inputs (the analyzer was off). */
  healthScore(config: Readonly<Pick<Config, 'analyzers'>>): HealthScore | undefined {
    if (this.healthWindows === 0 && !(this.windows === 0 && this.health)) return undefined;
    const mean = (acc: number[]): number | null => (acc[1] ? acc[0]! / acc[1]! : null);
    return scoreHealth({
      retransmissionRate: pct(this.retransmissions, this.segments),
      lossRate: pct(this.lost, this.segments),
      rttP90: mean(this.weighted.rtt),
      dnsP90: mean(this.weighted.dns),
      dnsFailureRate: pct(this.dnsFailures, this.dnsQueries),
      jitterP90: mean(this.weighted.jitter),
      anomalies: this.anomalies,
    }, config);
  }
}

function addWeighted(acc: number[], value: [number, number] | null): void {
  if (value === null) return;
  acc[0]! += value[0] * value[1];
  acc[1]! += value[1];
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isWholeCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Distributions a window may send (the agent sends 2). */
const MAX_DISTRIBUTIONS = 16;

/** What is wrong with a sketch from a sensor (quantiles.ts's bounds), or ''. */
function sketchProblem(s: unknown): string {
  if (!isObject(s) || !isWholeCount(s['count'])) return 'count is not a whole count';
  const count = s['count'];
  const max = s['max'];
  if (count === 0 ? max !== null : typeof max !== 'number' || !Number.isFinite(max)) return 'max is not a number (null without samples)';
  const { exact, positive, negative, zero } = s;
  if (exact !== undefined) {
    if (positive !== undefined || negative !== undefined || zero !== undefined) return 'both samples and buckets';
    if (!Array.isArray(exact) || exact.length !== count || exact.length > SKETCH_EXACT) return `samples are not an array of count (at most ${SKETCH_EXACT}) numbers`;
    for (const v of exact as unknown[]) if (typeof v !== 'number' || !Number.isFinite(v)) return 'a sample is not a number';
    return '';
  }
  if (zero !== undefined && !isWholeCount(zero)) return 'zero is not a whole count';
  let total = zero ?? 0;
  let buckets = 0;
  for (const side of [positive, negative]) {
    if (side === undefined) continue;
    if (!Array.isArray(side)) return 'buckets are not an array';
    buckets += side.length;
    if (buckets > SKETCH_BUCKETS) return `more than ${SKETCH_BUCKETS} buckets`;
    for (const b of side as unknown[]) {
      if (!Array.isArray(b) || b.length !== 2 || !Number.isSafeInteger(b[0]) || Math.abs(b[0] as number) > SKETCH_MAX_EXPONENT || !isWholeCount(b[1])) {
        return `a bucket is not [exponent within ±${SKETCH_MAX_EXPONENT}, whole count]`;
      }
      total += b[1] as number;
    }
  }
  return total === count ? '' : 'bucket counts do not add up to count';
}

function weightedProblem(v: unknown): boolean {
  return v !== null && (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'number' || !Number.isFinite(v[0]) || !isCount(v[1]) || (v[1] as number) <= 0);
}

/** What is wrong with a window's rangeInputs from a sensor, or '' (a stored window is merged as it is: RangeStats trusts it). */
export function rangeInputsProblem(r: unknown): string {
  if (!isObject(r) || !isObject(r['stats'])) return 'rangeInputs.stats is not an object';
  const stats = r['stats'];
  if (Object.keys(stats).length > MAX_DISTRIBUTIONS) return `rangeInputs.stats has more than ${MAX_DISTRIBUTIONS} distributions`;
  for (const [name, sketch] of Object.entries(stats)) {
    const problem = sketchProblem(sketch);
    if (problem) return `rangeInputs.stats["${name.slice(0, 64)}"]: ${problem}`;
  }
  const h = r['health'];
  if (h === null) return '';
  if (!isObject(h) || !['dataSegments', 'retransmissions', 'lostSegments', 'dnsQueries', 'dnsFailures', 'anomalies'].every((k) => isCount(h[k]))
    || weightedProblem(h['rttP90']) || weightedProblem(h['dnsP90']) || weightedProblem(h['jitterP90'])) {
    return 'rangeInputs.health is not counts and [p90, weight] pairs';
  }
  return '';
}
