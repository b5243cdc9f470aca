/**
 * Link layers: Ethernet (with 802.1Q/802.1ad/QinQ tags, PPPoE and MPLS),
 * Linux cooked v1 and v2, raw IP, BSD loopback. Each returns the offset of the
 * network header and leaves its EtherType in `out.etherType` (0 = not IP or unknown).
 */
import { Anomaly } from './anomaly.js';
import { u16, u32 } from './bytes.js';
import { EtherType, Proto } from './constants.js';
import { flagAnomaly, type DecodeContext } from './context.js';

export interface LinkResult { etherType: number }

/** Stacked tags beyond this are treated as malformed (Zeek and Wireshark have no limit; hostile frames could loop). */
export const MAX_TAGS = 8;

export function decodeEthernet(ctx: DecodeContext, d: Uint8Array, off: number, end: number, out: LinkResult): number {
  if (end - off < 14) { flagAnomaly(ctx, Anomaly['eth.truncated']); out.etherType = 0; return end; }
  ctx.view.present |= Proto.ETH;
  return decodeEtherTypeChain(ctx, d, u16(d, off + 12), off + 14, end, out);
}

/** LINKTYPE_LINUX_SLL (113): 16-byte header, protocol type in its last two bytes. */
export function decodeSll(ctx: DecodeContext, d: Uint8Array, off: number, end: number, out: LinkResult): number {
  if (end - off < 16) { flagAnomaly(ctx, Anomaly['sll.truncated']); out.etherType = 0; return end; }
  ctx.view.present |= Proto.SLL;
  return decodeEtherTypeChain(ctx, d, u16(d, off + 14), off + 16, end, out);
}

/** LINKTYPE_LINUX_SLL2 (276): 20-byte header, protocol type first. */
export function decodeSll2(ctx: DecodeContext, d: Uint8Array, off: number, end: number, out: LinkResult): number {
  if (end - off < 20) { flagAnomaly(ctx, Anomaly['sll.truncated']); out.etherType = 0; return end; }
  ctx.view.present |= Proto.SLL;
  return decodeEtherTypeChain(ctx, d, u16(d, off), off + 20, end, out);
}

/** Follows VLAN tags, PPPoE and MPLS, given an EtherType and the offset of what it describes. */
function decodeEtherTypeChain(ctx: DecodeContext, d: Uint8Array, etherType: number, payloadOff: number, end: number, out: LinkResult): number {
  const view = ctx.view;
  let type = etherType;
  let off = payloadOff;
  for (let tags = 0; type === EtherType.VLAN || type === EtherType.QINQ || type === EtherType.QINQ_OLD; tags++) {
    if (end - off < 4 || tags === MAX_TAGS) { flagAnomaly(ctx, Anomaly['vlan.truncated']); out.etherType = 0; return end; }
    view.present |= Proto.VLAN;
    if (view.vlan < 0) view.vlan = u16(d, off) & 0x0fff;
    type = u16(d, off + 2);
    off += 4;
  }
  if (type === EtherType.PPPOE_SESSION) {
    if (end - off < 8) { flagAnomaly(ctx, Anomaly['pppoe.truncated']); out.etherType = 0; return end; }
    view.present |= Proto.PPPOE;
    const ppp = u16(d, off + 6);
    off += 8;
    type = ppp === 0x0021 ? EtherType.IPV4 : ppp === 0x0057 ? EtherType.IPV6 : 0;
  } else if (type === EtherType.MPLS || type === EtherType.MPLS_MULTICAST) {
    view.present |= Proto.MPLS;
    for (let labels = 0; ; labels++) {
      if (end - off < 4 || labels === MAX_TAGS) { flagAnomaly(ctx, Anomaly['mpls.truncated']); out.etherType = 0; return end; }
      const bottom = (d[off + 2]! & 0x01) !== 0;
      off += 4;
      if (bottom) break;
    }
    type = ipVersionType(d, off, end); // no type field below MPLS: guess from the version nibble, as Wireshark does
  }
  if (type === EtherType.ARP) view.present |= Proto.ARP;
  out.etherType = type;
  return off;
}

function ipVersionType(d: Uint8Array, off: number, end: number): number {
  const version = off < end ? d[off]! >> 4 : 0;
  return version === 4 ? EtherType.IPV4 : version === 6 ? EtherType.IPV6 : 0;
}

/** Raw IP (101, 12, 14, 228, 229): the version nibble says which. */
export function decodeRaw(d: Uint8Array, off: number, end: number, out: LinkResult): number {
  out.etherType = ipVersionType(d, off, end);
  return off;
}

/**
 * BSD loopback: NULL (0) has the address family in the capturing host's byte
 * order (either), LOOP (108) in network order. AF_INET is 2 everywhere;
 * AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
 */
export function decodeNull(ctx: DecodeContext, d: Uint8Array, off: number, end: number, networkOrder: boolean, out: LinkResult): number {
  if (end - off < 4) { flagAnomaly(ctx, Anomaly['null.truncated']); out.etherType = 0; return end; }
  ctx.view.present |= Proto.NULL;
  const bigEndian = u32(d, off);
  const family = networkOrder || bigEndian <= 0xffff ? bigEndian : (d[off]! | (d[off + 1]! << 8));
  out.etherType = family === 2 ? EtherType.IPV4
    : family === 10 || family === 24 || family === 28 || family === 30 ? EtherType.IPV6 : 0;
  return off + 4;
}
