/**
 * Transport headers: TCP (with MSS, window scale, SACK and timestamp options),
 * UDP, ICMP and ICMPv6 (type/code, echo ids, MTU, and the IP header quoted by
 * an error message), and the hand-off to DNS.
 *
 * `capEnd` is the end of the captured bytes; `len` the transport length the IP
 * header announces. They differ when the snapshot length cut the packet.
 */
import { Anomaly } from './anomaly.js';
import { u16, u32 } from './bytes.js';
import { DNS_PORT, IpProto, LLMNR_PORT, MDNS_PORT, Proto, Transport } from './constants.js';
import { flagAnomaly, type DecodeContext } from './context.js';
import { decodeDns } from './dns.js';

export function decodeTransport(ctx: DecodeContext, proto: number, d: Uint8Array, off: number, capEnd: number, len: number): void {
  const view = ctx.view;
  view.l4Data = d;
  view.l4Off = off;
  switch (proto) {
    case IpProto.TCP: decodeTcp(ctx, d, off, capEnd, len); return;
    case IpProto.UDP: decodeUdp(ctx, d, off, capEnd, len); return;
    case IpProto.ICMP: decodeIcmp(ctx, d, off, capEnd, len, false); return;
    case IpProto.ICMPV6: decodeIcmp(ctx, d, off, capEnd, len, true); return;
    default: view.transport = Transport.OTHER_IP;
  }
}

function decodeTcp(ctx: DecodeContext, d: Uint8Array, off: number, capEnd: number, len: number): void {
  const view = ctx.view;
  const avail = capEnd - off;
  if (avail < 4) { flagAnomaly(ctx, Anomaly['tcp.truncated']); return; }
  view.present |= Proto.TCP;
  view.srcPort = u16(d, off);
  view.dstPort = u16(d, off + 2);
  if (avail < 20) { flagAnomaly(ctx, Anomaly['tcp.truncated']); return; }
  const hl = (d[off + 12]! >> 4) * 4;
  if (hl < 20 || hl > len) { flagAnomaly(ctx, Anomaly['tcp.bad_data_offset']); return; }
  view.transport = Transport.TCP;
  view.seq = u32(d, off + 4);
  view.ack = u32(d, off + 8);
  view.tcpFlags = ((d[off + 12]! & 0x01) << 8) | d[off + 13]!;
  markTcpFlags(view, view.tcpFlags);
  view.window = u16(d, off + 14);
  view.urgent = u16(d, off + 18);
  view.tcpHeaderLen = hl;
  view.payloadOff = off + hl;
  view.payloadLen = len - hl;
  const payloadCapLen = Math.max(0, Math.min(capEnd, off + len) - off - hl);
  view.payloadCapLen = payloadCapLen;
  if (hl > 20) decodeTcpOptions(ctx, d, off + 20, Math.min(off + hl, capEnd), off + hl > capEnd);
  const sp = view.srcPort;
  const dp = view.dstPort;
  // Tested on every segment, not only on DNS ports (rare): see markTcpFlags.
  const twoBytes = payloadCapLen >= 2;
  if ((sp === DNS_PORT || dp === DNS_PORT || sp === MDNS_PORT || dp === MDNS_PORT) && twoBytes) {
    // DNS over TCP: a 2-byte length, then the message. Only messages whole in this segment are decoded.
    const p = view.payloadOff;
    const msgLen = u16(d, p);
    if (msgLen >= 12 && msgLen + 2 <= view.payloadLen) decodeDns(ctx, d, p + 2, capEnd, msgLen, true);
  }
}

function decodeTcpOptions(ctx: DecodeContext, d: Uint8Array, start: number, end: number, cut: boolean): void {
  const view = ctx.view;
  let o = start;
  while (o < end) {
    const kind = d[o]!;
    if (kind === 0) return; // end of option list
    if (kind === 1) { o++; continue; } // NOP
    if (o + 1 >= end) { flagAnomaly(ctx, Anomaly['tcp.options_truncated']); return; }
    const olen = d[o + 1]!;
    if (olen < 2 || o + olen > end) { flagAnomaly(ctx, Anomaly['tcp.options_truncated']); return; }
    switch (kind) {
      case 2: if (olen === 4) view.mss = u16(d, o + 2); break;
      case 3: if (olen === 3) view.wscale = d[o + 2]!; break;
      case 4: view.sackPermitted = true; break;
      case 5: {
        const blocks = Math.min(4, (olen - 2) >> 3);
        for (let i = 0; i < blocks; i++) {
          view.sack[i * 2] = u32(d, o + 2 + i * 8);
          view.sack[i * 2 + 1] = u32(d, o + 6 + i * 8);
        }
        view.sackCount = blocks;
        break;
      }
      case 8: if (olen === 10) { view.tsVal = u32(d, o + 2); view.tsEcr = u32(d, o + 6); } break;
      default: break;
    }
    o += olen;
  }
  if (cut) flagAnomaly(ctx, Anomaly['tcp.options_truncated']);
}

function decodeUdp(ctx: DecodeContext, d: Uint8Array, off: number, capEnd: number, len: number): void {
  const view = ctx.view;
  if (capEnd - off < 8) { flagAnomaly(ctx, Anomaly['udp.truncated']); return; }
  view.present |= Proto.UDP;
  view.srcPort = u16(d, off);
  view.dstPort = u16(d, off + 2);
  let udpLen = u16(d, off + 4);
  // Wireshark reads a length of 0 over IPv6 as a jumbogram's (RFC 2675), whatever the payload's size: the IP
  // payload's length is the datagram's.
  const jumbo = udpLen === 0 && view.ipVersion === 6 && len >= 8;
  if (udpLen < 8 && !jumbo) {
    // Wireshark's UDP dissector stops here: the datagram is in no conversation (no udp.stream, even when one exists
    // for its ports) and its payload is not dissected. Without a transport it opens or joins no flow here either.
    flagAnomaly(ctx, Anomaly['udp.bad_length']);
    return;
  }
  view.transport = Transport.UDP;
  if (udpLen < 8 || udpLen > len) {
    // Past the IP payload (or a jumbogram's 0): Wireshark flags the length and dissects what the IP header allows.
    if (!jumbo || len <= 0xffff) flagAnomaly(ctx, Anomaly['udp.bad_length']); // a 0 before less than 64 KiB is still one
    udpLen = len;
  }
  view.payloadOff = off + 8;
  view.payloadLen = udpLen - 8;
  view.payloadCapLen = Math.max(0, Math.min(capEnd, off + udpLen) - off - 8);
  const sp = view.srcPort;
  const dp = view.dstPort;
  if (sp === DNS_PORT || dp === DNS_PORT) decodeDns(ctx, d, off + 8, capEnd, view.payloadLen, true);
  else if (sp === MDNS_PORT || dp === MDNS_PORT || sp === LLMNR_PORT || dp === LLMNR_PORT) decodeDns(ctx, d, off + 8, capEnd, view.payloadLen, true, false);
}

/** ICMPv4 types that quote the offending datagram (RFC 792): unreachable, source quench, redirect, time exceeded, parameter problem. */
export const isIcmpError = (type: number): boolean => type === 3 || type === 4 || type === 5 || type === 11 || type === 12;

function decodeIcmp(ctx: DecodeContext, d: Uint8Array, off: number, capEnd: number, len: number, v6: boolean): void {
  const view = ctx.view;
  if (capEnd - off < 4) { flagAnomaly(ctx, v6 ? Anomaly['icmpv6.truncated'] : Anomaly['icmp.truncated']); return; }
  view.present |= v6 ? Proto.ICMPV6 : Proto.ICMP;
  view.transport = v6 ? Transport.ICMPV6 : Transport.ICMP;
  const type = d[off]!;
  view.icmpType = type;
  view.icmpCode = d[off + 1]!;
  view.payloadOff = off + 8;
  view.payloadLen = Math.max(0, len - 8);
  view.payloadCapLen = Math.max(0, Math.min(capEnd, off + len) - off - 8);
  if (capEnd - off < 8) return;
  const error = v6 ? type >= 1 && type <= 4 : isIcmpError(type);
  if (!error) {
    view.icmpId = u16(d, off + 4);
    view.icmpSeq = u16(d, off + 6);
    return;
  }
  if (v6 ? type === 2 : type === 3 && view.icmpCode === 4) view.icmpMtu = v6 ? u32(d, off + 4) : u16(d, off + 6);
  // Wireshark cuts a redirect's quote to the IP header and 8 bytes; other errors quote what they carry.
  decodeQuoted(ctx, d, off + 8, Math.min(capEnd, off + len), !v6 && type === 5);
}

/**
 * The IP header (and first transport bytes) quoted by an ICMP error. Only
 * addresses, protocol and ports are kept; protocols found are marked present,
 * as Wireshark's display filters match quoted headers too.
 */
function decodeQuoted(ctx: DecodeContext, d: Uint8Array, off: number, quoteEnd: number, redirect: boolean): void {
  let end = quoteEnd;
  const view = ctx.view;
  if (end - off < 1) return;
  const version = d[off]! >> 4;
  let l4 = 0;
  let proto = 0;
  let fragOffset = 0;
  if (version === 4) {
    if (end - off < 20) { view.present |= Proto.IP; flagAnomaly(ctx, Anomaly['icmp.quoted_truncated']); return; }
    const ihl = (d[off]! & 0x0f) * 4;
    if (ihl < 20) { view.present |= Proto.IP; return; }
    view.present |= Proto.IP;
    view.innerIpVersion = 4;
    proto = d[off + 9]!;
    const frag = u16(d, off + 6);
    fragOffset = (frag & 0x1fff) * 8;
    if (frag & 0x2000 || fragOffset) view.present |= Proto.IP_FRAGMENT;
    view.innerSrc[0] = u32(d, off + 12);
    view.innerDst[0] = u32(d, off + 16);
    // The other words may hold a quoted IPv6 header's address from an earlier packet: the flow key reads all four.
    for (let i = 1; i < 4; i++) view.innerSrc[i] = view.innerDst[i] = 0;
    l4 = off + ihl;
  } else if (version === 6) {
    view.present |= Proto.IPV6;
    if (end - off < 40) { flagAnomaly(ctx, Anomaly['icmp.quoted_truncated']); return; }
    view.innerIpVersion = 6;
    proto = d[off + 6]!;
    for (let i = 0; i < 4; i++) {
      view.innerSrc[i] = u32(d, off + 8 + i * 4);
      view.innerDst[i] = u32(d, off + 24 + i * 4);
    }
    l4 = off + 40;
  } else {
    return;
  }
  view.innerProto = proto;
  if (fragOffset !== 0) return;
  if (redirect) end = Math.min(end, l4 + 8);
  const avail = end - l4;
  if (proto === IpProto.TCP || proto === IpProto.UDP) {
    if (avail < 4) return;
    view.innerSrcPort = u16(d, l4);
    view.innerDstPort = u16(d, l4 + 2);
    if (proto === IpProto.TCP) {
      view.present |= Proto.TCP;
      // Wireshark reads the quoted header up to the window (16 bytes) before it shows any flag.
      if (avail >= 16) {
        view.innerTcpSeq = u32(d, l4 + 4);
        view.innerTcpFlags = ((d[l4 + 12]! & 0x01) << 8) | d[l4 + 13]!;
        markTcpFlags(view, view.innerTcpFlags);
      }
      return;
    }
    if (avail < 8) return;
    view.present |= Proto.UDP;
    // Wireshark's UDP dissector stops before the conversation (no udp.stream) on a length below the header's 8.
    // As outside an error, a length of 0 over IPv6 is a jumbogram's: the quoted IPv6 payload length is the datagram's.
    const udpLen = u16(d, l4 + 4);
    view.innerUdpHeader = udpLen >= 8 || (udpLen === 0 && version === 6 && u16(d, off + 4) >= 8);
    if ((view.innerSrcPort === DNS_PORT || view.innerDstPort === DNS_PORT) && avail > 8) decodeDns(ctx, d, l4 + 8, end, avail - 8, false);
  } else if (proto === IpProto.ICMP && avail >= 4) {
    view.present |= Proto.ICMP;
  } else if (proto === IpProto.ICMPV6 && avail >= 4) {
    view.present |= Proto.ICMPV6;
  }
}

const TCP_SYN_BIT = Proto.TCP_SYN;
const TCP_RST_BIT = Proto.TCP_RST;
/**
 * Without a branch per flag: a RST is rare, and an update of `present` first
 * run after `decodeTcp` was optimized would have no type feedback and throw
 * the optimized code away (agent/flow/tcp-sequence.ts, WARM_UP).
 */
function markTcpFlags(view: { present: number }, flags: number): void {
  view.present |= (flags & 0x02 ? TCP_SYN_BIT : 0) | (flags & 0x04 ? TCP_RST_BIT : 0);
}
