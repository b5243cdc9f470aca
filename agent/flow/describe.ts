/** Turns a live flow-table slot into the addresses and ports reports show. */
import { formatAddress } from '../../common/address.js';
import type { FlowRef } from '../../common/report.js';
import type { FlowTable } from './flow-table.js';

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? `ip.proto.${proto}`;
}

export function describeFlow(t: FlowTable, slot: number): FlowRef {
  const version = t.version[slot]!;
  return {
    proto: protoName(t.proto[slot]!),
    client: formatAddress(version, t.clientAddr(slot)),
    clientPort: t.clientPort(slot),
    server: formatAddress(version, t.serverAddr(slot)),
    serverPort: t.serverPort(slot),
  };
}
