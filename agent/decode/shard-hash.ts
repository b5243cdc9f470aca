/**
 * The shard key of a raw frame, for the reader thread that hands packets to
 * analysis workers (issue 13): a 32-bit hash of the unordered pair of IP
 * addresses the flow table keys the frame's flow by, equal for both
 * directions, read from the frame without decoding state or allocation.
 *
 * Addresses, not ports: fragments after the first carry no ports, and the
 * decoder reassembles a datagram from fragments keyed by their addresses, so
 * a host pair keeps fragments, both directions and every flow between two
 * hosts on one worker. The walk mirrors the decoder (link.ts, ip.ts,
 * transport.ts) and stops where the decoder would key the flow:
 *  - link layers: Ethernet with VLAN/QinQ tags, PPPoE and MPLS, Linux SLL and
 *    SLL2, raw IP, IPv4/IPv6 link types, BSD NULL and LOOP;
 *  - IP-in-IP and IPv6-in-IP tunnels are followed: the innermost addresses
 *    key the flow (when an inner header is invalid the decoder keeps the
 *    outer ones, and so does this);
 *  - a fragment (IPv4, or IPv6 with a non-atomic fragment header) hashes by
 *    its own header's addresses, the reassembler's key, except the first
 *    fragment cut by the snapshot length, whose payload the decoder reads as is;
 *  - an ICMP or ICMPv6 error that quotes an IP header hashes by the QUOTED
 *    pair: the flow table attributes it to the quoted flow (`updateQuoted`,
 *    which may open that flow), so it lands with the flow it is about.
 * Frames with no IP header to read (non-IP, unknown link type, truncated or
 * malformed) hash to 0: they have no flow.
 *
 * Cases no stateless key can make consistent (each packet goes to one worker):
 *  - the ICMP error's own flow: the flow table also counts the error in a
 *    flow of its sender and receiver (ICMP, ports 0), hashed here by the
 *    quoted pair. When the sender is an endpoint of the quoted packet (port
 *    unreachable from the destination) the pairs are one; a router's errors
 *    about several host pairs, or other non-echo ICMP between the same two
 *    hosts, spread that flow over workers;
 *  - a tunnel inside a fragmented outer datagram: its fragments hash by the
 *    outer pair (non-first ones show nothing else, and all must meet in one
 *    reassembler), but the datagram completed by reassembly is keyed by the
 *    inner pair. Likewise a fragmented ICMP error is hashed by its own pair,
 *    not the pair it quotes.
 */
import { LinkType } from '../capture/link-types.js';
import { u16, u32 } from './bytes.js';
import { EtherType, IpProto } from './constants.js';
import { MAX_TUNNEL_DEPTH } from './ip.js';
import { MAX_TAGS } from './link.js';
import { isIcmpError } from './transport.js';

/** Internal "no IP header here" (hashes are uint32, never negative). */
const NONE = -1;

/**
 * What the last `shardHash` call found of the transport the decoder would read
 * (the innermost IP header's payload): its IP protocol (0 when none), where its
 * header starts, the end of its captured bytes, and whether it is a fragment the
 * decoder hands to the reassembler (its transport is read once the datagram is
 * whole). The reader reads it to pick out DNS responses (shard/foreign-dns.ts)
 * without walking the frame again.
 */
export const shardTransport = { proto: 0, offset: 0, end: 0, fragment: false };

/**
 * The shard hash of the frame at `data[offset .. offset + capLen)` of link
 * type `linkType` (LINKTYPE_*): a uint32, the same for both directions; 0 for
 * frames without an IP header.
 */
export function shardHash(data: Uint8Array, offset: number, capLen: number, linkType: number): number {
  const end = Math.min(offset + capLen, data.length);
  shardTransport.proto = 0;
  const l3 = linkLayer(data, offset, end, linkType);
  // One call site per IP version: the link layers' branches share it rather than each inlining a copy.
  const h = l3Version === 4 ? ipv4(data, l3, end, 0) : l3Version === 6 ? ipv6(data, l3, end, 0) : NONE;
  return h === NONE ? 0 : h;
}

/**
 * The worker (0 .. workers - 1) of a shard hash: the high bits of hash × workers
 * (multiply-shift), so every worker count, power of two or not, gets an even
 * share of a well-mixed hash. Exact for 1 <= workers <= 2^21.
 */
export function shardOf(hash: number, workers: number): number {
  return Math.floor((hash >>> 0) * workers / 4294967296);
}

/** The hash of an address pair given as words (IPv4 in word 0, IPv6 in words 0..3), as shardHash computes it. */
export function addressPairHash(version: 4 | 6, a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (version === 4) return pair4(a[0]! | 0, b[0]! | 0);
  return pairOfFolds(fold6(a[0]! | 0, a[1]! | 0, a[2]! | 0, a[3]! | 0), fold6(b[0]! | 0, b[1]! | 0, b[2]! | 0, b[3]! | 0));
}

/** Set by the link-layer functions with the offset they return: the IP version of what follows (0 = not IP). */
let l3Version = 0;

/** The offset of the network header; its version in `l3Version`. */
function linkLayer(d: Uint8Array, off: number, end: number, linkType: number): number {
  l3Version = 0;
  switch (linkType) {
    case LinkType.ETHERNET: return end - off < 14 ? off : etherTypeChain(d, u16(d, off + 12), off + 14, end);
    case LinkType.LINUX_SLL: return end - off < 16 ? off : etherTypeChain(d, u16(d, off + 14), off + 16, end);
    case LinkType.LINUX_SLL2: return end - off < 20 ? off : etherTypeChain(d, u16(d, off), off + 20, end);
    case LinkType.RAW: case LinkType.RAW_BSD: case LinkType.RAW_OPENBSD: l3Version = versionNibble(d, off, end); return off;
    case LinkType.IPV4: l3Version = 4; return off;
    case LinkType.IPV6: l3Version = 6; return off;
    case LinkType.NULL: return nullFamily(d, off, end, false);
    case LinkType.LOOP: return nullFamily(d, off, end, true);
    default: return off;
  }
}

/** As link.ts decodeEtherTypeChain: VLAN tags, then PPPoE or MPLS. */
function etherTypeChain(d: Uint8Array, etherType: number, payloadOff: number, end: number): number {
  let type = etherType;
  let off = payloadOff;
  for (let tags = 0; type === EtherType.VLAN || type === EtherType.QINQ || type === EtherType.QINQ_OLD; tags++) {
    if (end - off < 4 || tags === MAX_TAGS) return off;
    type = u16(d, off + 2);
    off += 4;
  }
  if (type === EtherType.PPPOE_SESSION) {
    if (end - off < 8) return off;
    const ppp = u16(d, off + 6);
    l3Version = ppp === 0x0021 ? 4 : ppp === 0x0057 ? 6 : 0;
    return off + 8;
  }
  if (type === EtherType.MPLS || type === EtherType.MPLS_MULTICAST) {
    for (let labels = 0; ; labels++) {
      if (end - off < 4 || labels === MAX_TAGS) return off;
      const bottom = (d[off + 2]! & 0x01) !== 0;
      off += 4;
      if (bottom) break;
    }
    l3Version = versionNibble(d, off, end); // no type field below MPLS
    return off;
  }
  l3Version = type === EtherType.IPV4 ? 4 : type === EtherType.IPV6 ? 6 : 0;
  return off;
}

function versionNibble(d: Uint8Array, off: number, end: number): number {
  const version = off < end ? d[off]! >> 4 : 0;
  return version === 4 || version === 6 ? version : 0;
}

/** As link.ts decodeNull: AF_INET 2, AF_INET6 10/24/28/30, in either byte order for NULL. */
function nullFamily(d: Uint8Array, off: number, end: number, networkOrder: boolean): number {
  if (end - off < 4) return off;
  const bigEndian = u32(d, off);
  const family = networkOrder || bigEndian <= 0xffff ? bigEndian : (d[off]! | (d[off + 1]! << 8));
  l3Version = family === 2 ? 4 : family === 10 || family === 24 || family === 28 || family === 30 ? 6 : 0;
  return off + 4;
}

/** As ip.ts decodeIPv4: NONE where it stops before reading the addresses. */
function ipv4(d: Uint8Array, off: number, end: number, depth: number): number {
  const avail = end - off;
  if (avail < 20) return NONE;
  const vihl = d[off]!;
  if (vihl >> 4 !== 4) return NONE;
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) return NONE;
  let total = u16(d, off + 2);
  if (total === 0) total = avail; // TSO
  if (total < ihl || avail < ihl) return NONE;
  const capEnd = total < avail ? off + total : end;
  const l4 = off + ihl;
  const len = total - ihl;
  const frag = u16(d, off + 6);
  const fragOffset = frag & 0x1fff;
  // A whole fragment goes to the reassembler, keyed by this header; a first fragment cut by the snapshot length is decoded as is.
  const fragment = (frag & 0x2000) !== 0 || fragOffset !== 0;
  const proto = d[off + 9]!;
  const reassembled = fragment && !(fragOffset === 0 && capEnd - l4 < len);
  // Before a tunnel's inner header, which overwrites it.
  setTransport(proto, l4, capEnd, reassembled);
  const h = !looksInside(proto) || reassembled ? NONE : payload(d, proto, l4, capEnd, len, depth);
  return h !== NONE ? h : pair4(word(d, off + 12), word(d, off + 16));
}

/** Extension headers that use the generic (next header, length in 8-byte units) layout, as in ip.ts. */
const isGenericExtension = (h: number): boolean =>
  h === IpProto.HOPOPT || h === IpProto.ROUTING || h === IpProto.DSTOPTS || h === IpProto.MOBILITY || h === IpProto.HIP || h === IpProto.SHIM6;

/** As ip.ts decodeIPv6. */
function ipv6(d: Uint8Array, off: number, end: number, depth: number): number {
  const avail = end - off;
  if (avail < 40 || d[off]! >> 4 !== 6) return NONE;
  let payloadLen = u16(d, off + 4);
  if (payloadLen === 0) payloadLen = avail - 40; // jumbogram or TSO
  const capEnd = 40 + payloadLen < avail ? off + 40 + payloadLen : end;
  const dgramEnd = off + 40 + payloadLen;
  let next = d[off + 6]!;
  let p = off + 40;
  let fragmented = false;
  let firstFragment = true;
  let h = NONE;
  for (let hops = 0; ; hops++) {
    if (isGenericExtension(next) || next === IpProto.AH) {
      if (capEnd - p < 8 || hops > 16) { p = -1; break; }
      const len = next === IpProto.AH ? (d[p + 1]! + 2) * 4 : (d[p + 1]! + 1) * 8;
      next = d[p]!;
      p += len;
      continue;
    }
    if (next === IpProto.FRAGMENT) {
      if (capEnd - p < 8) { p = -1; break; }
      const fo = u16(d, p + 2);
      firstFragment = (fo & 0xfff8) === 0;
      fragmented = !firstFragment || (fo & 1) !== 0; // an atomic fragment (RFC 6946) is a whole datagram
      next = d[p]!;
      p += 8;
      continue;
    }
    break;
  }
  // p < 0 or past the datagram: the decoder reads no transport (no flow), the addresses are still this header's.
  const reassembled = fragmented && !(firstFragment && capEnd - p < dgramEnd - p);
  setTransport(p >= 0 && p <= dgramEnd ? next : 0, p, capEnd, reassembled);
  if (looksInside(next) && p >= 0 && p <= dgramEnd && !reassembled) {
    h = payload(d, next, p, capEnd, dgramEnd - p, depth);
  }
  return h !== NONE ? h : pair6(d, off + 8, off + 24);
}

function setTransport(proto: number, offset: number, end: number, fragment: boolean): void {
  shardTransport.proto = proto;
  shardTransport.offset = offset;
  shardTransport.end = end;
  shardTransport.fragment = fragment;
}

/** Tunnels and ICMP errors may key the flow by other addresses; any other payload leaves it to this header's (a cold call skipped). */
const looksInside = (proto: number): boolean =>
  proto === IpProto.ICMP || proto === IpProto.IPIP || proto === IpProto.IPV6 || proto === IpProto.ICMPV6;

/**
 * As ip.ts payload and transport.ts decodeIcmp: the hash of an inner tunnelled
 * header or of the header an ICMP error quotes, else NONE (the caller's own
 * addresses key the flow).
 */
function payload(d: Uint8Array, proto: number, off: number, capEnd: number, len: number, depth: number): number {
  if (proto === IpProto.IPIP || proto === IpProto.IPV6) {
    if (depth + 1 > MAX_TUNNEL_DEPTH) return NONE;
    return proto === IpProto.IPIP ? ipv4(d, off, capEnd, depth + 1) : ipv6(d, off, capEnd, depth + 1);
  }
  if (proto !== IpProto.ICMP && proto !== IpProto.ICMPV6) return NONE;
  if (capEnd - off < 8) return NONE;
  const type = d[off]!;
  if (proto === IpProto.ICMPV6 ? type < 1 || type > 4 : !isIcmpError(type)) return NONE;
  // The quote (transport.ts decodeQuoted): an IPv4 header of 20 bytes or more, or an IPv6 one of 40.
  const q = off + 8;
  const quoteEnd = Math.min(capEnd, off + len);
  if (quoteEnd - q < 1) return NONE;
  const version = d[q]! >> 4;
  if (version === 4) return quoteEnd - q < 20 || (d[q]! & 0x0f) < 5 ? NONE : pair4(word(d, q + 12), word(d, q + 16));
  if (version === 6) return quoteEnd - q < 40 ? NONE : pair6(d, q + 8, q + 24);
  return NONE;
}

// MurmurHash3 (x86, 32-bit) rounds over the pair's two words in canonical order (an IPv6 address is first folded to
// a word), then its avalanche: symmetric by construction, and every output bit depends on every input bit.
const SEED4 = 0x9747b28c | 0;
const SEED6 = 0x2f6b1c5d | 0;

function mixWord(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let x = h ^ k;
  x = (x << 13) | (x >>> 19);
  return (Math.imul(x, 5) + 0xe6546b64) | 0;
}

function finish(h: number, bytes: number): number {
  let x = h ^ bytes;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * A big-endian word as a signed int32: bytes.ts `u32` gives a uint32, which
 * above 2^31 is no small integer for V8 and slows the mixing several times.
 */
function word(d: Uint8Array, o: number): number {
  return (d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!;
}

/** Unsigned order of two int32 words, in int32 arithmetic: flipping the sign bit. */
const below = (a: number, b: number): boolean => (a ^ 0x80000000) < (b ^ 0x80000000);

/** IPv4 pair (int32 words), smaller address first. */
function pair4(a: number, b: number): number {
  const aFirst = below(a, b);
  return finish(mixWord(mixWord(SEED4, aFirst ? a : b), aFirst ? b : a), 8);
}

/**
 * IPv6 pair from the 16-byte addresses at `a` and `b`: each folded to a word
 * (cheaper than ordering 16 bytes and mixing eight words), the two words
 * mixed smaller first.
 */
function pair6(d: Uint8Array, a: number, b: number): number {
  return pairOfFolds(fold6(word(d, a), word(d, a + 4), word(d, a + 8), word(d, a + 12)),
    fold6(word(d, b), word(d, b + 4), word(d, b + 8), word(d, b + 12)));
}

/** One address's four words to one (signed) word: a multiply-xor chain, each step a bijection of the running value. */
function fold6(w0: number, w1: number, w2: number, w3: number): number {
  let x = Math.imul(w0 ^ SEED6, 0x9e3779b1);
  x = Math.imul(x ^ (x >>> 15) ^ w1, 0x85ebca77);
  x = Math.imul(x ^ (x >>> 13) ^ w2, 0xc2b2ae3d);
  x = Math.imul(x ^ (x >>> 16) ^ w3, 0x27d4eb2f);
  return x ^ (x >>> 15);
}

function pairOfFolds(fa: number, fb: number): number {
  const aFirst = below(fa, fb);
  return finish(mixWord(mixWord(SEED6, aFirst ? fa : fb), aFirst ? fb : fa), 32);
}
