/**
 * Helpers shared by the traffic analyzers (jitter, throughput, asymmetry):
 * the set of flows that had packets in the current window, and the text key
 * of a flow for finding ids.
 */
import type { FlowTable } from '../flow/index.js';
import { describeFlow } from '../flow/index.js';

/**
 * Flow-table slots seen in the current window: O(1) add and remove, no
 * allocation. Analyzers that judge flows at window close walk only these (not
 * the whole table), and take a flow out when it ends mid-window, because its
 * slot may then be reused by another flow.
 */
export class WindowFlowSet {
  /** Members in insertion order (the first `size` entries). */
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

/** `udp 192.0.2.1:5000 -> 192.0.2.2:53`: a live flow as text, for finding keys (allocates: off the per-packet path only). */
export function flowKey(flows: FlowTable, slot: number): string {
  const f = describeFlow(flows, slot);
  return `${f.proto} ${endpoint(f.client, f.clientPort)} -> ${endpoint(f.server, f.serverPort)}`;
}

export const endpoint = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

export const DIR_NAMES = ['client_to_server', 'server_to_client'] as const;

/** Nanosecond rounding keeps JSON stable and free of float noise. */
export const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;
export const round3 = (x: number): number => Math.round(x * 1e3) / 1e3;
