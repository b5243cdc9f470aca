/**
 * Ethernet frames and pcap records for crafted test captures: times in
 * microseconds after T0 (window-aligned: a multiple of 10 s and of the
 * decoder's 10^6 s time base, so offsets are exact packet times).
 */
import { EtherTypes, Proto, ethernet, ipv4, ipv6, tcp, udp, type PcapRecordSpec, type TcpSpec } from './capture-writer.js';

export const T0 = 1_700_000_000;
export const MAC_A = '02:00:00:00:00:01';
export const MAC_B = '02:00:00:00:00:02';

/** A record `us` microseconds after T0. */
export const at = (us: number, data: Buffer): PcapRecordSpec => ({ tsSec: T0 + Math.floor(us / 1e6), tsSub: us % 1e6, data });

export const udp4 = (src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, payload }) }));
export const udp6 = (src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV6, ipv6({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, payload }) }));
export const tcp4 = (src: string, sport: number, dst: string, dport: number, spec: Partial<TcpSpec>): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.TCP, payload: tcp({ srcPort: sport, dstPort: dport, ...spec }) }));
