/**
 * Helpers shared by the traffic analyzers: a set of flows that had packets
 * in the current window (jitter keeps its UDP one), and the text key of a
 * flow for finding ids.
 */
import type { FlowTable } from '../flow/index.js';
import { describeFlow } from '../flow/index.js';

/** The set of flows seen in a window (the window flow accounting's, for analyzers that keep their own subset). */
export { WindowFlowSet } from '../flow/flow-accounting.js';

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

/**
 * The `top` indices of 0..n-1 with the largest values, largest first, ties by
 * the lower `tie` (by default the lower index: what a stable sort by value,
 * then taking the first `top`, gives). Kept in a small sorted list, so a
 * window close costs O(n) for the usual few candidates instead of sorting
 * them all.
 */
const SELECT_MAX = 64;

export function topIndices(n: number, top: number, value: (i: number) => number, tie?: (i: number) => number): number[] {
  const out: number[] = [];
  if (top <= 0) return out;
  const rank = tie ?? ((i: number): number => i);
  if (top > SELECT_MAX) {
    // A long list: insertion would cost O(n * top) when values come in ascending order.
    for (let i = 0; i < n; i++) out.push(i);
    return out.sort((a, b) => value(b) - value(a) || rank(a) - rank(b)).slice(0, top);
  }
  /** Candidate i (of value v) goes before listed j. */
  const before = (i: number, v: number, j: number): boolean => {
    const w = value(j);
    return v > w || (v === w && rank(i) < rank(j));
  };
  for (let i = 0; i < n; i++) {
    const v = value(i);
    if (out.length === top && !before(i, v, out[top - 1]!)) continue;
    let at = out.length === top ? top - 1 : out.length;
    while (at > 0 && before(i, v, out[at - 1]!)) at--;
    out.splice(at, 0, i);
    if (out.length > top) out.pop();
  }
  return out;
}
