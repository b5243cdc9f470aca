/**
 * What the window stage and the analyzers share, kept below both so that
 * neither imports the other: the window span, a finding as an analyzer
 * drafts it, window metrics, and what the window engine calls on each
 * analyzer.
 */
import type { FindingSeverity, FindingType, FlowRef, RangeInputs } from '../../common/report.js';

/** A window of packet time: [start, end) in seconds since the epoch, and the same in packet time (since clock.base). */
export interface WindowSpan {
  index: number;
  start: number;
  end: number;
  relStart: number;
  relEnd: number;
}

/** What an analyzer reports; the window engine adds the window and the stable id. */
export interface FindingDraft {
  type: FindingType;
  severity: FindingSeverity;
  /** What makes this finding itself (with its type and window it gives the id), e.g. a flow or host. */
  key: string;
  summary: string;
  evidence: Record<string, number | string | boolean | null>;
  /** The flow it is about, as a live flow-table slot (resolved to addresses when reported). */
  flowSlot?: number;
  /**
   * The flow it is about, already described (with its service, as the window
   * engine describes `flowSlot`): for a finding reported after its flow's slot
   * was reused, or by a coordinator of flow-sharded workers, which has no flow table.
   */
  flow?: FlowRef;
  host?: string;
  /**
   * Among findings reported at the same point of the input (one packet, or a
   * window's close), lower ranks are listed and kept first under
   * report.maxFindingsPerType (then the id decides): for an analyzer that
   * reports its worst first. Default 0.
   */
  rank?: number;
  /**
   * Where in the input the finding belongs (see WindowEngine.order), when it
   * is reported later than that: an analyzer choosing among a window's
   * candidates at its close, or a coordinator of flow-sharded workers
   * reporting at the place a worker saw. Default: now. Findings of one type
   * must still come in non-decreasing order.
   */
  order?: number;
}

export type Metrics = Record<string, unknown>;

/** What the window engine needs of an analyzer: its id and its window hooks. */
export interface WindowParticipant {
  /** Key of its metrics in window summaries. */
  readonly id: string;
  /** End of input, before the last window closes: report states still open. */
  finish?(span: WindowSpan): void;
  /** Closes a window: returns its metrics and resets per-window state. `earlier` holds metrics of analyzers that ran before. */
  closeWindow(span: WindowSpan, earlier: Readonly<Record<string, Metrics>>): Metrics;
  /**
   * After every participant closed the window: its part of the window's RangeInputs (distributions
   * as sketches, health inputs). Before the first window it gives empty sketches, so their names are known.
   */
  rangeInputs?(): Partial<RangeInputs>;
}
