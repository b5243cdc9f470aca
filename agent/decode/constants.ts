/**
 * Protocol presence bits. `PacketView.present` has a bit set for every protocol
 * decoded anywhere in the frame (including headers quoted inside ICMP errors),
 * which is what a Wireshark display filter such as `tcp` matches.
 */
export const Proto = {
  ETH: 1 << 0,
  VLAN: 1 << 1,
  SLL: 1 << 2,
  NULL: 1 << 3,
  IP: 1 << 4,
  IPV6: 1 << 5,
  TCP: 1 << 6,
  UDP: 1 << 7,
  ICMP: 1 << 8,
  ICMPV6: 1 << 9,
  DNS: 1 << 10,
  ARP: 1 << 11,
  /** An IPv4 fragment (ip.flags.mf == 1 || ip.frag_offset > 0), outer or quoted. */
  IP_FRAGMENT: 1 << 12,
  IPV6_FRAGMENT: 1 << 13,
  PPPOE: 1 << 14,
  MPLS: 1 << 15,
  /** A TCP header (outer, or quoted with at least 16 bytes) with SYN set: tcp.flags.syn == 1. */
  TCP_SYN: 1 << 16,
  /** Same for RST: tcp.flags.reset == 1. */
  TCP_RST: 1 << 17,
  /** A DNS header (outer or quoted) with the response bit: dns.flags.response == 1. */
  DNS_RESPONSE: 1 << 18,
  /** A DNS header with rcode 3: dns.flags.rcode == 3. */
  DNS_NXDOMAIN: 1 << 19,
} as const;

/** The outermost transport of a frame, which its flow is keyed on. */
export const Transport = {
  NONE: 0,
  TCP: 6,
  UDP: 17,
  ICMP: 1,
  ICMPV6: 58,
  /** An IP datagram whose transport the decoder does not parse (or a non-first fragment). */
  OTHER_IP: 255,
} as const;

export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  QINQ_OLD: 0x9100,
  IPV6: 0x86dd,
  PPPOE_SESSION: 0x8864,
  MPLS: 0x8847,
  MPLS_MULTICAST: 0x8848,
} as const;

export const IpProto = {
  HOPOPT: 0,
  ICMP: 1,
  IPIP: 4,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  ROUTING: 43,
  FRAGMENT: 44,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  MOBILITY: 135,
  HIP: 139,
  SHIM6: 140,
} as const;

export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
  NS: 0x100,
} as const;

/** Ports Wireshark 4.0 hands to its DNS dissector (dns.udp.port 53; dns.tcp.port 53 and 5353). */
export const DNS_PORT = 53;
/** mDNS (UDP 5353) and LLMNR (UDP 5355): DNS's format and dns.* fields, other protocols for `-Y dns`. */
export const MDNS_PORT = 5353;
export const LLMNR_PORT = 5355;
