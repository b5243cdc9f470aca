/**
 * One memory budget (`memory.budgetMB`) from which the detectors' key tables
 * are sized at start, so the analysis stays within it whatever the traffic:
 * a table never grows, it evicts (counted). A fixed part is kept for Node
 * itself, the flow table, the reader's buffers and the report; the rest is
 * shared equally by the detectors, each splitting its part among its tables.
 * A detector asks once per table, at construction, with the bytes one key
 * costs it; `analyzers.<id>.maxKeys` caps the answer.
 */

/**
 * MB kept for Node's own heap and code (about 55 MB, with a second isolate for
 * the agent's capture thread), the flow table with its per-flow analyzer state
 * (35 MB at 65,536 flows), the ended-conversations table (1.3 MB at 16,384
 * entries), the DNS and TCP segment pools (16 MB), reader buffers and reports:
 * with it the agent's RSS stays within the budget (`npm run soak`, RSS after a
 * full collection: 193-195 MiB at the default 200; `analyze` at 10 M distinct
 * flows peaks at 188 MiB).
 */
export const RESERVED_MB = 148;
/** Detectors the rest is shared by, equally; a detector with several tables splits its part among them (`share`). */
export const DETECTORS = 7;
/** The least capacity `keys` grants, and what a table its instance never fills allocates (`idleKeys`). */
const IDLE_KEYS = 16;

export interface TableGrant {
  table: string;
  capacity: number;
  bytesPerKey: number;
  bytes: number;
}

export class MemoryBudget {
  /** Bytes each detector may use, over all its tables. */
  readonly bytesPerDetector: number;
  private readonly grants: TableGrant[] = [];

  constructor(readonly budgetMB: number) {
    this.bytesPerDetector = Math.max(0, budgetMB - RESERVED_MB) * 1024 * 1024 / DETECTORS;
  }

  /**
   * Keys a table may hold at `bytesPerKey` each, in `share` (0..1) of its
   * detector's part (at least 16), at most `maxKeys` (the configured cap wins,
   * at least 1); recorded for `grantsMade`.
   */
  keys(table: string, bytesPerKey: number, maxKeys = Infinity, share = 1): number {
    const capacity = Math.min(Math.max(1, maxKeys), Math.max(IDLE_KEYS, Math.floor(this.bytesPerDetector * share / Math.max(1, bytesPerKey))));
    this.grants.push({ table, capacity, bytesPerKey, bytes: capacity * bytesPerKey });
    return capacity;
  }

  /** What was granted so far, in the order asked. */
  get grantsMade(): readonly TableGrant[] { return this.grants; }
}

/**
 * Keys a table holds that its instance never fills (a flow-sharded
 * coordinator's instance of a detector judging in the workers): it allocates
 * this many (at most the grant), and reports the grant as its maxKeys.
 */
export function idleKeys(granted: number): number {
  return Math.min(granted, IDLE_KEYS);
}
