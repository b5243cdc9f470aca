/** Turns a flow (a live flow-table slot, or its kept figures) into the addresses and ports reports show. */
import { endpoint, formatAddress } from '../../common/address.js';
import type { FlowRef } from '../../common/report.js';
import type { FlowTable } from './flow-table.js';
import { NAME_SOURCE_NAMES, type FlowNames } from './flow-names.js';
import { portServiceName } from './port-service.js';

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

/**
 * A connection's identity in finding keys: its endpoints and its first packet's
 * time (port reuse makes a new flow, with a later first packet). Not its
 * tcp.stream number, which counts every flow before it: with flow-sharded
 * workers no worker knows it when the finding is made, and the key (so the
 * finding id) must not depend on how many workers ran.
 */
export function connectionKey(t: FlowTable, slot: number): string {
  const f = describeFlow(t, slot);
  return `${endpoint(f.client, f.clientPort)}-${endpoint(f.server, f.serverPort)}@${t.firstTs[slot]!}`;
}

/**
 * Adds a flow's service to its description: `service` is the name the
 * traffic proved (`serverName`, from `serverNameSource`: tls.sni, http.host or
 * dns) else the IANA name of the server port; absent when neither is known.
 */
export function withService<T extends FlowRef>(f: T, proto: number, serverName: string | undefined, source: number): T {
  const service = serverName ?? portServiceName(proto, f.serverPort);
  if (service !== undefined) f.service = service;
  if (serverName !== undefined) {
    f.serverName = serverName;
    f.serverNameSource = NAME_SOURCE_NAMES[source] ?? 'none';
  }
  return f;
}

/** A finding's flow: the slot described with its service (the proved name `names` holds for it, else the port's). */
export function describeFlowWithService(t: FlowTable, slot: number, names: FlowNames | undefined): FlowRef {
  return withService(describeFlow(t, slot), t.proto[slot]!, names?.nameOf(slot), names?.sourceOf(slot) ?? 0);
}
