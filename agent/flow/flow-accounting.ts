/**
 * Window flow accounting: which flows had packets in the current window, and
 * how many packets and bytes each sent per direction in it, read from the flow
 * table's whole-life counters (`flows.packets` / `flows.bytes`, slot * 2 +
 * dir) instead of being counted again per packet by every analyzer.
 *
 * A flow's window figures are its counters minus a per-slot snapshot taken
 * when its counters were last read: zero at the flow's start, and the
 * counters at each window close where the flow was active (a flow with no
 * packet since keeps them unchanged, so the snapshot stays exact). They are
 * valid while the flow is in the window's set: at window close, and in
 * `onFlowEnd` hooks for a flow that ends during the window (the pipeline
 * takes it out of the set after every analyzer's hook, since its slot may
 * then be reused).
 *
 * The set keeps insertion order, with a removed member replaced by the last
 * one (O(1), no allocation): analyzers that list flows at close walk it in
 * that order, so their ties stay deterministic.
 *
 * Also the window's packet and byte totals (every frame, with or without a flow).
 * Memory: two Float64 per direction (snapshot) and two Int32 per slot (set).
 */
import type { FlowTable } from './flow-table.js';

/**
 * Flow-table slots seen in the current window: O(1) add and remove, no
 * allocation, members in insertion order (a removed member's place is taken
 * by the last one).
 */
export class WindowFlowSet {
  /** Members (the first `size` entries). */
  readonly slots: Int32Array;
  private readonly pos: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.slots = new Int32Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
  }

  has(slot: number): boolean { return this.pos[slot] !== -1; }

  /** Adds a slot; true when it was not a member yet (the flow's first packet in the window). */
  add(slot: number): boolean {
    if (this.pos[slot] !== -1) return false;
    this.pos[slot] = this.size;
    this.slots[this.size++] = slot;
    return true;
  }

  /** Removes a slot; true when it was a member. */
  remove(slot: number): boolean {
    const p = this.pos[slot]!;
    if (p === -1) return false;
    const last = this.slots[--this.size]!;
    this.slots[p] = last;
    this.pos[last] = p;
    this.pos[slot] = -1;
    return true;
  }

  clear(): void {
    for (let i = 0; i < this.size; i++) this.pos[this.slots[i]!] = -1;
    this.size = 0;
  }
}

export class WindowFlowAccounting {
  /** Flows with packets in the current window (flows that ended during it are no longer members). */
  readonly active: WindowFlowSet;
  /** Frames in the current window, with or without a flow, and their wire lengths. */
  packets = 0;
  bytes = 0;
  /** Flows that had packets in the current window, including those that ended. */
  flowCount = 0;
  // per direction (slot * 2 + dir): the flow table's counters when last read
  private readonly basePackets: Float64Array;
  private readonly baseBytes: Float64Array;

  constructor(private readonly flows: FlowTable) {
    this.active = new WindowFlowSet(flows.capacity);
    this.basePackets = new Float64Array(flows.capacity * 2);
    this.baseBytes = new Float64Array(flows.capacity * 2);
  }

  /** Packets of flow `slot` in direction `dir` in the current window (the flow must be in `active`). */
  packetsIn(slot: number, dir: number): number {
    const i = slot * 2 + dir;
    return this.flows.packets[i]! - this.basePackets[i]!;
  }

  bytesIn(slot: number, dir: number): number {
    const i = slot * 2 + dir;
    return this.flows.bytes[i]! - this.baseBytes[i]!;
  }

  flowStarted(slot: number): void {
    const i = slot * 2;
    this.basePackets[i] = this.basePackets[i + 1] = 0;
    this.baseBytes[i] = this.baseBytes[i + 1] = 0;
  }

  /** A frame of the window, after the flow table counted it; true when it is its flow's first in the window. */
  packet(wireLen: number, slot: number): boolean {
    this.packets++;
    this.bytes += wireLen;
    if (slot < 0 || !this.active.add(slot)) return false;
    this.flowCount++;
    return true;
  }

  /** After every analyzer's onFlowEnd: the slot may be reused from now on. */
  flowEnded(slot: number): void {
    this.active.remove(slot);
  }

  /** After every analyzer closed the window: the counters read become the snapshot. */
  windowClosed(): void {
    const set = this.active;
    const flows = this.flows;
    for (let k = 0; k < set.size; k++) {
      const i = set.slots[k]! * 2;
      this.basePackets[i] = flows.packets[i]!;
      this.basePackets[i + 1] = flows.packets[i + 1]!;
      this.baseBytes[i] = flows.bytes[i]!;
      this.baseBytes[i + 1] = flows.bytes[i + 1]!;
    }
    set.clear();
    this.packets = this.bytes = this.flowCount = 0;
  }
}
