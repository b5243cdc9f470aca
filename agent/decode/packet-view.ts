/**
 * The decoded view of one frame. One instance per decoder, overwritten for
 * every packet (gopacket's DecodingLayerParser idea): all fields are numbers or
 * references set in the constructor, so decoding allocates nothing. Offsets
 * index `data`; `l4Data` is usually `data` too, but for a datagram completed
 * by IP reassembly it is the reassembly buffer.
 */
export class PacketView {
  // frame (Wireshark frame.*)
  data: Uint8Array = new Uint8Array(0);
  /** Offset of the first link-layer byte in `data`. */
  frameOff = 0;
  capLen = 0;
  wireLen = 0;
  tsSec = 0;
  tsNsec = 0;
  /** Packet time in seconds since the decoder's `timeBase` (exact to the nanosecond for years). */
  ts = 0;
  linkType = 0;
  /** pcapng interface of the frame (frame.interface_id; 0 for classic pcap and live capture). */
  interfaceId = 0;
  number = 0;

  /** Bit set of Proto.* decoded anywhere in the frame. */
  present = 0;
  /** Captured bytes end before a header or the datagram ends (snaplen or a cut frame). */
  truncated = false;
  /** First anomaly id of this frame (0 when none). */
  anomaly = 0;
  /** Outermost 802.1Q VLAN id, or -1. */
  vlan = -1;

  // network layer (outermost IP unless tunnelled: then innermost)
  ipVersion: 0 | 4 | 6 = 0;
  l3Off = 0;
  /** Source and destination address: IPv4 in word [0], IPv6 in words [0..3] (big-endian words). */
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  /** Transport protocol number (ip.proto / ipv6.nxt after extension headers). */
  ipProto = 0;
  ttl = 0;
  ipId = 0;
  /** Fragment offset in bytes, and the more-fragments flag. */
  fragOffset = 0;
  moreFragments = false;
  /** IP payload length in bytes (from the header, not the capture). */
  ipPayloadLen = 0;
  /** This frame completed the reassembly of a fragmented datagram; its transport comes from `l4Data`. */
  reassembled = false;

  // transport (Transport.*)
  transport = 0;
  l4Data: Uint8Array = this.data;
  l4Off = 0;
  srcPort = 0;
  dstPort = 0;
  /** Transport payload offset in `l4Data`, captured payload bytes, and payload length from the headers. */
  payloadOff = 0;
  payloadCapLen = 0;
  payloadLen = 0;

  // TCP (tcp.*)
  tcpFlags = 0;
  seq = 0;
  ack = 0;
  window = 0;
  tcpHeaderLen = 0;
  urgent = 0;
  /** Options: -1 when absent. */
  mss = -1;
  wscale = -1;
  sackPermitted = false;
  tsVal = -1;
  tsEcr = -1;
  /** SACK blocks as left,right pairs. */
  readonly sack = new Uint32Array(8);
  sackCount = 0;

  // ICMP / ICMPv6 (icmp.type, icmp.code)
  icmpType = -1;
  icmpCode = -1;
  /** ICMP echo identifier and sequence, or the MTU of fragmentation-needed / packet-too-big. */
  icmpId = 0;
  icmpSeq = 0;
  icmpMtu = 0;
  /** Header quoted by an ICMP error: version 0 when none. */
  innerIpVersion: 0 | 4 | 6 = 0;
  readonly innerSrc = new Uint32Array(4);
  readonly innerDst = new Uint32Array(4);
  innerProto = 0;
  innerSrcPort = 0;
  innerDstPort = 0;
  /** Quoted TCP header's sequence number and flags when 16 or more bytes of it are quoted, else flags -1. */
  innerTcpSeq = 0;
  innerTcpFlags = -1;
  /** A whole quoted UDP header (8 bytes) whose length field is at least 8: what Wireshark needs to open a udp.stream. */
  innerUdpHeader = false;

  // DNS (dns.*): fields of the outermost DNS message (not one quoted in ICMP)
  dnsOff = -1;
  dnsLen = 0;
  dnsId = 0;
  dnsFlags = 0;
  dnsQdCount = 0;
  dnsAnCount = 0;
  dnsNsCount = 0;
  dnsArCount = 0;
  /** Offset of the first question name in `l4Data`, or -1. */
  dnsQnameOff = -1;
  dnsQtype = -1;
  dnsQclass = -1;

  /** Clears per-frame fields (frame fields are set by the caller). */
  reset(): void {
    this.present = 0;
    this.truncated = false;
    this.anomaly = 0;
    this.vlan = -1;
    this.ipVersion = 0;
    this.ipProto = 0;
    this.ttl = 0;
    this.ipId = 0;
    this.fragOffset = 0;
    this.moreFragments = false;
    this.ipPayloadLen = 0;
    this.reassembled = false;
    this.transport = 0;
    this.l4Data = this.data;
    this.srcPort = 0;
    this.dstPort = 0;
    this.payloadOff = 0;
    this.payloadCapLen = 0;
    this.payloadLen = 0;
    this.tcpFlags = 0;
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.tsVal = -1;
    this.tsEcr = -1;
    this.sackCount = 0;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.icmpMtu = 0;
    this.innerIpVersion = 0;
    this.innerProto = 0;
    this.innerSrcPort = 0;
    this.innerDstPort = 0;
    this.innerTcpFlags = -1;
    this.innerUdpHeader = false;
    this.dnsOff = -1;
    this.dnsQnameOff = -1;
    this.dnsQtype = -1;
    this.dnsQclass = -1;
  }

  /** dns.flags.response */
  get dnsIsResponse(): boolean { return (this.dnsFlags & 0x8000) !== 0; }
  /** dns.flags.rcode */
  get dnsRcode(): number { return this.dnsFlags & 0x000f; }
}
