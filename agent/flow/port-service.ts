/** The IANA service name of a flow's server port (port-services.ts, generated from /etc/services). */
import { Transport } from '../decode/constants.js';
import { SERVICE_NAMES, TCP_NAME_IDS, TCP_PORTS, UDP_NAME_IDS, UDP_PORTS } from './port-services.js';

/** The service name registered for `port` over IP protocol `proto` (6 TCP, 17 UDP), or undefined. */
export function portServiceName(proto: number, port: number): string | undefined {
  let ports: Uint16Array;
  let ids: Uint16Array;
  if (proto === Transport.TCP) { ports = TCP_PORTS; ids = TCP_NAME_IDS; } else if (proto === Transport.UDP) { ports = UDP_PORTS; ids = UDP_NAME_IDS; } else return undefined;
  let lo = 0;
  let hi = ports.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = ports[mid]!;
    if (p === port) return SERVICE_NAMES[ids[mid]!];
    if (p < port) lo = mid + 1; else hi = mid - 1;
  }
  return undefined;
}
