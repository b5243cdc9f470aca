/** Turns a flow (a live flow-table slot, or its kept figures) into the addresses and ports reports show. */
import { formatAddress } from '../../common/address.js';
import type { FlowRef } from '../../common/report.js';
import type { FlowTable } from './flow-table.js';

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? `ip.proto.${proto}`;
}

export function describeFlow(t: FlowTable, slot: number): FlowRef {
  return flowRef(t.proto[slot]!, t.version[slot]!, t.clientAddr(slot), t.clientPort(slot), t.serverAddr(slot), t.serverPort(slot));
}

/** The same, from figures kept after the flow left the table (address words as the table holds them). */
export function flowRef(proto: number, version: number, client: Uint32Array, clientPort: number, server: Uint32Array, serverPort: number): FlowRef {
  return {
    proto: protoName(proto),
    client: formatAddress(version, client),
    clientPort,
    server: formatAddress(version, server),
    serverPort,
  };
}
