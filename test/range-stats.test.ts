/**
 * Window sketches and their merge (RangeStats), the one code path of a
 * report's `stats` and `healthScore` in `analyze` and in the collector: a
 * sketch merges as the set it was made from merges, its size is bounded, its
 * buckets keep their documented accuracy, and the health inputs merged give
 * the score the whole capture's sums give.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from './helpers/fuzz-lib.js';
import { Quantiles, SKETCH_BUCKETS, SKETCH_EXACT } from '../agent/analyzers/lib/quantiles.js';
import { RangeStats, rangeInputsProblem } from '../agent/analyzers/lib/range-stats.js';
import { scoreHealth } from '../agent/analyzers/lib/health-score.js';
import { DEFAULT_CONFIG } from '../common/config.js';
import type { QuantileSketch } from '../common/report.js';

const random = mulberry32(7);
/** Positive durations over six decades (1 µs to 1 s), some negative and zero ones. */
const draw = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 97 === 0 ? -random() * 1e-3 : i % 89 === 0 ? 0 : 10 ** (-6 + 6 * random())));

/** A window's set of `values`, and its sketch after a JSON round trip (as the collector reads it). */
function windowOf(values: readonly number[]): { values: readonly number[]; set: Quantiles; sketch: QuantileSketch } {
  const set = new Quantiles(true);
  for (const v of values) set.add(v);
  return { values, set, sketch: JSON.parse(JSON.stringify(set.sketch())) as QuantileSketch };
}

test('merging window sketches gives what merging the windows\' sets gives: exact while small, bucketed past 256 samples a window', () => {
  for (const sizes of [[1, 2, 3], [256, 256, 10], [100, 5000, 3], [300], [40_000, 30_000], [0, 7]]) {
    const windows = sizes.map((n) => windowOf(draw(n)));
    const bySets = new Quantiles(true);
    const bySketches = new Quantiles(true);
    for (const w of windows) { bySets.addAll(w.set); bySketches.addSketch(w.sketch); }
    const exact = sizes.every((n) => n <= SKETCH_EXACT);
    assert.equal(windows.every((w) => (w.sketch.exact !== undefined) === (w.set.count <= SKETCH_EXACT)), true, `${sizes.join(',')}: samples as they are up to ${SKETCH_EXACT}`);
    if (exact || sizes.reduce((a, b) => a + b) > 65_536) {
      // Exact: the same samples; past the exact cap the merged sets are bucketed too, with the same buckets.
      assert.deepEqual(bySketches.summary(), bySets.summary(), `${sizes.join(',')}`);
    } else {
      // A bucketed window makes the merge bucketed where the sets' merge is still exact: each quantile within ±0.5 % of the
      // sample at its rank (nearest rank: an even count's median is then one of the middle two, not their mean).
      const sorted = sizes.flatMap((_, i) => windows[i]!.values).sort((a, b) => a - b);
      const a = bySets.summary();
      const b = bySketches.summary();
      assert.equal(b.count, a.count);
      assert.equal(b.max, a.max);
      for (const [k, q] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]] as const) {
        const want = sorted[Math.ceil(q * sorted.length) - 1]!;
        assert.ok(Math.abs(b[k]! - want) <= 0.005 * Math.abs(want) + 1e-9, `${sizes.join(',')} ${k}: ${b[k]} vs ${want}`);
      }
    }
  }
});

test('a sketch is bounded: at most 256 samples or 1,024 buckets, at most 6 KB and 15 KB of JSON here; folded buckets keep p50 and above within 0.5 %', () => {
  const exact = windowOf(Array.from({ length: SKETCH_EXACT }, () => random() * 1e-3 + 1e-9 * random())).sketch;
  const exactBytes = JSON.stringify(exact).length;
  assert.ok(exactBytes <= 6_000, `${exactBytes} bytes for ${SKETCH_EXACT} samples`);
  // 70 % of the values within a factor of 10,000 (1 ms to 10 s: 926 buckets), the rest negative or tiny over 15 decades: more buckets than a sketch keeps.
  const wide = Array.from({ length: 65_536 }, (_, i) => (i % 10 < 7 ? 10 ** (-3 + 4 * random()) : (i % 2 ? 1 : -1) * 10 ** (-9 + 5 * random())));
  const { set, sketch } = windowOf(wide);
  const buckets = (sketch.positive?.length ?? 0) + (sketch.negative?.length ?? 0);
  assert.equal(buckets, SKETCH_BUCKETS, 'folded to the bound');
  const bytes = JSON.stringify(sketch).length;
  assert.ok(bytes <= 15_000, `${bytes} bytes for ${buckets} buckets`);
  const merged = new Quantiles(true);
  merged.addSketch(sketch);
  assert.equal(merged.count, set.count);
  const sorted = [...wide].sort((a, b) => a - b);
  // The folded buckets are the lowest values: the quantiles above them keep their accuracy.
  for (const q of [0.5, 0.9, 0.99]) {
    const want = sorted[Math.ceil(q * sorted.length) - 1]!;
    const got = merged.quantile(q)!;
    assert.ok(Math.abs(got - want) <= 0.005 * Math.abs(want), `q${q}: ${got} vs ${want}`);
  }
});

test('RangeStats: the health inputs of windows merge into the score of the sums; without windows it lists empty distributions', () => {
  const empty = new RangeStats(['tcp.analysis.ack_rtt', 'dns.time'], true);
  assert.deepEqual(empty.stats(), {
    'tcp.analysis.ack_rtt': { count: 0, p50: null, p90: null, p99: null, max: null },
    'dns.time': { count: 0, p50: null, p90: null, p99: null, max: null },
  });
  assert.equal(empty.healthScore(DEFAULT_CONFIG)?.score, 100, 'an empty capture scores 100, as analyze gives it');
  assert.equal(new RangeStats([], false).healthScore(DEFAULT_CONFIG), undefined, 'no score without the health analyzer');

  const merged = new RangeStats([], true);
  merged.add({ stats: {}, health: { dataSegments: 100, retransmissions: 4, lostSegments: 1, dnsQueries: 10, dnsFailures: 1, anomalies: 1, rttP90: [0.2, 3], dnsP90: null, jitterP90: null } });
  merged.add({ stats: {}, health: { dataSegments: 300, retransmissions: 0, lostSegments: 0, dnsQueries: 10, dnsFailures: 0, anomalies: 2, rttP90: [0.4, 1], dnsP90: [0.05, 2], jitterP90: null } });
  assert.deepEqual(merged.healthScore(DEFAULT_CONFIG), scoreHealth({
    retransmissionRate: 1, lossRate: 0.25, rttP90: (0.2 * 3 + 0.4) / 4, dnsP90: 0.05, dnsFailureRate: 5, jitterP90: null, anomalies: 3,
  }, DEFAULT_CONFIG));
  merged.add(undefined);
  assert.equal(merged.complete, false, 'a window without inputs makes the merge incomplete');
});

test('rangeInputsProblem refuses sketches and health inputs a merge would trust', () => {
  const ok = { stats: { 'dns.time': { count: 2, max: 0.2, exact: [0.1, 0.2] } }, health: null };
  assert.equal(rangeInputsProblem(ok), '');
  const bad: Array<[unknown, RegExp]> = [
    [{ stats: { x: { count: 3, max: 0.2, exact: [0.1, 0.2] } }, health: null }, /samples are not an array of count/],
    [{ stats: { x: { count: 2, max: null, exact: [0.1, 0.2] } }, health: null }, /max is not a number/],
    [{ stats: { x: { count: 300, max: 1, exact: Array.from({ length: 300 }, () => 1) } }, health: null }, /at most 256/],
    [{ stats: { x: { count: 2, max: 1, positive: [[0, 1]], zero: 0 } }, health: null }, /do not add up/],
    [{ stats: { x: { count: 1, max: 1, positive: [[1e9, 1]] } }, health: null }, /exponent within/],
    [{ stats: { x: { count: 2000, max: 1, positive: Array.from({ length: 2000 }, (_, i) => [i, 1]) } }, health: null }, /more than 1024 buckets/],
    [{ stats: {}, health: { dataSegments: -1 } }, /health is not counts/],
    [{ stats: {}, health: { dataSegments: 1, retransmissions: 0, lostSegments: 0, dnsQueries: 0, dnsFailures: 0, anomalies: 0, rttP90: [0.1, 0], dnsP90: null, jitterP90: null } }, /health/],
    [{ stats: [] }, /stats is not an object/],
  ];
  for (const [inputs, why] of bad) assert.match(rangeInputsProblem(inputs), why, JSON.stringify(inputs).slice(0, 80));
});
