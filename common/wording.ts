/**
 * Counts and durations in sentences, shared by the analyzers' finding
 * summaries and the text and HTML reports, so none of them says "1 bursts"
 * or "after 0.0 ms".
 */

const THOUSANDS = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** The noun for `n` of it: the singular only for exactly 1 ("0 flows", "1 flow", "1.5 flows"). */
export function noun(n: number, singular: string, pluralForm = `${singular}s`): string {
  return n === 1 ? singular : pluralForm;
}

/**
 * `n` with its noun: "1 burst", "3 bursts", "1200 queries" (`plural(n, 'query', 'queries')`).
 * The number as it is, like the other numbers of a finding's summary; a report that
 * separates thousands writes `${num(n)} ${noun(n, ...)}`.
 */
export function plural(n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${n} ${noun(n, singular, pluralForm)}`;
}

/** Up to 3 significant digits, no trailing zeros; whole numbers from 100 up ("0.0312", "12.3", "456"). */
function significant(x: number): string {
  return Math.abs(x) >= 100 ? THOUSANDS.format(x) : String(Number(x.toPrecision(3)));
}

/**
 * A duration given in seconds, in the unit that shows it best: µs below a
 * millisecond, ms below a second, else s ("31 µs", "4.25 ms", "1.5 s",
 * "3,600 s"); "0 s" for zero. Never rounds a nonzero duration to zero.
 */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  if (seconds === 0) return '0 s';
  // The unit of the rounded value: 999.7 µs is "1 ms", not "1,000 µs".
  const a = Math.abs(Math.abs(seconds) >= 1 ? seconds : Number(seconds.toPrecision(3)));
  if (a < 1e-3) return `${significant(seconds * 1e6)} µs`;
  if (a < 1) return `${significant(seconds * 1e3)} ms`;
  return `${significant(seconds)} s`;
}
