/**
 * The report of every shared capture, field for field, equals the golden file
 * written before the analyzer engine was rebuilt (test/golden/, see
 * helpers/golden.ts). Every intended difference is named below with its cause
 * and applied to both sides before comparing; nothing else may change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Report } from '../common/report.js';
import { goldenCases, goldenReport, readGolden } from './helpers/golden.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A named change: what differs, why, and how it is taken out of both sides before comparing. */
interface IntendedDifference {
  what: string;
  why: string;
  apply(report: Report): void;
}

export const INTENDED: IntendedDifference[] = [
  // flood
  {
    what: 'windows[*].metrics.flood.maxKeys',
    why: 'flood sizes its destination table from memory.budgetMB (capped by analyzers.flood.maxKeys) at start; the metric is the capacity granted, no longer the configured cap',
    apply(report) {
      for (const w of report.windows) delete (w.metrics['flood'] as Record<string, unknown> | undefined)?.['maxKeys'];
    },
  },
];

/** Paths where two JSON values differ (at most `limit`). */
function differences(a: Json, b: Json, path = '', out: string[] = [], limit = 20): string[] {
  if (out.length >= limit) return out;
  if (a === b) return out;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
    out.push(`${path || '.'}: golden ${JSON.stringify(a)?.slice(0, 200)} now ${JSON.stringify(b)?.slice(0, 200)}`);
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(`${path}: golden ${a.length} items, now ${b.length}`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) differences(a[i]!, b[i]!, `${path}[${i}]`, out, limit);
    return out;
  }
  const ao = a as Record<string, Json>;
  const bo = b as Record<string, Json>;
  for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
    if (!(k in ao)) out.push(`${path}.${k}: new, ${JSON.stringify(bo[k])?.slice(0, 200)}`);
    else if (!(k in bo)) out.push(`${path}.${k}: missing, golden ${JSON.stringify(ao[k])?.slice(0, 200)}`);
    else differences(ao[k]!, bo[k]!, `${path}.${k}`, out, limit);
    if (out.length >= limit) break;
  }
  return out;
}

for (const c of goldenCases()) {
  test(`report unchanged: ${c.name}`, async () => {
    const golden = readGolden(c.name);
    const now = await goldenReport(c);
    for (const d of INTENDED) { d.apply(golden); d.apply(now); }
    const diff = differences(golden as unknown as Json, now as unknown as Json);
    assert.deepEqual(diff, [], `${c.name} differs from its golden report:\n${diff.join('\n')}`);
  });
}
