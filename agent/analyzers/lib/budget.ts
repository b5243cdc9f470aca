/**
 * Table capacities from a memory budget: each table gets `share` of the
 * budget and as many entries as fit in it, so the state of the detectors is
 * sized once at start and never grows. A table's `bytesPerEntry` is the sum
 * over every structure indexed by its ids (KeyTable.bytesPerEntry(width) plus
 * the owner's columns, BucketReducer.bytesPerKey, ...). MB here is 2^20 bytes.
 */

export interface TableShare {
  readonly name: string;
  /** Bytes one entry costs across the table and its columns. */
  readonly bytesPerEntry: number;
  /** Fraction of the budget, 0..1; the shares of one call sum to at most 1. */
  readonly share: number;
}

export interface TableSize {
  readonly name: string;
  /** Entries: floor(budget * share / bytesPerEntry), at least 1. */
  readonly capacity: number;
}

export function sizeTables(budgetMB: number, tables: readonly TableShare[]): TableSize[] {
  if (!(budgetMB > 0)) throw new RangeError(`memory budget ${budgetMB} MB: expected a positive number`);
  let total = 0;
  for (const t of tables) {
    if (!(t.share >= 0)) throw new RangeError(`${t.name}: share ${t.share} is not a fraction >= 0`);
    if (!(t.bytesPerEntry > 0)) throw new RangeError(`${t.name}: bytesPerEntry ${t.bytesPerEntry} is not positive`);
    total += t.share;
  }
  // A little slack for shares like 0.1 * 10 that sum to 1.0000000000000002.
  if (total > 1 + 1e-9) throw new RangeError(`the shares sum to ${total}, more than 1`);
  const bytes = budgetMB * 1024 * 1024;
  return tables.map((t) => ({ name: t.name, capacity: Math.max(1, Math.floor((bytes * t.share) / t.bytesPerEntry)) }));
}
