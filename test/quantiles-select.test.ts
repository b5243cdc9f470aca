/**
 * Quantiles.summary() of unsorted exact samples selects its ranks in place
 * instead of sorting: it must give exactly what the sorted samples give, for
 * odd and even counts, ties, negative values and sorted or reversed input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from './helpers/fuzz-lib.js';
import { Quantiles } from '../agent/analyzers/lib/quantiles.js';

const round = (v: number): number => Math.round(v * 1e9) / 1e9;

/** The summary the sorted samples give (quantileOf's nearest rank, the middle two averaged for an even median). */
function reference(values: readonly number[]): { p50: number; p90: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const at = (q: number): number => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  const p50 = n % 2 === 0 ? (s[n / 2 - 1]! + s[n / 2]!) / 2 : at(0.5);
  return { p50: round(p50), p90: round(at(0.9)), p99: round(at(0.99)), max: round(s[n - 1]!) };
}

test('Quantiles: the summary of unsorted exact samples equals the sorted reference', () => {
  const random = mulberry32(11);
  const shapes: Array<[string, (n: number) => number[]]> = [
    ['uniform', (n) => Array.from({ length: n }, () => 0.0001 + random() * 0.5)],
    ['few distinct', (n) => Array.from({ length: n }, () => 0.001 * Math.floor(random() * 4 + 1))],
    ['all equal', (n) => Array.from({ length: n }, () => 0.04)],
    ['ascending', (n) => Array.from({ length: n }, (_, i) => 0.001 * (i + 1))],
    ['descending', (n) => Array.from({ length: n }, (_, i) => 0.001 * (n - i))],
    ['signed', (n) => Array.from({ length: n }, () => random() - 0.5)],
  ];
  const q = new Quantiles(true);
  for (const [name, draw] of shapes) {
    for (const n of [1, 2, 3, 4, 5, 10, 11, 99, 100, 101, 1000, 4097, 65_536]) {
      q.clear();
      const values = draw(n);
      for (const v of values) q.add(v);
      const s = q.summary();
      const want = reference(values);
      assert.equal(s.count, n, `${name} ${n}: count`);
      assert.deepEqual({ p50: s.p50, p90: s.p90, p99: s.p99, max: s.max }, want, `${name} ${n}`);
      // A second summary (samples now partly ordered) is the same.
      assert.deepEqual(q.summary(), s, `${name} ${n}: again`);
      assert.equal(q.quantile(0.9), s.p90 === null ? null : values.slice().sort((a, b) => a - b)[Math.min(n - 1, Math.ceil(0.9 * n) - 1)]!, `${name} ${n}: quantile()`);
    }
  }
});

test('Quantiles.addAll: the same summary as adding every sample of both sets, in exact and bucket mode', () => {
  const random = mulberry32(5);
  const draw = (n: number): number[] => Array.from({ length: n }, (_, i) => {
    // Mostly durations; now and then a value for the zero bucket, a negative one, or one beyond the dense buckets.
    if (i % 997 === 3) return 1e-12;
    if (i % 991 === 5) return -random();
    if (i % 1009 === 7) return Infinity;
    return 0.00001 + random() * 0.3;
  });
  const sizes: Array<[number, number]> = [[0, 0], [0, 5], [5, 0], [3, 4], [40_000, 25_536], [40_000, 25_537], [53_456, 158_437], [100_000, 10], [10, 100_000], [70_000, 70_000]];
  for (const allowNegative of [false, true]) {
    for (const [na, nb] of sizes) {
      const a = draw(na);
      const b = draw(nb);
      const direct = new Quantiles(allowNegative);
      for (const v of [...a, ...b]) direct.add(v);
      const qa = new Quantiles(allowNegative);
      const qb = new Quantiles(allowNegative);
      for (const v of a) qa.add(v);
      for (const v of b) qb.add(v);
      const both = new Quantiles(allowNegative);
      both.addAll(qa);
      both.addAll(qb);
      assert.deepEqual(both.summary(), direct.summary(), `${na} + ${nb}, allowNegative ${allowNegative}`);
      // And into a set that already holds samples.
      const into = new Quantiles(allowNegative);
      for (const v of a) into.add(v);
      into.addAll(qb);
      assert.deepEqual(into.summary(), direct.summary(), `${na} then ${nb} added, allowNegative ${allowNegative}`);
    }
  }
});

test('Quantiles.sketch(true): sets rebuilt from whole sketches (addSketch) summarize as one set fed every sample, in exact and bucket mode', () => {
  const random = mulberry32(23);
  const draw = (n: number): number[] => Array.from({ length: n }, (_, i) => {
    if (i % 997 === 3) return 1e-12;
    if (i % 991 === 5) return -random();
    if (i % 1009 === 7) return Infinity;
    // Wide enough to need more than SKETCH_BUCKETS buckets: a capped sketch would fold the lowest.
    return 1e-7 * 10 ** (random() * 9);
  });
  // Parts within and over SKETCH_EXACT, together within and over the exact cap (65,536), one part in bucket mode.
  const splits: number[][] = [[0], [300, 0, 7], [257, 1000, 40_000], [30_000, 35_536], [30_000, 35_537], [70_000, 10, 5_000]];
  for (const allowNegative of [false, true]) {
    for (const sizes of splits) {
      const parts = sizes.map(draw);
      const direct = new Quantiles(allowNegative);
      for (const v of parts.flat()) direct.add(v);
      const merged = new Quantiles(allowNegative);
      for (const values of parts) {
        const q = new Quantiles(allowNegative);
        for (const v of values) q.add(v);
        // Cloned, as a part crosses to the coordinator's thread.
        merged.addSketch(structuredClone(q.sketch(true)));
      }
      assert.deepEqual(merged.summary(), direct.summary(), `${sizes.join(' + ')}, allowNegative ${allowNegative}`);
      // The capped sketch is not enough past its limits: the test can fail.
      if (sizes.join() === '257,1000,40000') {
        const capped = new Quantiles(allowNegative);
        for (const values of parts) { const q = new Quantiles(allowNegative); for (const v of values) q.add(v); capped.addSketch(q.sketch()); }
        assert.notDeepEqual(capped.summary(), direct.summary());
      }
    }
  }
});
