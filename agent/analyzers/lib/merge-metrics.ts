/**
 * Merging helpers for analyzers' `mergeWindow` (flow-sharded workers).
 */
import type { Metrics } from '../../core/window-types.js';

/**
 * Workers' metrics added up, for metrics that are counts (numbers add; nested
 * objects are merged key by key, keys in the order the first worker that has
 * them gives them, then the next worker's new keys; `null` stays null unless a
 * worker has a number). Anything else (strings, arrays, ratios, maxima) is not
 * a sum: merge those fields yourself after this.
 */
export function sumMetrics(parts: readonly Metrics[]): Metrics {
  const out: Metrics = {};
  for (const p of parts) addInto(out, p);
  return out;
}

function addInto(out: Record<string, unknown>, add: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(add)) {
    const have = out[k];
    if (typeof v === 'number') out[k] = typeof have === 'number' ? have + v : v;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const target = have !== null && typeof have === 'object' && !Array.isArray(have) ? have as Record<string, unknown> : (out[k] = {}) as Record<string, unknown>;
      addInto(target, v as Record<string, unknown>);
    } else if (!(k in out)) out[k] = v;
  }
}

/** The largest of the workers' values of a field (null when none has a number). */
export function maxOf(parts: readonly Metrics[], read: (m: Metrics) => unknown): number | null {
  let best: number | null = null;
  for (const p of parts) {
    const v = read(p);
    if (typeof v === 'number' && (best === null || v > best)) best = v;
  }
  return best;
}
