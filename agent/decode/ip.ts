/**
 * IPv4 (options, fragments, padding trimmed to the total length, TSO's zero
 * length) and IPv6 (extension headers, fragment header), then the transport.
 * IP-in-IP tunnels are followed; the innermost addresses key the flow.
 */
import { Anomaly } from './anomaly.js';
import { u16, u32 } from './bytes.js';
import { IpProto, Proto } from './constants.js';
import { flagAnomaly, type DecodeContext } from './context.js';
import type { Reassembler } from './reassembly.js';
import { decodeTransport } from './transport.js';

export const MAX_TUNNEL_DEPTH = 4;

export function decodeIPv4(ctx: DecodeContext, frags: Reassembler, d: Uint8Array, off: number, end: number): void {
  const view = ctx.view;
  const avail = end - off;
  if (avail < 20) { view.present |= Proto.IP; flagAnomaly(ctx, Anomaly['ip.truncated']); return; }
  const vihl = d[off]!;
  if (vihl >> 4 !== 4) { flagAnomaly(ctx, Anomaly['ip.bad_version']); return; }
  view.present |= Proto.IP;
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) { flagAnomaly(ctx, Anomaly['ip.bad_header_length']); return; }
  let total = u16(d, off + 2);
  if (total === 0) total = avail; // TCP segmentation offload leaves it 0
  if (total < ihl) { flagAnomaly(ctx, Anomaly['ip.bad_total_length']); return; }
  if (avail < ihl) { flagAnomaly(ctx, Anomaly['ip.truncated']); return; }
  const capEnd = total < avail ? off + total : end; // trim link-layer padding
  if (total > avail) view.truncated = true;
  const frag = u16(d, off + 6);
  view.ipVersion = 4;
  view.l3Off = off;
  view.ttl = d[off + 8]!;
  view.ipProto = d[off + 9]!;
  view.ipId = u16(d, off + 4);
  view.src[0] = u32(d, off + 12);
  view.dst[0] = u32(d, off + 16);
  view.src[1] = view.src[2] = view.src[3] = 0;
  view.dst[1] = view.dst[2] = view.dst[3] = 0;
  view.fragOffset = (frag & 0x1fff) * 8;
  view.moreFragments = (frag & 0x2000) !== 0;
  view.ipPayloadLen = total - ihl;
  if (view.moreFragments || view.fragOffset > 0) {
    view.present |= Proto.IP_FRAGMENT;
    fragment(ctx, frags, d, off + ihl, capEnd);
    return;
  }
  payload(ctx, frags, view.ipProto, d, off + ihl, capEnd, total - ihl);
}

/** Extension headers that use the generic (next header, length in 8-byte units) layout. */
const isGenericExtension = (h: number): boolean =>
  h === IpProto.HOPOPT || h === IpProto.ROUTING || h === IpProto.DSTOPTS || h === IpProto.MOBILITY || h === IpProto.HIP || h === IpProto.SHIM6;

export function decodeIPv6(ctx: DecodeContext, frags: Reassembler, d: Uint8Array, off: number, end: number): void {
  const view = ctx.view;
  const avail = end - off;
  if (avail < 40) { view.present |= Proto.IPV6; flagAnomaly(ctx, Anomaly['ipv6.truncated']); return; }
  if (d[off]! >> 4 !== 6) { flagAnomaly(ctx, Anomaly['ip.bad_version']); return; }
  view.present |= Proto.IPV6;
  let payloadLen = u16(d, off + 4);
  if (payloadLen === 0) payloadLen = avail - 40; // jumbogram or TSO
  const capEnd = 40 + payloadLen < avail ? off + 40 + payloadLen : end;
  if (40 + payloadLen > avail) view.truncated = true;
  view.ipVersion = 6;
  view.l3Off = off;
  view.ttl = d[off + 7]!;
  for (let i = 0; i < 4; i++) {
    view.src[i] = u32(d, off + 8 + i * 4);
    view.dst[i] = u32(d, off + 24 + i * 4);
  }
  view.fragOffset = 0;
  view.moreFragments = false;
  let next = d[off + 6]!;
  let p = off + 40;
  const dgramEnd = off + 40 + payloadLen;
  let fragmented = false;
  for (let hops = 0; ; hops++) {
    if (isGenericExtension(next) || next === IpProto.AH) {
      if (capEnd - p < 8 || hops > 16) { flagAnomaly(ctx, Anomaly['ipv6.ext_truncated']); view.ipProto = next; return; }
      const len = next === IpProto.AH ? (d[p + 1]! + 2) * 4 : (d[p + 1]! + 1) * 8;
      next = d[p]!;
      p += len;
      continue;
    }
    if (next === IpProto.FRAGMENT) {
      if (capEnd - p < 8) { flagAnomaly(ctx, Anomaly['ipv6.ext_truncated']); view.ipProto = next; return; }
      const fo = u16(d, p + 2);
      view.fragOffset = fo & 0xfff8;
      view.moreFragments = (fo & 1) !== 0;
      view.ipId = u32(d, p + 4);
      next = d[p]!;
      p += 8;
      // An atomic fragment (offset 0, no more fragments, RFC 6946) is a whole datagram.
      fragmented = view.fragOffset > 0 || view.moreFragments;
      if (fragmented) view.present |= Proto.IPV6_FRAGMENT;
      continue;
    }
    break;
  }
  if (p > dgramEnd) { flagAnomaly(ctx, Anomaly['ipv6.bad_payload_length']); view.ipProto = next; return; }
  view.ipProto = next;
  view.ipPayloadLen = dgramEnd - p;
  if (fragmented) { fragment(ctx, frags, d, p, capEnd); return; }
  payload(ctx, frags, next, d, p, capEnd, dgramEnd - p);
}

function payload(ctx: DecodeContext, frags: Reassembler, proto: number, d: Uint8Array, off: number, capEnd: number, len: number): void {
  if (proto === IpProto.IPIP || proto === IpProto.IPV6) {
    if (++ctx.depth > MAX_TUNNEL_DEPTH) { flagAnomaly(ctx, Anomaly['tunnel.too_deep']); return; }
    if (proto === IpProto.IPIP) decodeIPv4(ctx, frags, d, off, capEnd);
    else decodeIPv6(ctx, frags, d, off, capEnd);
    return;
  }
  if (proto === IpProto.NONE || proto === IpProto.ESP) return;
  decodeTransport(ctx, proto, d, off, capEnd, len);
}

/**
 * A fragment. Whole fragments go to the reassembler, and the transport is
 * decoded from the reassembled head when this one completes the datagram.
 * A fragment cut by the snapshot length cannot be reassembled; like
 * Wireshark, its transport is then decoded only if it is the first one.
 */
function fragment(ctx: DecodeContext, frags: Reassembler, d: Uint8Array, off: number, capEnd: number): void {
  const view = ctx.view;
  const len = view.ipPayloadLen;
  if (capEnd - off < len) {
    if (view.fragOffset === 0) payload(ctx, frags, view.ipProto, d, off, capEnd, len);
    return;
  }
  const total = frags.add(view.ipVersion, view.src, view.dst, view.ipId, view.ipProto, view.ts,
    view.fragOffset, view.moreFragments, d, off, len);
  if (total < 0) return;
  view.reassembled = true;
  payload(ctx, frags, view.ipProto, frags.completed, 0, frags.completedCapLen, total);
}
