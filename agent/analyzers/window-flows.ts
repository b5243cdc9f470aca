/**
 * Helpers shared by the traffic analyzers: a set of flows that had packets
 * in the current window (jitter keeps its UDP one), and the text key of a
 * flow for finding ids.
 */
import type { FlowTable } from '../flow/index.js';
import { describeFlow } from '../flow/index.js';

/** The set of flows seen in a window (the window flow accounting's, for analyzers that keep their own subset). */
export { WindowFlowSet } from '../window/flow-accounting.js';

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
